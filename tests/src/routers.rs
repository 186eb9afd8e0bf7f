//! Real routers for the BGP interop labs of [`crate::bgp`]: FRR (zebra,
//! bgpd, bfdd), BIRD 2 and ExaBGP, each run inside the lab's router
//! namespace without any service manager, with everything they write
//! (configuration, pid files, control sockets, logs) in a temporary
//! directory of their own, and each queried through its own CLI.
//!
//! - [`Frr`]: `vtysh --vty_socket DIR -c '… json'`.
//! - [`Bird`]: `birdc -s SOCKET`, text output parsed ([`parse_bird_routes`],
//!   [`BirdRoute`]).
//! - [`ExaBgp`]: an API process writes every message ExaBGP parsed (JSON,
//!   one per line) to a file; [`ExaBgp::routes`] replays them.
//!
//! Every daemon is killed when its handle drops (fields are dropped before
//! the temporary directory), and with the namespace anyway. Every wait is
//! bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::bgp::{Daemon, wait_until};
use crate::netns::{COMMAND_TIMEOUT, Netns, find_tool, run_with_timeout};

/// How long a daemon may take to answer its CLI after being started.
const START_TIMEOUT: Duration = Duration::from_secs(15);

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

fn write_file(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|err| panic!("writing {}: {err}", path.display()));
}

fn read_or_empty(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

pub use crate::bgp::stop_with_cease;

// ---------------------------------------------------------------- FRR

/// Where the FRR daemons are installed (Debian).
pub const FRR_DIR: &str = "/usr/lib/frr";

/// BFD timers of a neighbour (a bfdd profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BfdTimers {
    /// Required minimum receive interval, milliseconds.
    pub receive_ms: u32,
    /// Desired minimum transmit interval, milliseconds.
    pub transmit_ms: u32,
    /// Detection multiplier.
    pub detect_multiplier: u8,
}

impl Default for BfdTimers {
    fn default() -> Self {
        BfdTimers {
            receive_ms: 300,
            transmit_ms: 300,
            detect_multiplier: 3,
        }
    }
}

/// One neighbour of an [`FrrConfig`].
#[derive(Clone, Debug)]
pub struct FrrNeighbor {
    /// Its address (IPv4 or IPv6).
    pub address: String,
    /// Its AS (equal to ours for iBGP).
    pub remote_as: u32,
    /// TCP MD5 password (RFC 2385).
    pub password: Option<String>,
    /// `neighbor X graceful-restart` (full graceful-restart mode).
    pub graceful_restart: bool,
    /// BFD with these timers (a bfdd profile of its own), or none.
    pub bfd: Option<BfdTimers>,
    /// IPv4 unicast activated.
    pub ipv4: bool,
    /// IPv6 unicast activated.
    pub ipv6: bool,
    /// `timers KEEPALIVE HOLD`.
    pub timers: Option<(u16, u16)>,
    /// `timers connect SECONDS` (FRR's own reconnect interval).
    pub connect_retry: Option<u16>,
    /// `ttl-security hops HOPS` (GTSM, RFC 5082: FRR sends with TTL 255
    /// and accepts only TTL >= 256 - HOPS from this neighbour).
    pub ttl_security: Option<u8>,
}

impl FrrNeighbor {
    /// A neighbour with both unicast families, no password, no graceful
    /// restart, no BFD, FRR's timers and a 2 s reconnect interval.
    pub fn new(address: &str, remote_as: u32) -> FrrNeighbor {
        FrrNeighbor {
            address: address.to_owned(),
            remote_as,
            password: None,
            graceful_restart: false,
            bfd: None,
            ipv4: true,
            ipv6: true,
            timers: None,
            connect_retry: Some(2),
            ttl_security: None,
        }
    }
}

/// What FRR is started with.
#[derive(Clone, Debug)]
pub struct FrrConfig {
    /// Our AS.
    pub asn: u32,
    /// BGP identifier.
    pub router_id: String,
    /// `bgp graceful-restart restart-time` (advertised restart time).
    pub restart_time: Option<u16>,
    /// `bgp graceful-restart stalepath-time` (how long stale routes of a
    /// restarting peer are kept once it is back).
    pub stalepath_time: Option<u16>,
    /// The neighbours.
    pub neighbors: Vec<FrrNeighbor>,
}

impl FrrConfig {
    /// AS `asn`, BGP identifier `router_id`, the given neighbours, no
    /// graceful-restart timers of its own (FRR's defaults).
    pub fn new(asn: u32, router_id: &str, neighbors: Vec<FrrNeighbor>) -> FrrConfig {
        FrrConfig {
            asn,
            router_id: router_id.to_owned(),
            restart_time: None,
            stalepath_time: None,
            neighbors,
        }
    }

    /// `bgpd.conf`: eBGP without policies (`no bgp ebgp-requires-policy`),
    /// no import check, every neighbour in the families it asks for.
    pub fn bgpd_conf(&self) -> String {
        let mut c = String::from("debug bgp neighbor-events\n");
        let _ = writeln!(c, "router bgp {}", self.asn);
        let _ = writeln!(c, " bgp router-id {}", self.router_id);
        c += " no bgp ebgp-requires-policy\n no bgp network import-check\n";
        c += " no bgp default ipv4-unicast\n";
        if let Some(t) = self.restart_time {
            let _ = writeln!(c, " bgp graceful-restart restart-time {t}");
        }
        if let Some(t) = self.stalepath_time {
            let _ = writeln!(c, " bgp graceful-restart stalepath-time {t}");
        }
        for (i, n) in self.neighbors.iter().enumerate() {
            let a = &n.address;
            let _ = writeln!(c, " neighbor {a} remote-as {}", n.remote_as);
            if let Some(password) = &n.password {
                let _ = writeln!(c, " neighbor {a} password {password}");
            }
            if n.graceful_restart {
                let _ = writeln!(c, " neighbor {a} graceful-restart");
            }
            if n.bfd.is_some() {
                let _ = writeln!(c, " neighbor {a} bfd");
                let _ = writeln!(c, " neighbor {a} bfd profile {}", bfd_profile_name(i));
            }
            if let Some((keepalive, hold)) = n.timers {
                let _ = writeln!(c, " neighbor {a} timers {keepalive} {hold}");
            }
            if let Some(connect) = n.connect_retry {
                let _ = writeln!(c, " neighbor {a} timers connect {connect}");
            }
            if let Some(hops) = n.ttl_security {
                let _ = writeln!(c, " neighbor {a} ttl-security hops {hops}");
            }
        }
        for family in ["ipv4", "ipv6"] {
            let _ = writeln!(c, " address-family {family} unicast");
            let active = |n: &&FrrNeighbor| if family == "ipv4" { n.ipv4 } else { n.ipv6 };
            for n in self.neighbors.iter().filter(active) {
                let _ = writeln!(c, "  neighbor {} activate", n.address);
            }
            c += " exit-address-family\n";
        }
        c += "exit\n";
        c
    }

