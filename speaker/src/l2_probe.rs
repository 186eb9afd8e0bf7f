//! `ferrolb-speaker l2-probe`: announces IPs on layer 2 exactly as the
//! speaker does, prints one JSON object per line for everything that
//! happens, and stops answering on SIGINT or SIGTERM.
//!
//! IPs come from `--ip` (repeatable) and/or `--ips-file FILE` (one IP per
//! line; blank lines and lines starting with `#` are skipped), for lists too
//! long for a command line.
//!
//! Lines on stdout (every object has `event`, `elapsed_ms`, the
//! milliseconds since the probe started, and `unix_us`, the wall-clock time
//! in microseconds since the Unix epoch, to line events up with packet
//! captures):
//!
//! - `interfaces_chosen`: `ip`, `rule` (`listed`, `subnet`,
//!   `default_route`, `no_interface`), `interfaces` (`name`, `index`,
//!   `mac`), `unusable` (chosen interfaces without a MAC);
//! - `ready`: `ips`, once every IP is owned;
//! - `gratuitous_arp` / `unsolicited_na`: `ip`, `interface`, `mac`;
//! - `answered`: `protocol` (`arp`/`ndp`), `ip`, `interface`, `mac`,
//!   `asker_ip`, `asker_mac`;
//! - `conflict`: `ip`, `interface`, `other_mac`, `kind`;
//! - `link`: `interface`, `up`;
//! - `released`: `ip`;
//! - `error`: `interface` (or null), `message`;
//! - `stopped`: `signal`, `counters` (per interface and IP).
//!
//! Logs go to stderr (`RUST_LOG` filters them; default `warn`).

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ferrolb_arp::io::{IpStatus, L2Config, L2Counters, L2Error, L2Event, L2Runner};
use ferrolb_arp::{ChoiceRule, ConflictKind, Event};
use serde_json::{Value, json};
use tokio::signal::unix::{SignalKind, signal};

/// Arguments of `l2-probe`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Service IP to announce, IPv4 or IPv6 (repeat the flag or list
    /// several).
    #[arg(
        long = "ip",
        value_name = "IP",
        num_args = 1..,
        required_unless_present = "ips_file"
    )]
    pub ips: Vec<IpAddr>,
    /// Also announce the IPs listed in FILE, one per line (blank lines
    /// and `#` comments are skipped).
    #[arg(long = "ips-file", value_name = "FILE")]
    pub ips_file: Option<PathBuf>,
    /// Announce only on this interface, like an L2Advertisement's
    /// `interfaces` list (repeatable). Without it the interface choice
    /// rule decides: interfaces with a subnet containing the IP, else the
    /// default route's interface.
    #[arg(long = "interface", value_name = "IF")]
    pub interfaces: Vec<String>,
}

/// Runs the probe; the exit code is 0 after a clean stop on a signal.
pub fn run(args: Args) -> ExitCode {
    let (printer, writer) = Printer::start();
    // `probe` owns the printer: when it returns, the channel closes and the
    // writer thread drains what is queued and ends.
    let code = crate::run_probe("l2-probe", probe(args, printer));
    let _ = writer.join();
    code
}

/// Prints JSON lines from a thread of its own, so that a slow reader of
/// stdout never delays an answer: the announcer runs on the single-threaded
/// runtime, and a blocking write there would hold up every frame behind it.
struct Printer {
    start: Instant,
    lines: std::sync::mpsc::Sender<String>,
}

impl Printer {
    fn print(&self, mut line: Value) {
        if let Value::Object(map) = &mut line {
            let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
            map.insert("elapsed_ms".to_owned(), json!(elapsed));
            let unix_us = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
            map.insert("unix_us".to_owned(), json!(unix_us));
        }
        // A closed stdout (writer gone) must not stop the probe.
        let _ = self.lines.send(line.to_string());
    }

