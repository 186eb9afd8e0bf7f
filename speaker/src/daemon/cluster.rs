//! Cluster mode: the daemon's inputs from the API server (Services,
//! EndpointSlices, Nodes, FerroLB's kinds and Secrets in its namespace,
//! each through a kube-runtime reflector), and its status written back as
//! `ServiceL2Status` / `ServiceBGPStatus` objects owned by their Service,
//! this node's session in each `BGPPeer`'s status, a `ConfigurationState`
//! per speaker, and Warning Events.
//!
//! Writes go through their own task: a slow or absent API server never
//! delays an announcement or a layer-2 failover, and nothing is withdrawn
//! because the API server went away (the reflectors keep their last
//! state and re-list when it is back).
//!
//! EndpointSlices: `discovery.k8s.io/v1` where the server serves it, else
//! `v1beta1` (Kubernetes 1.20), whose endpoints name their node in
//! `topology["kubernetes.io/hostname"]` (or `nodeName` where the gate is on).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::Config;
use ferrolb_config::crd::BGPPeer;
use ferrolb_config::validate::{valid_subset, validate};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};
use tokio::sync::{Notify, watch};

use ferrolb_controller::cluster::{ConfigStores, follow, reflect_with, strip_managed_fields};

use super::Snapshot;
use super::status::{BGP_KIND, L2_KIND, Report};

/// How long a burst of watch events may take before a round.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// Where the configuration lives, and how to reach the API server.
#[derive(Debug, Clone)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub namespace: String,
    pub node: String,
}

/// A client from `--kubeconfig`, or the in-cluster / default configuration.
pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, String> {
    ferrolb_controller::cluster::client(kubeconfig)
        .await
        .map_err(|e| e.to_string())
}

fn keep<K>(_: &mut K) {}

fn snapshot<K: Resource<DynamicType = ()> + Clone + 'static>(store: &Store<K>) -> Vec<K> {
    store.state().iter().map(|a| (**a).clone()).collect()
}

/// A v1beta1 EndpointSlice (Kubernetes 1.20) as a v1 one: the node from
/// `nodeName`, else from `topology["kubernetes.io/hostname"]`.
pub fn endpoint_slice_from_v1beta1(obj: &DynamicObject) -> Option<EndpointSlice> {
    let mut value = serde_json::to_value(obj).ok()?;
    if let Some(eps) = value.get_mut("endpoints").and_then(Value::as_array_mut) {
        for ep in eps {
            let host = ep
                .get("topology")
                .and_then(|t| t.get("kubernetes.io/hostname"))
                .cloned();
            if let Some(map) = ep.as_object_mut() {
                map.remove("topology");
                if !map.contains_key("nodeName")
                    && let Some(h) = host
                {
                    map.insert("nodeName".into(), h);
                }
            }
        }
    }
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), json!("discovery.k8s.io/v1"));
        map.insert("kind".into(), json!("EndpointSlice"));
    }
    serde_json::from_value(value).ok()
}

enum Slices {
    V1(Store<EndpointSlice>),
    V1beta1(Store<DynamicObject>),
}

struct Stores {
    services: Store<Service>,
    nodes: Store<Node>,
    slices: Slices,
    secrets: Store<Secret>,
    config: ConfigStores,
}

/// The cluster as the daemon's [`super::Source`].
pub struct ClusterSource {
    stores: Stores,
    notify: Arc<Notify>,
    pending: bool,
    ready: bool,
    status: watch::Sender<Arc<Report>>,
}

