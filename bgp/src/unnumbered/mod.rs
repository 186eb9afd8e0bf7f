//! BGP unnumbered: peering over an interface that has only IPv6
//! link-local addresses (IPv4 routes then travel with IPv6 next hops,
//! RFC 8950). The peer's address is learned from its ICMPv6 Router
//! Advertisements on the link (RFC 4861 §6), and ours is made known by
//! sending them, as FRR's `neighbor IFACE interface` expects.
//!
//! This module is the sans-IO part: [`Discovery`] takes received messages
//! and time and says what to send and who the peer is; the codec builds and
//! reads the two messages. [`io`] runs it on a raw ICMPv6 socket.
//!
//! The Router Advertisements sent carry a router lifetime of 0: the
//! speaker is never anyone's default router (RFC 4861 §4.2), it only makes
//! its link-local address known.

pub mod io;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERTISEMENT: u8 = 134;
/// Hop limit of every Neighbor Discovery message, sent and accepted
/// (RFC 4861 §6.1: a message from off the link arrives with less).
pub const ND_HOP_LIMIT: u8 = 255;

/// How often Router Advertisements are sent once started.
pub const ADVERTISE_INTERVAL: Duration = Duration::from_secs(10);
/// The first advertisements go faster, so that a peer learns us at once.
pub const INITIAL_INTERVAL: Duration = Duration::from_secs(1);
/// How many advertisements go at [`INITIAL_INTERVAL`].
pub const INITIAL_ADVERTISEMENTS: u32 = 3;
/// A peer not heard for this long is forgotten (3.5 of its intervals at
/// FRR's 10 s).
pub const PEER_EXPIRY: Duration = Duration::from_secs(35);
/// Answers to Router Solicitations are at most this frequent.
pub const MIN_ANSWER_GAP: Duration = Duration::from_secs(1);

/// A Neighbor Discovery message this module reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Message {
    RouterSolicitation,
    RouterAdvertisement {
        /// Router lifetime in seconds (0: not a default router).
        lifetime: u16,
    },
}

/// Reads an ICMPv6 message (as a raw ICMPv6 socket delivers it: from the
/// ICMPv6 header on). None for anything else or anything malformed.
pub fn decode(bytes: &[u8]) -> Option<Message> {
    let (&kind, rest) = bytes.split_first()?;
    let (&code, _) = rest.split_first()?;
    if code != 0 {
        return None;
    }
    match kind {
        // Type, code, checksum, 4 reserved octets.
        ROUTER_SOLICITATION if bytes.len() >= 8 => Some(Message::RouterSolicitation),
        // Type, code, checksum, hop limit, flags, lifetime (2), reachable
        // time (4), retransmission timer (4).
        ROUTER_ADVERTISEMENT if bytes.len() >= 16 => Some(Message::RouterAdvertisement {
            lifetime: u16::from_be_bytes([bytes[6], bytes[7]]),
        }),
        _ => None,
    }
}

/// A Router Advertisement with lifetime 0 and, when known, our
/// link-layer address as the Source Link-Layer Address option. The
/// checksum is left 0: the kernel fills it in for raw ICMPv6 sockets.
pub fn encode_advertisement(mac: Option<[u8; 6]>) -> Vec<u8> {
    let mut out = vec![ROUTER_ADVERTISEMENT, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&[0; 8]);
    if let Some(mac) = mac {
        // Option type 1, length 1 (in units of 8 octets).
        out.extend_from_slice(&[1, 1]);
        out.extend_from_slice(&mac);
    }
    out
}

/// A Router Solicitation (no options).
pub fn encode_solicitation() -> Vec<u8> {
    vec![ROUTER_SOLICITATION, 0, 0, 0, 0, 0, 0, 0]
}

/// What [`Discovery`] asks to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Send {
    /// A Router Advertisement to all nodes (ff02::1).
    Advertisement,
    /// A Router Solicitation to all routers (ff02::2).
    Solicitation,
}

/// Why a received message was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ignored {
    /// Its hop limit was not 255: it came from off the link.
    HopLimit(u8),
    /// Its source is not a link-local address.
    NotLinkLocal,
}

