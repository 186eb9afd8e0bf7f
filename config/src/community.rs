//! BGP community values as written in BGPAdvertisements and Community objects.

use std::fmt;

/// A standard (RFC 1997) or large (RFC 8092) community.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CommunityValue {
    Standard(u16, u16),
    Large(u32, u32, u32),
}

/// Well-known standard communities accepted by name.
pub const WELL_KNOWN: &[(&str, u16, u16)] = &[
    ("graceful-shutdown", 65535, 0),
    ("accept-own", 65535, 1),
    ("llgr-stale", 65535, 6),
    ("no-llgr", 65535, 7),
    ("blackhole", 65535, 666),
    ("no-export", 65535, 65281),
    ("no-advertise", 65535, 65282),
    ("no-export-subconfed", 65535, 65283),
    ("no-peer", 65535, 65284),
];

impl CommunityValue {
    /// Parses `65000:100`, `large:1:2:3` or a well-known name such as `no-export`.
    pub fn parse(s: &str) -> Result<CommunityValue, String> {
        let t = s.trim();
        if let Some(&(_, a, b)) = WELL_KNOWN.iter().find(|(n, _, _)| *n == t) {
            return Ok(CommunityValue::Standard(a, b));
        }
        if let Some(rest) = t.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 3 {
                return Err(format!(
                    "large community {s:?} must be large:GLOBAL:LOCAL1:LOCAL2 (three numbers)"
                ));
            }
            let mut n = [0u32; 3];
            for (slot, part) in n.iter_mut().zip(&parts) {
                *slot = part.parse().map_err(|_| {
                    format!("large community {s:?}: {part:?} is not a number from 0 to 4294967295")
                })?;
            }
            return Ok(CommunityValue::Large(n[0], n[1], n[2]));
        }
        let Some((a, b)) = t.split_once(':') else {
            return Err(format!(
                "{s:?} is not a community: expected AS:VALUE (65000:100), large:A:B:C or a well-known name"
            ));
        };
        let parse16 = |p: &str| {
            p.parse::<u16>()
                .map_err(|_| format!("community {s:?}: {p:?} is not a number from 0 to 65535"))
        };
        Ok(CommunityValue::Standard(parse16(a)?, parse16(b)?))
    }

    /// The value of a well-known community name such as `no-export`.
    pub fn well_known(name: &str) -> Option<CommunityValue> {
        let name = name.trim();
        WELL_KNOWN
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, a, b)| CommunityValue::Standard(a, b))
    }

    /// Whether `s` has the shape of a community value (as opposed to an alias name).
    pub fn looks_like_value(s: &str) -> bool {
        s.contains(':') || WELL_KNOWN.iter().any(|(n, _, _)| *n == s.trim())
    }
}

impl fmt::Display for CommunityValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommunityValue::Standard(a, b) => write!(f, "{a}:{b}"),
            CommunityValue::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_standard_large_and_well_known() {
        assert_eq!(
            CommunityValue::parse("65000:100"),
            Ok(CommunityValue::Standard(65000, 100))
        );
        assert_eq!(
            CommunityValue::parse("large:1:2:3"),
            Ok(CommunityValue::Large(1, 2, 3))
        );
        assert_eq!(
            CommunityValue::parse("no-export"),
            Ok(CommunityValue::Standard(65535, 65281))
        );
        assert_eq!(
            CommunityValue::parse("large:4294967295:0:7")
                .unwrap()
                .to_string(),
            "large:4294967295:0:7"
        );
    }

    #[test]
    fn rejects_bad_values() {
        for bad in [
            "65536:1",
            "1:-1",
            "a:b",
            "large:1:2",
            "large:1:2:3:4",
            "large:1:x:3",
            "100",
            "1:2:3",
        ] {
            assert!(CommunityValue::parse(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(
            CommunityValue::well_known("no-export"),
            Some(CommunityValue::Standard(65535, 65281))
        );
        assert_eq!(CommunityValue::well_known("NO_EXPORT"), None);
        assert!(CommunityValue::looks_like_value("1:2"));
        assert!(!CommunityValue::looks_like_value("my-alias"));
    }
}
