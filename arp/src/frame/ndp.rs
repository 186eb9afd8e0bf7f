//! IPv6 Neighbor Discovery (RFC 4861): Neighbor Solicitation and
//! Neighbor Advertisement messages, their options, their validation
//! (§7.1.1, §7.1.2), and solicited-node multicast addresses (RFC 4291
//! §2.7.1).
//!
//! ```text
//! Neighbor Solicitation (type 135, code 0):
//!   type(1) code(1) checksum(2) reserved(4) target address(16) options...
//! Neighbor Advertisement (type 136, code 0):
//!   type(1) code(1) checksum(2) R|S|O|reserved(4) target address(16) options...
//! option: type(1) length(1, in units of 8 bytes, never 0) data...
//!   1 = source link-layer address, 2 = target link-layer address;
//!   on Ethernet both are exactly 8 bytes: type, 1, MAC(6).
//! ```

use std::net::Ipv6Addr;

use super::ParseError;
use super::ethernet::{ETHERTYPE_IPV6, EthernetHeader, VlanTag};
use super::ipv6::{Ipv6Header, NEXT_HEADER_ICMPV6, icmpv6_checksum, icmpv6_checksum_ok};
use crate::mac::MacAddr;

/// ICMPv6 type of a Neighbor Solicitation.
pub const TYPE_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a Neighbor Advertisement.
pub const TYPE_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Option type of the source link-layer address.
pub const OPTION_SOURCE_LINK_LAYER: u8 = 1;
/// Option type of the target link-layer address.
pub const OPTION_TARGET_LINK_LAYER: u8 = 2;
/// The hop limit every Neighbor Discovery message is sent with, and must
/// arrive with (proof that it was not forwarded by a router).
pub const NDP_HOP_LIMIT: u8 = 255;
/// The all-nodes link-local multicast address, `ff02::1`.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// Length of an NS or NA without options: type, code, checksum, flags or
/// reserved, target.
pub const MESSAGE_BASE_LEN: usize = 24;

const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1):
/// `ff02::1:ff00:0/104` followed by the low 24 bits of `addr`.
pub fn solicited_node(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// True when `addr` is in `ff02::1:ff00:0/104`.
pub fn is_solicited_node(addr: Ipv6Addr) -> bool {
    addr.octets()[..13] == [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff]
}

/// The Ethernet multicast address of the solicited-node group of `addr`:
/// `33:33:ff` followed by the low 24 bits of `addr`.
pub fn solicited_node_mac(addr: Ipv6Addr) -> MacAddr {
    MacAddr::ipv6_multicast(solicited_node(addr))
}

/// A Neighbor Discovery option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdpOption {
    /// Source link-layer address (type 1).
    SourceLinkLayer(MacAddr),
    /// Target link-layer address (type 2).
    TargetLinkLayer(MacAddr),
    /// Any other option: its type and the bytes after the length field.
    Other {
        /// Option type.
        kind: u8,
        /// The option's data (its whole length less the two header bytes).
        data: Vec<u8>,
    },
}

impl NdpOption {
    fn write(&self, out: &mut Vec<u8>) {
        match self {
            NdpOption::SourceLinkLayer(mac) | NdpOption::TargetLinkLayer(mac) => {
                let kind = if matches!(self, NdpOption::SourceLinkLayer(_)) {
                    OPTION_SOURCE_LINK_LAYER
                } else {
                    OPTION_TARGET_LINK_LAYER
                };
                out.extend_from_slice(&[kind, 1]);
                out.extend_from_slice(&mac.octets());
            }
            NdpOption::Other { kind, data } => {
                // Pad to a multiple of 8 bytes; the length counts units of 8.
                let total = (data.len() + 2).div_ceil(8) * 8;
                let units = u8::try_from(total / 8).unwrap_or(u8::MAX);
                out.extend_from_slice(&[*kind, units]);
                out.extend_from_slice(data);
                out.resize(out.len() + total - 2 - data.len(), 0);
            }
        }
    }

