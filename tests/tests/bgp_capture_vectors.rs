//! Regenerates the captured BGP test vectors of the bgp crate
//! (`bgp/tests/captures/<router>-<scenario>.hex`, checked by
//! `bgp/tests/captures.rs`): real routers announce routes to
//! `ferrolb-speaker bgp-probe`, tcpdump records the session in the router
//! namespace, and tshark gives back the router's TCP payload, from which
//! every BGP message the router sent is written as one line of hex.
//!
//! Routers: GoBGP (`gobgpd`), FRR (`bgpd` with zebra), BIRD 2 and ExaBGP
//! (the venv of `tests/setup/install-exabgp.sh`). Scenarios, the same for
//! every router:
//!
//! - `ebgp-v4`: eBGP over IPv4 transport, router AS 4200000001, probe AS
//!   4200000002 (four-octet AS numbers, so AS_TRANS in the OPEN); the
//!   router announces two IPv4 /32 and one IPv6 /128 (IPv6 over the IPv4
//!   session) with AS_PATH prepends, MED, communities, large communities
//!   and a route-target extended community ([`EBGP_ROUTES`]).
//! - `ibgp-v6`: iBGP over IPv6 transport in AS 64512; one IPv6 /128 and
//!   one IPv4 /32 (IPv4 over the IPv6 session) with LOCAL_PREF as well
//!   ([`IBGP_ROUTES`]).
//!
//! At the end the router ends the session itself, so its NOTIFICATION is
//! in the capture too: FRR `neighbor … shutdown message …`, BIRD `birdc
//! disable … "…"`, GoBGP `gobgp neighbor … shutdown --reason …` (Cease /
//! Administrative Shutdown with a communication), ExaBGP `neighbor …
//! teardown 2` through an API process (it closes a session with graceful
//! restart without any NOTIFICATION, and sends none on SIGTERM).
//!
//! FRR and GoBGP put the host name in their FQDN capability, so the OPENs
//! carry the name of the machine that captured them (`CAPTURE_HOST` in
//! `bgp/tests/captures.rs`); link-local next hops carry the veth's random
//! MAC address.
//!
//! These are one-off captures, not tests: every function is `#[ignore]`d
//! and writes into the source tree. Documentation addresses only, inside
//! the namespaces a [`BgpLab`] makes. Needs root, `ip`, `tcpdump`,
//! `tshark` and the routers. Run:
//! `sudo -E cargo test -p ferrolb-e2e --test bgp_capture_vectors -- --ignored --test-threads=1 --nocapture`
//! (or one router: `… -- --ignored capture_frr`), then
//! `cargo test -p ferrolb-bgp --test captures`, whose assertions describe
//! what these routers sent and must be revised if a new router version
//! sends something else.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, Daemon, NODE_V4, NODE_V6, ROUTER_V4, ROUTER_V6, wait_until,
};
use ferrolb_e2e::capture::Tcpdump;
use ferrolb_e2e::netns::{COMMAND_TIMEOUT, Netns, find_tool, run_with_timeout};
use ferrolb_e2e::routers::{Frr, FrrConfig, FrrNeighbor, exabgp_binary, require_exabgp};

/// Bound of every wait for a session, a route or a message.
const WAIT: Duration = Duration::from_secs(30);
/// The shutdown communication routers that have one send at the end.
const SHUTDOWN_MESSAGE: &str = "ferrolb capture done";

/// One session to capture.
struct Scenario {
    /// File name part: `ebgp-v4`, `ibgp-v6`.
    name: &'static str,
    router_asn: u32,
    node_asn: u32,
    /// IPv6 transport (else IPv4).
    v6_transport: bool,
    /// What the router announces.
    routes: &'static [Route],
}

impl Scenario {
    fn internal(&self) -> bool {
        self.router_asn == self.node_asn
    }
    fn router_addr(&self) -> &'static str {
        if self.v6_transport {
            ROUTER_V6
        } else {
            ROUTER_V4
        }
    }
    fn node_addr(&self) -> &'static str {
        if self.v6_transport { NODE_V6 } else { NODE_V4 }
    }
    fn count(&self, v6: bool) -> usize {
        self.routes.iter().filter(|r| r.is_v6() == v6).count()
    }
}

/// One route the router announces, with the router's own address as next
/// hop (198.51.100.1 or 2001:db8::1).
struct Route {
    prefix: &'static str,
    /// Prepended by the router's policy (the router adds its own AS in
    /// front over eBGP).
    prepend: &'static [u32],
    med: u32,
    /// iBGP only.
    local_pref: Option<u32>,
    communities: &'static [(u16, u16)],
    large_communities: &'static [(u32, u32, u32)],
    /// Route target (two-octet AS specific extended community).
    route_target: Option<(u16, u32)>,
}

