//! The tokio task that drives the [`Announcer`] with real sockets.
//!
//! [`L2Runner::start`] checks for raw-socket permission, reads the node's
//! links, addresses and default routes over netlink and spawns one task
//! that owns the announcer. That task:
//!
//! - feeds every frame received on an announcing interface to
//!   [`Announcer::handle_frame`] and carries out the outputs (answers,
//!   multicast joins and leaves, events);
//! - calls [`Announcer::poll`] at [`Announcer::next_deadline`];
//! - re-reads links, addresses and routes shortly after any netlink
//!   notification (and every `resync_interval` regardless), updates the
//!   announcer's interfaces (up/down, MAC, rename, removal) and re-runs
//!   the [interface choice](crate::interface_choice) for every owned IP;
//! - applies ownership commands from [`L2Handle`]s at once.
//!
//! One raw socket is open per interface that is up and announces at
//! least one IP; it is closed when the interface goes down or stops
//! announcing (which also drops its multicast memberships) and opened
//! again, with the groups the announcer asks for, when needed again.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant as TokioInstant;

use crate::announcer::{Announcer, AnnouncerConfig, AnnouncerError, Interface, check_announceable};
use crate::counters::CountersSnapshot;
use crate::interface_choice::{ChoiceRule, InterfaceSnapshot, choose_interfaces};
use crate::io::netlink::{NetState, NetlinkError, NetlinkMonitor};
use crate::io::socket::{PacketSocket, ReceivedFrame, check_raw_socket_permission};
use crate::mac::MacAddr;
use crate::output::{Event, Output};
use crate::time::Instant;

/// Tunables of the runner.
#[derive(Clone, Debug)]
pub struct L2Config {
    /// The announcer's own configuration (gratuitous schedules).
    pub announcer: AnnouncerConfig,
    /// How long to wait after a netlink notification before re-reading
    /// the interfaces, so that a burst of changes is read once.
    pub settle: Duration,
    /// Re-read interfaces this often even without notifications.
    pub resync_interval: Duration,
    /// Retry opening a raw socket that failed to open after this long.
    pub socket_retry: Duration,
    /// Capacity of the event channel; events beyond it are dropped and
    /// counted in [`IoCounters::events_dropped`].
    pub event_capacity: usize,
}

impl Default for L2Config {
    fn default() -> Self {
        L2Config {
            announcer: AnnouncerConfig::default(),
            settle: Duration::from_millis(20),
            resync_interval: Duration::from_secs(30),
            socket_retry: Duration::from_secs(1),
            event_capacity: 1024,
        }
    }
}

/// Errors of the runner and its handle.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    /// The process may not open raw sockets.
    #[error("raw AF_PACKET sockets need CAP_NET_RAW (run as root or grant the capability): {0}")]
    Permission(io::Error),
    /// Opening a raw socket failed for another reason.
    #[error("opening a raw AF_PACKET socket: {0}")]
    RawSocket(io::Error),
    /// Netlink failed.
    #[error(transparent)]
    Netlink(#[from] NetlinkError),
    /// The announcer refused the change.
    #[error(transparent)]
    Announcer(#[from] AnnouncerError),
    /// The runner's task has stopped.
    #[error("the layer-2 announcer task has stopped")]
    Stopped,
}

/// An interface as reported in events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceRef {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// The MAC announcements carry.
    pub mac: MacAddr,
}

/// Where an owned IP is announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpStatus {
    /// The owned IP.
    pub ip: IpAddr,
    /// The L2Advertisement's interface list (empty: the rule decides).
    pub listed: Vec<String>,
    /// The step of the rule that decided.
    pub rule: ChoiceRule,
    /// The interfaces announcing it.
    pub interfaces: Vec<InterfaceRef>,
    /// Chosen interfaces that cannot announce (no unicast MAC, e.g. a
    /// tunnel or a listed loopback).
    pub unusable: Vec<String>,
}

