//! The cargo-fuzz target bodies ([`ferrolb_arp::fuzzing`]) run without
//! cargo-fuzz: over the committed minimized corpus in
//! `fuzz/corpus/<target>/`, over proptest-generated inputs, and with an
//! allocator that records the largest single allocation and the sum of
//! all allocations, bounded by the input's length.
//!
//! The campaigns' first seeds were written into the corpus directories by
//! the ignored test `write_seeds`, then minimized with the campaigns'
//! findings (`fuzz/run.sh --cmin`):
//!
//!     cargo test -p ferrolb-arp --test fuzz_corpus -- --ignored write_seeds

#[path = "../../fuzz/replay.rs"]
mod replay;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_arp::MacAddr;
use ferrolb_arp::frame::arp::{ArpPacket, OP_REPLY, OP_REQUEST, arp_frame, gratuitous_frames};
use ferrolb_arp::frame::ethernet::VlanTag;
use ferrolb_arp::frame::ndp::{
    self, NdpMessage, NdpOption, NeighborAdvertisement, NeighborSolicitation, ndp_frame,
    solicited_node, solicited_node_mac,
};
use ferrolb_arp::fuzzing::{self, FUZZ_IPS, FUZZ_MACS, FUZZ_VLAN};
use proptest::prelude::*;
use replay::Target;

/// Every decoded item comes from input octets; answers are a few frames of
/// under 100 octets each. A buffer sized from a length field fails this.
fn largest(len: usize) -> usize {
    128 * len + 4096
}

/// The announcer target builds its announcer (three interfaces, twelve
/// addresses) for every input: a fixed cost, then a few frames per record.
fn total(len: usize) -> usize {
    512 * len + 64 * 1024
}

const L2_FRAME: Target = Target {
    name: "l2_frame",
    body: fuzzing::l2_frame,
    largest,
    total,
};
const ANNOUNCER: Target = Target {
    name: "announcer",
    body: fuzzing::announcer,
    largest,
    total,
};

#[test]
fn committed_corpus_replays_cleanly() {
    replay::replay_corpus(L2_FRAME, 5);
    replay::replay_corpus(ANNOUNCER, 5);
}

#[test]
fn seeds_replay_cleanly() {
    for (name, bytes) in l2_seeds() {
        eprintln!("l2_frame seed {name}");
        replay::run(L2_FRAME, &bytes);
    }
    for (name, bytes) in announcer_seeds() {
        eprintln!("announcer seed {name}");
        replay::run(ANNOUNCER, &bytes);
    }
}

/// The seeds reach what they are meant to: the valid frames parse.
#[test]
fn valid_seeds_parse() {
    for (name, bytes) in l2_seeds() {
        let parsed = ferrolb_arp::frame::parse(&bytes);
        if name.starts_with("other-") {
            assert!(
                matches!(parsed, Ok(ref f) if f.packet == ferrolb_arp::frame::Packet::Other),
                "{name}: {parsed:?}"
            );
        } else if !name.starts_with("bad-") {
            let frame = parsed.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_ne!(frame.packet, ferrolb_arp::frame::Packet::Other, "{name}");
        }
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
        largest,
        total,
    };
    assert!(std::panic::catch_unwind(|| replay::run(bad, &[0xff, 0xff, 0, 0])).is_err());
    replay::run(bad, &[0, 8, 0, 0]);
}

fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..300)
}

/// A seed with a few octets overwritten, inserted or removed.
fn mutated(seeds: Vec<(String, Vec<u8>)>) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
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

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn l2_frame_random(data in random_bytes()) {
        replay::run(L2_FRAME, &data);
    }

    #[test]
    fn l2_frame_mutated(data in mutated(l2_seeds())) {
        replay::run(L2_FRAME, &data);
    }

    #[test]
    fn announcer_random(data in random_bytes()) {
        replay::run(ANNOUNCER, &data);
    }

    #[test]
    fn announcer_mutated(data in mutated(announcer_seeds())) {
        replay::run(ANNOUNCER, &data);
    }
}

// ---------------------------------------------------------------------------
// Seeds: frames of every kind the announcer reads, for the interfaces and
// addresses of `fuzzing::announcer`.

const PEER: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0xaa, 0x01);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xaa01);

fn v4(i: usize) -> Ipv4Addr {
    match FUZZ_IPS[i] {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => unreachable!(),
    }
}

fn v6(i: usize) -> Ipv6Addr {
    match FUZZ_IPS[i] {
        IpAddr::V6(a) => a,
        IpAddr::V4(_) => unreachable!(),
    }
}

fn request(target: Ipv4Addr) -> ArpPacket {
    ArpPacket {
        op: OP_REQUEST,
        sender_mac: PEER,
        sender_ip: PEER_V4,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    }
}

