//! Session tests: two sessions wired back to back through an in-memory
//! network, with simulated time.

use std::collections::{HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use super::*;
use crate::message::attribute::{AsPath, Community, LargeCommunity, NextHop, PathAttributes};
use crate::message::capability::Capability;
use crate::message::notification::{CeaseSubcode, ErrorCode};
use crate::message::route_refresh::RouteRefreshSubtype;
use crate::message::update::Update;
use crate::message::{CodecContext, MAX_MESSAGE_LEN, Message, decode_message};
use crate::{AS_TRANS, Origin};

const AS_A: u32 = 64512;
const AS_B: u32 = 64513;
const ID_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const ID_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cfg(asn: u32, id: Ipv4Addr, peer: PeerAs) -> SessionConfig {
    SessionConfig::new(asn, id, peer)
}

fn ebgp() -> (SessionConfig, SessionConfig) {
    let a = cfg(AS_A, ID_A, PeerAs::Fixed(AS_B));
    let mut b = cfg(AS_B, ID_B, PeerAs::Fixed(AS_A));
    b.passive = true;
    (a, b)
}

fn ibgp() -> (SessionConfig, SessionConfig) {
    let a = cfg(AS_A, ID_A, PeerAs::Internal);
    let mut b = cfg(AS_A, ID_B, PeerAs::Internal);
    b.passive = true;
    (a, b)
}

fn v4(s: &str) -> Prefix {
    s.parse::<crate::Ipv4Prefix>().unwrap().into()
}

fn v6(s: &str) -> Prefix {
    s.parse::<crate::Ipv6Prefix>().unwrap().into()
}

/// 198.51.100.0/32 … 198.51.100.(n-1)/32.
fn v4_hosts(n: u8) -> Vec<Prefix> {
    (0..n)
        .map(|i| Prefix::new(Ipv4Addr::new(198, 51, 100, i).into(), 32).unwrap())
        .collect()
}

/// 2001:db8::/128 … 2001:db8::(n-1)/128.
fn v6_hosts(n: u16) -> Vec<Prefix> {
    (0..n)
        .map(|i| Prefix::new(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i).into(), 128).unwrap())
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

impl Side {
    fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// Two sessions and the connections between them.
struct Net {
    now: Duration,
    a: Session,
    b: Session,
    addr_a: IpAddr,
    addr_b: IpAddr,
    next_id: u64,
    open: HashSet<ConnId>,
    /// Connection attempts succeed.
    reachable: bool,
    /// Bytes are silently lost (a dead peer or link).
    blackhole: bool,
    log_a: Vec<(Duration, Action)>,
    log_b: Vec<(Duration, Action)>,
    /// Raw messages as sent: (sender, connection, bytes).
    wire: Vec<(Side, ConnId, Vec<u8>)>,
}

impl Net {
    fn new(a: SessionConfig, b: SessionConfig) -> Net {
        Net {
            now: Duration::ZERO,
            a: Session::new(a).unwrap(),
            b: Session::new(b).unwrap(),
            addr_a: IpAddr::V4(ID_A),
            addr_b: IpAddr::V4(ID_B),
            next_id: 1,
            open: HashSet::new(),
            reachable: true,
            blackhole: false,
            log_a: Vec::new(),
            log_b: Vec::new(),
            wire: Vec::new(),
        }
    }

    fn session(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn addr(&self, side: Side) -> IpAddr {
        match side {
            Side::A => self.addr_a,
            Side::B => self.addr_b,
        }
    }

    fn log(&self, side: Side) -> &[(Duration, Action)] {
        match side {
            Side::A => &self.log_a,
            Side::B => &self.log_b,
        }
    }

    /// Runs `f` on one session and carries out every resulting action.
    fn with(&mut self, side: Side, f: impl FnOnce(&mut Session, Duration) -> Vec<Action>) {
        let now = self.now;
        let actions = f(self.session(side), now);
        self.run(side, actions);
    }

    fn run(&mut self, side: Side, actions: Vec<Action>) {
        self.run_queue(actions.into_iter().map(|a| (side, a)).collect());
    }

    fn run_queue(&mut self, mut queue: VecDeque<(Side, Action)>) {
        let mut steps = 0;
        while let Some((side, action)) = queue.pop_front() {
            steps += 1;
            assert!(steps < 100_000, "runaway");
            match side {
                Side::A => self.log_a.push((self.now, action.clone())),
                Side::B => self.log_b.push((self.now, action.clone())),
            }
            let now = self.now;
            let peer = side.other();
            let more = |s: Side, acts: Vec<Action>, q: &mut VecDeque<(Side, Action)>| {
                q.extend(acts.into_iter().map(|a| (s, a)));
            };
            match action {
                Action::Connect => {
                    if self.reachable {
                        let id = ConnId(self.next_id);
                        self.next_id += 1;
                        self.open.insert(id);
                        let (la, lb) = (self.addr(side), self.addr(peer));
                        let acts = self.session(side).tcp_connected(now, id, la);
                        more(side, acts, &mut queue);
                        let acts = self.session(peer).tcp_accepted(now, id, lb);
                        more(peer, acts, &mut queue);
                    } else {
                        let acts = self.session(side).tcp_failed(now);
                        more(side, acts, &mut queue);
                    }
                }
                Action::SendBytes { conn, bytes } => {
                    let delivered = self.open.contains(&conn) && !self.blackhole;
                    if delivered {
                        self.wire.push((side, conn, bytes.clone()));
                        let acts = self.session(peer).bytes_received(now, conn, &bytes);
                        more(peer, acts, &mut queue);
                    }
                }
                Action::CloseConnection { conn } => {
                    let was_open = self.open.remove(&conn);
                    if was_open && !self.blackhole {
                        let acts = self.session(peer).tcp_closed(now, conn);
                        more(peer, acts, &mut queue);
                    }
                }
                _ => {}
            }
        }
    }

    /// Starts both sessions, then carries out what they asked for.
    /// Both connection attempts are in flight before any byte arrives.
    fn start(&mut self) {
        let mut actions: Vec<(Side, Action)> = self
            .a
            .start(self.now)
            .into_iter()
            .map(|a| (Side::A, a))
            .collect();
        actions.extend(self.b.start(self.now).into_iter().map(|a| (Side::B, a)));
        self.run_queue(actions.into());
    }

    /// Advances time by `d`, polling both sessions at their deadlines.
    fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        for _ in 0..100_000 {
            let next = [self.a.next_deadline(), self.b.next_deadline()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.with(Side::A, |s, now| s.poll(now));
                    self.with(Side::B, |s, now| s.poll(now));
                }
                _ => {
                    self.now = end;
                    self.with(Side::A, |s, now| s.poll(now));
                    self.with(Side::B, |s, now| s.poll(now));
                    return;
                }
            }
        }
        panic!("deadline loop");
    }

    fn established(&self) -> bool {
        self.a.state() == State::Established && self.b.state() == State::Established
    }

    /// Messages `side` sent since `from` (an index into `wire`).
    fn sent_since(&self, side: Side, from: usize) -> Vec<Message> {
        let ctx = self.ctx(side);
        self.wire[from..]
            .iter()
            .filter(|(s, _, _)| *s == side)
            .map(|(_, _, b)| decode_message(b, &ctx).unwrap().message)
            .collect()
    }

    fn updates_since(&self, side: Side, from: usize) -> Vec<Update> {
        self.sent_since(side, from)
            .into_iter()
            .filter_map(|m| match m {
                Message::Update(u) => Some(u),
                _ => None,
            })
            .collect()
    }

    fn ctx(&self, side: Side) -> CodecContext {
        let s = match side {
            Side::A => &self.a,
            Side::B => &self.b,
        };
        s.established()
            .map(|(_, n)| n.codec)
            .unwrap_or(CodecContext {
                four_octet_as: true,
                max_message_len: MAX_MESSAGE_LEN,
                internal_peer: false,
            })
    }

    fn notifications_sent(&self, side: Side) -> Vec<Notification> {
        self.log(side)
            .iter()
            .filter_map(|(_, a)| match a {
                Action::NotificationSent { notification, .. } => Some(notification.clone()),
                _ => None,
            })
            .collect()
    }

    fn notifications_received(&self, side: Side) -> Vec<Notification> {
        self.log(side)
            .iter()
            .filter_map(|(_, a)| match a {
                Action::NotificationReceived { notification, .. } => Some(notification.clone()),
                _ => None,
            })
            .collect()
    }

    fn has(&self, side: Side, pred: impl Fn(&Action) -> bool) -> bool {
        self.log(side).iter().any(|(_, a)| pred(a))
    }
}

fn up(a: SessionConfig, b: SessionConfig) -> Net {
    let mut net = Net::new(a, b);
    net.start();
    assert!(
        net.established(),
        "A {:?} B {:?}",
        net.a.state(),
        net.b.state()
    );
    net
}

// ---------------------------------------------------------------------
// Establishment and negotiation

#[test]
fn establishes_ebgp() {
    let (a, mut b) = ebgp();
    b.hostname = Some("node-b".into());
    let net = up(a, b);
    let (_, neg) = net.a.established().unwrap();
    assert_eq!(neg.peer_asn, AS_B);
    assert_eq!(neg.peer_router_id, ID_B);
    assert!(!neg.internal && neg.four_octet_as);
    assert_eq!((neg.hold_time, neg.keepalive_time), (90, 30));
    assert_eq!(
        neg.families,
        [AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
    );
    assert!(neg.route_refresh && neg.enhanced_route_refresh && neg.extended_next_hop);
    assert!(!neg.extended_message);
    assert_eq!(neg.graceful_restart.as_ref().unwrap().restart_time, 120);
    assert_eq!(neg.peer_hostname.as_deref(), Some("node-b"));
    // The state sequence of the active side.
    let states: Vec<State> = net
        .log_a
        .iter()
        .filter_map(|(_, a)| match a {
            Action::StateChanged { to, .. } => Some(*to),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            State::Connect,
            State::OpenSent,
            State::OpenConfirm,
            State::Established
        ]
    );
    assert!(net.has(Side::B, |a| matches!(a, Action::Established { .. })));
    // End-of-RIB for both families, from both sides.
    for side in [Side::A, Side::B] {
        let eor: Vec<_> = net
            .updates_since(side, 0)
            .iter()
            .filter_map(Update::end_of_rib_family)
            .collect();
        assert_eq!(
            eor,
            [AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
        );
        assert!(net.has(side, |a| matches!(a, Action::EndOfRibReceived { .. })));
    }
}

#[test]
fn establishes_ibgp_with_local_pref() {
    let (a, b) = ibgp();
    let mut net = up(a, b);
    assert!(net.a.established().unwrap().1.internal);
    let from = net.wire.len();
    net.a
        .announce(v4("203.0.113.0/24"), RouteAttributes::default());
    net.a.announce(
        v4("203.0.113.128/25"),
        RouteAttributes {
            local_pref: Some(200),
            ..Default::default()
        },
    );
    net.advance(Duration::ZERO);
    let updates = net.updates_since(Side::A, from);
    let prefs: Vec<_> = updates.iter().map(|u| u.attributes.local_pref).collect();
    assert_eq!(prefs, [Some(100), Some(200)]);
    assert!(
        updates
            .iter()
            .all(|u| u.attributes.as_path == Some(AsPath::new()))
    );
    assert_eq!(
        net.b.received_family(AddressFamily::IPV4_UNICAST).current,
        2
    );
}

#[test]
fn ebgp_updates_carry_as_path_and_no_local_pref() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    let from = net.wire.len();
    let attrs = RouteAttributes {
        local_pref: Some(200),
        med: Some(10),
        communities: vec![Community::new(64512, 1)],
        large_communities: vec![LargeCommunity::new(64512, 1, 2)],
        ..Default::default()
    };
    net.a.announce(v4("203.0.113.0/24"), attrs);
    net.advance(Duration::ZERO);
    let updates = net.updates_since(Side::A, from);
    assert_eq!(updates.len(), 1);
    let pa = &updates[0].attributes;
    assert_eq!(pa.local_pref, None);
    assert_eq!(pa.med, Some(10));
    assert_eq!(pa.origin, Some(Origin::Igp));
    assert_eq!(pa.as_path, Some(AsPath::from_sequence([AS_A])));
    assert_eq!(pa.next_hop, Some(ID_A));
    assert_eq!(pa.communities, [Community::new(64512, 1)]);
    assert_eq!(pa.large_communities, [LargeCommunity::new(64512, 1, 2)]);
}

#[test]
fn dynamic_peer_as() {
    let (mut a, mut b) = ebgp();
    a.peer_as = PeerAs::External;
    b.peer_as = PeerAs::External;
    let net = up(a, b);
    assert_eq!(net.a.established().unwrap().1.peer_asn, AS_B);

    // An internal-only peer refuses an external one with Bad Peer AS.
    let (mut a, b) = ebgp();
    a.peer_as = PeerAs::Internal;
    let mut net = Net::new(a, b);
    net.start();
    assert!(!net.established());
    let n = &net.notifications_sent(Side::A)[0];
    assert_eq!((n.code, n.subcode), (ErrorCode::Open, 2));
    assert!(net.notifications_received(Side::B).contains(n));
}

/// A scripted peer: a session on one side, raw bytes on the other.
struct Raw {
    s: Session,
    now: Duration,
    actions: Vec<Action>,
}

impl Raw {
    /// `s` accepted connection 1 and sent its OPEN.
    fn new(cfg: SessionConfig) -> Raw {
        let mut s = Session::new(cfg).unwrap();
        let mut actions = s.start(Duration::ZERO);
        actions.extend(s.tcp_accepted(Duration::ZERO, ConnId(1), IpAddr::V4(ID_A)));
        Raw {
            s,
            now: Duration::ZERO,
            actions,
        }
    }

    fn feed(&mut self, msg: &Message, ctx: &CodecContext) -> Vec<Action> {
        let bytes = msg.encode(ctx).unwrap();
        self.feed_bytes(&bytes)
    }

    fn feed_bytes(&mut self, bytes: &[u8]) -> Vec<Action> {
        let out = self.s.bytes_received(self.now, ConnId(1), bytes);
        self.actions.extend(out.clone());
        out
    }

    fn sent(&self, ctx: &CodecContext) -> Vec<Message> {
        self.actions
            .iter()
            .filter_map(|a| match a {
                Action::SendBytes { bytes, .. } => {
                    Some(decode_message(bytes, ctx).unwrap().message)
                }
                _ => None,
            })
            .collect()
    }

    fn notification(&self) -> Option<Notification> {
        self.actions.iter().find_map(|a| match a {
            Action::NotificationSent { notification, .. } => Some(notification.clone()),
            _ => None,
        })
    }
}

fn two_octet() -> CodecContext {
    CodecContext::default()
}

/// An OPEN from AS_B as a two-octet speaker: IPv4 unicast only.
fn old_open(my_as: u16, hold: u16, id: Ipv4Addr) -> Open {
    Open {
        my_as,
        hold_time: hold,
        bgp_identifier: id,
        capabilities: vec![Capability::Multiprotocol(AddressFamily::IPV4_UNICAST)],
    }
}

#[test]
fn two_octet_peer_gets_as_trans_and_as4_path() {
    let asn = 4_200_000_001;
    let mut raw = Raw::new(cfg(asn, ID_A, PeerAs::Fixed(AS_B)));
    raw.feed(
        &Message::Open(old_open(AS_B as u16, 90, ID_B)),
        &two_octet(),
    );
    raw.feed(&Message::Keepalive, &two_octet());
    assert_eq!(raw.s.state(), State::Established);
    let neg = raw.s.established().unwrap().1.clone();
    assert!(!neg.four_octet_as);
    assert_eq!(neg.families, [AddressFamily::IPV4_UNICAST]);
    assert!(!neg.route_refresh && neg.graceful_restart.is_none());
    // Our OPEN: My AS is AS_TRANS, the real AS in the capability.
    let Message::Open(ours) = &raw.sent(&two_octet())[0] else {
        panic!("OPEN first")
    };
    assert_eq!(u32::from(ours.my_as), AS_TRANS);
    assert_eq!(ours.asn(), asn);

    raw.actions.clear();
    raw.s
        .announce(v4("192.0.2.0/24"), RouteAttributes::default());
    // IPv6 was not negotiated: not sent.
    raw.s
        .announce(v6("2001:db8::/48"), RouteAttributes::default());
    raw.actions = raw.s.poll(Duration::ZERO);
    let sent = raw.sent(&two_octet());
    assert_eq!(sent.len(), 1);
    let Message::Update(u) = &sent[0] else {
        panic!()
    };
    assert_eq!(
        u.attributes.as_path,
        Some(AsPath::from_sequence([AS_TRANS]))
    );
    assert_eq!(u.attributes.as4_path, Some(AsPath::from_sequence([asn])));
    assert!(raw.actions.iter().any(|a| matches!(a, Action::Warning(_))));
}

#[test]
fn four_octet_peer_as_from_capability() {
    let peer = 4_200_000_002;
    let mut raw = Raw::new(cfg(AS_A, ID_A, PeerAs::Fixed(peer)));
    let open = Open::new(peer, 90, ID_B, vec![]);
    assert_eq!(u32::from(open.my_as), AS_TRANS);
    raw.feed(&Message::Open(open), &two_octet());
    assert_eq!(raw.s.state(), State::OpenConfirm);
    assert_eq!(raw.notification(), None);

    // A two-octet OPEN with AS_TRANS and no capability is AS 23456.
    let mut raw = Raw::new(cfg(AS_A, ID_A, PeerAs::Fixed(peer)));
    raw.feed(
        &Message::Open(old_open(AS_TRANS as u16, 90, ID_B)),
        &two_octet(),
    );
    let n = raw.notification().unwrap();
    assert_eq!((n.code, n.subcode), (ErrorCode::Open, 2));
}

#[test]
fn bad_opens_get_the_right_notification() {
    let expect = |bytes: Vec<u8>, cfg: SessionConfig, code: u8, subcode: u8, data: &[u8]| {
        let mut raw = Raw::new(cfg);
        raw.feed_bytes(&bytes);
        let n = raw.notification().expect("notification");
        assert_eq!(
            (n.code_value(), n.subcode, n.data.as_slice()),
            (code, subcode, data)
        );
        // It was on the wire, and the connection closed.
        let msgs = raw.sent(&two_octet());
        assert_eq!(msgs.last(), Some(&Message::Notification(n)));
        assert!(
            raw.actions
                .iter()
                .any(|a| matches!(a, Action::CloseConnection { .. }))
        );
        assert_ne!(raw.s.state(), State::OpenSent);
    };
    let enc = |o: Open| Message::Open(o).encode(&two_octet()).unwrap().to_vec();
    let (a, _) = ebgp();
    // Version 3.
    let mut bytes = enc(Open::new(AS_B, 90, ID_B, vec![]));
    bytes[19] = 3;
    expect(bytes, a.clone(), 2, 1, &[0, 4]);
    // Wrong AS.
    expect(
        enc(Open::new(64999, 90, ID_B, vec![])),
        a.clone(),
        2,
        2,
        &[],
    );
    // Identifier 0.
    expect(
        enc(Open::new(AS_B, 90, Ipv4Addr::UNSPECIFIED, vec![])),
        a.clone(),
        2,
        3,
        &[],
    );
    // Our own identifier on iBGP.
    let (ia, _) = ibgp();
    expect(enc(Open::new(AS_A, 90, ID_A, vec![])), ia, 2, 3, &[]);
    // Hold time 1 and 2.
    for hold in [1, 2] {
        let mut bytes = enc(Open::new(AS_B, 90, ID_B, vec![]));
        bytes[22..24].copy_from_slice(&u16::to_be_bytes(hold));
        expect(bytes, a.clone(), 2, 6, &[]);
    }
    // Unexpected KEEPALIVE in OpenSent: FSM error (RFC 6608).
    expect(
        Message::Keepalive.encode(&two_octet()).unwrap().to_vec(),
        a,
        5,
        1,
        &[],
    );
}

#[test]
fn config_validation() {
    let (mut a, _) = ebgp();
    a.hold_time = 2;
    assert_eq!(
        Session::new(a.clone()).unwrap_err(),
        ConfigError::HoldTime(2)
    );
    a.hold_time = 90;
    a.router_id = Ipv4Addr::UNSPECIFIED;
    assert_eq!(Session::new(a).unwrap_err(), ConfigError::ZeroRouterId);
}

// ---------------------------------------------------------------------
// Timers

#[test]
fn hold_time_is_the_smaller_proposal() {
    let (a, mut b) = ebgp();
    b.hold_time = 30;
    let net = up(a, b);
    for s in [&net.a, &net.b] {
        let neg = s.established().unwrap().1;
        assert_eq!((neg.hold_time, neg.keepalive_time), (30, 10));
    }
}

#[test]
fn hold_time_zero_means_no_keepalives() {
    let (a, mut b) = ebgp();
    b.hold_time = 0;
    let mut net = up(a, b);
    assert_eq!(net.a.established().unwrap().1.hold_time, 0);
    let before = (net.a.stats().keepalives_sent, net.b.stats().keepalives_sent);
    assert_eq!(net.a.next_deadline(), None);
    net.advance(secs(3600));
    assert!(net.established());
    assert_eq!(
        (net.a.stats().keepalives_sent, net.b.stats().keepalives_sent),
        before
    );
}

#[test]
fn keepalive_cadence_keeps_the_session_up() {
    let (mut a, b) = ebgp();
    a.keepalive_time = Some(20);
    let mut net = up(a, b);
    let (ka, kb) = (net.a.stats().keepalives_sent, net.b.stats().keepalives_sent);
    net.advance(secs(600));
    assert!(net.established());
    assert_eq!(net.a.stats().keepalives_sent - ka, 30);
    assert_eq!(net.b.stats().keepalives_sent - kb, 20);
    assert_eq!(
        net.a.stats().keepalives_received,
        net.b.stats().keepalives_sent
    );
}

#[test]
fn hold_timer_expiry_sends_4_0() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    net.blackhole = true;
    net.advance(secs(89));
    assert!(net.established());
    net.advance(secs(1));
    for side in [Side::A, Side::B] {
        let n = &net.notifications_sent(side)[0];
        assert_eq!((n.code_value(), n.subcode), (4, 0));
        let s = net.session(side);
        assert_eq!(s.state(), State::Active);
        assert!(s.established().is_none());
    }
    // The active side reconnects after its backoff, once the link works.
    net.blackhole = false;
    net.open.clear();
    net.advance(secs(5));
    assert!(net.established());
}

/// When side A tried to connect.
fn connect_times(net: &Net) -> Vec<Duration> {
    net.log_a
        .iter()
        .filter(|(_, a)| *a == Action::Connect)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn connect_retry_backs_off_with_bounded_jitter() {
    let (mut a, b) = ebgp();
    a.connect_retry_max = secs(16);
    a.jitter_seed = 42;
    let mut net = Net::new(a, b);
    net.reachable = false;
    net.start();
    net.advance(secs(200));
    let times = connect_times(&net);
    assert!(times.len() > 8);
    for (n, w) in times.windows(2).enumerate() {
        let base = secs(1u64 << n.min(4));
        let gap = w[1] - w[0];
        assert!(
            gap <= base && gap >= base.mul_f64(0.75),
            "attempt {n}: {gap:?}"
        );
    }
    assert_eq!(net.a.state(), State::Active);
    // Success resets the backoff.
    net.reachable = true;
    net.advance(secs(16));
    assert!(net.established());
    assert_eq!(net.a.connect_failures(), 0);
}

/// With the default configuration, a peer that refuses connections for
/// ten minutes is tried at least every 30 s, so once it is back the
/// session comes up within about 30 s, not the 120 s RFC 4271 suggests.
#[test]
fn default_connect_retry_is_capped_at_thirty_seconds() {
    let (a, b) = ebgp();
    assert_eq!(a.connect_retry_max, secs(30));
    let mut net = Net::new(a, b);
    net.reachable = false;
    net.start();
    net.advance(secs(600));
    let gaps: Vec<Duration> = connect_times(&net)
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    assert!(gaps.len() > 20, "{gaps:?}");
    assert!(gaps.iter().all(|g| *g <= secs(30)), "{gaps:?}");
    // It did back off to the cap: the last gaps are jittered 30 s.
    assert!(
        gaps.iter().rev().take(5).all(|g| *g >= secs(22)),
        "{gaps:?}"
    );
    net.reachable = true;
    net.advance(secs(31));
    assert!(net.established());
}

#[test]
fn delay_open_waits_for_the_timer_or_the_peer() {
    let (mut a, mut b) = ebgp();
    a.delay_open = Some(secs(5));
    b.delay_open = Some(secs(5));
    let mut net = Net::new(a.clone(), b);
    net.start();
    assert_eq!(net.a.state(), State::Connect);
    assert!(net.wire.is_empty());
    net.advance(secs(5));
    assert!(net.established());

    // The peer's OPEN ends the wait at once.
    let (_, b) = ebgp();
    let net = up(a, b);
    assert!(net.established());
}

// ---------------------------------------------------------------------
// Collisions

fn collision(id_a: Ipv4Addr, id_b: Ipv4Addr) -> Net {
    let a = cfg(AS_A, id_a, PeerAs::Fixed(AS_B));
    let b = cfg(AS_B, id_b, PeerAs::Fixed(AS_A));
    let mut net = Net::new(a, b);
    net.addr_a = IpAddr::V4(id_a);
    net.addr_b = IpAddr::V4(id_b);
    net.start();
    assert!(net.established());
    // Both connected; one connection was closed with Cease / collision.
    assert_eq!(net.next_id, 3);
    let cease: Vec<_> = [Side::A, Side::B]
        .iter()
        .flat_map(|s| net.notifications_sent(*s))
        .collect();
    // Each side detects the collision and closes the same connection.
    assert!(!cease.is_empty());
    assert!(
        cease
            .iter()
            .all(|n| n.is_cease(CeaseSubcode::ConnectionCollisionResolution))
    );
    assert_eq!(net.a.connections().len(), 1);
    assert_eq!(net.b.connections().len(), 1);
    assert_eq!(
        net.a.established().unwrap().0,
        net.b.established().unwrap().0
    );
    net
}

#[test]
fn collision_keeps_the_connection_of_the_higher_identifier() {
    // B has the higher identifier: B's outbound connection survives.
    let net = collision(ID_A, ID_B);
    assert_eq!(net.a.connections()[0].1, Direction::Inbound);
    assert_eq!(net.b.connections()[0].1, Direction::Outbound);
    // And the other way round.
    let net = collision(Ipv4Addr::new(203, 0, 113, 9), ID_B);
    assert_eq!(net.a.connections()[0].1, Direction::Outbound);
    assert_eq!(net.b.connections()[0].1, Direction::Inbound);
}

#[test]
fn collision_resolver() {
    let low = Ipv4Addr::new(192, 0, 2, 1);
    let high = Ipv4Addr::new(198, 51, 100, 1);
    assert_eq!(resolve_collision(high, low, 1, 2), Keep::Outbound);
    assert_eq!(resolve_collision(low, high, 2, 1), Keep::Inbound);
    // Equal identifiers (eBGP): the larger AS keeps its connection.
    assert_eq!(resolve_collision(low, low, 64513, 64512), Keep::Outbound);
    assert_eq!(resolve_collision(low, low, 64512, 64513), Keep::Inbound);
}

#[test]
fn connection_to_established_session_is_refused_without_gr() {
    let (mut a, b) = ebgp();
    a.graceful_restart = None;
    let mut raw = Raw::new(a);
    raw.feed(
        &Message::Open(Open::new(AS_B, 90, ID_B, vec![])),
        &two_octet(),
    );
    raw.feed(&Message::Keepalive, &two_octet());
    assert_eq!(raw.s.state(), State::Established);
    drop(b);
    let mut out = raw
        .s
        .tcp_accepted(Duration::ZERO, ConnId(2), IpAddr::V4(ID_A));
    out.extend(
        raw.s.bytes_received(
            Duration::ZERO,
            ConnId(2),
            &Message::Open(Open::new(AS_B, 90, ID_B, vec![]))
                .encode(&two_octet())
                .unwrap(),
        ),
    );
    assert!(out.contains(&Action::CloseConnection { conn: ConnId(2) }));
    assert_eq!(raw.s.established().unwrap().0, ConnId(1));
}

// ---------------------------------------------------------------------
// Adj-RIB-Out

#[test]
fn announcements_are_coalesced() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    let from = net.wire.len();
    for p in v4_hosts(100) {
        net.a.announce(p, RouteAttributes::default());
    }
    for p in v6_hosts(100) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    let updates = net.updates_since(Side::A, from);
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].nlri.len(), 100);
    let reach = updates[1].attributes.mp_reach.as_ref().unwrap();
    assert_eq!(reach.family, AddressFamily::IPV6_UNICAST);
    assert_eq!(reach.nlri.len(), 100);
    // IPv6 over an IPv4 session: IPv4-mapped next hop by default.
    assert_eq!(reach.next_hop, NextHop::v6(ID_A.to_ipv6_mapped()));
    assert_eq!(
        net.b.received_family(AddressFamily::IPV4_UNICAST).current,
        100
    );
    assert_eq!(
        net.b.received_family(AddressFamily::IPV6_UNICAST).current,
        100
    );
    assert_eq!(net.a.advertised(), 200);

    // Unchanged re-announcements send nothing.
    let from = net.wire.len();
    for p in v4_hosts(100) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    assert!(net.updates_since(Side::A, from).is_empty());

    // Withdrawals, and a changed route, in one flush.
    let from = net.wire.len();
    for p in &v4_hosts(100)[..50] {
        net.a.withdraw(*p);
    }
    for p in &v6_hosts(100)[..10] {
        net.a.withdraw(*p);
    }
    net.a.announce(
        v4_hosts(100)[99],
        RouteAttributes {
            med: Some(5),
            ..Default::default()
        },
    );
    net.advance(Duration::ZERO);
    let updates = net.updates_since(Side::A, from);
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].withdrawn.len(), 50);
    assert_eq!(
        updates[1]
            .attributes
            .mp_unreach
            .as_ref()
            .unwrap()
            .withdrawn
            .len(),
        10
    );
    assert_eq!(updates[2].attributes.med, Some(5));
    assert_eq!(
        net.b.received_family(AddressFamily::IPV4_UNICAST).current,
        50
    );
    assert_eq!(
        net.b.received_family(AddressFamily::IPV6_UNICAST).current,
        90
    );
    let counts = net.b.received_family(AddressFamily::IPV4_UNICAST);
    assert_eq!((counts.announced, counts.withdrawn), (101, 50));
}