impl Route {
    fn is_v6(&self) -> bool {
        self.prefix.contains(':')
    }
    fn next_hop(&self) -> &'static str {
        if self.is_v6() { ROUTER_V6 } else { ROUTER_V4 }
    }
    fn describe(&self) -> String {
        let mut text = format!("{} med {}", self.prefix, self.med);
        if !self.prepend.is_empty() {
            let _ = write!(text, " prepend {:?}", self.prepend);
        }
        if let Some(lp) = self.local_pref {
            let _ = write!(text, " local-pref {lp}");
        }
        for (a, v) in self.communities {
            let _ = write!(text, " community {a}:{v}");
        }
        for (g, l1, l2) in self.large_communities {
            let _ = write!(text, " large {g}:{l1}:{l2}");
        }
        if let Some((a, v)) = self.route_target {
            let _ = write!(text, " rt {a}:{v}");
        }
        text
    }
}

const EBGP_ROUTES: &[Route] = &[
    Route {
        prefix: "203.0.113.10/32",
        prepend: &[64500, 64501],
        med: 50,
        local_pref: None,
        communities: &[(65000, 100), (65000, 200)],
        large_communities: &[(4_200_000_001, 1, 2)],
        route_target: Some((65000, 300)),
    },
    Route {
        prefix: "203.0.113.11/32",
        prepend: &[],
        med: 51,
        local_pref: None,
        communities: &[(65000, 101)],
        large_communities: &[],
        route_target: None,
    },
    Route {
        prefix: "2001:db8::10/128",
        prepend: &[64500],
        med: 60,
        local_pref: None,
        communities: &[(65000, 100)],
        large_communities: &[(4_200_000_001, 1, 2)],
        route_target: Some((65000, 300)),
    },
];

const IBGP_ROUTES: &[Route] = &[
    Route {
        prefix: "2001:db8::20/128",
        prepend: &[],
        med: 20,
        local_pref: Some(200),
        communities: &[(65000, 120)],
        large_communities: &[(64512, 1, 2)],
        route_target: Some((64512, 20)),
    },
    Route {
        prefix: "203.0.113.20/32",
        prepend: &[],
        med: 21,
        local_pref: Some(300),
        communities: &[(65000, 121)],
        large_communities: &[],
        route_target: None,
    },
];

const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "ebgp-v4",
        router_asn: 4_200_000_001,
        node_asn: 4_200_000_002,
        v6_transport: false,
        routes: EBGP_ROUTES,
    },
    Scenario {
        name: "ibgp-v6",
        router_asn: 64512,
        node_asn: 64512,
        v6_transport: true,
        routes: IBGP_ROUTES,
    },
];

/// A router running in the lab's router namespace.
trait Router {
    /// Ends the session from the router's side.
    fn shut_down(&mut self, lab: &BgpLab, scenario: &Scenario);
    /// Its logs, for failure messages.
    fn log(&self) -> String;
    /// Extra lines for the file header (router-specific configuration).
    fn notes(&self, scenario: &Scenario) -> Vec<String>;
}

// ------------------------------------------------------------- capture

fn output_text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

