//! The fixed IPv6 header (RFC 8200 §3) and the ICMPv6 checksum over the
//! IPv6 pseudo-header (RFC 8200 §8.1, RFC 4443 §2.3).
//!
//! ```text
//! version(4) traffic class(8) flow label(20)
//! payload length(16) next header(8) hop limit(8)
//! source address(128)
//! destination address(128)
//! ```

use std::net::Ipv6Addr;

use super::ParseError;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;

/// The fixed IPv6 header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Header {
    /// Traffic class.
    pub traffic_class: u8,
    /// Flow label (20 bits).
    pub flow_label: u32,
    /// Length of what follows the header, in bytes.
    pub payload_len: u16,
    /// Protocol of the payload (58 for ICMPv6).
    pub next_header: u8,
    /// Hop limit.
    pub hop_limit: u8,
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
}

impl Ipv6Header {
    /// Parses the header at the start of `packet` and returns it with its
    /// payload, cut to the header's payload length (so Ethernet padding
    /// is dropped).
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Header, &[u8]), ParseError> {
        if packet.len() < HEADER_LEN {
            return Err(ParseError::Truncated("IPv6 header"));
        }
        let version = packet[0] >> 4;
        if version != 6 {
            return Err(ParseError::BadIpVersion(version));
        }
        let addr = |at: usize| {
            let octets: [u8; 16] = packet[at..at + 16].try_into().unwrap_or([0; 16]);
            Ipv6Addr::from(octets)
        };
        let header = Ipv6Header {
            traffic_class: (packet[0] << 4) | (packet[1] >> 4),
            flow_label: u32::from_be_bytes([0, packet[1] & 0x0f, packet[2], packet[3]]),
            payload_len: u16::from_be_bytes([packet[4], packet[5]]),
            next_header: packet[6],
            hop_limit: packet[7],
            src: addr(8),
            dst: addr(24),
        };
        let rest = &packet[HEADER_LEN..];
        let payload = rest
            .get(..usize::from(header.payload_len))
            .ok_or(ParseError::BadPayloadLength)?;
        Ok((header, payload))
    }

    /// Appends the header's 40 bytes to `out`.
    pub fn write(&self, out: &mut Vec<u8>) {
        let first =
            (6u32 << 28) | (u32::from(self.traffic_class) << 20) | (self.flow_label & 0x000f_ffff);
        out.extend_from_slice(&first.to_be_bytes());
        out.extend_from_slice(&self.payload_len.to_be_bytes());
        out.push(self.next_header);
        out.push(self.hop_limit);
        out.extend_from_slice(&self.src.octets());
        out.extend_from_slice(&self.dst.octets());
    }
}

/// Adds `data` as big-endian 16-bit words to a 32-bit accumulator; an odd
/// last byte is padded with a zero byte (RFC 1071).
fn add_words(mut sum: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        sum = sum.wrapping_add(u32::from(u16::from_be_bytes([word[0], word[1]])));
        // Fold early so the accumulator can never overflow.
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [last] = chunks.remainder() {
        sum = sum.wrapping_add(u32::from(*last) << 8);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum
}

/// The 16-bit one's complement sum (not yet complemented) of the IPv6
/// pseudo-header for ICMPv6 and `message`.
fn icmpv6_sum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    let mut sum = add_words(0, &src.octets());
    sum = add_words(sum, &dst.octets());
    // Upper-layer packet length (32 bits), three zero bytes, next header.
    let len = u32::try_from(message.len()).unwrap_or(u32::MAX);
    sum = add_words(sum, &len.to_be_bytes());
    sum = add_words(sum, &[0, 0, 0, NEXT_HEADER_ICMPV6]);
    sum = add_words(sum, message);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The ICMPv6 checksum of `message` (whose checksum field, bytes 2..4,
/// must be zero) sent from `src` to `dst` (RFC 4443 §2.3).
pub fn icmpv6_checksum(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> u16 {
    !icmpv6_sum(src, dst, message)
}

/// True when `message`, checksum field included, sums to all ones: the
/// checksum is right.
pub fn icmpv6_checksum_ok(src: Ipv6Addr, dst: Ipv6Addr, message: &[u8]) -> bool {
    icmpv6_sum(src, dst, message) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let header = Ipv6Header {
            traffic_class: 0xab,
            flow_label: 0x0c_def0,
            payload_len: 4,
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: 255,
            src: "fe80::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        };
        let mut bytes = Vec::new();
        header.write(&mut bytes);
        assert_eq!(&bytes[..8], &[0x6a, 0xbc, 0xde, 0xf0, 0x00, 0x04, 58, 255]);
        assert_eq!(bytes.len(), HEADER_LEN);
        bytes.extend_from_slice(&[1, 2, 3, 4, 0, 0]); // payload, then padding
        let (parsed, payload) = Ipv6Header::parse(&bytes).unwrap();
        assert_eq!(parsed, header);
        assert_eq!(payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn header_errors() {
        assert_eq!(
            Ipv6Header::parse(&[0x60; 39]),
            Err(ParseError::Truncated("IPv6 header"))
        );
        let mut bytes = vec![0u8; 40];
        bytes[0] = 0x40;
        assert_eq!(Ipv6Header::parse(&bytes), Err(ParseError::BadIpVersion(4)));
        bytes[0] = 0x60;
        bytes[5] = 1; // payload length 1, nothing follows
        assert_eq!(Ipv6Header::parse(&bytes), Err(ParseError::BadPayloadLength));
    }

    #[test]
    fn checksum_of_odd_length_and_verification() {
        let src: Ipv6Addr = "fe80::1".parse().unwrap();
        let dst: Ipv6Addr = "ff02::1".parse().unwrap();
        let mut message = vec![128, 0, 0, 0, 0x12, 0x34, 0x00, 0x01, 0xaa];
        let checksum = icmpv6_checksum(src, dst, &message);
        message[2..4].copy_from_slice(&checksum.to_be_bytes());
        assert!(icmpv6_checksum_ok(src, dst, &message));
        message[8] ^= 1;
        assert!(!icmpv6_checksum_ok(src, dst, &message));
    }
}
