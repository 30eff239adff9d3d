//! Workflows: ordered steps with undo (ZStack's FlowChain, Oxide's steno sagas).
//!
//! A workflow runs its steps in order over a typed context (each step's outputs are fields of the
//! context, never looked up by string name). When a step fails, the steps that succeeded are
//! undone in reverse order. Steps must be idempotent (running one twice has the effect of running
//! it once) and so must undos, which lets a crashed workflow be resumed or rolled back from its
//! log. A step that fails must leave nothing behind.

use async_trait::async_trait;

use crate::error::{EngineError, EngineResult};

pub mod journal;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use journal::{Journal, Journaled};

/// One step of a workflow over context `C`.
#[async_trait]
pub trait Step<C: Send>: Send + Sync {
    /// A short name for logs and tests.
    fn name(&self) -> &'static str;
    /// Does the step's work. Idempotent; on error it must have changed nothing.
    async fn run(&self, ctx: &mut C) -> EngineResult<()>;
    /// Reverts the step's work. Idempotent, and changes nothing when `run` never ran or did
    /// nothing: the recovery of an interrupted run undoes every step (see [`journal`]).
    async fn undo(&self, ctx: &mut C) -> EngineResult<()>;
}

/// What happened to a step, in the order it happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StepEvent {
    Started,
    Succeeded,
    Failed,
    Undone,
    UndoFailed,
}

/// The run loop's test seam: where a test replays steps and undos, injects a failure or stops
/// a run dead as a killed node would, and what it is told of each step. Production runs pass
/// [`NoHooks`], whose answers are constants; the faults tests inject are in `testing`, which
/// production builds do not compile.
pub trait RunHooks: Send {
    /// Something happened to `step`.
    fn event(&mut self, _step: &'static str, _event: StepEvent) {}
    /// Whether to run every step twice (idempotency).
    fn repeat_steps(&self) -> bool {
        false
    }
    /// Whether to run every undo twice (idempotency).
    fn repeat_undos(&self) -> bool {
        false
    }
    /// What to do once step `index` succeeded, before the journal records what it made.
    fn after_step(&mut self, _index: usize) -> Option<Interrupt> {
        None
    }
    /// Whether to stop dead once the journal recorded step `index` (journaled runs).
    fn after_journal(&mut self, _index: usize) -> bool {
        false
    }
}

/// How [`RunHooks::after_step`] interrupts a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupt {
    /// Fail the run (so the step's undo runs too).
    Fail,
    /// Stop dead: undo nothing and leave the journal as it is.
    Crash,
}

/// The hooks of production runs: nothing injected, nothing recorded.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoHooks;

impl RunHooks for NoHooks {}

/// A run's journal, and how to read from the context what it records.
struct Journaling<'a, C> {
    journal: &'a Journal,
    progress: fn(&C) -> u64,
    saved: fn(&C) -> EngineResult<String>,
}

impl<'a, C: Journaled> Journaling<'a, C> {
    fn new(journal: &'a Journal) -> Self {
        Self { journal, progress: C::progress, saved: C::saved }
    }
}

impl<C> Journaling<'_, C> {
    /// What to write to the journal after a step: the context's saved form if what the undos
    /// need changed since `last` (which then becomes the new fingerprint), else nothing.
    fn to_record(&self, ctx: &C, last: &mut u64) -> EngineResult<Option<String>> {
        let now = (self.progress)(ctx);
        if now == *last {
            return Ok(None);
        }
        *last = now;
        (self.saved)(ctx).map(Some)
    }
}

/// An ordered list of steps over context `C`.
pub struct Workflow<C: Send> {
    name: &'static str,
    steps: Vec<Box<dyn Step<C>>>,
}

impl<C: Send> Workflow<C> {
    /// A workflow named `name` with no steps yet.
    pub fn new(name: &'static str) -> Self {
        Self { name, steps: Vec::new() }
    }

    /// Appends a step.
    pub fn step(mut self, step: impl Step<C> + 'static) -> Self {
        self.steps.push(Box::new(step));
        self
    }

