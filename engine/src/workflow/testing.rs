//! Shared unwind tests every workflow must pass (after omicron's saga test helpers).
//!
//! 1. Fail after each step in turn: every earlier step (and that one) is undone, nothing leaks.
//! 2. The same with every undo run twice: undos are idempotent.
//! 3. Run every step twice to success: steps are idempotent, the result is as if run once.
//! 4. (journaled workflows, [`check_crash_recovery`]) Die after each step in turn, before and
//!    after the journal records it: recovery from the journal leaves nothing behind.
//!
//! `clean_slate` asserts that nothing of the workflow is left; `done_once` asserts the result of
//! one successful run. Both panic (assert) on failure, like any test.

use crate::workflow::{Journal, Journaled, RunOptions, StepEvent, Workflow};

/// Runs the three unwind checks against `workflow`, building a fresh context for each run.
pub async fn check_unwind<C: Send>(
    workflow: &Workflow<C>,
    mut make_ctx: impl AsyncFnMut() -> C,
    mut clean_slate: impl AsyncFnMut(&C),
    mut done_once: impl AsyncFnMut(&C),
) {
    let steps = workflow.step_names();
    assert!(!steps.is_empty(), "workflow `{}` has no steps", workflow.name());
    for undo_twice in [false, true] {
        for (i, step) in steps.iter().enumerate() {
            let mut ctx = make_ctx().await;
            let opts = RunOptions {
                fail_after: Some(i),
                run_undos_twice: undo_twice,
                ..Default::default()
            };
            let (res, log) = workflow.run_with(&mut ctx, opts).await;
            assert!(
                res.is_err(),
                "workflow `{}` must fail when failure is injected after `{step}`",
                workflow.name()
            );
            let undone = log.entries.iter().filter(|(_, e)| *e == StepEvent::Undone).count();
            assert_eq!(
                undone,
                i + 1,
                "workflow `{}`: after a failure at `{step}` (undo twice: {undo_twice}) every completed step must be undone; log: {:?}",
                workflow.name(),
                log.entries
            );
            clean_slate(&ctx).await;
        }
    }
    let mut ctx = make_ctx().await;
    let opts = RunOptions { run_steps_twice: true, ..Default::default() };
    let (res, log) = workflow.run_with(&mut ctx, opts).await;
    if let Err(e) = res {
        panic!(
            "workflow `{}` with every step run twice failed: {e}; log: {:?}",
            workflow.name(),
            log.entries
        );
    }
    done_once(&ctx).await;
}

/// The crash test of a journaled workflow: for each step, a node killed right after it (once
/// before and once after the journal recorded what it made) leaves a run that `recover`
/// must bring back to a clean slate, checked by `clean_slate(step, before_journal)`.
/// `begin` builds a fresh context and its journal row (as of a node that is no longer
/// running, so the run is recoverable at once).
pub async fn check_crash_recovery<C: Send + Journaled>(
    workflow: &Workflow<C>,
    mut begin: impl AsyncFnMut() -> (C, Journal),
    mut recover: impl AsyncFnMut(),
    mut clean_slate: impl AsyncFnMut(usize, bool),
) {
    for (i, step) in workflow.step_names().iter().enumerate() {
        for before_journal in [true, false] {
            let (mut ctx, journal) = begin().await;
            let opts = RunOptions {
                crash_after: Some(i),
                crash_before_journal: before_journal,
                ..Default::default()
            };
            let res = workflow.run_journaled_with(&mut ctx, &journal, opts).await;
            assert!(
                res.is_err(),
                "workflow `{}` must stop when a crash is injected after `{step}`",
                workflow.name()
            );
            // The node is dead: its context and journal handle go without a word.
            drop((ctx, journal));
            recover().await;
            clean_slate(i, before_journal).await;
        }
    }
}
