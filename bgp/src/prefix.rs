//! IP prefixes, address families and their NLRI encoding (RFC 4271 §4.3,
//! RFC 4760 §5).
//!
//! A prefix is stored in canonical form: the bits past the prefix length are
//! always zero. RFC 4271 says the trailing bits of an encoded prefix are
//! irrelevant, so decoding masks them rather than rejecting the route; a
//! prefix length longer than the address is a syntax error.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use bytes::{BufMut, BytesMut};

/// Address Family Identifier (IANA "Address Family Numbers").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    /// IPv4.
    pub const IPV4: Afi = Afi(1);
    /// IPv6.
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (RFC 4760).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    /// Unicast forwarding.
    pub const UNICAST: Safi = Safi(1);
    /// Multicast forwarding.
    pub const MULTICAST: Safi = Safi(2);
}

/// An <AFI, SAFI> pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddressFamily {
    /// Address family.
    pub afi: Afi,
    /// Subsequent address family.
    pub safi: Safi,
}

impl AddressFamily {
    /// IPv4 unicast, the family of the classic UPDATE fields.
    pub const IPV4_UNICAST: AddressFamily = AddressFamily::new(Afi::IPV4, Safi::UNICAST);
    /// IPv6 unicast.
    pub const IPV6_UNICAST: AddressFamily = AddressFamily::new(Afi::IPV6, Safi::UNICAST);

    /// Builds a family from its two identifiers.
    pub const fn new(afi: Afi, safi: Safi) -> Self {
        AddressFamily { afi, safi }
    }

    /// Whether this codec can parse NLRI of this family.
    pub fn is_supported(self) -> bool {
        self == Self::IPV4_UNICAST || self == Self::IPV6_UNICAST
    }
}

impl fmt::Display for AddressFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            AddressFamily { afi, safi } => write!(f, "afi {}/safi {}", afi.0, safi.0),
        }
    }
}

/// Why a prefix could not be built or parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// The prefix length exceeds the address width.
    #[error("prefix length {len} exceeds {max}")]
    LengthTooLong {
        /// The length given.
        len: u8,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
    /// The NLRI field ends inside a prefix.
    #[error("NLRI field ends inside a prefix")]
    Truncated,
    /// The text is not `address/length`.
    #[error("not a prefix: {0:?}")]
    Syntax(String),
}

