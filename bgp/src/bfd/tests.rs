//! BFD tests: codec against the RFC 5880 §4.1 layout, reception checks,
//! and sessions wired back to back in simulated time.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use proptest::prelude::*;

use super::*;

const MS: Duration = Duration::from_millis(1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn base_packet() -> ControlPacket {
    ControlPacket {
        diag: Diag::NoDiagnostic,
        state: State::Down,
        poll: false,
        final_: false,
        control_plane_independent: false,
        demand: false,
        multipoint: false,
        detect_mult: 3,
        my_discriminator: 0x1111_2222,
        your_discriminator: 0,
        desired_min_tx_us: 1_000_000,
        required_min_rx_us: 300_000,
        required_min_echo_rx_us: 0,
        auth: None,
    }
}

// ---------------------------------------------------------------- codec

#[test]
// Binary literals grouped by packet field.
#[allow(clippy::unusual_byte_groupings)]
fn encode_decode_byte_exact() {
    let pkt = ControlPacket {
        diag: Diag::NeighborSignaledSessionDown,
        state: State::Up,
        poll: true,
        final_: false,
        control_plane_independent: true,
        demand: false,
        multipoint: false,
        detect_mult: 5,
        my_discriminator: 0x0102_0304,
        your_discriminator: 0x0a0b_0c0d,
        desired_min_tx_us: 300_000,
        required_min_rx_us: 1_000_000,
        required_min_echo_rx_us: 0,
        auth: None,
    };
    #[rustfmt::skip]
    let expected: [u8; 24] = [
        // Vers 1 (001) | Diag 3 (00011)
        0b001_00011,
        // Sta 3 (11) | P 1 | F 0 | C 1 | A 0 | D 0 | M 0
        0b11_1_0_1_0_0_0,
        5,    // Detect Mult
        24,   // Length
        0x01, 0x02, 0x03, 0x04, // My Discriminator
        0x0a, 0x0b, 0x0c, 0x0d, // Your Discriminator
        0x00, 0x04, 0x93, 0xe0, // Desired Min TX 300000 µs
        0x00, 0x0f, 0x42, 0x40, // Required Min RX 1000000 µs
        0x00, 0x00, 0x00, 0x00, // Required Min Echo RX 0
    ];
    assert_eq!(pkt.encode(), expected);
    assert_eq!(ControlPacket::decode(&expected).unwrap(), pkt);
}

#[test]
// Binary literals grouped by packet field.
#[allow(clippy::unusual_byte_groupings)]
fn encode_decode_flags_and_auth() {
    let mut pkt = base_packet();
    pkt.final_ = true;
    pkt.demand = true;
    pkt.diag = Diag::AdministrativelyDown;
    pkt.state = State::AdminDown;
    pkt.auth = Some(Auth {
        auth_type: packet::auth_type::SIMPLE_PASSWORD,
        data: vec![7, b'a', b'b', b'c'],
    });
    let bytes = pkt.encode();
    assert_eq!(bytes.len(), 30);
    assert_eq!(bytes[0], 0b001_00111);
    // Sta 0 | P 0 | F 1 | C 0 | A 1 | D 1 | M 0
    assert_eq!(bytes[1], 0b00_0_1_0_1_1_0);
    assert_eq!(bytes[3], 30);
    assert_eq!(&bytes[24..], &[1, 6, 7, b'a', b'b', b'c']);
    assert_eq!(ControlPacket::decode(&bytes).unwrap(), pkt);
}

#[test]
fn diag_and_state_codes() {
    for v in 0..32u8 {
        assert_eq!(Diag::from_u8(v).to_u8(), v);
    }
    assert_eq!(Diag::ControlDetectionTimeExpired.to_u8(), 1);
    assert_eq!(Diag::NeighborSignaledSessionDown.to_u8(), 3);
    assert_eq!(Diag::AdministrativelyDown.to_u8(), 7);
    assert_eq!(Diag::from_u8(9), Diag::Reserved(9));
    for (s, v) in [
        (State::AdminDown, 0),
        (State::Down, 1),
        (State::Init, 2),
        (State::Up, 3),
    ] {
        assert_eq!(s.to_u8(), v);
        assert_eq!(State::from_u8(v), s);
    }
}

#[test]
fn trailing_octets_past_length_are_ignored() {
    let mut bytes = base_packet().encode();
    bytes.extend_from_slice(&[0xde, 0xad]);
    assert_eq!(ControlPacket::decode(&bytes).unwrap(), base_packet());
}

#[test]
fn reception_checks_reject() {
    let good = base_packet().encode();
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        ControlPacket::decode(&b)
    };
    assert_eq!(
        ControlPacket::decode(&good[..23]),
        Err(PacketError::TooShort(23))
    );
    assert_eq!(ControlPacket::decode(&[]), Err(PacketError::TooShort(0)));
    assert_eq!(
        with(&|b| b[0] = (2 << 5) | (b[0] & 0x1f)),
        Err(PacketError::BadVersion(2))
    );
    assert_eq!(with(&|b| b[0] &= 0x1f), Err(PacketError::BadVersion(0)));
    assert_eq!(with(&|b| b[3] = 23), Err(PacketError::LengthTooSmall(23)));
    assert_eq!(
        with(&|b| b[3] = 28),
        Err(PacketError::LengthExceedsPayload {
            length: 28,
            available: 24
        })
    );
    // A set: minimum length 26.
    assert_eq!(
        with(&|b| b[1] |= 0x04),
        Err(PacketError::LengthTooSmall(24))
    );
    assert_eq!(
        with(&|b| {
            b[1] |= 0x04;
            b[3] = 26;
            b.extend_from_slice(&[1, 1]);
        }),
        Err(PacketError::BadAuthLength {
            auth_len: 1,
            length: 26
        })
    );
    assert_eq!(
        with(&|b| {
            b[1] |= 0x04;
            b[3] = 28;
            b.extend_from_slice(&[1, 3, 0, 0]);
        }),
        Err(PacketError::BadAuthLength {
            auth_len: 3,
            length: 28
        })
    );
    assert_eq!(with(&|b| b[2] = 0), Err(PacketError::ZeroDetectMult));
    assert_eq!(with(&|b| b[1] |= 0x01), Err(PacketError::Multipoint));
    assert_eq!(
        with(&|b| b[4..8].fill(0)),
        Err(PacketError::ZeroMyDiscriminator)
    );
    // Your Discriminator zero: fine in Down and AdminDown, not Init or Up.
    for (sta, ok) in [(0u8, true), (1, true), (2, false), (3, false)] {
        let r = with(&|b| b[1] = (b[1] & 0x3f) | (sta << 6));
        if ok {
            assert!(r.is_ok(), "state {sta}");
        } else {
            assert_eq!(
                r,
                Err(PacketError::ZeroYourDiscriminator(State::from_u8(sta)))
            );
        }
    }
}

