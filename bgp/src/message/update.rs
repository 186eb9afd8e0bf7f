//! UPDATE message (RFC 4271 §4.3) with RFC 7606 error classification and
//! End-of-RIB markers (RFC 4724 §2).

use bytes::{BufMut, BytesMut};

use crate::error::{AttributeError, AttributeProblem, DecodeError, EncodeError};
use crate::message::CodecContext;
use crate::message::attribute::{Malformed, MpUnreach, PathAttributes, type_code};
use crate::message::notification::{Notification, UpdateSubcode};
use crate::prefix::{AddressFamily, Ipv4Prefix, Prefix};
use crate::wire;

/// An UPDATE message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Update {
    /// IPv4 unicast prefixes withdrawn (the classic field).
    pub withdrawn: Vec<Ipv4Prefix>,
    /// Path attributes, including MP_REACH_NLRI / MP_UNREACH_NLRI.
    pub attributes: PathAttributes,
    /// IPv4 unicast prefixes announced (the classic NLRI field).
    pub nlri: Vec<Ipv4Prefix>,
}

/// An UPDATE that decoded, possibly after attribute discard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedUpdate {
    /// The message, without any discarded attribute.
    pub update: Update,
    /// Attributes that were discarded (RFC 7606 "attribute discard") and
    /// repeated attributes dropped (RFC 7606 §3(g)): worth logging.
    pub discarded: Vec<AttributeError>,
}

