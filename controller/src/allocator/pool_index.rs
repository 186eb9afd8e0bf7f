//! Pools compiled for allocation: each family's addresses as a sequence of
//! *ordinals* (0, 1, 2, … in the order the pool's `addresses` are written,
//! skipping `.0`/`.255` arithmetically with `avoidBuggyIPs`), and the set of
//! ordinals in use kept as runs. Nothing here enumerates a pool: every
//! operation costs the same for a /30 and for an IPv6 /64.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ferrolb_config::addr::{AddrCount, AddrRange, Family, to_u128};
use ferrolb_config::crd::{IPAddressPool, ServiceAllocation};
use ferrolb_config::selector;

use super::intervals::IntervalSet;
use super::reconcile::NAMESPACE_NAME_LABEL;
use super::service::Labels;
use super::verdicts::Refusal;

/// Index of a family in per-family arrays.
pub(crate) fn fam_idx(f: Family) -> usize {
    match f {
        Family::V4 => 0,
        Family::V6 => 1,
    }
}

/// Whether an IPv4 address number ends in .0 or .255.
pub(crate) fn is_buggy(n: u128) -> bool {
    matches!(n & 0xff, 0 | 255)
}

/// How many usable numbers lie in `[0, n)`.
fn usable_below(n: u128, skip_buggy: bool) -> u128 {
    if skip_buggy {
        (n >> 8) * 254 + ((n & 0xff).saturating_sub(1)).min(254)
    } else {
        n
    }
}

/// The usable number with `g` usable numbers below it (inverse of [`usable_below`]).
fn nth_usable(g: u128, skip_buggy: bool) -> u128 {
    if skip_buggy {
        (g / 254) * 256 + g % 254 + 1
    } else {
        g
    }
}

/// A contiguous part of one `addresses` entry, not covered by an earlier entry
/// of the same pool, with the ordinals of its usable addresses.
#[derive(Debug, Clone)]
struct Piece {
    lo: u128,
    hi: u128,
    first_ord: u128,
    last_ord: u128,
    skip_buggy: bool,
}

impl Piece {
    fn ordinal(&self, n: u128) -> Option<u128> {
        if n < self.lo || n > self.hi || (self.skip_buggy && is_buggy(n)) {
            return None;
        }
        let rank = usable_below(n, self.skip_buggy) - usable_below(self.lo, self.skip_buggy);
        Some(self.first_ord + rank)
    }

    fn address(&self, ord: u128) -> u128 {
        let g = usable_below(self.lo, self.skip_buggy) + (ord - self.first_ord);
        nth_usable(g, self.skip_buggy)
    }
}

/// One family's addresses of a pool and which of them are in use.
#[derive(Debug, Clone, Default)]
pub(crate) struct Space {
    /// In the order written (so in ordinal order).
    pieces: Vec<Piece>,
    /// Indices into `pieces`, sorted by address (pieces are disjoint).
    by_addr: Vec<usize>,
    used: IntervalSet,
    used_count: u128,
}

impl Space {
    /// Whether the pool has any usable address of this family.
    pub(crate) fn has_addresses(&self) -> bool {
        !self.pieces.is_empty()
    }

    fn piece_at(&self, n: u128) -> Option<&Piece> {
        // Quick rejection by the space's bounds.
        let (first, last) = (self.by_addr.first()?, self.by_addr.last()?);
        if n < self.pieces[*first].lo || n > self.pieces[*last].hi {
            return None;
        }
        let i = self.by_addr.partition_point(|&i| self.pieces[i].lo <= n);
        let p = &self.pieces[*self.by_addr.get(i.checked_sub(1)?)?];
        (n <= p.hi).then_some(p)
    }

    /// The ordinal of address number `n`, if the pool may hand it out.
    pub(crate) fn ordinal_of(&self, n: u128) -> Option<u128> {
        self.piece_at(n)?.ordinal(n)
    }

    /// Whether `n` lies in one of the pool's entries (even if `avoidBuggyIPs`
    /// keeps it from being handed out).
    pub(crate) fn covers(&self, n: u128) -> bool {
        self.piece_at(n).is_some()
    }

