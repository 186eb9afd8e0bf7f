//! The fault campaign of issue #16 in the standalone speaker lab
//! ([`ferrolb_e2e::speaker_lab`]: three node namespaces running
//! `ferrolb-speaker --standalone DIR --node NAME`, a client and a router on
//! one bridge). Every test has a layer-2 pool with six Services (two of
//! them dual-stack: eight IPs, spread over the nodes by the election) and
//! a BGP pool with two Cluster Services, announced by every node.
//!
//! "Owners" of a layer-2 IP are counted as the client sees them: the MACs
//! that answer one ARP request or Neighbor Solicitation sent on a raw
//! socket ([`ferrolb_e2e::answerers`]), not the client's neighbour table
//! (which keeps one). A layer-2 IP is *clean* when exactly one MAC answers
//! and it is the MAC of the one node whose status file announces the IP; a
//! BGP prefix is clean when the router's next hops are exactly the three
//! nodes (none stale, none missing). A lab is *settled* when everything is
//! clean and every speaker's log says the two others are up, three
//! rounds in a row.
//!
//! - `kill_9_loop`: `FERROLB_FAULT_ITERATIONS` times (default 3; 100 for
//!   docs/BENCHMARKS.md), a node picked by a seeded xorshift (the seed is
//!   printed; `FERROLB_FAULT_SEED` replays one) has its speaker killed with
//!   SIGKILL; the test waits until every layer-2 IP is answered by exactly
//!   one MAC, not the dead node's, and GoBGP has withdrawn the dead node's
//!   next hop; then starts the speaker again and waits until the lab has
//!   settled, and checks once more a second later. Stale routes, IPs with
//!   two owners and IPs with none after each settle are counted and must be
//!   0; the times are printed.
//! - `router_restart_gobgp` and `router_restart_frr`, each without and with
//!   `enableGracefulRestart` on the BGPPeer (and graceful restart
//!   configured at the router): the router's BGP daemon is killed
//!   (SIGKILL, as a crash) and started again on the same configuration
//!   (GoBGP: gobgpd, with `-r`, the Restart State bit, under graceful
//!   restart; FRR 8.4: bgpd alone, zebra keeps running; its bgpd has no
//!   restart flag). The sessions must come back and every route be
//!   present again (times printed).
//!   What "no withdrawal seen by the router" can mean here: a restarting
//!   BGP daemon loses its own RIB whatever its peers do, so the routes
//!   being absent from a fresh gobgpd is no withdrawal by the speakers.
//!   What the speakers owe a restarting router under graceful restart is
//!   their whole table again followed by End-of-RIB in each family, which
//!   is what ends the router's deferral of best-path selection; that is
//!   checked (the router records the End-of-RIB of every node, the
//!   capability negotiated both ways). With FRR the forwarding table is
//!   observable across the restart: zebra keeps running, and the kernel
//!   routes of the BGP prefixes in the router's namespace are sampled
//!   every 100 ms from the kill until all next hops are back; the samples
//!   where a prefix was missing are printed for both modes, and under
//!   graceful restart there must be none. (That zebra keeps bgpd's routes
//!   while bgpd is gone comes from FRR's own `bgp graceful-restart`; the
//!   speakers' part is that the restarted bgpd gets every route back, with
//!   the End-of-RIB that lets it replace the retained ones, without a
//!   gap.)
//! - `flapping_link`: node2's link goes down and up, changing every second,
//!   for `FERROLB_FLAP_SECS` (default 10; 60 for docs/BENCHMARKS.md) with a
//!   BGPPeer of hold time 3 s to GoBGP; then as long again down 4 s (longer
//!   than the hold time, so that the session does reset) and up 1 s. During the flapping the client
//!   keeps asking who answers for each layer-2 IP and counts answers by
//!   two MACs and by none (reported, not asserted: a cut link leaves the
//!   cut node's IPs unanswered until the membership fails them over, and a
//!   restored one answers beside the new owner until the membership
//!   heals). Afterwards the lab must settle, and the number of times
//!   node2's session was established again must stay within what the
//!   session's timers allow: a reset needs the hold time (3 s) without a
//!   message, and after a failure the speaker waits its ConnectRetry
//!   interval (1 s, jittered down to at most 0.75 s, doubling while
//!   connects fail, back to 1 s once established: no damping across
//!   successful sessions) before it connects again, so at most
//!   `FLAP_SECS / 3.75 + 1` re-establishments, counted both in the
//!   speaker's log and as OPENs received by GoBGP.
//!
//! - `api_server_restart` (cluster mode, [`ferrolb_e2e::cluster_lab`]: a
//!   v1.20 API server and etcd in the lab, the controller and three
//!   speakers watching it, GoBGP): etcd and kube-apiserver are restarted
//!   twice (`tests/apiserver/restart.sh`, same data) while GoBGP's routes
//!   are sampled every 100 ms. First left alone: no sample may lack a
//!   node's route, and the client, asking all the time, must see every
//!   layer-2 IP answered by exactly one MAC. Then, once the API server is
//!   down, the speaker of a layer-2 IP's owner is killed (SIGKILL): the IP
//!   must move to another node before the API server is back (the
//!   membership needs no API server), and no live node's route may go.
//!   After each round no Service has changed IP and everything converges
//!   (the killed speaker started again): one answering MAC per IP, the one
//!   its ServiceL2Status names, and every node's route.
//!
//! Needs root, `ip`, `ping`, `sysctl`, `gobgpd`/`gobgp` and the Debian
//! package `frr` (and for `api_server_restart`, `etcd`, `curl` and the API
//! server binaries of tests/apiserver/build-binaries.sh): without them each
//! test prints `SKIPPED: …` (fails when `CI` is set). The tests run one
//! at a time (each builds a lab of its own):
//! `sudo -E cargo test -p ferrolb-e2e --test fault_campaign -- --test-threads 1 --nocapture`.
//! The figures in docs/BENCHMARKS.md come from release daemons and the
//! long settings, e.g.
//! `FERROLB_FAULT_ITERATIONS=100 sudo -E cargo test --release -p ferrolb-e2e --test fault_campaign kill_9_loop -- --nocapture`
//! and `FERROLB_FLAP_SECS=60` for `flapping_link` (docs/BENCHMARKS.md has
//! the exact commands).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ferrolb_arp::MacAddr;
use ferrolb_e2e::answerers::answering_macs;
use ferrolb_e2e::bgp::{GOBGP_ESTABLISHED, GoBgp, GoBgpNeighbor, gobgp_next_hops, wait_until};
use ferrolb_e2e::cluster_lab::{self, Cluster};
use ferrolb_e2e::netns::Netns;
use ferrolb_e2e::routers::Frr;
use ferrolb_e2e::speaker_lab::{
    self, GOBGP_TOOLS, NODE_ASN, NODES, Network, ROUTER_ASN, Router, SpeakerLab, assignments,
    frr_config,
};
use serde_json::Value;