fn tshark(pcap: &Path, args: &[&str]) -> String {
    let tshark = find_tool("tshark").expect("tshark");
    let mut command = Command::new(tshark);
    command.arg("-n").arg("-r").arg(pcap).args(args);
    let out = run_with_timeout(&mut command, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unhex(text: &str) -> Vec<u8> {
    let text: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    assert!(text.len().is_multiple_of(2), "odd hex string {text:?}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The router's side of every TCP connection in the capture, as BGP
/// messages: connection (tshark's `tcp.stream`) → messages in order.
/// Segments are put in sequence order; retransmitted octets are taken
/// once; a hole in the stream or a message cut short is a failure.
fn router_messages(pcap: &Path, router_addr: &str) -> BTreeMap<u32, Vec<Vec<u8>>> {
    let src = if router_addr.contains(':') {
        "ipv6.src"
    } else {
        "ip.src"
    };
    let fields = tshark(
        pcap,
        &[
            "-o",
            "tcp.relative_sequence_numbers:TRUE",
            "-Y",
            &format!("tcp.len > 0 && {src} == {router_addr}"),
            "-T",
            "fields",
            "-E",
            "separator=;",
            "-e",
            "tcp.stream",
            "-e",
            "tcp.seq",
            "-e",
            "tcp.payload",
        ],
    );
    let mut segments: BTreeMap<u32, Vec<(u64, Vec<u8>)>> = BTreeMap::new();
    for line in fields.lines().filter(|l| !l.trim().is_empty()) {
        let parts: Vec<&str> = line.split(';').collect();
        let [stream, seq, payload] = parts[..] else {
            panic!("unexpected tshark line {line:?}");
        };
        let stream: u32 = stream.parse().expect("tcp.stream");
        let seq: u64 = seq.parse().expect("tcp.seq");
        segments
            .entry(stream)
            .or_default()
            .push((seq, unhex(payload)));
    }
    let mut out = BTreeMap::new();
    for (stream, mut segs) in segments {
        segs.sort_by_key(|(seq, _)| *seq);
        let mut next = segs[0].0;
        let mut bytes = Vec::new();
        for (seq, payload) in segs {
            let end = seq + payload.len() as u64;
            assert!(
                seq <= next,
                "stream {stream}: octets {next}..{seq} missing from the capture"
            );
            if end > next {
                bytes.extend_from_slice(&payload[(next - seq) as usize..]);
                next = end;
            }
        }
        let mut messages = Vec::new();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            assert!(
                rest.len() >= 19 && rest[..16] == [0xff; 16],
                "stream {stream}: no BGP header at {:?}",
                hex(&rest[..rest.len().min(19)])
            );
            let len = usize::from(u16::from_be_bytes([rest[16], rest[17]]));
            assert!(
                (19..=rest.len()).contains(&len),
                "stream {stream}: message of {len} octets, {} left",
                rest.len()
            );
            messages.push(rest[..len].to_vec());
            rest = &rest[len..];
        }
        out.insert(stream, messages);
    }
    out
}

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bgp/tests/captures")
}

fn today() -> String {
    let out = run_with_timeout(
        Command::new("date").args(["-u", "+%Y-%m-%d"]),
        COMMAND_TIMEOUT,
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// First line of `program ARGS` (stdout, else stderr).
fn version_of(program: &Path, args: &[&str]) -> String {
    let out = run_with_timeout(Command::new(program).args(args), COMMAND_TIMEOUT);
    let text = output_text(&out);
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("Running as"))
        .unwrap_or("unknown version")
        .to_owned()
}

fn message_type_name(message: &[u8]) -> &'static str {
    match message[18] {
        1 => "OPEN",
        2 => "UPDATE",
        3 => "NOTIFICATION",
        4 => "KEEPALIVE",
        5 => "ROUTE-REFRESH",
        _ => "?",
    }
}

/// Runs one scenario with the router `start` makes and writes
/// `bgp/tests/captures/<router>-<scenario>.hex`.
fn capture(
    router: &str,
    version: &str,
    scenario: &Scenario,
    start: for<'a> fn(&'a BgpLab, &Scenario) -> Box<dyn Router + 'a>,
) {
    println!("=== {router} {}", scenario.name);
    let lab = BgpLab::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("bgp.pcap");
    let mut tcpdump = Tcpdump::start(
        &lab.router,
        "veth0",
        &["-s", "0"],
        &["tcp", "port", "179"],
        &pcap,
        &dir.path().join("tcpdump.log"),
    );
    let mut daemon = start(&lab, scenario);
    let mut probe = BgpProbe::start_session(
        &lab.node,
        scenario.node_asn,
        scenario.router_addr(),
        scenario.router_asn,
        scenario.node_addr(),
        &[
            "--router-id",
            NODE_V4,
            "--hold-time",
            "30",
            "--graceful-restart",
        ],
    );
    probe.expect("established", WAIT, |_| true);
    for (family, v6) in [("ipv4-unicast", false), ("ipv6-unicast", true)] {
        let want = scenario.count(v6);
        if want > 0 {
            let have = wait_until(WAIT, || {
                probe
                    .events()
                    .iter()
                    .any(|l| {
                        l["event"] == "routes_received"
                            && l["family"] == family
                            && l["current"] == want
                    })
                    .then_some(())
            });
            assert!(
                have.is_some(),
                "{router}: the probe never held {want} {family} routes:\n{}\n{}",
                probe.transcript(),
                daemon.log()
            );
        }
    }
    // End-of-RIB for both families, if the router sends them.
    let eor = wait_until(Duration::from_secs(10), || {
        let events = probe.events();
        ["ipv4-unicast", "ipv6-unicast"]
            .iter()
            .all(|f| {
                events
                    .iter()
                    .any(|l| l["event"] == "end_of_rib" && l["family"] == *f)
            })
            .then_some(())
    });
    if eor.is_none() {
        println!("{router}: not both End-of-RIBs within 10 s");
    }
    // A keepalive or two after the updates.
    std::thread::sleep(Duration::from_secs(2));
    let mark = probe.mark();
    daemon.shut_down(&lab, scenario);
    let ended = wait_until(WAIT, || {
        let events = probe.events();
        let after = events.get(mark..).unwrap_or_default();
        if let Some(n) = after.iter().find(|l| l["event"] == "notification_received") {
            return Some(format!("NOTIFICATION {}/{}", n["code"], n["subcode"]));
        }
        after
            .iter()
            .any(|l| l["event"] == "disconnected")
            .then(|| "disconnected without a NOTIFICATION".to_owned())
    });
    println!(
        "{router}: session end: {}",
        ended.as_deref().unwrap_or("nothing seen by the probe")
    );
    std::thread::sleep(Duration::from_millis(500));
    let _ = probe.stop();
    std::thread::sleep(Duration::from_millis(500));
    tcpdump.stop();
    let notes = daemon.notes(scenario);
    let log = daemon.log();
    drop(daemon);

    let streams = router_messages(&pcap, scenario.router_addr());
    for (stream, messages) in &streams {
        let types: Vec<&str> = messages.iter().map(|m| message_type_name(m)).collect();
        println!("connection {stream}: {types:?}");
    }
    // The connection that carried the session: the first with an UPDATE
    // from the router (a collision's loser has none; a reconnection after
    // the shutdown comes later).
    let (_, messages) = streams
        .into_iter()
        .find(|(_, m)| m.iter().any(|m| m[18] == 2))
        .unwrap_or_else(|| panic!("{router}: no UPDATE captured from the router\n{log}"));
    assert_eq!(messages[0][18], 1, "{router}: first message is not an OPEN");

    let mut text = format!(
        "# captured {} from {version}, tcpdump in the router namespace of a BgpLab \
         (veth, {} transport), router-to-probe TCP payload reassembled with tshark \
         (tests/tests/bgp_capture_vectors.rs)\n",
        today(),
        if scenario.v6_transport {
            "IPv6"
        } else {
            "IPv4"
        },
    );
    let _ = writeln!(
        text,
        "# {} session: router {} AS {} -> probe {} AS {} (probe: hold 30, graceful restart)",
        if scenario.internal() { "iBGP" } else { "eBGP" },
        scenario.router_addr(),
        scenario.router_asn,
        scenario.node_addr(),
        scenario.node_asn,
    );
    for route in scenario.routes {
        let _ = writeln!(text, "# route {}", route.describe());
    }
    for note in notes {
        let _ = writeln!(text, "# {note}");
    }
    let _ = writeln!(text, "# one BGP message per line, header included");
    for m in &messages {
        let _ = writeln!(text, "{}", hex(m));
    }
    let dir = captures_dir();
    std::fs::create_dir_all(&dir).expect("creating bgp/tests/captures");
    let path = dir.join(format!("{router}-{}.hex", scenario.name));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("wrote {} ({} messages)", path.display(), messages.len());
}

// --------------------------------------------------------------- GoBGP

/// gobgpd with its own configuration (GoBgp of the harness has no
/// graceful restart, and GoBGP sends End-of-RIB only with it).
struct GoBgpRouter<'a> {
    // Dropped before the directory.
    _daemon: Daemon,
    ns: &'a Netns,
    dir: tempfile::TempDir,
}