macro_rules! prefix_type {
    ($name:ident, $addr:ty, $bits:ty, $max:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name {
            addr: $addr,
            len: u8,
        }

        impl $name {
            /// Address width in bits.
            pub const MAX_LEN: u8 = $max;

            /// Builds a prefix, clearing any host bits past `len`. Fails when
            /// `len` exceeds the address width.
            pub fn new(addr: $addr, len: u8) -> Result<Self, PrefixError> {
                if len > Self::MAX_LEN {
                    return Err(PrefixError::LengthTooLong {
                        len,
                        max: Self::MAX_LEN,
                    });
                }
                let raw = <$bits>::from(addr) & Self::mask(len);
                Ok($name {
                    addr: <$addr>::from(raw),
                    len,
                })
            }

            fn mask(len: u8) -> $bits {
                if len == 0 {
                    0
                } else {
                    <$bits>::MAX << (Self::MAX_LEN - len)
                }
            }

            /// The network address (host bits are zero).
            pub fn addr(&self) -> $addr {
                self.addr
            }

            /// The prefix length in bits.
            pub fn len(&self) -> u8 {
                self.len
            }

            /// Whether this is the default route (length 0).
            pub fn is_empty(&self) -> bool {
                self.len == 0
            }

            /// Whether `addr` lies inside this prefix.
            pub fn contains(&self, addr: $addr) -> bool {
                <$bits>::from(addr) & Self::mask(self.len) == <$bits>::from(self.addr)
            }

            /// Octets this prefix takes in an NLRI field: length octet plus
            /// the minimum number of address octets.
            pub fn encoded_len(&self) -> usize {
                1 + usize::from(self.len).div_ceil(8)
            }

            /// Appends the NLRI encoding (length octet, minimal address octets).
            pub fn encode(&self, out: &mut BytesMut) {
                let bytes = <$bits>::from(self.addr).to_be_bytes();
                out.put_u8(self.len);
                out.put_slice(&bytes[..usize::from(self.len).div_ceil(8)]);
            }

            /// Parses one prefix from the front of an NLRI field, masking the
            /// trailing bits. Returns the prefix and the rest of the field.
            pub fn decode(input: &[u8]) -> Result<(Self, &[u8]), PrefixError> {
                let (&len, rest) = input.split_first().ok_or(PrefixError::Truncated)?;
                if len > Self::MAX_LEN {
                    return Err(PrefixError::LengthTooLong {
                        len,
                        max: Self::MAX_LEN,
                    });
                }
                let octets = usize::from(len).div_ceil(8);
                if rest.len() < octets {
                    return Err(PrefixError::Truncated);
                }
                const WIDTH: usize = ($max as usize) / 8;
                let raw: [u8; WIDTH] = match rest.first_chunk::<WIDTH>() {
                    // Whole-address load: the octets past `octets` belong to
                    // the next prefix and are cleared by the mask below.
                    Some(chunk) => *chunk,
                    // The last prefix of the field: copy what is there.
                    None => {
                        let mut raw = [0u8; WIDTH];
                        raw[..octets].copy_from_slice(&rest[..octets]);
                        raw
                    }
                };
                let addr = <$bits>::from_be_bytes(raw) & Self::mask(len);
                let prefix = $name {
                    addr: <$addr>::from(addr),
                    len,
                };
                Ok((prefix, &rest[octets..]))
            }

            /// Parses a whole NLRI field (or withdrawn-routes field).
            pub fn decode_all(input: &[u8]) -> Result<Vec<Self>, PrefixError> {
                Self::decode_all_map(input, |p| p)
            }

            /// Parses a whole NLRI field into a vector of `f(prefix)`.
            ///
            /// A first pass checks the syntax and counts the prefixes, so the
            /// vector is allocated once with exactly that many entries:
            /// never more than the field has octets, whatever it claims.
            pub(crate) fn decode_all_map<T>(
                mut input: &[u8],
                f: impl Fn(Self) -> T,
            ) -> Result<Vec<T>, PrefixError> {
                let mut out = Vec::with_capacity(Self::count(input)?);
                while !input.is_empty() {
                    let (prefix, rest) = Self::decode(input)?;
                    out.push(f(prefix));
                    input = rest;
                }
                Ok(out)
            }

            /// Counts the prefixes of a whole NLRI field, failing with the
            /// error [`decode_all`](Self::decode_all) would return.
            fn count(mut input: &[u8]) -> Result<usize, PrefixError> {
                let mut n = 0;
                while let Some((&len, rest)) = input.split_first() {
                    if len > Self::MAX_LEN {
                        return Err(PrefixError::LengthTooLong {
                            len,
                            max: Self::MAX_LEN,
                        });
                    }
                    input = rest
                        .get(usize::from(len).div_ceil(8)..)
                        .ok_or(PrefixError::Truncated)?;
                    n += 1;
                }
                Ok(n)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}/{}", self.addr, self.len)
            }
        }

        impl FromStr for $name {
            type Err = PrefixError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let syntax = || PrefixError::Syntax(s.to_owned());
                let (addr, len) = s.split_once('/').ok_or_else(syntax)?;
                let addr: $addr = addr.parse().map_err(|_| syntax())?;
                let len: u8 = len.parse().map_err(|_| syntax())?;
                Self::new(addr, len)
            }
        }
    };
}

prefix_type!(
    Ipv4Prefix,
    Ipv4Addr,
    u32,
    32,
    "An IPv4 prefix in canonical form (host bits zero)."
);
prefix_type!(
    Ipv6Prefix,
    Ipv6Addr,
    u128,
    128,
    "An IPv6 prefix in canonical form (host bits zero)."
);

impl From<ipnet::Ipv4Net> for Ipv4Prefix {
    fn from(net: ipnet::Ipv4Net) -> Self {
        Ipv4Prefix::new(net.addr(), net.prefix_len()).expect("ipnet lengths are at most 32")
    }
}

impl From<Ipv4Prefix> for ipnet::Ipv4Net {
    fn from(p: Ipv4Prefix) -> Self {
        ipnet::Ipv4Net::new(p.addr, p.len).expect("lengths are at most 32")
    }
}

impl From<ipnet::Ipv6Net> for Ipv6Prefix {
    fn from(net: ipnet::Ipv6Net) -> Self {
        Ipv6Prefix::new(net.addr(), net.prefix_len()).expect("ipnet lengths are at most 128")
    }
}

impl From<Ipv6Prefix> for ipnet::Ipv6Net {
    fn from(p: Ipv6Prefix) -> Self {
        ipnet::Ipv6Net::new(p.addr, p.len).expect("lengths are at most 128")
    }
}

