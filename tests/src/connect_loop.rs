//! A client connecting over TCP to Service IPs in a loop while the test
//! changes the lab (a drain, a rolling restart), counting the attempts
//! and what failed: [`while_connecting`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::speaker_lab::greeting;

/// What the client saw on one IP: its attempts, and apart the ones whose
/// connect failed (refused or unanswered) and the ones that failed after
/// the connection was made (reset). Each failure reads
/// `at N ms[ (client's entry now MAC)]: ERROR`, N from the start of the
/// loop to the start of the attempt.
#[derive(Debug, Default)]
pub struct Connects {
    /// Connection attempts.
    pub attempts: u32,
    /// Attempts whose connect failed ([`greeting`]'s `connect: …`).
    pub failed: Vec<String>,
    /// Attempts that failed once connected (`read: …`, e.g. a reset).
    pub reset: Vec<String>,
}

/// How the client loops.
#[derive(Clone, Copy, Debug)]
pub struct ConnectLoop {
    /// The pause after each round (one attempt on every IP).
    pub pause: Duration,
    /// How long the loop may run at most, should the test never stop it.
    pub bound: Duration,
    /// Whether a failure also names the client's neighbour entry for the
    /// IP on `eth0` right after it (one `ip neigh` more per failure; for
    /// layer-2 IPs).
    pub neighbour: bool,
}

/// Runs `work` on this thread while another one (scoped) connects from
/// `client` to each of `ips` in turn ([`greeting`], 3 s at most each),
/// pausing [`ConnectLoop::pause`] after each round, until `work` has
/// returned (or [`ConnectLoop::bound`] has passed since the loop began).
/// `work` gets the instant the loop began (the failures' times count
/// from it). Returns `work`'s result and what the client saw on each IP,
/// in the order of `ips`.
pub fn while_connecting<R, const N: usize>(
    client: &Netns,
    ips: [&str; N],
    how: ConnectLoop,
    work: impl FnOnce(Instant) -> R,
) -> (R, [Connects; N]) {
    let stop = AtomicBool::new(false);
    let since = Instant::now();
    std::thread::scope(|scope| {
        let looping = scope.spawn(|| {
            let mut seen: [Connects; N] = std::array::from_fn(|_| Connects::default());
            while !stop.load(Ordering::Relaxed) && since.elapsed() < how.bound {
                for (ip, counts) in ips.iter().zip(seen.iter_mut()) {
                    counts.attempts += 1;
                    let at = since.elapsed();
                    if let Err(e) = greeting(client, ip) {
                        let entry = if how.neighbour {
                            let mac = client.neighbour(ip, "eth0");
                            format!(" (client's entry now {mac:?})")
                        } else {
                            String::new()
                        };
                        let line = format!("at {} ms{entry}: {e}", at.as_millis());
                        if e.starts_with("connect: ") {
                            counts.failed.push(line);
                        } else {
                            counts.reset.push(line);
                        }
                    }
                }
                std::thread::sleep(how.pause);
            }
            seen
        });
        let result = work(since);
        stop.store(true, Ordering::Relaxed);
        (result, looping.join().expect("client loop"))
    })
}