    /// The printer and its writer thread, which writes lines as they come
    /// and flushes whenever the queue is empty.
    fn start() -> (Printer, std::thread::JoinHandle<()>) {
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let writer = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            while let Ok(line) = rx.recv() {
                let _ = writeln!(out, "{line}");
                while let Ok(line) = rx.try_recv() {
                    let _ = writeln!(out, "{line}");
                }
                let _ = out.flush();
            }
            let _ = out.flush();
        });
        let printer = Printer {
            start: Instant::now(),
            lines: tx,
        };
        (printer, writer)
    }
}

/// Parses an IP list: one IP per line, blank lines and `#` comments
/// skipped. Errors name the line.
pub fn parse_ips_file(text: &str) -> Result<Vec<IpAddr>, String> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n + 1, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| {
            line.parse()
                .map_err(|err| format!("line {n}: {line:?}: {err}"))
        })
        .collect()
}

fn read_ips_file(path: &Path) -> Result<Vec<IpAddr>, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("{}: {err}", path.display()))?;
    parse_ips_file(&text).map_err(|err| format!("{}: {err}", path.display()))
}

async fn probe(mut args: Args, printer: Printer) -> ExitCode {
    if let Some(path) = &args.ips_file {
        match read_ips_file(path) {
            Ok(ips) => args.ips.extend(ips),
            Err(err) => {
                eprintln!("ferrolb-speaker l2-probe: --ips-file {err}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (mut sigint, mut sigterm) = match (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) {
        (Ok(sigint), Ok(sigterm)) => (sigint, sigterm),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("ferrolb-speaker l2-probe: installing signal handlers: {err}");
            return ExitCode::FAILURE;
        }
    };

    let mut runner = match L2Runner::start(L2Config::default()).await {
        Ok(runner) => runner,
        Err(err @ L2Error::Permission(_)) => {
            eprintln!(
                "ferrolb-speaker l2-probe: {err}\n\
                 The probe sends and receives raw ARP/NDP frames: run it as root \
                 (e.g. with sudo) or give the binary CAP_NET_RAW."
            );
            return ExitCode::FAILURE;
        }
        Err(err) => {
            eprintln!("ferrolb-speaker l2-probe: {err}");
            return ExitCode::FAILURE;
        }
    };

    for &ip in &args.ips {
        if let Err(err) = runner.handle.add_ip(ip, args.interfaces.clone()).await {
            eprintln!("ferrolb-speaker l2-probe: cannot announce {ip}: {err}");
            let _ = runner.handle.shutdown().await;
            return ExitCode::FAILURE;
        }
        // Print as we go, so that a long list does not overflow the
        // event channel before `ready`.
        while let Ok(event) = runner.events.try_recv() {
            printer.print(event_json(&event));
        }
    }
    while let Ok(event) = runner.events.try_recv() {
        printer.print(event_json(&event));
    }
    printer.print(json!({ "event": "ready", "ips": args.ips }));

    let signal_name = loop {
        tokio::select! {
            _ = sigint.recv() => break "SIGINT",
            _ = sigterm.recv() => break "SIGTERM",
            event = runner.events.recv() => match event {
                Some(event) => printer.print(event_json(&event)),
                None => {
                    eprintln!("ferrolb-speaker l2-probe: the announcer stopped unexpectedly");
                    return ExitCode::FAILURE;
                }
            },
        }
    };

    let counters = runner.handle.counters().await.ok();
    // Releases every IP and closes the sockets: from here on nothing is
    // answered.
    if let Err(err) = runner.handle.shutdown().await {
        eprintln!("ferrolb-speaker l2-probe: stopping: {err}");
        return ExitCode::FAILURE;
    }
    while let Ok(event) = runner.events.try_recv() {
        printer.print(event_json(&event));
    }
    printer.print(json!({
        "event": "stopped",
        "signal": signal_name,
        "counters": counters.as_ref().map(counters_json),
    }));
    ExitCode::SUCCESS
}

fn rule_name(rule: ChoiceRule) -> &'static str {
    match rule {
        ChoiceRule::Listed => "listed",
        ChoiceRule::Subnet => "subnet",
        ChoiceRule::DefaultRoute => "default_route",
        ChoiceRule::NoInterface => "no_interface",
    }
}

fn conflict_name(kind: ConflictKind) -> &'static str {
    match kind {
        ConflictKind::ArpProbe => "arp_probe",
        ConflictKind::ArpSender => "arp_sender",
        ConflictKind::DadProbe => "dad_probe",
        ConflictKind::NeighborAdvertisement => "neighbor_advertisement",
    }
}

