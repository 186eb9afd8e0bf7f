//! Ethernet (EUI-48) MAC addresses.

use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Builds an address from its six octets.
    pub const fn new(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8) -> Self {
        MacAddr([a, b, c, d, e, f])
    }

    /// The six octets, in transmission order.
    pub const fn octets(self) -> [u8; 6] {
        self.0
    }

    /// True for `ff:ff:ff:ff:ff:ff`.
    pub fn is_broadcast(self) -> bool {
        self == Self::BROADCAST
    }

    /// True when the group bit (least significant bit of the first octet)
    /// is set; broadcast is a multicast address too.
    pub fn is_multicast(self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// True for an individual (unicast) address other than all zeroes.
    pub fn is_unicast(self) -> bool {
        !self.is_multicast() && self != Self::ZERO
    }

    /// The Ethernet multicast address an IPv6 multicast address maps to
    /// (RFC 2464 §7): `33:33` followed by the last four octets of the group.
    pub fn ipv6_multicast(group: Ipv6Addr) -> Self {
        let o = group.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }

    /// Reads six octets from the start of `bytes`, if there are that many.
    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let octets: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(MacAddr(octets))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        MacAddr(octets)
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            o[0], o[1], o[2], o[3], o[4], o[5]
        )
    }
}

/// The error of parsing a MAC address from text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid MAC address {0:?}: expected six hexadecimal octets separated by ':' or '-'")]
pub struct ParseMacError(pub String);

impl FromStr for MacAddr {
    type Err = ParseMacError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseMacError(s.to_owned());
        let mut octets = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for octet in &mut octets {
            let part = parts.next().ok_or_else(err)?;
            if part.is_empty() || part.len() > 2 {
                return Err(err());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(MacAddr(octets))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let mac = MacAddr::new(0x02, 0x00, 0x5e, 0x10, 0x0a, 0xff);
        assert_eq!(mac.to_string(), "02:00:5e:10:0a:ff");
        assert_eq!("02:00:5e:10:0a:ff".parse::<MacAddr>().unwrap(), mac);
        assert_eq!("02-00-5E-10-0A-FF".parse::<MacAddr>().unwrap(), mac);
        assert!("02:00:5e:10:0a".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:0a:ff:01".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10:0a:fff".parse::<MacAddr>().is_err());
        assert!("02:00:5e:10::ff".parse::<MacAddr>().is_err());
    }

    #[test]
    fn classes() {
        assert!(MacAddr::BROADCAST.is_broadcast());
        assert!(MacAddr::BROADCAST.is_multicast());
        assert!(MacAddr::new(0x33, 0x33, 0, 0, 0, 1).is_multicast());
        assert!(MacAddr::new(0x02, 0, 0, 0, 0, 1).is_unicast());
        assert!(!MacAddr::ZERO.is_unicast());
    }

    #[test]
    fn ipv6_multicast_mapping() {
        let group: Ipv6Addr = "ff02::1:ff12:3456".parse().unwrap();
        assert_eq!(
            MacAddr::ipv6_multicast(group),
            MacAddr::new(0x33, 0x33, 0xff, 0x12, 0x34, 0x56)
        );
        assert_eq!(
            MacAddr::ipv6_multicast(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1)),
            MacAddr::new(0x33, 0x33, 0, 0, 0, 1)
        );
    }
}