impl ClusterSource {
    /// Starts the reflectors and the status writer.
    pub async fn start(client: Client, opts: &Options) -> ClusterSource {
        let notify = Arc::new(Notify::new());
        let ns = opts.namespace.as_str();
        let v1_served = Api::<EndpointSlice>::all(client.clone())
            .list_metadata(&ListParams::default().limit(1))
            .await
            .is_ok();
        let slices = if v1_served {
            Slices::V1(reflect_with(
                Api::all(client.clone()),
                notify.clone(),
                strip_managed_fields,
            ))
        } else {
            tracing::info!(
                "the API server does not serve discovery.k8s.io/v1 EndpointSlices: using v1beta1"
            );
            let ar = ApiResource {
                group: "discovery.k8s.io".into(),
                version: "v1beta1".into(),
                api_version: "discovery.k8s.io/v1beta1".into(),
                kind: "EndpointSlice".into(),
                plural: "endpointslices".into(),
            };
            let writer = reflector::store::Writer::<DynamicObject>::new(ar.clone());
            let reader = writer.as_reader();
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            let stream = reflector::reflector(
                writer,
                watcher(api, watcher::Config::default()).default_backoff(),
            );
            tokio::spawn(follow(stream, notify.clone(), "EndpointSlice".into()));
            Slices::V1beta1(reader)
        };
        let stores = Stores {
            services: reflect_with(
                Api::all(client.clone()),
                notify.clone(),
                super::strip_service,
            ),
            nodes: reflect_with(
                Api::all(client.clone()),
                notify.clone(),
                strip_managed_fields,
            ),
            slices,
            secrets: reflect_with(Api::namespaced(client.clone(), ns), notify.clone(), keep),
            config: ConfigStores::start(&client, ns, &notify),
        };
        let (status, rx) = watch::channel(Arc::new(Report::default()));
        tokio::spawn(writer(client, opts.clone(), rx));
        ClusterSource {
            stores,
            notify,
            pending: true,
            ready: false,
            status,
        }
    }

    async fn wait_ready(&self) {
        let s = &self.stores;
        let _ = s.services.wait_until_ready().await;
        let _ = s.nodes.wait_until_ready().await;
        match &s.slices {
            Slices::V1(st) => drop(st.wait_until_ready().await),
            Slices::V1beta1(st) => drop(st.wait_until_ready().await),
        }
        let _ = s.secrets.wait_until_ready().await;
        s.config.ready().await;
    }

    fn snapshot(&self) -> Snapshot {
        let s = &self.stores;
        let endpoint_slices = match &s.slices {
            Slices::V1(st) => snapshot(st),
            Slices::V1beta1(st) => st
                .state()
                .iter()
                .filter_map(|o| endpoint_slice_from_v1beta1(o))
                .collect(),
        };
        let config = Config {
            nodes: snapshot(&s.nodes),
            secrets: snapshot(&s.secrets),
            endpoint_slices,
            ..s.config.config()
        };
        let problems = validate(&config);
        let valid = valid_subset(&config, &problems);
        Snapshot {
            config: valid,
            services: s
                .services
                .state()
                .iter()
                .filter_map(|svc| crate::desired::LbService::from_service(svc))
                .collect(),
            problems,
        }
    }
}

impl super::Source for ClusterSource {
    async fn next(&mut self) -> Option<Snapshot> {
        if !self.ready {
            tracing::info!("waiting for the first list of every watched kind");
            self.wait_ready().await;
            self.ready = true;
            tracing::info!("watches are in sync");
        }
        if !self.pending {
            self.notify.notified().await;
            self.pending = true;
        }
        // Debounce a burst of watch events into one round.
        tokio::time::sleep(DEBOUNCE).await;
        self.pending = false;
        Some(self.snapshot())
    }

    fn publish(&mut self, report: Arc<Report>) {
        self.status.send_replace(report);
    }
}

/// The name of a status object: `<service>-<node>`, shortened with a hash
/// when longer than a name may be.
pub fn status_name(service: &str, node: &str) -> String {
    let name = format!("{service}-{node}");
    if name.len() <= 253 {
        return name;
    }
    let hash = crate::election::score(&name, std::net::IpAddr::from([0, 0, 0, 0]));
    format!("{}-{hash:016x}", &name[..200])
}

/// A digest of a document, to tell whether it changed since it was
/// written (the documents themselves are not kept).
fn digest(doc: &impl serde::Serialize) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(&serde_json::to_vec(doc).unwrap_or_default());
    h.finish()
}

