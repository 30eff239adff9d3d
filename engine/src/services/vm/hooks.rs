//! VM lifecycle hooks (ZStack's VM extension points): code registered when the engine is composed
//! that runs before each VM operation, able to veto it with a reason, and after it, told how it
//! ended. Quotas, audit records and HA plug in here.
//!
//! Every operation that changes a VM runs its hooks, whoever asked for it (the API, a host's
//! evacuation, the expunge sweeper): create, start, stop, reboot, pause, resume, migrate, destroy,
//! recover and expunge. The hooks' `before` run in registration order before the operation waits
//! for its turn on the VM; the first veto ends the operation with `VETOED` (the VM unchanged) and
//! the hooks that had already let it through are told, newest first. Each hook that let an
//! operation through is told its outcome (`after`), newest first, once it ended. Hooks run
//! outside the VM's turn: what a hook reads of the VM may change before the operation starts.

use std::sync::Arc;

use async_trait::async_trait;

use super::create::CreatePlan;
use super::VmOp;
use super::VmService;
use crate::error::{EngineError, EngineResult};
use crate::ids::VmId;

/// An operation on a VM, as hooks see it.
#[derive(Clone, Copy, Debug)]
pub enum VmCall<'a> {
    /// A VM about to be created from `plan` (its row does not exist yet).
    Create { plan: &'a CreatePlan },
    /// `op` on an existing VM.
    Existing { op: VmOp, vm: VmId },
}

impl VmCall<'_> {
    /// The VM the operation is about.
    pub fn vm(&self) -> VmId {
        match self {
            Self::Create { plan } => plan.vm,
            Self::Existing { vm, .. } => *vm,
        }
    }

    /// The operation's lower-case verb (`create`, `start`, ...).
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Create { .. } => "create",
            Self::Existing { op, .. } => op.verb(),
        }
    }
}

/// A VM lifecycle hook.
#[async_trait]
pub trait VmLifecycleHook: Send + Sync {
    /// Names the hook in the error of an operation it vetoed.
    fn name(&self) -> &'static str;

    /// Runs before `call` changes anything. `Err(reason)` vetoes it: the operation fails with
    /// `VETOED` and the reason, and nothing of it runs.
    async fn before(&self, vms: &VmService, call: &VmCall<'_>) -> Result<(), String>;

    /// Runs once `call`, which this hook let through, has ended: `outcome` is its error, if any
    /// (a later hook's veto included).
    async fn after(&self, vms: &VmService, call: &VmCall<'_>, outcome: Result<(), &EngineError>);
}

/// The registered hooks, run in registration order.
#[derive(Clone, Default)]
pub struct VmHooks {
    chain: Vec<Arc<dyn VmLifecycleHook>>,
}

impl VmHooks {
    /// The chain `hooks`, in this order.
    pub fn new(hooks: Vec<Arc<dyn VmLifecycleHook>>) -> Self {
        Self { chain: hooks }
    }

    /// Whether no hook is registered.
    pub fn is_empty(&self) -> bool {
        self.chain.is_empty()
    }

    /// The hooks' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.chain.iter().map(|h| h.name()).collect()
    }
}

impl std::fmt::Debug for VmHooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl VmService {
    /// `operation` between the registered hooks: their `before` first (a veto ends it there),
    /// then the operation, then the `after` of each hook that let it through.
    ///
    /// With no hook registered this is `operation` itself, not a future around it: VM operations
    /// are spawned as tasks, and a future that holds its operation (tokio boxes one over 16 KiB
    /// and copies it) made every spawned create three times larger and slower.
    pub(crate) fn with_hooks<'a, T: Send + 'a>(
        &'a self,
        call: VmCall<'a>,
        operation: impl std::future::Future<Output = EngineResult<T>> + Send + 'a,
    ) -> impl std::future::Future<Output = EngineResult<T>> + Send + 'a {
        if self.hooks.is_empty() {
            return futures::future::Either::Left(operation);
        }
        futures::future::Either::Right(Box::pin(self.between_hooks(call, operation)))
    }

    /// The body of [`VmService::with_hooks`] when there are hooks.
    pub(crate) async fn between_hooks<T>(
        &self,
        call: VmCall<'_>,
        operation: impl std::future::Future<Output = EngineResult<T>>,
    ) -> EngineResult<T> {
        let mut passed: Vec<&Arc<dyn VmLifecycleHook>> = Vec::new();
        for hook in &self.hooks.chain {
            if let Err(reason) = hook.before(self, &call).await {
                let veto = EngineError::Vetoed {
                    hook: hook.name(),
                    operation: call.verb(),
                    vm: call.vm().to_string(),
                    reason,
                };
                for earlier in passed.iter().rev() {
                    earlier.after(self, &call, Err(&veto)).await;
                }
                return Err(veto);
            }
            passed.push(hook);
        }
        let outcome = operation.await;
        for hook in passed.iter().rev() {
            hook.after(self, &call, outcome.as_ref().map(|_| ())).await;
        }
        outcome
    }
}