impl Update {
    /// The End-of-RIB marker for `family` (RFC 4724 §2): an empty UPDATE for
    /// IPv4 unicast, otherwise an UPDATE with only an empty MP_UNREACH_NLRI.
    pub fn end_of_rib(family: AddressFamily) -> Update {
        if family == AddressFamily::IPV4_UNICAST {
            return Update::default();
        }
        Update {
            attributes: PathAttributes {
                mp_unreach: Some(MpUnreach::end_of_rib(family)),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// The family this UPDATE is the End-of-RIB marker of, if it is one.
    pub fn end_of_rib_family(&self) -> Option<AddressFamily> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        if self.attributes.is_empty() {
            return Some(AddressFamily::IPV4_UNICAST);
        }
        let only_unreach = PathAttributes {
            mp_unreach: self.attributes.mp_unreach.clone(),
            ..Default::default()
        };
        match &self.attributes.mp_unreach {
            Some(u) if u.withdrawn.is_empty() && self.attributes == only_unreach => Some(u.family),
            _ => None,
        }
    }

    /// Every announced prefix: the classic NLRI and MP_REACH_NLRI's.
    pub fn announced(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.nlri.iter().copied().map(Prefix::V4).chain(
            self.attributes
                .mp_reach
                .iter()
                .flat_map(|r| r.nlri.iter().copied()),
        )
    }

    /// Every withdrawn prefix: the classic field and MP_UNREACH_NLRI's.
    pub fn withdrawals(&self) -> impl Iterator<Item = Prefix> + '_ {
        self.withdrawn.iter().copied().map(Prefix::V4).chain(
            self.attributes
                .mp_unreach
                .iter()
                .flat_map(|u| u.withdrawn.iter().copied()),
        )
    }

    /// Appends the body (everything after the header).
    pub(crate) fn encode_body(
        &self,
        ctx: &CodecContext,
        out: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        let at = out.len();
        out.put_u16(0);
        for p in &self.withdrawn {
            p.encode(out);
        }
        let withdrawn_len = out.len() - at - 2;
        wire::patch_u16(out, at, clamp_u16(withdrawn_len));
        let at = out.len();
        out.put_u16(0);
        self.attributes.encode(ctx, out)?;
        let attrs_len = out.len() - at - 2;
        wire::patch_u16(out, at, clamp_u16(attrs_len));
        for p in &self.nlri {
            p.encode(out);
        }
        // Lengths above 65535 cannot be written, but such a body also
        // exceeds every message limit, which the caller reports.
        Ok(())
    }

    /// Decodes the body of an UPDATE, classifying errors per RFC 7606.
    pub(crate) fn decode_body(
        body: &[u8],
        ctx: &CodecContext,
    ) -> Result<DecodedUpdate, DecodeError> {
        let malformed_list = || {
            DecodeError::SessionReset(Notification::update_error(
                UpdateSubcode::MalformedAttributeList,
                [],
            ))
        };
        // Withdrawn Routes Length / Total Path Attribute Length that do not
        // fit the message leave the NLRI unlocatable: RFC 4271 §6.3, kept by
        // RFC 7606.
        let (rest, withdrawn_len) = wire::u16(body).map_err(|_| malformed_list())?;
        let (rest, withdrawn_raw) =
            wire::take(rest, usize::from(withdrawn_len)).map_err(|_| malformed_list())?;
        let (rest, attrs_len) = wire::u16(rest).map_err(|_| malformed_list())?;
        let (nlri_raw, attrs_raw) =
            wire::take(rest, usize::from(attrs_len)).map_err(|_| malformed_list())?;

        // NLRI syntax errors call for a session reset (RFC 7606 §5.3).
        let invalid_network = |_| {
            DecodeError::SessionReset(Notification::update_error(
                UpdateSubcode::InvalidNetworkField,
                [],
            ))
        };
        let withdrawn = Ipv4Prefix::decode_all(withdrawn_raw).map_err(invalid_network)?;
        let nlri = Ipv4Prefix::decode_all(nlri_raw).map_err(invalid_network)?;

        let mut attributes = PathAttributes::default();
        let mut discarded = Vec::new();
        let mut withdraw_reason: Option<AttributeError> = None;
        let mut seen = [false; 256];
        let mut input = attrs_raw;
        while !input.is_empty() {
            let Some(AttributeSlice {
                flags: attr_flags,
                code,
                value,
                raw,
                rest,
            }) = split_attribute(input)
            else {
                // RFC 7606 §4: the last attribute overruns the field, or
                // too few octets remain for a header. The NLRI is still
                // located by the Total Path Attribute Length.
                let code = input.get(1).copied().unwrap_or(0);
                withdraw_reason.get_or_insert(AttributeError::new(code, AttributeProblem::Overrun));
                break;
            };
            input = rest;
            if std::mem::replace(&mut seen[usize::from(code)], true) {
                if code == type_code::MP_REACH_NLRI || code == type_code::MP_UNREACH_NLRI {
                    return Err(malformed_list());
                }
                discarded.push(AttributeError::new(code, AttributeProblem::Duplicate));
                continue;
            }
            match attributes.decode_one(attr_flags, code, value, raw, ctx) {
                Ok(()) => {}
                Err(Malformed::SessionReset(n)) => return Err(DecodeError::SessionReset(n)),
                Err(Malformed::TreatAsWithdraw(e)) => {
                    withdraw_reason.get_or_insert(e);
                }
                Err(Malformed::Discard(e)) => discarded.push(e),
            }
        }

        let update = Update {
            withdrawn,
            attributes,
            nlri,
        };
        let reason = withdraw_reason.or_else(|| update.missing_mandatory(ctx));
        if let Some(reason) = reason {
            let prefixes = update.withdrawals().chain(update.announced()).collect();
            return Err(DecodeError::TreatAsWithdraw { prefixes, reason });
        }
        Ok(DecodedUpdate { update, discarded })
    }

    /// The first mandatory well-known attribute missing for the routes this
    /// UPDATE announces (RFC 4271 §5, RFC 4760 §3).
    fn missing_mandatory(&self, ctx: &CodecContext) -> Option<AttributeError> {
        let attrs = &self.attributes;
        let classic = !self.nlri.is_empty();
        if !classic && attrs.mp_reach.is_none() {
            return None;
        }
        let missing = if attrs.origin.is_none() {
            type_code::ORIGIN
        } else if attrs.as_path.is_none() {
            type_code::AS_PATH
        } else if classic && attrs.next_hop.is_none() {
            type_code::NEXT_HOP
        } else if ctx.internal_peer && attrs.local_pref.is_none() {
            type_code::LOCAL_PREF
        } else {
            return None;
        };
        Some(AttributeError::new(missing, AttributeProblem::Missing))
    }
}

/// One attribute split off the front of the path attributes field.
struct AttributeSlice<'a> {
    flags: u8,
    code: u8,
    value: &'a [u8],
    /// The whole attribute: flags, type, length and value.
    raw: &'a [u8],
    /// What follows it.
    rest: &'a [u8],
}

/// Splits one attribute off the front; `None` when the header or the value
/// does not fit in what remains.
fn split_attribute(input: &[u8]) -> Option<AttributeSlice<'_>> {
    let (rest, attr_flags) = wire::u8(input).ok()?;
    let (rest, code) = wire::u8(rest).ok()?;
    let (rest, len) = if attr_flags & crate::message::attribute::flags::EXTENDED_LENGTH != 0 {
        let (rest, len) = wire::u16(rest).ok()?;
        (rest, usize::from(len))
    } else {
        let (rest, len) = wire::u8(rest).ok()?;
        (rest, usize::from(len))
    };
    let header = input.len() - rest.len();
    let (rest, value) = wire::take(rest, len).ok()?;
    Some(AttributeSlice {
        flags: attr_flags,
        code,
        value,
        raw: &input[..header + len],
        rest,
    })
}

fn clamp_u16(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}
