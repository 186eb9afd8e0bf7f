//! A layer-2 lab made of network namespaces: one namespace holds a bridge
//! and every host (client, nodes) is a namespace of its own whose `eth0`
//! is a veth plugged into that bridge.
//!
//! Safety rules, kept by construction:
//! - nothing is created in the root namespace: `ip netns add` only adds a
//!   bind mount under /run/netns; the bridge lives in its own namespace,
//!   and veth pairs are created inside the bridge namespace with the peer
//!   moved straight into the host namespace;
//! - names are unique per process and lab (`flb-<pid>-<n>-<role>`), so
//!   parallel tests and parallel runs never collide;
//! - every [`Netns`] deletes itself on drop, also while a test panics,
//!   after killing whatever still runs inside it; labs left behind by a
//!   killed test process are swept when the next lab is made;
//! - every command runs with a timeout.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long any one command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

const PREFIX: &str = "flb-";

/// Finds `tool` in PATH or the usual system directories.
pub fn find_tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"]
                .iter()
                .map(PathBuf::from),
        )
        .map(|dir| dir.join(tool))
        .find(|candidate| candidate.is_file())
}

fn tool(name: &str) -> PathBuf {
    find_tool(name).unwrap_or_else(|| panic!("{name} not found"))
}

/// Runs `command` to completion or kills it after `timeout`; stdout and
/// stderr are collected.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {description}: {err}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(2)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{description} did not finish within {timeout:?}");
            }
            Err(err) => panic!("waiting for {description}: {err}"),
        }
    };
    Output {
        status,
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

fn ip_command(args: &[&str]) -> Output {
    run_with_timeout(Command::new(tool("ip")).args(args), COMMAND_TIMEOUT)
}

/// Runs `ip ARGS` and panics with its stderr when it fails.
fn ip_ok(args: &[&str]) -> String {
    let output = ip_command(args);
    assert!(
        output.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A network namespace created by this process, deleted on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace `name` and brings its `lo` up.
    pub fn create(name: &str) -> Netns {
        ip_ok(&["netns", "add", name]);
        let ns = Netns {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its name (under /run/netns).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`, panicking on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip_ok(&full)
    }

    /// Runs `ip -n NAME ARGS` and returns its output whatever the outcome.
    pub fn try_ip(&self, args: &[&str]) -> Output {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        ip_command(&full)
    }

    /// A command that runs `program` inside the namespace
    /// (`ip netns exec NAME program`, which execs it: the child's pid is
    /// the program's).
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut command = Command::new(tool("ip"));
        command
            .args(["netns", "exec", &self.name])
            .arg(program.as_ref());
        command
    }

    /// Runs `program ARGS` inside the namespace with `timeout`.
    pub fn exec(&self, program: &str, args: &[&str], timeout: Duration) -> Output {
        let path = find_tool(program).unwrap_or_else(|| PathBuf::from(program));
        run_with_timeout(self.command(path).args(args), timeout)
    }

    /// Sets a sysctl of this namespace (`net.*` keys are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        assert!(key.starts_with("net."), "only per-namespace net.* sysctls");
        let output = self.exec(
            "sysctl",
            &["-q", "-w", &format!("{key}={value}")],
            COMMAND_TIMEOUT,
        );
        assert!(
            output.status.success(),
            "sysctl {key}={value} in {}: {}",
            self.name,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }

    /// Runs `f` on a thread that has entered this namespace; sockets it
    /// opens stay in the namespace.
    pub fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = Path::new("/run/netns").join(&self.name);
        thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|err| panic!("opening {path:?}: {err}"));
            // SAFETY: setns(2) on an open namespace file; it only changes
            // this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                rc,
                0,
                "setns({path:?}): {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// The MAC of interface `dev`.
    pub fn mac(&self, dev: &str) -> String {
        let json = self.ip(&["-j", "link", "show", "dev", dev]);
        let value: serde_json::Value = serde_json::from_str(&json).expect("ip -j link output");
        value[0]["address"]
            .as_str()
            .expect("link address")
            .to_owned()
    }

    /// The link-layer address of the neighbour entry for `ip` on `dev`,
    /// if there is one with an address.
    pub fn neighbour(&self, ip: &str, dev: &str) -> Option<String> {
        let json = self.ip(&["-j", "neigh", "show", "to", ip, "dev", dev]);
        let value: serde_json::Value = serde_json::from_str(json.trim()).ok()?;
        value
            .as_array()?
            .iter()
            .find(|entry| entry["dst"].as_str() == Some(ip))?["lladdr"]
            .as_str()
            .map(str::to_owned)
    }
}

fn kill_processes_in(name: &str) {
    let output = ip_command(&["netns", "pids", name]);
    for pid in String::from_utf8_lossy(&output.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<libc::pid_t>() {
            // SAFETY: plain kill(2) of a process inside our own namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
}

fn delete_netns(name: &str) {
    kill_processes_in(name);
    let output = ip_command(&["netns", "del", name]);
    if !output.status.success() {
        eprintln!(
            "warning: deleting network namespace {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(&self.name);
    }
}

/// Deletes namespaces `flb-<pid>-…` left behind by processes that no
/// longer exist (a test run killed before its Drop guards ran).
fn sweep_stale() {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest
            .split('-')
            .next()
            .and_then(|p| p.parse::<libc::pid_t>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks whether the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        if !alive {
            delete_netns(&name);
        }
    }
}

static SWEEP: Once = Once::new();
static NEXT_LAB: AtomicUsize = AtomicUsize::new(0);

/// A bridge in a namespace of its own, and hosts plugged into it.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    bridge: Netns,
    ports: Mutex<BTreeSet<String>>,
}

/// A host of a [`Lab`]: a namespace whose `eth0` is plugged into the
/// bridge. Dropping it deletes the namespace (and so its veth pair).
#[derive(Debug)]
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// What the host is called in the lab (`client`, `node-a`, …).
    pub role: String,
    /// The MAC of its `eth0`.
    pub mac: String,
}

impl Lab {
    /// Creates the bridge namespace with `br0` up (multicast snooping off,
    /// so the bridge floods multicast like a plain switch).
    pub fn new() -> Lab {
        SWEEP.call_once(sweep_stale);
        let n = NEXT_LAB.fetch_add(1, Ordering::SeqCst);
        let prefix = format!("{PREFIX}{}-{n}", std::process::id());
        let bridge = Netns::create(&format!("{prefix}-br"));
        bridge.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", "br0", "up"]);
        Lab {
            prefix,
            bridge,
            ports: Mutex::new(BTreeSet::new()),
        }
    }

    /// The bridge namespace.
    pub fn bridge(&self) -> &Netns {
        &self.bridge
    }

    /// Adds host `role` with `eth0` (MAC `mac`, up, no address) plugged
    /// into the bridge. The host does no IPv6 duplicate address detection
    /// (every interface made in or moved into it inherits
    /// `accept_dad=0`): a tentative link-local address would keep its
    /// kernel from sending Neighbor Solicitations for the first second.
    pub fn host(&self, role: &str, mac: &str) -> Host {
        let ns = Netns::create(&format!("{}-{role}", self.prefix));
        ns.sysctl("net.ipv6.conf.default.accept_dad", "0");
        ns.sysctl("net.ipv6.conf.all.accept_dad", "0");
        let port = {
            let mut ports = self.ports.lock().expect("ports lock");
            let port = format!("p{}", ports.len());
            ports.insert(port.clone());
            port
        };
        self.bridge.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            ns.name(),
        ]);
        self.bridge
            .ip(&["link", "set", &port, "master", "br0", "up"]);
        ns.ip(&["link", "set", "eth0", "address", mac]);
        ns.ip(&["link", "set", "eth0", "up"]);
        Host {
            ns,
            role: role.to_owned(),
            mac: mac.to_owned(),
        }
    }
}

impl Default for Lab {
    fn default() -> Self {
        Lab::new()
    }
}

/// A TCP listener inside a namespace that answers every connection with
/// a greeting and closes it; stopped on drop.
#[derive(Debug)]
pub struct Greeter {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Greeter {
    /// Listens on `addr` inside `ns` and greets with `greeting`.
    pub fn start(ns: &Netns, addr: SocketAddr, greeting: &str) -> Greeter {
        let listener = ns.enter(move || TcpListener::bind(addr));
        let listener =
            listener.unwrap_or_else(|err| panic!("listening on {addr} in {}: {err}", ns.name()));
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let greeting = greeting.to_owned();
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nonblocking(false);
                            let _ = stream.write_all(greeting.as_bytes());
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Greeter {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Greeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Connects from inside `ns` to `addr` and returns what the peer sends
/// before closing, or the error.
pub fn tcp_fetch(ns: &Netns, addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    ns.enter(move || {
        let mut stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(|e| e.to_string())?;
        let mut text = String::new();
        stream
            .read_to_string(&mut text)
            .map_err(|e| format!("read: {e}"))?;
        Ok(text)
    })
}
