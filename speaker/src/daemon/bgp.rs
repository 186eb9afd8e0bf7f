//! The BGP adapter: one session task per selected BGPPeer (the `bgp`
//! crate's transport), kept in step with [`Desired::bgp`]. A peer whose
//! settings change is restarted; an announcement change is one UPDATE.
//! BFD sessions (one shared BFD task) bring their BGP session down on a
//! path failure.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ferrolb_bgp::bfd::io::{self as bfd_io, BfdEvent, BfdHandle};
use ferrolb_bgp::session::{Action, Session, State};
use ferrolb_bgp::transport::{self, SessionHandle, TransportEvent};
use ferrolb_bgp::unnumbered::io::{self as unnumbered_io, PeerAddress, Unnumbered};
use ferrolb_config::Config;
use k8s_openapi::api::core::v1::Node;
use tokio::sync::mpsc;

use crate::desired::{Desired, Routes};
use crate::peer;

/// Routes marked for draining (RFC 8326).
mod drain {
    use std::collections::HashMap;
    use std::sync::Arc;

    use ferrolb_bgp::Community;
    use ferrolb_bgp::session::RouteAttributes;

    use crate::desired::Routes;

    /// GRACEFUL_SHUTDOWN, 65535:0 (RFC 8326).
    pub const GRACEFUL_SHUTDOWN: Community = Community(0xFFFF_0000);

    /// Drained copies of attribute sets, one per distinct set.
    #[derive(Default)]
    pub struct Marked(HashMap<RouteAttributes, Arc<RouteAttributes>>);

    impl Marked {
        /// `attrs` with GRACEFUL_SHUTDOWN and LOCAL_PREF 0 (sent to iBGP
        /// peers only): the peer prefers any other path.
        pub fn attributes(&mut self, attrs: &RouteAttributes) -> Arc<RouteAttributes> {
            if let Some(a) = self.0.get(attrs) {
                return a.clone();
            }
            let mut drained = attrs.clone();
            if !drained.communities.contains(&GRACEFUL_SHUTDOWN) {
                drained.communities.push(GRACEFUL_SHUTDOWN);
                drained.communities.sort();
            }
            drained.local_pref = Some(0);
            let a = Arc::new(drained);
            self.0.insert(attrs.clone(), a.clone());
            a
        }

        pub fn routes(&mut self, routes: &Routes) -> Routes {
            routes
                .iter()
                .map(|(p, a)| (*p, self.attributes(a)))
                .collect()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn drained_routes_carry_graceful_shutdown_and_local_pref_zero() {
            let mut m = Marked::default();
            let plain = RouteAttributes {
                communities: vec![Community(0xFDE8_0064)],
                local_pref: Some(200),
                ..RouteAttributes::default()
            };
            let routes: Routes = [
                ("203.0.113.1/32".parse().unwrap(), Arc::new(plain.clone())),
                ("203.0.113.2/32".parse().unwrap(), Arc::new(plain)),
            ]
            .into();
            let drained = m.routes(&routes);
            let a = &drained[&"203.0.113.1/32".parse().unwrap()];
            assert_eq!(a.communities, [Community(0xFDE8_0064), GRACEFUL_SHUTDOWN]);
            assert_eq!(a.local_pref, Some(0));
            // One shared copy per distinct set.
            assert!(Arc::ptr_eq(a, &drained[&"203.0.113.2/32".parse().unwrap()]));
        }
    }
}

/// How long a session may take to send its withdrawals and Cease.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// What the daemon shows of one peer's session.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerState {
    pub state: String,
    pub bfd_state: Option<String>,
    pub last_transition: SystemTime,
    pub last_error: Option<String>,
    pub prefixes: usize,
}

struct Run {
    generation: u64,
    fingerprint: String,
    handle: SessionHandle,
    /// What was announced: the decision's map for this peer, shared.
    routes: Arc<Routes>,
    bfd_discriminator: Option<u32>,
    state: PeerState,
}

/// A session event tagged with its peer and session generation.
pub type Tagged = (String, u64, TransportEvent);

