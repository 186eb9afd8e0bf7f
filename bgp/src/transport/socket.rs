//! Building BGP sockets: bind address, device (VRF), TTL / hop limit,
//! GTSM (RFC 5082) and TCP MD5 signatures (RFC 2385).

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr, SocketAddrV6};
use std::os::fd::AsRawFd;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{TransportConfig, TtlMode};

/// Longest TCP MD5 key Linux accepts (`TCP_MD5SIG_MAXKEYLEN`).
pub const MAX_MD5_KEY_LEN: usize = 80;

/// `struct tcp_md5sig` of `<linux/tcp.h>`; libc has the constants but not
/// the structure.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MAX_MD5_KEY_LEN],
}

/// `TCP_MD5SIG_FLAG_IFINDEX`: the key applies to `ifindex` only.
const TCP_MD5SIG_FLAG_IFINDEX: u8 = 0x2;

fn setsockopt<T>(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    let len = libc::socklen_t::try_from(mem::size_of::<T>()).expect("option size fits socklen_t");
    // SAFETY: `value` points to a live, initialised `T` of `len` bytes and
    // the fd is owned by `socket`.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            len,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The index of network interface `name` (for IPv6 scope ids), if it
/// exists.
pub fn interface_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: if_nametoindex(3) reads a NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// Installs (or with an empty key, removes) the TCP MD5 key for `peer` on
/// `socket`. On a listening socket this covers connections from `peer`;
/// set it before `connect` on an outbound one.
pub fn set_tcp_md5(socket: &Socket, peer: SocketAddr, key: &[u8]) -> io::Result<()> {
    if key.len() > MAX_MD5_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key longer than {MAX_MD5_KEY_LEN} octets"),
        ));
    }
    // Only the address matters to the kernel, not the port.
    let peer = match peer {
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), 0),
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), 0, 0, v6.scope_id())),
    };
    let sockaddr = SockAddr::from(peer);
    // SAFETY: all-zero is a valid `struct tcp_md5sig`.
    let mut sig: TcpMd5Sig = unsafe { mem::zeroed() };
    // SAFETY: `sockaddr` holds `len()` initialised bytes, at most the size of
    // `sockaddr_storage`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            sockaddr.as_ptr().cast::<u8>(),
            (&mut sig.addr as *mut libc::sockaddr_storage).cast::<u8>(),
            sockaddr.len() as usize,
        );
    }
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    let scope = match peer {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => Some(v6.scope_id()),
        _ => None,
    };
    match scope {
        Some(ifindex) => {
            sig.flags = TCP_MD5SIG_FLAG_IFINDEX;
            sig.ifindex = libc::c_int::try_from(ifindex).unwrap_or(0);
            setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG_EXT, &sig)
        }
        None => setsockopt(socket, libc::IPPROTO_TCP, libc::TCP_MD5SIG, &sig),
    }
}

/// Applies the TTL policy: the outgoing TTL / hop limit and, with GTSM, the
/// smallest TTL accepted.
pub fn set_ttl(socket: &Socket, ipv6: bool, mode: TtlMode) -> io::Result<()> {
    let (out, min) = match mode {
        TtlMode::Default => return Ok(()),
        TtlMode::Ttl(ttl) => (libc::c_int::from(ttl.max(1)), None),
        TtlMode::Gtsm { hops } => (255, Some(256 - libc::c_int::from(hops.max(1)))),
    };
    if ipv6 {
        setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &out)?;
        if let Some(min) = min {
            setsockopt(socket, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &min)?;
        }
    } else {
        setsockopt(socket, libc::IPPROTO_IP, libc::IP_TTL, &out)?;
        if let Some(min) = min {
            setsockopt(socket, libc::IPPROTO_IP, libc::IP_MINTTL, &min)?;
        }
    }
    Ok(())
}

