//! Helpers of the end-to-end tests (the tests themselves live in tests/).
//!
//! - [`answerers`]: which MACs answer ARP/NDP for an address, as a
//!   client on the LAN sees it.
//! - [`bgp`]: BGP interop labs (router and node namespaces, GoBGP, the
//!   `bgp-probe` runner).
//! - [`capture`]: tcpdump captures inside a test namespace.
//! - [`cluster_lab`]: the speaker lab in cluster mode (a v1.20 API server
//!   inside the lab, the controller and speakers watching it).
//! - [`connect_loop`]: a client connecting over TCP in a loop while a
//!   test changes the lab, counting failed connects and resets.
//! - [`control_plane`]: a throw-away Kubernetes v1.20 control plane
//!   (`tests/apiserver/`), in the test's namespace or a lab's, and kubectl.
//! - [`lab_routes`]: what a speaker lab's router learnt (next hops as
//!   nodes, bounded waits on them and on FRR's BFD peers), for the
//!   standalone and the cluster-mode lab alike.
//! - [`readme`]: the README's fenced blocks, run as the docs harness runs
//!   them.
//! - [`netns`]: network-namespace labs (bridge, hosts, commands inside
//!   them), cleaned up by Drop guards.
//! - [`speaker`]: building `ferrolb-speaker` and running `l2-probe`.
//! - [`speaker_lab`]: the three-node speaker daemon lab (controller and
//!   speakers in standalone mode, a client, GoBGP or FRR as the router).
//! - [`require`]: the skip-or-fail rule for tests that need root and
//!   system tools.

pub mod answerers;
pub mod bgp;
pub mod capture;
pub mod cluster_lab;
pub mod connect_loop;
pub mod control_plane;
pub mod lab_routes;
pub mod netns;
pub mod plan_check;
pub mod readme;
pub mod routers;
pub mod speaker;
pub mod speaker_lab;

/// Checks what a test needs: root (network namespaces and raw sockets)
/// and the given `(tool, Debian package)` pairs. Returns true when the
/// test can run. Otherwise prints `SKIPPED: <reason>` and returns false —
/// except when the `CI` environment variable is set, where a missing
/// prerequisite is a failure (panic), so CI never passes without running.
pub fn require(tools: &[(&str, &str)]) -> bool {
    let mut missing = Vec::new();
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        missing.push("not running as root (network namespaces and raw sockets need it)".to_owned());
    }
    for (tool, package) in tools {
        if netns::find_tool(tool).is_none() {
            missing.push(format!(
                "`{tool}` not found (Debian package {package}; see tests/setup/apt-packages.txt)"
            ));
        }
    }
    if missing.is_empty() {
        return true;
    }
    let reason = missing.join("; ");
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}

use std::process::{Child, ExitStatus};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The `q` quantile (nearest rank) of `times`, in milliseconds; NaN when
/// there are none.
pub fn quantile_ms(times: &[Duration], q: f64) -> f64 {
    if times.is_empty() {
        return f64::NAN;
    }
    let mut sorted = times.to_vec();
    sorted.sort();
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1e3
}

/// Stops a probe process the way an admin would (SIGTERM), waits at most 10 s
/// for it to exit (then kills it and panics), joins its stderr reader and
/// collects its last JSON lines (at most 2 s more). Returns the exit status
/// and stderr.
pub fn stop_probe(
    name: &str,
    mut child: Child,
    stderr: Option<std::thread::JoinHandle<String>>,
    lines: &Receiver<serde_json::Value>,
    seen: &mut Vec<serde_json::Value>,
) -> (ExitStatus, String) {
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
    // SAFETY: kill(2) of our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait().expect("waiting for the probe") {
            Some(status) => break status,
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{name} did not exit within 10 s of SIGTERM");
            }
        }
    };
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    // The reader ends at EOF; collect what it still has.
    let deadline = Instant::now() + Duration::from_secs(2);
    while let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        seen.push(line);
    }
    (status, stderr)
}
