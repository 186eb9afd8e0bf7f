//! Drives [`crate::leader::Elector`] against a real `coordination.k8s.io/v1` Lease.
//!
//! Each `--lb-class` has its own Lease ([`default_lease_name`]): controllers
//! of different classes serve different Services and must all lead at once;
//! only replicas of one class take turns.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::leader::{Action, Elector, LeaseRecord};

/// The Lease name of a controller without `--lb-class`.
pub const LEASE_NAME: &str = "ferrolb-controller";

/// Longest Kubernetes object name that is also a DNS-1123 label.
const MAX_NAME: usize = 63;

/// FNV-1a, 64 bits: a hash that never changes between builds or Rust
/// versions (a Lease name derived from it must stay the same across upgrades).
fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The default `--lease-name` for a controller of `class` (None: the default
/// controller, for Services without a class): `ferrolb-controller`, or
/// `ferrolb-controller-<class>` with the class lowercased and every run of
/// characters other than `a-z0-9` made one `-` (`example.com/lb` gives
/// `ferrolb-controller-example-com-lb`). When that is longer than 63
/// characters, or the class has no letter or digit, the end is a hash of
/// the class. Always a valid DNS-1123 label (so a valid Lease name).
pub fn default_lease_name(class: Option<&str>) -> String {
    let Some(class) = class else {
        return LEASE_NAME.to_string();
    };
    let mut tail = String::with_capacity(class.len());
    for c in class.chars() {
        match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => tail.push(c),
            _ if tail.is_empty() || tail.ends_with('-') => {}
            _ => tail.push('-'),
        }
    }
    let tail = tail.trim_end_matches('-');
    let name = format!("{LEASE_NAME}-{tail}");
    if !tail.is_empty() && name.len() <= MAX_NAME {
        return name;
    }
    let hash = format!("{:016x}", fnv1a(class.as_bytes()));
    // Room for "-" and the hash; the name is ASCII, so any cut is at a char.
    let keep = MAX_NAME - 1 - hash.len();
    let head = name[..name.len().min(keep)].trim_end_matches('-');
    format!("{head}-{hash}")
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseRecord {
        holder: spec.holder_identity,
        lease_duration_seconds: spec.lease_duration_seconds,
        acquire_time: spec.acquire_time.map(|t| t.0.to_string()),
        renew_time: spec.renew_time.map(|t| t.0.to_string()),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn micro(s: &Option<String>) -> Option<MicroTime> {
    s.as_ref().and_then(|s| s.parse().ok()).map(MicroTime)
}

/// The Lease object to write for `rec`, keeping the read object's metadata
/// (its resourceVersion makes a concurrent write fail with a conflict).
pub fn lease_for(name: &str, namespace: &str, read: Option<&Lease>, rec: &LeaseRecord) -> Lease {
    Lease {
        metadata: read.map(|l| l.metadata.clone()).unwrap_or(ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        }),
        spec: Some(LeaseSpec {
            holder_identity: rec.holder.clone(),
            lease_duration_seconds: rec.lease_duration_seconds,
            acquire_time: micro(&rec.acquire_time),
            renew_time: micro(&rec.renew_time),
            lease_transitions: Some(rec.transitions),
            ..Default::default()
        }),
    }
}

/// Where this replica stands after an election round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    /// Whether this replica leads now.
    pub leading: bool,
    /// The identity of another replica holding the Lease (not expired), when
    /// the round read one: this replica waits for it.
    pub held_by: Option<String>,
}

