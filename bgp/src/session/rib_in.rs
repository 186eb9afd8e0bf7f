//! Routes received from the peer: validated and counted, never installed.
//! Only the prefixes are kept (to count withdrawals and track stale routes
//! during graceful restart), up to a configured number.

use std::collections::{BTreeMap, HashMap};

use crate::prefix::{AddressFamily, Prefix};

/// Counters of one family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyCounts {
    /// Announcements received (re-announcements included).
    pub announced: u64,
    /// Withdrawals received (treat-as-withdraw included).
    pub withdrawn: u64,
    /// Prefixes currently stored.
    pub current: usize,
    /// Stored prefixes marked stale (graceful restart, enhanced route
    /// refresh).
    pub stale: usize,
    /// Announcements of new prefixes not stored because of the cap.
    pub not_stored: u64,
}

/// What storing an announced prefix did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Stored (new, or a refresh of a known prefix).
    Yes,
    /// The cap is reached; `first` is true the first time it happens.
    OverCap { first: bool },
}

/// The received prefixes.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdjRibIn {
    /// Prefix → stale flag.
    routes: HashMap<Prefix, bool>,
    counts: BTreeMap<AddressFamily, FamilyCounts>,
    cap: usize,
    over_cap_reported: bool,
}

impl AdjRibIn {
    pub(crate) fn new(cap: usize) -> Self {
        AdjRibIn {
            cap,
            ..Default::default()
        }
    }

    fn counts_mut(&mut self, family: AddressFamily) -> &mut FamilyCounts {
        self.counts.entry(family).or_default()
    }

    pub(crate) fn counts(&self) -> &BTreeMap<AddressFamily, FamilyCounts> {
        &self.counts
    }

    pub(crate) fn family_counts(&self, family: AddressFamily) -> FamilyCounts {
        self.counts.get(&family).copied().unwrap_or_default()
    }

    pub(crate) fn len(&self) -> usize {
        self.routes.len()
    }

    pub(crate) fn announce(&mut self, prefix: Prefix) -> Stored {
        let family = prefix.unicast_family();
        self.counts_mut(family).announced += 1;
        let full = self.routes.len() >= self.cap;
        match self.routes.get_mut(&prefix) {
            Some(stale) => {
                if std::mem::replace(stale, false) {
                    self.counts_mut(family).stale -= 1;
                }
                Stored::Yes
            }
            None if full => {
                self.counts_mut(family).not_stored += 1;
                let first = !std::mem::replace(&mut self.over_cap_reported, true);
                Stored::OverCap { first }
            }
            None => {
                self.routes.insert(prefix, false);
                self.counts_mut(family).current += 1;
                Stored::Yes
            }
        }
    }

    pub(crate) fn withdraw(&mut self, prefix: Prefix) {
        let family = prefix.unicast_family();
        let removed = self.routes.remove(&prefix);
        let counts = self.counts_mut(family);
        counts.withdrawn += 1;
        if let Some(stale) = removed {
            counts.current -= 1;
            if stale {
                counts.stale -= 1;
            }
        }
    }

    /// Marks every route of the families `keep` accepts as stale and drops
    /// the others. Returns the number marked.
    pub(crate) fn mark_stale(&mut self, keep: impl Fn(AddressFamily) -> bool) -> usize {
        self.routes.retain(|p, _| keep(p.unicast_family()));
        for stale in self.routes.values_mut() {
            *stale = true;
        }
        self.recount();
        self.routes.len()
    }

    /// Marks the routes of one family stale (enhanced route refresh BoRR).
    pub(crate) fn mark_family_stale(&mut self, family: AddressFamily) {
        for (p, stale) in &mut self.routes {
            if p.unicast_family() == family {
                *stale = true;
            }
        }
        self.recount();
    }

    /// Removes stale routes of `family`, or of every family. Returns how many.
    pub(crate) fn purge_stale(&mut self, family: Option<AddressFamily>) -> usize {
        let before = self.routes.len();
        self.routes
            .retain(|p, stale| !*stale || family.is_some_and(|f| p.unicast_family() != f));
        self.recount();
        before - self.routes.len()
    }

    /// Families that still have stale routes.
    pub(crate) fn stale_families(&self) -> Vec<AddressFamily> {
        self.counts
            .iter()
            .filter(|(_, c)| c.stale > 0)
            .map(|(f, _)| *f)
            .collect()
    }

    pub(crate) fn stale_total(&self) -> usize {
        self.counts.values().map(|c| c.stale).sum()
    }

    /// Forgets every route; the announce/withdraw counters stay.
    pub(crate) fn clear(&mut self) {
        self.routes.clear();
        self.over_cap_reported = false;
        self.recount();
    }

    fn recount(&mut self) {
        for c in self.counts.values_mut() {
            c.current = 0;
            c.stale = 0;
        }
        let mut counts = std::mem::take(&mut self.counts);
        for (p, stale) in &self.routes {
            let c = counts.entry(p.unicast_family()).or_default();
            c.current += 1;
            if *stale {
                c.stale += 1;
            }
        }
        self.counts = counts;
        if self.routes.len() < self.cap {
            self.over_cap_reported = false;
        }
    }
}
