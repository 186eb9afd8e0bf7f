//! BFD interoperability with FRR 8.4's bfdd: `ferrolb-speaker bgp-probe
//! --bfd-interval 100` in a "node" namespace peers with FRR (zebra, bgpd,
//! bfdd; the neighbour configured with `bfd` and a 100 ms / 100 ms / ×3
//! profile) in a "router" namespace over a veth pair, single-hop over IPv4
//! and over IPv6.
//!
//! Each test brings BFD and BGP up, then fails the path one direction at a
//! time without any clean shutdown — nftables rules in the receiving
//! namespace drop the BFD Control packets (UDP to 3784 from the source
//! ports 49152–65535) and new BGP connections, nothing else (see [`Cut`]):
//! the established BGP connection still works, so only BFD can notice —
//! and checks that:
//!
//! 1. both sides are Up with the 100 ms intervals (`show bfd peers json`,
//!    bgpd's `peerBfdInfo`, the probe's `bfd` lines), BGP is Established
//!    and our routes are in FRR's RIB;
//! 2. our packets stop reaching FRR: FRR's bfdd declares the session down
//!    (detection time expired), bgpd resets the session for BFD and our
//!    routes leave its RIB; the probe, told Down by FRR, resets too;
//! 3. FRR's packets stop reaching us: the probe's BFD goes Down (detection
//!    time expired), it sends Cease/BFD Down (6/10), bgpd logs it and our
//!    routes leave FRR's RIB;
//! 4. after each cut is lifted BFD comes Up again, BGP re-establishes and
//!    the routes are back;
//! 5. on SIGTERM the probe sends Cease/Administrative Shutdown, then takes
//!    BFD AdminDown; FRR sees the AdminDown and does not reset the (already
//!    closed) session for BFD.
//!
//! The detection times measured (from the cut to FRR reporting the peer
//! down, polled every 20 ms; from the cut to the probe's `bfd` line
//! reaching the test) are printed; they are only checked against a
//! generous bound ([`DETECTION_BOUND`]), not the 300 ms the timers give.
//!
//! Documentation addresses only (198.51.100.0/24, 2001:db8::/32); nothing
//! is touched outside the namespaces the tests make (the nftables rules
//! live in those namespaces). Needs root, `ip`, `nft` and the Debian
//! package `frr`: without them each test prints `SKIPPED: …`, unless `CI`
//! is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_bfd -- --nocapture`.

use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, stop_with_cease, wait_until,
};
use ferrolb_e2e::netns::{COMMAND_TIMEOUT, Netns};
use ferrolb_e2e::routers::{BfdTimers, Frr, FrrConfig, FrrNeighbor};
use serde_json::Value;

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);
/// BFD interval both sides ask for, milliseconds.
const BFD_INTERVAL_MS: u32 = 100;
/// BFD detection multiplier both sides use.
const BFD_MULTIPLIER: u8 = 3;
/// How long a failure may take to be detected before the test fails:
/// generous next to the 300 ms detection time (a loaded CI machine, vtysh
/// round trips), but far below BGP's hold time, so only BFD can meet it.
const DETECTION_BOUND: Duration = Duration::from_secs(2);
/// How often FRR's BFD state is polled while a detection time is measured.
const POLL: Duration = Duration::from_millis(20);

/// What the tests need: FRR's daemons and vtysh, `ip` and `nft`.
const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    ("/usr/lib/frr/zebra", "frr"),
    ("/usr/lib/frr/bgpd", "frr"),
    ("/usr/lib/frr/bfdd", "frr"),
    ("vtysh", "frr"),
];

/// The addresses of one lab run: the transport (and BFD) family.
#[derive(Clone, Copy, Debug)]
struct Family {
    /// Test label (`IPv4`, `IPv6`).
    label: &'static str,
    /// FRR's address, the probe's `--peer`.
    router: &'static str,
    /// The probe's address, FRR's neighbour.
    node: &'static str,
}

