//! BFD over UDP with Tokio (RFC 5881 single-hop, RFC 5883 multi-hop).
//!
//! [`spawn`] starts one task that owns a [`Demux`] and the sockets, and
//! does nothing but I/O: it hands received packets (with their TTL) to the
//! demultiplexer, sends what the sessions ask for, sleeps until
//! [`Demux::next_deadline`], and reports state changes. The protocol itself
//! lives in the sans-IO [`session`](super::session).
//!
//! Sockets, opened only for what the configured sessions need:
//!
//! - one receiving socket per address family, kind of hop and device, on
//!   [`Ports::single_hop`] (3784) or [`Ports::multi_hop`] (4784) of the
//!   unspecified address, with `IP_RECVTTL` / `IPV6_RECVHOPLIMIT` so that
//!   every packet's TTL reaches the session (single-hop sessions drop
//!   anything not received with 255, RFC 5881 §5). `SO_REUSEADDR` is set so
//!   that a socket bound to a device (VRF) and an unbound one can share the
//!   port;
//! - one sending socket per session, bound to the session's source address
//!   (or the unspecified address) and its own port in
//!   [`SOURCE_PORTS`] (RFC 5881 §4: the same source
//!   port for all packets of a session, unique per session), TTL / hop
//!   limit 255 ([`TX_TTL`]), traffic class CS6 (network control), and the
//!   session's device (`SO_BINDTODEVICE`) when given.
//!
//! Ports are configurable ([`IoConfig`]) with the RFC ports as defaults, so
//! that two instances can run in one network namespace (tests).
//!
//! [`BfdHandle::remove_session`] takes a session AdminDown (diag
//! Administratively Down) and keeps it transmitting AdminDown packets for a
//! detection time before it is forgotten (RFC 5880 §6.8.16), bounded by
//! [`IoConfig::max_drain`]; [`BfdHandle::shutdown`] does that for every
//! session and ends the task.

use std::collections::HashMap;
use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{
    Demux, Diag, Hop, MULTI_HOP_PORT, Output, Profile, Rng, SINGLE_HOP_PORT, SOURCE_PORTS, State,
    TX_TTL,
};

/// DSCP CS6 (network control) in the TOS / traffic class octet.
pub const TOS_CS6: u8 = 0xc0;
/// Longest datagram read; a Control packet is at most 255 octets.
const RX_BUFFER: usize = 512;
/// Room for the ancillary data of one datagram (a TTL needs 24 octets).
const CONTROL_LEN: usize = 128;
/// Received packets queued between a reading task and the main loop; when
/// full, the reading task waits and the kernel drops.
const RX_QUEUE: usize = 1024;
/// Pause after a failed read, so that a persistent error does not spin.
const RX_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// UDP ports of the two kinds of session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ports {
    /// Single-hop (RFC 5881: 3784).
    pub single_hop: u16,
    /// Multi-hop (RFC 5883: 4784).
    pub multi_hop: u16,
}

impl Ports {
    /// The ports of RFC 5881 and RFC 5883.
    pub const RFC: Ports = Ports {
        single_hop: SINGLE_HOP_PORT,
        multi_hop: MULTI_HOP_PORT,
    };

    /// The port for `hop`.
    pub fn get(self, hop: Hop) -> u16 {
        match hop {
            Hop::SingleHop => self.single_hop,
            Hop::MultiHop => self.multi_hop,
        }
    }
}

impl Default for Ports {
    fn default() -> Self {
        Ports::RFC
    }
}

/// Settings of the task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IoConfig {
    /// Ports we receive on.
    pub listen: Ports,
    /// Ports we send to.
    pub peer: Ports,
    /// Seed of discriminators, jitter and source ports; `None` derives one
    /// from the clock and the process id.
    pub seed: Option<u64>,
    /// Longest time a removed session keeps sending AdminDown packets.
    pub max_drain: Duration,
}

impl Default for IoConfig {
    fn default() -> Self {
        IoConfig {
            listen: Ports::RFC,
            peer: Ports::RFC,
            seed: None,
            max_drain: Duration::from_secs(3),
        }
    }
}

/// One session to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerConfig {
    /// The peer's address.
    pub peer: IpAddr,
    /// IPv6 scope id for a link-local peer (0 otherwise).
    pub scope_id: u32,
    /// Source address; `None` lets the kernel choose.
    pub source: Option<IpAddr>,
    /// Device (VRF or interface) to bind the sockets to.
    pub bind_device: Option<String>,
    /// Single-hop or multi-hop.
    pub hop: Hop,
    /// Timers and roles.
    pub profile: Profile,
}

impl PeerConfig {
    /// A session to `peer` with no source address and no device.
    pub fn new(peer: IpAddr, hop: Hop, profile: Profile) -> Self {
        PeerConfig {
            peer,
            scope_id: 0,
            source: None,
            bind_device: None,
            hop,
            profile,
        }
    }

