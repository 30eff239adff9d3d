//! The host roster: every host's id and whether it is Connected, in registration order, kept in
//! memory so that a ping sweep over 30,000 hosts reads nothing from the database.
//!
//! It is written wherever this node writes a host's status (`add_host` once the host is
//! Connected, `set_host_status`, `delete_host`) and filled from the database on first use. It is
//! only trusted while this node is alone on the ring of management nodes: another live node adds
//! hosts and changes the status of the hosts it owns without this node seeing it, so with more than
//! one node the sweep reads the database as before and the roster is marked stale, to be refilled
//! when the node is alone again. A refill that raced with a write is thrown away (the generation
//! check in [`HostRoster::refill`]) so a stale read never overwrites a newer status.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

use crate::ids::HostId;

/// Every host known to this node and whether it is Connected. See the module doc.
#[derive(Debug, Default)]
pub struct HostRoster {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Hosts by registration sequence, so sweeps visit them in a stable order.
    by_seq: BTreeMap<u64, (HostId, bool)>,
    seq_of: HashMap<HostId, u64>,
    next_seq: u64,
    /// Whether `by_seq` holds every host (false until the first refill, and after `mark_stale`).
    complete: bool,
    /// Rows of the last refill whose uuid did not parse (each sweep counts them as failed).
    unparsed: u64,
    /// Bumped by every write; a refill read before a write must not replace it.
    generation: u64,
}

impl HostRoster {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a host's status, adding it at the end when it is new.
    pub fn set(&self, host: HostId, connected: bool) {
        let mut inner = self.lock();
        inner.generation += 1;
        match inner.seq_of.get(&host).copied() {
            Some(seq) => {
                inner.by_seq.insert(seq, (host, connected));
            }
            None => {
                let seq = inner.next_seq;
                inner.next_seq += 1;
                inner.by_seq.insert(seq, (host, connected));
                inner.seq_of.insert(host, seq);
            }
        }
    }

    /// Forgets a deleted host.
    pub fn remove(&self, host: HostId) {
        let mut inner = self.lock();
        inner.generation += 1;
        if let Some(seq) = inner.seq_of.remove(&host) {
            inner.by_seq.remove(&seq);
        }
    }

    /// Every host and whether it is Connected, in registration order, and how many rows of the
    /// last refill had a uuid that does not parse; `None` when the roster is not complete and
    /// the caller must read the database.
    pub fn snapshot(&self) -> Option<(Vec<(HostId, bool)>, u64)> {
        let inner = self.lock();
        inner.complete.then(|| (inner.by_seq.values().copied().collect(), inner.unparsed))
    }

    /// The write generation, to pass to [`HostRoster::refill`] with what was read after it.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    /// Replaces the roster with `hosts` (every host, in registration order) read from the
    /// database after [`HostRoster::generation`] returned `read_at`, with the number of rows
    /// whose uuid did not parse. Returns whether it did: when a write came in between, the read
    /// may be older than that write and is discarded.
    pub fn refill(&self, read_at: u64, hosts: &[(HostId, bool)], unparsed: u64) -> bool {
        let mut inner = self.lock();
        if inner.generation != read_at {
            return false;
        }
        inner.by_seq.clear();
        inner.seq_of.clear();
        for (seq, &(host, connected)) in (0u64..).zip(hosts) {
            inner.by_seq.insert(seq, (host, connected));
            inner.seq_of.insert(host, seq);
        }
        inner.next_seq = hosts.len() as u64;
        inner.unparsed = unparsed;
        inner.complete = true;
        true
    }

    /// Marks the roster as missing writes made elsewhere (another management node is live).
    pub fn mark_stale(&self) {
        self.lock().complete = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(n: u128) -> HostId {
        HostId(uuid::Uuid::from_u128(n))
    }

    #[test]
    fn incomplete_until_refilled_then_follows_writes_in_order() {
        let roster = HostRoster::default();
        roster.set(host(1), true);
        assert_eq!(
            roster.snapshot(),
            None,
            "a roster never filled from the database is not trusted"
        );
        let at = roster.generation();
        assert!(roster.refill(at, &[(host(1), true), (host(2), false)], 0));
        roster.set(host(3), true);
        roster.set(host(2), true);
        roster.set(host(1), false);
        assert_eq!(
            roster.snapshot(),
            Some((vec![(host(1), false), (host(2), true), (host(3), true)], 0))
        );
        roster.remove(host(2));
        roster.set(host(4), false);
        assert_eq!(
            roster.snapshot(),
            Some((vec![(host(1), false), (host(3), true), (host(4), false)], 0))
        );
    }

    #[test]
    fn a_refill_read_before_a_write_is_discarded() {
        let roster = HostRoster::default();
        let at = roster.generation();
        roster.set(host(1), false);
        assert!(!roster.refill(at, &[(host(1), true)], 0), "the read predates the write");
        assert_eq!(roster.snapshot(), None);
        let at = roster.generation();
        assert!(roster.refill(at, &[(host(1), false)], 2));
        assert_eq!(roster.snapshot(), Some((vec![(host(1), false)], 2)));
    }

    #[test]
    fn stale_roster_is_not_trusted_until_refilled() {
        let roster = HostRoster::default();
        assert!(roster.refill(roster.generation(), &[(host(1), true)], 0));
        roster.mark_stale();
        assert_eq!(roster.snapshot(), None);
        assert!(roster.refill(roster.generation(), &[(host(1), false)], 0));
        assert_eq!(roster.snapshot(), Some((vec![(host(1), false)], 0)));
    }
}
