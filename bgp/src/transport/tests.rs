//! Two sessions talking over loopback through the transport.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::prefix::AddressFamily;
use crate::session::{PeerAs, SessionConfig};

const WAIT: Duration = Duration::from_secs(10);

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn session(asn: u32, id: u8, peer_asn: u32, passive: bool) -> Session {
    let mut cfg = SessionConfig::new(asn, Ipv4Addr::new(192, 0, 2, id), PeerAs::Fixed(peer_asn));
    cfg.passive = passive;
    cfg.hold_time = 9;
    Session::new(cfg).unwrap()
}

async fn wait_for(
    events: &mut UnboundedReceiver<TransportEvent>,
    what: impl Fn(&TransportEvent) -> bool,
) -> TransportEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let event = events.recv().await.expect("event stream ended");
            if what(&event) {
                return event;
            }
        }
    })
    .await
    .expect("event did not come in time")
}

fn established(event: &TransportEvent) -> bool {
    matches!(event, TransportEvent::Session(Action::Established { .. }))
}

#[tokio::test]
async fn sessions_establish_exchange_routes_and_stop() {
    let port = free_port();
    let loopback = Ipv4Addr::LOCALHOST;
    // A listens only; B connects only.
    let mut a_cfg = TransportConfig::new(SocketAddr::from((loopback, 0)));
    a_cfg.listen_port = Some(port);
    a_cfg.source = Some(loopback.into());
    let (a, mut a_events, a_task) = spawn(session(65001, 1, 4_200_000_002, true), a_cfg).unwrap();
    let mut b_cfg = TransportConfig::new(SocketAddr::from((loopback, port)));
    b_cfg.listen_port = None;
    b_cfg.ttl = TtlMode::Ttl(1);
    let (b, mut b_events, b_task) = spawn(session(4_200_000_002, 2, 65001, false), b_cfg).unwrap();

    let up = wait_for(&mut a_events, established).await;
    let TransportEvent::Session(Action::Established { negotiated, .. }) = up else {
        unreachable!()
    };
    assert_eq!(negotiated.peer_asn, 4_200_000_002);
    assert_eq!(negotiated.hold_time, 9);
    wait_for(&mut b_events, established).await;

    let prefix: Prefix = "198.51.100.7/32".parse().unwrap();
    b.announce(prefix, RouteAttributes::default()).unwrap();
    let v6: Prefix = "2001:db8::7/128".parse().unwrap();
    b.announce(v6, RouteAttributes::default()).unwrap();
    wait_for(&mut a_events, |e| {
        matches!(e, TransportEvent::Session(Action::RoutesReceived { family, counts })
            if *family == AddressFamily::IPV6_UNICAST && counts.current == 1)
    })
    .await;
    let status = a.status().await.unwrap();
    assert_eq!(status.state, State::Established);
    assert_eq!(status.received, 2);
    assert_eq!(b.status().await.unwrap().advertised, 2);

    // B withdraws and shuts down: A sees the withdrawal, then the Cease.
    b.stop(true, Some("bye")).await.unwrap();
    wait_for(&mut a_events, |e| {
        matches!(e, TransportEvent::Session(Action::RoutesReceived { family, counts })
            if *family == AddressFamily::IPV4_UNICAST && counts.withdrawn == 1)
    })
    .await;
    let received = wait_for(&mut a_events, |e| {
        matches!(
            e,
            TransportEvent::Session(Action::NotificationReceived { .. })
        )
    })
    .await;
    let TransportEvent::Session(Action::NotificationReceived { notification, .. }) = received
    else {
        unreachable!()
    };
    assert_eq!(
        notification.shutdown_communication().unwrap().as_deref(),
        Some("bye")
    );
    wait_for(&mut b_events, |e| *e == TransportEvent::Stopped).await;
    b_task.await.unwrap();
    a.stop(false, None).await.unwrap();
    a_task.await.unwrap();
}

#[tokio::test]
async fn connections_from_other_addresses_are_refused() {
    let port = free_port();
    let mut cfg = TransportConfig::new(SocketAddr::from((Ipv4Addr::new(127, 0, 0, 2), 0)));
    cfg.listen_port = Some(port);
    cfg.source = Some(Ipv4Addr::LOCALHOST.into());
    let (handle, mut events, task) = spawn(session(65001, 1, 65002, true), cfg).unwrap();
    let _stream = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .await
        .unwrap();
    wait_for(&mut events, |e| matches!(e, TransportEvent::Refused { .. })).await;
    assert_eq!(handle.status().await.unwrap().state, State::Active);
    drop(handle);
    wait_for(&mut events, |e| *e == TransportEvent::Stopped).await;
    task.await.unwrap();
}

#[tokio::test]
async fn failed_connects_are_reported_and_retried() {
    let port = free_port();
    let mut cfg = TransportConfig::new(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    cfg.listen_port = None;
    let (handle, mut events, task) = spawn(session(65001, 1, 65002, false), cfg).unwrap();
    wait_for(&mut events, |e| {
        matches!(e, TransportEvent::ConnectFailed { .. })
    })
    .await;
    handle.stop(false, None).await.unwrap();
    task.await.unwrap();
}