/// What the runner reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L2Event {
    /// The interfaces announcing an IP changed (first reported when the IP
    /// is added).
    InterfacesChosen(IpStatus),
    /// An IP was removed from ownership.
    Released {
        /// The IP.
        ip: IpAddr,
    },
    /// An interface announcing at least one IP went up or down.
    LinkChanged {
        /// The interface.
        interface: InterfaceRef,
        /// Its new state.
        up: bool,
    },
    /// The announcer's event, with its interface resolved.
    Announcer {
        /// What happened.
        event: Event,
        /// The interface of `event`.
        interface: InterfaceRef,
    },
    /// An I/O problem that the runner works around or retries.
    Error {
        /// The interface concerned, if any.
        interface: Option<String>,
        /// What failed.
        message: String,
    },
}

/// Counters of the I/O layer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IoCounters {
    /// Frames received from raw sockets (after the socket filter).
    pub frames_received: u64,
    /// Frames transmitted.
    pub frames_sent: u64,
    /// Transmissions that failed.
    pub send_errors: u64,
    /// Frames the announcer asked to send on an interface without an open
    /// socket (e.g. it failed to open).
    pub sends_without_socket: u64,
    /// Raw sockets that failed to open.
    pub socket_errors: u64,
    /// Multicast joins or leaves that failed.
    pub membership_errors: u64,
    /// Interface re-reads (netlink dumps) done.
    pub netlink_dumps: u64,
    /// Interface re-reads that failed.
    pub netlink_errors: u64,
    /// Events dropped because the event channel was full.
    pub events_dropped: u64,
}

/// All counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct L2Counters {
    /// The announcer's per-interface and per-IP counters.
    pub announcer: CountersSnapshot,
    /// The I/O layer's counters.
    pub io: IoCounters,
}

enum Command {
    AddIp {
        ip: IpAddr,
        interfaces: Vec<String>,
        reply: oneshot::Sender<Result<(), L2Error>>,
    },
    RemoveIp {
        ip: IpAddr,
        reply: oneshot::Sender<()>,
    },
    Resend {
        ip: IpAddr,
        reply: oneshot::Sender<usize>,
    },
    Counters {
        reply: oneshot::Sender<L2Counters>,
    },
    Status {
        reply: oneshot::Sender<Vec<IpStatus>>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

/// Controls a running announcer; cheap to clone. Every change applies at
/// once, without restarting anything. The task stops when
/// [`shutdown`](Self::shutdown) is called or the last handle is dropped.
#[derive(Clone, Debug)]
pub struct L2Handle {
    commands: mpsc::Sender<Command>,
}

impl L2Handle {
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, L2Error> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| L2Error::Stopped)?;
        answer.await.map_err(|_| L2Error::Stopped)
    }

    /// Takes ownership of `ip`, announced on the interfaces the rule
    /// chooses, or on the listed `interfaces` (an L2Advertisement's
    /// `interfaces`) when that list is non-empty. Calling it again for an
    /// owned IP replaces its interface list.
    pub async fn add_ip(&self, ip: IpAddr, interfaces: Vec<String>) -> Result<(), L2Error> {
        self.ask(|reply| Command::AddIp {
            ip,
            interfaces,
            reply,
        })
        .await?
    }

    /// Releases `ip`: it is no longer answered for anywhere. Releasing an
    /// IP not owned is a no-op.
    pub async fn remove_ip(&self, ip: IpAddr) -> Result<(), L2Error> {
        self.ask(|reply| Command::RemoveIp { ip, reply }).await
    }

    /// Starts a new gratuitous burst for `ip` on every up interface that
    /// announces it; returns how many interfaces that was.
    pub async fn resend(&self, ip: IpAddr) -> Result<usize, L2Error> {
        self.ask(|reply| Command::Resend { ip, reply }).await
    }

    /// A snapshot of every counter.
    pub async fn counters(&self) -> Result<L2Counters, L2Error> {
        self.ask(|reply| Command::Counters { reply }).await
    }