const V4: Family = Family {
    label: "IPv4",
    router: ROUTER_V4,
    node: NODE_V4,
};
const V6: Family = Family {
    label: "IPv6",
    router: ROUTER_V6,
    node: NODE_V6,
};

/// The routes the probe announces (one per family, whatever the
/// transport).
const PREFIX_V4: &str = "198.51.100.90/32";
const PREFIX_V6: &str = "2001:db8::90/128";

/// A one-way path failure: an nftables table in the receiving namespace
/// that drops, as they arrive,
///
/// - the BFD single-hop Control packets (UDP from 49152–65535 to 3784,
///   RFC 5881 §4), IPv4 and IPv6: for the receiver the sender has gone
///   silent, and only BFD can tell;
/// - TCP segments to or from port 179 with SYN set: no new BGP connection
///   can complete across the cut (a connection started from either side
///   needs a SYN or a SYN-ACK to arrive here). Neither FRR 8.4 nor the
///   probe waits for BFD to be Up before reconnecting (RFC 5882 §3.3
///   leaves that optional), so without this BGP would re-establish over
///   the "failed" path within a second or two. The established
///   connection is left alone, so the Cease/BFD Down NOTIFICATIONs get
///   through.
///
/// Lifted by [`Cut::restore`], and on drop (the namespace itself goes at
/// the end of the test anyway).
struct Cut<'a> {
    ns: &'a Netns,
    active: bool,
}

const CUT_TABLE: &str = "flb_cut";

