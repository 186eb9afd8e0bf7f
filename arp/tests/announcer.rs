//! Behaviour of the announcer, through its public API, with simulated time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use ferrolb_arp::frame::arp::{ArpPacket, OP_REPLY, OP_REQUEST, arp_frame, gratuitous_frames};
use ferrolb_arp::frame::ethernet::VlanTag;
use ferrolb_arp::frame::ndp::{
    self, NdpMessage, NdpOption, NeighborAdvertisement, NeighborSolicitation, ndp_frame,
    solicited_node, solicited_node_mac,
};
use ferrolb_arp::{
    Announcer, AnnouncerConfig, AnnouncerError, ConflictKind, Event, Instant, Interface,
    IpCounters, MacAddr, Output, SolicitedNodeGroup,
};

const ETH0: u32 = 2;
const ETH1: u32 = 3;
const MAC0: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x00, 0x02);
const MAC1: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x00, 0x03);
const PEER: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0xaa, 0x01);
const OTHER: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0xbb, 0x01);

const V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const V4_OTHER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PEER_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const PEER_V6: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0xaa01);

const T0: Instant = Instant::ZERO;

fn ms(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn iface(index: u32, name: &str, mac: MacAddr) -> Interface {
    Interface {
        index,
        name: name.to_owned(),
        mac,
        vlan: None,
        up: true,
    }
}

/// Two up interfaces; 192.0.2.10 and 2001:db8::10 owned on eth0; the
/// initial bursts already drained.
fn setup() -> Announcer {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.set_interface(iface(ETH1, "eth1", MAC1), T0).unwrap();
    a.add_ip(ETH0, V4.into(), T0).unwrap();
    a.add_ip(ETH0, V6.into(), T0).unwrap();
    drain(&mut a);
    a
}

fn drain(a: &mut Announcer) {
    while let Some(due) = a.next_deadline() {
        a.poll(due);
    }
}

fn arp_request(
    from_mac: MacAddr,
    from_ip: Ipv4Addr,
    target: Ipv4Addr,
    vlan: Option<VlanTag>,
) -> Vec<u8> {
    let packet = ArpPacket {
        op: OP_REQUEST,
        sender_mac: from_mac,
        sender_ip: from_ip,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    };
    arp_frame(MacAddr::BROADCAST, from_mac, vlan, &packet)
}

fn ns(
    from_mac: MacAddr,
    from_ip: Ipv6Addr,
    target: Ipv6Addr,
    slla: bool,
    vlan: Option<VlanTag>,
) -> Vec<u8> {
    let options = if slla {
        vec![NdpOption::SourceLinkLayer(from_mac)]
    } else {
        vec![]
    };
    let message = NdpMessage::Solicitation(NeighborSolicitation { target, options });
    ndp_frame(
        solicited_node_mac(target),
        from_mac,
        vlan,
        from_ip,
        solicited_node(target),
        &message,
    )
}

fn sends(outputs: &[Output]) -> Vec<(u32, Vec<u8>)> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { ifindex, frame } => Some((*ifindex, frame.clone())),
            _ => None,
        })
        .collect()
}

fn events(outputs: &[Output]) -> Vec<Event> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e.clone()),
            _ => None,
        })
        .collect()
}

fn ip_counters(a: &Announcer, ifindex: u32, ip: impl Into<IpAddr>) -> IpCounters {
    *a.counters()
        .ip(ifindex, ip.into())
        .expect("counters for owned IP")
}

// ----- ARP ---------------------------------------------------------------

#[test]
fn arp_request_for_owned_ip_is_answered_unicast() {
    let mut a = setup();
    let out = a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, None));
    let expected_reply = arp_frame(
        PEER,
        MAC0,
        None,
        &ArpPacket {
            op: OP_REPLY,
            sender_mac: MAC0,
            sender_ip: V4,
            target_mac: PEER,
            target_ip: PEER_V4,
        },
    );
    assert_eq!(
        out,
        vec![
            Output::Send {
                ifindex: ETH0,
                frame: expected_reply
            },
            Output::Event(Event::Answered {
                ip: V4.into(),
                asker_ip: PEER_V4.into(),
                asker_mac: PEER,
                ifindex: ETH0
            }),
        ]
    );
    let c = ip_counters(&a, ETH0, V4);
    assert_eq!((c.requests_seen, c.replies_sent, c.conflicts), (1, 1, 0));
    assert_eq!(a.counters().interface(ETH0).unwrap().handled, 1);
}

