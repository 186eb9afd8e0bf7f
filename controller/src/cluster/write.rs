//! What the controller writes to the API server, as plain patch bodies (pure,
//! tested on their own) and the calls that send them.

use std::net::IpAddr;

use ferrolb_config::crd::{IPAddressPool, IPAddressPoolStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Service};
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::PostParams;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event as KubeEvent, EventType as KubeEventType};
use kube::{Client, Resource};
use serde_json::{Value, json};

use crate::allocator::{
    ALLOCATED_FROM_POOL_ANNOTATION, Event, EventType, LbService, ServiceOutcome,
};

/// The field manager FerroLB writes as.
pub const MANAGER: &str = "ferrolb-controller";

/// Parameters of the controller's merge PATCHes: named as its field
/// manager, so that `managedFields` and audit logs say who wrote (without
/// one the API server records "unknown").
fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(MANAGER.to_string()),
        ..PatchParams::default()
    }
}

/// Merge patch for `status.loadBalancer.ingress` (the list is replaced whole;
/// empty clears it).
pub fn status_patch(ips: &[IpAddr]) -> Value {
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
    json!({"status": {"loadBalancer": {"ingress": ingress}}})
}

/// Merge patch for the `ferrolb.io/ip-allocated-from-pool` annotation (null removes it).
pub fn pool_annotation_patch(pool: Option<&str>) -> Value {
    json!({"metadata": {"annotations": {ALLOCATED_FROM_POOL_ANNOTATION: pool}}})
}

/// Merge patch for a pool's status counts.
pub fn pool_status_patch(status: &IPAddressPoolStatus) -> Value {
    json!({"status": {
        "assignedIPv4": status.assigned_ipv4,
        "availableIPv4": status.available_ipv4,
        "assignedIPv6": status.assigned_ipv6,
        "availableIPv6": status.available_ipv6,
    }})
}

/// Merge patch for the status subresource that writes a Service's whole
/// outcome in one request: `status.loadBalancer.ingress` and the pool
/// annotation. The Service status subresource keeps metadata changes (it
/// resets only `spec`; checked against the v1.20 test server, and by hand
/// against v1.36.2: annotation set and removed through `/status`), so one
/// write suffices where two were sent,
/// and the IPs and the pool they come from change together.
pub fn service_patch(ips: &[IpAddr], pool: Option<&str>) -> Value {
    let mut patch = status_patch(ips);
    patch["metadata"] = pool_annotation_patch(pool)["metadata"].take();
    patch
}

/// Writes one Service's outcome (status IPs and pool annotation) in one
/// merge-PATCH of its status subresource.
pub async fn write_service(client: &Client, outcome: &ServiceOutcome) -> Result<(), kube::Error> {
    let api: Api<Service> = Api::namespaced(client.clone(), &outcome.service.namespace);
    api.patch_status(
        &outcome.service.name,
        &merge_params(),
        &Patch::Merge(service_patch(&outcome.ips, outcome.pool.as_deref())),
    )
    .await?;
    Ok(())
}

/// The kube-runtime Event for an allocator event.
pub fn kube_event(e: &Event) -> KubeEvent {
    KubeEvent {
        type_: match e.type_ {
            EventType::Normal => KubeEventType::Normal,
            EventType::Warning => KubeEventType::Warning,
        },
        reason: e.reason.to_string(),
        note: Some(e.message.chars().take(1000).collect()),
        action: "Allocate".into(),
        secondary: None,
    }
}

/// The reference an Event about a Service points at.
pub fn service_reference(svc: &LbService) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: Some(svc.key.name.to_string()),
        namespace: Some(svc.key.namespace.to_string()),
        uid: svc.uid.as_ref().map(|u| u.to_string()),
        resource_version: None,
        field_path: None,
    }
}