fn ns(target: Ipv6Addr, options: Vec<NdpOption>) -> NdpMessage {
    NdpMessage::Solicitation(NeighborSolicitation { target, options })
}

fn ns_frame(
    vlan: Option<VlanTag>,
    src: Ipv6Addr,
    target: Ipv6Addr,
    options: Vec<NdpOption>,
) -> Vec<u8> {
    ndp_frame(
        solicited_node_mac(target),
        PEER,
        vlan,
        src,
        solicited_node(target),
        &ns(target, options),
    )
}

fn l2_seeds() -> Vec<(String, Vec<u8>)> {
    let tag = Some(VlanTag::new(FUZZ_VLAN));
    let prio = Some(VlanTag {
        pcp: 6,
        dei: true,
        vid: 0,
    });
    let probe = ArpPacket {
        sender_ip: Ipv4Addr::UNSPECIFIED,
        ..request(v4(0))
    };
    let reply = ArpPacket {
        op: OP_REPLY,
        target_mac: FUZZ_MACS[0],
        ..request(v4(0))
    };
    let [garp_request, garp_reply] = gratuitous_frames(PEER, v4(0), None);
    let slla = vec![NdpOption::SourceLinkLayer(PEER)];
    let many_options = vec![
        NdpOption::Other {
            kind: 14, // nonce (RFC 3971)
            data: vec![1, 2, 3, 4, 5, 6],
        },
        NdpOption::SourceLinkLayer(PEER),
        NdpOption::Other {
            kind: 200,
            data: vec![0xab; 14],
        },
    ];
    let na_solicited = NdpMessage::Advertisement(NeighborAdvertisement {
        router: true,
        ..NeighborAdvertisement::solicited(v6(1), PEER)
    });
    let mut echo = ndp_frame(FUZZ_MACS[0], PEER, None, PEER_V6, v6(1), &ns(v6(1), vec![]));
    // ICMPv6 echo request (type 128), checksum left as is.
    echo[14 + 40] = 128;
    let mut qinq = arp_frame(MacAddr::BROADCAST, PEER, None, &request(v4(0)));
    qinq.splice(12..12, [0x88, 0xa8, 0x00, 0x05]);
    let mut hop64 = ns_frame(None, PEER_V6, v6(1), slla.clone());
    hop64[14 + 7] = 64;
    let mut bad_sum = ns_frame(None, PEER_V6, v6(1), slla.clone());
    bad_sum[14 + 40 + 2] ^= 0xff;
    vec![
        (
            "arp-request".into(),
            arp_frame(MacAddr::BROADCAST, PEER, None, &request(v4(0))),
        ),
        (
            "arp-request-vlan".into(),
            arp_frame(MacAddr::BROADCAST, PEER, tag, &request(v4(2))),
        ),
        (
            "arp-request-priority-tag".into(),
            arp_frame(MacAddr::BROADCAST, PEER, prio, &request(v4(0))),
        ),
        (
            "arp-probe".into(),
            arp_frame(MacAddr::BROADCAST, PEER, None, &probe),
        ),
        (
            "arp-reply".into(),
            arp_frame(FUZZ_MACS[0], PEER, None, &reply),
        ),
        ("arp-gratuitous-request".into(), garp_request),
        ("arp-gratuitous-reply".into(), garp_reply),
        ("ns".into(), ns_frame(None, PEER_V6, v6(1), slla.clone())),
        (
            "ns-vlan".into(),
            ns_frame(tag, PEER_V6, v6(3), slla.clone()),
        ),
        (
            "ns-options".into(),
            ns_frame(None, PEER_V6, v6(1), many_options),
        ),
        (
            "ns-no-options".into(),
            ns_frame(None, PEER_V6, v6(1), vec![]),
        ),
        (
            "ns-dad".into(),
            ns_frame(None, Ipv6Addr::UNSPECIFIED, v6(1), vec![]),
        ),
        (
            "na-solicited".into(),
            ndp_frame(FUZZ_MACS[0], PEER, None, PEER_V6, v6(1), &na_solicited),
        ),
        (
            "na-unsolicited".into(),
            ndp::unsolicited_advertisement_frame(v6(1), PEER, None),
        ),
        ("other-icmpv6-echo".into(), echo),
        ("other-qinq".into(), qinq),
        ("bad-hop-limit".into(), hop64),
        ("bad-checksum".into(), bad_sum),
    ]
}

/// One announcer record: control octet, length, frame.
fn record(ctl: u8, frame: &[u8]) -> Vec<u8> {
    let len = u8::try_from(frame.len()).expect("seed frames are short");
    assert!(len < u8::MAX);
    [&[ctl, len][..], frame].concat()
}

