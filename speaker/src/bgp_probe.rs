//! `ferrolb-speaker bgp-probe`: opens one BGP session exactly as the speaker
//! does, announces prefixes, prints one JSON object per line for everything
//! that happens, and on SIGINT or SIGTERM withdraws the prefixes, sends a
//! Cease NOTIFICATION and exits 0.
//!
//! With `--bfd-interval MS` it also runs a BFD session to the peer
//! (single-hop on UDP 3784, or multi-hop on 4784 with `--bfd-multihop`;
//! from `--source` when given, bound to `--vrf`), asking for MS between
//! packets both ways with `--bfd-multiplier` (default 3). When BFD goes
//! from Up to Down, the BGP session is reset with Cease / BFD Down
//! (RFC 9384) and reconnects as after any failure; a Down caused by the
//! peer going AdminDown is not a path failure and leaves BGP alone
//! (RFC 5882 §3.2). On a signal, BGP stops first (withdrawals, Cease /
//! Administrative Shutdown), then BFD goes AdminDown (AdminDown packets
//! for a detection time, at most 3 s): in the other order a peer that
//! resets BGP when our BFD goes AdminDown (FRR 8.4 does) would never get
//! the Cease.
//!
//! Lines on stdout (every object has `event` and `elapsed_ms`):
//!
//! - `started`: `asn`, `peer`, `peer_asn`, `prefix_count`, `prefixes` (the
//!   first 100);
//! - `connected`: `conn`, `direction` (`outbound`/`inbound`), `local`,
//!   `remote`; `connect_failed`: `error`; `disconnected`: `conn`,
//!   `reason`; `refused`: `remote` (not the peer);
//! - `state`: `from`, `to` (`idle`, `connect`, `active`, `open_sent`,
//!   `open_confirm`, `established`);
//! - `established`: `conn`, `peer_asn`, `peer_router_id`, `hold_time`,
//!   `keepalive_time`, `internal`, `capabilities` (what both sides
//!   announced: `four_octet_as`, `families`, `route_refresh`,
//!   `enhanced_route_refresh`, `extended_message`, `extended_next_hop`,
//!   `graceful_restart`, `hostname`);
//! - `routes_received`: `family`, `announced`, `withdrawn`, `current`,
//!   `stale`; `end_of_rib`: `family`; `route_refresh`: `family`;
//! - `notification_sent` / `notification_received`: `code`, `subcode`,
//!   `text`, `shutdown_communication`;
//! - `peer_restarting`, `stale_routes_removed`, `warning`;
//! - `bfd_started`: `peer`, `multihop`, `local` (address and source port),
//!   `discriminator`, `interval_ms`, `multiplier`;
//! - `bfd`: `from`, `to` (`admin_down`, `down`, `init`, `up`), `diag`
//!   (`no_diagnostic`, `control_detection_time_expired`,
//!   `neighbor_signaled_session_down`, `administratively_down`, … or
//!   `reserved_N`), `remote_state`, `discriminator`;
//!   `bfd_warning`: `message`; `bfd_stopped`;
//! - `stopping` / `stopped`: `signal`.
//!
//! Logs go to stderr (`RUST_LOG`; default `warn`).

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use ferrolb_bgp::bfd::io::{self as bfd_io, BfdEvent, PeerConfig};
use ferrolb_bgp::bfd::{self, Hop, Profile};
use ferrolb_bgp::session::{
    Action, Direction, GracefulRestartConfig, PeerAs, RouteAttributes, Session, SessionConfig,
    State,
};
use ferrolb_bgp::transport::{self, TransportConfig, TransportEvent, TtlMode};
use ferrolb_bgp::{Community, LargeCommunity, Notification, Prefix};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedReceiver;