impl GoBgpRouter<'_> {
    fn gobgp(&self, args: &[&str]) -> std::process::Output {
        self.ns.exec("gobgp", args, COMMAND_TIMEOUT)
    }
}

fn gobgpd_conf(scenario: &Scenario) -> String {
    let mut c = format!(
        "[global.config]\n  as = {}\n  router-id = \"{ROUTER_V4}\"\n  \
         local-address-list = [\"{ROUTER_V4}\", \"{ROUTER_V6}\"]\n\
         [[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    \
         peer-as = {}\n  [neighbors.timers.config]\n    hold-time = 9\n    \
         keepalive-interval = 3\n  [neighbors.graceful-restart.config]\n    \
         enabled = true\n    restart-time = 120\n",
        scenario.router_asn,
        scenario.node_addr(),
        scenario.node_asn
    );
    for family in ["ipv4-unicast", "ipv6-unicast"] {
        let _ = write!(
            c,
            "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
             afi-safi-name = \"{family}\"\n    \
             [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true\n"
        );
    }
    c
}

fn start_gobgp<'a>(lab: &'a BgpLab, scenario: &Scenario) -> Box<dyn Router + 'a> {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("gobgpd.toml");
    std::fs::write(&conf, gobgpd_conf(scenario)).expect("gobgpd.toml");
    let daemon = Daemon::spawn(
        &lab.router,
        "gobgpd",
        &[
            "-f",
            conf.to_str().expect("UTF-8 path"),
            "-t",
            "toml",
            "-p",
            "--api-hosts",
            "127.0.0.1:50051",
            "--pprof-disable",
        ],
        &dir.path().join("gobgpd.log"),
    );
    let gobgp = GoBgpRouter {
        _daemon: daemon,
        ns: &lab.router,
        dir,
    };
    let up = wait_until(Duration::from_secs(10), || {
        gobgp.gobgp(&["neighbor"]).status.success().then_some(())
    });
    assert!(up.is_some(), "gobgpd API not up:\n{}", gobgp.log());
    for r in scenario.routes {
        let family = if r.is_v6() { "ipv6" } else { "ipv4" };
        let mut args: Vec<String> = ["global", "rib", "add", "-a", family, r.prefix, "origin"]
            .map(str::to_owned)
            .into();
        args.push("igp".into());
        if !r.prepend.is_empty() {
            args.push("aspath".into());
            args.push(
                r.prepend
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        args.extend(["nexthop".into(), r.next_hop().into()]);
        args.extend(["med".into(), r.med.to_string()]);
        if let Some(lp) = r.local_pref {
            args.extend(["local-pref".into(), lp.to_string()]);
        }
        if !r.communities.is_empty() {
            args.push("community".into());
            args.push(
                r.communities
                    .iter()
                    .map(|(a, v)| format!("{a}:{v}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if !r.large_communities.is_empty() {
            args.push("large-community".into());
            args.push(
                r.large_communities
                    .iter()
                    .map(|(g, a, b)| format!("{g}:{a}:{b}"))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
        if let Some((a, v)) = r.route_target {
            args.extend(["rt".into(), format!("{a}:{v}")]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = gobgp.gobgp(&args);
        assert!(
            out.status.success(),
            "gobgp {args:?}: {}\n{}",
            output_text(&out),
            gobgp.log()
        );
    }
    Box::new(gobgp)
}

impl Router for GoBgpRouter<'_> {
    fn shut_down(&mut self, _lab: &BgpLab, scenario: &Scenario) {
        // `shutdown` (deprecated for `disable`, which sends no
        // communication) sends Cease / Administrative Shutdown with it.
        let out = self.gobgp(&[
            "neighbor",
            scenario.node_addr(),
            "shutdown",
            "--reason",
            SHUTDOWN_MESSAGE,
        ]);
        assert!(
            out.status.success(),
            "gobgp shutdown: {}",
            output_text(&out)
        );
    }
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gobgpd.log")).unwrap_or_default()
    }
    fn notes(&self, scenario: &Scenario) -> Vec<String> {
        vec![
            "routes: gobgp global rib add … origin igp aspath … nexthop … med … community … \
             large-community … rt …"
                .to_owned(),
            "gobgpd.toml: hold-time 9, keepalive-interval 3, graceful-restart enabled \
             (restart-time 120) with mp-graceful-restart for both families"
                .to_owned(),
            format!(
                "end: gobgp neighbor {} shutdown --reason {SHUTDOWN_MESSAGE:?}",
                scenario.node_addr()
            ),
        ]
    }
}

#[test]
#[ignore = "one-off capture of test vectors: writes bgp/tests/captures/gobgp-*.hex"]
fn capture_gobgp() {
    if !ferrolb_e2e::require(&[
        ("ip", "iproute2"),
        ("gobgpd", "gobgpd"),
        ("gobgp", "gobgpd"),
        ("tcpdump", "tcpdump"),
        ("tshark", "tshark"),
    ]) {
        return;
    }
    let version = version_of(&find_tool("gobgpd").expect("gobgpd"), &["--version"]);
    for scenario in &SCENARIOS {
        capture("gobgp", &version, scenario, start_gobgp);
    }
}

// ----------------------------------------------------------------- FRR

struct FrrRouter<'a> {
    frr: Frr<'a>,
}

fn frr_route_map(name: &str, r: &Route) -> Vec<String> {
    let mut lines = vec![format!("route-map {name} permit 10")];
    if !r.prepend.is_empty() {
        let asns: Vec<String> = r.prepend.iter().map(u32::to_string).collect();
        lines.push(format!("set as-path prepend {}", asns.join(" ")));
    }
    lines.push(format!("set metric {}", r.med));
    if let Some(lp) = r.local_pref {
        lines.push(format!("set local-preference {lp}"));
    }
    if !r.communities.is_empty() {
        let c: Vec<String> = r
            .communities
            .iter()
            .map(|(a, v)| format!("{a}:{v}"))
            .collect();
        lines.push(format!("set community {}", c.join(" ")));
    }
    if !r.large_communities.is_empty() {
        let c: Vec<String> = r
            .large_communities
            .iter()
            .map(|(g, a, b)| format!("{g}:{a}:{b}"))
            .collect();
        lines.push(format!("set large-community {}", c.join(" ")));
    }
    if let Some((a, v)) = r.route_target {
        lines.push(format!("set extcommunity rt {a}:{v}"));
    }
    lines.push("exit".to_owned());
    lines
}

fn start_frr<'a>(lab: &'a BgpLab, scenario: &Scenario) -> Box<dyn Router + 'a> {
    let mut neighbor = FrrNeighbor::new(scenario.node_addr(), scenario.node_asn);
    neighbor.graceful_restart = true;
    neighbor.timers = Some((3, 9));
    let frr = Frr::start(
        &lab.router,
        &FrrConfig {
            asn: scenario.router_asn,
            router_id: ROUTER_V4.to_owned(),
            restart_time: Some(120),
            stalepath_time: None,
            neighbors: vec![neighbor],
        },
    );
    let mut lines: Vec<String> = Vec::new();
    for (i, r) in scenario.routes.iter().enumerate() {
        lines.extend(frr_route_map(&format!("CAPTURE{i}"), r));
    }
    lines.push(format!("router bgp {}", scenario.router_asn));
    if scenario.v6_transport {
        // RFC 8950: IPv4 routes with an IPv6 next hop over the IPv6 session.
        lines.push(format!(
            "neighbor {} capability extended-nexthop",
            scenario.node_addr()
        ));
    }
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        lines.push(format!("address-family {family} unicast"));
        for (i, r) in scenario.routes.iter().enumerate() {
            if r.is_v6() == v6 {
                lines.push(format!("network {} route-map CAPTURE{i}", r.prefix));
            }
        }
        lines.push("exit-address-family".to_owned());
    }
    lines.push("exit".to_owned());
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    frr.configure(&lines);
    Box::new(FrrRouter { frr })
}

impl Router for FrrRouter<'_> {
    fn shut_down(&mut self, _lab: &BgpLab, scenario: &Scenario) {
        self.frr.configure(&[
            &format!("router bgp {}", scenario.router_asn),
            &format!(
                "neighbor {} shutdown message {SHUTDOWN_MESSAGE}",
                scenario.node_addr()
            ),
        ]);
    }
    fn log(&self) -> String {
        self.frr.log()
    }
    fn notes(&self, scenario: &Scenario) -> Vec<String> {
        let mut notes = vec![
            "routes: network statements with a route-map each (set as-path prepend, metric, \
             local-preference, community, large-community, extcommunity rt); neighbor \
             graceful-restart, restart-time 120, timers 3 9"
                .to_owned(),
        ];
        if scenario.v6_transport {
            notes.push("neighbor capability extended-nexthop (RFC 8950)".to_owned());
        }
        notes.push(format!(
            "end: neighbor {} shutdown message {SHUTDOWN_MESSAGE}",
            scenario.node_addr()
        ));
        notes
    }
}

#[test]
#[ignore = "one-off capture of test vectors: writes bgp/tests/captures/frr-*.hex"]
fn capture_frr() {
    let mut tools = Frr::TOOLS.to_vec();
    tools.extend([("tcpdump", "tcpdump"), ("tshark", "tshark")]);
    if !ferrolb_e2e::require(&tools) {
        return;
    }
    let version = version_of(Path::new("/usr/lib/frr/bgpd"), &["--version"]);
    let version = format!("FRR {}", version.trim_start_matches("bgpd version "));
    for scenario in &SCENARIOS {
        capture("frr", &version, scenario, start_frr);
    }
}

// ---------------------------------------------------------------- BIRD

struct BirdRouter {
    // Dropped before the directory.
    _daemon: Daemon,
    dir: tempfile::TempDir,
}

/// The export filter of one channel: static routes only, with the
/// attributes of `routes` set by prefix.
fn bird_filter(name: &str, routes: &[&Route]) -> String {
    let mut c = format!("filter {name} {{\n  if source != RTS_STATIC then reject;\n");
    for r in routes {
        let _ = writeln!(c, "  if net = {} then {{", r.prefix);
        // Prepending the last first leaves them in the configured order.
        for asn in r.prepend.iter().rev() {
            let _ = writeln!(c, "    bgp_path.prepend({asn});");
        }
        let _ = writeln!(c, "    bgp_med = {};", r.med);
        if let Some(lp) = r.local_pref {
            let _ = writeln!(c, "    bgp_local_pref = {lp};");
        }
        for (a, v) in r.communities {
            let _ = writeln!(c, "    bgp_community.add(({a}, {v}));");
        }
        for (g, a, b) in r.large_communities {
            let _ = writeln!(c, "    bgp_large_community.add(({g}, {a}, {b}));");
        }
        if let Some((a, v)) = r.route_target {
            let _ = writeln!(c, "    bgp_ext_community.add((rt, {a}, {v}));");
        }
        c += "  }\n";
    }
    c += "  accept;\n}\n";
    c
}

fn bird_conf(scenario: &Scenario, log: &Path) -> String {
    let mut c = format!(
        "router id {ROUTER_V4};\nlog \"{}\" all;\nprotocol device {{ }}\n",
        log.display()
    );
    for (family, v6) in [("ipv4", false), ("ipv6", true)] {
        let routes: Vec<&Route> = scenario.routes.iter().filter(|r| r.is_v6() == v6).collect();
        let _ = writeln!(c, "protocol static static_{family} {{\n  {family};");
        for r in &routes {
            let _ = writeln!(c, "  route {} blackhole;", r.prefix);
        }
        c += "}\n";
        c += &bird_filter(&format!("capture_{family}"), &routes);
    }
    c += "protocol bgp node {\n";
    let _ = writeln!(
        c,
        "  local {} as {};",
        scenario.router_addr(),
        scenario.router_asn
    );
    let _ = writeln!(
        c,
        "  neighbor {} as {};",
        scenario.node_addr(),
        scenario.node_asn
    );
    c += "  direct;\n  hold time 9;\n  graceful restart on;\n";
    c += "  connect retry time 2;\n  connect delay time 2;\n  error wait time 2, 2;\n";
    // The next hop of the family that is not the transport's.
    let _ = writeln!(
        c,
        "  ipv4 {{ import all; export filter capture_ipv4;{} }};",
        if scenario.v6_transport {
            format!(" next hop address {ROUTER_V4};")
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        c,
        "  ipv6 {{ import all; export filter capture_ipv6;{} }};",
        if scenario.v6_transport {
            String::new()
        } else {
            format!(" next hop address {ROUTER_V6};")
        }
    );
    c += "}\n";
    c
}

impl BirdRouter {
    fn birdc(&self, args: &[&str]) -> std::process::Output {
        let birdc = find_tool("birdc").expect("birdc");
        run_with_timeout(
            Command::new(birdc)
                .arg("-s")
                .arg(self.dir.path().join("bird.ctl"))
                .args(args),
            COMMAND_TIMEOUT,
        )
    }
}

fn start_bird<'a>(lab: &'a BgpLab, scenario: &Scenario) -> Box<dyn Router + 'a> {
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("bird.conf");
    std::fs::write(&conf, bird_conf(scenario, &dir.path().join("bird.log"))).expect("bird.conf");
    let p = |name: &str| dir.path().join(name).to_str().expect("UTF-8").to_owned();
    let daemon = Daemon::spawn(
        &lab.router,
        "bird",
        &[
            "-f",
            "-c",
            &p("bird.conf"),
            "-s",
            &p("bird.ctl"),
            "-P",
            &p("bird.pid"),
        ],
        &dir.path().join("bird.out"),
    );
    let bird = BirdRouter {
        _daemon: daemon,
        dir,
    };
    let up = wait_until(Duration::from_secs(15), || {
        let out = bird.birdc(&["show", "status"]);
        String::from_utf8_lossy(&out.stdout)
            .contains("Daemon is up")
            .then_some(())
    });
    assert!(up.is_some(), "BIRD not answering:\n{}", bird.log());
    Box::new(bird)
}