/// Publishes Kubernetes Events (`events.k8s.io/v1`), each one created on its
/// own. Not kube-runtime's `Recorder`: it keeps every Event it published for
/// six minutes and scans them all at each publish (a first round that
/// allocates 100,000 Services would hold and scan 100,000 Events), and it
/// folds a second Event with the same reason for the same object into a
/// series that keeps the first message. The allocator already sends a
/// pending reason only when it changes.
#[derive(Clone)]
pub struct EventPublisher {
    client: Client,
    controller: String,
    instance: String,
    sequence: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl EventPublisher {
    pub fn new(client: Client, controller: &str, instance: &str) -> EventPublisher {
        EventPublisher {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            sequence: Default::default(),
        }
    }

    /// The Event object for `ev` about `regarding`, at time `now`.
    pub fn event(
        &self,
        ev: &KubeEvent,
        regarding: &ObjectReference,
        now: k8s_openapi::jiff::Timestamp,
    ) -> K8sEvent {
        let seq = self
            .sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        K8sEvent {
            action: Some(ev.action.clone()),
            reason: Some(ev.reason.clone()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            note: ev.note.clone(),
            metadata: ObjectMeta {
                namespace: regarding.namespace.clone(),
                // Unique: the time and a counter of this process.
                name: Some(format!(
                    "{}.{:x}{:x}",
                    regarding.name.as_deref().unwrap_or(&self.controller),
                    now.as_nanosecond(),
                    seq
                )),
                ..Default::default()
            },
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            type_: Some(
                match ev.type_ {
                    KubeEventType::Normal => "Normal",
                    KubeEventType::Warning => "Warning",
                }
                .into(),
            ),
            related: ev.secondary.clone(),
            ..Default::default()
        }
    }

    /// Creates the Event in the namespace of the object it is about.
    pub async fn publish(
        &self,
        ev: &KubeEvent,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let event = self.event(ev, regarding, k8s_openapi::jiff::Timestamp::now());
        let api: Api<K8sEvent> = Api::namespaced(
            self.client.clone(),
            regarding.namespace.as_deref().unwrap_or("default"),
        );
        api.create(&PostParams::default(), &event).await?;
        Ok(())
    }
}

/// Records the outcome's Events on the Service.
pub async fn record_events(
    events_api: &EventPublisher,
    svc: &LbService,
    events: &[Event],
) -> Result<(), kube::Error> {
    let reference = service_reference(svc);
    for e in events {
        events_api.publish(&kube_event(e), &reference).await?;
    }
    Ok(())
}

/// Writes a pool's status counts when they differ from what it shows.
pub async fn write_pool_status(
    client: &Client,
    pool: &IPAddressPool,
    status: &IPAddressPoolStatus,
) -> Result<bool, kube::Error> {
    let current = pool.status.as_ref();
    let same = current.is_some_and(|c| {
        c.assigned_ipv4 == status.assigned_ipv4
            && c.available_ipv4 == status.available_ipv4
            && c.assigned_ipv6 == status.assigned_ipv6
            && c.available_ipv6 == status.available_ipv6
    });
    if same {
        return Ok(false);
    }
    let ns = pool
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(ferrolb_config::DEFAULT_NAMESPACE);
    let api: Api<IPAddressPool> = Api::namespaced(client.clone(), ns);
    api.patch_status(
        pool.metadata.name.as_deref().unwrap_or_default(),
        &merge_params(),
        &Patch::Merge(pool_status_patch(status)),
    )
    .await?;
    Ok(true)
}

/// Server-side applies the controller's ConfigurationState and its status.
pub async fn write_configuration_state(
    client: &Client,
    namespace: &str,
    state: &ferrolb_config::crd::ConfigurationStateStatus,
) -> Result<(), kube::Error> {
    let api: Api<ferrolb_config::crd::ConfigurationState> =
        Api::namespaced(client.clone(), namespace);
    let params = PatchParams::apply(MANAGER).force();
    let object = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": "controller", "namespace": namespace},
        "spec": {"component": "controller"},
    });
    api.patch("controller", &params, &Patch::Apply(object))
        .await?;
    let status = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": "controller", "namespace": namespace},
        "status": state,
    });
    api.patch_status("controller", &params, &Patch::Apply(status))
        .await?;
    Ok(())
}

/// The `Valid` condition an object shows now, if any.
pub fn current_valid_condition(obj: &impl serde::Serialize) -> Option<Value> {
    let v = serde_json::to_value(obj).ok()?;
    v["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Valid")
        .cloned()
}

