//! Entry points for fuzzing the decoders with arbitrary bytes.
//!
//! Each function takes any input, runs it through the decoders, and checks
//! properties that must hold for every input. It panics only when one is
//! broken, which is a bug in this crate: a decoder panicking on its own, a
//! message that decodes but does not encode again, or re-encodes into
//! something that decodes differently, a session reset whose NOTIFICATION
//! cannot be sent, a classification that does not fit the input.
//!
//! The cargo-fuzz targets in `fuzz/` call these functions, and
//! `bgp/tests/fuzz_corpus.rs` replays the committed seed corpus and random
//! inputs through them on every test run, so the target bodies are
//! exercised without cargo-fuzz. See `docs/FUZZING.md`.

use crate::bfd::packet::ControlPacket;
use crate::error::{DecodeError, EncodeError};
use crate::message::capability::Capability;
use crate::message::notification::ErrorCode;
use crate::message::{
    CodecContext, HEADER_LEN, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message, MessageDecoder,
    MessageType, decode_message,
};

/// The codec contexts [`message`] decodes under: two- and four-octet AS
/// numbers, extended messages off and on, external and internal peer.
/// (ADD-PATH is not implemented by this codec, so it is always off.)
pub fn contexts() -> impl Iterator<Item = CodecContext> {
    (0..8u8).map(context_from)
}

/// The context selected by the low three bits of `selector`: bit 0
/// four-octet AS, bit 1 internal peer, bit 2 extended messages.
pub fn context_from(selector: u8) -> CodecContext {
    CodecContext {
        four_octet_as: selector & 1 != 0,
        internal_peer: selector & 2 != 0,
        max_message_len: if selector & 4 != 0 {
            MAX_EXTENDED_MESSAGE_LEN
        } else {
            MAX_MESSAGE_LEN
        },
    }
}

/// Target `message`: `data` is one whole BGP message (header included),
/// decoded under every context of [`contexts`], and also as a byte stream
/// split in two at an input-chosen point.
pub fn message(data: &[u8]) {
    for ctx in contexts() {
        let _ = check_message(data, &ctx);
    }
    check_stream(data, &context_from(data.len() as u8));
}

/// Target `update_attributes`: the first octet selects the context (see
/// [`context_from`]) and, with bits 3 and 4, whether the UPDATE carries an
/// IPv4 NLRI and a withdrawn route; the rest is the Path Attributes field
/// of that UPDATE. Exercises every RFC 7606 classification path.
pub fn update_attributes(data: &[u8]) {
    let Some((&selector, attrs)) = data.split_first() else {
        return;
    };
    let ctx = context_from(selector);
    let nlri: &[u8] = if selector & 8 != 0 {
        &[24, 198, 51, 100]
    } else {
        &[]
    };
    let withdrawn: &[u8] = if selector & 16 != 0 {
        &[24, 203, 0, 113]
    } else {
        &[]
    };
    let fixed = HEADER_LEN + 4 + nlri.len() + withdrawn.len();
    let attrs = &attrs[..attrs.len().min(ctx.max_message_len - fixed)];
    let mut body = Vec::with_capacity(fixed - HEADER_LEN + attrs.len());
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(attrs);
    body.extend_from_slice(nlri);
    let frame = with_header(MessageType::Update, &body);

    match check_message(&frame, &ctx) {
        Ok(Message::Update(update)) => {
            assert_eq!(update.nlri.len(), nlri.len() / 4);
            assert_eq!(update.withdrawn.len(), withdrawn.len() / 4);
        }
        Ok(other) => panic!("an UPDATE decoded as {other:?}"),
        // Header and lengths are valid, so only the UPDATE itself can be
        // at fault.
        Err(DecodeError::SessionReset(n)) => assert_eq!(n.code, ErrorCode::Update, "{n}"),
        Err(DecodeError::TreatAsWithdraw { prefixes, .. }) => {
            // The classic prefixes are always among those withdrawn.
            let classic = (nlri.len() + withdrawn.len()) / 4;
            let v4 = prefixes
                .iter()
                .filter(|p| matches!(p, crate::prefix::Prefix::V4(_)))
                .count();
            assert!(v4 >= classic, "{prefixes:?} lacks the classic prefixes");
        }
    }
}

/// Target `open_capabilities`: `data` is the Optional Parameters of an
/// OPEN, decoded in the RFC 4271 format (when it fits) and in the RFC 9072
/// extended format, and also as the value of a single Capabilities
/// parameter (a run of capabilities).
pub fn open_capabilities(data: &[u8]) {
    let ctx = CodecContext::default();
    // Version 4, AS 64500, hold time 90, identifier 198.51.100.1.
    let fixed = [4, 0xfb, 0xf4, 0, 90, 198, 51, 100, 1];
    let room = MAX_MESSAGE_LEN - HEADER_LEN - fixed.len();

    let mut bodies = Vec::new();
    if data.len() <= usize::from(u8::MAX) {
        bodies.push([&fixed[..], &[data.len() as u8], data].concat());
    }
    let ext = &data[..data.len().min(room - 4)];
    bodies.push(
        [
            &fixed[..],
            &[255, 255],
            &(ext.len() as u16).to_be_bytes(),
            ext,
        ]
        .concat(),
    );
    let caps = &data[..data.len().min(usize::from(u8::MAX) - 2)];
    bodies.push(
        [
            &fixed[..],
            &[caps.len() as u8 + 2, 2, caps.len() as u8],
            caps,
        ]
        .concat(),
    );

    for body in bodies {
        match check_message(&with_header(MessageType::Open, &body), &ctx) {
            Ok(Message::Open(_)) => {}
            Ok(other) => panic!("an OPEN decoded as {other:?}"),
            Err(DecodeError::SessionReset(n)) => assert_eq!(n.code, ErrorCode::Open, "{n}"),
            Err(e) => panic!("an OPEN cannot be treat-as-withdraw: {e}"),
        }
    }

    // The capability list parser on its own: every capability it returns
    // encodes, and decodes back to itself.
    let mut caps = Vec::new();
    let _ = Capability::decode_list(data, &mut caps);
    for cap in caps {
        let mut out = bytes::BytesMut::new();
        cap.encode(&mut out)
            .unwrap_or_else(|e| panic!("decoded {cap:?} does not encode: {e}"));
        let mut again = Vec::new();
        assert_eq!(Capability::decode_list(&out, &mut again), Some(()));
        assert_eq!(again, [cap]);
    }
}

