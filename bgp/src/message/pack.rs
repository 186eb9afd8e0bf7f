//! Packing many prefixes that share attributes into as few UPDATEs as the
//! negotiated message size allows.

use std::ops::Range;

use crate::error::EncodeError;
use crate::message::attribute::{MpReach, MpUnreach, NextHop, PathAttributes, attribute_len};
use crate::message::update::Update;
use crate::message::{CodecContext, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, Message};
use crate::prefix::{AddressFamily, Ipv4Prefix, Prefix};

/// Octets of an UPDATE with no withdrawn routes, attributes or NLRI.
const EMPTY_UPDATE_LEN: usize = HEADER_LEN + 4;

/// Builds UPDATEs announcing `prefixes`, all with `attributes` and
/// `next_hop`, each no longer than `ctx.max_message_len`.
///
/// IPv4 prefixes with an IPv4 next hop go in the classic NLRI field with a
/// NEXT_HOP attribute. IPv4 prefixes with an IPv6 next hop (RFC 8950) and
/// IPv6 prefixes go in MP_REACH_NLRI, without NEXT_HOP. The NEXT_HOP,
/// MP_REACH_NLRI and MP_UNREACH_NLRI of `attributes` are ignored. Prefix
/// order is kept within each family; IPv4 UPDATEs come first.
pub fn pack_announcements(
    attributes: &PathAttributes,
    next_hop: NextHop,
    prefixes: &[Prefix],
    ctx: &CodecContext,
) -> Result<Vec<Update>, EncodeError> {
    let (v4, v6) = split_families(prefixes);
    let mut out = Vec::new();
    let mut base = attributes.clone();
    base.mp_unreach = None;
    base.mp_reach = None;
    base.next_hop = None;

    if !v4.is_empty() {
        match next_hop {
            NextHop::V4(addr) => {
                let attrs = PathAttributes {
                    next_hop: Some(addr),
                    ..base.clone()
                };
                let base_len = encoded_len(
                    &Update {
                        attributes: attrs.clone(),
                        ..Default::default()
                    },
                    ctx,
                )?;
                for range in chunks(&v4, ctx.max_message_len, |n| base_len + n)? {
                    out.push(Update {
                        attributes: attrs.clone(),
                        nlri: v4[range].iter().map(|p| as_v4(*p)).collect(),
                        ..Default::default()
                    });
                }
            }
            NextHop::V6 { .. } => {
                out.extend(pack_mp(
                    &base,
                    AddressFamily::IPV4_UNICAST,
                    next_hop,
                    &v4,
                    ctx,
                )?);
            }
        }
    }
    if !v6.is_empty() {
        if !next_hop.fits(AddressFamily::IPV6_UNICAST) {
            return Err(EncodeError::NextHopMismatch(AddressFamily::IPV6_UNICAST));
        }
        out.extend(pack_mp(
            &base,
            AddressFamily::IPV6_UNICAST,
            next_hop,
            &v6,
            ctx,
        )?);
    }
    Ok(out)
}

/// Builds UPDATEs withdrawing `prefixes`: IPv4 in the classic withdrawn
/// routes field, IPv6 in MP_UNREACH_NLRI. Each fits `ctx.max_message_len`.
pub fn pack_withdrawals(
    prefixes: &[Prefix],
    ctx: &CodecContext,
) -> Result<Vec<Update>, EncodeError> {
    let (v4, v6) = split_families(prefixes);
    let mut out = Vec::new();
    for range in chunks(&v4, ctx.max_message_len, |n| EMPTY_UPDATE_LEN + n)? {
        out.push(Update {
            withdrawn: v4[range].iter().map(|p| as_v4(*p)).collect(),
            ..Default::default()
        });
    }
    // AFI + SAFI, then the withdrawn routes.
    let unreach_len = |n: usize| EMPTY_UPDATE_LEN + attribute_len(3 + n);
    for range in chunks(&v6, ctx.max_message_len, unreach_len)? {
        out.push(Update {
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach {
                    family: AddressFamily::IPV6_UNICAST,
                    withdrawn: v6[range].to_vec(),
                }),
                ..Default::default()
            },
            ..Default::default()
        });
    }
    Ok(out)
}