    /// `bfdd.conf`: one profile per neighbour with BFD.
    pub fn bfdd_conf(&self) -> String {
        let mut c = String::from("bfd\n");
        for (i, n) in self.neighbors.iter().enumerate() {
            if let Some(t) = n.bfd {
                let _ = writeln!(c, " profile {}", bfd_profile_name(i));
                let _ = writeln!(c, "  receive-interval {}", t.receive_ms);
                let _ = writeln!(c, "  transmit-interval {}", t.transmit_ms);
                let _ = writeln!(c, "  detect-multiplier {}", t.detect_multiplier);
                c += " exit\n";
            }
        }
        c += "exit\n";
        c
    }
}

fn bfd_profile_name(neighbor: usize) -> String {
    format!("flb{neighbor}")
}

/// The uid and gid of the `frr` user the Debian package creates. The
/// daemons run as it: vtysh only reaches vty sockets of the `frrvty`
/// group, which `frr` is in and root is not.
fn frr_user() -> (u32, u32) {
    let name = std::ffi::CString::new("frr").expect("no NUL");
    // SAFETY: getpwnam(3) with a valid C string; the result is read at
    // once, before any other call that could reuse its static buffer.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !entry.is_null(),
        "user `frr` missing (installed by the Debian package frr)"
    );
    // SAFETY: non-null pointer returned by getpwnam(3).
    unsafe { ((*entry).pw_uid, (*entry).pw_gid) }
}

/// FRR (zebra, bgpd and bfdd) in the router namespace; every file in a
/// temporary directory owned by the `frr` user.
#[derive(Debug)]
pub struct Frr<'a> {
    /// `(name, daemon)` in start order.
    daemons: Vec<(&'static str, Daemon)>,
    ns: &'a Netns,
    dir: tempfile::TempDir,
}

