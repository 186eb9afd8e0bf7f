//! A deterministic simulation of the speakers' layer-2 failover at scale:
//! N real membership [`Core`]s (foca SWIM, HMAC-framed datagrams) on a
//! simulated network with a simulated clock, and the real election and
//! decision code judging who answers for each Service IP.
//!
//! Nothing here is a model of the membership: every datagram is built,
//! signed, verified and handled by [`Core`], and every timer fires through
//! [`Core::poll`]. What is simulated is around it:
//!
//! - **Network**: each datagram is lost with probability
//!   [`Scenario::loss`] (1 % by default) or delivered after a latency drawn
//!   uniformly from [`Scenario::latency`] (0.1–2 ms). A datagram to a dead
//!   speaker, or across a partition, is dropped. Events are ordered by
//!   (time, sequence number): one seed gives one run, bit for bit.
//! - **The daemon's driver** (`membership::io::run`, which needs a socket
//!   and tokio) is re-enacted: on start a speaker asks every other Node's
//!   speaker to let it in (`set_peers` with all Nodes), asks again every
//!   [`REANNOUNCE`] those that are not live members, and counts as
//!   *joined* when the daemon's own rule ([`Join`]) says so: every other
//!   Node is a live member, two probe periods passed since it first heard
//!   one, or [`JOIN_WAIT`] passed; until then it announces nothing (the daemon gives `decide` an
//!   empty member set). A restart is a new [`Core`] with a higher
//!   [`Member::bump`], as a new process gets.
//! - **Events**: a speaker killed (no leave message: it stops sending,
//!   receiving and polling), a dead one restarted, a partition of the
//!   speakers into two sides and its healing.
//!
//! **Ownership.** Speaker *n* claims an IP when it is alive and joined and
//! [`election::owner`] among the members of *n*'s live view is *n*
//! (weights are all 0: no `preferredNodeSelectors`). Computing that
//! directly for 1,000 views × 100,000 IPs at every check is too slow, so
//! for each IP the 8 best-scored nodes ([`election::score`], ties by name,
//! as `owner` breaks them) are kept; a view's owner is the first of them
//! the view holds, and when it holds none the real [`election::owner`] is
//! asked. Speakers with identical views are grouped, so a converged
//! cluster costs one pass over the IPs. The fast path is checked at every
//! check against [`election::owner`] on the live sets of every speaker for
//! a random sample of IPs, and against [`desired::decide`] (a pool, an
//! L2Advertisement, the Nodes Ready, one Service per IP on a fixed subset
//! of the IPs, `members` = the speaker's live view or nothing while
//! joining, as the daemon passes) for a few random speakers. A mismatch is
//! [`SimError::CrossCheck`]: a bug in this simulation, not in the speaker.
//!
//! **Invariants**, checked at each event's time plus its bound (see
//! [`Scenario::detection_bound`], [`Scenario::partition_bound`],
//! [`Scenario::heal_bound`]): every IP has exactly one claimant, and no live
//! joined speaker elects a dead node (an IP "owned by a dead node" would go
//! unanswered). During a partition each side is its own LAN (a client on a
//! side reaches only that side's speakers), so the rule is exactly one
//! claimant per IP *per side*; after healing, exactly one overall. A
//! violation is [`SimError::Violation`], naming the seed, the event, the
//! time, the IP and the claimants.
//!
//! **Figures** ([`Report`]): failover time per death (from the kill until
//! the dead node is out of every live speaker's view and each of its IPs
//! has exactly one live claimant), time for a partition to settle and to
//! heal, time for a restarted speaker to be seen by all and joined, and
//! datagrams and bytes sent per live speaker per simulated second (UDP
//! payload, without IP/UDP headers).

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use ferrolb_config::Config;
use ferrolb_config::manifest::parse_stream;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::desired::{self, Inputs, LbService, ServiceKey};
use crate::election::{self, Candidate};
use crate::membership::join::{JOIN_WAIT, Join};
use crate::membership::{Core, Member, Timing};

/// The membership key of the simulated speakers.
pub const KEY: &[u8] = b"ferrolb simulation key";
/// How often the daemon asks the Nodes that are not live members again
/// (`REANNOUNCE` in `membership::io`, copied: that constant is private).
pub const REANNOUNCE: Duration = Duration::from_secs(1);
/// foca's periodic gossip as `membership::core` configures it: every
/// 200 ms to 3 members (copied: the configuration is private).
pub const GOSSIP_PERIOD: Duration = Duration::from_millis(200);
/// Probe periods allowed for some live speaker to pick the dead one: each
/// of the N − 1 others probes one member per period, so the chance that
/// none picks it in a period is about (1 − 1/(N−1))^(N−1) ≈ e^−1, and in
/// 12 periods ≈ e^−12 ≈ 6·10^−6.
pub const PROBE_WAIT_PERIODS: u32 = 12;
/// Best-scored nodes kept per IP.
const TOP_K: usize = 8;
/// The pool holding the simulated Service IPs (2001:db8:100::/104).
const POOL: &str = "2001:db8:100::/104";
const POOL_BASE: u128 = 0x2001_0db8_0100_0000_0000_0000_0000_0000;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Speakers (Nodes).
    pub nodes: usize,
    /// Service IPs (one IP per Service).
    pub ips: usize,
    pub seed: u64,
    /// Kill events.
    pub deaths: usize,
    /// At most this many speakers dead at once (a kill event then restarts
    /// one first).
    pub max_dead: usize,
    /// Partition the speakers once, half-way through the deaths, and heal.
    pub partition: bool,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Latency range (uniform).
    pub latency: (Duration, Duration),
    pub timing: Timing,
    /// Speakers start at random times within this span.
    pub start_spread: Duration,
    /// Time after the bootstrap for its gossip backlog to drain (each of
    /// the N joins is piggybacked up to foca's `max_transmissions` times
    /// by every speaker), not measured.
    pub drain: Duration,
    /// Quiet time after the drain, measured as the steady-state rate.
    pub quiet: Duration,
    /// Bound for a death's failover (and a restart's rejoin).
    pub detection_bound: Duration,
    /// Bound after healing a partition.
    pub heal_bound: Duration,
    /// IPs checked against [`election::owner`] at every live speaker, per check.
    pub cross_check_ips: usize,
    /// Speakers checked against [`desired::decide`], per check.
    pub decide_nodes: usize,
    /// IPs (Services) given to [`desired::decide`].
    pub decide_ips: usize,
    /// Record violations in the report and go on, rather than stop at the
    /// first.
    pub keep_going: bool,
}

