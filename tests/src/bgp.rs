//! BGP interop labs: two namespaces joined by a veth pair (a "router"
//! running a BGP daemon and a "node" running `ferrolb-speaker bgp-probe`),
//! and GoBGP driven through its configuration file and `gobgp -j`.
//!
//! Addresses: router 198.51.100.1/24 and 2001:db8::1/64 on `veth0`, node
//! 198.51.100.2/24 and 2001:db8::2/64. Nothing is made in the root
//! namespace: the veth pair is created in the router namespace with its
//! peer moved straight into the node namespace. Daemons run inside the
//! router namespace only and are killed on drop (and with the namespace).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::{COMMAND_TIMEOUT, Netns, find_tool};
use crate::speaker::speaker_binary;

/// Router addresses.
pub const ROUTER_V4: &str = "198.51.100.1";
/// Router IPv6 address.
pub const ROUTER_V6: &str = "2001:db8::1";
/// Node (probe) addresses.
pub const NODE_V4: &str = "198.51.100.2";
/// Node IPv6 address.
pub const NODE_V6: &str = "2001:db8::2";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The two namespaces of a BGP lab.
#[derive(Debug)]
pub struct BgpLab {
    /// Where the router daemon runs.
    pub router: Netns,
    /// Where the probe runs.
    pub node: Netns,
}

impl BgpLab {
    /// Creates both namespaces, the veth pair and the addresses.
    pub fn new() -> BgpLab {
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("flb-{}-bgp{n}", std::process::id());
        let router = Netns::create(&format!("{prefix}-r"));
        let node = Netns::create(&format!("{prefix}-n"));
        // No IPv6 duplicate address detection, set before the veth exists
        // so that both ends inherit it: a tentative address (the
        // link-local one too) would make the first IPv6 connection fail.
        for ns in [&router, &node] {
            ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
            ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        }
        router.ip(&[
            "link",
            "add",
            "veth0",
            "type",
            "veth",
            "peer",
            "name",
            "veth0",
            "netns",
            node.name(),
        ]);
        for (ns, v4, v6) in [(&router, ROUTER_V4, ROUTER_V6), (&node, NODE_V4, NODE_V6)] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", "veth0"]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", "veth0", "nodad"]);
            ns.ip(&["link", "set", "veth0", "up"]);
        }
        BgpLab { router, node }
    }
}

impl Default for BgpLab {
    fn default() -> Self {
        BgpLab::new()
    }
}

/// A daemon started by a test; killed (and reaped) on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Option<Child>,
    name: String,
}

impl Daemon {
    /// Spawns `program ARGS` inside `ns`, output to `log`.
    pub fn spawn(ns: &Netns, program: &str, args: &[&str], log: &Path) -> Daemon {
        let path = find_tool(program).unwrap_or_else(|| panic!("{program} not found"));
        let log = std::fs::File::create(log).expect("daemon log file");
        let child = ns
            .command(path)
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|err| panic!("spawning {program}: {err}"));
        Daemon {
            child: Some(child),
            name: program.to_owned(),
        }
    }

    /// SIGKILL and reap it now (nothing when it has stopped already).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether it still runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            eprintln!("stopped {}", self.name);
        }
    }
}

/// Polls `f` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Samples `state` every 200 ms for `window` (a bounded observation, for
/// what must not happen); returns the samples.
pub fn sample_for<T>(window: Duration, mut state: impl FnMut() -> T) -> Vec<T> {
    let end = Instant::now() + window;
    let mut samples = Vec::new();
    while Instant::now() < end {
        samples.push(state());
        thread::sleep(Duration::from_millis(200));
    }
    samples
}

/// GoBGP (`gobgpd`) in the router namespace, its gRPC API on the
/// namespace's loopback.
#[derive(Debug)]
pub struct GoBgp {
    daemon: Daemon,
    dir: tempfile::TempDir,
    /// The gRPC API's port on the namespace's loopback.
    api_port: u16,
}

/// One neighbour of a GoBGP configuration.
#[derive(Clone, Debug)]
pub struct GoBgpNeighbor {
    /// Its address.
    pub address: String,
    /// Its AS.
    pub asn: u32,
}

