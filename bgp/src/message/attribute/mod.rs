//! Path attributes (RFC 4271 §4.3, §5) and their RFC 7606 error handling.
//!
//! [`PathAttributes`] holds at most one of each known attribute (a decoded
//! UPDATE keeps the first copy of a repeated attribute, RFC 7606 §3(g)) plus
//! the unrecognised optional attributes as [`RawAttribute`]s, in the order
//! received.

pub mod as_path;
pub mod community;
pub mod mp;

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

pub use as_path::{AS_TRANS, AsPath, AsSegment, SegmentType};
pub use community::{Community, ExtendedCommunity, LargeCommunity};
pub use mp::{MpReach, MpUnreach, NextHop};

use crate::error::{AttributeError, AttributeProblem, EncodeError};
use crate::message::CodecContext;
use crate::message::notification::{Notification, UpdateSubcode};
use crate::wire;

/// Attribute flag bits (RFC 4271 §4.3).
pub mod flags {
    /// Optional (set) or well-known (clear).
    pub const OPTIONAL: u8 = 0x80;
    /// Transitive.
    pub const TRANSITIVE: u8 = 0x40;
    /// Partial: an optional transitive attribute some router did not
    /// recognise.
    pub const PARTIAL: u8 = 0x20;
    /// The length field is two octets.
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// Attribute type codes (IANA "BGP Path Attributes").
pub mod type_code {
    /// ORIGIN (RFC 4271).
    pub const ORIGIN: u8 = 1;
    /// AS_PATH (RFC 4271).
    pub const AS_PATH: u8 = 2;
    /// NEXT_HOP (RFC 4271).
    pub const NEXT_HOP: u8 = 3;
    /// MULTI_EXIT_DISC (RFC 4271).
    pub const MULTI_EXIT_DISC: u8 = 4;
    /// LOCAL_PREF (RFC 4271).
    pub const LOCAL_PREF: u8 = 5;
    /// ATOMIC_AGGREGATE (RFC 4271).
    pub const ATOMIC_AGGREGATE: u8 = 6;
    /// AGGREGATOR (RFC 4271).
    pub const AGGREGATOR: u8 = 7;
    /// COMMUNITIES (RFC 1997).
    pub const COMMUNITIES: u8 = 8;
    /// ORIGINATOR_ID (RFC 4456).
    pub const ORIGINATOR_ID: u8 = 9;
    /// CLUSTER_LIST (RFC 4456).
    pub const CLUSTER_LIST: u8 = 10;
    /// MP_REACH_NLRI (RFC 4760).
    pub const MP_REACH_NLRI: u8 = 14;
    /// MP_UNREACH_NLRI (RFC 4760).
    pub const MP_UNREACH_NLRI: u8 = 15;
    /// EXTENDED COMMUNITIES (RFC 4360).
    pub const EXTENDED_COMMUNITIES: u8 = 16;
    /// AS4_PATH (RFC 6793).
    pub const AS4_PATH: u8 = 17;
    /// AS4_AGGREGATOR (RFC 6793).
    pub const AS4_AGGREGATOR: u8 = 18;
    /// LARGE_COMMUNITY (RFC 8092).
    pub const LARGE_COMMUNITY: u8 = 32;
}

/// A readable name for an attribute type code.
pub fn type_name(code: u8) -> &'static str {
    match code {
        type_code::ORIGIN => "ORIGIN",
        type_code::AS_PATH => "AS_PATH",
        type_code::NEXT_HOP => "NEXT_HOP",
        type_code::MULTI_EXIT_DISC => "MULTI_EXIT_DISC",
        type_code::LOCAL_PREF => "LOCAL_PREF",
        type_code::ATOMIC_AGGREGATE => "ATOMIC_AGGREGATE",
        type_code::AGGREGATOR => "AGGREGATOR",
        type_code::COMMUNITIES => "COMMUNITIES",
        type_code::ORIGINATOR_ID => "ORIGINATOR_ID",
        type_code::CLUSTER_LIST => "CLUSTER_LIST",
        type_code::MP_REACH_NLRI => "MP_REACH_NLRI",
        type_code::MP_UNREACH_NLRI => "MP_UNREACH_NLRI",
        type_code::EXTENDED_COMMUNITIES => "EXTENDED_COMMUNITIES",
        type_code::AS4_PATH => "AS4_PATH",
        type_code::AS4_AGGREGATOR => "AS4_AGGREGATOR",
        type_code::LARGE_COMMUNITY => "LARGE_COMMUNITY",
        _ => "attribute",
    }
}

