//! Bidirectional Forwarding Detection, sans-IO: RFC 5880 (the protocol,
//! asynchronous mode), RFC 5881 (single-hop IPv4/IPv6) and RFC 5883
//! (multi-hop).
//!
//! Nothing here opens sockets or reads a clock. Time is a [`Duration`]
//! since an arbitrary start chosen by the caller, and randomness (transmit
//! jitter, discriminators) comes from a seed.
//!
//! - [`packet`]: the Control packet codec and the packet-only reception
//!   checks.
//! - [`session`]: one session's state machine ([`Session`]): receive bytes,
//!   [`poll`](Session::poll) for packets to send and state changes, sleep
//!   until [`next_deadline`](Session::next_deadline).
//! - [`demux`]: many sessions, received packets routed by discriminator or
//!   peer address ([`Demux`]).
//! - [`profile`]: the configured parameters ([`Profile`]).
//! - [`io`]: the Tokio task that runs sessions over UDP sockets (the only
//!   part that does I/O).
//!
//! Not supported: demand mode, the echo function (a profile's `echoMode` has
//! no effect), authentication (packets with the A bit set are discarded).
//!
//! The I/O layer ([`io`]) sends Control packets from a source port in
//! [`SOURCE_PORTS`] to [`SINGLE_HOP_PORT`] or [`MULTI_HOP_PORT`], with TTL
//! (hop limit) [`TX_TTL`], and passes the received TTL to the session.
//!
//! ```
//! use std::time::Duration;
//! use ferrolb_bgp::bfd::{Hop, Output, Profile, Session, SessionConfig, State};
//!
//! let cfg = |discr| SessionConfig {
//!     profile: Profile::default(),
//!     hop: Hop::SingleHop,
//!     local_discriminator: discr,
//!     seed: u64::from(discr),
//! };
//! // Poll one session and hand what it sends to the other (TTL 255).
//! fn exchange(from: &mut Session, to: &mut Session, now: Duration) {
//!     for out in from.poll(now) {
//!         if let Output::Send(bytes) = out {
//!             to.receive(&bytes, 255, now).unwrap();
//!         }
//!     }
//! }
//! let (mut a, mut b) = (Session::new(cfg(1)), Session::new(cfg(2)));
//! let mut now = Duration::ZERO;
//! while now < Duration::from_secs(5) {
//!     exchange(&mut a, &mut b, now);
//!     exchange(&mut b, &mut a, now);
//!     now = a.next_deadline().into_iter().chain(b.next_deadline()).min().unwrap();
//! }
//! assert_eq!((a.state(), b.state()), (State::Up, State::Up));
//! ```
//!
//! [`Duration`]: std::time::Duration

pub mod demux;
pub mod io;
pub mod packet;
pub mod profile;
pub mod session;

#[cfg(test)]
mod tests;

use std::ops::RangeInclusive;

pub use demux::{Demux, DemuxError};
pub use packet::{Auth, ControlPacket, Diag, PacketError, State};
pub use profile::Profile;
pub use session::{Output, RxError, Session, SessionConfig};

/// Destination UDP port of single-hop Control packets (RFC 5881 §4).
pub const SINGLE_HOP_PORT: u16 = 3784;
/// Destination UDP port of multi-hop Control packets (RFC 5883 §5).
pub const MULTI_HOP_PORT: u16 = 4784;
/// Source ports for Control packets (RFC 5881 §4, RFC 5883 §5).
pub const SOURCE_PORTS: RangeInclusive<u16> = 49152..=65535;
/// TTL (IPv4) or hop limit (IPv6) of every transmitted Control packet.
pub const TX_TTL: u8 = 255;

/// Whether a session runs over one hop (RFC 5881) or several (RFC 5883).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Hop {
    /// Directly connected peer: received TTL must be 255.
    SingleHop,
    /// Peer several hops away: received TTL must be at least the profile's
    /// minimum TTL.
    MultiHop,
}

impl Hop {
    /// Destination port for this kind of session.
    pub fn port(self) -> u16 {
        match self {
            Hop::SingleHop => SINGLE_HOP_PORT,
            Hop::MultiHop => MULTI_HOP_PORT,
        }
    }
}

/// A small seeded generator (SplitMix64) for jitter and discriminators.
#[derive(Clone, Debug)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; bias negligible for small n).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}
