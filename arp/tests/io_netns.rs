//! The I/O layer against a real kernel, in a private network namespace
//! made with unshare(2) on the test's own thread (nothing outside it is
//! touched; documentation addresses only): a veth pair, the runner on
//! `veth0`, and a raw socket on `veth1` playing the client.
//!
//! Needs root: otherwise prints `SKIPPED: …`, or fails when `CI` is set.

#![cfg(feature = "io")]

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use ferrolb_arp::frame::arp::{ArpPacket, OP_REPLY, OP_REQUEST, arp_frame};
use ferrolb_arp::frame::{self, Packet};
use ferrolb_arp::io::{L2Config, L2Event, L2Runner, PacketSocket, ReceivedFrame};
use ferrolb_arp::{ChoiceRule, Event, MacAddr};
use futures::TryStreamExt;
use rtnetlink::{LinkUnspec, LinkVeth};
use tokio::sync::mpsc;
use tokio::time::timeout;

const SERVER_MAC: MacAddr = MacAddr::new(0x02, 0xf1, 0x0c, 0, 0, 0x01);
const PEER_MAC: MacAddr = MacAddr::new(0x02, 0xf1, 0x0c, 0, 0, 0x02);
/// The asker: not the MAC of any interface here, or the announcer would
/// take its frames for its own.
const ASKER_MAC: MacAddr = MacAddr::new(0x02, 0xf1, 0x0c, 0, 0, 0x99);
const ASKER_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
const OWNED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const LISTED: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 11);
const WAIT: Duration = Duration::from_secs(5);

fn privileged() -> bool {
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    let reason = "not running as root (needs a network namespace and raw sockets)";
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    println!("SKIPPED: {reason}");
    false
}

async fn make_veth_pair() -> u32 {
    let (connection, handle, _) = rtnetlink::new_connection().expect("netlink");
    tokio::spawn(connection);
    handle
        .link()
        .add(LinkVeth::new("veth0", "veth1").build())
        .execute()
        .await
        .expect("creating the veth pair");
    let index = |name: &'static str| {
        let handle = handle.clone();
        async move {
            let mut links = handle.link().get().match_name(name.to_owned()).execute();
            links
                .try_next()
                .await
                .expect("link lookup")
                .expect("link exists")
                .header
                .index
        }
    };
    let veth0 = index("veth0").await;
    let veth1 = index("veth1").await;
    for (link, mac) in [(veth0, SERVER_MAC), (veth1, PEER_MAC)] {
        handle
            .link()
            .set(
                LinkUnspec::new_with_index(link)
                    .address(mac.octets().to_vec())
                    .up()
                    .build(),
            )
            .execute()
            .await
            .expect("setting the link up");
    }
    handle
        .address()
        .add(veth0, IpAddr::V4(Ipv4Addr::new(198, 51, 100, 1)), 24)
        .execute()
        .await
        .expect("adding the address");
    veth1
}

/// Waits for the next ARP frame on the peer socket that `matches`.
async fn next_arp(
    frames: &mut mpsc::Receiver<ReceivedFrame>,
    matches: impl Fn(&ArpPacket) -> bool,
    wait: Duration,
) -> Option<ArpPacket> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let frame = tokio::time::timeout_at(deadline, frames.recv())
            .await
            .ok()??;
        if let Ok(parsed) = frame::parse(&frame.bytes)
            && let Packet::Arp(arp) = parsed.packet
            && matches(&arp)
        {
            return Some(arp);
        }
    }
}

async fn next_event(
    events: &mut mpsc::Receiver<L2Event>,
    matches: impl Fn(&L2Event) -> bool,
) -> L2Event {
    loop {
        let event = timeout(WAIT, events.recv())
            .await
            .expect("event in time")
            .expect("runner alive");
        if matches(&event) {
            return event;
        }
    }
}

fn request(target: Ipv4Addr) -> Vec<u8> {
    let packet = ArpPacket {
        op: OP_REQUEST,
        sender_mac: ASKER_MAC,
        sender_ip: ASKER_IP,
        target_mac: MacAddr::ZERO,
        target_ip: target,
    };
    arp_frame(MacAddr::BROADCAST, ASKER_MAC, None, &packet)
}

