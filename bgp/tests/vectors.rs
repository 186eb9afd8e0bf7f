//! Hand-built byte vectors laid out field by field from the RFCs, shaped
//! like what typical routers send.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::message::attribute::flags;
use ferrolb_bgp::{
    AS_TRANS, AddressFamily, AsPath, Capability, CodecContext, Community, ExtendedNextHop,
    GracefulRestart, GracefulRestartFamily, LargeCommunity, Message, MessageDecoder, NextHop, Open,
    Origin, Prefix, decode_message,
};

fn with_header(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

/// An OPEN as a typical router in AS 65551 sends it: My AS is AS_TRANS,
/// one capability per optional parameter.
fn captured_open() -> Vec<u8> {
    let mut params: Vec<u8> = Vec::new();
    let mut cap = |code: u8, value: &[u8]| {
        params.extend_from_slice(&[2, 2 + value.len() as u8, code, value.len() as u8]);
        params.extend_from_slice(value);
    };
    cap(1, &[0x00, 0x01, 0x00, 0x01]); // MP: AFI 1 (IPv4), reserved, SAFI 1
    cap(1, &[0x00, 0x02, 0x00, 0x01]); // MP: AFI 2 (IPv6), reserved, SAFI 1
    cap(128, &[]); // pre-standard route refresh
    cap(2, &[]); // route refresh
    cap(70, &[]); // enhanced route refresh
    cap(65, &[0x00, 0x01, 0x00, 0x0f]); // 4-octet AS 65551
    cap(69, &[0x00, 0x01, 0x01, 0x01]); // ADD-PATH ipv4 unicast receive
    cap(5, &[0x00, 0x01, 0x00, 0x01, 0x00, 0x02]); // ext. next hop v4 over v6
    let mut fqdn = vec![7];
    fqdn.extend_from_slice(b"spine-1");
    fqdn.push(11);
    fqdn.extend_from_slice(b"example.net");
    cap(73, &fqdn);
    // Graceful restart: N bit, restart time 120, IPv4 and IPv6 unicast with
    // forwarding preserved only for IPv4.
    cap(
        64,
        &[0x40, 0x78, 0x00, 0x01, 0x01, 0x80, 0x00, 0x02, 0x01, 0x00],
    );

    let mut body = vec![
        4, // version
        0x5b, 0xa0, // My AS: AS_TRANS (23456)
        0x00, 0xb4, // hold time 180
        203, 0, 113, 1, // BGP identifier
    ];
    body.push(params.len() as u8);
    body.extend_from_slice(&params);
    with_header(1, &body)
}

#[test]
fn decodes_a_captured_open() {
    let bytes = captured_open();
    assert_eq!(bytes.len(), 19 + 10 + 92);
    let decoded = decode_message(&bytes, &CodecContext::default()).unwrap();
    let Message::Open(open) = decoded.message else {
        panic!("not an OPEN")
    };
    assert_eq!(u32::from(open.my_as), AS_TRANS);
    assert_eq!(open.asn(), 65551);
    assert_eq!(open.hold_time, 180);
    assert_eq!(open.bgp_identifier, Ipv4Addr::new(203, 0, 113, 1));
    assert_eq!(
        open.multiprotocol_families().collect::<Vec<_>>(),
        [AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
    );
    assert_eq!(
        open.capabilities,
        [
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::Multiprotocol(AddressFamily::IPV6_UNICAST),
            Capability::Unknown {
                code: 128,
                value: vec![]
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::FourOctetAs(65551),
            Capability::Unknown {
                code: 69,
                value: vec![0, 1, 1, 1]
            },
            Capability::ExtendedNextHop(vec![ExtendedNextHop::IPV4_UNICAST_OVER_IPV6]),
            Capability::Fqdn {
                hostname: "spine-1".into(),
                domain: "example.net".into()
            },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        family: AddressFamily::IPV4_UNICAST,
                        forwarding_preserved: true
                    },
                    GracefulRestartFamily {
                        family: AddressFamily::IPV6_UNICAST,
                        forwarding_preserved: false
                    },
                ],
            }),
        ]
    );

    // Re-encoding groups the capabilities into one parameter: a different
    // byte layout carrying the same OPEN, unknown capabilities unchanged.
    let again = Message::Open(open.clone())
        .encode(&CodecContext::default())
        .unwrap();
    assert_eq!(again.len(), bytes.len() - 2 * 9);
    assert_eq!(&again[29..31], &[2, 72]);
    let back = decode_message(&again, &CodecContext::default()).unwrap();
    assert_eq!(back.message, Message::Open(open));
}