/// Whether this codec parses the attribute type (others are kept raw).
pub fn is_known(code: u8) -> bool {
    matches!(code, 1..=10 | 14..=18 | 32)
}

/// ORIGIN values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// 0: learned from an interior protocol (or configured).
    Igp,
    /// 1: learned via EGP.
    Egp,
    /// 2: learned some other way (e.g. redistribution).
    Incomplete,
}

impl Origin {
    fn to_u8(self) -> u8 {
        match self {
            Origin::Igp => 0,
            Origin::Egp => 1,
            Origin::Incomplete => 2,
        }
    }
}

/// AGGREGATOR or AS4_AGGREGATOR: the AS and router that aggregated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aggregator {
    /// The aggregating AS.
    pub asn: u32,
    /// The aggregating router's BGP identifier.
    pub address: Ipv4Addr,
}

/// An attribute this codec does not parse, kept as received (without the
/// Extended Length bit, which is recomputed on encode).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// Flags: Optional, Transitive and Partial bits only.
    pub flags: u8,
    /// Type code.
    pub type_code: u8,
    /// Value.
    pub value: Vec<u8>,
}

impl RawAttribute {
    /// Whether the Optional bit is set.
    pub fn is_optional(&self) -> bool {
        self.flags & flags::OPTIONAL != 0
    }

    /// Whether the Transitive bit is set.
    pub fn is_transitive(&self) -> bool {
        self.flags & flags::TRANSITIVE != 0
    }

    /// Whether the Partial bit is set.
    pub fn is_partial(&self) -> bool {
        self.flags & flags::PARTIAL != 0
    }
}

/// The path attributes of an UPDATE.
///
/// Empty lists mean "attribute absent": an empty COMMUNITIES,
/// EXTENDED_COMMUNITIES, LARGE_COMMUNITY or CLUSTER_LIST is malformed
/// (RFC 7606 §7.8, §7.10, §7.14; RFC 8092 §6), so it is never sent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct PathAttributes {
    /// ORIGIN.
    pub origin: Option<Origin>,
    /// AS_PATH, with AS numbers as received (AS_TRANS included, for a
    /// two-octet peer; see [`reconstruct_from_two_octet_peer`](Self::reconstruct_from_two_octet_peer)).
    pub as_path: Option<AsPath>,
    /// NEXT_HOP (IPv4 NLRI in the classic field).
    pub next_hop: Option<Ipv4Addr>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
    /// LOCAL_PREF (internal peers only).
    pub local_pref: Option<u32>,
    /// ATOMIC_AGGREGATE present.
    pub atomic_aggregate: bool,
    /// AGGREGATOR.
    pub aggregator: Option<Aggregator>,
    /// COMMUNITIES.
    pub communities: Vec<Community>,
    /// ORIGINATOR_ID (route reflection).
    pub originator_id: Option<Ipv4Addr>,
    /// CLUSTER_LIST (route reflection).
    pub cluster_list: Vec<Ipv4Addr>,
    /// MP_REACH_NLRI.
    pub mp_reach: Option<MpReach>,
    /// MP_UNREACH_NLRI.
    pub mp_unreach: Option<MpUnreach>,
    /// EXTENDED COMMUNITIES.
    pub extended_communities: Vec<ExtendedCommunity>,
    /// AS4_PATH (only between a four-octet and a two-octet speaker).
    pub as4_path: Option<AsPath>,
    /// AS4_AGGREGATOR (likewise).
    pub as4_aggregator: Option<Aggregator>,
    /// LARGE_COMMUNITY.
    pub large_communities: Vec<LargeCommunity>,
    /// Unrecognised optional attributes, in the order received.
    pub unknown: Vec<RawAttribute>,
}