/// Writes the status objects as they change; failures are logged and
/// retried with the next change or after a while.
async fn writer(client: Client, opts: Options, mut rx: watch::Receiver<Arc<Report>>) {
    let manager = format!("ferrolb-speaker-{}", opts.node);
    // What was written, as digests: (kind, namespace, name) -> digest.
    let mut written: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    let mut excluded_reported: Option<String> = None;
    let events = ferrolb_controller::cluster::write::EventPublisher::new(
        client.clone(),
        "ferrolb.io/speaker",
        &opts.node,
    );
    let mut announced = ServiceEvents::default();
    // The last error reported per peer, so that each is one Event.
    let mut peer_errors: BTreeMap<String, Option<String>> = BTreeMap::new();
    loop {
        let report = rx.borrow_and_update().clone();
        for (service, event) in announced.diff(&report) {
            if let Err(e) = events.publish(&event, &service).await {
                tracing::warn!(
                    "cannot record an Event on Service {}/{}: {e}",
                    service.namespace.as_deref().unwrap_or_default(),
                    service.name.as_deref().unwrap_or_default()
                );
            }
        }
        let mut wanted: BTreeSet<(String, String, String)> = BTreeSet::new();
        let mut ok = true;
        for doc in report.service_documents() {
            let kind = doc["kind"].as_str().unwrap_or_default().to_string();
            let ns = doc["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string();
            let svc = doc["status"]["serviceName"].as_str().unwrap_or_default();
            let name = status_name(svc, &opts.node);
            let key = (kind.clone(), ns.clone(), name.clone());
            wanted.insert(key.clone());
            let hash = digest(&doc);
            if written.get(&key) == Some(&hash) {
                continue;
            }
            match write_service_status(&client, &manager, &ns, &name, &doc).await {
                Ok(()) => {
                    // One node answers for a Service's layer-2 IPs: the
                    // others' objects (a speaker that died leaves its own)
                    // are stale.
                    if kind == L2_KIND
                        && !written.contains_key(&key)
                        && let Err(e) =
                            delete_other_l2_statuses(&client, &ns, &doc, &opts.node).await
                    {
                        tracing::warn!("cannot remove stale ServiceL2Status in {ns}: {e}");
                    }
                    written.insert(key, hash);
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!("cannot write {kind} {ns}/{name}: {e}");
                }
            }
        }
        for (name, session) in report.sessions() {
            let key = (
                "BGPPeer".to_string(),
                opts.namespace.clone(),
                name.to_string(),
            );
            let hash = digest(&session);
            if written.get(&key) == Some(&hash) {
                continue;
            }
            let message = session["message"].as_str().map(str::to_string);
            if message != peer_errors.get(name).cloned().flatten() {
                if let Some(text) = &message
                    && let Err(e) = peer_warning(&events, &opts, name, text).await
                {
                    tracing::warn!("cannot record an Event on BGPPeer {name}: {e}");
                }
                peer_errors.insert(name.to_string(), message);
            }
            match write_peer_session(&client, &opts, name, session).await {
                Ok(()) => {
                    written.insert(key, hash);
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!("cannot write BGPPeer {name} status: {e}");
                }
            }
        }
        let excluded = report.desired.node_excluded.clone();
        if excluded != excluded_reported {
            if let Some(reason) = &excluded
                && let Err(e) = node_warning(&client, &opts.node, reason).await
            {
                tracing::warn!("cannot record an Event on Node {}: {e}", opts.node);
            }
            excluded_reported = excluded.clone();
        }
        let key = (
            "ConfigurationState".to_string(),
            opts.namespace.clone(),
            opts.node.clone(),
        );
        let hash = digest(&(&excluded, &report.problems));
        if written.get(&key) != Some(&hash) {
            match write_configuration_state(
                &client,
                &manager,
                &opts,
                &report.problems,
                excluded.as_deref(),
            )
            .await
            {
                Ok(()) => {
                    written.insert(key, hash);
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!("cannot write this speaker's ConfigurationState: {e}");
                }
            }
        }
        // Status objects of Services this node no longer announces.
        let stale: Vec<(String, String, String)> = written
            .keys()
            .filter(|k| (k.0 == L2_KIND || k.0 == BGP_KIND) && !wanted.contains(*k))
            .cloned()
            .collect();
        for key in stale {
            let (kind, ns, name) = &key;
            let ar = status_resource(kind);
            let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
            match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => {
                    written.remove(&key);
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {
                    written.remove(&key);
                }
                Err(e) => {
                    ok = false;
                    tracing::warn!("cannot delete {kind} {ns}/{name}: {e}");
                }
            }
        }
        drop(report);
        let retry = if ok {
            Duration::from_secs(300)
        } else {
            Duration::from_secs(5)
        };
        match tokio::time::timeout(retry, rx.changed()).await {
            Ok(Err(_)) => return,
            Ok(Ok(())) => {}
            // Rewrite everything after a while: heals objects edited or
            // deleted by someone else.
            Err(_) => written.clear(),
        }
    }
}

/// What this node announced, as last reported in Events: per Service
/// (namespace, name), the layer-2 announcement and a digest of the BGP
/// peers; and the conflicts already reported.
#[derive(Default)]
pub struct ServiceEvents {
    l2: BTreeSet<(String, String)>,
    bgp: BTreeMap<(String, String), u64>,
    conflicts: BTreeSet<(String, String)>,
}

fn service_ref(ns: &str, name: &str) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..Default::default()
    }
}

