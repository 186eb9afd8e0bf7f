//! Entry point for fuzzing the membership's datagram handling with
//! arbitrary bytes: UDP datagrams from the LAN, authenticated or not.
//!
//! A datagram from someone without the key stops at the HMAC check; one
//! from a speaker with the key (or a key that leaked) reaches foca's
//! decoder and state machine. The target covers both: each record says
//! whether its payload is sent as it is or framed and signed with the
//! shared key, so the fuzzer explores foca's decoding, not just the MAC.
//!
//! [`membership`] panics only when a property is broken: a datagram
//! without a valid MAC that is not refused as such, a datagram the core
//! sends that is too long or not signed, a live set without this node,
//! a timer due in the past left pending.
//!
//! The cargo-fuzz target `membership` in `fuzz/` calls it, and
//! `speaker/tests/fuzz_corpus.rs` replays the committed corpus through it
//! on every test run. See `docs/FUZZING.md`.

use std::net::SocketAddr;
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::core::{Core, MAX_DATAGRAM, Member, Rejected, Timing};

/// The shared key of the fuzzed membership.
pub const FUZZ_KEY: &[u8] = b"ferrolb fuzzing key";
const MAC_LEN: usize = 32;

/// The member the datagrams are sent to (node1) and the others it knows.
pub fn fuzz_member(i: u8) -> Member {
    Member {
        node: format!("node{i}"),
        addr: fuzz_addr(i),
        bump: 1,
    }
}

/// Where node `i` listens.
pub fn fuzz_addr(i: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, i], 7946))
}

/// `payload` framed as a speaker with the key sends it: version 1, the
/// payload, and the HMAC-SHA256 of both.
pub fn sign(payload: &[u8]) -> Vec<u8> {
    let mut datagram = Vec::with_capacity(1 + payload.len() + MAC_LEN);
    datagram.push(1);
    datagram.extend_from_slice(payload);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(FUZZ_KEY).expect("any key length");
    mac.update(&datagram);
    datagram.extend_from_slice(&mac.finalize().into_bytes());
    datagram
}

fn verifies(datagram: &[u8]) -> bool {
    if datagram.len() < 1 + MAC_LEN || datagram[0] != 1 {
        return false;
    }
    let (body, tag) = datagram.split_at(datagram.len() - MAC_LEN);
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(FUZZ_KEY).expect("any key length");
    mac.update(body);
    mac.verify_slice(tag).is_ok()
}

/// Target `membership`: datagrams received by node1's [`Core`], which has
/// asked node2 and node3 to let it in. Each record is a control octet, a
/// length octet and the bytes:
///
/// - control bit 0: sign the bytes as a foca payload ([`sign`]); else
///   they are the whole datagram, as it came off the socket;
/// - bits 1–7: advance the clock by that many × 10 ms first, and fire the
///   timers due;
/// - length 255: the bytes are the rest of the input.
///
/// Whatever node1 sends is checked and handed to node2, so the replies
/// to what the fuzzer sent are decoded too.
pub fn membership(data: &[u8]) {
    let mut node1 = Core::new(fuzz_member(1), FUZZ_KEY, Timing::default(), 1);
    let mut node2 = Core::new(fuzz_member(2), FUZZ_KEY, Timing::default(), 2);
    let mut now = Duration::ZERO;
    node1.announce("node2", fuzz_addr(2), now);
    node1.announce("node3", fuzz_addr(3), now);
    check(&mut node1, &mut node2, now);

    let mut rest = data;
    while let [ctl, len, tail @ ..] = rest {
        let len = if *len == u8::MAX {
            tail.len()
        } else {
            usize::from(*len).min(tail.len())
        };
        let (bytes, next) = tail.split_at(len);
        rest = next;
        let advance = Duration::from_millis(10 * u64::from(ctl >> 1));
        if !advance.is_zero() {
            now += advance;
            node1.poll(now);
            assert!(
                node1.next_deadline().is_none_or(|due| due > now),
                "a due timer left pending"
            );
        }
        let signed = ctl & 1 != 0;
        let datagram = if signed { sign(bytes) } else { bytes.to_vec() };
        let result = node1.receive(&datagram, now);
        if !verifies(&datagram) {
            assert!(
                matches!(
                    result,
                    Err(Rejected::TooShort(_) | Rejected::Version(_) | Rejected::Authentication)
                ),
                "a datagram without a valid MAC got through: {result:?}"
            );
        }
        if let Err(e) = &result {
            let _ = e.to_string();
        }
        check(&mut node1, &mut node2, now);
    }
    node1.leave(now);
    check(&mut node1, &mut node2, now);
}

/// node1's state is sane, and what it sends is well formed and decodes
/// at node2.
fn check(node1: &mut Core, node2: &mut Core, now: Duration) {
    assert!(
        node1.live().contains("node1"),
        "the live set lost this node"
    );
    for (to, datagram) in node1.take_outbox() {
        assert!(
            datagram.len() <= MAX_DATAGRAM,
            "a datagram of {} octets to {to}",
            datagram.len()
        );
        assert!(verifies(&datagram), "an unsigned datagram sent to {to}");
        if to == fuzz_addr(2) {
            let result = node2.receive(&datagram, now);
            assert!(
                !matches!(
                    result,
                    Err(Rejected::TooShort(_) | Rejected::Version(_) | Rejected::Authentication)
                ),
                "node2 refused node1's framing: {result:?}"
            );
        }
    }
    let _ = node2.take_outbox();
}
