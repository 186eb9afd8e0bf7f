//! Drives [`crate::leader::Elector`] against a real `coordination.k8s.io/v1` Lease.

use std::time::Instant;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;

use crate::leader::{Action, Elector, LeaseRecord};

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

/// One election round: read, decide, write. Returns whether we lead now.
pub async fn round(api: &Api<Lease>, name: &str, elector: &mut Elector, start: Instant) -> bool {
    let namespace = api.namespace().unwrap_or("default").to_string();
    let read = match api.get_opt(name).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(lease = name, error = %e, "cannot read the leader Lease");
            return elector.is_leader(start.elapsed());
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
        }
    }
    elector.is_leader(start.elapsed())
}

/// Runs the election forever, publishing whether we lead.
pub async fn run(api: Api<Lease>, name: String, mut elector: Elector, tx: watch::Sender<bool>) {
    let start = Instant::now();
    let period = elector.timing().retry_period;
    loop {
        let leading = round(&api, &name, &mut elector, start).await;
        if *tx.borrow() != leading {
            tracing::info!(identity = elector.identity(), leading, "leadership changed");
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
        assert!(round(&api, "ferrolb-controller", &mut elector, Instant::now()).await);
        server.await.unwrap();
    }
}
