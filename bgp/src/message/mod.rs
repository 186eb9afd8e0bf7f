//! BGP messages: the common header (RFC 4271 §4.1), the five message types,
//! and sans-IO framing.
//!
//! Decoding takes bytes and a [`CodecContext`] (what the session has
//! negotiated) and returns a [`Decoded`] message or a [`DecodeError`] that
//! says what the session must do. Encoding takes a [`Message`] and the same
//! context and returns bytes. Nothing here does I/O or keeps time.

pub mod attribute;
pub mod capability;
pub mod notification;
pub mod open;
pub mod pack;
pub mod route_refresh;
pub mod update;

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{AttributeError, DecodeError, EncodeError};
use crate::message::capability::Capability;
use crate::message::notification::Notification;
use crate::message::open::Open;
use crate::message::route_refresh::RouteRefresh;
use crate::message::update::Update;
use crate::wire;

/// The header's marker: sixteen octets of ones.
pub const MARKER: [u8; 16] = [0xff; 16];
/// Length of the common header.
pub const HEADER_LEN: usize = 19;
/// Largest message without the extended message capability, and always
/// for OPEN and KEEPALIVE (RFC 8654 §4).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// Largest message once both sides announced the extended message
/// capability (RFC 8654).
pub const MAX_EXTENDED_MESSAGE_LEN: usize = 65535;

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 1: OPEN.
    Open,
    /// 2: UPDATE.
    Update,
    /// 3: NOTIFICATION.
    Notification,
    /// 4: KEEPALIVE.
    Keepalive,
    /// 5: ROUTE-REFRESH (RFC 2918).
    RouteRefresh,
}

impl MessageType {
    /// Wire value.
    pub fn to_u8(self) -> u8 {
        match self {
            MessageType::Open => 1,
            MessageType::Update => 2,
            MessageType::Notification => 3,
            MessageType::Keepalive => 4,
            MessageType::RouteRefresh => 5,
        }
    }

    /// Parses a wire value.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            1 => MessageType::Open,
            2 => MessageType::Update,
            3 => MessageType::Notification,
            4 => MessageType::Keepalive,
            5 => MessageType::RouteRefresh,
            _ => return None,
        })
    }

    /// Smallest valid length of a message of this type (RFC 4271 §4, RFC 2918).
    fn min_len(self) -> usize {
        match self {
            MessageType::Open => 29,
            MessageType::Update => 23,
            MessageType::Notification => 21,
            MessageType::Keepalive => HEADER_LEN,
            MessageType::RouteRefresh => HEADER_LEN,
        }
    }

    /// Largest valid length given the negotiated maximum.
    fn max_len(self, negotiated: usize) -> usize {
        match self {
            MessageType::Keepalive => HEADER_LEN,
            MessageType::Open => MAX_MESSAGE_LEN,
            _ => negotiated,
        }
    }
}

/// A checked message header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Total message length, header included.
    pub length: u16,
    /// Message type.
    pub message_type: MessageType,
}

/// What the session has negotiated, as far as the codec cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodecContext {
    /// Both sides announced the four-octet AS capability: AS_PATH and
    /// AGGREGATOR carry four-octet AS numbers.
    pub four_octet_as: bool,
    /// Largest message accepted and produced: [`MAX_MESSAGE_LEN`], or
    /// [`MAX_EXTENDED_MESSAGE_LEN`] after the extended message capability.
    pub max_message_len: usize,
    /// The peer is in our AS (iBGP): LOCAL_PREF is expected rather than
    /// discarded.
    pub internal_peer: bool,
}

impl Default for CodecContext {
    /// The context before OPENs are exchanged: two-octet AS numbers,
    /// 4096-octet messages, external peer.
    fn default() -> Self {
        CodecContext {
            four_octet_as: false,
            max_message_len: MAX_MESSAGE_LEN,
            internal_peer: false,
        }
    }
}

