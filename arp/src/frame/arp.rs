//! ARP packets for Ethernet and IPv4 (RFC 826), and the gratuitous forms
//! of RFC 5227 §3 and RFC 2002 §4.6.
//!
//! Layout of the 28-byte packet that follows the Ethernet header:
//!
//! ```text
//! hardware type (2) = 1 (Ethernet)     protocol type (2) = 0x0800 (IPv4)
//! hardware length (1) = 6              protocol length (1) = 4
//! opcode (2): 1 request, 2 reply
//! sender hardware address (6)          sender protocol address (4)
//! target hardware address (6)          target protocol address (4)
//! ```

use std::net::Ipv4Addr;

use super::ParseError;
use super::ethernet::{ETHERTYPE_ARP, EthernetHeader, VlanTag};
use crate::mac::MacAddr;

/// ARP hardware type of Ethernet.
pub const HTYPE_ETHERNET: u16 = 1;
/// ARP protocol type of IPv4 (its EtherType).
pub const PTYPE_IPV4: u16 = 0x0800;
/// Opcode of a request.
pub const OP_REQUEST: u16 = 1;
/// Opcode of a reply.
pub const OP_REPLY: u16 = 2;
/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// Opcode: [`OP_REQUEST`], [`OP_REPLY`], or another value (kept as read).
    pub op: u16,
    /// Sender hardware address.
    pub sender_mac: MacAddr,
    /// Sender protocol address; 0.0.0.0 in an RFC 5227 probe.
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: MacAddr,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Parses the ARP packet at the start of `payload` (an Ethernet
    /// payload; trailing padding is ignored). Only Ethernet/IPv4 ARP is
    /// accepted.
    pub fn parse(payload: &[u8]) -> Result<ArpPacket, ParseError> {
        if payload.len() < PACKET_LEN {
            return Err(ParseError::Truncated("ARP packet"));
        }
        let htype = u16::from_be_bytes([payload[0], payload[1]]);
        let ptype = u16::from_be_bytes([payload[2], payload[3]]);
        let (hlen, plen) = (payload[4], payload[5]);
        if htype != HTYPE_ETHERNET || ptype != PTYPE_IPV4 || hlen != 6 || plen != 4 {
            return Err(ParseError::UnsupportedArp {
                htype,
                ptype,
                hlen,
                plen,
            });
        }
        let ipv4 = |at: usize| {
            Ipv4Addr::new(
                payload[at],
                payload[at + 1],
                payload[at + 2],
                payload[at + 3],
            )
        };
        let mac = |at: usize| MacAddr::from_slice(&payload[at..]).unwrap_or_default();
        Ok(ArpPacket {
            op: u16::from_be_bytes([payload[6], payload[7]]),
            sender_mac: mac(8),
            sender_ip: ipv4(14),
            target_mac: mac(18),
            target_ip: ipv4(24),
        })
    }

    /// The packet's 28 bytes.
    pub fn to_bytes(&self) -> [u8; PACKET_LEN] {
        let mut out = [0u8; PACKET_LEN];
        out[0..2].copy_from_slice(&HTYPE_ETHERNET.to_be_bytes());
        out[2..4].copy_from_slice(&PTYPE_IPV4.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&self.op.to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac.octets());
        out[14..18].copy_from_slice(&self.sender_ip.octets());
        out[18..24].copy_from_slice(&self.target_mac.octets());
        out[24..28].copy_from_slice(&self.target_ip.octets());
        out
    }

    /// True for an RFC 5227 probe: a request whose sender IP is 0.0.0.0.
    pub fn is_probe(&self) -> bool {
        self.op == OP_REQUEST && self.sender_ip.is_unspecified()
    }

    /// The reply to `request` from `our_mac` (RFC 826): the target becomes
    /// the sender and the asker becomes the target.
    pub fn reply_to(request: &ArpPacket, our_mac: MacAddr) -> ArpPacket {
        ArpPacket {
            op: OP_REPLY,
            sender_mac: our_mac,
            sender_ip: request.target_ip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        }
    }

    /// The request form of a gratuitous ARP, an "ARP Announcement"
    /// (RFC 5227 §3): sender and target IP are both `ip`, the target
    /// hardware address is zero.
    pub fn announcement_request(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REQUEST,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// The reply form of a gratuitous ARP (RFC 2002 §4.6): sender and
    /// target are both `mac`/`ip`.
    pub fn announcement_reply(mac: MacAddr, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: OP_REPLY,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: mac,
            target_ip: ip,
        }
    }
}

/// A whole Ethernet frame carrying `packet`, padded to 60 bytes.
pub fn arp_frame(dst: MacAddr, src: MacAddr, vlan: Option<VlanTag>, packet: &ArpPacket) -> Vec<u8> {
    EthernetHeader {
        dst,
        src,
        vlan,
        ethertype: ETHERTYPE_ARP,
    }
    .frame(&packet.to_bytes())
}

/// The frame answering `request` from `our_mac`: unicast to the asker's
/// hardware address, with `vlan` (the request's tag, if any).
pub fn reply_frame(request: &ArpPacket, our_mac: MacAddr, vlan: Option<VlanTag>) -> Vec<u8> {
    arp_frame(
        request.sender_mac,
        our_mac,
        vlan,
        &ArpPacket::reply_to(request, our_mac),
    )
}

