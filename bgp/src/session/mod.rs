//! A sans-IO BGP session: the finite state machine of RFC 4271 §8 with
//! graceful restart (RFC 4724), four-octet AS numbers (RFC 6793) and
//! enhanced route refresh (RFC 7313).
//!
//! A [`Session`] talks to one peer. It owns no socket and reads no clock:
//! the I/O layer calls an event method (`start`, `tcp_connected`,
//! `bytes_received`, `poll`…) with the current time, a [`Duration`] since
//! any fixed origin, and carries out the returned [`Action`]s in order. It
//! calls [`Session::poll`] at [`Session::next_deadline`].
//!
//! # Connections
//!
//! The I/O layer names each TCP connection with a [`ConnId`] of its choice.
//! On [`Action::Connect`] it opens one outbound connection (replacing any
//! attempt in progress) and reports [`Session::tcp_connected`] or
//! [`Session::tcp_failed`]; connections the peer opens are reported with
//! [`Session::tcp_accepted`]. Up to two connections may coexist; when the
//! peer's OPEN arrives on one while the other is also opening, the session
//! resolves the collision (RFC 4271 §6.8, see [`resolve_collision`]) and
//! closes the loser with Cease / Connection Collision Resolution
//! ([`Action::CloseConnection`]).
//!
//! # Routes
//!
//! [`Session::announce`] and [`Session::withdraw`] change the Adj-RIB-Out at
//! any time; changes are coalesced and sent at the next poll (after
//! [`SessionConfig::update_delay`]) in as few UPDATEs as the message size
//! allows. When the session is established the whole table is sent,
//! followed by End-of-RIB for every negotiated family. Received routes are
//! validated and counted, never installed.
//!
//! # BFD
//!
//! When the BFD session protecting the peer goes down, the I/O layer calls
//! [`Session::bfd_down`]: Cease / BFD Down (RFC 9384), the routes are
//! dropped and ConnectRetry starts over. BFD being down does not keep the
//! session from establishing again (RFC 5882 §4.3 leaves that choice open).
//!
//! ```
//! use std::net::Ipv4Addr;
//! use std::time::Duration;
//! use ferrolb_bgp::session::{Action, ConnId, PeerAs, Session, SessionConfig, State};
//!
//! let cfg = SessionConfig::new(64512, Ipv4Addr::new(192, 0, 2, 1), PeerAs::External);
//! let mut session = Session::new(cfg).unwrap();
//! let t0 = Duration::ZERO;
//! assert!(session.start(t0).contains(&Action::Connect));
//! let out = session.tcp_connected(t0, ConnId(1), Ipv4Addr::new(192, 0, 2, 1).into());
//! assert!(matches!(out[0], Action::SendBytes { .. })); // our OPEN
//! assert_eq!(session.state(), State::OpenSent);
//! assert_eq!(session.next_deadline(), Some(Duration::from_secs(240)));
//! ```

mod config;
mod fsm;
mod negotiate;
mod rib_in;
mod rib_out;
mod timers;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::{ConfigError, GracefulRestartConfig, MaxPrefixAction, PeerAs, SessionConfig};
pub use negotiate::{
    Keep, Negotiated, PeerGracefulRestart, local_open, negotiate, resolve_collision,
};
pub use rib_in::FamilyCounts;
pub use rib_out::{DEFAULT_LOCAL_PREF, RouteAttributes, Unsendable};
pub use timers::{Backoff, keepalive_interval};

use crate::message::MessageDecoder;
use crate::message::notification::Notification;
use crate::message::open::Open;
use crate::prefix::{AddressFamily, Prefix};
use rib_in::AdjRibIn;
use rib_out::AdjRibOut;

/// Names a TCP connection; chosen by the I/O layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// Who opened a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We did ([`Session::tcp_connected`]).
    Outbound,
    /// The peer did ([`Session::tcp_accepted`]).
    Inbound,
}

