//! Leader election on a `coordination.k8s.io/v1` Lease, as a sans-IO state
//! machine: the I/O layer reads the Lease, hands it here with the time, and
//! writes what comes back. Only the leader allocates.
//!
//! Expiry is judged on this process's own monotonic clock: a Lease is expired
//! when its record has not changed for `lease_duration` since we first saw that
//! record, so clock skew between nodes cannot make two replicas lead at once.

use std::time::Duration;

/// The part of a Lease's spec that election reads and writes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    pub lease_duration_seconds: Option<i32>,
    /// Wall-clock times as written to the Lease (RFC 3339 with microseconds).
    pub acquire_time: Option<String>,
    pub renew_time: Option<String>,
    pub transitions: i32,
}

/// What the I/O layer must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No Lease exists: create it with this record.
    Create(LeaseRecord),
    /// Write this record over the Lease that was read (with its resourceVersion,
    /// so a concurrent writer makes the write fail instead of both winning).
    Update(LeaseRecord),
    /// Someone else leads; read again after `retry`.
    Wait { leader: Option<String> },
}

/// Timing of the election (client-go's defaults are 15 s / 10 s / 2 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease holds without renewal before others may take it.
    pub lease_duration: Duration,
    /// The leader gives up if it could not renew for this long (< lease_duration).
    pub renew_deadline: Duration,
    /// How often to read/renew.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// Leader election for one identity. Times are monotonic durations since an
/// arbitrary start (`now`), plus the wall-clock string to write (`wall`).
#[derive(Debug, Clone)]
pub struct Elector {
    identity: String,
    timing: Timing,
    observed: Option<(LeaseRecord, Duration)>,
    /// When we last wrote the Lease successfully as its holder.
    last_renew: Option<Duration>,
    pending: Option<LeaseRecord>,
}

impl Elector {
    pub fn new(identity: impl Into<String>, timing: Timing) -> Elector {
        Elector {
            identity: identity.into(),
            timing,
            observed: None,
            last_renew: None,
            pending: None,
        }
    }

    pub fn identity(&self) -> &str {
        &self.identity
    }

    pub fn timing(&self) -> Timing {
        self.timing
    }

    fn mine(&self, wall: &str, acquire: Option<String>, transitions: i32) -> LeaseRecord {
        LeaseRecord {
            holder: Some(self.identity.clone()),
            lease_duration_seconds: Some(self.timing.lease_duration.as_secs().max(1) as i32),
            acquire_time: acquire.or_else(|| Some(wall.to_string())),
            renew_time: Some(wall.to_string()),
            transitions,
        }
    }

    /// Decides what to do with the Lease as read now (`None`: it does not exist).
    pub fn on_read(&mut self, lease: Option<&LeaseRecord>, now: Duration, wall: &str) -> Action {
        let Some(rec) = lease else {
            let rec = self.mine(wall, None, 0);
            self.pending = Some(rec.clone());
            return Action::Create(rec);
        };
        let changed = self.observed.as_ref().is_none_or(|(seen, _)| seen != rec);
        if changed {
            self.observed = Some((rec.clone(), now));
        }
        let observed_at = self.observed.as_ref().map(|(_, t)| *t).unwrap_or(now);
        let holder = rec.holder.as_deref().filter(|h| !h.is_empty());
        if holder == Some(self.identity.as_str()) {
            let next = self.mine(wall, rec.acquire_time.clone(), rec.transitions);
            self.pending = Some(next.clone());
            return Action::Update(next);
        }
        let duration = rec
            .lease_duration_seconds
            .filter(|s| *s > 0)
            .map(|s| Duration::from_secs(s as u64))
            .unwrap_or(self.timing.lease_duration);
        let expired = holder.is_none() || now >= observed_at + duration;
        if expired {
            let next = self.mine(wall, None, rec.transitions.saturating_add(1));
            self.pending = Some(next.clone());
            Action::Update(next)
        } else {
            // Someone else leads; we are not leading whatever we thought.
            self.last_renew = None;
            self.pending = None;
            Action::Wait {
                leader: holder.map(str::to_string),
            }
        }
    }

    /// Reports whether the Create/Update from [`Elector::on_read`] succeeded.
    pub fn on_write(&mut self, ok: bool, now: Duration) {
        let pending = self.pending.take();
        if ok {
            if let Some(rec) = pending {
                self.observed = Some((rec, now));
            }
            self.last_renew = Some(now);
        }
    }

    /// Whether this process leads now: it renewed within the renew deadline.
    pub fn is_leader(&self, now: Duration) -> bool {
        self.last_renew
            .is_some_and(|t| now.saturating_sub(t) < self.timing.renew_deadline)
    }

