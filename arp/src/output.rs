//! What the announcer asks the I/O layer to do, and what it reports.

use std::net::{IpAddr, Ipv6Addr};

use crate::mac::MacAddr;

/// One thing for the I/O layer to do or to report, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Transmit `frame` (a whole Ethernet frame, tag included when there
    /// is one, no FCS) on interface `ifindex`.
    Send {
        /// Interface index.
        ifindex: u32,
        /// The frame's bytes.
        frame: Vec<u8>,
    },
    /// Start receiving frames sent to the Ethernet multicast address `mac`
    /// (the solicited-node group `group`) on `ifindex`.
    JoinGroup {
        /// Interface index.
        ifindex: u32,
        /// The solicited-node multicast address `ff02::1:ffXX:XXXX`.
        group: Ipv6Addr,
        /// Its Ethernet address `33:33:ff:XX:XX:XX`.
        mac: MacAddr,
    },
    /// Stop receiving frames for `mac` on `ifindex`: no owned address
    /// needs the group any more.
    LeaveGroup {
        /// Interface index.
        ifindex: u32,
        /// The solicited-node multicast address.
        group: Ipv6Addr,
        /// Its Ethernet address.
        mac: MacAddr,
    },
    /// Something worth logging or showing (probe tool, metrics, events).
    Event(Event),
}

/// What happened, for logs, the probe tool and Kubernetes events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// An ARP request or Neighbor Solicitation for `ip` was answered.
    Answered {
        /// The owned address asked for.
        ip: IpAddr,
        /// Who asked (0.0.0.0 for an RFC 5227 probe).
        asker_ip: IpAddr,
        /// The asker's link-layer address (where the answer went).
        asker_mac: MacAddr,
        /// Interface the question arrived on and the answer left from.
        ifindex: u32,
    },
    /// One round of gratuitous ARP (both forms) or unsolicited NA was sent.
    Gratuitous {
        /// The announced address.
        ip: IpAddr,
        /// Interface it was announced on.
        ifindex: u32,
    },
    /// Another host uses, claims or wants an owned address.
    ConflictDetected {
        /// The owned address.
        ip: IpAddr,
        /// Interface the evidence arrived on.
        ifindex: u32,
        /// The other host's link-layer address.
        other_mac: MacAddr,
        /// What the evidence was.
        kind: ConflictKind,
    },
}

/// The evidence behind [`Event::ConflictDetected`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConflictKind {
    /// An RFC 5227 ARP probe (sender IP 0.0.0.0) for the address: another
    /// host wants it. The probe was answered, which defends the address.
    ArpProbe,
    /// An ARP packet (request, reply or announcement) whose sender IP is
    /// the address, from a MAC that is not ours: another host uses it.
    ArpSender,
    /// A Duplicate Address Detection solicitation (source `::`) for the
    /// address: another host wants it. It was not answered.
    DadProbe,
    /// A Neighbor Advertisement for the address from a MAC that is not
    /// ours: another host claims it.
    NeighborAdvertisement,
}