/// How long the client collects answers to one question.
const ASK_WAIT: Duration = Duration::from_millis(50);
/// Bound of the wait for a failover after a kill, and for the router's
/// sessions and routes after its restart.
const FAULT_BOUND: Duration = Duration::from_secs(20);
/// Bound of the wait for the lab to settle.
const SETTLE_BOUND: Duration = Duration::from_secs(30);
/// Clean rounds in a row that count as settled.
const SETTLED_ROUNDS: usize = 3;
/// How often the router's forwarding table is sampled during its restart.
const FIB_POLL: Duration = Duration::from_millis(100);
/// The BGPPeer's hold time in the flapping test, seconds.
const FLAP_HOLD_SECS: u64 = 3;
/// The speaker's first ConnectRetry interval, seconds (BGPPeer without
/// `connectTime`: the session's default), and the most its jitter takes
/// off (a quarter).
const CONNECT_RETRY_SECS: f64 = 1.0;
const JITTER_KEEPS: f64 = 0.75;

/// Pools, advertisements and the membership Secret; the BGPPeer comes
/// from [`config`].
const BASE_CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.100-198.51.100.119, 2001:db8::100-2001:db8::119]
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec:
  addresses: [203.0.113.0/28]
  autoAssign: false
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec:
  ipAddressPools: [routed]
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "e2e-test-key-0123456789abcdef"}
"#;

/// [`BASE_CONFIG`] with the BGPPeer to the router (hold time `hold`,
/// `enableGracefulRestart` as given).
fn config(hold: &str, graceful_restart: bool) -> String {
    format!(
        "{BASE_CONFIG}---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\n\
         metadata: {{name: router, namespace: ferrolb-system}}\n\
         spec:\n  myASN: {NODE_ASN}\n  peerASN: {ROUTER_ASN}\n  peerAddress: {}\n  holdTime: {hold}\n  \
         enableGracefulRestart: {graceful_restart}\n",
        speaker_lab::ROUTER_V4
    )
}

/// Six layer-2 Services (`l2-1`, `l2-2` dual-stack) and two BGP ones.
fn services() -> String {
    let mut docs = Vec::new();
    for i in 1..=6 {
        let families = if i <= 2 {
            "  ipFamilyPolicy: RequireDualStack\n  ipFamilies: [IPv4, IPv6]\n"
        } else {
            ""
        };
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: l2-{i}, namespace: default}}\n\
             spec:\n  type: LoadBalancer\n{families}  ports: [{{port: 8080, protocol: TCP}}]\n"
        ));
    }
    for i in 1..=2 {
        docs.push(format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: bgp-{i}\n  namespace: default\n  \
             annotations: {{ferrolb.io/address-pool: routed}}\n\
             spec:\n  type: LoadBalancer\n  ports: [{{port: 8080, protocol: TCP}}]\n"
        ));
    }
    docs.join("---\n")
}

/// A whole number from the environment, or `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|e| panic!("{name}={v:?} is not a whole number: {e}"))
        })
        .unwrap_or(default)
}

/// The lab over `net` with [`config`]`(hold, graceful_restart)` and
/// [`services`]; IPv6 addresses survive a link cut.
fn start_lab<'n>(
    net: &'n Network,
    router: Router,
    hold: &str,
    graceful_restart: bool,
) -> SpeakerLab<'n> {
    for node in &net.nodes {
        node.host
            .ns
            .sysctl("net.ipv6.conf.eth0.keep_addr_on_down", "1");
    }
    let config = config(hold, graceful_restart);
    let services = services();
    SpeakerLab::start(
        net,
        &[("config.yaml", &config), ("services.yaml", &services)],
        router,
    )
}

/// The layer-2 IPs (`l2-*`) and the BGP prefixes (`bgp-*`, as `IP/32`).
fn addresses(lab: &SpeakerLab<'_>) -> (Vec<String>, Vec<String>) {
    let all = assignments(lab.dir());
    let l2: Vec<String> = all
        .iter()
        .filter(|(name, _)| name.starts_with("l2-"))
        .flat_map(|(_, ips)| ips.iter().cloned())
        .collect();
    let bgp: Vec<String> = all
        .iter()
        .filter(|(name, _)| name.starts_with("bgp-"))
        .flat_map(|(_, ips)| ips.iter().map(|ip| format!("{ip}/32")))
        .collect();
    assert_eq!(l2.len(), 8, "layer-2 IPs: {all:?}");
    assert_eq!(bgp.len(), 2, "BGP IPs: {all:?}");
    (l2, bgp)
}

/// The IPv4 addresses of every node but `except`, sorted (as the router's
/// next hops are).
fn hops_except(except: Option<&str>) -> Vec<String> {
    let mut hops: Vec<String> = NODES
        .iter()
        .filter(|n| Some(n.name) != except)
        .map(|n| n.v4.to_owned())
        .collect();
    hops.sort();
    hops
}

/// The MACs that answer `ip` for the client.
fn answers(net: &Network, ip: &str) -> BTreeSet<MacAddr> {
    let addr: IpAddr = ip.parse().expect("ip");
    answering_macs(&net.client.ns, &net.client_asker(), addr, ASK_WAIT)
        .unwrap_or_else(|e| panic!("asking who answers {ip}: {e}"))
}

/// The router's next hops for a prefix, sorted.
type Hops<'a, 'n> = &'a mut dyn FnMut(&mut SpeakerLab<'n>, &str) -> Vec<String>;

/// [`Hops`] from the lab's own router.
fn lab_hops(lab: &mut SpeakerLab<'_>, prefix: &str) -> Vec<String> {
    lab.next_hops(prefix)
}

