//! Counters per interface and per owned address, for metrics.
//!
//! Every frame handed to [`Announcer::handle_frame`](crate::Announcer::handle_frame)
//! for a known interface adds one to `frames_seen` and to exactly one of
//! the outcome counters of [`InterfaceCounters`] (`malformed`,
//! `link_down`, `wrong_vlan`, `own_frames`, `not_for_us`, `not_owned`,
//! `handled`, `ignored`). Counters live as long as what they count: an
//! address's counters go when the address is released, an interface's
//! when it is removed.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Per-interface frame counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Frames handed in for this interface.
    pub frames_seen: u64,
    /// Frames refused by the parser (short, wrong lengths, bad fields,
    /// bad checksum, bad hop limit); never answered.
    pub malformed: u64,
    /// Of `malformed`: NDP messages with a wrong ICMPv6 checksum.
    pub bad_checksum: u64,
    /// Of `malformed`: NDP messages whose hop limit was not 255.
    pub bad_hop_limit: u64,
    /// Frames that arrived while the interface was down.
    pub link_down: u64,
    /// Frames without this interface's VLAN tag (only for interfaces
    /// configured with a VLAN id).
    pub wrong_vlan: u64,
    /// Frames sent by us (source or sender MAC is one of our interfaces').
    pub own_frames: u64,
    /// Frames unicast to another host's MAC.
    pub not_for_us: u64,
    /// ARP requests and Neighbor Solicitations for addresses not owned on
    /// this interface.
    pub not_owned: u64,
    /// Frames that were answered or reported as a conflict.
    pub handled: u64,
    /// Anything else: other EtherTypes and protocols, replies and
    /// advertisements that concern no owned address.
    pub ignored: u64,
}

/// Per-address counters, on one interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpCounters {
    /// ARP requests (probes included) and Neighbor Solicitations (DAD
    /// probes excluded) for the address.
    pub requests_seen: u64,
    /// ARP replies and solicited Neighbor Advertisements sent.
    pub replies_sent: u64,
    /// Gratuitous frames sent: two per round for IPv4 (request and reply
    /// forms), one unsolicited NA per round for IPv6.
    pub gratuitous_sent: u64,
    /// Conflicts detected (see [`ConflictKind`](crate::ConflictKind)).
    pub conflicts: u64,
}

/// One interface's counters, with those of its owned addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCountersSnapshot {
    /// The interface's name.
    pub name: String,
    /// Its frame counters.
    pub counters: InterfaceCounters,
    /// Its owned addresses' counters.
    pub ips: BTreeMap<IpAddr, IpCounters>,
}

/// All counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Frames handed in for an interface index the announcer does not know.
    pub unknown_interface: u64,
    /// Per interface index.
    pub interfaces: BTreeMap<u32, InterfaceCountersSnapshot>,
}

impl CountersSnapshot {
    /// The frame counters of interface `ifindex`.
    pub fn interface(&self, ifindex: u32) -> Option<&InterfaceCounters> {
        self.interfaces.get(&ifindex).map(|i| &i.counters)
    }

    /// The counters of `ip` on interface `ifindex`.
    pub fn ip(&self, ifindex: u32, ip: IpAddr) -> Option<&IpCounters> {
        self.interfaces.get(&ifindex)?.ips.get(&ip)
    }
}