fn kube_event(warning: bool, reason: &str, note: String) -> kube::runtime::events::Event {
    use kube::runtime::events::{Event, EventType};
    Event {
        type_: if warning {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: reason.into(),
        note: Some(note),
        action: "Announce".into(),
        secondary: None,
    }
}

impl ServiceEvents {
    /// The Events that the new status calls for: announcing, withdrawn
    /// (with the reasons), and conflicts.
    pub fn diff(
        &mut self,
        report: &Report,
    ) -> Vec<(
        k8s_openapi::api::core::v1::ObjectReference,
        kube::runtime::events::Event,
    )> {
        let node = report.node.as_str();
        let services = &report.desired.services;
        // Reasons for what this node does not announce of Service ns/name
        // (the decisions are sorted by namespace, then name).
        let reasons = |ns: &str, name: &str| -> String {
            let found = services
                .binary_search_by(|s| {
                    (s.key.namespace.as_str(), s.key.name.as_str()).cmp(&(ns, name))
                })
                .ok()
                .map(|i| &services[i]);
            let mut all: Vec<&str> = found
                .into_iter()
                .flat_map(|s| &s.ips)
                .flat_map(|d| &d.reasons)
                .map(String::as_str)
                .collect();
            all.dedup();
            if all.is_empty() {
                "the Service is gone or no longer assigned".into()
            } else {
                all.join("; ")
            }
        };
        let mut out = Vec::new();
        let mut l2 = BTreeSet::new();
        let mut bgp = BTreeMap::new();
        for s in services {
            let key = (s.key.namespace.clone(), s.key.name.clone());
            if report.owns_l2(s) {
                if !self.l2.contains(&key) {
                    let ifaces = report.l2_interfaces(s);
                    let on = if ifaces.is_empty() {
                        String::new()
                    } else {
                        format!(" on {}", ifaces.join(", "))
                    };
                    out.push((
                        service_ref(&key.0, &key.1),
                        kube_event(
                            false,
                            "Announcing",
                            format!("announcing from {node}{on} (layer 2)"),
                        ),
                    ));
                }
                l2.insert(key.clone());
            }
            let peers = report.bgp_peers(s);
            if !peers.is_empty() {
                let hash = digest(&peers);
                if self.bgp.get(&key) != Some(&hash) {
                    out.push((
                        service_ref(&key.0, &key.1),
                        kube_event(
                            false,
                            "Announcing",
                            format!("announcing from {node} to BGP peers {}", peers.join(", ")),
                        ),
                    ));
                }
                bgp.insert(key, hash);
            }
        }
        for (ns, name) in self.l2.difference(&l2) {
            out.push((
                service_ref(ns, name),
                kube_event(
                    false,
                    "Withdrawn",
                    format!(
                        "{node} no longer announces it on layer 2: {}",
                        reasons(ns, name)
                    ),
                ),
            ));
        }
        for (ns, name) in self.bgp.keys().filter(|k| !bgp.contains_key(*k)) {
            out.push((
                service_ref(ns, name),
                kube_event(
                    false,
                    "Withdrawn",
                    format!(
                        "{node} no longer announces it over BGP: {}",
                        reasons(ns, name)
                    ),
                ),
            ));
        }
        self.l2 = l2;
        self.bgp = bgp;
        for c in &report.conflicts {
            let ip = c.ip.to_string();
            if !self.conflicts.insert((ip.clone(), c.other_mac.clone())) {
                continue;
            }
            let holders = services.iter().filter(|s| {
                s.ips
                    .iter()
                    .any(|d| d.ip == Some(c.ip) && d.announced_here(node))
            });
            for s in holders {
                out.push((
                    service_ref(&s.key.namespace, &s.key.name),
                    kube_event(
                        true,
                        "IPConflict",
                        format!(
                            "another host ({}) claims {ip} on {node}'s {} ({}): a duplicate address on the LAN, or kube-proxy in IPVS mode without strictARP",
                            c.other_mac, c.interface, c.kind
                        ),
                    ),
                ));
            }
        }
        out
    }
}

fn status_resource(kind: &str) -> ApiResource {
    let plural = if kind == "ServiceL2Status" {
        "servicel2statuses"
    } else {
        "servicebgpstatuses"
    };
    ApiResource {
        group: "ferrolb.io".into(),
        version: "v1beta1".into(),
        api_version: "ferrolb.io/v1beta1".into(),
        kind: kind.into(),
        plural: plural.into(),
    }
}

/// Applies a status object (owned by its Service) and its status.
async fn write_service_status(
    client: &Client,
    manager: &str,
    ns: &str,
    name: &str,
    doc: &Value,
) -> Result<(), kube::Error> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let ar = status_resource(kind);
    let svc_name = doc["status"]["serviceName"].as_str().unwrap_or_default();
    let services: Api<Service> = Api::namespaced(client.clone(), ns);
    let owner = services.get_metadata_opt(svc_name).await?;
    let mut metadata = json!({
        "name": name,
        "namespace": ns,
        "labels": doc["metadata"]["labels"],
    });
    if let Some(uid) = owner.and_then(|o| o.metadata.uid) {
        metadata["ownerReferences"] = json!([{
            "apiVersion": "v1",
            "kind": "Service",
            "name": svc_name,
            "uid": uid,
        }]);
    }
    let object = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": kind,
        "metadata": metadata,
        "spec": {},
    });
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let pp = PatchParams::apply(manager).force();
    api.patch(name, &pp, &Patch::Apply(&object)).await?;
    let status = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": kind,
        "metadata": {"name": name, "namespace": ns},
        "status": doc["status"],
    });
    api.patch_status(name, &pp, &Patch::Apply(&status)).await?;
    Ok(())
}

