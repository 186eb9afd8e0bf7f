//! Test vectors captured from real routers: every BGP message GoBGP 3.10,
//! FRR 8.4, BIRD 2.0.12 and ExaBGP 5.0.15 sent to `ferrolb-speaker
//! bgp-probe` in one session each, as hex (`captures/<router>-<scenario>.hex`,
//! one message per line, `#` comments; the first comment says when and how
//! it was captured). `tests/tests/bgp_capture_vectors.rs` (ignored tests of
//! the e2e crate) regenerates them.
//!
//! Scenarios, the same for every router:
//!
//! - `ebgp-v4`: eBGP over IPv4, router AS 4200000001 (four-octet, so My AS
//!   is AS_TRANS), probe AS 4200000002. Routes: 203.0.113.10/32 (AS_PATH
//!   prepend 64500 64501, MED 50, communities 65000:100 65000:200, large
//!   community 4200000001:1:2, route target 65000:300), 203.0.113.11/32
//!   (MED 51, community 65000:101) and 2001:db8::10/128 over the IPv4
//!   session (prepend 64500, MED 60, community 65000:100, the same large
//!   community and route target).
//! - `ibgp-v6`: iBGP over IPv6 in AS 64512. Routes: 2001:db8::20/128
//!   (MED 20, LOCAL_PREF 200, community 65000:120, large community
//!   64512:1:2, route target 64512:20) and 203.0.113.20/32 over the IPv6
//!   session (MED 21, LOCAL_PREF 300, community 65000:121).
//!
//! Each message is decoded with the context the probe negotiated (its
//! OPEN is rebuilt with [`local_open`] and checked against the router's
//! with [`negotiate`]), its contents are compared with what the router was
//! configured to send, the whole stream also goes through
//! [`MessageDecoder`] in small pieces, and every message is re-encoded:
//! where our encoder is canonical the bytes come back identical; where the
//! router lays the message out differently (each test says which and why)
//! the re-encoded message decodes to the same message.

use std::net::{Ipv4Addr, Ipv6Addr};

use ferrolb_bgp::session::{
    GracefulRestartConfig, Negotiated, PeerAs, PeerGracefulRestart, SessionConfig, local_open,
    negotiate,
};
use ferrolb_bgp::{
    AS_TRANS, AddressFamily, AsPath, Capability, CeaseSubcode, CodecContext, Community,
    ExtendedCommunity, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, LargeCommunity,
    MAX_MESSAGE_LEN, Message, MessageDecoder, MessageType, NextHop, Notification, Open, Origin,
    PathAttributes, Prefix, Update, decode_message,
};

const EBGP_ROUTER_ASN: u32 = 4_200_000_001;
const EBGP_PROBE_ASN: u32 = 4_200_000_002;
const IBGP_ASN: u32 = 64512;
const ROUTER_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PROBE_ID: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const ROUTER_V4: Ipv4Addr = ROUTER_ID;
const ROUTER_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// The shutdown communication the routers that have one were told to send.
const SHUTDOWN: &str = "ferrolb capture done";
/// The capture machine's host name, in FRR's and GoBGP's FQDN capability
/// (to be updated when the files are captured again elsewhere).
const CAPTURE_HOST: &str = "vm";

const V4: AddressFamily = AddressFamily::IPV4_UNICAST;
const V6: AddressFamily = AddressFamily::IPV6_UNICAST;

use MessageType::{Keepalive as K, Notification as N, Open as O, Update as U};

// ------------------------------------------------------------ loading

/// One capture file, decoded.
struct Capture {
    name: &'static str,
    frames: Vec<Vec<u8>>,
    open: Open,
    negotiated: Negotiated,
    messages: Vec<Message>,
    /// Per message: whether our encoder gives back the captured bytes.
    canonical: Vec<bool>,
}