    /// Parses the options in `bytes`, which must be whole options.
    fn parse_all(mut bytes: &[u8]) -> Result<Vec<NdpOption>, ParseError> {
        let mut options = Vec::new();
        while !bytes.is_empty() {
            let [kind, units, ..] = *bytes else {
                return Err(ParseError::Truncated("NDP option"));
            };
            if units == 0 {
                return Err(ParseError::ZeroLengthOption);
            }
            let len = usize::from(units) * 8;
            let option = bytes
                .get(..len)
                .ok_or(ParseError::Truncated("NDP option"))?;
            let data = &option[2..];
            options.push(match kind {
                OPTION_SOURCE_LINK_LAYER | OPTION_TARGET_LINK_LAYER => {
                    // On Ethernet a link-layer address option is exactly 8 bytes.
                    let mac = (units == 1)
                        .then(|| MacAddr::from_slice(data))
                        .flatten()
                        .filter(|mac| mac.is_unicast())
                        .ok_or(ParseError::BadLinkLayerOption)?;
                    if kind == OPTION_SOURCE_LINK_LAYER {
                        NdpOption::SourceLinkLayer(mac)
                    } else {
                        NdpOption::TargetLinkLayer(mac)
                    }
                }
                _ => NdpOption::Other {
                    kind,
                    data: data.to_vec(),
                },
            });
            bytes = &bytes[len..];
        }
        Ok(options)
    }
}

fn source_link_layer(options: &[NdpOption]) -> Option<MacAddr> {
    options.iter().find_map(|o| match o {
        NdpOption::SourceLinkLayer(mac) => Some(*mac),
        _ => None,
    })
}

fn target_link_layer(options: &[NdpOption]) -> Option<MacAddr> {
    options.iter().find_map(|o| match o {
        NdpOption::TargetLinkLayer(mac) => Some(*mac),
        _ => None,
    })
}

/// A Neighbor Solicitation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborSolicitation {
    /// The address being resolved.
    pub target: Ipv6Addr,
    /// Options, in order.
    pub options: Vec<NdpOption>,
}

impl NeighborSolicitation {
    /// The source link-layer address option's value, if present.
    pub fn source_link_layer(&self) -> Option<MacAddr> {
        source_link_layer(&self.options)
    }
}

/// A Neighbor Advertisement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    /// R: the sender is a router.
    pub router: bool,
    /// S: sent in answer to a solicitation.
    pub solicited: bool,
    /// O: the advertisement overrides a cached link-layer address.
    pub override_flag: bool,
    /// The address advertised.
    pub target: Ipv6Addr,
    /// Options, in order.
    pub options: Vec<NdpOption>,
}

impl NeighborAdvertisement {
    /// The answer to a solicitation for `target` (RFC 4861 §7.2.4): S and
    /// O set, R clear, with a target link-layer address option of `mac`.
    pub fn solicited(target: Ipv6Addr, mac: MacAddr) -> Self {
        NeighborAdvertisement {
            router: false,
            solicited: true,
            override_flag: true,
            target,
            options: vec![NdpOption::TargetLinkLayer(mac)],
        }
    }

    /// An unsolicited advertisement of `target` at `mac` (RFC 4861
    /// §7.2.6): O set, S and R clear, with a target link-layer address
    /// option.
    pub fn unsolicited(target: Ipv6Addr, mac: MacAddr) -> Self {
        NeighborAdvertisement {
            solicited: false,
            ..Self::solicited(target, mac)
        }
    }

    /// The target link-layer address option's value, if present.
    pub fn target_link_layer(&self) -> Option<MacAddr> {
        target_link_layer(&self.options)
    }
}

/// A Neighbor Discovery message this crate handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NdpMessage {
    /// Type 135.
    Solicitation(NeighborSolicitation),
    /// Type 136.
    Advertisement(NeighborAdvertisement),
}

impl NdpMessage {
    /// The message's target address.
    pub fn target(&self) -> Ipv6Addr {
        match self {
            NdpMessage::Solicitation(ns) => ns.target,
            NdpMessage::Advertisement(na) => na.target,
        }
    }