    /// Where packets go: the peer, the port for the session's hop, and
    /// the scope id.
    pub fn destination(&self, ports: Ports) -> SocketAddr {
        let port = ports.get(self.hop);
        match self.peer {
            IpAddr::V4(v4) => SocketAddr::from((v4, port)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, self.scope_id)),
        }
    }

    /// The address to bind the sending socket to (port filled in later).
    fn bind_ip(&self) -> io::Result<IpAddr> {
        match (self.source, self.peer) {
            (None, IpAddr::V4(_)) => Ok(Ipv4Addr::UNSPECIFIED.into()),
            (None, IpAddr::V6(_)) => Ok(Ipv6Addr::UNSPECIFIED.into()),
            (Some(source), peer) if source.is_ipv4() == peer.is_ipv4() => Ok(source),
            (Some(source), peer) => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source {source} and peer {peer} are not of the same address family"),
            )),
        }
    }
}

/// What a session's watch channel holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.LocalDiag.
    pub diag: Diag,
    /// bfd.RemoteSessionState when the state last changed.
    pub remote_state: State,
}

/// A session added by [`BfdHandle::add_session`].
#[derive(Debug)]
pub struct AddedSession {
    /// Its local discriminator (nonzero).
    pub discriminator: u32,
    /// Address and port its packets are sent from.
    pub local: SocketAddr,
    /// Its state; closed when the session is removed.
    pub status: watch::Receiver<SessionStatus>,
}

/// What the task reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BfdEvent {
    /// A session changed state.
    StateChanged {
        /// Local discriminator.
        discriminator: u32,
        /// Peer address.
        peer: IpAddr,
        /// Single-hop or multi-hop.
        hop: Hop,
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// bfd.LocalDiag after the change.
        diag: Diag,
        /// The peer's state as last received.
        remote_state: State,
    },
    /// Sending failed (reported once, until a send succeeds again).
    SendFailed {
        /// Local discriminator.
        discriminator: u32,
        /// Peer address.
        peer: IpAddr,
        /// Why.
        error: String,
    },
    /// Reading a receiving socket failed (it keeps reading).
    ReceiveFailed {
        /// Why.
        error: String,
    },
    /// A session was removed (after its AdminDown packets).
    Removed {
        /// Local discriminator.
        discriminator: u32,
        /// Peer address.
        peer: IpAddr,
    },
    /// The task ended.
    Stopped,
}

impl BfdEvent {
    /// Whether this change means the path to the peer failed, so that a
    /// client such as BGP should act (RFC 5882 §3.2): the session left Up
    /// for Down, except when the peer took it administratively down, which
    /// says nothing about the path.
    pub fn is_path_failure(&self) -> bool {
        matches!(
            self,
            BfdEvent::StateChanged {
                from: State::Up,
                to: State::Down,
                remote_state,
                ..
            } if *remote_state != State::AdminDown
        )
    }
}

/// Packet counters of the task.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoStats {
    /// Control packets sent.
    pub sent: u64,
    /// Control packets that could not be sent.
    pub send_errors: u64,
    /// Control packets accepted by a session.
    pub received: u64,
    /// Datagrams discarded: malformed, no session, wrong TTL, wrong
    /// discriminator, AdminDown…
    pub dropped: u64,
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum BfdIoError {
    /// A session for this peer and kind of hop exists.
    #[error("a BFD session to {0} of this kind already exists")]
    Duplicate(IpAddr),
    /// A socket could not be set up.
    #[error("{context}: {source}")]
    Socket {
        /// What was being done.
        context: String,
        /// The system's error.
        #[source]
        source: io::Error,
    },
    /// The task has ended.
    #[error("the BFD task has ended")]
    TaskEnded,
}

enum Command {
    Add(
        PeerConfig,
        oneshot::Sender<Result<AddedSession, BfdIoError>>,
    ),
    Remove(u32, oneshot::Sender<bool>),
    Admin {
        discriminator: u32,
        down: bool,
        done: oneshot::Sender<bool>,
    },
    Stats(oneshot::Sender<IoStats>),
    Shutdown(oneshot::Sender<()>),
}

/// Controls the task of [`spawn`]; cloneable. When every handle is
/// dropped, the task shuts down as with [`shutdown`](Self::shutdown).
#[derive(Clone, Debug)]
pub struct BfdHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl BfdHandle {
    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).ok()?;
        rx.await.ok()
    }

    /// Adds a session and opens the sockets it needs. It starts in Down and
    /// transmits at once (unless its profile is passive).
    pub async fn add_session(&self, peer: PeerConfig) -> Result<AddedSession, BfdIoError> {
        self.ask(|tx| Command::Add(peer, tx))
            .await
            .ok_or(BfdIoError::TaskEnded)?
    }

    /// Takes the session AdminDown, keeps sending AdminDown packets for a
    /// detection time (at most [`IoConfig::max_drain`]), then forgets it
    /// and closes the sockets no other session uses. Returns once that is
    /// done; `false` when there is no such session.
    pub async fn remove_session(&self, discriminator: u32) -> Result<bool, BfdIoError> {
        self.ask(|tx| Command::Remove(discriminator, tx))
            .await
            .ok_or(BfdIoError::TaskEnded)
    }

    /// Takes the session AdminDown (`down`) or back to Down, where it
    /// starts over with the peer. `false` when there is no such session (or
    /// it is being removed).
    pub async fn set_admin_down(&self, discriminator: u32, down: bool) -> Result<bool, BfdIoError> {
        self.ask(|done| Command::Admin {
            discriminator,
            down,
            done,
        })
        .await
        .ok_or(BfdIoError::TaskEnded)
    }

    /// Packet counters.
    pub async fn stats(&self) -> Result<IoStats, BfdIoError> {
        self.ask(Command::Stats).await.ok_or(BfdIoError::TaskEnded)
    }

    /// Removes every session (AdminDown first, as
    /// [`remove_session`](Self::remove_session)) and ends the task.
    pub async fn shutdown(&self) -> Result<(), BfdIoError> {
        self.ask(Command::Shutdown)
            .await
            .ok_or(BfdIoError::TaskEnded)
    }
}

