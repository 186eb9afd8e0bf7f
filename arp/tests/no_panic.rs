//! Property tests: no input panics the parser or the announcer, and what
//! the announcer emits stays consistent.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_arp::frame::arp::{ArpPacket, OP_REQUEST, arp_frame};
use ferrolb_arp::frame::ethernet::VlanTag;
use ferrolb_arp::frame::ndp::{
    self, NdpMessage, NdpOption, NeighborSolicitation, ndp_frame, solicited_node,
};
use ferrolb_arp::frame::{self, Packet};
use ferrolb_arp::{Announcer, Event, Instant, Interface, MacAddr, Output};
use proptest::prelude::*;

const MAC0: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x02);
const PEER: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0xaa, 0x01);
const V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xaa01);

fn announcer() -> Announcer {
    let mut a = Announcer::default();
    for (index, mac) in [(1, MAC0), (2, MacAddr::new(0x02, 0, 0, 0, 0, 0x03))] {
        a.set_interface(
            Interface {
                index,
                name: format!("eth{index}"),
                mac,
                vlan: None,
                up: true,
            },
            Instant::ZERO,
        )
        .unwrap();
    }
    a.add_ip(1, V4.into(), Instant::ZERO).unwrap();
    a.add_ip(1, V6.into(), Instant::ZERO).unwrap();
    a
}

/// Valid frames of every kind the announcer handles.
fn seeds() -> Vec<Vec<u8>> {
    let request = ArpPacket {
        op: OP_REQUEST,
        sender_mac: PEER,
        sender_ip: Ipv4Addr::new(198, 51, 100, 1),
        target_mac: MacAddr::ZERO,
        target_ip: V4,
    };
    let ns = NdpMessage::Solicitation(NeighborSolicitation {
        target: V6,
        options: vec![NdpOption::SourceLinkLayer(PEER)],
    });
    let dad = NdpMessage::Solicitation(NeighborSolicitation {
        target: V6,
        options: vec![],
    });
    vec![
        arp_frame(MacAddr::BROADCAST, PEER, None, &request),
        arp_frame(MacAddr::BROADCAST, PEER, Some(VlanTag::new(5)), &request),
        ndp_frame(
            ndp::solicited_node_mac(V6),
            PEER,
            None,
            PEER_V6,
            solicited_node(V6),
            &ns,
        ),
        ndp_frame(
            ndp::solicited_node_mac(V6),
            PEER,
            Some(VlanTag::new(5)),
            PEER_V6,
            solicited_node(V6),
            &ns,
        ),
        ndp_frame(
            ndp::solicited_node_mac(V6),
            PEER,
            None,
            Ipv6Addr::UNSPECIFIED,
            solicited_node(V6),
            &dad,
        ),
        ndp::unsolicited_advertisement_frame(V6, PEER, None),
    ]
}

/// Checks what one call returned: every frame sent parses, and every
/// answer is for an address owned on the interface it went out of.
fn check_outputs(a: &Announcer, outputs: &[Output]) {
    for output in outputs {
        match output {
            Output::Send { frame, .. } => {
                let parsed = frame::parse(frame).expect("emitted frames parse");
                assert!(!matches!(parsed.packet, Packet::Other));
            }
            Output::Event(Event::Answered { ip, ifindex, .. }) => assert!(a.owns(*ifindex, *ip)),
            _ => {}
        }
    }
}

