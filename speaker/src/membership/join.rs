//! When a starting speaker trusts its own view of the membership (its
//! "join"): until then it answers for no layer-2 IP, since a view that
//! lacks live members would elect this node for their IPs too.
//!
//! A starting speaker announces itself to every other Node at once; each
//! live one answers within a round trip (foca's feed: itself and the
//! members it knows). So the view is complete, and the speaker joins, when
//! the first of these holds:
//! - every other Node it was told of is a live member;
//! - some other member was heard, and then [`Join::settle`] (two probe
//!   periods) passed: the live ones have answered by then, and a Node
//!   that has not is down (a restart while another node is down no longer
//!   waits the whole [`JOIN_WAIT`]);
//! - [`JOIN_WAIT`] passed since the start (nobody answers: alone).
//!
//! Pure: time is an input, as for [`super::Core`]; the I/O task and the
//! simulation drive it the same way.

use std::time::Duration;

use super::Timing;

/// The longest a new speaker waits to hear from the others before it
/// trusts its own view (when none answers, it is alone).
pub const JOIN_WAIT: Duration = Duration::from_secs(2);

/// One start's join.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Join {
    started: Duration,
    settle: Duration,
    first_contact: Option<Duration>,
    joined: bool,
}

impl Join {
    /// A speaker that started at `now`, with the membership's `timing`.
    pub fn new(now: Duration, timing: Timing) -> Join {
        Join {
            started: now,
            settle: timing.probe_period * 2,
            first_contact: None,
            joined: false,
        }
    }

    /// How long after the first other member is heard the view is taken
    /// as complete.
    pub fn settle(&self) -> Duration {
        self.settle
    }

    /// Whether it has joined (once joined, always: later departures are
    /// failures, not a join).
    pub fn joined(&self) -> bool {
        self.joined
    }

    /// Takes the view at `now` into account: whether some other member
    /// is live, and whether every other Node it was told of is. Returns
    /// [`joined`](Self::joined).
    pub fn update(&mut self, now: Duration, others_live: bool, all_peers_live: bool) -> bool {
        if self.joined {
            return true;
        }
        if others_live && self.first_contact.is_none() {
            self.first_contact = Some(now);
        }
        self.joined = all_peers_live
            || now >= self.started + JOIN_WAIT
            || self.first_contact.is_some_and(|t| now >= t + self.settle);
        self.joined
    }

    /// When [`update`](Self::update) must run again even if nothing is
    /// heard (None once joined).
    pub fn deadline(&self) -> Option<Duration> {
        if self.joined {
            return None;
        }
        let wait = self.started + JOIN_WAIT;
        Some(
            self.first_contact
                .map_or(wait, |t| (t + self.settle).min(wait)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn joins_when_every_peer_is_live() {
        let mut j = Join::new(ms(0), Timing::default());
        assert!(!j.update(ms(1), false, false));
        assert_eq!(j.deadline(), Some(JOIN_WAIT));
        assert!(j.update(ms(5), true, true));
        assert_eq!(j.deadline(), None);
        // Once joined, always.
        assert!(j.update(ms(6), false, false));
    }

    #[test]
    fn a_peer_that_never_answers_costs_two_probe_periods_not_the_join_wait() {
        let t = Timing::default();
        let mut j = Join::new(ms(1000), t);
        // node2 answered at 1,003 ms; node3 (down) never does.
        assert!(!j.update(ms(1003), true, false));
        assert_eq!(j.deadline(), Some(ms(1003) + t.probe_period * 2));
        assert!(!j.update(ms(1003) + t.probe_period, true, false));
        assert!(j.update(ms(1003) + t.probe_period * 2, true, false));
    }

    #[test]
    fn alone_it_joins_after_the_join_wait() {
        let mut j = Join::new(ms(0), Timing::fast());
        assert!(!j.update(JOIN_WAIT - ms(1), false, false));
        assert_eq!(j.deadline(), Some(JOIN_WAIT));
        assert!(j.update(JOIN_WAIT, false, false));
    }

    #[test]
    fn the_settle_time_never_outlasts_the_join_wait() {
        let mut j = Join::new(ms(0), Timing::default());
        assert!(!j.update(JOIN_WAIT - ms(10), true, false));
        assert_eq!(j.deadline(), Some(JOIN_WAIT));
    }
}