    /// A record that releases the Lease on clean shutdown, so a standby takes
    /// over at once instead of after the lease duration.
    pub fn release(&mut self, current: &LeaseRecord) -> Option<LeaseRecord> {
        if current.holder.as_deref() != Some(self.identity.as_str()) {
            return None;
        }
        self.last_renew = None;
        Some(LeaseRecord {
            holder: None,
            lease_duration_seconds: Some(1),
            ..current.clone()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A fake API server Lease with optimistic concurrency.
    #[derive(Default)]
    struct Store {
        lease: Option<LeaseRecord>,
        version: u64,
    }

    impl Store {
        fn step(&mut self, e: &mut Elector, now: Duration) -> bool {
            let read_version = self.version;
            let action = e.on_read(self.lease.as_ref(), now, &format!("t={}", now.as_millis()));
            let ok = match action {
                Action::Create(rec) if self.lease.is_none() => {
                    self.lease = Some(rec);
                    true
                }
                Action::Update(rec) if self.version == read_version && self.lease.is_some() => {
                    self.lease = Some(rec);
                    true
                }
                Action::Wait { .. } => return e.is_leader(now),
                _ => false,
            };
            if ok {
                self.version += 1;
            }
            e.on_write(ok, now);
            e.is_leader(now)
        }
    }

    #[test]
    fn first_replica_creates_and_leads_second_waits() {
        let mut store = Store::default();
        let mut a = Elector::new("a", Timing::default());
        let mut b = Elector::new("b", Timing::default());
        assert!(store.step(&mut a, s(0)));
        assert!(!store.step(&mut b, s(0)));
        for t in (2..60).step_by(2) {
            assert!(store.step(&mut a, s(t)), "a keeps leading at {t}s");
            assert!(!store.step(&mut b, s(t)), "b waits at {t}s");
        }
        assert_eq!(store.lease.as_ref().unwrap().transitions, 0);
    }

    #[test]
    fn standby_takes_over_within_the_lease_duration_after_leader_dies() {
        let mut store = Store::default();
        let mut a = Elector::new("a", Timing::default());
        let mut b = Elector::new("b", Timing::default());
        store.step(&mut a, s(0));
        store.step(&mut b, s(1));
        store.step(&mut a, s(2)); // last renewal; a dies after this.
        let mut took_over = None;
        for t in 3..40 {
            if store.step(&mut b, s(t)) {
                took_over = Some(t);
                break;
            }
        }
        let t = took_over.expect("b takes over");
        // b first saw a's last record at 3 s; expiry is 15 s after that.
        assert_eq!(t, 18);
        assert!(t - 2 <= 16, "within lease duration (+1 s of polling)");
        let lease = store.lease.as_ref().unwrap();
        assert_eq!(lease.holder.as_deref(), Some("b"));
        assert_eq!(lease.transitions, 1);
    }

    #[test]
    fn leader_that_cannot_renew_steps_down_before_others_take_over() {
        let timing = Timing::default();
        let mut a = Elector::new("a", timing);
        let rec = match a.on_read(None, s(0), "w") {
            Action::Create(r) => r,
            other => panic!("{other:?}"),
        };
        a.on_write(true, s(0));
        assert!(a.is_leader(s(9)));
        // Renewals fail (API server unreachable).
        let _ = a.on_read(Some(&rec), s(4), "w");
        a.on_write(false, s(4));
        assert!(!a.is_leader(s(10)), "gives up at the renew deadline");
        assert!(timing.renew_deadline < timing.lease_duration);
    }

    #[test]
    fn conflicting_writes_leave_one_leader() {
        let mut store = Store::default();
        let mut a = Elector::new("a", Timing::default());
        let mut b = Elector::new("b", Timing::default());
        // Both read "no lease" at once; only the first create lands.
        let act_a = a.on_read(None, s(0), "w");
        let act_b = b.on_read(None, s(0), "w");
        assert!(matches!(act_a, Action::Create(_)) && matches!(act_b, Action::Create(_)));
        if let Action::Create(r) = act_a {
            store.lease = Some(r);
            store.version += 1;
        }
        a.on_write(true, s(0));
        b.on_write(false, s(0));
        assert!(a.is_leader(s(1)) && !b.is_leader(s(1)));
    }

    #[test]
    fn released_lease_is_taken_at_once() {
        let mut store = Store::default();
        let mut a = Elector::new("a", Timing::default());
        let mut b = Elector::new("b", Timing::default());
        store.step(&mut a, s(0));
        store.step(&mut b, s(1));
        let released = a.release(store.lease.as_ref().unwrap()).unwrap();
        assert!(!a.is_leader(s(2)));
        store.lease = Some(released);
        store.version += 1;
        assert!(
            store.step(&mut b, s(2)),
            "no holder: b takes it immediately"
        );
    }
}
