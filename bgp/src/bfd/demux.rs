//! Routing received Control packets to sessions (RFC 5880 §6.3, §6.8.6;
//! RFC 5881 §3; RFC 5883 §4).
//!
//! A packet whose Your Discriminator is nonzero goes to the session with
//! that local discriminator; one whose Your Discriminator is zero goes to
//! the session for the packet's source address and kind of hop (the port
//! it arrived on).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::Duration;

use super::packet::ControlPacket;
use super::profile::Profile;
use super::session::{Output, RxError, Session, SessionConfig};
use super::{Hop, Rng};

/// Why a packet could not be delivered or a session not added.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DemuxError {
    /// No session matches the packet.
    #[error("no session for the packet")]
    NoSession,
    /// The session matched by discriminator is for another address or kind
    /// of hop.
    #[error("packet from {0} does not belong to the session it names")]
    Mismatch(IpAddr),
    /// A session for this peer and kind of hop already exists.
    #[error("a session for {0} already exists")]
    Duplicate(IpAddr),
    /// The session discarded the packet.
    #[error(transparent)]
    Rx(#[from] RxError),
}

#[derive(Clone, Debug)]
struct Entry {
    peer: IpAddr,
    session: Session,
}

/// Sessions keyed by local discriminator and by (peer address, hop).
#[derive(Clone, Debug)]
pub struct Demux {
    sessions: BTreeMap<u32, Entry>,
    by_peer: HashMap<(IpAddr, Hop), u32>,
    rng: Rng,
}

impl Demux {
    /// An empty demultiplexer; `seed` drives discriminator allocation and
    /// the sessions' jitter seeds.
    pub fn new(seed: u64) -> Demux {
        Demux {
            sessions: BTreeMap::new(),
            by_peer: HashMap::new(),
            rng: Rng::new(seed),
        }
    }

    /// Adds a session for `peer` with a fresh nonzero local discriminator,
    /// which is returned.
    pub fn add(&mut self, peer: IpAddr, hop: Hop, profile: Profile) -> Result<u32, DemuxError> {
        if self.by_peer.contains_key(&(peer, hop)) {
            return Err(DemuxError::Duplicate(peer));
        }
        let discr = loop {
            let d = self.rng.next_u64() as u32;
            if d != 0 && !self.sessions.contains_key(&d) {
                break d;
            }
        };
        let session = Session::new(SessionConfig {
            profile,
            hop,
            local_discriminator: discr,
            seed: self.rng.next_u64(),
        });
        self.sessions.insert(discr, Entry { peer, session });
        self.by_peer.insert((peer, hop), discr);
        Ok(discr)
    }

    /// Removes a session.
    pub fn remove(&mut self, discr: u32) -> Option<Session> {
        let entry = self.sessions.remove(&discr)?;
        self.by_peer.remove(&(entry.peer, entry.session.hop()));
        Some(entry.session)
    }

    /// The session with this local discriminator.
    pub fn get(&self, discr: u32) -> Option<&Session> {
        self.sessions.get(&discr).map(|e| &e.session)
    }

    /// The session with this local discriminator, mutably (to call
    /// `admin_down`, `set_profile`, …).
    pub fn get_mut(&mut self, discr: u32) -> Option<&mut Session> {
        self.sessions.get_mut(&discr).map(|e| &mut e.session)
    }

    /// The local discriminator of the session for `peer` and `hop`.
    pub fn lookup(&self, peer: IpAddr, hop: Hop) -> Option<u32> {
        self.by_peer.get(&(peer, hop)).copied()
    }

    /// The peer address of a session.
    pub fn peer(&self, discr: u32) -> Option<IpAddr> {
        self.sessions.get(&discr).map(|e| e.peer)
    }

    /// Number of sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether there are no sessions.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Routes a packet received from `peer` on the port of `hop` with TTL
    /// `ttl`. Returns the discriminator of the session that accepted it.
    pub fn receive(
        &mut self,
        peer: IpAddr,
        hop: Hop,
        bytes: &[u8],
        ttl: u8,
        now: Duration,
    ) -> Result<u32, DemuxError> {
        let pkt = ControlPacket::decode(bytes).map_err(RxError::from)?;
        let discr = if pkt.your_discriminator != 0 {
            pkt.your_discriminator
        } else {
            self.lookup(peer, hop).ok_or(DemuxError::NoSession)?
        };
        let entry = self.sessions.get_mut(&discr).ok_or(DemuxError::NoSession)?;
        if entry.peer != peer || entry.session.hop() != hop {
            return Err(DemuxError::Mismatch(peer));
        }
        entry.session.receive_packet(&pkt, ttl, now)?;
        Ok(discr)
    }

    /// Polls every session; each output comes with the session's
    /// discriminator and peer address.
    pub fn poll(&mut self, now: Duration) -> Vec<(u32, IpAddr, Output)> {
        let mut out = Vec::new();
        for (&discr, entry) in &mut self.sessions {
            for o in entry.session.poll(now) {
                out.push((discr, entry.peer, o));
            }
        }
        out
    }

    /// Earliest deadline over all sessions.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.sessions
            .values()
            .filter_map(|e| e.session.next_deadline())
            .min()
    }
}
