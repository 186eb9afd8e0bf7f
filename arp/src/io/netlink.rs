//! Interface discovery and monitoring with rtnetlink.
//!
//! [`NetlinkMonitor`] holds one route-netlink connection subscribed to
//! link, address and route notifications. The runner does not apply
//! notifications one by one: any notification marks the view stale and
//! the runner takes a fresh [`NetState`] with [`NetlinkMonitor::dump`]
//! (links, addresses, default routes), which cannot drift from the kernel
//! even when notifications are lost.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::channel::mpsc::UnboundedReceiver;
use futures::{StreamExt, TryStreamExt};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use netlink_packet_route::route::{RouteAttribute, RouteHeader, RouteMessage, RouteType};
use rtnetlink::packet_core::NetlinkMessage;
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::SocketAddr;
use rtnetlink::{Handle, MulticastGroup, RouteMessageBuilder};
use tokio::task::JoinHandle;

use crate::interface_choice::{DefaultRoutes, InterfaceSnapshot};
use crate::mac::MacAddr;

/// One link as netlink reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Its hardware address, when it is a 6-byte one.
    pub mac: Option<MacAddr>,
    /// Administratively up and operationally running (`IFF_UP` and
    /// `IFF_RUNNING`: carrier present).
    pub up: bool,
    /// A loopback interface.
    pub loopback: bool,
    /// Addresses with prefix lengths (IPv4 and IPv6, any scope).
    pub addresses: Vec<(IpAddr, u8)>,
}

impl LinkInfo {
    /// The MAC when it can source announcements (unicast, non-zero).
    pub fn unicast_mac(&self) -> Option<MacAddr> {
        self.mac.filter(|mac| mac.is_unicast())
    }
}

/// The node's links and default routes at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetState {
    /// Links by index.
    pub links: BTreeMap<u32, LinkInfo>,
    /// Interfaces of the main table's default routes.
    pub default_routes: DefaultRoutes,
}

impl NetState {
    /// What the interface choice rule needs, in index order.
    pub fn snapshots(&self) -> Vec<InterfaceSnapshot> {
        self.links
            .values()
            .map(|link| InterfaceSnapshot {
                index: link.index,
                name: link.name.clone(),
                up: link.up,
                loopback: link.loopback,
                addresses: link.addresses.clone(),
            })
            .collect()
    }

    /// The link with index `index`.
    pub fn link(&self, index: u32) -> Option<&LinkInfo> {
        self.links.get(&index)
    }
}

/// Errors of the netlink side.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    /// Opening or binding the netlink socket failed.
    #[error("opening a route netlink socket: {0}")]
    Socket(#[from] io::Error),
    /// A dump request failed.
    #[error("netlink request failed: {0}")]
    Request(#[from] rtnetlink::Error),
}

/// A route-netlink connection subscribed to link, address and route
/// changes, also used for dumps.
#[derive(Debug)]
pub struct NetlinkMonitor {
    handle: Handle,
    notifications: UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>,
    connection: JoinHandle<()>,
}

impl NetlinkMonitor {
    /// Opens the connection and spawns its driver on the current tokio
    /// runtime.
    pub fn open() -> Result<NetlinkMonitor, NetlinkError> {
        let (connection, handle, notifications) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv6Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv6Route,
        ])?;
        let connection = tokio::spawn(connection);
        Ok(NetlinkMonitor {
            handle,
            notifications,
            connection,
        })
    }

    /// Waits for the next change notification; `None` when the connection
    /// is gone (the caller then falls back to periodic dumps).
    pub async fn changed(&mut self) -> Option<()> {
        self.notifications.next().await.map(|_| ())
    }

    /// Takes every notification already queued, without waiting.
    pub fn drain(&mut self) {
        while self.notifications.try_recv().is_ok() {}
    }

    /// Dumps links, addresses and routes.
    pub async fn dump(&self) -> Result<NetState, NetlinkError> {
        let mut links: BTreeMap<u32, LinkInfo> = BTreeMap::new();
        let mut stream = self.handle.link().get().execute();
        while let Some(message) = stream.try_next().await? {
            let link = link_info(&message);
            links.insert(link.index, link);
        }

        let mut stream = self.handle.address().get().execute();
        while let Some(message) = stream.try_next().await? {
            if let Some((index, address)) = address_of(&message)
                && let Some(link) = links.get_mut(&index)
                && !link.addresses.contains(&address)
            {
                link.addresses.push(address);
            }
        }

        let ipv4 = self
            .default_route(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .await?;
        let ipv6 = self
            .default_route(RouteMessageBuilder::<Ipv6Addr>::new().build())
            .await?;
        Ok(NetState {
            links,
            default_routes: DefaultRoutes { ipv4, ipv6 },
        })
    }

    async fn default_route(&self, request: RouteMessage) -> Result<Option<u32>, NetlinkError> {
        let mut best: Option<(u32, u32)> = None; // (priority, ifindex)
        let mut stream = self.handle.route().get(request).execute();
        while let Some(route) = stream.try_next().await? {
            if let Some(candidate) = default_route_of(&route)
                && best.is_none_or(|b| candidate.0 < b.0)
            {
                best = Some(candidate);
            }
        }
        Ok(best.map(|(_, ifindex)| ifindex))
    }
}