/// Arguments of `bgp-probe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Our AS number (4-octet allowed).
    #[arg(long)]
    pub asn: u32,
    /// The peer's address; link-local IPv6 as `fe80::1%eth0`.
    #[arg(long)]
    pub peer: String,
    /// The peer's AS number; equal to `--asn` for iBGP.
    #[arg(long)]
    pub peer_asn: u32,
    /// TCP port to connect to.
    #[arg(long, default_value_t = transport::BGP_PORT)]
    pub peer_port: u16,
    /// TCP port to accept the peer's connections on.
    #[arg(long, default_value_t = transport::BGP_PORT)]
    pub listen_port: u16,
    /// Never accept connections (connect only).
    #[arg(long, conflicts_with = "passive")]
    pub no_listen: bool,
    /// BGP identifier; default: `--source` when IPv4, else this host's IPv4
    /// address towards the peer.
    #[arg(long)]
    pub router_id: Option<Ipv4Addr>,
    /// Local address to connect from and listen on.
    #[arg(long)]
    pub source: Option<IpAddr>,
    /// File holding the TCP MD5 password (RFC 2385); one trailing newline
    /// is ignored.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// Hold time to propose, seconds (0 or at least 3).
    #[arg(long, default_value_t = 90)]
    pub hold_time: u16,
    /// Wait for the peer to connect.
    #[arg(long)]
    pub passive: bool,
    /// Advertise graceful restart (RFC 4724) with the forwarding state
    /// preserved for every family, as the speaker does: the node keeps
    /// forwarding Service traffic while the speaker restarts, so the router
    /// keeps our routes (stale) until our End-of-RIB.
    #[arg(long)]
    pub graceful_restart: bool,
    /// Prefix to announce, IPv4 or IPv6 (an address alone is a host
    /// route); repeatable.
    #[arg(long = "prefix", value_name = "PREFIX")]
    pub prefixes: Vec<String>,
    /// File of prefixes, one per line (`#` comments and blank lines
    /// skipped).
    #[arg(long)]
    pub prefixes_file: Option<PathBuf>,
    /// Community `asn:value` or a well-known name; repeatable.
    #[arg(long = "community", value_name = "C")]
    pub communities: Vec<Community>,
    /// Large community `global:local1:local2`; repeatable.
    #[arg(long = "large-community", value_name = "C")]
    pub large_communities: Vec<LargeCommunity>,
    /// LOCAL_PREF (sent to iBGP peers only).
    #[arg(long)]
    pub local_pref: Option<u32>,
    /// MULTI_EXIT_DISC.
    #[arg(long)]
    pub med: Option<u32>,
    /// Next hop; repeat with one IPv4 and one IPv6 address to set both
    /// families (default: the connection's local address).
    #[arg(long = "next-hop", value_name = "IP")]
    pub next_hops: Vec<IpAddr>,
    /// TTL for an eBGP peer more than one hop away (default 1 for eBGP).
    #[arg(long)]
    pub ebgp_multihop: Option<u8>,
    /// GTSM (RFC 5082): send with TTL 255, accept only TTL >= 256 - HOPS.
    #[arg(long, value_name = "HOPS")]
    pub ttl_security: Option<u8>,
    /// Bind the sockets to this device (VRF).
    #[arg(long)]
    pub vrf: Option<String>,
    /// Run BFD to the peer, asking for this receive and transmit interval
    /// (ms); BFD going down resets the BGP session.
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u32).range(1..))]
    pub bfd_interval: Option<u32>,
    /// BFD detect multiplier.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        requires = "bfd_interval",
        value_parser = clap::value_parser!(u8).range(1..)
    )]
    pub bfd_multiplier: u8,
    /// Multi-hop BFD (RFC 5883, UDP 4784) instead of single-hop.
    #[arg(long, requires = "bfd_interval")]
    pub bfd_multihop: bool,
}

/// Runs the probe; exit code 0 after a clean stop on a signal.
pub fn run(args: Args) -> ExitCode {
    crate::run_probe("bgp-probe", probe(args))
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("ferrolb-speaker bgp-probe: {message}");
    ExitCode::FAILURE
}

/// Parses `addr` or `addr%scope` (interface name or index) into an address
/// and IPv6 scope id.
pub fn parse_peer(text: &str) -> Result<(IpAddr, u32), String> {
    let (addr, scope) = match text.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope)),
        None => (text, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|err| format!("--peer {text:?}: {err}"))?;
    let scope_id = match scope {
        None => 0,
        Some(_) if ip.is_ipv4() => return Err(format!("--peer {text:?}: scope on IPv4")),
        Some(scope) => match scope.parse::<u32>() {
            Ok(index) => index,
            Err(_) => transport::socket::interface_index(scope)
                .ok_or_else(|| format!("--peer {text:?}: no interface {scope:?}"))?,
        },
    };
    Ok((ip, scope_id))
}