impl<'a> Cut<'a> {
    /// Installs the rules in `ns`; returns once they are in force.
    fn incoming(ns: &'a Netns) -> Cut<'a> {
        nft(
            ns,
            &format!(
                "add table inet {CUT_TABLE}; \
                 add chain inet {CUT_TABLE} in {{ type filter hook prerouting priority -300; policy accept; }}; \
                 add rule inet {CUT_TABLE} in udp sport 49152-65535 udp dport 3784 counter drop; \
                 add rule inet {CUT_TABLE} in tcp dport 179 tcp flags & syn == syn counter drop; \
                 add rule inet {CUT_TABLE} in tcp sport 179 tcp flags & syn == syn counter drop"
            ),
        );
        Cut { ns, active: true }
    }

    /// BFD packets dropped so far (the first rule's counter).
    fn bfd_dropped(&self) -> u64 {
        let out = nft(self.ns, &format!("-j list table inet {CUT_TABLE}"));
        let value: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        value["nftables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|item| item["rule"]["expr"].as_array())
            .find(|exprs| exprs.iter().any(|e| e.to_string().contains("3784")))
            .into_iter()
            .flatten()
            .filter_map(|expr| expr["counter"]["packets"].as_u64())
            .sum()
    }

    /// Lifts the cut: packets flow again.
    fn restore(mut self) {
        self.remove();
    }

    fn remove(&mut self) {
        if std::mem::take(&mut self.active) {
            nft(self.ns, &format!("delete table inet {CUT_TABLE}"));
        }
    }
}

impl Drop for Cut<'_> {
    fn drop(&mut self) {
        if self.active && !std::thread::panicking() {
            self.remove();
        }
    }
}

/// Runs `nft` inside `ns` with `command` split on whitespace (nft joins
/// its arguments back into one command line); panics with its stderr on
/// failure; returns stdout.
fn nft(ns: &Netns, command: &str) -> String {
    let args: Vec<&str> = command.split_whitespace().collect();
    let out = ns.exec("nft", &args, COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "nft {} in {}: {}",
        args.join(" "),
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start_probe(lab: &BgpLab, family: Family) -> BgpProbe {
    let interval = BFD_INTERVAL_MS.to_string();
    let multiplier = BFD_MULTIPLIER.to_string();
    BgpProbe::start_session(
        &lab.node,
        NODE_ASN,
        family.router,
        ROUTER_ASN,
        family.node,
        &[
            "--router-id",
            NODE_V4,
            "--prefix",
            PREFIX_V4,
            "--prefix",
            PREFIX_V6,
            "--next-hop",
            if family.node == NODE_V4 {
                NODE_V6
            } else {
                NODE_V4
            },
            "--bfd-interval",
            &interval,
            "--bfd-multiplier",
            &multiplier,
        ],
    )
}

/// Whether FRR holds both of our routes (`true`) or neither (`false`);
/// `None` while in between.
fn routes_in_frr(frr: &mut Frr) -> Option<bool> {
    let v4 = frr.rib("ipv4").contains_key(PREFIX_V4);
    let v6 = frr.rib("ipv6").contains_key(PREFIX_V6);
    (v4 == v6).then_some(v4)
}

/// Calls `f` every [`POLL`] until it returns `Some` or `timeout` has
/// passed since `since`; returns the value and when it came (from
/// `since`).
fn poll<T>(
    since: Instant,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> Option<(Duration, T)> {
    loop {
        if let Some(value) = f() {
            return Some((since.elapsed(), value));
        }
        if since.elapsed() >= timeout {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// The probe's lines from `mark` on.
fn lines_since(probe: &mut BgpProbe, mark: usize) -> Vec<Value> {
    probe.events().iter().skip(mark).cloned().collect()
}

/// Waits until BFD is up on both sides (with the intervals and
/// multipliers both asked for) and BGP is Established on both sides with
/// our routes in FRR's RIB; only the probe's lines from `mark` on count.
/// Returns FRR's BFD peer.
fn wait_all_up(frr: &mut Frr, probe: &mut BgpProbe, family: Family, mark: usize) -> Value {
    let label = family.label;
    probe.expect_since(mark, "bfd", WAIT, |l| l["to"] == "up");
    let mut peer = Value::Null;
    let ms = u64::from(BFD_INTERVAL_MS);
    let negotiated = wait_until(WAIT, || {
        peer = frr.bfd_peer(family.node);
        (peer["status"] == "up"
            && peer["remote-receive-interval"] == ms
            && peer["remote-transmit-interval"] == ms)
            .then_some(())
    });
    assert!(
        negotiated.is_some(),
        "{label}: FRR's BFD peer not up with our intervals: {peer}\n{}",
        frr.log()
    );
    probe.expect_since(mark, "established", WAIT, |_| true);
    let established = wait_until(WAIT, || {
        (frr.state(family.node).as_deref() == Some("Established")).then_some(())
    });
    assert!(
        established.is_some(),
        "{label}: FRR's session not Established: {}\n{}",
        frr.neighbor(family.node),
        frr.log()
    );
    let routes = wait_until(WAIT, || routes_in_frr(frr).filter(|r| *r));
    assert!(
        routes.is_some(),
        "{label}: our routes not in FRR's RIB: {:?} {:?}",
        frr.rib("ipv4"),
        frr.rib("ipv6")
    );
    peer
}

/// Whether FRR's last reset of the session was for BFD: bgpd's own
/// reaction to bfdd (`BFD down received`), or a Cease/BFD Down it sent or
/// received (which reason wins depends on which arrives first).
fn reset_by_bfd(neighbor: &Value) -> bool {
    neighbor["lastResetDueTo"] == "BFD down received"
        || neighbor["lastNotificationReason"] == "Cease/BFD Down"
}

/// Waits until FRR's session is not Established and neither of our
/// routes is in its RIB (polled every [`POLL`]); returns the time from
/// `since`.
fn wait_frr_session_gone(frr: &mut Frr, family: Family, since: Instant) -> Duration {
    let gone = poll(since, WAIT, || {
        let down = frr.state(family.node).as_deref() != Some("Established");
        (down && routes_in_frr(frr) == Some(false)).then_some(())
    });
    match gone {
        Some((elapsed, ())) => elapsed,
        None => panic!(
            "{}: FRR kept the session or our routes: {} {:?} {:?}\n{}",
            family.label,
            frr.neighbor(family.node),
            frr.rib("ipv4"),
            frr.rib("ipv6"),
            frr.log()
        ),
    }
}

/// How many lines of FRR's logs contain `needle` (bgpd logs every
/// NOTIFICATION it sends or receives: `%NOTIFICATION: received from
/// neighbor 198.51.100.2 6/10 (Cease/BFD Down) …`).
fn frr_log_count(frr: &Frr, needle: &str) -> usize {
    frr.log().lines().filter(|l| l.contains(needle)).count()
}

fn bfd_single_hop_with_frr(family: Family) {
    let label = family.label;
    let node = family.node;
    let lab = BgpLab::new();
    let mut neighbor = FrrNeighbor::new(node, NODE_ASN);
    neighbor.bfd = Some(BfdTimers {
        receive_ms: BFD_INTERVAL_MS,
        transmit_ms: BFD_INTERVAL_MS,
        detect_multiplier: BFD_MULTIPLIER,
    });
    let mut frr = Frr::start(
        &lab.router,
        &FrrConfig::new(ROUTER_ASN, ROUTER_V4, vec![neighbor]),
    );
    let mut probe = start_probe(&lab, family);
    let ms = u64::from(BFD_INTERVAL_MS);
    let multiplier = u64::from(BFD_MULTIPLIER);
    let bfd_down_received = format!("received from neighbor {node} 6/10 (Cease/BFD Down)");
    let bfd_down_sent = format!("sent to neighbor {node} 6/10 (Cease/BFD Down)");

    // 1. BFD Up on both sides with the timers both asked for; BGP
    //    Established; our routes in FRR's RIB.
    let started = probe.expect("bfd_started", WAIT, |_| true);
    assert_eq!(started["peer"], family.router, "{label}: {started}");
    assert_eq!(started["multihop"], false, "{label}: {started}");
    assert_eq!(started["interval_ms"], ms, "{label}: {started}");
    assert_eq!(started["multiplier"], multiplier, "{label}: {started}");
    let local: std::net::SocketAddr = started["local"]
        .as_str()
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{label}: bfd_started without a local address: {started}"));
    assert_eq!(local.ip().to_string(), node, "{label}: {started}");
    assert!(
        local.port() >= 49152,
        "{label}: source port outside 49152-65535 (RFC 5881 §4): {started}"
    );
    let discriminator = started["discriminator"].clone();
    let peer = wait_all_up(&mut frr, &mut probe, family, 0);
    let up = probe.expect("bfd", WAIT, |l| l["to"] == "up");
    assert_eq!(up["discriminator"], discriminator, "{label}: {up}");
    for (key, value) in [
        ("multihop", Value::from(false)),
        ("local", Value::from(family.router)),
        ("remote-id", discriminator.clone()),
        ("receive-interval", ms.into()),
        ("transmit-interval", ms.into()),
        ("detect-multiplier", multiplier.into()),
        ("remote-receive-interval", ms.into()),
        ("remote-transmit-interval", ms.into()),
        ("remote-detect-multiplier", multiplier.into()),
        ("diagnostic", "ok".into()),
        ("remote-diagnostic", "ok".into()),
    ] {
        assert_eq!(peer[key], value, "{label}: FRR's BFD peer, {key}: {peer}");
    }
    let bgp_bfd = frr.neighbor(node)["peerBfdInfo"].clone();
    assert_eq!(bgp_bfd["status"], "Up", "{label}: bgpd's view: {bgp_bfd}");
    assert_eq!(bgp_bfd["type"], "single hop", "{label}: {bgp_bfd}");

    // 2. Our packets stop reaching FRR: FRR's bfdd times out, bgpd resets
    //    the session and drops our routes. FRR's Down packets still reach
    //    us, so our BFD goes Down too (told by FRR) and resets BGP as
    //    well: one of the two Cease/BFD Down gets there first.
    let dropped_before = frr.neighbor(node)["connectionsDropped"]
        .as_u64()
        .unwrap_or(0);
    let mark = probe.mark();
    let cut = Cut::incoming(&lab.router);
    let cut_at = Instant::now();
    let frr_down = poll(cut_at, WAIT, || {
        let peer = frr.bfd_peer(node);
        (peer["status"] != "up").then_some(peer)
    });
    let (frr_detect, peer) = frr_down.unwrap_or_else(|| {
        panic!(
            "{label}: FRR's BFD peer still up {WAIT:?} after our packets stopped: {}\n{}",
            frr.bfd_peer(node),
            frr.log()
        )
    });
    assert_eq!(peer["status"], "down", "{label}: {peer}");
    assert_eq!(
        peer["diagnostic"], "control detection time expired",
        "{label}: {peer}"
    );
    assert!(
        frr_detect < DETECTION_BOUND,
        "{label}: FRR took {frr_detect:?} to notice our packets stopped"
    );
    let frr_gone = wait_frr_session_gone(&mut frr, family, cut_at);
    let neighbor = frr.neighbor(node);
    assert!(reset_by_bfd(&neighbor), "{label}: {neighbor}");
    assert_eq!(
        neighbor["peerBfdInfo"]["status"], "Down",
        "{label}: {neighbor}"
    );
    assert!(
        neighbor["connectionsDropped"].as_u64().unwrap_or(0) > dropped_before,
        "{label}: {neighbor}"
    );
    let down = probe.expect_since(mark, "bfd", WAIT, |l| l["to"] == "down");
    assert_eq!(down["from"], "up", "{label}: {down}");
    assert_eq!(
        down["diag"], "neighbor_signaled_session_down",
        "{label}: {down}"
    );
    assert_eq!(down["remote_state"], "down", "{label}: {down}");
    probe.expect_since(mark, "state", WAIT, |l| l["from"] == "established");
    let bfd_down_notification = lines_since(&mut probe, mark).iter().any(|l| {
        (l["event"] == "notification_sent" || l["event"] == "notification_received")
            && l["code"] == 6
            && l["subcode"] == 10
    });
    assert!(
        bfd_down_notification,
        "{label}: no Cease/BFD Down either way:\n{}",
        probe.transcript()
    );
    assert!(
        cut.bfd_dropped() > 0,
        "{label}: the cut dropped no BFD packet"
    );

    // Path back: BFD Up, BGP re-established, routes back.
    let mark = probe.mark();
    cut.restore();
    let restored_at = Instant::now();
    wait_all_up(&mut frr, &mut probe, family, mark);
    let frr_recovery = restored_at.elapsed();

    // 3. FRR's packets stop reaching us: the probe's BFD times out and it
    //    resets BGP with Cease/BFD Down, which FRR receives (FRR's own BFD
    //    only times out later: it ignores our Down packets, whose Your
    //    Discriminator is zero once our detection time has passed).
    let received_before = frr_log_count(&frr, &bfd_down_received);
    let mark = probe.mark();
    let cut = Cut::incoming(&lab.node);
    let cut_at = Instant::now();
    let down = probe.expect_since(mark, "bfd", WAIT, |l| l["to"] == "down");
    let probe_detect = cut_at.elapsed();
    assert_eq!(down["from"], "up", "{label}: {down}");
    assert_eq!(
        down["diag"], "control_detection_time_expired",
        "{label}: {down}"
    );
    assert!(
        probe_detect < DETECTION_BOUND,
        "{label}: the probe took {probe_detect:?} to notice FRR's packets stopped"
    );
    let cease = probe.expect_since(mark, "notification_sent", WAIT, |_| true);
    assert_eq!(cease["code"], 6, "{label}: {cease}");
    assert_eq!(cease["subcode"], 10, "{label}: {cease}");
    let probe_gone = wait_frr_session_gone(&mut frr, family, cut_at);
    let neighbor = frr.neighbor(node);
    assert!(reset_by_bfd(&neighbor), "{label}: {neighbor}");
    let received = wait_until(WAIT, || {
        (frr_log_count(&frr, &bfd_down_received) > received_before).then_some(())
    });
    assert!(
        received.is_some(),
        "{label}: FRR did not log our Cease/BFD Down:\n{}",
        frr.log()
    );
    assert!(
        cut.bfd_dropped() > 0,
        "{label}: the cut dropped no BFD packet"
    );

    let mark = probe.mark();
    cut.restore();
    let restored_at = Instant::now();
    wait_all_up(&mut frr, &mut probe, family, mark);
    let probe_recovery = restored_at.elapsed();

    // 4. SIGTERM: Cease/Administrative Shutdown while BFD is still Up,
    //    then BFD AdminDown. FRR 8.4's bgpd resets BGP with Cease/BFD Down
    //    when a peer's BFD goes AdminDown (RFC 5882 §3.2 says it should
    //    not), so in the other order FRR would never get our Cease.
    let sent_before = frr_log_count(&frr, &bfd_down_sent);
    let mark = probe.mark();
    stop_with_cease(&mut probe);
    let lines = lines_since(&mut probe, mark);
    let at = |pred: &dyn Fn(&Value) -> bool| lines.iter().position(pred);
    let cease_at = at(&|l| l["event"] == "notification_sent" && l["subcode"] == 2);
    let admin_down_at = at(&|l| l["event"] == "bfd" && l["to"] == "admin_down");
    assert!(
        cease_at.is_some() && admin_down_at.is_some() && cease_at < admin_down_at,
        "{label}: not Cease, then BFD AdminDown:\n{}",
        probe.transcript()
    );
    let admin_down = &lines[admin_down_at.unwrap_or_default()];
    assert_eq!(
        admin_down["diag"], "administratively_down",
        "{label}: {admin_down}"
    );
    assert!(
        lines.iter().any(|l| l["event"] == "bfd_stopped"),
        "{label}: no bfd_stopped:\n{}",
        probe.transcript()
    );
    let mut peer = Value::Null;
    let told = wait_until(WAIT, || {
        peer = frr.bfd_peer(node);
        (peer["status"] == "down").then_some(())
    });
    assert!(
        told.is_some(),
        "{label}: FRR's BFD peer not down after our AdminDown: {peer}"
    );
    assert_eq!(
        peer["remote-diagnostic"], "administratively down",
        "{label}: {peer}"
    );
    wait_frr_session_gone(&mut frr, family, Instant::now());
    let shutdown = format!(
        "received from neighbor {node} 6/2 (Cease/Administrative Shutdown) \"ferrolb-speaker bgp-probe stopping\""
    );
    assert_eq!(
        frr_log_count(&frr, &shutdown),
        1,
        "{label}: FRR did not log our Cease:\n{}",
        frr.log()
    );
    assert_eq!(
        frr_log_count(&frr, &bfd_down_sent),
        sent_before,
        "{label}: FRR reset the session for BFD after our Cease:\n{}",
        frr.log()
    );

    println!(
        "BFD with FRR 8.4 bfdd ({label} single-hop, {BFD_INTERVAL_MS} ms x {BFD_MULTIPLIER}, \
         detection time {} ms): our packets cut -> FRR's BFD down after {} ms (polled every \
         {} ms), FRR's session and our routes gone after {} ms; FRR's packets cut -> probe's \
         BFD down after {} ms, FRR's session and our routes gone after {} ms; BFD Up, BGP \
         Established and routes back {} ms and {} ms after each cut was lifted",
        u64::from(BFD_INTERVAL_MS) * u64::from(BFD_MULTIPLIER),
        frr_detect.as_millis(),
        POLL.as_millis(),
        frr_gone.as_millis(),
        probe_detect.as_millis(),
        probe_gone.as_millis(),
        frr_recovery.as_millis(),
        probe_recovery.as_millis(),
    );
}

#[test]
fn frr_bfd_single_hop_over_ipv4() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    bfd_single_hop_with_frr(V4);
}

#[test]
fn frr_bfd_single_hop_over_ipv6() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    bfd_single_hop_with_frr(V6);
}
