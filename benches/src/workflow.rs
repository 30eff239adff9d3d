//! A workflow of six no-op steps: the cost of the workflow machinery itself.

use async_trait::async_trait;
use oxstack_engine::workflow::{Step, Workflow};
use oxstack_engine::EngineResult;

/// The context of the no-op workflow (nothing to carry).
#[derive(Debug, Default)]
pub struct NoopCtx;

/// A step that does nothing, and undoes nothing.
struct Noop(&'static str);

#[async_trait]
impl Step<NoopCtx> for Noop {
    fn name(&self) -> &'static str {
        self.0
    }
    async fn run(&self, _ctx: &mut NoopCtx) -> EngineResult<()> {
        Ok(())
    }
    async fn undo(&self, _ctx: &mut NoopCtx) -> EngineResult<()> {
        Ok(())
    }
}

/// Steps in the no-op workflow.
pub const STEPS: usize = 6;

/// The six-step no-op workflow.
pub fn noop_workflow() -> Workflow<NoopCtx> {
    ["step-1", "step-2", "step-3", "step-4", "step-5", "step-6"]
        .into_iter()
        .fold(Workflow::new("bench-noop"), |wf, name| wf.step(Noop(name)))
}

#[cfg(test)]
mod tests {
    use oxstack_engine::workflow::testing::Inject;
    use oxstack_engine::workflow::StepEvent;

    use super::*;

    #[tokio::test]
    async fn runs_six_steps_and_undoes_all_six() {
        let wf = noop_workflow();
        assert_eq!(wf.step_names().len(), STEPS);
        wf.run(&mut NoopCtx).await.unwrap();
        let inject = Inject { fail_after: Some(STEPS - 1), ..Default::default() };
        let (res, log) = wf.run_injected(&mut NoopCtx, inject).await;
        assert!(res.is_err());
        assert_eq!(log.entries.iter().filter(|(_, e)| *e == StepEvent::Undone).count(), STEPS);
    }
}
