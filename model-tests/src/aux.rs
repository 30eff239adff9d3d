//! The "aux" resources: zones, clusters, L2 and L3 networks, IP ranges, backup storages and
//! images beyond the main ones the cloud is built with, created and deleted by the test so that
//! concurrent groups (see `group`) can race a parent's delete against the creates of its
//! children, overlapping IP ranges against each other, and an image's delete against the VMs
//! created from it.
//!
//! The parent relations are the engine's: zone <- clusters, L2 networks, backup storages;
//! cluster <- hosts; L2 <- L3 networks; L3 <- IP ranges (deleted with it); backup storage <-
//! images; image <- VMs (every VM row, destroyed ones included). A parent is the main one
//! ([`Parent::Main`], never deleted) or an aux one. Aux clusters get no primary storage and no
//! L2 network, so no VM is ever placed on their hosts (hosts in aux clusters live in
//! `RefState::hosts` with their cluster). Aux L3 networks only ever hold IP ranges: no VM has a
//! NIC on them. VMs may be created from aux images (which have the main image's size).
//!
//! Every operation here is total: it has an answer in every state (docs/USING.md's error codes: 400
//! INVALID_ARGUMENT for a range invalid on its own, 404 NOT_FOUND for a parent or target that
//! does not exist, 409 CONFLICT for a parent that still has children or a range that clashes
//! with another of the same L2 network), because in a group
//! another operation may have deleted what this one names.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::engine_model::{CONFLICT, INVALID_ARGUMENT, NOT_FOUND};
use crate::reference::{Expected, RefState};

/// An aux resource, numbered when its create is generated (one sequence for every kind).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AuxNo(pub u32);

impl fmt::Debug for AuxNo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a{}", self.0)
    }
}

/// The parent of an aux resource: the main zone (or backup storage), or an aux one.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Parent {
    Main,
    Aux(AuxNo),
}

impl fmt::Debug for Parent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Parent::Main => f.write_str("main"),
            Parent::Aux(n) => n.fmt(f),
        }
    }
}

/// The IP ranges an aux L3 network may get: (first, last) host part of 192.168.50.0/24, each
/// with the gateway [`gateway`] gives. The first seven are valid with gateway 192.168.50.1
/// (never inside a range) and partly overlap: 0-1, 1-2, 3-4, and 6 with all but 5, so an L2
/// network has room for a few before every one conflicts. The rest are there to be refused or
/// to clash by gateway: 7 holds the network address, 8 the broadcast address, 9 its own gateway
/// (each refused with INVALID_ARGUMENT whatever exists), and 10's gateway (.15) is inside 0, 1
/// and 6, so 10 clashes with each of them either way round (CONFLICT).
pub const RANGES: [(u8, u8); 11] = [
    (10, 19),
    (15, 24),
    (20, 29),
    (40, 49),
    (45, 54),
    (70, 73),
    (10, 54),
    (0, 5),
    (250, 255),
    (60, 65),
    (80, 89),
];
/// The subnet of every aux range.
pub const RANGE_NET: [u8; 3] = [192, 168, 50];

/// The host part of candidate range `r`'s gateway in [`RANGE_NET`].
pub fn gateway(r: usize) -> u8 {
    match r {
        7 => 254,
        9 => 62,
        10 => 15,
        _ => 1,
    }
}

/// Whether candidate range `r` passes the engine's checks of a range on its own (neither the
/// network nor the broadcast address of its /24, not its own gateway).
pub fn valid(r: usize) -> bool {
    let (first, last) = RANGES[r];
    first != 0 && last != 255 && !(first..=last).contains(&gateway(r))
}

/// How many of each aux kind may exist at once.
pub const MAX_EACH: usize = 3;

/// Whether candidate ranges `a` and `b` clash on one L2 network: they share an address, or
/// one holds the other's gateway.
pub fn clash(a: usize, b: usize) -> bool {
    let ((s1, e1), (s2, e2)) = (RANGES[a], RANGES[b]);
    (s1 <= e2 && s2 <= e1) || (s1..=e1).contains(&gateway(b)) || (s2..=e2).contains(&gateway(a))
}

/// Addresses in candidate range `r`.
pub fn range_size(r: usize) -> u64 {
    let (s, e) = RANGES[r];
    u64::from(e - s) + 1
}