impl CodecContext {
    /// The context after both OPENs: four-octet AS numbers and extended
    /// messages when both sides announced them; internal when both
    /// speakers are in the same AS.
    pub fn negotiated(local: &Open, remote: &Open) -> Self {
        let both = |f: fn(&Capability) -> bool| {
            local.capabilities.iter().any(f) && remote.capabilities.iter().any(f)
        };
        CodecContext {
            four_octet_as: both(|c| matches!(c, Capability::FourOctetAs(_))),
            max_message_len: if both(|c| matches!(c, Capability::ExtendedMessage)) {
                MAX_EXTENDED_MESSAGE_LEN
            } else {
                MAX_MESSAGE_LEN
            },
            internal_peer: local.asn() == remote.asn(),
        }
    }
}

/// A BGP message.
// UPDATE is both the largest variant and by far the most frequent message,
// so boxing it would add an allocation to the common case for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// OPEN.
    Open(Open),
    /// UPDATE.
    Update(Update),
    /// NOTIFICATION.
    Notification(Notification),
    /// KEEPALIVE.
    Keepalive,
    /// ROUTE-REFRESH.
    RouteRefresh(RouteRefresh),
}

impl Message {
    /// The message type.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Encodes the message, header included.
    pub fn encode(&self, ctx: &CodecContext) -> Result<Bytes, EncodeError> {
        let mut out = BytesMut::new();
        self.encode_into(ctx, &mut out)?;
        Ok(out.freeze())
    }

    /// Appends the encoded message to `out`. On error `out` is left as it was.
    pub fn encode_into(&self, ctx: &CodecContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        let start = out.len();
        let result = self.encode_unchecked(ctx, out).and_then(|()| {
            let len = out.len() - start;
            // The length field has 16 bits, whatever the context says.
            let max = self
                .message_type()
                .max_len(ctx.max_message_len.min(MAX_EXTENDED_MESSAGE_LEN));
            if len > max {
                return Err(EncodeError::MessageTooLong { len, max });
            }
            wire::patch_u16(out, start + 16, len as u16);
            Ok(())
        });
        if result.is_err() {
            out.truncate(start);
        }
        result
    }

    fn encode_unchecked(&self, ctx: &CodecContext, out: &mut BytesMut) -> Result<(), EncodeError> {
        out.put_slice(&MARKER);
        out.put_u16(0);
        out.put_u8(self.message_type().to_u8());
        match self {
            Message::Open(m) => m.encode_body(out)?,
            Message::Update(m) => m.encode_body(ctx, out)?,
            Message::Notification(m) => m.encode_body(out),
            Message::Keepalive => {}
            Message::RouteRefresh(m) => m.encode_body(out),
        }
        Ok(())
    }

    /// Decodes one whole message; see [`decode_message`].
    pub fn decode(frame: &[u8], ctx: &CodecContext) -> Result<Decoded, DecodeError> {
        decode_message(frame, ctx)
    }
}

impl From<Open> for Message {
    fn from(m: Open) -> Self {
        Message::Open(m)
    }
}

impl From<Update> for Message {
    fn from(m: Update) -> Self {
        Message::Update(m)
    }
}

impl From<Notification> for Message {
    fn from(m: Notification) -> Self {
        Message::Notification(m)
    }
}

impl From<RouteRefresh> for Message {
    fn from(m: RouteRefresh) -> Self {
        Message::RouteRefresh(m)
    }
}

/// A successfully decoded message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// The message.
    pub message: Message,
    /// For an UPDATE: attributes dropped by RFC 7606 attribute discard or as
    /// repeats. Empty otherwise.
    pub discarded: Vec<AttributeError>,
}

