//! The cargo-fuzz target body [`ferrolb_speaker::membership::fuzzing`]
//! run without cargo-fuzz: over the committed minimized corpus in
//! `fuzz/corpus/membership/`, over seeds mutated by a fixed pseudo-random
//! sequence, and with an allocator that records the largest single
//! allocation and the sum of all allocations, bounded by the input's
//! length.
//!
//! The campaign's first seeds were written into the corpus directory by
//! the ignored test `write_seeds`, then minimized with the campaign's
//! findings (`fuzz/run.sh --cmin membership`):
//!
//!     cargo test -p ferrolb-speaker --test fuzz_corpus -- --ignored write_seeds

#[path = "../../fuzz/replay.rs"]
mod replay;

use std::time::Duration;

use ferrolb_speaker::membership::fuzzing::{self, FUZZ_KEY, fuzz_addr, fuzz_member, sign};
use ferrolb_speaker::membership::{Core, Member, Timing};
use replay::Target;

/// foca sends datagrams of up to 1,400 octets and keeps a few buffers of
/// that size; the two cores of the target are a fixed cost.
fn largest(len: usize) -> usize {
    128 * len + 16 * 1024
}

fn total(len: usize) -> usize {
    1024 * len + 512 * 1024
}

const MEMBERSHIP: Target = Target {
    name: "membership",
    body: fuzzing::membership,
    largest,
    total,
};

#[test]
fn committed_corpus_replays_cleanly() {
    replay::replay_corpus(MEMBERSHIP, 5);
}

#[test]
fn seeds_replay_cleanly() {
    for (name, bytes) in seeds() {
        eprintln!("membership seed {name}");
        replay::run(MEMBERSHIP, &bytes);
    }
}

/// Seeds with octets overwritten, inserted or removed, by a fixed
/// xorshift sequence (2,000 inputs).
#[test]
fn mutated_seeds_replay_cleanly() {
    let seeds = seeds();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut bytes = seeds[next() as usize % seeds.len()].1.clone();
        for _ in 0..1 + next() % 6 {
            let r = next();
            let at = (r >> 8) as usize % (bytes.len() + 1);
            match r % 3 {
                0 if at < bytes.len() => bytes[at] = (r >> 32) as u8,
                1 => bytes.insert(at, (r >> 32) as u8),
                _ if at < bytes.len() => {
                    bytes.remove(at);
                }
                _ => {}
            }
        }
        replay::run(MEMBERSHIP, &bytes);
    }
}

// ---------------------------------------------------------------------------
// Seeds: what node2 and node3 say to node1 while they join, probe, gossip
// and leave, as signed payloads and as whole datagrams; datagrams with a
// bad MAC, another version, too short.

fn record(ctl: u8, bytes: &[u8]) -> Vec<u8> {
    let len = u8::try_from(bytes.len()).unwrap_or(u8::MAX);
    let mut out = vec![ctl, len];
    out.extend_from_slice(bytes);
    out
}

/// The foca payload of a signed datagram.
fn payload(datagram: &[u8]) -> &[u8] {
    &datagram[1..datagram.len() - 32]
}

/// Datagrams node2 and node3 send to node1 over a simulated second.
fn conversation() -> Vec<Vec<u8>> {
    let mut node1 = Core::new(fuzz_member(1), FUZZ_KEY, Timing::default(), 1);
    let mut others = [
        Core::new(fuzz_member(2), FUZZ_KEY, Timing::default(), 2),
        Core::new(fuzz_member(3), FUZZ_KEY, Timing::default(), 3),
    ];
    let mut now = Duration::ZERO;
    node1.announce("node2", fuzz_addr(2), now);
    node1.announce("node3", fuzz_addr(3), now);
    let mut to_node1 = Vec::new();
    for step in 0..100 {
        now += Duration::from_millis(10);
        if step == 90 {
            others[1].leave(now);
        }
        let from1 = node1.take_outbox();
        for (i, other) in others.iter_mut().enumerate() {
            let addr = fuzz_addr(i as u8 + 2);
            for (to, d) in &from1 {
                if *to == addr {
                    let _ = other.receive(d, now);
                }
            }
            other.poll(now);
            for (to, d) in other.take_outbox() {
                if to == fuzz_addr(1) {
                    let _ = node1.receive(&d, now);
                    to_node1.push(d);
                }
            }
        }
        node1.poll(now);
    }
    to_node1
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let said = conversation();
    assert!(said.len() >= 4, "{} datagrams", said.len());
    // sign() frames as the core does.
    assert_eq!(sign(payload(&said[0])), said[0]);
    let mut seeds: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, d) in said.iter().take(6).enumerate() {
        seeds.push((format!("signed-{i}"), record(1, payload(d))));
    }
    // The whole conversation, 10 ms between datagrams.
    let all: Vec<u8> = said
        .iter()
        .take(40)
        .flat_map(|d| record(0b11, payload(d)))
        .collect();
    seeds.push(("signed-conversation".into(), all));
    // A whole datagram as it came off the socket (its MAC verifies), and
    // broken ones.
    seeds.push(("raw-valid".into(), record(0, &said[0])));
    let mut bad_mac = said[0].clone();
    let n = bad_mac.len();
    bad_mac[n - 1] ^= 1;
    seeds.push(("raw-bad-mac".into(), record(0, &bad_mac)));
    let mut version = said[0].clone();
    version[0] = 2;
    seeds.push(("raw-version-2".into(), record(0, &version)));
    seeds.push(("raw-short".into(), record(0, &[1, 2, 3])));
    seeds.push(("signed-empty".into(), record(1, &[])));
    // Time only: node1 probes, suspects and gives up on the others.
    seeds.push((
        "time-passes".into(),
        [record(0xfe, &[]), record(0xfe, &[]), record(0xfe, &[])].concat(),
    ));
    // A speaker with another kind of identity asks node1 to let it in.
    let mut stranger = Core::new(
        Member {
            node: "a-node-with-a-much-longer-name.example".into(),
            addr: "[2001:db8::99]:7946".parse().unwrap(),
            bump: u64::MAX,
        },
        FUZZ_KEY,
        Timing::default(),
        9,
    );
    stranger.announce("node1", fuzz_addr(1), Duration::ZERO);
    for (i, (_, d)) in stranger.take_outbox().into_iter().enumerate() {
        seeds.push((format!("signed-stranger-{i}"), record(1, payload(&d))));
    }
    seeds
}

/// Adds the seeds to the corpus directory.
#[test]
#[ignore = "writes into the source tree"]
fn write_seeds() {
    replay::write_seeds(&replay::corpus_dir("membership"), &seeds());
}
