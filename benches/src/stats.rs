//! Percentiles of individually timed operations (criterion reports per-sample means; the
//! scheduler's target is a per-decision p99, so that bench also times decisions one by one).

use std::time::Duration;

/// p50, p99 and p99.9 and the maximum of a set of durations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Percentiles {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Computes the percentiles (nearest rank); `None` for an empty set.
    pub fn of(mut samples: Vec<Duration>) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Some(Self { p50: at(0.5), p99: at(0.99), p999: at(0.999), max: samples[samples.len() - 1] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let d: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        let p = Percentiles::of(d).unwrap();
        assert_eq!(p.p50, Duration::from_micros(500));
        assert_eq!(p.p99, Duration::from_micros(990));
        assert_eq!(p.p999, Duration::from_micros(999));
        assert_eq!(p.max, Duration::from_micros(1000));
        assert!(Percentiles::of(Vec::new()).is_none());
    }
}
