//! The Tokio transport of a [`Session`]: one task owns the session and does
//! its I/O.
//!
//! [`spawn`] starts the task. It opens outbound connections when the
//! session asks ([`Action::Connect`]), accepts the peer's connections on a
//! listening socket (connections from any other address are refused), names
//! every connection with a fresh [`ConnId`], carries out the session's
//! actions, and polls it at [`Session::next_deadline`]. The returned
//! [`SessionHandle`] announces, withdraws, reports BFD failures
//! ([`SessionHandle::bfd_down`]) and stops; the [`TransportEvent`] receiver
//! reports what happens.
//!
//! Sockets get the options of [`TransportConfig`]: source address, device
//! (VRF, `SO_BINDTODEVICE`), outgoing TTL / hop limit (1 for single-hop
//! eBGP), GTSM (RFC 5082: TTL 255 out, `IP_MINTTL` / `IPV6_MINHOPCOUNT` in)
//! and TCP MD5 signatures (RFC 2385, on the listening and the connecting
//! sockets). IPv6 peers may be link-local: give the scope id in the peer's
//! socket address.

pub mod socket;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::prefix::Prefix;
use crate::session::{Action, ConnId, Direction, RouteAttributes, Session, SessionStats, State};

/// The BGP port.
pub const BGP_PORT: u16 = 179;

/// Outgoing TTL policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TtlMode {
    /// The kernel's default (internal and multihop external peers).
    #[default]
    Default,
    /// This TTL / hop limit (1 for directly connected external peers).
    Ttl(u8),
    /// GTSM (RFC 5082): send with TTL 255 and accept only packets whose
    /// TTL is at least `256 - hops`.
    Gtsm {
        /// Hops allowed (1 for a directly connected peer).
        hops: u8,
    },
}

/// How to reach the peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransportConfig {
    /// The peer's address and port (scope id for link-local IPv6).
    pub peer: SocketAddr,
    /// Local address to connect from and listen on.
    pub source: Option<IpAddr>,
    /// Port to listen on for the peer's connections; `None` to never
    /// accept (active only).
    pub listen_port: Option<u16>,
    /// Outgoing TTL / GTSM.
    pub ttl: TtlMode,
    /// TCP MD5 key (RFC 2385).
    pub md5_key: Option<Vec<u8>>,
    /// Device to bind the sockets to (a VRF or an interface).
    pub bind_device: Option<String>,
    /// How long an outbound connection attempt may take.
    pub connect_timeout: Duration,
    /// How long [`SessionHandle::stop`] waits for queued bytes to be
    /// written.
    pub drain_timeout: Duration,
}

impl TransportConfig {
    /// Connect to `peer`, listen on port 179, kernel TTL, no MD5, no
    /// device.
    pub fn new(peer: SocketAddr) -> Self {
        TransportConfig {
            peer,
            source: None,
            listen_port: Some(BGP_PORT),
            ttl: TtlMode::Default,
            md5_key: None,
            bind_device: None,
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(2),
        }
    }
}

/// What the transport reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportEvent {
    /// A TCP connection is up.
    Connected {
        /// Its id.
        conn: ConnId,
        /// Who opened it.
        direction: Direction,
        /// Local address.
        local: SocketAddr,
        /// Remote address.
        remote: SocketAddr,
    },
    /// An outbound attempt failed.
    ConnectFailed {
        /// Why.
        error: String,
    },
    /// A connection is gone (closed by either side or failed).
    Disconnected {
        /// Its id.
        conn: ConnId,
        /// Why, when known.
        reason: String,
    },
    /// A connection from an address other than the peer's was refused.
    Refused {
        /// Where it came from.
        remote: SocketAddr,
    },
    /// Accepting failed (the listener keeps going).
    AcceptFailed {
        /// Why.
        error: String,
    },
    /// Something the session reported (state changes, establishment,
    /// notifications, received routes, warnings…). I/O actions are not
    /// forwarded.
    Session(Action),
    /// The task ended (after [`SessionHandle::stop`] or when every handle
    /// was dropped).
    Stopped,
}

/// A snapshot of the session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionStatus {
    /// Its state.
    pub state: State,
    /// Message counters.
    pub stats: SessionStats,
    /// Routes the peer has from us.
    pub advertised: usize,
    /// Received prefixes stored.
    pub received: usize,
}

