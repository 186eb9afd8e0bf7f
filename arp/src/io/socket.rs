//! Raw `AF_PACKET` sockets, one per announcing interface, through pnet's
//! datalink channel.
//!
//! The socket is created here (protocol 0, so it receives nothing yet),
//! given a classic BPF filter, and then handed to
//! [`pnet_datalink::linux::channel`], which binds it to the interface for
//! all EtherTypes. The filter passes only what the announcer can use:
//!
//! - ARP frames and IPv6 frames carrying ICMPv6 Neighbor Solicitations or
//!   Advertisements (next header 58, type 135/136, no extension headers);
//! - only frames received (never our own outgoing ones);
//! - only frames without an 802.1Q tag in the packet metadata: the kernel
//!   strips the tag before packet sockets see a frame, so a tagged frame
//!   on a parent interface looks untagged; it belongs to the VLAN
//!   sub-interface (`eth0.100`), whose own socket receives it. Answers
//!   from the parent would go out untagged, so they are not received at
//!   all. VLANs are therefore handled by the kernel's sub-interfaces and
//!   every [`Interface`](crate::Interface) is set up with `vlan: None`.
//!
//! Multicast membership (the solicited-node groups) is per socket with
//! `PACKET_ADD_MEMBERSHIP`/`PACKET_DROP_MEMBERSHIP` and
//! `PACKET_MR_MULTICAST`: the kernel drops it when the socket closes, so
//! a crashed speaker leaves nothing behind.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender, NetworkInterface};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::mac::MacAddr;

/// A frame received on an interface.
#[derive(Debug)]
pub struct ReceivedFrame {
    /// The interface it arrived on.
    pub ifindex: u32,
    /// The whole Ethernet frame (without FCS).
    pub bytes: Vec<u8>,
}

/// Opens and closes a throwaway `AF_PACKET` socket to find out whether
/// this process may use raw sockets (CAP_NET_RAW).
pub fn check_raw_socket_permission() -> io::Result<()> {
    let fd = open_unbound()?;
    // SAFETY: `fd` was just opened by us and is closed exactly once.
    unsafe { libc::close(fd) };
    Ok(())
}

fn open_unbound() -> io::Result<RawFd> {
    // Protocol 0: the socket receives nothing until it is bound with a
    // protocol, so no frame slips in before the filter is attached.
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fd)
    }
}

const ETHERTYPE_ARP: u32 = 0x0806;
const ETHERTYPE_IPV6: u32 = 0x86dd;
const NEXT_HEADER_ICMPV6: u32 = 58;
const ICMPV6_NS: u32 = 135;
const ICMPV6_NA: u32 = 136;
/// Offset of the IPv6 next-header field in an untagged frame.
const OFFSET_NEXT_HEADER: u32 = 14 + 6;
/// Offset of the ICMPv6 type in an untagged frame without extension headers.
const OFFSET_ICMPV6_TYPE: u32 = 14 + 40;
/// Bytes of a frame the filter passes (more than any ARP or NDP frame).
const SNAP_LEN: u32 = 0x4_0000;

fn ancillary(offset: libc::c_int) -> u32 {
    (libc::SKF_AD_OFF + offset) as u32
}

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    }
}

/// The classic BPF program described in the module documentation.
/// Jump offsets count instructions after the jump.
pub(crate) fn filter_program() -> Vec<libc::sock_filter> {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, BPF_W};
    const ACCEPT: u8 = 12;
    const DROP: u8 = 13;
    // (index of the jump) -> offset to `target`
    let to = |from: u8, target: u8| target - from - 1;
    vec![
        /* 0 */ stmt(BPF_LD | BPF_W | BPF_ABS, ancillary(libc::SKF_AD_PKTTYPE)),
        /* 1 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            u32::from(libc::PACKET_OUTGOING),
            to(1, DROP),
            0,
        ),
        /* 2 */
        stmt(
            BPF_LD | BPF_W | BPF_ABS,
            ancillary(libc::SKF_AD_VLAN_TAG_PRESENT),
        ),
        /* 3 */ jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, to(3, DROP)),
        /* 4 */ stmt(BPF_LD | BPF_H | BPF_ABS, 12),
        /* 5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_ARP, to(5, ACCEPT), 0),
        /* 6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ETHERTYPE_IPV6, 0, to(6, DROP)),
        /* 7 */ stmt(BPF_LD | BPF_B | BPF_ABS, OFFSET_NEXT_HEADER),
        /* 8 */
        jump(
            BPF_JMP | BPF_JEQ | BPF_K,
            NEXT_HEADER_ICMPV6,
            0,
            to(8, DROP),
        ),
        /* 9 */ stmt(BPF_LD | BPF_B | BPF_ABS, OFFSET_ICMPV6_TYPE),
        /* 10 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_NS, to(10, ACCEPT), 0),
        /* 11 */ jump(BPF_JMP | BPF_JEQ | BPF_K, ICMPV6_NA, 0, to(11, DROP)),
        /* 12 ACCEPT */ stmt(BPF_RET | BPF_K, SNAP_LEN),
        /* 13 DROP */ stmt(BPF_RET | BPF_K, 0),
    ]
}

