//! Events of the state machine (RFC 4271 §8) and their handling.

use std::net::IpAddr;
use std::time::Duration;

use crate::error::DecodeError;
use crate::message::notification::{CeaseSubcode, FsmSubcode, Notification};
use crate::message::open::Open;
use crate::message::route_refresh::{RouteRefresh, RouteRefreshSubtype};
use crate::message::update::Update;
use crate::message::{CodecContext, Message, MessageDecoder};
use crate::prefix::{AddressFamily, Prefix};
use crate::session::negotiate::{Keep, negotiate, resolve_collision};
use crate::session::rib_in::Stored;
use crate::session::rib_out::Exporter;
use crate::session::{Action, Conn, ConnId, ConnState, Direction, MaxPrefixAction, Session, State};

/// How a connection ends, for graceful restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Loss {
    /// Without NOTIFICATION: graceful restart applies (RFC 4724 §4.2).
    Graceful,
    /// With NOTIFICATION, or by our decision.
    Hard,
}

impl Conn {
    fn new(id: ConnId, dir: Direction, local_addr: IpAddr) -> Conn {
        Conn {
            id,
            dir,
            local_addr,
            state: ConnState::Connected,
            decoder: MessageDecoder::new(CodecContext::default()),
            negotiated: None,
            hold_deadline: None,
            keepalive_deadline: None,
            delay_open_deadline: None,
        }
    }

    fn ctx(&self) -> CodecContext {
        self.negotiated
            .as_ref()
            .map(|n| n.codec)
            .unwrap_or_default()
    }

    fn keepalive_period(&self) -> Option<Duration> {
        let k = self.negotiated.as_ref()?.keepalive_time;
        (k > 0).then(|| Duration::from_secs(u64::from(k)))
    }

    fn hold_period(&self) -> Option<Duration> {
        let h = self.negotiated.as_ref()?.hold_time;
        (h > 0).then(|| Duration::from_secs(u64::from(h)))
    }

    fn restart_hold(&mut self, now: Duration) {
        self.hold_deadline = self.hold_period().map(|h| now + h);
    }
}

impl Session {
    fn idx(&self, id: ConnId) -> Option<usize> {
        self.conns.iter().position(|c| c.id == id)
    }

    fn tick(&mut self, now: Duration) {
        self.now = self.now.max(now);
    }

    fn sync_state(&mut self, out: &mut Vec<Action>) {
        let to = self.state();
        if to != self.reported_state {
            out.push(Action::StateChanged {
                from: self.reported_state,
                to,
            });
            self.reported_state = to;
        }
    }

    /// Encodes and queues a message on connection `i`.
    fn send(&mut self, i: usize, msg: &Message, out: &mut Vec<Action>) {
        let now = self.now;
        let conn = &mut self.conns[i];
        match msg.encode(&conn.ctx()) {
            Ok(bytes) => {
                out.push(Action::SendBytes {
                    conn: conn.id,
                    bytes: bytes.to_vec(),
                });
                match msg {
                    Message::Update(_) => self.stats.updates_sent += 1,
                    Message::Keepalive => self.stats.keepalives_sent += 1,
                    _ => {}
                }
                // RFC 4271 §8.2.2: sending a KEEPALIVE or UPDATE restarts the
                // KeepaliveTimer.
                if matches!(msg, Message::Update(_) | Message::Keepalive)
                    && conn.keepalive_deadline.is_some()
                {
                    conn.keepalive_deadline = conn.keepalive_period().map(|k| now + k);
                }
            }
            Err(e) => out.push(Action::Warning(format!(
                "cannot encode {:?}: {e}",
                msg.message_type()
            ))),
        }
    }