pub struct Bgp {
    runs: BTreeMap<String, Run>,
    /// Peers selected for this node that cannot run, and why.
    pub errors: BTreeMap<String, String>,
    events_tx: mpsc::UnboundedSender<Tagged>,
    events_rx: mpsc::UnboundedReceiver<Tagged>,
    bfd: Option<(BfdHandle, mpsc::UnboundedReceiver<BfdEvent>)>,
    generation: u64,
    /// Router discovery per interface of an unnumbered peer.
    unnumbered: BTreeMap<String, Unnumbered>,
    /// Why discovery could not start on an interface.
    unnumbered_errors: BTreeMap<String, String>,
    /// Interfaces whose peer address changed.
    discovered_tx: mpsc::UnboundedSender<String>,
    discovered_rx: mpsc::UnboundedReceiver<String>,
    /// The speaker is stopping (SIGTERM): it drains whatever its Node says.
    pub stopping: bool,
    /// How long routes go with the drain community before they are
    /// withdrawn.
    pub drain_wait: Duration,
    /// When draining began, and whether the wait is over (then every route
    /// is withdrawn).
    drain: Option<(tokio::time::Instant, bool)>,
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

impl Default for Bgp {
    fn default() -> Self {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (discovered_tx, discovered_rx) = mpsc::unbounded_channel();
        Bgp {
            runs: BTreeMap::new(),
            errors: BTreeMap::new(),
            events_tx,
            events_rx,
            bfd: None,
            generation: 0,
            unnumbered: BTreeMap::new(),
            unnumbered_errors: BTreeMap::new(),
            discovered_tx,
            discovered_rx,
            stopping: false,
            drain_wait: Duration::from_secs(5),
            drain: None,
        }
    }
}

pub enum BgpInput {
    Session(Tagged),
    Bfd(BfdEvent),
    /// The peer address found on this interface changed (unnumbered
    /// peering): the sessions are to be set up again.
    Discovered(String),
}

impl Bgp {
    /// Sessions by peer name, for status.
    pub fn states(&self) -> BTreeMap<String, PeerState> {
        self.runs
            .iter()
            .map(|(n, r)| {
                let mut s = r.state.clone();
                s.prefixes = r.routes.len();
                (n.clone(), s)
            })
            .collect()
    }

