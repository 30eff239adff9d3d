//! How long each simulated operation takes: a distribution per operation kind.
//!
//! Durations are written in milliseconds (fractions allowed) when a model is read from a config
//! file, e.g. in TOML:
//!
//! ```toml
//! default = { uniform = { min_ms = 1.0, max_ms = 5.0 } }
//! per_op = { create = { fixed = 250.0 }, ping = "zero" }
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use oxstack_hypervisor::OpKind;
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::rng::SimRng;

/// A distribution of operation latencies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Latency {
    /// Instant: the call does not sleep or yield at all.
    #[default]
    Zero,
    /// Always the same duration.
    Fixed(#[serde(with = "millis")] Duration),
    /// Uniform between `min` and `max` (inclusive).
    Uniform {
        /// Shortest latency.
        #[serde(rename = "min_ms", with = "millis")]
        min: Duration,
        /// Longest latency.
        #[serde(rename = "max_ms", with = "millis")]
        max: Duration,
    },
    /// Exponential with the given mean (memoryless waits, long tail).
    Exponential {
        /// Mean latency.
        #[serde(rename = "mean_ms", with = "millis")]
        mean: Duration,
    },
    /// Log-normal: `median * exp(sigma * N(0, 1))`, the usual shape of service latencies.
    LogNormal {
        /// Median latency.
        #[serde(rename = "median_ms", with = "millis")]
        median: Duration,
        /// Spread: the standard deviation of the latency's logarithm.
        sigma: f64,
    },
}

impl Latency {
    /// Draws one latency. `Zero` and `Fixed` consume no randomness.
    pub fn sample(&self, rng: &mut SimRng) -> Duration {
        match *self {
            Self::Zero => Duration::ZERO,
            Self::Fixed(value) => value,
            Self::Uniform { min, max } => {
                if max <= min {
                    min
                } else {
                    rng.random_range(min..=max)
                }
            }
            Self::Exponential { mean } => {
                let unit: f64 = rng.random();
                secs_to_duration(mean.as_secs_f64() * -(1.0 - unit).ln())
            }
            Self::LogNormal { median, sigma } => {
                // Box-Muller; `1 - u` keeps the logarithm's argument in (0, 1].
                let u1: f64 = rng.random();
                let u2: f64 = rng.random();
                let normal = (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                secs_to_duration(median.as_secs_f64() * (sigma * normal).exp())
            }
        }
    }
}

/// Converts seconds to a `Duration`, mapping NaN and negatives to zero and overflow to the maximum.
fn secs_to_duration(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        Duration::ZERO
    } else {
        Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
    }
}

/// Latency for every operation kind: a default plus per-kind overrides.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatencyModel {
    /// Used for every kind not listed in `per_op`.
    pub default: Latency,
    /// Overrides by operation kind.
    pub per_op: BTreeMap<OpKind, Latency>,
}

impl LatencyModel {
    /// The same latency for every operation.
    pub fn uniform_for_all(latency: Latency) -> Self {
        Self { default: latency, per_op: BTreeMap::new() }
    }

    /// Sets the latency of one operation kind (builder style).
    pub fn with_op(mut self, op: OpKind, latency: Latency) -> Self {
        self.per_op.insert(op, latency);
        self
    }

    /// The latency distribution of `op`.
    pub fn for_op(&self, op: OpKind) -> &Latency {
        self.per_op.get(&op).unwrap_or(&self.default)
    }
}

/// Serde helpers writing a `Duration` as a floating-point number of milliseconds.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64() * 1000.0)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let ms = f64::deserialize(deserializer)?;
        Duration::try_from_secs_f64(ms / 1000.0).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn zero_and_fixed_consume_no_randomness() {
        let mut rng = SimRng::from_seed(9);
        let untouched = rng.clone();
        assert_eq!(Latency::Zero.sample(&mut rng), Duration::ZERO);
        assert_eq!(Latency::Fixed(5 * MS).sample(&mut rng), 5 * MS);
        assert_eq!(rng, untouched);
    }

    #[test]
    fn uniform_stays_in_range_and_varies() {
        let mut rng = SimRng::from_seed(9);
        let latency = Latency::Uniform { min: 2 * MS, max: 8 * MS };
        let draws: Vec<Duration> = (0..1000).map(|_| latency.sample(&mut rng)).collect();
        assert!(draws.iter().all(|d| (2 * MS..=8 * MS).contains(d)));
        assert!(draws.iter().any(|d| *d < 4 * MS) && draws.iter().any(|d| *d > 6 * MS));
        let inverted = Latency::Uniform { min: 3 * MS, max: MS };
        assert_eq!(inverted.sample(&mut rng), 3 * MS);
    }

    #[test]
    fn exponential_and_log_normal_have_plausible_centres() {
        let mut rng = SimRng::from_seed(11);
        let n = 20_000u32;
        let exp = Latency::Exponential { mean: 10 * MS };
        let total: Duration = (0..n).map(|_| exp.sample(&mut rng)).sum();
        let mean_ms = total.as_secs_f64() * 1000.0 / f64::from(n);
        assert!((9.0..11.0).contains(&mean_ms), "mean {mean_ms} ms");

        let log_normal = Latency::LogNormal { median: 10 * MS, sigma: 0.5 };
        let mut draws: Vec<Duration> = (0..n).map(|_| log_normal.sample(&mut rng)).collect();
        draws.sort();
        let median_ms = draws[draws.len() / 2].as_secs_f64() * 1000.0;
        assert!((9.0..11.0).contains(&median_ms), "median {median_ms} ms");
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let mut rng = SimRng::from_seed(1);
        let nan = Latency::LogNormal { median: MS, sigma: f64::NAN };
        assert_eq!(nan.sample(&mut rng), Duration::ZERO);
        let huge = Latency::LogNormal { median: Duration::MAX, sigma: 50.0 };
        let _ = huge.sample(&mut rng);
        assert_eq!(secs_to_duration(f64::INFINITY), Duration::MAX);
        assert_eq!(secs_to_duration(-1.0), Duration::ZERO);
    }

    #[test]
    fn model_falls_back_to_default() {
        let model = LatencyModel::uniform_for_all(Latency::Fixed(MS))
            .with_op(OpKind::Create, Latency::Fixed(7 * MS));
        assert_eq!(*model.for_op(OpKind::Create), Latency::Fixed(7 * MS));
        assert_eq!(*model.for_op(OpKind::Ping), Latency::Fixed(MS));
        assert_eq!(*LatencyModel::default().for_op(OpKind::Migrate), Latency::Zero);
    }
}
