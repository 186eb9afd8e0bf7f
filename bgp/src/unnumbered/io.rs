//! Runs [`Discovery`] for one interface on a raw ICMPv6 socket bound to
//! it (CAP_NET_RAW): Router Solicitations and Advertisements in, our
//! advertisements out, the peer's address published on a watch channel.

use std::ffi::CString;
use std::io;
use std::mem;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::AsRawFd;
use std::time::Instant;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Discovery, ND_HOP_LIMIT, Send, decode, encode_advertisement, encode_solicitation};
use crate::bfd::io::recv_with_ttl;

/// `ICMP6_FILTER` of <netinet/icmp6.h> (level `IPPROTO_ICMPV6`); the libc
/// crate does not define it.
const ICMP6_FILTER: libc::c_int = 1;

const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// What the discovery of one interface knows of its peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddress {
    /// Nothing heard yet (or the peer went quiet).
    Waiting,
    /// The peer's link-local address, scoped to the interface.
    Found(SocketAddrV6),
}

/// The running discovery of one interface; dropping it stops the task.
#[derive(Debug)]
pub struct Unnumbered {
    /// The interface's index (the scope of its link-local addresses).
    pub ifindex: u32,
    /// The peer's address as it is learned.
    pub peer: watch::Receiver<PeerAddress>,
    task: JoinHandle<()>,
}

impl Drop for Unnumbered {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The index of interface `name`.
pub fn ifindex(name: &str) -> io::Result<u32> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface name holds NUL"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("there is no interface {name:?} on this node"),
        ))
    } else {
        Ok(index)
    }
}

/// The MAC address of `name`, from sysfs (None when unreadable).
fn mac_of(name: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{name}/address")).ok()?;
    let mut mac = [0u8; 6];
    let mut parts = text.trim().split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` is a live c_int of the given size; the fd is owned by
    // `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets only Router Solicitations and Advertisements through
/// (`ICMP6_FILTER`: a set bit blocks its type).
fn filter_router_messages(socket: &Socket) -> io::Result<()> {
    let mut filter = [u32::MAX; 8];
    for kind in [super::ROUTER_SOLICITATION, super::ROUTER_ADVERTISEMENT] {
        filter[usize::from(kind >> 5)] &= !(1u32 << (kind & 31));
    }
    // SAFETY: `filter` is the 32-octet struct icmp6_filter; the fd is
    // owned by `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_ICMPV6,
            ICMP6_FILTER,
            filter.as_ptr().cast(),
            mem::size_of_val(&filter) as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn socket_for(iface: &str) -> io::Result<Socket> {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    socket.bind_device(Some(iface.as_bytes()))?;
    socket.set_multicast_hops_v6(u32::from(ND_HOP_LIMIT))?;
    socket.set_unicast_hops_v6(u32::from(ND_HOP_LIMIT))?;
    socket.set_multicast_loop_v6(false)?;
    set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
    filter_router_messages(&socket)?;
    Ok(socket)
}

/// Starts the discovery on `iface`. Fails (with the interface named) when
/// the interface does not exist or the raw socket cannot be opened.
pub fn spawn(iface: &str) -> io::Result<Unnumbered> {
    let index = ifindex(iface)?;
    let socket = socket_for(iface).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("interface {iface}: raw ICMPv6 socket for router discovery: {e}"),
        )
    })?;
    // SAFETY: the socket owns its descriptor, which stays open and the same
    // for as long as the AsyncFd that owns the socket lives.
    let fd = unsafe { AsyncFd::register_with_interest(socket, tokio::io::Interest::READABLE) }
        .map_err(|e| e.into_parts().1)?;
    let (tx, rx) = watch::channel(PeerAddress::Waiting);
    let mac = mac_of(iface);
    let name = iface.to_string();
    let task = tokio::spawn(run(fd, index, mac, name, tx));
    Ok(Unnumbered {
        ifindex: index,
        peer: rx,
        task,
    })
}

fn send(fd: &AsyncFd<Socket>, index: u32, mac: Option<[u8; 6]>, what: Send, iface: &str) {
    let (bytes, to) = match what {
        Send::Advertisement => (encode_advertisement(mac), ALL_NODES),
        Send::Solicitation => (encode_solicitation(), ALL_ROUTERS),
    };
    let dest = SockAddr::from(SocketAddrV6::new(to, 0, 0, index));
    if let Err(e) = fd.get_ref().send_to(&bytes, &dest) {
        tracing::debug!("interface {iface}: sending {what:?}: {e}");
    }
}

async fn run(
    fd: AsyncFd<Socket>,
    index: u32,
    mac: Option<[u8; 6]>,
    iface: String,
    tx: watch::Sender<PeerAddress>,
) {
    let (mut discovery, first) = Discovery::start(Instant::now());
    for what in first {
        send(&fd, index, mac, what, &iface);
    }
    let mut buf = [0u8; 1500];
    loop {
        let deadline = tokio::time::Instant::from_std(discovery.next_deadline());
        tokio::select! {
            ready = fd.readable() => {
                let Ok(mut guard) = ready else { return };
                loop {
                    let raw = guard.get_inner().as_raw_fd();
                    match recv_with_ttl(raw, &mut buf) {
                        Ok(dgram) => {
                            let std::net::SocketAddr::V6(from) = dgram.from else { continue };
                            let Some(message) = decode(&buf[..dgram.len]) else { continue };
                            let hop = dgram.ttl.unwrap_or(0);
                            match discovery.received(Instant::now(), message, *from.ip(), hop) {
                                Ok(sends) => {
                                    for what in sends {
                                        send(&fd, index, mac, what, &iface);
                                    }
                                }
                                Err(why) => tracing::debug!(
                                    "interface {iface}: ignoring {message:?} from {}: {why:?}",
                                    from.ip()
                                ),
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            guard.clear_ready();
                            break;
                        }
                        Err(e) => {
                            tracing::warn!("interface {iface}: reading router discovery: {e}");
                            guard.clear_ready();
                            break;
                        }
                    }
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                for what in discovery.poll(Instant::now()) {
                    send(&fd, index, mac, what, &iface);
                }
            }
        }
        let now = Instant::now();
        let peer = match discovery.peer(now) {
            Some(ip) => PeerAddress::Found(SocketAddrV6::new(ip, 0, 0, index)),
            None => PeerAddress::Waiting,
        };
        tx.send_if_modified(|current| {
            if *current == peer {
                false
            } else {
                match &peer {
                    PeerAddress::Found(a) => {
                        tracing::info!("interface {iface}: the peer is {}", a.ip());
                        let others = discovery.others(now);
                        if !others.is_empty() {
                            tracing::warn!(
                                "interface {iface}: more routers advertise on this link ({others:?}); unnumbered peering keeps {}",
                                a.ip()
                            );
                        }
                    }
                    PeerAddress::Waiting => {
                        tracing::warn!("interface {iface}: the peer's router advertisements stopped")
                    }
                }
                *current = peer;
                true
            }
        });
        if tx.is_closed() {
            return;
        }
    }
}