    /// Waits for the next session or BFD event.
    pub async fn next(&mut self) -> Option<BgpInput> {
        let bfd = async {
            match &mut self.bfd {
                Some((_, rx)) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        let drain_over = async {
            match self.drain {
                Some((since, false)) => tokio::time::sleep_until(since + self.drain_wait).await,
                _ => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = self.events_rx.recv() => ev.map(BgpInput::Session),
            ev = bfd => ev.map(BgpInput::Bfd),
            iface = self.discovered_rx.recv() => iface.map(|i| BgpInput::Discovered(format!("interface {i}: the peer's address changed"))),
            () = drain_over => Some(BgpInput::Discovered("the drain wait is over".into())),
        }
    }

    /// Applies one event; true when a peer's shown state changed.
    pub fn handle(&mut self, input: BgpInput) -> bool {
        match input {
            // The daemon sets the sessions up again (see its main loop).
            BgpInput::Discovered(_) => true,
            BgpInput::Session((name, generation, event)) => {
                let Some(run) = self.runs.get_mut(&name) else {
                    return false;
                };
                if run.generation != generation {
                    return false;
                }
                let st = &mut run.state;
                match event {
                    TransportEvent::Session(Action::StateChanged { to, .. }) => {
                        st.state = state_name(to).to_string();
                        st.last_transition = SystemTime::now();
                        if to == State::Established {
                            tracing::info!(peer = %name, "BGP session established");
                            st.last_error = None;
                        }
                        true
                    }
                    TransportEvent::Session(Action::NotificationReceived {
                        notification, ..
                    }) => {
                        let text = format!("NOTIFICATION received: {notification}");
                        tracing::warn!(peer = %name, "{text}");
                        st.last_error = Some(text);
                        true
                    }
                    TransportEvent::Session(Action::NotificationSent { notification, .. }) => {
                        let text = format!("NOTIFICATION sent: {notification}");
                        tracing::warn!(peer = %name, "{text}");
                        st.last_error = Some(text);
                        true
                    }
                    TransportEvent::Session(Action::Warning(w)) => {
                        tracing::warn!(peer = %name, "{w}");
                        false
                    }
                    TransportEvent::ConnectFailed { error } => {
                        let text = format!("connecting: {error}");
                        let changed = st.last_error.as_deref() != Some(text.as_str());
                        if changed {
                            tracing::warn!(peer = %name, "{text}");
                        }
                        st.last_error = Some(text);
                        changed
                    }
                    TransportEvent::Disconnected { reason, .. } => {
                        tracing::info!(peer = %name, "connection closed: {reason}");
                        false
                    }
                    _ => false,
                }
            }
            BgpInput::Bfd(event) => {
                let disc = match &event {
                    BfdEvent::StateChanged { discriminator, .. } => *discriminator,
                    BfdEvent::SendFailed {
                        discriminator,
                        error,
                        ..
                    } => {
                        tracing::warn!("BFD session {discriminator}: sending: {error}");
                        return false;
                    }
                    BfdEvent::ReceiveFailed { error } => {
                        tracing::warn!("BFD: receiving: {error}");
                        return false;
                    }
                    _ => return false,
                };
                let Some((name, run)) = self
                    .runs
                    .iter_mut()
                    .find(|(_, r)| r.bfd_discriminator == Some(disc))
                else {
                    return false;
                };
                if let BfdEvent::StateChanged { to, diag, .. } = &event {
                    let to = format!("{to:?}");
                    tracing::info!(peer = %name, "BFD {to} ({diag:?})");
                    run.state.bfd_state = Some(to);
                }
                if event.is_path_failure() {
                    tracing::warn!(peer = %name, "BFD detected a path failure: resetting the BGP session");
                    let _ = run.handle.bfd_down();
                }
                true
            }
        }
    }

    /// Brings the sessions in line with `desired`: starts, restarts and
    /// stops sessions, and sends the route differences.
    pub async fn apply(&mut self, cfg: &Config, node: Option<&Node>, desired: &Desired) {
        self.errors.clear();
        let now = tokio::time::Instant::now();
        let draining = self.stopping || desired.draining.is_some();
        self.drain = match (draining, self.drain) {
            (false, Some(_)) => {
                tracing::info!("no longer draining: announcing routes as configured");
                None
            }
            (false, None) => None,
            (true, None) => {
                tracing::info!(
                    "draining: routes go with GRACEFUL_SHUTDOWN (65535:0) for {:?}, then are withdrawn",
                    self.drain_wait
                );
                Some((now, self.drain_wait.is_zero()))
            }
            (true, Some((since, over))) => Some((since, over || now >= since + self.drain_wait)),
        };
        let mut marked = drain::Marked::default();
        self.discover(cfg, desired);
        let unnumbered = |iface: &str| -> Result<std::net::SocketAddrV6, String> {
            match self.unnumbered.get(iface) {
                Some(u) => match &*u.peer.borrow() {
                    PeerAddress::Found(addr) => Ok(*addr),
                    PeerAddress::Waiting => Err(format!(
                        "waiting for the peer's IPv6 router advertisements on {iface} (its link-local address is learned from them)"
                    )),
                },
                None => Err(self
                    .unnumbered_errors
                    .get(iface)
                    .cloned()
                    .unwrap_or_else(|| "router discovery is not running".into())),
            }
        };
        let mut wanted = BTreeMap::new();
        for name in &desired.peers {
            let Some(p) = cfg
                .bgp_peers
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            else {
                continue;
            };
            match peer::setup(p, cfg, node, &peer::local_ipv4_for, &unnumbered) {
                Ok(setup) => {
                    wanted.insert(name.clone(), setup);
                }
                Err(e) => {
                    if self.runs.contains_key(name) {
                        tracing::warn!("{e}; the running session is kept");
                    } else {
                        tracing::warn!("{e}");
                    }
                    self.errors.insert(name.clone(), e);
                }
            }
        }
        // Stop sessions no longer wanted (keeping those whose new settings
        // are in error: nothing announced is lost to a bad edit).
        let gone: Vec<String> = self
            .runs
            .keys()
            .filter(|n| !wanted.contains_key(*n) && !self.errors.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            tracing::info!(peer = %name, "stopping the session: the peer no longer selects this node or was removed");
            self.stop_one(&name, "peer removed").await;
        }
        let empty: Arc<Routes> = Arc::default();
        for (name, setup) in wanted {
            let fingerprint = format!("{setup:?}");
            let restart = self
                .runs
                .get(&name)
                .is_some_and(|r| r.fingerprint != fingerprint);
            if restart {
                tracing::info!(peer = %name, "the peer's settings changed: restarting its session");
                self.stop_one(&name, "peer settings changed").await;
            }
            if !self.runs.contains_key(&name) {
                match self.start(&name, setup, fingerprint).await {
                    Ok(run) => {
                        self.runs.insert(name.clone(), run);
                    }
                    Err(e) => {
                        tracing::warn!(peer = %name, "{e}");
                        self.errors.insert(name.clone(), e);
                        continue;
                    }
                }
            }
            let plain = desired.bgp.get(&name).unwrap_or(&empty);
            let drained;
            let want = match self.drain {
                None => plain,
                Some((_, false)) => {
                    drained = Arc::new(marked.routes(plain));
                    &drained
                }
                Some((_, true)) => &empty,
            };
            let Some(run) = self.runs.get_mut(&name) else {
                continue;
            };
            if Arc::ptr_eq(&run.routes, want) {
                continue;
            }
            for (prefix, attrs) in want.iter() {
                if run.routes.get(prefix) != Some(attrs) {
                    tracing::info!(peer = %name, "announcing {prefix}");
                    let _ = run.handle.announce(*prefix, attrs.clone());
                }
            }
            for prefix in run.routes.keys().filter(|p| !want.contains_key(*p)) {
                tracing::info!(peer = %name, "withdrawing {prefix}");
                let _ = run.handle.withdraw(*prefix);
            }
            run.routes = want.clone();
        }
    }

    /// Runs router discovery on exactly the interfaces of this node's
    /// unnumbered peers.
    fn discover(&mut self, cfg: &Config, desired: &Desired) {
        let wanted: std::collections::BTreeSet<String> = cfg
            .bgp_peers
            .iter()
            .filter(|p| {
                desired
                    .peers
                    .iter()
                    .any(|n| p.metadata.name.as_deref() == Some(n.as_str()))
            })
            .filter(|p| p.spec.peer_address.is_none())
            .filter_map(|p| p.spec.interface.clone())
            .collect();
        self.unnumbered.retain(|iface, _| wanted.contains(iface));
        self.unnumbered_errors
            .retain(|iface, _| wanted.contains(iface));
        for iface in wanted {
            if self.unnumbered.contains_key(&iface) {
                continue;
            }
            match unnumbered_io::spawn(&iface) {
                Ok(u) => {
                    tracing::info!(
                        "interface {iface}: router discovery started for unnumbered BGP peering"
                    );
                    self.unnumbered_errors.remove(&iface);
                    let mut changes = u.peer.clone();
                    let tx = self.discovered_tx.clone();
                    let name = iface.clone();
                    tokio::spawn(async move {
                        while changes.changed().await.is_ok() {
                            if tx.send(name.clone()).is_err() {
                                break;
                            }
                        }
                    });
                    self.unnumbered.insert(iface, u);
                }
                Err(e) => {
                    tracing::warn!("{e}");
                    self.unnumbered_errors.insert(iface, e.to_string());
                }
            }
        }
    }

    async fn start(
        &mut self,
        name: &str,
        setup: peer::PeerSetup,
        fingerprint: String,
    ) -> Result<Run, String> {
        let session = Session::new(setup.session).map_err(|e| format!("BGPPeer {name}: {e}"))?;
        let (handle, mut events, _task) = transport::spawn(session, setup.transport)
            .map_err(|e| format!("BGPPeer {name}: opening the BGP socket: {e}"))?;
        self.generation += 1;
        let generation = self.generation;
        let tx = self.events_tx.clone();
        let tag = name.to_string();
        tokio::spawn(async move {
            while let Some(ev) = events.recv().await {
                if tx.send((tag.clone(), generation, ev)).is_err() {
                    break;
                }
            }
        });
        let mut bfd_discriminator = None;
        if let Some(bfd_cfg) = setup.bfd {
            let (bfd, _) = self.bfd.get_or_insert_with(|| {
                let (h, rx, _task) = bfd_io::spawn(bfd_io::IoConfig::default());
                (h, rx)
            });
            match bfd.add_session(bfd_cfg).await {
                Ok(added) => bfd_discriminator = Some(added.discriminator),
                Err(e) => {
                    let _ = handle.stop(false, Some("BFD failed to start")).await;
                    return Err(format!("BGPPeer {name}: starting BFD: {e}"));
                }
            }
        }
        tracing::info!(peer = %name, "BGP session started");
        Ok(Run {
            generation,
            fingerprint,
            handle,
            routes: Arc::default(),
            bfd_discriminator,
            state: PeerState {
                state: "Idle".into(),
                bfd_state: None,
                last_transition: SystemTime::now(),
                last_error: None,
                prefixes: 0,
            },
        })
    }

    async fn stop_one(&mut self, name: &str, why: &str) {
        let Some(run) = self.runs.remove(name) else {
            return;
        };
        let message = format!("ferrolb-speaker: {why}");
        let _ = tokio::time::timeout(STOP_TIMEOUT, run.handle.stop(true, Some(&message))).await;
        if let (Some(disc), Some((bfd, _))) = (run.bfd_discriminator, &self.bfd) {
            let _ = tokio::time::timeout(STOP_TIMEOUT, bfd.remove_session(disc)).await;
        }
    }

    /// Withdraws everything and sends Cease to every peer, then stops BFD.
    pub async fn stop_all(&mut self, why: &str) {
        let names: Vec<String> = self.runs.keys().cloned().collect();
        let message = format!("ferrolb-speaker: {why}");
        let stops = self
            .runs
            .values()
            .map(|r| r.handle.clone())
            .collect::<Vec<_>>();
        let mut waits = Vec::new();
        for h in &stops {
            waits.push(tokio::time::timeout(
                STOP_TIMEOUT,
                h.stop(true, Some(&message)),
            ));
        }
        for w in waits {
            let _ = w.await;
        }
        for name in names {
            self.runs.remove(&name);
        }
        if let Some((bfd, _)) = self.bfd.take() {
            let _ = tokio::time::timeout(STOP_TIMEOUT, bfd.shutdown()).await;
        }
    }
}