fn check_counters(a: &Announcer) {
    for i in a.counters().interfaces.values() {
        let c = i.counters;
        let outcomes = c.malformed
            + c.link_down
            + c.wrong_vlan
            + c.own_frames
            + c.not_for_us
            + c.not_owned
            + c.handled
            + c.ignored;
        assert_eq!(outcomes, c.frames_seen);
        assert!(c.bad_checksum + c.bad_hop_limit <= c.malformed);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(u32, u8),
    Remove(u32, u8),
    Link(u32, bool),
    Mac(u32, u8),
    Resend(u8),
    Advance(u16),
    Poll,
    RemoveInterface(u32),
    Frame(u32, usize, Vec<(usize, u8)>),
}

/// A small pool of addresses, half IPv4, half IPv6; some IPv6 ones share
/// a solicited-node group.
fn pool(i: u8) -> IpAddr {
    match i % 8 {
        n @ 0..4 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, n + 1)),
        4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10)),
        5 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x10)),
        6 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x11)),
        _ => IpAddr::V6(V6),
    }
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1..4u32, any::<u8>()).prop_map(|(i, p)| Op::Add(i, p)),
        (1..4u32, any::<u8>()).prop_map(|(i, p)| Op::Remove(i, p)),
        (1..4u32, any::<bool>()).prop_map(|(i, up)| Op::Link(i, up)),
        (1..4u32, any::<u8>()).prop_map(|(i, m)| Op::Mac(i, m)),
        any::<u8>().prop_map(Op::Resend),
        any::<u16>().prop_map(Op::Advance),
        Just(Op::Poll),
        (1..4u32).prop_map(Op::RemoveInterface),
        (
            1..4u32,
            0..6usize,
            proptest::collection::vec((any::<usize>(), any::<u8>()), 0..3)
        )
            .prop_map(|(i, s, m)| Op::Frame(i, s, m)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        let _ = frame::parse(&bytes);
    }

    #[test]
    fn announcer_never_panics_on_arbitrary_bytes(
        frames in proptest::collection::vec((0..4u32, proptest::collection::vec(any::<u8>(), 0..120)), 1..8)
    ) {
        let mut a = announcer();
        for (ifindex, bytes) in &frames {
            let out = a.handle_frame(*ifindex, bytes);
            check_outputs(&a, &out);
        }
        check_counters(&a);
    }

    #[test]
    fn announcer_never_panics_on_mutated_valid_frames(
        seed in 0..6usize,
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut bytes = seeds()[seed].clone();
        for (at, x) in flips {
            let at = at % bytes.len();
            bytes[at] ^= x;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut % (bytes.len() + 1));
        }
        let _ = frame::parse(&bytes);
        let mut a = announcer();
        let out = a.handle_frame(1, &bytes);
        check_outputs(&a, &out);
        check_counters(&a);
    }

    #[test]
    fn any_sequence_of_changes_keeps_state_consistent(ops in proptest::collection::vec(op(), 1..40)) {
        let mut a = announcer();
        let mut now = Instant::ZERO;
        // Membership as seen from the outputs: (ifindex, group) -> joined.
        let mut joined: BTreeMap<(u32, Ipv6Addr), bool> = BTreeMap::new();
        let mut track = |outputs: &[Output]| {
            for o in outputs {
                match o {
                    Output::JoinGroup { ifindex, group, mac } => {
                        assert_eq!(*mac, MacAddr::ipv6_multicast(*group));
                        assert!(!joined.get(&(*ifindex, *group)).copied().unwrap_or(false), "joined twice");
                        joined.insert((*ifindex, *group), true);
                    }
                    Output::LeaveGroup { ifindex, group, .. } => {
                        assert!(joined.remove(&(*ifindex, *group)).unwrap_or(false), "left without join");
                    }
                    _ => {}
                }
            }
        };
        track(&[
            Output::JoinGroup { ifindex: 1, group: solicited_node(V6), mac: ndp::solicited_node_mac(V6) },
        ]);
        for op in ops {
            let out = match op {
                Op::Add(i, p) => a.add_ip(i, pool(p), now).unwrap_or_default(),
                Op::Remove(i, p) => a.remove_ip(i, pool(p)).unwrap_or_default(),
                Op::Link(i, up) => { let _ = a.set_link(i, up, now); vec![] }
                Op::Mac(i, m) => { let _ = a.set_mac(i, MacAddr::new(0x02, 0, 0, 1, 0, m), now); vec![] }
                Op::Resend(p) => { a.resend(pool(p), now); vec![] }
                Op::Advance(ms) => { now = now + std::time::Duration::from_millis(u64::from(ms)); vec![] }
                Op::Poll => {
                    let out = a.poll(now);
                    // Nothing due is left behind.
                    prop_assert!(a.next_deadline().is_none_or(|due| due > now));
                    out
                }
                Op::RemoveInterface(i) => {
                    let out = a.remove_interface(i);
                    // Put it back, so later operations have something to act on.
                    let _ = a.set_interface(Interface {
                        index: i, name: format!("eth{i}"), mac: MacAddr::new(0x02, 0, 0, 2, 0, i as u8),
                        vlan: None, up: true,
                    }, now);
                    out
                }
                Op::Frame(i, s, flips) => {
                    let mut bytes = seeds()[s].clone();
                    for (at, x) in flips {
                        let at = at % bytes.len();
                        bytes[at] ^= x;
                    }
                    a.handle_frame(i, &bytes)
                }
            };
            check_outputs(&a, &out);
            track(&out);
        }
        // Every group joined is needed by an owned address, and vice versa.
        for ifindex in 1..4u32 {
            let mut needed: BTreeMap<Ipv6Addr, usize> = BTreeMap::new();
            for ip in a.owned_ips(ifindex) {
                if let IpAddr::V6(v6) = ip {
                    *needed.entry(solicited_node(v6)).or_default() += 1;
                }
            }
            let groups: BTreeMap<Ipv6Addr, usize> =
                a.groups(ifindex).into_iter().map(|g| (g.group, g.users)).collect();
            prop_assert_eq!(&groups, &needed);
            let from_outputs: Vec<Ipv6Addr> =
                joined.keys().filter(|(i, _)| *i == ifindex).map(|(_, g)| *g).collect();
            prop_assert_eq!(from_outputs, needed.keys().copied().collect::<Vec<_>>());
        }
        check_counters(&a);
        // Draining terminates.
        let mut polls = 0;
        while let Some(due) = a.next_deadline() {
            let out = a.poll(due);
            check_outputs(&a, &out);
            polls += 1;
            prop_assert!(polls < 1000);
        }
    }
}