/// What is wrong with the lab at one moment (see the module
/// documentation): empty when clean.
#[derive(Debug, Default)]
struct Faults {
    /// Layer-2 IPs answered by two MACs or more, with the MACs.
    two_owners: Vec<(String, Vec<String>)>,
    /// Layer-2 IPs nobody answers.
    no_owner: Vec<String>,
    /// Layer-2 IPs answered by one MAC that is not the one status owner's
    /// (or whose status files name no single owner).
    status_disagrees: Vec<(String, String, Vec<&'static str>)>,
    /// Next hops at the router that are not the three nodes (a stale one
    /// is there without its node announcing; a missing one is gone).
    stale_hops: usize,
    missing_hops: usize,
    /// The prefixes whose next hops are wrong, with them.
    wrong_prefixes: Vec<(String, Vec<String>)>,
}

impl Faults {
    fn clean(&self) -> bool {
        self.two_owners.is_empty()
            && self.no_owner.is_empty()
            && self.status_disagrees.is_empty()
            && self.wrong_prefixes.is_empty()
    }
}

/// Checks every layer-2 IP (client's answers against the status files)
/// and every prefix (`hops` gives the router's next hops).
fn faults<'n>(
    lab: &mut SpeakerLab<'n>,
    l2: &[String],
    bgp: &[String],
    hops: Hops<'_, 'n>,
) -> Faults {
    let mut f = Faults::default();
    for ip in l2 {
        let macs = answers(lab.net(), ip);
        match macs.len() {
            0 => f.no_owner.push(ip.clone()),
            1 => {
                let owners = lab.l2_owners(ip);
                let mac = macs.first().expect("one").to_string();
                if owners.len() != 1 || !lab.mac_of(owners[0]).eq_ignore_ascii_case(&mac) {
                    f.status_disagrees.push((ip.clone(), mac, owners));
                }
            }
            _ => f
                .two_owners
                .push((ip.clone(), macs.iter().map(ToString::to_string).collect())),
        }
    }
    let want = hops_except(None);
    for prefix in bgp {
        let got = hops(lab, prefix);
        if got != want {
            // Not a node, or a node's second path.
            let distinct = got.iter().collect::<BTreeSet<_>>().len();
            f.stale_hops += got.iter().filter(|h| !want.contains(h)).count() + got.len() - distinct;
            f.missing_hops += want.iter().filter(|h| !got.contains(h)).count();
            f.wrong_prefixes.push((prefix.clone(), got));
        }
    }
    f
}