#[test]
fn many_routes_fill_few_messages() {
    let (a, b) = ebgp();
    let mut net = Net::new(a, b);
    // 3 × 256 /32s announced before the session is up.
    for third in [2u8, 100, 113] {
        let first = match third {
            2 => [192, 0, 2],
            100 => [198, 51, 100],
            _ => [203, 0, 113],
        };
        for i in 0..=255u8 {
            let addr = Ipv4Addr::new(first[0], first[1], first[2], i);
            net.a.announce(
                Prefix::new(addr.into(), 32).unwrap(),
                RouteAttributes::default(),
            );
        }
    }
    net.start();
    let updates = net.updates_since(Side::A, 0);
    // 768 × 5 octets fit one 4096-octet UPDATE, followed by the two
    // End-of-RIB markers.
    assert_eq!(updates.len(), 3);
    assert_eq!(updates[0].nlri.len(), 768);
    assert_eq!(
        updates[1].end_of_rib_family(),
        Some(AddressFamily::IPV4_UNICAST)
    );
    assert_eq!(
        updates[2].end_of_rib_family(),
        Some(AddressFamily::IPV6_UNICAST)
    );
    assert_eq!(
        net.b.received_family(AddressFamily::IPV4_UNICAST).current,
        768
    );
}

#[test]
fn update_delay_collects_changes() {
    let (mut a, b) = ebgp();
    a.update_delay = secs(1);
    let mut net = up(a, b);
    let from = net.wire.len();
    net.a
        .announce(v4("203.0.113.0/25"), RouteAttributes::default());
    net.advance(Duration::from_millis(500));
    assert!(net.updates_since(Side::A, from).is_empty());
    net.a
        .announce(v4("203.0.113.128/25"), RouteAttributes::default());
    net.advance(Duration::from_millis(500));
    let updates = net.updates_since(Side::A, from);
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].nlri.len(), 2);
}

