//! Property tests: `decode(encode(m)) == m` for every message type, and
//! decoding arbitrary or corrupted bytes never panics.
//!
//! Generated addresses stay inside the documentation ranges and AS numbers
//! inside the documentation and private ranges.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::message::attribute::is_known;
use ferrolb_bgp::message::capability::code as cap_code;
use ferrolb_bgp::{
    AddressFamily, Afi, Aggregator, AsPath, AsSegment, Capability, CodecContext, Community,
    ExtendedCommunity, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, Ipv4Prefix,
    Ipv6Prefix, LargeCommunity, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message, MessageDecoder,
    MpReach, MpUnreach, NextHop, Notification, Open, Origin, PathAttributes, Prefix, RawAttribute,
    RouteRefresh, Safi, SegmentType, Update, decode_message, pack_announcements, pack_withdrawals,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

// ---- addresses and numbers -------------------------------------------------

fn doc_v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    (
        prop_oneof![
            Just([192u8, 0, 2]),
            Just([198u8, 51, 100]),
            Just([203u8, 0, 113])
        ],
        any::<u8>(),
    )
        .prop_map(|([a, b, c], d)| Ipv4Addr::new(a, b, c, d))
}

fn doc_v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(|low| {
        let base = u128::from(Ipv6Addr::new(0x2001, 0x0db8, 0, 0, 0, 0, 0, 0));
        Ipv6Addr::from(base | (low >> 32))
    })
}

fn link_local() -> impl Strategy<Value = Ipv6Addr> {
    any::<u64>().prop_map(|low| Ipv6Addr::from((0xfe80u128 << 112) | u128::from(low)))
}

fn v4_prefix() -> impl Strategy<Value = Ipv4Prefix> {
    (doc_v4_addr(), 24..=32u8).prop_map(|(a, l)| Ipv4Prefix::new(a, l).unwrap())
}

fn v6_prefix() -> impl Strategy<Value = Ipv6Prefix> {
    (doc_v6_addr(), 32..=128u8).prop_map(|(a, l)| Ipv6Prefix::new(a, l).unwrap())
}

fn asn(four_octet: bool) -> BoxedStrategy<u32> {
    if four_octet {
        prop_oneof![
            64496..=64511u32,
            65536..=65551u32,
            4_200_000_000..=4_294_967_294u32
        ]
        .boxed()
    } else {
        prop_oneof![64496..=64511u32, 64512..=65534u32].boxed()
    }
}

// ---- attributes ------------------------------------------------------------

fn segment(four_octet: bool, confed: bool) -> impl Strategy<Value = AsSegment> {
    let kinds = if confed {
        vec![
            SegmentType::Sequence,
            SegmentType::Set,
            SegmentType::ConfedSequence,
            SegmentType::ConfedSet,
        ]
    } else {
        vec![SegmentType::Sequence, SegmentType::Set]
    };
    (prop::sample::select(kinds), vec(asn(four_octet), 1..12))
        .prop_map(|(kind, asns)| AsSegment { kind, asns })
}

fn as_path(four_octet: bool, confed: bool, min: usize) -> impl Strategy<Value = AsPath> {
    vec(segment(four_octet, confed), min..4).prop_map(|segments| AsPath { segments })
}

fn aggregator(four_octet: bool) -> impl Strategy<Value = Aggregator> {
    (asn(four_octet), doc_v4_addr()).prop_map(|(asn, address)| Aggregator { asn, address })
}

fn mp_reach() -> impl Strategy<Value = MpReach> {
    let v6_next_hop = || {
        (doc_v6_addr(), prop::option::of(link_local()))
            .prop_map(|(global, link_local)| NextHop::V6 { global, link_local })
    };
    prop_oneof![
        (
            prop_oneof![doc_v4_addr().prop_map(NextHop::V4), v6_next_hop()],
            vec(v4_prefix().prop_map(Prefix::V4), 0..20)
        )
            .prop_map(|(next_hop, nlri)| MpReach {
                family: AddressFamily::IPV4_UNICAST,
                next_hop,
                nlri
            }),
        (v6_next_hop(), vec(v6_prefix().prop_map(Prefix::V6), 0..20)).prop_map(
            |(next_hop, nlri)| MpReach {
                family: AddressFamily::IPV6_UNICAST,
                next_hop,
                nlri
            }
        ),
    ]
}

fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
    prop_oneof![
        vec(v4_prefix().prop_map(Prefix::V4), 0..20).prop_map(|withdrawn| MpUnreach {
            family: AddressFamily::IPV4_UNICAST,
            withdrawn
        }),
        vec(v6_prefix().prop_map(Prefix::V6), 0..20).prop_map(|withdrawn| MpUnreach {
            family: AddressFamily::IPV6_UNICAST,
            withdrawn
        }),
    ]
}

fn unknown_attributes() -> impl Strategy<Value = Vec<RawAttribute>> {
    btree_map(
        any::<u8>().prop_filter("unknown type", |c| !is_known(*c)),
        (0u8..4, vec(any::<u8>(), 0..300)),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(type_code, (bits, value))| RawAttribute {
                // Always optional; transitive and partial at random.
                flags: 0x80 | ((bits & 1) << 6) | ((bits & 2) << 4),
                type_code,
                value,
            })
            .collect()
    })
}

fn origin() -> impl Strategy<Value = Origin> {
    prop_oneof![
        Just(Origin::Igp),
        Just(Origin::Egp),
        Just(Origin::Incomplete)
    ]
}

fn context() -> impl Strategy<Value = CodecContext> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(four, internal, extended)| {
        CodecContext {
            four_octet_as: four,
            internal_peer: internal,
            max_message_len: if extended {
                MAX_EXTENDED_MESSAGE_LEN
            } else {
                MAX_MESSAGE_LEN
            },
        }
    })
}

/// A context and an UPDATE valid under it: mandatory attributes present
/// when routes are announced, LOCAL_PREF only on internal sessions,
/// AS4_* only on two-octet sessions, confederation segments only inside.
fn update_in_context() -> impl Strategy<Value = (CodecContext, Update)> {
    context().prop_flat_map(|ctx| {
        let four = ctx.four_octet_as;
        let internal = ctx.internal_peer;
        let optional = (
            (
                prop::option::of(origin()),
                prop::option::of(as_path(four, internal, 0)),
                prop::option::of(doc_v4_addr()),
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u32>()),
                any::<bool>(),
                prop::option::of(aggregator(four)),
            ),
            (
                vec(any::<u32>().prop_map(Community), 0..6),
                prop::option::of(doc_v4_addr()),
                vec(doc_v4_addr(), 0..4),
                prop::option::of(mp_reach()),
                prop::option::of(mp_unreach()),
                vec(any::<[u8; 8]>().prop_map(ExtendedCommunity), 0..4),
                prop::option::of(as_path(true, false, 1)),
                prop::option::of(aggregator(true)),
                vec(
                    any::<(u32, u32, u32)>().prop_map(|(a, b, c)| LargeCommunity::new(a, b, c)),
                    0..4,
                ),
                unknown_attributes(),
            ),
        );
        (
            Just(ctx),
            optional,
            vec(v4_prefix(), 0..20),
            vec(v4_prefix(), 0..20),
        )
            .prop_map(move |(ctx, (a, b), withdrawn, nlri)| {
                let (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator) = a;
                let (
                    communities,
                    originator_id,
                    cluster_list,
                    mp_reach,
                    mp_unreach,
                    extended_communities,
                    as4_path,
                    as4_aggregator,
                    large_communities,
                    unknown,
                ) = b;
                let mut attributes = PathAttributes {
                    origin,
                    as_path,
                    next_hop,
                    med,
                    local_pref: local_pref.filter(|_| internal),
                    atomic_aggregate,
                    aggregator,
                    communities,
                    originator_id,
                    cluster_list,
                    mp_reach,
                    mp_unreach,
                    extended_communities,
                    as4_path: as4_path.filter(|_| !four),
                    as4_aggregator: as4_aggregator.filter(|_| !four),
                    large_communities,
                    unknown,
                };
                let announces = !nlri.is_empty() || attributes.mp_reach.is_some();
                if announces {
                    attributes.origin.get_or_insert(Origin::Igp);
                    attributes.as_path.get_or_insert_with(AsPath::new);
                    if internal {
                        attributes.local_pref.get_or_insert(100);
                    }
                }
                if !nlri.is_empty() {
                    attributes
                        .next_hop
                        .get_or_insert(Ipv4Addr::new(192, 0, 2, 1));
                }
                (
                    ctx,
                    Update {
                        withdrawn,
                        attributes,
                        nlri,
                    },
                )
            })
    })
}