/// Parses a prefix, or an address as a host route.
pub fn parse_prefix(text: &str) -> Result<Prefix, String> {
    let text = text.trim();
    if text.contains('/') {
        text.parse().map_err(|err| format!("{text:?}: {err}"))
    } else {
        let ip: IpAddr = text.parse().map_err(|err| format!("{text:?}: {err}"))?;
        Prefix::new(ip, if ip.is_ipv4() { 32 } else { 128 })
            .map_err(|err| format!("{text:?}: {err}"))
    }
}

/// Parses a prefixes file: one per line, blank lines and `#` comments
/// skipped; errors name the line.
pub fn parse_prefixes_file(text: &str) -> Result<Vec<Prefix>, String> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| parse_prefix(line).map_err(|err| format!("line {n}: {err}")))
        .collect()
}

fn read_password(path: &Path) -> Result<Vec<u8>, String> {
    let mut bytes = std::fs::read(path).map_err(|err| format!("{}: {err}", path.display()))?;
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    Ok(bytes)
}

struct Setup {
    session: Session,
    transport: TransportConfig,
    bfd: Option<PeerConfig>,
    prefixes: Vec<Prefix>,
    attrs: RouteAttributes,
}

fn setup(args: &Args) -> Result<Setup, String> {
    setup_with(args, &crate::peer::local_ipv4_for)
}

/// [`setup`] with the default router ID's lookup given (for tests).
fn setup_with(args: &Args, local_v4: &dyn Fn(IpAddr) -> Option<Ipv4Addr>) -> Result<Setup, String> {
    let (peer_ip, scope_id) = parse_peer(&args.peer)?;
    let mut prefixes = args
        .prefixes
        .iter()
        .map(|p| parse_prefix(p).map_err(|err| format!("--prefix {err}")))
        .collect::<Result<Vec<_>, _>>()?;
    if let Some(path) = &args.prefixes_file {
        let text =
            std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
        prefixes.extend(
            parse_prefixes_file(&text)
                .map_err(|err| format!("--prefixes-file {}: {err}", path.display()))?,
        );
    }
    // As the speaker: --router-id, else the IPv4 --source, else this
    // host's IPv4 address towards the peer.
    let router_id = match (args.router_id, args.source) {
        (Some(id), _) => id,
        (None, Some(IpAddr::V4(source))) => source,
        (None, _) => local_v4(peer_ip).ok_or(
            "--router-id is needed: --source is not IPv4 and this host has no IPv4 address",
        )?,
    };
    let mut cfg = SessionConfig::new(args.asn, router_id, PeerAs::Fixed(args.peer_asn));
    cfg.hold_time = args.hold_time;
    cfg.passive = args.passive;
    cfg.graceful_restart = args.graceful_restart.then(|| GracefulRestartConfig {
        forwarding_preserved: true,
        ..GracefulRestartConfig::default()
    });
    for hop in &args.next_hops {
        match hop {
            IpAddr::V4(v4) => cfg.next_hop_v4 = Some(*v4),
            IpAddr::V6(v6) => cfg.next_hop_v6 = Some(*v6),
        }
    }
    let session = Session::new(cfg).map_err(|err| err.to_string())?;

    let peer = match peer_ip {
        IpAddr::V4(v4) => SocketAddr::from((v4, args.peer_port)),
        IpAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(v6, args.peer_port, 0, scope_id)),
    };
    let mut transport = TransportConfig::new(peer);
    transport.source = args.source;
    transport.listen_port = (!args.no_listen).then_some(args.listen_port);
    transport.bind_device = args.vrf.clone();
    transport.md5_key = args
        .password_file
        .as_deref()
        .map(read_password)
        .transpose()?;
    transport.ttl = match (args.ttl_security, args.ebgp_multihop) {
        (Some(hops), _) => TtlMode::Gtsm { hops },
        (None, Some(ttl)) => TtlMode::Ttl(ttl),
        (None, None) if args.asn != args.peer_asn => TtlMode::Ttl(1),
        (None, None) => TtlMode::Default,
    };
    let bfd = args.bfd_interval.map(|ms| {
        let hop = if args.bfd_multihop {
            Hop::MultiHop
        } else {
            Hop::SingleHop
        };
        let profile = Profile {
            receive_interval_ms: ms,
            transmit_interval_ms: ms,
            detect_multiplier: args.bfd_multiplier,
            ..Profile::default()
        };
        PeerConfig {
            peer: peer_ip,
            scope_id,
            source: args.source,
            bind_device: args.vrf.clone(),
            hop,
            profile,
        }
    });
    let attrs = RouteAttributes {
        med: args.med,
        local_pref: args.local_pref,
        communities: args.communities.clone(),
        large_communities: args.large_communities.clone(),
        ..Default::default()
    };
    Ok(Setup {
        session,
        transport,
        bfd,
        prefixes,
        attrs,
    })
}

