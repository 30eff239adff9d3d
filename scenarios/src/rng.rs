//! Seeds: every random choice of a run derives from its one `u64` seed.
//!
//! The seed itself seeds the simulator (which derives a generator per host from it); the other
//! streams (engine resource IDs, workload choices, fault choices, simulated latency) get their own
//! seeds derived from it with SplitMix64, so adding draws to one stream never shifts another.

use oxstack_simulator::SimRng;
use rand::RngExt;

/// The independent random streams of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    /// The engine's resource IDs (`EngineOptions::id_seed`).
    EngineIds,
    /// Which operation the workload runs next, on which VM or host.
    Workload,
    /// Which hosts a fault hits.
    Faults,
    /// Simulated latency of hypervisor calls (one generator per host).
    Latency,
}

/// The seed of one stream of a run seeded with `seed`.
pub fn derive(seed: u64, stream: Stream) -> u64 {
    let tag: u64 = match stream {
        Stream::EngineIds => 0x656e_6769_6e65_6964, // "engineid"
        Stream::Workload => 0x776f_726b_6c6f_6164,  // "workload"
        Stream::Faults => 0x6661_756c_7473_0000,    // "faults"
        Stream::Latency => 0x6c61_7465_6e63_7900,   // "latency"
    };
    splitmix(seed ^ splitmix(tag))
}

/// A generator for one stream.
pub fn stream(seed: u64, stream: Stream) -> SimRng {
    SimRng::from_seed(derive(seed, stream))
}

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A uniform index below `n` (`n` > 0).
pub fn index(rng: &mut SimRng, n: usize) -> usize {
    rng.random_range(0..n.max(1))
}

/// True with probability `percent` / 100.
pub fn chance(rng: &mut SimRng, percent: f64) -> bool {
    if percent <= 0.0 {
        false
    } else if percent >= 100.0 {
        true
    } else {
        rng.random_bool(percent / 100.0)
    }
}

/// Picks `k` distinct items of `items` (keeping their relative order), with a partial shuffle.
pub fn sample<T: Copy>(rng: &mut SimRng, items: &[T], k: usize) -> Vec<T> {
    let k = k.min(items.len());
    let mut idx: Vec<usize> = (0..items.len()).collect();
    for i in 0..k {
        let j = i + index(rng, items.len() - i);
        idx.swap(i, j);
    }
    let mut chosen = idx[..k].to_vec();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| items[i]).collect()
}

/// Picks an entry by weight; `None` when every weight is zero.
pub fn weighted<T: Copy>(rng: &mut SimRng, entries: &[(T, u32)]) -> Option<T> {
    let total: u64 = entries.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.random_range(0..total);
    for (item, w) in entries {
        let w = u64::from(*w);
        if x < w {
            return Some(*item);
        }
        x -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use rand::Rng;

    use super::*;

    #[test]
    fn streams_are_distinct_and_replayable() {
        let all = [Stream::EngineIds, Stream::Workload, Stream::Faults, Stream::Latency];
        let seeds: Vec<u64> = all.iter().map(|s| derive(1, *s)).collect();
        let mut unique = seeds.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), all.len());
        assert_eq!(stream(5, Stream::Workload).next_u64(), stream(5, Stream::Workload).next_u64());
        assert_ne!(derive(5, Stream::Workload), derive(6, Stream::Workload));
    }

    #[test]
    fn sampling_and_weights() {
        let mut rng = SimRng::from_seed(3);
        let items: Vec<u32> = (0..100).collect();
        let s = sample(&mut rng, &items, 10);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]), "distinct and ordered: {s:?}");
        assert_eq!(sample(&mut rng, &items, 500).len(), 100);
        assert_eq!(weighted(&mut rng, &[("a", 0), ("b", 0)]), None);
        for _ in 0..100 {
            assert_eq!(weighted(&mut rng, &[("a", 0), ("b", 3)]), Some("b"));
        }
    }
}
