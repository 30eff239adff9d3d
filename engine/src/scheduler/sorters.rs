//! Host sorters registered when the engine is composed (ZStack's host sorter extension point):
//! the way a feature says which of the hosts that could take a VM it would rather have, without
//! touching the scheduler.
//!
//! The built-in sorter is the capacity index's order, set by `scheduler.strategy` (Spread: most
//! free memory first; Pack: tightest fit first); it is what keeps a placement from scanning
//! every host. A registered [`HostSorter`] re-ranks the best candidates that order offers: the
//! walk collects up to [`SORTER_WINDOW`] hosts that pass every filter (built-in and registered),
//! best first, and the placement takes the one whose scores, summed over the sorters, are
//! highest; a tie goes to the host the strategy ranks first. So a sorter never sees more than
//! [`SORTER_WINDOW`] hosts per placement and never overrides a filter, and with no sorter
//! registered the walk stops at the first acceptable host, as it always did. A designated or
//! preferred host is not sorted: it is the only candidate.

use std::sync::Arc;

use super::{CapacityIndex, HostCapacity, HostRequest};
use crate::ids::HostId;

/// How many acceptable hosts, best first by the strategy, the registered sorters choose among.
pub const SORTER_WINDOW: usize = 16;

/// A host sorter: how much it would like `host` to take a placement, among candidates that all
/// could.
///
/// Called with the scheduler's locks held, once per candidate: it must answer from what it
/// holds in memory, without blocking.
pub trait HostSorter: Send + Sync {
    /// Names the sorter (in logs and `Debug`).
    fn name(&self) -> &'static str;
    /// Higher is better; the scores of all sorters are added.
    fn score(&self, req: &HostRequest, host: HostId, capacity: &HostCapacity) -> i64;
}

/// The registered sorters.
#[derive(Clone, Default)]
pub struct HostSorters {
    chain: Vec<Arc<dyn HostSorter>>,
}

impl HostSorters {
    /// The sorters `sorters`, whose scores are added.
    pub fn new(sorters: Vec<Arc<dyn HostSorter>>) -> Self {
        Self { chain: sorters }
    }

    /// How many acceptable hosts a placement should collect for them: one when there is no
    /// sorter (the strategy's first is the answer), [`SORTER_WINDOW`] otherwise.
    pub fn window(&self) -> usize {
        if self.chain.is_empty() {
            1
        } else {
            SORTER_WINDOW
        }
    }

    /// Of `candidates` (best first by the strategy), the one with the highest summed score; the
    /// earliest among equals. `None` when there are no candidates.
    pub fn pick(
        &self,
        req: &HostRequest,
        candidates: &[HostId],
        index: &CapacityIndex,
    ) -> Option<HostId> {
        let score = |h: HostId| -> i64 {
            let Some(c) = index.get(h) else { return i64::MIN };
            self.chain.iter().map(|s| s.score(req, h, c)).fold(0i64, i64::saturating_add)
        };
        let mut best: Option<(i64, HostId)> = None;
        for &h in candidates {
            let s = score(h);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, h));
            }
        }
        best.map(|(_, h)| h)
    }

    /// The sorters' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.chain.iter().map(|s| s.name()).collect()
    }
}

impl std::fmt::Debug for HostSorters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClusterId;

    /// Scores the hosts it was given.
    struct Likes(&'static str, Vec<(HostId, i64)>);

    impl HostSorter for Likes {
        fn name(&self) -> &'static str {
            self.0
        }
        fn score(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> i64 {
            self.1.iter().find(|(h, _)| *h == host).map_or(0, |(_, s)| *s)
        }
    }

    fn index(hosts: &[HostId]) -> CapacityIndex {
        let mut idx = CapacityIndex::default();
        for h in hosts {
            let cap = HostCapacity {
                cluster: ClusterId::new_random(),
                schedulable: true,
                cpu_total: 4,
                cpu_used: 0,
                memory_total: 1 << 30,
                memory_used: 0,
            };
            idx.upsert(*h, cap);
        }
        idx
    }

    #[test]
    fn the_highest_summed_score_wins_and_a_tie_goes_to_the_strategys_first() {
        let hosts: Vec<HostId> = (0..3).map(|_| HostId::new_random()).collect();
        let idx = index(&hosts);
        let req = HostRequest::default();
        let none = HostSorters::default();
        assert_eq!(none.window(), 1, "no sorter: the first acceptable host is the answer");
        assert_eq!(none.pick(&req, &hosts, &idx), Some(hosts[0]));
        let sorters = HostSorters::new(vec![
            Arc::new(Likes("a", vec![(hosts[1], 5), (hosts[2], 3)])),
            Arc::new(Likes("b", vec![(hosts[2], 3)])),
        ]);
        assert_eq!(sorters.window(), SORTER_WINDOW);
        assert_eq!(sorters.pick(&req, &hosts, &idx), Some(hosts[2]), "3 + 3 beats 5");
        let tied = HostSorters::new(vec![Arc::new(Likes("t", vec![(hosts[1], 1), (hosts[2], 1)]))]);
        assert_eq!(tied.pick(&req, &hosts, &idx), Some(hosts[1]), "a tie: the earlier host");
        assert_eq!(sorters.pick(&req, &[], &idx), None);
    }
}