/// An IPv4 or IPv6 prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Prefix {
    /// IPv4.
    V4(Ipv4Prefix),
    /// IPv6.
    V6(Ipv6Prefix),
}

impl Prefix {
    /// Builds a prefix of the address's family, clearing host bits.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        match addr {
            IpAddr::V4(a) => Ipv4Prefix::new(a, len).map(Prefix::V4),
            IpAddr::V6(a) => Ipv6Prefix::new(a, len).map(Prefix::V6),
        }
    }

    /// The address family identifier.
    pub fn afi(&self) -> Afi {
        match self {
            Prefix::V4(_) => Afi::IPV4,
            Prefix::V6(_) => Afi::IPV6,
        }
    }

    /// The unicast family this prefix belongs to.
    pub fn unicast_family(&self) -> AddressFamily {
        AddressFamily::new(self.afi(), Safi::UNICAST)
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        match self {
            Prefix::V4(p) => IpAddr::V4(p.addr()),
            Prefix::V6(p) => IpAddr::V6(p.addr()),
        }
    }

    /// The prefix length.
    pub fn len(&self) -> u8 {
        match self {
            Prefix::V4(p) => p.len(),
            Prefix::V6(p) => p.len(),
        }
    }

    /// Whether this is a default route.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Octets this prefix takes in an NLRI field.
    pub fn encoded_len(&self) -> usize {
        match self {
            Prefix::V4(p) => p.encoded_len(),
            Prefix::V6(p) => p.encoded_len(),
        }
    }

    /// Appends the NLRI encoding.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Prefix::V4(p) => p.encode(out),
            Prefix::V6(p) => p.encode(out),
        }
    }

    /// Parses a whole NLRI field of the given AFI (IPv4 or IPv6 only).
    pub fn decode_all(afi: Afi, input: &[u8]) -> Result<Vec<Prefix>, PrefixError> {
        match afi {
            Afi::IPV6 => Ipv6Prefix::decode_all_map(input, Prefix::V6),
            _ => Ipv4Prefix::decode_all_map(input, Prefix::V4),
        }
    }
}

impl From<Ipv4Prefix> for Prefix {
    fn from(p: Ipv4Prefix) -> Self {
        Prefix::V4(p)
    }
}

impl From<Ipv6Prefix> for Prefix {
    fn from(p: Ipv6Prefix) -> Self {
        Prefix::V6(p)
    }
}

impl From<ipnet::IpNet> for Prefix {
    fn from(net: ipnet::IpNet) -> Self {
        match net {
            ipnet::IpNet::V4(n) => Prefix::V4(n.into()),
            ipnet::IpNet::V6(n) => Prefix::V6(n.into()),
        }
    }
}