/// The peer of one interface, learned from Router Advertisements.
#[derive(Clone, Debug)]
pub struct Discovery {
    peer: Option<(Ipv6Addr, Instant)>,
    /// Routers heard other than the peer (latest time), for diagnostics.
    others: Vec<(Ipv6Addr, Instant)>,
    sent: u32,
    next_advertisement: Instant,
    last_answer: Option<Instant>,
}

impl Discovery {
    /// Starts: a solicitation (routers answer at once) and a first
    /// advertisement.
    pub fn start(now: Instant) -> (Discovery, Vec<Send>) {
        let d = Discovery {
            peer: None,
            others: Vec::new(),
            sent: 1,
            next_advertisement: now + INITIAL_INTERVAL,
            last_answer: None,
        };
        (d, vec![Send::Solicitation, Send::Advertisement])
    }

    /// A message from `source` with hop limit `hop_limit`.
    pub fn received(
        &mut self,
        now: Instant,
        message: Message,
        source: Ipv6Addr,
        hop_limit: u8,
    ) -> Result<Vec<Send>, Ignored> {
        if hop_limit != ND_HOP_LIMIT {
            return Err(Ignored::HopLimit(hop_limit));
        }
        if !source.is_unicast_link_local() {
            return Err(Ignored::NotLinkLocal);
        }
        match message {
            Message::RouterSolicitation => {
                let due = self
                    .last_answer
                    .is_none_or(|t| now.saturating_duration_since(t) >= MIN_ANSWER_GAP);
                if due {
                    self.last_answer = Some(now);
                    Ok(vec![Send::Advertisement])
                } else {
                    Ok(Vec::new())
                }
            }
            Message::RouterAdvertisement { .. } => {
                self.heard(now, source);
                Ok(Vec::new())
            }
        }
    }

    fn heard(&mut self, now: Instant, source: Ipv6Addr) {
        match self.peer {
            Some((addr, _)) if addr == source => self.peer = Some((addr, now)),
            // The peer went quiet: the newcomer takes its place.
            Some((_, seen)) if now.saturating_duration_since(seen) >= PEER_EXPIRY => {
                self.peer = Some((source, now));
            }
            Some(_) => {
                self.others.retain(|(a, _)| *a != source);
                self.others.push((source, now));
            }
            None => self.peer = Some((source, now)),
        }
        self.others
            .retain(|(_, t)| now.saturating_duration_since(*t) < PEER_EXPIRY);
    }

    /// Advertisements due at `now`.
    pub fn poll(&mut self, now: Instant) -> Vec<Send> {
        if now < self.next_advertisement {
            return Vec::new();
        }
        self.sent = self.sent.saturating_add(1);
        let interval = if self.sent < INITIAL_ADVERTISEMENTS {
            INITIAL_INTERVAL
        } else {
            ADVERTISE_INTERVAL
        };
        self.next_advertisement = now + interval;
        vec![Send::Advertisement]
    }

    /// When [`Discovery::poll`] has something to do next.
    pub fn next_deadline(&self) -> Instant {
        let expiry = self.peer.map(|(_, seen)| seen + PEER_EXPIRY);
        match expiry {
            Some(e) if e < self.next_advertisement => e,
            _ => self.next_advertisement,
        }
    }

    /// The peer's link-local address, unless it has gone quiet.
    pub fn peer(&self, now: Instant) -> Option<Ipv6Addr> {
        self.peer
            .filter(|(_, seen)| now.saturating_duration_since(*seen) < PEER_EXPIRY)
            .map(|(addr, _)| addr)
    }