/// The hex lines of a capture file: one message each, `#` comments and
/// blank lines skipped.
fn parse_hex(name: &str, text: &str) -> Vec<Vec<u8>> {
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("# captured "),
        "{name}: the first line must say how it was captured, not {first:?}"
    );
    let mut frames = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        assert!(
            line.len().is_multiple_of(2) && line.bytes().all(|b| b.is_ascii_hexdigit()),
            "{name}:{}: not a line of hex octets",
            n + 1
        );
        let frame = (0..line.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&line[i..i + 2], 16).expect("checked hex"))
            .collect();
        frames.push(frame);
    }
    frames
}

/// The probe's configuration in the capture sessions: hold time 30,
/// graceful restart with forwarding preserved, defaults otherwise.
fn probe_config(asn: u32, router_asn: u32) -> SessionConfig {
    let mut cfg = SessionConfig::new(asn, PROBE_ID, PeerAs::Fixed(router_asn));
    cfg.hold_time = 30;
    cfg.graceful_restart = Some(GracefulRestartConfig {
        forwarding_preserved: true,
        ..GracefulRestartConfig::default()
    });
    cfg
}

impl Capture {
    fn load(name: &'static str, text: &str, probe_asn: u32, router_asn: u32) -> Capture {
        let frames = parse_hex(name, text);
        assert!(!frames.is_empty(), "{name}: no messages");

        let first = decode_message(&frames[0], &CodecContext::default())
            .unwrap_or_else(|err| panic!("{name}: message 0: {err:?}"));
        let Message::Open(open) = first.message else {
            panic!(
                "{name}: the first message is not an OPEN: {:?}",
                first.message
            )
        };
        let cfg = probe_config(probe_asn, router_asn);
        let negotiated = negotiate(&cfg, &local_open(&cfg), &open)
            .unwrap_or_else(|n| panic!("{name}: the probe refuses the router's OPEN: {n:?}"));
        let ctx = negotiated.codec;

        let mut messages = Vec::new();
        let mut canonical = Vec::new();
        for (i, frame) in frames.iter().enumerate() {
            let ctx = if i == 0 { CodecContext::default() } else { ctx };
            let decoded = decode_message(frame, &ctx)
                .unwrap_or_else(|err| panic!("{name}: message {i}: {err:?}"));
            assert!(
                decoded.discarded.is_empty(),
                "{name}: message {i}: attributes discarded: {:?}",
                decoded.discarded
            );
            let again = decoded
                .message
                .encode(&ctx)
                .unwrap_or_else(|err| panic!("{name}: message {i}: re-encoding: {err:?}"));
            let same = again[..] == frame[..];
            if !same {
                // Another layout of the same message.
                let back = decode_message(&again, &ctx)
                    .unwrap_or_else(|err| panic!("{name}: message {i} re-encoded: {err:?}"));
                assert_eq!(
                    back.message, decoded.message,
                    "{name}: message {i}: decode(encode(decode(x))) != decode(x)"
                );
                assert!(back.discarded.is_empty(), "{name}: message {i}");
            }
            messages.push(decoded.message);
            canonical.push(same);
        }

        let capture = Capture {
            name,
            frames,
            open,
            negotiated,
            messages,
            canonical,
        };
        capture.check_stream_decoding();
        capture
    }

    /// The same messages come out of a [`MessageDecoder`] fed the whole
    /// stream seven octets at a time, with the negotiated context set once
    /// the OPEN is out, as a session does.
    fn check_stream_decoding(&self) {
        let stream = self.frames.concat();
        let mut decoder = MessageDecoder::new(CodecContext::default());
        let mut out: Vec<Message> = Vec::new();
        for chunk in stream.chunks(7) {
            decoder.extend(chunk);
            while let Some(decoded) = decoder
                .next_message()
                .unwrap_or_else(|err| panic!("{}: stream: {err:?}", self.name))
            {
                if out.is_empty() {
                    decoder.set_context(self.negotiated.codec);
                }
                out.push(decoded.message);
            }
        }
        assert_eq!(decoder.buffered(), 0, "{}: octets left over", self.name);
        assert_eq!(out, self.messages, "{}: stream decoding differs", self.name);
    }

    fn types(&self) -> Vec<MessageType> {
        self.messages.iter().map(Message::message_type).collect()
    }

