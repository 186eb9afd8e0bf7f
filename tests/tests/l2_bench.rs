//! Layer-2 performance on the wire (ignored by default; takes ~30 s):
//!
//!     cargo test --release -p ferrolb-e2e --test l2_bench -- --ignored --nocapture
//!
//! A client and a node namespace on one bridge. The node runs
//! `ferrolb-speaker l2-probe --ips-file` for 10,000 IPs (240 IPv4 from
//! 198.51.100.0/24, 9,760 IPv6 from 2001:db8::/32); the client captures
//! with `tcpdump -w` and sends ARP requests from a raw socket. From the
//! capture timestamps it reports:
//!
//! - ownership → first gratuitous frame: for every IP, the capture time of
//!   its first gratuitous ARP / unsolicited NA minus the probe's
//!   `interfaces_chosen` line for it (`unix_us`, printed right after the
//!   announcer took the IP); and probe spawn → first frame on the wire;
//! - request → reply latency of paced ARP requests (median, p99, max);
//! - replies per second under a burst of back-to-back requests.
//!
//! Nothing is asserted about the numbers (they depend on the machine); the
//! test fails only when the lab does not work. Results go to stdout.

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb_e2e::capture::Tcpdump;
use ferrolb_e2e::netns::Lab;
use ferrolb_e2e::require;
use ferrolb_e2e::speaker::speaker_binary;
use serde_json::Value;

const CLIENT_MAC: &str = "02:00:5e:10:00:01";
const NODE_MAC: &str = "02:00:5e:10:00:02";
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const V4_COUNT: u32 = 240; // 198.51.100.10 ..= 198.51.100.249
const TOTAL: u32 = 10_000;
const PACED_REQUESTS: usize = 2_000;
const PACE: Duration = Duration::from_micros(1_000);
const BURST_REQUESTS: usize = 20_000;

fn owned_v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 10 + i as u8)
}

fn owned_v6(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 1, 0)) + u128::from(i))
}

fn unix_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as u64
}

fn parse_mac(mac: &str) -> [u8; 6] {
    let mut out = [0u8; 6];
    for (byte, part) in out.iter_mut().zip(mac.split(':')) {
        *byte = u8::from_str_radix(part, 16).expect("hex MAC");
    }
    out
}

/// A child process killed (and reaped) on drop, also during a panic.
struct Guard(Option<Child>);

