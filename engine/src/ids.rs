//! Typed identifiers for the engine's own resources (host, VM and volume IDs come from
//! `oxstack-hypervisor`, which declares them with the same macro).

use oxstack_hypervisor::typed_id;

pub use oxstack_hypervisor::{HostId, VmId, VolumeId};

typed_id!(
    /// A zone: the top of the resource tree.
    ZoneId
);
typed_id!(
    /// A cluster of hosts of one hypervisor type.
    ClusterId
);
typed_id!(
    /// Primary storage: where volumes live.
    PrimaryStorageId
);
typed_id!(
    /// Backup storage: where images live.
    BackupStorageId
);
typed_id!(
    /// An image a root volume is cloned from.
    ImageId
);
typed_id!(
    /// An instance offering: a VM size (cpus, memory).
    InstanceOfferingId
);
typed_id!(
    /// An L2 network (a bridge or VLAN on the hosts).
    L2NetworkId
);
typed_id!(
    /// An L3 network (subnet with IP ranges) on an L2 network.
    L3NetworkId
);
typed_id!(
    /// A contiguous range of IPs of an L3 network.
    IpRangeId
);
typed_id!(
    /// A VM's network interface.
    NicId
);
typed_id!(
    /// An asynchronous API job.
    JobId
);
typed_id!(
    /// A management node (one `oxstack serve` process) of a cluster.
    ManagementNodeId
);

/// Where new resource IDs come from: the OS's randomness, or a seed so that a replayed run
/// creates the same IDs in the same order (deterministic simulation).
#[derive(Debug)]
pub struct IdGen {
    seeded: Option<std::sync::Mutex<u64>>,
}

impl IdGen {
    /// Random IDs (UUID v4 from the OS).
    pub fn random() -> Self {
        Self { seeded: None }
    }

    /// IDs drawn from `seed` with SplitMix64: the same seed gives the same sequence.
    pub fn seeded(seed: u64) -> Self {
        Self { seeded: Some(std::sync::Mutex::new(seed)) }
    }

    /// The next ID.
    pub fn next<T: From<uuid::Uuid>>(&self) -> T {
        let uuid = match &self.seeded {
            None => uuid::Uuid::new_v4(),
            Some(state) => {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                let mut bytes = [0u8; 16];
                bytes[..8].copy_from_slice(&splitmix64(&mut s).to_le_bytes());
                bytes[8..].copy_from_slice(&splitmix64(&mut s).to_le_bytes());
                uuid::Builder::from_random_bytes(bytes).into_uuid()
            }
        };
        T::from(uuid)
    }
}

/// SplitMix64: advances `state` and returns the next well-mixed value. Also places nodes on the
/// cluster's hash ring, so it must never change.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_ids_replay_and_random_ones_do_not() {
        let (a, b) = (IdGen::seeded(42), IdGen::seeded(42));
        let xs: Vec<ZoneId> = (0..5).map(|_| a.next()).collect();
        let ys: Vec<ZoneId> = (0..5).map(|_| b.next()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_eq!(xs[0].as_uuid().get_version_num(), 4);
        let other: ZoneId = IdGen::seeded(43).next();
        assert_ne!(other, xs[0]);
        let r = IdGen::random();
        assert_ne!(r.next::<ZoneId>(), r.next::<ZoneId>());
    }
}