    /// Where every owned IP is announced, by IP.
    pub async fn status(&self) -> Result<Vec<IpStatus>, L2Error> {
        self.ask(|reply| Command::Status { reply }).await
    }

    /// Stops answering: releases every IP, closes every socket and ends
    /// the task. Returns once that is done.
    pub async fn shutdown(&self) -> Result<(), L2Error> {
        self.ask(|reply| Command::Shutdown { reply }).await
    }
}

/// A started runner: its handle, its events and its task.
#[derive(Debug)]
pub struct L2Runner {
    /// Controls the task.
    pub handle: L2Handle,
    /// What happens, in order.
    pub events: mpsc::Receiver<L2Event>,
    /// The task; it ends after [`L2Handle::shutdown`] or when every handle
    /// is dropped.
    pub task: JoinHandle<()>,
}

impl L2Runner {
    /// Checks raw-socket permission, reads the interfaces and spawns the
    /// task on the current tokio runtime (which needs I/O and time
    /// enabled). Nothing is announced until [`L2Handle::add_ip`].
    pub async fn start(config: L2Config) -> Result<L2Runner, L2Error> {
        if let Err(err) = check_raw_socket_permission() {
            return Err(match err.raw_os_error() {
                Some(libc::EPERM) | Some(libc::EACCES) => L2Error::Permission(err),
                _ => L2Error::RawSocket(err),
            });
        }
        let monitor = NetlinkMonitor::open()?;
        let net = monitor.dump().await?;
        let (commands_tx, commands) = mpsc::channel(64);
        let (events_tx, events) = mpsc::channel(config.event_capacity.max(1));
        let (frames_tx, frames) = mpsc::channel(1024);
        let mut state = State {
            announcer: Announcer::new(config.announcer.clone()),
            config,
            start: TokioInstant::now(),
            net: NetState::default(),
            known: BTreeSet::new(),
            owned: BTreeMap::new(),
            reported: BTreeMap::new(),
            sockets: BTreeMap::new(),
            socket_failures: BTreeMap::new(),
            socket_retry_at: None,
            frames_tx,
            events: events_tx,
            io: IoCounters::default(),
        };
        state.io.netlink_dumps += 1;
        state.apply_net(net);
        let task = tokio::spawn(run(state, monitor, commands, frames));
        Ok(L2Runner {
            handle: L2Handle {
                commands: commands_tx,
            },
            events,
            task,
        })
    }
}

struct State {
    config: L2Config,
    announcer: Announcer,
    start: TokioInstant,
    net: NetState,
    /// Interfaces set in the announcer (those with a unicast MAC).
    known: BTreeSet<u32>,
    /// Owned IPs with their listed interfaces.
    owned: BTreeMap<IpAddr, Vec<String>>,
    /// What was last reported for each owned IP.
    reported: BTreeMap<IpAddr, IpStatus>,
    sockets: BTreeMap<u32, PacketSocket>,
    /// Last socket error per interface, so it is reported once.
    socket_failures: BTreeMap<u32, String>,
    /// When to try again to open the sockets that failed.
    socket_retry_at: Option<TokioInstant>,
    frames_tx: mpsc::Sender<ReceivedFrame>,
    events: mpsc::Sender<L2Event>,
    io: IoCounters,
}