// ---- other messages --------------------------------------------------------

fn family() -> impl Strategy<Value = AddressFamily> {
    (any::<u16>(), any::<u8>()).prop_map(|(a, s)| AddressFamily::new(Afi(a), Safi(s)))
}

fn capability() -> impl Strategy<Value = Capability> {
    const KNOWN: [u8; 8] = [
        cap_code::MULTIPROTOCOL,
        cap_code::ROUTE_REFRESH,
        cap_code::EXTENDED_NEXT_HOP,
        cap_code::EXTENDED_MESSAGE,
        cap_code::GRACEFUL_RESTART,
        cap_code::FOUR_OCTET_AS,
        cap_code::ENHANCED_ROUTE_REFRESH,
        cap_code::FQDN,
    ];
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        Just(Capability::EnhancedRouteRefresh),
        Just(Capability::ExtendedMessage),
        asn(true).prop_map(Capability::FourOctetAs),
        vec(
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| ExtendedNextHop {
                nlri_afi: Afi(a),
                nlri_safi: s,
                next_hop_afi: Afi(n),
            }),
            1..5
        )
        .prop_map(Capability::ExtendedNextHop),
        (
            any::<bool>(),
            any::<bool>(),
            0..=4095u16,
            vec(
                (family(), any::<bool>()).prop_map(|(family, forwarding_preserved)| {
                    GracefulRestartFamily {
                        family,
                        forwarding_preserved,
                    }
                }),
                0..5
            )
        )
            .prop_map(|(restart_state, notification, restart_time, families)| {
                Capability::GracefulRestart(GracefulRestart {
                    restart_state,
                    notification,
                    restart_time,
                    families,
                })
            }),
        ("\\PC{0,20}", "[a-z.]{0,30}")
            .prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        (
            any::<u8>().prop_filter("unknown code", |c| !KNOWN.contains(c)),
            vec(any::<u8>(), 0..40)
        )
            .prop_map(|(code, value)| Capability::Unknown { code, value }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        1..=u16::MAX,
        prop_oneof![Just(0u16), 3..=u16::MAX],
        doc_v4_addr(),
        vec(capability(), 0..20),
    )
        .prop_map(|(my_as, hold_time, bgp_identifier, capabilities)| Open {
            my_as,
            hold_time,
            bgp_identifier,
            capabilities,
        })
}

fn notification() -> impl Strategy<Value = Notification> {
    (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..200)).prop_map(|(code, subcode, data)| {
        Notification {
            code: code.into(),
            subcode,
            data,
        }
    })
}

fn route_refresh() -> impl Strategy<Value = RouteRefresh> {
    (family(), any::<u8>()).prop_map(|(family, subtype)| RouteRefresh {
        family,
        subtype: subtype.into(),
    })
}

fn round_trip(message: &Message, ctx: &CodecContext) {
    let bytes = message.encode(ctx).expect("encodes");
    let decoded = decode_message(&bytes, ctx).expect("decodes");
    assert_eq!(&decoded.message, message);
    assert!(decoded.discarded.is_empty());
    // Encoding is deterministic and stable.
    assert_eq!(decoded.message.encode(ctx).unwrap(), bytes);
}

