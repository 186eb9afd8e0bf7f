//! A set of `u128` numbers stored as maximal runs of consecutive numbers.
//!
//! The allocator keeps, per pool and family, the *ordinals* (positions in the
//! pool's sequence of usable addresses) that are in use. Stored as runs, the
//! lowest unused ordinal is one lookup away (the end of the run starting at 0,
//! plus one), whatever the size of the pool and however many addresses are used.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent runs `start -> last` (both inclusive).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct IntervalSet {
    runs: BTreeMap<u128, u128>,
}

impl IntervalSet {
    /// The run holding `n`, as (start, last).
    fn run_of(&self, n: u128) -> Option<(u128, u128)> {
        self.runs
            .range(..=n)
            .next_back()
            .filter(|(_, last)| **last >= n)
            .map(|(s, l)| (*s, *l))
    }

    pub(crate) fn contains(&self, n: u128) -> bool {
        self.run_of(n).is_some()
    }

    /// Adds `n`; false if it was already there.
    pub(crate) fn insert(&mut self, n: u128) -> bool {
        if self.contains(n) {
            return false;
        }
        let mut start = n;
        let mut last = n;
        // Join the run ending just before n.
        if let Some(prev) = n.checked_sub(1)
            && let Some((s, _)) = self.run_of(prev)
        {
            self.runs.remove(&s);
            start = s;
        }
        // Join the run starting just after n.
        if let Some(next) = n.checked_add(1)
            && let Some(l) = self.runs.remove(&next)
        {
            last = l;
        }
        self.runs.insert(start, last);
        true
    }

    /// Removes `n`; false if it was not there.
    pub(crate) fn remove(&mut self, n: u128) -> bool {
        let Some((start, last)) = self.run_of(n) else {
            return false;
        };
        self.runs.remove(&start);
        if start < n {
            self.runs.insert(start, n - 1);
        }
        if n < last {
            self.runs.insert(n + 1, last);
        }
        true
    }

    /// The lowest number not in the set (None only if the set holds 0..=u128::MAX).
    pub(crate) fn lowest_absent(&self) -> Option<u128> {
        match self.runs.first_key_value() {
            Some((0, last)) => last.checked_add(1),
            _ => Some(0),
        }
    }

    /// Number of runs (for tests).
    #[cfg(test)]
    pub(crate) fn run_count(&self) -> usize {
        self.runs.len()
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