    /// Other routers heard on the link recently (an unnumbered link should
    /// have one).
    pub fn others(&self, now: Instant) -> Vec<Ipv6Addr> {
        self.others
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(*t) < PEER_EXPIRY)
            .map(|(a, _)| *a)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ll(last: u16) -> Ipv6Addr {
        Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, last)
    }

    const RA: Message = Message::RouterAdvertisement { lifetime: 0 };

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let ra = encode_advertisement(Some([2, 0, 0, 0, 0, 1]));
        assert_eq!(ra.len(), 24);
        assert_eq!(decode(&ra), Some(RA));
        assert_eq!(
            decode(&encode_solicitation()),
            Some(Message::RouterSolicitation)
        );
        let mut with_lifetime = encode_advertisement(None);
        with_lifetime[6..8].copy_from_slice(&1800u16.to_be_bytes());
        assert_eq!(
            decode(&with_lifetime),
            Some(Message::RouterAdvertisement { lifetime: 1800 })
        );
        assert_eq!(decode(&[]), None);
        assert_eq!(decode(&[ROUTER_ADVERTISEMENT]), None);
        assert_eq!(decode(&ra[..15]), None, "short RA");
        assert_eq!(decode(&[ROUTER_SOLICITATION, 0, 0, 0]), None, "short RS");
        assert_eq!(
            decode(&[
                ROUTER_ADVERTISEMENT,
                1,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0,
                0
            ]),
            None,
            "code 1"
        );
        assert_eq!(decode(&[128, 0, 0, 0, 0, 0, 0, 0]), None, "echo request");
    }

    #[test]
    fn starts_by_soliciting_then_advertises_fast_then_slowly() {
        let t0 = Instant::now();
        let (mut d, first) = Discovery::start(t0);
        assert_eq!(first, [Send::Solicitation, Send::Advertisement]);
        assert!(d.poll(t0).is_empty());
        let mut at = Vec::new();
        for _ in 0..6 {
            let now = d.next_deadline();
            assert_eq!(d.poll(now), [Send::Advertisement]);
            at.push(now.duration_since(t0).as_secs());
        }
        assert_eq!(at, [1, 2, 12, 22, 32, 42]);
    }

    #[test]
    fn the_peer_is_the_router_that_advertises_and_expires_when_quiet() {
        let t0 = Instant::now();
        let (mut d, _) = Discovery::start(t0);
        assert_eq!(d.peer(t0), None);
        assert_eq!(d.received(t0, RA, ll(1), 255), Ok(vec![]));
        assert_eq!(d.peer(t0), Some(ll(1)));
        // A second router on the link does not take over a live peer.
        d.received(t0 + Duration::from_secs(1), RA, ll(2), 255)
            .unwrap();
        assert_eq!(d.peer(t0 + Duration::from_secs(1)), Some(ll(1)));
        assert_eq!(d.others(t0 + Duration::from_secs(1)), [ll(2)]);
        // Refreshed by its next advertisement.
        d.received(t0 + Duration::from_secs(30), RA, ll(1), 255)
            .unwrap();
        assert_eq!(d.peer(t0 + Duration::from_secs(60)), Some(ll(1)));
        // Quiet for PEER_EXPIRY: gone; the next router heard replaces it.
        let late = t0 + Duration::from_secs(30) + PEER_EXPIRY;
        assert_eq!(d.peer(late), None);
        d.received(late, RA, ll(2), 255).unwrap();
        assert_eq!(d.peer(late), Some(ll(2)));
    }

    #[test]
    fn off_link_and_non_link_local_sources_are_ignored() {
        let t0 = Instant::now();
        let (mut d, _) = Discovery::start(t0);
        assert_eq!(d.received(t0, RA, ll(1), 64), Err(Ignored::HopLimit(64)));
        assert_eq!(
            d.received(t0, RA, "2001:db8::1".parse().unwrap(), 255),
            Err(Ignored::NotLinkLocal)
        );
        assert_eq!(d.peer(t0), None);
    }

    #[test]
    fn solicitations_are_answered_at_most_once_a_second() {
        let t0 = Instant::now();
        let (mut d, _) = Discovery::start(t0);
        let rs = Message::RouterSolicitation;
        assert_eq!(
            d.received(t0, rs, ll(1), 255),
            Ok(vec![Send::Advertisement])
        );
        assert_eq!(d.received(t0, rs, ll(1), 255), Ok(vec![]));
        let later = t0 + MIN_ANSWER_GAP;
        assert_eq!(
            d.received(later, rs, ll(1), 255),
            Ok(vec![Send::Advertisement])
        );
        assert_eq!(
            d.peer(later),
            None,
            "a solicitation says nothing of a router"
        );
    }
}