    /// The address number with ordinal `ord`.
    pub(crate) fn address_of(&self, ord: u128) -> Option<u128> {
        let i = self.pieces.partition_point(|p| p.last_ord < ord);
        let p = self.pieces.get(i)?;
        (p.first_ord <= ord).then(|| p.address(ord))
    }

    /// Whether every usable address is in use (or there is none).
    pub(crate) fn is_full(&self) -> bool {
        match self.pieces.last() {
            // used_count counts distinct ordinals, all <= last_ord.
            Some(p) => self.used_count.checked_sub(1) == Some(p.last_ord),
            None => true,
        }
    }

    /// The lowest unused address, as (ordinal, address number).
    pub(crate) fn lowest_free(&self) -> Option<(u128, u128)> {
        if self.is_full() {
            return None;
        }
        let ord = self.used.lowest_absent()?;
        Some((ord, self.address_of(ord)?))
    }

    /// Address ranges (number pairs) of the pool in ordinal order, each with the
    /// ordinal of its first usable address.
    pub(crate) fn ranges(&self) -> impl Iterator<Item = (u128, u128, u128)> + '_ {
        self.pieces.iter().map(|p| (p.lo, p.hi, p.first_ord))
    }

    /// Records that address `n` is in use (no-op if not the pool's).
    pub(crate) fn mark(&mut self, n: u128) {
        if let Some(ord) = self.ordinal_of(n)
            && self.used.insert(ord)
        {
            self.used_count += 1;
        }
    }

    /// Records that address `n` is no longer in use.
    pub(crate) fn unmark(&mut self, n: u128) {
        if let Some(ord) = self.ordinal_of(n)
            && self.used.remove(ord)
        {
            self.used_count -= 1;
        }
    }

    pub(crate) fn used_count(&self) -> u128 {
        self.used_count
    }

    /// How many addresses the pool may hand out (those `avoidBuggyIPs`
    /// skips not counted).
    pub(crate) fn capacity(&self) -> AddrCount {
        match self.pieces.last() {
            Some(p) => AddrCount::from(p.last_ord).plus(AddrCount::from(1u64)),
            None => AddrCount::ZERO,
        }
    }
}

/// A Namespace's name and labels, with `kubernetes.io/metadata.name` added
/// (Kubernetes sets it; files often lack it) the first time a selector needs them.
pub(crate) struct NsLabels<'a> {
    pub(crate) name: &'a str,
    given: Option<&'a BTreeMap<String, String>>,
    full: OnceCell<Cow<'a, BTreeMap<String, String>>>,
}

impl<'a> NsLabels<'a> {
    pub(crate) fn new(name: &'a str, given: Option<&'a BTreeMap<String, String>>) -> Self {
        NsLabels {
            name,
            given,
            full: OnceCell::new(),
        }
    }

    pub(crate) fn labels(&self) -> &BTreeMap<String, String> {
        self.full.get_or_init(|| match self.given {
            Some(l) if l.contains_key(NAMESPACE_NAME_LABEL) => Cow::Borrowed(l),
            other => {
                let mut l = other.cloned().unwrap_or_default();
                l.insert(NAMESPACE_NAME_LABEL.to_string(), self.name.to_string());
                Cow::Owned(l)
            }
        })
    }
}

/// An `IPAddressPool` ready for allocation.
#[derive(Debug, Clone)]
pub(crate) struct PoolIndex {
    pub(crate) name: Arc<str>,
    pub(crate) auto_assign: bool,
    pub(crate) priority: Option<i32>,
    allocation: Option<ServiceAllocation>,
    spaces: [Space; 2],
}

/// Subtracts the sorted, disjoint `covered` intervals from `[lo, hi]`.
fn uncovered(lo: u128, hi: u128, covered: &[(u128, u128)]) -> Vec<(u128, u128)> {
    let mut out = Vec::new();
    let mut cur = lo;
    for &(c_lo, c_hi) in covered {
        if c_hi < cur {
            continue;
        }
        if c_lo > hi {
            break;
        }
        if c_lo > cur {
            out.push((cur, c_lo - 1));
        }
        match c_hi.checked_add(1) {
            Some(n) if n <= hi => cur = n,
            _ => return out,
        }
    }
    out.push((cur, hi));
    out
}