/// Waits (bounded by [`SETTLE_BOUND`]) until the lab is settled:
/// [`SETTLED_ROUNDS`] clean rounds in a row with every member up. Returns
/// the time from the call to the first of those rounds, or the last
/// round's faults.
fn settle<'n>(
    lab: &mut SpeakerLab<'n>,
    l2: &[String],
    bgp: &[String],
    hops: Hops<'_, 'n>,
) -> Result<Duration, Faults> {
    let start = Instant::now();
    let mut run: Option<Duration> = None;
    let mut clean_rounds = 0;
    loop {
        let at = start.elapsed();
        let up = lab.all_members_up();
        let f = faults(lab, l2, bgp, &mut *hops);
        if up && f.clean() {
            run.get_or_insert(at);
            clean_rounds += 1;
            if clean_rounds >= SETTLED_ROUNDS {
                return Ok(run.expect("set"));
            }
        } else {
            run = None;
            clean_rounds = 0;
            if start.elapsed() > SETTLE_BOUND {
                return Err(f);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A xorshift64 generator: the node to kill, reproducible from the
/// printed seed.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
}

fn summary(what: &str, times: &[Duration]) -> String {
    format!(
        "{what}: n {}, p50 {:.0} ms, p90 {:.0} ms, max {:.0} ms",
        times.len(),
        ferrolb_e2e::quantile_ms(times, 0.5),
        ferrolb_e2e::quantile_ms(times, 0.9),
        ferrolb_e2e::quantile_ms(times, 1.0)
    )
}

// ---------------------------------------------------------------- kill -9

#[test]
fn kill_9_loop() {
    let Some(net) = speaker_lab::network(GOBGP_TOOLS) else {
        return;
    };
    let iterations = env_number("FERROLB_FAULT_ITERATIONS", 3);
    let seed = std::env::var("FERROLB_FAULT_SEED")
        .ok()
        .map(|s| {
            s.parse::<u64>()
                .expect("FERROLB_FAULT_SEED: a whole number")
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    println!(
        "kill_9_loop: {iterations} iterations, seed {seed} (FERROLB_FAULT_SEED={seed} replays the same nodes)"
    );
    let mut rng = XorShift(seed.max(1));
    let mut lab = start_lab(&net, Router::GoBgp, "9s", false);
    let (l2, bgp) = addresses(&lab);
    settle(&mut lab, &l2, &bgp, &mut lab_hops)
        .unwrap_or_else(|f| panic!("the lab did not settle at start: {f:?}\n{}", lab.logs()));

    let (mut failovers, mut withdrawals, mut settles) = (Vec::new(), Vec::new(), Vec::new());
    let (mut stale, mut missing, mut two, mut none, mut disagree, mut unsettled) =
        (0, 0, 0, 0, 0, Vec::new());
    let mut kills = [0usize; 3];
    for iteration in 1..=iterations {
        let index = (rng.next() % 3) as usize;
        kills[index] += 1;
        let victim = NODES[index].name;
        let victim_mac: MacAddr = lab.mac_of(victim).parse().expect("MAC");
        let owned: Vec<&String> = l2
            .iter()
            .filter(|ip| lab.l2_owners(ip) == [victim])
            .collect();

        let killed = Instant::now();
        lab.speaker(victim).kill();
        // Every layer-2 IP answered by one MAC, not the dead node's.
        let mut pending: Vec<&String> = l2.iter().collect();
        let moved = wait_until(FAULT_BOUND, || {
            pending.retain(|ip| {
                let macs = answers(&net, ip);
                macs.len() != 1 || macs.contains(&victim_mac)
            });
            pending.is_empty().then(|| killed.elapsed())
        });
        let moved = moved.unwrap_or_else(|| {
            panic!(
                "iteration {iteration} (seed {seed}): after kill -9 of {victim}'s speaker, {pending:?} not answered by exactly one live node within {FAULT_BOUND:?}\n{}",
                lab.logs()
            )
        });
        // The router drops the dead node's next hop (the kernel closed
        // its connection).
        let rest = hops_except(Some(victim));
        let withdrawn = wait_until(FAULT_BOUND, || {
            bgp.iter()
                .all(|p| lab.next_hops(p) == rest)
                .then(|| killed.elapsed())
        });
        let withdrawn = withdrawn.unwrap_or_else(|| {
            panic!(
                "iteration {iteration} (seed {seed}): GoBGP kept {victim}'s next hop after its speaker was killed: {:?}\n{}",
                bgp.iter().map(|p| lab.next_hops(p)).collect::<Vec<_>>(),
                lab.logs()
            )
        });

        lab.start_speaker_again(victim);
        let settled = settle(&mut lab, &l2, &bgp, &mut lab_hops);
        // Once more a second later: still clean.
        std::thread::sleep(Duration::from_secs(1));
        let settled_after = settled.as_ref().ok().copied();
        let after = match settled {
            Ok(took) => {
                settles.push(took);
                faults(&mut lab, &l2, &bgp, &mut lab_hops)
            }
            Err(f) => {
                unsettled.push(iteration);
                f
            }
        };
        stale += after.stale_hops;
        missing += after.missing_hops;
        two += after.two_owners.len();
        none += after.no_owner.len();
        disagree += after.status_disagrees.len();
        failovers.push(moved);
        withdrawals.push(withdrawn);
        println!(
            "iteration {iteration}: kill -9 {victim} (owned {}): every IP answered by one live node after {} ms, next hop withdrawn after {} ms; restarted, settled after {}; then {}",
            owned.len(),
            moved.as_millis(),
            withdrawn.as_millis(),
            settled_after.map_or_else(|| "NEVER".to_owned(), |d| format!("{} ms", d.as_millis())),
            if after.clean() {
                "clean".to_owned()
            } else {
                format!("{after:?}")
            }
        );
    }
    println!(
        "kill_9_loop: {iterations} kills (node1 {}, node2 {}, node3 {}), seed {seed}",
        kills[0], kills[1], kills[2]
    );
    println!(
        "  {}",
        summary(
            "layer-2 IPs answered by one live node after the kill",
            &failovers
        )
    );
    println!(
        "  {}",
        summary(
            "dead node's next hop gone at GoBGP after the kill",
            &withdrawals
        )
    );
    println!("  {}", summary("settled after the restart", &settles));
    println!(
        "  after settle: stale next hops {stale}, missing next hops {missing}, IPs with two owners {two}, IPs with none {none}, answer differs from status {disagree}, iterations not settled within {SETTLE_BOUND:?}: {unsettled:?}"
    );
    assert!(
        stale == 0
            && missing == 0
            && two == 0
            && none == 0
            && disagree == 0
            && unsettled.is_empty(),
        "faults after settle (seed {seed}): see above\n{}",
        lab.logs()
    );
}

// ---------------------------------------------------------------- router restart

/// The next hops of `prefix` (`IP/32`) in the kernel's main table of
/// `ns` (what zebra installed), sorted.
fn fib_hops(ns: &Netns, prefix: &str) -> Vec<String> {
    let dst = prefix.trim_end_matches("/32");
    let out = ns.ip(&["-j", "route", "show", "table", "main"]);
    let routes: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    let mut hops: Vec<String> = routes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["dst"] == dst || r["dst"] == prefix)
        .flat_map(|r| {
            let mut gateways: Vec<String> = r["nexthops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|h| h["gateway"].as_str().map(str::to_owned))
                .collect();
            gateways.extend(r["gateway"].as_str().map(str::to_owned));
            gateways
        })
        .collect();
    hops.sort();
    hops
}

/// Restarts gobgpd under the lab, graceful restart on both sides or on
/// neither; prints the times.
fn gobgp_restart(graceful: bool) {
    let net = Network::new();
    let ns = &net.router.ns;
    let neighbors: Vec<GoBgpNeighbor> = NODES
        .iter()
        .map(|n| GoBgpNeighbor::new(n.v4, NODE_ASN))
        .collect();
    let mut gobgp = if graceful {
        GoBgp::start_graceful(ns, ROUTER_ASN, &neighbors, 120)
    } else {
        GoBgp::start(ns, ROUTER_ASN, &neighbors)
    };
    let lab = start_lab(&net, Router::None, "9s", graceful);
    let (_, bgp) = addresses(&lab);
    let all = hops_except(None);
    let routes_up = |gobgp: &mut GoBgp| bgp.iter().all(|p| gobgp.next_hops(ns, p) == all);
    let established = |gobgp: &mut GoBgp| {
        NODES
            .iter()
            .all(|n| gobgp.neighbor(ns, n.v4)["state"]["session_state"] == GOBGP_ESTABLISHED)
    };
    let up = wait_until(FAULT_BOUND, || routes_up(&mut gobgp).then_some(()));
    assert!(
        up.is_some(),
        "GoBGP never had every route from every node: {:?}\n{}\n{}",
        gobgp.rib(ns, "ipv4"),
        lab.logs(),
        gobgp.log()
    );
    check_gobgp_graceful_restart(&mut gobgp, ns, graceful, "before the restart");

    let killed = Instant::now();
    gobgp.restart(ns, graceful);
    let api = killed.elapsed();
    let sessions = wait_until(FAULT_BOUND, || {
        established(&mut gobgp).then(|| killed.elapsed())
    });
    let sessions = sessions.unwrap_or_else(|| {
        panic!(
            "the sessions did not come back within {FAULT_BOUND:?} of GoBGP's restart: {:?}\n{}\n{}",
            NODES
                .iter()
                .map(|n| gobgp.neighbor(ns, n.v4)["state"]["session_state"].clone())
                .collect::<Vec<_>>(),
            lab.logs(),
            gobgp.log()
        )
    });
    let routes = wait_until(FAULT_BOUND, || {
        routes_up(&mut gobgp).then(|| killed.elapsed())
    });
    let routes = routes.unwrap_or_else(|| {
        panic!(
            "not every route back within {FAULT_BOUND:?} of GoBGP's restart: {:?}\n{}\n{}",
            gobgp.rib(ns, "ipv4"),
            lab.logs(),
            gobgp.log()
        )
    });
    check_gobgp_graceful_restart(&mut gobgp, ns, graceful, "after the restart");
    println!(
        "GoBGP restart (SIGKILL, started again{}), graceful restart {}: API up after {} ms, 3 sessions Established after {} ms, every route from every node after {} ms",
        if graceful { " with -r" } else { "" },
        if graceful { "on" } else { "off" },
        api.as_millis(),
        sessions.as_millis(),
        routes.as_millis()
    );
}

/// With graceful restart: GoBGP received the capability from every node
/// and, in IPv4 unicast, its End-of-RIB; without: no capability.
fn check_gobgp_graceful_restart(gobgp: &mut GoBgp, ns: &Netns, graceful: bool, when: &str) {
    for node in NODES {
        let check = wait_until(FAULT_BOUND, || {
            let neighbor = gobgp.neighbor(ns, node.v4);
            // The node's OPEN carried the capability.
            let received = neighbor["state"]["remote_cap"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type_url"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(".GracefulRestartCapability"))
                });
            let eor = neighbor["afi_safis"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|a| {
                    a["config"]["family"]["afi"] == 1
                        && a["mp_graceful_restart"]["state"]["end_of_rib_received"] == true
                });
            let ok = if graceful { received && eor } else { !received };
            ok.then_some(())
        });
        assert!(
            check.is_some(),
            "{when}, graceful restart {graceful}: GoBGP's view of {}: {}",
            node.name,
            gobgp.neighbor(ns, node.v4)
        );
    }
}

#[test]
fn router_restart_gobgp() {
    if !speaker_lab::require(GOBGP_TOOLS) {
        return;
    }
    for graceful in [false, true] {
        gobgp_restart(graceful);
    }
}

/// Restarts FRR's bgpd (zebra keeps running) under the lab, graceful
/// restart on both sides or on neither; samples the kernel routes.
fn frr_restart(graceful: bool) {
    let net = Network::new();
    let ns = &net.router.ns;
    let config = frr_config(None);
    let global: &[&str] = if graceful {
        &[
            "bgp graceful-restart",
            "bgp graceful-restart preserve-fw-state",
        ]
    } else {
        &[]
    };
    let mut frr = Frr::start_with_global(ns, &config, global);
    let lab = start_lab(&net, Router::None, "9s", graceful);
    let (_, bgp) = addresses(&lab);
    let all = hops_except(None);
    let routes_up = |frr: &mut Frr<'_>| bgp.iter().all(|p| frr.next_hops(p) == all);
    let up = wait_until(FAULT_BOUND, || {
        (routes_up(&mut frr) && bgp.iter().all(|p| fib_hops(ns, p) == all)).then_some(())
    });
    assert!(
        up.is_some(),
        "FRR never had (and installed) every route from every node: {:?}\n{}\n{}",
        bgp.iter()
            .map(|p| (frr.next_hops(p), fib_hops(ns, p)))
            .collect::<Vec<_>>(),
        lab.logs(),
        frr.log()
    );
    check_frr_graceful_restart(&mut frr, graceful, "before the restart");

    // The kernel's routes, sampled from the kill on until the end.
    let stop = std::sync::atomic::AtomicBool::new(false);
    let killed = Instant::now();
    let (samples, times) = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut samples: Vec<(Duration, Vec<usize>)> = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed)
                && killed.elapsed() < 3 * FAULT_BOUND
            {
                let counts = bgp.iter().map(|p| fib_hops(ns, p).len()).collect();
                samples.push((killed.elapsed(), counts));
                std::thread::sleep(FIB_POLL);
            }
            samples
        });
        frr.restart_daemon("bgpd", &[]);
        let started = killed.elapsed();
        let sessions = wait_until(FAULT_BOUND, || {
            NODES
                .iter()
                .all(|n| frr.state(n.v4).as_deref() == Some("Established"))
                .then(|| killed.elapsed())
        });
        let routes = sessions.and_then(|_| {
            wait_until(FAULT_BOUND, || {
                routes_up(&mut frr).then(|| killed.elapsed())
            })
        });
        let fib = routes.and_then(|_| {
            wait_until(FAULT_BOUND, || {
                bgp.iter()
                    .all(|p| fib_hops(ns, p) == all)
                    .then(|| killed.elapsed())
            })
        });
        // A second more of samples after everything is back.
        std::thread::sleep(Duration::from_secs(1));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let samples = sampler.join().expect("sampler");
        (samples, (started, sessions, routes, fib))
    });
    let (started, sessions, routes, fib) = times;
    let (Some(sessions), Some(routes), Some(fib)) = (sessions, routes, fib) else {
        panic!(
            "after bgpd's restart (graceful restart {graceful}): sessions back after {sessions:?}, routes after {routes:?}, kernel routes after {fib:?} (bound {FAULT_BOUND:?} each); now {:?}\n{}\n{}",
            bgp.iter()
                .map(|p| (frr.next_hops(p), fib_hops(ns, p)))
                .collect::<Vec<_>>(),
            lab.logs(),
            frr.log()
        );
    };
    check_frr_graceful_restart(&mut frr, graceful, "after the restart");
    let gone: Vec<&(Duration, Vec<usize>)> =
        samples.iter().filter(|(_, c)| c.contains(&0)).collect();
    let partial = samples
        .iter()
        .filter(|(_, c)| c.iter().any(|n| *n > 0 && *n < all.len()))
        .count();
    let gap = match (gone.first(), gone.last()) {
        (Some(a), Some(b)) => format!(
            "from {} ms to {} ms after the kill",
            a.0.as_millis(),
            b.0.as_millis()
        ),
        _ => "never".to_owned(),
    };
    println!(
        "FRR bgpd restart (SIGKILL, started again; zebra kept running), graceful restart {}: bgpd answering after {} ms, 3 sessions Established after {} ms, every route in bgpd after {} ms, in the kernel after {} ms; {} kernel samples every {} ms: a prefix missing in {} ({gap}), fewer than 3 next hops in {partial}",
        if graceful { "on" } else { "off" },
        started.as_millis(),
        sessions.as_millis(),
        routes.as_millis(),
        fib.as_millis(),
        samples.len(),
        FIB_POLL.as_millis(),
        gone.len()
    );
    if graceful {
        assert!(
            gone.is_empty(),
            "with graceful restart, a prefix left the router's forwarding table during bgpd's restart: {gone:?}\n{}\n{}",
            lab.logs(),
            frr.log()
        );
    }
}