#[test]
fn arp_request_for_other_ip_is_not_answered() {
    let mut a = setup();
    assert!(
        a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4_OTHER, None))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().not_owned, 1);
}

#[test]
fn arp_request_on_other_interface_is_not_answered() {
    let mut a = setup();
    assert!(
        a.handle_frame(ETH1, &arp_request(PEER, PEER_V4, V4, None))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH1).unwrap().not_owned, 1);
    assert_eq!(ip_counters(&a, ETH0, V4).requests_seen, 0);
}

#[test]
fn own_frames_are_ignored() {
    let mut a = setup();
    // Our own source MAC, and another of our interfaces' MACs.
    assert!(
        a.handle_frame(ETH0, &arp_request(MAC0, PEER_V4, V4, None))
            .is_empty()
    );
    assert!(
        a.handle_frame(ETH0, &arp_request(MAC1, PEER_V4, V4, None))
            .is_empty()
    );
    // Our own gratuitous ARP looped back.
    for frame in gratuitous_frames(MAC0, V4, None) {
        assert!(a.handle_frame(ETH0, &frame).is_empty());
    }
    // ARP sender MAC ours behind a foreign Ethernet source.
    let packet = ArpPacket {
        op: OP_REQUEST,
        sender_mac: MAC1,
        sender_ip: PEER_V4,
        target_mac: MacAddr::ZERO,
        target_ip: V4,
    };
    assert!(
        a.handle_frame(ETH0, &arp_frame(MacAddr::BROADCAST, PEER, None, &packet))
            .is_empty()
    );
    // Our own NS (SLLA ours) and NA.
    assert!(
        a.handle_frame(ETH0, &ns(MAC1, PEER_V6, V6, true, None))
            .is_empty()
    );
    assert!(
        a.handle_frame(ETH0, &ndp::unsolicited_advertisement_frame(V6, MAC0, None))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().own_frames, 7);
    assert_eq!(
        ip_counters(&a, ETH0, V4),
        IpCounters {
            gratuitous_sent: 8,
            ..Default::default()
        }
    );
}

#[test]
fn arp_probe_is_answered_and_reported() {
    let mut a = setup();
    let out = a.handle_frame(ETH0, &arp_request(PEER, Ipv4Addr::UNSPECIFIED, V4, None));
    let expected_reply = arp_frame(
        PEER,
        MAC0,
        None,
        &ArpPacket {
            op: OP_REPLY,
            sender_mac: MAC0,
            sender_ip: V4,
            target_mac: PEER,
            target_ip: Ipv4Addr::UNSPECIFIED,
        },
    );
    assert_eq!(sends(&out), vec![(ETH0, expected_reply)]);
    assert_eq!(
        events(&out),
        vec![
            Event::Answered {
                ip: V4.into(),
                asker_ip: Ipv4Addr::UNSPECIFIED.into(),
                asker_mac: PEER,
                ifindex: ETH0
            },
            Event::ConflictDetected {
                ip: V4.into(),
                ifindex: ETH0,
                other_mac: PEER,
                kind: ConflictKind::ArpProbe
            },
        ]
    );
    assert_eq!(ip_counters(&a, ETH0, V4).conflicts, 1);
}

#[test]
fn foreign_gratuitous_arp_is_reported_not_answered() {
    let mut a = setup();
    for frame in gratuitous_frames(OTHER, V4, None) {
        let out = a.handle_frame(ETH0, &frame);
        assert_eq!(
            out,
            vec![Output::Event(Event::ConflictDetected {
                ip: V4.into(),
                ifindex: ETH0,
                other_mac: OTHER,
                kind: ConflictKind::ArpSender
            })]
        );
    }
    let c = ip_counters(&a, ETH0, V4);
    assert_eq!((c.conflicts, c.replies_sent, c.requests_seen), (2, 0, 0));
}