impl<'a> Frr<'a> {
    /// The daemons and tools the FRR tests need, for [`crate::require`].
    pub const TOOLS: &'static [(&'static str, &'static str)] = &[
        ("ip", "iproute2"),
        ("/usr/lib/frr/zebra", "frr"),
        ("/usr/lib/frr/bgpd", "frr"),
        ("/usr/lib/frr/bfdd", "frr"),
        ("vtysh", "frr"),
    ];

    /// Starts zebra, then bgpd and bfdd (both talking to that zebra), and
    /// waits until bgpd answers `show bgp summary json`.
    pub fn start(ns: &'a Netns, config: &FrrConfig) -> Frr<'a> {
        Frr::start_with_bgpd_conf(ns, config, &config.bgpd_conf())
    }

    /// [`start`](Self::start) with `global` lines added to `router bgp`
    /// (after `bgp router-id`), e.g. `bgp graceful-restart`.
    pub fn start_with_global(ns: &'a Netns, config: &FrrConfig, global: &[&str]) -> Frr<'a> {
        let router_id = format!(" bgp router-id {}\n", config.router_id);
        let mut lines = router_id.clone();
        for line in global {
            lines += &format!(" {line}\n");
        }
        let conf = config.bgpd_conf().replacen(&router_id, &lines, 1);
        Frr::start_with_bgpd_conf(ns, config, &conf)
    }

    fn start_with_bgpd_conf(ns: &'a Netns, config: &FrrConfig, bgpd_conf: &str) -> Frr<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (uid, gid) = frr_user();
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).expect("chown FRR temp dir");
        let p = |name: &str| dir.path().join(name);
        write_file(&p("zebra.conf"), "");
        write_file(&p("bgpd.conf"), bgpd_conf);
        write_file(&p("bfdd.conf"), &config.bfdd_conf());
        let mut frr = Frr {
            daemons: Vec::new(),
            ns,
            dir,
        };
        for daemon in ["zebra", "bgpd", "bfdd"] {
            frr.spawn(daemon);
            if daemon == "zebra" {
                // bgpd and bfdd connect to zebra's socket: have it first.
                let zserv = frr.dir.path().join("zserv.api");
                let up = wait_until(START_TIMEOUT, || zserv.exists().then_some(()));
                assert!(up.is_some(), "zebra made no {zserv:?}:\n{}", frr.log());
            }
        }
        let up = wait_until(START_TIMEOUT, || {
            frr.check_running();
            frr.try_json("show bgp summary json")
                .filter(Value::is_object)
        });
        assert!(up.is_some(), "bgpd not answering:\n{}", frr.log());
        // bfdd answers too (its config was loaded).
        let bfd = wait_until(START_TIMEOUT, || frr.try_json("show bfd peers json"));
        assert!(bfd.is_some(), "bfdd not answering:\n{}", frr.log());
        frr
    }

    fn spawn(&mut self, daemon: &'static str) {
        let handle = self.launch(daemon, &[]);
        self.daemons.push((daemon, handle));
    }

    /// Restarts one daemon (`zebra`, `bgpd` or `bfdd`) as after a crash:
    /// SIGKILL (no NOTIFICATION; the kernel closes its connections), then
    /// the same configuration file again with `extra` arguments (e.g.
    /// `-K`: bgpd starts in graceful-restart mode, with the Restart State
    /// bit, deferring its best paths until its peers' End-of-RIB). Waits
    /// until bgpd answers again (bounded). Its `.out` file is kept as
    /// `DAEMON.out.N`; the log file is appended to.
    pub fn restart_daemon(&mut self, daemon: &'static str, extra: &[&str]) {
        let index = self
            .daemons
            .iter()
            .position(|(name, _)| *name == daemon)
            .unwrap_or_else(|| panic!("FRR runs no {daemon}"));
        let pid = read_or_empty(&self.dir.path().join(format!("{daemon}.pid")))
            .trim()
            .parse::<libc::pid_t>()
            .ok();
        self.daemons[index].1.kill();
        if let Some(pid) = pid {
            let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{daemon}.{pid}"));
        }
        let out = self.dir.path().join(format!("{daemon}.out"));
        let kept = (1..1000)
            .map(|n| self.dir.path().join(format!("{daemon}.out.{n}")))
            .find(|p| !p.exists())
            .expect("fewer than 1000 restarts");
        let _ = std::fs::rename(&out, kept);
        let handle = self.launch(daemon, extra);
        self.daemons[index].1 = handle;
        let up = wait_until(START_TIMEOUT, || {
            self.check_running();
            self.try_json("show bgp summary json")
                .filter(Value::is_object)
        });
        assert!(
            up.is_some(),
            "bgpd not answering after restarting {daemon}:\n{}",
            self.log()
        );
    }

    fn launch(&self, daemon: &'static str, extra: &[&str]) -> Daemon {
        let p = |name: &str| path_str(&self.dir.path().join(name)).to_owned();
        let mut args = vec![
            "-f".to_owned(),
            p(&format!("{daemon}.conf")),
            "-i".to_owned(),
            p(&format!("{daemon}.pid")),
            "--vty_socket".to_owned(),
            p(""),
            "-z".to_owned(),
            p("zserv.api"),
            "-u".to_owned(),
            "frr".to_owned(),
            "-g".to_owned(),
            "frr".to_owned(),
            "-P".to_owned(),
            "0".to_owned(),
            "--log".to_owned(),
            format!("file:{}", p(&format!("{daemon}.log"))),
        ];
        if daemon == "bfdd" {
            args.extend(["--bfdctl".to_owned(), p("bfdd.sock")]);
        }
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let program = format!("{FRR_DIR}/{daemon}");
        Daemon::spawn(
            self.ns,
            &program,
            &args,
            &self.dir.path().join(format!("{daemon}.out")),
        )
    }

    fn check_running(&mut self) {
        let dead = self.daemons.iter_mut().any(|(_, d)| !d.running());
        if dead {
            panic!("an FRR daemon exited:\n{}", self.log());
        }
    }

    /// The daemons' logs and outputs.
    pub fn log(&self) -> String {
        let mut text = String::new();
        for daemon in ["zebra", "bgpd", "bfdd"] {
            for ext in ["out", "log"] {
                let body = read_or_empty(&self.dir.path().join(format!("{daemon}.{ext}")));
                if !body.trim().is_empty() {
                    let _ = write!(text, "--- {daemon}.{ext}\n{body}");
                }
            }
        }
        text
    }

    /// Runs vtysh with one `-c` per command; returns its output whatever
    /// the exit status.
    pub fn vtysh(&self, commands: &[&str]) -> std::process::Output {
        let vtysh = find_tool("vtysh").expect("vtysh (Debian package frr)");
        let mut command = Command::new(vtysh);
        command.arg("--vty_socket").arg(self.dir.path());
        for c in commands {
            command.args(["-c", c]);
        }
        run_with_timeout(&mut command, COMMAND_TIMEOUT)
    }

    /// Applies configuration lines at run time (`configure terminal`
    /// first); panics with vtysh's output when one is refused.
    pub fn configure(&self, lines: &[&str]) {
        let mut commands = vec!["configure terminal"];
        commands.extend_from_slice(lines);
        let out = self.vtysh(&commands);
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !text.contains('%'),
            "vtysh refused {lines:?}: {text}"
        );
    }

    fn try_json(&self, command: &str) -> Option<Value> {
        let out = self.vtysh(&[command]);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `vtysh -c COMMAND` parsed as JSON; panics (with the logs) when it
    /// fails or is not JSON.
    pub fn json(&mut self, command: &str) -> Value {
        self.check_running();
        self.try_json(command)
            .unwrap_or_else(|| panic!("vtysh -c {command:?} failed:\n{}", self.log()))
    }

    /// `show bgp neighbors ADDRESS json`: the neighbour's object (with
    /// `bgpState`, `neighborCapabilities`, `gracefulRestartInfo`, …), or
    /// `Null`.
    pub fn neighbor(&mut self, address: &str) -> Value {
        let all = self.json(&format!("show bgp neighbors {address} json"));
        all.get(address).cloned().unwrap_or(Value::Null)
    }

    /// The neighbour's `bgpState` (`Established`, `Active`, …).
    pub fn state(&mut self, address: &str) -> Option<String> {
        self.neighbor(address)["bgpState"]
            .as_str()
            .map(str::to_owned)
    }

    /// `show bgp ipv4|ipv6 unicast json`: prefix → paths (each with
    /// `valid`, `bestpath`, `stale`, `metric`, `locPrf`, `path`,
    /// `nexthops`, …).
    pub fn rib(&mut self, family: &str) -> serde_json::Map<String, Value> {
        assert!(matches!(family, "ipv4" | "ipv6"), "family {family}");
        match self.json(&format!("show bgp {family} unicast json"))["routes"].take() {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// `show bgp ipv4|ipv6 unicast PREFIX json`: the detailed route (its
    /// `paths` carry `community.list`, `largeCommunity.list`, `locPrf`,
    /// `metric`, `aspath`, `stale`, `nexthops`, …), or `Null` when FRR
    /// has no such route.
    pub fn route(&mut self, prefix: &str) -> Value {
        let family = if prefix.contains(':') { "ipv6" } else { "ipv4" };
        let route = self.json(&format!("show bgp {family} unicast {prefix} json"));
        if route.get("paths").is_some() {
            route
        } else {
            Value::Null
        }
    }

    /// The next hops of FRR's paths of `prefix` (each path's first),
    /// sorted; none when FRR has no such route.
    pub fn next_hops(&mut self, prefix: &str) -> Vec<String> {
        let mut hops: Vec<String> = self.route(prefix)["paths"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["nexthops"][0]["ip"].as_str().map(str::to_owned))
            .collect();
        hops.sort();
        hops
    }

    /// `show bfd peers json`.
    pub fn bfd_peers(&mut self) -> Vec<Value> {
        match self.json("show bfd peers json") {
            Value::Array(peers) => peers,
            _ => Vec::new(),
        }
    }

    /// The entry of `show bfd peers json` whose `peer` is `address` (with
    /// `status`: `up`, `down`, `init`, `shutdown`; `diagnostic`,
    /// `remote-diagnostic`, `id`, `remote-id`, the local and `remote-`
    /// intervals and multipliers), or `Null`.
    pub fn bfd_peer(&mut self, address: &str) -> Value {
        self.bfd_peers()
            .into_iter()
            .find(|p| p["peer"] == address)
            .unwrap_or(Value::Null)
    }

    /// The temporary directory (configuration, logs, sockets).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Frr<'_> {
    /// SIGTERM first (bfdd and bgpd before zebra), a bounded wait, then
    /// SIGKILL for what still runs. A daemon that exits on its own removes
    /// its crash-log buffer `/var/tmp/frr/<daemon>.<pid>`; one that had to
    /// be killed leaves it, so it is removed here.
    fn drop(&mut self) {
        let mut pids = Vec::new();
        for (name, daemon) in self.daemons.iter_mut().rev() {
            // Only while our child is not reaped is its pid surely still
            // the daemon's (the pid file names the same process: `ip netns
            // exec` execs the daemon).
            if !daemon.running() {
                continue;
            }
            let pid_file = self.dir.path().join(format!("{name}.pid"));
            let Some(pid) = read_or_empty(&pid_file)
                .trim()
                .parse::<libc::pid_t>()
                .ok()
                .filter(|pid| *pid > 0)
            else {
                continue;
            };
            // SAFETY: kill(2) of a running child of ours.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            pids.push((*name, pid));
        }
        let daemons = &mut self.daemons;
        let _ = wait_until(Duration::from_secs(3), || {
            daemons.iter_mut().all(|(_, d)| !d.running()).then_some(())
        });
        while let Some((_, daemon)) = self.daemons.pop() {
            drop(daemon);
        }
        for (name, pid) in pids {
            let _ = std::fs::remove_dir_all(format!("/var/tmp/frr/{name}.{pid}"));
        }
    }
}

// ---------------------------------------------------------------- BIRD

/// What a BIRD channel (`ipv4 { … }` / `ipv6 { … }`) exports to a peer;
/// it always imports everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BirdExport {
    /// Nothing.
    None,
    /// The routes of the static protocols ([`BirdConfig::static_routes`]).
    Static,
    /// Every route of the table.
    All,
}

impl BirdExport {
    fn clause(self) -> &'static str {
        match self {
            BirdExport::None => "export none;",
            BirdExport::Static => "export where source = RTS_STATIC;",
            BirdExport::All => "export all;",
        }
    }
}