/// How a malformed attribute must be handled (RFC 7606 §2).
#[derive(Debug)]
pub(crate) enum Malformed {
    SessionReset(Notification),
    TreatAsWithdraw(AttributeError),
    Discard(AttributeError),
}

/// The Optional and Transitive flags a known attribute must carry.
fn expected_flags(code: u8) -> u8 {
    use type_code::*;
    match code {
        ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => flags::TRANSITIVE,
        MULTI_EXIT_DISC | ORIGINATOR_ID | CLUSTER_LIST | MP_REACH_NLRI | MP_UNREACH_NLRI => {
            flags::OPTIONAL
        }
        _ => flags::OPTIONAL | flags::TRANSITIVE,
    }
}

fn flags_ok(code: u8, received: u8) -> bool {
    received & (flags::OPTIONAL | flags::TRANSITIVE) == expected_flags(code)
}

fn ipv4_list(value: &[u8]) -> Vec<Ipv4Addr> {
    value
        .chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect()
}

fn u32_of(value: &[u8]) -> u32 {
    wire::u32(value).map(|(_, v)| v).unwrap_or_default()
}

impl PathAttributes {
    /// Whether no attribute is present.
    pub fn is_empty(&self) -> bool {
        *self == PathAttributes::default()
    }

    /// Parses one attribute into `self`. `raw` is the whole attribute (flags,
    /// type, length, value), used as NOTIFICATION data. The caller has
    /// already dealt with duplicates.
    pub(crate) fn decode_one(
        &mut self,
        attr_flags: u8,
        code: u8,
        value: &[u8],
        raw: &[u8],
        ctx: &CodecContext,
    ) -> Result<(), Malformed> {
        use type_code::*;
        let err = |problem| AttributeError::new(code, problem);
        let withdraw = |problem| Malformed::TreatAsWithdraw(err(problem));
        let discard = |problem| Malformed::Discard(err(problem));
        let len = value.len();
        let bad_len = AttributeProblem::BadLength { len };
        let flags_conflict = !is_known(code) || !flags_ok(code, attr_flags);
        let bad_flags = AttributeProblem::FlagsConflict { flags: attr_flags };

        match code {
            ORIGIN | AS_PATH | NEXT_HOP | MULTI_EXIT_DISC | COMMUNITIES | ORIGINATOR_ID
            | CLUSTER_LIST | EXTENDED_COMMUNITIES | LARGE_COMMUNITY
                if flags_conflict =>
            {
                return Err(withdraw(bad_flags));
            }
            ATOMIC_AGGREGATE | AGGREGATOR if flags_conflict => return Err(discard(bad_flags)),
            _ => {}
        }

        match code {
            ORIGIN => {
                self.origin = Some(match value {
                    [0] => Origin::Igp,
                    [1] => Origin::Egp,
                    [2] => Origin::Incomplete,
                    [_] => {
                        return Err(withdraw(AttributeProblem::InvalidValue("undefined ORIGIN")));
                    }
                    _ => return Err(withdraw(bad_len)),
                });
            }
            AS_PATH => {
                let path = AsPath::decode(value, ctx.four_octet_as)
                    .map_err(|why| withdraw(AttributeProblem::InvalidValue(why)))?;
                // RFC 7607 §2: AS 0 makes the path malformed.
                if path.asns().any(|a| a == 0) {
                    return Err(withdraw(AttributeProblem::InvalidValue("AS 0 in the path")));
                }
                // This codec does not run confederations, so a peer that
                // sends confederation segments is outside ours (RFC 7606 §7.2).
                if !ctx.internal_peer && path.segments.iter().any(|s| s.kind.is_confed()) {
                    return Err(withdraw(AttributeProblem::InvalidValue(
                        "confederation segment from an external peer",
                    )));
                }
                self.as_path = Some(path);
            }
            NEXT_HOP => match *value {
                [a, b, c, d] => self.next_hop = Some(Ipv4Addr::new(a, b, c, d)),
                _ => return Err(withdraw(bad_len)),
            },
            MULTI_EXIT_DISC => match len {
                4 => self.med = Some(u32_of(value)),
                _ => return Err(withdraw(bad_len)),
            },
            LOCAL_PREF => {
                if !ctx.internal_peer {
                    return Err(discard(AttributeProblem::FromExternalPeer));
                }
                if flags_conflict {
                    return Err(withdraw(bad_flags));
                }
                match len {
                    4 => self.local_pref = Some(u32_of(value)),
                    _ => return Err(withdraw(bad_len)),
                }
            }
            ATOMIC_AGGREGATE => match len {
                0 => self.atomic_aggregate = true,
                _ => return Err(discard(bad_len)),
            },
            AGGREGATOR => {
                self.aggregator = Some(match (ctx.four_octet_as, value) {
                    (false, &[a0, a1, ref addr @ ..]) if addr.len() == 4 => Aggregator {
                        asn: u32::from(u16::from_be_bytes([a0, a1])),
                        address: ipv4_list(addr)[0],
                    },
                    (true, &[a0, a1, a2, a3, ref addr @ ..]) if addr.len() == 4 => Aggregator {
                        asn: u32::from_be_bytes([a0, a1, a2, a3]),
                        address: ipv4_list(addr)[0],
                    },
                    _ => return Err(discard(bad_len)),
                });
            }
            COMMUNITIES => {
                if len == 0 || !len.is_multiple_of(4) {
                    return Err(withdraw(bad_len));
                }
                self.communities = value
                    .chunks_exact(4)
                    .map(|c| Community(u32_of(c)))
                    .collect();
            }
            ORIGINATOR_ID => match len {
                4 => self.originator_id = Some(ipv4_list(value)[0]),
                _ => return Err(withdraw(bad_len)),
            },
            CLUSTER_LIST => {
                if len == 0 || !len.is_multiple_of(4) {
                    return Err(withdraw(bad_len));
                }
                self.cluster_list = ipv4_list(value);
            }
            MP_REACH_NLRI => {
                let reach = MpReach::decode(value).map_err(|sub| mp_reset(sub, raw))?;
                self.mp_reach = Some(reach);
                // Parsed, so its prefixes can be withdrawn: RFC 7606 §3's
                // default applies to a flags conflict.
                if flags_conflict {
                    return Err(withdraw(bad_flags));
                }
            }
            MP_UNREACH_NLRI => {
                let unreach = MpUnreach::decode(value).map_err(|sub| mp_reset(sub, raw))?;
                self.mp_unreach = Some(unreach);
                if flags_conflict {
                    return Err(withdraw(bad_flags));
                }
            }
            EXTENDED_COMMUNITIES => {
                if len == 0 || !len.is_multiple_of(8) {
                    return Err(withdraw(bad_len));
                }
                self.extended_communities = value
                    .chunks_exact(8)
                    .map(|c| ExtendedCommunity(c.try_into().expect("chunks of 8")))
                    .collect();
            }
            AS4_PATH | AS4_AGGREGATOR => {
                // RFC 6793 §6 (as updated by RFC 7606): malformed AS4_*
                // attributes are discarded; a four-octet peer must not send
                // them at all (§4.1), so they are discarded too.
                if ctx.four_octet_as {
                    return Err(discard(AttributeProblem::FromFourOctetPeer));
                }
                if flags_conflict {
                    return Err(discard(bad_flags));
                }
                if code == AS4_PATH {
                    let path = AsPath::decode(value, true)
                        .map_err(|why| discard(AttributeProblem::InvalidValue(why)))?;
                    if path.is_empty() {
                        return Err(discard(bad_len));
                    }
                    if path.asns().any(|a| a == 0) {
                        return Err(discard(AttributeProblem::InvalidValue("AS 0 in the path")));
                    }
                    self.as4_path = Some(path);
                } else {
                    match *value {
                        [a0, a1, a2, a3, b0, b1, b2, b3] => {
                            self.as4_aggregator = Some(Aggregator {
                                asn: u32::from_be_bytes([a0, a1, a2, a3]),
                                address: Ipv4Addr::new(b0, b1, b2, b3),
                            })
                        }
                        _ => return Err(discard(bad_len)),
                    }
                }
            }
            LARGE_COMMUNITY => {
                if len == 0 || !len.is_multiple_of(12) {
                    return Err(withdraw(bad_len));
                }
                self.large_communities = value
                    .chunks_exact(12)
                    .map(|c| LargeCommunity {
                        global_admin: u32_of(&c[0..4]),
                        local_data1: u32_of(&c[4..8]),
                        local_data2: u32_of(&c[8..12]),
                    })
                    .collect();
            }
            _ => {
                if attr_flags & flags::OPTIONAL == 0 {
                    // RFC 4271 §6.3, unchanged by RFC 7606.
                    return Err(Malformed::SessionReset(Notification::update_error(
                        UpdateSubcode::UnrecognizedWellKnownAttribute,
                        raw,
                    )));
                }
                self.unknown.push(RawAttribute {
                    flags: attr_flags & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
                    type_code: code,
                    value: value.to_vec(),
                });
            }
        }
        Ok(())
    }

