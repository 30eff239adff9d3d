//! The extension points on the VM paths: lifecycle hooks around every operation (a veto changes
//! nothing; each hook that let an operation through hears how it ended) and a registered host
//! filter and a registered host sorter that placements honour.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use oxstack_hypervisor::{HostId, StopMode};

use super::fixture::{Cloud, GIB};
use crate::error::EngineError;
use crate::extensions::{Extensions, HostFilter, HostSorter, VmCall, VmLifecycleHook};
use crate::scheduler::{HostCapacity, HostRequest};
use crate::services::vm::{VmService, VmState};

/// What the hooks heard, in order: `"before start"`, `"after start: ok"`,
/// `"after stop: INVALID_STATE"`, ...
type Log = Arc<Mutex<Vec<String>>>;

/// Lets everything through and writes down what it heard.
struct Recorder(Log);

#[async_trait]
impl VmLifecycleHook for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    async fn before(&self, _: &VmService, call: &VmCall<'_>) -> Result<(), String> {
        self.0.lock().unwrap().push(format!("before {}", call.verb()));
        Ok(())
    }
    async fn after(&self, _: &VmService, call: &VmCall<'_>, outcome: Result<(), &EngineError>) {
        let outcome = outcome.map_or_else(|e| e.code(), |()| "ok");
        self.0.lock().unwrap().push(format!("after {}: {outcome}", call.verb()));
    }
}

/// Vetoes every operation with this verb.
struct Refuse(&'static str);

#[async_trait]
impl VmLifecycleHook for Refuse {
    fn name(&self) -> &'static str {
        "refuse"
    }
    async fn before(&self, _: &VmService, call: &VmCall<'_>) -> Result<(), String> {
        if call.verb() == self.0 {
            return Err(format!("no {} today", self.0));
        }
        Ok(())
    }
    async fn after(&self, _: &VmService, _: &VmCall<'_>, _: Result<(), &EngineError>) {}
}

/// Refuses the host it is told (once the cloud, and so the host, exists).
#[derive(Default)]
struct NotOn(Mutex<Option<HostId>>);

impl HostFilter for NotOn {
    fn name(&self) -> &'static str {
        "not-on"
    }
    fn accepts(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> bool {
        *self.0.lock().unwrap() != Some(host)
    }
}

async fn cloud(extensions: Extensions, hosts: usize) -> Cloud {
    let url = oxstack_db::pg::test_database("cloud").await.unwrap();
    let url = url.as_deref().unwrap_or("sqlite::memory:");
    Cloud::with_extensions(url, extensions, hosts, 8, 32, 100).await
}

fn hooks(hooks: Vec<Arc<dyn VmLifecycleHook>>) -> Extensions {
    Extensions { vm_hooks: hooks, ..Default::default() }
}

fn taken(log: &Log) -> Vec<String> {
    std::mem::take(&mut *log.lock().unwrap())
}

#[tokio::test]
async fn every_vm_operation_runs_between_the_hooks_and_they_hear_its_outcome() {
    let log = Log::default();
    let c = cloud(hooks(vec![Arc::new(Recorder(log.clone()))]), 2).await;
    let e = &c.engine;
    let vm = e.vms.create_vm(c.create_req("a")).await.unwrap();
    let (id, first) = (vm.uuid, vm.host_uuid.unwrap());
    let other = *c.hosts.iter().find(|h| **h != first).unwrap();
    e.vms.reboot_vm(id).await.unwrap();
    e.vms.pause_vm(id).await.unwrap();
    e.vms.resume_vm(id).await.unwrap();
    e.vms.migrate_vm(id, Some(other)).await.unwrap();
    e.vms.stop_vm(id, StopMode::Force).await.unwrap();
    e.vms.start_vm(id, None).await.unwrap();
    e.vms.destroy_vm(id).await.unwrap();
    let refused = e.vms.stop_vm(id, StopMode::Force).await.unwrap_err();
    assert_eq!(refused.code(), "INVALID_STATE");
    e.vms.recover_vm(id).await.unwrap();
    e.vms.destroy_vm(id).await.unwrap();
    e.vms.expunge_vm(id).await.unwrap();
    let heard = taken(&log);
    let verbs = [
        "create", "reboot", "pause", "resume", "migrate", "stop", "start", "destroy", "stop",
        "recover", "destroy", "expunge",
    ];
    let want: Vec<String> = verbs
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            let outcome = if i == 8 { "INVALID_STATE" } else { "ok" };
            [format!("before {v}"), format!("after {v}: {outcome}")]
        })
        .collect();
    assert_eq!(heard, want);
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_vetoed_create_leaves_nothing_and_the_hooks_before_the_veto_hear_of_it() {
    let log = Log::default();
    let chain: Vec<Arc<dyn VmLifecycleHook>> =
        vec![Arc::new(Recorder(log.clone())), Arc::new(Refuse("create"))];
    let c = cloud(hooks(chain), 2).await;
    let err = c.engine.vms.create_vm(c.create_req("a")).await.unwrap_err();
    assert_eq!(err.code(), "VETOED");
    assert_eq!(err.details()["hook"], "refuse");
    assert!(err.to_string().contains("no create today"), "{err}");
    assert_eq!(taken(&log), ["before create", "after create: VETOED"]);
    for table in ["vm_instances", "vm_nics", "volumes", "workflow_runs"] {
        assert_eq!(c.count(table).await, 0, "{table}");
    }
    for h in &c.hosts {
        assert_eq!(c.host_used(*h).await, (0, 0));
    }
    c.assert_consistent().await;
}

