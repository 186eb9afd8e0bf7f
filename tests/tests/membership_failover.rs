//! Layer-2 failover after a link cut, per membership profile, in the
//! standalone speaker lab ([`ferrolb_e2e::speaker_lab`]: three nodes, a
//! client, no router): the owner of a layer-2 IP loses its link; the time
//! from the cut until the client's neighbour entry holds another node's MAC
//! (the new owner's gratuitous ARP) is one failover. The link comes back,
//! the IP settles on one owner again, and the next trial cuts that owner.
//!
//! - `fast_profile_fails_over` (the test command): three trials with
//!   `--membership-profile fast`; every cut must move the IP.
//! - `failover_benchmark` (ignored; docs/BENCHMARKS.md): 20 trials per
//!   profile, p50/p99/max printed.
//! - `no_false_failover_under_load` (ignored): the fast profile left alone
//!   for `FERROLB_STABILITY_SECS` (default 600) with both cores busy; no
//!   membership change and no owner change may happen.
//!
//! Needs root, `ip`, `ping`: without them each test prints `SKIPPED: …`
//! (fails when `CI` is set).
//! Run: `sudo -E cargo test --release -p ferrolb-e2e --test membership_failover -- --ignored --test-threads 1 --nocapture`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::speaker_lab::{
    self, NODES, Network, Router, SETTLE, SpeakerLab, assigned, settled_owner, wait_moved,
};

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec:
  addresses: [198.51.100.100-198.51.100.119]
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec:
  ipAddressPools: [lan]
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "e2e-test-key-0123456789abcdef"}
"#;

const SERVICES: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: LoadBalancer
  ports: [{port: 8080, protocol: TCP}]
"#;

/// The lab with every speaker on membership profile `profile`; IPv6
/// addresses survive a link cut (keep_addr_on_down).
fn lab<'n>(net: &'n Network, profile: &str) -> SpeakerLab<'n> {
    for node in &net.nodes {
        node.host
            .ns
            .sysctl("net.ipv6.conf.eth0.keep_addr_on_down", "1");
    }
    SpeakerLab::start_with_args(
        net,
        &[("config.yaml", CONFIG), ("services.yaml", SERVICES)],
        Router::None,
        &["--membership-profile", profile],
    )
}

/// `trials` link cuts of the owner of `web`'s IP; each failover time.
fn failovers(lab: &SpeakerLab<'_>, trials: usize) -> Vec<Duration> {
    let ip = assigned(lab.dir(), "web")[0].clone();
    let client = &lab.net().client.ns;
    let mut times = Vec::new();
    for trial in 1..=trials {
        let owner = settled_owner(lab, &ip)
            .unwrap_or_else(|| panic!("trial {trial}: no settled owner of {ip}:\n{}", lab.logs()));
        lab.net().cut_link(owner);
        let moved = wait_moved(client, std::slice::from_ref(&ip), lab.mac_of(owner));
        let (took, macs) = moved.unwrap_or_else(|| {
            panic!(
                "trial {trial}: {ip} did not move off {owner} after its link was cut:\n{}",
                lab.logs()
            )
        });
        let to = lab.node_with_mac(&macs[0]).unwrap_or("?");
        println!(
            "trial {trial}: link of {owner} cut, {ip} answered by {to} after {:.0} ms",
            took.as_secs_f64() * 1e3
        );
        times.push(took);
        lab.net().restore_link(owner);
        // All three members again before the next cut.
        let back = wait_until(SETTLE, || lab.all_members_up().then_some(()));
        assert!(
            back.is_some(),
            "trial {trial}: the members did not come back to three after {owner}'s link was restored:\n{}",
            lab.logs()
        );
    }
    times
}

/// How many times the speakers' logs say a member is down.
fn downs(lab: &SpeakerLab<'_>) -> usize {
    NODES
        .iter()
        .map(|n| {
            lab.speaker_log(n.name)
                .lines()
                .filter(|l| l.contains("membership: ") && l.contains(") is down"))
                .count()
        })
        .sum()
}

#[test]
fn fast_profile_fails_over() {
    let Some(net) = speaker_lab::network(&[]) else {
        return;
    };
    let lab = lab(&net, "fast");
    let fast = wait_until(SETTLE, || {
        lab.status("node1")["membership"]
            .as_str()
            .is_some_and(|m| m.contains("(fast profile)"))
            .then_some(())
    });
    assert!(fast.is_some(), "{}\n{}", lab.status("node1"), lab.logs());
    let times = failovers(&lab, 3);
    assert_eq!(times.len(), 3);
}

#[test]
#[ignore = "benchmark: 20 link cuts per profile (docs/BENCHMARKS.md)"]
fn failover_benchmark() {
    if speaker_lab::network(&[]).is_none() {
        return;
    }
    for profile in ["fast", "default"] {
        // A fresh lab per profile (the lab puts the IPs on the nodes).
        let net = Network::new();
        let times = {
            let lab = lab(&net, profile);
            failovers(&lab, 20)
        };
        println!(
            "membership profile {profile}: {} link cuts, failover p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            times.len(),
            ferrolb_e2e::quantile_ms(&times, 0.5),
            ferrolb_e2e::quantile_ms(&times, 0.99),
            ferrolb_e2e::quantile_ms(&times, 1.0)
        );
    }
}

/// Members declared down (the logs) and layer-2 owners (the status files).
fn snapshot(lab: &SpeakerLab<'_>, ip: &str) -> (usize, Vec<&'static str>) {
    (downs(lab), lab.l2_owners(ip))
}

#[test]
#[ignore = "benchmark: 10 minutes with both cores busy (docs/BENCHMARKS.md)"]
fn no_false_failover_under_load() {
    let Some(net) = speaker_lab::network(&[]) else {
        return;
    };
    let seconds: u64 = std::env::var("FERROLB_STABILITY_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let lab = lab(&net, "fast");
    let ip = assigned(lab.dir(), "web")[0].clone();
    settled_owner(&lab, &ip).unwrap_or_else(|| panic!("no settled owner of {ip}:\n{}", lab.logs()));
    assert!(
        wait_until(SETTLE, || lab.all_members_up().then_some(())).is_some(),
        "the speakers do not all see each other:\n{}",
        lab.logs()
    );
    let before = snapshot(&lab, &ip);
    let busy = AtomicBool::new(true);
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let started = Instant::now();
    let mut seen = Vec::new();
    std::thread::scope(|scope| {
        for _ in 0..cores {
            scope.spawn(|| {
                let mut x = 1u64;
                while busy.load(Ordering::Relaxed) {
                    for _ in 0..100_000 {
                        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                }
            });
        }
        while started.elapsed() < Duration::from_secs(seconds) {
            std::thread::sleep(Duration::from_secs(1));
            let now = snapshot(&lab, &ip);
            if now != before {
                seen.push(format!("at {} s: {now:?}", started.elapsed().as_secs()));
            }
        }
        busy.store(false, Ordering::Relaxed);
    });
    println!(
        "fast profile, {seconds} s with {cores} busy threads: {} samples differed from {before:?}: {seen:?}",
        seen.len()
    );
    assert!(seen.is_empty(), "{seen:?}\n{}", lab.logs());
}
