//! Our OPEN, checks of the peer's OPEN (RFC 4271 §6.2, RFC 6793, RFC 6286)
//! and what the two OPENs negotiate; connection collision resolution
//! (RFC 4271 §6.8).

use std::net::Ipv4Addr;

use crate::message::CodecContext;
use crate::message::capability::{
    Capability, ExtendedNextHop, GracefulRestart, GracefulRestartFamily,
};
use crate::message::notification::Notification;
use crate::message::open::Open;
use crate::prefix::AddressFamily;
use crate::session::config::SessionConfig;
use crate::session::timers::keepalive_interval;

/// The peer's graceful restart capability.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerGracefulRestart {
    /// Seconds we keep its routes while it restarts.
    pub restart_time: u16,
    /// R bit: the peer has just restarted.
    pub restarting: bool,
    /// Families it preserves forwarding state for, with the F bit.
    pub families: Vec<GracefulRestartFamily>,
}

impl PeerGracefulRestart {
    /// Whether the peer preserved forwarding state for `family` (F bit).
    pub fn preserved(&self, family: AddressFamily) -> bool {
        self.families
            .iter()
            .any(|f| f.family == family && f.forwarding_preserved)
    }

    /// Whether `family` is listed at all.
    pub fn covers(&self, family: AddressFamily) -> bool {
        self.families.iter().any(|f| f.family == family)
    }
}

/// What both OPENs agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Negotiated {
    /// The peer's AS (from the four-octet AS capability when present).
    pub peer_asn: u32,
    /// The peer's BGP identifier.
    pub peer_router_id: Ipv4Addr,
    /// Hold time in seconds, the smaller of both proposals; 0: no hold timer
    /// and no keepalives.
    pub hold_time: u16,
    /// Keepalive interval in seconds (0 with hold time 0).
    pub keepalive_time: u16,
    /// Both sides in the same AS.
    pub internal: bool,
    /// Both sides announced four-octet AS numbers.
    pub four_octet_as: bool,
    /// Families both sides announced (IPv4 unicast when a side announced
    /// none, RFC 4760 §8).
    pub families: Vec<AddressFamily>,
    /// Both sides announced route refresh.
    pub route_refresh: bool,
    /// Both sides announced enhanced route refresh.
    pub enhanced_route_refresh: bool,
    /// Both sides announced extended messages.
    pub extended_message: bool,
    /// Both sides accept IPv4 unicast NLRI with an IPv6 next hop.
    pub extended_next_hop: bool,
    /// The peer's graceful restart capability, when both sides announced
    /// graceful restart.
    pub graceful_restart: Option<PeerGracefulRestart>,
    /// The peer's host name capability.
    pub peer_hostname: Option<String>,
    /// Codec settings for the session.
    pub codec: CodecContext,
}

/// Builds our OPEN from the configuration.
pub fn local_open(cfg: &SessionConfig) -> Open {
    let mut caps: Vec<Capability> = cfg
        .families
        .iter()
        .map(|f| Capability::Multiprotocol(*f))
        .collect();
    if cfg.route_refresh {
        caps.push(Capability::RouteRefresh);
    }
    if cfg.enhanced_route_refresh {
        caps.push(Capability::EnhancedRouteRefresh);
    }
    if cfg.extended_message {
        caps.push(Capability::ExtendedMessage);
    }
    if cfg.extended_next_hop && cfg.families.contains(&AddressFamily::IPV4_UNICAST) {
        caps.push(Capability::ExtendedNextHop(vec![
            ExtendedNextHop::IPV4_UNICAST_OVER_IPV6,
        ]));
    }
    if let Some(gr) = &cfg.graceful_restart {
        caps.push(Capability::GracefulRestart(GracefulRestart {
            restart_state: gr.restarting,
            notification: false,
            restart_time: gr.restart_time,
            families: cfg
                .families
                .iter()
                .map(|&family| GracefulRestartFamily {
                    family,
                    forwarding_preserved: gr.forwarding_preserved,
                })
                .collect(),
        }));
    }
    caps.push(Capability::FourOctetAs(cfg.local_asn));
    if let Some(hostname) = &cfg.hostname {
        caps.push(Capability::Fqdn {
            hostname: hostname.clone(),
            domain: String::new(),
        });
    }
    Open::new(cfg.local_asn, cfg.hold_time, cfg.router_id, caps)
}