/// With graceful restart: FRR negotiated it with every node and received
/// its End-of-RIB in IPv4 unicast; without: not negotiated.
fn check_frr_graceful_restart(frr: &mut Frr<'_>, graceful: bool, when: &str) {
    for node in NODES {
        let check = wait_until(FAULT_BOUND, || {
            let neighbor = frr.neighbor(node.v4);
            let negotiated =
                neighbor["neighborCapabilities"]["gracefulRestart"] == "advertisedAndReceived";
            let eor = neighbor["gracefulRestartInfo"]["ipv4Unicast"]["endOfRibStatus"]["endOfRibRecv"]
                == true;
            let ok = if graceful {
                negotiated && eor
            } else {
                !negotiated
            };
            ok.then_some(())
        });
        assert!(
            check.is_some(),
            "{when}, graceful restart {graceful}: FRR's view of {}: {}",
            node.name,
            frr.neighbor(node.v4)
        );
    }
}

#[test]
fn router_restart_frr() {
    if !speaker_lab::require(Frr::TOOLS) {
        return;
    }
    for graceful in [false, true] {
        frr_restart(graceful);
    }
}

// ---------------------------------------------------------------- flapping link

/// How many times node `name`'s speaker logged its BGP session as
/// established (its running process).
fn established_count(lab: &SpeakerLab<'_>, name: &str) -> usize {
    lab.speaker_log(name)
        .lines()
        .filter(|l| l.contains("BGP session established"))
        .count()
}