#[tokio::test]
async fn a_vetoed_stop_leaves_the_vm_running_where_it_was() {
    let c = cloud(hooks(vec![Arc::new(Refuse("stop"))]), 1).await;
    let vm = c.engine.vms.create_vm(c.create_req("a")).await.unwrap();
    let host = vm.host_uuid.unwrap();
    let err = c.engine.vms.stop_vm(vm.uuid, StopMode::Force).await.unwrap_err();
    assert_eq!(err.code(), "VETOED");
    let now = c.engine.vms.get_vm(vm.uuid).await.unwrap();
    assert_eq!((now.state, now.host_uuid), (VmState::Running, Some(host)));
    assert_eq!(c.host_used(host).await, (1, GIB));
    c.assert_consistent().await;
}

#[tokio::test]
async fn placements_pass_over_a_host_a_registered_filter_refuses() {
    let not_on = Arc::new(NotOn::default());
    let filter: Arc<dyn HostFilter> = not_on.clone();
    let c = cloud(Extensions { host_filters: vec![filter], ..Default::default() }, 3).await;
    let refused = c.hosts[0];
    *not_on.0.lock().unwrap() = Some(refused);
    for i in 0..6 {
        let vm = c.engine.vms.create_vm(c.create_req(&format!("vm-{i}"))).await.unwrap();
        assert_ne!(vm.host_uuid, Some(refused));
    }
    let err = c.engine.vms.create_vm(c.create_req_on("on-refused", refused)).await.unwrap_err();
    assert_eq!(err.code(), "INSUFFICIENT_CAPACITY");
    assert!(err.to_string().contains("host filter not-on"), "{err}");
    assert_eq!(c.host_used(refused).await, (0, 0));
    c.assert_consistent().await;
}

/// Likes one host above all others.
#[derive(Default)]
struct Favours(Mutex<Option<HostId>>);

impl HostSorter for Favours {
    fn name(&self) -> &'static str {
        "favours"
    }
    fn score(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> i64 {
        i64::from(*self.0.lock().unwrap() == Some(host))
    }
}

#[tokio::test]
async fn placements_go_where_a_registered_sorter_would_rather_have_them() {
    let favours = Arc::new(Favours::default());
    let sorter: Arc<dyn HostSorter> = favours.clone();
    let c = cloud(Extensions { host_sorters: vec![sorter], ..Default::default() }, 3).await;
    let favourite = c.hosts[1];
    *favours.0.lock().unwrap() = Some(favourite);
    // Spread (the default) alone would put them on three hosts.
    for i in 0..4 {
        let vm = c.engine.vms.create_vm(c.create_req(&format!("vm-{i}"))).await.unwrap();
        assert_eq!(vm.host_uuid, Some(favourite), "vm-{i}");
    }
    for other in [c.hosts[0], c.hosts[2]] {
        assert_eq!(c.host_used(other).await, (0, 0));
    }
    c.assert_consistent().await;
}