async fn run(
    mut state: State,
    mut monitor: NetlinkMonitor,
    mut commands: mpsc::Receiver<Command>,
    mut frames: mpsc::Receiver<ReceivedFrame>,
) {
    let mut periodic = tokio::time::interval(state.config.resync_interval);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    periodic.reset(); // the first tick would be immediate: the start just read everything
    let mut resync_due: Option<TokioInstant> = None;
    let mut monitoring = true;
    loop {
        let deadline = state
            .announcer
            .next_deadline()
            .map(|due| state.start + due.since_start());
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Shutdown { reply }) => {
                    state.stop();
                    let _ = reply.send(());
                    return;
                }
                Some(command) => state.command(command),
                None => break,
            },
            Some(frame) = frames.recv() => {
                state.io.frames_received += 1;
                let outputs = state.announcer.handle_frame(frame.ifindex, &frame.bytes);
                state.apply(outputs);
            }
            _ = sleep_until(deadline), if deadline.is_some() => {
                let outputs = state.announcer.poll(state.now());
                state.apply(outputs);
            }
            changed = monitor.changed(), if monitoring => match changed {
                Some(()) => {
                    resync_due.get_or_insert_with(|| TokioInstant::now() + state.config.settle);
                }
                None => {
                    tracing::warn!("netlink notifications stopped; re-reading interfaces periodically only");
                    monitoring = false;
                }
            },
            _ = sleep_until(resync_due), if resync_due.is_some() => {
                resync_due = None;
                monitor.drain();
                state.resync(&monitor).await;
            }
            _ = sleep_until(state.socket_retry_at), if state.socket_retry_at.is_some() => {
                state.reconcile_sockets();
            }
            _ = periodic.tick() => state.resync(&monitor).await,
        }
    }
    state.stop();
}