    fn update(&self, i: usize) -> &Update {
        match &self.messages[i] {
            Message::Update(u) => u,
            other => panic!("{}: message {i} is not an UPDATE: {other:?}", self.name),
        }
    }

    fn notification(&self, i: usize) -> &Notification {
        match &self.messages[i] {
            Message::Notification(n) => n,
            other => panic!(
                "{}: message {i} is not a NOTIFICATION: {other:?}",
                self.name
            ),
        }
    }

    /// Message `i` is the End-of-RIB marker of `family` (RFC 4724 §2: an
    /// empty UPDATE for IPv4 unicast, an empty MP_UNREACH_NLRI otherwise).
    fn assert_end_of_rib(&self, i: usize, family: AddressFamily) {
        let update = self.update(i);
        assert_eq!(
            update.end_of_rib_family(),
            Some(family),
            "{}: message {i}: {update:?}",
            self.name
        );
        let expected_len = if family == V4 { 23 } else { 29 };
        // The IPv6 marker is 30 octets when the router sets the extended
        // length flag on the empty MP_UNREACH_NLRI.
        assert!(
            self.frames[i].len() == expected_len || self.frames[i].len() == expected_len + 1,
            "{}: message {i}: {} octets",
            self.name,
            self.frames[i].len()
        );
    }

    /// Message `i` announces exactly `prefix` with `hop` and, next hop
    /// aside, exactly the attributes `expected`.
    fn assert_route(&self, i: usize, prefix: &str, expected: PathAttributes, hop: Hop) {
        let name = self.name;
        let update = self.update(i);
        let prefix: Prefix = prefix.parse().expect("test prefix");
        assert!(update.withdrawn.is_empty(), "{name}: message {i}");
        assert_eq!(
            update.announced().collect::<Vec<_>>(),
            [prefix],
            "{name}: message {i}"
        );
        let mut attrs = update.attributes.clone();
        match hop {
            Hop::Attr(next_hop) => {
                assert_eq!(update.nlri.len(), 1, "{name}: message {i}: classic NLRI");
                assert_eq!(attrs.mp_reach, None, "{name}: message {i}");
                assert_eq!(attrs.next_hop.take(), Some(next_hop), "{name}: message {i}");
            }
            Hop::V6 { global, link_local } => {
                assert!(update.nlri.is_empty(), "{name}: message {i}");
                let reach = attrs
                    .mp_reach
                    .take()
                    .unwrap_or_else(|| panic!("{name}: message {i}: no MP_REACH_NLRI"));
                assert_eq!(reach.family, prefix.unicast_family(), "{name}: message {i}");
                let NextHop::V6 {
                    global: g,
                    link_local: ll,
                } = reach.next_hop
                else {
                    panic!("{name}: message {i}: next hop {:?}", reach.next_hop)
                };
                assert_eq!(g, global, "{name}: message {i}");
                match (link_local, ll) {
                    (false, None) => {}
                    // The router's own link-local address on the veth.
                    (true, Some(ll)) => assert!(
                        ll.is_unicast_link_local(),
                        "{name}: message {i}: {ll} is not link-local"
                    ),
                    _ => panic!("{name}: message {i}: link-local next hop {ll:?}"),
                }
                assert_eq!(attrs.next_hop, None, "{name}: message {i}");
            }
        }
        assert_eq!(attrs, expected, "{name}: message {i}: attributes");
    }

    fn assert_shutdown(&self, i: usize, communication: &str) {
        let n = self.notification(i);
        assert!(
            n.is_cease(CeaseSubcode::AdministrativeShutdown),
            "{}: {n:?}",
            self.name
        );
        assert_eq!(
            n.shutdown_communication(),
            Ok(Some(communication.to_owned())),
            "{}",
            self.name
        );
    }
}

/// How a route's next hop was sent.
#[derive(Clone, Copy, Debug)]
enum Hop {
    /// The NEXT_HOP attribute, the prefix in the UPDATE's NLRI field.
    Attr(Ipv4Addr),
    /// MP_REACH_NLRI (RFC 4760) with an IPv6 global next hop, followed by
    /// the router's link-local one or not (RFC 2545 §3).
    V6 { global: Ipv6Addr, link_local: bool },
}