/// Receive buffer asked for: room for a burst of ~10,000 requests queued
/// while the loop is busy (each small frame costs ~1 KiB of kernel
/// accounting), instead of the default ~200 KiB.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// Raises the socket's receive buffer: `SO_RCVBUFFORCE` (allowed with
/// CAP_NET_ADMIN, beyond `net.core.rmem_max`), else `SO_RCVBUF` (capped by
/// `rmem_max`). A failure leaves the default, which only loses frames under
/// bursts.
fn grow_receive_buffer(fd: RawFd) {
    let size = RECEIVE_BUFFER;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: setsockopt(2) on our descriptor with a c_int value of the
        // size given.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&raw const size).cast(),
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
    tracing::debug!(
        error = %io::Error::last_os_error(),
        "could not raise the packet socket's receive buffer"
    );
}

fn attach_filter(fd: RawFd) -> io::Result<()> {
    let mut program = filter_program();
    let fprog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: `fprog` points at `program`, alive for the call; the kernel
    // copies the program.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_membership(fd: RawFd, ifindex: u32, mac: MacAddr, add: bool) -> io::Result<()> {
    let o = mac.octets();
    let mreq = libc::packet_mreq {
        mr_ifindex: ifindex as libc::c_int,
        mr_type: libc::PACKET_MR_MULTICAST as libc::c_ushort,
        mr_alen: 6,
        mr_address: [o[0], o[1], o[2], o[3], o[4], o[5], 0, 0],
    };
    let option = if add {
        libc::PACKET_ADD_MEMBERSHIP
    } else {
        libc::PACKET_DROP_MEMBERSHIP
    };
    // SAFETY: `mreq` is a valid packet_mreq for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            option,
            (&mreq as *const libc::packet_mreq).cast(),
            mem::size_of::<libc::packet_mreq>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Reads and so clears a pending socket error (e.g. ENETDOWN after the
/// link went down), which would otherwise make every poll report an error.
fn take_socket_error(fd: RawFd) -> Option<io::Error> {
    let mut err: libc::c_int = 0;
    let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `err` and `len` are valid for writes of their sizes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&mut err as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (rc == 0 && err != 0).then(|| io::Error::from_raw_os_error(err))
}

/// The socket's descriptor for tokio's readiness tracking; pnet's channel
/// owns and closes it.
struct BorrowedSocket(RawFd);

impl AsRawFd for BorrowedSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// An open raw socket on one interface: frames go out through
/// [`send`](Self::send); received frames go to the channel given to
/// [`open`](Self::open) from a tokio task. Dropping it stops that task
/// and closes the socket, which also drops its multicast memberships.
pub struct PacketSocket {
    ifindex: u32,
    name: String,
    fd: RawFd,
    sender: Box<dyn DataLinkSender>,
    receiver: JoinHandle<()>,
}

impl std::fmt::Debug for PacketSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketSocket")
            .field("ifindex", &self.ifindex)
            .field("name", &self.name)
            .field("fd", &self.fd)
            .finish()
    }
}

