//! Address ranges for pools: parsing (`CIDR` or `first-last`), containment,
//! overlap, CIDR decomposition and exact counting for IPv4 and IPv6.

use std::cmp::Ordering;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// An address as a number in its family's space.
pub fn to_u128(ip: &IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u32::from(*v4) as u128,
        IpAddr::V6(v6) => u128::from(*v6),
    }
}

/// The address with number `n` in `family`. `n` must fit the family.
pub fn from_u128(family: Family, n: u128) -> IpAddr {
    match family {
        Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

/// An inclusive range of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddrRange {
    first: IpAddr,
    last: IpAddr,
}

/// Why an address range did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("{0:?} is not an IP address, a CIDR or a first-last range")]
    Unparsable(String),
    #[error("{part:?} in range {range:?} is not an IP address")]
    BadAddress { range: String, part: String },
    #[error("CIDR {0:?} is invalid: {1}")]
    BadCidr(String, String),
    #[error("range {range:?} mixes IPv4 and IPv6 ({first} and {last}); write one range per family")]
    MixedFamilies {
        range: String,
        first: IpAddr,
        last: IpAddr,
    },
    #[error("range {range:?} is backwards: first address {first} is after last address {last}")]
    Backwards {
        range: String,
        first: IpAddr,
        last: IpAddr,
    },
}

impl AddrRange {
    /// A range from `first` to `last` inclusive; None if families differ or first > last.
    pub fn new(first: IpAddr, last: IpAddr) -> Option<AddrRange> {
        if Family::of(&first) != Family::of(&last) || to_u128(&first) > to_u128(&last) {
            return None;
        }
        Some(AddrRange { first, last })
    }

    pub fn from_net(net: IpNet) -> AddrRange {
        AddrRange {
            first: net.network(),
            last: net.broadcast(),
        }
    }

    pub fn single(ip: IpAddr) -> AddrRange {
        AddrRange {
            first: ip,
            last: ip,
        }
    }

    /// Parses `198.51.100.0/24`, `198.51.100.10-198.51.100.20` (spaces around
    /// `-` allowed), or a single address. A CIDR with host bits set covers its
    /// whole network, as MetalLB does.
    pub fn parse(s: &str) -> Result<AddrRange, RangeError> {
        let t = s.trim();
        if let Some((a, b)) = t.split_once('-') {
            let (a, b) = (a.trim(), b.trim());
            if a.parse::<IpAddr>().is_err() && b.parse::<IpAddr>().is_err() {
                return Err(RangeError::Unparsable(s.to_string()));
            }
            let first: IpAddr = a.parse().map_err(|_| RangeError::BadAddress {
                range: s.to_string(),
                part: a.to_string(),
            })?;
            let last: IpAddr = b.parse().map_err(|_| RangeError::BadAddress {
                range: s.to_string(),
                part: b.to_string(),
            })?;
            if Family::of(&first) != Family::of(&last) {
                return Err(RangeError::MixedFamilies {
                    range: s.to_string(),
                    first,
                    last,
                });
            }
            return AddrRange::new(first, last).ok_or(RangeError::Backwards {
                range: s.to_string(),
                first,
                last,
            });
        }
        if t.contains('/') {
            let net: IpNet = t.parse().map_err(|e: ipnet::AddrParseError| {
                // Give a precise reason for the common mistakes.
                let (addr, len) = t.split_once('/').unwrap_or((t, ""));
                let reason = match (addr.parse::<IpAddr>(), len.parse::<u8>()) {
                    (Err(_), _) => format!("{addr:?} is not an IP address"),
                    (Ok(ip), Ok(l)) if l > Family::of(&ip).bits() => format!(
                        "prefix length {l} is longer than {} bits",
                        Family::of(&ip).bits()
                    ),
                    (Ok(_), Err(_)) => format!("{len:?} is not a prefix length"),
                    _ => e.to_string(),
                };
                RangeError::BadCidr(s.to_string(), reason)
            })?;
            return Ok(AddrRange::from_net(net));
        }
        t.parse::<IpAddr>()
            .map(AddrRange::single)
            .map_err(|_| RangeError::Unparsable(s.to_string()))
    }

