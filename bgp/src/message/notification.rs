//! NOTIFICATION message (RFC 4271 §4.5, §6), its error codes and subcodes,
//! and the shutdown communication of RFC 8203 as revised by RFC 9003.

use std::fmt;

use bytes::{BufMut, BytesMut};

use crate::error::DecodeError;
use crate::message::capability::Capability;

/// The BGP version this codec speaks.
pub const BGP_VERSION: u8 = 4;

/// Longest shutdown communication in octets (RFC 9003).
pub const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;

/// NOTIFICATION error codes (IANA "BGP Error (Notification) Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: Message Header Error.
    MessageHeader,
    /// 2: OPEN Message Error.
    Open,
    /// 3: UPDATE Message Error.
    Update,
    /// 4: Hold Timer Expired.
    HoldTimerExpired,
    /// 5: Finite State Machine Error (RFC 6608).
    Fsm,
    /// 6: Cease (RFC 4486).
    Cease,
    /// 7: ROUTE-REFRESH Message Error (RFC 7313).
    RouteRefresh,
    /// Any other code, kept as received.
    Other(u8),
}

impl From<u8> for ErrorCode {
    fn from(v: u8) -> Self {
        match v {
            1 => ErrorCode::MessageHeader,
            2 => ErrorCode::Open,
            3 => ErrorCode::Update,
            4 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::Fsm,
            6 => ErrorCode::Cease,
            7 => ErrorCode::RouteRefresh,
            other => ErrorCode::Other(other),
        }
    }
}

impl From<ErrorCode> for u8 {
    fn from(c: ErrorCode) -> u8 {
        match c {
            ErrorCode::MessageHeader => 1,
            ErrorCode::Open => 2,
            ErrorCode::Update => 3,
            ErrorCode::HoldTimerExpired => 4,
            ErrorCode::Fsm => 5,
            ErrorCode::Cease => 6,
            ErrorCode::RouteRefresh => 7,
            ErrorCode::Other(v) => v,
        }
    }
}

