//! End-to-end tests of the layer-2 announcer: `ferrolb-speaker l2-probe`
//! runs inside "node" network namespaces of a lab, and a "client"
//! namespace on the same bridge resolves, connects and watches its
//! neighbour cache.
//!
//! Lab (everything inside namespaces made by the test; documentation
//! addresses only):
//!
//! ```text
//!   [client] eth0 198.51.100.1/24  2001:db8::1/64      (VLAN 100: 203.0.113.1, 2001:db8:100::1)
//!   [node-a] eth0 198.51.100.11/24 2001:db8::11/64     (VLAN 100: .11, ::11)
//!   [node-b] eth0 198.51.100.12/24 2001:db8::12/64     (VLAN 100: .12, ::12)
//!        \________ br0 in its own namespace ________/
//!   Service IPs 198.51.100.100 and 2001:db8::100 (VLAN: 203.0.113.100,
//!   2001:db8:100::100) are on no interface of the segment; each node has
//!   them on its `lo` (so TCP reaches a listener there) with
//!   arp_ignore=1/arp_announce=2, so only the announcer answers for them.
//! ```
//!
//! Needs root and `ip`, `arping`, `ndisc6`, `ping`, `sysctl` (and
//! `setpriv` for the permission test): without them each test prints
//! `SKIPPED: …` and returns, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test l2 -- --nocapture`.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use ferrolb_e2e::netns::{Greeter, Host, Lab, Netns, tcp_fetch};
use ferrolb_e2e::speaker::{Probe, speaker_binary};

const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("arping", "arping"),
    ("ndisc6", "ndisc6"),
    ("ping", "iputils-ping"),
    ("sysctl", "procps"),
];

const CLIENT_MAC: &str = "02:f1:0b:00:00:01";
const NODE_A_MAC: &str = "02:f1:0b:00:00:11";
const NODE_B_MAC: &str = "02:f1:0b:00:00:12";
const TCP_PORT: u16 = 8080;
/// Bound of every wait for a probe event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// The issue's requirement for a failover.
const FAILOVER_LIMIT: Duration = Duration::from_secs(1);
/// How long the failover measurement watches before giving up.
const FAILOVER_WATCH: Duration = Duration::from_secs(3);

/// One layer-2 segment of the lab.
struct Segment {
    dev: &'static str,
    vlan: Option<u16>,
    client: (&'static str, &'static str),
    node_a: (&'static str, &'static str),
    node_b: (&'static str, &'static str),
    service: (&'static str, &'static str),
    unowned: (&'static str, &'static str),
}

const UNTAGGED: Segment = Segment {
    dev: "eth0",
    vlan: None,
    client: ("198.51.100.1", "2001:db8::1"),
    node_a: ("198.51.100.11", "2001:db8::11"),
    node_b: ("198.51.100.12", "2001:db8::12"),
    service: ("198.51.100.100", "2001:db8::100"),
    unowned: ("198.51.100.200", "2001:db8::200"),
};

const VLAN100: Segment = Segment {
    dev: "eth0.100",
    vlan: Some(100),
    client: ("203.0.113.1", "2001:db8:100::1"),
    node_a: ("203.0.113.11", "2001:db8:100::11"),
    node_b: ("203.0.113.12", "2001:db8:100::12"),
    service: ("203.0.113.100", "2001:db8:100::100"),
    unowned: ("203.0.113.200", "2001:db8:100::200"),
};

struct Node {
    host: Host,
    // Kept for their Drop: listeners stop with the node.
    _greeters: Vec<Greeter>,
}

struct TestLab {
    // Field order is drop order: nodes and client before the bridge.
    client: Host,
    a: Node,
    b: Node,
    _lab: Lab,
}

fn add_vlan(host: &Host, vid: u16) -> Result<(), String> {
    let dev = format!("eth0.{vid}");
    let output = host.ns.try_ip(&[
        "link",
        "add",
        "link",
        "eth0",
        "name",
        &dev,
        "type",
        "vlan",
        "id",
        &vid.to_string(),
    ]);
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).trim().to_owned());
    }
    host.ns.ip(&["link", "set", &dev, "up"]);
    Ok(())
}

fn add_addresses(ns: &Netns, dev: &str, (v4, v6): (&str, &str), prefix: (u8, u8)) {
    ns.ip(&["addr", "add", &format!("{v4}/{}", prefix.0), "dev", dev]);
    ns.ip(&[
        "addr",
        "add",
        &format!("{v6}/{}", prefix.1),
        "dev",
        dev,
        "nodad",
    ]);
}