/// One election round: read, decide, write.
pub async fn round(
    api: &Api<Lease>,
    name: &str,
    elector: &mut Elector,
    start: Instant,
) -> Standing {
    let namespace = api.namespace().unwrap_or("default").to_string();
    let mut held_by = None;
    let read = match api.get_opt(name).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(lease = %format!("{namespace}/{name}"), error = %e, "cannot read the leader Lease");
            return Standing {
                leading: elector.is_leader(start.elapsed()),
                held_by,
            };
        }
    };
    let wall = k8s_openapi::jiff::Timestamp::now().to_string();
    let now = start.elapsed();
    let record = read.as_ref().map(record_of);
    match elector.on_read(record.as_ref(), now, &wall) {
        Action::Create(rec) => {
            let lease = lease_for(name, &namespace, None, &rec);
            let ok = api.create(&PostParams::default(), &lease).await.is_ok();
            elector.on_write(ok, start.elapsed());
        }
        Action::Update(rec) => {
            let lease = lease_for(name, &namespace, read.as_ref(), &rec);
            let result = api.replace(name, &PostParams::default(), &lease).await;
            if let Err(e) = &result {
                tracing::debug!(error = %e, "lease write refused");
            }
            elector.on_write(result.is_ok(), start.elapsed());
        }
        Action::Wait { leader } => {
            tracing::debug!(leader = ?leader, "another replica leads");
            held_by = leader;
        }
    }
    Standing {
        leading: elector.is_leader(start.elapsed()),
        held_by,
    }
}

/// Runs the election forever, publishing whether we lead. Says at info level
/// which Lease it takes part in and, while standing by, who holds it.
pub async fn run(api: Api<Lease>, name: String, mut elector: Elector, tx: watch::Sender<bool>) {
    let start = Instant::now();
    let period = elector.timing().retry_period;
    let lease = format!("{}/{name}", api.namespace().unwrap_or("default"));
    tracing::info!(
        lease,
        identity = elector.identity(),
        "leader election: this replica allocates while it holds the Lease"
    );
    // The holder last reported, so that a standby says it once per holder,
    // not every retry period.
    let mut reported: Option<String> = None;
    loop {
        let Standing { leading, held_by } = round(&api, &name, &mut elector, start).await;
        if *tx.borrow() != leading {
            tracing::info!(identity = elector.identity(), leading, "leadership changed");
        }
        if leading {
            reported = None;
        } else if let Some(holder) = held_by.filter(|h| reported.as_ref() != Some(h)) {
            tracing::info!(
                lease,
                holder,
                identity = elector.identity(),
                "standing by: Lease {lease} is held by {holder}; this replica takes over when it expires or is released"
            );
            reported = Some(holder);
        }
        // Wake the allocation loop only when leadership changes: a renewal
        // is not a reason for a round (over 100,000 Services, a round every
        // retry period would be most of a core).
        tx.send_if_modified(|now| std::mem::replace(now, leading) != leading);
        tokio::time::sleep(period).await;
    }
}

