//! The placement policy: which host (and which primary storage) a VM gets.
//!
//! [`HostRequest`] says what a placement needs; [`Scheduler::choose_host`] honours a designated
//! host (only that one will do) or a preferred one (tried first; both must pass the registered host
//! filters too), and otherwise runs the filters and the sorter ([`Scheduler::try_allocate_host`])
//! with the [`Strategy`] named by the global
//! config `scheduler.strategy` ([`Strategy::named`]). [`Scheduler::reserve_storage`] picks the
//! root volume's primary storage in the chosen cluster. Every choice is reserved in memory only;
//! the services confirm it with a conditional update in the database, which has the last word.

use oxstack_hypervisor::HostId;

use super::{ClusterFilter, NoHost, Scheduler, Strategy};
use crate::error::{EngineError, EngineResult};
use crate::ids::{ClusterId, L2NetworkId, PrimaryStorageId, ZoneId};

/// What a host placement needs.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct HostRequest {
    pub cpus: u32,
    pub memory: u64,
    pub zone: Option<ZoneId>,
    pub cluster: Option<ClusterId>,
    /// Only this host will do.
    pub designated_host: Option<HostId>,
    /// Try this host first, fall back to the scheduler.
    pub preferred_host: Option<HostId>,
    pub avoid: Vec<HostId>,
    pub l2_networks: Vec<L2NetworkId>,
    /// Root volume bytes the cluster's storage must still have (new VMs).
    pub storage_bytes: u64,
    /// The cluster must have this storage attached (existing root volume).
    pub required_storage: Option<PrimaryStorageId>,
}

impl HostRequest {
    /// The cluster-level filters of this request.
    pub(crate) fn cluster_filter(&self) -> ClusterFilter<'_> {
        ClusterFilter {
            zone: self.zone,
            cluster: self.cluster,
            hypervisor_type: None,
            l2_networks: &self.l2_networks,
            storage_bytes: self.storage_bytes,
            required_storage: self.required_storage,
        }
    }
}

impl Strategy {
    /// The strategy a value of the global config `scheduler.strategy` names: `Pack`, else
    /// Spread.
    pub fn named(value: &str) -> Self {
        if value == "Pack" {
            Strategy::Pack
        } else {
            Strategy::Spread
        }
    }
}

impl Scheduler {
    /// Chooses a host for `req`, not one of `avoid`, and reserves its capacity in memory.
    /// Does not touch the database.
    pub fn choose_host(
        &self,
        req: &HostRequest,
        avoid: &[HostId],
        strategy: Strategy,
    ) -> EngineResult<HostId> {
        let filter = req.cluster_filter();
        let host_cluster = |h: HostId| self.index().get(h).map(|c| c.cluster);
        let fits_cluster = |c: ClusterId| self.topology().cluster_passes(c, &filter);
        for wanted in [req.designated_host, req.preferred_host].into_iter().flatten() {
            let capacity = self.index().get(wanted).copied();
            let refused_by = capacity.and_then(|c| self.filters().refusing(req, wanted, &c));
            let ok = !avoid.contains(&wanted)
                && host_cluster(wanted).is_some_and(fits_cluster)
                && capacity.is_some_and(|c| c.schedulable)
                && refused_by.is_none()
                && self.index().try_reserve(wanted, req.cpus, req.memory);
            if ok {
                return Ok(wanted);
            }
            if let (Some(name), true) = (refused_by, req.designated_host == Some(wanted)) {
                return Err(EngineError::InsufficientCapacity(format!(
                    "designated host {wanted} is refused by the host filter {name}"
                )));
            }
            if req.designated_host == Some(wanted) {
                return Err(EngineError::InsufficientCapacity(format!(
                    "designated host {wanted} is not Enabled and Connected, is not in a cluster with the VM's networks and storage, \
                     or lacks {} cpus / {} bytes of memory",
                    req.cpus, req.memory
                )));
            }
        }
        self.try_allocate_host(req, avoid, strategy).map_err(|why| match why {
            NoHost::NoEligibleCluster => EngineError::InsufficientCapacity(
                "no enabled cluster has the VM's L2 networks attached and primary storage with room for its root volume".into(),
            ),
            NoHost::NoHostFits { eligible_clusters, refused_by } if refused_by.is_empty() => {
                EngineError::InsufficientCapacity(format!(
                    "no Enabled and Connected host in {eligible_clusters} candidate clusters has {} free cpus and {} bytes of free memory",
                    req.cpus, req.memory
                ))
            }
            NoHost::NoHostFits { eligible_clusters, refused_by } => EngineError::InsufficientCapacity(format!(
                "no Enabled and Connected host in {eligible_clusters} candidate clusters with {} free cpus and {} bytes of free memory \
                 is accepted by the host filters ({} refused)",
                req.cpus, req.memory, refused_by.join(", ")
            )),
        })
    }