/// Both gratuitous frames for `ip` at `mac`, broadcast: the request form
/// first, then the reply form.
pub fn gratuitous_frames(mac: MacAddr, ip: Ipv4Addr, vlan: Option<VlanTag>) -> [Vec<u8>; 2] {
    [
        arp_frame(
            MacAddr::BROADCAST,
            mac,
            vlan,
            &ArpPacket::announcement_request(mac, ip),
        ),
        arp_frame(
            MacAddr::BROADCAST,
            mac,
            vlan,
            &ArpPacket::announcement_reply(mac, ip),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x01, 0x01);
    const ASKER: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x02, 0x02);
    const SERVICE: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const ASKER_IP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);

    /// Padding to the 60-byte Ethernet minimum: 60 - 14 - 28.
    const PAD: [u8; 18] = [0; 18];

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    fn request_frame() -> Vec<u8> {
        concat(&[
            &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // eth dst: broadcast
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02], // eth src: asker
            &[0x08, 0x06],                         // EtherType ARP
            &[0x00, 0x01],                         // htype Ethernet
            &[0x08, 0x00],                         // ptype IPv4
            &[0x06, 0x04],                         // hlen, plen
            &[0x00, 0x01],                         // op request
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02], // sha
            &[192, 0, 2, 1],                       // spa
            &[0x00; 6],                            // tha
            &[192, 0, 2, 10],                      // tpa
            &PAD,
        ])
    }

    #[test]
    fn request_bytes_and_parse() {
        let request = ArpPacket {
            op: OP_REQUEST,
            sender_mac: ASKER,
            sender_ip: ASKER_IP,
            target_mac: MacAddr::ZERO,
            target_ip: SERVICE,
        };
        let built = arp_frame(MacAddr::BROADCAST, ASKER, None, &request);
        assert_eq!(built, request_frame());
        let (_, payload) = EthernetHeader::parse(&built).unwrap();
        assert_eq!(ArpPacket::parse(payload).unwrap(), request);
        assert!(!request.is_probe());
    }

    #[test]
    fn reply_bytes() {
        let frame = request_frame();
        let (_, payload) = EthernetHeader::parse(&frame).unwrap();
        let request = ArpPacket::parse(payload).unwrap();
        let expected = concat(&[
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02], // eth dst: the asker
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // eth src: us
            &[0x08, 0x06],
            &[0x00, 0x01, 0x08, 0x00, 0x06, 0x04],
            &[0x00, 0x02],                         // op reply
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // sha: us
            &[192, 0, 2, 10],                      // spa: the service IP
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02], // tha: the asker
            &[192, 0, 2, 1],                       // tpa: the asker
            &PAD,
        ]);
        assert_eq!(reply_frame(&request, OURS, None), expected);
    }

    #[test]
    fn reply_to_probe_goes_to_prober() {
        let probe = ArpPacket {
            op: OP_REQUEST,
            sender_mac: ASKER,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: MacAddr::ZERO,
            target_ip: SERVICE,
        };
        assert!(probe.is_probe());
        let reply = ArpPacket::reply_to(&probe, OURS);
        assert_eq!(reply.target_ip, Ipv4Addr::UNSPECIFIED);
        assert_eq!(reply.target_mac, ASKER);
        assert_eq!(reply.sender_ip, SERVICE);
    }

    #[test]
    fn gratuitous_bytes_tagged() {
        let [request, reply] = gratuitous_frames(OURS, SERVICE, Some(VlanTag::new(100)));
        let head: &[&[u8]] = &[
            &[0xff; 6],                            // broadcast
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // us
            &[0x81, 0x00, 0x00, 0x64],             // 802.1Q, VID 100
            &[0x08, 0x06],
            &[0x00, 0x01, 0x08, 0x00, 0x06, 0x04],
        ];
        let pad = [0u8; 14]; // 60 - 18 - 28
        let expected_request = concat(&[
            &head.concat(),
            &[0x00, 0x01],                         // request
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // sha
            &[192, 0, 2, 10],                      // spa = the address
            &[0x00; 6],                            // tha zero (RFC 5227 §3)
            &[192, 0, 2, 10],                      // tpa = the address
            &pad,
        ]);
        let expected_reply = concat(&[
            &head.concat(),
            &[0x00, 0x02],                         // reply
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // sha
            &[192, 0, 2, 10],                      // spa
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // tha = sha (RFC 2002 §4.6)
            &[192, 0, 2, 10],                      // tpa
            &pad,
        ]);
        assert_eq!(request, expected_request);
        assert_eq!(reply, expected_reply);
    }

    #[test]
    fn rejects_other_hardware_and_short_packets() {
        let frame = request_frame();
        let (_, payload) = EthernetHeader::parse(&frame).unwrap();
        assert_eq!(
            ArpPacket::parse(&payload[..27]),
            Err(ParseError::Truncated("ARP packet"))
        );
        let mut other = payload.to_vec();
        other[1] = 6; // IEEE 802 hardware type
        assert!(matches!(
            ArpPacket::parse(&other),
            Err(ParseError::UnsupportedArp { htype: 6, .. })
        ));
        let mut other = payload.to_vec();
        other[5] = 16; // protocol length of IPv6
        assert!(matches!(
            ArpPacket::parse(&other),
            Err(ParseError::UnsupportedArp { plen: 16, .. })
        ));
    }
}
