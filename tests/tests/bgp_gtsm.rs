//! GTSM (RFC 5082, TTL security) against FRR 8.4: `ferrolb-speaker
//! bgp-probe --ttl-security HOPS` sends with TTL 255 and sets `IP_MINTTL`
//! to 256 - HOPS on its sockets; FRR does the same with `neighbor X
//! ttl-security hops HOPS`.
//!
//! - A directly connected probe with `--ttl-security 1` peers with FRR's
//!   `ttl-security hops 1` and its prefix arrives; the same probe without
//!   GTSM (eBGP's TTL 1) never gets a session: FRR's kernel drops its
//!   segments (`TCPMinTTLDrop` in FRR's namespace).
//! - A probe one forwarding hop further away (a third namespace behind the
//!   node namespace, which forwards IPv4) arrives with TTL 254: with
//!   `ttl-security hops 2` on both sides the session comes up and the wire
//!   shows TTL 255 sent, 254 received; FRR's `hops 1` against the same
//!   probe never gets a session (FRR's kernel drops), and neither does the
//!   probe's `--ttl-security 1` against FRR's `hops 2` (our kernel drops
//!   FRR's SYN and SYN-ACK: no TCP connection at all).
//!
//! FRR sets `IP_MINTTL` on an accepted socket only after accept(2), so a
//! probe OPEN that arrives with the handshake can still be read by FRR,
//! which then answers with its KEEPALIVE: the probe may report
//! `established` although FRR never gets past OpenConfirm on a hidden
//! "accept" peer (everything the probe sends afterwards is dropped). The
//! refusals by FRR are therefore judged by FRR's own view: never
//! Established, no route. Also, a SYN of FRR's sent before the probe
//! listens is refused by the probe host's kernel with a TTL 64 RST, which
//! FRR's own `IP_MINTTL` drops: that connection attempt lingers, and when
//! it is still pending as the probe's connection comes up FRR may close
//! the new session (FIN, no NOTIFICATION) and re-establish it over its
//! own connection at once (`connectionsEstablished` 2).
//!
//! Documentation addresses only (198.51.100.0/24 between FRR and the
//! node, 203.0.113.0/24 between the node and the far probe), inside the
//! test's own namespaces, all deleted on drop. Needs root, `ip`, the
//! Debian packages `frr` and `tcpdump`: without them each test prints
//! `SKIPPED: …`, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_gtsm -- --nocapture`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ferrolb_e2e::bgp::{self, BgpLab, BgpProbe, NODE_V4, ROUTER_V4, sample_for, wait_until};
use ferrolb_e2e::capture::Tcpdump;
use ferrolb_e2e::netns::{COMMAND_TIMEOUT, Netns};
use ferrolb_e2e::routers::{Frr, FrrConfig, FrrNeighbor, stop_with_cease};
use ferrolb_e2e::speaker::speaker_binary;
use serde_json::Value;

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of every wait for a session or a route.
const WAIT: Duration = Duration::from_secs(20);
/// How long a session that must not come up is watched.
const NEVER: Duration = Duration::from_secs(10);

/// The node's address towards the far probe (the node forwards).
const HOP_V4: &str = "203.0.113.1";
/// The far probe's address.
const FAR_V4: &str = "203.0.113.2";

/// The node namespace of a [`BgpLab`] made a router (IPv4 forwarding on,
/// in that namespace only) with a third namespace behind it: FRR
/// (198.51.100.1) — node (198.51.100.2 | 203.0.113.1) — far
/// (203.0.113.2), static routes both ways. Every namespace is deleted on
/// drop (the far one first).
struct FarLab {
    far: Netns,
    lab: BgpLab,
}