enum Command {
    Announce(Prefix, Arc<RouteAttributes>),
    Withdraw(Prefix),
    BfdDown,
    Status(oneshot::Sender<SessionStatus>),
    Stop {
        withdraw: bool,
        message: Option<String>,
        done: oneshot::Sender<()>,
    },
}

/// Controls the task of [`spawn`]; cloneable. Dropping every handle stops
/// the session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command")
    }
}

/// The transport task has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the BGP transport task has ended")]
pub struct TaskEnded;

impl SessionHandle {
    /// Announces `prefix` (see [`Session::announce`]).
    pub fn announce(
        &self,
        prefix: Prefix,
        attrs: impl Into<Arc<RouteAttributes>>,
    ) -> Result<(), TaskEnded> {
        self.commands
            .send(Command::Announce(prefix, attrs.into()))
            .map_err(|_| TaskEnded)
    }

    /// Withdraws `prefix` (see [`Session::withdraw`]).
    pub fn withdraw(&self, prefix: Prefix) -> Result<(), TaskEnded> {
        self.commands
            .send(Command::Withdraw(prefix))
            .map_err(|_| TaskEnded)
    }

    /// The BFD session protecting this peer went down: connections past
    /// their OPEN get Cease / BFD Down (RFC 9384) and the session restarts
    /// its ConnectRetry cycle (see [`Session::bfd_down`]).
    pub fn bfd_down(&self) -> Result<(), TaskEnded> {
        self.commands.send(Command::BfdDown).map_err(|_| TaskEnded)
    }

    /// The session's state and counters.
    pub async fn status(&self) -> Result<SessionStatus, TaskEnded> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::Status(tx))
            .map_err(|_| TaskEnded)?;
        rx.await.map_err(|_| TaskEnded)
    }

    /// Stops the session: with `withdraw`, first withdraws every route and
    /// sends the withdrawals; then sends Cease / Administrative Shutdown
    /// with `message`, waits (bounded) for the bytes to be written, and
    /// ends the task.
    pub async fn stop(&self, withdraw: bool, message: Option<&str>) -> Result<(), TaskEnded> {
        let (done, rx) = oneshot::channel();
        self.commands
            .send(Command::Stop {
                withdraw,
                message: message.map(str::to_owned),
                done,
            })
            .map_err(|_| TaskEnded)?;
        rx.await.map_err(|_| TaskEnded)
    }
}

/// Starts the task for `session` (stopped; the task starts it). The
/// listening socket is opened before returning, so its errors (port in
/// use, MD5 unsupported…) are reported here.
pub fn spawn(
    session: Session,
    cfg: TransportConfig,
) -> io::Result<(
    SessionHandle,
    mpsc::UnboundedReceiver<TransportEvent>,
    JoinHandle<()>,
)> {
    let listener = match cfg.listen_port {
        Some(port) => Some(socket::listen_socket(&cfg, port)?),
        None => None,
    };
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (io_tx, io_rx) = mpsc::unbounded_channel();
    let task = Task {
        session,
        cfg,
        listener,
        commands: cmd_rx,
        events: ev_tx,
        io_tx,
        io_rx,
        origin: Instant::now(),
        next_conn: 1,
        conns: HashMap::new(),
        attempt: None,
        attempt_gen: 0,
    };
    let join = tokio::spawn(task.run());
    Ok((SessionHandle { commands: cmd_tx }, ev_rx, join))
}

/// What connection tasks tell the main loop.
enum Io {
    Connected {
        generation: u64,
        result: io::Result<TcpStream>,
    },
    Bytes(ConnId, Vec<u8>),
    Closed(ConnId, String),
}

struct ConnTasks {
    /// Bytes to write; dropping it makes the writer shut the socket down
    /// once the queue is written.
    writer: Option<mpsc::UnboundedSender<Vec<u8>>>,
    writer_task: JoinHandle<()>,
    reader_task: JoinHandle<()>,
}

struct Task {
    session: Session,
    cfg: TransportConfig,
    listener: Option<tokio::net::TcpListener>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<TransportEvent>,
    io_tx: mpsc::UnboundedSender<Io>,
    io_rx: mpsc::UnboundedReceiver<Io>,
    origin: Instant,
    next_conn: u64,
    conns: HashMap<ConnId, ConnTasks>,
    attempt: Option<JoinHandle<()>>,
    attempt_gen: u64,
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

impl Task {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn emit(&self, event: TransportEvent) {
        let _ = self.events.send(event);
    }

