//! Entry points for fuzzing the frame parsers and the announcer with
//! arbitrary bytes: frames from the LAN, with any VLAN tag and any NDP
//! option list.
//!
//! Each function takes any input, runs it through the parsers or the
//! [`Announcer`], and checks properties that must hold for every input. It
//! panics only when one is broken, which is a bug in this crate: a parser
//! panicking, a frame that parses but does not build again into the same
//! thing, an answer that does not parse, is sent for an address not owned
//! there or out of the wrong VLAN, or counters that do not add up.
//!
//! Random bytes almost never carry a correct ICMPv6 checksum, so both
//! targets also run Neighbor Discovery frames with their checksum
//! recomputed: the option parser and the announcer's NDP paths are reached,
//! not just the checksum check.
//!
//! The cargo-fuzz targets in `fuzz/` call these functions, and
//! `arp/tests/fuzz_corpus.rs` replays the committed corpus through them on
//! every test run. See `docs/FUZZING.md`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::announcer::{Announcer, Interface};
use crate::frame::arp::ArpPacket;
use crate::frame::ethernet::{ETHERTYPE_IPV6, EthernetHeader, VlanTag};
use crate::frame::ipv6::{self, Ipv6Header, NEXT_HEADER_ICMPV6, icmpv6_checksum};
use crate::frame::ndp::{
    MESSAGE_BASE_LEN, NdpMessage, TYPE_NEIGHBOR_ADVERTISEMENT, TYPE_NEIGHBOR_SOLICITATION,
};
use crate::frame::{self, Frame, Packet, ParseError};
use crate::mac::MacAddr;
use crate::output::{Event, Output};
use crate::time::Instant;

/// Target `l2_frame`: `data` is one Ethernet frame as a raw socket reads
/// it. It is parsed as it is and, when it is an ICMPv6 Neighbor
/// Solicitation or Advertisement, again with a correct checksum.
pub fn l2_frame(data: &[u8]) {
    let _ = check_frame(data);
    if let Some(fixed) = with_icmpv6_checksum(data) {
        let parsed = check_frame(&fixed);
        assert!(
            !matches!(parsed, Err(ParseError::BadChecksum)),
            "a recomputed checksum is refused"
        );
    }
}

/// Parses `data` and checks what a parsed frame must satisfy.
fn check_frame(data: &[u8]) -> Result<Frame, ParseError> {
    let parsed = frame::parse(data);
    let frame = match parsed {
        Ok(frame) => frame,
        Err(err) => {
            let _ = err.to_string();
            return Err(err);
        }
    };
    let eth = frame.ethernet;
    // The header writes back to the octets it came from (the tag too).
    let mut header = Vec::new();
    eth.write(&mut header);
    assert_eq!(header.len(), eth.wire_len());
    assert_eq!(&data[..header.len()], &header[..], "{eth:?}");
    if let Some(tag) = eth.vlan {
        assert!(tag.vid <= crate::frame::ethernet::MAX_VLAN_ID);
    }
    match &frame.packet {
        Packet::Arp(arp) => {
            assert!(arp.sender_mac.is_unicast());
            let bytes = arp.to_bytes();
            assert_eq!(ArpPacket::parse(&bytes).as_ref(), Ok(arp));
            assert_eq!(&data[header.len()..header.len() + bytes.len()], &bytes[..]);
            // A reply built for it is a reply that parses, to the asker.
            let ours = MacAddr::new(0x02, 0, 0, 0, 0, 0x01);
            let reply = frame::arp::reply_frame(arp, ours, eth.vlan);
            let parsed = frame::parse(&reply).expect("a built reply parses");
            assert_eq!(parsed.ethernet.dst, arp.sender_mac);
            assert_eq!(parsed.ethernet.vlan, eth.vlan);
            match parsed.packet {
                Packet::Arp(r) => {
                    assert_eq!(r.target_ip, arp.sender_ip);
                    assert_eq!(r.sender_ip, arp.target_ip);
                }
                other => panic!("an ARP reply parsed as {other:?}"),
            }
        }
        Packet::Ndp { ip, message } => {
            assert_eq!(ip.hop_limit, crate::frame::ndp::NDP_HOP_LIMIT);
            assert!(!ip.src.is_multicast());
            assert!(!message.target().is_multicast());
            // The message builds again (options padded as they came) and
            // parses to itself; in a frame of our own too.
            let bytes = message.to_bytes(ip.src, ip.dst);
            assert_eq!(bytes.len(), usize::from(ip.payload_len));
            assert_eq!(NdpMessage::parse(ip, &bytes), Ok(Some(message.clone())));
            let rebuilt =
                frame::ndp::ndp_frame(eth.dst, eth.src, eth.vlan, ip.src, ip.dst, message);
            let again = frame::parse(&rebuilt).expect("a rebuilt NDP frame parses");
            assert_eq!(again.ethernet, eth);
            match again.packet {
                Packet::Ndp { message: m, .. } => assert_eq!(&m, message),
                other => panic!("a rebuilt NDP frame parsed as {other:?}"),
            }
        }
        Packet::Other => {}
    }
    Ok(frame)
}