proptest! {
    #[test]
    fn update_round_trip((ctx, update) in update_in_context()) {
        round_trip(&Message::Update(update), &ctx);
    }

    #[test]
    fn open_round_trip(open in open()) {
        round_trip(&Message::Open(open), &CodecContext::default());
    }

    #[test]
    fn notification_round_trip(n in notification()) {
        round_trip(&Message::Notification(n), &CodecContext::default());
    }

    #[test]
    fn shutdown_communication_round_trip(text in "\\PC{0,300}") {
        let n = Notification::administrative_shutdown(&text);
        let bytes = Message::Notification(n.clone()).encode(&CodecContext::default()).unwrap();
        let Message::Notification(back) = decode_message(&bytes, &CodecContext::default()).unwrap().message else {
            panic!()
        };
        let got = back.shutdown_communication().unwrap().unwrap_or_default();
        prop_assert!(got.len() <= 255);
        prop_assert!(text.starts_with(&got));
        if text.len() <= 255 {
            prop_assert_eq!(got, text);
        }
    }

    #[test]
    fn route_refresh_and_keepalive_round_trip(rr in route_refresh()) {
        round_trip(&Message::RouteRefresh(rr), &CodecContext::default());
        round_trip(&Message::Keepalive, &CodecContext::default());
    }

    #[test]
    fn packing_keeps_every_prefix(
        ctx in context(),
        v4 in vec(v4_prefix().prop_map(Prefix::V4), 0..600),
        v6 in vec(v6_prefix().prop_map(Prefix::V6), 0..300),
        next_hop in doc_v6_addr(),
    ) {
        let attrs = PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([64496])),
            local_pref: ctx.internal_peer.then_some(100),
            ..Default::default()
        };
        let prefixes: Vec<Prefix> = v4.iter().chain(&v6).copied().collect();
        for updates in [
            pack_announcements(&attrs, NextHop::v6(next_hop), &prefixes, &ctx).unwrap(),
            pack_withdrawals(&prefixes, &ctx).unwrap(),
        ] {
            let mut seen = Vec::new();
            for u in updates {
                let bytes = Message::Update(u).encode(&ctx).unwrap();
                prop_assert!(bytes.len() <= ctx.max_message_len);
                let Message::Update(back) = decode_message(&bytes, &ctx).unwrap().message else {
                    panic!()
                };
                seen.extend(back.announced());
                seen.extend(back.withdrawals());
            }
            seen.sort();
            let mut expected = prefixes.clone();
            expected.sort();
            prop_assert_eq!(seen, expected);
        }
    }

    // ---- robustness ---------------------------------------------------------

    #[test]
    fn arbitrary_bytes_never_panic(ctx in context(), bytes in vec(any::<u8>(), 0..600)) {
        let _ = decode_message(&bytes, &ctx);
        let mut decoder = MessageDecoder::new(ctx);
        decoder.extend(&bytes);
        while let Ok(Some(_)) = decoder.next_message() {}
    }

    #[test]
    fn arbitrary_bodies_never_panic(
        ctx in context(),
        message_type in 0u8..=6,
        body in vec(any::<u8>(), 0..600),
    ) {
        // A valid header so decoding reaches the body parsers.
        let mut frame = vec![0xff; 16];
        frame.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
        frame.push(message_type);
        frame.extend_from_slice(&body);
        let _ = decode_message(&frame, &ctx);
    }

    #[test]
    fn corrupted_updates_never_panic(
        (ctx, update) in update_in_context(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = Message::Update(update).encode(&ctx).unwrap().to_vec();
        for (at, value) in flips {
            // Keep the header so the body parsers are exercised.
            if bytes.len() > 19 {
                let i = 19 + at.index(bytes.len() - 19);
                bytes[i] = value;
            }
        }
        let _ = decode_message(&bytes, &ctx);
    }

    #[test]
    fn corrupted_opens_never_panic(
        open in open(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let ctx = CodecContext::default();
        let mut bytes = Message::Open(open).encode(&ctx).unwrap().to_vec();
        for (at, value) in flips {
            let i = 19 + at.index(bytes.len() - 19);
            bytes[i] = value;
        }
        let _ = decode_message(&bytes, &ctx);
    }
}
