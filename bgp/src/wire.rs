//! Small shared helpers for reading and writing wire formats.
//!
//! Reading goes through `nom`'s complete-input number and byte parsers with
//! the unit error type: every caller maps "not enough bytes" onto the error
//! the RFC in question asks for, so a richer parser error would be thrown
//! away anyway.

use bytes::{BufMut, BytesMut};

/// Result of one parsing step over a byte slice.
pub(crate) type Parsed<'a, T> = nom::IResult<&'a [u8], T, ()>;

pub(crate) fn u8(input: &[u8]) -> Parsed<'_, u8> {
    nom::number::complete::be_u8(input)
}

pub(crate) fn u16(input: &[u8]) -> Parsed<'_, u16> {
    nom::number::complete::be_u16(input)
}

pub(crate) fn u32(input: &[u8]) -> Parsed<'_, u32> {
    nom::number::complete::be_u32(input)
}

/// Takes exactly `count` bytes, failing (without allocating) when fewer remain.
pub(crate) fn take(input: &[u8], count: usize) -> Parsed<'_, &[u8]> {
    nom::bytes::complete::take(count)(input)
}

/// Reads an IPv4 address (4 octets).
pub(crate) fn ipv4(input: &[u8]) -> Parsed<'_, std::net::Ipv4Addr> {
    let (rest, raw) = u32(input)?;
    Ok((rest, std::net::Ipv4Addr::from(raw)))
}

/// Reads an IPv6 address (16 octets).
pub(crate) fn ipv6(input: &[u8]) -> Parsed<'_, std::net::Ipv6Addr> {
    let (rest, raw) = nom::number::complete::be_u128(input)?;
    Ok((rest, std::net::Ipv6Addr::from(raw)))
}

/// Writes a value preceded by a one-octet length. The caller guarantees the
/// value fits (checked with a `debug_assert!`).
pub(crate) fn put_u8_len_prefixed(out: &mut BytesMut, value: &[u8]) {
    debug_assert!(value.len() <= usize::from(u8::MAX));
    out.put_u8(value.len() as u8);
    out.put_slice(value);
}

/// Overwrites a two-octet big-endian length previously reserved at `at`.
pub(crate) fn patch_u16(out: &mut BytesMut, at: usize, value: u16) {
    out[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_input_is_an_error_not_a_panic() {
        assert!(u16(&[1]).is_err());
        assert!(u32(&[1, 2, 3]).is_err());
        assert!(take(&[1, 2], 3).is_err());
        assert!(ipv6(&[0; 15]).is_err());
        assert_eq!(take(&[1, 2, 3], 2).unwrap(), (&[3u8][..], &[1u8, 2][..]));
    }
}
