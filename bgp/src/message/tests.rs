//! Header, framing, OPEN, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH tests
//! with hand-built byte vectors. UPDATE vectors and RFC 7606 classification
//! live in the crate's integration tests.

use std::net::Ipv4Addr;

use super::*;
use crate::message::notification::{ErrorCode, HeaderSubcode, OpenSubcode};
use crate::message::route_refresh::RouteRefreshSubtype;
use crate::prefix::AddressFamily;

fn frame(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&((HEADER_LEN + body.len()) as u16).to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

fn ctx() -> CodecContext {
    CodecContext::default()
}

fn reset(frame: &[u8], ctx: &CodecContext) -> Notification {
    match decode_message(frame, ctx) {
        Err(DecodeError::SessionReset(n)) => n,
        other => panic!("expected a session reset, got {other:?}"),
    }
}

#[test]
fn keepalive_bytes() {
    let bytes = Message::Keepalive.encode(&ctx()).unwrap();
    assert_eq!(&bytes[..], &frame(4, &[])[..]);
}

#[test]
fn header_errors() {
    let mut bad_marker = frame(4, &[]);
    bad_marker[3] = 0;
    assert_eq!(
        reset(&bad_marker, &ctx()),
        Notification::connection_not_synchronized()
    );

    // Keepalive with a body: bad length, data is the length field.
    let n = reset(&frame(4, &[0]), &ctx());
    assert_eq!(n, Notification::bad_message_length(20));
    assert_eq!(n.data, [0, 20]);

    // Unknown type 9.
    let n = reset(&frame(9, &[]), &ctx());
    assert_eq!(
        (n.code, n.subcode, n.data.clone()),
        (
            ErrorCode::MessageHeader,
            u8::from(HeaderSubcode::BadMessageType),
            vec![9]
        )
    );

    // Length field below 19.
    let mut short = frame(4, &[]);
    short[17] = 18;
    assert_eq!(
        decode_header(&short, MAX_MESSAGE_LEN),
        Err(Notification::bad_message_length(18))
    );

    // NOTIFICATION shorter than 21, OPEN shorter than 29, UPDATE shorter
    // than 23.
    assert_eq!(
        reset(&frame(3, &[6]), &ctx()),
        Notification::bad_message_length(20)
    );
    assert_eq!(
        reset(&frame(1, &[4; 9]), &ctx()),
        Notification::bad_message_length(28)
    );
    assert_eq!(
        reset(&frame(2, &[0, 0, 0]), &ctx()),
        Notification::bad_message_length(22)
    );

    // A frame that disagrees with its own length field.
    let mut f = frame(4, &[]);
    f.push(0);
    assert_eq!(reset(&f, &ctx()), Notification::bad_message_length(19));
    assert_eq!(
        reset(&[0xff; 5], &ctx()),
        Notification::bad_message_length(5)
    );
}

#[test]
fn max_length_is_a_parameter() {
    // A 5000-octet UPDATE: too long by default, fine with extended messages.
    let mut body = vec![0, 0];
    let attrs_len = 5000 - HEADER_LEN - 4;
    body.extend_from_slice(&(attrs_len as u16).to_be_bytes());
    // One unknown optional transitive attribute filling the space.
    body.extend_from_slice(&[0xd0, 99]);
    body.extend_from_slice(&((attrs_len - 4) as u16).to_be_bytes());
    body.resize(5000 - HEADER_LEN, 7);
    let f = frame(2, &body);
    assert_eq!(reset(&f, &ctx()), Notification::bad_message_length(5000));
    let extended = CodecContext {
        max_message_len: MAX_EXTENDED_MESSAGE_LEN,
        ..ctx()
    };
    let decoded = decode_message(&f, &extended).unwrap();
    let Message::Update(u) = &decoded.message else {
        panic!()
    };
    assert_eq!(u.attributes.unknown[0].value.len(), attrs_len - 4);
    assert_eq!(
        decoded.message.encode(&extended).unwrap().to_vec(),
        f,
        "re-encodes byte for byte"
    );
    assert_eq!(
        decoded.message.encode(&ctx()),
        Err(EncodeError::MessageTooLong {
            len: 5000,
            max: MAX_MESSAGE_LEN
        })
    );

    // OPEN stays limited to 4096 even with extended messages (RFC 8654).
    let mut open = frame(1, &[0; 4096 - HEADER_LEN + 1]);
    open[16..18].copy_from_slice(&4097u16.to_be_bytes());
    assert_eq!(
        decode_header(&open, MAX_EXTENDED_MESSAGE_LEN),
        Err(Notification::bad_message_length(4097))
    );
}

#[test]
fn message_decoder_frames_a_stream() {
    let ctx = ctx();
    let mut stream = Vec::new();
    stream.extend_from_slice(&Message::Keepalive.encode(&ctx).unwrap());
    let rr = Message::RouteRefresh(RouteRefresh::request(AddressFamily::IPV6_UNICAST));
    stream.extend_from_slice(&rr.encode(&ctx).unwrap());
    stream.extend_from_slice(&Message::Keepalive.encode(&ctx).unwrap());

    let mut decoder = MessageDecoder::new(ctx);
    let mut got = Vec::new();
    // Feed one octet at a time.
    for b in &stream {
        decoder.extend(std::slice::from_ref(b));
        while let Some(d) = decoder.next_message().unwrap() {
            got.push(d.message);
        }
    }
    assert_eq!(got, [Message::Keepalive, rr, Message::Keepalive]);
    assert_eq!(decoder.buffered(), 0);

    // A bad header is reported as soon as the header is complete.
    let mut decoder = MessageDecoder::new(ctx);
    decoder.extend(&[0u8; 19]);
    assert_eq!(
        decoder.next_message(),
        Err(DecodeError::SessionReset(
            Notification::connection_not_synchronized()
        ))
    );
}

fn open_body(opt: &[u8]) -> Vec<u8> {
    // Version 4, AS 64496, hold 90, identifier 192.0.2.1.
    let mut body = vec![4, 0xfb, 0xf0, 0, 90, 192, 0, 2, 1, opt.len() as u8];
    body.extend_from_slice(opt);
    body
}

#[test]
fn open_minimal_and_checks() {
    let f = frame(1, &open_body(&[]));
    let Message::Open(open) = decode_message(&f, &ctx()).unwrap().message else {
        panic!()
    };
    assert_eq!(open.my_as, 64496);
    assert_eq!(open.hold_time, 90);
    assert_eq!(open.bgp_identifier, Ipv4Addr::new(192, 0, 2, 1));
    assert!(open.capabilities.is_empty());
    assert_eq!(Message::Open(open).encode(&ctx()).unwrap().to_vec(), f);

    let mut body = open_body(&[]);
    body[0] = 3;
    assert_eq!(
        reset(&frame(1, &body), &ctx()),
        Notification::unsupported_version()
    );
    assert_eq!(Notification::unsupported_version().data, [0, 4]);

    let mut body = open_body(&[]);
    body[4] = 2;
    assert_eq!(
        reset(&frame(1, &body), &ctx()),
        Notification::unacceptable_hold_time()
    );

    let mut body = open_body(&[]);
    body[5..9].copy_from_slice(&[0, 0, 0, 0]);
    assert_eq!(
        reset(&frame(1, &body), &ctx()),
        Notification::bad_bgp_identifier()
    );

    // Optional parameter type 1 (authentication, deprecated): unsupported.
    assert_eq!(
        reset(&frame(1, &open_body(&[1, 1, 0])), &ctx()),
        Notification::unsupported_optional_parameter()
    );

    // Optional parameters length disagreeing with the message.
    let mut body = open_body(&[2, 2, 2, 0]);
    body[9] = 3;
    let n = reset(&frame(1, &body), &ctx());
    assert_eq!(
        (n.code, n.subcode),
        (ErrorCode::Open, u8::from(OpenSubcode::Unspecific))
    );

    // A capability overrunning its parameter.
    let n = reset(&frame(1, &open_body(&[2, 2, 65, 4])), &ctx());
    assert_eq!(n.subcode, u8::from(OpenSubcode::Unspecific));
}

#[test]
fn open_capabilities_in_several_parameters() {
    // Some routers send one capability per parameter.
    let f = frame(1, &open_body(&[2, 2, 2, 0, 2, 6, 65, 4, 0, 1, 0, 0]));
    let Message::Open(open) = decode_message(&f, &ctx()).unwrap().message else {
        panic!()
    };
    assert_eq!(
        open.capabilities,
        [Capability::RouteRefresh, Capability::FourOctetAs(65536)]
    );
    assert_eq!(open.asn(), 65536);
}

#[test]
fn open_extended_optional_parameters() {
    // RFC 9072: Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt.
    // Parm. Length 5, then type 2 with a two-octet length of 2.
    let mut body = vec![
        4, 0xfb, 0xf0, 0, 90, 192, 0, 2, 1, 255, 255, 0, 5, 2, 0, 2, 2, 0,
    ];
    let Message::Open(open) = decode_message(&frame(1, &body), &ctx()).unwrap().message else {
        panic!()
    };
    assert_eq!(open.capabilities, [Capability::RouteRefresh]);
    // Encoding uses the normal form when it fits.
    let encoded = Message::Open(open.clone()).encode(&ctx()).unwrap();
    assert_eq!(&encoded[HEADER_LEN..], &open_body(&[2, 2, 2, 0])[..]);

    // Wrong extended length.
    body[12] = 6;
    let n = reset(&frame(1, &body), &ctx());
    assert_eq!(n.subcode, u8::from(OpenSubcode::Unspecific));

    // Many capabilities: encoded in the extended form, decoded back.
    let many = Open {
        capabilities: (0..100)
            .map(|i| Capability::Unknown {
                code: 200,
                value: vec![i; 3],
            })
            .collect(),
        ..open
    };
    let encoded = Message::Open(many.clone()).encode(&ctx()).unwrap();
    assert_eq!(&encoded[HEADER_LEN + 9..HEADER_LEN + 11], &[255, 255]);
    assert_eq!(
        decode_message(&encoded, &ctx()).unwrap().message,
        Message::Open(many)
    );
}

#[test]
fn open_with_a_capability_too_long_for_a_normal_parameter() {
    let open = Open::new(
        64500,
        90,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![Capability::Unknown {
            code: 200,
            value: vec![1; 254],
        }],
    );
    let bytes = Message::Open(open.clone()).encode(&ctx()).unwrap();
    assert_eq!(&bytes[HEADER_LEN + 9..HEADER_LEN + 11], &[255, 255]);
    assert_eq!(
        decode_message(&bytes, &ctx()).unwrap().message,
        Message::Open(open)
    );
}

#[test]
fn open_with_as_zero() {
    // RFC 7607: My AS 0, or a four-octet AS capability of 0.
    let mut body = open_body(&[]);
    body[1..3].copy_from_slice(&[0, 0]);
    assert_eq!(reset(&frame(1, &body), &ctx()), Notification::bad_peer_as());
    let body = open_body(&[2, 6, 65, 4, 0, 0, 0, 0]);
    assert_eq!(reset(&frame(1, &body), &ctx()), Notification::bad_peer_as());
}

#[test]
fn open_new_uses_as_trans() {
    let open = Open::new(65550, 90, Ipv4Addr::new(192, 0, 2, 1), vec![]);
    assert_eq!(open.my_as, 23456);
    assert_eq!(open.capabilities, [Capability::FourOctetAs(65550)]);
    assert_eq!(open.asn(), 65550);
    let open = Open::new(64500, 90, Ipv4Addr::new(192, 0, 2, 1), vec![]);
    assert_eq!(open.my_as, 64500);
}

#[test]
fn negotiated_context() {
    let id = Ipv4Addr::new(192, 0, 2, 1);
    let ours = Open::new(65550, 90, id, vec![Capability::ExtendedMessage]);
    let theirs = Open::new(65550, 90, id, vec![]);
    let ctx = CodecContext::negotiated(&ours, &theirs);
    assert!(ctx.four_octet_as);
    assert!(ctx.internal_peer);
    assert_eq!(ctx.max_message_len, MAX_MESSAGE_LEN);
    let mut old = Open::new(64500, 90, id, vec![Capability::ExtendedMessage]);
    old.capabilities
        .retain(|c| !matches!(c, Capability::FourOctetAs(_)));
    let ctx = CodecContext::negotiated(&ours, &old);
    assert!(!ctx.four_octet_as);
    assert!(!ctx.internal_peer);
    assert_eq!(ctx.max_message_len, MAX_EXTENDED_MESSAGE_LEN);
}

#[test]
fn notification_bytes() {
    let n = Notification::administrative_shutdown("planned");
    let bytes = Message::Notification(n.clone()).encode(&ctx()).unwrap();
    assert_eq!(
        &bytes[HEADER_LEN..],
        &[6, 2, 7, b'p', b'l', b'a', b'n', b'n', b'e', b'd']
    );
    let Message::Notification(back) = decode_message(&bytes, &ctx()).unwrap().message else {
        panic!()
    };
    assert_eq!(
        back.shutdown_communication().unwrap().as_deref(),
        Some("planned")
    );
    assert_eq!(back, n);
    // Unknown codes survive.
    let f = frame(3, &[42, 7, 1, 2]);
    let Message::Notification(n) = decode_message(&f, &ctx()).unwrap().message else {
        panic!()
    };
    assert_eq!(n.code, ErrorCode::Other(42));
    assert_eq!(Message::Notification(n).encode(&ctx()).unwrap().to_vec(), f);
}

#[test]
fn route_refresh_bytes_and_errors() {
    let rr = RouteRefresh {
        family: AddressFamily::IPV4_UNICAST,
        subtype: RouteRefreshSubtype::End,
    };
    let bytes = Message::RouteRefresh(rr).encode(&ctx()).unwrap();
    assert_eq!(&bytes[..], &frame(5, &[0, 1, 2, 1])[..]);

    // BoRR with a wrong length: ROUTE-REFRESH error carrying the message.
    let f = frame(5, &[0, 1, 1, 1, 0]);
    let n = reset(&f, &ctx());
    assert_eq!((n.code, n.subcode), (ErrorCode::RouteRefresh, 1));
    assert_eq!(n.data, f);
    // Plain request with a wrong length: bad message length.
    assert_eq!(
        reset(&frame(5, &[0, 1, 0, 1, 0]), &ctx()),
        Notification::bad_message_length(24)
    );
    assert_eq!(
        reset(&frame(5, &[0, 1]), &ctx()),
        Notification::bad_message_length(21)
    );
    // Unknown subtypes decode so the session can ignore them (RFC 7313 §4).
    let Message::RouteRefresh(rr) = decode_message(&frame(5, &[0, 2, 9, 1]), &ctx())
        .unwrap()
        .message
    else {
        panic!()
    };
    assert_eq!(rr.subtype, RouteRefreshSubtype::Other(9));
}

#[test]
fn end_of_rib_markers() {
    let ctx = ctx();
    let v4 = Message::Update(Update::end_of_rib(AddressFamily::IPV4_UNICAST));
    let bytes = v4.encode(&ctx).unwrap();
    assert_eq!(&bytes[..], &frame(2, &[0, 0, 0, 0])[..]);
    let v6 = Message::Update(Update::end_of_rib(AddressFamily::IPV6_UNICAST));
    let bytes6 = v6.encode(&ctx).unwrap();
    assert_eq!(
        &bytes6[..],
        &frame(2, &[0, 0, 0, 6, 0x80, 15, 3, 0, 2, 1])[..]
    );
    for (bytes, family) in [
        (bytes, AddressFamily::IPV4_UNICAST),
        (bytes6, AddressFamily::IPV6_UNICAST),
    ] {
        let Message::Update(u) = decode_message(&bytes, &ctx).unwrap().message else {
            panic!()
        };
        assert_eq!(u.end_of_rib_family(), Some(family));
    }
    // An MP_UNREACH with prefixes, or with other attributes, is not EoR.
    let mut u = Update::end_of_rib(AddressFamily::IPV6_UNICAST);
    u.attributes.mp_unreach.as_mut().unwrap().withdrawn = vec!["2001:db8::/32".parse().unwrap()];
    assert_eq!(u.end_of_rib_family(), None);
    let mut u = Update::end_of_rib(AddressFamily::IPV6_UNICAST);
    u.attributes.med = Some(1);
    assert_eq!(u.end_of_rib_family(), None);
    let mut u = Update::end_of_rib(AddressFamily::IPV4_UNICAST);
    u.withdrawn = vec!["192.0.2.0/24".parse().unwrap()];
    assert_eq!(u.end_of_rib_family(), None);
}

#[test]
fn encode_failure_leaves_buffer_unchanged() {
    let mut out = BytesMut::from(&b"abc"[..]);
    let u = Update {
        attributes: crate::message::attribute::PathAttributes {
            as_path: Some(crate::message::attribute::AsPath::from_sequence([65536])),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        Message::Update(u).encode_into(&ctx(), &mut out),
        Err(EncodeError::AsnNotTwoOctet(65536))
    );
    assert_eq!(&out[..], b"abc");
}