/// Session states of RFC 4271 §8.2.2. With two connections, the state is
/// that of the more advanced one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Not started, or just failed.
    Idle,
    /// Waiting for our outbound connection.
    Connect,
    /// Waiting for the peer to connect, or for ConnectRetry to try again.
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Exchanging routes.
    Established,
}

/// What the I/O layer must do, or may want to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Open an outbound TCP connection to the peer (port 179), abandoning
    /// any attempt in progress; report the outcome with
    /// [`Session::tcp_connected`] or [`Session::tcp_failed`].
    Connect,
    /// Abandon the outbound attempt in progress (after [`Session::stop`]).
    AbortConnect,
    /// Write these bytes (one whole message) to the connection.
    SendBytes {
        /// The connection.
        conn: ConnId,
        /// The encoded message.
        bytes: Vec<u8>,
    },
    /// Close the connection after writing what was queued.
    CloseConnection {
        /// The connection.
        conn: ConnId,
    },
    /// The session state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
    },
    /// The session is established.
    Established {
        /// The connection kept.
        conn: ConnId,
        /// What was negotiated.
        negotiated: Box<Negotiated>,
    },
    /// We sent a NOTIFICATION (and close the connection).
    NotificationSent {
        /// The connection.
        conn: ConnId,
        /// The notification; see `code`, `subcode` and
        /// `shutdown_communication()`.
        notification: Notification,
    },
    /// The peer sent a NOTIFICATION.
    NotificationReceived {
        /// The connection.
        conn: ConnId,
        /// The notification.
        notification: Notification,
    },
    /// An UPDATE changed the received routes of a family.
    RoutesReceived {
        /// The family.
        family: AddressFamily,
        /// The family's counters after the UPDATE.
        counts: FamilyCounts,
    },
    /// The peer sent End-of-RIB for a family.
    EndOfRibReceived {
        /// The family.
        family: AddressFamily,
    },
    /// The peer asked for our routes again (ROUTE-REFRESH); they are being
    /// re-sent.
    RouteRefreshReceived {
        /// The family.
        family: AddressFamily,
    },
    /// The connection to a graceful-restart capable peer was lost: its
    /// routes are kept as stale for at most `restart_time`.
    PeerRestarting {
        /// The peer's advertised restart time.
        restart_time: Duration,
        /// Routes kept as stale.
        stale_routes: usize,
    },
    /// Stale routes were removed (End-of-RIB, EoRR, or a timer).
    StaleRoutesRemoved {
        /// The family, or `None` for all.
        family: Option<AddressFamily>,
        /// How many.
        count: usize,
    },
    /// Something worth logging that does not change the session.
    Warning(String),
}

/// Message counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// UPDATEs sent (End-of-RIB included).
    pub updates_sent: u64,
    /// UPDATEs received.
    pub updates_received: u64,
    /// KEEPALIVEs sent.
    pub keepalives_sent: u64,
    /// KEEPALIVEs received.
    pub keepalives_received: u64,
    /// Times the session reached Established.
    pub established: u64,
}

/// State of one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ConnState {
    /// TCP is up, OPEN delayed (DelayOpen).
    Connected,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    dir: Direction,
    local_addr: IpAddr,
    state: ConnState,
    decoder: MessageDecoder,
    negotiated: Option<Negotiated>,
    hold_deadline: Option<Duration>,
    keepalive_deadline: Option<Duration>,
    delay_open_deadline: Option<Duration>,
}

/// One BGP session with one peer; see the [module documentation](self).
#[derive(Debug)]
pub struct Session {
    cfg: SessionConfig,
    local_open: Open,
    started: bool,
    /// State when no connection is open: Idle, Connect or Active.
    base: State,
    /// An outbound attempt is in progress.
    connecting: bool,
    conns: Vec<Conn>,
    connect_retry: Option<Duration>,
    backoff: Backoff,
    rib_out: AdjRibOut,
    rib_in: AdjRibIn,
    flush_at: Option<Duration>,
    /// The peer's graceful restart capability on the last session.
    peer_gr: Option<PeerGracefulRestart>,
    restart_deadline: Option<Duration>,
    stale_deadline: Option<Duration>,
    reported_state: State,
    now: Duration,
    stats: SessionStats,
}

