//! Packet captures with tcpdump inside a test namespace.
//!
//! [`Tcpdump`] starts `tcpdump -w` on one interface of a [`Netns`], waits
//! until it reports `listening on` (so nothing the test sends afterwards
//! is missed) and stops it with a signal that lets it finish the capture
//! file: SIGTERM on [`Tcpdump::stop`] and on drop (also while a test
//! panics), or any signal through [`Tcpdump::stop_with`].

use std::fs::File;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::bgp::wait_until;
use crate::netns::{Netns, find_tool};

/// How long tcpdump may take to report `listening on`.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`Tcpdump::stop`] (and drop) wait for tcpdump to exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `tcpdump -w`, stopped with SIGTERM (so the capture file is
/// complete) on drop.
#[derive(Debug)]
pub struct Tcpdump(Option<Child>);

impl Tcpdump {
    /// Captures on `interface` of `ns` into `pcap`: `tcpdump -i <interface>
    /// -n -U --immediate-mode <options> -w <pcap> <filter>`, its stderr in
    /// `log`. `options` are further tcpdump options (snap length, buffer
    /// size), `filter` the words of the capture filter. Panics when
    /// tcpdump cannot be started or does not report `listening on` within
    /// 10 s.
    pub fn start(
        ns: &Netns,
        interface: &str,
        options: &[&str],
        filter: &[&str],
        pcap: &Path,
        log: &Path,
    ) -> Tcpdump {
        let tcpdump = find_tool("tcpdump").expect("tcpdump not found");
        let stderr = File::create(log)
            .unwrap_or_else(|e| panic!("creating the tcpdump log {}: {e}", log.display()));
        let child = ns
            .command(tcpdump)
            .args(["-i", interface, "-n", "-U", "--immediate-mode"])
            .args(options)
            .arg("-w")
            .arg(pcap)
            .args(filter)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning tcpdump in {}: {e}", ns.name()));
        let capture = Tcpdump(Some(child));
        let listening = wait_until(LISTEN_TIMEOUT, || {
            std::fs::read_to_string(log)
                .is_ok_and(|l| l.contains("listening on"))
                .then_some(())
        });
        assert!(
            listening.is_some(),
            "tcpdump on {interface} in {} did not start listening within {LISTEN_TIMEOUT:?}: {}",
            ns.name(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        capture
    }

    /// Stops tcpdump with SIGTERM, waiting up to 5 s before killing it.
    pub fn stop(&mut self) {
        self.stop_with(libc::SIGTERM, STOP_TIMEOUT);
    }

    /// Sends `signal` (tcpdump prints its drop counters on SIGINT) and
    /// waits up to `timeout` for the exit; kills it after that. Does
    /// nothing once stopped.
    pub fn stop_with(&mut self, signal: libc::c_int, timeout: Duration) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) of our own child process.
        unsafe { libc::kill(pid, signal) };
        let exited = wait_until(timeout, || child.try_wait().ok().flatten().map(|_| ()));
        if exited.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        self.stop();
    }
}
