//! FerroLB's layer-2 announcer: the sans-IO core that answers ARP (IPv4)
//! and NDP (IPv6) for Service IPs owned by this node and announces them
//! with gratuitous ARP and unsolicited Neighbor Advertisements.
//!
//! Frames go in, frames come out; there are no sockets and no clock here.
//! The I/O layer (raw sockets, netlink) feeds [`Announcer`] and carries
//! out its [`Output`]s.
//!
//! - [`frame`]: wire formats (Ethernet + 802.1Q, ARP, IPv6, ICMPv6
//!   NS/NA with options and checksum), parsing that never panics, builders.
//! - [`announcer`]: the [`Announcer`] state machine: interfaces, owned
//!   addresses, answers, gratuitous bursts, multicast groups.
//! - [`output`]: [`Output`] and [`Event`].
//! - [`counters`]: per-interface and per-address counters.
//! - [`interface_choice`]: which interfaces announce an IP.
//! - [`fuzzing`]: the bodies of the cargo-fuzz targets (see `docs/FUZZING.md`).
//! - [`mac`], [`time`]: [`MacAddr`] and the [`Instant`] time input.
//! - [`io`] (feature `io`, default): the Linux I/O layer — raw sockets,
//!   rtnetlink monitoring and the tokio task that drives the announcer.
//!
//! # Example: the I/O layer's loop, minus the I/O
//!
//! ```
//! use ferrolb_arp::{Announcer, Instant, Interface, Output};
//!
//! let mut announcer = Announcer::default();
//! let now = Instant::ZERO; // e.g. Instant::from_duration(start.elapsed())
//! let eth0 = Interface {
//!     index: 2,
//!     name: "eth0".into(),
//!     mac: "02:00:00:00:00:02".parse().unwrap(),
//!     vlan: None,
//!     up: true,
//! };
//! announcer.set_interface(eth0, now).unwrap();
//!
//! // This node now owns a Service IP on eth0.
//! let joins = announcer.add_ip(2, "2001:db8::10".parse().unwrap(), now).unwrap();
//! assert!(matches!(joins[..], [Output::JoinGroup { ifindex: 2, .. }]));
//!
//! // The first unsolicited advertisement is due at once, the next in 1 s.
//! let due = announcer.poll(now);
//! assert!(matches!(due[0], Output::Send { ifindex: 2, .. }));
//! assert_eq!(announcer.next_deadline(), Some(Instant::from_millis(1000)));
//!
//! // Received frames go to `handle_frame`; its outputs are the answers.
//! let outputs = announcer.handle_frame(2, &[0u8; 10]); // too short: counted, dropped
//! assert!(outputs.is_empty());
//! assert_eq!(announcer.counters().interface(2).unwrap().malformed, 1);
//! ```

pub mod announcer;
pub mod counters;
pub mod frame;
pub mod fuzzing;
pub mod interface_choice;
#[cfg(feature = "io")]
pub mod io;
pub mod mac;
pub mod output;
pub mod time;

pub use announcer::{Announcer, AnnouncerConfig, AnnouncerError, Interface, SolicitedNodeGroup};
pub use counters::{CountersSnapshot, InterfaceCounters, IpCounters};
pub use interface_choice::{
    ChoiceRule, DefaultRoutes, InterfaceChoice, InterfaceSnapshot, choose_interfaces,
};
pub use mac::MacAddr;
pub use output::{ConflictKind, Event, Output};
pub use time::Instant;