impl Scenario {
    /// A scenario with the default [`Timing`], 1 % loss, 0.1–2 ms latency,
    /// one kill event per ten speakers (at least 4, at most 40), a
    /// partition, and the bounds derived from the timing.
    pub fn new(nodes: usize, ips: usize, seed: u64) -> Scenario {
        let timing = Timing::default();
        let mut s = Scenario {
            nodes,
            ips,
            seed,
            deaths: (nodes / 10).clamp(4, 40),
            max_dead: (nodes / 20).max(1),
            partition: true,
            loss: 0.01,
            latency: (Duration::from_micros(100), Duration::from_millis(2)),
            timing,
            start_spread: Duration::from_secs(1),
            drain: Duration::from_secs(30),
            quiet: Duration::from_secs(10),
            detection_bound: Duration::ZERO,
            heal_bound: Duration::ZERO,
            cross_check_ips: if nodes > 300 { 8 } else { 32 },
            decide_nodes: 2,
            decide_ips: 128.min(ips),
            keep_going: false,
        };
        s.detection_bound = s.derived_detection_bound();
        s.heal_bound = s.derived_heal_bound();
        s
    }

    /// Time for the dead speaker's death to reach every live view, with a
    /// margin for dissemination. Gossip rounds: 2·⌈log2 N⌉ periods of 200 ms.
    fn gossip_slack(&self) -> Duration {
        let rounds = (self.nodes.max(2) as f64).log2().ceil() as u32;
        GOSSIP_PERIOD * 2 * rounds
    }

    /// [`PROBE_WAIT_PERIODS`] probe periods until some speaker probes the
    /// dead one, one more period until that probe cycle ends (the probe
    /// round trip, `probe_rtt`, and the indirect probes happen within it:
    /// foca judges the probe at the next period's tick) and the member
    /// turns suspect, the suspicion time until it is declared down, and the
    /// gossip slack for the news to reach every live speaker. Default
    /// timing, 1,000 speakers: 12 × 200 + 200 + 300 + 4,000 ms = 6.9 s.
    pub fn derived_detection_bound(&self) -> Duration {
        let t = self.timing;
        t.probe_period * (PROBE_WAIT_PERIODS + 1) + t.suspect_to_down_after + self.gossip_slack()
    }

    /// After healing: the daemon asks every Node that is not a live member
    /// again each [`REANNOUNCE`], foca answers a down member with
    /// "you are down" and it rejoins under a new incarnation; two rounds of
    /// that, then the gossip slack.
    pub fn derived_heal_bound(&self) -> Duration {
        REANNOUNCE * 2 + self.timing.probe_period + self.gossip_slack()
    }

    /// During a partition: every speaker of side A must declare every one
    /// of side B down. Some speaker of A probes a given member of B in a
    /// period with a chance of about |A|/N, so all |B| of them are probed
    /// within (N/|A|)·ln(1000·|B|) periods but for a chance of 10^−3; then
    /// one period, the suspicion time and the gossip slack. The larger of
    /// the two sides' bounds.
    pub fn partition_bound(&self, side_a: usize, side_b: usize) -> Duration {
        let one = |a: usize, b: usize| {
            let periods = (self.nodes as f64 / a.max(1) as f64) * (1000.0 * b.max(1) as f64).ln();
            self.timing.probe_period.mul_f64(periods.ceil() + 1.0)
                + self.timing.suspect_to_down_after
                + self.gossip_slack()
        };
        one(side_a, side_b).max(one(side_b, side_a))
    }

    /// Bound for a restarted speaker: [`JOIN_WAIT`] (it joins at the latest
    /// then, since a dead Node never becomes a live member) and the
    /// detection bound for everyone to have it in their view.
    pub fn join_bound(&self) -> Duration {
        self.detection_bound
            .max(JOIN_WAIT + REANNOUNCE + self.gossip_slack())
    }
}

/// An invariant broken.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub seed: u64,
    /// The event whose bound passed, e.g. `kill node-0042 at 31.2 s`.
    pub event: String,
    /// Simulated time of the check.
    pub at: Duration,
    /// The first IP found broken.
    pub ip: IpAddr,
    /// Speakers claiming it (on the side checked).
    pub claimants: Vec<String>,
    /// What is wrong, with who elects whom.
    pub what: String,
    /// IPs broken at that check.
    pub broken_ips: usize,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {}: after event '{}', at {:.3} s: IP {} {} (claimants: [{}]); {} IP(s) broken at this check",
            self.seed,
            self.event,
            self.at.as_secs_f64(),
            self.ip,
            self.what,
            self.claimants.join(", "),
            self.broken_ips
        )
    }
}

/// Why a simulation stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    #[error("invariant broken: {0}")]
    Violation(Box<Violation>),
    /// The fast ownership path disagrees with the real election or
    /// decision code: a bug in the simulation.
    #[error("seed {seed}: cross-check failed at {at:?}: {what}")]
    CrossCheck {
        seed: u64,
        at: Duration,
        what: String,
    },
    #[error("seed {seed}: {what}")]
    Stuck { seed: u64, what: String },
    #[error("scenario: {0}")]
    Scenario(String),
}

/// Datagrams and bytes per live speaker per simulated second.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rate {
    pub datagrams: f64,
    pub bytes: f64,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub nodes: usize,
    pub ips: usize,
    pub seed: u64,
    /// From the first start until every speaker has every other in view
    /// and has joined.
    pub bootstrap: Duration,
    /// Failover time of each death (see the module docs).
    pub failovers: Vec<Duration>,
    /// Time from a restart until every live view holds the speaker and
    /// it has joined.
    pub rejoins: Vec<Duration>,
    /// Time during a restart when the others already elect the restarted
    /// speaker but it has not joined yet (its IPs go unanswered), each.
    pub restart_gaps: Vec<Duration>,
    /// Side sizes of the partition.
    pub partition_sides: Option<(usize, usize)>,
    /// From the partition until each side has exactly its own live
    /// speakers in view.
    pub partition_settle: Option<Duration>,
    /// From healing until every view holds every live speaker and every IP
    /// has exactly one claimant.
    pub heal: Option<Duration>,
    /// The bounds used.
    pub detection_bound: Duration,
    pub partition_bound: Option<Duration>,
    pub heal_bound: Duration,
    pub join_bound: Duration,
    /// Rate in the quiet window after the bootstrap and its drain.
    pub steady: Rate,
    /// Rate from the end of the bootstrap to the end of the run.
    pub overall: Rate,
    /// Rate while partitioned.
    pub partitioned: Rate,
    /// Rate during the bootstrap.
    pub bootstrap_rate: Rate,
    pub datagrams_sent: u64,
    pub bytes_sent: u64,
    /// Lost by the simulated 1 % loss.
    pub datagrams_lost: u64,
    /// Sent to a dead speaker or across the partition.
    pub datagrams_dropped: u64,
    pub datagrams_refused: u64,
    /// Invariant checks passed (each over every IP).
    pub checks: usize,
    /// (IP, speaker) pairs compared with [`election::owner`].
    pub election_cross_checks: u64,
    /// [`desired::decide`] calls compared.
    pub decide_cross_checks: u64,
    /// Views whose owner of an IP was not among its top 8.
    pub fallbacks: u64,
    /// Simulated time.
    pub simulated: Duration,
    /// Events applied, in order.
    pub events: Vec<String>,
    /// Invariants broken (only with [`Scenario::keep_going`]).
    pub violations: Vec<Violation>,
}