// ------------------------------------------------------------- harness

fn config(profile: Profile, discr: u32, seed: u64) -> SessionConfig {
    SessionConfig {
        profile,
        hop: Hop::SingleHop,
        local_discriminator: discr,
        seed,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two sessions wired back to back with a fixed one-way latency.
struct Pair {
    a: Session,
    b: Session,
    now: Duration,
    latency: Duration,
    /// Links up (a→b, b→a).
    link_ab: bool,
    link_ba: bool,
    in_flight: Vec<(Duration, Side, Vec<u8>)>,
    /// Everything that came out of either session, with the time.
    log: Vec<(Duration, Side, Output)>,
    /// Last time each side accepted a packet.
    last_rx_a: Option<Duration>,
    last_rx_b: Option<Duration>,
}

impl Pair {
    fn new(pa: Profile, pb: Profile) -> Pair {
        Pair {
            a: Session::new(config(pa, 0xaaaa, 1)),
            b: Session::new(config(pb, 0xbbbb, 2)),
            now: Duration::ZERO,
            latency: MS,
            link_ab: true,
            link_ba: true,
            in_flight: Vec::new(),
            log: Vec::new(),
            last_rx_a: None,
            last_rx_b: None,
        }
    }

    fn next_event(&self) -> Option<Duration> {
        [
            self.a.next_deadline(),
            self.b.next_deadline(),
            self.in_flight.iter().map(|f| f.0).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Processes everything due at the next event time, if it is ≤ limit.
    fn step(&mut self, limit: Duration) -> bool {
        let Some(t) = self.next_event() else {
            return false;
        };
        if t > limit {
            return false;
        }
        self.now = self.now.max(t);
        let now = self.now;
        let (due, rest): (Vec<_>, Vec<_>) = self.in_flight.drain(..).partition(|f| f.0 <= now);
        self.in_flight = rest;
        for (_, to, bytes) in due {
            match to {
                Side::A => {
                    if self.a.receive(&bytes, 255, now).is_ok() {
                        self.last_rx_a = Some(now);
                    }
                }
                Side::B => {
                    if self.b.receive(&bytes, 255, now).is_ok() {
                        self.last_rx_b = Some(now);
                    }
                }
            }
        }
        for side in [Side::A, Side::B] {
            let (outs, link, to) = match side {
                Side::A => (self.a.poll(now), self.link_ab, Side::B),
                Side::B => (self.b.poll(now), self.link_ba, Side::A),
            };
            for o in outs {
                if let Output::Send(bytes) = &o
                    && link
                {
                    self.in_flight.push((now + self.latency, to, bytes.clone()));
                }
                self.log.push((now, side, o));
            }
        }
        true
    }

    fn run_until(&mut self, limit: Duration) {
        let mut guard = 0;
        while self.step(limit) {
            guard += 1;
            assert!(guard < 1_000_000, "no progress");
        }
        self.now = self.now.max(limit);
    }

    fn states(&self, side: Side) -> Vec<(State, State, Diag)> {
        self.log
            .iter()
            .filter(|(_, s, _)| *s == side)
            .filter_map(|(_, _, o)| match o {
                Output::StateChanged { from, to, diag } => Some((*from, *to, *diag)),
                Output::Send(_) => None,
            })
            .collect()
    }

    fn sent(&self, side: Side, from: Duration) -> Vec<(Duration, ControlPacket)> {
        self.log
            .iter()
            .filter(|(t, s, _)| *s == side && *t >= from)
            .filter_map(|(t, _, o)| match o {
                Output::Send(b) => Some((*t, ControlPacket::decode(b).unwrap())),
                Output::StateChanged { .. } => None,
            })
            .collect()
    }

    fn gaps(&self, side: Side, from: Duration) -> Vec<Duration> {
        let periodic: Vec<Duration> = self
            .sent(side, from)
            .into_iter()
            .filter(|(_, p)| !p.final_)
            .map(|(t, _)| t)
            .collect();
        periodic.windows(2).map(|w| w[1] - w[0]).collect()
    }
}

fn profile(tx: u32, rx: u32, mult: u8) -> Profile {
    Profile {
        transmit_interval_ms: tx,
        receive_interval_ms: rx,
        detect_multiplier: mult,
        ..Profile::default()
    }
}

// ------------------------------------------------------------- sessions

#[test]
fn three_way_handshake() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    let expected = vec![
        (State::Down, State::Init, Diag::NoDiagnostic),
        (State::Init, State::Up, Diag::NoDiagnostic),
    ];
    assert_eq!(p.states(Side::A), expected);
    assert_eq!(p.states(Side::B), expected);
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
    assert_eq!(p.a.remote_discriminator(), 0xbbbb);
    assert_eq!(p.b.remote_discriminator(), 0xaaaa);
    assert_eq!(p.a.remote_state(), State::Up);
    // The first packets: Down with Your Discriminator zero, then Init.
    let sent = p.sent(Side::A, Duration::ZERO);
    assert_eq!(sent[0].1.state, State::Down);
    assert_eq!(sent[0].1.your_discriminator, 0);
    assert_eq!(sent[1].1.state, State::Init);
    assert_eq!(sent[1].1.your_discriminator, 0xbbbb);
}

#[test]
fn slow_rate_while_down_fast_when_up() {
    // A peer that never answers: slow rate, 75–100 % of one second.
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.link_ab = false;
    p.link_ba = false;
    p.run_until(ms(20_000));
    let sent = p.sent(Side::A, Duration::ZERO);
    assert!(sent.len() > 15);
    assert!(
        sent.iter()
            .all(|(_, pkt)| pkt.desired_min_tx_us == 1_000_000
                && pkt.required_min_rx_us == 300_000
                && pkt.state == State::Down)
    );
    for g in p.gaps(Side::A, Duration::ZERO) {
        assert!(g >= ms(750) && g <= ms(1000), "{g:?}");
    }

    // Connected: once Up and the Poll Sequence is over, 300 ms.
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    assert!(!p.a.poll_in_progress() && !p.b.poll_in_progress());
    assert_eq!(p.a.transmit_interval(), Some(ms(300)));
    p.run_until(ms(10_000));
    let gaps = p.gaps(Side::A, ms(5000));
    assert!(gaps.len() > 10);
    for g in gaps {
        assert!(g >= ms(225) && g <= ms(300), "{g:?}");
    }
    assert!(
        p.sent(Side::A, ms(5000))
            .iter()
            .all(|(_, pkt)| pkt.desired_min_tx_us == 300_000 && pkt.state == State::Up)
    );
}

#[test]
fn going_up_polls_for_fast_timers() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    // The first Up packet of each side carries P and the fast interval; the
    // peer answered with F.
    for (side, other) in [(Side::A, Side::B), (Side::B, Side::A)] {
        let sent = p.sent(side, Duration::ZERO);
        let first_up = sent
            .iter()
            .find(|(_, k)| k.state == State::Up && !k.final_)
            .unwrap();
        assert!(first_up.1.poll);
        assert_eq!(first_up.1.desired_min_tx_us, 300_000);
        assert!(
            p.sent(other, first_up.0)
                .iter()
                .any(|(_, k)| k.final_ && !k.poll)
        );
    }
}

#[test]
fn negotiated_intervals() {
    let mut p = Pair::new(profile(100, 500, 3), profile(200, 50, 4));
    p.run_until(ms(5000));
    assert_eq!(p.a.state(), State::Up);
    // A sends at max(its 100, B's rx 50); B at max(its 200, A's rx 500).
    assert_eq!(p.a.transmit_interval(), Some(ms(100)));
    assert_eq!(p.b.transmit_interval(), Some(ms(500)));
    // Detection: remote mult × max(local rx, remote tx).
    assert_eq!(p.a.detection_time(), Some(4 * ms(500)));
    assert_eq!(p.b.detection_time(), Some(3 * ms(100)));
    p.run_until(ms(8000));
    for g in p.gaps(Side::A, ms(5000)) {
        assert!(g >= ms(75) && g <= ms(100), "{g:?}");
    }
    for g in p.gaps(Side::B, ms(5000)) {
        assert!(g >= ms(375) && g <= ms(500), "{g:?}");
    }
}

#[test]
fn detection_time_expiry_then_peer_signals_down() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.a.detection_time(), Some(ms(900)));
    // B's packets stop reaching A.
    p.link_ba = false;
    p.in_flight.retain(|f| f.1 != Side::A);
    let last = p.last_rx_a.unwrap();
    let deadline = last + ms(900);
    p.run_until(deadline - Duration::from_micros(1));
    assert_eq!(p.a.state(), State::Up);
    p.run_until(deadline);
    assert_eq!(p.a.state(), State::Down);
    assert_eq!(p.a.diag(), Diag::ControlDetectionTimeExpired);
    let down_at = p
        .log
        .iter()
        .find(|(_, s, o)| {
            *s == Side::A
                && matches!(
                    o,
                    Output::StateChanged {
                        to: State::Down,
                        ..
                    }
                )
        })
        .unwrap()
        .0;
    assert_eq!(down_at, deadline);
    assert_eq!(p.a.remote_discriminator(), 0);
    // A's Down packet reaches B: Neighbor Signaled Session Down.
    p.run_until(deadline + ms(2000));
    assert!(p.b.state() != State::Up);
    assert_eq!(p.b.diag(), Diag::NeighborSignaledSessionDown);
    // Up→Down with diag 3, then Down→Init on A's next Down packet.
    assert_eq!(
        p.states(Side::B)[2..],
        [
            (State::Up, State::Down, Diag::NeighborSignaledSessionDown),
            (State::Down, State::Init, Diag::NeighborSignaledSessionDown),
        ]
    );
    // Back to the slow rate once Down.
    assert_eq!(p.a.transmit_interval(), Some(ms(1000)));
    // The link heals: Up again.
    p.link_ba = true;
    p.run_until(deadline + ms(10_000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
}

#[test]
fn poll_final_changes_intervals_only_after_final() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.latency = ms(5);
    p.run_until(ms(5000));
    assert!(!p.a.poll_in_progress());
    assert_eq!(p.a.transmit_interval(), Some(ms(300)));
    assert_eq!(p.a.detection_time(), Some(ms(900)));

    let t0 = p.now;
    p.a.set_profile(profile(2000, 1000, 3));
    assert!(p.a.poll_in_progress());
    // Run until A has sent its Poll.
    let poll_at = loop {
        assert!(p.step(t0 + ms(2000)));
        if let Some((t, _)) = p.sent(Side::A, t0).into_iter().find(|(_, k)| k.poll) {
            break t;
        }
    };
    let sent = p.sent(Side::A, t0);
    let (_, poll) = sent.iter().find(|(_, k)| k.poll).unwrap();
    assert_eq!(poll.desired_min_tx_us, 2_000_000);
    assert_eq!(poll.required_min_rx_us, 1_000_000);
    // Final not back yet: old timers still in use.
    p.run_until(poll_at + ms(9));
    assert!(p.a.poll_in_progress());
    assert_eq!(p.a.transmit_interval(), Some(ms(300)));
    assert_eq!(p.a.detection_time(), Some(ms(900)));
    // B took the new values at once (it is the responder).
    assert_eq!(p.b.transmit_interval(), Some(ms(1000)));
    assert_eq!(p.b.detection_time(), Some(ms(6000)));
    // The Final arrives one round trip later.
    p.run_until(poll_at + ms(10));
    assert!(!p.a.poll_in_progress());
    assert_eq!(p.a.transmit_interval(), Some(ms(2000)));
    assert_eq!(p.a.detection_time(), Some(ms(3000)));
    // The periodic packets after the Final have no P; gaps are 1.5–2 s.
    p.run_until(poll_at + ms(20_000));
    assert!(
        p.sent(Side::A, poll_at + ms(10))
            .iter()
            .all(|(_, k)| !k.poll)
    );
    for g in p.gaps(Side::A, poll_at + ms(10)) {
        assert!(g >= ms(1500) && g <= ms(2000), "{g:?}");
    }
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
}

#[test]
fn going_up_with_fast_timers_never_flaps() {
    // RFC 5880 §6.8.3: a faster transmit rate applies at once; only a
    // slower one waits for the Final. The packets that go out once Up
    // advertise the fast rate, so the peer's detection time shrinks at
    // once: still sending at the slow rate until our own Poll Sequence
    // ends would make the peer time out (3 × 50 ms here).
    for latency in 1..=40 {
        let mut p = Pair::new(profile(50, 50, 3), profile(50, 50, 3));
        p.latency = ms(latency);
        p.run_until(ms(6000));
        for side in [Side::A, Side::B] {
            let states: Vec<_> = p.states(side).iter().map(|(_, to, _)| *to).collect();
            assert_eq!(*states.last().unwrap(), State::Up, "latency {latency} ms");
            let up = states.iter().position(|s| *s == State::Up).unwrap();
            assert_eq!(
                up,
                states.len() - 1,
                "left Up: {states:?}, latency {latency} ms"
            );
            // Once Up, no gap between periodic packets exceeds the interval.
            let up_at = p
                .log
                .iter()
                .find(|(_, s, o)| {
                    *s == side && matches!(o, Output::StateChanged { to: State::Up, .. })
                })
                .unwrap()
                .0;
            for g in p.gaps(side, up_at) {
                assert!(g <= ms(50), "{side:?} gap {g:?}, latency {latency} ms");
            }
        }
    }
}

#[test]
fn final_without_poll_is_ignored() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    let mut pkt = base_packet();
    pkt.state = State::Up;
    pkt.final_ = true;
    pkt.my_discriminator = 0xbbbb;
    pkt.your_discriminator = 0xaaaa;
    pkt.desired_min_tx_us = 300_000;
    p.a.receive(&pkt.encode(), 255, p.now).unwrap();
    assert_eq!(p.a.transmit_interval(), Some(ms(300)));
    assert!(!p.a.poll_in_progress());
}