/// Deletes the ServiceL2Status objects of `doc`'s Service that name another
/// node.
async fn delete_other_l2_statuses(
    client: &Client,
    ns: &str,
    doc: &Value,
    node: &str,
) -> Result<(), kube::Error> {
    let service = doc["status"]["serviceName"].as_str().unwrap_or_default();
    let api: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), ns, &status_resource("ServiceL2Status"));
    let list = api
        .list(&ListParams::default().labels(&format!("ferrolb.io/service-name={service}")))
        .await?;
    for obj in list.items {
        let owner = obj.data["status"]["node"].as_str().unwrap_or_default();
        let name = obj.metadata.name.clone().unwrap_or_default();
        if owner != node && !name.is_empty() {
            tracing::info!(
                "removing ServiceL2Status {ns}/{name}: {owner} no longer answers for {ns}/{service}"
            );
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// A Warning Event on a BGPPeer: this node's session to it failed.
async fn peer_warning(
    events: &ferrolb_controller::cluster::write::EventPublisher,
    opts: &Options,
    peer: &str,
    message: &str,
) -> Result<(), kube::Error> {
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("ferrolb.io/v1beta2".into()),
        kind: Some("BGPPeer".into()),
        namespace: Some(opts.namespace.clone()),
        name: Some(peer.into()),
        ..Default::default()
    };
    let event = kube_event(
        true,
        "BGPSessionProblem",
        format!("session from node {}: {message}", opts.node),
    );
    events.publish(&event, &reference).await
}

/// Puts this node's session into a BGPPeer's `status.sessions`, keeping the
/// other nodes' entries (optimistic concurrency: retried on conflict).
async fn write_peer_session(
    client: &Client,
    opts: &Options,
    peer: &str,
    session: Value,
) -> Result<(), kube::Error> {
    let api: Api<BGPPeer> = Api::namespaced(client.clone(), &opts.namespace);
    // Named as the other writes of this speaker are (else "unknown" in
    // managedFields and audit logs).
    let params = PatchParams {
        field_manager: Some(format!("ferrolb-speaker-{}", opts.node)),
        ..PatchParams::default()
    };
    let mut last = None;
    for _ in 0..3 {
        let Some(current) = api.get_opt(peer).await? else {
            return Ok(());
        };
        let mut sessions: Vec<Value> = current
            .status
            .as_ref()
            .map(|s| {
                s.sessions
                    .iter()
                    .filter_map(|x| serde_json::to_value(x).ok())
                    .collect()
            })
            .unwrap_or_default();
        sessions.retain(|s| s["node"] != opts.node.as_str());
        sessions.push(session.clone());
        sessions.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
        let patch = json!({
            "metadata": {"resourceVersion": current.metadata.resource_version},
            "status": {"sessions": sessions},
        });
        match api.patch_status(peer, &params, &Patch::Merge(&patch)).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(e)) if e.code == 409 => last = Some(kube::Error::Api(e)),
            Err(e) => return Err(e),
        }
    }
    Err(last.expect("three conflicts"))
}