    /// Chooses the primary storage of `cluster` for a root volume of `bytes` (the attached,
    /// enabled one with the most free space that fits) and reserves the bytes in memory.
    pub fn reserve_storage(&self, cluster: ClusterId, bytes: u64) -> Option<PrimaryStorageId> {
        let mut t = self.topology();
        let ps = t.storage_for(cluster, bytes)?;
        t.try_reserve_storage(ps, bytes);
        Some(ps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::{ClusterInfo, HostCapacity, StorageInfo};

    const GIB: u64 = 1 << 30;

    /// A scheduler with one enabled cluster on one storage of 100 GiB, and hosts of 4 cpus with
    /// the given GiB of memory.
    fn scheduler(hosts_gib: &[u64]) -> (Scheduler, ClusterId, PrimaryStorageId, Vec<HostId>) {
        let s = Scheduler::default();
        let (cluster, ps) = (ClusterId::new_random(), PrimaryStorageId::new_random());
        let info = ClusterInfo {
            hypervisor_type: "simulator".into(),
            enabled: true,
            primary_storages: vec![ps],
            ..Default::default()
        };
        s.topology().clusters.insert(cluster, info);
        let storage = StorageInfo { total: 100 * GIB, used: 0, enabled: true };
        s.topology().storages.insert(ps, storage);
        let hosts: Vec<HostId> = hosts_gib.iter().map(|_| HostId::new_random()).collect();
        for (h, gib) in hosts.iter().zip(hosts_gib) {
            let cap = HostCapacity {
                cluster,
                schedulable: true,
                cpu_total: 4,
                cpu_used: 0,
                memory_total: gib * GIB,
                memory_used: 0,
            };
            s.index().upsert(*h, cap);
        }
        (s, cluster, ps, hosts)
    }

    fn request(memory_gib: u64) -> HostRequest {
        HostRequest { cpus: 1, memory: memory_gib * GIB, ..Default::default() }
    }

    fn used(s: &Scheduler, h: HostId) -> (u32, u64) {
        let c = s.index().get(h).copied().expect("a known host");
        (c.cpu_used, c.memory_used)
    }

    #[test]
    fn the_strategy_is_named_by_the_config_value() {
        assert_eq!(Strategy::named("Pack"), Strategy::Pack);
        assert_eq!(Strategy::named("Spread"), Strategy::Spread);
        assert_eq!(Strategy::named(""), Strategy::Spread, "anything else spreads");
    }

    #[test]
    fn spread_and_pack_choose_and_reserve_in_memory() {
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let (small, big) = (hosts[0], hosts[1]);
        assert_eq!(s.choose_host(&request(2), &[], Strategy::Spread).ok(), Some(big));
        assert_eq!(used(&s, big), (1, 2 * GIB), "reserved in memory");
        assert_eq!(s.choose_host(&request(2), &[], Strategy::Pack).ok(), Some(small));
        assert_eq!(s.choose_host(&request(2), &[small], Strategy::Pack).ok(), Some(big));
    }

    #[test]
    fn a_designated_host_is_the_only_choice() {
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let (small, big) = (hosts[0], hosts[1]);
        let req = HostRequest { designated_host: Some(small), ..request(2) };
        assert_eq!(s.choose_host(&req, &[], Strategy::Spread).ok(), Some(small));
        let too_big = HostRequest { designated_host: Some(small), ..request(8) };
        let err = s.choose_host(&too_big, &[], Strategy::Spread).unwrap_err();
        assert_eq!(err.code(), "INSUFFICIENT_CAPACITY");
        assert_eq!(used(&s, big), (0, 0), "no fallback to another host");
        let avoided = s.choose_host(&req, &[small], Strategy::Spread).unwrap_err();
        assert_eq!(avoided.code(), "INSUFFICIENT_CAPACITY", "an avoided designated host");
        s.index().set_schedulable(small, false);
        assert!(s.choose_host(&req, &[], Strategy::Spread).is_err(), "not schedulable");
    }

    #[test]
    fn a_preferred_host_is_tried_first_then_the_scheduler_chooses() {
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let (small, big) = (hosts[0], hosts[1]);
        let req = HostRequest { preferred_host: Some(small), ..request(2) };
        assert_eq!(s.choose_host(&req, &[], Strategy::Spread).ok(), Some(small));
        let too_big = HostRequest { preferred_host: Some(small), ..request(8) };
        assert_eq!(s.choose_host(&too_big, &[], Strategy::Pack).ok(), Some(big), "fallback");
    }

    #[test]
    fn no_room_says_why() {
        let (s, cluster, _, _) = scheduler(&[4]);
        let err = s.choose_host(&request(8), &[], Strategy::Spread).unwrap_err();
        assert!(err.to_string().contains("1 candidate clusters"), "{err}");
        s.topology().clusters.get_mut(&cluster).expect("the cluster").enabled = false;
        let err = s.choose_host(&request(1), &[], Strategy::Spread).unwrap_err();
        assert!(err.to_string().contains("no enabled cluster"), "{err}");
    }

    /// A registered filter that refuses the hosts it holds.
    struct Refuse(Vec<HostId>);

    impl crate::scheduler::HostFilter for Refuse {
        fn name(&self) -> &'static str {
            "refuse-listed"
        }
        fn accepts(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> bool {
            !self.0.contains(&host)
        }
    }

    fn with_filter(s: Scheduler, refused: Vec<HostId>) -> Scheduler {
        let filter: std::sync::Arc<dyn crate::scheduler::HostFilter> =
            std::sync::Arc::new(Refuse(refused));
        s.with_filters(crate::scheduler::HostFilters::new(vec![filter]))
    }

    #[test]
    fn a_registered_host_filter_passes_over_the_hosts_it_refuses() {
        let (s, cluster, _, hosts) = scheduler(&[4, 8, 16]);
        let s = with_filter(s, vec![hosts[2], hosts[0]]);
        for strategy in [Strategy::Spread, Strategy::Pack] {
            assert_eq!(s.choose_host(&request(1), &[], strategy).ok(), Some(hosts[1]));
            let in_cluster = HostRequest { cluster: Some(cluster), ..request(1) };
            assert_eq!(
                s.choose_host(&in_cluster, &[], strategy).ok(),
                Some(hosts[1]),
                "per cluster"
            );
        }
        assert_eq!(used(&s, hosts[2]), (0, 0), "nothing reserved on a refused host");
        let err = s.choose_host(&request(5), &[], Strategy::Spread).unwrap_err();
        assert_eq!(err.code(), "INSUFFICIENT_CAPACITY");
        assert!(err.to_string().contains("(refuse-listed refused)"), "{err}");
        let too_big = s.choose_host(&request(20), &[], Strategy::Spread).unwrap_err();
        assert!(!too_big.to_string().contains("refused"), "no host fit to be refused: {too_big}");
    }

    #[test]
    fn a_designated_or_preferred_host_must_pass_the_registered_filters() {
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let (small, big) = (hosts[0], hosts[1]);
        let s = with_filter(s, vec![small]);
        let designated = HostRequest { designated_host: Some(small), ..request(1) };
        let err = s.choose_host(&designated, &[], Strategy::Spread).unwrap_err();
        assert_eq!(err.code(), "INSUFFICIENT_CAPACITY");
        assert!(err.to_string().contains("host filter refuse-listed"), "{err}");
        assert_eq!(used(&s, big), (0, 0), "no fallback from a designated host");
        let preferred = HostRequest { preferred_host: Some(small), ..request(1) };
        assert_eq!(s.choose_host(&preferred, &[], Strategy::Pack).ok(), Some(big), "fallback");
    }

    /// A registered sorter that likes the hosts it holds, in that order.
    struct Likes(Vec<HostId>);

    impl crate::scheduler::HostSorter for Likes {
        fn name(&self) -> &'static str {
            "likes-listed"
        }
        fn score(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> i64 {
            let rank = self.0.iter().position(|h| *h == host);
            rank.map_or(0, |r| 100 - r as i64)
        }
    }

    fn with_sorter(s: Scheduler, liked: Vec<HostId>) -> Scheduler {
        let sorter: std::sync::Arc<dyn crate::scheduler::HostSorter> =
            std::sync::Arc::new(Likes(liked));
        s.with_sorters(crate::scheduler::HostSorters::new(vec![sorter]))
    }

    #[test]
    fn a_registered_sorter_chooses_among_the_best_candidates_but_never_past_a_filter() {
        let (s, cluster, _, hosts) = scheduler(&[4, 8, 16]);
        let s = with_sorter(s, vec![hosts[1]]);
        for strategy in [Strategy::Spread, Strategy::Pack] {
            assert_eq!(s.choose_host(&request(1), &[], strategy).ok(), Some(hosts[1]), "global");
            let in_cluster = HostRequest { cluster: Some(cluster), ..request(1) };
            let chosen = s.choose_host(&in_cluster, &[], strategy).ok();
            assert_eq!(chosen, Some(hosts[1]), "per cluster: {strategy:?}");
        }
        assert_eq!(used(&s, hosts[1]), (4, 4 * GIB), "reserved where the sorter chose");
        // Full now: the strategy's order decides among the hosts the sorter does not score.
        assert_eq!(s.choose_host(&request(1), &[], Strategy::Spread).ok(), Some(hosts[2]));
        // A host a filter refuses or the VM does not fit is no candidate, however liked.
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let s = with_sorter(with_filter(s, vec![hosts[0]]), vec![hosts[0]]);
        assert_eq!(s.choose_host(&request(1), &[], Strategy::Pack).ok(), Some(hosts[1]));
        let (s, _, _, hosts) = scheduler(&[4, 16]);
        let s = with_sorter(s, vec![hosts[0]]);
        assert_eq!(s.choose_host(&request(8), &[], Strategy::Spread).ok(), Some(hosts[1]), "fit");
    }

    #[test]
    fn a_sorter_sees_only_the_window_of_best_candidates() {
        let gib: Vec<u64> = (1..=crate::scheduler::SORTER_WINDOW as u64 + 1).collect();
        let (s, _, _, hosts) = scheduler(&gib);
        let worst_for_spread = hosts[0];
        let s = with_sorter(s, vec![worst_for_spread]);
        // Spread ranks the 1 GiB host last, past the window: the sorter never sees it.
        let chosen = s.choose_host(&request(1), &[], Strategy::Spread).ok();
        assert_eq!(chosen, Some(*hosts.last().unwrap()), "the strategy's first");
        // Pack ranks it first: liked and in the window.
        assert_eq!(s.choose_host(&request(1), &[], Strategy::Pack).ok(), Some(worst_for_spread));
    }

    #[test]
    fn the_root_volume_goes_to_the_storage_with_the_most_room() {
        let (s, cluster, ps, _) = scheduler(&[4]);
        let roomier = PrimaryStorageId::new_random();
        let storage = StorageInfo { total: 200 * GIB, used: 0, enabled: true };
        s.topology().storages.insert(roomier, storage);
        s.topology()
            .clusters
            .get_mut(&cluster)
            .expect("the cluster")
            .primary_storages
            .push(roomier);
        assert_eq!(s.reserve_storage(cluster, 150 * GIB), Some(roomier));
        assert_eq!(s.reserve_storage(cluster, 60 * GIB), Some(ps), "roomier has 50 GiB left");
        assert_eq!(s.reserve_storage(cluster, 60 * GIB), None, "nothing has 60 GiB left");
        assert_eq!(s.topology().storages[&ps].used, 60 * GIB, "reserved in memory");
        assert_eq!(s.reserve_storage(ClusterId::new_random(), 1), None, "unknown cluster");
    }
}
