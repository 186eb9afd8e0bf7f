//! AS_PATH and AS4_PATH (RFC 4271 §4.3, §5.1.2; RFC 5065; RFC 6793).
//!
//! AS numbers are held as four-octet values whatever the wire encoding; the
//! encoding width is chosen at encode time from the session context.

use bytes::{BufMut, BytesMut};

use crate::error::EncodeError;
use crate::wire;

/// The AS number a two-octet field carries in place of a four-octet AS
/// number (RFC 6793 §9).
pub const AS_TRANS: u32 = 23456;

/// Largest number of AS numbers in one segment.
pub const MAX_SEGMENT_LEN: usize = 255;

/// Kind of an AS path segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SegmentType {
    /// 1: unordered set of ASes a route has traversed (aggregation).
    Set,
    /// 2: ordered ASes, most recent first.
    Sequence,
    /// 3: ordered member ASes within a confederation (RFC 5065).
    ConfedSequence,
    /// 4: unordered member ASes within a confederation (RFC 5065).
    ConfedSet,
}

impl SegmentType {
    /// Wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }

    /// Whether this is a confederation segment.
    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }

    fn is_set(self) -> bool {
        matches!(self, SegmentType::Set | SegmentType::ConfedSet)
    }
}

/// One segment of an AS path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AsSegment {
    /// Segment type.
    pub kind: SegmentType,
    /// AS numbers, never empty in a valid path.
    pub asns: Vec<u32>,
}

impl AsSegment {
    /// An AS_SEQUENCE.
    pub fn sequence(asns: impl Into<Vec<u32>>) -> Self {
        AsSegment {
            kind: SegmentType::Sequence,
            asns: asns.into(),
        }
    }

    /// An AS_SET.
    pub fn set(asns: impl Into<Vec<u32>>) -> Self {
        AsSegment {
            kind: SegmentType::Set,
            asns: asns.into(),
        }
    }
}

/// An AS path: a list of segments (possibly none, for routes originated
/// inside the AS).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    /// The segments, leftmost (most recent) first.
    pub segments: Vec<AsSegment>,
}

impl AsPath {
    /// An empty path.
    pub fn new() -> Self {
        AsPath::default()
    }

    /// A path of one AS_SEQUENCE (split into segments of at most 255).
    pub fn from_sequence(asns: impl IntoIterator<Item = u32>) -> Self {
        let asns: Vec<u32> = asns.into_iter().collect();
        AsPath {
            segments: asns
                .chunks(MAX_SEGMENT_LEN)
                .map(AsSegment::sequence)
                .collect(),
        }
    }