/// This speaker's ConfigurationState: configuration problems, and every IP
/// it does not announce with the reasons.
async fn write_configuration_state(
    client: &Client,
    manager: &str,
    opts: &Options,
    problems: &[String],
    excluded: Option<&str>,
) -> Result<(), kube::Error> {
    let errors = problems.iter().filter(|p| p.contains("error")).count();
    let name = format!("speaker-{}", opts.node);
    let ar = ApiResource {
        group: "ferrolb.io".into(),
        version: "v1beta1".into(),
        api_version: "ferrolb.io/v1beta1".into(),
        kind: "ConfigurationState".into(),
        plural: "configurationstates".into(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &opts.namespace, &ar);
    let pp = PatchParams::apply(manager).force();
    let object = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": name, "namespace": opts.namespace},
        "spec": {"component": "speaker", "node": opts.node},
    });
    api.patch(&name, &pp, &Patch::Apply(&object)).await?;
    let reported: Vec<Value> = problems
        .iter()
        .map(|p| json!({"severity": if p.contains("error") { "Error" } else { "Warning" }, "kind": "", "name": "", "message": p}))
        .collect();
    let mut conditions = Vec::new();
    if let Some(reason) = excluded {
        conditions.push(json!({
            "type": "Announcing",
            "status": "False",
            "reason": "NodeNotEligible",
            "message": reason,
            "lastTransitionTime": super::status::rfc3339(std::time::SystemTime::now()),
        }));
    }
    let status = json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "ConfigurationState",
        "metadata": {"name": name, "namespace": opts.namespace},
        "status": {
            "result": if errors > 0 { "Invalid" } else if problems.is_empty() { "Valid" } else { "ValidWithWarnings" },
            "errorCount": errors,
            "warningCount": problems.len() - errors,
            "errorSummary": problems.first(),
            "problems": reported,
            "conditions": conditions,
        },
    });
    api.patch_status(&name, &pp, &Patch::Apply(&status)).await?;
    Ok(())
}

