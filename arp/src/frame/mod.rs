//! Wire formats: parsing and building the frames the announcer reads and
//! writes. Parsing never panics, whatever the bytes; it either returns a
//! value or a [`ParseError`].
//!
//! - [`ethernet`]: Ethernet II header and 802.1Q tag.
//! - [`arp`]: ARP for Ethernet/IPv4, replies and gratuitous forms.
//! - [`ipv6`]: the IPv6 header and the ICMPv6 checksum.
//! - [`ndp`]: Neighbor Solicitation/Advertisement, options, validation,
//!   solicited-node multicast addresses.

pub mod arp;
pub mod ethernet;
pub mod ipv6;
pub mod ndp;

use self::arp::ArpPacket;
use self::ethernet::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader};
use self::ipv6::{Ipv6Header, NEXT_HEADER_ICMPV6};
use self::ndp::NdpMessage;

/// Why a frame was refused as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The bytes end before the named part is complete.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// An Ethernet source address that is multicast, broadcast or zero:
    /// no station sends from one, and an answer to it would go to a group.
    #[error("Ethernet source address is not a unicast address")]
    BadSourceMac,
    /// An 802.1Q tag with the reserved VLAN identifier 4095.
    #[error("802.1Q tag with the reserved VLAN id 4095")]
    ReservedVlanId,
    /// ARP for a hardware or protocol other than Ethernet and IPv4.
    #[error(
        "ARP for hardware type {htype} / protocol {ptype:#06x} (lengths {hlen}/{plen}); only Ethernet/IPv4 is handled"
    )]
    UnsupportedArp {
        /// Hardware type.
        htype: u16,
        /// Protocol type.
        ptype: u16,
        /// Hardware address length.
        hlen: u8,
        /// Protocol address length.
        plen: u8,
    },
    /// A sender hardware address that is multicast, broadcast or zero.
    #[error("ARP sender hardware address is not a unicast address")]
    BadSenderMac,
    /// An IPv6 packet whose version field is not 6.
    #[error("IP version {0} in an IPv6 frame")]
    BadIpVersion(u8),
    /// An IPv6 payload length larger than the bytes that follow.
    #[error("IPv6 payload length exceeds the frame")]
    BadPayloadLength,
    /// A Neighbor Discovery message whose hop limit is not 255.
    #[error("neighbor discovery message with hop limit {0}, not 255")]
    BadHopLimit(u8),
    /// An ICMPv6 checksum that does not match.
    #[error("bad ICMPv6 checksum")]
    BadChecksum,
    /// A Neighbor Discovery message whose ICMPv6 code is not 0.
    #[error("neighbor discovery message with ICMPv6 code {0}, not 0")]
    BadIcmpCode(u8),
    /// A Neighbor Discovery message from a multicast source address.
    #[error("neighbor discovery message from a multicast source")]
    MulticastSource,
    /// A Neighbor Discovery target that is a multicast address.
    #[error("neighbor discovery target is a multicast address")]
    MulticastTarget,
    /// An option whose length field is 0.
    #[error("neighbor discovery option of length 0")]
    ZeroLengthOption,
    /// A link-layer address option that is not 8 bytes or not unicast.
    #[error("link-layer address option is not one unicast Ethernet address")]
    BadLinkLayerOption,
    /// A solicitation from `::` not sent to a solicited-node address.
    #[error("solicitation from :: not sent to a solicited-node multicast address")]
    DadNotToSolicitedNode,
    /// A solicitation from `::` with a source link-layer address option.
    #[error("solicitation from :: with a source link-layer address option")]
    DadWithSourceLinkLayer,
    /// An advertisement to a multicast address with the Solicited flag.
    #[error("solicited advertisement sent to a multicast address")]
    SolicitedToMulticast,
}

/// What a frame carries, as far as the announcer cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    /// An Ethernet/IPv4 ARP packet.
    Arp(ArpPacket),
    /// A validated Neighbor Solicitation or Advertisement.
    Ndp {
        /// Its IPv6 header.
        ip: Ipv6Header,
        /// The message.
        message: NdpMessage,
    },
    /// Anything else: another EtherType, another IPv6 next header (NDP
    /// messages never carry extension headers), another ICMPv6 type.
    Other,
}

/// A parsed frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The Ethernet header (with its VLAN tag, if any).
    pub ethernet: EthernetHeader,
    /// What it carries.
    pub packet: Packet,
}

/// Parses a whole Ethernet frame (without FCS). A frame from a source
/// address that is not unicast is refused ([`ParseError::BadSourceMac`]).
pub fn parse(frame: &[u8]) -> Result<Frame, ParseError> {
    let (ethernet, payload) = EthernetHeader::parse(frame)?;
    if !ethernet.src.is_unicast() {
        return Err(ParseError::BadSourceMac);
    }
    let packet = match ethernet.ethertype {
        ETHERTYPE_ARP => {
            let arp = ArpPacket::parse(payload)?;
            if !arp.sender_mac.is_unicast() {
                return Err(ParseError::BadSenderMac);
            }
            Packet::Arp(arp)
        }
        ETHERTYPE_IPV6 => {
            let (ip, upper) = Ipv6Header::parse(payload)?;
            if ip.next_header != NEXT_HEADER_ICMPV6 {
                Packet::Other
            } else {
                match NdpMessage::parse(&ip, upper)? {
                    Some(message) => Packet::Ndp { ip, message },
                    None => Packet::Other,
                }
            }
        }
        _ => Packet::Other,
    };
    Ok(Frame { ethernet, packet })
}
