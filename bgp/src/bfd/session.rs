//! One BFD session in asynchronous mode (RFC 5880 §6.2, §6.8).
//!
//! Inputs: [`Session::receive`] (a received packet, its TTL and the time),
//! [`Session::poll`] (the time), [`Session::admin_down`],
//! [`Session::admin_up`], [`Session::set_profile`]. Outputs come out of
//! `poll` as [`Output`]s; the caller sleeps until
//! [`Session::next_deadline`] or the next received packet, and calls `poll`
//! after every other input.
//!
//! Timers:
//! - transmit interval: max(bfd.DesiredMinTxInterval, remote Required Min
//!   RX), less 0–25 % jitter (0–10 % when Detect Mult is 1); while the
//!   session is not Up the desired interval is at least one second.
//! - detection time: remote Detect Mult × max(bfd.RequiredMinRxInterval,
//!   remote Desired Min TX), counted from the last accepted packet.
//! - a change of our intervals while Up starts a Poll Sequence: packets
//!   carry the new values with P set. A shorter transmit interval is used at
//!   once (the peer's detection time shrinks as soon as it sees the new
//!   value); a longer one, and a shorter Required Min RX, only once a
//!   packet with F set is received (§6.8.3).

use std::time::Duration;

use super::packet::{ControlPacket, Diag, PacketError, State};
use super::profile::Profile;
use super::{Hop, Rng, TX_TTL};

/// bfd.DesiredMinTxInterval floor while the session is not Up (§6.8.3).
pub const SLOW_TX_US: u32 = 1_000_000;

/// How to build a [`Session`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Timers and roles.
    pub profile: Profile,
    /// Single-hop or multi-hop (TTL rules).
    pub hop: Hop,
    /// bfd.LocalDiscr: nonzero and unique on this system (zero is replaced
    /// by one).
    pub local_discriminator: u32,
    /// Seed of the jitter generator.
    pub seed: u64,
}

/// Something the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Send this Control packet to the peer.
    Send(Vec<u8>),
    /// The local session state changed.
    StateChanged {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// bfd.LocalDiag after the change.
        diag: Diag,
    },
}

/// Why a received packet was discarded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RxError {
    /// The packet failed the packet-only checks.
    #[error(transparent)]
    Packet(#[from] PacketError),
    /// TTL (hop limit) below what the session requires.
    #[error("TTL {got} below required {required}")]
    Ttl {
        /// Received TTL.
        got: u8,
        /// Smallest acceptable TTL.
        required: u8,
    },
    /// The A bit is set and we do not authenticate.
    #[error("authentication not supported")]
    AuthNotSupported,
    /// Your Discriminator is not ours.
    #[error("your discriminator {0} does not match")]
    WrongDiscriminator(u32),
    /// The session is AdminDown: the packet was read but discarded.
    #[error("session is administratively down")]
    AdminDown,
}

/// One BFD session.
#[derive(Clone, Debug)]
pub struct Session {
    profile: Profile,
    hop: Hop,
    rng: Rng,

    state: State,
    remote_state: State,
    local_discr: u32,
    remote_discr: u32,
    local_diag: Diag,
    remote_demand: bool,

    /// Remote Required Min RX, µs (bfd.RemoteMinRxInterval, initially 1).
    remote_min_rx_us: u32,
    /// Remote Desired Min TX, µs, last received.
    remote_min_tx_us: u32,
    /// Remote Detect Mult, last received.
    remote_detect_mult: u8,

    /// Desired Min TX and Required Min RX as advertised in packets.
    adv_tx_us: u32,
    adv_rx_us: u32,
    /// The values our timers use (differ from the advertised ones during a
    /// Poll Sequence).
    active_tx_us: u32,
    active_rx_us: u32,
    /// A Poll Sequence is in progress.
    polling: bool,
    /// Values carried by the last packet sent with P set.
    polled: Option<(u32, u32)>,
    /// A Poll was received: send a Final at once.
    final_due: bool,

    /// Transmit interval the current schedule was computed with.
    sched_interval_us: Option<u32>,
    next_tx: Option<Duration>,
    last_tx: Option<Duration>,
    last_rx: Option<Duration>,
    detect_deadline: Option<Duration>,