fn add_covered(covered: &mut Vec<(u128, u128)>, lo: u128, hi: u128) {
    covered.push((lo, hi));
    covered.sort_unstable();
    let mut merged: Vec<(u128, u128)> = Vec::with_capacity(covered.len());
    for &(l, h) in covered.iter() {
        if let Some(last) = merged.last_mut()
            && last.1.checked_add(1).is_none_or(|n| n >= l)
        {
            last.1 = last.1.max(h);
            continue;
        }
        merged.push((l, h));
    }
    *covered = merged;
}

impl PoolIndex {
    /// Compiles a pool. Entries that do not parse are skipped (validation reports
    /// them); parts of an entry already covered by an earlier entry are skipped.
    pub(crate) fn compile(pool: &IPAddressPool) -> PoolIndex {
        let avoid_buggy = pool.spec.avoid_buggy_ips;
        let mut spaces: [Space; 2] = Default::default();
        let mut covered: [Vec<(u128, u128)>; 2] = Default::default();
        let mut next_ord: [Option<u128>; 2] = [Some(0), Some(0)];
        for entry in &pool.spec.addresses {
            let Ok(range) = AddrRange::parse(entry) else {
                continue;
            };
            let f = fam_idx(range.family());
            let skip_buggy = avoid_buggy && range.family() == Family::V4;
            let (lo, hi) = (to_u128(&range.first()), to_u128(&range.last()));
            for (a, b) in uncovered(lo, hi, &covered[f]) {
                let Some(first_ord) = next_ord[f] else { break };
                // Number of usable addresses minus one; None if there are none.
                let span = if skip_buggy {
                    (usable_below(b + 1, true) - usable_below(a, true)).checked_sub(1)
                } else {
                    Some(b - a)
                };
                let Some(span) = span else { continue };
                let Some(last_ord) = first_ord.checked_add(span) else {
                    break;
                };
                spaces[f].pieces.push(Piece {
                    lo: a,
                    hi: b,
                    first_ord,
                    last_ord,
                    skip_buggy,
                });
                next_ord[f] = last_ord.checked_add(1);
            }
            add_covered(&mut covered[f], lo, hi);
        }
        for space in &mut spaces {
            let mut order: Vec<usize> = (0..space.pieces.len()).collect();
            order.sort_by_key(|&i| space.pieces[i].lo);
            space.by_addr = order;
        }
        PoolIndex {
            name: pool.metadata.name.as_deref().unwrap_or_default().into(),
            auto_assign: pool.spec.auto_assign,
            priority: pool
                .spec
                .service_allocation
                .as_ref()
                .and_then(|a| a.priority),
            allocation: pool.spec.service_allocation.clone(),
            spaces,
        }
    }

    pub(crate) fn space(&self, f: Family) -> &Space {
        &self.spaces[fam_idx(f)]
    }

    pub(crate) fn space_mut(&mut self, f: Family) -> &mut Space {
        &mut self.spaces[fam_idx(f)]
    }

    /// Whether the pool has both IPv4 and IPv6 addresses.
    pub(crate) fn is_dual_stack(&self) -> bool {
        self.spaces.iter().all(Space::has_addresses)
    }

    /// Whether the pool may hand out `ip` (in an entry, and not skipped by `avoidBuggyIPs`).
    pub(crate) fn holds(&self, ip: &IpAddr) -> bool {
        self.space(Family::of(ip)).ordinal_of(to_u128(ip)).is_some()
    }

    /// Whether `ip` lies in one of the pool's entries.
    pub(crate) fn covers(&self, ip: &IpAddr) -> bool {
        self.space(Family::of(ip)).covers(to_u128(ip))
    }

    /// Whether `serviceAllocation` lets a Service in `namespace` with these
    /// labels use the pool: every restriction given (namespaces, namespace
    /// selectors, service selectors) must be met; none given admits all.
    pub(crate) fn admits(&self, namespace: &NsLabels<'_>, service_labels: &Labels) -> bool {
        self.admission(namespace, service_labels).is_ok()
    }

