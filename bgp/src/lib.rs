//! FerroLB's BGP implementation, written from the RFCs, with a sans-IO core.
//!
//! This crate is the message codec: bytes in, typed messages out, and back.
//!
//! - [`message`]: the header and the OPEN, UPDATE, NOTIFICATION, KEEPALIVE
//!   and ROUTE-REFRESH messages ([`Message`]), framing of a byte stream
//!   ([`MessageDecoder`]), capabilities, path attributes, and packing of many
//!   prefixes into UPDATEs ([`pack_announcements`], [`pack_withdrawals`]).
//! - [`prefix`]: IPv4/IPv6 prefixes and address families, NLRI encoding.
//! - [`error`]: decoding outcomes classified per RFC 7606 and encoding
//!   errors.
//! - [`session`]: the sans-IO session state machine; [`bfd`]: BFD.
//! - [`transport`]: the Tokio task that owns a session and does its I/O
//!   (sockets with TTL/GTSM, TCP MD5, VRF binding).
//!
//! ```
//! use ferrolb_bgp::{CodecContext, Message, decode_message};
//!
//! let ctx = CodecContext::default();
//! let bytes = Message::Keepalive.encode(&ctx).unwrap();
//! assert_eq!(bytes.len(), 19);
//! assert_eq!(decode_message(&bytes, &ctx).unwrap().message, Message::Keepalive);
//! ```

pub mod bfd;
pub mod error;
pub mod fuzzing;
pub mod message;
pub mod prefix;
pub mod session;
pub mod transport;
pub mod unnumbered;
mod wire;

pub use error::{AttributeError, AttributeProblem, DecodeError, EncodeError};
pub use message::attribute::{
    AS_TRANS, Aggregator, AsPath, AsSegment, Community, ExtendedCommunity, LargeCommunity, MpReach,
    MpUnreach, NextHop, Origin, PathAttributes, RawAttribute, SegmentType,
};
pub use message::capability::{
    Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily,
};
pub use message::notification::{CeaseSubcode, ErrorCode, Notification};
pub use message::open::Open;
pub use message::pack::{pack_announcements, pack_withdrawals};
pub use message::route_refresh::{RouteRefresh, RouteRefreshSubtype};
pub use message::update::{DecodedUpdate, Update};
pub use message::{
    CodecContext, Decoded, Header, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN, Message,
    MessageDecoder, MessageType, decode_header, decode_message,
};
pub use prefix::{AddressFamily, Afi, Ipv4Prefix, Ipv6Prefix, Prefix, PrefixError, Safi};