    /// The workflow's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The step names, in order.
    pub fn step_names(&self) -> Vec<&'static str> {
        self.steps.iter().map(|s| s.name()).collect()
    }

    /// Runs every step; on failure undoes the completed ones and returns the failure.
    pub async fn run(&self, ctx: &mut C) -> EngineResult<()> {
        self.run_loop(ctx, None, &mut NoHooks).await
    }

    /// Runs every step, recording the context in `journal` after each step that changed what
    /// the undos need; on failure (also of the journal) undoes the completed ones.
    pub async fn run_journaled(&self, ctx: &mut C, journal: &Journal) -> EngineResult<()>
    where
        C: Journaled,
    {
        self.run_loop(ctx, Some(Journaling::new(journal)), &mut NoHooks).await
    }

    /// The run loop of plain and journaled runs alike: each step in turn, then (journaled) the
    /// journal if the step changed what the undos need; on a failure of either, the completed
    /// steps undone in reverse order.
    async fn run_loop<H: RunHooks>(
        &self,
        ctx: &mut C,
        journaling: Option<Journaling<'_, C>>,
        hooks: &mut H,
    ) -> EngineResult<()> {
        let mut progress = journaling.as_ref().map_or(0, |j| (j.progress)(ctx));
        for (i, step) in self.steps.iter().enumerate() {
            hooks.event(step.name(), StepEvent::Started);
            let mut ran = step.run(ctx).await;
            if ran.is_ok() && hooks.repeat_steps() {
                ran = step.run(ctx).await;
            }
            if let Err(err) = ran {
                hooks.event(step.name(), StepEvent::Failed);
                tracing::debug!(workflow = self.name, step = step.name(), %err, "step failed");
                return self.unwind(ctx, i, err, hooks).await;
            }
            hooks.event(step.name(), StepEvent::Succeeded);
            match hooks.after_step(i) {
                None => {}
                Some(Interrupt::Fail) => {
                    let err = EngineError::Injected(format!(
                        "failure after step `{}` of workflow `{}`",
                        step.name(),
                        self.name
                    ));
                    return self.unwind(ctx, i + 1, err, hooks).await;
                }
                Some(Interrupt::Crash) => return Err(self.crashed(step.name())),
            }
            if let Some(j) = &journaling {
                let recorded = match j.to_record(ctx, &mut progress) {
                    Ok(Some(saved)) => j.journal.save(saved).await,
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(err) = recorded {
                    tracing::debug!(workflow = self.name, step = step.name(), %err, "journal failed");
                    return self.unwind(ctx, i + 1, err, hooks).await;
                }
            }
            if hooks.after_journal(i) {
                return Err(self.crashed(step.name()));
            }
        }
        Ok(())
    }

    /// The error of a run a test stopped dead.
    fn crashed(&self, step: &str) -> EngineError {
        EngineError::Injected(format!("crash after step `{step}` of `{}`", self.name))
    }

    /// Undoes every step in reverse order, whether or not it ran (recovery of an interrupted
    /// run, whose undos are keyed and no-ops for steps that never ran); returns the undos that
    /// failed.
    pub async fn undo_all(&self, ctx: &mut C) -> Vec<(&'static str, EngineError)> {
        let mut failed = Vec::new();
        for step in self.steps.iter().rev() {
            if let Err(e) = step.undo(ctx).await {
                failed.push((step.name(), e));
            }
        }
        failed
    }

    /// Undoes steps `0..done` in reverse order and returns `err` (or a rollback failure).
    async fn unwind<H: RunHooks>(
        &self,
        ctx: &mut C,
        done: usize,
        err: EngineError,
        hooks: &mut H,
    ) -> EngineResult<()> {
        let mut undo_failures = Vec::new();
        for step in self.steps[..done].iter().rev() {
            let mut outcome = step.undo(ctx).await;
            if outcome.is_ok() && hooks.repeat_undos() {
                outcome = step.undo(ctx).await;
            }
            match outcome {
                Ok(()) => hooks.event(step.name(), StepEvent::Undone),
                Err(undo_err) => {
                    tracing::error!(workflow = self.name, step = step.name(), %undo_err, "undo failed");
                    hooks.event(step.name(), StepEvent::UndoFailed);
                    undo_failures.push(format!("{}: {undo_err}", step.name()));
                }
            }
        }
        if undo_failures.is_empty() {
            return Err(err);
        }
        Err(EngineError::RollbackFailed {
            workflow: self.name.to_string(),
            cause: err.to_string(),
            undos: undo_failures.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A step that adds its value to a counter and removes it on undo.
    struct Add(&'static str, i64);

    #[derive(Default)]
    struct Ctx {
        total: i64,
        applied: Vec<&'static str>,
        fail_on: Option<&'static str>,
        fail_undo_on: Option<&'static str>,
    }

    #[async_trait]
    impl Step<Ctx> for Add {
        fn name(&self) -> &'static str {
            self.0
        }
        async fn run(&self, ctx: &mut Ctx) -> EngineResult<()> {
            if ctx.fail_on == Some(self.0) {
                return Err(EngineError::Conflict(format!("{} refused", self.0)));
            }
            if !ctx.applied.contains(&self.0) {
                ctx.applied.push(self.0);
                ctx.total += self.1;
            }
            Ok(())
        }
        async fn undo(&self, ctx: &mut Ctx) -> EngineResult<()> {
            if ctx.fail_undo_on == Some(self.0) {
                return Err(EngineError::Timeout(format!("undo of {}", self.0)));
            }
            if let Some(pos) = ctx.applied.iter().position(|s| *s == self.0) {
                ctx.applied.remove(pos);
                ctx.total -= self.1;
            }
            Ok(())
        }
    }

    fn workflow() -> Workflow<Ctx> {
        Workflow::new("adds").step(Add("a", 1)).step(Add("b", 10)).step(Add("c", 100))
    }

    #[tokio::test]
    async fn runs_every_step_in_order() {
        let mut ctx = Ctx::default();
        workflow().run(&mut ctx).await.unwrap();
        assert_eq!(ctx.total, 111);
        assert_eq!(ctx.applied, vec!["a", "b", "c"]);
    }

    #[tokio::test]
    async fn a_failing_step_undoes_the_earlier_ones_in_reverse() {
        let mut ctx = Ctx { fail_on: Some("c"), ..Default::default() };
        let (res, log) = workflow().run_injected(&mut ctx, testing::Inject::default()).await;
        assert_eq!(res.unwrap_err().code(), "CONFLICT", "the step's own error is returned");
        assert_eq!(ctx.total, 0);
        let undone: Vec<_> =
            log.entries.iter().filter(|(_, e)| *e == StepEvent::Undone).map(|(n, _)| *n).collect();
        assert_eq!(undone, vec!["b", "a"]);
    }

    #[tokio::test]
    async fn a_failing_undo_makes_a_rollback_failure_naming_both_errors() {
        let mut ctx = Ctx { fail_on: Some("c"), fail_undo_on: Some("b"), ..Default::default() };
        let (res, _) = workflow().run_injected(&mut ctx, testing::Inject::default()).await;
        let err = res.unwrap_err();
        assert_eq!(err.code(), "INTERNAL");
        assert!(err.is_server_fault());
        let EngineError::RollbackFailed { workflow, cause, undos } = err else {
            panic!("not a rollback failure: {err:?}");
        };
        assert_eq!((workflow.as_str(), cause.as_str()), ("adds", "c refused"));
        assert_eq!(undos, "b: undo of b timed out");
        assert_eq!(ctx.total, 10, "a was undone, b was not");
    }

    #[tokio::test]
    async fn shared_unwind_checks_pass_for_an_idempotent_workflow() {
        testing::check_unwind(
            &workflow(),
            async || Ctx::default(),
            async |ctx: &Ctx| {
                assert_eq!(ctx.total, 0, "clean slate");
                assert!(ctx.applied.is_empty());
            },
            async |ctx: &Ctx| assert_eq!(ctx.total, 111, "done exactly once"),
        )
        .await;
    }
}
