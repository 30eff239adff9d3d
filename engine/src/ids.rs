//! Typed identifiers, and where new ones come from ([`IdGen`]).
//!
//! The resources' ID types are declared in `oxstack-db` (`oxstack_db::ids`), whose typed
//! queries take and return them, and re-exported here; host, VM and volume IDs come from
//! `oxstack-hypervisor` through it; `ManagementNodeId` from `oxstack-bus`, which addresses
//! nodes by it.

pub use oxstack_bus::ManagementNodeId;
pub use oxstack_db::ids::*;

/// Where new resource IDs come from: the clock and the OS's randomness, or a seed so that a
/// replayed run creates the same IDs in the same order (deterministic simulation).
///
/// IDs are version-7 UUIDs (RFC 9562): 48 bits of time first, random bits after. IDs made one
/// after another therefore sort together, and the B-tree indexes keyed by them (every primary
/// key, and foreign keys such as `volumes.vm_uuid`) take new entries on their last few pages
/// instead of a random page each, which is what a commit writes to the WAL: with random
/// (version-4) IDs a create dirtied about eight scattered pages. Seeded IDs put the ID's
/// sequence number where the time goes (a logical clock), so they are still reproducible.
/// Nothing may read meaning from an ID's leading bits: code that needs uniform bits hashes the
/// whole ID (the cluster's hash ring does).
#[derive(Debug)]
pub struct IdGen {
    seeded: Option<std::sync::Mutex<Seeded>>,
}

/// The state of a seeded generator.
#[derive(Debug)]
struct Seeded {
    mix: u64,
    made: u64,
}

impl IdGen {
    /// IDs from the clock and the OS's randomness.
    pub fn random() -> Self {
        Self { seeded: None }
    }

    /// IDs drawn from `seed` with SplitMix64: the same seed gives the same sequence.
    pub fn seeded(seed: u64) -> Self {
        Self { seeded: Some(std::sync::Mutex::new(Seeded { mix: seed, made: 0 })) }
    }

    /// The next ID.
    pub fn next<T: From<uuid::Uuid>>(&self) -> T {
        let uuid = match &self.seeded {
            None => uuid::Uuid::now_v7(),
            Some(state) => {
                let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                s.made += 1;
                let mut random = [0u8; 10];
                random[..8].copy_from_slice(&splitmix64(&mut s.mix).to_le_bytes());
                random[8..].copy_from_slice(&splitmix64(&mut s.mix).to_le_bytes()[..2]);
                uuid::Builder::from_unix_timestamp_millis(s.made, &random).into_uuid()
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
        assert_eq!(xs[0].as_uuid().get_version_num(), 7);
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "seeded IDs sort in the order made");
        let other: ZoneId = IdGen::seeded(43).next();
        assert_ne!(other, xs[0]);
        let r = IdGen::random();
        let (x, y) = (r.next::<ZoneId>(), r.next::<ZoneId>());
        assert!(x < y, "random IDs sort in the order made: {x} then {y}");
        assert_eq!(x.as_uuid().get_version_num(), 7);
    }
}
