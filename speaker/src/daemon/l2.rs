//! The layer-2 adapter: the `arp` crate's runner, kept in step with
//! [`Desired::l2`](crate::desired::Desired::l2). The runner starts when the
//! first IP is to be answered for (it needs CAP_NET_RAW; a BGP-only node
//! never opens a raw socket). New IPs are added before lost ones are
//! removed; every add makes the announcer send gratuitous ARP /
//! unsolicited NA at once.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ferrolb_arp::io::{L2Config, L2Event, L2Runner};
use ferrolb_arp::{ConflictKind, Event};

use crate::desired::L2Announcement;

/// Another host answering for an IP this node owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub ip: IpAddr,
    pub interface: String,
    pub other_mac: String,
    pub kind: &'static str,
}

#[derive(Default)]
pub struct L2 {
    runner: Option<L2Runner>,
    /// IP → interfaces asked for.
    current: BTreeMap<IpAddr, Vec<String>>,
    /// Why the runner could not start (shown in status), if it could not.
    pub error: Option<String>,
    /// IP → interfaces actually announcing (from the runner's reports).
    pub interfaces: BTreeMap<IpAddr, Vec<String>>,
    /// Conflicts seen, most recent last (bounded).
    pub conflicts: Vec<Conflict>,
    /// Gratuitous rounds sent, per IP.
    pub gratuitous: BTreeMap<IpAddr, u64>,
    /// IPs another node took over while this one drains, answered until
    /// the time given (make-before-break).
    lingering: BTreeMap<IpAddr, tokio::time::Instant>,
}

/// Conflicts kept for status.
const MAX_CONFLICTS: usize = 64;

fn kind_name(kind: ConflictKind) -> &'static str {
    match kind {
        ConflictKind::ArpProbe => "arp_probe",
        ConflictKind::ArpSender => "arp_sender",
        ConflictKind::DadProbe => "dad_probe",
        ConflictKind::NeighborAdvertisement => "neighbor_advertisement",
    }
}

impl L2 {
    /// IPs currently answered for.
    pub fn owned(&self) -> impl Iterator<Item = &IpAddr> {
        self.current.keys()
    }

    /// When the first lingering IP is due to go.
    pub fn linger_deadline(&self) -> Option<tokio::time::Instant> {
        self.lingering.values().min().copied()
    }

    /// Brings the announced IPs in line with `want`. With `linger`, an IP
    /// no longer wanted is still answered for that long (the node drains).
    pub async fn apply(
        &mut self,
        want: &BTreeMap<IpAddr, L2Announcement>,
        linger: Option<std::time::Duration>,
    ) {
        let current = &self.current;
        self.lingering
            .retain(|ip, _| !want.contains_key(ip) && current.contains_key(ip));
        if self.runner.is_none() {
            if want.is_empty() {
                return;
            }
            match L2Runner::start(L2Config::default()).await {
                Ok(runner) => {
                    self.runner = Some(runner);
                    self.error = None;
                }
                Err(e) => {
                    let text = format!(
                        "cannot answer ARP/NDP: {e} (the speaker needs CAP_NET_RAW and CAP_NET_ADMIN)"
                    );
                    if self.error.as_deref() != Some(text.as_str()) {
                        tracing::error!("{text}");
                    }
                    self.error = Some(text);
                    return;
                }
            }
        }
        let Some(runner) = &self.runner else { return };
        for (ip, ann) in want {
            if self.current.get(ip) != Some(&ann.interfaces) {
                if self.current.contains_key(ip) {
                    let _ = runner.handle.remove_ip(*ip).await;
                }
                let services: Vec<String> = ann.services.iter().map(|s| s.to_string()).collect();
                match runner.handle.add_ip(*ip, ann.interfaces.clone()).await {
                    Ok(()) => {
                        tracing::info!(
                            "answering for {ip} on layer 2 (Service {})",
                            services.join(", ")
                        );
                        self.current.insert(*ip, ann.interfaces.clone());
                    }
                    Err(e) => tracing::error!("cannot announce {ip}: {e}"),
                }
            }
        }
        let now = tokio::time::Instant::now();
        let lost: Vec<IpAddr> = self
            .current
            .keys()
            .filter(|ip| !want.contains_key(ip))
            .copied()
            .collect();
        for ip in lost {
            if let Some(linger) = linger {
                let until = *self.lingering.entry(ip).or_insert_with(|| {
                    tracing::info!(
                        "draining: still answering for {ip} on layer 2 for {linger:?} while another node takes it over"
                    );
                    now + linger
                });
                if now < until {
                    continue;
                }
            }
            self.lingering.remove(&ip);
            tracing::info!("no longer answering for {ip} on layer 2");
            let _ = runner.handle.remove_ip(ip).await;
            self.current.remove(&ip);
            self.interfaces.remove(&ip);
        }
    }

    /// Waits for the runner's next event (forever when it is not running).
    pub async fn next(&mut self) -> Option<L2Event> {
        match &mut self.runner {
            Some(r) => r.events.recv().await,
            None => std::future::pending().await,
        }
    }

    /// Takes in one event; true when something shown in status changed.
    pub fn handle(&mut self, event: L2Event) -> bool {
        match event {
            L2Event::InterfacesChosen(status) => {
                let names: Vec<String> = status.interfaces.iter().map(|i| i.name.clone()).collect();
                if names.is_empty() {
                    tracing::warn!(
                        "{} is owned by this node but no interface can announce it: no interface has a subnet holding it and there is no default route{}",
                        status.ip,
                        if status.listed.is_empty() {
                            String::new()
                        } else {
                            format!(" (listed: {})", status.listed.join(", "))
                        }
                    );
                } else {
                    tracing::info!("announcing {} on {}", status.ip, names.join(", "));
                }
                self.interfaces.insert(status.ip, names);
                true
            }
            L2Event::Announcer { event, interface } => match event {
                Event::Gratuitous { ip, .. } => {
                    *self.gratuitous.entry(ip).or_default() += 1;
                    false
                }
                Event::ConflictDetected {
                    ip,
                    other_mac,
                    kind,
                    ..
                } => {
                    tracing::warn!(
                        "another host ({other_mac}) claims {ip} on {}: {}; check for a duplicate address or kube-proxy in IPVS mode without strictARP",
                        interface.name,
                        kind_name(kind)
                    );
                    self.conflicts.push(Conflict {
                        ip,
                        interface: interface.name.clone(),
                        other_mac: other_mac.to_string(),
                        kind: kind_name(kind),
                    });
                    if self.conflicts.len() > MAX_CONFLICTS {
                        self.conflicts.remove(0);
                    }
                    true
                }
                _ => false,
            },
            L2Event::LinkChanged { interface, up } => {
                tracing::info!(
                    "interface {} is {}",
                    interface.name,
                    if up { "up" } else { "down" }
                );
                false
            }
            L2Event::Error { interface, message } => {
                tracing::warn!(
                    "layer 2 on {}: {message}",
                    interface.as_deref().unwrap_or("-")
                );
                false
            }
            L2Event::Released { .. } => false,
        }
    }

    /// Stops answering for everything.
    pub async fn shutdown(&mut self) {
        if let Some(runner) = self.runner.take() {
            let _ = runner.handle.shutdown().await;
        }
        self.current.clear();
    }
}
