//! Finding the `ferrolb-speaker` binary and running `l2-probe` in a lab
//! namespace.
//!
//! `env!("CARGO_BIN_EXE_…")` only exists inside the speaker package, and a
//! dependency on it would not build its binary, so [`speaker_binary`]
//! builds it once per test process with `cargo build -p ferrolb-speaker`
//! into the same target directory and profile as the running test (found
//! from the test's own path, `<target>/<profile>/deps/<test>`). Set
//! `FERROLB_SPEAKER_BIN` to use a binary built elsewhere.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::netns::Netns;

/// How long building the speaker may take.
const BUILD_TIMEOUT: Duration = Duration::from_secs(900);

/// The path of `ferrolb-speaker`, built on first use.
pub fn speaker_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary("ferrolb-speaker", "FERROLB_SPEAKER_BIN"))
        .clone()
}

/// The path of `ferrolb-controller`, built on first use (`FERROLB_CONTROLLER_BIN`
/// names a binary built elsewhere).
pub fn controller_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary("ferrolb-controller", "FERROLB_CONTROLLER_BIN"))
        .clone()
}

/// The path of `kubectl-ferrolb` (package `ferrolb-cli`), built on first
/// use (`FERROLB_PLUGIN_BIN` names a binary built elsewhere).
pub fn plugin_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| build_binary_of("ferrolb-cli", "kubectl-ferrolb", "FERROLB_PLUGIN_BIN"))
        .clone()
}

/// Builds package `name`'s binary of the same name into the test's target
/// directory and profile, unless `env` names a binary.
fn build_binary(name: &str, env: &str) -> PathBuf {
    build_binary_of(name, name, env)
}

/// Builds binary `name` of `package` into the test's target directory and
/// profile, unless `env` names a binary.
fn build_binary_of(package: &str, name: &str, env: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("target directory");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".to_owned(),
        Some(name) => name.to_owned(),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--bin", name])
        .arg("--profile")
        .arg(&profile)
        .arg("--target-dir")
        .arg(target_dir);
    let output = crate::netns::run_with_timeout(&mut command, BUILD_TIMEOUT);
    assert!(
        output.status.success(),
        "building {name} ({package}) failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let binary = profile_dir.join(name);
    assert!(binary.is_file(), "{binary:?} missing after the build");
    binary
}

/// A running `ferrolb-speaker l2-probe` and the JSON lines it printed.
/// Dropping it kills the probe.
#[derive(Debug)]
pub struct Probe {
    child: Option<Child>,
    lines: Receiver<Value>,
    seen: Vec<Value>,
    stderr: Option<thread::JoinHandle<String>>,
    /// When the probe was spawned.
    pub started: Instant,
}

impl Probe {
    /// Starts the probe in `ns` for `ips`, on the listed `interfaces`
    /// (none: the interface choice rule decides).
    pub fn start(ns: &Netns, ips: &[&str], interfaces: &[&str]) -> Probe {
        let mut command = ns.command(speaker_binary());
        command.arg("l2-probe");
        for ip in ips {
            command.args(["--ip", ip]);
        }
        for interface in interfaces {
            command.args(["--interface", interface]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let started = Instant::now();
        let mut child = command.spawn().expect("spawning ferrolb-speaker l2-probe");
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
        Probe {
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            started,
        }
    }

    /// Every line received so far (including those [`wait_for`](Self::wait_for)
    /// went through).
    pub fn lines(&mut self) -> &[Value] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Waits up to `timeout` for a line (already seen or new) that
    /// satisfies `matches`; returns it.
    pub fn wait_for(
        &mut self,
        timeout: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(line) = self.lines().iter().find(|l| matches(l)) {
            return Some(line.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if matches(&line) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    return None;
                }
            }
        }
    }

    /// Like [`wait_for`](Self::wait_for) for an `event` name and optional
    /// `ip`, panicking with the probe's output when it does not come.
    pub fn expect_event(&mut self, event: &str, ip: Option<&str>, timeout: Duration) -> Value {
        let found = self.wait_for(timeout, |l| {
            l["event"] == event && ip.is_none_or(|ip| l["ip"] == ip)
        });
        match found {
            Some(line) => line,
            None => panic!(
                "no {event} event for {ip:?} within {timeout:?}; probe output so far:\n{}",
                self.transcript()
            ),
        }
    }

    /// The lines so far, one per line, for failure messages.
    pub fn transcript(&mut self) -> String {
        self.lines()
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends SIGTERM and waits (bounded) for the probe to exit; returns its
    /// status and stderr.
    pub fn stop(&mut self) -> (ExitStatus, String) {
        let child = self.child.take().expect("probe already stopped");
        crate::stop_probe(
            "l2-probe",
            child,
            self.stderr.take(),
            &self.lines,
            &mut self.seen,
        )
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
