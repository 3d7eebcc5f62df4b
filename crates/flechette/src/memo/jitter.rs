//! Jitter: the lifespans of results computed together, spread out, so that
//! they do not all go stale or expire at one instant.

use std::sync::atomic::{AtomicU64, Ordering};

use super::policy::Freshness;

/// Shortens each result's `update_after` and `expire_after` by a random
/// part of up to `fraction` of them (the same part for both, so their order
/// holds): a result lives between `(1 - fraction)` and all of its lifespan.
#[derive(Debug)]
pub(crate) struct Jitter {
    fraction: f64,
    state: AtomicU64,
}

impl Jitter {
    /// `fraction` is clamped to `0.0..=1.0` (a NaN is 0); `seed` starts the
    /// random sequence.
    pub(crate) fn new(fraction: f64, seed: u64) -> Self {
        let fraction = if fraction.is_nan() {
            0.0
        } else {
            fraction.clamp(0.0, 1.0)
        };
        Self {
            fraction,
            state: AtomicU64::new(seed),
        }
    }

    /// The next number of the sequence, uniform in `0.0..1.0` (splitmix64).
    fn next_unit(&self) -> f64 {
        let x = self
            .state
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        // The top 53 bits, as a double in [0, 1).
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// `freshness`, shortened by this entry's random part.
    pub(crate) fn apply(&self, freshness: Freshness) -> Freshness {
        if self.fraction == 0.0 || freshness.is_forever() {
            return freshness;
        }
        let keep = 1.0 - self.fraction * self.next_unit();
        Freshness {
            update_after: freshness.update_after.map(|d| d.mul_f64(keep)),
            expire_after: freshness.expire_after.map(|d| d.mul_f64(keep)),
        }
    }
}

/// A seed that differs between processes: the standard library's random
/// hash keys.
pub(crate) fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x6a69_7474_6572);
    h.finish()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn lifespans_spread_over_the_fraction_and_keep_their_order() {
        let jitter = Jitter::new(0.2, 7);
        let f = Freshness::new()
            .update_after(Duration::from_secs(50))
            .expire_after(Duration::from_secs(100));
        let mut expiries = Vec::new();
        for _ in 0..10_000 {
            let g = jitter.apply(f);
            let (u, e) = (g.update_after.unwrap(), g.expire_after.unwrap());
            assert!(u < e && u * 2 <= e + Duration::from_micros(1));
            expiries.push(e.as_secs_f64());
        }
        let (min, max) = expiries
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!((80.0..80.1).contains(&min), "{min}");
        assert!(max <= 100.0 && max > 99.9, "{max}");
        let below_90 = expiries.iter().filter(|&&x| x < 90.0).count();
        assert!((4_700..5_300).contains(&below_90), "uniform: {below_90}");
    }

    #[test]
    fn one_seed_gives_one_sequence_and_no_fraction_changes_nothing() {
        let f = Freshness::new().expire_after(Duration::from_secs(60));
        let (a, b) = (Jitter::new(0.5, 42), Jitter::new(0.5, 42));
        for _ in 0..100 {
            assert_eq!(a.apply(f), b.apply(f));
        }
        assert_eq!(Jitter::new(0.0, 1).apply(f), f);
        assert_eq!(Jitter::new(f64::NAN, 1).apply(f), f);
        assert_eq!(
            Jitter::new(0.5, 1).apply(Freshness::FOREVER),
            Freshness::FOREVER
        );
        let all = Jitter::new(7.0, 3).apply(f).expire_after.unwrap();
        assert!(
            all <= Duration::from_secs(60),
            "clamped to the whole lifespan"
        );
    }
}