/// One BGP protocol (neighbour) of a [`BirdConfig`].
#[derive(Clone, Debug)]
pub struct BirdNeighbor {
    /// The protocol's name (`show protocols NAME`, `[NAME …]` in routes).
    pub name: String,
    /// Our address for this session.
    pub local_address: String,
    /// Our AS.
    pub local_as: u32,
    /// Its address.
    pub address: String,
    /// Its AS (equal to ours for iBGP).
    pub remote_as: u32,
    /// TCP MD5 password.
    pub password: Option<String>,
    /// Hold time to propose.
    pub hold_time: Option<u16>,
    /// IPv4 unicast channel and what it exports; `None`: no channel.
    pub ipv4: Option<BirdExport>,
    /// IPv6 unicast channel and what it exports; `None`: no channel.
    pub ipv6: Option<BirdExport>,
    /// Wait for the peer to connect.
    pub passive: bool,
    /// Seconds between connection attempts.
    pub connect_retry: u16,
    /// IPv6 next hop of exported IPv6 routes (`next hop address`), needed
    /// when IPv6 routes go over an IPv4 session.
    pub ipv6_next_hop: Option<String>,
}

impl BirdNeighbor {
    /// A neighbour with both channels importing all and exporting none,
    /// no password, and a 2 s connect retry.
    pub fn new(
        name: &str,
        local_address: &str,
        local_as: u32,
        address: &str,
        remote_as: u32,
    ) -> BirdNeighbor {
        BirdNeighbor {
            name: name.to_owned(),
            local_address: local_address.to_owned(),
            local_as,
            address: address.to_owned(),
            remote_as,
            password: None,
            hold_time: None,
            ipv4: Some(BirdExport::None),
            ipv6: Some(BirdExport::None),
            passive: false,
            connect_retry: 2,
            ipv6_next_hop: None,
        }
    }
}

/// What BIRD is started with.
#[derive(Clone, Debug)]
pub struct BirdConfig {
    /// `router id`.
    pub router_id: String,
    /// The BGP protocols.
    pub neighbors: Vec<BirdNeighbor>,
    /// Routes of the static protocols (`static4` / `static6`, by family),
    /// as `blackhole` routes: what [`BirdExport::Static`] sends.
    pub static_routes: Vec<String>,
}