    /// Starts the session (ManualStart / AutomaticStart): connects, or in
    /// passive mode waits for the peer.
    pub fn start(&mut self, now: Duration) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        if !self.started {
            self.started = true;
            if self.conns.is_empty() {
                self.begin_connect(&mut out);
            }
        }
        self.sync_state(&mut out);
        out
    }

    /// Connects now (active mode) or waits in Active (passive mode).
    fn begin_connect(&mut self, out: &mut Vec<Action>) {
        if self.cfg.passive {
            self.base = State::Active;
            self.connect_retry = None;
        } else {
            self.base = State::Connect;
            self.connecting = true;
            self.connect_retry = Some(self.now + self.cfg.connect_retry_max);
            out.push(Action::Connect);
        }
    }

    /// After a failure with no connection left: Idle, then Active until
    /// ConnectRetry (backed off) expires.
    fn after_failure(&mut self, out: &mut Vec<Action>) {
        if !self.conns.is_empty() {
            return;
        }
        self.base = State::Idle;
        self.sync_state(out);
        if !self.started {
            self.connect_retry = None;
            return;
        }
        self.base = State::Active;
        self.connect_retry = if self.cfg.passive || self.connecting {
            self.connect_retry
        } else {
            let delay = self.backoff.next_interval();
            self.backoff.failed();
            Some(self.now + delay)
        };
    }

    /// Stops the session (ManualStop): Cease / Administrative Shutdown with
    /// `message` (RFC 8203) on every connection that has sent its OPEN.
    pub fn stop(&mut self, now: Duration, message: Option<&str>) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        self.started = false;
        if std::mem::take(&mut self.connecting) {
            out.push(Action::AbortConnect);
        }
        self.connect_retry = None;
        let notification = Notification::administrative_shutdown(message.unwrap_or(""));
        for id in self.conns.iter().map(|c| c.id).collect::<Vec<_>>() {
            let i = self.idx(id).expect("listed");
            let n = (self.conns[i].state >= ConnState::OpenSent).then(|| notification.clone());
            self.close(i, n, Loss::Hard, &mut out);
        }
        self.rib_in.clear();
        self.restart_deadline = None;
        self.stale_deadline = None;
        self.base = State::Idle;
        self.sync_state(&mut out);
        out
    }

    /// The BFD session that protects this peer went down (RFC 5882 §4.3):
    /// every connection that has sent its OPEN (OpenSent, OpenConfirm or
    /// Established) gets Cease / BFD Down (RFC 9384) and is closed. Losing
    /// the established session this way is not a graceful restart: the
    /// peer's routes are dropped at once and ours are considered withdrawn.
    /// With no connection left the session goes Idle, then Active until
    /// ConnectRetry (with its backoff) connects again, as after any other
    /// failure.
    ///
    /// A connection that has not sent its OPEN yet (DelayOpen) and an
    /// outbound attempt in progress are left alone, and nothing prevents the
    /// session from establishing again while BFD is still down: RFC 5882
    /// §4.3 allows either behaviour, and holding the session back would
    /// need the BFD state as a second input of the state machine. The
    /// caller calls this again if BFD goes down again, not while it stays
    /// down.
    pub fn bfd_down(&mut self, now: Duration) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        let notification = Notification::cease(CeaseSubcode::BfdDown);
        let mut closed = false;
        for id in self.conns.iter().map(|c| c.id).collect::<Vec<_>>() {
            let i = self.idx(id).expect("listed");
            if self.conns[i].state >= ConnState::OpenSent {
                self.close(i, Some(notification.clone()), Loss::Hard, &mut out);
                closed = true;
            }
        }
        if closed {
            self.after_failure(&mut out);
        }
        self.sync_state(&mut out);
        out
    }

    /// Our outbound connection is up; `local_addr` is its local address.
    pub fn tcp_connected(
        &mut self,
        now: Duration,
        conn: ConnId,
        local_addr: IpAddr,
    ) -> Vec<Action> {
        self.tick(now);
        self.connecting = false;
        if self.state() == State::Established {
            // Late completion of an attempt we no longer need.
            return vec![Action::CloseConnection { conn }];
        }
        self.new_connection(conn, Direction::Outbound, local_addr)
    }

    /// The peer connected to us; `local_addr` is the connection's local
    /// address. Refused ([`Action::CloseConnection`]) when stopped or when
    /// two connections already exist.
    pub fn tcp_accepted(&mut self, now: Duration, conn: ConnId, local_addr: IpAddr) -> Vec<Action> {
        self.tick(now);
        self.new_connection(conn, Direction::Inbound, local_addr)
    }

    fn new_connection(&mut self, id: ConnId, dir: Direction, local_addr: IpAddr) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.started || self.conns.len() >= 2 || self.idx(id).is_some() {
            out.push(Action::CloseConnection { conn: id });
            return out;
        }
        if !self.connecting {
            self.connect_retry = None;
        }
        self.conns.push(Conn::new(id, dir, local_addr));
        let i = self.conns.len() - 1;
        match self.cfg.delay_open {
            Some(delay) => self.conns[i].delay_open_deadline = Some(self.now + delay),
            None => self.send_open(i, &mut out),
        }
        self.sync_state(&mut out);
        out
    }

    fn send_open(&mut self, i: usize, out: &mut Vec<Action>) {
        let open = Message::Open(self.local_open.clone());
        self.send(i, &open, out);
        let conn = &mut self.conns[i];
        conn.delay_open_deadline = None;
        conn.state = ConnState::OpenSent;
        conn.hold_deadline = Some(self.now + self.cfg.open_hold_time);
    }

    /// Our outbound connection attempt failed.
    pub fn tcp_failed(&mut self, now: Duration) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        if std::mem::take(&mut self.connecting) {
            self.after_failure(&mut out);
        }
        self.sync_state(&mut out);
        out
    }

    /// The connection was closed or reset by the peer or the network.
    pub fn tcp_closed(&mut self, now: Duration, conn: ConnId) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        if let Some(i) = self.idx(conn) {
            self.drop_conn(i, Loss::Graceful, &mut out);
            self.after_failure(&mut out);
        }
        self.sync_state(&mut out);
        out
    }

    /// Sends `notification` if given, closes connection `i` and forgets it.
    fn close(
        &mut self,
        i: usize,
        notification: Option<Notification>,
        loss: Loss,
        out: &mut Vec<Action>,
    ) {
        let id = self.conns[i].id;
        if let Some(n) = notification {
            self.send(i, &Message::Notification(n.clone()), out);
            out.push(Action::NotificationSent {
                conn: id,
                notification: n,
            });
        }
        out.push(Action::CloseConnection { conn: id });
        self.drop_conn(i, loss, out);
    }

    fn drop_conn(&mut self, i: usize, loss: Loss, out: &mut Vec<Action>) {
        let conn = self.conns.remove(i);
        if conn.state == ConnState::Established {
            self.session_lost(loss, out);
        }
    }

    /// The established session is gone: graceful restart helper, or forget
    /// the peer's routes.
    fn session_lost(&mut self, loss: Loss, out: &mut Vec<Action>) {
        self.rib_out.reset();
        self.flush_at = None;
        self.stale_deadline = None;
        match (&self.peer_gr, loss) {
            (Some(gr), Loss::Graceful) if self.started => {
                let restart_time = Duration::from_secs(u64::from(gr.restart_time));
                let gr = gr.clone();
                let stale_routes = self.rib_in.mark_stale(|f| gr.covers(f));
                if self.restart_deadline.is_none() {
                    self.restart_deadline = Some(self.now + restart_time);
                }
                out.push(Action::PeerRestarting {
                    restart_time,
                    stale_routes,
                });
            }
            _ => {
                self.rib_in.clear();
                self.restart_deadline = None;
            }
        }
    }

    /// Bytes read from a connection.
    pub fn bytes_received(&mut self, now: Duration, conn: ConnId, bytes: &[u8]) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        let Some(i) = self.idx(conn) else {
            return out;
        };
        self.conns[i].decoder.extend(bytes);
        while let Some(i) = self.idx(conn) {
            match self.conns[i].decoder.next_message() {
                Ok(None) => break,
                Ok(Some(decoded)) => self.handle_message(i, decoded.message, &mut out),
                Err(DecodeError::SessionReset(n)) => {
                    self.close(i, Some(n), Loss::Hard, &mut out);
                    self.after_failure(&mut out);
                }
                Err(DecodeError::TreatAsWithdraw { prefixes, reason }) => {
                    if self.conns[i].state == ConnState::Established {
                        self.conns[i].restart_hold(self.now);
                        self.stats.updates_received += 1;
                        out.push(Action::Warning(format!(
                            "UPDATE treated as withdraw ({} prefixes): {reason}",
                            prefixes.len()
                        )));
                        self.receive_routes(&prefixes, &[], &mut out);
                    } else {
                        self.fsm_error(i, &mut out);
                    }
                }
            }
        }
        self.sync_state(&mut out);
        out
    }

    /// An unexpected message for the connection's state (RFC 6608).
    fn fsm_error(&mut self, i: usize, out: &mut Vec<Action>) {
        let subcode = match self.conns[i].state {
            ConnState::Connected => FsmSubcode::Unspecified,
            ConnState::OpenSent => FsmSubcode::UnexpectedMessageInOpenSent,
            ConnState::OpenConfirm => FsmSubcode::UnexpectedMessageInOpenConfirm,
            ConnState::Established => FsmSubcode::UnexpectedMessageInEstablished,
        };
        self.close(i, Some(Notification::fsm_error(subcode)), Loss::Hard, out);
        self.after_failure(out);
    }

    fn handle_message(&mut self, i: usize, msg: Message, out: &mut Vec<Action>) {
        let state = self.conns[i].state;
        match (state, msg) {
            (_, Message::Notification(n)) => {
                out.push(Action::NotificationReceived {
                    conn: self.conns[i].id,
                    notification: n,
                });
                out.push(Action::CloseConnection {
                    conn: self.conns[i].id,
                });
                self.drop_conn(i, Loss::Hard, out);
                self.after_failure(out);
            }
            (ConnState::Connected | ConnState::OpenSent, Message::Open(open)) => {
                self.receive_open(i, open, out)
            }
            (ConnState::OpenConfirm, Message::Keepalive) => {
                self.stats.keepalives_received += 1;
                self.enter_established(i, out);
            }
            (ConnState::Established, Message::Keepalive) => {
                self.stats.keepalives_received += 1;
                self.conns[i].restart_hold(self.now);
            }
            (ConnState::Established, Message::Update(update)) => {
                self.stats.updates_received += 1;
                self.conns[i].restart_hold(self.now);
                self.receive_update(update, out);
            }
            (ConnState::Established, Message::RouteRefresh(rr)) => {
                self.conns[i].restart_hold(self.now);
                self.receive_route_refresh(i, rr, out);
            }
            _ => self.fsm_error(i, out),
        }
    }

    fn receive_open(&mut self, i: usize, open: Open, out: &mut Vec<Action>) {
        let neg = match negotiate(&self.cfg, &self.local_open, &open) {
            Ok(neg) => neg,
            Err(n) => {
                // RFC 4271 §8.2.2 (Connect/Active with DelayOpen): an OPEN
                // error is reported only once our OPEN is out.
                if self.conns[i].state == ConnState::Connected {
                    self.send_open(i, out);
                }
                self.close(i, Some(n), Loss::Hard, out);
                self.after_failure(out);
                return;
            }
        };
        let id = self.conns[i].id;
        // Connection collision (RFC 4271 §6.8).
        if let Some(j) = self.conns.iter().position(|c| c.id != id) {
            let other = &self.conns[j];
            let collision = Notification::cease(CeaseSubcode::ConnectionCollisionResolution);
            if other.state == ConnState::Established {
                let from_peer = self.conns[i].dir == Direction::Inbound;
                if from_peer && self.peer_gr.is_some() && self.cfg.graceful_restart.is_some() {
                    // RFC 4724 §4.2: a new OPEN from a peer we are
                    // established with means the peer restarted.
                    out.push(Action::CloseConnection { conn: other.id });
                    self.drop_conn(j, Loss::Graceful, out);
                } else {
                    let i = self.idx(id).expect("present");
                    self.close_with_open(i, collision, out);
                    return;
                }
            } else {
                let keep_dir = resolve_collision(
                    self.cfg.router_id,
                    open.bgp_identifier,
                    self.cfg.local_asn,
                    neg.peer_asn,
                );
                let keep_dir = match keep_dir {
                    Keep::Outbound => Direction::Outbound,
                    Keep::Inbound => Direction::Inbound,
                };
                let this_dir = self.conns[i].dir;
                if this_dir == keep_dir || other.dir == this_dir {
                    // The other one loses (of two in the same direction,
                    // the older).
                    let n = (other.state >= ConnState::OpenSent).then_some(collision);
                    self.close(j, n, Loss::Hard, out);
                } else {
                    self.close_with_open(i, collision, out);
                    return;
                }
            }
        }
        let i = self.idx(id).expect("present");
        if self.conns[i].state == ConnState::Connected {
            self.send_open(i, out);
        }
        let conn = &mut self.conns[i];
        conn.decoder.set_context(neg.codec);
        conn.negotiated = Some(neg);
        conn.state = ConnState::OpenConfirm;
        conn.restart_hold(self.now);
        conn.keepalive_deadline = conn.keepalive_period().map(|k| self.now + k);
        self.send(i, &Message::Keepalive, out);
    }

    /// Closes connection `i` with `n`, sending our OPEN first if it was
    /// delayed.
    fn close_with_open(&mut self, i: usize, n: Notification, out: &mut Vec<Action>) {
        if self.conns[i].state == ConnState::Connected {
            self.send_open(i, out);
        }
        self.close(i, Some(n), Loss::Hard, out);
    }

    fn enter_established(&mut self, i: usize, out: &mut Vec<Action>) {
        let now = self.now;
        let conn = &mut self.conns[i];
        conn.state = ConnState::Established;
        conn.restart_hold(now);
        let neg = conn.negotiated.clone().expect("negotiated in OpenConfirm");
        let id = conn.id;
        self.backoff.reset();
        self.stats.established += 1;
        if std::mem::take(&mut self.connecting) {
            out.push(Action::AbortConnect);
        }
        self.connect_retry = None;
        self.sync_state(out);
        out.push(Action::Established {
            conn: id,
            negotiated: Box::new(neg.clone()),
        });

        // Graceful restart helper: the peer is back.
        self.restart_deadline = None;
        if self.rib_in.stale_total() > 0 {
            for family in self.rib_in.stale_families() {
                let kept = neg
                    .graceful_restart
                    .as_ref()
                    .is_some_and(|gr| gr.preserved(family));
                if !kept {
                    let count = self.rib_in.purge_stale(Some(family));
                    out.push(Action::StaleRoutesRemoved {
                        family: Some(family),
                        count,
                    });
                }
            }
            if self.rib_in.stale_total() > 0 {
                let wait = self
                    .cfg
                    .graceful_restart
                    .as_ref()
                    .map_or(Duration::ZERO, |g| g.stale_routes_time);
                self.stale_deadline = Some(now + wait);
            }
        }
        self.peer_gr = neg.graceful_restart.clone();

        // The whole table, then End-of-RIB per family (RFC 4724 §2).
        self.rib_out.mark_all_pending();
        self.flush(i, out);
        for family in &neg.families {
            self.send(i, &Message::Update(Update::end_of_rib(*family)), out);
        }
    }

    /// Sends the pending Adj-RIB-Out changes on connection `i`.
    fn flush(&mut self, i: usize, out: &mut Vec<Action>) {
        self.flush_at = None;
        let conn = &self.conns[i];
        let Some(neg) = conn.negotiated.as_ref() else {
            return;
        };
        let ex = Exporter {
            cfg: &self.cfg,
            neg,
            local_addr: conn.local_addr,
        };
        let mut problems = Vec::new();
        let updates = self.rib_out.flush(&ex, &mut problems);
        for p in problems {
            out.push(Action::Warning(format!("route not sent: {p}")));
        }
        for u in updates {
            self.send(i, &Message::Update(u), out);
        }
    }

    fn receive_update(&mut self, update: Update, out: &mut Vec<Action>) {
        if let Some(family) = update.end_of_rib_family() {
            out.push(Action::EndOfRibReceived { family });
            if self.rib_in.stale_families().contains(&family) {
                let count = self.rib_in.purge_stale(Some(family));
                out.push(Action::StaleRoutesRemoved {
                    family: Some(family),
                    count,
                });
            }
            if self.rib_in.stale_total() == 0 {
                self.stale_deadline = None;
            }
            return;
        }
        let withdrawn: Vec<Prefix> = update.withdrawals().collect();
        let announced: Vec<Prefix> = update.announced().collect();
        self.receive_routes(&withdrawn, &announced, out);
    }

    fn receive_routes(
        &mut self,
        withdrawn: &[Prefix],
        announced: &[Prefix],
        out: &mut Vec<Action>,
    ) {
        let mut families: Vec<AddressFamily> = Vec::new();
        for p in withdrawn {
            self.rib_in.withdraw(*p);
            if !families.contains(&p.unicast_family()) {
                families.push(p.unicast_family());
            }
        }
        for p in announced {
            if !families.contains(&p.unicast_family()) {
                families.push(p.unicast_family());
            }
            if let Stored::OverCap { first } = self.rib_in.announce(*p) {
                let cap = self.cfg.max_received_prefixes;
                match self.cfg.max_prefix_action {
                    MaxPrefixAction::CountOnly if first => out.push(Action::Warning(format!(
                        "peer exceeds {cap} prefixes: further prefixes are only counted"
                    ))),
                    MaxPrefixAction::CountOnly => {}
                    MaxPrefixAction::Cease => {
                        // RFC 4486 §4: AFI, SAFI and the upper bound.
                        let family = p.unicast_family();
                        let mut data = family.afi.0.to_be_bytes().to_vec();
                        data.push(family.safi.0);
                        data.extend_from_slice(
                            &u32::try_from(cap).unwrap_or(u32::MAX).to_be_bytes(),
                        );
                        let n = Notification::new(
                            crate::message::notification::ErrorCode::Cease,
                            CeaseSubcode::MaximumPrefixesReached,
                            data,
                        );
                        if let Some(i) = self
                            .conns
                            .iter()
                            .position(|c| c.state == ConnState::Established)
                        {
                            self.close(i, Some(n), Loss::Hard, out);
                            self.after_failure(out);
                        }
                        return;
                    }
                }
            }
        }
        for family in families {
            out.push(Action::RoutesReceived {
                family,
                counts: self.rib_in.family_counts(family),
            });
        }
    }

    fn receive_route_refresh(&mut self, i: usize, rr: RouteRefresh, out: &mut Vec<Action>) {
        let Some(neg) = self.conns[i].negotiated.clone() else {
            return;
        };
        if !neg.families.contains(&rr.family) {
            // RFC 2918 §4: ignore a family that was not negotiated.
            out.push(Action::Warning(format!(
                "ROUTE-REFRESH for {} which was not negotiated",
                rr.family
            )));
            return;
        }
        match rr.subtype {
            RouteRefreshSubtype::Request => {
                out.push(Action::RouteRefreshReceived { family: rr.family });
                // Pending changes first, so the peer gets the current table.
                self.flush(i, out);
                let enhanced = neg.enhanced_route_refresh;
                if enhanced {
                    let borr = RouteRefresh {
                        family: rr.family,
                        subtype: RouteRefreshSubtype::Begin,
                    };
                    self.send(i, &Message::RouteRefresh(borr), out);
                }
                let conn = &self.conns[i];
                let ex = Exporter {
                    cfg: &self.cfg,
                    neg: &neg,
                    local_addr: conn.local_addr,
                };
                let mut problems = Vec::new();
                let updates = self.rib_out.resend(rr.family, &ex, &mut problems);
                for u in updates {
                    self.send(i, &Message::Update(u), out);
                }
                if enhanced {
                    let eorr = RouteRefresh {
                        family: rr.family,
                        subtype: RouteRefreshSubtype::End,
                    };
                    self.send(i, &Message::RouteRefresh(eorr), out);
                }
            }
            RouteRefreshSubtype::Begin => self.rib_in.mark_family_stale(rr.family),
            RouteRefreshSubtype::End => {
                let count = self.rib_in.purge_stale(Some(rr.family));
                out.push(Action::StaleRoutesRemoved {
                    family: Some(rr.family),
                    count,
                });
            }
            // RFC 7313 §5: ignore unknown subtypes.
            RouteRefreshSubtype::Other(_) => {}
        }
    }

    /// Asks the peer to send its routes of `family` again (RFC 2918).
    /// Does nothing unless established with route refresh negotiated.
    pub fn request_route_refresh(&mut self, now: Duration, family: AddressFamily) -> Vec<Action> {
        self.tick(now);
        let mut out = Vec::new();
        if let Some(i) = self.conns.iter().position(|c| {
            c.state == ConnState::Established
                && c.negotiated
                    .as_ref()
                    .is_some_and(|n| n.route_refresh && n.families.contains(&family))
        }) {
            self.send(
                i,
                &Message::RouteRefresh(RouteRefresh::request(family)),
                &mut out,
            );
        }
        out
    }

    /// Runs the timers due at `now` and sends pending route changes.
    pub fn poll(&mut self, now: Duration) -> Vec<Action> {
        self.tick(now);
        let now = self.now;
        let mut out = Vec::new();
        for id in self.conns.iter().map(|c| c.id).collect::<Vec<_>>() {
            let Some(i) = self.idx(id) else { continue };
            let conn = &self.conns[i];
            if conn.hold_deadline.is_some_and(|d| d <= now) {
                self.close(
                    i,
                    Some(Notification::hold_timer_expired()),
                    Loss::Hard,
                    &mut out,
                );
                self.after_failure(&mut out);
                continue;
            }
            if conn.delay_open_deadline.is_some_and(|d| d <= now) {
                self.send_open(i, &mut out);
            }
            let conn = &self.conns[i];
            if conn.keepalive_deadline.is_some_and(|d| d <= now) {
                self.conns[i].keepalive_deadline =
                    self.conns[i].keepalive_period().map(|k| now + k);
                self.send(i, &Message::Keepalive, &mut out);
            }
        }
        if self.connect_retry.is_some_and(|d| d <= now) {
            if self.connecting {
                // The attempt took too long: count a failure and retry.
                self.backoff.failed();
                out.push(Action::Connect);
                self.connect_retry = Some(now + self.cfg.connect_retry_max);
            } else {
                self.begin_connect(&mut out);
            }
        }
        if self.restart_deadline.is_some_and(|d| d <= now)
            || self.stale_deadline.is_some_and(|d| d <= now)
        {
            self.restart_deadline = None;
            self.stale_deadline = None;
            let count = self.rib_in.purge_stale(None);
            out.push(Action::StaleRoutesRemoved {
                family: None,
                count,
            });
        }
        if self.flush_at.is_some_and(|d| d <= now) {
            match self
                .conns
                .iter()
                .position(|c| c.state == ConnState::Established)
            {
                Some(i) => self.flush(i, &mut out),
                // Sent with the whole table once established.
                None => self.flush_at = None,
            }
        }
        self.sync_state(&mut out);
        out
    }
}
