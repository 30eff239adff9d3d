//! The consistent-hash ring: which management node owns a resource.
//!
//! Each live node is placed at [`VNODES`] points on a 64-bit ring; a resource belongs to the
//! first point at or after its key (wrapping). The key of a resource is a fixed hash of its
//! uuid (uuids start with their creation time, so their own bits are not uniform) and a node's
//! points are a fixed hash of its uuid and the point's number, so every node that sees the same
//! set of members builds the same ring, whatever its process, build or architecture. When a
//! node joins or leaves, only the resources on the arcs it gains or gives up move.

use uuid::Uuid;

use crate::ids::{splitmix64, ManagementNodeId};

/// Points per node. With 64, three nodes each own within ±20% of an even share (see the tests).
pub const VNODES: u32 = 64;

/// An immutable ring over a set of nodes. Empty when there are no nodes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HashRing {
    /// (point, node), sorted by point.
    points: Vec<(u64, ManagementNodeId)>,
    nodes: Vec<ManagementNodeId>,
}

impl HashRing {
    /// The ring of these nodes (duplicates are ignored, order does not matter).
    pub fn new(nodes: impl IntoIterator<Item = ManagementNodeId>) -> Self {
        let mut nodes: Vec<ManagementNodeId> = nodes.into_iter().collect();
        nodes.sort();
        nodes.dedup();
        let mut points = Vec::with_capacity(nodes.len() * VNODES as usize);
        for &node in &nodes {
            for i in 0..VNODES {
                points.push((point_of(node, i), node));
            }
        }
        // Ties (astronomically unlikely) break by node id, so the order is still total.
        points.sort();
        Self { points, nodes }
    }

    /// The nodes on the ring, sorted.
    pub fn nodes(&self) -> &[ManagementNodeId] {
        &self.nodes
    }

    /// Whether no node is on the ring.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The node that owns the resource with this uuid, or `None` on an empty ring.
    pub fn owner(&self, resource: Uuid) -> Option<ManagementNodeId> {
        let key = key_of(resource);
        let i = self.points.partition_point(|&(p, _)| p < key);
        self.points.get(i).or_else(|| self.points.first()).map(|&(_, node)| node)
    }

    /// Whether `node` owns `resource`. On an empty ring nobody does.
    pub fn owns(&self, node: ManagementNodeId, resource: Uuid) -> bool {
        self.owner(resource) == Some(node)
    }
}

/// A resource's position: SplitMix64 of its uuid's two halves. Hashed, because uuids made by
/// [`crate::ids::IdGen`] start with a timestamp (uuids made together would share an arc).
/// Fixed forever, like [`point_of`].
fn key_of(resource: Uuid) -> u64 {
    let (hi, mut lo) = resource.as_u64_pair();
    let mut state = hi ^ splitmix64(&mut lo);
    splitmix64(&mut state)
}

/// The position of a node's `i`th point: SplitMix64 (the same mixer [`crate::ids::IdGen`] uses)
/// seeded from the node's uuid and `i`, two rounds so both halves of the uuid count. Fixed
/// forever: changing it moves every resource of a running cluster.
fn point_of(node: ManagementNodeId, i: u32) -> u64 {
    let (hi, lo) = node.0.as_u64_pair();
    let mut state = hi ^ u64::from(i);
    let first = splitmix64(&mut state);
    let mut state = first ^ lo;
    splitmix64(&mut state)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::ids::IdGen;

    fn ids(gen: &mut IdGen, n: usize) -> Vec<Uuid> {
        (0..n).map(|_| gen.next()).collect()
    }

    fn nodes(gen: &mut IdGen, n: usize) -> Vec<ManagementNodeId> {
        ids(gen, n).into_iter().map(ManagementNodeId).collect()
    }

    #[test]
    fn an_empty_ring_owns_nothing_and_one_node_owns_everything() {
        let mut rng = IdGen::seeded(1);
        let keys = ids(&mut rng, 100);
        assert!(keys.iter().all(|&k| HashRing::default().owner(k).is_none()));
        let solo = nodes(&mut rng, 1)[0];
        let ring = HashRing::new([solo]);
        assert!(keys.iter().all(|&k| ring.owns(solo, k)));
    }

    #[test]
    fn same_members_in_any_order_build_the_same_ring() {
        let mut rng = IdGen::seeded(2);
        let n = nodes(&mut rng, 3);
        let a = HashRing::new([n[0], n[1], n[2]]);
        let b = HashRing::new([n[2], n[0], n[1], n[0]]);
        assert_eq!(a, b);
        for k in ids(&mut rng, 1000) {
            assert_eq!(a.owner(k), b.owner(k));
        }
    }

    #[test]
    fn three_nodes_share_30k_resources_within_a_fifth_of_even() {
        let mut rng = IdGen::seeded(3);
        let keys = ids(&mut rng, 30_000);
        for trial in 0..5 {
            let n = nodes(&mut rng, 3);
            let ring = HashRing::new(n.clone());
            let mut count: HashMap<ManagementNodeId, usize> = HashMap::new();
            for &k in &keys {
                *count.entry(ring.owner(k).unwrap()).or_default() += 1;
            }
            for node in &n {
                let share = count.get(node).copied().unwrap_or(0);
                assert!(
                    (8_000..=12_000).contains(&share),
                    "trial {trial}: node {node} owns {share} of 30000"
                );
            }
        }
    }

    #[test]
    fn a_leaving_node_moves_only_its_own_resources_and_a_joining_one_takes_only_some() {
        let mut rng = IdGen::seeded(4);
        let n = nodes(&mut rng, 3);
        let keys = ids(&mut rng, 10_000);
        let three = HashRing::new(n.clone());
        let two = HashRing::new([n[0], n[1]]);
        for &k in &keys {
            let before = three.owner(k).unwrap();
            let after = two.owner(k).unwrap();
            if before != n[2] {
                assert_eq!(before, after, "{k} moved though its owner stayed");
            }
        }
        // Back to three: what moves goes to the new node, nothing moves between the others.
        for &k in &keys {
            let (before, after) = (two.owner(k).unwrap(), three.owner(k).unwrap());
            assert!(after == before || after == n[2]);
        }
    }
}
