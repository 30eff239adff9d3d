//! IPAM: which IPv4 addresses of each L3 network are free.
//!
//! An in-memory cache rebuilt from the database at start-up (ranges from `ip_ranges`, used
//! addresses from `vm_nics`). The database's UNIQUE (l3, ip) constraint on NICs is what makes
//! double allocation impossible; this cache only makes finding a free address cheap: a next-fit
//! cursor over the ranges, so an allocation does not scan the used set from the start.

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use crate::ids::{IpRangeId, L3NetworkId};

/// A range of an L3 network, as IPAM needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeInfo {
    pub id: IpRangeId,
    pub start: u32,
    pub end: u32,
    pub netmask: Ipv4Addr,
    pub gateway: Ipv4Addr,
}

impl RangeInfo {
    fn contains(&self, ip: u32) -> bool {
        (self.start..=self.end).contains(&ip)
    }
}

/// An allocated address and the range it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    pub range: RangeInfo,
}

#[derive(Debug, Default)]
struct L3Pool {
    ranges: Vec<RangeInfo>,
    used: HashSet<u32>,
    /// Index into `ranges` and next address to try.
    cursor: (usize, u32),
}

impl L3Pool {
    fn capacity(&self) -> u64 {
        self.ranges.iter().map(|r| u64::from(r.end - r.start) + 1).sum()
    }

    fn allocate(&mut self) -> Option<Allocation> {
        let total = self.capacity();
        if self.ranges.is_empty() || self.used.len() as u64 >= total {
            return None;
        }
        let (mut ri, mut ip) = self.cursor;
        for _ in 0..=total {
            if ri >= self.ranges.len() {
                ri = 0;
                ip = self.ranges[0].start;
            }
            let r = self.ranges[ri];
            if !r.contains(ip) {
                ip = r.start;
            }
            let candidate = ip;
            let (next_ri, next_ip) = if ip >= r.end { (ri + 1, 0) } else { (ri, ip + 1) };
            ri = next_ri;
            ip = next_ip;
            if candidate != u32::from(r.gateway) && self.used.insert(candidate) {
                self.cursor = (ri, ip);
                return Some(Allocation { ip: Ipv4Addr::from(candidate), range: r });
            }
        }
        None
    }
}

/// Free-address cache for every L3 network.
#[derive(Debug, Default)]
pub struct Ipam {
    pools: Mutex<HashMap<L3NetworkId, L3Pool>>,
}

