//! OPEN message (RFC 4271 §4.2) with capabilities (RFC 5492) and extended
//! optional parameters length (RFC 9072).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};

use crate::error::{DecodeError, EncodeError};
use crate::message::attribute::as_path::to_two_octet;
use crate::message::capability::Capability;
use crate::message::notification::{BGP_VERSION, ErrorCode, Notification, OpenSubcode};
use crate::prefix::AddressFamily;
use crate::wire;

/// Optional parameter type carrying capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// Non-Ext OP Type announcing the extended format (RFC 9072 §2).
const PARAM_EXTENDED_LENGTH: u8 = 255;

/// An OPEN message. The version is always 4: decoding any other version is
/// an error with the NOTIFICATION RFC 4271 §6.2 asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Open {
    /// My Autonomous System: the sender's AS, or AS_TRANS when it needs four
    /// octets (the real AS is then in the four-octet AS capability).
    pub my_as: u16,
    /// Proposed hold time in seconds: 0 or at least 3.
    pub hold_time: u16,
    /// BGP identifier, non-zero (RFC 6286).
    pub bgp_identifier: Ipv4Addr,
    /// Capabilities, in the order received. Routers put them in one or
    /// several Capabilities parameters; this list flattens them.
    pub capabilities: Vec<Capability>,
}

impl Open {
    /// Builds an OPEN for `asn`: My AS is `asn` or AS_TRANS, and a
    /// four-octet AS capability carrying `asn` is added unless present.
    pub fn new(
        asn: u32,
        hold_time: u16,
        bgp_identifier: Ipv4Addr,
        mut capabilities: Vec<Capability>,
    ) -> Open {
        if !capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
        {
            capabilities.push(Capability::FourOctetAs(asn));
        }
        Open {
            my_as: to_two_octet(asn) as u16,
            hold_time,
            bgp_identifier,
            capabilities,
        }
    }

    /// The sender's AS: from the four-octet AS capability if present, else
    /// My AS.
    pub fn asn(&self) -> u32 {
        self.four_octet_asn().unwrap_or(u32::from(self.my_as))
    }

    /// The AS in the four-octet AS capability, if sent.
    pub fn four_octet_asn(&self) -> Option<u32> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// Whether a capability with this code was sent.
    pub fn has_capability(&self, code: u8) -> bool {
        self.capabilities.iter().any(|c| c.code() == code)
    }