    /// Parses and validates the ICMPv6 message `icmp` carried by the IPv6
    /// packet with header `ip`.
    ///
    /// Returns `Ok(None)` for ICMPv6 types other than NS and NA (left
    /// unchecked). NS and NA are validated as RFC 4861 §7.1.1 and §7.1.2
    /// require: hop limit 255, correct checksum, code 0, at least 24
    /// bytes, a target that is not multicast, options of non-zero length;
    /// for an NS from the unspecified address, a solicited-node
    /// destination and no source link-layer address option; for an NA to
    /// a multicast destination, the Solicited flag clear. A multicast IPv6
    /// source is refused as well (RFC 4291 §2.7).
    pub fn parse(ip: &Ipv6Header, icmp: &[u8]) -> Result<Option<NdpMessage>, ParseError> {
        let Some(&kind) = icmp.first() else {
            return Err(ParseError::Truncated("ICMPv6 message"));
        };
        if kind != TYPE_NEIGHBOR_SOLICITATION && kind != TYPE_NEIGHBOR_ADVERTISEMENT {
            return Ok(None);
        }
        if ip.hop_limit != NDP_HOP_LIMIT {
            return Err(ParseError::BadHopLimit(ip.hop_limit));
        }
        if icmp.len() < MESSAGE_BASE_LEN {
            return Err(ParseError::Truncated("neighbor discovery message"));
        }
        if !icmpv6_checksum_ok(ip.src, ip.dst, icmp) {
            return Err(ParseError::BadChecksum);
        }
        if icmp[1] != 0 {
            return Err(ParseError::BadIcmpCode(icmp[1]));
        }
        if ip.src.is_multicast() {
            return Err(ParseError::MulticastSource);
        }
        let target_octets: [u8; 16] = icmp[8..24].try_into().unwrap_or([0; 16]);
        let target = Ipv6Addr::from(target_octets);
        if target.is_multicast() {
            return Err(ParseError::MulticastTarget);
        }
        let options = NdpOption::parse_all(&icmp[MESSAGE_BASE_LEN..])?;
        if kind == TYPE_NEIGHBOR_SOLICITATION {
            let ns = NeighborSolicitation { target, options };
            if ip.src.is_unspecified() {
                if !is_solicited_node(ip.dst) {
                    return Err(ParseError::DadNotToSolicitedNode);
                }
                if ns.source_link_layer().is_some() {
                    return Err(ParseError::DadWithSourceLinkLayer);
                }
            }
            Ok(Some(NdpMessage::Solicitation(ns)))
        } else {
            let flags = icmp[4];
            let na = NeighborAdvertisement {
                router: flags & FLAG_ROUTER != 0,
                solicited: flags & FLAG_SOLICITED != 0,
                override_flag: flags & FLAG_OVERRIDE != 0,
                target,
                options,
            };
            if na.solicited && ip.dst.is_multicast() {
                return Err(ParseError::SolicitedToMulticast);
            }
            Ok(Some(NdpMessage::Advertisement(na)))
        }
    }

    /// The ICMPv6 message's bytes, with the checksum for `src` → `dst`.
    pub fn to_bytes(&self, src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
        let (kind, flags, target, options) = match self {
            NdpMessage::Solicitation(ns) => (TYPE_NEIGHBOR_SOLICITATION, 0, ns.target, &ns.options),
            NdpMessage::Advertisement(na) => {
                let flags = if na.router { FLAG_ROUTER } else { 0 }
                    | if na.solicited { FLAG_SOLICITED } else { 0 }
                    | if na.override_flag { FLAG_OVERRIDE } else { 0 };
                (TYPE_NEIGHBOR_ADVERTISEMENT, flags, na.target, &na.options)
            }
        };
        let mut out = Vec::with_capacity(MESSAGE_BASE_LEN + 8 * options.len());
        out.extend_from_slice(&[kind, 0, 0, 0, flags, 0, 0, 0]);
        out.extend_from_slice(&target.octets());
        for option in options {
            option.write(&mut out);
        }
        let checksum = icmpv6_checksum(src, dst, &out);
        out[2..4].copy_from_slice(&checksum.to_be_bytes());
        out
    }
}

/// A whole Ethernet frame carrying `message` in an IPv6 packet from `src`
/// to `dst` with hop limit 255.
pub fn ndp_frame(
    eth_dst: MacAddr,
    eth_src: MacAddr,
    vlan: Option<VlanTag>,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    message: &NdpMessage,
) -> Vec<u8> {
    let icmp = message.to_bytes(src, dst);
    let mut packet = Vec::with_capacity(super::ipv6::HEADER_LEN + icmp.len());
    Ipv6Header {
        traffic_class: 0,
        flow_label: 0,
        payload_len: u16::try_from(icmp.len()).unwrap_or(u16::MAX),
        next_header: NEXT_HEADER_ICMPV6,
        hop_limit: NDP_HOP_LIMIT,
        src,
        dst,
    }
    .write(&mut packet);
    packet.extend_from_slice(&icmp);
    EthernetHeader {
        dst: eth_dst,
        src: eth_src,
        vlan,
        ethertype: ETHERTYPE_IPV6,
    }
    .frame(&packet)
}