#[test]
fn ipv4_over_ipv6_session_uses_extended_next_hop() {
    let (a, b) = ebgp();
    let mut net = Net::new(a, b);
    net.addr_a = "2001:db8::1".parse().unwrap();
    net.addr_b = "2001:db8::2".parse().unwrap();
    net.a
        .announce(v4("198.51.100.0/24"), RouteAttributes::default());
    net.a
        .announce(v6("2001:db8:1::/48"), RouteAttributes::default());
    net.start();
    let updates = net.updates_since(Side::A, 0);
    let reaches: Vec<_> = updates
        .iter()
        .filter_map(|u| u.attributes.mp_reach.clone())
        .collect();
    assert_eq!(reaches.len(), 2);
    let nh = NextHop::v6("2001:db8::1".parse().unwrap());
    assert!(reaches.iter().all(|r| r.next_hop == nh));
    assert_eq!(reaches[0].family, AddressFamily::IPV4_UNICAST);
    assert_eq!(net.b.received_stored(), 2);

    // Without extended next hop (and no IPv4 next hop) the IPv4 route is
    // not sent.
    let (mut a, b) = ebgp();
    a.extended_next_hop = false;
    let mut net = Net::new(a, b);
    net.addr_a = "2001:db8::1".parse().unwrap();
    net.addr_b = "2001:db8::2".parse().unwrap();
    net.a
        .announce(v4("198.51.100.0/24"), RouteAttributes::default());
    net.start();
    assert_eq!(net.b.received_stored(), 0);
    assert!(net.has(
        Side::A,
        |a| matches!(a, Action::Warning(w) if w.contains("next hop"))
    ));
}

