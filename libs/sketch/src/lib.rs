//! A log-bucketed latency histogram (the DDSketch scheme): percentiles with a bounded
//! *relative* error from counts that can be summed across users, hours and replicas, so the
//! database keeps one small row per bucket instead of every event.
//!
//! A value `x > 0` falls in bucket `i = ⌈ln x / ln γ⌉` with `γ = (1 + α) / (1 − α)`, i.e. in
//! `(γ^(i−1), γ^i]`. Answering a bucket with `2γ^i / (γ + 1)` is then off by at most `α`
//! relative to any value in it. With `α = 1 %`, durations from 1 µs to one day need about
//! 1,600 buckets and a typical latency distribution a few dozen.

/// Relative accuracy α.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bucket of the value 0 (and of anything below [`MIN_VALUE`]); below every real bucket.
pub const ZERO_BUCKET: i32 = -100_000;
/// Values below this many milliseconds (one nanosecond) count as 0.
pub const MIN_VALUE: f64 = 1e-6;

fn gamma() -> f64 {
    (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY)
}

/// The bucket holding `value` (milliseconds, finite, ≥ 0).
pub fn bucket_of(value: f64) -> i32 {
    if value.is_nan() || value < MIN_VALUE {
        return ZERO_BUCKET;
    }
    (value.ln() / gamma().ln()).ceil() as i32
}

/// The value a bucket stands for: within α of everything in it.
pub fn bucket_value(bucket: i32) -> f64 {
    if bucket <= ZERO_BUCKET {
        return 0.0;
    }
    let g = gamma();
    2.0 * g.powi(bucket) / (g + 1.0)
}

/// Percentiles of a histogram given as `(bucket, count)` pairs (any order; a bucket may repeat).
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    buckets: Vec<(i32, u64)>,
    total: u64,
}

impl Histogram {
    /// A histogram of `(bucket, count)` pairs.
    pub fn new(mut buckets: Vec<(i32, u64)>) -> Self {
        buckets.retain(|(_, n)| *n > 0);
        buckets.sort_unstable_by_key(|(b, _)| *b);
        let total = buckets.iter().map(|(_, n)| *n).sum();
        Histogram { buckets, total }
    }

    /// How many values it holds.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The `q`-quantile (`0 ≤ q ≤ 1`): the value of rank `⌊q·(n−1)⌋` (0-based) in sorted order,
    /// within α relative error; 0 for an empty histogram.
    pub fn quantile(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = (q.clamp(0.0, 1.0) * (self.total - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for (bucket, n) in &self.buckets {
            seen += n;
            if seen > rank {
                return bucket_value(*bucket);
            }
        }
        self.buckets.last().map(|(b, _)| bucket_value(*b)).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn exact(sorted: &[f64], q: f64) -> f64 {
        let rank = (q * (sorted.len() - 1) as f64).floor() as usize;
        sorted[rank]
    }

    fn check(values: Vec<f64>) {
        let mut counts = std::collections::HashMap::new();
        for v in &values {
            *counts.entry(bucket_of(*v)).or_insert(0u64) += 1;
        }
        let h = Histogram::new(counts.into_iter().collect());
        let mut sorted = values;
        sorted.sort_by(f64::total_cmp);
        assert_eq!(h.count(), sorted.len() as u64);
        for q in [0.0, 0.5, 0.9, 0.95, 0.99, 1.0] {
            let want = exact(&sorted, q);
            let got = h.quantile(q);
            let err = if want == 0.0 { got } else { (got - want).abs() / want };
            assert!(err <= 0.02, "q{q}: sketch {got} vs exact {want} ({:.3} %)", err * 100.0);
            assert!(err <= RELATIVE_ACCURACY + 1e-9, "q{q}: {got} vs {want} beyond α");
        }
    }

    #[test]
    fn percentiles_of_random_latencies_are_within_two_percent() {
        let mut rng = StdRng::seed_from_u64(7);
        // Log-normal-ish latencies from 1 ms to a minute, and a uniform spread.
        check((0..20_000).map(|_| 10f64.powf(rng.random_range(0.0..4.8))).collect());
        check((0..5_000).map(|_| rng.random_range(0.0..86_399_999.0)).collect());
        check((0..1_000).map(|_| rng.random_range(0.001..2.0)).collect());
    }

    #[test]
    fn zero_has_its_own_bucket_below_every_other() {
        assert_eq!(bucket_of(0.0), ZERO_BUCKET);
        assert_eq!(bucket_value(ZERO_BUCKET), 0.0);
        assert!(bucket_of(MIN_VALUE) > ZERO_BUCKET);
        check(vec![0.0, 0.0, 0.0, 5.0, 7.0]);
    }

    #[test]
    fn a_bucket_covers_values_within_alpha() {
        for v in [1e-6, 0.3, 1.0, 12.5, 999.0, 86_399_999.0] {
            let r = bucket_value(bucket_of(v));
            assert!((r - v).abs() / v <= RELATIVE_ACCURACY + 1e-9, "{v} → {r}");
        }
        // One day spans a small, bounded range of indices.
        assert!(bucket_of(86_400_000.0) < 1000);
        assert!(bucket_of(MIN_VALUE) > -1000);
    }

    #[test]
    fn an_empty_histogram_answers_zero() {
        let h = Histogram::new(vec![(3, 0)]);
        assert_eq!(h.count(), 0);
        assert_eq!(h.quantile(0.5), 0.0);
    }
}