/// The p-th percentile (nearest rank) of `v`; None when empty.
pub fn percentile(v: &[Duration], p: f64) -> Option<Duration> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    Some(s[rank.min(s.len()) - 1])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3))
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |v: &Vec<Duration>| {
            format!(
                "n={} p50 {} p99 {} max {}",
                v.len(),
                ms(percentile(v, 50.0)),
                ms(percentile(v, 99.0)),
                ms(v.iter().max().copied())
            )
        };
        let r = |r: &Rate| format!("{:.1} datagrams/s, {:.0} B/s", r.datagrams, r.bytes);
        writeln!(
            f,
            "nodes {} ips {} seed {} simulated {:.1} s",
            self.nodes,
            self.ips,
            self.seed,
            self.simulated.as_secs_f64()
        )?;
        writeln!(f, "bootstrap {}", ms(Some(self.bootstrap)))?;
        writeln!(
            f,
            "failover {} (bound {})",
            p(&self.failovers),
            ms(Some(self.detection_bound))
        )?;
        writeln!(
            f,
            "rejoin {} (bound {})",
            p(&self.rejoins),
            ms(Some(self.join_bound))
        )?;
        writeln!(f, "restart gap {}", p(&self.restart_gaps))?;
        writeln!(
            f,
            "partition sides {:?} settle {} (bound {}); heal {} (bound {})",
            self.partition_sides,
            ms(self.partition_settle),
            ms(self.partition_bound),
            ms(self.heal),
            ms(Some(self.heal_bound))
        )?;
        writeln!(f, "per speaker, steady: {}", r(&self.steady))?;
        writeln!(
            f,
            "per speaker, whole run after bootstrap: {}",
            r(&self.overall)
        )?;
        writeln!(f, "per speaker, partitioned: {}", r(&self.partitioned))?;
        writeln!(f, "per speaker, bootstrap: {}", r(&self.bootstrap_rate))?;
        writeln!(
            f,
            "datagrams sent {} ({} bytes), lost {}, dropped (dead or partitioned) {}, refused {}",
            self.datagrams_sent,
            self.bytes_sent,
            self.datagrams_lost,
            self.datagrams_dropped,
            self.datagrams_refused
        )?;
        for v in &self.violations {
            writeln!(f, "VIOLATION {v}")?;
        }
        write!(
            f,
            "checks {} (every IP), election cross-checks {}, decide cross-checks {}, top-8 fallbacks {}",
            self.checks, self.election_cross_checks, self.decide_cross_checks, self.fallbacks
        )
    }
}

/// A set of node indices.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    fn get(&self, i: usize) -> bool {
        self.0[i / 64] & (1 << (i % 64)) != 0
    }
    fn set(&mut self, i: usize, on: bool) {
        if on {
            self.0[i / 64] |= 1 << (i % 64);
        } else {
            self.0[i / 64] &= !(1 << (i % 64));
        }
    }
    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    fn clear(&mut self) {
        self.0.iter_mut().for_each(|w| *w = 0);
    }
    fn ones(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(wi, &w)| {
            let mut w = w;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let b = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(wi * 64 + b)
            })
        })
    }
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Start {
        node: usize,
    },
    Deliver {
        to: usize,
        from: usize,
        bytes: Vec<u8>,
    },
    Poll {
        node: usize,
        generation: u64,
    },
    Reannounce {
        node: usize,
        generation: u64,
    },
    JoinWait {
        node: usize,
        generation: u64,
    },
}

struct Node {
    name: String,
    addr: SocketAddr,
    core: Option<Core>,
    generation: u64,
    /// The daemon's join rule ([`Join`]) and its outcome.
    join: Join,
    joined: bool,
    /// The join deadline an `Ev::JoinWait` is queued for.
    join_at: Option<Duration>,
    view: Bits,
    seen_changes: u64,
    poll_at: Option<Duration>,
    side: u8,
    /// |view Δ target| (target: the live speakers, of this side when
    /// partitioned).
    mismatch: usize,
}

struct Death {
    node: usize,
    at: Duration,
    ips: Vec<usize>,
    done: bool,
}

struct Restart {
    node: usize,
    at: Duration,
    first_seen: Option<Duration>,
    joined: Option<Duration>,
    done: bool,
}

/// Speakers grouped by identical view (alive and joined ones only).
struct Groups {
    reps: Vec<usize>,
    group_of: Vec<u32>,
}

#[derive(Clone, Copy, Default)]
struct Counters {
    datagrams: u64,
    bytes: u64,
    node_secs: f64,
}

struct Sim<'s> {
    sc: &'s Scenario,
    rng: StdRng,
    now: Duration,
    seq: u64,
    queue: BinaryHeap<Reverse<(Duration, u64, Ev)>>,
    nodes: Vec<Node>,
    by_addr: HashMap<SocketAddr, usize>,
    by_name: HashMap<String, usize>,
    topk: Vec<[u32; TOP_K]>,
    /// Live speakers whose view holds each node.
    in_views: Vec<u32>,
    alive: Bits,
    alive_count: usize,
    /// What each side's speakers should see (0, 1), and all of them (2).
    targets: Vec<Bits>,
    /// Alive speakers whose view is not their target or not joined.
    unsettled: usize,
    partitioned: bool,
    dirty: bool,
    counters: Counters,
    lost: u64,
    dropped: u64,
    refused: u64,
    fallbacks: std::cell::Cell<u64>,
    deaths: Vec<Death>,
    restarts: Vec<Restart>,
    config: Config,
    decide_services: Vec<LbService>,
    decide_ip_index: Vec<usize>,
    report: Report,
    event: String,
    /// Tracking of a partition or heal: (since, kind).
    settling: Option<(Duration, Settling)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Settling {
    Bootstrap,
    Partition,
    Heal,
}

