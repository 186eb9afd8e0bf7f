//! MP_REACH_NLRI and MP_UNREACH_NLRI (RFC 4760 §3, §4) for IPv4 and IPv6
//! unicast, with IPv6 next hops of 16 or 32 octets (RFC 2545) and IPv6 next
//! hops for IPv4 NLRI (RFC 8950).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::message::notification::UpdateSubcode;
use crate::prefix::{AddressFamily, Afi, Prefix, Safi};
use crate::wire;

/// A next hop as carried in MP_REACH_NLRI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextHop {
    /// Four octets.
    V4(Ipv4Addr),
    /// Sixteen octets, or thirty-two with a link-local address (RFC 2545 §3).
    V6 {
        /// Global address.
        global: Ipv6Addr,
        /// Link-local address, when the peer shares the link.
        link_local: Option<Ipv6Addr>,
    },
}

impl NextHop {
    /// A global-only IPv6 next hop.
    pub fn v6(global: Ipv6Addr) -> Self {
        NextHop::V6 {
            global,
            link_local: None,
        }
    }

    /// The address to forward to (the global one for IPv6).
    pub fn addr(&self) -> IpAddr {
        match *self {
            NextHop::V4(a) => IpAddr::V4(a),
            NextHop::V6 { global, .. } => IpAddr::V6(global),
        }
    }

    /// Octets of the encoded next hop.
    pub fn encoded_len(&self) -> usize {
        match self {
            NextHop::V4(_) => 4,
            NextHop::V6 {
                link_local: None, ..
            } => 16,
            NextHop::V6 {
                link_local: Some(_),
                ..
            } => 32,
        }
    }

    /// Whether this next hop may accompany NLRI of `family`: IPv4 unicast
    /// takes either kind (RFC 8950), IPv6 unicast only IPv6.
    pub fn fits(&self, family: AddressFamily) -> bool {
        match family {
            AddressFamily::IPV4_UNICAST => true,
            AddressFamily::IPV6_UNICAST => matches!(self, NextHop::V6 { .. }),
            _ => false,
        }
    }

    fn encode(&self, out: &mut BytesMut) {
        match *self {
            NextHop::V4(a) => out.put_slice(&a.octets()),
            NextHop::V6 { global, link_local } => {
                out.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    out.put_slice(&ll.octets());
                }
            }
        }
    }

    fn decode(raw: &[u8], family: AddressFamily) -> Option<NextHop> {
        let nh = match raw.len() {
            4 => NextHop::V4(wire::ipv4(raw).ok()?.1),
            16 => NextHop::v6(wire::ipv6(raw).ok()?.1),
            32 => {
                let (rest, global) = wire::ipv6(raw).ok()?;
                let (_, ll) = wire::ipv6(rest).ok()?;
                NextHop::V6 {
                    global,
                    link_local: Some(ll),
                }
            }
            _ => return None,
        };
        nh.fits(family).then_some(nh)
    }
}

/// MP_REACH_NLRI: reachable prefixes of one family and their next hop.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpReach {
    /// The family of the NLRI.
    pub family: AddressFamily,
    /// The next hop.
    pub next_hop: NextHop,
    /// The reachable prefixes, all of `family`.
    pub nlri: Vec<Prefix>,
}

/// MP_UNREACH_NLRI: withdrawn prefixes of one family. With no prefixes it
/// is the End-of-RIB marker of that family (RFC 4724 §2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MpUnreach {
    /// The family of the withdrawn prefixes.
    pub family: AddressFamily,
    /// The withdrawn prefixes, all of `family`.
    pub withdrawn: Vec<Prefix>,
}

fn read_family(value: &[u8]) -> Result<(&[u8], AddressFamily), UpdateSubcode> {
    let (rest, afi) = wire::u16(value).map_err(|_| UpdateSubcode::OptionalAttributeError)?;
    let (rest, safi) = wire::u8(rest).map_err(|_| UpdateSubcode::OptionalAttributeError)?;
    let family = AddressFamily::new(Afi(afi), Safi(safi));
    if !family.is_supported() {
        return Err(UpdateSubcode::OptionalAttributeError);
    }
    Ok((rest, family))
}

fn check_prefixes(family: AddressFamily, prefixes: &[Prefix]) -> Result<(), EncodeError> {
    if !family.is_supported() {
        return Err(EncodeError::UnsupportedFamily(family));
    }
    match prefixes.iter().find(|p| p.afi() != family.afi) {
        Some(&prefix) => Err(EncodeError::FamilyMismatch { family, prefix }),
        None => Ok(()),
    }
}

fn put_family(family: AddressFamily, out: &mut BytesMut) {
    out.put_u16(family.afi.0);
    out.put_u8(family.safi.0);
}

impl MpReach {
    /// Parses the attribute value. Any error calls for a session reset
    /// (RFC 7606 §7.11): the subcode says which.
    pub(crate) fn decode(value: &[u8]) -> Result<MpReach, UpdateSubcode> {
        let (rest, family) = read_family(value)?;
        let (rest, nh_len) = wire::u8(rest).map_err(|_| UpdateSubcode::OptionalAttributeError)?;
        let (rest, nh) = wire::take(rest, usize::from(nh_len))
            .map_err(|_| UpdateSubcode::OptionalAttributeError)?;
        let next_hop = NextHop::decode(nh, family).ok_or(UpdateSubcode::OptionalAttributeError)?;
        // One reserved octet (formerly the SNPA count), ignored on receipt.
        let (rest, _reserved) =
            wire::u8(rest).map_err(|_| UpdateSubcode::OptionalAttributeError)?;
        let nlri =
            Prefix::decode_all(family.afi, rest).map_err(|_| UpdateSubcode::InvalidNetworkField)?;
        Ok(MpReach {
            family,
            next_hop,
            nlri,
        })
    }