/// Target `bfd_packet`: `data` is a received BFD Control packet (the UDP
/// payload). A packet that decodes encodes again, no longer than its
/// Length field, into one that decodes to the same packet.
pub fn bfd_packet(data: &[u8]) {
    if let Ok(packet) = ControlPacket::decode(data) {
        let bytes = packet.encode();
        assert!(bytes.len() <= data.len(), "{packet:?} grew on re-encoding");
        assert_eq!(ControlPacket::decode(&bytes).as_ref(), Ok(&packet));
    }
}

fn with_header(message_type: MessageType, body: &[u8]) -> Vec<u8> {
    let len = HEADER_LEN + body.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&crate::message::MARKER);
    out.extend_from_slice(&(len as u16).to_be_bytes());
    out.push(message_type.to_u8());
    out.extend_from_slice(body);
    out
}

/// Decodes one frame and checks the outcome against the input.
fn check_message(frame: &[u8], ctx: &CodecContext) -> Result<Message, DecodeError> {
    let result = decode_message(frame, ctx).map(|d| d.message);
    match &result {
        Ok(message) => check_reencoding(message, frame, ctx),
        Err(DecodeError::SessionReset(n)) => {
            // The NOTIFICATION must be sendable in this session.
            let bytes = Message::Notification(n.clone())
                .encode(ctx)
                .unwrap_or_else(|e| panic!("NOTIFICATION {n} cannot be sent: {e}"));
            assert!(bytes.len() <= ctx.max_message_len);
        }
        Err(DecodeError::TreatAsWithdraw { prefixes, .. }) => {
            // Every prefix takes at least one octet of the frame.
            assert!(prefixes.len() <= frame.len());
        }
    }
    if let Err(e) = &result {
        // Logging must not fail on anything a peer sends.
        let _ = e.to_string();
    }
    result
}

/// A decoded message encodes again, no longer than it came, and that
/// encoding decodes to the same message.
fn check_reencoding(message: &Message, frame: &[u8], ctx: &CodecContext) {
    let bytes = message
        .encode(ctx)
        .unwrap_or_else(|e| panic!("decoded {message:?} does not encode: {e}"));
    assert!(
        bytes.len() <= frame.len(),
        "{message:?} grew from {} to {} octets",
        frame.len(),
        bytes.len()
    );
    let again = decode_message(&bytes, ctx)
        .unwrap_or_else(|e| panic!("re-encoded {message:?} does not decode: {e}"));
    assert_eq!(&again.message, message);

    match message {
        Message::Notification(n) => {
            let _ = n.shutdown_communication();
            let _ = n.to_string();
        }
        Message::Update(update) => {
            let _ = update.end_of_rib_family();
            // What a speaker does with received attributes: rebuild the
            // four-octet path from a two-octet peer, and prepare them for a
            // two-octet peer. Both must encode (or be merely too long).
            let mut attrs = update.attributes.clone();
            if !ctx.four_octet_as {
                attrs.reconstruct_from_two_octet_peer();
            }
            attrs.pass_through_unknown();
            for (four, attrs) in [(true, attrs.clone()), (false, attrs.for_two_octet_peer())] {
                let out_ctx = CodecContext {
                    four_octet_as: four,
                    ..*ctx
                };
                let out = Message::Update(crate::message::update::Update {
                    attributes: attrs,
                    ..update.clone()
                });
                match out.encode(&out_ctx) {
                    Ok(_) | Err(EncodeError::MessageTooLong { .. }) => {}
                    Err(e) => panic!("re-advertising {out:?} fails: {e}"),
                }
            }
        }
        _ => {}
    }
}

/// Feeds `data` to a [`MessageDecoder`] in two pieces and checks that it
/// yields what [`decode_message`] says about each frame.
fn check_stream(data: &[u8], ctx: &CodecContext) {
    let split = data.first().map_or(0, |&b| usize::from(b).min(data.len()));
    let mut decoder = MessageDecoder::new(*ctx);
    let mut offset = 0;
    for piece in [&data[..split], &data[split..]] {
        decoder.extend(piece);
        // Each message takes at least a header: the loop is bounded.
        for _ in 0..=data.len() / HEADER_LEN {
            let before = decoder.buffered();
            match decoder.next_message() {
                Ok(None) => break,
                Ok(Some(decoded)) => {
                    let len = before - decoder.buffered();
                    let frame = &data[offset..offset + len];
                    assert_eq!(
                        decode_message(frame, ctx).map(|d| d.message),
                        Ok(decoded.message)
                    );
                    offset += len;
                }
                Err(DecodeError::SessionReset(_)) => return,
                Err(DecodeError::TreatAsWithdraw { .. }) => {
                    offset += before - decoder.buffered();
                }
            }
        }
    }
}
