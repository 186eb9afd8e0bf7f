//! Configuration of one BGP session.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use crate::prefix::AddressFamily;

/// Which AS the peer must be in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerAs {
    /// Exactly this AS.
    Fixed(u32),
    /// Any AS equal to ours (dynamic internal peer).
    Internal,
    /// Any AS other than ours (dynamic external peer).
    External,
}

impl PeerAs {
    /// Whether `asn` satisfies this requirement, given our own AS.
    pub fn accepts(self, asn: u32, local_asn: u32) -> bool {
        match self {
            PeerAs::Fixed(expected) => asn == expected,
            PeerAs::Internal => asn == local_asn,
            PeerAs::External => asn != local_asn,
        }
    }
}

/// What to do when the peer announces more prefixes than
/// [`SessionConfig::max_received_prefixes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MaxPrefixAction {
    /// Keep the session; stop storing prefixes (they are still counted) and
    /// report a warning once.
    #[default]
    CountOnly,
    /// Send Cease / Maximum Number of Prefixes Reached (RFC 4486) and close.
    Cease,
}

/// Our side of graceful restart (RFC 4724).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart time advertised, in seconds (at most 4095).
    pub restart_time: u16,
    /// Set the R bit: we have just restarted (the I/O layer knows).
    pub restarting: bool,
    /// Set the F bit for every family: forwarding state was preserved.
    pub forwarding_preserved: bool,
    /// How long routes of a restarted peer stay stale after the session is
    /// back, waiting for its End-of-RIB.
    pub stale_routes_time: Duration,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            restart_time: 120,
            restarting: false,
            forwarding_preserved: false,
            stale_routes_time: Duration::from_secs(360),
        }
    }
}

/// Everything a [`Session`](super::Session) needs to know about its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our AS.
    pub local_asn: u32,
    /// Our BGP identifier (non-zero).
    pub router_id: Ipv4Addr,
    /// The AS the peer must be in.
    pub peer_as: PeerAs,
    /// Hold time we propose, seconds: 0 (no keepalives) or at least 3.
    pub hold_time: u16,
    /// Keepalive interval, seconds; `None` for a third of the negotiated
    /// hold time. Never more than a third of the negotiated hold time.
    pub keepalive_time: Option<u16>,
    /// Never initiate connections; wait for the peer.
    pub passive: bool,
    /// First ConnectRetry interval; doubled after each failure.
    pub connect_retry_initial: Duration,
    /// Largest ConnectRetry interval (the configured connect time).
    pub connect_retry_max: Duration,
    /// Seed of the deterministic jitter applied to ConnectRetry intervals.
    pub jitter_seed: u64,
    /// Wait this long after the TCP connection is up before sending OPEN
    /// (RFC 4271 DelayOpen); an OPEN from the peer ends the wait.
    pub delay_open: Option<Duration>,
    /// Hold time used while waiting for the peer's OPEN (RFC 4271 suggests
    /// four minutes).
    pub open_hold_time: Duration,
    /// Families to negotiate (multiprotocol capability).
    pub families: Vec<AddressFamily>,
    /// Advertise route refresh (RFC 2918).
    pub route_refresh: bool,
    /// Advertise enhanced route refresh (RFC 7313).
    pub enhanced_route_refresh: bool,
    /// Advertise extended messages (RFC 8654).
    pub extended_message: bool,
    /// Advertise IPv4 NLRI with IPv6 next hops (RFC 8950).
    pub extended_next_hop: bool,
    /// Graceful restart; `None` to neither advertise it nor help the peer.
    pub graceful_restart: Option<GracefulRestartConfig>,
    /// Host name capability; `None` to not send it.
    pub hostname: Option<String>,
    /// IPv4 next hop of announced routes; default: the local address of an
    /// IPv4 connection.
    pub next_hop_v4: Option<Ipv4Addr>,
    /// IPv6 next hop of announced routes; default: the local address of an
    /// IPv6 connection, or the IPv4-mapped local address of an IPv4 one.
    pub next_hop_v6: Option<Ipv6Addr>,
    /// Most received prefixes stored (all families together).
    pub max_received_prefixes: usize,
    /// What happens past `max_received_prefixes`.
    pub max_prefix_action: MaxPrefixAction,
    /// Collect announce/withdraw changes for this long before sending
    /// UPDATEs (zero: at the next poll).
    pub update_delay: Duration,
}