/// Starts the task. No socket is opened until a session is added.
pub fn spawn(cfg: IoConfig) -> (BfdHandle, mpsc::UnboundedReceiver<BfdEvent>, JoinHandle<()>) {
    let seed = cfg.seed.unwrap_or_else(default_seed);
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (rx_tx, rx_rx) = mpsc::channel(RX_QUEUE);
    let task = Task {
        demux: Demux::new(seed),
        ports_rng: Rng::new(seed.rotate_left(32) ^ 0xa5a5_a5a5_a5a5_a5a5),
        cfg,
        origin: Instant::now(),
        sessions: HashMap::new(),
        receivers: HashMap::new(),
        rx_tx,
        rx_rx,
        commands: cmd_rx,
        commands_open: true,
        events: ev_tx,
        stats: IoStats::default(),
        shutdown: None,
    };
    let join = tokio::spawn(task.run());
    (BfdHandle { commands: cmd_tx }, ev_rx, join)
}

fn default_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// What identifies a receiving socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct RxKey {
    ipv6: bool,
    hop: Hop,
    device: Option<String>,
}

impl RxKey {
    fn describe(&self, port: u16) -> String {
        let family = if self.ipv6 { "IPv6" } else { "IPv4" };
        let hop = match self.hop {
            Hop::SingleHop => "single-hop",
            Hop::MultiHop => "multi-hop",
        };
        match &self.device {
            Some(device) => format!("listening on UDP port {port} ({family}, {hop}, {device})"),
            None => format!("listening on UDP port {port} ({family}, {hop})"),
        }
    }
}

struct RxSocket {
    users: usize,
    task: JoinHandle<()>,
}

/// What reading tasks tell the main loop.
enum Rx {
    Packet {
        hop: Hop,
        from: SocketAddr,
        ttl: Option<u8>,
        bytes: Vec<u8>,
    },
    Error(String),
}

/// A session being removed: AdminDown packets go out until `until` (and at
/// least one has gone), or until `limit` whatever happens.
struct Drain {
    until: Duration,
    limit: Duration,
    sent: bool,
    waiting: Vec<oneshot::Sender<bool>>,
}

struct SessionIo {
    peer: IpAddr,
    hop: Hop,
    rx_key: RxKey,
    /// Not registered with Tokio: sends are non-blocking and a full buffer
    /// loses the packet (the next one follows within an interval).
    socket: std::net::UdpSocket,
    destination: SocketAddr,
    status: watch::Sender<SessionStatus>,
    send_failing: bool,
    drain: Option<Drain>,
}

struct Task {
    cfg: IoConfig,
    demux: Demux,
    ports_rng: Rng,
    origin: Instant,
    sessions: HashMap<u32, SessionIo>,
    receivers: HashMap<RxKey, RxSocket>,
    rx_tx: mpsc::Sender<Rx>,
    rx_rx: mpsc::Receiver<Rx>,
    commands: mpsc::UnboundedReceiver<Command>,
    commands_open: bool,
    events: mpsc::UnboundedSender<BfdEvent>,
    stats: IoStats,
    /// Shutting down; who to tell when done.
    shutdown: Option<Vec<oneshot::Sender<()>>>,
}

impl Task {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn emit(&self, event: BfdEvent) {
        let _ = self.events.send(event);
    }

    async fn run(mut self) {
        loop {
            let now = self.now();
            self.poll(now);
            if self.shutdown.is_some() && self.sessions.is_empty() {
                break;
            }
            let deadline = self.next_deadline(now).map(|d| self.origin + d);
            tokio::select! {
                command = self.commands.recv(), if self.commands_open => match command {
                    Some(command) => self.command(command),
                    None => {
                        self.commands_open = false;
                        self.begin_shutdown(None);
                    }
                },
                Some(rx) = self.rx_rx.recv() => self.receive(rx),
                () = sleep_until(deadline) => {}
            }
        }
        for (_, rx) in self.receivers.drain() {
            rx.task.abort();
        }
        self.emit(BfdEvent::Stopped);
        for done in self.shutdown.take().unwrap_or_default() {
            let _ = done.send(());
        }
    }

    fn next_deadline(&self, now: Duration) -> Option<Duration> {
        // Once a drain's detection time has passed, it waits for a packet
        // (a session deadline) or its limit; not for the past `until`.
        let drains = self
            .sessions
            .values()
            .filter_map(|s| s.drain.as_ref())
            .flat_map(|d| [(d.until > now).then_some(d.until), Some(d.limit)])
            .flatten();
        self.demux.next_deadline().into_iter().chain(drains).min()
    }