async fn scenario() {
    let peer_index = make_veth_pair().await;
    let mut runner = L2Runner::start(L2Config::default())
        .await
        .expect("runner starts");
    let (peer_tx, mut peer_frames) = mpsc::channel(64);
    let mut peer = PacketSocket::open(peer_index, "veth1", PEER_MAC, peer_tx).expect("peer socket");
    let owned = IpAddr::V4(OWNED);

    // Ownership by the subnet rule: chosen, announced, answered.
    runner.handle.add_ip(owned, vec![]).await.expect("add_ip");
    let chosen = next_event(
        &mut runner.events,
        |e| matches!(e, L2Event::InterfacesChosen(s) if s.ip == owned),
    )
    .await;
    let L2Event::InterfacesChosen(status) = chosen else {
        unreachable!()
    };
    assert_eq!(status.rule, ChoiceRule::Subnet);
    assert_eq!(status.interfaces.len(), 1);
    assert_eq!(status.interfaces[0].name, "veth0");
    assert_eq!(status.interfaces[0].mac, SERVER_MAC);
    let garp = next_arp(
        &mut peer_frames,
        |a| a.sender_ip == OWNED && a.target_ip == OWNED,
        WAIT,
    )
    .await
    .expect("gratuitous ARP on the wire");
    assert_eq!(garp.sender_mac, SERVER_MAC);

    peer.send(&request(OWNED)).expect("sending a request");
    let reply = next_arp(
        &mut peer_frames,
        |a| a.op == OP_REPLY && a.target_mac == ASKER_MAC,
        WAIT,
    )
    .await
    .expect("ARP reply");
    assert_eq!(
        (reply.sender_mac, reply.sender_ip, reply.target_ip),
        (SERVER_MAC, OWNED, ASKER_IP)
    );
    next_event(&mut runner.events, |e| {
        matches!(e, L2Event::Announcer { event: Event::Answered { asker_mac, .. }, .. } if *asker_mac == ASKER_MAC)
    })
    .await;

    // An explicit interface list.
    let listed = IpAddr::V4(LISTED);
    runner
        .handle
        .add_ip(listed, vec!["veth0".to_owned()])
        .await
        .expect("add_ip listed");
    let status = runner.handle.status().await.expect("status");
    let listed_status = status.iter().find(|s| s.ip == listed).expect("listed ip");
    assert_eq!(listed_status.rule, ChoiceRule::Listed);

    // resend: a new burst right away.
    while peer_frames.try_recv().is_ok() {}
    assert_eq!(runner.handle.resend(owned).await.expect("resend"), 1);
    next_arp(
        &mut peer_frames,
        |a| a.sender_ip == OWNED && a.target_ip == OWNED,
        Duration::from_millis(500),
    )
    .await
    .expect("gratuitous ARP after resend");

    let counters = runner.handle.counters().await.expect("counters");
    let ifindex = status[0].interfaces[0].index;
    let ip_counters = counters
        .announcer
        .ip(ifindex, owned)
        .expect("owned ip counters");
    assert_eq!(ip_counters.replies_sent, 1);
    assert!(ip_counters.gratuitous_sent >= 2);
    assert!(counters.io.frames_sent >= 3);
    assert_eq!(counters.io.send_errors, 0);

    // Released: no more answers.
    runner.handle.remove_ip(owned).await.expect("remove_ip");
    next_event(
        &mut runner.events,
        |e| matches!(e, L2Event::Released { ip } if *ip == owned),
    )
    .await;
    while peer_frames.try_recv().is_ok() {}
    peer.send(&request(OWNED)).expect("sending a request");
    assert!(
        next_arp(
            &mut peer_frames,
            |a| a.op == OP_REPLY && a.sender_ip == OWNED,
            Duration::from_millis(500),
        )
        .await
        .is_none(),
        "a released IP was answered"
    );
    let counters = runner.handle.counters().await.expect("counters");
    assert!(counters.announcer.ip(ifindex, owned).is_none());

    runner.handle.shutdown().await.expect("shutdown");
    timeout(WAIT, runner.task)
        .await
        .expect("task ends")
        .expect("task ok");
}

#[test]
fn runner_announces_answers_resends_and_releases() {
    if !privileged() {
        return;
    }
    std::thread::spawn(|| {
        // SAFETY: unshare(2) only moves this thread into a new, empty
        // network namespace, which goes away with the thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(scenario());
    })
    .join()
    .expect("scenario");
}