impl FarLab {
    fn new() -> FarLab {
        let lab = BgpLab::new();
        let far = Netns::create(&format!("{}-far", lab.node.name()));
        lab.node.ip(&[
            "link",
            "add",
            "veth1",
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            far.name(),
        ]);
        lab.node
            .ip(&["addr", "add", &format!("{HOP_V4}/24"), "dev", "veth1"]);
        lab.node.ip(&["link", "set", "veth1", "up"]);
        far.ip(&["addr", "add", &format!("{FAR_V4}/24"), "dev", "veth0"]);
        far.ip(&["link", "set", "veth0", "up"]);
        lab.node.sysctl("net.ipv4.ip_forward", "1");
        lab.router.ip(&[
            "route",
            "add",
            "203.0.113.0/24",
            "via",
            NODE_V4,
            "dev",
            "veth0",
        ]);
        far.ip(&[
            "route",
            "add",
            "198.51.100.0/24",
            "via",
            HOP_V4,
            "dev",
            "veth0",
        ]);
        FarLab { far, lab }
    }
}

/// The namespace's `TcpExt: TCPMinTTLDrop` (segments its kernel dropped
/// because their TTL was below a socket's `IP_MINTTL`), or `None` when
/// the kernel does not count them.
fn min_ttl_drops(ns: &Netns) -> Option<u64> {
    let out = ns.exec("cat", &["/proc/net/netstat"], COMMAND_TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = lines.next()?;
    let values = lines.next()?;
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(name, _)| *name == "TCPMinTTLDrop")
        .and_then(|(_, value)| value.parse().ok())
}

/// Asserts that the counter grew (when the kernel has it); returns both
/// readings for the report.
fn assert_dropped(what: &str, before: Option<u64>, after: Option<u64>) -> String {
    if let (Some(before), Some(after)) = (before, after) {
        assert!(
            after > before,
            "{what}: TCPMinTTLDrop did not grow ({before} -> {after})"
        );
        format!("{what} TCPMinTTLDrop {before} -> {after}")
    } else {
        format!("{what} TCPMinTTLDrop not counted by this kernel")
    }
}

/// Probe arguments: AS [`NODE_ASN`] from `source` (also its router ID) to
/// FRR, then `extra`.
fn probe_args(source: &str, extra: &[&str]) -> Vec<String> {
    let mut args = bgp::session_args(NODE_ASN, ROUTER_V4, ROUTER_ASN, source);
    args.extend(["--router-id".to_owned(), source.to_owned()]);
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    args
}

fn start_probe(ns: &Netns, args: &[String]) -> BgpProbe {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    BgpProbe::start(ns, &args)
}

/// FRR with one IPv4 neighbour, `ttl-security hops HOPS`.
fn start_frr<'a>(ns: &'a Netns, neighbor: &str, hops: u8) -> Frr<'a> {
    let mut n = FrrNeighbor::new(neighbor, NODE_ASN);
    n.ipv6 = false;
    n.ttl_security = Some(hops);
    let frr = Frr::start(ns, &FrrConfig::new(ROUTER_ASN, ROUTER_V4, vec![n]));
    let conf = std::fs::read_to_string(frr.dir().join("bgpd.conf")).unwrap_or_default();
    assert!(
        conf.contains(&format!(" neighbor {neighbor} ttl-security hops {hops}\n")),
        "{conf}"
    );
    frr
}

/// Waits until FRR has the session Established and `prefix` from it;
/// returns FRR's view of the neighbour.
fn wait_established_with(frr: &mut Frr, neighbor: &str, prefix: &str) -> Value {
    let got = wait_until(WAIT, || {
        (frr.state(neighbor).as_deref() == Some("Established")
            && frr.rib("ipv4").contains_key(prefix))
        .then_some(())
    });
    assert!(
        got.is_some(),
        "FRR has no session or no {prefix}: {:?} {:?}\nFRR log:\n{}",
        frr.state(neighbor),
        frr.rib("ipv4"),
        frr.log()
    );
    frr.neighbor(neighbor)
}