impl SessionConfig {
    /// A configuration with the usual defaults: hold time 90 s, ConnectRetry
    /// 1 s doubling to 30 s (a peer that comes back after a long outage is
    /// tried again within 30 s, not the 120 s of RFC 4271's suggested
    /// ConnectRetryTime), IPv4 and IPv6 unicast, route refresh, enhanced
    /// route refresh, extended next hop and graceful restart advertised,
    /// 100 000 stored prefixes at most.
    pub fn new(local_asn: u32, router_id: Ipv4Addr, peer_as: PeerAs) -> Self {
        SessionConfig {
            local_asn,
            router_id,
            peer_as,
            hold_time: 90,
            keepalive_time: None,
            passive: false,
            connect_retry_initial: Duration::from_secs(1),
            connect_retry_max: Duration::from_secs(30),
            jitter_seed: 0,
            delay_open: None,
            open_hold_time: Duration::from_secs(240),
            families: vec![AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST],
            route_refresh: true,
            enhanced_route_refresh: true,
            extended_message: false,
            extended_next_hop: true,
            graceful_restart: Some(GracefulRestartConfig::default()),
            hostname: None,
            next_hop_v4: None,
            next_hop_v6: None,
            max_received_prefixes: 100_000,
            max_prefix_action: MaxPrefixAction::CountOnly,
            update_delay: Duration::ZERO,
        }
    }

    /// Checks the values the protocol constrains.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.local_asn == 0 {
            return Err(ConfigError::InvalidAsn);
        }
        if self.peer_as == PeerAs::Fixed(0) {
            return Err(ConfigError::InvalidAsn);
        }
        if self.router_id.is_unspecified() {
            return Err(ConfigError::ZeroRouterId);
        }
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if self.keepalive_time == Some(0) && self.hold_time != 0 {
            return Err(ConfigError::KeepaliveTime);
        }
        if self.connect_retry_initial.is_zero()
            || self.connect_retry_max < self.connect_retry_initial
        {
            return Err(ConfigError::ConnectRetry);
        }
        if let Some(gr) = &self.graceful_restart
            && gr.restart_time > crate::GracefulRestart::MAX_RESTART_TIME
        {
            return Err(ConfigError::RestartTime(gr.restart_time));
        }
        if let Some(name) = &self.hostname
            && name.len() > usize::from(u8::MAX)
        {
            return Err(ConfigError::Hostname);
        }
        Ok(())
    }
}

/// A configuration the protocol cannot honour.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// AS 0 is reserved (RFC 7607).
    #[error("AS 0 is not a valid AS")]
    InvalidAsn,
    /// The BGP identifier must be non-zero.
    #[error("the router id must not be 0.0.0.0")]
    ZeroRouterId,
    /// Hold time 1 and 2 are forbidden (RFC 4271 §4.2).
    #[error("hold time {0} s is not allowed: use 0 or at least 3")]
    HoldTime(u16),
    /// Keepalive 0 with a non-zero hold time.
    #[error("keepalive time 0 needs hold time 0")]
    KeepaliveTime,
    /// ConnectRetry bounds are zero or inverted.
    #[error("connect retry interval must be non-zero and below its maximum")]
    ConnectRetry,
    /// Restart time does not fit 12 bits.
    #[error("graceful restart time {0} exceeds 4095 s")]
    RestartTime(u16),
    /// Host name longer than 255 octets.
    #[error("host name exceeds 255 octets")]
    Hostname,
}