/// A TCP socket for the peer's family with every option of `cfg` applied
/// (not bound, not connected).
fn base_socket(cfg: &TransportConfig) -> io::Result<Socket> {
    let ipv6 = cfg.peer.is_ipv6();
    let socket = Socket::new(
        Domain::for_address(cfg.peer),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_cloexec(true)?;
    if ipv6 {
        socket.set_only_v6(true)?;
    }
    if let Some(device) = &cfg.bind_device {
        socket.bind_device(Some(device.as_bytes()))?;
    }
    set_ttl(&socket, ipv6, cfg.ttl)?;
    if let Some(key) = &cfg.md5_key {
        set_tcp_md5(&socket, cfg.peer, key)?;
    }
    socket.set_tcp_nodelay(true)?;
    Ok(socket)
}

/// The local address to bind: the source address (with the peer's scope id
/// when link-local) and `port`.
fn local_addr(cfg: &TransportConfig, port: u16) -> Option<SocketAddr> {
    let source = cfg.source?;
    Some(match (source, cfg.peer) {
        (IpAddr::V6(ip), SocketAddr::V6(peer)) if is_link_local(ip) => {
            SocketAddr::V6(SocketAddrV6::new(ip, port, 0, peer.scope_id()))
        }
        (ip, _) => SocketAddr::new(ip, port),
    })
}

fn is_link_local(ip: std::net::Ipv6Addr) -> bool {
    ip.segments()[0] & 0xffc0 == 0xfe80
}

/// An unconnected socket for an outbound connection, bound to the source
/// address when one is configured.
pub fn connect_socket(cfg: &TransportConfig) -> io::Result<tokio::net::TcpSocket> {
    let socket = base_socket(cfg)?;
    if let Some(local) = local_addr(cfg, 0) {
        socket.bind(&local.into())?;
    }
    let std_stream: std::net::TcpStream = socket.into();
    Ok(tokio::net::TcpSocket::from_std_stream(std_stream))
}

/// A listening socket on `port` (the source address, or the unspecified
/// address of the peer's family) accepting the peer's connections.
pub fn listen_socket(cfg: &TransportConfig, port: u16) -> io::Result<tokio::net::TcpListener> {
    let socket = base_socket(cfg)?;
    socket.set_reuse_address(true)?;
    let local = local_addr(cfg, port).unwrap_or(match cfg.peer {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), port),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), port),
    });
    socket.bind(&local.into())?;
    socket.listen(16)?;
    let std_listener: std::net::TcpListener = socket.into();
    tokio::net::TcpListener::from_std(std_listener)
}

/// Applies the TTL policy to an accepted connection (inherited from the
/// listener on Linux, set again to be sure).
pub fn configure_accepted(stream: &tokio::net::TcpStream, cfg: &TransportConfig) -> io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    set_ttl(&socket, cfg.peer.is_ipv6(), cfg.ttl)?;
    stream.set_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_struct_matches_the_kernel_layout() {
        // 128 (sockaddr_storage) + 1 + 1 + 2 + 4 + 80.
        assert_eq!(mem::size_of::<TcpMd5Sig>(), 216);
    }

    #[test]
    fn md5_key_too_long_is_refused() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        let err = set_tcp_md5(&socket, "192.0.2.1:179".parse().unwrap(), &[b'x'; 81]).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn ttl_and_gtsm_options_are_set() {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        set_ttl(&socket, false, TtlMode::Ttl(1)).unwrap();
        assert_eq!(socket.ttl_v4().unwrap(), 1);
        set_ttl(&socket, false, TtlMode::Gtsm { hops: 1 }).unwrap();
        assert_eq!(socket.ttl_v4().unwrap(), 255);
        let socket6 = Socket::new(Domain::IPV6, Type::STREAM, None).unwrap();
        set_ttl(&socket6, true, TtlMode::Ttl(1)).unwrap();
        assert_eq!(socket6.unicast_hops_v6().unwrap(), 1);
    }
}