#[test]
fn request_from_a_host_using_an_owned_ip_is_answered_and_reported() {
    let mut a = setup();
    a.add_ip(ETH0, V4_OTHER.into(), T0).unwrap();
    let out = a.handle_frame(ETH0, &arp_request(OTHER, V4_OTHER, V4, None));
    assert_eq!(sends(&out).len(), 1);
    assert!(events(&out).contains(&Event::ConflictDetected {
        ip: V4_OTHER.into(),
        ifindex: ETH0,
        other_mac: OTHER,
        kind: ConflictKind::ArpSender
    }));
}

#[test]
fn unicast_to_another_host_is_ignored() {
    let mut a = setup();
    let packet = ArpPacket {
        op: OP_REQUEST,
        sender_mac: PEER,
        sender_ip: PEER_V4,
        target_mac: MacAddr::ZERO,
        target_ip: V4,
    };
    assert!(
        a.handle_frame(ETH0, &arp_frame(OTHER, PEER, None, &packet))
            .is_empty()
    );
    // Unicast to our MAC is fine (cache refresh).
    assert_eq!(
        sends(&a.handle_frame(ETH0, &arp_frame(MAC0, PEER, None, &packet))).len(),
        1
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().not_for_us, 1);
}

#[test]
fn arp_reply_from_others_for_unowned_ip_is_ignored() {
    let mut a = setup();
    let packet = ArpPacket {
        op: OP_REPLY,
        sender_mac: PEER,
        sender_ip: PEER_V4,
        target_mac: MAC0,
        target_ip: V4,
    };
    assert!(
        a.handle_frame(ETH0, &arp_frame(MAC0, PEER, None, &packet))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().ignored, 1);
}

// ----- VLAN --------------------------------------------------------------

#[test]
fn tagged_request_is_answered_with_the_same_tag() {
    let mut a = setup();
    let tag = VlanTag {
        pcp: 3,
        dei: false,
        vid: 42,
    };
    let out = a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, Some(tag)));
    let reply = ArpPacket {
        op: OP_REPLY,
        sender_mac: MAC0,
        sender_ip: V4,
        target_mac: PEER,
        target_ip: PEER_V4,
    };
    assert_eq!(
        sends(&out),
        vec![(ETH0, arp_frame(PEER, MAC0, Some(tag), &reply))]
    );
    let frame = &sends(&out)[0].1;
    assert_eq!(&frame[12..16], &[0x81, 0x00, 0x60, 0x2a]);

    let out = a.handle_frame(ETH0, &ns(PEER, PEER_V6, V6, true, Some(tag)));
    let expected = ndp::solicited_advertisement_frame(V6, MAC0, PEER_V6, PEER, Some(tag));
    assert_eq!(sends(&out), vec![(ETH0, expected)]);
}

#[test]
fn vlan_interface_accepts_only_its_tag_and_tags_announcements() {
    let mut a = Announcer::default();
    let mut vlan_if = iface(10, "eth0.100", MAC0);
    vlan_if.vlan = Some(100);
    a.set_interface(vlan_if, T0).unwrap();
    a.add_ip(10, V4.into(), T0).unwrap();
    let out = a.poll(T0);
    let expected = gratuitous_frames(MAC0, V4, Some(VlanTag::new(100)));
    assert_eq!(
        sends(&out),
        vec![(10, expected[0].clone()), (10, expected[1].clone())]
    );

    assert!(
        a.handle_frame(10, &arp_request(PEER, PEER_V4, V4, None))
            .is_empty()
    );
    assert!(
        a.handle_frame(10, &arp_request(PEER, PEER_V4, V4, Some(VlanTag::new(101))))
            .is_empty()
    );
    assert_eq!(a.counters().interface(10).unwrap().wrong_vlan, 2);
    let out = a.handle_frame(10, &arp_request(PEER, PEER_V4, V4, Some(VlanTag::new(100))));
    assert_eq!(sends(&out).len(), 1);
    assert_eq!(&sends(&out)[0].1[12..16], &[0x81, 0x00, 0x00, 0x64]);
}