/// One flapping phase of `flapped`'s link for `secs`: down for `down`,
/// up for `up`, again and again (ending up), while the client asks who
/// answers each layer-2 IP; then the lab must settle, and the session
/// resets stay within the bound. Prints the figures.
fn flap(
    lab: &mut SpeakerLab<'_>,
    l2: &[String],
    bgp: &[String],
    flapped: &str,
    secs: u64,
    (down, up): (Duration, Duration),
) {
    let net = lab.net();
    let router_ns = &net.router.ns;
    let flapped_v4 = net.node(flapped).spec.v4;
    let opens = |lab: &mut SpeakerLab<'_>| {
        lab.gobgp().neighbor(router_ns, flapped_v4)["state"]["messages"]["received"]["open"]
            .as_u64()
            .unwrap_or(0)
    };
    let before = established_count(lab, flapped);
    let opens_before = opens(lab);

    // A thread changes the link; the client keeps asking.
    let started = Instant::now();
    let (mut asked, mut two, mut none) = (0usize, 0usize, 0usize);
    let (mut two_ips, mut none_ips) = (BTreeSet::new(), BTreeSet::new());
    let cuts = std::thread::scope(|scope| {
        let toggler = scope.spawn(|| {
            let mut cuts = 0u64;
            let mut next = Duration::ZERO;
            while started.elapsed() < Duration::from_secs(secs) {
                net.cut_link(flapped);
                cuts += 1;
                next += down;
                std::thread::sleep(next.saturating_sub(started.elapsed()));
                net.restore_link(flapped);
                next += up;
                std::thread::sleep(next.saturating_sub(started.elapsed()));
            }
            cuts
        });
        while !toggler.is_finished() {
            for ip in l2 {
                let n = answers(net, ip).len();
                asked += 1;
                if n == 0 {
                    none += 1;
                    none_ips.insert(ip.clone());
                } else if n > 1 {
                    two += 1;
                    two_ips.insert(ip.clone());
                }
            }
        }
        toggler.join().expect("link toggler")
    });
    let flapping = started.elapsed();

    let settled = settle(lab, l2, bgp, &mut lab_hops);
    let reestablished = established_count(lab, flapped) - before;
    // GoBGP counts the OPENs it received from the node: one per session.
    let router_sessions = opens(lab) - opens_before;
    let per_cycle = FLAP_HOLD_SECS as f64 + JITTER_KEEPS * CONNECT_RETRY_SECS;
    let bound = (secs as f64 / per_cycle).floor() as usize + 1;
    println!(
        "flapping {flapped}'s link ({} ms down, {} ms up): {cuts} cuts in {:.1} s; the client asked {asked} times who answers ({} IPs): two MACs {two} times ({} IPs), none {none} times ({} IPs)",
        down.as_millis(),
        up.as_millis(),
        flapping.as_secs_f64(),
        l2.len(),
        two_ips.len(),
        none_ips.len()
    );
    println!(
        "  afterwards: settled after {}; {flapped}'s BGP session established again {reestablished} times by its speaker's log, {router_sessions} new OPENs at GoBGP (bound from hold time {FLAP_HOLD_SECS} s and ConnectRetry {CONNECT_RETRY_SECS} s x {JITTER_KEEPS}: {bound})",
        settled.as_ref().map_or_else(
            |f| format!("NEVER ({f:?})"),
            |d| format!("{} ms", d.as_millis())
        ),
    );
    if let Err(f) = &settled {
        panic!(
            "after the flapping the lab did not settle within {SETTLE_BOUND:?}: {f:?}\n{}",
            lab.logs()
        );
    }
    assert!(
        reestablished <= bound && router_sessions <= bound as u64,
        "{flapped}'s session was established {reestablished} times ({router_sessions} OPENs at GoBGP) in {secs} s of flapping, more than the timers allow ({bound})\n{}",
        lab.logs()
    );
}

#[test]
fn flapping_link() {
    let Some(net) = speaker_lab::network(GOBGP_TOOLS) else {
        return;
    };
    let secs = env_number("FERROLB_FLAP_SECS", 10);
    let mut lab = start_lab(&net, Router::GoBgp, &format!("{FLAP_HOLD_SECS}s"), false);
    let (l2, bgp) = addresses(&lab);
    settle(&mut lab, &l2, &bgp, &mut lab_hops)
        .unwrap_or_else(|f| panic!("the lab did not settle at start: {f:?}\n{}", lab.logs()));
    let second = Duration::from_secs(1);
    // Down and up every second: TCP carries the session over each cut.
    flap(&mut lab, &l2, &bgp, "node2", secs, (second, second));
    // Down for longer than the hold time: every cut resets the session.
    let long = Duration::from_secs(FLAP_HOLD_SECS + 1);
    flap(&mut lab, &l2, &bgp, "node2", secs, (long, second));
}