impl Drop for NetlinkMonitor {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

fn link_info(message: &LinkMessage) -> LinkInfo {
    let flags = message.header.flags;
    let mut name = String::new();
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(n) => name.clone_from(n),
            LinkAttribute::Address(bytes) => {
                if let Ok(octets) = <[u8; 6]>::try_from(bytes.as_slice()) {
                    mac = Some(MacAddr(octets));
                }
            }
            _ => {}
        }
    }
    LinkInfo {
        index: message.header.index,
        name,
        mac,
        up: flags.contains(LinkFlags::Up) && flags.contains(LinkFlags::Running),
        loopback: flags.contains(LinkFlags::Loopback),
        addresses: Vec::new(),
    }
}

fn address_of(message: &AddressMessage) -> Option<(u32, (IpAddr, u8))> {
    // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    // point-to-point links and the same as IFA_LOCAL elsewhere. IPv6 only
    // sends IFA_ADDRESS (unless point-to-point).
    let mut address = None;
    let mut local = None;
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            _ => {}
        }
    }
    let ip = local.or(address)?;
    Some((message.header.index, (ip, message.header.prefix_len)))
}

/// `(priority, ifindex)` of a main-table unicast default route.
fn default_route_of(route: &RouteMessage) -> Option<(u32, u32)> {
    let header = &route.header;
    if header.destination_prefix_length != 0 || header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = u32::from(header.table);
    let mut oif = None;
    let mut priority = 0;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(index) => oif = Some(*index),
            RouteAttribute::Priority(p) => priority = *p,
            RouteAttribute::MultiPath(hops) if oif.is_none() => {
                oif = hops.first().map(|hop| hop.interface_index);
            }
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    oif.map(|ifindex| (priority, ifindex))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_route_needs_main_table_and_zero_prefix() {
        let mut route = RouteMessageBuilder::<Ipv4Addr>::new()
            .output_interface(3)
            .build();
        assert_eq!(default_route_of(&route), Some((0, 3)));
        route.attributes.push(RouteAttribute::Priority(100));
        assert_eq!(default_route_of(&route), Some((100, 3)));
        route.header.destination_prefix_length = 24;
        assert_eq!(default_route_of(&route), None);
        route.header.destination_prefix_length = 0;
        route.header.table = 255;
        assert_eq!(default_route_of(&route), None);
        route.header.table = 0;
        route.attributes.push(RouteAttribute::Table(254));
        assert_eq!(default_route_of(&route), Some((100, 3)));
    }

    #[test]
    fn link_flags_and_mac() {
        let mut message = LinkMessage::default();
        message.header.index = 7;
        message.header.flags = LinkFlags::Up | LinkFlags::Running;
        message
            .attributes
            .push(LinkAttribute::IfName("eth0".to_owned()));
        message
            .attributes
            .push(LinkAttribute::Address(vec![2, 0, 0, 0, 0, 7]));
        let link = link_info(&message);
        assert_eq!(link.name, "eth0");
        assert!(link.up && !link.loopback);
        assert_eq!(link.unicast_mac(), Some(MacAddr::new(2, 0, 0, 0, 0, 7)));
        message.header.flags = LinkFlags::Up; // no carrier
        assert!(!link_info(&message).up);
    }
}