const HOP_V4: Hop = Hop::Attr(ROUTER_V4);
const HOP_V6: Hop = Hop::V6 {
    global: ROUTER_V6,
    link_local: false,
};
const HOP_V6_LL: Hop = Hop::V6 {
    global: ROUTER_V6,
    link_local: true,
};

// ------------------------------------------- what the routers were told

fn community(asn: u16, value: u16) -> Community {
    Community::new(asn, value)
}

/// 203.0.113.10/32 over eBGP.
fn ebgp_10() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([EBGP_ROUTER_ASN, 64500, 64501])),
        med: Some(50),
        communities: vec![community(65000, 100), community(65000, 200)],
        extended_communities: vec![ExtendedCommunity::route_target(65000, 300)],
        large_communities: vec![LargeCommunity::new(EBGP_ROUTER_ASN, 1, 2)],
        ..PathAttributes::default()
    }
}

/// 203.0.113.11/32 over eBGP.
fn ebgp_11() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([EBGP_ROUTER_ASN])),
        med: Some(51),
        communities: vec![community(65000, 101)],
        ..PathAttributes::default()
    }
}

/// 2001:db8::10/128 over eBGP (on the IPv4 session).
fn ebgp_v6() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([EBGP_ROUTER_ASN, 64500])),
        med: Some(60),
        communities: vec![community(65000, 100)],
        extended_communities: vec![ExtendedCommunity::route_target(65000, 300)],
        large_communities: vec![LargeCommunity::new(EBGP_ROUTER_ASN, 1, 2)],
        ..PathAttributes::default()
    }
}

/// 2001:db8::20/128 over iBGP: an empty AS_PATH, LOCAL_PREF.
fn ibgp_v6() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::new()),
        med: Some(20),
        local_pref: Some(200),
        communities: vec![community(65000, 120)],
        extended_communities: vec![ExtendedCommunity::route_target(64512, 20)],
        large_communities: vec![LargeCommunity::new(IBGP_ASN, 1, 2)],
        ..PathAttributes::default()
    }
}

/// 203.0.113.20/32 over iBGP (on the IPv6 session).
fn ibgp_v4() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::new()),
        med: Some(21),
        local_pref: Some(300),
        communities: vec![community(65000, 121)],
        ..PathAttributes::default()
    }
}

fn ebgp(name: &'static str, text: &str) -> Capture {
    let c = Capture::load(name, text, EBGP_PROBE_ASN, EBGP_ROUTER_ASN);
    // Four-octet AS: My AS is AS_TRANS, the AS is in the capability.
    assert_eq!(u32::from(c.open.my_as), AS_TRANS, "{name}");
    assert_eq!(c.open.asn(), EBGP_ROUTER_ASN, "{name}");
    check_common(&c, false);
    c
}

fn ibgp(name: &'static str, text: &str) -> Capture {
    let c = Capture::load(name, text, IBGP_ASN, IBGP_ASN);
    // A two-octet AS goes in My AS as it is.
    assert_eq!(u32::from(c.open.my_as), IBGP_ASN, "{name}");
    assert_eq!(c.open.asn(), IBGP_ASN, "{name}");
    check_common(&c, true);
    c
}

/// What every capture shares: the router's identifier and hold time (9 s,
/// below the probe's 30), both unicast families, four-octet AS numbers,
/// 4096-octet messages (the probe does not announce extended messages).
fn check_common(c: &Capture, internal: bool) {
    let name = c.name;
    // Version 4 (the decoder refuses any other).
    assert_eq!(c.frames[0][19], 4, "{name}");
    assert_eq!(c.open.bgp_identifier, ROUTER_ID, "{name}");
    assert_eq!(c.open.hold_time, 9, "{name}");
    assert_eq!(
        c.open.multiprotocol_families().collect::<Vec<_>>(),
        [V4, V6],
        "{name}"
    );
    let n = &c.negotiated;
    assert_eq!(n.peer_asn, c.open.asn(), "{name}");
    assert_eq!(n.peer_router_id, ROUTER_ID, "{name}");
    assert_eq!((n.hold_time, n.keepalive_time), (9, 3), "{name}");
    assert_eq!(n.internal, internal, "{name}");
    assert!(n.four_octet_as, "{name}");
    assert_eq!(n.families, [V4, V6], "{name}");
    assert!(n.route_refresh, "{name}");
    assert!(!n.extended_message, "{name}");
    assert_eq!(
        n.codec,
        CodecContext {
            four_octet_as: true,
            max_message_len: MAX_MESSAGE_LEN,
            internal_peer: internal,
        },
        "{name}"
    );
}