/// How many prefixes the `started` line lists (a prefixes file may hold
/// hundreds of thousands).
const STARTED_PREFIXES: usize = 100;

struct Printer {
    start: Instant,
}

impl Printer {
    fn print(&self, mut line: Value) {
        if let Value::Object(map) = &mut line {
            let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            map.insert("elapsed_ms".to_owned(), json!(elapsed));
        }
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{line}");
        let _ = stdout.flush();
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Idle => "idle",
        State::Connect => "connect",
        State::Active => "active",
        State::OpenSent => "open_sent",
        State::OpenConfirm => "open_confirm",
        State::Established => "established",
    }
}

fn notification_json(event: &str, notification: &Notification) -> Value {
    json!({
        "event": event,
        "code": notification.code_value(),
        "subcode": notification.subcode,
        "text": notification.to_string(),
        "shutdown_communication": notification.shutdown_communication().ok().flatten(),
    })
}

fn bfd_state_name(state: bfd::State) -> &'static str {
    match state {
        bfd::State::AdminDown => "admin_down",
        bfd::State::Down => "down",
        bfd::State::Init => "init",
        bfd::State::Up => "up",
    }
}

fn bfd_diag_name(diag: bfd::Diag) -> String {
    use bfd::Diag;
    match diag {
        Diag::NoDiagnostic => "no_diagnostic".to_owned(),
        Diag::ControlDetectionTimeExpired => "control_detection_time_expired".to_owned(),
        Diag::EchoFunctionFailed => "echo_function_failed".to_owned(),
        Diag::NeighborSignaledSessionDown => "neighbor_signaled_session_down".to_owned(),
        Diag::ForwardingPlaneReset => "forwarding_plane_reset".to_owned(),
        Diag::PathDown => "path_down".to_owned(),
        Diag::ConcatenatedPathDown => "concatenated_path_down".to_owned(),
        Diag::AdministrativelyDown => "administratively_down".to_owned(),
        Diag::ReverseConcatenatedPathDown => "reverse_concatenated_path_down".to_owned(),
        Diag::Reserved(v) => format!("reserved_{v}"),
    }
}

/// The JSON line for a BFD event, if it deserves one.
fn bfd_event_json(event: &BfdEvent) -> Option<Value> {
    Some(match event {
        BfdEvent::StateChanged {
            discriminator,
            from,
            to,
            diag,
            remote_state,
            ..
        } => json!({
            "event": "bfd",
            "from": bfd_state_name(*from),
            "to": bfd_state_name(*to),
            "diag": bfd_diag_name(*diag),
            "remote_state": bfd_state_name(*remote_state),
            "discriminator": discriminator,
        }),
        BfdEvent::SendFailed { error, .. } | BfdEvent::ReceiveFailed { error } => {
            json!({ "event": "bfd_warning", "message": error })
        }
        BfdEvent::Stopped => json!({ "event": "bfd_stopped" }),
        BfdEvent::Removed { .. } => return None,
    })
}

async fn next_bfd_event(events: &mut Option<UnboundedReceiver<BfdEvent>>) -> Option<BfdEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The JSON line for a transport event.
fn event_json(event: &TransportEvent) -> Value {
    match event {
        TransportEvent::Connected {
            conn,
            direction,
            local,
            remote,
        } => json!({
            "event": "connected",
            "conn": conn.0,
            "direction": match direction {
                Direction::Outbound => "outbound",
                Direction::Inbound => "inbound",
            },
            "local": local.to_string(),
            "remote": remote.to_string(),
        }),
        TransportEvent::ConnectFailed { error } => {
            json!({ "event": "connect_failed", "error": error })
        }
        TransportEvent::Disconnected { conn, reason } => {
            json!({ "event": "disconnected", "conn": conn.0, "reason": reason })
        }
        TransportEvent::Refused { remote } => {
            json!({ "event": "refused", "remote": remote.to_string() })
        }
        TransportEvent::AcceptFailed { error } => {
            json!({ "event": "accept_failed", "error": error })
        }
        TransportEvent::Stopped => json!({ "event": "session_stopped" }),
        TransportEvent::Session(action) => action_json(action),
    }
}

