//! Timer arithmetic: ConnectRetry backoff with deterministic jitter, and
//! the keepalive interval.

use std::time::Duration;

/// A small deterministic generator (SplitMix64): the jitter must be
/// reproducible from the configured seed, and needs no cryptographic
/// quality.
#[derive(Clone, Debug)]
pub(crate) struct Jitter {
    state: u64,
}

impl Jitter {
    pub(crate) fn new(seed: u64) -> Self {
        Jitter { state: seed }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// `base` scaled by a factor in [0.75, 1.0], as RFC 4271 §10 suggests
    /// for jitter.
    pub(crate) fn apply(&mut self, base: Duration) -> Duration {
        // 0..=1024 in 1/4096ths of `base` are taken off.
        let cut = self.next_u64() % 1025;
        base - base.mul_f64(cut as f64 / 4096.0)
    }
}

/// ConnectRetry intervals: `initial`, doubled after each failure up to
/// `max`, each jittered down by at most a quarter.
#[derive(Clone, Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    jitter: Jitter,
}

impl Backoff {
    /// A backoff starting at `initial`, capped at `max`, jittered from `seed`.
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max,
            failures: 0,
            jitter: Jitter::new(seed),
        }
    }

    /// The interval before jitter for the current number of failures.
    pub fn base(&self) -> Duration {
        let factor = 1u32.checked_shl(self.failures.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The next jittered interval; the failure count is unchanged.
    pub fn next_interval(&mut self) -> Duration {
        let base = self.base();
        self.jitter.apply(base)
    }

    /// Records a failure: the next interval doubles.
    pub fn failed(&mut self) {
        self.failures = self.failures.saturating_add(1);
    }

    /// Records a success (session established): back to `initial`.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Failures since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

/// The keepalive interval for a negotiated hold time: a third of it, or the
/// configured interval when smaller; zero when the hold time is zero.
pub fn keepalive_interval(hold_time: u16, configured: Option<u16>) -> u16 {
    if hold_time == 0 {
        return 0;
    }
    let third = (hold_time / 3).max(1);
    configured.map_or(third, |k| k.clamp(1, third))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max_with_bounded_jitter() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30), 7);
        let mut bases = Vec::new();
        for _ in 0..8 {
            let base = b.base();
            for _ in 0..50 {
                let d = b.next_interval();
                assert!(d <= base && d >= base.mul_f64(0.75), "{d:?} vs {base:?}");
            }
            bases.push(base.as_secs());
            b.failed();
        }
        assert_eq!(bases, [1, 2, 4, 8, 16, 30, 30, 30]);
        b.reset();
        assert_eq!(b.base(), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_deterministic_per_seed_and_varies() {
        let run = |seed| {
            let mut b = Backoff::new(Duration::from_secs(8), Duration::from_secs(8), seed);
            (0..16).map(|_| b.next_interval()).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
        let values = run(3);
        assert!(values.iter().any(|v| *v != values[0]));
    }

    #[test]
    fn keepalive_cadence() {
        assert_eq!(keepalive_interval(90, None), 30);
        assert_eq!(keepalive_interval(90, Some(10)), 10);
        assert_eq!(keepalive_interval(9, Some(10)), 3);
        assert_eq!(keepalive_interval(3, None), 1);
        assert_eq!(keepalive_interval(0, Some(10)), 0);
    }
}