    /// Octets of the attribute value.
    pub fn encoded_len(&self) -> usize {
        5 + self.next_hop.encoded_len() + self.nlri.iter().map(Prefix::encoded_len).sum::<usize>()
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        check_prefixes(self.family, &self.nlri)?;
        if !self.next_hop.fits(self.family) {
            return Err(EncodeError::NextHopMismatch(self.family));
        }
        put_family(self.family, out);
        out.put_u8(self.next_hop.encoded_len() as u8);
        self.next_hop.encode(out);
        out.put_u8(0);
        for p in &self.nlri {
            p.encode(out);
        }
        Ok(())
    }
}

impl MpUnreach {
    /// The End-of-RIB marker's attribute for `family`.
    pub fn end_of_rib(family: AddressFamily) -> Self {
        MpUnreach {
            family,
            withdrawn: Vec::new(),
        }
    }

    /// Parses the attribute value; errors call for a session reset.
    pub(crate) fn decode(value: &[u8]) -> Result<MpUnreach, UpdateSubcode> {
        let (rest, family) = read_family(value)?;
        let withdrawn =
            Prefix::decode_all(family.afi, rest).map_err(|_| UpdateSubcode::InvalidNetworkField)?;
        Ok(MpUnreach { family, withdrawn })
    }

    /// Octets of the attribute value.
    pub fn encoded_len(&self) -> usize {
        3 + self
            .withdrawn
            .iter()
            .map(Prefix::encoded_len)
            .sum::<usize>()
    }

    pub(crate) fn encode(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        check_prefixes(self.family, &self.withdrawn)?;
        put_family(self.family, out);
        for p in &self.withdrawn {
            p.encode(out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_reach_with_link_local() {
        let reach = MpReach {
            family: AddressFamily::IPV6_UNICAST,
            next_hop: NextHop::V6 {
                global: "2001:db8::1".parse().unwrap(),
                link_local: Some("fe80::1".parse().unwrap()),
            },
            nlri: vec!["2001:db8:1::/48".parse().unwrap()],
        };
        let mut out = BytesMut::new();
        reach.encode(&mut out).unwrap();
        let mut expected = vec![0, 2, 1, 32];
        expected.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(&"fe80::1".parse::<Ipv6Addr>().unwrap().octets());
        expected.extend_from_slice(&[0, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
        assert_eq!(&out[..], &expected[..]);
        assert_eq!(out.len(), reach.encoded_len());
        assert_eq!(MpReach::decode(&out), Ok(reach));
    }

    #[test]
    fn ipv4_nlri_with_ipv6_next_hop() {
        let reach = MpReach {
            family: AddressFamily::IPV4_UNICAST,
            next_hop: NextHop::v6("2001:db8::2".parse().unwrap()),
            nlri: vec!["203.0.113.0/24".parse().unwrap()],
        };
        let mut out = BytesMut::new();
        reach.encode(&mut out).unwrap();
        assert_eq!(&out[..4], &[0, 1, 1, 16]);
        assert_eq!(&out[20..], &[0, 24, 203, 0, 113]);
        assert_eq!(MpReach::decode(&out), Ok(reach));
    }

    #[test]
    fn bad_next_hops_and_families() {
        // IPv6 family with a four-octet next hop.
        assert_eq!(
            MpReach::decode(&[0, 2, 1, 4, 192, 0, 2, 1, 0]),
            Err(UpdateSubcode::OptionalAttributeError)
        );
        // Next hop length overruns the attribute.
        assert_eq!(
            MpReach::decode(&[0, 1, 1, 16, 192, 0, 2, 1]),
            Err(UpdateSubcode::OptionalAttributeError)
        );
        // Unsupported family.
        assert_eq!(
            MpUnreach::decode(&[0, 25, 70]),
            Err(UpdateSubcode::OptionalAttributeError)
        );
        // NLRI overruns.
        assert_eq!(
            MpUnreach::decode(&[0, 2, 1, 64, 0x20]),
            Err(UpdateSubcode::InvalidNetworkField)
        );
        let bad = MpReach {
            family: AddressFamily::IPV6_UNICAST,
            next_hop: NextHop::V4(Ipv4Addr::new(192, 0, 2, 1)),
            nlri: vec![],
        };
        assert_eq!(
            bad.encode(&mut BytesMut::new()),
            Err(EncodeError::NextHopMismatch(AddressFamily::IPV6_UNICAST))
        );
        let bad = MpUnreach {
            family: AddressFamily::IPV6_UNICAST,
            withdrawn: vec!["192.0.2.0/24".parse().unwrap()],
        };
        assert!(matches!(
            bad.encode(&mut BytesMut::new()),
            Err(EncodeError::FamilyMismatch { .. })
        ));
    }
}
