//! Who answers for an address on a LAN, as a client sees it: one ARP
//! request (IPv4) or Neighbor Solicitation (IPv6) sent on a raw socket
//! from an interface of a test namespace, and the MAC of every reply that
//! comes back within a wait. Unlike the kernel's neighbour table (which
//! keeps one MAC), this counts every host that answers: two owners of one
//! IP show as two MACs.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_arp::MacAddr;
use ferrolb_arp::frame::arp::{ArpPacket, OP_REPLY, OP_REQUEST, arp_frame};
use ferrolb_arp::frame::ndp::{
    NdpMessage, NdpOption, NeighborSolicitation, ndp_frame, solicited_node, solicited_node_mac,
};
use ferrolb_arp::frame::{Packet, parse};

use crate::netns::Netns;

/// Where the question is asked from: an interface of a namespace, with
/// the addresses that interface has.
#[derive(Clone, Debug)]
pub struct Asker {
    /// The interface (e.g. `eth0`).
    pub dev: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its IPv4 address (the ARP request's sender).
    pub v4: Ipv4Addr,
    /// Its IPv6 address (the solicitation's source).
    pub v6: Ipv6Addr,
}

/// The MACs that answer one ARP request / Neighbor Solicitation for `ip`
/// sent from `asker` in `ns`, collected for `wait` (the kernel's own
/// neighbour table is not involved). Errors name the socket call.
pub fn answering_macs(
    ns: &Netns,
    asker: &Asker,
    ip: IpAddr,
    wait: Duration,
) -> Result<BTreeSet<MacAddr>, String> {
    let asker = asker.clone();
    ns.enter(move || ask(&asker, ip, wait))
}

/// A raw `AF_PACKET` socket bound to one interface, closed on drop.
struct RawSocket(libc::c_int);

impl Drop for RawSocket {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.0) };
    }
}

fn os_error(what: &str) -> String {
    format!("{what}: {}", std::io::Error::last_os_error())
}

fn open(dev: &str) -> Result<RawSocket, String> {
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: socket(2) with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            all.into(),
        )
    };
    if fd < 0 {
        return Err(os_error("socket(AF_PACKET)"));
    }
    let socket = RawSocket(fd);
    let name = std::ffi::CString::new(dev).map_err(|e| format!("interface name {dev:?}: {e}"))?;
    // SAFETY: a NUL-terminated name.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err(os_error(&format!("if_nametoindex({dev})")));
    }
    // SAFETY: sockaddr_ll is plain data; zeroes are valid.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = all;
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|e| e.to_string())?;
    // SAFETY: binding our socket to a valid sockaddr_ll of its size.
    let rc = unsafe {
        libc::bind(
            fd,
            (&raw const addr).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error(&format!("bind(AF_PACKET, {dev})")));
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: 10_000,
    };
    // SAFETY: SO_RCVTIMEO with a timeval of its size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(os_error("setsockopt(SO_RCVTIMEO)"));
    }
    Ok(socket)
}

/// The question's frame.
fn question(asker: &Asker, ip: IpAddr) -> Vec<u8> {
    match ip {
        IpAddr::V4(target) => {
            let request = ArpPacket {
                op: OP_REQUEST,
                sender_mac: asker.mac,
                sender_ip: asker.v4,
                target_mac: MacAddr([0; 6]),
                target_ip: target,
            };
            arp_frame(MacAddr([0xff; 6]), asker.mac, None, &request)
        }
        IpAddr::V6(target) => {
            let group = solicited_node(target);
            let solicitation = NdpMessage::Solicitation(NeighborSolicitation {
                target,
                options: vec![NdpOption::SourceLinkLayer(asker.mac)],
            });
            ndp_frame(
                solicited_node_mac(target),
                asker.mac,
                None,
                asker.v6,
                group,
                &solicitation,
            )
        }
    }
}

/// The MAC a frame answers `ip` with, if it is an answer to us.
fn answer(frame: &[u8], asker: &Asker, ip: IpAddr) -> Option<MacAddr> {
    let parsed = parse(frame).ok()?;
    match (parsed.packet, ip) {
        (Packet::Arp(p), IpAddr::V4(target))
            if p.op == OP_REPLY && p.sender_ip == target && p.target_mac == asker.mac =>
        {
            Some(p.sender_mac)
        }
        (
            Packet::Ndp {
                message: NdpMessage::Advertisement(na),
                ..
            },
            IpAddr::V6(target),
        ) if na.target == target && parsed.ethernet.src != asker.mac => {
            Some(na.target_link_layer().unwrap_or(parsed.ethernet.src))
        }
        _ => None,
    }
}

fn ask(asker: &Asker, ip: IpAddr, wait: Duration) -> Result<BTreeSet<MacAddr>, String> {
    let socket = open(&asker.dev)?;
    let frame = question(asker, ip);
    // SAFETY: sending our buffer on our bound socket.
    let sent = unsafe { libc::send(socket.0, frame.as_ptr().cast(), frame.len(), 0) };
    if usize::try_from(sent).ok() != Some(frame.len()) {
        return Err(os_error(&format!("send (question for {ip})")));
    }
    let mut macs = BTreeSet::new();
    let mut buf = vec![0u8; 2048];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        // SAFETY: receiving into our buffer of its length.
        let n = unsafe { libc::recv(socket.0, buf.as_mut_ptr().cast(), buf.len(), 0) };
        let Ok(n) = usize::try_from(n) else {
            let err = std::io::Error::last_os_error();
            match err.kind() {
                std::io::ErrorKind::WouldBlock
                | std::io::ErrorKind::TimedOut
                | std::io::ErrorKind::Interrupted => continue,
                _ => return Err(format!("recv (answers for {ip}): {err}")),
            }
        };
        if let Some(mac) = answer(&buf[..n], asker, ip) {
            macs.insert(mac);
        }
    }
    Ok(macs)
}