#[test]
fn configured_next_hop_wins() {
    let (mut a, b) = ebgp();
    a.next_hop_v4 = Some(Ipv4Addr::new(192, 0, 2, 100));
    let mut net = up(a, b);
    let from = net.wire.len();
    net.a
        .announce(v4("198.51.100.0/24"), RouteAttributes::default());
    net.a.announce(
        v4("203.0.113.0/24"),
        RouteAttributes {
            next_hop: Some(Ipv4Addr::new(192, 0, 2, 200).into()),
            ..Default::default()
        },
    );
    net.advance(Duration::ZERO);
    let hops: Vec<_> = net
        .updates_since(Side::A, from)
        .iter()
        .map(|u| u.attributes.next_hop)
        .collect();
    assert_eq!(
        hops,
        [
            Some(Ipv4Addr::new(192, 0, 2, 100)),
            Some(Ipv4Addr::new(192, 0, 2, 200))
        ]
    );
}

// ---------------------------------------------------------------------
// Route refresh

#[test]
fn route_refresh_resends_with_borr_and_eorr() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    for p in v4_hosts(10) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    let from = net.wire.len();
    net.with(Side::B, |s, now| {
        s.request_route_refresh(now, AddressFamily::IPV4_UNICAST)
    });
    let msgs = net.sent_since(Side::A, from);
    let kinds: Vec<_> = msgs
        .iter()
        .map(|m| match m {
            Message::RouteRefresh(rr) => format!("rr{}", u8::from(rr.subtype)),
            Message::Update(u) => format!("update{}", u.nlri.len()),
            other => format!("{:?}", other.message_type()),
        })
        .collect();
    assert_eq!(kinds, ["rr1", "update10", "rr2"]);
    assert!(net.has(Side::A, |a| matches!(
        a,
        Action::RouteRefreshReceived { .. }
    )));
    // B marked its routes stale at BoRR and the refresh renewed them all.
    let counts = net.b.received_family(AddressFamily::IPV4_UNICAST);
    assert_eq!((counts.current, counts.stale), (10, 0));
    assert!(net.has(Side::B, |a| *a
        == Action::StaleRoutesRemoved {
            family: Some(AddressFamily::IPV4_UNICAST),
            count: 0
        }));
}