    async fn run(mut self) {
        let now = self.now();
        let actions = self.session.start(now);
        self.apply(actions);
        loop {
            let deadline = self.session.next_deadline().map(|d| self.origin + d);
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(Command::Announce(prefix, attrs)) => {
                        self.session.announce(prefix, attrs);
                    }
                    Some(Command::Withdraw(prefix)) => self.session.withdraw(prefix),
                    Some(Command::BfdDown) => {
                        let now = self.now();
                        let actions = self.session.bfd_down(now);
                        self.apply(actions);
                    }
                    Some(Command::Status(reply)) => {
                        let _ = reply.send(SessionStatus {
                            state: self.session.state(),
                            stats: self.session.stats(),
                            advertised: self.session.advertised(),
                            received: self.session.received_stored(),
                        });
                    }
                    Some(Command::Stop { withdraw, message, done }) => {
                        self.shutdown(withdraw, message.as_deref()).await;
                        let _ = done.send(());
                        return;
                    }
                    None => {
                        self.shutdown(false, None).await;
                        return;
                    }
                },
                Some(io) = self.io_rx.recv() => self.handle_io(io),
                accepted = accept(&self.listener) => self.handle_accept(accepted),
                () = sleep_until(deadline) => {
                    let now = self.now();
                    let actions = self.session.poll(now);
                    self.apply(actions);
                }
            }
        }
    }

    async fn shutdown(&mut self, withdraw: bool, message: Option<&str>) {
        if withdraw {
            let prefixes: Vec<Prefix> = self.session.routes().keys().copied().collect();
            for prefix in prefixes {
                self.session.withdraw(prefix);
            }
            let now = self.now();
            let actions = self.session.poll(now);
            self.apply(actions);
        }
        let now = self.now();
        let actions = self.session.stop(now, message);
        self.apply(actions);
        // Whatever is left open is closed once written.
        let conns: Vec<ConnTasks> = self.conns.drain().map(|(_, c)| c).collect();
        let deadline = Instant::now() + self.cfg.drain_timeout;
        for mut conn in conns {
            conn.writer = None;
            if tokio::time::timeout_at(deadline, &mut conn.writer_task)
                .await
                .is_err()
            {
                conn.writer_task.abort();
            }
            conn.reader_task.abort();
        }
        if let Some(attempt) = self.attempt.take() {
            attempt.abort();
        }
        self.emit(TransportEvent::Stopped);
    }

    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect => self.connect(),
                Action::AbortConnect => {
                    if let Some(attempt) = self.attempt.take() {
                        attempt.abort();
                    }
                    self.attempt_gen += 1;
                }
                Action::SendBytes { conn, bytes } => {
                    if let Some(writer) = self.conns.get(&conn).and_then(|c| c.writer.as_ref()) {
                        let _ = writer.send(bytes);
                    }
                }
                Action::CloseConnection { conn } => {
                    // The writer shuts the socket down after the queue; the
                    // reader ends on EOF or is aborted.
                    if let Some(mut tasks) = self.conns.remove(&conn) {
                        tasks.writer = None;
                        let reader = tasks.reader_task;
                        let writer = tasks.writer_task;
                        tokio::spawn(async move {
                            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
                            reader.abort();
                        });
                    }
                }
                other => {
                    tracing::debug!(action = ?other, "session");
                    self.emit(TransportEvent::Session(other));
                }
            }
        }
    }

    fn connect(&mut self) {
        if let Some(attempt) = self.attempt.take() {
            attempt.abort();
        }
        self.attempt_gen += 1;
        let generation = self.attempt_gen;
        let io_tx = self.io_tx.clone();
        let cfg = self.cfg.clone();
        self.attempt = Some(tokio::spawn(async move {
            let result = async {
                let socket = socket::connect_socket(&cfg)?;
                match tokio::time::timeout(cfg.connect_timeout, socket.connect(cfg.peer)).await {
                    Ok(result) => result,
                    Err(_) => Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {:?}", cfg.connect_timeout),
                    )),
                }
            }
            .await;
            let _ = io_tx.send(Io::Connected { generation, result });
        }));
    }

    fn handle_io(&mut self, io: Io) {
        let now = self.now();
        match io {
            Io::Connected { generation, result } => {
                if generation != self.attempt_gen {
                    return; // abandoned attempt
                }
                self.attempt = None;
                match result {
                    Ok(stream) => {
                        let conn = self.add_connection(stream, Direction::Outbound);
                        if let Some((conn, local)) = conn {
                            let actions = self.session.tcp_connected(now, conn, local);
                            self.apply(actions);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(peer = %self.cfg.peer, %err, "connect failed");
                        self.emit(TransportEvent::ConnectFailed {
                            error: err.to_string(),
                        });
                        let actions = self.session.tcp_failed(now);
                        self.apply(actions);
                    }
                }
            }
            Io::Bytes(conn, bytes) => {
                if self.conns.contains_key(&conn) {
                    let actions = self.session.bytes_received(now, conn, &bytes);
                    self.apply(actions);
                }
            }
            Io::Closed(conn, reason) => {
                if self.conns.remove(&conn).is_some() {
                    self.emit(TransportEvent::Disconnected { conn, reason });
                    let actions = self.session.tcp_closed(now, conn);
                    self.apply(actions);
                }
            }
        }
    }

    fn handle_accept(&mut self, accepted: io::Result<(TcpStream, SocketAddr)>) {
        match accepted {
            Ok((stream, remote)) => {
                if canonical(remote).ip() != self.cfg.peer.ip() {
                    tracing::debug!(%remote, "refusing a connection from an unknown address");
                    self.emit(TransportEvent::Refused { remote });
                    return;
                }
                if let Err(err) = socket::configure_accepted(&stream, &self.cfg) {
                    tracing::warn!(%err, "configuring an accepted connection");
                }
                if let Some((conn, local)) = self.add_connection(stream, Direction::Inbound) {
                    let now = self.now();
                    let actions = self.session.tcp_accepted(now, conn, local);
                    self.apply(actions);
                }
            }
            Err(err) => self.emit(TransportEvent::AcceptFailed {
                error: err.to_string(),
            }),
        }
    }

    /// Starts the reader and writer of a new connection; returns its id and
    /// local address.
    fn add_connection(
        &mut self,
        stream: TcpStream,
        direction: Direction,
    ) -> Option<(ConnId, IpAddr)> {
        let (local, remote) = match (stream.local_addr(), stream.peer_addr()) {
            (Ok(l), Ok(r)) => (canonical(l), canonical(r)),
            (Err(err), _) | (_, Err(err)) => {
                self.emit(TransportEvent::ConnectFailed {
                    error: err.to_string(),
                });
                return None;
            }
        };
        let conn = ConnId(self.next_conn);
        self.next_conn += 1;
        let (read, write) = stream.into_split();
        let (writer_tx, writer_rx) = mpsc::unbounded_channel();
        let reader_task = tokio::spawn(read_loop(conn, read, self.io_tx.clone()));
        let writer_task = tokio::spawn(write_loop(conn, write, writer_rx, self.io_tx.clone()));
        self.conns.insert(
            conn,
            ConnTasks {
                writer: Some(writer_tx),
                writer_task,
                reader_task,
            },
        );
        self.emit(TransportEvent::Connected {
            conn,
            direction,
            local,
            remote,
        });
        Some((conn, local.ip()))
    }
}

async fn accept(listener: &Option<tokio::net::TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn read_loop(conn: ConnId, mut read: OwnedReadHalf, io: mpsc::UnboundedSender<Io>) {
    let mut buf = vec![0u8; 65536];
    let reason = loop {
        match read.read(&mut buf).await {
            Ok(0) => break "closed by the peer".to_owned(),
            Ok(n) => {
                if io.send(Io::Bytes(conn, buf[..n].to_vec())).is_err() {
                    return;
                }
            }
            Err(err) => break err.to_string(),
        }
    };
    let _ = io.send(Io::Closed(conn, reason));
}

async fn write_loop(
    conn: ConnId,
    mut write: OwnedWriteHalf,
    mut queue: mpsc::UnboundedReceiver<Vec<u8>>,
    io: mpsc::UnboundedSender<Io>,
) {
    while let Some(bytes) = queue.recv().await {
        if let Err(err) = write.write_all(&bytes).await {
            let _ = io.send(Io::Closed(conn, format!("write: {err}")));
            return;
        }
    }
    let _ = write.shutdown().await;
}

#[cfg(test)]
mod tests;
