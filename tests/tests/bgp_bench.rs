//! Route-injection benchmark (lab run, not part of the test command):
//! the time from BGP session established until a GoBGP receiver holds
//! 100,000 IPv4 /32 and 100,000 IPv6 /128 routes, announced by
//! `ferrolb-speaker bgp-probe`, against BIRD 2 announcing the same set to
//! the same kind of receiver, in the same run. Both senders use one IPv4
//! session carrying both families, the same AS numbers and the same
//! addresses; each round starts a fresh GoBGP, and the senders alternate.
//!
//! Time is measured on GoBGP's side, by polling `gobgp -j neighbor` every
//! 20 ms: t0 when the session first reads Established, t1 when both
//! families' received counts reach 100,000. The 20 ms polling adds the same
//! error to both.
//!
//! The IPv4 prefixes are /32s in 240.0.0.0/8 (reserved, never routed),
//! the IPv6 ones /128s in 2001:db8:1::/48. Neither receiver nor senders
//! install routes in a kernel table and no packet is sent to these
//! addresses: the routes only live in the BGP daemons.
//!
//! Run (root; gobgpd, bird2): `cargo test --release -p ferrolb-e2e --test
//! bgp_bench -- --ignored --nocapture`. `FERROLB_BENCH_ROUTES` changes the
//! number of routes per family, `FERROLB_BENCH_ROUNDS` the rounds (3).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, GOBGP_ESTABLISHED, GoBgp, GoBgpNeighbor, NODE_V4, NODE_V6, ROUTER_V4,
};
use ferrolb_e2e::routers::{Bird, BirdConfig, BirdExport, BirdNeighbor};
use serde_json::Value;

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
/// Bound of the whole transfer of one round.
const TRANSFER_LIMIT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` IPv4 /32s in 240.0.0.0/8 and `n` IPv6 /128s in 2001:db8:1::/48.
fn prefixes(n: usize) -> (Vec<String>, Vec<String>) {
    assert!(n <= 1 << 24, "at most 2^24 routes per family");
    let v4 = (0..n)
        .map(|i| {
            let i = u32::try_from(i).expect("fits u32") + 1;
            format!(
                "240.{}.{}.{}/32",
                (i >> 16) & 0xff,
                (i >> 8) & 0xff,
                i & 0xff
            )
        })
        .collect();
    let v6 = (0..n)
        .map(|i| format!("2001:db8:1::{:x}:{:x}/128", (i >> 16) & 0xffff, i & 0xffff))
        .collect();
    (v4, v6)
}

/// GoBGP's view of the sender: (established, received IPv4, received IPv6).
fn progress(gobgp: &mut GoBgp, lab: &BgpLab) -> (bool, u64, u64, Value) {
    let n = gobgp.neighbor(&lab.router, NODE_V4);
    let up = n["state"]["session_state"] == GOBGP_ESTABLISHED;
    let mut v4 = 0;
    let mut v6 = 0;
    for afi_safi in n["afi_safis"].as_array().into_iter().flatten() {
        let received = afi_safi["state"]["received"].as_u64().unwrap_or(0);
        match afi_safi["state"]["family"]["afi"].as_u64() {
            Some(1) => v4 += received,
            Some(2) => v6 += received,
            _ => {}
        }
    }
    (up, v4, v6, n)
}

/// Polls GoBGP until the sender is established and both counts reach `n`;
/// returns the time between the two.
fn measure(gobgp: &mut GoBgp, lab: &BgpLab, n: u64, who: &str) -> Duration {
    let start = Instant::now();
    let mut established = None;
    let mut last = Value::Null;
    while start.elapsed() < TRANSFER_LIMIT {
        let (up, v4, v6, json) = progress(gobgp, lab);
        let now = Instant::now();
        last = json;
        if up && established.is_none() {
            established = Some(now);
        }
        if let Some(t0) = established
            && v4 >= n
            && v6 >= n
        {
            return now - t0;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{who}: GoBGP did not receive {n}+{n} routes within {TRANSFER_LIMIT:?}: {last}");
}

fn receiver(lab: &BgpLab) -> GoBgp {
    GoBgp::start(
        &lab.router,
        ROUTER_ASN,
        &[GoBgpNeighbor::new(NODE_V4, NODE_ASN)],
    )
}

fn run_ours(lab: &BgpLab, file: &std::path::Path, n: u64) -> Duration {
    let mut gobgp = receiver(lab);
    let mut probe = BgpProbe::start_session(
        &lab.node,
        NODE_ASN,
        ROUTER_V4,
        ROUTER_ASN,
        NODE_V4,
        &[
            "--next-hop",
            NODE_V6,
            "--prefixes-file",
            file.to_str().expect("utf-8 path"),
        ],
    );
    let took = measure(&mut gobgp, lab, n, "bgp-probe");
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    took
}

fn run_bird(lab: &BgpLab, v4: &[String], v6: &[String], n: u64) -> Duration {
    let mut gobgp = receiver(lab);
    let mut neighbor = BirdNeighbor::new("ferro", NODE_V4, NODE_ASN, ROUTER_V4, ROUTER_ASN);
    neighbor.ipv4 = Some(BirdExport::Static);
    neighbor.ipv6 = Some(BirdExport::Static);
    neighbor.ipv6_next_hop = Some(NODE_V6.to_owned());
    neighbor.connect_retry = 1;
    let config = BirdConfig {
        router_id: NODE_V4.to_owned(),
        neighbors: vec![neighbor],
        static_routes: v4.iter().chain(v6).cloned().collect(),
    };
    let bird = Bird::start(&lab.node, &config);
    let took = measure(&mut gobgp, lab, n, "BIRD");
    drop(bird);
    took
}

fn stats(values: &[Duration]) -> String {
    let mut ms: Vec<f64> = values.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let mut out = String::new();
    for v in &ms {
        let _ = write!(out, "{v:.0} ");
    }
    format!("[{}] ms, median {:.0} ms", out.trim_end(), ms[ms.len() / 2])
}

#[test]
#[ignore = "benchmark (minutes, root, gobgpd, bird2): run with --release --ignored --nocapture"]
fn route_injection_against_bird() {
    if !ferrolb_e2e::require(&[
        ("ip", "iproute2"),
        ("gobgpd", "gobgpd"),
        ("gobgp", "gobgpd"),
        ("bird", "bird2"),
        ("birdc", "bird2"),
    ]) {
        return;
    }
    let n = env_usize("FERROLB_BENCH_ROUTES", 100_000);
    let rounds = env_usize("FERROLB_BENCH_ROUNDS", 3);
    let (v4, v6) = prefixes(n);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("prefixes.txt");
    std::fs::write(
        &file,
        v4.iter().chain(&v6).fold(String::new(), |mut s, p| {
            s.push_str(p);
            s.push('\n');
            s
        }),
    )
    .expect("writing the prefixes file");

    let lab = BgpLab::new();
    let count = u64::try_from(n).expect("fits u64");
    let mut ours = Vec::new();
    let mut bird = Vec::new();
    for round in 0..rounds {
        // Alternate who goes first, so neither always meets a warmer
        // machine.
        if round % 2 == 0 {
            ours.push(run_ours(&lab, &file, count));
            bird.push(run_bird(&lab, &v4, &v6, count));
        } else {
            bird.push(run_bird(&lab, &v4, &v6, count));
            ours.push(run_ours(&lab, &file, count));
        }
        println!(
            "round {round}: bgp-probe {:?}, BIRD {:?}",
            ours.last().expect("one run"),
            bird.last().expect("one run")
        );
    }
    println!("{n} IPv4 /32 + {n} IPv6 /128 into GoBGP, established → all received:");
    println!("  ferrolb bgp-probe: {}", stats(&ours));
    println!("  BIRD {}: {}", bird_version(&lab), stats(&bird));
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    println!(
        "  ratio ours/BIRD (medians): {:.2}",
        median(&ours).as_secs_f64() / median(&bird).as_secs_f64()
    );
}

fn bird_version(lab: &BgpLab) -> String {
    let out = lab
        .node
        .exec("bird", &["--version"], Duration::from_secs(10));
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    text.trim().to_owned()
}