/// Whether `current` already says what `wanted` says (ignoring the time).
pub fn same_condition(current: Option<&Value>, wanted: &Condition) -> bool {
    current.is_some_and(|c| {
        c["status"] == wanted.status.as_str()
            && c["reason"] == wanted.reason.as_str()
            && c["message"] == wanted.message.as_str()
            && c["observedGeneration"].as_i64() == wanted.observed_generation
    })
}

/// Sets the `Valid` condition in a FerroLB object's status.
pub async fn write_valid_condition<K>(
    client: &Client,
    obj: &K,
    condition: &Condition,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let ns = obj
        .meta()
        .namespace
        .as_deref()
        .unwrap_or(ferrolb_config::DEFAULT_NAMESPACE);
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let patch = json!({"status": {"conditions": [condition]}});
    api.patch_status(
        obj.meta().name.as_deref().unwrap_or_default(),
        &merge_params(),
        &Patch::Merge(patch),
    )
    .await?;
    Ok(())
}

/// The reference an Event about a FerroLB object points at.
pub fn object_reference<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectReference {
    ObjectReference {
        api_version: Some(K::api_version(&()).to_string()),
        kind: Some(K::kind(&()).to_string()),
        name: obj.meta().name.clone(),
        namespace: obj.meta().namespace.clone(),
        uid: obj.meta().uid.clone(),
        resource_version: None,
        field_path: None,
    }
}