    /// The families announced with the multiprotocol capability.
    pub fn multiprotocol_families(&self) -> impl Iterator<Item = AddressFamily> + '_ {
        self.capabilities.iter().filter_map(|c| match c {
            Capability::Multiprotocol(f) => Some(*f),
            _ => None,
        })
    }

    /// Appends the body. Capabilities go in Capabilities parameters of at
    /// most 255 octets each; if those exceed the 255-octet optional
    /// parameters field, the RFC 9072 extended format is used instead.
    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_u8(BGP_VERSION);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_slice(&self.bgp_identifier.octets());

        let mut encoded: Vec<BytesMut> = Vec::with_capacity(self.capabilities.len());
        for cap in &self.capabilities {
            let mut b = BytesMut::new();
            cap.encode(&mut b)?;
            encoded.push(b);
        }
        // Greedy grouping into parameters of at most 255 octets.
        let mut groups: Vec<BytesMut> = Vec::new();
        for cap in encoded {
            match groups.last_mut() {
                Some(g) if g.len() + cap.len() <= usize::from(u8::MAX) => g.extend_from_slice(&cap),
                _ => groups.push(cap),
            }
        }
        let normal_len: usize = groups.iter().map(|g| 2 + g.len()).sum();
        // A single capability of 254 or 255 value octets is itself too long
        // for a one-octet parameter length.
        let fits_normal = normal_len <= usize::from(u8::MAX)
            && groups.iter().all(|g| g.len() <= usize::from(u8::MAX));
        if fits_normal {
            out.put_u8(normal_len as u8);
            for g in &groups {
                out.put_u8(PARAM_CAPABILITIES);
                wire::put_u8_len_prefixed(out, g);
            }
        } else {
            // RFC 9072: Non-Ext OP Len 255, Non-Ext OP Type 255, then a
            // two-octet length; each parameter then has a two-octet length.
            let caps_len: usize = groups.iter().map(BytesMut::len).sum();
            let ext_len = 3 + caps_len;
            let ext_len = u16::try_from(ext_len)
                .map_err(|_| EncodeError::OptionalParametersTooLong(ext_len))?;
            out.put_u8(u8::MAX);
            out.put_u8(PARAM_EXTENDED_LENGTH);
            out.put_u16(ext_len);
            out.put_u8(PARAM_CAPABILITIES);
            out.put_u16(caps_len as u16);
            for g in &groups {
                out.put_slice(g);
            }
        }
        Ok(())
    }

    /// Decodes the body (after the header), applying the checks of RFC 4271
    /// §6.2 that need no configuration: version, hold time, identifier and
    /// optional parameter syntax. Checking the peer's AS is left to the
    /// session.
    pub(crate) fn decode_body(body: &[u8]) -> Result<Open, DecodeError> {
        let reset = DecodeError::SessionReset;
        // RFC 4271 §6.2: a malformed optional parameter is reported with
        // subcode 0 (unspecific).
        let malformed = || {
            reset(Notification::new(
                ErrorCode::Open,
                OpenSubcode::Unspecific,
                [],
            ))
        };
        let (rest, version) = wire::u8(body).map_err(|_| malformed())?;
        if version != BGP_VERSION {
            return Err(reset(Notification::unsupported_version()));
        }
        let (rest, my_as) = wire::u16(rest).map_err(|_| malformed())?;
        let (rest, hold_time) = wire::u16(rest).map_err(|_| malformed())?;
        let (rest, bgp_identifier) = wire::ipv4(rest).map_err(|_| malformed())?;
        let (rest, opt_len) = wire::u8(rest).map_err(|_| malformed())?;
        if hold_time == 1 || hold_time == 2 {
            return Err(reset(Notification::unacceptable_hold_time()));
        }
        if bgp_identifier.is_unspecified() {
            return Err(reset(Notification::bad_bgp_identifier()));
        }
        // RFC 7607: AS 0 is never a valid peer AS.
        if my_as == 0 {
            return Err(reset(Notification::bad_peer_as()));
        }

        let extended = opt_len == u8::MAX && rest.first() == Some(&PARAM_EXTENDED_LENGTH);
        let (mut params, extended) = if extended {
            let (rest, _) = wire::u8(rest).map_err(|_| malformed())?;
            let (rest, len) = wire::u16(rest).map_err(|_| malformed())?;
            if rest.len() != usize::from(len) {
                return Err(malformed());
            }
            (rest, true)
        } else {
            if rest.len() != usize::from(opt_len) {
                return Err(malformed());
            }
            (rest, false)
        };

        let mut capabilities = Vec::new();
        while !params.is_empty() {
            let (rest, kind) = wire::u8(params).map_err(|_| malformed())?;
            let (rest, len) = if extended {
                wire::u16(rest).map(|(r, l)| (r, usize::from(l)))
            } else {
                wire::u8(rest).map(|(r, l)| (r, usize::from(l)))
            }
            .map_err(|_| malformed())?;
            let (rest, value) = wire::take(rest, len).map_err(|_| malformed())?;
            if kind != PARAM_CAPABILITIES {
                return Err(reset(Notification::unsupported_optional_parameter()));
            }
            Capability::decode_list(value, &mut capabilities).ok_or_else(malformed)?;
            params = rest;
        }
        let open = Open {
            my_as,
            hold_time,
            bgp_identifier,
            capabilities,
        };
        if open.four_octet_asn() == Some(0) {
            return Err(reset(Notification::bad_peer_as()));
        }
        Ok(open)
    }
}