impl GoBgpNeighbor {
    /// The neighbour at `address` in AS `asn`.
    pub fn new(address: &str, asn: u32) -> GoBgpNeighbor {
        GoBgpNeighbor {
            address: address.to_owned(),
            asn,
        }
    }
}

impl GoBgp {
    /// Starts gobgpd with AS `asn` and the given neighbours (IPv4 and IPv6
    /// unicast each).
    pub fn start(ns: &Netns, asn: u32, neighbors: &[GoBgpNeighbor]) -> GoBgp {
        GoBgp::start_on(ns, asn, &[ROUTER_V4, ROUTER_V6], 50051, neighbors)
    }

    /// Starts gobgpd listening on `local` only (the first is its router ID)
    /// with its API on `api_port`: several can run in one namespace, each
    /// a separate peer at its own address.
    pub fn start_on(
        ns: &Netns,
        asn: u32,
        local: &[&str],
        api_port: u16,
        neighbors: &[GoBgpNeighbor],
    ) -> GoBgp {
        GoBgp::start_configured(ns, asn, local, api_port, neighbors, None)
    }

    /// [`start`](Self::start) with graceful restart (RFC 4724) on every
    /// neighbour and both families (`[neighbors.graceful-restart]` with
    /// `restart-time`, `[neighbors.afi-safis.mp-graceful-restart]`): GoBGP
    /// advertises the capability, and after
    /// [`restart`](Self::restart)`(ns, true)` (gobgpd `-r`) sets the
    /// Restart State bit and waits for the peers' End-of-RIB.
    pub fn start_graceful(
        ns: &Netns,
        asn: u32,
        neighbors: &[GoBgpNeighbor],
        restart_time: u16,
    ) -> GoBgp {
        GoBgp::start_configured(
            ns,
            asn,
            &[ROUTER_V4, ROUTER_V6],
            50051,
            neighbors,
            Some(restart_time),
        )
    }

    fn start_configured(
        ns: &Netns,
        asn: u32,
        local: &[&str],
        api_port: u16,
        neighbors: &[GoBgpNeighbor],
        graceful_restart: Option<u16>,
    ) -> GoBgp {
        let dir = tempfile::tempdir().expect("temp dir");
        let list: Vec<String> = local.iter().map(|a| format!("\"{a}\"")).collect();
        let mut config = format!(
            "[global.config]\n  as = {asn}\n  router-id = \"{}\"\n  \
             local-address-list = [{}]\n",
            local[0],
            list.join(", ")
        );
        for n in neighbors {
            config += &format!(
                "[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    \
                 peer-as = {}\n",
                n.address, n.asn
            );
            if let Some(restart_time) = graceful_restart {
                config += &format!(
                    "  [neighbors.graceful-restart.config]\n    enabled = true\n    \
                     restart-time = {restart_time}\n"
                );
            }
            for family in ["ipv4-unicast", "ipv6-unicast"] {
                config += &format!(
                    "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      \
                     afi-safi-name = \"{family}\"\n"
                );
                if graceful_restart.is_some() {
                    config += "    [neighbors.afi-safis.mp-graceful-restart.config]\n      \
                               enabled = true\n";
                }
            }
        }
        let path = dir.path().join("gobgpd.toml");
        std::fs::write(&path, config).expect("writing gobgpd.toml");
        let daemon = GoBgp::spawn_daemon(ns, dir.path(), api_port, false);
        let mut gobgp = GoBgp {
            daemon,
            dir,
            api_port,
        };
        gobgp.wait_api(ns);
        gobgp
    }

    /// gobgpd on `dir/gobgpd.toml`, output to `dir/gobgpd.log`; with
    /// `-r` (the Restart State bit of graceful restart) when `restarting`.
    fn spawn_daemon(ns: &Netns, dir: &Path, api_port: u16, restarting: bool) -> Daemon {
        let path = dir.join("gobgpd.toml");
        let api = format!("127.0.0.1:{api_port}");
        let mut args = vec![
            "-f",
            path.to_str().expect("utf-8 path"),
            "-t",
            "toml",
            "-p",
            "--api-hosts",
            &api,
            "--pprof-disable",
        ];
        if restarting {
            args.push("-r");
        }
        Daemon::spawn(ns, "gobgpd", &args, &dir.join("gobgpd.log"))
    }