/// A node: addresses on the segment (unless `address` is false), the
/// service IPs on `lo`, ARP sysctls so its kernel never answers for them,
/// and a greeting TCP listener on both service IPs.
fn setup_node(host: Host, segment: &Segment, own: (&str, &str), address: bool) -> Node {
    let ns = &host.ns;
    ns.sysctl("net.ipv4.conf.all.arp_ignore", "1");
    ns.sysctl("net.ipv4.conf.all.arp_announce", "2");
    // Keep IPv6 addresses across a link down/up (the live-change test).
    ns.sysctl("net.ipv6.conf.all.keep_addr_on_down", "1");
    if address {
        add_addresses(ns, segment.dev, own, (24, 64));
    }
    add_addresses(ns, "lo", segment.service, (32, 128));
    let greeters = [segment.service.0, segment.service.1]
        .iter()
        .map(|ip| {
            let addr = SocketAddr::new(ip.parse().expect("service ip"), TCP_PORT);
            Greeter::start(ns, addr, &host.role)
        })
        .collect();
    Node {
        host,
        _greeters: greeters,
    }
}

/// Builds the lab for `segment`; `None` (after printing why) when the
/// kernel cannot make VLAN sub-interfaces.
fn build_lab(segment: &Segment, node_a_addressed: bool) -> Option<TestLab> {
    let lab = Lab::new();
    let client = lab.host("client", CLIENT_MAC);
    let a = lab.host("node-a", NODE_A_MAC);
    let b = lab.host("node-b", NODE_B_MAC);
    if let Some(vid) = segment.vlan {
        for host in [&client, &a, &b] {
            if let Err(err) = add_vlan(host, vid) {
                let reason = format!("kernel cannot create 802.1Q VLAN interfaces ({err})");
                if std::env::var_os("FERROLB_E2E_REQUIRE_VLAN").is_some() {
                    panic!("FERROLB_E2E_REQUIRE_VLAN is set, but {reason}");
                }
                println!("SKIPPED: {reason}");
                return None;
            }
        }
    }
    add_addresses(&client.ns, segment.dev, segment.client, (24, 64));
    let a = setup_node(a, segment, segment.node_a, node_a_addressed);
    let b = setup_node(b, segment, segment.node_b, true);
    Some(TestLab {
        client,
        a,
        b,
        _lab: lab,
    })
}

/// The MACs that answered `arping` for `ip` from `ns` on `dev`, in order
/// (empty: no answer). `replies` answers end the lookup early.
fn arping(ns: &Netns, dev: &str, ip: &str, requests: u32, replies: u32) -> Vec<String> {
    let output = ns.exec(
        "arping",
        &[
            "-c",
            &requests.to_string(),
            "-C",
            &replies.to_string(),
            "-w",
            &(requests + 1).to_string(),
            "-i",
            dev,
            ip,
        ],
        Duration::from_secs(u64::from(requests) + 10),
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|line| line.contains(" bytes from "))
        .filter_map(|line| line.split_whitespace().nth(3).map(str::to_lowercase))
        .collect()
}

/// The MAC `ndisc6` resolves `ip` to from `ns` on `dev`, if any answers.
fn ndisc6(ns: &Netns, dev: &str, ip: &str, tries: u32) -> Option<String> {
    let output = ns.exec(
        "ndisc6",
        &["-q", "-1", "-r", &tries.to_string(), "-w", "700", ip, dev],
        Duration::from_secs(u64::from(tries) + 10),
    );
    let text = String::from_utf8_lossy(&output.stdout)
        .trim()
        .to_lowercase();
    (output.status.success() && !text.is_empty()).then_some(text)
}

fn ping(ns: &Netns, ip: &str) {
    let family = if ip.contains(':') { "-6" } else { "-4" };
    let output = ns.exec(
        "ping",
        &[family, "-c", "1", "-W", "2", ip],
        Duration::from_secs(10),
    );
    assert!(
        output.status.success(),
        "ping {ip} from {} failed: {}",
        ns.name(),
        String::from_utf8_lossy(&output.stdout)
    );
}