/// Checks the peer's OPEN against the configuration and our OPEN, and
/// returns what was negotiated or the NOTIFICATION to send. Version,
/// identifier 0, AS 0 and hold times 1–2 were already refused by the codec.
pub fn negotiate(
    cfg: &SessionConfig,
    local: &Open,
    remote: &Open,
) -> Result<Negotiated, Notification> {
    // RFC 6793 §4.1: the four-octet AS capability carries the real AS;
    // My AS is then AS_TRANS or the same AS, and is not checked further.
    let peer_asn = remote.asn();
    if !cfg.peer_as.accepts(peer_asn, cfg.local_asn) {
        return Err(Notification::bad_peer_as());
    }
    let internal = peer_asn == cfg.local_asn;
    // RFC 6286 §2.2: identifiers are unique within an AS.
    if internal && remote.bgp_identifier == cfg.router_id {
        return Err(Notification::bad_bgp_identifier());
    }
    // Hold times 1 and 2 never reach here (codec); still guard.
    if matches!(remote.hold_time, 1 | 2) {
        return Err(Notification::unacceptable_hold_time());
    }
    let hold_time = local.hold_time.min(remote.hold_time);
    let keepalive_time = keepalive_interval(hold_time, cfg.keepalive_time);

    let families_of = |open: &Open| {
        let fams: Vec<AddressFamily> = open.multiprotocol_families().collect();
        if fams.is_empty() {
            vec![AddressFamily::IPV4_UNICAST]
        } else {
            fams
        }
    };
    let theirs = families_of(remote);
    let mut families: Vec<AddressFamily> = families_of(local)
        .into_iter()
        .filter(|f| theirs.contains(f))
        .collect();
    families.dedup();

    let has = |open: &Open, code| open.has_capability(code);
    use crate::message::capability::code;
    let both = |c| has(local, c) && has(remote, c);
    let enh = |open: &Open| {
        open.capabilities.iter().any(|c| {
            matches!(c, Capability::ExtendedNextHop(e)
                if e.contains(&ExtendedNextHop::IPV4_UNICAST_OVER_IPV6))
        })
    };
    let graceful_restart = if has(local, code::GRACEFUL_RESTART) {
        remote.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(PeerGracefulRestart {
                restart_time: gr.restart_time,
                restarting: gr.restart_state,
                families: gr.families.clone(),
            }),
            _ => None,
        })
    } else {
        None
    };
    let peer_hostname = remote.capabilities.iter().find_map(|c| match c {
        Capability::Fqdn { hostname, .. } => Some(hostname.clone()),
        _ => None,
    });
    let codec = CodecContext::negotiated(local, remote);
    Ok(Negotiated {
        peer_asn,
        peer_router_id: remote.bgp_identifier,
        hold_time,
        keepalive_time,
        internal,
        four_octet_as: codec.four_octet_as,
        families,
        route_refresh: both(code::ROUTE_REFRESH),
        enhanced_route_refresh: both(code::ENHANCED_ROUTE_REFRESH),
        extended_message: both(code::EXTENDED_MESSAGE),
        extended_next_hop: enh(local) && enh(remote),
        graceful_restart,
        peer_hostname,
        codec,
    })
}

/// Which of two connections to the same peer survives a collision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// The connection we initiated.
    Outbound,
    /// The connection the peer initiated.
    Inbound,
}

/// RFC 4271 §6.8: the speaker with the higher BGP identifier keeps the
/// connection it initiated. With equal identifiers (possible between ASes,
/// RFC 6286 §2.3) the speaker with the larger AS number does.
pub fn resolve_collision(
    local_id: Ipv4Addr,
    remote_id: Ipv4Addr,
    local_asn: u32,
    remote_asn: u32,
) -> Keep {
    let local = u32::from(local_id);
    let remote = u32::from(remote_id);
    let local_wins = if local == remote {
        local_asn > remote_asn
    } else {
        local > remote
    };
    if local_wins {
        Keep::Outbound
    } else {
        Keep::Inbound
    }
}
