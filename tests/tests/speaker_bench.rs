//! Lab benchmarks of the speaker (ignored by the test command; run them
//! with `cargo test --release -p ferrolb-e2e --test speaker_bench --
//! --ignored --nocapture --test-threads 1`, as root). Figures go to
//! docs/BENCHMARKS.md with this command.
//!
//! - `layer2_failover`: 20 trials of kill -9 of the owner's speaker and 20
//!   of a cut link; the time from the fault to the client's neighbour
//!   entry holding another node's MAC (the client never asks: the new
//!   owner's gratuitous ARP moves it).
//! - `bgp_route_latency_and_scale`: a Service written to
//!   `status/services.yaml` → its route at GoBGP, 20 times; then 10,000
//!   Services at once → all 10,000 routes from every node at GoBGP (and at
//!   three more gobgpd in the router namespace: every speaker has 4 peers
//!   and, with the membership Secret, 3 members); then the speaker's RSS
//!   and idle CPU with those 10,000 Services.

use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{GoBgp, GoBgpNeighbor};
use ferrolb_e2e::netns::Netns;
use ferrolb_e2e::speaker_lab::{
    self, GOBGP_TOOLS, NODES, Network, Router, Speaker, SpeakerLab, wait_moved,
};

const L2_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.100-198.51.100.119]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "bench-key-0123456789abcdef"}
"#;

const L2_SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

/// Percentile (nearest rank) of sorted durations.
fn pct(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{label}: n={} min={:.0} ms p50={:.0} ms p90={:.0} ms p99={:.0} ms max={:.0} ms",
        v.len(),
        ms(v[0]),
        ms(pct(&v, 50.0)),
        ms(pct(&v, 90.0)),
        ms(pct(&v, 99.0)),
        ms(v[v.len() - 1])
    );
}

/// Waits until every speaker counts `n` live members (its metrics).
fn wait_members(net: &Network, n: usize) -> bool {
    let line = format!("ferrolb_speaker_membership_members {n}");
    ferrolb_e2e::bgp::wait_until(Duration::from_secs(20), || {
        NODES
            .iter()
            .all(|node| {
                let out = net.client.ns.exec(
                    "curl",
                    &["-fsS", &format!("http://{}:7472/metrics", node.v4)],
                    Duration::from_secs(5),
                );
                String::from_utf8_lossy(&out.stdout).contains(&line)
            })
            .then_some(())
    })
    .is_some()
}

/// The node answering for `ip` once the speakers agree.
fn current_owner(lab: &SpeakerLab<'_>, ip: &str) -> &'static str {
    speaker_lab::settled_owner(lab, ip)
        .unwrap_or_else(|| panic!("no single settled owner of {ip}:\n{}", lab.logs()))
}

#[test]
#[ignore = "lab benchmark: run by hand, see the module docs"]
fn layer2_failover() {
    let Some(net) = speaker_lab::network(&[("curl", "curl")]) else {
        return;
    };
    let mut lab = SpeakerLab::start(
        &net,
        &[("config.yaml", L2_CONFIG), ("services.yaml", L2_SERVICE)],
        Router::None,
    );
    let ip = speaker_lab::assigned(lab.dir(), "web")[0].clone();
    assert!(
        wait_members(&net, 3),
        "membership did not form:\n{}",
        lab.logs()
    );
    let mut kills = Vec::new();
    for _ in 0..20 {
        let owner = current_owner(&lab, &ip);
        lab.speaker(owner).kill();
        let (took, _) = wait_moved(&net.client.ns, std::slice::from_ref(&ip), lab.mac_of(owner))
            .unwrap_or_else(|| panic!("no failover after kill -9 of {owner}:\n{}", lab.logs()));
        kills.push(took);
        let dir = lab.dir().to_path_buf();
        *lab.speaker(owner) = Speaker::start(&net.node(owner).host.ns, &dir, owner);
        assert!(
            wait_members(&net, 3),
            "{owner} did not rejoin:\n{}",
            lab.logs()
        );
    }
    summary(
        "kill -9 of the owner's speaker -> client's entry moved",
        kills,
    );
    let mut cuts = Vec::new();
    for _ in 0..20 {
        let owner = current_owner(&lab, &ip);
        net.cut_link(owner);
        let (took, _) = wait_moved(&net.client.ns, std::slice::from_ref(&ip), lab.mac_of(owner))
            .unwrap_or_else(|| panic!("no failover after cutting {owner}'s link:\n{}", lab.logs()));
        cuts.push(took);
        net.node(owner).host.ns.ip(&["link", "set", "eth0", "up"]);
        assert!(
            wait_members(&net, 3),
            "{owner} did not rejoin:\n{}",
            lab.logs()
        );
    }
    summary("owner's link cut -> client's entry moved", cuts);
}

const BGP_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.0/24, "2001:db8:100::/112"], autoAssign: true}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router2, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.2}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router3, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.3}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router4, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.4}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed], communities: ["64512:100"]}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "bench-key-0123456789abcdef"}
"#;