#[test]
fn plain_route_refresh_without_enhanced() {
    let (mut a, b) = ebgp();
    a.enhanced_route_refresh = false;
    let mut net = up(a, b);
    net.a
        .announce(v6("2001:db8:2::/48"), RouteAttributes::default());
    net.advance(Duration::ZERO);
    let from = net.wire.len();
    net.with(Side::B, |s, now| {
        s.request_route_refresh(now, AddressFamily::IPV6_UNICAST)
    });
    let msgs = net.sent_since(Side::A, from);
    assert_eq!(msgs.len(), 1);
    assert!(matches!(&msgs[0], Message::Update(u) if u.attributes.mp_reach.is_some()));
    let _ = RouteRefreshSubtype::Request;
}

// ---------------------------------------------------------------------
// Received routes

#[test]
fn received_route_cap_counts_only_by_default() {
    let (a, mut b) = ebgp();
    b.max_received_prefixes = 10;
    let mut net = up(a, b);
    for p in v4_hosts(25) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    assert!(net.established());
    let c = net.b.received_family(AddressFamily::IPV4_UNICAST);
    assert_eq!((c.announced, c.current, c.not_stored), (25, 10, 15));
    let warnings = net
        .log_b
        .iter()
        .filter(|(_, a)| matches!(a, Action::Warning(w) if w.contains("10 prefixes")))
        .count();
    assert_eq!(warnings, 1);
}