    /// [`admits`](PoolIndex::admits), saying which restriction of
    /// `serviceAllocation` is not met when one is not (checked in the order
    /// namespaces, namespace selectors, service selectors).
    pub(crate) fn admission(
        &self,
        namespace: &NsLabels<'_>,
        service_labels: &Labels,
    ) -> Result<(), Refusal> {
        let Some(a) = self.allocation.as_ref() else {
            return Ok(());
        };
        if !(a.namespaces.is_empty() || a.namespaces.iter().any(|n| n == namespace.name)) {
            return Err(Refusal::NamespaceNotListed {
                namespace: namespace.name.to_string(),
                namespaces: a.namespaces.clone(),
            });
        }
        if !(a.namespace_selectors.is_empty()
            || selector::matches_any(&a.namespace_selectors, namespace.labels()))
        {
            return Err(Refusal::NamespaceNotSelected {
                namespace: namespace.name.to_string(),
            });
        }
        if !selector::matches_any_with(&a.service_selectors, |k| service_labels.get(k)) {
            return Err(Refusal::ServiceNotSelected);
        }
        Ok(())
    }

    /// Addresses in use: IPv4 count, IPv6 count.
    pub(crate) fn usage(&self) -> (u64, AddrCount) {
        let v4 = self.spaces[0].used_count();
        (
            u64::try_from(v4).unwrap_or(u64::MAX),
            AddrCount::from(self.spaces[1].used_count()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::addr::from_u128;
    use ferrolb_config::crd::IPAddressPoolSpec;

    fn pool(addresses: &[&str], avoid_buggy: bool) -> PoolIndex {
        PoolIndex::compile(&IPAddressPool::new(
            "p",
            IPAddressPoolSpec {
                addresses: addresses.iter().map(|s| s.to_string()).collect(),
                avoid_buggy_ips: avoid_buggy,
                ..Default::default()
            },
        ))
    }

    fn n(s: &str) -> u128 {
        to_u128(&s.parse().unwrap())
    }

    fn addr(f: Family, x: u128) -> String {
        from_u128(f, x).to_string()
    }

    #[test]
    fn ordinals_follow_written_order_and_skip_buggy_addresses() {
        let p = pool(&["192.0.2.254-192.0.3.2", "192.0.2.10-192.0.2.11"], true);
        let s = p.space(Family::V4);
        // .254 then 192.0.3.1, 192.0.3.2 (skipping .255 and .0), then .10, .11
        let all: Vec<String> = (0..5)
            .map(|o| addr(Family::V4, s.address_of(o).unwrap()))
            .collect();
        assert_eq!(
            all,
            [
                "192.0.2.254",
                "192.0.3.1",
                "192.0.3.2",
                "192.0.2.10",
                "192.0.2.11"
            ]
        );
        assert_eq!(s.address_of(5), None);
        assert_eq!(s.ordinal_of(n("192.0.3.1")), Some(1));
        assert_eq!(s.ordinal_of(n("192.0.2.255")), None);
        assert!(s.covers(n("192.0.2.255")));
        assert_eq!(s.ordinal_of(n("192.0.2.11")), Some(4));
    }

    #[test]
    fn overlapping_entries_count_once() {
        let p = pool(&["192.0.2.0/30", "192.0.2.2-192.0.2.5"], false);
        let s = p.space(Family::V4);
        assert_eq!(
            s.address_of(4).map(|x| addr(Family::V4, x)).unwrap(),
            "192.0.2.4"
        );
        assert_eq!(s.address_of(6), None);
        assert_eq!(s.ordinal_of(n("192.0.2.3")), Some(3));
    }

    #[test]
    fn huge_spaces_cost_nothing() {
        let mut p = pool(&["::/0", "2001:db8::/64"], false);
        let s = p.space_mut(Family::V6);
        assert_eq!(s.address_of(u128::MAX), Some(u128::MAX));
        s.mark(0);
        s.mark(1);
        assert_eq!(s.lowest_free(), Some((2, 2)));
        assert_eq!(s.used_count(), 2);
        let p = pool(&["0.0.0.0/0"], true);
        let s = p.space(Family::V4);
        assert_eq!(
            addr(Family::V4, s.address_of(254).unwrap()),
            "0.0.1.1".to_string()
        );
        assert_eq!(
            addr(
                Family::V4,
                s.address_of((1 << 32) - 2 * (1 << 24) - 1).unwrap()
            ),
            "255.255.255.254"
        );
        // Only buggy addresses: nothing usable.
        assert!(
            !pool(&["192.0.2.255-192.0.3.0"], true)
                .space(Family::V4)
                .has_addresses()
        );
    }
}
