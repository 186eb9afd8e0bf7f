//! The announcer: a sans-IO state machine that answers ARP and NDP for
//! owned addresses and announces them when ownership is gained.
//!
//! # Driving it
//!
//! The I/O layer
//! - describes interfaces with [`Announcer::set_interface`] (and
//!   [`set_link`](Announcer::set_link), [`set_mac`](Announcer::set_mac),
//!   [`remove_interface`](Announcer::remove_interface));
//! - tells it which addresses this node owns on which interface with
//!   [`add_ip`](Announcer::add_ip) and [`remove_ip`](Announcer::remove_ip);
//! - hands it every received ARP and IPv6 frame with
//!   [`handle_frame`](Announcer::handle_frame) and carries out the outputs;
//! - calls [`poll`](Announcer::poll) at [`next_deadline`](Announcer::next_deadline)
//!   (and after any ownership change) to get due gratuitous frames.
//!
//! All changes apply at once. Time is an input ([`Instant`]); the
//! announcer never reads a clock.
//!
//! # Decisions
//!
//! - **Answering.** An ARP request (opcode 1) whose target IP is owned on
//!   the interface it arrived on gets a reply from that interface's MAC,
//!   unicast to the sender hardware address. A Neighbor Solicitation
//!   (validated per RFC 4861 §7.1.1) whose target is owned gets a
//!   solicited advertisement (S and O set, target link-layer option) from
//!   the target address to the solicitation's source, sent to its source
//!   link-layer address option or, without one, to the frame's source MAC.
//!   Nothing is answered for other addresses or on other interfaces.
//! - **ARP probes** (RFC 5227, sender IP 0.0.0.0) for an owned address
//!   are answered like any request: the reply is what makes the prober
//!   see the address in use (RFC 5227 §2.1.1), so answering defends it.
//!   They are also reported as [`ConflictKind::ArpProbe`].
//! - **ARP packets whose sender IP is owned** but whose sender MAC is not
//!   ours (including someone else's gratuitous ARP, where sender IP =
//!   target IP) are reported as [`ConflictKind::ArpSender`] and never
//!   answered. The announcer does not defend by itself: the speaker
//!   decides, and can call [`resend`](Announcer::resend).
//! - **DAD probes** (NS from `::`) for an owned address are not answered
//!   (RFC 4861 §7.2.4 would have a host defend with a multicast NA; here
//!   the address belongs to the cluster, and the speaker decides) and are
//!   reported as [`ConflictKind::DadProbe`]. Advertisements of an owned
//!   address from another MAC are reported as
//!   [`ConflictKind::NeighborAdvertisement`].
//! - **Own frames**, whose Ethernet source, ARP sender or NDP link-layer
//!   option is the MAC of any known interface, are ignored, so two of our
//!   interfaces on one segment never answer or flag each other.
//! - Frames unicast to another MAC are ignored.
//! - **VLANs.** An interface configured with a VLAN id only accepts frames
//!   tagged with that id, and tags everything it sends with it. On an
//!   interface without one, untagged and tagged frames are accepted; an
//!   answer carries the request's tag (same VID and priority).
//! - **Gratuitous announcements.** When an address is gained (or its
//!   interface comes up, or changes MAC or VLAN, or
//!   [`resend`](Announcer::resend) is called), a burst starts: one round at
//!   each offset of the schedule ([`AnnouncerConfig`]). A round is both
//!   gratuitous ARP forms for IPv4 (request then reply, broadcast) or one
//!   unsolicited NA to `ff02::1` for IPv6. A `poll` that comes late sends
//!   one round and skips the rounds whose time has also passed.
//! - **Multicast groups.** For each owned IPv6 address the interface must
//!   receive its solicited-node group; `JoinGroup` is emitted when the
//!   first owned address of a group is added on an interface and
//!   `LeaveGroup` when the last is removed (or the interface is removed).
//!   Membership follows ownership, not link state.
//! - An interface that is down keeps its addresses but answers nothing
//!   and sends nothing; its bursts are cancelled and start again when it
//!   comes up.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

