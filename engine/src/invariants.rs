//! Invariants of a management node's state, checked by tests, model tests and scenarios.
//!
//! Each check compares what the database says with itself and with the in-memory caches:
//! per-host reserved capacity equals the sum over the VMs placed there; per-storage used bytes
//! equal the sum of its volumes; no NIC or volume without its VM; no IP given twice; the capacity
//! index, storage topology and IPAM agree with the database; no tenant's VM is made of another
//! account's own image or L3 network. Returns every violation found.

use std::collections::HashMap;

use oxstack_db::scans;

use crate::error::EngineResult;
use crate::ids::{HostId, L3NetworkId, PrimaryStorageId};
use crate::Engine;

impl Engine {
    /// Every invariant violation found (empty when all hold), of the database and of this
    /// node's caches against it.
    pub async fn invariant_violations(&self) -> EngineResult<Vec<String>> {
        self.violations(true).await
    }

    /// The violations of the database alone. With other management nodes live, this node's
    /// caches are hints that lag their writes (the database's conditional updates and unique
    /// constraints keep the figures exact), so only these must hold.
    pub async fn database_invariant_violations(&self) -> EngineResult<Vec<String>> {
        self.violations(false).await
    }

    async fn violations(&self, with_caches: bool) -> EngineResult<Vec<String>> {
        let mut out = Vec::new();
        let hosts = scans::reserved_by_host(&self.db).await?;
        let placed = scans::placed_by_host(&self.db).await?;
        let placed: HashMap<String, (i64, i64)> =
            placed.into_iter().map(|(h, c, m)| (h, (c, m))).collect();
        for (uuid, cpu, mem) in &hosts {
            let (want_cpu, want_mem) = placed.get(uuid).copied().unwrap_or((0, 0));
            if (*cpu, *mem) != (want_cpu, want_mem) {
                out.push(format!(
                    "host {uuid}: reserved {cpu} cpus / {mem} bytes but its VMs hold {want_cpu} cpus / {want_mem} bytes"
                ));
            }
            if let Some(id) = uuid.parse::<HostId>().ok().filter(|_| with_caches) {
                match self.caches.scheduler.index().get(id) {
                    Some(c) if (i64::from(c.cpu_used), c.memory_used as i64) == (*cpu, *mem) => {}
                    Some(c) => out.push(format!(
                        "host {uuid}: capacity index says {} cpus / {} bytes used, database {cpu} / {mem}",
                        c.cpu_used, c.memory_used
                    )),
                    None => out.push(format!("host {uuid} is missing from the capacity index")),
                }
            }
        }
        for h in placed.keys() {
            if !hosts.iter().any(|(u, _, _)| u == h) {
                out.push(format!("VMs are placed on host {h}, which does not exist"));
            }
        }

        let storages = scans::used_by_storage(&self.db).await?;
        let volume_sums = scans::volume_bytes_by_storage(&self.db).await?;
        let volume_sums: HashMap<String, i64> = volume_sums.into_iter().collect();
        for (uuid, used) in &storages {
            let want = volume_sums.get(uuid).copied().unwrap_or(0);
            if *used != want {
                out.push(format!(
                    "primary storage {uuid}: used {used} bytes but its volumes take {want}"
                ));
            }
            if let Some(id) = uuid.parse::<PrimaryStorageId>().ok().filter(|_| with_caches) {
                let cached =
                    self.caches.scheduler.topology().storages.get(&id).map(|s| s.used as i64);
                if cached != Some(*used) {
                    out.push(format!("primary storage {uuid}: topology cache says {cached:?} used, database {used}"));
                }
            }
        }

        let orphans = scans::orphans(&self.db).await?;
        for (kind, uuid) in orphans {
            out.push(format!("{kind} {uuid} belongs to no VM"));
        }
        for (what, vm) in scans::quota_mismatches(&self.db).await? {
            out.push(format!("vm {vm}: {what} quota charge"));
        }
        for (what, vm) in scans::foreign_private_uses(&self.db).await? {
            out.push(format!("vm {vm} of a tenant uses another account's own {what}"));
        }
        let rootless = scans::rootless_vms(&self.db).await?;
        for uuid in rootless {
            out.push(format!("vm {uuid} has no root volume"));
        }
        // At rest every workflow run has ended or been recovered (see cluster::recover).
        let runs = scans::workflow_runs(&self.db).await?;
        for (run, workflow, resource) in runs {
            out.push(format!("workflow run {run} ({workflow} of {resource}) never ended"));
        }

        let dup_ips = scans::duplicate_ips(&self.db).await?;
        for (l3, ip, n) in dup_ips {
            out.push(format!(
                "IP {} of L3 {l3} is given {n} times",
                std::net::Ipv4Addr::from(ip as u32)
            ));
        }
        let per_l3 = scans::nics_by_l3(&self.db).await?;
        for (l3, n) in per_l3 {
            if let Some(id) = l3.parse::<L3NetworkId>().ok().filter(|_| with_caches) {
                let (used, _) = self.caches.ipam.usage(id);
                if used != n as u64 {
                    out.push(format!("L3 {l3}: IPAM holds {used} addresses, NICs hold {n}"));
                }
            }
        }
        Ok(out)
    }
}
