//! Shared unwind tests every workflow must pass (after omicron's saga test helpers).
//!
//! 1. Fail after each step in turn: every earlier step (and that one) is undone, nothing leaks.
//! 2. The same with every undo run twice: undos are idempotent.
//! 3. Run every step twice to success: steps are idempotent, the result is as if run once.
//!
//! `clean_slate` asserts that nothing of the workflow is left; `done_once` asserts the result of
//! one successful run. Both panic (assert) on failure, like any test.

use crate::workflow::{RunOptions, StepEvent, Workflow};

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
