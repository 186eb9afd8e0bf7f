//! Ethernet II headers, with an optional IEEE 802.1Q VLAN tag.
//!
//! Layout (no preamble, no frame check sequence: raw sockets see neither):
//!
//! ```text
//! untagged: dst(6) src(6) ethertype(2) payload
//! tagged:   dst(6) src(6) 0x8100(2) TCI(2) ethertype(2) payload
//!           TCI = PCP(3 bits) DEI(1 bit) VID(12 bits)
//! ```
//!
//! Only one tag is understood; a frame with an 802.1ad outer tag (0x88a8)
//! is reported as that EtherType and left alone.

use super::ParseError;
use crate::mac::MacAddr;

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// EtherType (TPID) announcing an IEEE 802.1Q tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;

/// Length of an untagged Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Length of an 802.1Q tag.
pub const VLAN_TAG_LEN: usize = 4;
/// The shortest Ethernet frame without its frame check sequence; shorter
/// frames are padded with zeroes up to this length when built.
pub const MIN_FRAME_LEN: usize = 60;
/// The largest valid VLAN identifier (4095 is reserved).
pub const MAX_VLAN_ID: u16 = 4094;

/// An IEEE 802.1Q tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VlanTag {
    /// Priority code point (0..=7).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (0 = priority tag only, 1..=4094 = VLAN).
    pub vid: u16,
}

impl VlanTag {
    /// A tag for VLAN `vid` with priority 0.
    pub const fn new(vid: u16) -> Self {
        VlanTag {
            pcp: 0,
            dei: false,
            vid,
        }
    }

    fn tci(self) -> u16 {
        (u16::from(self.pcp & 0x07) << 13) | (u16::from(self.dei) << 12) | (self.vid & 0x0fff)
    }

    fn from_tci(tci: u16) -> Self {
        VlanTag {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0x0fff,
        }
    }
}

/// An Ethernet II header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EthernetHeader {
    /// Destination MAC address.
    pub dst: MacAddr,
    /// Source MAC address.
    pub src: MacAddr,
    /// The 802.1Q tag, if the frame carries one.
    pub vlan: Option<VlanTag>,
    /// The EtherType of the payload (after the tag, if any).
    pub ethertype: u16,
}

impl EthernetHeader {
    /// Splits `frame` into its header and payload.
    ///
    /// Errors when the frame is too short for its header or when the VLAN
    /// identifier is the reserved 4095. A type field below 0x0600 (an
    /// IEEE 802.3 length) is returned as it is: callers ignore it like any
    /// EtherType they do not handle.
    pub fn parse(frame: &[u8]) -> Result<(EthernetHeader, &[u8]), ParseError> {
        if frame.len() < HEADER_LEN {
            return Err(ParseError::Truncated("ethernet header"));
        }
        let dst = MacAddr::from_slice(&frame[0..6]).ok_or(ParseError::Truncated("ethernet"))?;
        let src = MacAddr::from_slice(&frame[6..12]).ok_or(ParseError::Truncated("ethernet"))?;
        let mut ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let mut offset = HEADER_LEN;
        let mut vlan = None;
        if ethertype == ETHERTYPE_VLAN {
            if frame.len() < HEADER_LEN + VLAN_TAG_LEN {
                return Err(ParseError::Truncated("802.1Q tag"));
            }
            let tag = VlanTag::from_tci(u16::from_be_bytes([frame[14], frame[15]]));
            if tag.vid > MAX_VLAN_ID {
                return Err(ParseError::ReservedVlanId);
            }
            vlan = Some(tag);
            ethertype = u16::from_be_bytes([frame[16], frame[17]]);
            offset += VLAN_TAG_LEN;
        }
        let header = EthernetHeader {
            dst,
            src,
            vlan,
            ethertype,
        };
        Ok((header, &frame[offset..]))
    }

    /// The header's length on the wire: 14, or 18 with a tag.
    pub fn wire_len(&self) -> usize {
        HEADER_LEN + if self.vlan.is_some() { VLAN_TAG_LEN } else { 0 }
    }

    /// Appends the header's bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.dst.octets());
        out.extend_from_slice(&self.src.octets());
        if let Some(tag) = self.vlan {
            out.extend_from_slice(&ETHERTYPE_VLAN.to_be_bytes());
            out.extend_from_slice(&tag.tci().to_be_bytes());
        }
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }

    /// A whole frame: this header, then `payload`, then zero padding up to
    /// [`MIN_FRAME_LEN`].
    pub fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity((self.wire_len() + payload.len()).max(MIN_FRAME_LEN));
        self.write(&mut out);
        out.extend_from_slice(payload);
        if out.len() < MIN_FRAME_LEN {
            out.resize(MIN_FRAME_LEN, 0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x0a);
    const B: MacAddr = MacAddr::new(0x02, 0, 0, 0, 0, 0x0b);

    #[test]
    fn untagged_round_trip_and_padding() {
        let header = EthernetHeader {
            dst: B,
            src: A,
            vlan: None,
            ethertype: ETHERTYPE_ARP,
        };
        let frame = header.frame(&[0xde, 0xad]);
        let mut expected = vec![
            0x02, 0, 0, 0, 0, 0x0b, // dst
            0x02, 0, 0, 0, 0, 0x0a, // src
            0x08, 0x06, // ARP
            0xde, 0xad, // payload
        ];
        expected.resize(60, 0);
        assert_eq!(frame, expected);
        let (parsed, payload) = EthernetHeader::parse(&frame).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(&payload[..2], &[0xde, 0xad]);
        assert_eq!(payload.len(), 60 - 14);
    }

    #[test]
    fn tagged_round_trip() {
        let header = EthernetHeader {
            dst: MacAddr::BROADCAST,
            src: A,
            vlan: Some(VlanTag {
                pcp: 5,
                dei: true,
                vid: 0x123,
            }),
            ethertype: ETHERTYPE_IPV6,
        };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        assert_eq!(
            bytes,
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // dst
                0x02, 0, 0, 0, 0, 0x0a, // src
                0x81, 0x00, // 802.1Q TPID
                0xb1, 0x23, // PCP 5, DEI 1, VID 0x123
                0x86, 0xdd, // IPv6
            ]
        );
        assert_eq!(header.wire_len(), 18);
        let (parsed, payload) = EthernetHeader::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert!(payload.is_empty());
    }

    #[test]
    fn rejects_bad_headers() {
        assert_eq!(
            EthernetHeader::parse(&[0; 13]),
            Err(ParseError::Truncated("ethernet header"))
        );
        let mut tagged = vec![0u8; 16];
        tagged[12..14].copy_from_slice(&[0x81, 0x00]);
        assert_eq!(
            EthernetHeader::parse(&tagged),
            Err(ParseError::Truncated("802.1Q tag"))
        );
        tagged.extend_from_slice(&[0x08, 0x06]);
        tagged[14..16].copy_from_slice(&[0x0f, 0xff]);
        assert_eq!(
            EthernetHeader::parse(&tagged),
            Err(ParseError::ReservedVlanId)
        );
    }
}