use crate::counters::{CountersSnapshot, InterfaceCounters, InterfaceCountersSnapshot, IpCounters};
use crate::frame::arp::{self as arp_frame, ArpPacket, OP_REQUEST};
use crate::frame::ethernet::{EthernetHeader, MAX_VLAN_ID, VlanTag};
use crate::frame::ipv6::Ipv6Header;
use crate::frame::ndp::{self, NdpMessage};
use crate::frame::{self, Packet, ParseError};
use crate::mac::MacAddr;
use crate::output::{ConflictKind, Event, Output};
use crate::time::Instant;

/// An interface as the I/O layer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Interface index (the kernel's ifindex).
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its MAC address (unicast).
    pub mac: MacAddr,
    /// The 802.1Q VLAN id its frames carry, when the I/O layer sends and
    /// receives tagged frames on a parent for it (1..=4094).
    pub vlan: Option<u16>,
    /// Whether the link is up.
    pub up: bool,
}

/// Tunables of the announcer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Offsets from the start of a burst at which gratuitous ARP rounds
    /// are sent. Default: 0, 0.5 s, 1 s, 2 s — more, and sooner, than
    /// RFC 5227's two announcements 2 s apart, because a failover must
    /// update caches fast and a lost frame must not matter.
    pub arp_schedule: Vec<Duration>,
    /// Offsets at which unsolicited Neighbor Advertisements are sent.
    /// Default: 0, 1 s, 2 s — RFC 4861 §7.2.6 allows up to 3, at least
    /// RetransTimer (1 s) apart.
    pub ndp_schedule: Vec<Duration>,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            arp_schedule: vec![
                Duration::ZERO,
                Duration::from_millis(500),
                Duration::from_secs(1),
                Duration::from_secs(2),
            ],
            ndp_schedule: vec![
                Duration::ZERO,
                Duration::from_secs(1),
                Duration::from_secs(2),
            ],
        }
    }
}

/// Refused ownership or interface changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncerError {
    /// No interface with this index was set.
    #[error("unknown interface index {0}")]
    UnknownInterface(u32),
    /// The interface's MAC is multicast or zero.
    #[error("interface MAC {0} is not a unicast address")]
    InvalidMac(MacAddr),
    /// A VLAN id outside 1..=4094.
    #[error("VLAN id {0} is outside 1..=4094")]
    InvalidVlanId(u16),
    /// The address cannot be owned: unspecified, multicast, broadcast or
    /// loopback.
    #[error("{0} is not a unicast address that can be announced")]
    NotAnnounceable(IpAddr),
}

/// A solicited-node multicast group an interface must receive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SolicitedNodeGroup {
    /// `ff02::1:ffXX:XXXX`.
    pub group: Ipv6Addr,
    /// `33:33:ff:XX:XX:XX`.
    pub mac: MacAddr,
    /// How many owned addresses on the interface share it.
    pub users: usize,
}

type TimerKey = (Instant, u64);

#[derive(Clone, Copy, Debug)]
struct Burst {
    start: Instant,
    round: usize,
    timer: TimerKey,
}

#[derive(Clone, Debug, Default)]
struct OwnedIp {
    counters: IpCounters,
    burst: Option<Burst>,
}

#[derive(Clone, Debug)]
struct InterfaceState {
    info: Interface,
    ips: HashMap<IpAddr, OwnedIp>,
    groups: HashMap<Ipv6Addr, usize>,
    counters: InterfaceCounters,
}

impl InterfaceState {
    fn tag(&self) -> Option<VlanTag> {
        self.info.vlan.map(VlanTag::new)
    }
}

/// The sans-IO ARP/NDP announcer. See the [module documentation](self).
#[derive(Clone, Debug, Default)]
pub struct Announcer {
    config: AnnouncerConfig,
    interfaces: HashMap<u32, InterfaceState>,
    /// MACs of known interfaces, with how many interfaces have each.
    own_macs: HashMap<MacAddr, usize>,
    /// Pending burst rounds, in due order; ties in insertion order.
    timers: BTreeMap<TimerKey, (u32, IpAddr)>,
    next_timer_seq: u64,
    unknown_interface: u64,
}