#[test]
fn jitter_bounds() {
    for (mult, lo) in [(3u8, 750u64), (1, 900)] {
        let mut s = Session::new(config(profile(300, 300, mult), 1, 42));
        let mut times = Vec::new();
        let mut now = Duration::ZERO;
        for _ in 0..2000 {
            for o in s.poll(now) {
                if let Output::Send(_) = o {
                    times.push(now);
                }
            }
            now = s.next_deadline().unwrap();
        }
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() > 1900);
        let min = *gaps.iter().min().unwrap();
        let max = *gaps.iter().max().unwrap();
        assert!(min >= ms(lo), "{min:?}");
        assert!(max <= ms(1000), "{max:?}");
        // Spread over the whole range.
        assert!(min < ms(lo + 10), "{min:?}");
        assert!(max > ms(990), "{max:?}");
    }
}

#[test]
fn jitter_depends_on_seed_only() {
    let run = |seed| {
        let mut s = Session::new(config(Profile::default(), 1, seed));
        let mut now = Duration::ZERO;
        let mut times = Vec::new();
        for _ in 0..20 {
            s.poll(now);
            now = s.next_deadline().unwrap();
            times.push(now);
        }
        times
    };
    assert_eq!(run(7), run(7));
    assert_ne!(run(7), run(8));
}