/// `data` with the ICMPv6 checksum recomputed, when it is an IPv6 frame
/// carrying an NS or NA long enough to have one; None otherwise.
fn with_icmpv6_checksum(data: &[u8]) -> Option<Vec<u8>> {
    let (eth, payload) = EthernetHeader::parse(data).ok()?;
    if eth.ethertype != ETHERTYPE_IPV6 {
        return None;
    }
    let (ip, icmp) = Ipv6Header::parse(payload).ok()?;
    if ip.next_header != NEXT_HEADER_ICMPV6
        || icmp.len() < MESSAGE_BASE_LEN
        || !matches!(
            icmp[0],
            TYPE_NEIGHBOR_SOLICITATION | TYPE_NEIGHBOR_ADVERTISEMENT
        )
    {
        return None;
    }
    let at = eth.wire_len() + ipv6::HEADER_LEN;
    let mut fixed = data.to_vec();
    let message = &mut fixed[at..at + icmp.len()];
    message[2..4].fill(0);
    let sum = icmpv6_checksum(ip.src, ip.dst, message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());
    Some(fixed)
}

/// The MACs of the announcer's interfaces in [`announcer`].
pub const FUZZ_MACS: [MacAddr; 3] = [
    MacAddr::new(0x02, 0, 0, 0, 0, 0x01),
    MacAddr::new(0x02, 0, 0, 0, 0, 0x02),
    MacAddr::new(0x02, 0, 0, 0, 0, 0x03),
];
/// VLAN of interface 2 in [`announcer`].
pub const FUZZ_VLAN: u16 = 5;
/// Addresses owned on interfaces 1 and 2 (and 3, which is down) in
/// [`announcer`].
pub const FUZZ_IPS: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7)),
    IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8)),
    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 8)),
];

/// The announcer [`announcer`] feeds: interface 1 untagged, interface 2 on
/// VLAN [`FUZZ_VLAN`], interface 3 down; each owns all of [`FUZZ_IPS`].
/// Built once and cloned for each input.
fn fuzz_announcer() -> Announcer {
    static TEMPLATE: std::sync::OnceLock<Announcer> = std::sync::OnceLock::new();
    TEMPLATE.get_or_init(build_announcer).clone()
}

fn build_announcer() -> Announcer {
    let mut a = Announcer::default();
    for (index, mac) in (1..).zip(FUZZ_MACS) {
        let iface = Interface {
            index,
            name: format!("eth{index}"),
            mac,
            vlan: (index == 2).then_some(FUZZ_VLAN),
            up: index != 3,
        };
        a.set_interface(iface, Instant::ZERO)
            .expect("valid interface");
        for ip in FUZZ_IPS {
            a.add_ip(index, ip, Instant::ZERO).expect("announceable");
        }
    }
    a
}