#[test]
fn received_route_cap_can_cease() {
    let (a, mut b) = ebgp();
    b.max_received_prefixes = 10;
    b.max_prefix_action = MaxPrefixAction::Cease;
    let mut net = up(a, b);
    for p in v4_hosts(25) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    let n = &net.notifications_sent(Side::B)[0];
    assert!(n.is_cease(CeaseSubcode::MaximumPrefixesReached));
    assert_eq!(n.data, [0, 1, 1, 0, 0, 0, 10]);
    assert!(net.notifications_received(Side::A).contains(n));
    assert_eq!(net.b.received_stored(), 0);
}

#[test]
fn treat_as_withdraw_removes_the_routes() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    net.a
        .announce(v4("203.0.113.0/24"), RouteAttributes::default());
    net.advance(Duration::ZERO);
    assert_eq!(net.b.received_stored(), 1);
    // The same prefix without ORIGIN: a missing mandatory attribute.
    let bad = Update {
        attributes: PathAttributes {
            as_path: Some(AsPath::from_sequence([AS_A])),
            next_hop: Some(ID_A),
            ..Default::default()
        },
        nlri: vec!["203.0.113.0/24".parse().unwrap()],
        ..Default::default()
    };
    let conn = net.b.established().unwrap().0;
    let ctx = net.ctx(Side::B);
    let bytes = Message::Update(bad).encode(&ctx).unwrap();
    net.with(Side::B, |s, now| s.bytes_received(now, conn, &bytes));
    assert!(net.established());
    assert_eq!(net.b.received_stored(), 0);
    assert!(net.has(
        Side::B,
        |a| matches!(a, Action::Warning(w) if w.contains("withdraw"))
    ));
}