    /// Whether the path has no segments.
    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// Path length for route selection and for RFC 6793 §4.2.3: an AS_SET
    /// counts as one, confederation segments count as zero (RFC 4271
    /// §9.1.2.2, RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::Sequence => s.asns.len(),
                SegmentType::Set => 1,
                SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
            })
            .sum()
    }

    /// The leftmost AS of the first AS_SEQUENCE: the neighbour AS for a
    /// route learned over eBGP.
    pub fn first_as(&self) -> Option<u32> {
        self.segments
            .iter()
            .find(|s| !s.kind.is_confed())
            .filter(|s| s.kind == SegmentType::Sequence)
            .and_then(|s| s.asns.first().copied())
    }

    /// The rightmost AS of the last AS_SEQUENCE: the originating AS.
    pub fn origin_as(&self) -> Option<u32> {
        self.segments
            .last()
            .filter(|s| s.kind == SegmentType::Sequence)
            .and_then(|s| s.asns.last().copied())
    }

    /// Every AS number in the path, in order.
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.iter().flat_map(|s| s.asns.iter().copied())
    }

    /// Prepends `asn` as RFC 4271 §5.1.2 says: into the first segment if it
    /// is an AS_SEQUENCE with room, otherwise as a new AS_SEQUENCE.
    pub fn prepend(&mut self, asn: u32) {
        match self.segments.first_mut() {
            Some(s) if s.kind == SegmentType::Sequence && s.asns.len() < MAX_SEGMENT_LEN => {
                s.asns.insert(0, asn);
            }
            _ => self.segments.insert(0, AsSegment::sequence([asn])),
        }
    }

    /// Whether any AS number needs four octets.
    pub fn has_four_octet_asn(&self) -> bool {
        self.asns().any(|a| a > u32::from(u16::MAX))
    }

    /// Parses an AS_PATH (or AS4_PATH, with `four_octet`) value. The error
    /// names the RFC 7606 §7.2 reason the path is malformed.
    pub(crate) fn decode(mut value: &[u8], four_octet: bool) -> Result<AsPath, &'static str> {
        let width = if four_octet { 4 } else { 2 };
        let mut segments = Vec::new();
        while !value.is_empty() {
            let Ok((rest, (kind, count))) = wire::u8(value)
                .and_then(|(rest, kind)| wire::u8(rest).map(|(rest, count)| (rest, (kind, count))))
            else {
                return Err("a single octet follows the last segment");
            };
            let kind = SegmentType::from_u8(kind).ok_or("unknown segment type")?;
            if count == 0 {
                return Err("segment of length zero");
            }
            let (rest, body) = wire::take(rest, usize::from(count) * width)
                .map_err(|_| "segment overruns the attribute")?;
            let asns = if four_octet {
                body.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            segments.push(AsSegment { kind, asns });
            value = rest;
        }
        Ok(AsPath { segments })
    }

    /// Appends the value encoding with two- or four-octet AS numbers. An
    /// AS_SEQUENCE longer than 255 is split; longer sets, empty segments
    /// and (two-octet) AS numbers above 65535 are errors.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut BytesMut) -> Result<(), EncodeError> {
        for seg in &self.segments {
            if seg.asns.is_empty() {
                return Err(EncodeError::EmptyAsPathSegment);
            }
            if seg.kind.is_set() && seg.asns.len() > MAX_SEGMENT_LEN {
                return Err(EncodeError::AsSetTooLong(seg.asns.len()));
            }
            for chunk in seg.asns.chunks(MAX_SEGMENT_LEN) {
                out.put_u8(seg.kind.to_u8());
                out.put_u8(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.put_u32(asn);
                    } else {
                        out.put_u16(
                            u16::try_from(asn).map_err(|_| EncodeError::AsnNotTwoOctet(asn))?,
                        );
                    }
                }
            }
        }
        Ok(())
    }

    /// Rebuilds the full path from the AS_PATH and AS4_PATH received from a
    /// two-octet peer (RFC 6793 §4.2.3).
    ///
    /// Confederation segments in AS4_PATH are dropped (RFC 6793 §3). If
    /// AS_PATH is shorter than AS4_PATH, AS4_PATH is ignored. Otherwise the
    /// leading AS numbers of AS_PATH that AS4_PATH does not cover (the ASes
    /// added by two-octet speakers since) are prepended to AS4_PATH.
    pub fn merge_as4(as_path: &AsPath, as4_path: &AsPath) -> AsPath {
        let as4: Vec<AsSegment> = as4_path
            .segments
            .iter()
            .filter(|s| !s.kind.is_confed())
            .cloned()
            .collect();
        let as4 = AsPath { segments: as4 };
        let (n, m) = (as_path.path_len(), as4.path_len());
        if n < m {
            return as_path.clone();
        }
        let mut keep = n - m;
        let mut out: Vec<AsSegment> = Vec::new();
        for seg in &as_path.segments {
            if keep == 0 && !seg.kind.is_confed() {
                break;
            }
            match seg.kind {
                SegmentType::ConfedSequence | SegmentType::ConfedSet => out.push(seg.clone()),
                SegmentType::Set => {
                    out.push(seg.clone());
                    keep -= 1;
                }
                SegmentType::Sequence => {
                    let take = keep.min(seg.asns.len());
                    out.push(AsSegment::sequence(&seg.asns[..take]));
                    keep -= take;
                }
            }
        }
        for seg in as4.segments {
            match out.last_mut() {
                Some(last)
                    if last.kind == SegmentType::Sequence
                        && seg.kind == SegmentType::Sequence
                        && last.asns.len() + seg.asns.len() <= MAX_SEGMENT_LEN =>
                {
                    last.asns.extend(seg.asns);
                }
                _ => out.push(seg),
            }
        }
        AsPath { segments: out }
    }

    /// Splits the path for a two-octet peer (RFC 6793 §4.2.2): the AS_PATH
    /// to send, with every AS number above 65535 replaced by AS_TRANS, and
    /// the AS4_PATH to send with it, present only when some AS number needed
    /// replacing and carrying no confederation segments.
    pub fn split_for_two_octet(&self) -> (AsPath, Option<AsPath>) {
        let mapped = AsPath {
            segments: self
                .segments
                .iter()
                .map(|s| AsSegment {
                    kind: s.kind,
                    asns: s.asns.iter().map(|&a| to_two_octet(a)).collect(),
                })
                .collect(),
        };
        if !self.has_four_octet_asn() {
            return (mapped, None);
        }
        let as4 = AsPath {
            segments: self
                .segments
                .iter()
                .filter(|s| !s.kind.is_confed())
                .cloned()
                .collect(),
        };
        let as4 = (!as4.is_empty()).then_some(as4);
        (mapped, as4)
    }
}