/// Checks the header at the front of `buf` (RFC 4271 §6.1, RFC 8654 §4).
///
/// Returns `Ok(None)` while fewer than 19 octets are buffered, the header
/// once it is valid (the message itself may not be complete yet: compare
/// `length` with what is buffered), or the NOTIFICATION to send.
pub fn decode_header(buf: &[u8], max_message_len: usize) -> Result<Option<Header>, Notification> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    if header[..16] != MARKER {
        return Err(Notification::connection_not_synchronized());
    }
    let length = u16::from_be_bytes([header[16], header[17]]);
    let len = usize::from(length);
    if !(HEADER_LEN..=max_message_len).contains(&len) {
        return Err(Notification::bad_message_length(length));
    }
    let message_type =
        MessageType::from_u8(header[18]).ok_or(Notification::bad_message_type(header[18]))?;
    if len < message_type.min_len() || len > message_type.max_len(max_message_len) {
        return Err(Notification::bad_message_length(length));
    }
    Ok(Some(Header {
        length,
        message_type,
    }))
}

/// Decodes one message. `frame` must hold exactly one message, as found by
/// [`decode_header`] or [`MessageDecoder`]; a frame whose length disagrees
/// with its header is a Bad Message Length.
pub fn decode_message(frame: &[u8], ctx: &CodecContext) -> Result<Decoded, DecodeError> {
    let reset = DecodeError::SessionReset;
    let short_len = u16::try_from(frame.len()).unwrap_or(u16::MAX);
    let header = decode_header(frame, ctx.max_message_len)
        .map_err(reset)?
        .ok_or(reset(Notification::bad_message_length(short_len)))?;
    if usize::from(header.length) != frame.len() {
        return Err(reset(Notification::bad_message_length(header.length)));
    }
    let body = &frame[HEADER_LEN..];
    let plain = |message| Decoded {
        message,
        discarded: Vec::new(),
    };
    Ok(match header.message_type {
        MessageType::Open => plain(Message::Open(Open::decode_body(body)?)),
        MessageType::Update => {
            let decoded = Update::decode_body(body, ctx)?;
            Decoded {
                message: Message::Update(decoded.update),
                discarded: decoded.discarded,
            }
        }
        MessageType::Notification => plain(Message::Notification(Notification::decode_body(
            body,
            header.length,
        )?)),
        MessageType::Keepalive => plain(Message::Keepalive),
        MessageType::RouteRefresh => plain(Message::RouteRefresh(RouteRefresh::decode_body(
            body,
            frame,
            header.length,
        )?)),
    })
}

/// Splits a byte stream into messages and decodes them.
///
/// Feed received bytes with [`extend`](Self::extend) and call
/// [`next_message`](Self::next_message) until it returns `Ok(None)`. After
/// [`DecodeError::SessionReset`] the stream is unusable: send the
/// notification and close. After [`DecodeError::TreatAsWithdraw`] the
/// message has been consumed and decoding can go on.
#[derive(Debug, Default)]
pub struct MessageDecoder {
    buf: BytesMut,
    ctx: CodecContext,
}

impl MessageDecoder {
    /// A decoder using `ctx`.
    pub fn new(ctx: CodecContext) -> Self {
        MessageDecoder {
            buf: BytesMut::new(),
            ctx,
        }
    }

    /// Replaces the context, e.g. once OPENs have been exchanged.
    pub fn set_context(&mut self, ctx: CodecContext) {
        self.ctx = ctx;
    }

    /// The context in use.
    pub fn context(&self) -> &CodecContext {
        &self.ctx
    }

    /// Appends received bytes.
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Octets buffered and not yet decoded.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Decodes the next complete message, if one is buffered.
    pub fn next_message(&mut self) -> Result<Option<Decoded>, DecodeError> {
        let header = decode_header(&self.buf, self.ctx.max_message_len)
            .map_err(DecodeError::SessionReset)?;
        let Some(header) = header else {
            return Ok(None);
        };
        let len = usize::from(header.length);
        if self.buf.len() < len {
            return Ok(None);
        }
        let frame = self.buf.split_to(len);
        decode_message(&frame, &self.ctx).map(Some)
    }
}

#[cfg(test)]
mod tests;
