//! Communities (RFC 1997), extended communities (RFC 4360) and large
//! communities (RFC 8092).

use std::fmt;
use std::str::FromStr;

/// A standard community: 32 bits, by convention `AS:value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    /// GRACEFUL_SHUTDOWN (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);
    /// ACCEPT_OWN (RFC 7611).
    pub const ACCEPT_OWN: Community = Community(0xFFFF_0001);
    /// LLGR_STALE (RFC 9494).
    pub const LLGR_STALE: Community = Community(0xFFFF_0006);
    /// NO_LLGR (RFC 9494).
    pub const NO_LLGR: Community = Community(0xFFFF_0007);
    /// BLACKHOLE (RFC 7999).
    pub const BLACKHOLE: Community = Community(0xFFFF_029A);
    /// NO_EXPORT (RFC 1997).
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    /// NO_ADVERTISE (RFC 1997).
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    /// NO_EXPORT_SUBCONFED (RFC 1997).
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);
    /// NOPEER (RFC 3765).
    pub const NO_PEER: Community = Community(0xFFFF_FF04);

    const NAMED: [(Community, &'static str); 9] = [
        (Self::GRACEFUL_SHUTDOWN, "GRACEFUL_SHUTDOWN"),
        (Self::ACCEPT_OWN, "ACCEPT_OWN"),
        (Self::LLGR_STALE, "LLGR_STALE"),
        (Self::NO_LLGR, "NO_LLGR"),
        (Self::BLACKHOLE, "BLACKHOLE"),
        (Self::NO_EXPORT, "NO_EXPORT"),
        (Self::NO_ADVERTISE, "NO_ADVERTISE"),
        (Self::NO_EXPORT_SUBCONFED, "NO_EXPORT_SUBCONFED"),
        (Self::NO_PEER, "NO_PEER"),
    ];

    /// Builds `asn:value`.
    pub const fn new(asn: u16, value: u16) -> Self {
        Community(((asn as u32) << 16) | value as u32)
    }

    /// The high 16 bits (conventionally an AS number).
    pub const fn asn(self) -> u16 {
        (self.0 >> 16) as u16
    }

    /// The low 16 bits.
    pub const fn value(self) -> u16 {
        self.0 as u16
    }

    /// The registered name of a well-known community.
    pub fn well_known_name(self) -> Option<&'static str> {
        Self::NAMED
            .iter()
            .find(|(c, _)| *c == self)
            .map(|(_, name)| *name)
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.well_known_name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}:{}", self.asn(), self.value()),
        }
    }
}

/// Text that is neither `AS:value` nor a well-known name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("not a community: {0:?}")]
pub struct CommunityParseError(String);

impl FromStr for Community {
    type Err = CommunityParseError;

    /// Accepts `asn:value` or a well-known name such as `NO_EXPORT`
    /// (case-insensitive; `-` and `_` are interchangeable).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let normalized = s.to_ascii_uppercase().replace('-', "_");
        if let Some((c, _)) = Self::NAMED.iter().find(|(_, n)| *n == normalized) {
            return Ok(*c);
        }
        let err = || CommunityParseError(s.to_owned());
        let (a, v) = s.split_once(':').ok_or_else(err)?;
        Ok(Community::new(
            a.parse().map_err(|_| err())?,
            v.parse().map_err(|_| err())?,
        ))
    }
}

/// An extended community (RFC 4360): eight octets, the first one or two
/// being the type and subtype. Kept raw; helpers build the common kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExtendedCommunity(pub [u8; 8]);

impl ExtendedCommunity {
    const NON_TRANSITIVE: u8 = 0x40;

    /// Route target, two-octet AS specific (type 0x00, subtype 0x02).
    pub fn route_target(asn: u16, value: u32) -> Self {
        Self::two_octet_as(0x02, asn, value)
    }

    /// Route origin, two-octet AS specific (type 0x00, subtype 0x03).
    pub fn route_origin(asn: u16, value: u32) -> Self {
        Self::two_octet_as(0x03, asn, value)
    }