/// The two-octet representation of `asn`: itself, or AS_TRANS.
pub fn to_two_octet(asn: u32) -> u32 {
    if asn > u32::from(u16::MAX) {
        AS_TRANS
    } else {
        asn
    }
}

impl std::fmt::Display for AsPath {
    /// Conventional text: sequences space-separated, sets in braces,
    /// confederation segments in parentheses / square brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, seg) in self.segments.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            let (open, close, sep) = match seg.kind {
                SegmentType::Sequence => ("", "", " "),
                SegmentType::Set => ("{", "}", ","),
                SegmentType::ConfedSequence => ("(", ")", " "),
                SegmentType::ConfedSet => ("[", "]", ","),
            };
            f.write_str(open)?;
            for (j, asn) in seg.asns.iter().enumerate() {
                if j > 0 {
                    f.write_str(sep)?;
                }
                write!(f, "{asn}")?;
            }
            f.write_str(close)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(p: &AsPath, four: bool) -> Vec<u8> {
        let mut out = BytesMut::new();
        p.encode(four, &mut out).unwrap();
        out.to_vec()
    }

    #[test]
    fn two_and_four_octet_layouts() {
        let p = AsPath {
            segments: vec![AsSegment::sequence([64496, 64497]), AsSegment::set([64500])],
        };
        assert_eq!(
            enc(&p, false),
            [2, 2, 0xfb, 0xf0, 0xfb, 0xf1, 1, 1, 0xfb, 0xf4]
        );
        assert_eq!(
            enc(&p, true),
            [
                2, 2, 0, 0, 0xfb, 0xf0, 0, 0, 0xfb, 0xf1, 1, 1, 0, 0, 0xfb, 0xf4
            ]
        );
        assert_eq!(AsPath::decode(&enc(&p, false), false).unwrap(), p);
        assert_eq!(AsPath::decode(&enc(&p, true), true).unwrap(), p);
        assert_eq!(p.to_string(), "64496 64497 {64500}");
    }

    #[test]
    fn encode_errors_and_splitting() {
        let big = AsPath::from_sequence([65536]);
        assert_eq!(
            big.encode(false, &mut BytesMut::new()),
            Err(EncodeError::AsnNotTwoOctet(65536))
        );
        let empty = AsPath {
            segments: vec![AsSegment::sequence([])],
        };
        assert_eq!(
            empty.encode(true, &mut BytesMut::new()),
            Err(EncodeError::EmptyAsPathSegment)
        );
        let long = AsPath {
            segments: vec![AsSegment::sequence(vec![64496; 300])],
        };
        let bytes = enc(&long, true);
        assert_eq!(bytes.len(), 2 + 255 * 4 + 2 + 45 * 4);
        assert_eq!(
            AsPath::decode(&bytes, true).unwrap(),
            AsPath::from_sequence(vec![64496; 300])
        );
    }

    #[test]
    fn malformed_paths() {
        assert_eq!(
            AsPath::decode(&[5, 1, 0, 1], false),
            Err("unknown segment type")
        );
        assert_eq!(
            AsPath::decode(&[2, 0], false),
            Err("segment of length zero")
        );
        assert_eq!(
            AsPath::decode(&[2, 2, 0, 1, 0], false),
            Err("segment overruns the attribute")
        );
        assert_eq!(
            AsPath::decode(&[2, 1, 0, 1, 2], false),
            Err("a single octet follows the last segment")
        );
        assert_eq!(AsPath::decode(&[], false), Ok(AsPath::new()));
    }

    #[test]
    fn prepend_and_accessors() {
        let mut p = AsPath::new();
        p.prepend(64500);
        p.prepend(64501);
        assert_eq!(p, AsPath::from_sequence([64501, 64500]));
        assert_eq!(p.first_as(), Some(64501));
        assert_eq!(p.origin_as(), Some(64500));
        let mut full = AsPath::from_sequence(vec![1; 255]);
        full.prepend(2);
        assert_eq!(full.segments.len(), 2);
        assert_eq!(full.path_len(), 256);
    }

    #[test]
    fn merge_per_rfc6793() {
        // A four-octet origin 65550, then two-octet ASes 64500 and 64501.
        // The two-octet speaker (64501) prepended itself after AS4_PATH was
        // built, so AS_PATH has one more AS than AS4_PATH.
        let as_path = AsPath::from_sequence([64501, 64500, AS_TRANS]);
        let as4_path = AsPath::from_sequence([64500, 65550]);
        assert_eq!(
            AsPath::merge_as4(&as_path, &as4_path),
            AsPath::from_sequence([64501, 64500, 65550])
        );
        // AS4_PATH longer than AS_PATH: ignored.
        let short = AsPath::from_sequence([AS_TRANS]);
        assert_eq!(AsPath::merge_as4(&short, &as4_path), short);
        // Sets count as one; confed segments of AS4_PATH are dropped.
        let as_path = AsPath {
            segments: vec![
                AsSegment::sequence([64501]),
                AsSegment::set([AS_TRANS, 64502]),
            ],
        };
        let as4_path = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![65551],
                },
                AsSegment::set([65550, 64502]),
            ],
        };
        assert_eq!(
            AsPath::merge_as4(&as_path, &as4_path),
            AsPath {
                segments: vec![AsSegment::sequence([64501]), AsSegment::set([65550, 64502])]
            }
        );
        // Leading confed segments of AS_PATH are kept.
        let as_path = AsPath {
            segments: vec![
                AsSegment {
                    kind: SegmentType::ConfedSequence,
                    asns: vec![64510],
                },
                AsSegment::sequence([AS_TRANS]),
            ],
        };
        assert_eq!(
            AsPath::merge_as4(&as_path, &AsPath::from_sequence([65540])),
            AsPath {
                segments: vec![
                    AsSegment {
                        kind: SegmentType::ConfedSequence,
                        asns: vec![64510]
                    },
                    AsSegment::sequence([65540])
                ]
            }
        );
    }

    #[test]
    fn split_for_two_octet_peer() {
        let p = AsPath::from_sequence([65550, 64500]);
        let (two, four) = p.split_for_two_octet();
        assert_eq!(two, AsPath::from_sequence([AS_TRANS, 64500]));
        assert_eq!(four, Some(p.clone()));
        // Merging back on the receiving side restores the path.
        assert_eq!(AsPath::merge_as4(&two, four.as_ref().unwrap()), p);
        // Only two-octet ASes: no AS4_PATH.
        let p = AsPath::from_sequence([64500, 64501]);
        assert_eq!(p.split_for_two_octet(), (p.clone(), None));
    }
}