impl BirdConfig {
    /// The text of `bird.conf`.
    pub fn render(&self, log: &Path) -> String {
        let mut c = format!(
            "router id {};\nlog \"{}\" all;\nprotocol device {{ }}\n",
            self.router_id,
            log.display()
        );
        for (name, family, v6) in [("static4", "ipv4", false), ("static6", "ipv6", true)] {
            let routes: Vec<&String> = self
                .static_routes
                .iter()
                .filter(|r| r.contains(':') == v6)
                .collect();
            if routes.is_empty() {
                continue;
            }
            let _ = writeln!(c, "protocol static {name} {{\n  {family};");
            for route in routes {
                let _ = writeln!(c, "  route {route} blackhole;");
            }
            c += "}\n";
        }
        for n in &self.neighbors {
            let _ = writeln!(c, "protocol bgp {} {{", n.name);
            let _ = writeln!(c, "  local {} as {};", n.local_address, n.local_as);
            let _ = writeln!(c, "  neighbor {} as {};", n.address, n.remote_as);
            // iBGP peers default to multihop; ours is on the link.
            c += "  direct;\n";
            let _ = writeln!(c, "  connect retry time {};", n.connect_retry);
            let _ = writeln!(c, "  connect delay time {};", n.connect_retry);
            let _ = writeln!(c, "  error wait time {0}, {0};", n.connect_retry.max(1));
            if let Some(password) = &n.password {
                let _ = writeln!(c, "  password \"{password}\";");
            }
            if let Some(hold) = n.hold_time {
                let _ = writeln!(c, "  hold time {hold};");
            }
            if n.passive {
                c += "  passive on;\n";
            }
            for (family, channel) in [("ipv4", n.ipv4), ("ipv6", n.ipv6)] {
                if let Some(export) = channel {
                    let next_hop = match (family, &n.ipv6_next_hop) {
                        ("ipv6", Some(hop)) => format!(" next hop address {hop};"),
                        _ => String::new(),
                    };
                    let _ = writeln!(
                        c,
                        "  {family} {{ import all; {}{next_hop} }};",
                        export.clause()
                    );
                }
            }
            c += "}\n";
        }
        c
    }
}

/// One route of `birdc show route all`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BirdRoute {
    /// `master4` or `master6`.
    pub table: String,
    /// The prefix as BIRD prints it (`198.51.100.7/32`).
    pub prefix: String,
    /// The protocol it came from (`node4`, `static4`).
    pub protocol: String,
    /// Whether it is the preferred route (`*`).
    pub primary: bool,
    /// `via ADDRESS` of its next hop, if any.
    pub via: Option<String>,
    /// The attributes (`BGP.med` → `50`, `Type` → `BGP univ`, …).
    pub attrs: BTreeMap<String, String>,
}

impl BirdRoute {
    /// `BGP.community` as `(asn, value)` pairs.
    pub fn communities(&self) -> Vec<(u32, u32)> {
        bird_tuples(self.attrs.get("BGP.community"))
            .into_iter()
            .filter_map(|t| match t[..] {
                [a, b] => Some((a, b)),
                _ => None,
            })
            .collect()
    }

    /// `BGP.large_community` as `(global, local1, local2)`.
    pub fn large_communities(&self) -> Vec<(u32, u32, u32)> {
        bird_tuples(self.attrs.get("BGP.large_community"))
            .into_iter()
            .filter_map(|t| match t[..] {
                [a, b, c] => Some((a, b, c)),
                _ => None,
            })
            .collect()
    }

    /// `BGP.local_pref`.
    pub fn local_pref(&self) -> Option<u32> {
        self.attrs.get("BGP.local_pref")?.trim().parse().ok()
    }

    /// `BGP.med`.
    pub fn med(&self) -> Option<u32> {
        self.attrs.get("BGP.med")?.trim().parse().ok()
    }

    /// `BGP.next_hop` (possibly followed by a link-local address).
    pub fn next_hop(&self) -> Option<&str> {
        self.attrs.get("BGP.next_hop").map(String::as_str)
    }

    /// `BGP.as_path` as numbers (empty for iBGP).
    pub fn as_path(&self) -> Vec<u32> {
        self.attrs
            .get("BGP.as_path")
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|asn| asn.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Parses `(65000,7) (65535,65281)` or `(4200000002, 1, 2)` into tuples
/// of numbers; malformed ones are skipped.
fn bird_tuples(text: Option<&String>) -> Vec<Vec<u32>> {
    let Some(text) = text else {
        return Vec::new();
    };
    text.split('(')
        .filter_map(|part| part.split_once(')'))
        .filter_map(|(inside, _)| {
            inside
                .split(',')
                .map(|n| n.trim().parse().ok())
                .collect::<Option<Vec<u32>>>()
        })
        .collect()
}

/// Parses the text of `birdc show route all`.
///
/// A route starts with `PREFIX  TYPE [PROTO TIME …] * (PREF) …` at column
/// 0, or without the prefix (indented by spaces) for a further route of
/// the same prefix; its next hop (`via …`) and attributes (`NAME: VALUE`)
/// follow on tab-indented lines.
pub fn parse_bird_routes(text: &str) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut table = String::new();
    let mut prefix = String::new();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with("BIRD ") {
            continue;
        }
        if let Some(name) = line.strip_prefix("Table ") {
            table = name.trim_end_matches(':').trim().to_owned();
            continue;
        }
        if let Some(detail) = line.strip_prefix('\t') {
            let Some(route) = routes.last_mut() else {
                continue;
            };
            let detail = detail.trim();
            if let Some(via) = detail.strip_prefix("via ") {
                route.via = via.split_whitespace().next().map(str::to_owned);
            } else if let Some((name, value)) = detail.split_once(": ") {
                route
                    .attrs
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
            continue;
        }
        let Some(open) = line.find('[') else {
            continue;
        };
        if !line.starts_with(' ') {
            prefix = line
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_owned();
        }
        let protocol = line[open + 1..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        let after = line[open..].split_once(']').map_or("", |(_, rest)| rest);
        routes.push(BirdRoute {
            table: table.clone(),
            prefix: prefix.clone(),
            protocol,
            primary: after.trim_start().starts_with('*'),
            via: None,
            attrs: BTreeMap::new(),
        });
    }
    routes
}

/// BIRD 2 in the router namespace: `bird -f` with its control socket, pid
/// file, configuration and log in a temporary directory.
#[derive(Debug)]
pub struct Bird<'a> {
    daemon: Daemon,
    ns: &'a Netns,
    dir: tempfile::TempDir,
}

impl<'a> Bird<'a> {
    /// The tools the BIRD tests need, for [`crate::require`].
    pub const TOOLS: &'static [(&'static str, &'static str)] =
        &[("ip", "iproute2"), ("bird", "bird2"), ("birdc", "bird2")];