    pub fn first(&self) -> IpAddr {
        self.first
    }

    pub fn last(&self) -> IpAddr {
        self.last
    }

    pub fn family(&self) -> Family {
        Family::of(&self.first)
    }

    /// Number of addresses (up to 2^128 for `::/0`).
    pub fn len(&self) -> AddrCount {
        AddrCount::from(to_u128(&self.last) - to_u128(&self.first)).plus(AddrCount::from(1u128))
    }

    /// Never true: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        Family::of(ip) == self.family()
            && to_u128(&self.first) <= to_u128(ip)
            && to_u128(ip) <= to_u128(&self.last)
    }

    /// The common part of two ranges, if any.
    pub fn intersect(&self, other: &AddrRange) -> Option<AddrRange> {
        if self.family() != other.family() {
            return None;
        }
        let lo = to_u128(&self.first).max(to_u128(&other.first));
        let hi = to_u128(&self.last).min(to_u128(&other.last));
        (lo <= hi).then(|| AddrRange {
            first: from_u128(self.family(), lo),
            last: from_u128(self.family(), hi),
        })
    }

    /// The `offset`-th address of the range (0 = first), if within it.
    pub fn nth(&self, offset: u128) -> Option<IpAddr> {
        let n = to_u128(&self.first).checked_add(offset)?;
        (n <= to_u128(&self.last)).then(|| from_u128(self.family(), n))
    }

    /// The smallest list of CIDRs that covers exactly this range.
    pub fn to_cidrs(&self) -> Vec<IpNet> {
        let bits = self.family().bits() as u32;
        let mut out = Vec::new();
        let mut lo = to_u128(&self.first);
        let hi = to_u128(&self.last);
        loop {
            // Largest block aligned at `lo` that stays within `hi`.
            let align = if lo == 0 {
                bits
            } else {
                lo.trailing_zeros().min(bits)
            };
            let mut size_bits = align;
            while size_bits > 0 {
                let span_minus_one = if size_bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << size_bits) - 1
                };
                if lo.checked_add(span_minus_one).is_some_and(|end| end <= hi) {
                    break;
                }
                size_bits -= 1;
            }
            let prefix = (bits - size_bits) as u8;
            let net =
                IpNet::new(from_u128(self.family(), lo), prefix).expect("prefix within family");
            out.push(net);
            let span_minus_one = if size_bits >= 128 {
                u128::MAX
            } else {
                (1u128 << size_bits) - 1
            };
            let end = lo + span_minus_one;
            if end >= hi {
                break;
            }
            lo = end + 1;
        }
        out
    }

    fn cmp_key(&self) -> (Family, u128, u128) {
        (self.family(), to_u128(&self.first), to_u128(&self.last))
    }
}

impl PartialOrd for AddrRange {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for AddrRange {
    fn cmp(&self, other: &Self) -> Ordering {
        self.cmp_key().cmp(&other.cmp_key())
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            let cidrs = self.to_cidrs();
            if cidrs.len() == 1 {
                write!(f, "{}", cidrs[0])
            } else {
                write!(f, "{}-{}", self.first, self.last)
            }
        }
    }
}

/// Merges overlapping or adjacent ranges; the result is sorted and disjoint.
pub fn merge(ranges: &[AddrRange]) -> Vec<AddrRange> {
    let mut sorted: Vec<AddrRange> = ranges.to_vec();
    sorted.sort();
    let mut out: Vec<AddrRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        if let Some(prev) = out.last_mut()
            && prev.family() == r.family()
            && to_u128(&prev.last)
                .checked_add(1)
                .is_none_or(|n| n >= to_u128(&r.first))
        {
            if to_u128(&r.last) > to_u128(&prev.last) {
                prev.last = r.last;
            }
            continue;
        }
        out.push(r);
    }
    out
}