/// The aux resources of the model.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuxState {
    pub zones: BTreeSet<AuxNo>,
    /// Cluster -> its zone.
    pub clusters: BTreeMap<AuxNo, Parent>,
    /// L2 network -> its zone.
    pub l2s: BTreeMap<AuxNo, Parent>,
    /// L3 network -> its (aux) L2 network.
    pub l3s: BTreeMap<AuxNo, AuxNo>,
    /// (L3 network, index into [`RANGES`]).
    pub ranges: BTreeSet<(AuxNo, usize)>,
    /// Backup storage -> its zone.
    pub bss: BTreeMap<AuxNo, Parent>,
    /// Image -> its backup storage.
    pub images: BTreeMap<AuxNo, Parent>,
    /// The number the next aux create gets.
    pub next: u32,
}

/// One aux resource as the model or the engine has it, for comparing them (parents are
/// `None` when the engine names one the test does not know).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuxRecord {
    Absent,
    Zone,
    Cluster {
        zone: Option<Parent>,
    },
    L2 {
        zone: Option<Parent>,
    },
    /// With its ranges as (first, last) host part in [`RANGE_NET`].
    L3 {
        l2: Option<AuxNo>,
        ranges: BTreeSet<(u8, u8)>,
    },
    Bs {
        zone: Option<Parent>,
    },
    Image {
        bs: Option<Parent>,
    },
}

/// The kinds of aux resources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuxKind {
    Zone,
    Cluster,
    L2,
    L3,
    Bs,
    Image,
}

impl AuxKind {
    /// Every kind.
    pub const ALL: [AuxKind; 6] =
        [Self::Zone, Self::Cluster, Self::L2, Self::L3, Self::Bs, Self::Image];
}

impl AuxState {
    /// Whether two of `creates` (L3 network, candidate range), run at once from this state,
    /// race for one L2 network: valid, on different L3 networks of it, clashing with each other
    /// and with none of its ranges (so that each alone would be accepted).
    pub fn racing_ranges(&self, creates: &[(AuxNo, usize)]) -> bool {
        let fresh = |l3: AuxNo, r: usize| {
            let Some(l2) = self.l3s.get(&l3) else { return false };
            valid(r)
                && !self.ranges.iter().any(|(o, x)| self.l3s.get(o) == Some(l2) && clash(*x, r))
        };
        creates.iter().enumerate().any(|(i, &(a, x))| {
            creates[i + 1..].iter().any(|&(b, y)| {
                a != b
                    && self.l3s.contains_key(&a)
                    && self.l3s.get(&a) == self.l3s.get(&b)
                    && clash(x, y)
                    && fresh(a, x)
                    && fresh(b, y)
            })
        })
    }

    /// Whether aux resource `n` exists, whatever its kind.
    pub fn exists(&self, n: AuxNo) -> bool {
        self.kind(n).is_some()
    }

    /// The kind of aux resource `n`, if it exists.
    pub fn kind(&self, n: AuxNo) -> Option<AuxKind> {
        if self.zones.contains(&n) {
            Some(AuxKind::Zone)
        } else if self.clusters.contains_key(&n) {
            Some(AuxKind::Cluster)
        } else if self.l2s.contains_key(&n) {
            Some(AuxKind::L2)
        } else if self.l3s.contains_key(&n) {
            Some(AuxKind::L3)
        } else if self.bss.contains_key(&n) {
            Some(AuxKind::Bs)
        } else if self.images.contains_key(&n) {
            Some(AuxKind::Image)
        } else {
            None
        }
    }

    /// How many of `kind` exist.
    pub fn count(&self, kind: AuxKind) -> usize {
        match kind {
            AuxKind::Zone => self.zones.len(),
            AuxKind::Cluster => self.clusters.len(),
            AuxKind::L2 => self.l2s.len(),
            AuxKind::L3 => self.l3s.len(),
            AuxKind::Bs => self.bss.len(),
            AuxKind::Image => self.images.len(),
        }
    }

    /// Every resource of `kind`.
    pub fn all(&self, kind: AuxKind) -> Vec<AuxNo> {
        match kind {
            AuxKind::Zone => self.zones.iter().copied().collect(),
            AuxKind::Cluster => self.clusters.keys().copied().collect(),
            AuxKind::L2 => self.l2s.keys().copied().collect(),
            AuxKind::L3 => self.l3s.keys().copied().collect(),
            AuxKind::Bs => self.bss.keys().copied().collect(),
            AuxKind::Image => self.images.keys().copied().collect(),
        }
    }

    /// The zones a child may be created in: the main one and every aux one.
    pub fn zone_parents(&self) -> Vec<Parent> {
        std::iter::once(Parent::Main).chain(self.zones.iter().map(|z| Parent::Aux(*z))).collect()
    }

    /// The backup storages an image may be created on.
    pub fn bs_parents(&self) -> Vec<Parent> {
        std::iter::once(Parent::Main).chain(self.bss.keys().map(|b| Parent::Aux(*b))).collect()
    }