impl Router for BirdRouter {
    fn shut_down(&mut self, _lab: &BgpLab, _scenario: &Scenario) {
        let out = self.birdc(&["disable", "node", &format!("\"{SHUTDOWN_MESSAGE}\"")]);
        assert!(
            out.status.success() && output_text(&out).contains("disabled"),
            "birdc disable: {}",
            output_text(&out)
        );
    }
    fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- bird.out\n{}--- bird.log\n{}",
            read("bird.out"),
            read("bird.log")
        )
    }
    fn notes(&self, scenario: &Scenario) -> Vec<String> {
        vec![
            "routes: static blackhole routes, export filters setting bgp_path.prepend, bgp_med, \
             bgp_local_pref, bgp_community.add, bgp_large_community.add, \
             bgp_ext_community.add((rt, …)); hold time 9, graceful restart on"
                .to_owned(),
            format!(
                "next hop address {} for the family that is not the transport's",
                if scenario.v6_transport {
                    ROUTER_V4
                } else {
                    ROUTER_V6
                }
            ),
            format!("end: birdc disable node \"{SHUTDOWN_MESSAGE}\""),
        ]
    }
}

#[test]
#[ignore = "one-off capture of test vectors: writes bgp/tests/captures/bird-*.hex"]
fn capture_bird() {
    if !ferrolb_e2e::require(&[
        ("ip", "iproute2"),
        ("bird", "bird2"),
        ("birdc", "bird2"),
        ("tcpdump", "tcpdump"),
        ("tshark", "tshark"),
    ]) {
        return;
    }
    let version = version_of(&find_tool("bird").expect("bird"), &["--version"]);
    for scenario in &SCENARIOS {
        capture("bird", &version, scenario, start_bird);
    }
}