pub(crate) fn check_announceable(ip: IpAddr) -> Result<(), AnnouncerError> {
    let ok = match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified() || v4.is_multicast() || v4.is_broadcast() || v4.is_loopback())
        }
        IpAddr::V6(v6) => !(v6.is_unspecified() || v6.is_multicast() || v6.is_loopback()),
    };
    if ok {
        Ok(())
    } else {
        Err(AnnouncerError::NotAnnounceable(ip))
    }
}

fn check_interface(iface: &Interface) -> Result<(), AnnouncerError> {
    if !iface.mac.is_unicast() {
        return Err(AnnouncerError::InvalidMac(iface.mac));
    }
    match iface.vlan {
        Some(vid) if vid == 0 || vid > MAX_VLAN_ID => Err(AnnouncerError::InvalidVlanId(vid)),
        _ => Ok(()),
    }
}

impl Announcer {
    /// An announcer with no interfaces, using `config`. Schedules are
    /// sorted; an empty schedule means no gratuitous announcements.
    pub fn new(mut config: AnnouncerConfig) -> Self {
        config.arp_schedule.sort_unstable();
        config.ndp_schedule.sort_unstable();
        Announcer {
            config,
            ..Announcer::default()
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AnnouncerConfig {
        &self.config
    }

    // ----- interfaces -------------------------------------------------

    /// Adds an interface or replaces what is known of it. Its owned
    /// addresses are kept. Bursts start again for all of them when the
    /// interface comes up or, while up, changes MAC or VLAN; they stop when
    /// it goes down.
    pub fn set_interface(&mut self, iface: Interface, now: Instant) -> Result<(), AnnouncerError> {
        check_interface(&iface)?;
        let index = iface.index;
        *self.own_macs.entry(iface.mac).or_insert(0) += 1;
        let (restart, stop) = match self.interfaces.get_mut(&index) {
            Some(state) => {
                let old = std::mem::replace(&mut state.info, iface);
                let new = &state.info;
                release_mac(&mut self.own_macs, old.mac);
                let restart = new.up && (!old.up || old.mac != new.mac || old.vlan != new.vlan);
                (restart, !new.up && old.up)
            }
            None => {
                self.interfaces.insert(
                    index,
                    InterfaceState {
                        info: iface,
                        ips: HashMap::new(),
                        groups: HashMap::new(),
                        counters: InterfaceCounters::default(),
                    },
                );
                (false, false)
            }
        };
        if restart || stop {
            let ips: Vec<IpAddr> = self.interfaces[&index].ips.keys().copied().collect();
            for ip in ips {
                if restart {
                    self.start_burst(index, ip, now);
                } else {
                    self.cancel_burst(index, ip);
                }
            }
        }
        Ok(())
    }

    /// Marks interface `ifindex` up or down (see [`set_interface`](Self::set_interface)).
    pub fn set_link(&mut self, ifindex: u32, up: bool, now: Instant) -> Result<(), AnnouncerError> {
        let mut info = self
            .interface(ifindex)
            .ok_or(AnnouncerError::UnknownInterface(ifindex))?
            .clone();
        info.up = up;
        self.set_interface(info, now)
    }

    /// Changes the MAC of interface `ifindex` (see [`set_interface`](Self::set_interface)).
    pub fn set_mac(
        &mut self,
        ifindex: u32,
        mac: MacAddr,
        now: Instant,
    ) -> Result<(), AnnouncerError> {
        let mut info = self
            .interface(ifindex)
            .ok_or(AnnouncerError::UnknownInterface(ifindex))?
            .clone();
        info.mac = mac;
        self.set_interface(info, now)
    }

    /// Forgets interface `ifindex` and everything owned on it; returns a
    /// `LeaveGroup` for each of its groups. Unknown interfaces are a no-op.
    pub fn remove_interface(&mut self, ifindex: u32) -> Vec<Output> {
        let Some(state) = self.interfaces.remove(&ifindex) else {
            return Vec::new();
        };
        release_mac(&mut self.own_macs, state.info.mac);
        for owned in state.ips.values() {
            if let Some(burst) = owned.burst {
                self.timers.remove(&burst.timer);
            }
        }
        let mut groups: Vec<Ipv6Addr> = state.groups.into_keys().collect();
        groups.sort_unstable();
        groups
            .into_iter()
            .map(|group| Output::LeaveGroup {
                ifindex,
                group,
                mac: MacAddr::ipv6_multicast(group),
            })
            .collect()
    }

    /// What is known of interface `ifindex`.
    pub fn interface(&self, ifindex: u32) -> Option<&Interface> {
        self.interfaces.get(&ifindex).map(|s| &s.info)
    }

    // ----- ownership --------------------------------------------------

    /// Takes ownership of `ip` on interface `ifindex`: from now on it is
    /// answered for there, and a gratuitous burst starts (first round due
    /// at `now`, returned by the next [`poll`](Self::poll)). Returns a
    /// `JoinGroup` when an IPv6 address needs a group the interface did not
    /// have. Adding an address already owned there changes nothing (use
    /// [`resend`](Self::resend) to announce again).
    pub fn add_ip(
        &mut self,
        ifindex: u32,
        ip: IpAddr,
        now: Instant,
    ) -> Result<Vec<Output>, AnnouncerError> {
        check_announceable(ip)?;
        let state = self
            .interfaces
            .get_mut(&ifindex)
            .ok_or(AnnouncerError::UnknownInterface(ifindex))?;
        if state.ips.contains_key(&ip) {
            return Ok(Vec::new());
        }
        state.ips.insert(ip, OwnedIp::default());
        let mut out = Vec::new();
        if let IpAddr::V6(v6) = ip {
            let group = ndp::solicited_node(v6);
            let users = state.groups.entry(group).or_insert(0);
            *users += 1;
            if *users == 1 {
                out.push(Output::JoinGroup {
                    ifindex,
                    group,
                    mac: MacAddr::ipv6_multicast(group),
                });
            }
        }
        self.start_burst(ifindex, ip, now);
        Ok(out)
    }

    /// Releases `ip` on interface `ifindex`: it is no longer answered for
    /// there and its pending announcements are dropped. Returns a
    /// `LeaveGroup` when it was the last user of its group. Releasing an
    /// address not owned there is a no-op.
    pub fn remove_ip(&mut self, ifindex: u32, ip: IpAddr) -> Result<Vec<Output>, AnnouncerError> {
        let state = self
            .interfaces
            .get_mut(&ifindex)
            .ok_or(AnnouncerError::UnknownInterface(ifindex))?;
        let Some(owned) = state.ips.remove(&ip) else {
            return Ok(Vec::new());
        };
        if let Some(burst) = owned.burst {
            self.timers.remove(&burst.timer);
        }
        let mut out = Vec::new();
        if let IpAddr::V6(v6) = ip {
            let group = ndp::solicited_node(v6);
            if let Some(users) = state.groups.get_mut(&group) {
                *users -= 1;
                if *users == 0 {
                    state.groups.remove(&group);
                    out.push(Output::LeaveGroup {
                        ifindex,
                        group,
                        mac: MacAddr::ipv6_multicast(group),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Restarts the gratuitous burst for `ip` on every up interface that
    /// owns it (the failover path). Returns how many interfaces that was.
    pub fn resend(&mut self, ip: IpAddr, now: Instant) -> usize {
        let mut indexes: Vec<u32> = self
            .interfaces
            .iter()
            .filter(|(_, s)| s.info.up && s.ips.contains_key(&ip))
            .map(|(&i, _)| i)
            .collect();
        indexes.sort_unstable();
        for &ifindex in &indexes {
            self.start_burst(ifindex, ip, now);
        }
        indexes.len()
    }

    /// True when `ip` is owned on interface `ifindex`.
    pub fn owns(&self, ifindex: u32, ip: IpAddr) -> bool {
        self.interfaces
            .get(&ifindex)
            .is_some_and(|s| s.ips.contains_key(&ip))
    }

    /// True when interface `ifindex` owns at least one address.
    pub fn owns_any(&self, ifindex: u32) -> bool {
        self.interfaces
            .get(&ifindex)
            .is_some_and(|s| !s.ips.is_empty())
    }

    /// The addresses owned on interface `ifindex`, sorted.
    pub fn owned_ips(&self, ifindex: u32) -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = self
            .interfaces
            .get(&ifindex)
            .map(|s| s.ips.keys().copied().collect())
            .unwrap_or_default();
        ips.sort_unstable();
        ips
    }

    /// The solicited-node groups interface `ifindex` must receive, sorted.
    pub fn groups(&self, ifindex: u32) -> Vec<SolicitedNodeGroup> {
        let mut groups: Vec<SolicitedNodeGroup> = self
            .interfaces
            .get(&ifindex)
            .map(|s| {
                s.groups
                    .iter()
                    .map(|(&group, &users)| SolicitedNodeGroup {
                        group,
                        mac: MacAddr::ipv6_multicast(group),
                        users,
                    })
                    .collect()
            })
            .unwrap_or_default();
        groups.sort_unstable();
        groups
    }

    // ----- time -------------------------------------------------------

    /// When [`poll`](Self::poll) next has something to send, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|&(due, _)| due)
    }

    /// Returns every gratuitous round due at `now`, each as its frames
    /// followed by an [`Event::Gratuitous`], in due order.
    pub fn poll(&mut self, now: Instant) -> Vec<Output> {
        let mut out = Vec::new();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (ifindex, ip) = entry.remove();
            let Some(state) = self.interfaces.get_mut(&ifindex) else {
                continue;
            };
            let (mac, tag) = (state.info.mac, state.tag());
            let Some(owned) = state.ips.get_mut(&ip) else {
                continue;
            };
            let Some(mut burst) = owned.burst.take() else {
                continue;
            };
            let frames: Vec<Vec<u8>> = match ip {
                IpAddr::V4(v4) => arp_frame::gratuitous_frames(mac, v4, tag).into(),
                IpAddr::V6(v6) => vec![ndp::unsolicited_advertisement_frame(v6, mac, tag)],
            };
            owned.counters.gratuitous_sent += frames.len() as u64;
            out.extend(
                frames
                    .into_iter()
                    .map(|frame| Output::Send { ifindex, frame }),
            );
            out.push(Output::Event(Event::Gratuitous { ip, ifindex }));

            let schedule = match ip {
                IpAddr::V4(_) => &self.config.arp_schedule,
                IpAddr::V6(_) => &self.config.ndp_schedule,
            };
            let next = (burst.round + 1..schedule.len()).find(|&r| burst.start + schedule[r] > now);
            if let Some(round) = next {
                let key = (burst.start + schedule[round], self.next_timer_seq);
                self.next_timer_seq += 1;
                self.timers.insert(key, (ifindex, ip));
                burst.round = round;
                burst.timer = key;
                owned.burst = Some(burst);
            }
        }
        out
    }

    fn cancel_burst(&mut self, ifindex: u32, ip: IpAddr) {
        if let Some(owned) = self
            .interfaces
            .get_mut(&ifindex)
            .and_then(|s| s.ips.get_mut(&ip))
            && let Some(burst) = owned.burst.take()
        {
            self.timers.remove(&burst.timer);
        }
    }

    fn start_burst(&mut self, ifindex: u32, ip: IpAddr, now: Instant) {
        self.cancel_burst(ifindex, ip);
        let schedule = match ip {
            IpAddr::V4(_) => &self.config.arp_schedule,
            IpAddr::V6(_) => &self.config.ndp_schedule,
        };
        let Some(&first) = schedule.first() else {
            return;
        };
        let Some(state) = self.interfaces.get_mut(&ifindex) else {
            return;
        };
        if !state.info.up {
            return;
        }
        let Some(owned) = state.ips.get_mut(&ip) else {
            return;
        };
        let key = (now + first, self.next_timer_seq);
        self.next_timer_seq += 1;
        self.timers.insert(key, (ifindex, ip));
        owned.burst = Some(Burst {
            start: now,
            round: 0,
            timer: key,
        });
    }

    // ----- frames -----------------------------------------------------

    /// Handles one frame received on interface `ifindex` and returns the
    /// answers to send and the events to report. Never panics; malformed
    /// frames are counted and dropped.
    pub fn handle_frame(&mut self, ifindex: u32, bytes: &[u8]) -> Vec<Output> {
        let mut out = Vec::new();
        let Some(state) = self.interfaces.get_mut(&ifindex) else {
            self.unknown_interface += 1;
            return out;
        };
        let counters = &mut state.counters;
        counters.frames_seen += 1;
        if !state.info.up {
            counters.link_down += 1;
            return out;
        }
        let frame = match frame::parse(bytes) {
            Ok(frame) => frame,
            Err(err) => {
                counters.malformed += 1;
                match err {
                    ParseError::BadChecksum => counters.bad_checksum += 1,
                    ParseError::BadHopLimit(_) => counters.bad_hop_limit += 1,
                    _ => {}
                }
                return out;
            }
        };
        let eth = frame.ethernet;
        if let Some(vid) = state.info.vlan
            && eth.vlan.map(|t| t.vid) != Some(vid)
        {
            counters.wrong_vlan += 1;
            return out;
        }
        if self.own_macs.contains_key(&eth.src) {
            counters.own_frames += 1;
            return out;
        }
        if !eth.dst.is_multicast() && eth.dst != state.info.mac {
            counters.not_for_us += 1;
            return out;
        }
        let outcome = match frame.packet {
            Packet::Arp(arp) => handle_arp(state, &self.own_macs, &eth, &arp, &mut out),
            Packet::Ndp { ip, message } => {
                handle_ndp(state, &self.own_macs, &eth, &ip, &message, &mut out)
            }
            Packet::Other => Outcome::Ignored,
        };
        let counters = &mut state.counters;
        match outcome {
            Outcome::Handled => counters.handled += 1,
            Outcome::NotOwned => counters.not_owned += 1,
            Outcome::OwnFrame => counters.own_frames += 1,
            Outcome::Ignored => counters.ignored += 1,
        }
        out
    }

    // ----- metrics ----------------------------------------------------

    /// A copy of every counter.
    pub fn counters(&self) -> CountersSnapshot {
        CountersSnapshot {
            unknown_interface: self.unknown_interface,
            interfaces: self
                .interfaces
                .iter()
                .map(|(&index, state)| {
                    let snapshot = InterfaceCountersSnapshot {
                        name: state.info.name.clone(),
                        counters: state.counters,
                        ips: state
                            .ips
                            .iter()
                            .map(|(&ip, owned)| (ip, owned.counters))
                            .collect(),
                    };
                    (index, snapshot)
                })
                .collect(),
        }
    }
}

fn release_mac(own_macs: &mut HashMap<MacAddr, usize>, mac: MacAddr) {
    if let Some(count) = own_macs.get_mut(&mac) {
        *count -= 1;
        if *count == 0 {
            own_macs.remove(&mac);
        }
    }
}

/// How a well-formed frame for us was dealt with.
enum Outcome {
    Handled,
    NotOwned,
    OwnFrame,
    Ignored,
}

fn conflict(
    out: &mut Vec<Output>,
    owned: &mut OwnedIp,
    ip: IpAddr,
    ifindex: u32,
    other_mac: MacAddr,
    kind: ConflictKind,
) {
    owned.counters.conflicts += 1;
    out.push(Output::Event(Event::ConflictDetected {
        ip,
        ifindex,
        other_mac,
        kind,
    }));
}

fn handle_arp(
    state: &mut InterfaceState,
    own_macs: &HashMap<MacAddr, usize>,
    eth: &EthernetHeader,
    arp: &ArpPacket,
    out: &mut Vec<Output>,
) -> Outcome {
    if own_macs.contains_key(&arp.sender_mac) {
        return Outcome::OwnFrame;
    }
    let ifindex = state.info.index;
    let our_mac = state.info.mac;
    let mut handled = false;
    let sender_ip = IpAddr::V4(arp.sender_ip);
    if !arp.sender_ip.is_unspecified()
        && let Some(owned) = state.ips.get_mut(&sender_ip)
    {
        conflict(
            out,
            owned,
            sender_ip,
            ifindex,
            arp.sender_mac,
            ConflictKind::ArpSender,
        );
        handled = true;
    }
    if arp.op != OP_REQUEST || arp.sender_ip == arp.target_ip {
        return if handled {
            Outcome::Handled
        } else {
            Outcome::Ignored
        };
    }
    let target_ip = IpAddr::V4(arp.target_ip);
    let Some(owned) = state.ips.get_mut(&target_ip) else {
        return if handled {
            Outcome::Handled
        } else {
            Outcome::NotOwned
        };
    };
    owned.counters.requests_seen += 1;
    owned.counters.replies_sent += 1;
    out.push(Output::Send {
        ifindex,
        frame: arp_frame::reply_frame(arp, our_mac, eth.vlan),
    });
    out.push(Output::Event(Event::Answered {
        ip: target_ip,
        asker_ip: IpAddr::V4(arp.sender_ip),
        asker_mac: arp.sender_mac,
        ifindex,
    }));
    if arp.is_probe() {
        conflict(
            out,
            owned,
            target_ip,
            ifindex,
            arp.sender_mac,
            ConflictKind::ArpProbe,
        );
    }
    Outcome::Handled
}

fn handle_ndp(
    state: &mut InterfaceState,
    own_macs: &HashMap<MacAddr, usize>,
    eth: &EthernetHeader,
    ip: &Ipv6Header,
    message: &NdpMessage,
    out: &mut Vec<Output>,
) -> Outcome {
    let ifindex = state.info.index;
    let our_mac = state.info.mac;
    let target = IpAddr::V6(message.target());
    match message {
        NdpMessage::Solicitation(ns) => {
            let asker_mac = ns.source_link_layer().unwrap_or(eth.src);
            if own_macs.contains_key(&asker_mac) {
                return Outcome::OwnFrame;
            }
            let Some(owned) = state.ips.get_mut(&target) else {
                return Outcome::NotOwned;
            };
            if ip.src.is_unspecified() {
                conflict(out, owned, target, ifindex, eth.src, ConflictKind::DadProbe);
                return Outcome::Handled;
            }
            owned.counters.requests_seen += 1;
            owned.counters.replies_sent += 1;
            out.push(Output::Send {
                ifindex,
                frame: ndp::solicited_advertisement_frame(
                    ns.target, our_mac, ip.src, asker_mac, eth.vlan,
                ),
            });
            out.push(Output::Event(Event::Answered {
                ip: target,
                asker_ip: IpAddr::V6(ip.src),
                asker_mac,
                ifindex,
            }));
            Outcome::Handled
        }
        NdpMessage::Advertisement(na) => {
            let other_mac = na.target_link_layer().unwrap_or(eth.src);
            if own_macs.contains_key(&other_mac) {
                return Outcome::OwnFrame;
            }
            match state.ips.get_mut(&target) {
                Some(owned) => {
                    conflict(
                        out,
                        owned,
                        target,
                        ifindex,
                        other_mac,
                        ConflictKind::NeighborAdvertisement,
                    );
                    Outcome::Handled
                }
                None => Outcome::Ignored,
            }
        }
    }
}