    fn command(&mut self, command: Command) {
        let now = self.now();
        match command {
            Command::Add(peer, reply) => {
                let result = if self.shutdown.is_some() {
                    Err(BfdIoError::TaskEnded)
                } else {
                    self.add(peer)
                };
                let _ = reply.send(result);
            }
            Command::Remove(discriminator, reply) => self.remove(discriminator, now, Some(reply)),
            Command::Admin {
                discriminator,
                down,
                done,
            } => {
                let draining = self
                    .sessions
                    .get(&discriminator)
                    .is_some_and(|io| io.drain.is_some());
                let found = match self.demux.get_mut(discriminator) {
                    // Being removed: stays AdminDown.
                    Some(_) if draining => false,
                    Some(session) if down => {
                        session.admin_down();
                        true
                    }
                    Some(session) => {
                        session.admin_up();
                        true
                    }
                    None => false,
                };
                let _ = done.send(found);
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.stats);
            }
            Command::Shutdown(done) => self.begin_shutdown(Some(done)),
        }
    }

    fn begin_shutdown(&mut self, done: Option<oneshot::Sender<()>>) {
        self.shutdown.get_or_insert_with(Vec::new).extend(done);
        let now = self.now();
        for discriminator in self.sessions.keys().copied().collect::<Vec<_>>() {
            self.remove(discriminator, now, None);
        }
    }

    fn add(&mut self, peer: PeerConfig) -> Result<AddedSession, BfdIoError> {
        if self.demux.lookup(peer.peer, peer.hop).is_some() {
            return Err(BfdIoError::Duplicate(peer.peer));
        }
        let rx_key = RxKey {
            ipv6: peer.peer.is_ipv6(),
            hop: peer.hop,
            device: peer.bind_device.clone(),
        };
        if !self.receivers.contains_key(&rx_key) {
            let port = self.cfg.listen.get(peer.hop);
            let socket = receive_socket(rx_key.ipv6, port, rx_key.device.as_deref())
                .and_then(UdpSocket::from_std)
                .map_err(|source| BfdIoError::Socket {
                    context: rx_key.describe(port),
                    source,
                })?;
            let task = tokio::spawn(read_loop(socket, peer.hop, self.rx_tx.clone()));
            self.receivers
                .insert(rx_key.clone(), RxSocket { users: 0, task });
        }
        let start = port_start(&mut self.ports_rng);
        let opened = send_socket(&peer, start).and_then(|s| Ok((s.local_addr()?, s)));
        let (local, socket) = match opened {
            Ok(opened) => opened,
            Err(source) => {
                self.drop_unused_receiver(&rx_key);
                return Err(BfdIoError::Socket {
                    context: format!("opening the BFD socket for {}", peer.peer),
                    source,
                });
            }
        };
        let discriminator = match self.demux.add(peer.peer, peer.hop, peer.profile) {
            Ok(d) => d,
            Err(_) => {
                self.drop_unused_receiver(&rx_key);
                return Err(BfdIoError::Duplicate(peer.peer));
            }
        };
        if let Some(rx) = self.receivers.get_mut(&rx_key) {
            rx.users += 1;
        }
        let (status, status_rx) = watch::channel(SessionStatus {
            state: State::Down,
            diag: Diag::NoDiagnostic,
            remote_state: State::Down,
        });
        tracing::debug!(peer = %peer.peer, %local, discriminator, "BFD session added");
        self.sessions.insert(
            discriminator,
            SessionIo {
                peer: peer.peer,
                hop: peer.hop,
                rx_key,
                destination: peer.destination(self.cfg.peer),
                socket,
                status,
                send_failing: false,
                drain: None,
            },
        );
        Ok(AddedSession {
            discriminator,
            local,
            status: status_rx,
        })
    }

    /// A session no longer uses a receiving socket: closed when it was the
    /// last.
    fn release_receiver(&mut self, key: &RxKey) {
        if let Some(rx) = self.receivers.get_mut(key) {
            rx.users = rx.users.saturating_sub(1);
        }
        self.drop_unused_receiver(key);
    }

    /// Closes a receiving socket if no session uses it (one opened for a
    /// session that then failed to be added).
    fn drop_unused_receiver(&mut self, key: &RxKey) {
        if self.receivers.get(key).is_some_and(|rx| rx.users == 0)
            && let Some(rx) = self.receivers.remove(key)
        {
            rx.task.abort();
        }
    }

    /// Starts removing a session: AdminDown, then drained in `poll`.
    fn remove(&mut self, discriminator: u32, now: Duration, reply: Option<oneshot::Sender<bool>>) {
        let (Some(io), Some(session)) = (
            self.sessions.get_mut(&discriminator),
            self.demux.get_mut(discriminator),
        ) else {
            if let Some(reply) = reply {
                let _ = reply.send(false);
            }
            return;
        };
        let drain = io.drain.get_or_insert_with(|| {
            // The peer's detection time for us: our multiplier times the
            // interval we currently send at. A peer that has not heard from
            // us (we are neither Init nor Up) only needs one packet.
            let detection = match (session.state(), session.transmit_interval()) {
                (State::Init | State::Up, Some(iv)) => {
                    iv * u32::from(session.profile().detect_mult())
                }
                _ => Duration::ZERO,
            };
            session.admin_down();
            Drain {
                until: now + detection.min(self.cfg.max_drain),
                limit: now + self.cfg.max_drain,
                sent: false,
                waiting: Vec::new(),
            }
        });
        drain.waiting.extend(reply);
    }

    fn receive(&mut self, rx: Rx) {
        match rx {
            Rx::Packet {
                hop,
                from,
                ttl,
                bytes,
            } => {
                let now = self.now();
                let peer = from.ip().to_canonical();
                // A missing TTL (it always comes) is treated as 0: refused
                // by single-hop sessions.
                let ttl = ttl.unwrap_or(0);
                match self.demux.receive(peer, hop, &bytes, ttl, now) {
                    Ok(_) => self.stats.received += 1,
                    Err(err) => {
                        self.stats.dropped += 1;
                        tracing::debug!(%from, ttl, %err, "BFD packet discarded");
                    }
                }
            }
            Rx::Error(error) => {
                tracing::warn!(%error, "reading a BFD socket");
                self.emit(BfdEvent::ReceiveFailed { error });
            }
        }
    }

    /// Runs the sessions' timers and carries out their outputs, then ends
    /// the drains that are over.
    fn poll(&mut self, now: Duration) {
        for (discriminator, peer, output) in self.demux.poll(now) {
            match output {
                Output::Send(bytes) => self.send(discriminator, &bytes),
                Output::StateChanged { from, to, diag } => {
                    let remote_state = self
                        .demux
                        .get(discriminator)
                        .map_or(State::Down, |s| s.remote_state());
                    let Some(io) = self.sessions.get(&discriminator) else {
                        continue;
                    };
                    tracing::info!(%peer, ?from, ?to, ?diag, "BFD state");
                    io.status.send_replace(SessionStatus {
                        state: to,
                        diag,
                        remote_state,
                    });
                    self.emit(BfdEvent::StateChanged {
                        discriminator,
                        peer,
                        hop: io.hop,
                        from,
                        to,
                        diag,
                        remote_state,
                    });
                }
            }
        }
        let finished: Vec<u32> = self
            .sessions
            .iter()
            .filter(|(d, io)| {
                io.drain.as_ref().is_some_and(|drain| {
                    let can_send = self
                        .demux
                        .get(**d)
                        .is_some_and(|s| s.transmit_interval().is_some());
                    drain_over(drain, now, can_send)
                })
            })
            .map(|(d, _)| *d)
            .collect();
        for discriminator in finished {
            self.demux.remove(discriminator);
            if let Some(io) = self.sessions.remove(&discriminator) {
                self.release_receiver(&io.rx_key);
                tracing::debug!(peer = %io.peer, discriminator, "BFD session removed");
                self.emit(BfdEvent::Removed {
                    discriminator,
                    peer: io.peer,
                });
                for reply in io.drain.into_iter().flat_map(|d| d.waiting) {
                    let _ = reply.send(true);
                }
            }
        }
    }

    fn send(&mut self, discriminator: u32, bytes: &[u8]) {
        let Some(io) = self.sessions.get_mut(&discriminator) else {
            return;
        };
        match io.socket.send_to(bytes, io.destination) {
            Ok(_) => {
                self.stats.sent += 1;
                io.send_failing = false;
                if let Some(drain) = &mut io.drain {
                    drain.sent = true;
                }
            }
            Err(err) => {
                self.stats.send_errors += 1;
                if !io.send_failing {
                    io.send_failing = true;
                    tracing::warn!(peer = %io.peer, %err, "sending a BFD packet");
                    let event = BfdEvent::SendFailed {
                        discriminator,
                        peer: io.peer,
                        error: format!("sending to {}: {err}", io.destination),
                    };
                    self.emit(event);
                }
            }
        }
    }
}