    /// Route target, four-octet AS specific (type 0x02, subtype 0x02, RFC 5668).
    pub fn route_target_four_octet(asn: u32, value: u16) -> Self {
        let mut b = [0u8; 8];
        b[0] = 0x02;
        b[1] = 0x02;
        b[2..6].copy_from_slice(&asn.to_be_bytes());
        b[6..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }

    fn two_octet_as(subtype: u8, asn: u16, value: u32) -> Self {
        let mut b = [0u8; 8];
        b[1] = subtype;
        b[2..4].copy_from_slice(&asn.to_be_bytes());
        b[4..8].copy_from_slice(&value.to_be_bytes());
        ExtendedCommunity(b)
    }

    /// The type octet.
    pub fn type_high(&self) -> u8 {
        self.0[0]
    }

    /// The subtype octet (meaningful for the "extended" types).
    pub fn subtype(&self) -> u8 {
        self.0[1]
    }

    /// Whether the community may cross AS boundaries (T bit clear).
    pub fn is_transitive(&self) -> bool {
        self.0[0] & Self::NON_TRANSITIVE == 0
    }
}

impl fmt::Display for ExtendedCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        match (b[0], b[1]) {
            (0x00, 0x02) | (0x00, 0x03) => {
                let kind = if b[1] == 0x02 { "rt" } else { "soo" };
                let asn = u16::from_be_bytes([b[2], b[3]]);
                let v = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
                write!(f, "{kind}:{asn}:{v}")
            }
            (0x02, 0x02) => {
                let asn = u32::from_be_bytes([b[2], b[3], b[4], b[5]]);
                let v = u16::from_be_bytes([b[6], b[7]]);
                write!(f, "rt:{asn}:{v}")
            }
            _ => {
                f.write_str("0x")?;
                for x in b {
                    write!(f, "{x:02x}")?;
                }
                Ok(())
            }
        }
    }
}

/// A large community (RFC 8092): global administrator and two local data
/// parts, 32 bits each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LargeCommunity {
    /// Global administrator (an AS number).
    pub global_admin: u32,
    /// Local data part 1.
    pub local_data1: u32,
    /// Local data part 2.
    pub local_data2: u32,
}

impl LargeCommunity {
    /// Builds `global:local1:local2`.
    pub const fn new(global_admin: u32, local_data1: u32, local_data2: u32) -> Self {
        LargeCommunity {
            global_admin,
            local_data1,
            local_data2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data1, self.local_data2
        )
    }
}

impl FromStr for LargeCommunity {
    type Err = CommunityParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || CommunityParseError(s.to_owned());
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| err()));
        let (Some(a), Some(b), Some(c), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        Ok(LargeCommunity::new(a?, b?, c?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names() {
        assert_eq!(Community::NO_EXPORT.to_string(), "NO_EXPORT");
        assert_eq!(Community::BLACKHOLE.0, 0xFFFF029A);
        assert_eq!("no-peer".parse::<Community>(), Ok(Community::NO_PEER));
        assert_eq!(
            "GRACEFUL_SHUTDOWN".parse::<Community>(),
            Ok(Community::GRACEFUL_SHUTDOWN)
        );
        assert_eq!(
            "64496:100".parse::<Community>(),
            Ok(Community::new(64496, 100))
        );
        assert_eq!(Community::new(64496, 100).to_string(), "64496:100");
        assert!("64496".parse::<Community>().is_err());
        assert!("70000:1".parse::<Community>().is_err());
    }

    #[test]
    fn extended_and_large() {
        let rt = ExtendedCommunity::route_target(64500, 7);
        assert_eq!(rt.0, [0, 2, 0xfb, 0xf4, 0, 0, 0, 7]);
        assert_eq!(rt.to_string(), "rt:64500:7");
        assert!(rt.is_transitive());
        assert!(!ExtendedCommunity([0x43, 0, 0, 0, 0, 0, 0, 0]).is_transitive());
        let lc: LargeCommunity = "65536:1:2".parse().unwrap();
        assert_eq!(lc, LargeCommunity::new(65536, 1, 2));
        assert_eq!(lc.to_string(), "65536:1:2");
        assert!("1:2".parse::<LargeCommunity>().is_err());
        assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
    }
}