    pending: Vec<Output>,
    last_now: Duration,
}

impl Session {
    /// A session in state Down that starts transmitting (unless passive) at
    /// the first [`poll`](Self::poll).
    pub fn new(config: SessionConfig) -> Session {
        let profile = config.profile;
        let adv_tx_us = profile.desired_min_tx_us().max(SLOW_TX_US);
        let adv_rx_us = profile.required_min_rx_us();
        Session {
            profile,
            hop: config.hop,
            rng: Rng::new(config.seed),
            state: State::Down,
            remote_state: State::Down,
            local_discr: config.local_discriminator.max(1),
            remote_discr: 0,
            local_diag: Diag::NoDiagnostic,
            remote_demand: false,
            remote_min_rx_us: 1,
            remote_min_tx_us: 0,
            remote_detect_mult: 0,
            adv_tx_us,
            adv_rx_us,
            active_tx_us: adv_tx_us,
            active_rx_us: adv_rx_us,
            polling: false,
            polled: None,
            final_due: false,
            sched_interval_us: None,
            next_tx: None,
            last_tx: None,
            last_rx: None,
            detect_deadline: None,
            pending: Vec::new(),
            last_now: Duration::ZERO,
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.RemoteSessionState.
    pub fn remote_state(&self) -> State {
        self.remote_state
    }

    /// bfd.LocalDiag.
    pub fn diag(&self) -> Diag {
        self.local_diag
    }

    /// bfd.LocalDiscr.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discr
    }

    /// bfd.RemoteDiscr (zero until a packet is received, and again after
    /// the detection time passes without one).
    pub fn remote_discriminator(&self) -> u32 {
        self.remote_discr
    }

    /// bfd.RemoteDemandMode. We never ask for Demand mode, but honour a
    /// peer's: no periodic packets while both sides are Up.
    pub fn remote_demand_mode(&self) -> bool {
        self.remote_demand
    }

    /// The configured parameters.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// Single-hop or multi-hop.
    pub fn hop(&self) -> Hop {
        self.hop
    }

    /// Whether a Poll Sequence is in progress.
    pub fn poll_in_progress(&self) -> bool {
        self.polling
    }

    /// The negotiated transmit interval before jitter, or `None` while
    /// periodic transmission is suspended (passive with no peer yet, the
    /// peer's Required Min RX is zero, or the peer is in Demand mode).
    pub fn transmit_interval(&self) -> Option<Duration> {
        self.periodic_allowed()
            .then(|| Duration::from_micros(self.tx_interval_us().into()))
    }

    /// The detection time, once a packet has been received.
    pub fn detection_time(&self) -> Option<Duration> {
        (self.remote_detect_mult != 0).then(|| self.detection_time_inner())
    }

    /// Earliest time at which [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Duration> {
        let mut d: Option<Duration> = None;
        let mut take = |t: Option<Duration>| {
            if let Some(t) = t {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        };
        if !self.pending.is_empty() || self.final_due {
            take(Some(self.last_now));
        }
        if self.periodic_allowed() {
            // Not yet scheduled means "as soon as possible".
            take(Some(self.next_tx.unwrap_or(self.last_now)));
        }
        take(self.detect_deadline);
        d
    }

    /// Advances time: detection expiry, Final responses, periodic
    /// transmission. Returns what to do, in order.
    pub fn poll(&mut self, now: Duration) -> Vec<Output> {
        self.observe(now);
        if let Some(d) = self.detect_deadline
            && now >= d
        {
            self.detection_expired(now);
        }
        if self.final_due {
            self.final_due = false;
            let pkt = self.packet(false, true);
            self.pending.push(Output::Send(pkt.encode()));
        }
        self.refresh_schedule(now);
        if let Some(t) = self.next_tx
            && now >= t
        {
            let poll = self.polling;
            if poll {
                self.polled = Some((self.adv_tx_us, self.adv_rx_us));
            }
            let pkt = self.packet(poll, false);
            self.pending.push(Output::Send(pkt.encode()));
            self.last_tx = Some(now);
            let iv = self.tx_interval_us();
            self.next_tx = Some(now + self.jittered(iv));
            self.sched_interval_us = Some(iv);
        }
        std::mem::take(&mut self.pending)
    }

    /// Decodes and processes a received packet (§6.8.6). `ttl` is the
    /// received TTL or hop limit.
    pub fn receive(&mut self, bytes: &[u8], ttl: u8, now: Duration) -> Result<(), RxError> {
        let pkt = ControlPacket::decode(bytes)?;
        self.receive_packet(&pkt, ttl, now)
    }

    /// Processes an already decoded packet (§6.8.6 after the packet-only
    /// checks).
    pub fn receive_packet(
        &mut self,
        pkt: &ControlPacket,
        ttl: u8,
        now: Duration,
    ) -> Result<(), RxError> {
        self.observe(now);
        let required = match self.hop {
            Hop::SingleHop => TX_TTL,
            Hop::MultiHop => self.profile.minimum_ttl,
        };
        if ttl < required {
            return Err(RxError::Ttl { got: ttl, required });
        }
        if pkt.auth.is_some() {
            return Err(RxError::AuthNotSupported);
        }
        if pkt.your_discriminator != 0 && pkt.your_discriminator != self.local_discr {
            return Err(RxError::WrongDiscriminator(pkt.your_discriminator));
        }

        self.remote_discr = pkt.my_discriminator;
        self.remote_state = pkt.state;
        self.remote_demand = pkt.demand;
        self.remote_min_rx_us = pkt.required_min_rx_us;
        self.remote_min_tx_us = pkt.desired_min_tx_us;
        self.remote_detect_mult = pkt.detect_mult;
        if pkt.final_ && self.polling {
            self.finish_poll();
        }
        if self.state == State::AdminDown {
            self.refresh_schedule(now);
            return Err(RxError::AdminDown);
        }

        match (self.state, pkt.state) {
            (State::Down, State::AdminDown) => {}
            (_, State::AdminDown) => {
                self.set_state(State::Down, Diag::NeighborSignaledSessionDown);
            }
            (State::Down, State::Down) => self.set_state(State::Init, self.local_diag),
            (State::Down, State::Init) => self.set_state(State::Up, Diag::NoDiagnostic),
            (State::Init, State::Init | State::Up) => self.set_state(State::Up, Diag::NoDiagnostic),
            (State::Up, State::Down) => {
                self.set_state(State::Down, Diag::NeighborSignaledSessionDown)
            }
            _ => {}
        }

        if pkt.poll {
            self.final_due = true;
        }
        self.last_rx = Some(now);
        self.detect_deadline = Some(now + self.detection_time_inner());
        self.refresh_schedule(now);
        Ok(())
    }

    /// Takes the session administratively down (§6.8.16): state AdminDown,
    /// diag Administratively Down. AdminDown packets keep being sent at the
    /// slow rate; received packets are discarded.
    pub fn admin_down(&mut self) {
        if self.state != State::AdminDown {
            self.set_state(State::AdminDown, Diag::AdministrativelyDown);
        }
    }

    /// Leaves AdminDown for Down (diag cleared).
    pub fn admin_up(&mut self) {
        if self.state == State::AdminDown {
            self.set_state(State::Down, Diag::NoDiagnostic);
        }
    }

    /// Changes the parameters. New intervals are advertised at once; while
    /// Up they are negotiated with a Poll Sequence and used by our timers
    /// only after the Final.
    pub fn set_profile(&mut self, profile: Profile) {
        self.profile = profile;
        self.update_advertised();
    }

    fn observe(&mut self, now: Duration) {
        self.last_now = self.last_now.max(now);
    }

    fn packet(&self, poll: bool, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll,
            final_,
            control_plane_independent: false,
            demand: false,
            multipoint: false,
            detect_mult: self.profile.detect_mult(),
            my_discriminator: self.local_discr,
            your_discriminator: self.remote_discr,
            desired_min_tx_us: self.adv_tx_us,
            required_min_rx_us: self.adv_rx_us,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    fn tx_interval_us(&self) -> u32 {
        self.active_tx_us.max(self.remote_min_rx_us)
    }

    fn detection_time_inner(&self) -> Duration {
        let per = u64::from(self.active_rx_us.max(self.remote_min_tx_us));
        Duration::from_micros(u64::from(self.remote_detect_mult) * per)
    }

    /// §6.8.7: no periodic packets to a peer that asked for none or that
    /// runs Demand mode on an Up session, nor from a passive session that
    /// has not heard from its peer. Finals are still sent.
    fn periodic_allowed(&self) -> bool {
        let peer_demand =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        self.remote_min_rx_us != 0
            && !peer_demand
            && !(self.profile.passive_mode && self.remote_discr == 0)
    }

    fn jittered(&mut self, interval_us: u32) -> Duration {
        let iv = u64::from(interval_us);
        // Reduce by 0–25 % (0–10 % when Detect Mult is 1), in 0.01 % steps.
        let max_cut = if self.profile.detect_mult() == 1 {
            1000
        } else {
            2500
        };
        let cut = iv * self.rng.below(max_cut + 1) / 10_000;
        Duration::from_micros(iv - cut)
    }

    /// Keeps the transmit schedule in line with the current interval and
    /// with whether periodic transmission is allowed. A shorter interval
    /// moves the next packet earlier; a longer one applies from the next
    /// packet on, so that a packet already due (say, the first one telling
    /// the peer we left Up) is not held back past the peer's detection
    /// time.
    fn refresh_schedule(&mut self, now: Duration) {
        if !self.periodic_allowed() {
            self.next_tx = None;
            self.sched_interval_us = None;
            return;
        }
        let iv = self.tx_interval_us();
        match (self.next_tx, self.last_tx) {
            (None, None) => self.next_tx = Some(now),
            (None, Some(last)) => self.next_tx = Some((last + self.jittered(iv)).max(now)),
            (Some(next), Some(last)) if self.sched_interval_us.is_some_and(|s| iv < s) => {
                let earlier = (last + self.jittered(iv)).max(now);
                self.next_tx = Some(next.min(earlier));
            }
            _ => {}
        }
        self.sched_interval_us = Some(iv);
    }

    fn reset_detection_deadline(&mut self) {
        if let (Some(_), Some(last)) = (self.detect_deadline, self.last_rx) {
            self.detect_deadline = Some(last + self.detection_time_inner());
        }
    }

    fn finish_poll(&mut self) {
        if let Some((tx, rx)) = self.polled.take() {
            // A decrease advertised since the Poll is already in use.
            self.active_tx_us = tx.min(self.adv_tx_us);
            self.active_rx_us = rx;
            self.polling = (self.adv_tx_us, self.adv_rx_us) != (tx, rx);
            self.reset_detection_deadline();
        }
    }

    fn detection_expired(&mut self, now: Duration) {
        self.detect_deadline = None;
        if matches!(self.state, State::Init | State::Up) {
            self.set_state(State::Down, Diag::ControlDetectionTimeExpired);
        }
        self.remote_discr = 0;
        self.remote_state = State::Down;
        self.remote_detect_mult = 0;
        self.refresh_schedule(now);
    }

    fn set_state(&mut self, to: State, diag: Diag) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        self.pending.push(Output::StateChanged { from, to, diag });
        self.update_advertised();
    }

    /// Recomputes the advertised intervals after a state or profile change
    /// and starts a Poll Sequence if they changed while Up.
    fn update_advertised(&mut self) {
        let mut tx = self.profile.desired_min_tx_us();
        if self.state != State::Up {
            tx = tx.max(SLOW_TX_US);
        }
        let before = (self.adv_tx_us, self.adv_rx_us);
        self.adv_tx_us = tx;
        self.adv_rx_us = self.profile.required_min_rx_us();
        if self.state == State::Up {
            // §6.8.3: transmitting faster needs no agreement (and must not
            // wait: our packets already advertise the new interval, which
            // the peer's detection time follows).
            self.active_tx_us = self.active_tx_us.min(self.adv_tx_us);
            if before != (self.adv_tx_us, self.adv_rx_us)
                || (self.active_tx_us, self.active_rx_us) != (self.adv_tx_us, self.adv_rx_us)
            {
                self.polling = true;
            }
        } else {
            self.active_tx_us = self.adv_tx_us;
            self.active_rx_us = self.adv_rx_us;
            self.polling = false;
            self.polled = None;
            self.reset_detection_deadline();
        }
    }
}
