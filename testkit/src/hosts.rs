//! The standard cloud's simulated hosts: the request that adds host `i`, and registering a
//! range of them through the engine like real hosts, several at once.
//!
//! Host `i` is `host-{i}` at management address `172.(16 + (i >> 16) % 16).(i >> 8).(i & 255)`
//! (distinct for a million hosts), in cluster `(i / per_cluster) % clusters` counted across
//! zones, with the size of [`HostSpec`](crate::HostSpec).

use std::ops::Range;

use futures::{Stream, StreamExt};
use oxstack_engine::services::host::AddHost;
use oxstack_engine::{Engine, EngineResult};
use oxstack_hypervisor::HostId;

use crate::build::Cloud;
use crate::{BuildError, BuildResult};

/// One host's registration: its number, what the caller's stopwatch read, and the result.
#[derive(Debug)]
pub struct AddedHost<D = ()> {
    pub index: u32,
    pub took: D,
    pub result: EngineResult<HostId>,
}

impl Cloud {
    /// The request that adds host number `i` (see the module doc).
    pub fn host_request(&self, i: u32) -> AddHost {
        let clusters = self.clusters();
        let per_cluster = self.host_spec.per_cluster.max(1);
        AddHost {
            cluster_uuid: clusters[(i / per_cluster) as usize % clusters.len()],
            name: format!("host-{i}"),
            management_ip: format!("172.{}.{}.{}", 16 + (i >> 16) % 16, (i >> 8) & 0xff, i & 0xff),
            cpus: Some(self.host_spec.cpus),
            memory_bytes: Some(self.host_spec.memory_bytes),
            agent_token: None,
            agent_ca_pem: None,
            agent_cert_sha256: None,
        }
    }

    /// Adds hosts `hosts` through `engine`, [`HostSpec::register_concurrency`](crate::HostSpec)
    /// at once, yielding each as it finishes (not in host order, but with its number). Each
    /// add is timed by a stopwatch `start()` makes just before it and reads just after:
    /// `|| { let t = Instant::now(); move || t.elapsed() }`, or `|| || ()` for none.
    pub fn add_hosts<'a, W, D>(
        &'a self,
        engine: &'a Engine,
        hosts: Range<u32>,
        start: impl Fn() -> W + 'a,
    ) -> impl Stream<Item = AddedHost<D>> + 'a
    where
        W: FnOnce() -> D + 'a,
        D: 'a,
    {
        futures::stream::iter(hosts)
            .map(move |i| {
                let req = self.host_request(i);
                let stopwatch = start();
                async move {
                    let result = engine.hosts.add_host(req).await.map(|h| h.uuid);
                    AddedHost { index: i, took: stopwatch(), result }
                }
            })
            .buffer_unordered(self.host_spec.register_concurrency.max(1))
    }

    /// Adds hosts `hosts` (see [`Cloud::add_hosts`]) and returns their IDs in host order, or
    /// the error of the first host in that order that failed.
    pub async fn register_hosts(
        &self,
        engine: &Engine,
        hosts: Range<u32>,
    ) -> BuildResult<Vec<HostId>> {
        let first = hosts.start;
        let mut added: Vec<AddedHost> = self.add_hosts(engine, hosts, || || ()).collect().await;
        added.sort_by_key(|a| a.index);
        let mut ids = Vec::with_capacity(added.len());
        for a in added {
            match a.result {
                Ok(id) => ids.push(id),
                Err(error) => {
                    let what = format!("registering host-{} (of hosts from {first})", a.index);
                    return Err(BuildError { what, error });
                }
            }
        }
        Ok(ids)
    }
}