// -------------------------------------------------------------- ExaBGP

struct ExaBgpRouter {
    /// `ip netns exec NS env … exabgp CONF`: `ip netns exec` and `env`
    /// exec down to ExaBGP's Python process, so this is ExaBGP.
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl ExaBgpRouter {
    /// SIGTERM, a bounded wait, then SIGKILL; true when it exited on
    /// SIGTERM.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) of our own child process, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let exited = wait_until(Duration::from_secs(10), || {
            child.try_wait().ok().flatten().map(|_| ())
        });
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        exited.is_some()
    }
}

impl Drop for ExaBgpRouter {
    fn drop(&mut self) {
        self.stop();
    }
}

/// ExaBGP closes a session with graceful restart without a NOTIFICATION
/// (the peer keeps its routes), and one without with a Cease: graceful
/// restart in the eBGP scenario only, so that both are captured.
fn exabgp_graceful_restart(scenario: &Scenario) -> bool {
    !scenario.internal()
}

/// ExaBGP's API process: once the file named by its argument appears,
/// writes its contents (API commands) to ExaBGP, then waits for ExaBGP to
/// close its stdin (a process that exits would be restarted).
const EXABGP_TRIGGER: &str = "\
import os, sys, time
for _ in range(1200):
    if os.path.exists(sys.argv[1]):
        with open(sys.argv[1]) as commands:
            sys.stdout.write(commands.read())
        sys.stdout.flush()
        break
    time.sleep(0.5)