#[test]
fn malformed_update_resets_with_the_codec_notification() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    let conn = net.b.established().unwrap().0;
    // An UPDATE whose withdrawn routes length overruns the message.
    let mut bytes = Message::Update(Update::default())
        .encode(&two_octet())
        .unwrap()
        .to_vec();
    bytes[19..21].copy_from_slice(&[0, 9]);
    net.with(Side::B, |s, now| s.bytes_received(now, conn, &bytes));
    let n = &net.notifications_sent(Side::B)[0];
    assert_eq!((n.code_value(), n.subcode), (3, 1));
    assert_ne!(net.b.state(), State::Established);
}

// ---------------------------------------------------------------------
// Graceful restart

/// Established with A announcing `n` routes to B, then A's process dies:
/// B sees the connection close.
fn restart_setup(n: u8) -> (Net, SessionConfig) {
    let (mut a, b) = ebgp();
    a.graceful_restart = Some(GracefulRestartConfig {
        forwarding_preserved: true,
        ..Default::default()
    });
    let mut net = up(a.clone(), b);
    for p in v4_hosts(n) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    assert_eq!(net.b.received_stored(), usize::from(n));
    let conn = net.b.established().unwrap().0;
    net.open.remove(&conn);
    net.with(Side::B, |s, now| s.tcp_closed(now, conn));
    (net, a)
}

#[test]
fn graceful_restart_helper_keeps_stale_routes_until_expiry() {
    let (mut net, _) = restart_setup(10);
    assert!(net.has(Side::B, |a| *a
        == Action::PeerRestarting {
            restart_time: secs(120),
            stale_routes: 10
        }));
    let c = net.b.received_family(AddressFamily::IPV4_UNICAST);
    assert_eq!((c.current, c.stale), (10, 10));
    // The peer never comes back.
    net.a = Session::new(ebgp().0).unwrap();
    net.advance(secs(119));
    assert_eq!(net.b.received_stored(), 10);
    net.advance(secs(1));
    assert_eq!(net.b.received_stored(), 0);
    assert!(net.has(Side::B, |a| *a
        == Action::StaleRoutesRemoved {
            family: None,
            count: 10
        }));
}

#[test]
fn graceful_restart_helper_purges_at_end_of_rib() {
    let (mut net, mut a) = restart_setup(10);
    // A restarts, announces 6 of its 10 routes, then End-of-RIB.
    a.graceful_restart.as_mut().unwrap().restarting = true;
    net.a = Session::new(a).unwrap();
    for p in &v4_hosts(10)[..6] {
        net.a.announce(*p, RouteAttributes::default());
    }
    net.advance(secs(30));
    net.with(Side::A, |s, now| s.start(now));
    assert!(net.established());
    let gr = net
        .b
        .established()
        .unwrap()
        .1
        .graceful_restart
        .clone()
        .unwrap();
    assert!(gr.restarting && gr.preserved(AddressFamily::IPV4_UNICAST));
    let c = net.b.received_family(AddressFamily::IPV4_UNICAST);
    assert_eq!((c.current, c.stale), (6, 0));
    assert!(net.has(Side::B, |a| *a
        == Action::StaleRoutesRemoved {
            family: Some(AddressFamily::IPV4_UNICAST),
            count: 4
        }));
    // The restart timer no longer runs.
    net.advance(secs(300));
    assert_eq!(net.b.received_stored(), 6);
}

#[test]
fn graceful_restart_without_forwarding_state_drops_routes_on_return() {
    let (mut net, mut a) = restart_setup(5);
    a.graceful_restart.as_mut().unwrap().forwarding_preserved = false;
    net.a = Session::new(a).unwrap();
    net.with(Side::A, |s, now| s.start(now));
    assert!(net.established());
    assert_eq!(net.b.received_stored(), 0);
}

#[test]
fn notification_is_not_a_graceful_restart() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    for p in v4_hosts(3) {
        net.a.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    net.with(Side::A, |s, now| s.stop(now, None));
    assert!(!net.has(Side::B, |a| matches!(a, Action::PeerRestarting { .. })));
    assert_eq!(net.b.received_stored(), 0);
}

#[test]
fn new_open_on_established_gr_session_means_restart() {
    let mut raw = Raw::new(ebgp().0);
    let peer_open = || {
        Message::Open(local_open(&cfg(AS_B, ID_B, PeerAs::Fixed(AS_A))))
            .encode(&two_octet())
            .unwrap()
    };
    raw.feed_bytes(&peer_open());
    raw.feed(&Message::Keepalive, &two_octet());
    let ctx = raw.s.established().unwrap().1.codec;
    let update = Update {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence([AS_B])),
            next_hop: Some(ID_B),
            ..Default::default()
        },
        nlri: vec!["198.51.100.0/24".parse().unwrap()],
        ..Default::default()
    };
    raw.feed(&Message::Update(update), &ctx);
    assert_eq!(raw.s.received_stored(), 1);
    let mut out = raw
        .s
        .tcp_accepted(Duration::ZERO, ConnId(2), IpAddr::V4(ID_A));
    out.extend(
        raw.s
            .bytes_received(Duration::ZERO, ConnId(2), &peer_open()),
    );
    assert!(out.contains(&Action::CloseConnection { conn: ConnId(1) }));
    assert!(out.iter().any(|a| matches!(
        a,
        Action::PeerRestarting {
            stale_routes: 1,
            ..
        }
    )));
    assert_eq!(raw.s.state(), State::OpenConfirm);
}

// ---------------------------------------------------------------------
// Shutdown

#[test]
fn stop_sends_administrative_shutdown_with_message() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    net.with(Side::A, |s, now| {
        s.stop(now, Some("maintenance: node drained"))
    });
    let n = &net.notifications_received(Side::B)[0];
    assert_eq!((n.code, n.subcode), (ErrorCode::Cease, 2));
    assert_eq!(
        n.shutdown_communication().unwrap().as_deref(),
        Some("maintenance: node drained")
    );
    assert_eq!(net.a.state(), State::Idle);
    // The passive peer waits for the next connection.
    assert_eq!(net.b.state(), State::Active);
    assert!(net.has(Side::B, |a| *a
        == Action::StateChanged {
            from: State::Established,
            to: State::Idle
        }));
    // Stopped stays stopped.
    net.advance(secs(600));
    assert_eq!(net.a.state(), State::Idle);
    assert!(!net.established());
    // Inbound connections are refused while stopped.
    let out = net.a.tcp_accepted(net.now, ConnId(99), net.addr_a);
    assert_eq!(out, [Action::CloseConnection { conn: ConnId(99) }]);
}