fn pack_mp(
    base: &PathAttributes,
    family: AddressFamily,
    next_hop: NextHop,
    prefixes: &[Prefix],
    ctx: &CodecContext,
) -> Result<Vec<Update>, EncodeError> {
    let empty_reach = MpReach {
        family,
        next_hop,
        nlri: Vec::new(),
    };
    let reach_value_len = empty_reach.encoded_len();
    let attrs = PathAttributes {
        mp_reach: Some(empty_reach),
        ..base.clone()
    };
    // Length without the MP_REACH_NLRI attribute, whose header grows by an
    // octet once its value passes 255 octets.
    let others_len = encoded_len(
        &Update {
            attributes: attrs.clone(),
            ..Default::default()
        },
        ctx,
    )? - attribute_len(reach_value_len);
    let total = |n: usize| others_len + attribute_len(reach_value_len + n);
    let mut out = Vec::new();
    for range in chunks(prefixes, ctx.max_message_len, total)? {
        let mut attrs = attrs.clone();
        if let Some(reach) = &mut attrs.mp_reach {
            reach.nlri = prefixes[range].to_vec();
        }
        out.push(Update {
            attributes: attrs,
            ..Default::default()
        });
    }
    Ok(out)
}

/// Greedy split of `prefixes` into runs whose message length, given by
/// `total(nlri_octets)`, stays within `max`.
fn chunks(
    prefixes: &[Prefix],
    max: usize,
    total: impl Fn(usize) -> usize,
) -> Result<Vec<Range<usize>>, EncodeError> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut octets = 0;
    for (i, p) in prefixes.iter().enumerate() {
        let len = p.encoded_len();
        if total(octets + len) > max {
            if i == start {
                return Err(EncodeError::MessageTooLong {
                    len: total(len),
                    max,
                });
            }
            out.push(start..i);
            start = i;
            octets = 0;
        }
        octets += len;
    }
    if start < prefixes.len() {
        out.push(start..prefixes.len());
    }
    Ok(out)
}

fn encoded_len(update: &Update, ctx: &CodecContext) -> Result<usize, EncodeError> {
    // Measure against the largest possible message: the context's limit is
    // applied per chunk.
    let unlimited = CodecContext {
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
        ..*ctx
    };
    Ok(Message::Update(update.clone()).encode(&unlimited)?.len())
}

fn split_families(prefixes: &[Prefix]) -> (Vec<Prefix>, Vec<Prefix>) {
    prefixes.iter().partition(|p| matches!(p, Prefix::V4(_)))
}

