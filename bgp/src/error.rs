//! Decoding outcomes and encoding errors.
//!
//! Decoding follows RFC 7606: an error in a received message is classified
//! by how much of the session it must affect.
//!
//! - [`DecodeError::SessionReset`]: the message cannot be trusted at all; send
//!   the NOTIFICATION and close the session.
//! - [`DecodeError::TreatAsWithdraw`]: the UPDATE is well framed but one of
//!   its route-affecting attributes is malformed; treat every prefix it
//!   carries as withdrawn and keep the session.
//! - attribute discard: the message decodes without the offending attribute
//!   and an [`AttributeError`] note is returned next to it (see
//!   [`Decoded`](crate::message::Decoded)).

use std::fmt;

use crate::message::notification::Notification;
use crate::prefix::{AddressFamily, Prefix};

/// A received message that must not be (fully) acted on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Send this NOTIFICATION and reset the session.
    #[error("session reset: {0}")]
    SessionReset(Notification),
    /// Keep the session; withdraw these prefixes (RFC 7606 §2).
    #[error("treat-as-withdraw of {} prefixes: {reason}", prefixes.len())]
    TreatAsWithdraw {
        /// Every prefix of the UPDATE: withdrawn routes, NLRI, and the NLRI
        /// of MP_REACH_NLRI and MP_UNREACH_NLRI.
        prefixes: Vec<Prefix>,
        /// The first error that called for treat-as-withdraw.
        reason: AttributeError,
    },
}

impl DecodeError {
    /// The NOTIFICATION to send, for a session reset.
    pub fn notification(&self) -> Option<&Notification> {
        match self {
            DecodeError::SessionReset(n) => Some(n),
            DecodeError::TreatAsWithdraw { .. } => None,
        }
    }
}

/// What was wrong with one path attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttributeProblem {
    /// The Optional or Transitive flag conflicts with the attribute type.
    FlagsConflict {
        /// The flags octet received.
        flags: u8,
    },
    /// The length is not one the attribute allows.
    BadLength {
        /// The length received.
        len: usize,
    },
    /// The value is not one the attribute allows.
    InvalidValue(&'static str),
    /// A second occurrence of the attribute (RFC 7606 §3(g)); dropped.
    Duplicate,
    /// A mandatory well-known attribute is missing (RFC 7606 §3).
    Missing,
    /// The attribute overruns the path attributes field, or fewer octets
    /// remain than an attribute header needs (RFC 7606 §4).
    Overrun,
    /// LOCAL_PREF from an external peer (RFC 7606 §7.5).
    FromExternalPeer,
    /// AS4_PATH or AS4_AGGREGATOR from a peer that negotiated four-octet AS
    /// numbers (RFC 6793 §4.1).
    FromFourOctetPeer,
}

/// A classified problem with one path attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AttributeError {
    /// The attribute type code (0 when the header itself could not be read).
    pub type_code: u8,
    /// What was wrong.
    pub problem: AttributeProblem,
}

impl AttributeError {
    pub(crate) fn new(type_code: u8, problem: AttributeProblem) -> Self {
        AttributeError { type_code, problem }
    }
}

impl fmt::Display for AttributeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = crate::message::attribute::type_name(self.type_code);
        write!(f, "{name} (type {}): ", self.type_code)?;
        match self.problem {
            AttributeProblem::FlagsConflict { flags } => {
                write!(f, "flags {flags:#04x} conflict with the type")
            }
            AttributeProblem::BadLength { len } => write!(f, "invalid length {len}"),
            AttributeProblem::InvalidValue(what) => write!(f, "invalid value: {what}"),
            AttributeProblem::Duplicate => f.write_str("repeated; later copy discarded"),
            AttributeProblem::Missing => f.write_str("mandatory attribute missing"),
            AttributeProblem::Overrun => f.write_str("overruns the path attributes field"),
            AttributeProblem::FromExternalPeer => f.write_str("not accepted from an external peer"),
            AttributeProblem::FromFourOctetPeer => {
                f.write_str("not accepted from a four-octet AS peer")
            }
        }
    }
}

impl std::error::Error for AttributeError {}

/// Why a message could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The message exceeds the negotiated maximum length.
    #[error("message of {len} octets exceeds the maximum of {max}")]
    MessageTooLong {
        /// Encoded length.
        len: usize,
        /// Maximum allowed.
        max: usize,
    },
    /// A four-octet AS number cannot be sent to a two-octet peer as is; use
    /// [`PathAttributes::for_two_octet_peer`](crate::message::attribute::PathAttributes::for_two_octet_peer).
    #[error("AS {0} does not fit in two octets")]
    AsnNotTwoOctet(u32),
    /// An AS_PATH segment has no AS numbers.
    #[error("empty AS_PATH segment")]
    EmptyAsPathSegment,
    /// An AS_SET or AS_CONFED_SET has more than 255 members.
    #[error("AS set of {0} members exceeds 255")]
    AsSetTooLong(usize),
    /// An attribute value exceeds 65535 octets.
    #[error("attribute type {type_code} of {len} octets exceeds 65535")]
    AttributeTooLong {
        /// Attribute type code.
        type_code: u8,
        /// Value length.
        len: usize,
    },
    /// A capability value exceeds 255 octets.
    #[error("capability {code} of {len} octets exceeds 255")]
    CapabilityTooLong {
        /// Capability code.
        code: u8,
        /// Value length.
        len: usize,
    },
    /// The optional parameters exceed 65535 octets.
    #[error("optional parameters of {0} octets are too long")]
    OptionalParametersTooLong(usize),
    /// Graceful restart time exceeds its 12 bits.
    #[error("graceful restart time {0} exceeds 4095")]
    RestartTimeTooLarge(u16),
    /// A prefix does not belong to the family it is sent under.
    #[error("prefix {prefix} does not belong to {family}")]
    FamilyMismatch {
        /// The family.
        family: AddressFamily,
        /// The prefix.
        prefix: Prefix,
    },
    /// The next hop cannot be used for the family.
    #[error("next hop not usable for {0}")]
    NextHopMismatch(AddressFamily),
    /// The codec cannot encode NLRI of this family.
    #[error("address family {0} is not supported")]
    UnsupportedFamily(AddressFamily),
}