fn tcp_greeting(client: &Netns, ip: &str) -> Result<String, String> {
    let addr = SocketAddr::new(ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
    tcp_fetch(client, addr, Duration::from_secs(3))
}

/// Waits for the probe to have announced `ip` once on `dev` with `mac`.
fn expect_announced(probe: &mut Probe, ip: &str, dev: &str, mac: &str) {
    let chosen = probe.expect_event("interfaces_chosen", Some(ip), EVENT_TIMEOUT);
    let interfaces = chosen["interfaces"].as_array().cloned().unwrap_or_default();
    assert!(
        interfaces
            .iter()
            .any(|i| i["name"] == dev && i["mac"] == mac),
        "{ip} not announced on {dev} with {mac}: {chosen}"
    );
    let kind = if ip.contains(':') {
        "unsolicited_na"
    } else {
        "gratuitous_arp"
    };
    let sent = probe.expect_event(kind, Some(ip), EVENT_TIMEOUT);
    assert_eq!(sent["interface"], dev, "{sent}");
    assert_eq!(sent["mac"], mac, "{sent}");
}

fn stop_cleanly(probe: &mut Probe) {
    let (status, stderr) = probe.stop();
    assert!(
        status.success(),
        "l2-probe exited with {status} on SIGTERM; stderr: {stderr}"
    );
    probe.expect_event("stopped", None, Duration::from_secs(1));
}

/// Lookups: both families resolve to the owning node's MAC, the client is
/// reported as the asker, an IP nobody owns gets no answer, and after
/// the probe stops nothing answers.
fn check_lookups(segment: &Segment) {
    let Some(lab) = build_lab(segment, true) else {
        return;
    };
    let (service_v4, service_v6) = segment.service;
    let dev = segment.dev;
    let client = &lab.client.ns;
    let mut probe = Probe::start(&lab.a.host.ns, &[service_v4, service_v6], &[]);
    expect_announced(&mut probe, service_v4, dev, NODE_A_MAC);
    expect_announced(&mut probe, service_v6, dev, NODE_A_MAC);

    let macs = arping(client, dev, service_v4, 3, 1);
    assert!(
        !macs.is_empty() && macs.iter().all(|m| m == NODE_A_MAC),
        "arping {service_v4} answered by {macs:?}, expected only {NODE_A_MAC}"
    );
    assert_eq!(
        ndisc6(client, dev, service_v6, 3).as_deref(),
        Some(NODE_A_MAC),
        "ndisc6 {service_v6}"
    );
    let answered = probe.expect_event("answered", Some(service_v4), EVENT_TIMEOUT);
    assert_eq!(answered["asker_ip"], segment.client.0, "{answered}");
    assert_eq!(answered["asker_mac"], CLIENT_MAC, "{answered}");
    assert_eq!(answered["protocol"], "arp", "{answered}");
    let answered = probe.expect_event("answered", Some(service_v6), EVENT_TIMEOUT);
    assert_eq!(answered["asker_mac"], CLIENT_MAC, "{answered}");
    assert_eq!(answered["protocol"], "ndp", "{answered}");

    let (unowned_v4, unowned_v6) = segment.unowned;
    assert_eq!(arping(client, dev, unowned_v4, 2, 1), Vec::<String>::new());
    assert_eq!(ndisc6(client, dev, unowned_v6, 2), None);
    assert!(
        !probe
            .lines()
            .iter()
            .any(|l| l["event"] == "answered" && (l["ip"] == unowned_v4 || l["ip"] == unowned_v6)),
        "the probe answered for an IP it does not own:\n{}",
        probe.transcript()
    );

    stop_cleanly(&mut probe);
    assert_eq!(arping(client, dev, service_v4, 2, 1), Vec::<String>::new());
    assert_eq!(ndisc6(client, dev, service_v6, 2), None);
}

/// Failover: node A owns the IPs and the client talks to it; A stops, B
/// starts, and the client's neighbour entries move to B's MAC from B's
/// gratuitous ARP / unsolicited NA alone, within a second.
fn check_failover(segment: &Segment, label: &str) {
    let Some(lab) = build_lab(segment, true) else {
        return;
    };
    let (service_v4, service_v6) = segment.service;
    let dev = segment.dev;
    let client = &lab.client.ns;

    let mut probe_a = Probe::start(&lab.a.host.ns, &[service_v4, service_v6], &[]);
    expect_announced(&mut probe_a, service_v4, dev, NODE_A_MAC);
    expect_announced(&mut probe_a, service_v6, dev, NODE_A_MAC);
    for ip in [service_v4, service_v6] {
        ping(client, ip);
        assert_eq!(
            client.neighbour(ip, dev).as_deref(),
            Some(NODE_A_MAC),
            "{ip}"
        );
        assert_eq!(
            tcp_greeting(client, ip).as_deref(),
            Ok("node-a"),
            "TCP {ip}"
        );
    }

    stop_cleanly(&mut probe_a);
    // A no longer answers (and nobody else does).
    assert_eq!(arping(client, dev, service_v4, 2, 1), Vec::<String>::new());
    assert_eq!(ndisc6(client, dev, service_v6, 2), None);
    // The client still has A's MAC cached.
    for ip in [service_v4, service_v6] {
        assert_eq!(
            client.neighbour(ip, dev).as_deref(),
            Some(NODE_A_MAC),
            "{ip}"
        );
    }

    // Ownership moves to B (with an explicit interface list).
    let moved = Instant::now();
    let mut probe_b = Probe::start(&lab.b.host.ns, &[service_v4, service_v6], &[dev]);
    let mut changed: [Option<Duration>; 2] = [None, None];
    while moved.elapsed() < FAILOVER_WATCH && changed.iter().any(Option::is_none) {
        for (slot, ip) in changed.iter_mut().zip([service_v4, service_v6]) {
            if slot.is_none() && client.neighbour(ip, dev).as_deref() == Some(NODE_B_MAC) {
                *slot = Some(moved.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    expect_announced(&mut probe_b, service_v4, dev, NODE_B_MAC);
    expect_announced(&mut probe_b, service_v6, dev, NODE_B_MAC);
    let chosen = probe_b.expect_event("interfaces_chosen", Some(service_v4), EVENT_TIMEOUT);
    assert_eq!(chosen["rule"], "listed", "{chosen}");

    // The entries changed without the client asking: B answered nothing.
    assert!(
        !probe_b.lines().iter().any(|l| l["event"] == "answered"),
        "the client sent a lookup during the failover:\n{}",
        probe_b.transcript()
    );
    let first_announcement = |probe: &mut Probe, kind: &str| {
        probe
            .lines()
            .iter()
            .find(|l| l["event"] == kind)
            .and_then(|l| l["elapsed_ms"].as_u64())
    };
    let garp_ms = first_announcement(&mut probe_b, "gratuitous_arp");
    let na_ms = first_announcement(&mut probe_b, "unsolicited_na");
    for ((family, took), sent_ms) in ["ipv4", "ipv6"].iter().zip(changed).zip([garp_ms, na_ms]) {
        match took {
            Some(took) => println!(
                "FAILOVER {label} {family}: client neighbour entry moved to node B {:.1} ms after \
                 the ownership move (probe B sent its first announcement {} ms after starting)",
                took.as_secs_f64() * 1000.0,
                sent_ms.map_or("?".to_owned(), |ms| ms.to_string()),
            ),
            None => println!("FAILOVER {label} {family}: no change within {FAILOVER_WATCH:?}"),
        }
    }
    for (family, took) in ["IPv4", "IPv6"].iter().zip(changed) {
        let took = took.unwrap_or_else(|| {
            panic!(
                "{family}: the client's neighbour entry did not move to {NODE_B_MAC} within \
                 {FAILOVER_WATCH:?}; probe B:\n{}",
                probe_b.transcript()
            )
        });
        assert!(
            took <= FAILOVER_LIMIT,
            "{family}: failover took {took:?}, more than {FAILOVER_LIMIT:?}"
        );
    }

    // Traffic now reaches the listener on node B.
    for ip in [service_v4, service_v6] {
        assert_eq!(
            tcp_greeting(client, ip).as_deref(),
            Ok("node-b"),
            "TCP {ip}"
        );
    }
    stop_cleanly(&mut probe_b);
}

#[test]
fn arp_and_ndp_resolve_owned_ips_to_the_owner_only() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    check_lookups(&UNTAGGED);
}

#[test]
fn failover_moves_client_neighbour_entries_within_one_second() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    check_failover(&UNTAGGED, "untagged");
}

#[test]
fn vlan_subinterface_lookups_and_failover() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    check_lookups(&VLAN100);
    check_failover(&VLAN100, "vlan100");
}

/// Addresses and links change under a running probe: an interface that
/// gets an address in the IP's subnet starts answering, one that goes down
/// stops and announces again when it comes back, one that loses the
/// address stops answering although its link is up.
#[test]
fn interface_and_address_changes_apply_live() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    let segment = &UNTAGGED;
    let lab = build_lab(segment, false).expect("untagged lab");
    let (service_v4, service_v6) = segment.service;
    let client = &lab.client.ns;
    let node = &lab.a.host.ns;
    let mut probe = Probe::start(node, &[service_v4, service_v6], &[]);

    // No address in the subnet and no default route: nowhere to announce.
    let chosen = probe.expect_event("interfaces_chosen", Some(service_v4), EVENT_TIMEOUT);
    assert_eq!(chosen["rule"], "no_interface", "{chosen}");
    assert_eq!(
        arping(client, "eth0", service_v4, 2, 1),
        Vec::<String>::new()
    );

    // The node gets its addresses: the rule now picks eth0.
    add_addresses(node, "eth0", segment.node_a, (24, 64));
    let chosen = probe
        .wait_for(EVENT_TIMEOUT, |l| {
            l["event"] == "interfaces_chosen" && l["ip"] == service_v6 && l["rule"] == "subnet"
        })
        .unwrap_or_else(|| panic!("no subnet choice:\n{}", probe.transcript()));
    assert_eq!(chosen["interfaces"][0]["mac"], NODE_A_MAC, "{chosen}");
    probe.expect_event("gratuitous_arp", Some(service_v4), EVENT_TIMEOUT);
    assert_eq!(
        arping(client, "eth0", service_v4, 3, 1)
            .first()
            .map(String::as_str),
        Some(NODE_A_MAC)
    );
    assert_eq!(
        ndisc6(client, "eth0", service_v6, 3).as_deref(),
        Some(NODE_A_MAC)
    );

    // Link down: the interface is dropped from the choice; back up: it
    // is chosen again and announces again.
    let before = probe.lines().len();
    node.ip(&["link", "set", "eth0", "down"]);
    probe
        .wait_for(EVENT_TIMEOUT, |l| {
            l["event"] == "interfaces_chosen"
                && l["ip"] == service_v4
                && l["interfaces"].as_array().is_some_and(Vec::is_empty)
        })
        .unwrap_or_else(|| panic!("eth0 down not noticed:\n{}", probe.transcript()));
    node.ip(&["link", "set", "eth0", "up"]);
    let deadline = Instant::now() + EVENT_TIMEOUT;
    let announced_again = loop {
        let found = probe.lines()[before..]
            .iter()
            .any(|l| l["event"] == "gratuitous_arp" && l["ip"] == service_v4);
        if found || Instant::now() > deadline {
            break found;
        }
        probe.wait_for(Duration::from_millis(100), |_| false);
    };
    assert!(
        announced_again,
        "no gratuitous ARP after eth0 came back up:\n{}",
        probe.transcript()
    );
    assert_eq!(
        arping(client, "eth0", service_v4, 3, 1)
            .first()
            .map(String::as_str),
        Some(NODE_A_MAC)
    );

    // The address goes away while the link stays up: no more answers.
    node.ip(&[
        "addr",
        "del",
        &format!("{}/24", segment.node_a.0),
        "dev",
        "eth0",
    ]);
    probe
        .wait_for(EVENT_TIMEOUT, |l| {
            l["event"] == "interfaces_chosen"
                && l["ip"] == service_v4
                && l["rule"] == "no_interface"
        })
        .unwrap_or_else(|| panic!("address removal not noticed:\n{}", probe.transcript()));
    assert_eq!(
        arping(client, "eth0", service_v4, 2, 1),
        Vec::<String>::new()
    );
    // IPv6 still has its address there and still answers.
    assert_eq!(
        ndisc6(client, "eth0", service_v6, 3).as_deref(),
        Some(NODE_A_MAC)
    );
    stop_cleanly(&mut probe);
}

/// Without CAP_NET_RAW the probe refuses to start and says why.
#[test]
fn probe_without_cap_net_raw_fails_with_a_clear_message() {
    let mut tools = TOOLS.to_vec();
    tools.push(("setpriv", "util-linux"));
    if !ferrolb_e2e::require(&tools) {
        return;
    }
    let lab = Lab::new();
    let node = lab.host("node-a", NODE_A_MAC);
    node.ns
        .ip(&["addr", "add", "198.51.100.11/24", "dev", "eth0"]);
    let setpriv = ferrolb_e2e::netns::find_tool("setpriv").expect("setpriv");
    // Root without any capability: an empty bounding set leaves nothing
    // for the exec'd probe.
    let mut command = node.ns.command(setpriv);
    command
        .args(["--bounding-set=-all", "--inh-caps=-all"])
        .arg(speaker_binary())
        .args(["l2-probe", "--ip", "198.51.100.100"]);
    let output = ferrolb_e2e::netns::run_with_timeout(&mut command, Duration::from_secs(20));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the probe ran without CAP_NET_RAW"
    );
    assert!(
        stderr.contains("CAP_NET_RAW"),
        "unclear error message: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing announced, nothing printed"
    );
}