#[test]
fn passive_mode() {
    let passive = Profile {
        passive_mode: true,
        ..Profile::default()
    };
    // Both passive: silence.
    let mut p = Pair::new(passive, passive);
    p.run_until(ms(10_000));
    assert!(p.log.is_empty());
    assert_eq!(p.a.next_deadline(), None);
    assert_eq!(p.a.transmit_interval(), None);

    // A active, B passive: B answers only after hearing from A.
    let mut p = Pair::new(Profile::default(), passive);
    p.link_ab = false;
    p.run_until(ms(3000));
    assert!(p.sent(Side::B, Duration::ZERO).is_empty());
    p.link_ab = true;
    p.run_until(ms(10_000));
    let first_b = p.sent(Side::B, Duration::ZERO)[0].0;
    assert!(first_b >= ms(3000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);

    // A goes silent: B detects, forgets A's discriminator and stops.
    p.link_ab = false;
    p.in_flight.retain(|f| f.1 != Side::B);
    p.run_until(ms(15_000));
    assert_eq!(p.b.state(), State::Down);
    assert_eq!(p.b.diag(), Diag::ControlDetectionTimeExpired);
    assert_eq!(p.b.remote_discriminator(), 0);
    let stopped = p.now;
    p.run_until(ms(25_000));
    assert!(p.sent(Side::B, stopped).is_empty());
}

#[test]
fn peer_required_min_rx_zero_stops_periodic_but_not_final() {
    let mut s = Session::new(config(Profile::default(), 5, 1));
    s.poll(Duration::ZERO);
    let mut pkt = base_packet();
    pkt.required_min_rx_us = 0;
    pkt.poll = true;
    s.receive(&pkt.encode(), 255, ms(10)).unwrap();
    let out = s.poll(ms(10));
    let sends: Vec<ControlPacket> = out
        .iter()
        .filter_map(|o| match o {
            Output::Send(b) => Some(ControlPacket::decode(b).unwrap()),
            _ => None,
        })
        .collect();
    assert_eq!(sends.len(), 1);
    assert!(sends[0].final_ && !sends[0].poll);
    assert_eq!(s.transmit_interval(), None);
    // Only the detection deadline is left.
    assert_eq!(s.next_deadline(), Some(ms(10) + 3 * ms(1000)));
}

#[test]
fn peer_demand_mode_stops_periodic_when_both_up() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    let mut pkt = base_packet();
    pkt.state = State::Up;
    pkt.demand = true;
    pkt.my_discriminator = 0xbbbb;
    pkt.your_discriminator = 0xaaaa;
    p.a.receive(&pkt.encode(), 255, p.now).unwrap();
    assert!(p.a.remote_demand_mode());
    assert_eq!(p.a.transmit_interval(), None);
    let t = p.now;
    let _ = p.a.poll(t);
    assert!(p.a.poll(t + ms(500)).is_empty());
    // A Poll from the demand-mode peer still gets its Final.
    pkt.poll = true;
    p.a.receive(&pkt.encode(), 255, t + ms(600)).unwrap();
    let out = p.a.poll(t + ms(600));
    assert!(matches!(&out[..], [Output::Send(b)] if ControlPacket::decode(b).unwrap().final_));
}

