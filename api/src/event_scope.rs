//! Which events a tenant's user sees on `GET /v1/events`: those of its own account's VMs and
//! jobs, nothing of the infrastructure or of other accounts. The admin account's users see
//! every event.
//!
//! An event names its resource only, so each VM or job is looked up once per stream and the
//! answer kept (a VM's or job's account never changes). A VM or job first seen as it is
//! deleted can no longer be looked up: its last event is not shown.

use std::collections::HashMap;

use oxstack_bus::Event;
use oxstack_engine::ids::{AccountId, JobId, VmId};
use oxstack_engine::Engine;

/// Answers kept at most, per stream (then forgotten and looked up again).
const REMEMBERED: usize = 10_000;

/// What one stream of a tenant's user may see.
pub struct EventScope {
    engine: Engine,
    account: AccountId,
    /// Resource uuid → whether it is the account's.
    seen: HashMap<uuid::Uuid, bool>,
}

impl EventScope {
    /// The scope of a stream of a user of the tenant account `account`.
    pub fn new(engine: Engine, account: AccountId) -> Self {
        Self { engine, account, seen: HashMap::new() }
    }

    /// Whether the stream shows `event`.
    pub async fn shows(&mut self, event: &Event) -> bool {
        if let Some(known) = self.seen.get(&event.resource_uuid) {
            return *known;
        }
        let mine = match event.resource_type.as_str() {
            "vm" => {
                let vm = VmId(event.resource_uuid);
                self.engine.vms.get_vm_of(vm, Some(self.account)).await.is_ok()
            }
            "job" => {
                let job = JobId(event.resource_uuid);
                self.engine.jobs.get_of(job, Some(self.account)).await.is_ok()
            }
            _ => false,
        };
        if self.seen.len() >= REMEMBERED {
            self.seen.clear();
        }
        self.seen.insert(event.resource_uuid, mine);
        mine
    }
}