    /// Appends every present attribute: MP_UNREACH_NLRI and MP_REACH_NLRI
    /// first (RFC 7606 §5.1), then the rest by type code, then the unknown
    /// ones in their stored order.
    pub(crate) fn encode(&self, ctx: &CodecContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        use type_code::*;
        let four = ctx.four_octet_as;
        let mut v = BytesMut::new();
        macro_rules! emit {
            ($code:expr, $flags:expr) => {{
                put_attribute(out, $flags, $code, &v)?;
                v.clear();
            }};
        }
        if let Some(u) = &self.mp_unreach {
            u.encode(&mut v)?;
            emit!(MP_UNREACH_NLRI, flags::OPTIONAL);
        }
        if let Some(r) = &self.mp_reach {
            r.encode(&mut v)?;
            emit!(MP_REACH_NLRI, flags::OPTIONAL);
        }
        if let Some(origin) = self.origin {
            v.put_u8(origin.to_u8());
            emit!(ORIGIN, flags::TRANSITIVE);
        }
        if let Some(path) = &self.as_path {
            path.encode(four, &mut v)?;
            emit!(AS_PATH, flags::TRANSITIVE);
        }
        if let Some(nh) = self.next_hop {
            v.put_slice(&nh.octets());
            emit!(NEXT_HOP, flags::TRANSITIVE);
        }
        if let Some(med) = self.med {
            v.put_u32(med);
            emit!(MULTI_EXIT_DISC, flags::OPTIONAL);
        }
        if let Some(lp) = self.local_pref {
            v.put_u32(lp);
            emit!(LOCAL_PREF, flags::TRANSITIVE);
        }
        if self.atomic_aggregate {
            emit!(ATOMIC_AGGREGATE, flags::TRANSITIVE);
        }
        if let Some(agg) = self.aggregator {
            if four {
                v.put_u32(agg.asn);
            } else {
                v.put_u16(
                    u16::try_from(agg.asn).map_err(|_| EncodeError::AsnNotTwoOctet(agg.asn))?,
                );
            }
            v.put_slice(&agg.address.octets());
            emit!(AGGREGATOR, flags::OPTIONAL | flags::TRANSITIVE);
        }
        if !self.communities.is_empty() {
            for c in &self.communities {
                v.put_u32(c.0);
            }
            emit!(COMMUNITIES, flags::OPTIONAL | flags::TRANSITIVE);
        }
        if let Some(id) = self.originator_id {
            v.put_slice(&id.octets());
            emit!(ORIGINATOR_ID, flags::OPTIONAL);
        }
        if !self.cluster_list.is_empty() {
            for id in &self.cluster_list {
                v.put_slice(&id.octets());
            }
            emit!(CLUSTER_LIST, flags::OPTIONAL);
        }
        if !self.extended_communities.is_empty() {
            for c in &self.extended_communities {
                v.put_slice(&c.0);
            }
            emit!(EXTENDED_COMMUNITIES, flags::OPTIONAL | flags::TRANSITIVE);
        }
        if let Some(path) = &self.as4_path {
            path.encode(true, &mut v)?;
            emit!(AS4_PATH, flags::OPTIONAL | flags::TRANSITIVE);
        }
        if let Some(agg) = self.as4_aggregator {
            v.put_u32(agg.asn);
            v.put_slice(&agg.address.octets());
            emit!(AS4_AGGREGATOR, flags::OPTIONAL | flags::TRANSITIVE);
        }
        if !self.large_communities.is_empty() {
            for c in &self.large_communities {
                v.put_u32(c.global_admin);
                v.put_u32(c.local_data1);
                v.put_u32(c.local_data2);
            }
            emit!(LARGE_COMMUNITY, flags::OPTIONAL | flags::TRANSITIVE);
        }
        for raw in &self.unknown {
            put_attribute(
                out,
                raw.flags & (flags::OPTIONAL | flags::TRANSITIVE | flags::PARTIAL),
                raw.type_code,
                &raw.value,
            )?;
        }
        Ok(())
    }