// ---------------------------------------------------------------- API server restart

/// The cluster lab's configuration and Services: four layer-2 Services,
/// two BGP ones announced to GoBGP.
fn cluster_objects() -> String {
    let mut text = config("9s", false);
    for i in 1..=4 {
        text += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: l2-{i}, namespace: default}}\n\
             spec: {{type: LoadBalancer, ports: [{{port: 8080}}]}}\n"
        );
    }
    for i in 1..=2 {
        text += &format!(
            "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: bgp-{i}\n  namespace: default\n  \
             annotations: {{ferrolb.io/address-pool: routed}}\n\
             spec: {{type: LoadBalancer, ports: [{{port: 8080}}]}}\n"
        );
    }
    text
}

/// Every Service's IPs, by name, from the API server.
fn cluster_ips(lab: &Cluster<'_>) -> Vec<(String, Vec<String>)> {
    let names = (1..=4)
        .map(|i| format!("l2-{i}"))
        .chain((1..=2).map(|i| format!("bgp-{i}")));
    names
        .map(|n| {
            let ips = lab.service_ips("default", &n);
            (n, ips)
        })
        .collect()
}

/// GoBGP's next hops for every prefix, asked with the `gobgp` CLI in
/// the router's namespace (no handle: a sampling thread can use it).
fn gobgp_cli_hops(ns: &Netns, prefixes: &[String]) -> Vec<Vec<String>> {
    let out = ns.exec(
        "gobgp",
        &["-p", "50051", "-j", "global", "rib", "-a", "ipv4"],
        ferrolb_e2e::netns::COMMAND_TIMEOUT,
    );
    let rib: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    prefixes
        .iter()
        .map(|prefix| gobgp_next_hops(&rib[prefix.as_str()]))
        .collect()
}

/// Whether the API server answers `/readyz` (as `restart.sh` asks: curl
/// with the admin certificate, from the `api` namespace, 2 s at most).
fn api_ready(ns: &Netns, state: &std::path::Path) -> bool {
    let env = std::fs::read_to_string(state.join("env")).unwrap_or_default();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("APISERVER_URL="))
        .expect("APISERVER_URL in the control plane's env file");
    let pki = |f: &str| {
        state
            .join("pki")
            .join(f)
            .to_str()
            .expect("utf-8")
            .to_owned()
    };
    ns.exec(
        "curl",
        &[
            "-fsS",
            "--max-time",
            "2",
            "--cacert",
            &pki("ca.crt"),
            "--cert",
            &pki("admin.crt"),
            "--key",
            &pki("admin.key"),
            &format!("{url}/readyz"),
        ],
        Duration::from_secs(5),
    )
    .status
    .success()
}

/// The pid of the running `name` of the control plane (its `pids` file).
fn control_plane_pid(state: &std::path::Path, name: &str) -> libc::pid_t {
    std::fs::read_to_string(state.join("pids"))
        .unwrap_or_default()
        .lines()
        .rev()
        .filter_map(|l| l.strip_prefix(&format!("{name} ")))
        .find_map(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {}/pids", state.display()))
}

/// Whether process `pid` exists.
fn alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 only checks.
    unsafe { libc::kill(pid, 0) == 0 }
}

/// Waits (bounded) until every layer-2 IP is answered by exactly one MAC,
/// that of the node its ServiceL2Status names, and every prefix has the
/// three nodes as next hops.
fn cluster_settled(
    lab: &Cluster<'_>,
    l2: &[(String, String)],
    bgp: &[String],
) -> Result<Duration, String> {
    let start = Instant::now();
    let router = &lab.net().net.router.ns;
    let all = hops_except(None);
    let mut last = String::new();
    let done = wait_until(SETTLE_BOUND, || {
        let mut wrong = Vec::new();
        for (service, ip) in l2 {
            let macs = answers(&lab.net().net, ip);
            let status = lab.l2_status_nodes(service);
            let one = macs.len() == 1
                && status.len() == 1
                && cluster_lab::mac_of(&status[0])
                    .eq_ignore_ascii_case(&macs.first().expect("one").to_string());
            if !one {
                wrong.push(format!("{ip}: answered by {macs:?}, status {status:?}"));
            }
        }
        for (prefix, hops) in bgp.iter().zip(gobgp_cli_hops(router, bgp)) {
            if hops != all {
                wrong.push(format!("{prefix}: next hops {hops:?}"));
            }
        }
        last = wrong.join("; ");
        wrong.is_empty().then(|| start.elapsed())
    });
    done.ok_or(last)
}