#[test]
fn peer_notification_is_reported_and_session_restarts() {
    let (a, b) = ebgp();
    let mut net = up(a, b);
    net.with(Side::B, |s, now| s.stop(now, None));
    let n = &net.notifications_received(Side::A)[0];
    assert!(n.is_cease(CeaseSubcode::AdministrativeShutdown));
    assert_eq!(net.a.state(), State::Active);
    net.with(Side::B, |s, now| s.start(now));
    net.advance(secs(2));
    assert!(net.established());
    let _ = ErrorCode::Cease;
}

// ---------------------------------------------------------------------
// BFD

/// Cease / BFD Down (RFC 9384) as it goes on the wire: the marker, length
/// 21, type 3 (NOTIFICATION), code 6, subcode 10, no data.
const BFD_DOWN_BYTES: [u8; 21] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0, 21, 3, 6, 10,
];

#[test]
fn bfd_down_ceases_drops_routes_and_reconnects_after_connect_retry() {
    // Both sides are graceful-restart capable (the default): BFD Down must
    // still drop the routes at once.
    let (a, b) = ebgp();
    assert!(a.graceful_restart.is_some() && b.graceful_restart.is_some());
    let mut net = up(a, b);
    for p in v4_hosts(3) {
        net.a.announce(p, RouteAttributes::default());
    }
    for p in v6_hosts(2) {
        net.b.announce(p, RouteAttributes::default());
    }
    net.advance(Duration::ZERO);
    assert_eq!((net.a.received_stored(), net.b.received_stored()), (2, 3));
    assert_eq!(net.a.advertised(), 3);

    net.advance(secs(10));
    let down_at = net.now;
    let from = net.wire.len();
    let log_from = net.log_a.len();
    net.with(Side::A, |s, now| s.bfd_down(now));

    // Exactly one message from A: the NOTIFICATION, byte for byte.
    let sent: Vec<&[u8]> = net.wire[from..]
        .iter()
        .filter(|(s, _, _)| *s == Side::A)
        .map(|(_, _, b)| &b[..])
        .collect();
    assert_eq!(sent, [&BFD_DOWN_BYTES[..]]);
    let n = &net.notifications_sent(Side::A)[0];
    assert!(n.is_cease(CeaseSubcode::BfdDown));
    assert_eq!(n.to_string(), "cease / BFD Down (6/10)");
    assert_eq!(net.notifications_received(Side::B), std::slice::from_ref(n));

    // A: Established → Idle → Active, waiting for ConnectRetry.
    let states: Vec<(State, State)> = net.log_a[log_from..]
        .iter()
        .filter_map(|(_, a)| match a {
            Action::StateChanged { from, to } => Some((*from, *to)),
            _ => None,
        })
        .collect();
    assert_eq!(
        states,
        [
            (State::Established, State::Idle),
            (State::Idle, State::Active)
        ]
    );
    assert_eq!(net.a.state(), State::Active);
    assert!(net.a.connections().is_empty());
    // Routes are gone on both sides, not kept as stale.
    assert_eq!((net.a.received_stored(), net.b.received_stored()), (0, 0));
    assert_eq!(net.a.advertised(), 0);
    for side in [Side::A, Side::B] {
        assert!(!net.has(side, |a| matches!(a, Action::PeerRestarting { .. })));
    }
    let deadline = net.a.next_deadline().expect("ConnectRetry runs");
    assert!(deadline > down_at);

    // The normal reconnect cycle: after the backoff (jittered, at most one
    // second for the first failure) A connects and everything comes back.
    net.advance(secs(2));
    assert!(net.established());
    let reconnect = net
        .log_a
        .iter()
        .skip(log_from)
        .find(|(_, a)| *a == Action::Connect)
        .map(|(t, _)| *t)
        .expect("A reconnected");
    assert_eq!(reconnect, deadline);
    assert!(reconnect > down_at && reconnect <= down_at + secs(1));
    assert_eq!((net.a.received_stored(), net.b.received_stored()), (2, 3));
}

#[test]
fn bfd_down_in_open_sent_and_open_confirm() {
    // OpenSent: the peer connected and we sent our OPEN.
    let mut raw = Raw::new(ebgp().0);
    assert_eq!(raw.s.state(), State::OpenSent);
    let out = raw.s.bfd_down(secs(1));
    assert!(out.contains(&Action::SendBytes {
        conn: ConnId(1),
        bytes: BFD_DOWN_BYTES.to_vec()
    }));
    assert!(out.contains(&Action::CloseConnection { conn: ConnId(1) }));
    assert!(out.contains(&Action::StateChanged {
        from: State::OpenSent,
        to: State::Idle
    }));
    assert_eq!(raw.s.state(), State::Active);
    assert!(raw.s.next_deadline().is_some());

    // OpenConfirm: OPENs exchanged, waiting for the peer's KEEPALIVE.
    let mut raw = Raw::new(ebgp().0);
    let open = Message::Open(local_open(&cfg(AS_B, ID_B, PeerAs::Fixed(AS_A))));
    raw.feed(&open, &two_octet());
    assert_eq!(raw.s.state(), State::OpenConfirm);
    let out = raw.s.bfd_down(secs(1));
    let n = out.iter().find_map(|a| match a {
        Action::NotificationSent { notification, .. } => Some(notification.clone()),
        _ => None,
    });
    assert!(n.is_some_and(|n| n.is_cease(CeaseSubcode::BfdDown)));
    assert_eq!(raw.s.state(), State::Active);
}

#[test]
fn bfd_down_leaves_idle_and_unopened_sessions_alone() {
    // Stopped: nothing to do.
    let mut s = Session::new(ebgp().0).unwrap();
    assert!(s.bfd_down(secs(1)).is_empty());
    assert_eq!(s.state(), State::Idle);
    // Connecting: the attempt in progress goes on.
    let out = s.start(secs(1));
    assert!(out.contains(&Action::Connect));
    assert!(s.bfd_down(secs(2)).is_empty());
    assert_eq!(s.state(), State::Connect);
    // TCP up but our OPEN delayed: no OPEN was sent, nothing to cease.
    let (mut a, _) = ebgp();
    a.delay_open = Some(secs(5));
    let mut s = Session::new(a).unwrap();
    let _ = s.start(Duration::ZERO);
    let _ = s.tcp_connected(Duration::ZERO, ConnId(1), IpAddr::V4(ID_A));
    assert_eq!(s.state(), State::Connect);
    assert!(s.bfd_down(secs(1)).is_empty());
    assert_eq!(s.connections().len(), 1);
}