/// Stops the probe (Cease/Administrative Shutdown) and waits until FRR
/// dropped the session and its routes.
fn stop_and_check_withdrawn(probe: &mut BgpProbe, frr: &mut Frr, neighbor: &str) {
    stop_with_cease(probe);
    let gone = wait_until(WAIT, || {
        (frr.rib("ipv4").is_empty() && frr.state(neighbor).as_deref() != Some("Established"))
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "session or routes still in FRR: {:?} {:?}",
        frr.state(neighbor),
        frr.rib("ipv4")
    );
}

/// Watches FRR's side of a session that must not come up for [`NEVER`]:
/// the neighbour never Established (nor OpenConfirm), no further
/// connection established nor UPDATE received than in `before` (FRR's
/// view of it before the probe started), no route. Then stops the probe
/// (it must exit 0). Returns FRR's distinct states in order.
fn assert_frr_never_established(
    probe: &mut BgpProbe,
    frr: &mut Frr,
    neighbor: &str,
    before: &Value,
) -> Vec<String> {
    let mut states = sample_for(NEVER, || frr.state(neighbor).unwrap_or_default());
    assert!(
        !states
            .iter()
            .any(|s| s == "Established" || s == "OpenConfirm"),
        "FRR got a session: {states:?}\nprobe:\n{}\nFRR log:\n{}",
        probe.transcript(),
        frr.log()
    );
    let after = frr.neighbor(neighbor);
    for counter in ["/connectionsEstablished", "/messageStats/updatesRecv"] {
        assert_eq!(
            after.pointer(counter),
            before.pointer(counter),
            "{counter}: {after}"
        );
    }
    assert!(frr.rib("ipv4").is_empty(), "{:?}", frr.rib("ipv4"));
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    states.dedup();
    states
}

/// The probe's states in order (`to` of its `state` lines) and whether it
/// printed `established`.
fn probe_states(probe: &mut BgpProbe) -> (Vec<String>, bool) {
    let events = probe.events();
    let mut states: Vec<String> = events
        .iter()
        .filter(|l| l["event"] == "state")
        .filter_map(|l| l["to"].as_str().map(str::to_owned))
        .collect();
    states.dedup();
    let established = events.iter().any(|l| l["event"] == "established");
    (states, established)
}

/// One IPv4 TCP packet of a capture: source address, TTL, TCP payload
/// length.
#[derive(Debug)]
struct Seen {
    src: String,
    ttl: u8,
    payload: usize,
}

/// Reads `pcap` with `tcpdump -n -v -r`.
fn read_pcap(ns: &Netns, pcap: &Path) -> Vec<Seen> {
    let path = pcap.to_str().expect("utf-8 path");
    let out = ns.exec("tcpdump", &["-n", "-v", "-r", path], COMMAND_TIMEOUT);
    assert!(
        out.status.success(),
        "tcpdump -r: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut seen = Vec::new();
    let mut ttl = None;
    for line in text.lines() {
        // `HH:MM:SS.us IP (tos 0x0, ttl 254, id …, length 60)` …
        if let Some(rest) = line
            .split(" ttl ")
            .nth(1)
            .filter(|_| !line.starts_with(' '))
        {
            ttl = rest
                .split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|t| t.parse::<u8>().ok());
            continue;
        }
        // … then `    SRC.PORT > DST.PORT: Flags […], …, length N`.
        let Some(t) = ttl.take() else { continue };
        let Some((endpoint, _)) = line.trim().split_once(" > ") else {
            continue;
        };
        let src = endpoint
            .rsplit_once('.')
            .map_or(endpoint, |(ip, _port)| ip)
            .to_owned();
        let payload = line
            .rsplit_once(" length ")
            .and_then(|(_, n)| n.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .unwrap_or(0);
        seen.push(Seen {
            src,
            ttl: t,
            payload,
        });
    }
    seen
}

/// TTL → (packets, packets with a payload) of the packets from `src`.
fn ttl_histogram(seen: &[Seen], src: &str) -> BTreeMap<u8, (usize, usize)> {
    let mut h = BTreeMap::new();
    for p in seen.iter().filter(|p| p.src == src) {
        let e: &mut (usize, usize) = h.entry(p.ttl).or_default();
        e.0 += 1;
        if p.payload > 0 {
            e.1 += 1;
        }
    }
    h
}

/// The TTLs of the packets from `src` that carry BGP data (sent by the
/// BGP sockets themselves, unlike a kernel's RST for a closed port).
fn data_ttls(seen: &[Seen], src: &str) -> Vec<u8> {
    let mut ttls: Vec<u8> = seen
        .iter()
        .filter(|p| p.src == src && p.payload > 0)
        .map(|p| p.ttl)
        .collect();
    ttls.sort_unstable();
    ttls.dedup();
    ttls
}

#[test]
fn frr_ttl_security_hops_1_with_a_direct_peer_and_ttl_1_refused() {
    if !ferrolb_e2e::require(Frr::TOOLS) {
        return;
    }
    // Built (if needed) before anything is timed.
    speaker_binary();
    let lab = BgpLab::new();
    let mut frr = start_frr(&lab.router, NODE_V4, 1);

    // GTSM on both sides: TTL 255 each way over the one link.
    let prefix = "198.51.100.90/32";
    let args = probe_args(NODE_V4, &["--ttl-security", "1", "--prefix", prefix]);
    let mut probe = start_probe(&lab.node, &args);
    let up = probe.expect("established", WAIT, |_| true);
    assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
    let neighbor = wait_established_with(&mut frr, NODE_V4, prefix);
    assert_eq!(neighbor["externalBgpNbrMaxHopsAway"], 1, "{neighbor}");
    assert_eq!(neighbor["hostForeign"], NODE_V4, "{neighbor}");
    println!(
        "direct peer, FRR ttl-security hops 1, probe --ttl-security 1: established; FRR has \
         {prefix} (FRR: maxHopsAway {}, connections {}:{} -> {}:{})",
        neighbor["externalBgpNbrMaxHopsAway"],
        neighbor["hostForeign"],
        neighbor["portForeign"],
        neighbor["hostLocal"],
        neighbor["portLocal"]
    );
    stop_and_check_withdrawn(&mut probe, &mut frr, NODE_V4);

    // Without GTSM the probe sends eBGP's TTL 1: FRR's kernel drops it.
    let before = min_ttl_drops(&lab.router);
    let args = probe_args(NODE_V4, &["--prefix", prefix]);
    let baseline = frr.neighbor(NODE_V4);
    let mut probe = start_probe(&lab.node, &args);
    let states = assert_frr_never_established(&mut probe, &mut frr, NODE_V4, &baseline);
    let drops = assert_dropped("FRR's namespace", before, min_ttl_drops(&lab.router));
    let (probe_states, probe_up) = probe_states(&mut probe);
    println!(
        "direct peer, FRR ttl-security hops 1, probe without GTSM (TTL 1): FRR never \
         Established in {NEVER:?} (states {states:?}, no route); {drops}; probe states \
         {probe_states:?}, probe printed established: {probe_up}"
    );
}

#[test]
fn frr_ttl_security_with_a_peer_one_hop_away_needs_hops_2_on_both_sides() {
    if !ferrolb_e2e::require(Frr::TOOLS) || !ferrolb_e2e::require(&[("tcpdump", "tcpdump")]) {
        return;
    }
    speaker_binary();
    let lab = FarLab::new();
    let (router, far) = (&lab.lab.router, &lab.far);
    let dir = tempfile::tempdir().expect("temp dir");
    let prefix = "198.51.100.91/32";
    let gtsm_2 = probe_args(FAR_V4, &["--ttl-security", "2", "--prefix", prefix]);

    // hops 2 on both sides: up, and on FRR's link the probe's packets
    // arrive with 255 - 1 while FRR's leave with 255.
    {
        let mut frr = start_frr(router, FAR_V4, 2);
        let pcap = dir.path().join("gtsm.pcap");
        let mut capture = Tcpdump::start(
            router,
            "veth0",
            &["-s", "128"],
            &["tcp", "port", "179"],
            &pcap,
            &dir.path().join("tcpdump.log"),
        );
        let mut probe = start_probe(far, &gtsm_2);
        let up = probe.expect("established", WAIT, |_| true);
        assert_eq!(up["peer_asn"], ROUTER_ASN, "{up}");
        let neighbor = wait_established_with(&mut frr, FAR_V4, prefix);
        assert_eq!(neighbor["externalBgpNbrMaxHopsAway"], 2, "{neighbor}");
        assert_eq!(neighbor["hostForeign"], FAR_V4, "{neighbor}");
        // OPEN, KEEPALIVE and UPDATE have gone both ways.
        capture.stop();
        let seen = read_pcap(router, &pcap);
        assert_eq!(
            data_ttls(&seen, FAR_V4),
            [254],
            "{:?}",
            ttl_histogram(&seen, FAR_V4)
        );
        assert_eq!(
            data_ttls(&seen, ROUTER_V4),
            [255],
            "{:?}",
            ttl_histogram(&seen, ROUTER_V4)
        );
        println!(
            "one hop away, FRR ttl-security hops 2, probe --ttl-security 2: established; FRR \
             has {prefix} (FRR: maxHopsAway {}, connections established {}, dropped {}, now \
             {}:{} -> {}:{})",
            neighbor["externalBgpNbrMaxHopsAway"],
            neighbor["connectionsEstablished"],
            neighbor["connectionsDropped"],
            neighbor["hostForeign"],
            neighbor["portForeign"],
            neighbor["hostLocal"],
            neighbor["portLocal"]
        );
        println!(
            "  on FRR's link, TTL -> (packets, with data): from {FAR_V4} {:?} (a TTL of 63 is \
             its kernel's RST to a SYN of FRR's before the probe listened), from FRR {:?}",
            ttl_histogram(&seen, FAR_V4),
            ttl_histogram(&seen, ROUTER_V4)
        );
        stop_and_check_withdrawn(&mut probe, &mut frr, FAR_V4);
    }

    // FRR's hops 1 against the same probe (which accepts FRR's 254):
    // FRR's side refuses.
    {
        let mut frr = start_frr(router, FAR_V4, 1);
        let before = min_ttl_drops(router);
        let baseline = frr.neighbor(FAR_V4);
        let mut probe = start_probe(far, &gtsm_2);
        let states = assert_frr_never_established(&mut probe, &mut frr, FAR_V4, &baseline);
        let drops = assert_dropped("FRR's namespace", before, min_ttl_drops(router));
        let (probe_states, probe_up) = probe_states(&mut probe);
        println!(
            "one hop away, FRR ttl-security hops 1, probe --ttl-security 2: FRR never \
             Established in {NEVER:?} (states {states:?}, no route); {drops}; probe states \
             {probe_states:?}, probe printed established: {probe_up}"
        );
    }

    // The probe's own --ttl-security 1 against FRR's hops 2: FRR's TTL 255
    // arrives as 254, which our sockets refuse, the listener's included:
    // no TCP connection in either direction.
    {
        let mut frr = start_frr(router, FAR_V4, 2);
        let before = min_ttl_drops(far);
        let args = probe_args(FAR_V4, &["--ttl-security", "1", "--prefix", prefix]);
        let baseline = frr.neighbor(FAR_V4);
        let mut probe = start_probe(far, &args);
        let states = assert_frr_never_established(&mut probe, &mut frr, FAR_V4, &baseline);
        let drops = assert_dropped("the probe's namespace", before, min_ttl_drops(far));
        let (probe_states, probe_up) = probe_states(&mut probe);
        assert!(
            !probe_up && !probe.saw("connected"),
            "a connection got through our GTSM:\n{}",
            probe.transcript()
        );
        let failures = probe
            .events()
            .iter()
            .filter(|l| l["event"] == "connect_failed")
            .count();
        println!(
            "one hop away, FRR ttl-security hops 2, probe --ttl-security 1: no TCP connection in \
             {NEVER:?} ({failures} connect attempts failed, probe states {probe_states:?}); FRR \
             never Established (states {states:?}); {drops}"
        );
    }
}
