//! Seeded randomness: one small SplitMix64 generator per simulated host.
//!
//! Every random draw the simulator makes (latency samples, fault probabilities) comes from the
//! generator of the host the call is addressed to. A host's generator is seeded from the cloud's
//! `u64` seed and the host's UUID, so outcomes on one host depend only on the seed and on the calls
//! made to that host, never on the order in which hosts were registered.
//!
//! The algorithm is implemented here rather than taken from `rand::rngs` so that a seed replays
//! the same run on every platform and with every future `rand` release; it plugs into `rand`'s
//! `RngExt` through `TryRng`.

use std::convert::Infallible;

use oxstack_hypervisor::HostId;
use rand::TryRng;

/// The SplitMix64 increment (the golden ratio in 64-bit fixed point).
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// SplitMix64's output function: a bijective 64-bit mixer.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A small, fast, reproducible pseudo-random generator (SplitMix64, 8 bytes of state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    /// A generator seeded directly from `seed`.
    pub fn from_seed(seed: u64) -> Self {
        Self { state: mix64(seed) }
    }

    /// The generator of `host` in a cloud seeded with `seed`.
    pub fn for_host(seed: u64, host: HostId) -> Self {
        let (high, low) = host.as_uuid().as_u64_pair();
        let host_key = mix64(high ^ mix64(low.wrapping_add(GOLDEN_GAMMA)));
        Self::from_seed(seed ^ host_key)
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        mix64(self.state)
    }
}

impl TryRng for SimRng {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        // The high half has the best statistical quality.
        Ok((self.next() >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.next())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            let bytes = self.next().to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, RngExt};

    use super::*;
    use crate::test_support::host_id;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SimRng::from_seed(42);
        let mut b = SimRng::from_seed(42);
        let xs: Vec<u64> = (0..16).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..16).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        let mut c = SimRng::from_seed(43);
        let zs: Vec<u64> = (0..16).map(|_| c.next_u64()).collect();
        assert_ne!(xs, zs);
    }

    #[test]
    fn known_answer_pins_the_algorithm() {
        // SplitMix64 reference output for state 0 (first value after one increment).
        let mut rng = SimRng { state: 0 };
        assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    }

    #[test]
    fn host_generators_differ_by_host_and_seed() {
        let first = SimRng::for_host(7, host_id(1)).next_u64();
        assert_eq!(first, SimRng::for_host(7, host_id(1)).next_u64());
        assert_ne!(first, SimRng::for_host(7, host_id(2)).next_u64());
        assert_ne!(first, SimRng::for_host(8, host_id(1)).next_u64());
    }

    #[test]
    fn fill_bytes_handles_partial_words() {
        let mut rng = SimRng::from_seed(1);
        let mut buf = [0u8; 13];
        rng.fill_bytes(&mut buf);
        assert!(buf.iter().any(|&b| b != 0));
    }

    #[test]
    fn works_with_rand_helpers() {
        let mut rng = SimRng::from_seed(3);
        let hits = (0..10_000).filter(|_| rng.random_bool(0.25)).count();
        assert!((2_000..3_000).contains(&hits), "hits = {hits}");
    }
}