fn gr_families(forwarding_preserved: bool) -> Vec<GracefulRestartFamily> {
    [V4, V6]
        .map(|family| GracefulRestartFamily {
            family,
            forwarding_preserved,
        })
        .into()
}

fn enh() -> Capability {
    Capability::ExtendedNextHop(vec![ExtendedNextHop::IPV4_UNICAST_OVER_IPV6])
}

// ---------------------------------------------------------------- FRR

/// FRR's capabilities: pre-standard route refresh (128), ADD-PATH receive
/// for both families (69), FQDN, graceful restart with the R and N bits
/// (it has just started) and no F bits, long-lived graceful restart (71)
/// with a stale time of 0 and the F bit.
fn frr_capabilities(asn: u32, extended_next_hop: bool) -> Vec<Capability> {
    let mut caps = vec![Capability::Multiprotocol(V4)];
    if extended_next_hop {
        caps.push(enh());
    }
    caps.extend([
        Capability::Multiprotocol(V6),
        Capability::Unknown {
            code: 128,
            value: vec![],
        },
        Capability::RouteRefresh,
        Capability::EnhancedRouteRefresh,
        Capability::FourOctetAs(asn),
        Capability::ExtendedMessage,
        Capability::Unknown {
            code: 69,
            value: vec![0, 1, 1, 1, 0, 2, 1, 1],
        },
        Capability::Fqdn {
            hostname: CAPTURE_HOST.into(),
            domain: String::new(),
        },
        Capability::GracefulRestart(GracefulRestart {
            restart_state: true,
            notification: true,
            restart_time: 120,
            families: gr_families(false),
        }),
        Capability::Unknown {
            code: 71,
            value: vec![0, 1, 1, 0x80, 0, 0, 0, 0, 2, 1, 0x80, 0, 0, 0],
        },
    ]);
    caps
}

fn frr_graceful_restart() -> Option<PeerGracefulRestart> {
    Some(PeerGracefulRestart {
        restart_time: 120,
        restarting: true,
        families: gr_families(false),
    })
}

#[test]
fn frr_ebgp_over_ipv4() {
    let c = ebgp("frr-ebgp-v4.hex", include_str!("captures/frr-ebgp-v4.hex"));
    assert_eq!(c.types(), [O, K, U, U, U, U, U, K, N]);
    assert_eq!(
        c.open.capabilities,
        frr_capabilities(EBGP_ROUTER_ASN, false)
    );
    let n = &c.negotiated;
    assert!(n.enhanced_route_refresh);
    assert!(!n.extended_next_hop);
    assert_eq!(n.graceful_restart, frr_graceful_restart());
    assert_eq!(n.peer_hostname.as_deref(), Some(CAPTURE_HOST));

    c.assert_route(2, "203.0.113.10/32", ebgp_10(), HOP_V4);
    // IPv6 over the IPv4 session: FRR's global address on the link and
    // its link-local one.
    c.assert_route(3, "2001:db8::10/128", ebgp_v6(), HOP_V6_LL);
    c.assert_route(4, "203.0.113.11/32", ebgp_11(), HOP_V4);
    c.assert_end_of_rib(5, V6);
    c.assert_end_of_rib(6, V4);
    c.assert_shutdown(8, SHUTDOWN);

    // FRR puts every capability in an optional parameter of its own (we
    // group them in one), sets the extended length flag on every AS_PATH
    // and MP_REACH_NLRI whatever their size (we only past 255 octets), and
    // sends LARGE_COMMUNITY (32) before EXTENDED_COMMUNITIES (16).
    assert_eq!(
        c.canonical,
        [false, true, false, false, false, true, true, true, true]
    );
}