// ----- NDP ---------------------------------------------------------------

#[test]
fn neighbor_solicitation_is_answered_with_solicited_advertisement() {
    let mut a = setup();
    let out = a.handle_frame(ETH0, &ns(PEER, PEER_V6, V6, true, None));
    let expected = ndp_frame(
        PEER,
        MAC0,
        None,
        V6,
        PEER_V6,
        &NdpMessage::Advertisement(NeighborAdvertisement {
            router: false,
            solicited: true,
            override_flag: true,
            target: V6,
            options: vec![NdpOption::TargetLinkLayer(MAC0)],
        }),
    );
    assert_eq!(
        out,
        vec![
            Output::Send {
                ifindex: ETH0,
                frame: expected.clone()
            },
            Output::Event(Event::Answered {
                ip: V6.into(),
                asker_ip: PEER_V6.into(),
                asker_mac: PEER,
                ifindex: ETH0
            }),
        ]
    );
    // Hop limit 255, and the answer verifies as a valid NA.
    assert_eq!(expected[14 + 7], 255);
    let parsed = ferrolb_arp::frame::parse(&expected).unwrap();
    assert!(matches!(
        parsed.packet,
        ferrolb_arp::frame::Packet::Ndp { .. }
    ));
    let c = ip_counters(&a, ETH0, V6);
    assert_eq!((c.requests_seen, c.replies_sent), (1, 1));
}

#[test]
fn solicitation_without_source_option_is_answered_to_frame_source() {
    let mut a = setup();
    // NUD-style: unicast to our MAC and to the target address.
    let message = NdpMessage::Solicitation(NeighborSolicitation {
        target: V6,
        options: vec![],
    });
    let frame = ndp_frame(MAC0, PEER, None, PEER_V6, V6, &message);
    let out = a.handle_frame(ETH0, &frame);
    assert_eq!(
        sends(&out),
        vec![(
            ETH0,
            ndp::solicited_advertisement_frame(V6, MAC0, PEER_V6, PEER, None)
        )]
    );
}

#[test]
fn solicitation_for_other_target_or_interface_is_not_answered() {
    let mut a = setup();
    let other: Ipv6Addr = "2001:db8::11".parse().unwrap();
    assert!(
        a.handle_frame(ETH0, &ns(PEER, PEER_V6, other, true, None))
            .is_empty()
    );
    assert!(
        a.handle_frame(ETH1, &ns(PEER, PEER_V6, V6, true, None))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().not_owned, 1);
    assert_eq!(a.counters().interface(ETH1).unwrap().not_owned, 1);
}

#[test]
fn dad_probe_is_reported_not_answered() {
    let mut a = setup();
    let out = a.handle_frame(ETH0, &ns(OTHER, Ipv6Addr::UNSPECIFIED, V6, false, None));
    assert_eq!(
        out,
        vec![Output::Event(Event::ConflictDetected {
            ip: V6.into(),
            ifindex: ETH0,
            other_mac: OTHER,
            kind: ConflictKind::DadProbe
        })]
    );
    let c = ip_counters(&a, ETH0, V6);
    assert_eq!((c.requests_seen, c.replies_sent, c.conflicts), (0, 0, 1));
}

#[test]
fn bad_hop_limit_and_bad_checksum_are_dropped_and_counted() {
    let mut a = setup();
    let good = ns(PEER, PEER_V6, V6, true, None);
    let mut hop = good.clone();
    hop[14 + 7] = 254;
    assert!(a.handle_frame(ETH0, &hop).is_empty());
    let mut sum = good.clone();
    sum[14 + 40 + 2] ^= 0x80;
    assert!(a.handle_frame(ETH0, &sum).is_empty());
    let c = *a.counters().interface(ETH0).unwrap();
    assert_eq!((c.malformed, c.bad_hop_limit, c.bad_checksum), (2, 1, 1));
    assert_eq!(ip_counters(&a, ETH0, V6).requests_seen, 0);
}

