//! Per-operation call counters, updated without taking the tables lock.

use std::sync::atomic::{AtomicU64, Ordering};

use oxstack_hypervisor::OpKind;

const KINDS: usize = OpKind::ALL.len();

/// How often one kind of call was made and how it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Calls started.
    pub calls: u64,
    /// Calls that returned an error (of any kind, injected or not).
    pub failures: u64,
    /// Calls a fault rule fired on (a subset of `failures`).
    pub injected: u64,
}

/// Counters for every operation kind.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    calls: [AtomicU64; KINDS],
    failures: [AtomicU64; KINDS],
    injected: [AtomicU64; KINDS],
}

/// The slot of `op` in the counter arrays.
fn slot(op: OpKind) -> usize {
    OpKind::ALL.iter().position(|kind| *kind == op).unwrap_or(0)
}

impl OpCounters {
    pub fn called(&self, op: OpKind) {
        self.calls[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn failed(&self, op: OpKind) {
        self.failures[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn injected(&self, op: OpKind) {
        self.injected[slot(op)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, op: OpKind) -> OpStats {
        let i = slot(op);
        OpStats {
            calls: self.calls[i].load(Ordering::Relaxed),
            failures: self.failures[i].load(Ordering::Relaxed),
            injected: self.injected[i].load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_kind() {
        let counters = OpCounters::default();
        counters.called(OpKind::Create);
        counters.called(OpKind::Create);
        counters.failed(OpKind::Create);
        counters.injected(OpKind::Create);
        counters.called(OpKind::DetachVolume);
        assert_eq!(counters.get(OpKind::Create), OpStats { calls: 2, failures: 1, injected: 1 });
        assert_eq!(counters.get(OpKind::DetachVolume).calls, 1);
        assert_eq!(counters.get(OpKind::Connect), OpStats::default());
    }
}