/// The address of speaker `i`: 192.0.2.1–250, port 7946 + i / 250 (the
/// documentation /24 is too small for 1,000; ports keep them apart with
/// the on-the-wire size of an IPv4 cluster's).
pub fn node_addr(i: usize) -> SocketAddr {
    SocketAddr::from((
        Ipv4Addr::new(192, 0, 2, (1 + i % 250) as u8),
        7946 + (i / 250) as u16,
    ))
}

/// The name of speaker `i`.
pub fn node_name(i: usize) -> String {
    format!("node-{i:04}")
}

/// Service IP number `i` (2001:db8:100::/104).
pub fn service_ip(i: usize) -> IpAddr {
    IpAddr::V6(Ipv6Addr::from(POOL_BASE + i as u128))
}

fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

/// Builds the configuration `decide` reads: the Nodes (Ready, with their
/// InternalIP), a pool holding the Service IPs and an L2Advertisement.
fn build_config(names: &[String]) -> Result<Config, SimError> {
    let mut text = format!(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {{name: sim, namespace: ferrolb-system}}\nspec: {{addresses: [\"{POOL}\"]}}\n---\napiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: sim, namespace: ferrolb-system}}\nspec: {{}}\n"
    );
    for (i, name) in names.iter().enumerate() {
        text.push_str(&format!(
            "---\napiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\nstatus: {{conditions: [{{type: Ready, status: \"True\"}}], addresses: [{{type: InternalIP, address: \"{}\"}}]}}\n",
            node_addr(i).ip()
        ));
    }
    let parsed = parse_stream(&text, "simulation.yaml");
    let mut problems = parsed.problems;
    let mut cfg = Config::default();
    cfg.add_objects(parsed.objects, &mut problems);
    if !problems.is_empty() {
        return Err(SimError::Scenario(format!(
            "the simulated configuration has problems: {problems:?}"
        )));
    }
    Ok(cfg)
}

/// Runs the scenario. Deterministic: the same scenario gives the same
/// report.
pub fn run(sc: &Scenario) -> Result<Report, SimError> {
    if sc.nodes < 3 || sc.ips == 0 || sc.nodes > 60_000 {
        return Err(SimError::Scenario(format!(
            "need 3–60,000 nodes and at least one IP (got {} nodes, {} IPs)",
            sc.nodes, sc.ips
        )));
    }
    let mut sim = Sim::new(sc)?;
    sim.main()?;
    Ok(sim.finish())
}

impl<'s> Sim<'s> {
    fn new(sc: &'s Scenario) -> Result<Sim<'s>, SimError> {
        let n = sc.nodes;
        let names: Vec<String> = (0..n).map(node_name).collect();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| Node {
                name: name.clone(),
                addr: node_addr(i),
                core: None,
                generation: 0,
                join: Join::new(Duration::ZERO, sc.timing),
                joined: false,
                join_at: None,
                view: Bits::new(n),
                seen_changes: 0,
                poll_at: None,
                side: 0,
                mismatch: 0,
            })
            .collect();
        // The best-scored nodes of each IP, as election::owner orders
        // them: (weight 0, score, name), highest first.
        let topk = (0..sc.ips)
            .map(|ip| {
                let addr = service_ip(ip);
                let mut best: Vec<(u64, usize)> = Vec::with_capacity(TOP_K + 1);
                for (i, name) in names.iter().enumerate() {
                    let s = election::score(name, addr);
                    let better = |b: &(u64, usize)| (s, name) > (b.0, &names[b.1]);
                    if best.len() < TOP_K || better(&best[best.len() - 1]) {
                        let pos = best.iter().position(better).unwrap_or(best.len());
                        best.insert(pos, (s, i));
                        best.truncate(TOP_K);
                    }
                }
                let mut out = [u32::MAX; TOP_K];
                for (k, (_, i)) in best.iter().enumerate() {
                    out[k] = *i as u32;
                }
                out
            })
            .collect();
        let config = build_config(&names)?;
        let step = (sc.ips / sc.decide_ips.max(1)).max(1);
        let decide_ip_index: Vec<usize> = (0..sc.ips).step_by(step).take(sc.decide_ips).collect();
        let decide_services = decide_ip_index
            .iter()
            .map(|&ip| LbService {
                key: ServiceKey {
                    namespace: "default".into(),
                    name: format!("svc-{ip}"),
                },
                labels: Default::default(),
                class: None,
                deleting: false,
                local: false,
                ips: vec![service_ip(ip)],
                not_ips: Vec::new(),
            })
            .collect();
        Ok(Sim {
            sc,
            rng: StdRng::seed_from_u64(mix(sc.seed)),
            now: Duration::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            by_addr: (0..n).map(|i| (node_addr(i), i)).collect(),
            by_name: names.iter().cloned().zip(0..n).collect(),
            nodes,
            topk,
            in_views: vec![0; n],
            alive: Bits::new(n),
            alive_count: 0,
            targets: vec![Bits::new(n), Bits::new(n), Bits::new(n)],
            unsettled: 0,
            partitioned: false,
            dirty: false,
            counters: Counters::default(),
            lost: 0,
            dropped: 0,
            refused: 0,
            fallbacks: std::cell::Cell::new(0),
            deaths: Vec::new(),
            restarts: Vec::new(),
            config,
            decide_services,
            decide_ip_index,
            report: Report {
                nodes: sc.nodes,
                ips: sc.ips,
                seed: sc.seed,
                detection_bound: sc.detection_bound,
                heal_bound: sc.heal_bound,
                join_bound: sc.join_bound(),
                ..Report::default()
            },
            event: "bootstrap".into(),
            settling: None,
        })
    }

    fn push(&mut self, at: Duration, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    // ---- the network and the daemon's driver ----

    fn start(&mut self, i: usize) {
        let now = self.now;
        let generation = self.nodes[i].generation + 1;
        let me = Member {
            node: self.nodes[i].name.clone(),
            addr: self.nodes[i].addr,
            bump: generation,
        };
        let seed = mix(self.sc.seed ^ mix(i as u64) ^ mix(generation << 32));
        let mut core = Core::new(me, KEY, self.sc.timing, seed);
        // set_peers with every other Node: announce to each.
        for j in 0..self.sc.nodes {
            if j != i {
                core.announce(&self.nodes[j].name, self.nodes[j].addr, now);
            }
        }
        let node = &mut self.nodes[i];
        node.core = Some(core);
        node.generation = generation;
        node.join = Join::new(now, self.sc.timing);
        node.joined = false;
        node.join_at = Some(now + JOIN_WAIT);
        node.seen_changes = 0;
        node.poll_at = None;
        node.view.clear();
        node.view.set(i, true);
        self.in_views[i] += 1;
        self.alive.set(i, true);
        self.alive_count += 1;
        self.push(
            now + REANNOUNCE,
            Ev::Reannounce {
                node: i,
                generation,
            },
        );
        self.push(
            now + JOIN_WAIT,
            Ev::JoinWait {
                node: i,
                generation,
            },
        );
        self.retarget();
        self.touched(i);
    }

    fn kill(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.core = None;
        node.generation += 1;
        node.joined = false;
        node.poll_at = None;
        for b in node.view.ones() {
            self.in_views[b] -= 1;
        }
        node.view.clear();
        self.alive.set(i, false);
        self.alive_count -= 1;
        self.retarget();
        self.dirty = true;
    }

    /// The live speakers a speaker should see.
    fn target_of(&self, i: usize) -> &Bits {
        if self.partitioned {
            &self.targets[usize::from(self.nodes[i].side)]
        } else {
            &self.targets[2]
        }
    }

    fn mismatch_of(view: &Bits, target: &Bits) -> usize {
        view.0
            .iter()
            .zip(&target.0)
            .map(|(a, b)| (a ^ b).count_ones() as usize)
            .sum()
    }

    /// Recomputes every speaker's distance to its target (after an event).
    fn retarget(&mut self) {
        self.targets = vec![
            self.target_of_side(0),
            self.target_of_side(1),
            self.alive.clone(),
        ];
        self.unsettled = 0;
        for i in 0..self.sc.nodes {
            let mismatch = Self::mismatch_of(&self.nodes[i].view, self.target_of(i));
            let node = &mut self.nodes[i];
            node.mismatch = mismatch;
            if node.core.is_some() && (node.mismatch > 0 || !node.joined) {
                self.unsettled += 1;
            }
        }
    }

    fn target_of_side(&self, side: u8) -> Bits {
        let mut t = self.alive.clone();
        for j in 0..self.sc.nodes {
            if self.nodes[j].side != side {
                t.set(j, false);
            }
        }
        t
    }

    fn is_unsettled(&self, i: usize) -> bool {
        let n = &self.nodes[i];
        n.core.is_some() && (n.mismatch > 0 || !n.joined)
    }

    /// After the core of `i` ran: send its datagrams, refresh its view,
    /// schedule its timers.
    fn touched(&mut self, i: usize) {
        let now = self.now;
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        let out = core.take_outbox();
        let deadline = core.next_deadline();
        let changes = core.changes;
        for (to, bytes) in out {
            self.counters.datagrams += 1;
            self.counters.bytes += bytes.len() as u64;
            if self.rng.random_bool(self.sc.loss) {
                self.lost += 1;
                continue;
            }
            let (lo, hi) = self.sc.latency;
            let delay = if hi > lo {
                Duration::from_nanos(
                    self.rng
                        .random_range(lo.as_nanos() as u64..=hi.as_nanos() as u64),
                )
            } else {
                lo
            };
            match self.by_addr.get(&to) {
                Some(&j) => self.push(
                    now + delay,
                    Ev::Deliver {
                        to: j,
                        from: i,
                        bytes,
                    },
                ),
                None => self.lost += 1,
            }
        }
        if changes != self.nodes[i].seen_changes {
            self.refresh_view(i);
        }
        if let Some(d) = deadline
            && self.nodes[i].poll_at.is_none_or(|p| d < p)
        {
            self.nodes[i].poll_at = Some(d);
            let generation = self.nodes[i].generation;
            self.push(
                d.max(now),
                Ev::Poll {
                    node: i,
                    generation,
                },
            );
        }
    }

    fn refresh_view(&mut self, i: usize) {
        let was_unsettled = self.is_unsettled(i);
        let n = self.sc.nodes;
        let Some(core) = self.nodes[i].core.as_ref() else {
            return;
        };
        let mut view = Bits::new(n);
        for name in core.live() {
            if let Some(&j) = self.by_name.get(name) {
                view.set(j, true);
            }
        }
        let changes = core.changes;
        let old = std::mem::replace(&mut self.nodes[i].view, view);
        for (w, (a, b)) in old.0.iter().zip(&self.nodes[i].view.0).enumerate() {
            let mut x = a ^ b;
            while x != 0 {
                let bit = x.trailing_zeros() as usize;
                x &= x - 1;
                let j = w * 64 + bit;
                if b & (1 << bit) != 0 {
                    self.in_views[j] += 1;
                } else {
                    self.in_views[j] -= 1;
                }
            }
        }
        let all_live = self.nodes[i].view.count() == n;
        let mismatch = Self::mismatch_of(&self.nodes[i].view, self.target_of(i));
        let node = &mut self.nodes[i];
        node.seen_changes = changes;
        node.mismatch = mismatch;
        // The daemon's join rule, on this view.
        let others_live = node.view.count() > 1;
        node.joined = node.join.update(self.now, others_live, all_live);
        self.schedule_join(i);
        self.update_settled(i, was_unsettled);
        self.dirty = true;
    }

    /// Queues an `Ev::JoinWait` for the join's deadline when it is earlier
    /// than the one queued (the first member heard brings it forward).
    fn schedule_join(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(at) = node.join.deadline() else {
            return;
        };
        if node.join_at.is_some_and(|queued| queued <= at) {
            return;
        }
        node.join_at = Some(at);
        let generation = node.generation;
        self.push(
            at.max(self.now),
            Ev::JoinWait {
                node: i,
                generation,
            },
        );
    }

    fn update_settled(&mut self, i: usize, was: bool) {
        let now = self.is_unsettled(i);
        match (was, now) {
            (true, false) => self.unsettled -= 1,
            (false, true) => self.unsettled += 1,
            _ => {}
        }
    }

    fn handle(&mut self, ev: Ev) {
        let now = self.now;
        match ev {
            Ev::Start { node } => self.start(node),
            Ev::Deliver { to, from, bytes } => {
                if self.partitioned && self.nodes[to].side != self.nodes[from].side {
                    self.dropped += 1;
                    return;
                }
                let Some(core) = self.nodes[to].core.as_mut() else {
                    self.dropped += 1;
                    return;
                };
                if core.receive(&bytes, now).is_err() {
                    self.refused += 1;
                }
                self.touched(to);
            }
            Ev::Poll { node, generation } => {
                let n = &mut self.nodes[node];
                if n.generation != generation || n.poll_at != Some(now) {
                    return;
                }
                n.poll_at = None;
                if let Some(core) = n.core.as_mut() {
                    core.poll(now);
                }
                self.touched(node);
            }
            Ev::Reannounce { node, generation } => {
                if self.nodes[node].generation != generation {
                    return;
                }
                let missing: Vec<usize> = (0..self.sc.nodes)
                    .filter(|&j| !self.nodes[node].view.get(j))
                    .collect();
                if let Some(core) = self.nodes[node].core.as_mut() {
                    for j in missing {
                        core.announce(&node_name(j), node_addr(j), now);
                    }
                }
                self.push(now + REANNOUNCE, Ev::Reannounce { node, generation });
                self.touched(node);
            }
            Ev::JoinWait { node, generation } => {
                if self.nodes[node].generation != generation {
                    return;
                }
                let was = self.is_unsettled(node);
                let now = self.now;
                let n = &mut self.nodes[node];
                n.join_at = None;
                let others_live = n.view.count() > 1;
                let all_live = n.view.count() == self.sc.nodes;
                n.joined = n.join.update(now, others_live, all_live);
                self.schedule_join(node);
                self.update_settled(node, was);
                self.dirty = true;
            }
        }
    }

    /// Runs the queue until `until`, following the trackers.
    fn run_until(&mut self, until: Duration) -> Result<(), SimError> {
        let mut same_instant = 0u64;
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            let at = *at;
            if at > until {
                break;
            }
            if at > self.now {
                self.counters.node_secs += self.alive_count as f64 * (at - self.now).as_secs_f64();
                self.now = at;
                same_instant = 0;
            }
            same_instant += 1;
            if same_instant > 50_000_000 {
                return Err(SimError::Stuck {
                    seed: self.sc.seed,
                    what: format!("more than 50 million events at {}", secs(at)),
                });
            }
            let Some(Reverse((_, _, ev))) = self.queue.pop() else {
                break;
            };
            self.handle(ev);
            if self.dirty {
                self.dirty = false;
                self.track();
            }
        }
        if until > self.now {
            self.counters.node_secs += self.alive_count as f64 * (until - self.now).as_secs_f64();
            self.now = until;
        }
        Ok(())
    }

    // ---- ownership ----

    fn owner_in(&self, view: &Bits, ip: usize) -> usize {
        for &c in &self.topk[ip] {
            if c != u32::MAX && view.get(c as usize) {
                return c as usize;
            }
        }
        self.fallbacks.set(self.fallbacks.get() + 1);
        let cands: Vec<Candidate<'_>> = view
            .ones()
            .map(|j| Candidate {
                node: &self.nodes[j].name,
                weight: 0,
            })
            .collect();
        let name = election::owner(service_ip(ip), &cands).expect("a view holds its own node");
        self.by_name[name]
    }

    fn groups(&self, side: Option<u8>) -> Groups {
        let mut index: HashMap<&Bits, u32> = HashMap::new();
        let mut reps = Vec::new();
        let mut group_of = vec![u32::MAX; self.sc.nodes];
        for (i, node) in self.nodes.iter().enumerate() {
            if node.core.is_none() || !node.joined || side.is_some_and(|s| node.side != s) {
                continue;
            }
            let g = *index.entry(&node.view).or_insert_with(|| {
                reps.push(i);
                (reps.len() - 1) as u32
            });
            group_of[i] = g;
        }
        Groups { reps, group_of }
    }

    /// The claimants of `ip` among the grouped speakers, and a dead node
    /// some group elects (with the group's representative).
    fn claims(&self, g: &Groups, ip: usize, out: &mut Vec<usize>) -> Option<(usize, usize)> {
        out.clear();
        let mut dead = None;
        for (k, &rep) in g.reps.iter().enumerate() {
            let o = self.owner_in(&self.nodes[rep].view, ip);
            if self.nodes[o].core.is_none() {
                dead = Some((o, rep));
            } else if g.group_of[o] == k as u32 {
                out.push(o);
            }
        }
        dead
    }

    fn sides(&self) -> Vec<Option<u8>> {
        if self.partitioned {
            vec![Some(0), Some(1)]
        } else {
            vec![None]
        }
    }

    /// Every IP has exactly one claimant (per side) and no group elects a
    /// dead node; Err with the first broken IP.
    fn check_all(&mut self) -> Result<(), SimError> {
        let mut out = Vec::new();
        for side in self.sides() {
            let g = self.groups(side);
            let mut first: Option<(usize, Vec<usize>, String)> = None;
            let mut broken = 0;
            for ip in 0..self.sc.ips {
                let dead = self.claims(&g, ip, &mut out);
                let what = if let Some((d, rep)) = dead {
                    Some(format!(
                        "is elected to dead node {} by live speaker {} (and the speakers with its view)",
                        self.nodes[d].name, self.nodes[rep].name
                    ))
                } else if out.len() != 1 {
                    Some(format!(
                        "has {} claimants{} (views in play: {})",
                        out.len(),
                        side.map_or(String::new(), |s| format!(" on partition side {s}")),
                        g.reps.len()
                    ))
                } else {
                    None
                };
                if let Some(what) = what {
                    broken += 1;
                    if first.is_none() {
                        first = Some((ip, out.clone(), what));
                    }
                }
            }
            if let Some((ip, claimants, what)) = first {
                let v = Violation {
                    seed: self.sc.seed,
                    event: self.event.clone(),
                    at: self.now,
                    ip: service_ip(ip),
                    claimants: claimants
                        .iter()
                        .map(|&c| self.nodes[c].name.clone())
                        .collect(),
                    what: format!("{what}; {}", self.stale_views(3)),
                    broken_ips: broken,
                };
                if self.sc.keep_going {
                    self.report.violations.push(v);
                } else {
                    return Err(SimError::Violation(Box::new(v)));
                }
            }
        }
        self.cross_check()?;
        self.report.checks += 1;
        Ok(())
    }

    /// The fast path against the real election (every live speaker, a few
    /// IPs) and the real decision (a few speakers, the Service subset).
    fn cross_check(&mut self) -> Result<(), SimError> {
        let mut out = Vec::new();
        let mut compared = 0;
        for side in self.sides() {
            let g = self.groups(side);
            for _ in 0..self.sc.cross_check_ips {
                let ip = self.rng.random_range(0..self.sc.ips);
                let addr = service_ip(ip);
                let _ = self.claims(&g, ip, &mut out);
                let mut fast = out.clone();
                fast.sort();
                let mut real = Vec::new();
                for (i, node) in self.nodes.iter().enumerate() {
                    let Some(core) = &node.core else { continue };
                    if !node.joined || side.is_some_and(|s| node.side != s) {
                        continue;
                    }
                    let cands: Vec<Candidate<'_>> = core
                        .live()
                        .iter()
                        .map(|n| Candidate {
                            node: n.as_str(),
                            weight: 0,
                        })
                        .collect();
                    let owner = election::owner(addr, &cands);
                    if owner == Some(node.name.as_str()) {
                        real.push(i);
                    }
                    let fast_owner = self.owner_in(&node.view, ip);
                    if owner != Some(self.nodes[fast_owner].name.as_str()) {
                        return Err(self.cross_error(format!(
                            "{addr}: election::owner over {}'s live set is {owner:?}, the fast path says {}",
                            node.name, self.nodes[fast_owner].name
                        )));
                    }
                    compared += 1;
                }
                if real != fast {
                    return Err(self.cross_error(format!(
                        "{addr}: claimants by election::owner {real:?}, by the fast path {fast:?}"
                    )));
                }
            }
        }
        self.report.election_cross_checks += compared;
        let empty = BTreeSet::new();
        for _ in 0..self.sc.decide_nodes {
            let i = self.rng.random_range(0..self.sc.nodes);
            let node = &self.nodes[i];
            let Some(core) = &node.core else { continue };
            let members = if node.joined { core.live() } else { &empty };
            let d = desired::decide(Inputs {
                config: &self.config,
                services: &self.decide_services,
                members: Some(members),
                node: &node.name,
                lb_class: None,
            });
            for (k, &ip) in self.decide_ip_index.iter().enumerate() {
                let addr = service_ip(ip);
                let fast_owner = node.joined.then(|| self.owner_in(&node.view, ip));
                let fast_claims = fast_owner == Some(i);
                if d.l2.contains_key(&addr) != fast_claims {
                    return Err(self.cross_error(format!(
                        "{addr} at {}: decide announces it: {}, the fast path: {fast_claims}",
                        node.name,
                        d.l2.contains_key(&addr)
                    )));
                }
                let decided = d
                    .services
                    .iter()
                    .find(|s| s.key == self.decide_services[k].key)
                    .and_then(|s| s.ips.first())
                    .and_then(|x| x.l2_owner.clone());
                let fast_name = fast_owner.map(|o| self.nodes[o].name.clone());
                if decided != fast_name {
                    return Err(self.cross_error(format!(
                        "{addr} at {}: decide elects {decided:?}, the fast path {fast_name:?}",
                        node.name
                    )));
                }
            }
            self.report.decide_cross_checks += 1;
        }
        Ok(())
    }

    /// Up to `max` live speakers whose view is not what it should be:
    /// the members they still hold and those they miss.
    fn stale_views(&self, max: usize) -> String {
        let stale: Vec<usize> = (0..self.sc.nodes)
            .filter(|&i| self.is_unsettled(i))
            .collect();
        if stale.is_empty() {
            return "every live speaker's view is its side's live speakers".into();
        }
        let names = |it: &mut dyn Iterator<Item = usize>| {
            let v: Vec<String> = it.take(5).map(|j| self.nodes[j].name.clone()).collect();
            v.join(" ")
        };
        let mut parts = Vec::new();
        for &i in stale.iter().take(max) {
            let view = &self.nodes[i].view;
            let target = self.target_of(i);
            let extra = names(&mut view.ones().filter(|&j| !target.get(j)));
            let missing = names(&mut target.ones().filter(|&j| !view.get(j)));
            parts.push(format!(
                "{} (joined {}) still holds [{extra}] and misses [{missing}]",
                self.nodes[i].name, self.nodes[i].joined
            ));
        }
        format!(
            "{} live speaker(s) with a stale view, e.g. {}",
            stale.len(),
            parts.join("; ")
        )
    }

    fn cross_error(&self, what: String) -> SimError {
        SimError::CrossCheck {
            seed: self.sc.seed,
            at: self.now,
            what,
        }
    }

    // ---- trackers ----

    fn track(&mut self) {
        let now = self.now;
        let mut out = Vec::new();
        let pending: Vec<usize> = (0..self.deaths.len())
            .filter(|&k| !self.deaths[k].done && self.in_views[self.deaths[k].node] == 0)
            .collect();
        if !pending.is_empty() {
            let g = self.groups(None);
            for k in pending {
                let ok = self.deaths[k].ips.iter().all(|&ip| {
                    let dead = self.claims(&g, ip, &mut out);
                    dead.is_none() && out.len() == 1
                });
                if ok {
                    let d = &mut self.deaths[k];
                    d.done = true;
                    self.report.failovers.push(now - d.at);
                }
            }
        }
        for k in 0..self.restarts.len() {
            let r = &self.restarts[k];
            if r.done {
                continue;
            }
            let node = r.node;
            let seen_by_others = self.in_views[node] > 1;
            let joined = self.nodes[node].joined;
            let settled = self.unsettled == 0;
            let r = &mut self.restarts[k];
            if r.first_seen.is_none() && seen_by_others {
                r.first_seen = Some(now);
            }
            if r.joined.is_none() && joined {
                r.joined = Some(now);
            }
            if settled {
                r.done = true;
                self.report.rejoins.push(now - r.at);
                let gap = match (r.first_seen, r.joined) {
                    (Some(s), Some(j)) => j.saturating_sub(s),
                    _ => Duration::ZERO,
                };
                self.report.restart_gaps.push(gap);
            }
        }
        if let Some((since, kind)) = self.settling
            && self.unsettled == 0
            && self.alive_count > 0
            && (kind != Settling::Bootstrap || self.alive_count == self.sc.nodes)
        {
            let ok = match kind {
                Settling::Heal => {
                    let g = self.groups(None);
                    (0..self.sc.ips).all(|ip| {
                        let dead = self.claims(&g, ip, &mut out);
                        dead.is_none() && out.len() == 1
                    })
                }
                _ => true,
            };
            if ok {
                let took = now - since;
                match kind {
                    Settling::Bootstrap => self.report.bootstrap = took,
                    Settling::Partition => self.report.partition_settle = Some(took),
                    Settling::Heal => self.report.heal = Some(took),
                }
                self.settling = None;
            }
        }
    }

    fn snapshot(&self) -> Counters {
        self.counters
    }

    fn rate(a: Counters, b: Counters) -> Rate {
        let ns = b.node_secs - a.node_secs;
        if ns <= 0.0 {
            return Rate::default();
        }
        Rate {
            datagrams: (b.datagrams - a.datagrams) as f64 / ns,
            bytes: (b.bytes - a.bytes) as f64 / ns,
        }
    }

    fn log_event(&mut self, what: String) {
        self.event = format!("{what} at {}", secs(self.now));
        self.report.events.push(self.event.clone());
    }

    // ---- the scenario ----

    fn main(&mut self) -> Result<(), SimError> {
        let sc = self.sc;
        // Bootstrap: every speaker starts at a random time in the spread.
        for i in 0..sc.nodes {
            let at = Duration::from_nanos(
                self.rng
                    .random_range(0..=sc.start_spread.as_nanos().max(1) as u64),
            );
            self.push(at, Ev::Start { node: i });
        }
        self.settling = Some((Duration::ZERO, Settling::Bootstrap));
        self.report.events.push("bootstrap at 0.000 s".into());
        let limit = sc.start_spread + Duration::from_secs(120);
        while self.settling.is_some() && self.now < limit {
            let next = self.now + Duration::from_millis(100);
            self.run_until(next)?;
        }
        if self.settling.is_some() {
            return Err(SimError::Stuck {
                seed: sc.seed,
                what: format!(
                    "the bootstrap did not converge in {} ({} speakers unsettled)",
                    secs(limit),
                    self.unsettled
                ),
            });
        }
        let boot_end = self.snapshot();
        self.report.bootstrap_rate = Self::rate(Counters::default(), boot_end);
        self.check_all()?;
        let drained = self.now + sc.drain;
        self.run_until(drained)?;
        let quiet_start = self.snapshot();
        let quiet_end = self.now + sc.quiet;
        self.run_until(quiet_end)?;
        self.report.steady = Self::rate(quiet_start, self.snapshot());
        self.event = "quiet window".into();
        self.check_all()?;

        let mut kills = 0;
        let mut partitioned_done = !sc.partition;
        while kills < sc.deaths || !partitioned_done {
            if !partitioned_done && kills >= sc.deaths / 2 {
                self.partition_and_heal()?;
                partitioned_done = true;
                continue;
            }
            let dead: Vec<usize> = (0..sc.nodes).filter(|&i| !self.alive.get(i)).collect();
            let restart =
                !dead.is_empty() && (dead.len() >= sc.max_dead || self.rng.random_bool(0.5));
            if restart {
                let i = dead[self.rng.random_range(0..dead.len())];
                self.log_event(format!("restart {}", self.nodes[i].name));
                self.restarts.push(Restart {
                    node: i,
                    at: self.now,
                    first_seen: None,
                    joined: None,
                    done: false,
                });
                self.start(i);
                let until = self.now + sc.join_bound();
                self.run_until(until)?;
                self.check_all()?;
            } else {
                let live: Vec<usize> = (0..sc.nodes).filter(|&i| self.alive.get(i)).collect();
                let i = live[self.rng.random_range(0..live.len())];
                let g = self.groups(None);
                let mut out = Vec::new();
                let ips: Vec<usize> = (0..sc.ips)
                    .filter(|&ip| {
                        self.claims(&g, ip, &mut out);
                        out.contains(&i)
                    })
                    .collect();
                self.log_event(format!(
                    "kill {} (owner of {} IPs)",
                    self.nodes[i].name,
                    ips.len()
                ));
                self.deaths.push(Death {
                    node: i,
                    at: self.now,
                    ips,
                    done: false,
                });
                self.kill(i);
                kills += 1;
                let until = self.now + sc.detection_bound;
                self.run_until(until)?;
                self.check_all()?;
            }
        }
        self.report.overall = Self::rate(boot_end, self.snapshot());
        Ok(())
    }

    fn partition_and_heal(&mut self) -> Result<(), SimError> {
        let sc = self.sc;
        let live: Vec<usize> = (0..sc.nodes).filter(|&i| self.alive.get(i)).collect();
        let fraction = self.rng.random_range(0.2..=0.5);
        let minority = ((live.len() as f64 * fraction).round() as usize).clamp(1, live.len() - 1);
        for node in &mut self.nodes {
            node.side = 0;
        }
        let mut pool = live.clone();
        for _ in 0..minority {
            let k = self.rng.random_range(0..pool.len());
            let i = pool.swap_remove(k);
            self.nodes[i].side = 1;
        }
        let sides = (live.len() - minority, minority);
        self.report.partition_sides = Some(sides);
        let bound = sc.partition_bound(sides.0, sides.1);
        self.report.partition_bound = Some(bound);
        self.log_event(format!("partition {} | {}", sides.0, sides.1));
        self.partitioned = true;
        self.retarget();
        self.settling = Some((self.now, Settling::Partition));
        let start = self.snapshot();
        let until = self.now + bound;
        self.run_until(until)?;
        self.report.partitioned = Self::rate(start, self.snapshot());
        self.check_all()?;
        // Beyond the bound (only with keep_going, after a violation): how
        // long settling really takes, up to 10 minutes.
        let cap = self.now + Duration::from_secs(600);
        while self.sc.keep_going && self.settling.is_some() && self.now < cap {
            let next = self.now + Duration::from_millis(100);
            self.run_until(next)?;
        }
        self.log_event("heal".into());
        self.partitioned = false;
        self.retarget();
        self.settling = Some((self.now, Settling::Heal));
        let until = self.now + sc.heal_bound;
        self.run_until(until)?;
        self.check_all()?;
        Ok(())
    }

    fn finish(mut self) -> Report {
        self.report.datagrams_sent = self.counters.datagrams;
        self.report.bytes_sent = self.counters.bytes;
        self.report.datagrams_lost = self.lost;
        self.report.datagrams_dropped = self.dropped;
        self.report.datagrams_refused = self.refused;
        self.report.fallbacks = self.fallbacks.get();
        self.report.simulated = self.now;
        self.report
    }
}