    /// Prepares unrecognised attributes for passing on to another peer
    /// (RFC 4271 §5): optional transitive ones get the Partial bit,
    /// optional non-transitive ones are dropped.
    pub fn pass_through_unknown(&mut self) {
        self.unknown.retain(RawAttribute::is_transitive);
        for raw in &mut self.unknown {
            raw.flags |= flags::PARTIAL;
        }
    }

    /// The attributes to send to a peer without four-octet AS support
    /// (RFC 6793 §4.2.2): AS_PATH with AS_TRANS for four-octet ASes plus
    /// AS4_PATH when needed, and AGGREGATOR with AS_TRANS plus
    /// AS4_AGGREGATOR when the aggregating AS needs four octets.
    pub fn for_two_octet_peer(&self) -> PathAttributes {
        let mut out = self.clone();
        out.as4_path = None;
        out.as4_aggregator = None;
        if let Some(path) = &self.as_path {
            let (two, four) = path.split_for_two_octet();
            out.as_path = Some(two);
            out.as4_path = four;
        }
        if let Some(agg) = self.aggregator
            && agg.asn > u32::from(u16::MAX)
        {
            out.aggregator = Some(Aggregator {
                asn: AS_TRANS,
                ..agg
            });
            out.as4_aggregator = Some(agg);
        }
        out
    }