#[test]
fn frr_ibgp_over_ipv6_with_extended_next_hop() {
    let c = ibgp("frr-ibgp-v6.hex", include_str!("captures/frr-ibgp-v6.hex"));
    assert_eq!(c.types(), [O, K, U, U, U, U, K, N]);
    assert_eq!(c.open.capabilities, frr_capabilities(IBGP_ASN, true));
    let n = &c.negotiated;
    assert!(n.enhanced_route_refresh);
    // `neighbor … capability extended-nexthop`, and we announce it too.
    assert!(n.extended_next_hop);
    assert_eq!(n.graceful_restart, frr_graceful_restart());

    // RFC 8950: IPv4 unicast NLRI in MP_REACH_NLRI with FRR's IPv6 global
    // and link-local addresses as next hop.
    c.assert_route(2, "203.0.113.20/32", ibgp_v4(), HOP_V6_LL);
    let reach = c.update(2).attributes.mp_reach.as_ref().expect("checked");
    assert_eq!(reach.family, V4);
    c.assert_route(3, "2001:db8::20/128", ibgp_v6(), HOP_V6_LL);
    c.assert_end_of_rib(4, V4);
    c.assert_end_of_rib(5, V6);
    c.assert_shutdown(7, SHUTDOWN);

    // As over eBGP: one capability per parameter, extended length flags on
    // MP_REACH_NLRI and AS_PATH (even the empty one), LARGE_COMMUNITY
    // before EXTENDED_COMMUNITIES.
    assert_eq!(
        c.canonical,
        [false, true, false, false, true, true, true, true]
    );
}

// --------------------------------------------------------------- BIRD

/// BIRD's capabilities, all in one parameter: graceful restart without R,
/// N or F bits, enhanced route refresh, long-lived graceful restart (71)
/// with no families.
fn bird_capabilities(asn: u32) -> Vec<Capability> {
    vec![
        Capability::Multiprotocol(V4),
        Capability::Multiprotocol(V6),
        Capability::RouteRefresh,
        Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: false,
            restart_time: 120,
            families: gr_families(false),
        }),
        Capability::FourOctetAs(asn),
        Capability::EnhancedRouteRefresh,
        Capability::Unknown {
            code: 71,
            value: vec![],
        },
    ]
}

fn bird_negotiation(c: &Capture) {
    let n = &c.negotiated;
    assert!(n.enhanced_route_refresh, "{}", c.name);
    assert!(!n.extended_next_hop, "{}", c.name);
    assert_eq!(
        n.graceful_restart,
        Some(PeerGracefulRestart {
            restart_time: 120,
            restarting: false,
            families: gr_families(false),
        }),
        "{}",
        c.name
    );
    assert_eq!(n.peer_hostname, None, "{}", c.name);
}

