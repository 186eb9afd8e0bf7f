//! A set of `u128` numbers stored as maximal runs of consecutive numbers.
//!
//! The allocator keeps, per pool and family, the *ordinals* (positions in the
//! pool's sequence of usable addresses) that are in use. Stored as runs, the
//! lowest unused ordinal is one lookup away (the end of the run starting at 0,
//! plus one), whatever the size of the pool and however many addresses are used.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent runs `start -> last` (both inclusive). A set of one
/// run (the usual case: addresses handed out in order) needs no allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    runs: Runs,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum Runs {
    #[default]
    Empty,
    One(u128, u128),
    /// Two runs or more.
    Many(BTreeMap<u128, u128>),
}

impl IntervalSet {
    /// The run holding `n`, as (start, last).
    pub(crate) fn run_of(&self, n: u128) -> Option<(u128, u128)> {
        match &self.runs {
            Runs::Empty => None,
            Runs::One(s, l) => (*s <= n && n <= *l).then_some((*s, *l)),
            Runs::Many(runs) => runs
                .range(..=n)
                .next_back()
                .filter(|(_, last)| **last >= n)
                .map(|(s, l)| (*s, *l)),
        }
    }

    pub(crate) fn contains(&self, n: u128) -> bool {
        self.run_of(n).is_some()
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self.runs, Runs::Empty)
    }

    /// The lowest member that is `n` or above.
    pub(crate) fn first_at_or_after(&self, n: u128) -> Option<u128> {
        match &self.runs {
            Runs::Empty => None,
            Runs::One(s, l) => (n <= *l).then_some(n.max(*s)),
            Runs::Many(runs) => match self.run_of(n) {
                Some(_) => Some(n),
                None => runs.range(n..).next().map(|(s, _)| *s),
            },
        }
    }

    fn take_map(&mut self) -> BTreeMap<u128, u128> {
        match std::mem::take(&mut self.runs) {
            Runs::Empty => BTreeMap::new(),
            Runs::One(s, l) => BTreeMap::from([(s, l)]),
            Runs::Many(m) => m,
        }
    }

    fn put_map(&mut self, map: BTreeMap<u128, u128>) {
        self.runs = match map.len() {
            0 => Runs::Empty,
            1 => {
                let (s, l) = map.into_iter().next().expect("one run");
                Runs::One(s, l)
            }
            _ => Runs::Many(map),
        };
    }

    /// Adds `n`; false if it was already there.
    pub(crate) fn insert(&mut self, n: u128) -> bool {
        if self.contains(n) {
            return false;
        }
        // The cheap cases: empty, or growing the only run at either end.
        match &mut self.runs {
            Runs::Empty => {
                self.runs = Runs::One(n, n);
                return true;
            }
            Runs::One(s, _) if n.checked_add(1) == Some(*s) => {
                *s = n;
                return true;
            }
            Runs::One(_, l) if l.checked_add(1) == Some(n) => {
                *l = n;
                return true;
            }
            _ => {}
        }
        let mut runs = self.take_map();
        let mut start = n;
        let mut last = n;
        // Join the run ending just before n.
        if let Some(prev) = n.checked_sub(1)
            && let Some((s, _)) = runs
                .range(..=prev)
                .next_back()
                .filter(|(_, l)| **l == prev)
                .map(|(s, l)| (*s, *l))
        {
            runs.remove(&s);
            start = s;
        }
        // Join the run starting just after n.
        if let Some(next) = n.checked_add(1)
            && let Some(l) = runs.remove(&next)
        {
            last = l;
        }
        runs.insert(start, last);
        self.put_map(runs);
        true
    }

    /// Removes `n`; false if it was not there.
    pub(crate) fn remove(&mut self, n: u128) -> bool {
        let Some((start, last)) = self.run_of(n) else {
            return false;
        };
        if let Runs::One(..) = self.runs {
            self.runs = match (start < n, n < last) {
                (false, false) => Runs::Empty,
                (true, false) => Runs::One(start, n - 1),
                (false, true) => Runs::One(n + 1, last),
                (true, true) => Runs::Many(BTreeMap::from([(start, n - 1), (n + 1, last)])),
            };
            return true;
        }
        let mut runs = self.take_map();
        runs.remove(&start);
        if start < n {
            runs.insert(start, n - 1);
        }
        if n < last {
            runs.insert(n + 1, last);
        }
        self.put_map(runs);
        true
    }

    /// The lowest number not in the set (None only if the set holds 0..=u128::MAX).
    pub(crate) fn lowest_absent(&self) -> Option<u128> {
        let first = match &self.runs {
            Runs::Empty => None,
            Runs::One(s, l) => Some((*s, *l)),
            Runs::Many(runs) => runs.first_key_value().map(|(s, l)| (*s, *l)),
        };
        match first {
            Some((0, last)) => last.checked_add(1),
            _ => Some(0),
        }
    }

    /// Number of runs (for tests).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        match &self.runs {
            Runs::Empty => 0,
            Runs::One(..) => 1,
            Runs::Many(m) => m.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_merge_and_split() {
        let mut s = IntervalSet::default();
        assert_eq!(s.lowest_absent(), Some(0));
        assert!(s.insert(1));
        assert_eq!(s.lowest_absent(), Some(0));
        assert!(s.insert(0));
        assert!(!s.insert(0));
        assert!(s.insert(3));
        assert_eq!(s.run_count(), 2);
        assert_eq!(s.lowest_absent(), Some(2));
        assert!(s.insert(2));
        assert_eq!(s.run_count(), 1);
        assert_eq!(s.lowest_absent(), Some(4));
        assert!(s.remove(1));
        assert!(!s.remove(1));
        assert_eq!(s.run_count(), 2);
        assert_eq!(s.lowest_absent(), Some(1));
        assert!(s.contains(0) && !s.contains(1) && s.contains(2) && s.contains(3));
        assert!(s.remove(0));
        assert_eq!(s.lowest_absent(), Some(0));
    }

    #[test]
    fn first_at_or_after_walks_runs() {
        let mut s = IntervalSet::default();
        assert_eq!(s.first_at_or_after(0), None);
        for n in [5, 6, 7, 20, 21] {
            s.insert(n);
        }
        assert_eq!(s.run_count(), 2);
        assert_eq!(s.first_at_or_after(0), Some(5));
        assert_eq!(s.first_at_or_after(6), Some(6));
        assert_eq!(s.first_at_or_after(8), Some(20));
        assert_eq!(s.first_at_or_after(22), None);
        assert_eq!(s.run_of(21), Some((20, 21)));
        // Back to one run, kept inline.
        s.remove(20);
        s.remove(21);
        assert_eq!(s.run_count(), 1);
        assert_eq!(s.first_at_or_after(7), Some(7));
        assert_eq!(s.first_at_or_after(8), None);
        assert!(!s.is_empty());
        for n in [5, 6, 7] {
            s.remove(n);
        }
        assert!(s.is_empty());
    }

    #[test]
    fn extremes_do_not_overflow() {
        let mut s = IntervalSet::default();
        assert!(s.insert(u128::MAX));
        assert!(s.insert(u128::MAX - 1));
        assert_eq!(s.run_count(), 1);
        assert!(s.remove(u128::MAX));
        assert!(s.contains(u128::MAX - 1));
        assert!(s.insert(0));
        assert_eq!(s.lowest_absent(), Some(1));
    }
}