fn as_v4(p: Prefix) -> Ipv4Prefix {
    match p {
        Prefix::V4(p) => p,
        Prefix::V6(_) => unreachable!("split_families keeps IPv4 only"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::message::attribute::{AsPath, Origin};
    use crate::message::{MAX_MESSAGE_LEN, decode_message};

    fn attrs() -> PathAttributes {
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([64496])),
            ..Default::default()
        }
    }

    fn ctx(max: usize) -> CodecContext {
        CodecContext {
            four_octet_as: true,
            max_message_len: max,
            internal_peer: false,
        }
    }

    /// Every prefix of length 24 to 32 inside the three IPv4 documentation
    /// ranges: 3 × 511 prefixes.
    fn v4_doc_prefixes() -> Vec<Prefix> {
        let mut out = Vec::new();
        for base in [[192, 0, 2, 0], [198, 51, 100, 0], [203, 0, 113, 0]] {
            let base = u32::from(Ipv4Addr::from(base));
            for len in 24..=32u8 {
                let step = 1u32 << (32 - len);
                for i in 0..(256 / step) {
                    let addr = Ipv4Addr::from(base + i * step);
                    out.push(Prefix::V4(Ipv4Prefix::new(addr, len).unwrap()));
                }
            }
        }
        out
    }

    /// /128s in 2001:db8::/32.
    fn v6_hosts(n: u128) -> Vec<Prefix> {
        let base: u128 = "2001:db8::".parse::<std::net::Ipv6Addr>().unwrap().into();
        (0..n)
            .map(|i| Prefix::new(std::net::Ipv6Addr::from(base + i).into(), 128).unwrap())
            .collect()
    }

    fn check_all(updates: &[Update], ctx: &CodecContext) -> Vec<Prefix> {
        let mut seen = Vec::new();
        for u in updates {
            let bytes = Message::Update(u.clone()).encode(ctx).unwrap();
            assert!(bytes.len() <= ctx.max_message_len);
            let decoded = decode_message(&bytes, ctx).unwrap();
            assert_eq!(decoded.message, Message::Update(u.clone()));
            seen.extend(u.announced());
            seen.extend(u.withdrawals());
        }
        seen
    }

    #[test]
    fn classic_ipv4_fills_messages_exactly() {
        let ctx = ctx(MAX_MESSAGE_LEN);
        // Only the /32s: 5 octets each.
        let prefixes: Vec<Prefix> = v4_doc_prefixes()
            .into_iter()
            .filter(|p| p.len() == 32)
            .collect();
        assert_eq!(prefixes.len(), 768);
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        let small = CodecContext {
            max_message_len: 1000,
            ..ctx
        };
        let updates = pack_announcements(&attrs(), nh, &prefixes, &small).unwrap();
        // Header 19 + 4, ORIGIN 4, AS_PATH 9, NEXT_HOP 7 = 43 octets.
        let per_message = (1000 - 43) / 5;
        assert_eq!(updates.len(), 768usize.div_ceil(per_message));
        assert_eq!(updates[0].nlri.len(), per_message);
        assert_eq!(check_all(&updates, &small), prefixes);
        // The whole set needs two 4096-octet messages.
        let prefixes = v4_doc_prefixes();
        let updates = pack_announcements(&attrs(), nh, &prefixes, &ctx).unwrap();
        assert_eq!(updates.len(), 2);
        assert_eq!(check_all(&updates, &ctx), prefixes);
    }

    #[test]
    fn ipv6_uses_mp_reach_and_crosses_extended_length() {
        let ctx = ctx(MAX_MESSAGE_LEN);
        let prefixes = v6_hosts(500);
        let nh = NextHop::v6("2001:db8:ffff::1".parse().unwrap());
        let updates = pack_announcements(&attrs(), nh, &prefixes, &ctx).unwrap();
        assert!(updates.len() > 1);
        assert!(updates.iter().all(|u| u.attributes.next_hop.is_none()));
        let lens: Vec<usize> = updates
            .iter()
            .map(|u| Message::Update(u.clone()).encode(&ctx).unwrap().len())
            .collect();
        // Every message but the last is full to within one prefix (17 octets).
        assert!(
            lens[..lens.len() - 1]
                .iter()
                .all(|&l| l > MAX_MESSAGE_LEN - 17)
        );
        assert_eq!(check_all(&updates, &ctx), prefixes);
    }

    #[test]
    fn ipv4_with_ipv6_next_hop_and_extended_messages() {
        let ctx = ctx(MAX_EXTENDED_MESSAGE_LEN);
        let prefixes = v4_doc_prefixes();
        let nh = NextHop::V6 {
            global: "2001:db8::1".parse().unwrap(),
            link_local: Some("fe80::1".parse().unwrap()),
        };
        let updates = pack_announcements(&attrs(), nh, &prefixes, &ctx).unwrap();
        // One extended message holds them all.
        assert_eq!(updates.len(), 1);
        assert!(
            Message::Update(updates[0].clone())
                .encode(&ctx)
                .unwrap()
                .len()
                > MAX_MESSAGE_LEN
        );
        assert!(updates[0].nlri.is_empty());
        assert_eq!(
            updates[0].attributes.mp_reach.as_ref().unwrap().family,
            AddressFamily::IPV4_UNICAST
        );
        assert_eq!(check_all(&updates, &ctx), prefixes);
    }

    #[test]
    fn mixed_withdrawals() {
        let ctx = ctx(MAX_MESSAGE_LEN);
        let mut prefixes = v4_doc_prefixes();
        prefixes.extend(v6_hosts(300));
        let updates = pack_withdrawals(&prefixes, &ctx).unwrap();
        assert_eq!(check_all(&updates, &ctx), prefixes);
        assert!(pack_withdrawals(&[], &ctx).unwrap().is_empty());
    }

    #[test]
    fn errors() {
        let ctx = ctx(MAX_MESSAGE_LEN);
        let nh = NextHop::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(
            pack_announcements(&attrs(), nh, &v6_hosts(1), &ctx),
            Err(EncodeError::NextHopMismatch(AddressFamily::IPV6_UNICAST))
        );
        // Attributes alone leave no room for a prefix.
        let mut big = attrs();
        big.large_communities = vec![Default::default(); 339];
        assert!(matches!(
            pack_announcements(&big, nh, &v4_doc_prefixes()[..1], &ctx),
            Err(EncodeError::MessageTooLong { .. })
        ));
    }
}