#[test]
fn advertisement_from_another_host_is_a_conflict() {
    let mut a = setup();
    let out = a.handle_frame(ETH0, &ndp::unsolicited_advertisement_frame(V6, OTHER, None));
    assert_eq!(
        out,
        vec![Output::Event(Event::ConflictDetected {
            ip: V6.into(),
            ifindex: ETH0,
            other_mac: OTHER,
            kind: ConflictKind::NeighborAdvertisement
        })]
    );
    let other: Ipv6Addr = "2001:db8::99".parse().unwrap();
    assert!(
        a.handle_frame(
            ETH0,
            &ndp::unsolicited_advertisement_frame(other, OTHER, None)
        )
        .is_empty()
    );
}

#[test]
fn malformed_frames_are_counted() {
    let mut a = setup();
    let request = arp_request(PEER, PEER_V4, V4, None);
    for bad in [&[][..], &request[..13], &request[..14 + 27]] {
        assert!(a.handle_frame(ETH0, bad).is_empty());
    }
    let mut htype = request.clone();
    htype[15] = 6;
    assert!(a.handle_frame(ETH0, &htype).is_empty());
    let mut multicast_sender = request.clone();
    multicast_sender[14 + 8] = 0x01;
    assert!(a.handle_frame(ETH0, &multicast_sender).is_empty());
    assert_eq!(a.counters().interface(ETH0).unwrap().malformed, 5);
    assert!(a.handle_frame(99, &request).is_empty());
    assert_eq!(a.counters().unknown_interface, 1);
}

// ----- gratuitous schedule -------------------------------------------------

#[test]
fn ipv4_gratuitous_burst_follows_the_schedule() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    let start = ms(10_000);
    assert_eq!(a.add_ip(ETH0, V4.into(), start).unwrap(), vec![]);
    let [request, reply] = gratuitous_frames(MAC0, V4, None);
    let round = vec![
        Output::Send {
            ifindex: ETH0,
            frame: request,
        },
        Output::Send {
            ifindex: ETH0,
            frame: reply,
        },
        Output::Event(Event::Gratuitous {
            ip: V4.into(),
            ifindex: ETH0,
        }),
    ];
    let mut sent_at = Vec::new();
    while let Some(due) = a.next_deadline() {
        assert!(a.poll(due - Duration::from_millis(1)).is_empty());
        assert_eq!(a.poll(due), round);
        sent_at.push(due - start);
    }
    assert_eq!(
        sent_at,
        [0, 500, 1000, 2000].map(Duration::from_millis).to_vec()
    );
    assert_eq!(ip_counters(&a, ETH0, V4).gratuitous_sent, 8);
    assert!(a.poll(ms(60_000)).is_empty());
}

#[test]
fn ipv6_unsolicited_advertisements_follow_the_schedule() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.add_ip(ETH0, V6.into(), T0).unwrap();
    let mut sent_at = Vec::new();
    while let Some(due) = a.next_deadline() {
        let out = a.poll(due);
        assert_eq!(
            sends(&out),
            vec![(ETH0, ndp::unsolicited_advertisement_frame(V6, MAC0, None))]
        );
        sent_at.push(due.since_start());
    }
    assert_eq!(sent_at, [0, 1000, 2000].map(Duration::from_millis).to_vec());
    assert_eq!(ip_counters(&a, ETH0, V6).gratuitous_sent, 3);
}

#[test]
fn late_poll_sends_one_round_and_skips_missed_ones() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.add_ip(ETH0, V4.into(), T0).unwrap();
    // Wake up only at 1.2 s: rounds at 0, 0.5 and 1 s collapse into one.
    let out = a.poll(ms(1200));
    assert_eq!(sends(&out).len(), 2);
    assert_eq!(a.next_deadline(), Some(ms(2000)));
    assert_eq!(sends(&a.poll(ms(2000))).len(), 2);
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn resend_restarts_the_burst() {
    let mut a = setup();
    assert_eq!(a.next_deadline(), None);
    let at = ms(30_000);
    assert_eq!(a.resend(V4.into(), at), 1);
    assert_eq!(a.next_deadline(), Some(at));
    assert_eq!(sends(&a.poll(at)).len(), 2);
    // Resend in the middle of a burst starts it over.
    assert_eq!(a.next_deadline(), Some(ms(30_500)));
    assert_eq!(a.resend(V4.into(), ms(30_200)), 1);
    assert_eq!(a.next_deadline(), Some(ms(30_200)));
    let mut rounds = 0;
    while let Some(due) = a.next_deadline() {
        a.poll(due);
        rounds += 1;
    }
    assert_eq!(rounds, 4);
    assert_eq!(a.resend("192.0.2.99".parse().unwrap(), at), 0);
}

