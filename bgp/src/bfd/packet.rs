//! The BFD Control packet (RFC 5880 §4.1) and the reception checks of
//! §6.8.6 that depend on the packet alone.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Vers |  Diag   |Sta|P|F|C|A|D|M|  Detect Mult  |    Length     |
//! |                       My Discriminator                        |
//! |                      Your Discriminator                       |
//! |                    Desired Min TX Interval                    |
//! |                   Required Min RX Interval                    |
//! |                 Required Min Echo RX Interval                 |
//! | Auth Type     |   Auth Len    |    Authentication Data...     |
//! ```
//!
//! Intervals are in microseconds. The authentication section is present
//! only when the A bit is set; it is parsed (type and length) but this
//! implementation does not authenticate, so the session discards such
//! packets.

/// The only protocol version (RFC 5880 §4.1).
pub const VERSION: u8 = 1;
/// Length of a Control packet without authentication section.
pub const MIN_LEN: usize = 24;
/// Smallest length of a Control packet with the A bit set: the mandatory
/// section plus Auth Type and Auth Len.
pub const MIN_AUTH_LEN: usize = 26;

const FLAG_P: u8 = 0x20;
const FLAG_F: u8 = 0x10;
const FLAG_C: u8 = 0x08;
const FLAG_A: u8 = 0x04;
const FLAG_D: u8 = 0x02;
const FLAG_M: u8 = 0x01;

/// Session state as carried in the Sta field (RFC 5880 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    /// 0: administratively down.
    AdminDown,
    /// 1: down.
    Down,
    /// 2: init (the peer's Down was seen).
    Init,
    /// 3: up.
    Up,
}

impl State {
    /// Wire value (two bits).
    pub fn to_u8(self) -> u8 {
        match self {
            State::AdminDown => 0,
            State::Down => 1,
            State::Init => 2,
            State::Up => 3,
        }
    }

    /// From the two-bit wire value; higher bits are ignored.
    pub fn from_u8(v: u8) -> State {
        match v & 0x3 {
            0 => State::AdminDown,
            1 => State::Down,
            2 => State::Init,
            _ => State::Up,
        }
    }
}

/// Diagnostic code (RFC 5880 §4.1): why the sender's session last changed
/// state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Diag {
    /// 0.
    NoDiagnostic,
    /// 1: no packet from the peer within the detection time.
    ControlDetectionTimeExpired,
    /// 2.
    EchoFunctionFailed,
    /// 3: the peer said its session is down.
    NeighborSignaledSessionDown,
    /// 4.
    ForwardingPlaneReset,
    /// 5.
    PathDown,
    /// 6.
    ConcatenatedPathDown,
    /// 7: taken down by configuration.
    AdministrativelyDown,
    /// 8.
    ReverseConcatenatedPathDown,
    /// 9–31: reserved values, kept as received.
    Reserved(u8),
}

impl Diag {
    /// Wire value (five bits).
    pub fn to_u8(self) -> u8 {
        match self {
            Diag::NoDiagnostic => 0,
            Diag::ControlDetectionTimeExpired => 1,
            Diag::EchoFunctionFailed => 2,
            Diag::NeighborSignaledSessionDown => 3,
            Diag::ForwardingPlaneReset => 4,
            Diag::PathDown => 5,
            Diag::ConcatenatedPathDown => 6,
            Diag::AdministrativelyDown => 7,
            Diag::ReverseConcatenatedPathDown => 8,
            Diag::Reserved(v) => v & 0x1f,
        }
    }

    /// From the five-bit wire value; higher bits are ignored.
    pub fn from_u8(v: u8) -> Diag {
        match v & 0x1f {
            0 => Diag::NoDiagnostic,
            1 => Diag::ControlDetectionTimeExpired,
            2 => Diag::EchoFunctionFailed,
            3 => Diag::NeighborSignaledSessionDown,
            4 => Diag::ForwardingPlaneReset,
            5 => Diag::PathDown,
            6 => Diag::ConcatenatedPathDown,
            7 => Diag::AdministrativelyDown,
            8 => Diag::ReverseConcatenatedPathDown,
            v => Diag::Reserved(v),
        }
    }
}

/// Authentication types (RFC 5880 §4.1).
pub mod auth_type {
    /// Simple Password.
    pub const SIMPLE_PASSWORD: u8 = 1;
    /// Keyed MD5.
    pub const KEYED_MD5: u8 = 2;
    /// Meticulous Keyed MD5.
    pub const METICULOUS_KEYED_MD5: u8 = 3;
    /// Keyed SHA1.
    pub const KEYED_SHA1: u8 = 4;
    /// Meticulous Keyed SHA1.
    pub const METICULOUS_KEYED_SHA1: u8 = 5;
}

/// The optional authentication section, parsed only as far as its type and
/// length.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Auth {
    /// Auth Type.
    pub auth_type: u8,
    /// Everything after Auth Type and Auth Len (Auth Len − 2 octets).
    pub data: Vec<u8>,
}

/// A BFD Control packet. The version is always [`VERSION`]; the A bit is
/// set exactly when [`auth`](Self::auth) is present and the Length field is
/// computed when encoding.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ControlPacket {
    /// Diag.
    pub diag: Diag,
    /// Sta.
    pub state: State,
    /// P: Poll.
    pub poll: bool,
    /// F: Final.
    pub final_: bool,
    /// C: Control Plane Independent.
    pub control_plane_independent: bool,
    /// D: Demand.
    pub demand: bool,
    /// M: Multipoint (must be zero).
    pub multipoint: bool,
    /// Detect Mult.
    pub detect_mult: u8,
    /// My Discriminator.
    pub my_discriminator: u32,
    /// Your Discriminator.
    pub your_discriminator: u32,
    /// Desired Min TX Interval, µs.
    pub desired_min_tx_us: u32,
    /// Required Min RX Interval, µs.
    pub required_min_rx_us: u32,
    /// Required Min Echo RX Interval, µs.
    pub required_min_echo_rx_us: u32,
    /// Authentication section (A bit).
    pub auth: Option<Auth>,
}