/// A count of addresses, exact for any number of IPv4 and IPv6 ranges
/// (beyond u128: `::/0` alone holds 2^128 addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct AddrCount {
    high: u64,
    low: u128,
}

impl AddrCount {
    pub const ZERO: AddrCount = AddrCount { high: 0, low: 0 };

    pub fn plus(self, other: AddrCount) -> AddrCount {
        let (low, carry) = self.low.overflowing_add(other.low);
        AddrCount {
            high: self
                .high
                .saturating_add(other.high)
                .saturating_add(carry as u64),
            low,
        }
    }

    /// `self - other`, or zero if other is larger.
    pub fn minus(self, other: AddrCount) -> AddrCount {
        if other >= self {
            return AddrCount::ZERO;
        }
        let (low, borrow) = self.low.overflowing_sub(other.low);
        AddrCount {
            high: self.high - other.high - borrow as u64,
            low,
        }
    }

    /// The value if it fits a u64.
    pub fn to_u64(self) -> Option<u64> {
        if self.high == 0 {
            u64::try_from(self.low).ok()
        } else {
            None
        }
    }

    /// The value if it fits a u128.
    pub fn to_u128(self) -> Option<u128> {
        (self.high == 0).then_some(self.low)
    }
}

impl From<u128> for AddrCount {
    fn from(v: u128) -> Self {
        AddrCount { high: 0, low: v }
    }
}

impl From<u64> for AddrCount {
    fn from(v: u64) -> Self {
        AddrCount {
            high: 0,
            low: v as u128,
        }
    }
}

impl fmt::Display for AddrCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.high == 0 {
            return write!(f, "{}", self.low);
        }
        // Long division of the 192-bit number (high:low) by 10^19, limb by limb.
        let mut limbs = [self.high, (self.low >> 64) as u64, self.low as u64];
        let mut chunks = Vec::new();
        const BASE: u64 = 10_000_000_000_000_000_000;
        while limbs.iter().any(|&l| l != 0) {
            let mut rem: u128 = 0;
            for limb in limbs.iter_mut() {
                let cur = (rem << 64) | *limb as u128;
                *limb = (cur / BASE as u128) as u64;
                rem = cur % BASE as u128;
            }
            chunks.push(rem as u64);
        }
        let mut s = format!("{}", chunks.pop().unwrap_or(0));
        while let Some(c) = chunks.pop() {
            s.push_str(&format!("{c:019}"));
        }
        f.write_str(&s)
    }
}