#[test]
fn resend_covers_every_interface_owning_the_ip() {
    let mut a = setup();
    a.add_ip(ETH1, V4.into(), T0).unwrap();
    drain(&mut a);
    assert_eq!(a.resend(V4.into(), ms(5000)), 2);
    let out = a.poll(ms(5000));
    let on: Vec<u32> = sends(&out).into_iter().map(|(i, _)| i).collect();
    assert_eq!(on, vec![ETH0, ETH0, ETH1, ETH1]);
}

#[test]
fn removing_an_ip_stops_answers_and_announcements() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.add_ip(ETH0, V4.into(), T0).unwrap();
    a.poll(T0);
    assert!(a.next_deadline().is_some());
    assert_eq!(a.remove_ip(ETH0, V4.into()).unwrap(), vec![]);
    assert_eq!(a.next_deadline(), None);
    assert!(
        a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, None))
            .is_empty()
    );
    assert!(a.counters().ip(ETH0, V4.into()).is_none());
    // Releasing twice is harmless; adding again announces again.
    assert_eq!(a.remove_ip(ETH0, V4.into()).unwrap(), vec![]);
    a.add_ip(ETH0, V4.into(), ms(100)).unwrap();
    assert_eq!(a.next_deadline(), Some(ms(100)));
}

#[test]
fn adding_an_owned_ip_again_changes_nothing() {
    let mut a = setup();
    assert_eq!(a.add_ip(ETH0, V6.into(), ms(9000)).unwrap(), vec![]);
    assert_eq!(a.next_deadline(), None);
}

#[test]
fn link_down_silences_and_link_up_announces_again() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.add_ip(ETH0, V4.into(), T0).unwrap();
    a.poll(T0);
    a.set_link(ETH0, false, ms(100)).unwrap();
    assert_eq!(a.next_deadline(), None);
    assert!(
        a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, None))
            .is_empty()
    );
    assert_eq!(a.counters().interface(ETH0).unwrap().link_down, 1);
    // Ownership is kept while down; an address added while down waits.
    assert!(a.owns(ETH0, V4.into()));
    a.add_ip(ETH0, V4_OTHER.into(), ms(200)).unwrap();
    assert_eq!(a.next_deadline(), None);
    a.set_link(ETH0, true, ms(5000)).unwrap();
    assert_eq!(a.next_deadline(), Some(ms(5000)));
    assert_eq!(sends(&a.poll(ms(5000))).len(), 4);
    assert_eq!(
        sends(&a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, None))).len(),
        1
    );
}

#[test]
fn mac_change_announces_the_new_mac() {
    let mut a = setup();
    let new_mac = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x00, 0x42);
    a.set_mac(ETH0, new_mac, ms(7000)).unwrap();
    let out = a.poll(ms(7000));
    let [request, reply] = gratuitous_frames(new_mac, V4, None);
    let frames: Vec<Vec<u8>> = sends(&out).into_iter().map(|(_, f)| f).collect();
    assert!(frames.contains(&request) && frames.contains(&reply));
    assert!(frames.contains(&ndp::unsolicited_advertisement_frame(V6, new_mac, None)));
    // The old MAC is no longer ours: frames from it are answered.
    assert_eq!(
        sends(&a.handle_frame(ETH0, &arp_request(MAC0, PEER_V4, V4, None))).len(),
        1
    );
    // Replies now come from the new MAC.
    let out = a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, V4, None));
    assert_eq!(&sends(&out)[0].1[6..12], &new_mac.octets());
}