/// The solicited advertisement answering a solicitation from `asker_ip`
/// (at `asker_mac`) for `target`, which we own at `our_mac`. It is sent
/// from `target` itself.
pub fn solicited_advertisement_frame(
    target: Ipv6Addr,
    our_mac: MacAddr,
    asker_ip: Ipv6Addr,
    asker_mac: MacAddr,
    vlan: Option<VlanTag>,
) -> Vec<u8> {
    ndp_frame(
        asker_mac,
        our_mac,
        vlan,
        target,
        asker_ip,
        &NdpMessage::Advertisement(NeighborAdvertisement::solicited(target, our_mac)),
    )
}

/// The unsolicited advertisement of `target` at `our_mac`, from `target`
/// to all nodes (`ff02::1`, Ethernet `33:33:00:00:00:01`).
pub fn unsolicited_advertisement_frame(
    target: Ipv6Addr,
    our_mac: MacAddr,
    vlan: Option<VlanTag>,
) -> Vec<u8> {
    ndp_frame(
        MacAddr::ipv6_multicast(ALL_NODES),
        our_mac,
        vlan,
        target,
        ALL_NODES,
        &NdpMessage::Advertisement(NeighborAdvertisement::unsolicited(target, our_mac)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Packet, parse};

    const OURS: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x01, 0x01);
    const ASKER: MacAddr = MacAddr::new(0x02, 0x00, 0x00, 0x00, 0x02, 0x02);
    const TARGET: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
    const ASKER_IP: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 2);
    const TARGET_BYTES: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const SOLICITED_TARGET: [u8; 16] = [
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, 0, 0, 0x10,
    ];
    const ASKER_IP_BYTES: [u8; 16] = [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02];
    const ALL_NODES_BYTES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01];

    // Checksums below were computed by an independent implementation of
    // RFC 4443 §2.3 (pseudo-header + message, one's complement).

    /// A Neighbor Solicitation from fe80::2 for 2001:db8::10, sent to its
    /// solicited-node group, with a source link-layer address option.
    pub(crate) fn ns_frame() -> Vec<u8> {
        [
            &[0x33, 0x33, 0xff, 0x00, 0x00, 0x10][..], // eth dst: 33:33 + group
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02],     // eth src
            &[0x86, 0xdd],                             // IPv6
            &[0x60, 0x00, 0x00, 0x00],                 // version 6, TC 0, flow 0
            &[0x00, 0x20, 58, 255],                    // payload 32, ICMPv6, hop limit 255
            &ASKER_IP_BYTES,                           // src
            &SOLICITED_TARGET,                         // dst ff02::1:ff00:10
            &[135, 0, 0x49, 0x41],                     // NS, code 0, checksum
            &[0, 0, 0, 0],                             // reserved
            &TARGET_BYTES,                             // target
            &[1, 1, 0x02, 0x00, 0x00, 0x00, 0x02, 0x02], // SLLA option
        ]
        .concat()
    }

    #[test]
    fn solicited_node_addresses() {
        let addr: Ipv6Addr = "2001:db8::abcd:12:3456".parse().unwrap();
        assert_eq!(
            solicited_node(addr),
            "ff02::1:ff12:3456".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(
            solicited_node_mac(addr),
            MacAddr::new(0x33, 0x33, 0xff, 0x12, 0x34, 0x56)
        );
        assert!(is_solicited_node(solicited_node(addr)));
        assert!(!is_solicited_node(ALL_NODES));
        let link_local: Ipv6Addr = "fe80::200:5eff:fe00:53".parse().unwrap();
        assert_eq!(
            solicited_node(link_local),
            "ff02::1:ff00:53".parse::<Ipv6Addr>().unwrap()
        );
    }

    #[test]
    fn solicitation_bytes_checksum_and_parse() {
        let ns = NdpMessage::Solicitation(NeighborSolicitation {
            target: TARGET,
            options: vec![NdpOption::SourceLinkLayer(ASKER)],
        });
        let built = ndp_frame(
            solicited_node_mac(TARGET),
            ASKER,
            None,
            ASKER_IP,
            solicited_node(TARGET),
            &ns,
        );
        assert_eq!(built, ns_frame());
        let frame = parse(&built).unwrap();
        let Packet::Ndp { ip, message } = frame.packet else {
            panic!("not NDP: {frame:?}");
        };
        assert_eq!(ip.hop_limit, 255);
        assert_eq!(ip.src, ASKER_IP);
        assert_eq!(message, ns);
    }

    #[test]
    fn solicited_advertisement_bytes() {
        let expected = [
            &[0x02, 0x00, 0x00, 0x00, 0x02, 0x02][..], // eth dst: the asker
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01],     // eth src: us
            &[0x86, 0xdd],
            &[0x60, 0x00, 0x00, 0x00],
            &[0x00, 0x20, 58, 255],
            &TARGET_BYTES,         // src: the target
            &ASKER_IP_BYTES,       // dst: the asker
            &[136, 0, 0xb8, 0x8d], // NA, code 0, checksum
            &[0x60, 0, 0, 0],      // S and O set, R clear
            &TARGET_BYTES,
            &[2, 1, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01], // TLLA option
        ]
        .concat();
        let built = solicited_advertisement_frame(TARGET, OURS, ASKER_IP, ASKER, None);
        assert_eq!(built, expected);
        let Packet::Ndp { message, .. } = parse(&built).unwrap().packet else {
            panic!("not NDP");
        };
        assert_eq!(
            message,
            NdpMessage::Advertisement(NeighborAdvertisement::solicited(TARGET, OURS))
        );
    }

    #[test]
    fn unsolicited_advertisement_bytes_tagged() {
        let expected = [
            &[0x33, 0x33, 0x00, 0x00, 0x00, 0x01][..], // eth dst: all nodes
            &[0x02, 0x00, 0x00, 0x00, 0x01, 0x01],
            &[0x81, 0x00, 0x00, 0x07], // 802.1Q VID 7
            &[0x86, 0xdd],
            &[0x60, 0x00, 0x00, 0x00],
            &[0x00, 0x20, 58, 255],
            &TARGET_BYTES,
            &ALL_NODES_BYTES,
            &[136, 0, 0xf8, 0x0c],
            &[0x20, 0, 0, 0], // O set, S and R clear
            &TARGET_BYTES,
            &[2, 1, 0x02, 0x00, 0x00, 0x00, 0x01, 0x01],
        ]
        .concat();
        assert_eq!(
            unsolicited_advertisement_frame(TARGET, OURS, Some(VlanTag::new(7))),
            expected
        );
    }

    #[test]
    fn dad_probe_checksum_and_rules() {
        let dad = NdpMessage::Solicitation(NeighborSolicitation {
            target: TARGET,
            options: vec![],
        });
        let bytes = dad.to_bytes(Ipv6Addr::UNSPECIFIED, solicited_node(TARGET));
        assert_eq!(&bytes[..4], &[135, 0, 0x4c, 0xcf]);
        let header = |dst: Ipv6Addr, len: usize| Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: len as u16,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: Ipv6Addr::UNSPECIFIED,
            dst,
        };
        let ip = header(solicited_node(TARGET), bytes.len());
        assert_eq!(NdpMessage::parse(&ip, &bytes), Ok(Some(dad.clone())));
        // From :: but not to the solicited-node group.
        let ip = header(ALL_NODES, bytes.len());
        let bytes = dad.to_bytes(Ipv6Addr::UNSPECIFIED, ALL_NODES);
        assert_eq!(
            NdpMessage::parse(&ip, &bytes),
            Err(ParseError::DadNotToSolicitedNode)
        );
        // From :: with a source link-layer option.
        let with_slla = NdpMessage::Solicitation(NeighborSolicitation {
            target: TARGET,
            options: vec![NdpOption::SourceLinkLayer(ASKER)],
        });
        let bytes = with_slla.to_bytes(Ipv6Addr::UNSPECIFIED, solicited_node(TARGET));
        let ip = header(solicited_node(TARGET), bytes.len());
        assert_eq!(
            NdpMessage::parse(&ip, &bytes),
            Err(ParseError::DadWithSourceLinkLayer)
        );
    }

    #[test]
    fn validation_failures() {
        let good = ns_frame();
        let ipv6 = 14;
        let icmp = 14 + 40;
        let check = |bytes: &[u8], expected: ParseError| {
            assert_eq!(parse(bytes).map(|_| ()), Err(expected), "{bytes:02x?}");
        };
        let mut bad = good.clone();
        bad[ipv6 + 7] = 64; // hop limit
        check(&bad, ParseError::BadHopLimit(64));
        let mut bad = good.clone();
        bad[icmp + 3] ^= 0x01; // checksum
        check(&bad, ParseError::BadChecksum);
        let mut bad = good.clone();
        bad[icmp + 20] ^= 0x01; // target changed, checksum now wrong
        check(&bad, ParseError::BadChecksum);
        // Options of length 0, and a truncated option, need a fixed-up checksum.
        let src = ASKER_IP;
        let dst = solicited_node(TARGET);
        let with = |mutate: &dyn Fn(&mut Vec<u8>)| {
            let mut bytes = good.clone();
            mutate(&mut bytes);
            let len = (bytes.len() - icmp) as u16;
            bytes[ipv6 + 4..ipv6 + 6].copy_from_slice(&len.to_be_bytes());
            bytes[icmp + 2..icmp + 4].copy_from_slice(&[0, 0]);
            let sum = crate::frame::ipv6::icmpv6_checksum(src, dst, &bytes[icmp..]);
            bytes[icmp + 2..icmp + 4].copy_from_slice(&sum.to_be_bytes());
            bytes
        };
        check(&with(&|b| b[icmp + 25] = 0), ParseError::ZeroLengthOption);
        check(
            &with(&|b| b[icmp + 25] = 2),
            ParseError::Truncated("NDP option"),
        );
        check(&with(&|b| b.push(9)), ParseError::Truncated("NDP option"));
        check(&with(&|b| b[icmp + 1] = 1), ParseError::BadIcmpCode(1));
        check(&with(&|b| b[icmp + 8] = 0xff), ParseError::MulticastTarget);
        check(
            &with(&|b| b[icmp + 26] = 0x01),
            ParseError::BadLinkLayerOption,
        );
        check(
            &with(&|b| b.truncate(icmp + 20)),
            ParseError::Truncated("neighbor discovery message"),
        );
        // An unknown option is kept.
        let bytes = with(&|b| b.extend_from_slice(&[14, 1, 1, 2, 3, 4, 5, 6]));
        let Packet::Ndp {
            message: NdpMessage::Solicitation(ns),
            ..
        } = parse(&bytes).unwrap().packet
        else {
            panic!("not an NS");
        };
        assert_eq!(
            ns.options[1],
            NdpOption::Other {
                kind: 14,
                data: vec![1, 2, 3, 4, 5, 6]
            }
        );
        // Payload length longer than the frame.
        let mut bad = good.clone();
        bad[ipv6 + 5] = 0x28;
        check(&bad, ParseError::BadPayloadLength);
    }

    #[test]
    fn solicited_flag_to_multicast_is_refused() {
        let na = NdpMessage::Advertisement(NeighborAdvertisement::solicited(TARGET, OURS));
        let bytes = na.to_bytes(TARGET, ALL_NODES);
        let ip = Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: bytes.len() as u16,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: TARGET,
            dst: ALL_NODES,
        };
        assert_eq!(
            NdpMessage::parse(&ip, &bytes),
            Err(ParseError::SolicitedToMulticast)
        );
    }

    #[test]
    fn other_icmpv6_and_option_padding() {
        let ip = Ipv6Header {
            traffic_class: 0,
            flow_label: 0,
            payload_len: 8,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 1,
            src: ASKER_IP,
            dst: ALL_NODES,
        };
        // An echo request with a bad checksum and hop limit: not ours to judge.
        assert_eq!(
            NdpMessage::parse(&ip, &[128, 0, 0, 0, 0, 0, 0, 0]),
            Ok(None)
        );
        assert_eq!(
            NdpMessage::parse(&ip, &[]),
            Err(ParseError::Truncated("ICMPv6 message"))
        );
        let mut out = Vec::new();
        NdpOption::Other {
            kind: 99,
            data: vec![1, 2, 3, 4, 5, 6, 7],
        }
        .write(&mut out);
        assert_eq!(out, [99, 2, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0]);
    }
}