/// Total addresses per family in a list of ranges, counting overlaps once.
pub fn count_by_family(ranges: &[AddrRange]) -> (AddrCount, AddrCount) {
    let mut v4 = AddrCount::ZERO;
    let mut v6 = AddrCount::ZERO;
    for r in merge(ranges) {
        match r.family() {
            Family::V4 => v4 = v4.plus(r.len()),
            Family::V6 => v6 = v6.plus(r.len()),
        }
    }
    (v4, v6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(s: &str) -> AddrRange {
        AddrRange::parse(s).unwrap()
    }

    #[test]
    fn parses_cidrs_ranges_and_single_addresses() {
        let a = r("192.0.2.0/24");
        assert_eq!(a.first().to_string(), "192.0.2.0");
        assert_eq!(a.last().to_string(), "192.0.2.255");
        assert_eq!(a.len().to_string(), "256");
        let b = r(" 192.0.2.10 - 192.0.2.20 ");
        assert_eq!(b.len().to_u64(), Some(11));
        let c = r("2001:db8::/64");
        assert_eq!(c.len().to_string(), "18446744073709551616");
        assert_eq!(r("192.0.2.7").len().to_u64(), Some(1));
        // Host bits set: the whole network, like MetalLB.
        assert_eq!(r("192.0.2.77/30").first().to_string(), "192.0.2.76");
    }

    #[test]
    fn rejects_bad_ranges_with_reasons() {
        assert!(matches!(
            AddrRange::parse("192.0.2.20-192.0.2.10"),
            Err(RangeError::Backwards { .. })
        ));
        assert!(matches!(
            AddrRange::parse("192.0.2.1-2001:db8::1"),
            Err(RangeError::MixedFamilies { .. })
        ));
        assert!(matches!(
            AddrRange::parse("192.0.2.1-192.0.2.300"),
            Err(RangeError::BadAddress { .. })
        ));
        let e = AddrRange::parse("192.0.2.0/33").unwrap_err().to_string();
        assert!(e.contains("prefix length 33"), "{e}");
        let e = AddrRange::parse("192.0.2.0/x").unwrap_err().to_string();
        assert!(e.contains("not a prefix length"), "{e}");
        let e = AddrRange::parse("pool.example/24").unwrap_err().to_string();
        assert!(e.contains("not an IP address"), "{e}");
        assert!(matches!(
            AddrRange::parse("hello"),
            Err(RangeError::Unparsable(_))
        ));
    }

    #[test]
    fn counts_do_not_overflow() {
        let all = r("::/0");
        assert_eq!(
            all.len().to_string(),
            "340282366920938463463374607431768211456"
        );
        assert_eq!(all.len().to_u128(), None);
        let (v4, v6) = count_by_family(&[all, r("0.0.0.0/0"), r("2001:db8::/32")]);
        assert_eq!(v4.to_string(), "4294967296");
        assert_eq!(v6.to_string(), "340282366920938463463374607431768211456");
        let two = all.len().plus(all.len());
        assert_eq!(two.to_string(), "680564733841876926926749214863536422912");
        assert_eq!(two.minus(all.len()), all.len());
        assert_eq!(
            AddrCount::from(3u64).minus(AddrCount::from(5u64)),
            AddrCount::ZERO
        );
    }

    #[test]
    fn overlaps_are_counted_once() {
        let (v4, v6) = count_by_family(&[
            r("192.0.2.0/25"),
            r("192.0.2.100-192.0.2.200"),
            r("192.0.2.201"),
        ]);
        assert_eq!(v4.to_u64(), Some(202));
        assert_eq!(v6, AddrCount::ZERO);
    }

    #[test]
    fn intersect_and_contains() {
        let a = r("192.0.2.0/24");
        let b = r("192.0.2.250-192.0.3.5");
        assert_eq!(
            a.intersect(&b).unwrap().to_string(),
            "192.0.2.250-192.0.2.255"
        );
        assert!(a.intersect(&r("2001:db8::/64")).is_none());
        assert!(a.contains(&"192.0.2.9".parse().unwrap()));
        assert!(!a.contains(&"192.0.3.9".parse().unwrap()));
        assert_eq!(a.nth(5).unwrap().to_string(), "192.0.2.5");
        assert_eq!(a.nth(256), None);
    }

    #[test]
    fn cidr_decomposition_is_exact_and_minimal() {
        let cidrs: Vec<String> = r("192.0.2.10-192.0.2.20")
            .to_cidrs()
            .iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            cidrs,
            [
                "192.0.2.10/31",
                "192.0.2.12/30",
                "192.0.2.16/30",
                "192.0.2.20/32"
            ]
        );
        assert_eq!(r("0.0.0.0/0").to_cidrs().len(), 1);
        assert_eq!(r("::/0").to_cidrs()[0].to_string(), "::/0");
        let cidrs = r("2001:db8::1-2001:db8::ffff").to_cidrs();
        assert_eq!(cidrs.len(), 16);
        assert_eq!(
            r("255.255.255.255").to_cidrs()[0].to_string(),
            "255.255.255.255/32"
        );
    }
}