for _ in sys.stdin:
    pass
";

fn exabgp_conf(scenario: &Scenario, python: &Path, dir: &Path) -> String {
    let mut c = format!(
        "process trigger {{\n    run {} {} {};\n    encoder text;\n}}\n",
        python.display(),
        dir.join("trigger.py").display(),
        dir.join("commands").display()
    );
    let _ = write!(
        c,
        "neighbor {} {{\n    router-id {ROUTER_V4};\n    local-address {};\n    \
         local-as {};\n    peer-as {};\n    hold-time 9;\n    \
         family {{ ipv4 unicast; ipv6 unicast; }}\n    \
         capability {{ route-refresh;{} }}\n    \
         api {{ processes [ trigger ]; }}\n    static {{\n",
        scenario.node_addr(),
        scenario.router_addr(),
        scenario.router_asn,
        scenario.node_asn,
        if exabgp_graceful_restart(scenario) {
            " graceful-restart 120;"
        } else {
            ""
        },
    );
    for r in scenario.routes {
        let _ = write!(
            c,
            "        route {} next-hop {} origin igp",
            r.prefix,
            r.next_hop()
        );
        // ExaBGP sends the AS_PATH it is given: over eBGP it must start
        // with our AS.
        let mut path: Vec<u32> = Vec::new();
        if !scenario.internal() {
            path.push(scenario.router_asn);
        }
        path.extend_from_slice(r.prepend);
        let path: Vec<String> = path.iter().map(u32::to_string).collect();
        let _ = write!(c, " as-path [ {} ] med {}", path.join(" "), r.med);
        if let Some(lp) = r.local_pref {
            let _ = write!(c, " local-preference {lp}");
        }
        if !r.communities.is_empty() {
            let list: Vec<String> = r
                .communities
                .iter()
                .map(|(a, v)| format!("{a}:{v}"))
                .collect();
            let _ = write!(c, " community [ {} ]", list.join(" "));
        }
        if !r.large_communities.is_empty() {
            let list: Vec<String> = r
                .large_communities
                .iter()
                .map(|(g, a, b)| format!("{g}:{a}:{b}"))
                .collect();
            let _ = write!(c, " large-community [ {} ]", list.join(" "));
        }
        if let Some((a, v)) = r.route_target {
            let _ = write!(c, " extended-community [ target:{a}:{v} ]");
        }
        c += ";\n";
    }
    c += "    }\n}\n";
    c
}