async fn sleep_until(deadline: Option<TokioInstant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn now(&self) -> Instant {
        Instant::from_duration(self.start.elapsed())
    }

    fn emit(&mut self, event: L2Event) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.events.try_send(event) {
            self.io.events_dropped += 1;
        }
    }

    fn interface_ref(&self, index: u32) -> InterfaceRef {
        match self.announcer.interface(index) {
            Some(iface) => InterfaceRef {
                index,
                name: iface.name.clone(),
                mac: iface.mac,
            },
            None => InterfaceRef {
                index,
                name: self
                    .net
                    .link(index)
                    .map(|l| l.name.clone())
                    .unwrap_or_default(),
                mac: MacAddr::ZERO,
            },
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::AddIp {
                ip,
                interfaces,
                reply,
            } => {
                let result = check_announceable(ip).map_err(L2Error::from).map(|()| {
                    self.owned.insert(ip, interfaces.clone());
                    // Only the new IP's choice can change: choosing for
                    // every owned IP here made adding n IPs O(n²).
                    let snapshots = self.net.snapshots();
                    self.choose(ip, interfaces, &snapshots, self.now());
                    self.reconcile_sockets();
                });
                let _ = reply.send(result);
            }
            Command::RemoveIp { ip, reply } => {
                if self.owned.remove(&ip).is_some() {
                    let owning: Vec<u32> = self.owning(ip);
                    for index in owning {
                        let outputs = self.announcer.remove_ip(index, ip).unwrap_or_default();
                        self.apply(outputs);
                    }
                    self.reported.remove(&ip);
                    self.emit(L2Event::Released { ip });
                    self.reconcile_sockets();
                }
                let _ = reply.send(());
            }
            Command::Resend { ip, reply } => {
                let count = self.announcer.resend(ip, self.now());
                let _ = reply.send(count);
            }
            Command::Counters { reply } => {
                let _ = reply.send(L2Counters {
                    announcer: self.announcer.counters(),
                    io: self.io,
                });
            }
            Command::Status { reply } => {
                let _ = reply.send(self.reported.values().cloned().collect());
            }
            Command::Shutdown { reply } => {
                self.stop();
                let _ = reply.send(());
            }
        }
    }

    /// Interfaces on which the announcer owns `ip`.
    fn owning(&self, ip: IpAddr) -> Vec<u32> {
        self.known
            .iter()
            .copied()
            .filter(|&index| self.announcer.owns(index, ip))
            .collect()
    }

    /// Carries out the announcer's outputs.
    fn apply(&mut self, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Send { ifindex, frame } => match self.sockets.get_mut(&ifindex) {
                    Some(socket) => match socket.send(&frame) {
                        Ok(()) => self.io.frames_sent += 1,
                        Err(err) => {
                            self.io.send_errors += 1;
                            tracing::warn!(ifindex, %err, "sending a frame failed");
                        }
                    },
                    None => self.io.sends_without_socket += 1,
                },
                Output::JoinGroup { ifindex, mac, .. } => {
                    // Without a socket the group is joined when it opens.
                    if let Some(socket) = self.sockets.get(&ifindex)
                        && let Err(err) = socket.join(mac)
                    {
                        self.io.membership_errors += 1;
                        let name = socket.name().to_owned();
                        self.emit(L2Event::Error {
                            interface: Some(name),
                            message: format!("joining multicast group {mac}: {err}"),
                        });
                    }
                }
                Output::LeaveGroup { ifindex, mac, .. } => {
                    if let Some(socket) = self.sockets.get(&ifindex)
                        && let Err(err) = socket.leave(mac)
                    {
                        self.io.membership_errors += 1;
                        tracing::debug!(ifindex, %mac, %err, "leaving a multicast group failed");
                    }
                }
                Output::Event(event) => {
                    let index = match &event {
                        Event::Answered { ifindex, .. }
                        | Event::Gratuitous { ifindex, .. }
                        | Event::ConflictDetected { ifindex, .. } => *ifindex,
                    };
                    let interface = self.interface_ref(index);
                    self.emit(L2Event::Announcer { event, interface });
                }
            }
        }
    }

    async fn resync(&mut self, monitor: &NetlinkMonitor) {
        self.io.netlink_dumps += 1;
        match monitor.dump().await {
            Ok(net) => self.apply_net(net),
            Err(err) => {
                self.io.netlink_errors += 1;
                tracing::warn!(%err, "re-reading interfaces failed");
                self.emit(L2Event::Error {
                    interface: None,
                    message: err.to_string(),
                });
            }
        }
    }

    /// Brings the announcer's interfaces, the ownership and the sockets in
    /// line with a fresh view of the node.
    fn apply_net(&mut self, net: NetState) {
        let now = self.now();
        for link in net.links.values() {
            let Some(mac) = link.unicast_mac() else {
                if self.known.remove(&link.index) {
                    let outputs = self.announcer.remove_interface(link.index);
                    self.apply(outputs);
                }
                continue;
            };
            let iface = Interface {
                index: link.index,
                name: link.name.clone(),
                mac,
                vlan: None,
                up: link.up,
            };
            let before = self.announcer.interface(link.index).cloned();
            if before.as_ref() == Some(&iface) {
                continue;
            }
            if let Err(err) = self.announcer.set_interface(iface, now) {
                tracing::warn!(interface = %link.name, %err, "interface not usable");
                continue;
            }
            self.known.insert(link.index);
            let in_use = self.announcer.owns_any(link.index)
                || self
                    .owned
                    .values()
                    .any(|listed| listed.contains(&link.name));
            if let Some(before) = before
                && before.up != link.up
                && in_use
            {
                let interface = self.interface_ref(link.index);
                self.emit(L2Event::LinkChanged {
                    interface,
                    up: link.up,
                });
            }
        }
        let gone: Vec<u32> = self
            .known
            .iter()
            .copied()
            .filter(|index| !net.links.contains_key(index))
            .collect();
        for index in gone {
            self.known.remove(&index);
            self.sockets.remove(&index);
            self.socket_failures.remove(&index);
            let outputs = self.announcer.remove_interface(index);
            self.apply(outputs);
        }
        self.net = net;
        self.rechoose();
        self.reconcile_sockets();
    }

    /// Re-runs the interface choice for every owned IP and moves ownership
    /// in the announcer accordingly.
    fn rechoose(&mut self) {
        let now = self.now();
        let snapshots = self.net.snapshots();
        let owned: Vec<(IpAddr, Vec<String>)> = self
            .owned
            .iter()
            .map(|(ip, listed)| (*ip, listed.clone()))
            .collect();
        for (ip, listed) in owned {
            self.choose(ip, listed, &snapshots, now);
        }
    }

    /// Runs the interface choice for one owned IP and updates the
    /// announcer and the reported status.
    fn choose(
        &mut self,
        ip: IpAddr,
        listed: Vec<String>,
        snapshots: &[InterfaceSnapshot],
        now: Instant,
    ) {
        let choice = choose_interfaces(ip, &listed, snapshots, self.net.default_routes);
        let (usable, unusable): (Vec<u32>, Vec<u32>) = choice
            .interfaces
            .iter()
            .partition(|index| self.known.contains(index));
        let current = self.owning(ip);
        for &index in current.iter().filter(|i| !usable.contains(i)) {
            let outputs = self.announcer.remove_ip(index, ip).unwrap_or_default();
            self.apply(outputs);
        }
        for &index in usable.iter().filter(|i| !current.contains(i)) {
            match self.announcer.add_ip(index, ip, now) {
                Ok(outputs) => self.apply(outputs),
                Err(err) => tracing::warn!(%ip, index, %err, "cannot announce"),
            }
        }
        let status = IpStatus {
            ip,
            listed,
            rule: choice.rule,
            interfaces: usable.iter().map(|&i| self.interface_ref(i)).collect(),
            unusable: unusable
                .iter()
                .map(|&i| self.interface_ref(i).name)
                .collect(),
        };
        if self.reported.get(&ip) != Some(&status) {
            self.reported.insert(ip, status.clone());
            self.emit(L2Event::InterfacesChosen(status));
        }
    }

    /// Opens a socket on every up interface that announces something and
    /// closes the others.
    fn reconcile_sockets(&mut self) {
        let wanted: BTreeSet<u32> = self
            .known
            .iter()
            .copied()
            .filter(|&index| {
                self.announcer.interface(index).is_some_and(|i| i.up)
                    && self.announcer.owns_any(index)
            })
            .collect();
        self.sockets.retain(|index, _| wanted.contains(index));
        self.socket_failures
            .retain(|index, _| wanted.contains(index));
        self.socket_retry_at = None;
        for index in wanted {
            if self.sockets.contains_key(&index) {
                continue;
            }
            let Some(iface) = self.announcer.interface(index).cloned() else {
                continue;
            };
            match PacketSocket::open(index, &iface.name, iface.mac, self.frames_tx.clone()) {
                Ok(socket) => {
                    for group in self.announcer.groups(index) {
                        if let Err(err) = socket.join(group.mac) {
                            self.io.membership_errors += 1;
                            tracing::warn!(interface = %iface.name, mac = %group.mac, %err, "joining a multicast group failed");
                        }
                    }
                    self.sockets.insert(index, socket);
                    self.socket_failures.remove(&index);
                }
                Err(err) => {
                    self.io.socket_errors += 1;
                    self.socket_retry_at
                        .get_or_insert_with(|| TokioInstant::now() + self.config.socket_retry);
                    let message = format!("opening a raw socket: {err}");
                    if self.socket_failures.get(&index) != Some(&message) {
                        tracing::warn!(interface = %iface.name, %err, "opening a raw socket failed");
                        self.socket_failures.insert(index, message.clone());
                        self.emit(L2Event::Error {
                            interface: Some(iface.name.clone()),
                            message,
                        });
                    }
                }
            }
        }
    }

    /// Releases everything: no more answers, no more sockets.
    fn stop(&mut self) {
        let owned: Vec<IpAddr> = self.owned.keys().copied().collect();
        for ip in owned {
            for index in self.owning(ip) {
                let outputs = self.announcer.remove_ip(index, ip).unwrap_or_default();
                self.apply(outputs);
            }
        }
        self.owned.clear();
        self.reported.clear();
        self.sockets.clear();
        self.socket_failures.clear();
        self.socket_retry_at = None;
    }
}