    /// Whether zone `p` exists (the main one always does).
    fn zone_exists(&self, p: Parent) -> bool {
        match p {
            Parent::Main => true,
            Parent::Aux(z) => self.zones.contains(&z),
        }
    }

    /// The ranges of every L3 network on L2 network `l2`.
    fn ranges_on_l2(&self, l2: AuxNo) -> impl Iterator<Item = usize> + '_ {
        self.ranges.iter().filter(move |(l3, _)| self.l3s.get(l3) == Some(&l2)).map(|(_, r)| *r)
    }

    /// Every aux resource's number.
    pub fn numbers(&self) -> BTreeSet<AuxNo> {
        AuxKind::ALL.into_iter().flat_map(|k| self.all(k)).collect()
    }

    /// Aux resource `n` for comparing with the engine's.
    pub fn record(&self, n: AuxNo) -> AuxRecord {
        let parent = |p: Option<&Parent>| p.map(|p| Some(*p));
        if self.zones.contains(&n) {
            AuxRecord::Zone
        } else if let Some(zone) = parent(self.clusters.get(&n)) {
            AuxRecord::Cluster { zone }
        } else if let Some(zone) = parent(self.l2s.get(&n)) {
            AuxRecord::L2 { zone }
        } else if let Some(l2) = self.l3s.get(&n) {
            let ranges = self.ranges.iter().filter(|(l, _)| *l == n).map(|(_, r)| RANGES[*r]);
            AuxRecord::L3 { l2: Some(*l2), ranges: ranges.collect() }
        } else if let Some(zone) = parent(self.bss.get(&n)) {
            AuxRecord::Bs { zone }
        } else if let Some(bs) = parent(self.images.get(&n)) {
            AuxRecord::Image { bs }
        } else {
            AuxRecord::Absent
        }
    }

    /// Total addresses of L3 network `l3`.
    pub fn total_ips(&self, l3: AuxNo) -> u64 {
        self.ranges.iter().filter(|(l, _)| *l == l3).map(|(_, r)| range_size(*r)).sum()
    }
}

/// The delete of `n` from `map`: NOT_FOUND when it is not there, CONFLICT while it has
/// `children`.
fn delete_parent<V>(map: &mut BTreeMap<AuxNo, V>, n: AuxNo, children: bool) -> Expected {
    if !map.contains_key(&n) {
        return Expected::Err(NOT_FOUND);
    }
    if children {
        return Expected::Err(CONFLICT);
    }
    map.remove(&n);
    Expected::Ok
}

/// Creating and deleting aux resources, as the engine answers them.
impl RefState {
    /// `POST /v1/zones`.
    pub fn create_zone(&mut self, zone: AuxNo) -> Expected {
        self.aux.zones.insert(zone);
        Expected::Ok
    }

    /// `DELETE /v1/zones/Z`: refused while clusters, L2 networks or backup storages are in it.
    pub fn delete_zone(&mut self, zone: AuxNo) -> Expected {
        let a = &self.aux;
        if !a.zones.contains(&zone) {
            return Expected::Err(NOT_FOUND);
        }
        let p = Parent::Aux(zone);
        let children = a.clusters.values().chain(a.l2s.values()).chain(a.bss.values());
        if children.into_iter().any(|c| *c == p) {
            return Expected::Err(CONFLICT);
        }
        self.aux.zones.remove(&zone);
        Expected::Ok
    }

    /// `POST /v1/clusters`, `POST /v1/l2-networks` and `POST /v1/backup-storages`: a child of a
    /// zone, refused when the zone does not exist.
    pub fn create_in_zone(&mut self, kind: AuxKind, n: AuxNo, zone: Parent) -> Expected {
        if !self.aux.zone_exists(zone) {
            return Expected::Err(NOT_FOUND);
        }
        let map = match kind {
            AuxKind::Cluster => &mut self.aux.clusters,
            AuxKind::L2 => &mut self.aux.l2s,
            AuxKind::Bs => &mut self.aux.bss,
            _ => unreachable!("only clusters, L2 networks and backup storages are in a zone"),
        };
        map.insert(n, zone);
        Expected::Ok
    }

    /// `DELETE /v1/clusters/C`: refused while it has hosts.
    pub fn delete_cluster(&mut self, cluster: AuxNo) -> Expected {
        let hosts = self.hosts.values().any(|h| h.cluster == Some(cluster));
        delete_parent(&mut self.aux.clusters, cluster, hosts)
    }

    /// `DELETE /v1/l2-networks/L`: refused while it has L3 networks.
    pub fn delete_l2(&mut self, l2: AuxNo) -> Expected {
        let l3s = self.aux.l3s.values().any(|p| *p == l2);
        delete_parent(&mut self.aux.l2s, l2, l3s)
    }