impl Guard {
    /// Sends `signal` and waits up to `timeout` for the exit; kills after.
    fn stop(&mut self, signal: libc::c_int, timeout: Duration) {
        let Some(mut child) = self.0.take() else {
            return;
        };
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `check` every 10 ms until it is true or `timeout` passes.
fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// An AF_PACKET socket on `eth0` of the calling thread's namespace.
fn packet_socket() -> (OwnedFd, i32) {
    // SAFETY: plain socket(2)/if_nametoindex(3)/bind(2) calls with valid
    // arguments; the fd is owned by the returned OwnedFd.
    unsafe {
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let fd = OwnedFd::from_raw_fd(fd);
        let index = libc::if_nametoindex(c"eth0".as_ptr()) as i32;
        assert!(index > 0, "eth0 missing");
        let mut addr: libc::sockaddr_ll = std::mem::zeroed();
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = index;
        let rc = libc::bind(
            fd.as_raw_fd(),
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
        (fd, index)
    }
}

fn send_frame(fd: &OwnedFd, frame: &[u8]) -> bool {
    // SAFETY: send(2) from a valid buffer on a bound packet socket.
    let sent = unsafe { libc::send(fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    sent == frame.len() as isize
}

/// A broadcast ARP request from the client for `target`.
fn arp_request(client_mac: [u8; 6], target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(60);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&client_mac);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&client_mac);
    f.extend_from_slice(&CLIENT_V4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f.resize(60, 0);
    f
}

/// What the capture shows, per frame.
#[derive(Debug)]
enum Seen {
    ArpRequest {
        from: [u8; 6],
        target: Ipv4Addr,
    },
    ArpReply {
        from: [u8; 6],
        sender: Ipv4Addr,
    },
    /// Gratuitous ARP (request or reply form: sender IP == target IP).
    Gratuitous(IpAddr),
    Other,
}

fn classify(frame: &[u8]) -> Seen {
    let ip4 = |b: &[u8]| Ipv4Addr::new(b[0], b[1], b[2], b[3]);
    if frame.len() >= 42 && frame[12..14] == [0x08, 0x06] {
        let arp = &frame[14..];
        let mut from = [0u8; 6];
        from.copy_from_slice(&arp[8..14]);
        let (op, sender, target) = (arp[7], ip4(&arp[14..18]), ip4(&arp[24..28]));
        return match op {
            _ if sender == target => Seen::Gratuitous(IpAddr::V4(sender)),
            1 => Seen::ArpRequest { from, target },
            2 => Seen::ArpReply { from, sender },
            _ => Seen::Other,
        };
    }
    // Unsolicited NA: ICMPv6 type 136 to ff02::1, solicited flag clear.
    if frame.len() >= 78
        && frame[12..14] == [0x86, 0xdd]
        && frame[20] == 58
        && frame[54] == 136
        && frame[58] & 0x40 == 0
    {
        let mut target = [0u8; 16];
        target.copy_from_slice(&frame[62..78]);
        return Seen::Gratuitous(IpAddr::V6(Ipv6Addr::from(target)));
    }
    Seen::Other
}

/// Reads a classic pcap file (µs or ns timestamps): `(unix_us as f64, frame)`.
fn read_pcap(path: &std::path::Path) -> Vec<(f64, Vec<u8>)> {
    let data = std::fs::read(path).expect("reading the capture");
    assert!(data.len() >= 24, "capture too short");
    let magic = u32::from_le_bytes(data[0..4].try_into().unwrap());
    let divisor = match magic {
        0xa1b2_c3d4 => 1.0,
        0xa1b2_3c4d => 1000.0,
        other => panic!("unexpected pcap magic {other:#x}"),
    };
    let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let (sec, frac, caplen) = (u32_at(at), u32_at(at + 4), u32_at(at + 8) as usize);
        let start = at + 16;
        if start + caplen > data.len() {
            break;
        }
        let t = f64::from(sec) * 1e6 + f64::from(frac) / divisor;
        out.push((t, data[start..start + caplen].to_vec()));
        at = start + caplen;
    }
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn summary(label: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    println!(
        "{label}: n={} min={:.3} median={:.3} p99={:.3} max={:.3} (ms)",
        values.len(),
        values.first().copied().unwrap_or(f64::NAN) / 1e3,
        percentile(values, 50.0) / 1e3,
        percentile(values, 99.0) / 1e3,
        values.last().copied().unwrap_or(f64::NAN) / 1e3,
    );
}

#[test]
#[ignore = "benchmark (~30 s, root): run with --ignored --nocapture"]
fn l2_wire_benchmark() {
    if !require(&[
        ("ip", "iproute2"),
        ("tcpdump", "tcpdump"),
        ("sysctl", "procps"),
    ]) {
        return;
    }
    let binary = speaker_binary();
    println!("speaker binary: {}", binary.display());
    let dir = tempfile::tempdir().expect("temp dir");
    let lab = Lab::new();
    let client = lab.host("client", CLIENT_MAC);
    let node = lab.host("node", NODE_MAC);
    client
        .ns
        .ip(&["addr", "add", "198.51.100.1/24", "dev", "eth0"]);
    client
        .ns
        .ip(&["addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    node.ns
        .ip(&["addr", "add", "198.51.100.2/24", "dev", "eth0"]);
    node.ns
        .ip(&["addr", "add", "2001:db8::2/64", "dev", "eth0", "nodad"]);

    let ips_file = dir.path().join("ips.txt");
    {
        let mut f = File::create(&ips_file).expect("ips file");
        for i in 0..V4_COUNT {
            writeln!(f, "{}", owned_v4(i)).unwrap();
        }
        for i in 0..TOTAL - V4_COUNT {
            writeln!(f, "{}", owned_v6(i)).unwrap();
        }
    }

    let pcap = dir.path().join("client.pcap");
    let tcpdump_log = dir.path().join("tcpdump.log");
    let mut tcpdump = Tcpdump::start(
        &client.ns,
        "eth0",
        &["-s", "128", "-B", "65536"],
        &["arp", "or", "icmp6"],
        &pcap,
        &tcpdump_log,
    );

    // The probe's stdout goes to a file: a pipe that is not read would
    // block the probe (and with it the announcer).
    let probe_out = dir.path().join("probe.jsonl");
    let spawn_us = unix_us();
    let child = node
        .ns
        .command(&binary)
        .arg("l2-probe")
        .arg("--ips-file")
        .arg(&ips_file)
        .stdin(Stdio::null())
        .stdout(File::create(&probe_out).expect("probe output"))
        .stderr(File::create(dir.path().join("probe.err")).expect("probe log"))
        .spawn()
        .expect("spawning the probe");
    let mut probe = Guard(Some(child));
    let ready = wait_until(Duration::from_secs(90), || {
        std::fs::read_to_string(&probe_out).is_ok_and(|t| t.contains("\"event\":\"ready\""))
    });
    assert!(ready, "the probe did not own all IPs within 90 s");
    // Let the gratuitous bursts (last round 2 s after each add) finish.
    thread::sleep(Duration::from_millis(2_500));

    // Requests from a raw socket in the client namespace.
    let client_mac = parse_mac(CLIENT_MAC);
    let (paced_sent, burst_sent, burst_secs) = client.ns.enter(move || {
        let (fd, _) = packet_socket();
        let frames: Vec<Vec<u8>> = (0..V4_COUNT)
            .map(|i| arp_request(client_mac, owned_v4(i)))
            .collect();
        let mut paced = 0;
        let start = Instant::now();
        for n in 0..PACED_REQUESTS {
            let due = start + PACE * n as u32;
            // Sleeping, not spinning: a spinning client would take one of
            // the two cores away from the node.
            thread::sleep(due.saturating_duration_since(Instant::now()));
            paced += usize::from(send_frame(&fd, &frames[n % frames.len()]));
        }
        thread::sleep(Duration::from_millis(500));
        let mut burst = 0;
        let start = Instant::now();
        for n in 0..BURST_REQUESTS {
            burst += usize::from(send_frame(&fd, &frames[n % frames.len()]));
        }
        let secs = start.elapsed().as_secs_f64();
        thread::sleep(Duration::from_millis(1_000));
        (paced, burst, secs)
    });

    probe.stop(libc::SIGTERM, Duration::from_secs(20));
    // tcpdump flushes its buffer and prints its drop counters on SIGINT.
    tcpdump.stop_with(libc::SIGINT, Duration::from_secs(10));
    let tcpdump_stats = std::fs::read_to_string(&tcpdump_log).unwrap_or_default();

    // The probe's view: when each IP was taken, what it counted.
    let mut owned_at: HashMap<IpAddr, u64> = HashMap::new();
    let mut stopped = Value::Null;
    for line in std::fs::read_to_string(&probe_out).unwrap().lines() {
        let Ok(value) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match value["event"].as_str() {
            Some("interfaces_chosen") => {
                let ip: IpAddr = value["ip"].as_str().unwrap().parse().unwrap();
                owned_at.insert(ip, value["unix_us"].as_u64().unwrap());
            }
            Some("stopped") => stopped = value,
            _ => {}
        }
    }
    assert_eq!(
        owned_at.len(),
        TOTAL as usize,
        "an interfaces_chosen per IP"
    );

    // The wire's view.
    let frames = read_pcap(&pcap);
    let node_mac = parse_mac(NODE_MAC);
    let mut first_gratuitous: HashMap<IpAddr, f64> = HashMap::new();
    let mut requests: Vec<(f64, Ipv4Addr)> = Vec::new();
    let mut replies: Vec<(f64, Ipv4Addr)> = Vec::new();
    for (t, frame) in &frames {
        match classify(frame) {
            Seen::Gratuitous(ip) => {
                first_gratuitous.entry(ip).or_insert(*t);
            }
            Seen::ArpRequest { from, target } if from == client_mac => requests.push((*t, target)),
            Seen::ArpReply { from, sender } if from == node_mac => replies.push((*t, sender)),
            _ => {}
        }
    }
    println!(
        "capture: {} frames; tcpdump: {}",
        frames.len(),
        tcpdump_stats
            .lines()
            .filter(|l| l.contains("packets"))
            .collect::<Vec<_>>()
            .join(", ")
    );

    // Ownership → first gratuitous frame on the wire.
    let mut first_frame = f64::INFINITY;
    let mut to_first: Vec<f64> = Vec::new();
    let mut never = 0;
    for (ip, &at) in &owned_at {
        match first_gratuitous.get(ip) {
            Some(&t) => {
                first_frame = first_frame.min(t);
                to_first.push(t - at as f64);
            }
            None => never += 1,
        }
    }
    println!(
        "probe spawn -> first gratuitous frame on the wire: {:.3} ms",
        (first_frame - spawn_us as f64) / 1e3
    );
    let last_owned = owned_at.values().max().copied().unwrap_or(0);
    let first_owned = owned_at.values().min().copied().unwrap_or(0);
    println!(
        "probe took {} IPs in {:.1} ms (first interfaces_chosen {:.1} ms after spawn)",
        owned_at.len(),
        (last_owned - first_owned) as f64 / 1e3,
        (first_owned - spawn_us) as f64 / 1e3
    );
    summary(
        "interfaces_chosen line -> first gratuitous frame of that IP (negative: frame before the line)",
        &mut to_first,
    );
    println!("IPs without a gratuitous frame in the capture: {never}");

    // Paced requests: each reply is matched to the oldest unanswered
    // request for the same IP (240 IPs in rotation, 1 ms apart). Replies
    // after the first burst request belong to the burst.
    let burst_start = requests.get(PACED_REQUESTS).map_or(f64::INFINITY, |r| r.0);
    let mut pending: HashMap<Ipv4Addr, VecDeque<f64>> = HashMap::new();
    for &(t, ip) in requests.iter().take(PACED_REQUESTS) {
        pending.entry(ip).or_default().push_back(t);
    }
    let mut latencies = Vec::new();
    let mut burst_replies = Vec::new();
    for &(t, ip) in &replies {
        if t < burst_start {
            let queue = pending.entry(ip).or_default();
            while let Some(&sent) = queue.front() {
                queue.pop_front();
                if sent <= t {
                    latencies.push(t - sent);
                    break;
                }
            }
        } else {
            burst_replies.push(t);
        }
    }
    println!(
        "paced ARP requests: {paced_sent} sent (1 every {PACE:?}), {} in the capture, {} answered",
        PACED_REQUESTS.min(requests.len()),
        latencies.len()
    );
    summary("ARP request -> reply latency", &mut latencies);
    let burst_in_capture = requests.len().saturating_sub(PACED_REQUESTS);
    let span = match (burst_replies.first(), burst_replies.last()) {
        (Some(a), Some(b)) if b > a => (b - a) / 1e6,
        _ => f64::NAN,
    };
    println!(
        "burst: {burst_sent} requests sent in {:.1} ms ({:.0}/s), {burst_in_capture} in the capture; \
         {} replies over {:.1} ms = {:.0} replies/s",
        burst_secs * 1e3,
        burst_sent as f64 / burst_secs,
        burst_replies.len(),
        span * 1e3,
        burst_replies.len() as f64 / span
    );
    let counters = &stopped["counters"];
    println!(
        "probe counters: frames_received={} frames_sent={} send_errors={} events_dropped={}",
        counters["frames_received"],
        counters["frames_sent"],
        counters["send_errors"],
        counters["events_dropped"]
    );
    assert!(!latencies.is_empty(), "no ARP request was answered");
}