fn action_json(action: &Action) -> Value {
    match action {
        Action::StateChanged { from, to } => json!({
            "event": "state",
            "from": state_name(*from),
            "to": state_name(*to),
        }),
        Action::Established { conn, negotiated } => {
            let n = negotiated;
            json!({
                "event": "established",
                "conn": conn.0,
                "peer_asn": n.peer_asn,
                "peer_router_id": n.peer_router_id.to_string(),
                "hold_time": n.hold_time,
                "keepalive_time": n.keepalive_time,
                "internal": n.internal,
                "capabilities": {
                    "four_octet_as": n.four_octet_as,
                    "families": n.families.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "route_refresh": n.route_refresh,
                    "enhanced_route_refresh": n.enhanced_route_refresh,
                    "extended_message": n.extended_message,
                    "extended_next_hop": n.extended_next_hop,
                    "graceful_restart": n.graceful_restart.as_ref().map(|gr| json!({
                        "restart_time": gr.restart_time,
                        "restarting": gr.restarting,
                        "families": gr.families.iter().map(|f| json!({
                            "family": f.family.to_string(),
                            "forwarding_preserved": f.forwarding_preserved,
                        })).collect::<Vec<_>>(),
                    })),
                    "hostname": n.peer_hostname,
                },
            })
        }
        Action::NotificationSent { notification, .. } => {
            notification_json("notification_sent", notification)
        }
        Action::NotificationReceived { notification, .. } => {
            notification_json("notification_received", notification)
        }
        Action::RoutesReceived { family, counts } => json!({
            "event": "routes_received",
            "family": family.to_string(),
            "announced": counts.announced,
            "withdrawn": counts.withdrawn,
            "current": counts.current,
            "stale": counts.stale,
        }),
        Action::EndOfRibReceived { family } => {
            json!({ "event": "end_of_rib", "family": family.to_string() })
        }
        Action::RouteRefreshReceived { family } => {
            json!({ "event": "route_refresh", "family": family.to_string() })
        }
        Action::PeerRestarting {
            restart_time,
            stale_routes,
        } => json!({
            "event": "peer_restarting",
            "restart_time_s": restart_time.as_secs(),
            "stale_routes": stale_routes,
        }),
        Action::StaleRoutesRemoved { family, count } => json!({
            "event": "stale_routes_removed",
            "family": family.map(|f| f.to_string()),
            "count": count,
        }),
        Action::Warning(message) => json!({ "event": "warning", "message": message }),
        other => json!({ "event": "action", "debug": format!("{other:?}") }),
    }
}