macro_rules! subcodes {
    ($(#[$doc:meta])* $name:ident {
        $($(#[$vdoc:meta])* $variant:ident = $value:expr => $text:expr,)*
    }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name {
            $($(#[$vdoc])* $variant = $value,)*
        }

        impl $name {
            /// The subcode's name as the RFC (or IANA registry) spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }

        impl From<$name> for u8 {
            fn from(s: $name) -> u8 {
                s as u8
            }
        }

        impl TryFrom<u8> for $name {
            type Error = u8;

            fn try_from(v: u8) -> Result<Self, u8> {
                match v {
                    $($value => Ok($name::$variant),)*
                    other => Err(other),
                }
            }
        }
    };
}

subcodes!(
    /// Message Header Error subcodes (RFC 4271 §4.5).
    HeaderSubcode {
        /// 1: the marker is not all ones.
        ConnectionNotSynchronized = 1 => "Connection Not Synchronized",
        /// 2: the length field is out of range for the message.
        BadMessageLength = 2 => "Bad Message Length",
        /// 3: unknown message type.
        BadMessageType = 3 => "Bad Message Type",
    }
);

subcodes!(
    /// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492, RFC 9234).
    OpenSubcode {
        /// 0: a recognised optional parameter is malformed (RFC 4271 §6.2).
        Unspecific = 0 => "Unspecific",
        /// 1: version not supported; data is our version, two octets.
        UnsupportedVersionNumber = 1 => "Unsupported Version Number",
        /// 2: the peer's AS is not the expected one.
        BadPeerAs = 2 => "Bad Peer AS",
        /// 3: the BGP identifier is not acceptable.
        BadBgpIdentifier = 3 => "Bad BGP Identifier",
        /// 4: an optional parameter type is not supported.
        UnsupportedOptionalParameter = 4 => "Unsupported Optional Parameter",
        /// 6: hold time 1 or 2 seconds, or refused by policy.
        UnacceptableHoldTime = 6 => "Unacceptable Hold Time",
        /// 7: a required capability is missing (RFC 5492).
        UnsupportedCapability = 7 => "Unsupported Capability",
        /// 11: BGP role mismatch (RFC 9234).
        RoleMismatch = 11 => "Role Mismatch",
    }
);

subcodes!(
    /// UPDATE Message Error subcodes (RFC 4271 §4.5).
    UpdateSubcode {
        /// 1: the attribute list cannot be parsed.
        MalformedAttributeList = 1 => "Malformed Attribute List",
        /// 2: a well-known attribute is not recognised.
        UnrecognizedWellKnownAttribute = 2 => "Unrecognized Well-known Attribute",
        /// 3: a mandatory well-known attribute is missing.
        MissingWellKnownAttribute = 3 => "Missing Well-known Attribute",
        /// 4: attribute flags conflict with the type.
        AttributeFlagsError = 4 => "Attribute Flags Error",
        /// 5: attribute length conflicts with the type.
        AttributeLengthError = 5 => "Attribute Length Error",
        /// 6: undefined ORIGIN value.
        InvalidOriginAttribute = 6 => "Invalid ORIGIN Attribute",
        /// 8: NEXT_HOP is syntactically incorrect.
        InvalidNextHopAttribute = 8 => "Invalid NEXT_HOP Attribute",
        /// 9: an optional attribute is incorrect.
        OptionalAttributeError = 9 => "Optional Attribute Error",
        /// 10: the NLRI field is syntactically incorrect.
        InvalidNetworkField = 10 => "Invalid Network Field",
        /// 11: AS_PATH is malformed.
        MalformedAsPath = 11 => "Malformed AS_PATH",
    }
);

subcodes!(
    /// Finite State Machine Error subcodes (RFC 6608).
    FsmSubcode {
        /// 0: unspecified.
        Unspecified = 0 => "Unspecified Error",
        /// 1: unexpected message in OpenSent.
        UnexpectedMessageInOpenSent = 1 => "Receive Unexpected Message in OpenSent State",
        /// 2: unexpected message in OpenConfirm.
        UnexpectedMessageInOpenConfirm = 2 => "Receive Unexpected Message in OpenConfirm State",
        /// 3: unexpected message in Established.
        UnexpectedMessageInEstablished = 3 => "Receive Unexpected Message in Established State",
    }
);

subcodes!(
    /// Cease subcodes (RFC 4486, RFC 8538, RFC 9384).
    CeaseSubcode {
        /// 1: maximum number of prefixes reached.
        MaximumPrefixesReached = 1 => "Maximum Number of Prefixes Reached",
        /// 2: administrative shutdown (may carry a shutdown communication).
        AdministrativeShutdown = 2 => "Administrative Shutdown",
        /// 3: peer de-configured.
        PeerDeconfigured = 3 => "Peer De-configured",
        /// 4: administrative reset (may carry a shutdown communication).
        AdministrativeReset = 4 => "Administrative Reset",
        /// 5: connection rejected.
        ConnectionRejected = 5 => "Connection Rejected",
        /// 6: other configuration change.
        OtherConfigurationChange = 6 => "Other Configuration Change",
        /// 7: connection collision resolution.
        ConnectionCollisionResolution = 7 => "Connection Collision Resolution",
        /// 8: out of resources.
        OutOfResources = 8 => "Out of Resources",
        /// 9: hard reset (RFC 8538).
        HardReset = 9 => "Hard Reset",
        /// 10: BFD down (RFC 9384).
        BfdDown = 10 => "BFD Down",
    }
);

subcodes!(
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    RouteRefreshSubcode {
        /// 1: the message length is invalid for its subtype.
        InvalidMessageLength = 1 => "Invalid Message Length",
    }
);

/// Why a shutdown communication could not be read (RFC 9003 §2).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShutdownCommunicationError {
    /// The length octet claims more bytes than the data holds.
    #[error("shutdown communication length {claimed} exceeds the {present} octets present")]
    Truncated {
        /// The length octet.
        claimed: usize,
        /// Octets after the length octet.
        present: usize,
    },
    /// The text is not UTF-8.
    #[error("shutdown communication is not valid UTF-8")]
    InvalidUtf8,
}

/// A NOTIFICATION message: error code, subcode and data, kept as received so
/// that unknown codes survive a round trip. The constructors build the data
/// field RFC 4271 §6 asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Notification {
    /// Error code.
    pub code: ErrorCode,
    /// Error subcode (0 where the code defines none).
    pub subcode: u8,
    /// Data, whose meaning depends on code and subcode.
    pub data: Vec<u8>,
}

impl Notification {
    /// Builds a notification from its parts.
    pub fn new(code: ErrorCode, subcode: impl Into<u8>, data: impl Into<Vec<u8>>) -> Self {
        Notification {
            code,
            subcode: subcode.into(),
            data: data.into(),
        }
    }

    /// Message Header Error / Connection Not Synchronized (marker not all ones).
    pub fn connection_not_synchronized() -> Self {
        Self::new(
            ErrorCode::MessageHeader,
            HeaderSubcode::ConnectionNotSynchronized,
            [],
        )
    }

    /// Message Header Error / Bad Message Length; data is the erroneous
    /// length field.
    pub fn bad_message_length(length: u16) -> Self {
        Self::new(
            ErrorCode::MessageHeader,
            HeaderSubcode::BadMessageLength,
            length.to_be_bytes(),
        )
    }

    /// Message Header Error / Bad Message Type; data is the type octet.
    pub fn bad_message_type(message_type: u8) -> Self {
        Self::new(
            ErrorCode::MessageHeader,
            HeaderSubcode::BadMessageType,
            [message_type],
        )
    }

    /// OPEN Message Error / Unsupported Version Number; data is the largest
    /// version we support, as two octets.
    pub fn unsupported_version() -> Self {
        Self::new(
            ErrorCode::Open,
            OpenSubcode::UnsupportedVersionNumber,
            u16::from(BGP_VERSION).to_be_bytes(),
        )
    }

    /// OPEN Message Error / Bad Peer AS.
    pub fn bad_peer_as() -> Self {
        Self::new(ErrorCode::Open, OpenSubcode::BadPeerAs, [])
    }

    /// OPEN Message Error / Bad BGP Identifier.
    pub fn bad_bgp_identifier() -> Self {
        Self::new(ErrorCode::Open, OpenSubcode::BadBgpIdentifier, [])
    }

    /// OPEN Message Error / Unsupported Optional Parameter.
    pub fn unsupported_optional_parameter() -> Self {
        Self::new(
            ErrorCode::Open,
            OpenSubcode::UnsupportedOptionalParameter,
            [],
        )
    }

    /// OPEN Message Error / Unacceptable Hold Time.
    pub fn unacceptable_hold_time() -> Self {
        Self::new(ErrorCode::Open, OpenSubcode::UnacceptableHoldTime, [])
    }

    /// OPEN Message Error / Unsupported Capability (RFC 5492 §5); data lists
    /// the capabilities (code, length, value) that we require and the peer
    /// lacks.
    pub fn unsupported_capability(capabilities: &[Capability]) -> Self {
        let mut data = BytesMut::new();
        for cap in capabilities {
            // A capability longer than 255 octets cannot have come from a
            // peer; truncating its value keeps the data well formed.
            cap.encode_truncated(&mut data);
        }
        Self::new(
            ErrorCode::Open,
            OpenSubcode::UnsupportedCapability,
            data.to_vec(),
        )
    }

    /// UPDATE Message Error with the given subcode and data.
    pub fn update_error(subcode: UpdateSubcode, data: impl Into<Vec<u8>>) -> Self {
        Self::new(ErrorCode::Update, subcode, data)
    }

    /// Hold Timer Expired.
    pub fn hold_timer_expired() -> Self {
        Self::new(ErrorCode::HoldTimerExpired, 0, [])
    }

    /// Finite State Machine Error with the given subcode.
    pub fn fsm_error(subcode: FsmSubcode) -> Self {
        Self::new(ErrorCode::Fsm, subcode, [])
    }

    /// Cease with the given subcode and no data.
    pub fn cease(subcode: CeaseSubcode) -> Self {
        Self::new(ErrorCode::Cease, subcode, [])
    }

    /// Cease / Administrative Shutdown carrying a shutdown communication
    /// (RFC 9003). Text longer than 255 octets is cut at a character boundary.
    pub fn administrative_shutdown(message: &str) -> Self {
        Self::cease_with_communication(CeaseSubcode::AdministrativeShutdown, message)
    }

    /// Cease / Administrative Reset carrying a shutdown communication
    /// (RFC 9003). Text longer than 255 octets is cut at a character boundary.
    pub fn administrative_reset(message: &str) -> Self {
        Self::cease_with_communication(CeaseSubcode::AdministrativeReset, message)
    }

    fn cease_with_communication(subcode: CeaseSubcode, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message.as_bytes()[..end];
        let mut data = Vec::with_capacity(1 + text.len());
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Self::new(ErrorCode::Cease, subcode, data)
    }

    /// The error code as a number.
    pub fn code_value(&self) -> u8 {
        self.code.into()
    }

    /// The name of the subcode, when the code defines it and we know it
    /// (for example "BFD Down" for Cease / 10, RFC 9384).
    pub fn subcode_name(&self) -> Option<&'static str> {
        let s = self.subcode;
        match self.code {
            ErrorCode::MessageHeader => HeaderSubcode::try_from(s).ok().map(HeaderSubcode::name),
            ErrorCode::Open => OpenSubcode::try_from(s).ok().map(OpenSubcode::name),
            ErrorCode::Update => UpdateSubcode::try_from(s).ok().map(UpdateSubcode::name),
            ErrorCode::Fsm => FsmSubcode::try_from(s).ok().map(FsmSubcode::name),
            ErrorCode::Cease => CeaseSubcode::try_from(s).ok().map(CeaseSubcode::name),
            ErrorCode::RouteRefresh => RouteRefreshSubcode::try_from(s)
                .ok()
                .map(RouteRefreshSubcode::name),
            ErrorCode::HoldTimerExpired | ErrorCode::Other(_) => None,
        }
    }

    /// Whether this is Cease with the given subcode.
    pub fn is_cease(&self, subcode: CeaseSubcode) -> bool {
        self.code == ErrorCode::Cease && self.subcode == u8::from(subcode)
    }

    /// The shutdown communication of a Cease / Administrative Shutdown or
    /// Administrative Reset: `Ok(None)` for other notifications or when the
    /// data is empty. Octets after the communication are ignored.
    pub fn shutdown_communication(&self) -> Result<Option<String>, ShutdownCommunicationError> {
        if !(self.is_cease(CeaseSubcode::AdministrativeShutdown)
            || self.is_cease(CeaseSubcode::AdministrativeReset))
        {
            return Ok(None);
        }
        let Some((&len, rest)) = self.data.split_first() else {
            return Ok(None);
        };
        let len = usize::from(len);
        let text = rest
            .get(..len)
            .ok_or(ShutdownCommunicationError::Truncated {
                claimed: len,
                present: rest.len(),
            })?;
        let text =
            std::str::from_utf8(text).map_err(|_| ShutdownCommunicationError::InvalidUtf8)?;
        if text.is_empty() {
            return Ok(None);
        }
        Ok(Some(text.to_owned()))
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) {
        out.put_u8(self.code.into());
        out.put_u8(self.subcode);
        out.put_slice(&self.data);
    }

    /// Decodes the body (after the header); the header check guarantees at
    /// least two octets, but a shorter body is still reported, not panicked on.
    pub(crate) fn decode_body(body: &[u8], length: u16) -> Result<Self, DecodeError> {
        match body {
            [code, subcode, data @ ..] => Ok(Notification {
                code: ErrorCode::from(*code),
                subcode: *subcode,
                data: data.to_vec(),
            }),
            _ => Err(DecodeError::SessionReset(Notification::bad_message_length(
                length,
            ))),
        }
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code_value();
        let name = match self.code {
            ErrorCode::MessageHeader => "message header error",
            ErrorCode::Open => "OPEN message error",
            ErrorCode::Update => "UPDATE message error",
            ErrorCode::HoldTimerExpired => "hold timer expired",
            ErrorCode::Fsm => "finite state machine error",
            ErrorCode::Cease => "cease",
            ErrorCode::RouteRefresh => "ROUTE-REFRESH message error",
            ErrorCode::Other(_) => "unknown error",
        };
        match self.subcode_name() {
            Some(sub) => write!(f, "{name} / {sub} ({code}/{})", self.subcode)?,
            None => write!(f, "{name} ({code}/{})", self.subcode)?,
        }
        if let Ok(Some(text)) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        } else if !self.data.is_empty() {
            write!(f, ", data")?;
            for b in &self.data {
                write!(f, " {b:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_fields_follow_rfc4271() {
        let n = Notification::bad_message_length(4097);
        assert_eq!(
            (n.code_value(), n.subcode, &n.data[..]),
            (1, 2, &[0x10, 0x01][..])
        );
        let n = Notification::unsupported_version();
        assert_eq!(
            (n.code_value(), n.subcode, &n.data[..]),
            (2, 1, &[0, 4][..])
        );
        let n = Notification::bad_message_type(9);
        assert_eq!((n.code_value(), n.subcode, &n.data[..]), (1, 3, &[9][..]));
        let n = Notification::unsupported_capability(&[Capability::FourOctetAs(65550)]);
        assert_eq!(
            (n.code_value(), n.subcode, &n.data[..]),
            (2, 7, &[65, 4, 0, 1, 0, 14][..])
        );
    }

    #[test]
    fn shutdown_communication_round_trip() {
        let n = Notification::administrative_shutdown("maintenance, back at 14:00 — ops");
        assert_eq!(n.code_value(), 6);
        assert_eq!(n.subcode, 2);
        assert_eq!(usize::from(n.data[0]), n.data.len() - 1);
        assert_eq!(
            n.shutdown_communication().unwrap().as_deref(),
            Some("maintenance, back at 14:00 — ops")
        );
        let n = Notification::administrative_reset("");
        assert_eq!(n.data, [0]);
        assert_eq!(n.shutdown_communication(), Ok(None));
    }

    #[test]
    fn shutdown_communication_is_cut_at_a_char_boundary() {
        let long = "é".repeat(200); // 400 octets
        let n = Notification::administrative_shutdown(&long);
        assert_eq!(n.data[0], 254);
        assert_eq!(
            n.shutdown_communication().unwrap().unwrap(),
            "é".repeat(127)
        );
    }

    #[test]
    fn malformed_shutdown_communication() {
        let n = Notification::new(
            ErrorCode::Cease,
            CeaseSubcode::AdministrativeShutdown,
            [5, b'a'],
        );
        assert_eq!(
            n.shutdown_communication(),
            Err(ShutdownCommunicationError::Truncated {
                claimed: 5,
                present: 1
            })
        );
        let n = Notification::new(
            ErrorCode::Cease,
            CeaseSubcode::AdministrativeReset,
            [1, 0xff],
        );
        assert_eq!(
            n.shutdown_communication(),
            Err(ShutdownCommunicationError::InvalidUtf8)
        );
        // Not a shutdown: no communication even if data looks like one.
        let n = Notification::new(ErrorCode::Cease, CeaseSubcode::PeerDeconfigured, [1, b'a']);
        assert_eq!(n.shutdown_communication(), Ok(None));
    }

    #[test]
    fn display_is_readable() {
        assert_eq!(
            Notification::administrative_shutdown("bye").to_string(),
            "cease / Administrative Shutdown (6/2): \"bye\""
        );
        assert_eq!(
            Notification::bad_message_length(12).to_string(),
            "message header error / Bad Message Length (1/2), data 00 0c"
        );
        assert_eq!(
            Notification::hold_timer_expired().to_string(),
            "hold timer expired (4/0)"
        );
        assert_eq!(
            Notification::new(ErrorCode::Cease, 99, []).to_string(),
            "cease (6/99)"
        );
    }

    #[test]
    fn bfd_down_is_cease_10_and_named() {
        // RFC 9384: Cease subcode 10, "BFD Down", no data.
        let n = Notification::cease(CeaseSubcode::BfdDown);
        assert_eq!((n.code_value(), n.subcode, n.data.len()), (6, 10, 0));
        assert_eq!(CeaseSubcode::try_from(10), Ok(CeaseSubcode::BfdDown));
        assert_eq!(n.subcode_name(), Some("BFD Down"));
        assert_eq!(n.to_string(), "cease / BFD Down (6/10)");
        let mut body = BytesMut::new();
        n.encode_body(&mut body);
        assert_eq!(&body[..], [6, 10]);
        assert_eq!(Notification::decode_body(&body, 21).unwrap(), n);
    }

    #[test]
    fn every_known_subcode_has_a_name() {
        for code in 1..=7u8 {
            for sub in 0..=255u8 {
                let n = Notification::new(ErrorCode::from(code), sub, []);
                if let Some(name) = n.subcode_name() {
                    assert!(!name.is_empty());
                    assert!(n.to_string().contains(name));
                }
            }
        }
        assert_eq!(
            Notification::fsm_error(FsmSubcode::UnexpectedMessageInOpenSent).subcode_name(),
            Some("Receive Unexpected Message in OpenSent State")
        );
    }
}
