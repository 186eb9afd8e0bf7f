//! The speaker's Prometheus metrics, served with `/healthz` and `/readyz`
//! on `--metrics-addr` (the controller's server).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use ferrolb_arp::Event;
use ferrolb_arp::io::L2Event;
use ferrolb_controller::cluster::metrics::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::bgp::PeerState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabels {
    pub peer: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpLabels {
    pub ip: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModeLabels {
    pub mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IpProtocolLabels {
    pub ip: String,
    pub protocol: String,
}

/// Every metric of the speaker.
pub struct Metrics {
    registry: Registry,
    pub session_up: Family<PeerLabels, Gauge>,
    pub bfd_up: Family<PeerLabels, Gauge>,
    pub prefixes_announced: Family<PeerLabels, Gauge>,
    pub announced_ips: Family<ModeLabels, Gauge>,
    pub gratuitous: Family<IpLabels, Counter>,
    pub answers: Family<IpProtocolLabels, Counter>,
    pub conflicts: Family<IpLabels, Counter>,
    pub members: Gauge,
    pub membership_changes: Gauge,
    pub membership_refused: Gauge,
    pub rounds: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("ferrolb_speaker");
        let m = Metrics {
            session_up: Family::default(),
            bfd_up: Family::default(),
            prefixes_announced: Family::default(),
            announced_ips: Family::default(),
            gratuitous: Family::default(),
            answers: Family::default(),
            conflicts: Family::default(),
            members: Gauge::default(),
            membership_changes: Gauge::default(),
            membership_refused: Gauge::default(),
            rounds: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "bgp_session_up",
            "1 when the BGP session to the peer is Established",
            m.session_up.clone(),
        );
        registry.register(
            "bfd_session_up",
            "1 when the BFD session protecting the peer is Up",
            m.bfd_up.clone(),
        );
        registry.register(
            "bgp_announced_prefixes",
            "Prefixes this node announces to the peer",
            m.prefixes_announced.clone(),
        );
        registry.register(
            "announced_ips",
            "Service IPs this node announces, by mode (layer2, bgp)",
            m.announced_ips.clone(),
        );
        registry.register(
            "gratuitous_announcements",
            "Gratuitous ARP / unsolicited NA rounds sent per IP",
            m.gratuitous.clone(),
        );
        registry.register(
            "layer2_answers",
            "ARP replies and Neighbor Advertisements sent per IP",
            m.answers.clone(),
        );
        registry.register(
            "layer2_conflicts",
            "Frames from another host claiming an IP this node owns",
            m.conflicts.clone(),
        );
        registry.register(
            "membership_members",
            "Live members of the speakers' membership (this one included)",
            m.members.clone(),
        );
        registry.register(
            "membership_changes",
            "Membership changes seen since the start",
            m.membership_changes.clone(),
        );
        registry.register(
            "membership_refused_datagrams",
            "Membership datagrams refused (wrong key, malformed) since the start",
            m.membership_refused.clone(),
        );
        registry.register("rounds", "Decision rounds run", m.rounds.clone());
        Metrics { registry, ..m }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Counts what a layer-2 event says.
    pub fn observe_l2(&self, event: &L2Event) {
        let L2Event::Announcer { event, .. } = event else {
            return;
        };
        let ip = |ip: &IpAddr| IpLabels { ip: ip.to_string() };
        match event {
            Event::Gratuitous { ip: a, .. } => {
                self.gratuitous.get_or_create(&ip(a)).inc();
            }
            Event::Answered { ip: a, .. } => {
                self.answers
                    .get_or_create(&IpProtocolLabels {
                        ip: a.to_string(),
                        protocol: if a.is_ipv4() { "arp" } else { "ndp" }.into(),
                    })
                    .inc();
            }
            Event::ConflictDetected { ip: a, .. } => {
                self.conflicts.get_or_create(&ip(a)).inc();
            }
        }
    }

    /// Sets the gauges from the daemon's state.
    pub fn update(
        &self,
        peers: &BTreeMap<String, PeerState>,
        layer2: usize,
        bgp: usize,
        membership: Option<&crate::membership::io::View>,
    ) {
        for (name, st) in peers {
            let l = PeerLabels { peer: name.clone() };
            self.session_up
                .get_or_create(&l)
                .set(i64::from(st.state == "Established"));
            self.bfd_up
                .get_or_create(&l)
                .set(i64::from(st.bfd_state.as_deref() == Some("Up")));
            self.prefixes_announced
                .get_or_create(&l)
                .set(i64::try_from(st.prefixes).unwrap_or(i64::MAX));
        }
        let set = |mode: &str, n: usize| {
            self.announced_ips
                .get_or_create(&ModeLabels { mode: mode.into() })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        };
        set("layer2", layer2);
        set("bgp", bgp);
        if let Some(v) = membership {
            self.members
                .set(i64::try_from(v.live.len()).unwrap_or(i64::MAX));
            self.membership_changes
                .set(i64::try_from(v.changes).unwrap_or(i64::MAX));
            self.membership_refused
                .set(i64::try_from(v.refused).unwrap_or(i64::MAX));
        }
    }
}

/// Starts the server; a failure to bind is logged and leaves the daemon running.
pub fn serve(addr: std::net::SocketAddr, metrics: Arc<Metrics>, health: Arc<Health>) {
    tokio::spawn(async move {
        let encode: ferrolb_controller::cluster::metrics::Encoder =
            Arc::new(move || metrics.encode());
        if let Err(e) = ferrolb_controller::cluster::metrics::serve_with(addr, encode, health).await
        {
            tracing::error!(
                "cannot serve metrics on {addr}: {e}; announcements go on without them"
            );
        }
    });
}

/// Marks the speaker ready (its first round ran).
pub fn set_ready(health: &Health) {
    health.ready.store(true, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn gauges_and_counters_are_exposed() {
        let m = Metrics::default();
        let mut peers = BTreeMap::new();
        peers.insert(
            "router".to_string(),
            PeerState {
                state: "Established".into(),
                bfd_state: Some("Up".into()),
                last_transition: SystemTime::now(),
                last_error: None,
                prefixes: 3,
            },
        );
        m.update(&peers, 2, 3, None);
        m.conflicts
            .get_or_create(&IpLabels {
                ip: "198.51.100.10".into(),
            })
            .inc();
        let text = m.encode();
        for line in [
            "ferrolb_speaker_bgp_session_up{peer=\"router\"} 1",
            "ferrolb_speaker_bfd_session_up{peer=\"router\"} 1",
            "ferrolb_speaker_bgp_announced_prefixes{peer=\"router\"} 3",
            "ferrolb_speaker_announced_ips{mode=\"layer2\"} 2",
            "ferrolb_speaker_layer2_conflicts_total{ip=\"198.51.100.10\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in:\n{text}");
        }
    }
}