#[test]
fn ttl_rules() {
    let pkt = base_packet().encode();
    let mut single = Session::new(config(Profile::default(), 5, 1));
    assert_eq!(
        single.receive(&pkt, 254, ms(1)),
        Err(RxError::Ttl {
            got: 254,
            required: 255
        })
    );
    assert_eq!(single.remote_discriminator(), 0);
    assert_eq!(single.receive(&pkt, 255, ms(1)), Ok(()));

    let mut multi = Session::new(SessionConfig {
        hop: Hop::MultiHop,
        profile: Profile {
            minimum_ttl: 250,
            ..Profile::default()
        },
        local_discriminator: 6,
        seed: 1,
    });
    assert_eq!(
        multi.receive(&pkt, 249, ms(1)),
        Err(RxError::Ttl {
            got: 249,
            required: 250
        })
    );
    assert_eq!(multi.receive(&pkt, 250, ms(1)), Ok(()));
    assert_eq!(multi.receive(&pkt, 255, ms(1)), Ok(()));
}

#[test]
fn session_level_checks() {
    let mut s = Session::new(config(Profile::default(), 5, 1));
    let mut pkt = base_packet();
    pkt.auth = Some(Auth {
        auth_type: 1,
        data: vec![1, b'x'],
    });
    assert_eq!(
        s.receive(&pkt.encode(), 255, ms(1)),
        Err(RxError::AuthNotSupported)
    );
    let mut pkt = base_packet();
    pkt.your_discriminator = 6;
    assert_eq!(
        s.receive(&pkt.encode(), 255, ms(1)),
        Err(RxError::WrongDiscriminator(6))
    );
    assert_eq!(
        s.receive(&[0u8; 3], 255, ms(1)),
        Err(RxError::Packet(PacketError::TooShort(3)))
    );
    assert_eq!(s.state(), State::Down);
    assert_eq!(s.remote_discriminator(), 0);
}

