//! The cargo-fuzz target bodies ([`ferrolb_bgp::fuzzing`]) run without
//! cargo-fuzz: over the committed seed corpus in `fuzz/corpus/<target>/`,
//! over proptest-generated inputs (random bytes, valid headers with random
//! bodies, and mutated seeds), and with an allocator that records the
//! largest single allocation, so that a length field read from the input
//! cannot make a decoder reserve a buffer out of proportion to the input.
//!
//! The seed corpus is written by the ignored test `write_seed_corpus`:
//!
//!     cargo test -p ferrolb-bgp --test fuzz_corpus -- --ignored write_seed_corpus

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use ferrolb_bgp::bfd::packet::{Auth, ControlPacket, Diag, State};
use ferrolb_bgp::fuzzing;
use ferrolb_bgp::message::attribute::flags;
use ferrolb_bgp::{
    AddressFamily, Aggregator, AsPath, AsSegment, Capability, CodecContext, Community,
    ExtendedCommunity, ExtendedNextHop, GracefulRestart, GracefulRestartFamily, LargeCommunity,
    Message, MpReach, MpUnreach, NextHop, Notification, Open, Origin, PathAttributes, Prefix,
    RawAttribute, RouteRefresh, RouteRefreshSubtype, Update,
};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// Largest single allocation, per thread (tests run on parallel threads).

struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn record(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// bookkeeping touches only a const-initialised thread-local `Cell`.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Largest single allocation any input may cause: every decoded item comes
/// from at least one or two input octets and is at most a few dozen octets
/// in memory (growing vectors may double that), plus fixed overhead. A
/// buffer sized from a length field instead of from the data present
/// (e.g. 65535 octets for a 40-octet input) exceeds it.
fn allocation_bound(input_len: usize) -> usize {
    128 * input_len + 4096
}

/// Runs one target body on `input` and checks the allocation bound.
fn run(target: Target, input: &[u8]) {
    LARGEST.with(|l| l.set(0));
    (target.body)(input);
    let largest = LARGEST.with(Cell::get);
    let bound = allocation_bound(input.len());
    assert!(
        largest <= bound,
        "target {} allocated {largest} octets at once for a {}-octet input (bound {bound})",
        target.name,
        input.len()
    );
}

// ---------------------------------------------------------------------------
// Targets and the committed corpus.

#[derive(Clone, Copy)]
struct Target {
    name: &'static str,
    body: fn(&[u8]),
}

const MESSAGE: Target = Target {
    name: "message",
    body: fuzzing::message,
};
const UPDATE_ATTRIBUTES: Target = Target {
    name: "update_attributes",
    body: fuzzing::update_attributes,
};
const OPEN_CAPABILITIES: Target = Target {
    name: "open_capabilities",
    body: fuzzing::open_capabilities,
};
const BFD_PACKET: Target = Target {
    name: "bfd_packet",
    body: fuzzing::bfd_packet,
};
const TARGETS: [Target; 4] = [MESSAGE, UPDATE_ATTRIBUTES, OPEN_CAPABILITIES, BFD_PACKET];

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// The committed seeds of a target, sorted by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = corpus_dir(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("seed corpus {} unreadable: {e}", dir.display()));
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("corpus directory entry").path();
            let bytes = std::fs::read(&path)
                .unwrap_or_else(|e| panic!("seed {} unreadable: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn committed_seed_corpus_replays_cleanly() {
    for target in TARGETS {
        let seeds = seeds(target.name);
        assert!(
            seeds.len() >= 3,
            "fuzz/corpus/{} holds {} seeds; run write_seed_corpus",
            target.name,
            seeds.len()
        );
        for (name, bytes) in &seeds {
            eprintln!("{}/{name}: {} octets", target.name, bytes.len());
            run(target, bytes);
        }
    }
}

/// The seeds are what `write_seed_corpus` writes: nobody edited them by
/// hand or forgot to commit a regenerated one.
#[test]
fn committed_seed_corpus_is_current() {
    for target in TARGETS {
        let committed = seeds(target.name);
        let mut expected: Vec<(String, Vec<u8>)> = seed_corpus()
            .into_iter()
            .filter(|(t, _, _)| *t == target.name)
            .map(|(_, name, bytes)| (name.to_owned(), bytes))
            .collect();
        expected.sort();
        let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(names(&committed), names(&expected), "{}", target.name);
        for ((name, got), (_, want)) in committed.iter().zip(&expected) {
            assert_eq!(got, want, "fuzz/corpus/{}/{name} differs", target.name);
        }
    }
}

/// Seeds exercise what they are meant to: the valid messages decode.
#[test]
fn valid_seeds_decode() {
    let ctx4 = CodecContext {
        four_octet_as: true,
        ..CodecContext::default()
    };
    for (name, bytes) in seeds("message") {
        let mut ctx = if name.contains("two-octet") {
            CodecContext::default()
        } else {
            ctx4
        };
        if name.contains("extended-message") {
            ctx.max_message_len = ferrolb_bgp::MAX_EXTENDED_MESSAGE_LEN;
        }
        let result = ferrolb_bgp::decode_message(&bytes, &ctx);
        if name.starts_with("malformed-") {
            assert!(result.is_err(), "{name} decoded");
        } else {
            assert!(result.is_ok(), "{name}: {result:?}");
        }
    }
    for (name, bytes) in seeds("bfd_packet") {
        assert!(ControlPacket::decode(&bytes).is_ok(), "{name}");
    }
}

/// The allocation check itself works: a body that sizes a buffer from a
/// length field fails it.
#[test]
fn allocation_bound_catches_length_field_reservations() {
    fn reserves_claimed_length(data: &[u8]) {
        let claimed = data
            .get(..2)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
        let buf: Vec<u8> = Vec::with_capacity(usize::from(claimed));
        std::hint::black_box(buf);
    }
    let bad = Target {
        name: "reserves_claimed_length",
        body: reserves_claimed_length,
    };
    let caught = std::panic::catch_unwind(|| run(bad, &[0xff, 0xff, 0, 0]));
    assert!(caught.is_err());
    run(bad, &[0, 8, 0, 0]);
}

// ---------------------------------------------------------------------------
// Random inputs.

/// A header that passes the checks of most contexts, then random octets.
fn framed_message() -> impl Strategy<Value = Vec<u8>> {
    (1u8..=5, prop::collection::vec(any::<u8>(), 0..600)).prop_map(|(kind, body)| {
        let mut out = vec![0xff; 16];
        out.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
        out.push(kind);
        out.extend_from_slice(&body);
        out
    })
}

/// A seed of `target` with a few octets overwritten, inserted or removed.
fn mutated_seed(target: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let seeds: Vec<Vec<u8>> = seeds(target).into_iter().map(|(_, b)| b).collect();
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..4), 1..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, op) in edits {
                match op {
                    0 | 1 if !bytes.is_empty() => {
                        let i = at.index(bytes.len());
                        bytes[i] = byte;
                    }
                    2 => {
                        let i = at.index(bytes.len() + 1);
                        bytes.insert(i, byte);
                    }
                    _ if !bytes.is_empty() => {
                        let i = at.index(bytes.len());
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn message_random(data in random_bytes()) {
        run(MESSAGE, &data);
    }

    #[test]
    fn message_framed(data in framed_message()) {
        run(MESSAGE, &data);
    }

    #[test]
    fn message_mutated(data in mutated_seed("message")) {
        run(MESSAGE, &data);
    }

    #[test]
    fn update_attributes_random(data in random_bytes()) {
        run(UPDATE_ATTRIBUTES, &data);
    }

    #[test]
    fn update_attributes_mutated(data in mutated_seed("update_attributes")) {
        run(UPDATE_ATTRIBUTES, &data);
    }

    #[test]
    fn open_capabilities_random(data in random_bytes()) {
        run(OPEN_CAPABILITIES, &data);
    }

    #[test]
    fn open_capabilities_mutated(data in mutated_seed("open_capabilities")) {
        run(OPEN_CAPABILITIES, &data);
    }

    #[test]
    fn bfd_packet_random(data in random_bytes()) {
        run(BFD_PACKET, &data);
    }

    #[test]
    fn bfd_packet_mutated(data in mutated_seed("bfd_packet")) {
        run(BFD_PACKET, &data);
    }
}

// ---------------------------------------------------------------------------
// The seed corpus: messages shaped like the test vectors (tests/vectors.rs,
// tests/rfc7606.rs), built with the encoder where they are valid and laid
// out by hand where they are not.

fn ctx(four_octet_as: bool) -> CodecContext {
    CodecContext {
        four_octet_as,
        ..CodecContext::default()
    }
}

fn encode(message: impl Into<Message>, ctx: &CodecContext) -> Vec<u8> {
    message.into().encode(ctx).expect("seed encodes").to_vec()
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn typical_open() -> Open {
    Open::new(
        65551,
        180,
        Ipv4Addr::new(203, 0, 113, 1),
        vec![
            Capability::Multiprotocol(AddressFamily::IPV4_UNICAST),
            Capability::Multiprotocol(AddressFamily::IPV6_UNICAST),
            Capability::Unknown {
                code: 128,
                value: vec![],
            },
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::Unknown {
                code: 69,
                value: vec![0, 1, 1, 1],
            },
            Capability::ExtendedNextHop(vec![ExtendedNextHop::IPV4_UNICAST_OVER_IPV6]),
            Capability::Fqdn {
                hostname: "spine-1".into(),
                domain: "example.net".into(),
            },
            Capability::GracefulRestart(GracefulRestart {
                restart_state: false,
                notification: true,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        family: AddressFamily::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GracefulRestartFamily {
                        family: AddressFamily::IPV6_UNICAST,
                        forwarding_preserved: false,
                    },
                ],
            }),
            Capability::ExtendedMessage,
        ],
    )
}

/// An OPEN whose capabilities exceed 255 octets: RFC 9072 format.
fn extended_open() -> Open {
    let mut open = typical_open();
    open.capabilities
        .extend((0..30).map(|i| Capability::Unknown {
            code: 200 + (i % 50),
            value: vec![i; 8],
        }));
    open
}

fn ebgp_attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath {
            segments: vec![
                AsSegment::sequence([64496, 65551, 4_200_000_001]),
                AsSegment::set([64500, 64501]),
            ],
        }),
        med: Some(50),
        atomic_aggregate: true,
        aggregator: Some(Aggregator {
            asn: 4_200_000_001,
            address: Ipv4Addr::new(198, 51, 100, 9),
        }),
        communities: vec![Community::new(64496, 100), Community::NO_EXPORT],
        extended_communities: vec![ExtendedCommunity::route_target(64496, 7)],
        large_communities: vec![LargeCommunity::new(4_200_000_001, 1, 2)],
        unknown: vec![RawAttribute {
            flags: flags::OPTIONAL | flags::TRANSITIVE,
            type_code: 99,
            value: vec![1, 2, 3],
        }],
        ..Default::default()
    }
}