#[test]
fn builds_our_open_byte_for_byte() {
    let open = Open::new(
        65540,
        90,
        Ipv4Addr::new(192, 0, 2, 10),
        vec![
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65540),
        ],
    );
    let bytes = Message::Open(open)
        .encode(&CodecContext::default())
        .unwrap();
    let expected = with_header(
        1,
        &[
            4, 0x5b, 0xa0, 0, 90, 192, 0, 2, 10, // fixed part
            16, // optional parameters length
            2, 14, // one Capabilities parameter of 14 octets
            1, 4, 0, 1, 0, 1, // MP IPv4 unicast
            2, 0, // route refresh
            65, 4, 0, 1, 0, 4, // 4-octet AS 65540
        ],
    );
    assert_eq!(bytes.to_vec(), expected);
}

/// An iBGP UPDATE with four-octet AS numbers: ORIGIN, AS_PATH, NEXT_HOP,
/// MED, LOCAL_PREF, COMMUNITIES, LARGE_COMMUNITY and two IPv4 prefixes.
fn captured_update() -> Vec<u8> {
    let attrs: Vec<u8> = [
        &[0x40, 1, 1, 0][..],                                 // ORIGIN IGP
        &[0x40, 2, 14, 2, 3],                                 // AS_PATH: AS_SEQUENCE of 3
        &[0, 1, 0, 0x0f, 0, 0, 0xfb, 0xf0, 0, 0, 0xfb, 0xf1], // 65551 64496 64497
        &[0x40, 3, 4, 198, 51, 100, 1],                       // NEXT_HOP
        &[0x80, 4, 4, 0, 0, 0, 100],                          // MED 100
        &[0x40, 5, 4, 0, 0, 0, 200],                          // LOCAL_PREF 200
        &[0xc0, 8, 12],                                       // COMMUNITIES
        &[0xfb, 0xf0, 0x00, 0x64],                            // 64496:100
        &[0xff, 0xff, 0xff, 0x01],                            // NO_EXPORT
        &[0xff, 0xff, 0x00, 0x00],                            // GRACEFUL_SHUTDOWN
        &[0xc0, 32, 24],                                      // LARGE_COMMUNITY
        &[0, 1, 0, 0x0f, 0, 0, 0, 1, 0, 0, 0, 2],             // 65551:1:2
        &[0, 1, 0, 0x0f, 0, 0, 0, 3, 0, 0, 0, 4],             // 65551:3:4
    ]
    .concat();
    assert_eq!(attrs.len(), 84);
    let mut body = vec![0, 0, 0, attrs.len() as u8];
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[24, 203, 0, 113]); // 203.0.113.0/24
    body.extend_from_slice(&[25, 192, 0, 2, 128]); // 192.0.2.128/25
    with_header(2, &body)
}

fn ibgp4() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        internal_peer: true,
        ..CodecContext::default()
    }
}

#[test]
fn decodes_a_captured_update() {
    let bytes = captured_update();
    assert_eq!(bytes.len(), 116);
    let decoded = decode_message(&bytes, &ibgp4()).unwrap();
    assert!(decoded.discarded.is_empty());
    let Message::Update(update) = &decoded.message else {
        panic!("not an UPDATE")
    };
    let a = &update.attributes;
    assert_eq!(a.origin, Some(Origin::Igp));
    assert_eq!(
        a.as_path,
        Some(AsPath::from_sequence([65551, 64496, 64497]))
    );
    assert_eq!(a.next_hop, Some(Ipv4Addr::new(198, 51, 100, 1)));
    assert_eq!(a.med, Some(100));
    assert_eq!(a.local_pref, Some(200));
    assert_eq!(
        a.communities,
        [
            Community::new(64496, 100),
            Community::NO_EXPORT,
            Community::GRACEFUL_SHUTDOWN
        ]
    );
    assert_eq!(
        a.large_communities,
        [
            LargeCommunity::new(65551, 1, 2),
            LargeCommunity::new(65551, 3, 4)
        ]
    );
    assert_eq!(
        update.nlri,
        [
            "203.0.113.0/24".parse().unwrap(),
            "192.0.2.128/25".parse().unwrap()
        ]
    );
    assert!(update.withdrawn.is_empty());
    assert_eq!(update.end_of_rib_family(), None);
    // Our encoding orders attributes the same way: byte-identical.
    assert_eq!(decoded.message.encode(&ibgp4()).unwrap().to_vec(), bytes);
}

#[test]
fn same_update_from_an_external_peer_discards_local_pref() {
    let ebgp = CodecContext {
        internal_peer: false,
        ..ibgp4()
    };
    let decoded = decode_message(&captured_update(), &ebgp).unwrap();
    let Message::Update(update) = &decoded.message else {
        panic!()
    };
    assert_eq!(update.attributes.local_pref, None);
    assert_eq!(decoded.discarded.len(), 1);
    assert_eq!(decoded.discarded[0].type_code, 5);
}