#[test]
fn empty_schedule_sends_no_announcements() {
    let mut a = Announcer::new(AnnouncerConfig {
        arp_schedule: vec![],
        ndp_schedule: vec![Duration::from_secs(3), Duration::ZERO],
    });
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.add_ip(ETH0, V4.into(), T0).unwrap();
    assert_eq!(a.next_deadline(), None);
    a.add_ip(ETH0, V6.into(), T0).unwrap();
    // Schedules are sorted.
    assert_eq!(a.next_deadline(), Some(T0));
    a.poll(T0);
    assert_eq!(a.next_deadline(), Some(ms(3000)));
}

// ----- multicast groups ----------------------------------------------------

#[test]
fn solicited_node_groups_are_reference_counted() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.set_interface(iface(ETH1, "eth1", MAC1), T0).unwrap();
    // 2001:db8::10 and 2001:db8:1::10 share ff02::1:ff00:10.
    let shared: Ipv6Addr = "2001:db8:1::10".parse().unwrap();
    let group: Ipv6Addr = "ff02::1:ff00:10".parse().unwrap();
    let group_mac = MacAddr::new(0x33, 0x33, 0xff, 0x00, 0x00, 0x10);
    let join = |ifindex| Output::JoinGroup {
        ifindex,
        group,
        mac: group_mac,
    };
    let leave = |ifindex| Output::LeaveGroup {
        ifindex,
        group,
        mac: group_mac,
    };
    assert_eq!(a.add_ip(ETH0, V6.into(), T0).unwrap(), vec![join(ETH0)]);
    assert_eq!(a.add_ip(ETH0, shared.into(), T0).unwrap(), vec![]);
    assert_eq!(
        a.groups(ETH0),
        vec![SolicitedNodeGroup {
            group,
            mac: group_mac,
            users: 2
        }]
    );
    // Per interface: eth1 needs its own membership.
    assert_eq!(a.add_ip(ETH1, V6.into(), T0).unwrap(), vec![join(ETH1)]);
    // IPv4 needs none.
    assert_eq!(a.add_ip(ETH0, V4.into(), T0).unwrap(), vec![]);
    assert_eq!(a.remove_ip(ETH0, V6.into()).unwrap(), vec![]);
    assert_eq!(a.groups(ETH0)[0].users, 1);
    assert_eq!(a.remove_ip(ETH0, shared.into()).unwrap(), vec![leave(ETH0)]);
    assert!(a.groups(ETH0).is_empty());
    // Removing the interface leaves its groups.
    let other: Ipv6Addr = "2001:db8::20".parse().unwrap();
    a.add_ip(ETH1, other.into(), T0).unwrap();
    assert_eq!(
        a.remove_interface(ETH1),
        vec![
            leave(ETH1),
            Output::LeaveGroup {
                ifindex: ETH1,
                group: solicited_node(other),
                mac: MacAddr::new(0x33, 0x33, 0xff, 0x00, 0x00, 0x20)
            },
        ]
    );
    assert_eq!(a.remove_interface(ETH1), vec![]);
    assert!(a.counters().interface(ETH1).is_none());
}

// ----- scale -------------------------------------------------------------