    /// `POST /v1/l3-networks` on an aux L2 network.
    pub fn create_l3(&mut self, l3: AuxNo, l2: AuxNo) -> Expected {
        if !self.aux.l2s.contains_key(&l2) {
            return Expected::Err(NOT_FOUND);
        }
        self.aux.l3s.insert(l3, l2);
        Expected::Ok
    }

    /// `DELETE /v1/l3-networks/L`: no NIC is ever on an aux L3 network; its ranges go with it.
    pub fn delete_l3(&mut self, l3: AuxNo) -> Expected {
        if self.aux.l3s.remove(&l3).is_none() {
            return Expected::Err(NOT_FOUND);
        }
        self.aux.ranges.retain(|(l, _)| *l != l3);
        Expected::Ok
    }

    /// `POST /v1/l3-networks/L/ip-ranges` with candidate `range`: refused when it is invalid on
    /// its own (checked before the L3 network is looked up), or when it clashes with a range of
    /// any L3 network of the same L2 network.
    pub fn create_range(&mut self, l3: AuxNo, range: usize) -> Expected {
        if !valid(range) {
            return Expected::Err(INVALID_ARGUMENT);
        }
        let Some(l2) = self.aux.l3s.get(&l3).copied() else {
            return Expected::Err(NOT_FOUND);
        };
        if self.aux.ranges_on_l2(l2).any(|r| clash(r, range)) {
            return Expected::Err(CONFLICT);
        }
        self.aux.ranges.insert((l3, range));
        Expected::Ok
    }

    /// `DELETE /v1/backup-storages/B`: refused while it holds images.
    pub fn delete_bs(&mut self, bs: AuxNo) -> Expected {
        let images = self.aux.images.values().any(|p| *p == Parent::Aux(bs));
        delete_parent(&mut self.aux.bss, bs, images)
    }

    /// `POST /v1/images` on a backup storage (which always has room).
    pub fn create_image(&mut self, image: AuxNo, bs: Parent) -> Expected {
        if let Parent::Aux(b) = bs {
            if !self.aux.bss.contains_key(&b) {
                return Expected::Err(NOT_FOUND);
            }
        }
        self.aux.images.insert(image, bs);
        Expected::Ok
    }

    /// `DELETE /v1/images/I`: refused while any VM row (destroyed ones included) uses it.
    pub fn delete_image(&mut self, image: AuxNo) -> Expected {
        let vms = self.vms.values().any(|v| v.image == Some(image));
        delete_parent(&mut self.aux.images, image, vms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refused_candidates_are_refused_for_one_reason_each() {
        let invalid: Vec<usize> = (0..RANGES.len()).filter(|r| !valid(*r)).collect();
        assert_eq!(invalid, [7, 8, 9]);
    }

    #[test]
    fn the_gateway_candidate_clashes_exactly_with_the_ranges_holding_its_gateway() {
        let clashing: Vec<usize> =
            (0..RANGES.len()).filter(|r| valid(*r) && *r != 10 && clash(10, *r)).collect();
        assert_eq!(clashing, [0, 1, 6]);
        assert!(clashing.iter().all(|r| clash(*r, 10)), "a clash is symmetric");
        assert!(!clash(0, 3) && clash(0, 1), "overlap alone decides among the first seven");
    }

    #[test]
    fn a_range_race_needs_two_fresh_clashing_creates_on_two_l3_networks_of_one_l2() {
        let (l2, other, a, b, c) = (AuxNo(1), AuxNo(2), AuxNo(3), AuxNo(4), AuxNo(5));
        let mut s = AuxState::default();
        s.l2s.insert(l2, Parent::Main);
        s.l2s.insert(other, Parent::Main);
        s.l3s.extend([(a, l2), (b, l2), (c, other)]);
        assert!(s.racing_ranges(&[(a, 0), (b, 1)]));
        assert!(s.racing_ranges(&[(a, 3), (a, 0), (b, 1)]), "any two of the group");
        assert!(!s.racing_ranges(&[(a, 0), (a, 1)]), "one L3 network: its queue orders them");
        assert!(!s.racing_ranges(&[(a, 0), (c, 1)]), "two L2 networks: no clash");
        assert!(!s.racing_ranges(&[(a, 0), (b, 3)]), "no clash between them");
        assert!(!s.racing_ranges(&[(a, 0), (b, 8)]), "an invalid candidate is refused first");
        s.ranges.insert((b, 6));
        assert!(!s.racing_ranges(&[(a, 0), (b, 1)]), "the engine's own check refuses both");
    }
}