impl Session {
    /// A stopped session.
    pub fn new(cfg: SessionConfig) -> Result<Session, ConfigError> {
        cfg.validate()?;
        Ok(Session {
            local_open: local_open(&cfg),
            backoff: Backoff::new(
                cfg.connect_retry_initial,
                cfg.connect_retry_max,
                cfg.jitter_seed,
            ),
            rib_in: AdjRibIn::new(cfg.max_received_prefixes),
            cfg,
            started: false,
            base: State::Idle,
            connecting: false,
            conns: Vec::new(),
            connect_retry: None,
            rib_out: AdjRibOut::default(),
            flush_at: None,
            peer_gr: None,
            restart_deadline: None,
            stale_deadline: None,
            reported_state: State::Idle,
            now: Duration::ZERO,
            stats: SessionStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The OPEN we send.
    pub fn local_open(&self) -> &Open {
        &self.local_open
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.conns
            .iter()
            .map(|c| match c.state {
                ConnState::Connected if c.dir == Direction::Outbound => State::Connect,
                ConnState::Connected => State::Active,
                ConnState::OpenSent => State::OpenSent,
                ConnState::OpenConfirm => State::OpenConfirm,
                ConnState::Established => State::Established,
            })
            .max()
            .unwrap_or(self.base)
    }

    /// The established connection and what it negotiated.
    pub fn established(&self) -> Option<(ConnId, &Negotiated)> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| Some((c.id, c.negotiated.as_ref()?)))
    }

    /// Open connections and who opened them.
    pub fn connections(&self) -> Vec<(ConnId, Direction)> {
        self.conns.iter().map(|c| (c.id, c.dir)).collect()
    }

    /// Counters of the received routes, per family.
    pub fn received(&self) -> &BTreeMap<AddressFamily, FamilyCounts> {
        self.rib_in.counts()
    }

    /// Counters of one family of received routes.
    pub fn received_family(&self, family: AddressFamily) -> FamilyCounts {
        self.rib_in.family_counts(family)
    }

    /// Received prefixes stored (all families).
    pub fn received_stored(&self) -> usize {
        self.rib_in.len()
    }

    /// Our routes (the Adj-RIB-Out as configured).
    pub fn routes(&self) -> &BTreeMap<Prefix, Arc<RouteAttributes>> {
        self.rib_out.routes()
    }

    /// Routes the peer currently has from us.
    pub fn advertised(&self) -> usize {
        self.rib_out.sent_len()
    }

    /// Message counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Failures since the session was last established (drives the
    /// ConnectRetry backoff).
    pub fn connect_failures(&self) -> u32 {
        self.backoff.failures()
    }

    /// Announces `prefix` (or changes its attributes). Sent at the next poll
    /// when established; re-announcing an unchanged route sends nothing.
    /// Routes that share attributes may share one `Arc` (many prefixes,
    /// one copy of their communities).
    pub fn announce(&mut self, prefix: Prefix, attrs: impl Into<Arc<RouteAttributes>>) {
        self.rib_out.announce(prefix, attrs.into());
        self.schedule_flush();
    }

    /// Withdraws `prefix`. Sent at the next poll when established.
    pub fn withdraw(&mut self, prefix: Prefix) {
        self.rib_out.withdraw(prefix);
        self.schedule_flush();
    }

    fn schedule_flush(&mut self) {
        if self.flush_at.is_none() && self.rib_out.has_pending() {
            self.flush_at = Some(self.now + self.cfg.update_delay);
        }
    }

    /// The earliest time [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let established = self.state() == State::Established;
        self.conns
            .iter()
            .flat_map(|c| [c.hold_deadline, c.keepalive_deadline, c.delay_open_deadline])
            .chain([
                self.connect_retry,
                self.restart_deadline,
                self.stale_deadline,
                self.flush_at.filter(|_| established),
            ])
            .flatten()
            .min()
    }
}