/// Target `announcer`: a sequence of frames received by one [`Announcer`]
/// (see [`fuzz_announcer`] for its interfaces and addresses). Each record
/// is a control octet, a length octet and the frame:
///
/// - control bits 0–1: the interface it arrives on (0 is unknown);
/// - bit 2: recompute the ICMPv6 checksum of an NS or NA;
/// - bit 3: before the frame, advance the clock by bits 4–7 × 250 ms and
///   poll (gratuitous rounds);
/// - length 255: the frame is the rest of the input (longer frames).
pub fn announcer(data: &[u8]) {
    let mut a = fuzz_announcer();
    let mut now = Instant::ZERO;
    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let len = if *len == u8::MAX {
            tail.len()
        } else {
            usize::from(*len).min(tail.len())
        };
        let (bytes, next) = tail.split_at(len);
        rest = next;
        if ctl & 0b1000 != 0 {
            now = now + Duration::from_millis(250 * u64::from(ctl >> 4));
            let out = a.poll(now);
            check_outputs(&a, &out, None);
            assert!(a.next_deadline().is_none_or(|due| due > now));
        }
        let ifindex = u32::from(ctl & 0b11);
        let fixed = if ctl & 0b100 != 0 {
            with_icmpv6_checksum(bytes)
        } else {
            None
        };
        let bytes = fixed.as_deref().unwrap_or(bytes);
        let out = a.handle_frame(ifindex, bytes);
        check_outputs(&a, &out, Some((ifindex, bytes)));
    }
    check_counters(&a);
}

/// What one call returned: every frame sent parses and goes out tagged as
/// its interface requires; every answer is for an address owned on the
/// interface it goes out of, which is the one the frame came in on.
fn check_outputs(a: &Announcer, outputs: &[Output], received: Option<(u32, &[u8])>) {
    let request = received.and_then(|(ifindex, bytes)| Some((ifindex, frame::parse(bytes).ok()?)));
    for output in outputs {
        match output {
            Output::Send {
                ifindex,
                frame: sent,
            } => {
                let iface = a.interface(*ifindex).expect("sent on a known interface");
                assert!(iface.up, "sent on a down interface");
                let parsed = frame::parse(sent).expect("emitted frames parse");
                assert_eq!(parsed.ethernet.src, iface.mac);
                assert!(!matches!(parsed.packet, Packet::Other));
                match iface.vlan {
                    Some(vid) => assert_eq!(parsed.ethernet.vlan.map(|t| t.vid), Some(vid)),
                    None => {
                        // Answers carry the request's tag; announcements none.
                        if let Some((_, req)) = &request {
                            assert_eq!(parsed.ethernet.vlan, req.ethernet.vlan);
                        } else {
                            assert_eq!(parsed.ethernet.vlan, None::<VlanTag>);
                        }
                    }
                }
                if let Some((from, req)) = &request {
                    assert_eq!(ifindex, from, "answered out of another interface");
                    assert!(parsed.ethernet.dst.is_unicast(), "answers are unicast");
                    assert!(
                        req.ethernet.dst.is_multicast() || req.ethernet.dst == iface.mac,
                        "answered a frame for another MAC"
                    );
                }
            }
            Output::Event(Event::Answered { ip, ifindex, .. }) => {
                assert!(a.owns(*ifindex, *ip));
            }
            Output::Event(Event::ConflictDetected {
                ip,
                ifindex,
                other_mac,
                ..
            }) => {
                assert!(a.owns(*ifindex, *ip));
                assert!(!FUZZ_MACS.contains(other_mac), "our own MAC in conflict");
            }
            Output::Event(Event::Gratuitous { ip, ifindex }) => {
                assert!(request.is_none());
                assert!(a.owns(*ifindex, *ip));
            }
            Output::JoinGroup { .. } | Output::LeaveGroup { .. } => {
                panic!("a received frame or a poll changed group membership")
            }
        }
    }
}

/// Every frame seen on an interface has exactly one outcome.
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