#[test]
fn decodes_an_ipv6_update_with_link_local_next_hop() {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let link_local: Ipv6Addr = "fe80::2".parse().unwrap();
    let mut reach = vec![0, 2, 1, 32];
    reach.extend_from_slice(&global.octets());
    reach.extend_from_slice(&link_local.octets());
    reach.push(0); // reserved
    reach.extend_from_slice(&[48, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x01]); // 2001:db8:1::/48
    reach.extend_from_slice(&[128]);
    reach.extend_from_slice(&"2001:db8::99".parse::<Ipv6Addr>().unwrap().octets());
    let mut attrs = vec![flags::OPTIONAL, 14, reach.len() as u8];
    attrs.extend_from_slice(&reach);
    attrs.extend_from_slice(&[0x40, 1, 1, 2]); // ORIGIN INCOMPLETE
    attrs.extend_from_slice(&[0x40, 2, 6, 2, 1, 0, 1, 0, 0]); // AS_PATH 65536
    let mut body = vec![0, 0, 0, attrs.len() as u8];
    body.extend_from_slice(&attrs);
    let bytes = with_header(2, &body);

    let ctx = CodecContext {
        four_octet_as: true,
        ..CodecContext::default()
    };
    let decoded = decode_message(&bytes, &ctx).unwrap();
    let Message::Update(update) = &decoded.message else {
        panic!()
    };
    let reach = update.attributes.mp_reach.as_ref().unwrap();
    assert_eq!(reach.family, AddressFamily::IPV6_UNICAST);
    assert_eq!(
        reach.next_hop,
        NextHop::V6 {
            global,
            link_local: Some(link_local)
        }
    );
    assert_eq!(
        update.announced().collect::<Vec<Prefix>>(),
        [
            "2001:db8:1::/48".parse().unwrap(),
            "2001:db8::99/128".parse().unwrap()
        ]
    );
    assert_eq!(update.attributes.origin, Some(Origin::Incomplete));
    assert_eq!(decoded.message.encode(&ctx).unwrap().to_vec(), bytes);
}

#[test]
fn two_octet_session_with_as4_path() {
    // From a two-octet peer (AS 64500): AS_PATH 64500 AS_TRANS, AS4_PATH
    // 65540, AGGREGATOR AS_TRANS 192.0.2.7, AS4_AGGREGATOR 65540 192.0.2.7.
    let attrs: Vec<u8> = [
        &[0x40, 1, 1, 0][..],
        &[0x40, 2, 6, 2, 2, 0xfb, 0xf4, 0x5b, 0xa0],
        &[0x40, 3, 4, 192, 0, 2, 1],
        &[0xc0, 7, 6, 0x5b, 0xa0, 192, 0, 2, 7],
        &[0xc0, 17, 6, 2, 1, 0, 1, 0, 4],
        &[0xc0, 18, 8, 0, 1, 0, 4, 192, 0, 2, 7],
    ]
    .concat();
    let mut body = vec![0, 0, 0, attrs.len() as u8];
    body.extend_from_slice(&attrs);
    body.extend_from_slice(&[24, 198, 51, 100]);
    let bytes = with_header(2, &body);
    let ctx = CodecContext::default();
    let decoded = decode_message(&bytes, &ctx).unwrap();
    let Message::Update(mut update) = decoded.message.clone() else {
        panic!()
    };
    assert_eq!(decoded.message.encode(&ctx).unwrap().to_vec(), bytes);
    update.attributes.reconstruct_from_two_octet_peer();
    assert_eq!(
        update.attributes.as_path,
        Some(AsPath::from_sequence([64500, 65540]))
    );
    assert_eq!(update.attributes.aggregator.unwrap().asn, 65540);
    assert_eq!(update.attributes.as4_path, None);
    // Back for a two-octet peer: the same AS_PATH and aggregators as
    // received, and an AS4_PATH carrying the whole path (RFC 6793 §4.2.2).
    let Message::Update(received) = decoded.message else {
        panic!()
    };
    let sent = update.attributes.for_two_octet_peer();
    assert_eq!(sent.as_path, received.attributes.as_path);
    assert_eq!(sent.aggregator, received.attributes.aggregator);
    assert_eq!(sent.as4_aggregator, received.attributes.as4_aggregator);
    assert_eq!(sent.as4_path, Some(AsPath::from_sequence([64500, 65540])));
}

#[test]
fn a_stream_of_messages() {
    let mut stream = captured_open();
    stream.extend_from_slice(&with_header(4, &[]));
    stream.extend_from_slice(&captured_update());
    let mut decoder = MessageDecoder::new(CodecContext::default());
    decoder.extend(&stream[..40]);
    assert_eq!(decoder.next_message(), Ok(None));
    decoder.extend(&stream[40..]);
    let first = decoder.next_message().unwrap().unwrap();
    let Message::Open(open) = &first.message else {
        panic!()
    };
    assert_eq!(open.asn(), 65551);
    assert_eq!(
        decoder.next_message().unwrap().unwrap().message,
        Message::Keepalive
    );
    decoder.set_context(ibgp4());
    assert!(matches!(
        decoder.next_message().unwrap().unwrap().message,
        Message::Update(_)
    ));
    assert_eq!(decoder.next_message(), Ok(None));
}
