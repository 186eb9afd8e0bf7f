//! What the router of a speaker lab has learnt, checked the same way in
//! the standalone lab ([`SpeakerLab`]) and the cluster-mode one
//! ([`Cluster`]): the next hops of a prefix as lab nodes ([`hops_of`]),
//! bounded waits on them ([`wait_hops`], [`wait_zebra_hops`]) and on
//! FRR's BFD peers ([`wait_bfd_peer_up`]), and [`time_until`] to time a
//! change (a withdrawal, a move) at a finer [`POLL`] than
//! [`crate::bgp::wait_until`]'s.
//!
//! A lab is reached through [`RoutedLab`]: its router, its logs (for
//! failure messages) and how long its waits last ([`RoutedLab::SETTLE`]).

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bgp::wait_until;
use crate::cluster_lab::Cluster;
use crate::routers::BfdTimers;
use crate::speaker_lab::{LabRouter, NODES, SpeakerLab};

/// How often [`time_until`] polls (FRR, while a withdrawal is timed).
pub const POLL: Duration = Duration::from_millis(20);

/// A lab whose router the waits of this module read.
pub trait RoutedLab<'n> {
    /// The bound of this lab's waits ([`crate::speaker_lab::SETTLE`] or
    /// [`crate::cluster_lab::SETTLE`]).
    const SETTLE: Duration;
    /// The router and what it learnt.
    fn router(&mut self) -> &mut LabRouter<'n>;
    /// Every daemon's log, for failure messages.
    fn logs(&self) -> String;
}

impl<'n> RoutedLab<'n> for SpeakerLab<'n> {
    const SETTLE: Duration = crate::speaker_lab::SETTLE;

    fn router(&mut self) -> &mut LabRouter<'n> {
        SpeakerLab::router(self)
    }

    fn logs(&self) -> String {
        SpeakerLab::logs(self)
    }
}

impl<'n> RoutedLab<'n> for Cluster<'n> {
    const SETTLE: Duration = crate::cluster_lab::SETTLE;

    fn router(&mut self) -> &mut LabRouter<'n> {
        Cluster::router(self)
    }

    fn logs(&self) -> String {
        Cluster::logs(self)
    }
}

/// The IPv4 addresses of the lab nodes named `names`, sorted (as
/// [`LabRouter::next_hops`] gives them).
pub fn hops_of(names: &[&str]) -> Vec<String> {
    let mut hops: Vec<String> = NODES
        .iter()
        .filter(|n| names.contains(&n.name))
        .map(|n| n.v4.to_owned())
        .collect();
    hops.sort();
    hops
}

/// Waits (bounded by the lab's [`RoutedLab::SETTLE`]) until FRR's next
/// hops for `prefix` are exactly those of `nodes`; panics with the next
/// hops, FRR's paths and the logs otherwise.
#[track_caller]
pub fn wait_hops<'n, L: RoutedLab<'n>>(lab: &mut L, prefix: &str, nodes: &[&str]) {
    let want = hops_of(nodes);
    if wait_until(L::SETTLE, || {
        (lab.router().next_hops(prefix) == want).then_some(())
    })
    .is_none()
    {
        panic!(
            "{prefix}: FRR's next hops are {:?}, not those of {nodes:?} ({want:?})\npaths: {:?}\n{}",
            lab.router().next_hops(prefix),
            lab.router().frr_paths(prefix),
            lab.logs()
        );
    }
}

/// Waits (bounded by the lab's [`RoutedLab::SETTLE`]) until zebra's
/// route for `prefix` (`show ip route PREFIX json`) has exactly the
/// nodes' IPv4 addresses of `nodes` as active next hops (ECMP installed);
/// returns them, sorted. Panics with the last next hops seen otherwise.
#[track_caller]
pub fn wait_zebra_hops<'n, L: RoutedLab<'n>>(
    lab: &mut L,
    prefix: &str,
    nodes: &[&str],
) -> Vec<String> {
    let want = hops_of(nodes);
    let mut zebra_hops = Vec::new();
    let installed = wait_until(L::SETTLE, || {
        let route = lab
            .router()
            .frr()
            .json(&format!("show ip route {prefix} json"));
        zebra_hops = route[prefix][0]["nexthops"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["active"] == true)
            .filter_map(|h| h["ip"].as_str().map(str::to_owned))
            .collect::<Vec<_>>();
        zebra_hops.sort();
        (zebra_hops == want).then_some(())
    });
    assert!(
        installed.is_some(),
        "zebra's route for {prefix} has next hops {zebra_hops:?}"
    );
    zebra_hops
}

/// Waits (bounded by the lab's [`RoutedLab::SETTLE`]) until FRR's BFD
/// peer `address` is up with the remote (the speaker's BFDProfile)
/// receive and transmit intervals and detection multiplier of `timers`;
/// panics with the peer and the logs otherwise.
#[track_caller]
pub fn wait_bfd_peer_up<'n, L: RoutedLab<'n>>(lab: &mut L, address: &str, timers: BfdTimers) {
    let mut peer = Value::Null;
    let up = wait_until(L::SETTLE, || {
        peer = lab.router().frr().bfd_peer(address);
        (peer["status"] == "up"
            && peer["remote-receive-interval"] == u64::from(timers.receive_ms)
            && peer["remote-transmit-interval"] == u64::from(timers.transmit_ms)
            && peer["remote-detect-multiplier"] == u64::from(timers.detect_multiplier))
        .then_some(())
    });
    assert!(
        up.is_some(),
        "FRR's BFD peer {address} not up with the profile's timers: {peer}\n{}",
        lab.logs()
    );
}

/// Calls `f` every [`POLL`] until it returns true or `bound` has passed
/// since `since`; the time from `since` when it did.
pub fn time_until(
    since: Instant,
    bound: Duration,
    mut f: impl FnMut() -> bool,
) -> Option<Duration> {
    loop {
        if f() {
            return Some(since.elapsed());
        }
        if since.elapsed() >= bound {
            return None;
        }
        std::thread::sleep(POLL);
    }
}