/// Whether a removed session has sent AdminDown long enough: a detection
/// time has passed and a packet went out (or the session cannot send, say
/// it is passive and never heard from the peer), or the limit is reached.
fn drain_over(drain: &Drain, now: Duration, can_send: bool) -> bool {
    now >= drain.limit || (now >= drain.until && (drain.sent || !can_send))
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn read_loop(socket: UdpSocket, hop: Hop, out: mpsc::Sender<Rx>) {
    let mut buf = [0u8; RX_BUFFER];
    loop {
        let fd = socket.as_raw_fd();
        let read = socket
            .async_io(Interest::READABLE, || recv_with_ttl(fd, &mut buf))
            .await;
        let message = match read {
            Ok(dgram) => Rx::Packet {
                hop,
                from: dgram.from,
                ttl: dgram.ttl,
                bytes: buf[..dgram.len].to_vec(),
            },
            Err(err) => Rx::Error(format!(
                "reading from {}: {err}",
                socket
                    .local_addr()
                    .map_or_else(|_| "a BFD socket".to_owned(), |a| a.to_string())
            )),
        };
        let failed = matches!(message, Rx::Error(_));
        if out.send(message).await.is_err() {
            return;
        }
        if failed {
            tokio::time::sleep(RX_ERROR_PAUSE).await;
        }
    }
}

// ---------------------------------------------------------------------
// Sockets

fn set_int_option(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    let len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` is a live c_int of `len` bytes and the fd is owned by
    // `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn udp_socket(ipv6: bool, device: Option<&str>) -> io::Result<Socket> {
    let domain = if ipv6 { Domain::IPV6 } else { Domain::IPV4 };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    if let Some(device) = device {
        socket.bind_device(Some(device.as_bytes())).map_err(|err| {
            io::Error::new(err.kind(), format!("binding to device {device:?}: {err}"))
        })?;
    }
    Ok(socket)
}

/// A socket receiving on `port` of the unspecified address, reporting each
/// packet's TTL / hop limit.
pub fn receive_socket(
    ipv6: bool,
    port: u16,
    device: Option<&str>,
) -> io::Result<std::net::UdpSocket> {
    let socket = udp_socket(ipv6, device)?;
    socket.set_reuse_address(true)?;
    let local: SocketAddr = if ipv6 {
        set_int_option(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
        (Ipv6Addr::UNSPECIFIED, port).into()
    } else {
        set_int_option(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
        (Ipv4Addr::UNSPECIFIED, port).into()
    };
    socket.bind(&local.into())?;
    Ok(socket.into())
}

/// The sending socket of a session: TTL 255, CS6, the session's device,
/// bound to its source address and a free port of
/// [`SOURCE_PORTS`], trying ports from `start` on.
pub fn send_socket(peer: &PeerConfig, start: u16) -> io::Result<std::net::UdpSocket> {
    let ipv6 = peer.peer.is_ipv6();
    let ip = peer.bind_ip()?;
    let socket = udp_socket(ipv6, peer.bind_device.as_deref())?;
    if ipv6 {
        socket.set_unicast_hops_v6(u32::from(TX_TTL))?;
        socket.set_tclass_v6(u32::from(TOS_CS6))?;
    } else {
        socket.set_ttl_v4(u32::from(TX_TTL))?;
        socket.set_tos_v4(u32::from(TOS_CS6))?;
    }
    let scope = match ip {
        IpAddr::V6(v6) if v6.is_unicast_link_local() => peer.scope_id,
        _ => 0,
    };
    for port in source_ports_from(start) {
        let local = match ip {
            IpAddr::V4(v4) => SocketAddr::from((v4, port)),
            IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, port, 0, scope)),
        };
        match socket.bind(&local.into()) {
            Ok(()) => return Ok(socket.into()),
            Err(err) if err.kind() == io::ErrorKind::AddrInUse => continue,
            Err(err) => {
                return Err(io::Error::new(
                    err.kind(),
                    format!("binding {local}: {err}"),
                ));
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!(
            "no free source port in {}..={} on {ip}",
            SOURCE_PORTS.start(),
            SOURCE_PORTS.end()
        ),
    ))
}

/// A random port of [`SOURCE_PORTS`] to start looking
/// from.
fn port_start(rng: &mut Rng) -> u16 {
    let span = u64::from(SOURCE_PORTS.end() - SOURCE_PORTS.start()) + 1;
    SOURCE_PORTS.start() + rng.below(span) as u16
}

/// Every port of [`SOURCE_PORTS`] once, from `start`
/// (moved into the range) on, wrapping around.
pub fn source_ports_from(start: u16) -> impl Iterator<Item = u16> {
    let (lo, hi) = (*SOURCE_PORTS.start(), *SOURCE_PORTS.end());
    let start = start.clamp(lo, hi);
    (start..=hi).chain(lo..start)
}

/// One datagram read by [`recv_with_ttl`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Octets written to the buffer.
    pub len: usize,
    /// Source address and port.
    pub from: SocketAddr,
    /// TTL / hop limit, when the ancillary data carried it.
    pub ttl: Option<u8>,
}

/// Reads one datagram with `recvmsg(2)` (non-blocking), with its source
/// and the TTL / hop limit from the ancillary data (`IP_RECVTTL` /
/// `IPV6_RECVHOPLIMIT` must be on).
pub fn recv_with_ttl(fd: RawFd, buf: &mut [u8]) -> io::Result<Datagram> {
    let mut control = [0u8; CONTROL_LEN];
    let mut control_len = 0usize;
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: the msghdr points to `iov` (describing `buf`), `control` and
    // the zeroed address storage of `try_init`, all live and of the sizes
    // given; recvmsg(2) writes within them and reports the lengths used.
    let (len, from) = unsafe {
        SockAddr::try_init(|storage, addr_len| {
            let mut msg: libc::msghdr = mem::zeroed();
            msg.msg_name = storage.cast();
            msg.msg_namelen = *addr_len;
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = control.len() as _;
            let n = libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT);
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            *addr_len = msg.msg_namelen;
            control_len = (msg.msg_controllen as usize).min(CONTROL_LEN);
            Ok(n as usize)
        })?
    };
    let from = from.as_socket().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok(Datagram {
        len: len.min(buf.len()),
        from,
        ttl: received_ttl(&control[..control_len]),
    })
}

/// Rounds up to the alignment of control messages (`CMSG_ALIGN`).
const fn cmsg_align(len: usize) -> usize {
    (len + mem::size_of::<usize>() - 1) & !(mem::size_of::<usize>() - 1)
}

/// The TTL (`IPPROTO_IP`/`IP_TTL`) or hop limit
/// (`IPPROTO_IPV6`/`IPV6_HOPLIMIT`) in the ancillary data of a received
/// datagram. Walks the control messages as `CMSG_FIRSTHDR` /
/// `CMSG_NXTHDR` do, never reading past `control`; a malformed buffer
/// yields `None`.
pub fn received_ttl(control: &[u8]) -> Option<u8> {
    let header = mem::size_of::<libc::cmsghdr>();
    let data_offset = cmsg_align(header);
    let mut at = 0usize;
    while control.len().saturating_sub(at) >= header {
        // SAFETY: at least `header` bytes remain at `at`; read_unaligned
        // copies them whatever the buffer's alignment, and every bit
        // pattern is a valid cmsghdr.
        let cmsg: libc::cmsghdr =
            unsafe { std::ptr::read_unaligned(control[at..].as_ptr().cast()) };
        let len = cmsg.cmsg_len as usize;
        if len < header || len > control.len() - at {
            return None;
        }
        let is_ttl = (cmsg.cmsg_level == libc::IPPROTO_IP && cmsg.cmsg_type == libc::IP_TTL)
            || (cmsg.cmsg_level == libc::IPPROTO_IPV6 && cmsg.cmsg_type == libc::IPV6_HOPLIMIT);
        if is_ttl {
            let data = control.get(at + data_offset..at + len)?;
            let value: [u8; 4] = data.get(..4)?.try_into().ok()?;
            return u8::try_from(libc::c_int::from_ne_bytes(value)).ok();
        }
        at += cmsg_align(len);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds ancillary data with the libc macros: one control message per
    /// `(level, type, int value)`.
    fn control(messages: &[(libc::c_int, libc::c_int, libc::c_int)]) -> Vec<u8> {
        // SAFETY: CMSG_SPACE is arithmetic.
        let space = unsafe { libc::CMSG_SPACE(mem::size_of::<libc::c_int>() as u32) } as usize;
        let mut buf = vec![0u64; (space * messages.len()).div_ceil(8)];
        let total = space * messages.len();
        // SAFETY: the msghdr describes `buf` (8-aligned, `total` bytes);
        // the macros step through it and each message written fits in its
        // CMSG_SPACE.
        unsafe {
            let mut msg: libc::msghdr = mem::zeroed();
            msg.msg_control = buf.as_mut_ptr().cast();
            msg.msg_controllen = total as _;
            let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
            for &(level, ty, value) in messages {
                assert!(!cmsg.is_null());
                (*cmsg).cmsg_level = level;
                (*cmsg).cmsg_type = ty;
                (*cmsg).cmsg_len = libc::CMSG_LEN(mem::size_of::<libc::c_int>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::c_int>(), value);
                cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
            }
            std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), total).to_vec()
        }
    }

    #[test]
    fn ttl_and_hop_limit_are_found() {
        assert_eq!(
            received_ttl(&control(&[(libc::IPPROTO_IP, libc::IP_TTL, 255)])),
            Some(255)
        );
        assert_eq!(
            received_ttl(&control(&[(libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT, 64)])),
            Some(64)
        );
        // After another message (IP_TOS here).
        let buf = control(&[
            (libc::IPPROTO_IP, libc::IP_TOS, 0xc0),
            (libc::IPPROTO_IP, libc::IP_TTL, 254),
        ]);
        assert_eq!(received_ttl(&buf), Some(254));
    }

    #[test]
    fn no_or_malformed_ttl_is_none() {
        assert_eq!(received_ttl(&[]), None);
        assert_eq!(
            received_ttl(&control(&[(libc::IPPROTO_IP, libc::IP_TOS, 1)])),
            None
        );
        // The IPv6 option number under the IPv4 level is not a hop limit.
        let wrong_level = control(&[(libc::IPPROTO_IP, libc::IPV6_HOPLIMIT, 7)]);
        assert_ne!(libc::IPV6_HOPLIMIT, libc::IP_TTL);
        assert_eq!(received_ttl(&wrong_level), None);
        let good = control(&[(libc::IPPROTO_IP, libc::IP_TTL, 255)]);
        // Truncated anywhere: never a panic, never a value read past the end.
        for cut in 0..good.len() {
            let got = received_ttl(&good[..cut]);
            assert!(got.is_none() || cut >= cmsg_align(mem::size_of::<libc::cmsghdr>()) + 4);
        }
        // A length field larger than the buffer.
        let mut lying = good.clone();
        lying[..mem::size_of::<usize>()].copy_from_slice(&4096usize.to_ne_bytes());
        assert_eq!(received_ttl(&lying), None);
        // A length field smaller than the header would loop forever.
        let mut short = good;
        short[..mem::size_of::<usize>()].copy_from_slice(&0usize.to_ne_bytes());
        assert_eq!(received_ttl(&short), None);
        // Values that are not a TTL.
        assert_eq!(
            received_ttl(&control(&[(libc::IPPROTO_IP, libc::IP_TTL, 256)])),
            None
        );
        assert_eq!(
            received_ttl(&control(&[(libc::IPPROTO_IP, libc::IP_TTL, -1)])),
            None
        );
    }

    #[test]
    fn source_ports_cover_the_range_once() {
        let ports: Vec<u16> = source_ports_from(60000).collect();
        assert_eq!(ports.len(), 16384);
        assert_eq!(ports[0], 60000);
        assert_eq!(*ports.last().unwrap(), 59999);
        assert!(ports.iter().all(|p| SOURCE_PORTS.contains(p)));
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16384);
        assert_eq!(source_ports_from(1).next(), Some(49152));
        assert_eq!(
            source_ports_from(65535).collect::<Vec<_>>()[..2],
            [65535, 49152]
        );
        let mut rng = Rng::new(7);
        for _ in 0..1000 {
            assert!(SOURCE_PORTS.contains(&port_start(&mut rng)));
        }
    }

    #[test]
    fn drains_end_after_a_detection_time_and_a_packet() {
        let ms = Duration::from_millis;
        let drain = |sent| Drain {
            until: ms(900),
            limit: ms(3000),
            sent,
            waiting: Vec::new(),
        };
        assert!(!drain_over(&drain(true), ms(899), true));
        assert!(drain_over(&drain(true), ms(900), true));
        // Nothing sent yet: wait for the packet…
        assert!(!drain_over(&drain(false), ms(2000), true));
        // …unless the session cannot send, or the limit is reached.
        assert!(drain_over(&drain(false), ms(900), false));
        assert!(drain_over(&drain(false), ms(3000), true));
    }

    #[test]
    fn path_failure_excludes_admin_down() {
        let change = |from, to, remote_state| BfdEvent::StateChanged {
            discriminator: 1,
            peer: Ipv4Addr::LOCALHOST.into(),
            hop: Hop::SingleHop,
            from,
            to,
            diag: Diag::ControlDetectionTimeExpired,
            remote_state,
        };
        assert!(change(State::Up, State::Down, State::Down).is_path_failure());
        assert!(change(State::Up, State::Down, State::Up).is_path_failure());
        // The peer said AdminDown (RFC 5882 §3.2): not a failure.
        assert!(!change(State::Up, State::Down, State::AdminDown).is_path_failure());
        // We went AdminDown, or never were Up.
        assert!(!change(State::Up, State::AdminDown, State::Up).is_path_failure());
        assert!(!change(State::Init, State::Down, State::Down).is_path_failure());
        assert!(!BfdEvent::Stopped.is_path_failure());
    }

    #[test]
    fn destinations_and_source_families() {
        let mut peer = PeerConfig::new(
            "fe80::1".parse().unwrap(),
            Hop::SingleHop,
            Profile::default(),
        );
        peer.scope_id = 3;
        let ports = Ports {
            single_hop: 13784,
            multi_hop: 14784,
        };
        assert_eq!(peer.destination(ports).to_string(), "[fe80::1%3]:13784");
        peer.hop = Hop::MultiHop;
        assert_eq!(peer.destination(Ports::RFC).port(), 4784);
        peer.source = Some(Ipv4Addr::LOCALHOST.into());
        let err = send_socket(&peer, 50000).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("same address family"));
    }

    /// The real thing over loopback: the sending socket's TTL and source
    /// port, and the TTL read back from the ancillary data.
    #[test]
    fn loopback_datagram_carries_ttl_255_and_a_source_port_in_range() {
        for (ip, ipv6) in [
            (IpAddr::from(Ipv4Addr::LOCALHOST), false),
            (IpAddr::from(Ipv6Addr::LOCALHOST), true),
        ] {
            let rx = receive_socket(ipv6, 0, None).unwrap();
            let port = rx.local_addr().unwrap().port();
            let mut peer = PeerConfig::new(ip, Hop::SingleHop, Profile::default());
            peer.source = Some(ip);
            let tx = send_socket(&peer, 55555).unwrap();
            let source = tx.local_addr().unwrap();
            assert!(SOURCE_PORTS.contains(&source.port()));
            tx.send_to(b"bfd", (ip, port)).unwrap();
            let mut buf = [0u8; 64];
            let mut got = None;
            for _ in 0..200 {
                match recv_with_ttl(rx.as_raw_fd(), &mut buf) {
                    Ok(d) => {
                        got = Some(d);
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err(e) => panic!("recvmsg: {e}"),
                }
            }
            let d = got.expect("datagram within 2 s");
            assert_eq!(&buf[..d.len], b"bfd");
            assert_eq!(d.from, source);
            assert_eq!(d.ttl, Some(TX_TTL), "{ip}");
            // A second session gets another source port.
            let tx2 = send_socket(&peer, source.port()).unwrap();
            assert_ne!(tx2.local_addr().unwrap().port(), source.port());
        }
    }
}