    /// Starts BIRD in the foreground and waits until `birdc show status`
    /// answers.
    pub fn start(ns: &'a Netns, config: &BirdConfig) -> Bird<'a> {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("bird.conf");
        write_file(&conf, &config.render(&dir.path().join("bird.log")));
        let socket = dir.path().join("bird.ctl");
        let pid = dir.path().join("bird.pid");
        let daemon = Daemon::spawn(
            ns,
            "bird",
            &[
                "-f",
                "-c",
                path_str(&conf),
                "-s",
                path_str(&socket),
                "-P",
                path_str(&pid),
            ],
            &dir.path().join("bird.out"),
        );
        let mut bird = Bird { daemon, ns, dir };
        let up = wait_until(START_TIMEOUT, || {
            bird.check_running();
            let out = bird.birdc(&["show", "status"]);
            (out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Daemon is up"))
                .then_some(())
        });
        assert!(up.is_some(), "BIRD not answering:\n{}", bird.log());
        bird
    }

    fn check_running(&mut self) {
        if !self.daemon.running() {
            panic!("bird exited:\n{}", self.log());
        }
    }

    /// BIRD's output and log.
    pub fn log(&self) -> String {
        let out = read_or_empty(&self.dir.path().join("bird.out"));
        let log = read_or_empty(&self.dir.path().join("bird.log"));
        format!("--- bird.out\n{out}--- bird.log\n{log}")
    }

    /// The namespace BIRD runs in.
    pub fn ns(&self) -> &Netns {
        self.ns
    }

    /// Runs `birdc -s SOCKET ARGS`.
    pub fn birdc(&self, args: &[&str]) -> std::process::Output {
        let birdc = find_tool("birdc").expect("birdc (Debian package bird2)");
        run_with_timeout(
            Command::new(birdc)
                .arg("-s")
                .arg(self.dir.path().join("bird.ctl"))
                .args(args),
            COMMAND_TIMEOUT,
        )
    }

    /// `birdc ARGS` stdout; panics (with the log) when birdc fails.
    pub fn text(&mut self, args: &[&str]) -> String {
        self.check_running();
        let out = self.birdc(args);
        assert!(
            out.status.success(),
            "birdc {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `show protocols all NAME` as text.
    pub fn protocol(&mut self, name: &str) -> String {
        self.text(&["show", "protocols", "all", name])
    }

    /// The `BGP state:` of protocol `name` (`Established`, `Active`,
    /// `Connect`, …).
    pub fn bgp_state(&mut self, name: &str) -> Option<String> {
        self.protocol(name)
            .lines()
            .find_map(|l| l.trim().strip_prefix("BGP state:"))
            .map(|s| s.trim().to_owned())
    }

    /// Every route of `show route all`.
    pub fn routes(&mut self) -> Vec<BirdRoute> {
        parse_bird_routes(&self.text(&["show", "route", "all"]))
    }

    /// The routes from protocol `name` (`show route all protocol NAME`).
    pub fn routes_from(&mut self, name: &str) -> Vec<BirdRoute> {
        parse_bird_routes(&self.text(&["show", "route", "all", "protocol", name]))
    }
}

// ---------------------------------------------------------------- ExaBGP

/// The ExaBGP version `tests/setup/install-exabgp.sh` installs.
pub const EXABGP_VERSION: &str = "5.0.15";

/// Where ExaBGP is: `$FERROLB_EXABGP`, else the venv that
/// `tests/setup/install-exabgp.sh` makes
/// (`${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/exabgp/<version>/bin/exabgp`).
pub fn exabgp_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("FERROLB_EXABGP") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache
        .join("ferrolb/exabgp")
        .join(EXABGP_VERSION)
        .join("bin/exabgp")
}

/// [`crate::require`] for the ExaBGP tests: root, `ip`, and the ExaBGP
/// venv (which is not a Debian package: `tests/setup/install-exabgp.sh`
/// makes it). Under `CI` a missing one fails the test.
pub fn require_exabgp() -> bool {
    if !crate::require(&[("ip", "iproute2")]) {
        return false;
    }
    let binary = exabgp_binary();
    if binary.is_file() {
        return true;
    }
    let reason = format!(
        "ExaBGP not found at {} (run tests/setup/install-exabgp.sh, or set FERROLB_EXABGP)",
        binary.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}

/// One neighbour of an [`ExaBgpConfig`] (both unicast families).
#[derive(Clone, Debug)]
pub struct ExaBgpNeighbor {
    /// Its address.
    pub address: String,
    /// Our address for this session.
    pub local_address: String,
    /// Its AS.
    pub peer_as: u32,
    /// Hold time to propose.
    pub hold_time: u16,
}

/// What ExaBGP is started with.
#[derive(Clone, Debug)]
pub struct ExaBgpConfig {
    /// BGP identifier.
    pub router_id: String,
    /// Our AS.
    pub local_as: u32,
    /// Address to listen on (ExaBGP also connects out).
    pub listen: String,
    /// The neighbours.
    pub neighbors: Vec<ExaBgpNeighbor>,
}

/// The API process: copies every line ExaBGP writes to it into a file,
/// flushed line by line.
const EXABGP_OBSERVER: &str = "\
import sys
with open(sys.argv[1], 'a', buffering=1) as out:
    for line in sys.stdin:
        out.write(line)
        out.flush()
";

/// What ExaBGP holds from a neighbour, replayed from its messages.
#[derive(Clone, Debug, Default)]
pub struct ExaBgpRib {
    /// Prefix → `{ "next_hop": …, "family": …, "attribute": {…} }`.
    pub routes: BTreeMap<String, Value>,
    /// Families (`ipv4 unicast`) whose End-of-RIB arrived in the current
    /// session.
    pub end_of_rib: Vec<String>,
    /// The last `state` (`connected`, `up`, `down`).
    pub state: Option<String>,
}

/// ExaBGP in the router namespace; its configuration, log and received
/// messages in a temporary directory.
#[derive(Debug)]
pub struct ExaBgp {
    daemon: Daemon,
    dir: tempfile::TempDir,
}

impl ExaBgp {
    /// Starts ExaBGP with an API process that records every parsed UPDATE
    /// and neighbour state change.
    pub fn start(ns: &Netns, config: &ExaBgpConfig) -> ExaBgp {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = exabgp_binary();
        let python = binary
            .parent()
            .map(|bin| bin.join("python3"))
            .filter(|p| p.is_file())
            .or_else(|| find_tool("python3"))
            .expect("python3 for ExaBGP's API process");
        let observer = dir.path().join("observer.py");
        write_file(&observer, EXABGP_OBSERVER);
        let received = dir.path().join("received.jsonl");
        let mut c = format!(
            "process observer {{\n    run {} {} {};\n    encoder json;\n}}\n",
            python.display(),
            observer.display(),
            received.display()
        );
        for n in &config.neighbors {
            let _ = write!(
                c,
                "neighbor {} {{\n    router-id {};\n    local-address {};\n    local-as {};\n    \
                 peer-as {};\n    hold-time {};\n    family {{ ipv4 unicast; ipv6 unicast; }}\n    \
                 api {{\n        processes [ observer ];\n        neighbor-changes;\n        \
                 receive {{ parsed; update; }}\n    }}\n}}\n",
                n.address,
                config.router_id,
                n.local_address,
                config.local_as,
                n.peer_as,
                n.hold_time
            );
        }
        let conf = dir.path().join("exabgp.conf");
        write_file(&conf, &c);
        let log = dir.path().join("exabgp.log");
        let env = [
            "exabgp.daemon.user=root".to_owned(),
            "exabgp.daemon.drop=false".to_owned(),
            "exabgp.daemon.daemonize=false".to_owned(),
            "exabgp.api.cli=false".to_owned(),
            format!("exabgp.tcp.bind={}", config.listen),
            format!("exabgp.log.destination={}", log.display()),
        ];
        let mut args: Vec<&str> = env.iter().map(String::as_str).collect();
        args.push(path_str(&binary));
        args.push(path_str(&conf));
        let daemon = Daemon::spawn(ns, "env", &args, &dir.path().join("exabgp.out"));
        let mut exabgp = ExaBgp { daemon, dir };
        // Up once it has read the configuration and started the observer.
        let up = wait_until(START_TIMEOUT, || {
            exabgp.check_running();
            read_or_empty(&log)
                .contains("loaded new configuration successfully")
                .then_some(())
        });
        assert!(up.is_some(), "ExaBGP did not start:\n{}", exabgp.log());
        exabgp
    }

    fn check_running(&mut self) {
        if !self.daemon.running() {
            panic!("exabgp exited:\n{}", self.log());
        }
    }

    /// ExaBGP's output and log.
    pub fn log(&self) -> String {
        let out = read_or_empty(&self.dir.path().join("exabgp.out"));
        let log = read_or_empty(&self.dir.path().join("exabgp.log"));
        format!("--- exabgp.out\n{out}--- exabgp.log\n{log}")
    }

    /// Every message the API process received so far (a line being
    /// written is left for the next call).
    pub fn messages(&mut self) -> Vec<Value> {
        self.check_running();
        read_or_empty(&self.dir.path().join("received.jsonl"))
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// What ExaBGP holds from `peer`: its messages replayed in order
    /// (announcements add, withdrawals remove, a session going down
    /// clears).
    pub fn rib(&mut self, peer: &str) -> ExaBgpRib {
        let mut rib = ExaBgpRib::default();
        for m in self.messages() {
            if m["neighbor"]["address"]["peer"] != peer {
                continue;
            }
            match m["type"].as_str() {
                Some("state") => {
                    let state = m["neighbor"]["state"].as_str().unwrap_or_default();
                    if state == "down" {
                        rib.routes.clear();
                        rib.end_of_rib.clear();
                    }
                    rib.state = Some(state.to_owned());
                }
                Some("update") => apply_exabgp_update(&mut rib, &m["neighbor"]["message"]),
                _ => {}
            }
        }
        rib
    }
}

fn apply_exabgp_update(rib: &mut ExaBgpRib, message: &Value) {
    if let Some(eor) = message.get("eor") {
        let family = format!(
            "{} {}",
            eor["afi"].as_str().unwrap_or_default(),
            eor["safi"].as_str().unwrap_or_default()
        );
        rib.end_of_rib.push(family);
        return;
    }
    let update = &message["update"];
    if let Some(families) = update["withdraw"].as_object() {
        for nlris in families.values() {
            for nlri in nlris.as_array().into_iter().flatten() {
                if let Some(prefix) = nlri["nlri"].as_str() {
                    rib.routes.remove(prefix);
                }
            }
        }
    }
    if let Some(families) = update["announce"].as_object() {
        for (family, by_next_hop) in families {
            for (next_hop, nlris) in by_next_hop.as_object().into_iter().flatten() {
                for nlri in nlris.as_array().into_iter().flatten() {
                    if let Some(prefix) = nlri["nlri"].as_str() {
                        rib.routes.insert(
                            prefix.to_owned(),
                            serde_json::json!({
                                "family": family,
                                "next_hop": next_hop,
                                "attribute": update["attribute"].clone(),
                            }),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOW_ROUTE_ALL: &str = "BIRD 2.0.12 ready.
Table master4:
198.51.100.77/32     unicast [node4 10:56:46.373] * (100) [AS4200000002i]
\tvia 198.51.100.2 on veth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 4200000002
\tBGP.next_hop: 198.51.100.2
\tBGP.med: 50
\tBGP.local_pref: 100
\tBGP.community: (65000,7) (65535,65281)
\tBGP.large_community: (4200000002, 1, 2)
                     unicast [node5 10:56:47.000] (100) [AS65001i]
\tvia 198.51.100.3 on veth0
\tBGP.as_path: 65001 65002
203.0.113.0/24       blackhole [static4 10:56:35.231] * (200)
\tType: static univ

Table master6:
2001:db8::77/128     unicast [node4 10:56:46.373 from 198.51.100.2] * (100) [AS4200000002i]
\tvia 2001:db8::2 on veth0
\tBGP.next_hop: 2001:db8::2 fe80::1
";

    #[test]
    fn bird_routes_are_parsed_with_their_attributes() {
        let routes = parse_bird_routes(SHOW_ROUTE_ALL);
        assert_eq!(routes.len(), 4, "{routes:#?}");
        let first = &routes[0];
        assert_eq!(first.table, "master4");
        assert_eq!(first.prefix, "198.51.100.77/32");
        assert_eq!(first.protocol, "node4");
        assert!(first.primary);
        assert_eq!(first.via.as_deref(), Some("198.51.100.2"));
        assert_eq!(first.med(), Some(50));
        assert_eq!(first.local_pref(), Some(100));
        assert_eq!(first.communities(), vec![(65000, 7), (65535, 65281)]);
        assert_eq!(first.large_communities(), vec![(4_200_000_002, 1, 2)]);
        assert_eq!(first.as_path(), vec![4_200_000_002]);
        let second = &routes[1];
        assert_eq!(second.prefix, "198.51.100.77/32");
        assert_eq!(second.protocol, "node5");
        assert!(!second.primary);
        assert_eq!(second.as_path(), vec![65001, 65002]);
        assert_eq!(second.med(), None);
        assert_eq!(routes[2].protocol, "static4");
        assert_eq!(routes[2].via, None);
        let v6 = &routes[3];
        assert_eq!(v6.table, "master6");
        assert_eq!(v6.prefix, "2001:db8::77/128");
        assert_eq!(v6.protocol, "node4");
        assert_eq!(v6.next_hop(), Some("2001:db8::2 fe80::1"));
        assert!(v6.communities().is_empty());
    }

    #[test]
    fn frr_config_activates_families_per_neighbor() {
        let mut v4 = FrrNeighbor::new("198.51.100.2", 65002);
        v4.ipv6 = false;
        v4.password = Some("s3cret".to_owned());
        v4.bfd = Some(BfdTimers::default());
        let mut v6 = FrrNeighbor::new("2001:db8::2", 65002);
        v6.graceful_restart = true;
        let config = FrrConfig {
            asn: 65001,
            router_id: "198.51.100.1".to_owned(),
            restart_time: Some(30),
            stalepath_time: None,
            neighbors: vec![v4, v6],
        };
        let text = config.bgpd_conf();
        let v4_block = text
            .split(" address-family ipv4 unicast\n")
            .nth(1)
            .and_then(|rest| rest.split(" exit-address-family").next())
            .unwrap_or_default();
        let v6_block = text
            .split(" address-family ipv6 unicast\n")
            .nth(1)
            .and_then(|rest| rest.split(" exit-address-family").next())
            .unwrap_or_default();
        assert!(
            v4_block.contains("neighbor 198.51.100.2 activate"),
            "{text}"
        );
        assert!(v4_block.contains("neighbor 2001:db8::2 activate"), "{text}");
        assert!(!v6_block.contains("198.51.100.2"), "{text}");
        assert!(v6_block.contains("neighbor 2001:db8::2 activate"), "{text}");
        assert!(
            text.contains(" neighbor 198.51.100.2 password s3cret\n"),
            "{text}"
        );
        assert!(
            text.contains(" neighbor 2001:db8::2 graceful-restart\n"),
            "{text}"
        );
        assert!(
            text.contains(" bgp graceful-restart restart-time 30\n"),
            "{text}"
        );
        assert!(
            text.contains(" neighbor 198.51.100.2 bfd profile flb0\n"),
            "{text}"
        );
        let bfd = config.bfdd_conf();
        assert!(
            bfd.contains(" profile flb0\n  receive-interval 300\n"),
            "{bfd}"
        );
        assert!(!bfd.contains("flb1"), "{bfd}");
    }

    #[test]
    fn frr_config_emits_ttl_security_only_when_asked() {
        let mut gtsm = FrrNeighbor::new("203.0.113.2", 65002);
        gtsm.ttl_security = Some(2);
        let plain = FrrNeighbor::new("198.51.100.2", 65002);
        let text = FrrConfig::new(65001, "198.51.100.1", vec![gtsm, plain]).bgpd_conf();
        assert!(
            text.contains(" neighbor 203.0.113.2 ttl-security hops 2\n"),
            "{text}"
        );
        assert!(!text.contains("198.51.100.2 ttl-security"), "{text}");
    }

    #[test]
    fn exabgp_updates_are_replayed() {
        let mut rib = ExaBgpRib::default();
        let announce: Value = serde_json::from_str(
            r#"{ "update": { "attribute": { "med": 50 }, "announce": { "ipv6 unicast": { "2001:db8::2": [ { "nlri": "2001:db8::77/128" }, { "nlri": "2001:db8::78/128" } ] } } } }"#,
        )
        .unwrap();
        apply_exabgp_update(&mut rib, &announce);
        assert_eq!(rib.routes.len(), 2);
        assert_eq!(rib.routes["2001:db8::77/128"]["next_hop"], "2001:db8::2");
        assert_eq!(rib.routes["2001:db8::77/128"]["attribute"]["med"], 50);
        let withdraw: Value = serde_json::from_str(
            r#"{ "update": { "withdraw": { "ipv6 unicast": [ { "nlri": "2001:db8::77/128" } ] } } }"#,
        )
        .unwrap();
        apply_exabgp_update(&mut rib, &withdraw);
        assert_eq!(rib.routes.keys().collect::<Vec<_>>(), ["2001:db8::78/128"]);
        let eor: Value =
            serde_json::from_str(r#"{ "eor": { "afi" : "ipv6", "safi" : "unicast" } }"#).unwrap();
        apply_exabgp_update(&mut rib, &eor);
        assert_eq!(rib.end_of_rib, ["ipv6 unicast"]);
    }
}