/// The three more routers of the BGP benchmark: gobgpd in their own
/// namespaces on the LAN, at 198.51.100.2-4.
const MORE_ROUTERS: [(&str, &str, &str); 3] = [
    ("router2", "02:f1:0c:00:00:02", "198.51.100.2"),
    ("router3", "02:f1:0c:00:00:03", "198.51.100.3"),
    ("router4", "02:f1:0c:00:00:04", "198.51.100.4"),
];

/// `status/services.yaml` with Services `s0..sN` holding `ip(i)`.
fn services_status(n: usize, ip: impl Fn(usize) -> String) -> String {
    (0..n)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: default}}\nspec: {{type: LoadBalancer}}\nstatus: {{loadBalancer: {{ingress: [{{ip: \"{}\"}}]}}}}\n",
                ip(i)
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Accepted prefixes of `family` a GoBGP holds from each node.
fn accepted(gobgp: &mut GoBgp, ns: &Netns, family: &str) -> Vec<u64> {
    NODES
        .iter()
        .map(|n| {
            let v = gobgp.neighbor(ns, n.v4);
            v["afi_safis"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["config"]["family"]["afi"] == if family == "ipv4" { 1 } else { 2 })
                .and_then(|a| a["state"]["accepted"].as_u64())
                .unwrap_or(0)
        })
        .collect()
}

fn rss_kb(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// One value of the speaker's `/metrics` in `ns` (0 when absent).
fn metric(ns: &Netns, name: &str) -> f64 {
    let name = name.to_owned();
    let text = ns.enter(|| {
        use std::io::{Read, Write};
        let addr: std::net::SocketAddr = "127.0.0.1:7472".parse().expect("addr");
        let mut stream =
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    });
    text.unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(&name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime: fields 14 and 15 of the line, 12 and 13 after ')'.
    fields
        .get(11)
        .and_then(|u| u.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
}

#[test]
#[ignore = "lab benchmark: run by hand, see the module docs"]
fn bgp_route_latency_and_scale() {
    let Some(net) = speaker_lab::network(GOBGP_TOOLS) else {
        return;
    };
    // Three more routers: every speaker has 4 peers.
    let neighbors: Vec<GoBgpNeighbor> = NODES
        .iter()
        .map(|n| GoBgpNeighbor::new(n.v4, speaker_lab::NODE_ASN))
        .collect();
    let hosts: Vec<_> = MORE_ROUTERS
        .iter()
        .map(|(role, mac, addr)| {
            let host = net.host(role, mac);
            speaker_lab::add_addr(&host.ns, "eth0", &format!("{addr}/24"));
            (host, *addr)
        })
        .collect();
    let mut more: Vec<(&Netns, GoBgp)> = hosts
        .iter()
        .map(|(host, addr)| {
            let gobgp = GoBgp::start_on(
                &host.ns,
                speaker_lab::ROUTER_ASN,
                &[addr],
                50051,
                &neighbors,
            );
            (&host.ns, gobgp)
        })
        .collect();
    let mut lab = SpeakerLab::start(&net, &[("config.yaml", BGP_CONFIG)], Router::GoBgp);
    let status = lab.dir().join("status/services.yaml");
    // Sessions up (nothing announced yet), 3 nodes x 4 routers.
    let up = ferrolb_e2e::bgp::wait_until(Duration::from_secs(30), || {
        let established = |ns: &Netns, g: &mut GoBgp| {
            NODES
                .iter()
                .all(|n| g.neighbor(ns, n.v4)["state"]["session_state"] == 6)
        };
        let ns = &lab.net().router.ns;
        (established(ns, lab.gobgp()) && more.iter_mut().all(|(ns, g)| established(ns, g)))
            .then_some(())
    });
    assert!(
        up.is_some(),
        "sessions not established:\n{}\n{}",
        lab.logs(),
        more.iter()
            .map(|(_, g)| format!("--- more gobgpd ---\n{}", g.log()))
            .collect::<String>()
    );

    // One Service at a time: written -> route at GoBGP. GoBGP is asked
    // back to back (no sleep), so the resolution is one `gobgp` call, whose
    // duration is measured too.
    let mut one = Vec::new();
    let mut calls = Vec::new();
    for i in 0..20 {
        let ip = |k: usize| format!("203.0.113.{}", k + 1);
        std::fs::write(&status, services_status(i + 1, ip)).expect("status");
        let written = Instant::now();
        let prefix = format!("203.0.113.{}/32", i + 1);
        let ns = &lab.net().router.ns;
        let mut seen = None;
        while written.elapsed() < Duration::from_secs(10) {
            let call = Instant::now();
            let out = ns.exec(
                "gobgp",
                &["-j", "global", "rib", "-a", "ipv4", &prefix],
                Duration::from_secs(5),
            );
            calls.push(call.elapsed());
            if String::from_utf8_lossy(&out.stdout).contains("nexthop") {
                seen = Some(written.elapsed());
                break;
            }
        }
        let seen = seen.unwrap_or_else(|| panic!("{prefix} never arrived:\n{}", lab.logs()));
        one.push(seen);
    }
    summary("one Service written -> its route at GoBGP", one);
    summary("  (resolution: one `gobgp global rib` call)", calls);

    // 10,000 Services at once (IPv6 /128s).
    let n = 10_000;
    std::fs::write(
        &status,
        services_status(n, |k| format!("2001:db8:100::{:x}", k + 1)),
    )
    .expect("status");
    let written = Instant::now();
    let ns = &net.router.ns;
    let mut first = None;
    let all = ferrolb_e2e::bgp::wait_until(Duration::from_secs(120), || {
        let counts = accepted(lab.gobgp(), ns, "ipv6");
        let done = counts.iter().all(|c| *c >= n as u64);
        if done && first.is_none() {
            first = Some(written.elapsed());
        }
        (done
            && more
                .iter_mut()
                .all(|(ns, g)| accepted(g, ns, "ipv6").iter().all(|c| *c >= n as u64)))
        .then_some(counts)
    });
    let took = written.elapsed();
    assert!(
        all.is_some(),
        "not all {n} routes arrived: {:?} {:?}",
        accepted(lab.gobgp(), ns, "ipv6"),
        more.iter_mut()
            .map(|(ns, g)| accepted(g, ns, "ipv6"))
            .collect::<Vec<_>>()
    );
    println!(
        "{n} Services written at once -> all {n} routes from each of 3 nodes at the first GoBGP: {:.2} s; at all 4 GoBGPs: {:.2} s",
        first.unwrap_or(took).as_secs_f64(),
        took.as_secs_f64()
    );

    // The speaker's memory and idle CPU with them (node1's process).
    let out = std::process::Command::new("pgrep")
        .args(["-f", "ferrolb-speaker --standalone .* --node node1"])
        .output()
        .expect("pgrep");
    let pid: u32 = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("node1's speaker pid");
    std::thread::sleep(Duration::from_secs(5));
    let node1 = &net.node("node1").host.ns;
    let rounds_before = metric(node1, "ferrolb_speaker_rounds_total");
    let before = cpu_ticks(pid);
    let window = Duration::from_secs(30);
    std::thread::sleep(window);
    let ticks = cpu_ticks(pid) - before;
    println!(
        "  during the idle window: {} decision rounds, membership changes {}",
        metric(node1, "ferrolb_speaker_rounds_total") - rounds_before,
        metric(node1, "ferrolb_speaker_membership_changes"),
    );
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    println!(
        "speaker with {n} Services, 4 peers, 3 members: RSS {:.1} MB, idle CPU {:.2}% of a core over {} s",
        rss_kb(pid) as f64 / 1024.0,
        ticks as f64 / hz / window.as_secs_f64() * 100.0,
        window.as_secs()
    );
}