impl PacketSocket {
    /// Opens a filtered raw socket on interface `ifindex` (named `name`,
    /// with MAC `mac`) and starts forwarding received ARP/NDP frames to
    /// `frames`. Must be called inside a tokio runtime with I/O enabled.
    pub fn open(
        ifindex: u32,
        name: &str,
        mac: MacAddr,
        frames: mpsc::Sender<ReceivedFrame>,
    ) -> io::Result<PacketSocket> {
        let fd = open_unbound()?;
        grow_receive_buffer(fd);
        if let Err(err) = attach_filter(fd) {
            // SAFETY: our descriptor, not handed to pnet yet.
            unsafe { libc::close(fd) };
            return Err(err);
        }
        let o = mac.octets();
        let interface = NetworkInterface {
            name: name.to_owned(),
            description: String::new(),
            index: ifindex,
            mac: Some(pnet_datalink::MacAddr::new(
                o[0], o[1], o[2], o[3], o[4], o[5],
            )),
            ips: Vec::new(),
            flags: 0,
        };
        let config = pnet_datalink::linux::Config {
            // A zero read timeout makes the receiver's `next` return
            // TimedOut at once when nothing is queued: tokio tells when to
            // read.
            read_timeout: Some(Duration::ZERO),
            write_timeout: Some(Duration::from_millis(200)),
            promiscuous: false,
            socket_fd: Some(fd),
            ..pnet_datalink::linux::Config::default()
        };
        // On failure pnet closes `fd` itself.
        let (sender, receiver) = match pnet_datalink::linux::channel(&interface, config)? {
            Channel::Ethernet(tx, rx) => (tx, rx),
            _ => {
                return Err(io::Error::other("pnet returned a non-Ethernet channel"));
            }
        };
        // SAFETY: `fd` is open and owned by `receiver` (and `sender`);
        // `Reader` keeps `receiver` and drops its `AsyncFd` first, so the
        // descriptor outlives the registration.
        let async_fd = match unsafe {
            AsyncFd::register_with_interest(BorrowedSocket(fd), Interest::READABLE)
        } {
            Ok(async_fd) => async_fd,
            Err(err) => {
                // Dropping sender and receiver closes the socket.
                drop((sender, receiver));
                return Err(err.into_parts().1);
            }
        };
        let reader = Reader { async_fd, receiver };
        let receiver = tokio::spawn(receive_loop(ifindex, fd, reader, frames));
        Ok(PacketSocket {
            ifindex,
            name: name.to_owned(),
            fd,
            sender,
            receiver,
        })
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface name it was opened with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Transmits one whole Ethernet frame.
    pub fn send(&mut self, frame: &[u8]) -> io::Result<()> {
        match self.sender.send_to(frame, None) {
            Some(result) => result,
            None => Err(io::Error::other("frame does not fit the send buffer")),
        }
    }

    /// Starts receiving frames sent to the multicast address `mac`.
    pub fn join(&self, mac: MacAddr) -> io::Result<()> {
        set_membership(self.fd, self.ifindex, mac, true)
    }

    /// Stops receiving frames sent to the multicast address `mac`.
    pub fn leave(&self, mac: MacAddr) -> io::Result<()> {
        set_membership(self.fd, self.ifindex, mac, false)
    }
}

impl Drop for PacketSocket {
    fn drop(&mut self) {
        // The task owns the receiver half and the epoll registration; once
        // it and `sender` are gone, pnet closes the descriptor.
        self.receiver.abort();
    }
}

/// The receiving half. Fields drop in order: the epoll registration goes
/// before the receiver, which may hold the last reference to the socket.
struct Reader {
    async_fd: AsyncFd<BorrowedSocket>,
    receiver: Box<dyn DataLinkReceiver>,
}

async fn receive_loop(
    ifindex: u32,
    fd: RawFd,
    mut reader: Reader,
    frames: mpsc::Sender<ReceivedFrame>,
) {
    loop {
        let mut guard = match reader.async_fd.readable().await {
            Ok(guard) => guard,
            Err(err) => {
                tracing::warn!(ifindex, %err, "raw socket readiness failed; receiving stops");
                return;
            }
        };
        loop {
            let bytes = match reader.receiver.next() {
                Ok(frame) => frame.to_vec(),
                Err(err)
                    if matches!(
                        err.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    ) =>
                {
                    guard.clear_ready();
                    break;
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => {
                    let pending = take_socket_error(fd);
                    tracing::debug!(ifindex, %err, ?pending, "raw socket receive error");
                    guard.clear_ready();
                    if pending.is_none() {
                        // Not a one-off socket error: do not spin on it.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    break;
                }
            };
            if frames.send(ReceivedFrame { ifindex, bytes }).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_jumps_stay_inside_the_program() {
        let program = filter_program();
        for (i, insn) in program.iter().enumerate() {
            if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                for offset in [insn.jt, insn.jf] {
                    let target = i + 1 + usize::from(offset);
                    assert!(target < program.len(), "jump at {i} leaves the program");
                }
            }
        }
        let last = program.last().unwrap();
        assert_eq!(u32::from(last.code), libc::BPF_RET | libc::BPF_K);
        assert_eq!(last.k, 0);
    }
}