#[test]
fn admin_down_and_up() {
    let mut p = Pair::new(Profile::default(), Profile::default());
    p.run_until(ms(5000));
    p.a.admin_down();
    assert_eq!(p.a.state(), State::AdminDown);
    assert_eq!(p.a.diag(), Diag::AdministrativelyDown);
    p.run_until(ms(8000));
    assert_eq!(
        p.states(Side::A).last(),
        Some(&(State::Up, State::AdminDown, Diag::AdministrativelyDown))
    );
    assert_eq!(p.b.state(), State::Down);
    assert_eq!(p.b.diag(), Diag::NeighborSignaledSessionDown);
    // A keeps sending AdminDown at the slow rate and ignores B.
    let sent = p.sent(Side::A, ms(6000));
    assert!(!sent.is_empty());
    assert!(sent.iter().all(|(_, k)| k.state == State::AdminDown
        && k.diag == Diag::AdministrativelyDown
        && k.desired_min_tx_us == 1_000_000));
    assert_eq!(p.a.transmit_interval(), Some(ms(1000)));
    let mut down = base_packet();
    down.my_discriminator = 0xbbbb;
    assert_eq!(
        p.a.receive(&down.encode(), 255, p.now),
        Err(RxError::AdminDown)
    );
    // Receiving AdminDown while Down changes nothing on B.
    assert_eq!(p.states(Side::B).len(), 3);

    p.a.admin_up();
    assert_eq!(p.a.state(), State::Down);
    p.run_until(ms(15_000));
    assert_eq!(p.a.state(), State::Up);
    assert_eq!(p.b.state(), State::Up);
}