#[test]
fn bird_ebgp_over_ipv4() {
    let c = ebgp(
        "bird-ebgp-v4.hex",
        include_str!("captures/bird-ebgp-v4.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, U, N]);
    assert_eq!(c.open.capabilities, bird_capabilities(EBGP_ROUTER_ASN));
    bird_negotiation(&c);

    c.assert_route(2, "203.0.113.11/32", ebgp_11(), HOP_V4);
    c.assert_route(3, "203.0.113.10/32", ebgp_10(), HOP_V4);
    c.assert_end_of_rib(4, V4);
    // `next hop address 2001:db8::1`, plus BIRD's link-local address.
    c.assert_route(5, "2001:db8::10/128", ebgp_v6(), HOP_V6_LL);
    c.assert_end_of_rib(6, V6);
    c.assert_shutdown(7, SHUTDOWN);

    // BIRD orders attributes as we do; only its MP_REACH_NLRI carries the
    // extended length flag.
    assert_eq!(
        c.canonical,
        [true, true, true, true, true, false, true, true]
    );
}

#[test]
fn bird_ibgp_over_ipv6() {
    let c = ibgp(
        "bird-ibgp-v6.hex",
        include_str!("captures/bird-ibgp-v6.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, N]);
    assert_eq!(c.open.capabilities, bird_capabilities(IBGP_ASN));
    bird_negotiation(&c);

    // IPv4 over the IPv6 session: `next hop address 198.51.100.1` in the
    // NEXT_HOP attribute.
    c.assert_route(2, "203.0.113.20/32", ibgp_v4(), HOP_V4);
    c.assert_end_of_rib(3, V4);
    c.assert_route(4, "2001:db8::20/128", ibgp_v6(), HOP_V6_LL);
    c.assert_end_of_rib(5, V6);
    c.assert_shutdown(6, SHUTDOWN);

    // Extended length flag on MP_REACH_NLRI.
    assert_eq!(c.canonical, [true, true, true, true, false, true, true]);
}

// -------------------------------------------------------------- GoBGP

/// GoBGP's capabilities, all in one parameter: route refresh first, FQDN,
/// graceful restart without R, N or F bits, extended next hop for IPv4
/// unicast; no enhanced route refresh.
fn gobgp_capabilities(asn: u32) -> Vec<Capability> {
    vec![
        Capability::RouteRefresh,
        Capability::Fqdn {
            hostname: CAPTURE_HOST.into(),
            domain: String::new(),
        },
        Capability::Multiprotocol(V4),
        Capability::Multiprotocol(V6),
        Capability::FourOctetAs(asn),
        Capability::GracefulRestart(GracefulRestart {
            restart_state: false,
            notification: false,
            restart_time: 120,
            families: gr_families(false),
        }),
        enh(),
    ]
}

fn gobgp_negotiation(c: &Capture) {
    let n = &c.negotiated;
    assert!(!n.enhanced_route_refresh, "{}", c.name);
    assert!(n.extended_next_hop, "{}", c.name);
    assert_eq!(
        n.graceful_restart,
        Some(PeerGracefulRestart {
            restart_time: 120,
            restarting: false,
            families: gr_families(false),
        }),
        "{}",
        c.name
    );
    assert_eq!(n.peer_hostname.as_deref(), Some(CAPTURE_HOST), "{}", c.name);
}

#[test]
fn gobgp_ebgp_over_ipv4() {
    let c = ebgp(
        "gobgp-ebgp-v4.hex",
        include_str!("captures/gobgp-ebgp-v4.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, U, N]);
    assert_eq!(c.open.capabilities, gobgp_capabilities(EBGP_ROUTER_ASN));
    gobgp_negotiation(&c);

    c.assert_route(2, "203.0.113.11/32", ebgp_11(), HOP_V4);
    c.assert_route(3, "203.0.113.10/32", ebgp_10(), HOP_V4);
    c.assert_end_of_rib(4, V4);
    // The configured next hop, global only.
    c.assert_route(5, "2001:db8::10/128", ebgp_v6(), HOP_V6);
    c.assert_end_of_rib(6, V6);
    c.assert_shutdown(7, SHUTDOWN);

    // GoBGP sends NEXT_HOP last in the UPDATE of 203.0.113.10/32 (after
    // LARGE_COMMUNITY) and MP_REACH_NLRI after the other attributes; we
    // order by type code with MP_REACH_NLRI first.
    assert_eq!(
        c.canonical,
        [true, true, true, false, true, false, true, true]
    );
}

#[test]
fn gobgp_ibgp_over_ipv6() {
    let c = ibgp(
        "gobgp-ibgp-v6.hex",
        include_str!("captures/gobgp-ibgp-v6.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, N]);
    assert_eq!(c.open.capabilities, gobgp_capabilities(IBGP_ASN));
    gobgp_negotiation(&c);

    // Extended next hop was negotiated, yet GoBGP sends the IPv4 route
    // with the configured IPv4 next hop in NEXT_HOP.
    c.assert_route(2, "203.0.113.20/32", ibgp_v4(), HOP_V4);
    c.assert_end_of_rib(3, V4);
    c.assert_route(4, "2001:db8::20/128", ibgp_v6(), HOP_V6);
    c.assert_end_of_rib(5, V6);
    c.assert_shutdown(6, SHUTDOWN);

    // MP_REACH_NLRI after COMMUNITIES, before EXTENDED_COMMUNITIES.
    assert_eq!(c.canonical, [true, true, true, true, false, true, true]);
}

// ------------------------------------------------------------- ExaBGP

#[test]
fn exabgp_ebgp_over_ipv4_with_graceful_restart() {
    let c = ebgp(
        "exabgp-ebgp-v4.hex",
        include_str!("captures/exabgp-ebgp-v4.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, U, K]);
    // One capability per parameter; graceful restart with the R bit and
    // the F bit for both families.
    assert_eq!(
        c.open.capabilities,
        [
            Capability::Multiprotocol(V4),
            Capability::Multiprotocol(V6),
            Capability::FourOctetAs(EBGP_ROUTER_ASN),
            Capability::GracefulRestart(GracefulRestart {
                restart_state: true,
                notification: false,
                restart_time: 120,
                families: gr_families(true),
            }),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
        ]
    );
    let n = &c.negotiated;
    assert!(n.enhanced_route_refresh);
    assert!(!n.extended_next_hop);
    assert_eq!(
        n.graceful_restart,
        Some(PeerGracefulRestart {
            restart_time: 120,
            restarting: true,
            families: gr_families(true),
        })
    );
    assert!(n.graceful_restart.as_ref().unwrap().preserved(V6));
    assert_eq!(n.peer_hostname, None);

    c.assert_route(2, "203.0.113.10/32", ebgp_10(), HOP_V4);
    c.assert_route(3, "203.0.113.11/32", ebgp_11(), HOP_V4);
    c.assert_route(4, "2001:db8::10/128", ebgp_v6(), HOP_V6);
    c.assert_end_of_rib(5, V4);
    c.assert_end_of_rib(6, V6);
    // Told to tear the session down, ExaBGP closes a session with graceful
    // restart without a NOTIFICATION: the last message is a KEEPALIVE.

    // One capability per parameter in the OPEN; MP_REACH_NLRI sent in type
    // code order (after COMMUNITIES); the extended length flag on the empty
    // MP_UNREACH_NLRI of the IPv6 End-of-RIB.
    assert_eq!(
        c.canonical,
        [false, true, true, true, false, true, false, true]
    );
}

#[test]
fn exabgp_ibgp_over_ipv6() {
    let c = ibgp(
        "exabgp-ibgp-v6.hex",
        include_str!("captures/exabgp-ibgp-v6.hex"),
    );
    assert_eq!(c.types(), [O, K, U, U, U, U, K, N]);
    // No graceful restart in this one.
    assert_eq!(
        c.open.capabilities,
        [
            Capability::Multiprotocol(V4),
            Capability::Multiprotocol(V6),
            Capability::FourOctetAs(IBGP_ASN),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
        ]
    );
    let n = &c.negotiated;
    assert!(n.enhanced_route_refresh);
    assert_eq!(n.graceful_restart, None);

    c.assert_route(2, "2001:db8::20/128", ibgp_v6(), HOP_V6);
    c.assert_route(3, "203.0.113.20/32", ibgp_v4(), HOP_V4);
    c.assert_end_of_rib(4, V4);
    c.assert_end_of_rib(5, V6);
    // `teardown 2`: Cease / Administrative Shutdown with ExaBGP's own
    // communication.
    c.assert_shutdown(7, "Administrative Shutdown");

    assert_eq!(
        c.canonical,
        [false, true, false, true, true, false, true, true]
    );
}

/// Every file in captures/ has a test above.
#[test]
fn every_capture_is_checked() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/captures");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|e| {
            e.expect("directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "bird-ebgp-v4.hex",
            "bird-ibgp-v6.hex",
            "exabgp-ebgp-v4.hex",
            "exabgp-ibgp-v6.hex",
            "frr-ebgp-v4.hex",
            "frr-ibgp-v6.hex",
            "gobgp-ebgp-v4.hex",
            "gobgp-ibgp-v6.hex",
        ]
    );
}