/// A Warning Event on the Node: it announces nothing, and why.
async fn node_warning(client: &Client, node: &str, reason: &str) -> Result<(), kube::Error> {
    use kube::runtime::events::{Event, EventType};
    let publisher = ferrolb_controller::cluster::write::EventPublisher::new(
        client.clone(),
        "ferrolb.io/speaker",
        node,
    );
    let reference = k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: Some(node.into()),
        namespace: Some("default".into()),
        ..Default::default()
    };
    publisher
        .publish(
            &Event {
                type_: EventType::Warning,
                reason: "NotAnnouncing".into(),
                note: Some(format!(
                    "ferrolb-speaker announces nothing from this node: {reason}"
                )),
                action: "Announce".into(),
                secondary: None,
            },
            &reference,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1beta1_slices_name_their_node_by_hostname_topology() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1beta1",
            "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "topology": {"kubernetes.io/hostname": "node2"}},
                {"addresses": ["10.0.0.2"], "conditions": {"ready": false}, "nodeName": "node3", "topology": {"kubernetes.io/hostname": "other"}}
            ]
        }))
        .unwrap();
        let slice = endpoint_slice_from_v1beta1(&obj).unwrap();
        assert_eq!(slice.endpoints[0].node_name.as_deref(), Some("node2"));
        assert_eq!(slice.endpoints[1].node_name.as_deref(), Some("node3"));
        assert_eq!(
            slice.endpoints[1].conditions.as_ref().unwrap().ready,
            Some(false)
        );
        assert_eq!(
            slice.metadata.labels.unwrap()["kubernetes.io/service-name"],
            "web"
        );
    }

    #[test]
    fn events_follow_announcements_withdrawals_and_conflicts() {
        use crate::desired::{Desired, IpDecision, ServiceDecision, ServiceKey};
        let ip: std::net::IpAddr = "198.51.100.10".parse().unwrap();
        let web = |d: IpDecision| ServiceDecision {
            key: ServiceKey {
                namespace: "default".into(),
                name: "web".into(),
            },
            ips: vec![d],
        };
        let owned = IpDecision {
            ip: Some(ip),
            l2_owner: Some("node2".into()),
            ..IpDecision::default()
        };
        let report = |services: Vec<ServiceDecision>,
                      conflicts: Vec<super::super::l2::Conflict>| Report {
            node: "node2".into(),
            desired: Arc::new(Desired {
                services,
                ..Desired::default()
            }),
            interfaces: [(ip, vec!["eth0".to_string()])].into(),
            conflicts,
            ..Report::default()
        };
        let notes = |v: Vec<(
            k8s_openapi::api::core::v1::ObjectReference,
            kube::runtime::events::Event,
        )>| {
            v.into_iter()
                .map(|(r, e)| {
                    format!(
                        "{}/{} {} {}",
                        r.namespace.unwrap(),
                        r.name.unwrap(),
                        e.reason,
                        e.note.unwrap()
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut ev = ServiceEvents::default();
        let first = notes(ev.diff(&report(vec![web(owned.clone())], vec![])));
        assert_eq!(
            first,
            ["default/web Announcing announcing from node2 on eth0 (layer 2)"]
        );
        assert!(
            ev.diff(&report(vec![web(owned.clone())], vec![]))
                .is_empty()
        );
        let conflict = super::super::l2::Conflict {
            ip,
            interface: "eth0".into(),
            other_mac: "02:00:00:00:00:99".into(),
            kind: "arp_sender",
        };
        let c = notes(ev.diff(&report(vec![web(owned.clone())], vec![conflict.clone()])));
        assert_eq!(c.len(), 1);
        assert!(
            c[0].contains("IPConflict another host (02:00:00:00:00:99) claims 198.51.100.10"),
            "{c:?}"
        );
        assert!(
            ev.diff(&report(vec![web(owned)], vec![conflict]))
                .is_empty(),
            "reported once"
        );
        let not_here = IpDecision {
            ip: Some(ip),
            reasons: vec![
                "externalTrafficPolicy is Local and node node2 has no ready endpoint".into(),
            ],
            ..IpDecision::default()
        };
        let gone = notes(ev.diff(&report(vec![web(not_here)], vec![])));
        assert_eq!(
            gone,
            [
                "default/web Withdrawn node2 no longer announces it on layer 2: externalTrafficPolicy is Local and node node2 has no ready endpoint"
            ]
        );
        let bgp = IpDecision {
            ip: Some(ip),
            bgp: vec![("r1".into(), "198.51.100.10/32".parse().unwrap())],
            ..IpDecision::default()
        };
        let announced = notes(ev.diff(&report(vec![web(bgp.clone())], vec![])));
        assert_eq!(
            announced,
            ["default/web Announcing announcing from node2 to BGP peers r1"]
        );
        assert!(ev.diff(&report(vec![web(bgp)], vec![])).is_empty());
        let deleted = notes(ev.diff(&report(vec![], vec![])));
        assert_eq!(
            deleted,
            [
                "default/web Withdrawn node2 no longer announces it over BGP: the Service is gone or no longer assigned"
            ]
        );
    }

    #[test]
    fn status_names_fit() {
        assert_eq!(status_name("web", "node1"), "web-node1");
        let long = status_name(&"s".repeat(63), &"n".repeat(253));
        assert!(long.len() <= 253, "{}", long.len());
    }
}