/// Why a received Control packet was discarded before reaching a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Fewer octets than the mandatory section.
    #[error("packet too short: {0} octets")]
    TooShort(usize),
    /// Version is not 1.
    #[error("unsupported BFD version {0}")]
    BadVersion(u8),
    /// Length field below the minimum for the A bit's value.
    #[error("length field {0} too small")]
    LengthTooSmall(u8),
    /// Length field larger than the received payload.
    #[error("length field {length} exceeds payload of {available} octets")]
    LengthExceedsPayload {
        /// Length field.
        length: u8,
        /// Octets received.
        available: usize,
    },
    /// Auth Len inconsistent with the Length field.
    #[error("auth len {auth_len} inconsistent with length {length}")]
    BadAuthLength {
        /// Auth Len.
        auth_len: u8,
        /// Length field.
        length: u8,
    },
    /// Detect Mult is zero.
    #[error("detect mult is zero")]
    ZeroDetectMult,
    /// Multipoint bit set.
    #[error("multipoint bit set")]
    Multipoint,
    /// My Discriminator is zero.
    #[error("my discriminator is zero")]
    ZeroMyDiscriminator,
    /// Your Discriminator is zero while the state is Init or Up.
    #[error("your discriminator is zero in state {0:?}")]
    ZeroYourDiscriminator(State),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl ControlPacket {
    /// Encodes the packet. Auth data longer than the Length field can hold
    /// is truncated.
    pub fn encode(&self) -> Vec<u8> {
        let auth_data: &[u8] = match &self.auth {
            Some(a) => &a.data[..a.data.len().min(255 - MIN_AUTH_LEN)],
            None => &[],
        };
        let len = if self.auth.is_some() {
            MIN_AUTH_LEN + auth_data.len()
        } else {
            MIN_LEN
        };
        let mut out = Vec::with_capacity(len);
        out.push((VERSION << 5) | self.diag.to_u8());
        let mut flags = self.state.to_u8() << 6;
        for (set, bit) in [
            (self.poll, FLAG_P),
            (self.final_, FLAG_F),
            (self.control_plane_independent, FLAG_C),
            (self.auth.is_some(), FLAG_A),
            (self.demand, FLAG_D),
            (self.multipoint, FLAG_M),
        ] {
            if set {
                flags |= bit;
            }
        }
        out.push(flags);
        out.push(self.detect_mult);
        out.push(len as u8);
        for v in [
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            self.required_min_echo_rx_us,
        ] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        if let Some(a) = &self.auth {
            out.push(a.auth_type);
            out.push((auth_data.len() + 2) as u8);
            out.extend_from_slice(auth_data);
        }
        out
    }

    /// Decodes a received packet (the UDP payload) and applies the checks
    /// of RFC 5880 §6.8.6 that need no session: version, length, Detect
    /// Mult, Multipoint, My Discriminator, and Your Discriminator against
    /// the state. Octets past the Length field are ignored. Never panics.
    pub fn decode(bytes: &[u8]) -> Result<ControlPacket, PacketError> {
        if bytes.len() < MIN_LEN {
            return Err(PacketError::TooShort(bytes.len()));
        }
        let version = bytes[0] >> 5;
        if version != VERSION {
            return Err(PacketError::BadVersion(version));
        }
        let flags = bytes[1];
        let has_auth = flags & FLAG_A != 0;
        let length = bytes[3];
        let min = if has_auth { MIN_AUTH_LEN } else { MIN_LEN };
        if usize::from(length) < min {
            return Err(PacketError::LengthTooSmall(length));
        }
        if usize::from(length) > bytes.len() {
            return Err(PacketError::LengthExceedsPayload {
                length,
                available: bytes.len(),
            });
        }
        let detect_mult = bytes[2];
        if detect_mult == 0 {
            return Err(PacketError::ZeroDetectMult);
        }
        if flags & FLAG_M != 0 {
            return Err(PacketError::Multipoint);
        }
        let state = State::from_u8(flags >> 6);
        let my_discriminator = be32(bytes, 4);
        if my_discriminator == 0 {
            return Err(PacketError::ZeroMyDiscriminator);
        }
        let your_discriminator = be32(bytes, 8);
        if your_discriminator == 0 && matches!(state, State::Init | State::Up) {
            return Err(PacketError::ZeroYourDiscriminator(state));
        }
        let auth = if has_auth {
            let auth_len = bytes[MIN_LEN + 1];
            if auth_len < 2 || MIN_LEN + usize::from(auth_len) != usize::from(length) {
                return Err(PacketError::BadAuthLength { auth_len, length });
            }
            Some(Auth {
                auth_type: bytes[MIN_LEN],
                data: bytes[MIN_AUTH_LEN..usize::from(length)].to_vec(),
            })
        } else {
            None
        };
        Ok(ControlPacket {
            diag: Diag::from_u8(bytes[0]),
            state,
            poll: flags & FLAG_P != 0,
            final_: flags & FLAG_F != 0,
            control_plane_independent: flags & FLAG_C != 0,
            demand: flags & FLAG_D != 0,
            multipoint: false,
            detect_mult,
            my_discriminator,
            your_discriminator,
            desired_min_tx_us: be32(bytes, 12),
            required_min_rx_us: be32(bytes, 16),
            required_min_echo_rx_us: be32(bytes, 20),
            auth,
        })
    }
}
