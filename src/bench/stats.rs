//! Latency statistics: nearest-rank percentiles over every recorded sample.
//!
//! Samples are kept whole (a benchmark records at most a few million), sorted
//! once, and read by rank, so the percentiles are exact rather than estimated
//! from buckets.

use std::time::Duration;

/// The latency distribution of one run, in milliseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Summary {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest sample.
    pub max_ms: f64,
}

impl Summary {
    /// Summarizes `samples`, sorting them in place; all zero when empty.
    pub(crate) fn of(samples: &mut [Duration]) -> Summary {
        samples.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Summary {
            p50_ms: ms(percentile(samples, 50.0)),
            p90_ms: ms(percentile(samples, 90.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples.last().copied().unwrap_or_default()),
        }
    }
}

/// The nearest-rank `p`-th percentile of `sorted` (ascending): the smallest
/// sample such that at least `p`% of the samples are no larger. Zero when
/// `sorted` is empty; `p` is clamped to `0..=100`.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let n = sorted.len();
    // `p * n / 100` rather than `p / 100 * n`: exact for whole percentiles,
    // where 0.9 * 100 would round up past 90 and skip a rank.
    let rank = (p.clamp(0.0, 100.0) * n as f64 / 100.0).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_on_a_small_vector() {
        // The textbook example: {15, 20, 35, 40, 50}.
        let sorted = ms(&[15, 20, 35, 40, 50]);
        let cases = [
            (0.0, 15),
            (5.0, 15),
            (30.0, 20),
            (40.0, 20),
            (50.0, 35),
            (100.0, 50),
        ];
        for (p, want) in cases {
            assert_eq!(percentile(&sorted, p), Duration::from_millis(want), "p{p}");
        }
    }

    #[test]
    fn whole_percentiles_of_one_to_a_hundred_hit_their_own_rank() {
        let sorted = ms(&(1..=100).collect::<Vec<_>>());
        for p in 1..=100u64 {
            assert_eq!(
                percentile(&sorted, p as f64),
                Duration::from_millis(p),
                "p{p}"
            );
        }
    }

    #[test]
    fn summary_sorts_and_reads_ranks() {
        let mut samples = ms(&[9, 3, 7, 1, 5, 10, 2, 8, 4, 6]);
        let s = Summary::of(&mut samples);
        assert_eq!(
            s,
            Summary {
                p50_ms: 5.0,
                p90_ms: 9.0,
                p99_ms: 10.0,
                max_ms: 10.0
            }
        );
    }

    #[test]
    fn empty_is_all_zero() {
        assert_eq!(Summary::of(&mut []), Summary::default());
        assert_eq!(percentile(&[], 99.0), Duration::ZERO);
    }
}