impl Ipam {
    /// Adds a range to an L3 network's pool.
    pub fn add_range(&self, l3: L3NetworkId, range: RangeInfo) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let pool = pools.entry(l3).or_default();
        pool.ranges.push(range);
        pool.ranges.sort_by_key(|r| r.start);
    }

    /// Removes a range (it must have no used addresses) from an L3 network's pool.
    pub fn remove_range(&self, l3: L3NetworkId, range: IpRangeId) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pool) = pools.get_mut(&l3) {
            pool.ranges.retain(|r| r.id != range);
            pool.cursor = (0, 0);
        }
    }

    /// Takes a free address of `l3`, or `None` when the network is full.
    pub fn allocate(&self, l3: L3NetworkId) -> Option<Allocation> {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&l3)?.allocate()
    }

    /// Moves `l3`'s next-fit cursor to the address at position `seed` modulo the network's
    /// size. Nodes allocating from one network at once each start from their own point this way,
    /// instead of all walking the same addresses in the same order and colliding on each.
    pub fn scatter_cursor(&self, l3: L3NetworkId, seed: u64) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let Some(pool) = pools.get_mut(&l3) else { return };
        let total = pool.capacity();
        if total == 0 {
            return;
        }
        let mut offset = seed % total;
        for (i, r) in pool.ranges.iter().enumerate() {
            let size = u64::from(r.end - r.start) + 1;
            if offset < size {
                pool.cursor = (i, r.start + offset as u32);
                return;
            }
            offset -= size;
        }
    }

    /// Marks an address used (loading from the database, or after another node took it).
    pub fn mark_used(&self, l3: L3NetworkId, ip: Ipv4Addr) {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.entry(l3).or_default().used.insert(u32::from(ip));
    }

    /// Returns an address to the pool.
    pub fn release(&self, l3: L3NetworkId, ip: Ipv4Addr) {
        if let Some(pool) = self.pools.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&l3) {
            pool.used.remove(&u32::from(ip));
        }
    }

    /// The range an address of `l3` belongs to.
    pub fn range_of(&self, l3: L3NetworkId, ip: Ipv4Addr) -> Option<RangeInfo> {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.get(&l3)?.ranges.iter().copied().find(|r| r.contains(u32::from(ip)))
    }

    /// (used, total) addresses of `l3`.
    pub fn usage(&self, l3: L3NetworkId) -> (u64, u64) {
        let pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.get(&l3).map(|p| (p.used.len() as u64, p.capacity())).unwrap_or((0, 0))
    }

    /// Replaces what is known of `l3` with its ranges and used addresses as read from the
    /// database (to see other management nodes' allocations and frees).
    pub fn replace_l3(&self, l3: L3NetworkId, mut ranges: Vec<RangeInfo>, used: HashSet<u32>) {
        ranges.sort_by_key(|r| r.start);
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        let cursor = pools.get(&l3).map(|p| p.cursor).unwrap_or_default();
        pools.insert(l3, L3Pool { ranges, used, cursor });
    }

    /// Forgets an L3 network.
    pub fn remove_l3(&self, l3: L3NetworkId) {
        self.pools.lock().unwrap_or_else(|e| e.into_inner()).remove(&l3);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: [u8; 4], end: [u8; 4], gw: [u8; 4]) -> RangeInfo {
        RangeInfo {
            id: IpRangeId::new_random(),
            start: u32::from(Ipv4Addr::from(start)),
            end: u32::from(Ipv4Addr::from(end)),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            gateway: Ipv4Addr::from(gw),
        }
    }

    #[test]
    fn never_gives_an_address_twice_and_skips_the_gateway() {
        let ipam = Ipam::default();
        let l3 = L3NetworkId::new_random();
        ipam.add_range(l3, range([10, 0, 0, 1], [10, 0, 0, 10], [10, 0, 0, 1]));
        let mut seen = HashSet::new();
        while let Some(a) = ipam.allocate(l3) {
            assert_ne!(a.ip, Ipv4Addr::new(10, 0, 0, 1), "gateway handed out");
            assert!(seen.insert(a.ip), "{} given twice", a.ip);
        }
        assert_eq!(seen.len(), 9);
        ipam.release(l3, Ipv4Addr::new(10, 0, 0, 5));
        assert_eq!(
            ipam.allocate(l3).unwrap().ip,
            Ipv4Addr::new(10, 0, 0, 5),
            "freed address reused"
        );
        assert!(ipam.allocate(l3).is_none());
    }

    #[test]
    fn a_scattered_cursor_starts_at_its_position_and_still_finds_every_address() {
        let ipam = Ipam::default();
        let l3 = L3NetworkId::new_random();
        ipam.add_range(l3, range([10, 0, 1, 1], [10, 0, 1, 4], [10, 0, 1, 254]));
        ipam.add_range(l3, range([10, 0, 0, 1], [10, 0, 0, 4], [10, 0, 0, 254]));
        ipam.scatter_cursor(l3, 8 + 5); // position 5 of 8: the second range's second address
        assert_eq!(ipam.allocate(l3).unwrap().ip, Ipv4Addr::new(10, 0, 1, 2));
        let mut rest: Vec<Ipv4Addr> =
            std::iter::from_fn(|| ipam.allocate(l3).map(|a| a.ip)).collect();
        rest.sort();
        assert_eq!(rest.len(), 7, "wraps around to every other address: {rest:?}");
        ipam.scatter_cursor(L3NetworkId::new_random(), 3); // unknown network: nothing happens
    }

    #[test]
    fn walks_several_ranges_and_respects_marked_addresses() {
        let ipam = Ipam::default();
        let l3 = L3NetworkId::new_random();
        ipam.add_range(l3, range([10, 0, 1, 1], [10, 0, 1, 2], [10, 0, 1, 254]));
        ipam.add_range(l3, range([10, 0, 0, 1], [10, 0, 0, 2], [10, 0, 0, 254]));
        ipam.mark_used(l3, Ipv4Addr::new(10, 0, 0, 2));
        let got: Vec<Ipv4Addr> = std::iter::from_fn(|| ipam.allocate(l3).map(|a| a.ip)).collect();
        assert_eq!(
            got,
            vec![
                Ipv4Addr::new(10, 0, 0, 1),
                Ipv4Addr::new(10, 0, 1, 1),
                Ipv4Addr::new(10, 0, 1, 2)
            ]
        );
        assert_eq!(ipam.usage(l3), (4, 4));
        assert!(
            ipam.allocate(L3NetworkId::new_random()).is_none(),
            "unknown network has no addresses"
        );
    }
}