#[test]
fn set_profile_while_down_applies_at_once() {
    let mut s = Session::new(config(Profile::default(), 5, 1));
    s.set_profile(profile(2000, 700, 5));
    assert!(!s.poll_in_progress());
    assert_eq!(s.transmit_interval(), Some(ms(2000)));
    let out = s.poll(Duration::ZERO);
    let Output::Send(b) = &out[0] else { panic!() };
    let k = ControlPacket::decode(b).unwrap();
    assert_eq!(
        (k.desired_min_tx_us, k.required_min_rx_us, k.detect_mult),
        (2_000_000, 700_000, 5)
    );
}

// ---------------------------------------------------------------- demux

#[test]
fn demux_routes_by_discriminator_then_address() {
    let x = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let y = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2));
    let z = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9));
    let mut d = Demux::new(99);
    let dx = d.add(x, Hop::SingleHop, Profile::default()).unwrap();
    let dy = d.add(y, Hop::MultiHop, Profile::default()).unwrap();
    assert_ne!(dx, dy);
    assert!(dx != 0 && dy != 0);
    assert_eq!(d.len(), 2);
    assert_eq!(
        d.add(x, Hop::SingleHop, Profile::default()),
        Err(DemuxError::Duplicate(x))
    );
    assert_eq!(d.lookup(x, Hop::SingleHop), Some(dx));
    assert_eq!(d.lookup(x, Hop::MultiHop), None);

    // Your Discriminator zero: by address and hop.
    let mut pkt = base_packet();
    pkt.my_discriminator = 0x77;
    assert_eq!(
        d.receive(x, Hop::SingleHop, &pkt.encode(), 255, ms(1)),
        Ok(dx)
    );
    assert_eq!(d.get(dx).unwrap().remote_discriminator(), 0x77);
    assert_eq!(d.get(dy).unwrap().remote_discriminator(), 0);
    assert_eq!(
        d.receive(z, Hop::SingleHop, &pkt.encode(), 255, ms(1)),
        Err(DemuxError::NoSession)
    );
    assert_eq!(
        d.receive(x, Hop::MultiHop, &pkt.encode(), 255, ms(1)),
        Err(DemuxError::NoSession)
    );

    // Nonzero: by discriminator, whatever the address says.
    pkt.your_discriminator = dy;
    pkt.my_discriminator = 0x88;
    assert_eq!(
        d.receive(y, Hop::MultiHop, &pkt.encode(), 254, ms(2)),
        Ok(dy)
    );
    assert_eq!(d.get(dy).unwrap().remote_discriminator(), 0x88);
    assert_eq!(
        d.receive(x, Hop::MultiHop, &pkt.encode(), 254, ms(2)),
        Err(DemuxError::Mismatch(x))
    );
    assert_eq!(
        d.receive(y, Hop::SingleHop, &pkt.encode(), 255, ms(2)),
        Err(DemuxError::Mismatch(y))
    );
    pkt.your_discriminator = dx ^ dy ^ 0x1234_5678;
    assert_eq!(
        d.receive(y, Hop::MultiHop, &pkt.encode(), 254, ms(2)),
        Err(DemuxError::NoSession)
    );
    // Session-level errors come through.
    pkt.your_discriminator = dy;
    assert_eq!(
        d.receive(y, Hop::MultiHop, &pkt.encode(), 200, ms(2)),
        Err(DemuxError::Rx(RxError::Ttl {
            got: 200,
            required: 254
        }))
    );
    assert!(matches!(
        d.receive(y, Hop::MultiHop, &[1, 2, 3], 255, ms(2)),
        Err(DemuxError::Rx(RxError::Packet(PacketError::TooShort(3))))
    ));

    // Polling names the peer of each output.
    let out = d.poll(ms(3));
    assert!(out.iter().any(|(id, peer, o)| *id == dx
        && *peer == x
        && matches!(
            o,
            Output::StateChanged {
                to: State::Init,
                ..
            }
        )));
    assert!(
        out.iter()
            .any(|(id, peer, o)| *id == dy && *peer == y && matches!(o, Output::Send(_)))
    );
    assert!(d.next_deadline().unwrap() > ms(3));

    assert!(d.remove(dx).is_some());
    assert_eq!(d.lookup(x, Hop::SingleHop), None);
    assert!(d.add(x, Hop::SingleHop, Profile::default()).is_ok());
}

