//! The membership's tokio task: one UDP socket on this node's InternalIP,
//! the [`Core`] driven by datagrams and its timers, and the live set
//! published on a watch channel.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::core::{Core, MAX_DATAGRAM, Member, Timing};
use super::join::Join;

pub use super::join::JOIN_WAIT;
/// How often speakers that are not (yet) members are asked again.
const REANNOUNCE: Duration = Duration::from_secs(1);

/// What the task publishes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct View {
    /// Nodes of the live members, this one included.
    pub live: BTreeSet<String>,
    /// Whether the speaker has joined ([`Join`]): it trusts its view.
    pub joined: bool,
    /// Datagrams refused (bad key, malformed).
    pub refused: u64,
    /// Membership changes seen.
    pub changes: u64,
}

enum Command {
    Peers(BTreeMap<String, SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership.
pub struct Membership {
    pub view: watch::Receiver<View>,
    commands: mpsc::UnboundedSender<Command>,
    task: JoinHandle<()>,
    /// Where it listens.
    pub addr: SocketAddr,
    key: Vec<u8>,
}

impl Membership {
    /// Binds `addr` and starts the task for node `node`.
    pub async fn start(
        node: &str,
        addr: SocketAddr,
        key: &[u8],
        timing: Timing,
    ) -> Result<Membership, String> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|e| format!("cannot listen on UDP {addr} for the membership: {e}"))?;
        let bump = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let me = Member {
            node: node.to_string(),
            addr,
            bump,
        };
        let core = Core::new(me, key, timing, bump ^ u64::from(std::process::id()));
        let (view_tx, view) = watch::channel(View {
            live: core.live().clone(),
            ..View::default()
        });
        let (commands, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(socket, core, timing, rx, view_tx));
        tracing::info!("membership: listening on UDP {addr}");
        Ok(Membership {
            view,
            commands,
            task,
            addr,
            key: key.to_vec(),
        })
    }

    /// Whether it runs with `key` on `addr` (else it must be restarted).
    pub fn matches(&self, addr: SocketAddr, key: &[u8]) -> bool {
        self.addr == addr && self.key == key && !self.task.is_finished()
    }

    /// The other speakers to join: node name → address.
    pub fn set_peers(&self, peers: BTreeMap<String, SocketAddr>) {
        let _ = self.commands.send(Command::Peers(peers));
    }

    /// Leaves (the others learn at once) and stops, bounded to a second.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
        }
        self.task.abort();
    }
}

async fn run(
    socket: UdpSocket,
    mut core: Core,
    timing: Timing,
    mut commands: mpsc::UnboundedReceiver<Command>,
    view: watch::Sender<View>,
) {
    let origin = Instant::now();
    let mut peers: BTreeMap<String, SocketAddr> = BTreeMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM + 64];
    let mut refused = 0u64;
    let mut reannounce = tokio::time::interval(REANNOUNCE);
    reannounce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_refusal_log: Option<Instant> = None;
    let mut join = Join::new(Duration::ZERO, timing);
    loop {
        let now = origin.elapsed();
        let sleep = core
            .next_deadline()
            .into_iter()
            .chain(join.deadline())
            .min()
            .map(|at| at.saturating_sub(now))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, from)) => {
                    if let Err(e) = core.receive(&buf[..n], origin.elapsed()) {
                        refused += 1;
                        // At most one log line a minute for refusals.
                        if last_refusal_log.is_none_or(|t| t.elapsed() > Duration::from_secs(60)) {
                            tracing::warn!("membership: datagram from {from} refused: {e} ({refused} refused so far)");
                            last_refusal_log = Some(Instant::now());
                        }
                    }
                }
                Err(e) => tracing::warn!("membership: receiving: {e}"),
            },
            _ = tokio::time::sleep(sleep) => core.poll(origin.elapsed()),
            _ = reannounce.tick() => {
                let live = core.live().clone();
                for (node, addr) in &peers {
                    if !live.contains(node) {
                        core.announce(node, *addr, origin.elapsed());
                    }
                }
            }
            command = commands.recv() => match command {
                Some(Command::Peers(new)) => {
                    for (node, addr) in &new {
                        if peers.get(node) != Some(addr) {
                            core.announce(node, *addr, origin.elapsed());
                        }
                    }
                    peers = new;
                }
                Some(Command::Leave(done)) => {
                    core.leave(origin.elapsed());
                    flush(&socket, &mut core).await;
                    let _ = done.send(());
                    return;
                }
                None => return,
            },
        }
        flush(&socket, &mut core).await;
        let live = core.live();
        let joined = join.update(
            origin.elapsed(),
            live.len() > 1,
            !peers.is_empty() && peers.keys().all(|p| live.contains(p)),
        );
        let next = View {
            live: live.clone(),
            joined,
            refused,
            changes: core.changes,
        };
        view.send_if_modified(|v| {
            if v.live != next.live || v.joined != next.joined || v.changes != next.changes {
                *v = next;
                true
            } else {
                v.refused = next.refused;
                false
            }
        });
    }
}

async fn flush(socket: &UdpSocket, core: &mut Core) {
    for (to, bytes) in core.take_outbox() {
        if let Err(e) = socket.send_to(&bytes, to).await {
            tracing::debug!("membership: sending to {to}: {e}");
        }
    }
}