fn ipv4_update() -> Update {
    Update {
        withdrawn: vec!["203.0.113.0/25".parse().unwrap()],
        attributes: PathAttributes {
            next_hop: Some(Ipv4Addr::new(198, 51, 100, 1)),
            ..ebgp_attributes()
        },
        nlri: vec![
            "198.51.100.0/24".parse().unwrap(),
            "198.51.100.128/32".parse().unwrap(),
            "0.0.0.0/0".parse().unwrap(),
        ],
    }
}

fn ipv6_update() -> Update {
    Update {
        attributes: PathAttributes {
            mp_reach: Some(MpReach {
                family: AddressFamily::IPV6_UNICAST,
                next_hop: NextHop::V6 {
                    global: "2001:db8::1".parse().unwrap(),
                    link_local: Some("fe80::1".parse().unwrap()),
                },
                nlri: vec![p("2001:db8:1::/48"), p("2001:db8:2::1/128"), p("::/0")],
            }),
            mp_unreach: Some(MpUnreach {
                family: AddressFamily::IPV6_UNICAST,
                withdrawn: vec![p("2001:db8:3::/64")],
            }),
            ..ebgp_attributes()
        },
        ..Default::default()
    }
}

fn ibgp_update() -> Update {
    Update {
        attributes: PathAttributes {
            origin: Some(Origin::Incomplete),
            as_path: Some(AsPath::new()),
            local_pref: Some(200),
            originator_id: Some(Ipv4Addr::new(198, 51, 100, 2)),
            cluster_list: vec![Ipv4Addr::new(198, 51, 100, 3)],
            mp_reach: Some(MpReach {
                family: AddressFamily::IPV4_UNICAST,
                next_hop: NextHop::v6("2001:db8::2".parse().unwrap()),
                nlri: vec![p("203.0.113.0/24")],
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn with_header(message_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
    out.push(message_type);
    out.extend_from_slice(body);
    out
}

/// The Path Attributes field of an encoded UPDATE.
fn attributes_field(frame: &[u8]) -> Vec<u8> {
    let body = &frame[19..];
    let withdrawn = usize::from(u16::from_be_bytes([body[0], body[1]]));
    let at = 2 + withdrawn;
    let len = usize::from(u16::from_be_bytes([body[at], body[at + 1]]));
    body[at + 2..at + 2 + len].to_vec()
}

/// The Optional Parameters of an encoded OPEN, as the target takes them
/// (after the length octet, and after Non-Ext OP Type and the two-octet
/// length in the RFC 9072 format).
fn optional_parameters(frame: &[u8]) -> Vec<u8> {
    let params = &frame[19 + 10..];
    if frame[19 + 9] == 255 && params[0] == 255 {
        params[3..].to_vec()
    } else {
        params.to_vec()
    }
}

fn bfd(state: State, your_discriminator: u32) -> ControlPacket {
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discriminator: 0x0102_0304,
        your_discriminator,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
}

/// Every seed: (target, file name, bytes).
fn seed_corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let four = ctx(true);
    let two = ctx(false);
    let ibgp = CodecContext {
        internal_peer: true,
        ..four
    };
    let open = encode(typical_open(), &two);
    let open_ext = encode(extended_open(), &two);
    let v4 = encode(ipv4_update(), &four);
    let v6 = encode(ipv6_update(), &four);
    let v4_two = encode(
        Update {
            attributes: ipv4_update().attributes.for_two_octet_peer(),
            ..ipv4_update()
        },
        &two,
    );
    let ib = encode(ibgp_update(), &ibgp);

    // RFC 7606 cases, by hand: an attribute overrunning the field, an
    // MP_REACH_NLRI with a next hop that does not fit the family, an
    // attribute with conflicting flags, a truncated NLRI.
    let origin = [0x40, 1, 1, 0];
    let overrun_attrs = [&origin[..], &[0x40, 2, 40, 2, 1, 0, 0]].concat();
    let bad_mp_reach = [0x80, 14, 9, 0, 2, 1, 4, 192, 0, 2, 1, 0];
    let flags_conflict = [&origin[..], &[0x80, 3, 4, 192, 0, 2, 1]].concat();
    let update_body = |attrs: &[u8], nlri: &[u8]| {
        let mut body = vec![0, 0];
        body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        body.extend_from_slice(attrs);
        body.extend_from_slice(nlri);
        body
    };

    let mut shutdown = bfd(State::AdminDown, 0);
    shutdown.diag = Diag::AdministrativelyDown;
    let mut poll = bfd(State::Up, 0x0a0b_0c0d);
    poll.poll = true;
    let mut authenticated = bfd(State::Init, 9);
    authenticated.auth = Some(Auth {
        auth_type: 1,
        data: b"\x01secret".to_vec(),
    });

    vec![
        ("message", "open-typical-two-octet", open.clone()),
        ("message", "open-rfc9072-two-octet", open_ext.clone()),
        ("message", "update-ipv4", v4.clone()),
        ("message", "update-ipv6-mp", v6.clone()),
        ("message", "update-ipv4-two-octet-as4", v4_two.clone()),
        ("message", "update-ibgp-v4-over-v6", ib.clone()),
        (
            "message",
            "update-end-of-rib-ipv6",
            encode(Update::end_of_rib(AddressFamily::IPV6_UNICAST), &four),
        ),
        (
            "message",
            "notification-shutdown",
            encode(Notification::administrative_shutdown("maintenance"), &four),
        ),
        ("message", "update-ipv6-extended-message", {
            // 300 /128s: longer than 4096 octets, for the contexts with
            // extended messages (RFC 8654).
            let base = u128::from("2001:db8:4::".parse::<Ipv6Addr>().unwrap());
            let hosts: Vec<Prefix> = (0..300u128)
                .map(|i| Prefix::new(Ipv6Addr::from(base + i).into(), 128).unwrap())
                .collect();
            let ext = CodecContext {
                max_message_len: ferrolb_bgp::MAX_EXTENDED_MESSAGE_LEN,
                ..four
            };
            let nh = NextHop::v6("2001:db8::1".parse().unwrap());
            let updates =
                ferrolb_bgp::pack_announcements(&ebgp_attributes(), nh, &hosts, &ext).unwrap();
            assert_eq!(updates.len(), 1);
            encode(updates.into_iter().next().unwrap(), &ext)
        }),
        ("message", "keepalive", encode(Message::Keepalive, &four)),
        (
            "message",
            "route-refresh-borr",
            encode(
                RouteRefresh {
                    family: AddressFamily::IPV6_UNICAST,
                    subtype: RouteRefreshSubtype::Begin,
                },
                &four,
            ),
        ),
        (
            "message",
            "malformed-update-attribute-overrun",
            with_header(2, &update_body(&overrun_attrs, &[24, 198, 51, 100])),
        ),
        (
            "message",
            "malformed-update-nlri-truncated",
            with_header(2, &update_body(&origin, &[24, 198, 51])),
        ),
        ("update_attributes", "ipv4-ebgp", {
            // Four-octet AS, NLRI present.
            [&[0b0_1001][..], &attributes_field(&v4)].concat()
        }),
        ("update_attributes", "ipv4-two-octet-as4", {
            [&[0b0_1000][..], &attributes_field(&v4_two)].concat()
        }),
        ("update_attributes", "ipv6-mp", {
            [&[0b1_0001][..], &attributes_field(&v6)].concat()
        }),
        ("update_attributes", "ibgp", {
            [&[0b0_0011][..], &attributes_field(&ib)].concat()
        }),
        (
            "update_attributes",
            "overrun",
            [&[0b0_1001][..], &overrun_attrs].concat(),
        ),
        (
            "update_attributes",
            "mp-reach-bad-next-hop",
            [&[0b0_0001][..], &bad_mp_reach].concat(),
        ),
        (
            "update_attributes",
            "flags-conflict",
            [&[0b0_1001][..], &flags_conflict].concat(),
        ),
        ("open_capabilities", "typical", optional_parameters(&open)),
        (
            "open_capabilities",
            "rfc9072",
            optional_parameters(&open_ext),
        ),
        ("open_capabilities", "capability-run", {
            // Capabilities without a parameter header, as in one parameter.
            let mut out = bytes::BytesMut::new();
            for cap in typical_open().capabilities {
                cap.encode(&mut out).unwrap();
            }
            out.to_vec()
        }),
        ("bfd_packet", "down", bfd(State::Down, 0).encode()),
        ("bfd_packet", "up-poll", poll.encode()),
        ("bfd_packet", "admin-down", shutdown.encode()),
        ("bfd_packet", "init-simple-password", authenticated.encode()),
    ]
}

/// Writes `fuzz/corpus/<target>/<name>` for every seed, replacing the
/// directory's contents.
#[test]
#[ignore = "writes the seed corpus into the source tree"]
fn write_seed_corpus() {
    let corpus = seed_corpus();
    for target in TARGETS {
        let dir = corpus_dir(target.name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (_, name, bytes) in corpus.iter().filter(|(t, _, _)| *t == target.name) {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