    /// Rebuilds the four-octet AS information received from a two-octet
    /// peer (RFC 6793 §4.2.3) and removes AS4_PATH and AS4_AGGREGATOR.
    ///
    /// When AGGREGATOR names an AS other than AS_TRANS, AS4_AGGREGATOR and
    /// AS4_PATH are ignored. Otherwise AS4_AGGREGATOR replaces AGGREGATOR and
    /// AS_PATH is merged with AS4_PATH by [`AsPath::merge_as4`].
    pub fn reconstruct_from_two_octet_peer(&mut self) {
        let as4_path = self.as4_path.take();
        let as4_aggregator = self.as4_aggregator.take();
        if let Some(agg) = &mut self.aggregator {
            if agg.asn != AS_TRANS {
                return;
            }
            if let Some(four) = as4_aggregator {
                *agg = four;
            }
        }
        if let (Some(path), Some(four)) = (&self.as_path, as4_path) {
            self.as_path = Some(AsPath::merge_as4(path, &four));
        }
    }
}

/// Session reset for an unparsable MP_REACH_NLRI / MP_UNREACH_NLRI.
fn mp_reset(subcode: UpdateSubcode, raw: &[u8]) -> Malformed {
    let data = match subcode {
        UpdateSubcode::InvalidNetworkField => Vec::new(),
        _ => raw.to_vec(),
    };
    Malformed::SessionReset(Notification::update_error(subcode, data))
}