fn start_exabgp<'a>(lab: &'a BgpLab, scenario: &Scenario) -> Box<dyn Router + 'a> {
    let dir = tempfile::tempdir().expect("temp dir");
    let binary = exabgp_binary();
    let python = binary
        .parent()
        .map(|bin| bin.join("python3"))
        .filter(|p| p.is_file())
        .or_else(|| find_tool("python3"))
        .expect("python3 for ExaBGP's API process");
    std::fs::write(dir.path().join("trigger.py"), EXABGP_TRIGGER).expect("trigger.py");
    let conf = dir.path().join("exabgp.conf");
    std::fs::write(&conf, exabgp_conf(scenario, &python, dir.path())).expect("exabgp.conf");
    let log = dir.path().join("exabgp.log");
    let env = [
        "exabgp.daemon.user=root".to_owned(),
        "exabgp.daemon.drop=false".to_owned(),
        "exabgp.daemon.daemonize=false".to_owned(),
        "exabgp.api.cli=false".to_owned(),
        format!("exabgp.tcp.bind={}", scenario.router_addr()),
        format!("exabgp.log.destination={}", log.display()),
    ];
    let mut args: Vec<&str> = env.iter().map(String::as_str).collect();
    args.push(binary.to_str().expect("UTF-8 path"));
    args.push(conf.to_str().expect("UTF-8 path"));
    let out = File::create(dir.path().join("exabgp.out")).expect("exabgp.out");
    let child = lab
        .router
        .command(find_tool("env").expect("env"))
        .args(&args)
        .stdin(Stdio::null())
        .stdout(out.try_clone().expect("log fd"))
        .stderr(out)
        .spawn()
        .expect("spawning exabgp");
    let exabgp = ExaBgpRouter {
        child: Some(child),
        dir,
    };
    let up = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("loaded new configuration successfully")
            .then_some(())
    });
    assert!(up.is_some(), "ExaBGP did not start:\n{}", exabgp.log());
    Box::new(exabgp)
}

impl Router for ExaBgpRouter {
    /// `neighbor ADDRESS teardown 2` through the API process: Cease /
    /// Administrative Shutdown without a communication, or, when graceful
    /// restart was negotiated, a close without any NOTIFICATION (ExaBGP
    /// on SIGTERM closes without one either way).
    fn shut_down(&mut self, _lab: &BgpLab, scenario: &Scenario) {
        let staging = self.dir.path().join("commands.new");
        std::fs::write(
            &staging,
            format!("neighbor {} teardown 2\n", scenario.node_addr()),
        )
        .expect("writing ExaBGP commands");
        std::fs::rename(&staging, self.dir.path().join("commands")).expect("renaming commands");
    }
    fn log(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- exabgp.out\n{}--- exabgp.log\n{}",
            read("exabgp.out"),
            read("exabgp.log")
        )
    }
    fn notes(&self, scenario: &Scenario) -> Vec<String> {
        let gr = exabgp_graceful_restart(scenario);
        vec![
            "routes: static { route … next-hop … origin igp as-path [ … ] med … \
             local-preference … community [ … ] large-community [ … ] extended-community \
             [ target:… ] } (the AS_PATH as given: ExaBGP does not prepend its AS)"
                .to_owned(),
            format!(
                "hold-time 9, capability {{ route-refresh;{} }}",
                if gr { " graceful-restart 120;" } else { "" }
            ),
            format!(
                "end: API command `neighbor {} teardown 2`{}",
                scenario.node_addr(),
                if gr {
                    " (graceful restart negotiated: ExaBGP closes without a NOTIFICATION)"
                } else {
                    ""
                }
            ),
        ]
    }
}

#[test]
#[ignore = "one-off capture of test vectors: writes bgp/tests/captures/exabgp-*.hex"]
fn capture_exabgp() {
    if !require_exabgp() || !ferrolb_e2e::require(&[("tcpdump", "tcpdump"), ("tshark", "tshark")]) {
        return;
    }
    let out = run_with_timeout(
        Command::new(exabgp_binary()).arg("version"),
        COMMAND_TIMEOUT,
    );
    let version = output_text(&out)
        .lines()
        .find_map(|l| l.strip_prefix("ExaBGP : "))
        .map(|v| format!("ExaBGP {}", v.trim()))
        .unwrap_or_else(|| "ExaBGP (unknown version)".to_owned());
    for scenario in &SCENARIOS {
        capture("exabgp", &version, scenario, start_exabgp);
    }
}
