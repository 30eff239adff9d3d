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
//!
//! The faults are injected through the run loop's test seam ([`RunHooks`]): [`Inject`] says
//! which, [`Workflow::run_injected`] and [`Workflow::run_journaled_injected`] run with them.
//! This module is built for the engine's tests and with the `testing` feature (the benches),
//! never into production.

use crate::error::EngineResult;
use crate::workflow::{Interrupt, Journal, Journaled, Journaling, RunHooks, StepEvent, Workflow};

/// Faults to inject into one run.
#[derive(Clone, Copy, Debug, Default)]
pub struct Inject {
    /// Fail the workflow right after step `i` succeeded (so its undo runs too).
    pub fail_after: Option<usize>,
    /// Run every step twice (idempotency).
    pub run_steps_twice: bool,
    /// Run every undo twice (idempotency).
    pub run_undos_twice: bool,
    /// Stop dead right after step `i` succeeded, undoing nothing and leaving the journal as it
    /// is, as a management node killed at that instant would.
    pub crash_after: Option<usize>,
    /// With `crash_after`: die before the journal records what step `i` made.
    pub crash_before_journal: bool,
}

/// The record of one workflow run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkflowLog {
    pub entries: Vec<(&'static str, StepEvent)>,
}

/// The hooks of a run with faults injected: the faults, and the log they fill.
struct Injecting {
    inject: Inject,
    log: WorkflowLog,
}

impl RunHooks for Injecting {
    fn event(&mut self, step: &'static str, event: StepEvent) {
        self.log.entries.push((step, event));
    }
    fn repeat_steps(&self) -> bool {
        self.inject.run_steps_twice
    }
    fn repeat_undos(&self) -> bool {
        self.inject.run_undos_twice
    }
    fn after_step(&mut self, index: usize) -> Option<Interrupt> {
        let i = Some(index);
        if self.inject.crash_after == i && self.inject.crash_before_journal {
            Some(Interrupt::Crash)
        } else if self.inject.fail_after == i {
            Some(Interrupt::Fail)
        } else {
            None
        }
    }
    fn after_journal(&mut self, index: usize) -> bool {
        self.inject.crash_after == Some(index)
    }
}

impl<C: Send> Workflow<C> {
    /// Runs with `inject`'s faults and returns the log alongside the outcome.
    pub async fn run_injected(
        &self,
        ctx: &mut C,
        inject: Inject,
    ) -> (EngineResult<()>, WorkflowLog) {
        let mut hooks = Injecting { inject, log: WorkflowLog::default() };
        let res = self.run_loop(ctx, None, &mut hooks).await;
        (res, hooks.log)
    }

    /// [`Workflow::run_journaled`] with `inject`'s faults; returns the log alongside the
    /// outcome.
    pub async fn run_journaled_injected(
        &self,
        ctx: &mut C,
        journal: &Journal,
        inject: Inject,
    ) -> (EngineResult<()>, WorkflowLog)
    where
        C: Journaled,
    {
        let mut hooks = Injecting { inject, log: WorkflowLog::default() };
        let res = self.run_loop(ctx, Some(Journaling::new(journal)), &mut hooks).await;
        (res, hooks.log)
    }
}

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
            let inject =
                Inject { fail_after: Some(i), run_undos_twice: undo_twice, ..Default::default() };
            let (res, log) = workflow.run_injected(&mut ctx, inject).await;
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
    let inject = Inject { run_steps_twice: true, ..Default::default() };
    let (res, log) = workflow.run_injected(&mut ctx, inject).await;
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
            let inject = Inject {
                crash_after: Some(i),
                crash_before_journal: before_journal,
                ..Default::default()
            };
            let (res, _) = workflow.run_journaled_injected(&mut ctx, &journal, inject).await;
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