fn announcer_seeds() -> Vec<(String, Vec<u8>)> {
    let l2: std::collections::BTreeMap<String, Vec<u8>> = l2_seeds().into_iter().collect();
    let on = |ifindex: u8, name: &str| record(ifindex, &l2[name]);
    let poll = |ticks: u8| 0b1000 | (ticks << 4);
    vec![
        (
            "arp-on-each-interface".into(),
            [
                on(1, "arp-request"),
                on(2, "arp-request-vlan"),
                on(3, "arp-request"),
                on(0, "arp-request"),
            ]
            .concat(),
        ),
        (
            "arp-conflicts".into(),
            [
                on(1, "arp-probe"),
                on(1, "arp-gratuitous-request"),
                on(1, "arp-gratuitous-reply"),
                on(1, "arp-reply"),
            ]
            .concat(),
        ),
        (
            "ndp-on-each-interface".into(),
            [
                on(1, "ns"),
                on(2, "ns-vlan"),
                on(1, "ns-options"),
                on(1, "ns-no-options"),
            ]
            .concat(),
        ),
        (
            "ndp-conflicts".into(),
            [
                on(1, "ns-dad"),
                on(1, "na-solicited"),
                on(1, "na-unsolicited"),
            ]
            .concat(),
        ),
        (
            "polls-between".into(),
            [
                record(poll(1) | 1, &l2["ns"]),
                record(poll(3) | 2, &l2["arp-request-vlan"]),
                record(poll(15) | 1, &l2["arp-request"]),
            ]
            .concat(),
        ),
        (
            "checksum-fixed".into(),
            [
                record(0b100 | 1, &l2["bad-checksum"]),
                on(1, "bad-hop-limit"),
            ]
            .concat(),
        ),
        (
            "wrong-vlan-and-priority-tag".into(),
            [
                on(2, "arp-request"),
                on(1, "arp-request-priority-tag"),
                on(2, "arp-request-priority-tag"),
            ]
            .concat(),
        ),
        (
            "others".into(),
            [on(1, "other-icmpv6-echo"), on(1, "other-qinq")].concat(),
        ),
        (
            "long-frame-rest".into(),
            [&[1u8, 255][..], &l2["ns-options"]].concat(),
        ),
    ]
}

/// Adds the seeds of both targets to their corpus directories.
#[test]
#[ignore = "writes into the source tree"]
fn write_seeds() {
    replay::write_seeds(&replay::corpus_dir("l2_frame"), &l2_seeds());
    replay::write_seeds(&replay::corpus_dir("announcer"), &announcer_seeds());
}

// ---------------------------------------------------------------------------
// Regressions found by the campaigns.

/// Found by `announcer`: a Neighbor Solicitation without a source
/// link-layer option, in a frame whose Ethernet source is a multicast
/// address, was answered to that multicast address (every host of the
/// group got our advertisement). No station sends from a group, broadcast
/// or zero address: such frames are malformed, counted and dropped.
#[test]
fn frames_from_a_non_unicast_source_mac_are_dropped() {
    let group_src = MacAddr::new(0x33, 0x33, 0xff, 0, 0, 0x07);
    for src in [group_src, MacAddr::BROADCAST, MacAddr::ZERO] {
        let ns = ns_frame_from(src);
        let parsed = ferrolb_arp::frame::parse(&ns).map(|_| ());
        assert_eq!(
            parsed.map_err(|e| e.to_string()),
            Err("Ethernet source address is not a unicast address".to_string()),
            "{src}"
        );
        let mut a = ferrolb_arp::Announcer::default();
        a.set_interface(
            ferrolb_arp::Interface {
                index: 1,
                name: "eth1".into(),
                mac: FUZZ_MACS[0],
                vlan: None,
                up: true,
            },
            ferrolb_arp::Instant::ZERO,
        )
        .unwrap();
        a.add_ip(1, FUZZ_IPS[1], ferrolb_arp::Instant::ZERO)
            .unwrap();
        assert_eq!(a.handle_frame(1, &ns), vec![], "{src}");
        assert_eq!(a.counters().interface(1).unwrap().malformed, 1);
    }
    // The input the campaign found, as a whole.
    replay::run(
        ANNOUNCER,
        &[
            &[0x01, 0x56][..],
            &ns_frame_from(MacAddr::new(0x33, 0x33, 0xff, 0, 0, 0x07)),
        ]
        .concat(),
    );
}

fn ns_frame_from(src: MacAddr) -> Vec<u8> {
    ndp_frame(
        solicited_node_mac(v6(1)),
        src,
        None,
        PEER_V6,
        solicited_node(v6(1)),
        &ns(v6(1), vec![]),
    )
}