/// Records a Warning Event naming a configuration problem on its object.
pub async fn record_config_problem(
    recorder: &EventPublisher,
    reference: &ObjectReference,
    message: &str,
) -> Result<(), kube::Error> {
    let ev = KubeEvent {
        type_: KubeEventType::Warning,
        reason: "InvalidConfiguration".into(),
        note: Some(message.chars().take(1000).collect()),
        action: "Validate".into(),
        secondary: None,
    };
    recorder.publish(&ev, reference).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{OutcomeState, ServiceKey};
    use http::{Request, Response};
    use kube::client::Body;
    use std::pin::pin;
    use tower_test::mock;

    #[test]
    fn patch_bodies() {
        let ips: Vec<IpAddr> = vec![
            "198.51.100.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        assert_eq!(
            status_patch(&ips),
            json!({"status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}, {"ip": "2001:db8::10"}]}}})
        );
        assert_eq!(
            status_patch(&[]),
            json!({"status": {"loadBalancer": {"ingress": []}}})
        );
        assert_eq!(
            pool_annotation_patch(None),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}}})
        );
        assert_eq!(
            service_patch(&ips[..1], Some("lan")),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "lan"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}}})
        );
        assert_eq!(
            service_patch(&[], None),
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}},
                   "status": {"loadBalancer": {"ingress": []}}})
        );
    }

    /// Method, URI, content type and JSON body of a request.
    type Seen = (String, String, String, Value);

    async fn body_json(req: Request<Body>) -> Seen {
        let method = req.method().to_string();
        let uri = req.uri().to_string();
        let ctype = req
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let bytes = req.into_body().collect_bytes().await.unwrap();
        (method, uri, ctype, serde_json::from_slice(&bytes).unwrap())
    }

    /// A client over a mock API server that answers `n` requests, each with
    /// `reply(body of the request)`, and hands back what it saw.
    fn mock_server(
        n: usize,
        reply: fn(&Value) -> Value,
    ) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let mut seen = Vec::new();
            for _ in 0..n {
                let (req, send) = handle.next_request().await.expect("request");
                let got = body_json(req).await;
                send.send_response(Response::new(Body::from(
                    serde_json::to_vec(&reply(&got.3)).unwrap(),
                )));
                seen.push(got);
            }
            seen
        });
        (Client::new(svc, "default"), server)
    }

    #[tokio::test]
    async fn write_service_sends_status_and_annotation_in_one_patch() {
        // The mock answers one request: a second one would wait for an
        // answer that never comes, so the write is bounded.
        let (client, server) = mock_server(
            1,
            |_| json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "shop"}}),
        );
        let outcome = ServiceOutcome {
            service: ServiceKey::new("shop", "web"),
            ips: vec!["198.51.100.10".parse().unwrap()],
            pool: Some("lan".into()),
            changed: true,
            state: OutcomeState::Assigned,
            events: vec![],
        };
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            write_service(&client, &outcome),
        )
        .await
        .expect("one request only")
        .unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(seen[0].0, "PATCH");
        assert_eq!(
            seen[0].1,
            "/api/v1/namespaces/shop/services/web/status?&fieldManager=ferrolb-controller"
        );
        assert_eq!(seen[0].2, "application/merge-patch+json");
        assert_eq!(
            seen[0].3,
            json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "lan"}},
                   "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}}})
        );
    }

    #[tokio::test]
    async fn events_are_created_one_by_one_with_their_own_message() {
        // The API server answers with the Event as created.
        let (client, server) = mock_server(2, Value::clone);
        let publisher = EventPublisher::new(client, "ferrolb-controller", "replica-1");
        let mut web = k8s_openapi::api::core::v1::Service::default();
        web.metadata.namespace = Some("shop".into());
        web.metadata.name = Some("web".into());
        web.metadata.uid = Some("6f1c2d3e-0a1b-4c5d-8e9f-0123456789ab".into());
        let web = LbService::from(&web);
        // Two Events with the same reason: two objects, each with its message.
        let events = [
            Event {
                type_: EventType::Warning,
                reason: crate::allocator::ALLOCATION_FAILED,
                message: "pool \"lan\" exhausted for IPv4".into(),
            },
            Event {
                type_: EventType::Warning,
                reason: crate::allocator::ALLOCATION_FAILED,
                message: "no IPAddressPool is configured".into(),
            },
        ];
        record_events(&publisher, &web, &events).await.unwrap();
        let seen = server.await.unwrap();
        assert_eq!(seen[0].0, "POST");
        assert_eq!(seen[0].1, "/apis/events.k8s.io/v1/namespaces/shop/events?");
        let body = &seen[0].3;
        assert_eq!(body["reason"], "AllocationFailed");
        assert_eq!(body["type"], "Warning");
        assert_eq!(body["action"], "Allocate");
        assert_eq!(body["note"], "pool \"lan\" exhausted for IPv4");
        assert_eq!(body["reportingController"], "ferrolb-controller");
        assert_eq!(body["reportingInstance"], "replica-1");
        assert_eq!(
            body["regarding"],
            json!({"apiVersion": "v1", "kind": "Service", "namespace": "shop", "name": "web",
                   "uid": "6f1c2d3e-0a1b-4c5d-8e9f-0123456789ab"})
        );
        assert!(body["eventTime"].is_string());
        assert!(body.get("series").is_none());
        assert_eq!(seen[1].3["note"], "no IPAddressPool is configured");
        let name = |b: &Value| b["metadata"]["name"].as_str().unwrap().to_string();
        assert!(name(&seen[0].3).starts_with("web."));
        assert_ne!(name(&seen[0].3), name(&seen[1].3));
    }

    #[tokio::test]
    async fn pool_status_is_written_only_when_it_changes() {
        let (svc, handle) = mock::pair::<Request<Body>, Response<Body>>();
        let client = Client::new(svc, "default");
        let mut pool = IPAddressPool::new("lan", Default::default());
        pool.metadata.namespace = Some("ferrolb-system".into());
        let status = IPAddressPoolStatus {
            assigned_ipv4: 1,
            available_ipv4: 9,
            assigned_ipv6: "0".into(),
            available_ipv6: "18446744073709551616".into(),
            conditions: vec![],
        };
        let reply = serde_json::to_vec(&pool).unwrap();
        let server = tokio::spawn(async move {
            let mut handle = pin!(handle);
            let (req, send) = handle.next_request().await.expect("request");
            let seen = body_json(req).await;
            send.send_response(Response::new(Body::from(reply)));
            seen
        });
        assert!(write_pool_status(&client, &pool, &status).await.unwrap());
        let (method, uri, _, body) = server.await.unwrap();
        assert_eq!(method, "PATCH");
        assert_eq!(
            uri,
            "/apis/ferrolb.io/v1beta1/namespaces/ferrolb-system/ipaddresspools/lan/status?&fieldManager=ferrolb-controller"
        );
        assert_eq!(body["status"]["availableIPv6"], "18446744073709551616");
        // Same counts already shown: no request at all (the mock would hang otherwise).
        pool.status = Some(status.clone());
        assert!(!write_pool_status(&client, &pool, &status).await.unwrap());
    }
}