fn status_json(status: &IpStatus) -> Value {
    json!({
        "event": "interfaces_chosen",
        "ip": status.ip,
        "rule": rule_name(status.rule),
        "listed": status.listed,
        "interfaces": status.interfaces.iter().map(|i| json!({
            "name": i.name,
            "index": i.index,
            "mac": i.mac.to_string(),
        })).collect::<Vec<_>>(),
        "unusable": status.unusable,
    })
}

/// The JSON line for one runner event.
pub fn event_json(event: &L2Event) -> Value {
    match event {
        L2Event::InterfacesChosen(status) => status_json(status),
        L2Event::Released { ip } => json!({ "event": "released", "ip": ip }),
        L2Event::LinkChanged { interface, up } => json!({
            "event": "link",
            "interface": interface.name,
            "mac": interface.mac.to_string(),
            "up": up,
        }),
        L2Event::Error { interface, message } => json!({
            "event": "error",
            "interface": interface,
            "message": message,
        }),
        L2Event::Announcer { event, interface } => match event {
            Event::Gratuitous { ip, .. } => json!({
                "event": if ip.is_ipv4() { "gratuitous_arp" } else { "unsolicited_na" },
                "ip": ip,
                "interface": interface.name,
                "mac": interface.mac.to_string(),
            }),
            Event::Answered {
                ip,
                asker_ip,
                asker_mac,
                ..
            } => json!({
                "event": "answered",
                "protocol": if ip.is_ipv4() { "arp" } else { "ndp" },
                "ip": ip,
                "interface": interface.name,
                "mac": interface.mac.to_string(),
                "asker_ip": asker_ip,
                "asker_mac": asker_mac.to_string(),
            }),
            Event::ConflictDetected {
                ip,
                other_mac,
                kind,
                ..
            } => json!({
                "event": "conflict",
                "ip": ip,
                "interface": interface.name,
                "other_mac": other_mac.to_string(),
                "kind": conflict_name(*kind),
            }),
        },
    }
}

fn counters_json(counters: &L2Counters) -> Value {
    let interfaces: Vec<Value> = counters
        .announcer
        .interfaces
        .values()
        .filter(|i| i.counters.frames_seen > 0 || !i.ips.is_empty())
        .map(|i| {
            let c = &i.counters;
            json!({
                "name": i.name,
                "frames_seen": c.frames_seen,
                "handled": c.handled,
                "not_owned": c.not_owned,
                "malformed": c.malformed,
                "ips": i.ips.iter().map(|(ip, c)| json!({
                    "ip": ip,
                    "requests_seen": c.requests_seen,
                    "replies_sent": c.replies_sent,
                    "gratuitous_sent": c.gratuitous_sent,
                    "conflicts": c.conflicts,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let io = &counters.io;
    json!({
        "interfaces": interfaces,
        "frames_received": io.frames_received,
        "frames_sent": io.frames_sent,
        "send_errors": io.send_errors,
        "socket_errors": io.socket_errors,
        "netlink_dumps": io.netlink_dumps,
        "events_dropped": io.events_dropped,
    })
}

#[cfg(test)]
mod tests {
    use super::parse_ips_file;

    #[test]
    fn ips_file_skips_blanks_and_comments() {
        let ips = parse_ips_file("# list\n198.51.100.1\n\n  2001:db8::1  \n").unwrap();
        assert_eq!(
            ips,
            vec![
                "198.51.100.1".parse::<std::net::IpAddr>().unwrap(),
                "2001:db8::1".parse().unwrap()
            ]
        );
        let err = parse_ips_file("198.51.100.1\nnot-an-ip\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }
}