/// Gives the Lease up if `identity` holds it, so a standby takes over at once
/// after a clean shutdown instead of waiting for the lease to expire.
pub async fn release(api: &Api<Lease>, name: &str, identity: &str) -> Result<bool, kube::Error> {
    let Some(lease) = api.get_opt(name).await? else {
        return Ok(false);
    };
    let rec = record_of(&lease);
    let mut elector = Elector::new(identity, crate::leader::Timing::default());
    let Some(released) = elector.release(&rec) else {
        return Ok(false);
    };
    let namespace = api.namespace().unwrap_or("default").to_string();
    api.replace(
        name,
        &PostParams::default(),
        &lease_for(name, &namespace, Some(&lease), &released),
    )
    .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::Timing;
    use http::{Request, Response, StatusCode};
    use kube::Client;
    use kube::client::Body;
    use std::pin::pin;
    use tower_test::mock;

    #[tokio::test]
    async fn creates_the_lease_when_absent_and_leads() {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "GET");
            assert_eq!(
                req.uri().path(),
                "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/ferrolb-controller"
            );
            let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"});
            let mut resp = Response::new(Body::from(serde_json::to_vec(&status).unwrap()));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            send.send_response(resp);
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "POST");
            assert_eq!(
                req.uri().path(),
                "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases"
            );
            let body = req.into_body().collect_bytes().await.unwrap();
            let lease: Lease = serde_json::from_slice(&body).unwrap();
            let spec = lease.spec.clone().unwrap();
            assert_eq!(spec.holder_identity.as_deref(), Some("pod-a"));
            assert_eq!(spec.lease_duration_seconds, Some(15));
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&lease).unwrap(),
            )));
        });
        let api: Api<Lease> = Api::namespaced(client, "ferrolb-system");
        let mut elector = Elector::new("pod-a", Timing::default());
        let standing = round(&api, "ferrolb-controller", &mut elector, Instant::now()).await;
        assert_eq!(
            standing,
            Standing {
                leading: true,
                held_by: None
            }
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_standby_learns_who_holds_the_lease() {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req.method(), "GET");
            assert_eq!(
                req.uri().path(),
                "/apis/coordination.k8s.io/v1/namespaces/ferrolb-system/leases/ferrolb-controller-example-com-x"
            );
            let rec = LeaseRecord {
                holder: Some("pod-b".into()),
                lease_duration_seconds: Some(15),
                acquire_time: Some("2026-01-01T00:00:00.000000Z".into()),
                renew_time: Some("2026-01-01T00:00:00.000000Z".into()),
                transitions: 0,
            };
            let lease = lease_for(
                "ferrolb-controller-example-com-x",
                "ferrolb-system",
                None,
                &rec,
            );
            send.send_response(Response::new(Body::from(
                serde_json::to_vec(&lease).unwrap(),
            )));
        });
        let api: Api<Lease> = Api::namespaced(client, "ferrolb-system");
        let mut elector = Elector::new("pod-a", Timing::default());
        let name = default_lease_name(Some("example.com/x"));
        let standing = round(&api, &name, &mut elector, Instant::now()).await;
        assert_eq!(
            standing,
            Standing {
                leading: false,
                held_by: Some("pod-b".into())
            }
        );
        server.await.unwrap();
    }

    /// A DNS-1123 label: lowercase letters, digits and `-`, starting and
    /// ending with a letter or digit, at most 63 characters.
    fn is_dns_label(s: &str) -> bool {
        let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
        !s.is_empty()
            && s.len() <= 63
            && s.chars().all(|c| alnum(c) || c == '-')
            && s.starts_with(alnum)
            && s.ends_with(alnum)
    }

    #[test]
    fn lease_names_depend_on_the_class() {
        assert_eq!(default_lease_name(None), "ferrolb-controller");
        for (class, name) in [
            ("example.com/x", "ferrolb-controller-example-com-x"),
            ("ferrolb.io/lb", "ferrolb-controller-ferrolb-io-lb"),
            (
                "Example.COM/Edge_LB",
                "ferrolb-controller-example-com-edge-lb",
            ),
            ("--a..b//", "ferrolb-controller-a-b"),
            ("lb", "ferrolb-controller-lb"),
        ] {
            assert_eq!(default_lease_name(Some(class)), name, "{class}");
        }
        // Too long for a name: cut, with a hash of the whole class at the
        // end, so classes that share a long beginning still differ.
        let long_a = format!("example.com/{}-a", "very-long-class-name".repeat(4));
        let long_b = format!("example.com/{}-b", "very-long-class-name".repeat(4));
        let (a, b) = (
            default_lease_name(Some(&long_a)),
            default_lease_name(Some(&long_b)),
        );
        assert_eq!(a.len(), 63, "{a}");
        assert!(a.starts_with("ferrolb-controller-example-com-very-long-"));
        assert_ne!(a, b);
        // Stable: the same class always gives the same name.
        assert_eq!(a, default_lease_name(Some(&long_a)));
        // Nothing usable in the class: a hash, never the default name.
        let symbols = default_lease_name(Some("/./"));
        assert_ne!(symbols, "ferrolb-controller");
        assert!(symbols.starts_with("ferrolb-controller-"));
        assert_ne!(symbols, default_lease_name(Some("ü")));
        let unicode = default_lease_name(Some("lb.ü.example/α"));
        assert_eq!(unicode, "ferrolb-controller-lb-example");
        for class in [
            "example.com/x",
            long_a.as_str(),
            long_b.as_str(),
            "/./",
            "ü",
            "a",
            &"x".repeat(300),
            "-",
        ] {
            let name = default_lease_name(Some(class));
            assert!(is_dns_label(&name), "{class:?} gives {name:?}");
        }
    }
}