async fn probe(args: Args) -> ExitCode {
    let printer = Printer {
        start: Instant::now(),
    };
    let setup = match setup(&args) {
        Ok(setup) => setup,
        Err(err) => return fail(err),
    };
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(sigint), Ok(sigterm)) => (sigint, sigterm),
        (Err(err), _) | (_, Err(err)) => return fail(format!("installing signal handlers: {err}")),
    };
    let peer = setup.transport.peer;
    let (handle, mut events, task) = match transport::spawn(setup.session, setup.transport) {
        Ok(started) => started,
        Err(err) => return fail(format!("opening the BGP sockets: {err}")),
    };
    printer.print(json!({
        "event": "started",
        "asn": args.asn,
        "peer": peer.to_string(),
        "peer_asn": args.peer_asn,
        "prefix_count": setup.prefixes.len(),
        "prefixes": setup.prefixes.iter().take(STARTED_PREFIXES).map(ToString::to_string).collect::<Vec<_>>(),
    }));
    for prefix in &setup.prefixes {
        if handle.announce(*prefix, setup.attrs.clone()).is_err() {
            return fail("the session task ended");
        }
    }
    let (bfd, mut bfd_events) = match setup.bfd {
        Some(peer_cfg) => {
            let (bfd, bfd_events, _task) = bfd_io::spawn(bfd_io::IoConfig::default());
            let profile = peer_cfg.profile;
            let multihop = peer_cfg.hop == Hop::MultiHop;
            let added = match bfd.add_session(peer_cfg).await {
                Ok(added) => added,
                Err(err) => {
                    let stop = handle.stop(false, Some("ferrolb-speaker bgp-probe: BFD failed"));
                    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stop).await;
                    return fail(format!("starting BFD: {err}"));
                }
            };
            printer.print(json!({
                "event": "bfd_started",
                "peer": peer.ip().to_string(),
                "multihop": multihop,
                "local": added.local.to_string(),
                "discriminator": added.discriminator,
                "interval_ms": profile.transmit_interval_ms,
                "multiplier": profile.detect_multiplier,
            }));
            (Some(bfd), Some(bfd_events))
        }
        None => (None, None),
    };
    let signal_name = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            event = events.recv() => match event {
                Some(event) => printer.print(event_json(&event)),
                None => return fail("the session task ended"),
            },
            event = next_bfd_event(&mut bfd_events) => match event {
                Some(event) => {
                    if let Some(line) = bfd_event_json(&event) {
                        printer.print(line);
                    }
                    if event.is_path_failure() && handle.bfd_down().is_err() {
                        return fail("the session task ended");
                    }
                }
                None => {
                    printer.print(json!({
                        "event": "bfd_warning",
                        "message": "the BFD task ended",
                    }));
                    bfd_events = None;
                }
            },
        }
    };
    printer.print(json!({ "event": "stopping", "signal": signal_name }));
    // BGP first: withdrawals and Cease / Administrative Shutdown while BFD
    // is still Up. Some peers reset BGP with Cease / BFD Down as soon as
    // our BFD goes AdminDown (FRR 8.4's bgpd does, although RFC 5882 §3.2
    // says a peer's AdminDown is no failure), and our Cease would then
    // never be sent.
    let stop = handle.stop(true, Some("ferrolb-speaker bgp-probe stopping"));
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), stop).await;
    while let Ok(event) = events.try_recv() {
        printer.print(event_json(&event));
    }
    if let (Some(bfd), Some(bfd_events)) = (&bfd, &mut bfd_events) {
        // Then AdminDown, so that the peer does not take our silence once
        // we exit for a path failure (other clients of its BFD session).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), bfd.shutdown()).await;
        while let Ok(event) = bfd_events.try_recv() {
            if let Some(line) = bfd_event_json(&event) {
                printer.print(line);
            }
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), task).await;
    printer.print(json!({ "event": "stopped", "signal": signal_name }));
    match stopped {
        Ok(Ok(())) => ExitCode::SUCCESS,
        _ => fail("the session did not stop in time"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_with_and_without_scope() {
        assert_eq!(
            parse_peer("198.51.100.1").unwrap(),
            ("198.51.100.1".parse().unwrap(), 0)
        );
        assert_eq!(
            parse_peer("fe80::1%7").unwrap(),
            ("fe80::1".parse().unwrap(), 7)
        );
        assert_eq!(parse_peer("fe80::1%lo").unwrap().1, 1);
        assert!(parse_peer("198.51.100.1%1").is_err());
        assert!(parse_peer("fe80::1%no-such-if0").is_err());
    }

    #[test]
    fn prefixes_and_host_routes() {
        assert_eq!(
            parse_prefix("198.51.100.7").unwrap().to_string(),
            "198.51.100.7/32"
        );
        assert_eq!(
            parse_prefix("2001:db8::7").unwrap().to_string(),
            "2001:db8::7/128"
        );
        let list = parse_prefixes_file("# services\n198.51.100.0/24\n\n2001:db8::/64\n").unwrap();
        assert_eq!(list.len(), 2);
        assert!(
            parse_prefixes_file("198.51.100.0/33")
                .unwrap_err()
                .starts_with("line 1")
        );
    }

    #[test]
    fn ebgp_defaults_to_ttl_one_and_ibgp_to_kernel_ttl() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: Args,
        }
        let ebgp = Cli::parse_from([
            "x",
            "--asn",
            "4200000001",
            "--peer",
            "198.51.100.1",
            "--peer-asn",
            "65001",
            "--source",
            "198.51.100.2",
            "--community",
            "65000:1",
            "--large-community",
            "4200000001:1:2",
            "--prefix",
            "198.51.100.7",
        ]);
        let setup = setup(&ebgp.args).unwrap();
        assert_eq!(setup.transport.ttl, TtlMode::Ttl(1));
        assert_eq!(
            setup.session.config().router_id,
            Ipv4Addr::new(198, 51, 100, 2)
        );
        assert_eq!(setup.attrs.communities.len(), 1);
        assert_eq!(setup.attrs.large_communities.len(), 1);
        let ibgp = Cli::parse_from([
            "x",
            "--asn",
            "65001",
            "--peer",
            "2001:db8::1",
            "--peer-asn",
            "65001",
        ]);
        assert!(
            setup_with(&ibgp.args, &|_| None)
                .err()
                .unwrap_or_default()
                .contains("--router-id is needed")
        );
        let found = setup_with(&ibgp.args, &|_| Some(Ipv4Addr::new(198, 51, 100, 9))).unwrap();
        assert_eq!(
            found.session.config().router_id,
            Ipv4Addr::new(198, 51, 100, 9)
        );
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        use clap::Parser;
        let base = [
            "x",
            "--asn",
            "65001",
            "--peer",
            "fe80::1%lo",
            "--peer-asn",
            "65002",
            "--router-id",
            "198.51.100.2",
            "--vrf",
            "blue",
        ];
        Cli::try_parse_from(base.iter().chain(extra)).map(|cli| cli.args)
    }

    #[test]
    fn bfd_flags() {
        // Off unless asked for.
        assert!(setup(&parse(&[]).unwrap()).unwrap().bfd.is_none());
        // Single-hop with the default multiplier, to the peer (scope kept),
        // from --source, bound to --vrf.
        let args = parse(&["--bfd-interval", "300", "--source", "fe80::2"]).unwrap();
        let bfd = setup(&args).unwrap().bfd.unwrap();
        assert_eq!(bfd.peer, "fe80::1".parse::<IpAddr>().unwrap());
        assert_eq!(bfd.scope_id, 1);
        assert_eq!(bfd.source, Some("fe80::2".parse().unwrap()));
        assert_eq!(bfd.bind_device.as_deref(), Some("blue"));
        assert_eq!(bfd.hop, Hop::SingleHop);
        assert_eq!(
            (
                bfd.profile.receive_interval_ms,
                bfd.profile.transmit_interval_ms,
                bfd.profile.detect_multiplier
            ),
            (300, 300, 3)
        );
        let args = parse(&[
            "--bfd-interval",
            "50",
            "--bfd-multiplier",
            "5",
            "--bfd-multihop",
        ])
        .unwrap();
        let bfd = setup(&args).unwrap().bfd.unwrap();
        assert_eq!(bfd.hop, Hop::MultiHop);
        assert_eq!(bfd.profile.detect_multiplier, 5);
        // Refused: BFD options without the interval, zero values.
        assert!(parse(&["--bfd-multiplier", "5"]).is_err());
        assert!(parse(&["--bfd-multihop"]).is_err());
        assert!(parse(&["--bfd-interval", "0"]).is_err());
        assert!(parse(&["--bfd-interval", "10", "--bfd-multiplier", "0"]).is_err());
    }

    #[test]
    fn bfd_event_lines() {
        let change = BfdEvent::StateChanged {
            discriminator: 7,
            peer: "198.51.100.1".parse().unwrap(),
            hop: Hop::SingleHop,
            from: bfd::State::Up,
            to: bfd::State::Down,
            diag: bfd::Diag::ControlDetectionTimeExpired,
            remote_state: bfd::State::Up,
        };
        assert_eq!(
            bfd_event_json(&change).unwrap(),
            json!({
                "event": "bfd",
                "from": "up",
                "to": "down",
                "diag": "control_detection_time_expired",
                "remote_state": "up",
                "discriminator": 7,
            })
        );
        assert_eq!(bfd_diag_name(bfd::Diag::Reserved(12)), "reserved_12");
        assert_eq!(
            bfd_diag_name(bfd::Diag::NeighborSignaledSessionDown),
            "neighbor_signaled_session_down"
        );
        assert_eq!(bfd_state_name(bfd::State::AdminDown), "admin_down");
        assert_eq!(bfd_state_name(bfd::State::Init), "init");
        assert_eq!(
            bfd_event_json(&BfdEvent::Stopped).unwrap()["event"],
            "bfd_stopped"
        );
        assert!(
            bfd_event_json(&BfdEvent::Removed {
                discriminator: 7,
                peer: "198.51.100.1".parse().unwrap()
            })
            .is_none()
        );
    }
}