    fn wait_api(&mut self, ns: &Netns) {
        let up = wait_until(Duration::from_secs(10), || {
            self.try_json(ns, &["neighbor"]).map(|_| ())
        });
        assert!(up.is_some(), "gobgpd API not up:\n{}", self.log());
    }

    /// Restarts gobgpd as after a crash: SIGKILL (no NOTIFICATION; the
    /// kernel closes its connections), then the same configuration again,
    /// with `-r` when `restarting` (graceful restart: the Restart State
    /// bit, and GoBGP defers its best paths until the peers' End-of-RIB).
    /// Waits until its API answers (bounded: 10 s). The old log is kept
    /// as `gobgpd.log.N` and shown by [`log`](Self::log).
    pub fn restart(&mut self, ns: &Netns, restarting: bool) {
        self.daemon.kill();
        let log = self.dir.path().join("gobgpd.log");
        let kept = (1..1000)
            .map(|n| self.dir.path().join(format!("gobgpd.log.{n}")))
            .find(|p| !p.exists())
            .expect("fewer than 1000 restarts");
        std::fs::rename(&log, &kept).expect("keeping gobgpd's log");
        self.daemon = GoBgp::spawn_daemon(ns, self.dir.path(), self.api_port, restarting);
        self.wait_api(ns);
    }

    /// gobgpd's log.
    pub fn log(&self) -> String {
        let earlier: String = (1..1000)
            .map_while(|n| {
                let path = self.dir.path().join(format!("gobgpd.log.{n}"));
                let text = std::fs::read_to_string(path).ok()?;
                Some(format!("--- gobgpd, run {n} ---\n{text}"))
            })
            .collect();
        let now = std::fs::read_to_string(self.dir.path().join("gobgpd.log")).unwrap_or_default();
        if earlier.is_empty() {
            now
        } else {
            format!("{earlier}--- gobgpd, running ---\n{now}")
        }
    }

