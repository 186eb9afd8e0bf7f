//! Wire check of our BGP messages by an independent decoder: a session of
//! `ferrolb-speaker bgp-probe` with GoBGP is captured with tcpdump in the
//! router namespace and the capture is decoded by tshark (Wireshark's BGP
//! dissector). Every message type we send must be present, and no packet
//! may be reported malformed or carry an error-level expert note.
//!
//! The session covers OPEN (with every capability we announce), KEEPALIVE,
//! UPDATE (IPv4 NLRI and MP_REACH for IPv6, with communities, large
//! communities and MED), End-of-RIB, withdrawals (IPv4 withdrawn routes
//! and MP_UNREACH) and a NOTIFICATION Cease with a shutdown communication.
//!
//! Documentation addresses only, inside the test's own namespaces. Needs
//! root, `ip`, `gobgpd`, `gobgp`, `tcpdump` and `tshark`: without them the
//! test prints `SKIPPED: …`, unless `CI` is set, where it fails.
//! Run: `sudo -E cargo test -p ferrolb-e2e --test bgp_capture -- --nocapture`.

use std::collections::BTreeMap;
use std::time::Duration;

use ferrolb_e2e::bgp::{
    BgpLab, BgpProbe, GOBGP_ESTABLISHED, GoBgp, GoBgpNeighbor, NODE_V4, ROUTER_V4, wait_until,
};
use ferrolb_e2e::capture::Tcpdump;
use ferrolb_e2e::netns::{find_tool, run_with_timeout};

const ROUTER_ASN: u32 = 4_200_000_001;
const NODE_ASN: u32 = 4_200_000_002;
const WAIT: Duration = Duration::from_secs(20);

fn tshark(pcap: &std::path::Path, args: &[&str]) -> String {
    let tshark = find_tool("tshark").expect("tshark");
    let mut command = std::process::Command::new(tshark);
    command.arg("-n").arg("-r").arg(pcap).args(args);
    let out = run_with_timeout(&mut command, Duration::from_secs(60));
    assert!(
        out.status.success(),
        "tshark {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn tshark_decodes_every_message_we_send() {
    if !ferrolb_e2e::require(&[
        ("ip", "iproute2"),
        ("gobgpd", "gobgpd"),
        ("gobgp", "gobgpd"),
        ("tcpdump", "tcpdump"),
        ("tshark", "tshark"),
    ]) {
        return;
    }
    let lab = BgpLab::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let pcap = dir.path().join("bgp.pcap");
    let mut capture = Tcpdump::start(
        &lab.router,
        "veth0",
        &["-s", "0"],
        &["tcp", "port", "179"],
        &pcap,
        &dir.path().join("tcpdump.log"),
    );
    let mut gobgp = GoBgp::start(
        &lab.router,
        ROUTER_ASN,
        &[GoBgpNeighbor::new(NODE_V4, NODE_ASN)],
    );
    let mut probe = BgpProbe::start_session(
        &lab.node,
        NODE_ASN,
        ROUTER_V4,
        ROUTER_ASN,
        NODE_V4,
        &[
            "--hold-time",
            "9",
            "--graceful-restart",
            "--prefix",
            "198.51.100.80/32",
            "--prefix",
            "198.51.100.81/32",
            "--prefix",
            "2001:db8::80/128",
            "--community",
            "65000:80",
            "--community",
            "no-export",
            "--large-community",
            "4200000002:8:0",
            "--med",
            "80",
        ],
    );
    probe.expect("established", WAIT, |_| true);
    let routes = wait_until(WAIT, || {
        let v4 = gobgp.rib(&lab.router, "ipv4");
        let v6 = gobgp.rib(&lab.router, "ipv6");
        (v4.len() == 2 && v6.len() == 1).then_some(())
    });
    assert!(routes.is_some(), "routes never reached GoBGP");
    // Stay up long enough for a keepalive each way (hold 9 s → 3 s).
    std::thread::sleep(Duration::from_secs(4));
    let (status, stderr) = probe.stop();
    assert!(status.success(), "bgp-probe exited with {status}: {stderr}");
    let down = wait_until(WAIT, || {
        (gobgp.neighbor(&lab.router, NODE_V4)["state"]["session_state"] != GOBGP_ESTABLISHED)
            .then_some(())
    });
    assert!(down.is_some(), "GoBGP still has the session up");
    // Let the last segments reach the capture before stopping it.
    std::thread::sleep(Duration::from_millis(500));
    capture.stop();

    // Every BGP message in the capture, as (source, type).
    let fields = tshark(
        &pcap,
        &[
            "-Y",
            "bgp",
            "-T",
            "fields",
            "-E",
            "occurrence=a",
            "-E",
            "separator=;",
            "-e",
            "ip.src",
            "-e",
            "bgp.type",
        ],
    );
    let mut ours: BTreeMap<String, usize> = BTreeMap::new();
    for line in fields.lines() {
        let mut parts = line.split(';');
        let (Some(src), Some(types)) = (parts.next(), parts.next()) else {
            continue;
        };
        if src != NODE_V4 {
            continue;
        }
        for t in types.split(',').filter(|t| !t.is_empty()) {
            *ours.entry(t.to_owned()).or_default() += 1;
        }
    }
    println!("message types we sent, as tshark decoded them: {ours:?}");
    // 1 OPEN, 2 UPDATE, 3 NOTIFICATION, 4 KEEPALIVE.
    for (code, name) in [
        ("1", "OPEN"),
        ("2", "UPDATE"),
        ("3", "NOTIFICATION"),
        ("4", "KEEPALIVE"),
    ] {
        assert!(
            ours.contains_key(code),
            "no {name} from us in the capture: {ours:?}\n{fields}"
        );
    }
    // What tshark decoded of the details we care about.
    let detail = tshark(&pcap, &["-Y", &format!("bgp && ip.src == {NODE_V4}"), "-V"]);
    for needle in [
        "198.51.100.80/32",
        "198.51.100.81/32",
        "2001:db8::80/128",
        "65000:80",
        "NO_EXPORT",
        "4200000002:8:0",
        "Graceful Restart",
        "Support for 4-octet AS number capability",
        "Multiprotocol extensions capability",
        "Route refresh capability",
        "Cease",
        "Administratively Shutdown",
        "Shutdown Communication: ferrolb-speaker bgp-probe stopping",
        // IPv4 End-of-RIB: an UPDATE with nothing in it (tshark 4.0 does
        // not name it).
        "Length: 23\n    Type: UPDATE Message (2)\n    Withdrawn Routes Length: 0\n    \
         Total Path Attribute Length: 0",
        "Withdrawn prefix: 198.51.100.80",
    ] {
        assert!(
            detail.contains(needle),
            "tshark's decode of our messages lacks {needle:?}:\n{detail}"
        );
    }
    let bad = tshark(
        &pcap,
        &["-Y", "_ws.malformed || _ws.expert.severity >= 0x00800000"],
    );
    assert!(
        bad.trim().is_empty(),
        "tshark reports malformed packets or errors:\n{bad}\n{}",
        tshark(
            &pcap,
            &[
                "-Y",
                "_ws.malformed || _ws.expert.severity >= 0x00800000",
                "-V"
            ]
        )
    );
    let warnings = tshark(
        &pcap,
        &["-Y", "bgp && _ws.expert.severity >= 0x00600000", "-V"],
    );
    assert!(
        warnings.trim().is_empty(),
        "tshark warns about BGP messages:\n{warnings}"
    );
    let total = fields.lines().count();
    assert!(
        total >= 8,
        "too few BGP packets captured ({total}):\n{fields}"
    );
}