impl From<Prefix> for ipnet::IpNet {
    fn from(p: Prefix) -> Self {
        match p {
            Prefix::V4(p) => ipnet::IpNet::V4(p.into()),
            Prefix::V6(p) => ipnet::IpNet::V6(p.into()),
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::V4(p) => p.fmt(f),
            Prefix::V6(p) => p.fmt(f),
        }
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.contains(':') {
            s.parse().map(Prefix::V6)
        } else {
            s.parse().map(Prefix::V4)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(p: impl Into<Prefix>) -> Vec<u8> {
        let mut out = BytesMut::new();
        p.into().encode(&mut out);
        out.to_vec()
    }

    #[test]
    fn minimal_octets() {
        assert_eq!(enc("0.0.0.0/0".parse::<Ipv4Prefix>().unwrap()), [0]);
        assert_eq!(
            enc("198.51.100.0/24".parse::<Ipv4Prefix>().unwrap()),
            [24, 198, 51, 100]
        );
        assert_eq!(
            enc("203.0.113.128/25".parse::<Ipv4Prefix>().unwrap()),
            [25, 203, 0, 113, 128]
        );
        assert_eq!(
            enc("192.0.2.1/32".parse::<Ipv4Prefix>().unwrap()),
            [32, 192, 0, 2, 1]
        );
        assert_eq!(
            enc("2001:db8::/32".parse::<Ipv6Prefix>().unwrap()),
            [32, 0x20, 0x01, 0x0d, 0xb8]
        );
        assert_eq!(
            enc("2001:db8:0:1::/65".parse::<Ipv6Prefix>().unwrap()),
            [65, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, 0]
        );
    }

    #[test]
    fn constructor_masks_host_bits_and_rejects_long_lengths() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(192, 0, 2, 77), 24).unwrap();
        assert_eq!(p.addr(), Ipv4Addr::new(192, 0, 2, 0));
        assert_eq!(
            Ipv4Prefix::new(Ipv4Addr::new(192, 0, 2, 0), 33),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert!(Ipv6Prefix::new(Ipv6Addr::LOCALHOST, 129).is_err());
        assert!("2001:db8::/129".parse::<Prefix>().is_err());
        assert!("192.0.2.0".parse::<Prefix>().is_err());
    }

    #[test]
    fn decode_masks_trailing_bits() {
        // 192.0.2.0/23 with a stray bit set in the last octet's host part.
        let (p, rest) = Ipv4Prefix::decode(&[23, 192, 0, 3, 9]).unwrap();
        assert_eq!(p.to_string(), "192.0.2.0/23");
        assert_eq!(rest, &[9]);
    }

    #[test]
    fn decode_masks_whether_or_not_octets_follow() {
        // Every length, as the last prefix of the field (short copy) and
        // followed by another prefix of all-ones octets (whole-address load):
        // the same canonical prefix either way.
        for len in 0..=128u8 {
            let octets = usize::from(len).div_ceil(8);
            let mut field = vec![len];
            field.extend(std::iter::repeat_n(0xa5, octets));
            let alone = Ipv6Prefix::decode_all(&field).unwrap();
            field.extend([128].iter().chain(&[0xff; 16]));
            let followed = Ipv6Prefix::decode_all(&field).unwrap();
            assert_eq!(followed.len(), 2);
            assert_eq!(alone[0], followed[0]);
            let expected = Ipv6Prefix::new(Ipv6Addr::from(u128::MAX / 0xff * 0xa5), len).unwrap();
            assert_eq!(alone[0], expected);
            assert_eq!(followed[1].addr(), Ipv6Addr::from(u128::MAX));
            if len <= 32 {
                let mut field = vec![len];
                field.extend(std::iter::repeat_n(0xa5, octets));
                let alone = Ipv4Prefix::decode_all(&field).unwrap();
                field.extend([32, 0xff, 0xff, 0xff, 0xff]);
                let followed = Ipv4Prefix::decode_all(&field).unwrap();
                assert_eq!((alone.len(), followed.len()), (1, 2));
                assert_eq!(alone[0], followed[0]);
                assert_eq!(
                    alone[0],
                    Ipv4Prefix::new(Ipv4Addr::from(0xa5a5_a5a5), len).unwrap()
                );
            }
        }
    }

    #[test]
    fn decode_all_reports_the_first_error() {
        // The first prefix that fails decides, as in a sequential parse.
        assert_eq!(
            Ipv4Prefix::decode_all(&[8, 10, 40, 1, 2, 3, 4, 5, 24, 1]),
            Err(PrefixError::LengthTooLong { len: 40, max: 32 })
        );
        assert_eq!(
            Ipv4Prefix::decode_all(&[8, 10, 24, 1, 2]),
            Err(PrefixError::Truncated)
        );
        assert_eq!(
            Prefix::decode_all(Afi::IPV6, &[0, 129]),
            Err(PrefixError::LengthTooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn decode_errors() {
        assert_eq!(
            Ipv4Prefix::decode_all(&[33, 1, 2, 3, 4, 5]),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert_eq!(
            Ipv4Prefix::decode_all(&[24, 192, 0]),
            Err(PrefixError::Truncated)
        );
        assert_eq!(
            Ipv6Prefix::decode_all(&[129]),
            Err(PrefixError::LengthTooLong { len: 129, max: 128 })
        );
        assert_eq!(Ipv6Prefix::decode_all(&[]), Ok(vec![]));
    }

    #[test]
    fn ipnet_conversions() {
        let net: ipnet::IpNet = "2001:db8:1::/48".parse().unwrap();
        let p = Prefix::from(net);
        assert_eq!(p.to_string(), "2001:db8:1::/48");
        assert_eq!(ipnet::IpNet::from(p), net);
        assert!(p.unicast_family() == AddressFamily::IPV6_UNICAST);
        let v4: Ipv4Prefix = "198.51.100.0/24".parse().unwrap();
        assert!(v4.contains(Ipv4Addr::new(198, 51, 100, 9)));
        assert!(!v4.contains(Ipv4Addr::new(198, 51, 101, 9)));
    }
}
