//! The Linux I/O layer (feature `io`, on by default): raw `AF_PACKET`
//! sockets per interface ([`socket`]), interface discovery and monitoring
//! over rtnetlink ([`netlink`]), and the tokio task that drives the
//! [`Announcer`](crate::Announcer) with them ([`runner`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), ferrolb_arp::io::L2Error> {
//! use ferrolb_arp::io::{L2Config, L2Event, L2Runner};
//!
//! let mut runner = L2Runner::start(L2Config::default()).await?; // needs CAP_NET_RAW
//! runner.handle.add_ip("198.51.100.10".parse().unwrap(), vec![]).await?;
//! while let Some(event) = runner.events.recv().await {
//!     if let L2Event::Announcer { event, interface } = event {
//!         println!("{}: {event:?}", interface.name);
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod netlink;
pub mod runner;
pub mod socket;

pub use netlink::{LinkInfo, NetState, NetlinkError, NetlinkMonitor};
pub use runner::{
    InterfaceRef, IoCounters, IpStatus, L2Config, L2Counters, L2Error, L2Event, L2Handle, L2Runner,
};
pub use socket::{PacketSocket, ReceivedFrame, check_raw_socket_permission};