/// Appends flags, type, length and value, using a two-octet length (and the
/// Extended Length flag) only when the value exceeds 255 octets.
fn put_attribute(
    out: &mut BytesMut,
    attr_flags: u8,
    code: u8,
    value: &[u8],
) -> Result<(), EncodeError> {
    let len = value.len();
    if len > usize::from(u16::MAX) {
        return Err(EncodeError::AttributeTooLong {
            type_code: code,
            len,
        });
    }
    if len > usize::from(u8::MAX) {
        out.put_u8(attr_flags | flags::EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u16(len as u16);
    } else {
        out.put_u8(attr_flags & !flags::EXTENDED_LENGTH);
        out.put_u8(code);
        out.put_u8(len as u8);
    }
    out.put_slice(value);
    Ok(())
}

/// Octets an attribute with a value of `value_len` octets takes.
pub(crate) fn attribute_len(value_len: usize) -> usize {
    if value_len > usize::from(u8::MAX) {
        4 + value_len
    } else {
        3 + value_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(attrs: &PathAttributes, four: bool) -> Vec<u8> {
        let ctx = CodecContext {
            four_octet_as: four,
            ..CodecContext::default()
        };
        let mut out = BytesMut::new();
        attrs.encode(&ctx, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn extended_length_only_when_needed() {
        let mut attrs = PathAttributes {
            communities: (0..63).map(|i| Community::new(64496, i)).collect(),
            ..Default::default()
        };
        let short = enc(&attrs, true);
        assert_eq!(&short[..3], &[0xc0, 8, 252]);
        attrs.communities.push(Community::NO_EXPORT);
        let long = enc(&attrs, true);
        assert_eq!(&long[..4], &[0xd0, 8, 1, 0]);
        assert_eq!(long.len(), 4 + 256);
    }

    #[test]
    fn mp_attributes_come_first() {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            mp_unreach: Some(MpUnreach::end_of_rib(
                crate::prefix::AddressFamily::IPV6_UNICAST,
            )),
            ..Default::default()
        };
        assert_eq!(enc(&attrs, true), [0x80, 15, 3, 0, 2, 1, 0x40, 1, 1, 0]);
    }

    #[test]
    fn unknown_attribute_flags_are_normalised() {
        let attrs = PathAttributes {
            unknown: vec![RawAttribute {
                flags: 0xff,
                type_code: 99,
                value: vec![7],
            }],
            ..Default::default()
        };
        assert_eq!(enc(&attrs, true), [0xe0, 99, 1, 7]);
    }

    #[test]
    fn pass_through_sets_partial_and_drops_non_transitive() {
        let mut attrs = PathAttributes {
            unknown: vec![
                RawAttribute {
                    flags: flags::OPTIONAL | flags::TRANSITIVE,
                    type_code: 99,
                    value: vec![1],
                },
                RawAttribute {
                    flags: flags::OPTIONAL,
                    type_code: 100,
                    value: vec![2],
                },
            ],
            ..Default::default()
        };
        attrs.pass_through_unknown();
        assert_eq!(attrs.unknown.len(), 1);
        assert!(attrs.unknown[0].is_partial());
        assert_eq!(enc(&attrs, true), [0xe0, 99, 1, 1]);
    }

    #[test]
    fn two_octet_peer_round_trip() {
        let original = PathAttributes {
            as_path: Some(AsPath::from_sequence([65540, 64500])),
            aggregator: Some(Aggregator {
                asn: 65541,
                address: Ipv4Addr::new(192, 0, 2, 9),
            }),
            ..Default::default()
        };
        let sent = original.for_two_octet_peer();
        assert_eq!(sent.as_path, Some(AsPath::from_sequence([AS_TRANS, 64500])));
        assert_eq!(sent.aggregator.unwrap().asn, AS_TRANS);
        assert_eq!(sent.as4_aggregator.unwrap().asn, 65541);
        // It encodes with two-octet AS numbers.
        enc(&sent, false);
        let mut received = sent.clone();
        received.reconstruct_from_two_octet_peer();
        assert_eq!(received, original);
    }

    #[test]
    fn aggregator_not_as_trans_ignores_as4_attributes() {
        let mut attrs = PathAttributes {
            as_path: Some(AsPath::from_sequence([64500, AS_TRANS])),
            aggregator: Some(Aggregator {
                asn: 64501,
                address: Ipv4Addr::new(192, 0, 2, 1),
            }),
            as4_path: Some(AsPath::from_sequence([65540])),
            as4_aggregator: Some(Aggregator {
                asn: 65541,
                address: Ipv4Addr::new(192, 0, 2, 1),
            }),
            ..Default::default()
        };
        attrs.reconstruct_from_two_octet_peer();
        assert_eq!(
            attrs.as_path,
            Some(AsPath::from_sequence([64500, AS_TRANS]))
        );
        assert_eq!(attrs.aggregator.unwrap().asn, 64501);
        assert_eq!(attrs.as4_path, None);
        assert_eq!(attrs.as4_aggregator, None);
    }
}
