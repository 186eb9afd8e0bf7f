//! Time as an input: the core never reads a clock.
//!
//! The I/O layer converts its clock into an [`Instant`], typically with
//! `Instant::from_duration(start.elapsed())` for a `std::time::Instant`
//! `start` taken once; tests simply make up instants.

use std::ops::{Add, Sub};
use std::time::Duration;

/// A point in time, measured as the time elapsed since an arbitrary
/// start chosen by the caller. Only differences and ordering matter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(Duration);

impl Instant {
    /// The start of time.
    pub const ZERO: Instant = Instant(Duration::ZERO);

    /// The instant `since_start` after the start.
    pub const fn from_duration(since_start: Duration) -> Self {
        Instant(since_start)
    }

    /// The instant `ms` milliseconds after the start.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(Duration::from_millis(ms))
    }

    /// The time elapsed since the start.
    pub const fn since_start(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    /// Saturates at the largest representable instant instead of panicking.
    fn add(self, rhs: Duration) -> Instant {
        Instant(self.0.checked_add(rhs).unwrap_or(Duration::MAX))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;

    /// Saturates at [`Instant::ZERO`] instead of panicking.
    fn sub(self, rhs: Duration) -> Instant {
        Instant(self.0.saturating_sub(rhs))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    /// Saturates at zero instead of panicking.
    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1500);
        assert_eq!(t + Duration::from_millis(500), Instant::from_millis(2000));
        assert_eq!(t - Instant::from_millis(500), Duration::from_secs(1));
        assert_eq!(Instant::ZERO - t, Duration::ZERO);
        assert_eq!(t - Duration::from_secs(1), Instant::from_millis(500));
        assert_eq!(t - Duration::from_secs(2), Instant::ZERO);
        assert_eq!(
            Instant::from_duration(Duration::MAX) + Duration::from_secs(1),
            Instant::from_duration(Duration::MAX)
        );
    }
}