#[test]
fn api_server_restart() {
    let Some(net) = cluster_lab::network(GOBGP_TOOLS) else {
        return;
    };
    let mut lab = Cluster::start(&net, &cluster_objects(), Router::GoBgp);
    let before = cluster_ips(&lab);
    let l2: Vec<(String, String)> = before
        .iter()
        .filter(|(n, _)| n.starts_with("l2-"))
        .flat_map(|(n, ips)| ips.iter().map(move |ip| (n.clone(), ip.clone())))
        .collect();
    let bgp: Vec<String> = before
        .iter()
        .filter(|(n, _)| n.starts_with("bgp-"))
        .flat_map(|(_, ips)| ips.iter().map(|ip| format!("{ip}/32")))
        .collect();
    assert_eq!((l2.len(), bgp.len()), (4, 2), "{before:?}");
    let settled = cluster_settled(&lab, &l2, &bgp)
        .unwrap_or_else(|e| panic!("the cluster lab did not settle: {e}\n{}", lab.logs()));
    println!(
        "cluster lab settled {} ms after the start",
        settled.as_millis()
    );

    let router = &net.net.router.ns;
    let restart_script =
        ferrolb_e2e::control_plane::workspace_root().join("tests/apiserver/restart.sh");
    let state = lab.cp().state_dir().to_path_buf();
    let all = hops_except(None);

    // Two restarts of etcd and the API server: the first left alone, the
    // second with an owner's speaker killed while the API server is down.
    for round in ["restart alone", "restart with a kill -9"] {
        let killing = round != "restart alone";
        let stop = std::sync::atomic::AtomicBool::new(false);
        let apiserver = control_plane_pid(&state, "kube-apiserver");
        // The IP whose owner dies (asked while the API server is up).
        let target: Option<(&str, String)> = killing.then(|| {
            let (service, ip) = l2[0].clone();
            let owners = lab.l2_status_nodes(&service);
            let owner = NODES
                .iter()
                .find(|n| owners == [n.name])
                .unwrap_or_else(|| panic!("{service}: ServiceL2Status nodes {owners:?}"))
                .name;
            (owner, ip)
        });
        let started = Instant::now();
        let mut kill: Option<(Duration, &str, String, Duration, bool)> = None;
        // Layer-2 answers that were not exactly one MAC while the control
        // plane restarted (asked only in the round without a kill).
        // A question no MAC answered within ASK_WAIT is asked once more
        // before it counts (as a host's ARP asks again): with both cores
        // busy a debug-build speaker can answer a little later, while an IP
        // nobody answers stays unanswered. Two MACs count at once.
        let (mut asked, mut asked_again, mut odd) = (0usize, 0usize, Vec::new());
        let (samples, restart) = std::thread::scope(|scope| {
            let sampler = scope.spawn(|| {
                let mut samples = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed)
                    && started.elapsed() < 4 * FAULT_BOUND
                {
                    // Stamped when the answer is in: a kill during the
                    // query (GoBGP drops the killed node's route at once)
                    // must not count as a live node's route lost before it.
                    let hops = gobgp_cli_hops(router, &bgp);
                    samples.push((started.elapsed(), hops));
                    std::thread::sleep(FIB_POLL);
                }
                samples
            });
            let restarter = scope.spawn(|| {
                let out = ferrolb_e2e::netns::run_with_timeout(
                    net.api
                        .ns
                        .command(&restart_script)
                        .arg(&state)
                        .args(["etcd", "kube-apiserver"]),
                    Duration::from_secs(90),
                );
                (started.elapsed(), out)
            });
            if killing {
                // The API server's process is gone (restart.sh stopped it
                // and has not started the next), then an owner's speaker
                // dies.
                let down = wait_until(FAULT_BOUND, || (!alive(apiserver)).then_some(()));
                assert!(down.is_some(), "the API server never stopped");
                let (owner, ip) = target.clone().expect("chosen before the restart");
                let owner_mac: MacAddr = cluster_lab::mac_of(owner).parse().expect("MAC");
                let at = started.elapsed();
                lab.speaker(owner).kill();
                let moved = wait_until(FAULT_BOUND, || {
                    let macs = answers(&net.net, &ip);
                    (macs.len() == 1 && !macs.contains(&owner_mac)).then(|| started.elapsed() - at)
                });
                let moved = moved.unwrap_or_else(|| {
                    panic!(
                        "{ip} did not move off {owner} (killed while the API server was down)\n{}",
                        lab.logs()
                    )
                });
                let still_down = !api_ready(&net.api.ns, &state);
                kill = Some((at, owner, ip, moved, still_down));
            } else {
                while !restarter.is_finished() {
                    for (_, ip) in &l2 {
                        let mut macs = answers(&net.net, ip);
                        asked += 1;
                        if macs.is_empty() {
                            asked_again += 1;
                            macs = answers(&net.net, ip);
                        }
                        if macs.len() != 1 {
                            odd.push((started.elapsed(), ip.clone(), macs));
                        }
                    }
                }
            }
            let restart = restarter.join().expect("restart.sh");
            // Samples until the router has every live node's routes again.
            let live = hops_except(kill.as_ref().map(|k| k.1));
            let _ = wait_until(FAULT_BOUND, || {
                gobgp_cli_hops(router, &bgp)
                    .iter()
                    .all(|h| *h == live)
                    .then_some(())
            });
            std::thread::sleep(Duration::from_secs(1));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            (sampler.join().expect("sampler"), restart)
        });
        let (ready_after, out) = restart;
        assert!(
            out.status.success(),
            "restart.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // A withdrawal: a node's next hop missing that is not the killed
        // node's after its kill.
        let withdrawn: Vec<&(Duration, Vec<Vec<String>>)> = samples
            .iter()
            .filter(|(at, hops)| {
                let want = match &kill {
                    Some((killed, victim, ..)) if at >= killed => hops_except(Some(victim)),
                    _ => all.clone(),
                };
                hops.iter().any(|h| want.iter().any(|w| !h.contains(w)))
            })
            .collect();
        let now = cluster_ips(&lab);
        println!(
            "API server {round}: etcd and kube-apiserver ready again after {} ms; {} samples of GoBGP every {} ms, {} with a live node's route missing; {asked} layer-2 questions during the restart ({asked_again} unanswered within {} ms and asked again), {} not answered by exactly one MAC; Service IPs {}",
            ready_after.as_millis(),
            samples.len(),
            FIB_POLL.as_millis(),
            withdrawn.len(),
            ASK_WAIT.as_millis(),
            odd.len(),
            if now == before {
                "unchanged"
            } else {
                "CHANGED"
            }
        );
        if let Some((at, owner, ip, moved, still_down)) = &kill {
            println!(
                "  {owner}'s speaker killed {} ms into the restart (API server down): {ip} answered by another node {} ms later; API server still down then: {still_down}",
                at.as_millis(),
                moved.as_millis()
            );
            assert!(
                still_down,
                "the API server was back before the failover finished: the failover was not tested without it"
            );
        }
        assert_eq!(now, before, "a Service changed IP across the {round}");
        assert!(
            odd.is_empty(),
            "{round}: layer-2 IPs not answered by exactly one MAC: {odd:?}\n{}",
            lab.logs()
        );
        assert!(
            withdrawn.is_empty(),
            "{round}: GoBGP lost a live node's route: {withdrawn:?}\n{}",
            lab.logs()
        );
        if let Some((_, owner, ..)) = &kill {
            lab.start_speaker_again(owner);
        }
        let settled = cluster_settled(&lab, &l2, &bgp).unwrap_or_else(|e| {
            panic!(
                "not converged after the API server's {round}: {e}\n{}",
                lab.logs()
            )
        });
        println!(
            "  converged (one answering MAC per IP, the ServiceL2Status owner's; every node's route) {} ms after the check began (API server back{})",
            settled.as_millis(),
            if killing {
                " and the killed speaker started again"
            } else {
                ""
            }
        );
    }
}