#[test]
fn demux_sessions_come_up_back_to_back() {
    let ip_a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let ip_b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    let mut da = Demux::new(1);
    let mut db = Demux::new(2);
    let sa = da.add(ip_b, Hop::SingleHop, Profile::default()).unwrap();
    let sb = db.add(ip_a, Hop::SingleHop, Profile::default()).unwrap();
    let mut now = Duration::ZERO;
    while now < ms(5000) {
        for (_, peer, o) in da.poll(now) {
            if let Output::Send(b) = o {
                assert_eq!(peer, ip_b);
                db.receive(ip_a, Hop::SingleHop, &b, 255, now).unwrap();
            }
        }
        for (_, peer, o) in db.poll(now) {
            if let Output::Send(b) = o {
                assert_eq!(peer, ip_a);
                da.receive(ip_b, Hop::SingleHop, &b, 255, now).unwrap();
            }
        }
        now = [da.next_deadline(), db.next_deadline()]
            .into_iter()
            .flatten()
            .min()
            .unwrap()
            .max(now);
    }
    assert_eq!(da.get(sa).unwrap().state(), State::Up);
    assert_eq!(db.get(sb).unwrap().state(), State::Up);
}

#[test]
fn constants() {
    assert_eq!(SINGLE_HOP_PORT, 3784);
    assert_eq!(MULTI_HOP_PORT, 4784);
    assert_eq!(*SOURCE_PORTS.start(), 49152);
    assert_eq!(*SOURCE_PORTS.end(), 65535);
    assert_eq!(Hop::SingleHop.port(), 3784);
    assert_eq!(Hop::MultiHop.port(), 4784);
}

// ------------------------------------------------------------ proptests

fn arb_state() -> impl Strategy<Value = State> {
    (0u8..4).prop_map(State::from_u8)
}

prop_compose! {
    fn arb_packet()(
        diag in (0u8..32).prop_map(Diag::from_u8),
        state in arb_state(),
        poll: bool,
        final_: bool,
        cpi: bool,
        demand: bool,
        detect_mult in 1u8..,
        my in 1u32..,
        your: u32,
        tx: u32,
        rx: u32,
        echo: u32,
        auth in proptest::option::of(
            (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..=229))
        ),
    ) -> ControlPacket {
        let your = if matches!(state, State::Init | State::Up) { your.max(1) } else { your };
        ControlPacket {
            diag, state, poll, final_,
            control_plane_independent: cpi,
            demand,
            multipoint: false,
            detect_mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx_us: tx,
            required_min_rx_us: rx,
            required_min_echo_rx_us: echo,
            auth: auth.map(|(auth_type, data)| Auth { auth_type, data }),
        }
    }
}

proptest! {
    #[test]
    fn round_trip(pkt in arb_packet()) {
        let bytes = pkt.encode();
        prop_assert_eq!(bytes.len(), usize::from(bytes[3]));
        prop_assert_eq!(ControlPacket::decode(&bytes), Ok(pkt));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(pkt) = ControlPacket::decode(&bytes) {
            // Whatever decodes re-encodes to something that decodes the same.
            prop_assert_eq!(ControlPacket::decode(&pkt.encode()), Ok(pkt));
        }
        let mut s = Session::new(config(Profile::default(), 1, 1));
        let _ = s.receive(&bytes, 255, ms(1));
        let _ = s.poll(ms(2));
        let mut d = Demux::new(3);
        d.add(IpAddr::V4(Ipv4Addr::LOCALHOST), Hop::SingleHop, Profile::default()).unwrap();
        let _ = d.receive(IpAddr::V4(Ipv4Addr::LOCALHOST), Hop::SingleHop, &bytes, 255, ms(1));
    }

    #[test]
    fn mostly_valid_bytes_never_panic(
        pkt in arb_packet(),
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 0..4),
    ) {
        let mut bytes = pkt.encode();
        let n = bytes.len();
        for (i, v) in flips {
            if let Some(b) = bytes.get_mut(i % n) {
                *b = v;
            }
        }
        let _ = ControlPacket::decode(&bytes);
    }

    #[test]
    fn session_survives_any_input_sequence(
        profile_tx in 0u32..3000,
        profile_rx in 0u32..3000,
        mult: u8,
        passive: bool,
        steps in proptest::collection::vec(
            (arb_packet(), 0u64..5_000_000, any::<bool>(), 0u8..4),
            1..40,
        ),
    ) {
        let prof = Profile {
            transmit_interval_ms: profile_tx,
            receive_interval_ms: profile_rx,
            detect_multiplier: mult,
            passive_mode: passive,
            ..Profile::default()
        };
        let mut s = Session::new(config(prof, 9, 4));
        let mut now = Duration::ZERO;
        for (mut pkt, dt, deliver, action) in steps {
            now += Duration::from_micros(dt);
            if deliver {
                if pkt.your_discriminator != 0 { pkt.your_discriminator = 9; }
                pkt.auth = None;
                let _ = s.receive(&pkt.encode(), 255, now);
            }
            match action {
                0 => s.admin_down(),
                1 => s.admin_up(),
                2 => s.set_profile(Profile { transmit_interval_ms: profile_rx, ..prof }),
                _ => {}
            }
            let _ = s.poll(now);
            if let Some(d) = s.next_deadline() {
                // Nothing is left overdue after a poll.
                prop_assert!(d > now, "{:?} <= {:?}", d, now);
            }
        }
    }
}