#[test]
fn ten_thousand_owned_ips() {
    let mut a = Announcer::default();
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    a.set_interface(iface(ETH1, "eth1", MAC1), T0).unwrap();
    let v6: Vec<Ipv6Addr> = (0..10_000u32)
        .map(|i| Ipv6Addr::new(0x2001, 0xdb8, 0x10, 0, 0, 0, (i >> 16) as u16, i as u16))
        .collect();
    let v4: Vec<Ipv4Addr> = [[192, 0, 2], [198, 51, 100], [203, 0, 113]]
        .iter()
        // .1 of each is left to the asker (PEER_V4).
        .flat_map(|p| (2..=254u8).map(move |h| Ipv4Addr::new(p[0], p[1], p[2], h)))
        .collect();
    let mut joins = 0;
    for ip in &v6 {
        joins += a.add_ip(ETH0, (*ip).into(), T0).unwrap().len();
    }
    for ip in &v4 {
        a.add_ip(ETH0, (*ip).into(), T0).unwrap();
    }
    assert_eq!(joins, 10_000);
    assert_eq!(a.owned_ips(ETH0).len(), 10_000 + 759);
    assert_eq!(sends(&a.poll(T0)).len(), 10_000 + 2 * 759);

    for ip in &v6 {
        let out = a.handle_frame(ETH0, &ns(PEER, PEER_V6, *ip, true, None));
        assert_eq!(sends(&out).len(), 1, "{ip}");
    }
    for ip in &v4 {
        let out = a.handle_frame(ETH0, &arp_request(PEER, PEER_V4, *ip, None));
        assert_eq!(sends(&out).len(), 1, "{ip}");
        assert!(
            a.handle_frame(ETH1, &arp_request(PEER, PEER_V4, *ip, None))
                .is_empty()
        );
    }
    let not_owned = Ipv6Addr::new(0x2001, 0xdb8, 0x11, 0, 0, 0, 0, 1);
    assert!(
        a.handle_frame(ETH0, &ns(PEER, PEER_V6, not_owned, true, None))
            .is_empty()
    );
    let snapshot = a.counters();
    let eth0 = snapshot.interface(ETH0).unwrap();
    assert_eq!((eth0.handled, eth0.not_owned), (10_000 + 759, 1));
    assert!(
        snapshot.interfaces[&ETH0]
            .ips
            .values()
            .all(|c| c.replies_sent == 1)
    );
}

// ----- errors and counters -------------------------------------------------

#[test]
fn refused_changes() {
    let mut a = Announcer::default();
    assert_eq!(
        a.add_ip(ETH0, V4.into(), T0),
        Err(AnnouncerError::UnknownInterface(ETH0))
    );
    assert_eq!(
        a.set_interface(iface(ETH0, "eth0", MacAddr::BROADCAST), T0),
        Err(AnnouncerError::InvalidMac(MacAddr::BROADCAST))
    );
    let mut bad_vlan = iface(ETH0, "eth0", MAC0);
    bad_vlan.vlan = Some(4095);
    assert_eq!(
        a.set_interface(bad_vlan, T0),
        Err(AnnouncerError::InvalidVlanId(4095))
    );
    a.set_interface(iface(ETH0, "eth0", MAC0), T0).unwrap();
    for ip in [
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "127.0.0.1",
        "::",
        "::1",
        "ff02::1",
    ] {
        let ip: IpAddr = ip.parse().unwrap();
        assert_eq!(
            a.add_ip(ETH0, ip, T0),
            Err(AnnouncerError::NotAnnounceable(ip))
        );
    }
    assert_eq!(
        a.set_link(9, true, T0),
        Err(AnnouncerError::UnknownInterface(9))
    );
    assert_eq!(
        a.remove_ip(9, V4.into()),
        Err(AnnouncerError::UnknownInterface(9))
    );
    // Link-local IPv6 can be owned.
    assert!(a.add_ip(ETH0, PEER_V6.into(), T0).is_ok());
}

#[test]
fn every_frame_lands_in_exactly_one_outcome_counter() {
    let mut a = setup();
    let frames = [
        arp_request(PEER, PEER_V4, V4, None),
        arp_request(PEER, PEER_V4, V4_OTHER, None),
        arp_request(MAC0, PEER_V4, V4, None),
        ns(PEER, PEER_V6, V6, true, None),
        ns(OTHER, Ipv6Addr::UNSPECIFIED, V6, false, None),
        vec![0; 10],
        gratuitous_frames(OTHER, V4, None)[0].clone(),
    ];
    for frame in &frames {
        a.handle_frame(ETH0, frame);
    }
    let c = *a.counters().interface(ETH0).unwrap();
    assert_eq!(c.frames_seen, frames.len() as u64);
    let outcomes = c.malformed
        + c.link_down
        + c.wrong_vlan
        + c.own_frames
        + c.not_for_us
        + c.not_owned
        + c.handled
        + c.ignored;
    assert_eq!(outcomes, c.frames_seen);
    assert_eq!(a.counters().interfaces[&ETH0].name, "eth0");
}
