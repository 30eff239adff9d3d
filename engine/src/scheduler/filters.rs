//! Host filters registered when the engine is composed (ZStack's host allocator filter extension
//! point): the way a feature refuses hosts for a placement without touching the scheduler.
//!
//! The built-in filters are the caches' structure and run first: the cluster filters of
//! [`super::topology`] (enabled, zone, designated cluster, L2 networks, storage with room) and the
//! capacity index's (schedulable, free cpus and memory, avoided hosts). A registered
//! [`HostFilter`] is then asked about each host that passed them, in the order the sorter
//! offers hosts (best first), until one is accepted; so a filter sees only hosts that could take
//! the VM, and never more of them than the walk visits. A designated or preferred host is asked
//! too. A placement that every candidate's filter refused fails with INSUFFICIENT_CAPACITY
//! naming the filters that refused.

use std::sync::Arc;

use super::{HostCapacity, HostRequest};
use crate::ids::HostId;

/// A host filter: whether a host that passed the built-in filters may take a placement.
///
/// Called with the scheduler's locks held, once per candidate: it must answer from what it
/// holds in memory, without blocking, and the same way for the same arguments within a
/// placement.
pub trait HostFilter: Send + Sync {
    /// Names the filter in the error of a placement it refused.
    fn name(&self) -> &'static str;
    /// Whether `host`, whose capacity is `capacity` (the VM fits), may take `req`.
    fn accepts(&self, req: &HostRequest, host: HostId, capacity: &HostCapacity) -> bool;
}

/// The registered filters, asked in registration order.
#[derive(Clone, Default)]
pub struct HostFilters {
    chain: Vec<Arc<dyn HostFilter>>,
}

impl HostFilters {
    /// The chain `filters`, asked in this order.
    pub fn new(filters: Vec<Arc<dyn HostFilter>>) -> Self {
        Self { chain: filters }
    }

    /// The first filter that refuses `host` for `req`, or `None` when all accept it.
    pub fn refusing(
        &self,
        req: &HostRequest,
        host: HostId,
        capacity: &HostCapacity,
    ) -> Option<&'static str> {
        self.chain.iter().find(|f| !f.accepts(req, host, capacity)).map(|f| f.name())
    }

    /// The filters' names, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.chain.iter().map(|f| f.name()).collect()
    }
}

impl std::fmt::Debug for HostFilters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

/// The names of the filters that refused candidates during one placement, each once.
#[derive(Debug, Default)]
pub(crate) struct Refusals(std::cell::RefCell<Vec<&'static str>>);

impl Refusals {
    /// Asks `filters` about `host`, noting the name of one that refuses.
    pub(crate) fn ask(
        &self,
        filters: &HostFilters,
        req: &HostRequest,
        host: HostId,
        capacity: &HostCapacity,
    ) -> bool {
        let Some(name) = filters.refusing(req, host, capacity) else { return true };
        let mut names = self.0.borrow_mut();
        if !names.contains(&name) {
            names.push(name);
        }
        false
    }

    /// The names noted, in the order they first refused.
    pub(crate) fn into_names(self) -> Vec<&'static str> {
        self.0.into_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClusterId;

    /// Refuses the hosts it was given.
    struct Refuse(&'static str, Vec<HostId>);

    impl HostFilter for Refuse {
        fn name(&self) -> &'static str {
            self.0
        }
        fn accepts(&self, _: &HostRequest, host: HostId, _: &HostCapacity) -> bool {
            !self.1.contains(&host)
        }
    }

    fn capacity() -> HostCapacity {
        HostCapacity {
            cluster: ClusterId::new_random(),
            schedulable: true,
            cpu_total: 4,
            cpu_used: 0,
            memory_total: 1 << 30,
            memory_used: 0,
        }
    }

    #[test]
    fn the_first_refusing_filter_is_named_and_each_name_is_noted_once() {
        let (a, b, c) = (HostId::new_random(), HostId::new_random(), HostId::new_random());
        let filters = HostFilters::new(vec![
            Arc::new(Refuse("first", vec![a])),
            Arc::new(Refuse("second", vec![a, b])),
        ]);
        let req = HostRequest::default();
        assert_eq!(filters.refusing(&req, a, &capacity()), Some("first"), "asked in order");
        assert_eq!(filters.refusing(&req, b, &capacity()), Some("second"));
        assert_eq!(filters.refusing(&req, c, &capacity()), None);
        let refusals = Refusals::default();
        for host in [a, b, a, c] {
            refusals.ask(&filters, &req, host, &capacity());
        }
        assert_eq!(refusals.into_names(), vec!["first", "second"]);
        assert_eq!(HostFilters::default().refusing(&req, a, &capacity()), None, "none registered");
    }
}