    fn try_json(&mut self, ns: &Netns, args: &[&str]) -> Option<Value> {
        if !self.daemon.running() {
            panic!("gobgpd exited:\n{}", self.log());
        }
        let port = self.api_port.to_string();
        let mut full = vec!["-p", port.as_str(), "-j"];
        full.extend_from_slice(args);
        let out = ns.exec("gobgp", &full, COMMAND_TIMEOUT);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `gobgp -j ARGS` inside `ns`.
    pub fn json(&mut self, ns: &Netns, args: &[&str]) -> Value {
        self.try_json(ns, args)
            .unwrap_or_else(|| panic!("gobgp {args:?} failed; gobgpd log:\n{}", self.log()))
    }

    /// The neighbour entry of `address`.
    pub fn neighbor(&mut self, ns: &Netns, address: &str) -> Value {
        let all = self.json(ns, &["neighbor"]);
        all.as_array()
            .and_then(|a| {
                a.iter()
                    .find(|n| n["state"]["neighbor_address"] == address)
                    .cloned()
            })
            .unwrap_or(Value::Null)
    }

    /// The global RIB of `family` (`ipv4` or `ipv6`): prefix → paths.
    pub fn rib(&mut self, ns: &Netns, family: &str) -> serde_json::Map<String, Value> {
        match self.json(ns, &["global", "rib", "-a", family]) {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The next hops GoBGP has for `prefix` (IPv4), sorted.
    pub fn next_hops(&mut self, ns: &Netns, prefix: &str) -> Vec<String> {
        let rib = self.rib(ns, "ipv4");
        gobgp_next_hops(rib.get(prefix).unwrap_or(&Value::Null))
    }
}

/// The NEXT_HOP attributes (type 3) of `paths`, one prefix's entry of
/// `gobgp -j global rib` (an array of paths; anything else has none),
/// sorted.
pub fn gobgp_next_hops(paths: &Value) -> Vec<String> {
    let mut hops: Vec<String> = paths
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            p["attrs"].as_array()?.iter().find(|a| a["type"] == 3)?["nexthop"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    hops.sort();
    hops
}

/// GoBGP's `session_state` for Established.
pub const GOBGP_ESTABLISHED: u64 = 6;

/// A running `ferrolb-speaker bgp-probe`; killed on drop.
#[derive(Debug)]
pub struct BgpProbe {
    child: Option<Child>,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Option<thread::JoinHandle<String>>,
}

/// The probe arguments of a session in AS `asn` from `source` to `peer`
/// in AS `peer_asn`: `--asn --peer --peer-asn --source`.
pub fn session_args(asn: u32, peer: &str, peer_asn: u32, source: &str) -> Vec<String> {
    vec![
        "--asn".to_owned(),
        asn.to_string(),
        "--peer".to_owned(),
        peer.to_owned(),
        "--peer-asn".to_owned(),
        peer_asn.to_string(),
        "--source".to_owned(),
        source.to_owned(),
    ]
}

impl BgpProbe {
    /// Starts `bgp-probe` in `ns` for a session in AS `asn` from `source`
    /// to `peer` in AS `peer_asn` ([`session_args`]), then `extra`.
    pub fn start_session(
        ns: &Netns,
        asn: u32,
        peer: &str,
        peer_asn: u32,
        source: &str,
        extra: &[&str],
    ) -> BgpProbe {
        let session = session_args(asn, peer, peer_asn, source);
        let mut args: Vec<&str> = session.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        BgpProbe::start(ns, &args)
    }

    /// Starts `bgp-probe ARGS` in `ns`.
    pub fn start(ns: &Netns, args: &[&str]) -> BgpProbe {
        let mut command = ns.command(speaker_binary());
        command
            .arg("bgp-probe")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning bgp-probe");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "event": "unparsed", "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        BgpProbe {
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
        }
    }

    /// Waits up to `timeout` for a line with `event` satisfying `matches`.
    pub fn expect(
        &mut self,
        event: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        self.expect_since(0, event, timeout, matches)
    }

    /// How many lines were read so far: a mark for [`BgpProbe::expect_since`].
    pub fn mark(&mut self) -> usize {
        self.events().len()
    }

    /// Like [`BgpProbe::expect`], but only lines from the `mark`-th on
    /// count (lines printed after [`BgpProbe::mark`] returned `mark`).
    /// When the line has to be waited for, it returns as soon as the
    /// line arrives.
    pub fn expect_since(
        &mut self,
        mark: usize,
        event: &str,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        let hit = |l: &Value| l["event"] == event && matches(l);
        if let Some(line) = self.seen.iter().skip(mark).find(|l| hit(l)) {
            return line.clone();
        }
        let deadline = Instant::now() + timeout;
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line.clone());
            if self.seen.len() > mark && hit(&line) {
                return line;
            }
        }
        panic!(
            "no {event} line within {timeout:?}; probe output:\n{}",
            self.transcript()
        );
    }

    /// Every line so far.
    pub fn transcript(&mut self) -> String {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Every line so far, parsed (a line that is not JSON is
    /// `{"event": "unparsed", "line": …}`).
    pub fn events(&mut self) -> &[Value] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Whether any line so far is an `event` line.
    pub fn saw(&mut self, event: &str) -> bool {
        self.events().iter().any(|l| l["event"] == event)
    }

    /// SIGTERM, then a bounded wait; returns the exit status and stderr.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let child = self.child.take().expect("probe already stopped");
        crate::stop_probe(
            "bgp-probe",
            child,
            self.stderr.take(),
            &self.lines,
            &mut self.seen,
        )
    }
}

/// Stops `probe` with SIGTERM (bounded wait), checks that it exited 0 and
/// that the NOTIFICATION it sent on the way out (the first one after its
/// `stopping` line; an earlier one may be a collision's Cease 6/7) is
/// Cease/Administrative Shutdown (6/2), and returns that line.
pub fn stop_with_cease(probe: &mut BgpProbe) -> Value {
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    let cease = probe
        .events()
        .iter()
        .skip_while(|l| l["event"] != "stopping")
        .find(|l| l["event"] == "notification_sent")
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no NOTIFICATION sent after stopping:\n{}",
                probe.transcript()
            )
        });
    assert_eq!(cease["code"], 6, "{cease}");
    assert_eq!(cease["subcode"], 2, "{cease}");
    cease
}

impl Drop for BgpProbe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
