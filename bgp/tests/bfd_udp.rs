//! BFD over real UDP sockets on loopback: two I/O tasks (each on its own
//! ports, since the RFC ports can be bound once per namespace) bring their
//! sessions Up, then one goes AdminDown or disappears and the other sees
//! Down with the matching diagnostic. Also: the TTL rules of single-hop and
//! multi-hop sessions against hand-made packets, and BFD Down on a BGP
//! session through the transport. Every wait is bounded.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use ferrolb_bgp::bfd::io::{self, AddedSession, BfdEvent, BfdHandle, IoConfig, PeerConfig, Ports};
use ferrolb_bgp::bfd::{ControlPacket, Diag, Hop, Profile, SOURCE_PORTS, State};
use ferrolb_bgp::session::{Action, PeerAs, Session, SessionConfig};
use ferrolb_bgp::transport::{self, TransportConfig, TransportEvent};
use ferrolb_bgp::{CeaseSubcode, ErrorCode};
use tokio::sync::mpsc::UnboundedReceiver;

/// Longest wait for anything; sessions come Up within about two seconds
/// (one second between packets until Up).
const WAIT: Duration = Duration::from_secs(10);

/// A UDP port nobody uses right now.
fn free_udp_port(ip: IpAddr) -> u16 {
    UdpSocket::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn fast_profile() -> Profile {
    Profile {
        receive_interval_ms: 50,
        transmit_interval_ms: 50,
        detect_multiplier: 3,
        ..Profile::default()
    }
}

/// Two I/O configurations that send to each other's ports.
fn pair(ip: IpAddr) -> (IoConfig, IoConfig) {
    let a = Ports {
        single_hop: free_udp_port(ip),
        multi_hop: free_udp_port(ip),
    };
    let b = Ports {
        single_hop: free_udp_port(ip),
        multi_hop: free_udp_port(ip),
    };
    let cfg = |listen, peer, seed| IoConfig {
        listen,
        peer,
        seed: Some(seed),
        ..IoConfig::default()
    };
    (cfg(a, b, 1), cfg(b, a, 2))
}

/// The next event on `events` that `what` accepts (events before it are
/// dropped), within [`WAIT`].
async fn wait_event<T>(events: &mut UnboundedReceiver<T>, what: impl Fn(&T) -> bool) -> T {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if what(&event) {
                return event;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no matching {} within {WAIT:?}", std::any::type_name::<T>()))
}

async fn wait_state(session: &mut AddedSession, state: State) {
    let reached = tokio::time::timeout(WAIT, session.status.wait_for(|s| s.state == state))
        .await
        .map(|r| r.is_ok());
    assert_eq!(
        reached,
        Ok(true),
        "not {state:?} in time: {:?}",
        *session.status.borrow()
    );
}

fn changed_to(to: State) -> impl Fn(&BfdEvent) -> bool {
    move |e| matches!(e, BfdEvent::StateChanged { to: t, .. } if *t == to)
}

async fn add(handle: &BfdHandle, ip: IpAddr) -> AddedSession {
    let mut peer = PeerConfig::new(ip, Hop::SingleHop, fast_profile());
    peer.source = Some(ip);
    let added = handle.add_session(peer).await.unwrap();
    assert_ne!(added.discriminator, 0);
    assert_eq!(added.local.ip(), ip);
    assert!(SOURCE_PORTS.contains(&added.local.port()));
    added
}

#[tokio::test]
async fn ipv4_sessions_come_up_and_admin_down_is_seen_as_neighbor_down() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (a_cfg, b_cfg) = pair(ip);
    let (a, mut a_events, a_task) = io::spawn(a_cfg);
    let (b, mut b_events, b_task) = io::spawn(b_cfg);
    let mut sa = add(&a, ip).await;
    let mut sb = add(&b, ip).await;
    // A second session to the same peer and kind of hop is refused.
    let dup = a
        .add_session(PeerConfig::new(ip, Hop::SingleHop, fast_profile()))
        .await;
    assert!(matches!(dup, Err(io::BfdIoError::Duplicate(p)) if p == ip));

    wait_state(&mut sa, State::Up).await;
    wait_state(&mut sb, State::Up).await;
    wait_event(&mut a_events, changed_to(State::Up)).await;
    wait_event(&mut b_events, changed_to(State::Up)).await;
    let stats = b.stats().await.unwrap();
    assert!(stats.sent >= 1 && stats.received >= 1, "{stats:?}");
    assert_eq!((stats.send_errors, stats.dropped), (0, 0));

    // A removes its session: AdminDown packets, then it is gone.
    let removed = tokio::time::timeout(WAIT, a.remove_session(sa.discriminator))
        .await
        .expect("removal within the drain limit")
        .unwrap();
    assert!(removed);
    let down = wait_event(&mut a_events, changed_to(State::AdminDown)).await;
    assert!(matches!(
        down,
        BfdEvent::StateChanged {
            from: State::Up,
            diag: Diag::AdministrativelyDown,
            ..
        }
    ));
    let gone = wait_event(&mut a_events, |e| matches!(e, BfdEvent::Removed { .. })).await;
    assert_eq!(
        gone,
        BfdEvent::Removed {
            discriminator: sa.discriminator,
            peer: ip
        }
    );
    // The watch keeps the last state and reports that the session is gone.
    assert_eq!(sa.status.borrow().state, State::AdminDown);
    assert!(sa.status.has_changed().is_err(), "watch closed on removal");
    assert!(!a.remove_session(sa.discriminator).await.unwrap());

    // B heard the AdminDown: Down, diag Neighbor Signaled Session Down, and
    // not a path failure (RFC 5882 §3.2).
    let event = wait_event(&mut b_events, changed_to(State::Down)).await;
    let BfdEvent::StateChanged {
        discriminator,
        peer,
        hop,
        from,
        diag,
        remote_state,
        ..
    } = event
    else {
        unreachable!()
    };
    assert_eq!(
        (discriminator, peer, hop, from),
        (sb.discriminator, ip, Hop::SingleHop, State::Up)
    );
    assert_eq!(diag, Diag::NeighborSignaledSessionDown);
    assert_eq!(remote_state, State::AdminDown);
    assert!(!event.is_path_failure());
    wait_state(&mut sb, State::Down).await;
    assert_eq!(sb.status.borrow().diag, Diag::NeighborSignaledSessionDown);

    for (handle, events, task) in [(a, a_events, a_task), (b, b_events, b_task)] {
        let mut events = events;
        tokio::time::timeout(WAIT, handle.shutdown())
            .await
            .unwrap()
            .unwrap();
        wait_event(&mut events, |e| *e == BfdEvent::Stopped).await;
        tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn ipv6_silent_peer_is_detected_by_the_timer() {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let (a_cfg, b_cfg) = pair(ip);
    let (a, _a_events, a_task) = io::spawn(a_cfg);
    let (b, mut b_events, b_task) = io::spawn(b_cfg);
    let mut sa = add(&a, ip).await;
    let mut sb = add(&b, ip).await;
    wait_state(&mut sa, State::Up).await;
    wait_state(&mut sb, State::Up).await;

    // A dies without a word: B's detection time (3 × 50 ms) runs out.
    a_task.abort();
    let _ = a_task.await;
    let event = wait_event(&mut b_events, changed_to(State::Down)).await;
    assert!(matches!(
        event,
        BfdEvent::StateChanged {
            from: State::Up,
            diag: Diag::ControlDetectionTimeExpired,
            ..
        }
    ));
    assert!(event.is_path_failure());
    assert_eq!(sb.status.borrow().diag, Diag::ControlDetectionTimeExpired);

    tokio::time::timeout(WAIT, b.shutdown())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, b_task).await.unwrap().unwrap();
    assert!(matches!(a.stats().await, Err(io::BfdIoError::TaskEnded)));
}

/// A Down packet as a peer that has not heard from us sends it.
fn hello(my_discriminator: u32) -> Vec<u8> {
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discriminator,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 1_000_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
    .encode()
}

/// Waits (bounded) until the task has discarded `n` datagrams.
async fn wait_dropped(handle: &BfdHandle, n: u64) {
    for _ in 0..200 {
        if handle.stats().await.unwrap().dropped >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{n} datagrams not dropped: {:?}", handle.stats().await);
}

#[tokio::test]
async fn ttl_rules_single_hop_255_multi_hop_minimum() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listen = Ports {
        single_hop: free_udp_port(ip),
        multi_hop: free_udp_port(ip),
    };
    let (handle, _events, task) = io::spawn(IoConfig {
        listen,
        peer: Ports {
            single_hop: free_udp_port(ip),
            multi_hop: free_udp_port(ip),
        },
        seed: Some(3),
        ..IoConfig::default()
    });
    let mut single = handle
        .add_session(PeerConfig::new(ip, Hop::SingleHop, fast_profile()))
        .await
        .unwrap();
    let mut multi = handle
        .add_session(PeerConfig::new(ip, Hop::MultiHop, fast_profile()))
        .await
        .unwrap();
    let peer = UdpSocket::bind((ip, 0)).unwrap();
    let send = |ttl: u32, port: u16| {
        peer.set_ttl(ttl).unwrap();
        peer.send_to(&hello(77), SocketAddr::new(ip, port)).unwrap();
    };

    // Single-hop: TTL 254 is discarded, 255 accepted (Down → Init).
    send(254, listen.single_hop);
    wait_dropped(&handle, 1).await;
    assert_eq!(single.status.borrow().state, State::Down);
    send(255, listen.single_hop);
    wait_state(&mut single, State::Init).await;

    // Multi-hop: at least the profile's minimum (254) is accepted.
    send(253, listen.multi_hop);
    wait_dropped(&handle, 2).await;
    assert_eq!(multi.status.borrow().state, State::Down);
    send(254, listen.multi_hop);
    wait_state(&mut multi, State::Init).await;

    // Garbage never hurts.
    peer.set_ttl(255).unwrap();
    peer.send_to(&[0x20; 3], SocketAddr::new(ip, listen.single_hop))
        .unwrap();
    wait_dropped(&handle, 3).await;
    let stats = handle.stats().await.unwrap();
    assert_eq!((stats.received, stats.dropped), (2, 3));

    tokio::time::timeout(WAIT, handle.shutdown())
        .await
        .unwrap()
        .unwrap();
    tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
}

fn bgp_session(asn: u32, id: u8, peer_asn: u32, passive: bool) -> Session {
    let mut cfg = SessionConfig::new(asn, Ipv4Addr::new(192, 0, 2, id), PeerAs::Fixed(peer_asn));
    cfg.passive = passive;
    Session::new(cfg).unwrap()
}

fn bgp_established(event: &TransportEvent) -> bool {
    matches!(event, TransportEvent::Session(Action::Established { .. }))
}

#[tokio::test]
async fn bfd_down_on_a_bgp_session_sends_cease_10_and_reconnects() {
    let loopback = Ipv4Addr::LOCALHOST;
    let port = std::net::TcpListener::bind((loopback, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut a_cfg = TransportConfig::new(SocketAddr::from((loopback, 0)));
    a_cfg.listen_port = Some(port);
    a_cfg.source = Some(loopback.into());
    let (a, mut a_events, a_task) =
        transport::spawn(bgp_session(65001, 1, 65002, true), a_cfg).unwrap();
    let mut b_cfg = TransportConfig::new(SocketAddr::from((loopback, port)));
    b_cfg.listen_port = None;
    let (b, mut b_events, b_task) =
        transport::spawn(bgp_session(65002, 2, 65001, false), b_cfg).unwrap();
    wait_event(&mut a_events, bgp_established).await;
    wait_event(&mut b_events, bgp_established).await;

    b.bfd_down().unwrap();
    let sent = wait_event(&mut b_events, |e| {
        matches!(e, TransportEvent::Session(Action::NotificationSent { .. }))
    })
    .await;
    let received = wait_event(&mut a_events, |e| {
        matches!(
            e,
            TransportEvent::Session(Action::NotificationReceived { .. })
        )
    })
    .await;
    for event in [sent, received] {
        let (TransportEvent::Session(Action::NotificationSent { notification, .. })
        | TransportEvent::Session(Action::NotificationReceived { notification, .. })) = event
        else {
            unreachable!()
        };
        assert_eq!(notification.code, ErrorCode::Cease);
        assert!(notification.is_cease(CeaseSubcode::BfdDown));
    }
    // B goes back through ConnectRetry and the session comes back.
    wait_event(&mut b_events, bgp_established).await;
    wait_event(&mut a_events, bgp_established).await;

    b.stop(false, None).await.unwrap();
    a.stop(false, None).await.unwrap();
    tokio::time::timeout(WAIT, b_task).await.unwrap().unwrap();
    tokio::time::timeout(WAIT, a_task).await.unwrap().unwrap();
}
