//! `explain` against a real v1.20 API server: the table of broken
//! configurations of `explain.rs` (shared: `explain/cases.rs`), each case
//! run in the cluster rather than in a standalone directory (issue #18).
//!
//! One throw-away control plane ([`ControlPlane`]) and one
//! `ferrolb-controller --kubeconfig` for the whole test. Per case: the
//! previous case's Services, status objects, Events and FerroLB objects
//! are deleted; the case's FerroLB objects are applied into
//! `ferrolb-system` and, once the controller has written every pool's
//! status (so it has seen them), its Services one at a time, each waited
//! for (bounded) until the controller has assigned it (ingress) or, for the
//! case's pending Service, has recorded its `AllocationFailed` Event. The
//! three Nodes are Ready (status subresource) and carry the case's labels.
//!
//! The speakers are simulated as in `explain.rs`: the speaker's own
//! decision (`speaker_reports`, over the case's manifests and the Services
//! as the API server holds them, with the controller's ingress) and its
//! cluster writer's documents: `Report::service_documents` for the
//! `ServiceL2Status`/`ServiceBGPStatus` objects (named by
//! `daemon::cluster::status_name`, owned by their Service),
//! `Report::sessions` for the BGPPeer's `status.sessions`, and
//! `ServiceEvents::diff` for the Events (Announcing, IPConflict). The
//! `ConfigurationState speaker-NODE` and the Node's `NotAnnouncing` Event
//! are built here as `daemon::cluster` builds them (its builders are
//! private): same spec, status and reason.
//!
//! Then `kubectl-ferrolb explain service NS/NAME --kubeconfig F` must give
//! the case's exit code and texts, and its `-o json` the same verdict. What
//! differs from standalone mode, and why:
//!
//! - "class mismatch": v1.20 has no `spec.loadBalancerClass` (1.21+), and
//!   the controller reads the class from that field only (no annotation).
//!   The case is adapted: the same classless Service, explained with
//!   `--lb-class example.com/mine` (a FerroLB serving that class only), run
//!   before the controller starts, so nothing assigns it.
//! - A speaker that has not reported is named by its `ConfigurationState
//!   ferrolb-system/speaker-NODE`, not `DIR/status/speaker-NODE.yaml`.
//! - EndpointSlices are `discovery.k8s.io/v1beta1` there (1.20), the node
//!   in `topology["kubernetes.io/hostname"]` instead of `nodeName`.
//!
//! Needs root and `etcd`, `curl`, `openssl` (the control plane); without
//! them the test prints `SKIPPED: …` (fails when `CI` is set).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::control_plane::{ControlPlane, workspace_root};
use ferrolb_e2e::speaker::{controller_binary, plugin_binary};
use ferrolb_speaker::daemon::cluster::{ServiceEvents, status_name};
use ferrolb_speaker::daemon::status::{Report, rfc3339};
use serde_json::{Value, json};

#[path = "explain/cases.rs"]
mod cases;
use cases::{Case, L2, NODES, POOL, cases, docs, nodes, service, speaker_reports};

/// How long the controller may take to act on one change.
const SETTLE: Duration = Duration::from_secs(30);
const SYSTEM: &str = "ferrolb-system";
/// FerroLB's configuration kinds a case applies.
const CONFIG_KINDS: &str = "ipaddresspools,l2advertisements,bgpadvertisements,bgppeers";

/// The controller, killed on drop.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_docs(text: &str) -> Vec<Value> {
    text.split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| {
            serde_saphyr::from_str::<Value>(d).unwrap_or_else(|e| panic!("case YAML: {e}:\n{d}"))
        })
        .collect()
}

/// A `discovery.k8s.io/v1` EndpointSlice as v1.20 takes it (v1beta1: the
/// node in the hostname topology).
fn to_v1beta1(mut slice: Value) -> Value {
    slice["apiVersion"] = json!("discovery.k8s.io/v1beta1");
    for e in slice["endpoints"].as_array_mut().into_iter().flatten() {
        if let Some(node) = e.as_object_mut().and_then(|o| o.remove("nodeName")) {
            e["topology"] = json!({ "kubernetes.io/hostname": node });
        }
    }
    slice
}

fn list(items: Vec<Value>) -> String {
    json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
}

fn run(command: &mut Command) -> (i32, String) {
    let out = command.output().expect("running the plugin");
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `kubectl replace --raw PATH/status` of the object (`first`, as just
/// created, else read with `kubectl get`) with `set` applied, retried on a
/// conflict with a fresh read (the controller writes conditions into
/// FerroLB objects' status too).
fn put_status(
    cp: &ControlPlane,
    path: &str,
    get: &[&str],
    mut first: Option<Value>,
    set: impl Fn(&mut Value),
) {
    let mut last = String::new();
    for _ in 0..5 {
        let mut obj = first.take().unwrap_or_else(|| cp.json(get));
        set(&mut obj);
        let out = cp.kubectl_with_input(
            &["replace", "--raw", &format!("{path}/status"), "-f", "-"],
            &obj.to_string(),
        );
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
    }
    panic!("writing {path}/status failed 5 times: {last}");
}

/// What the speakers' cluster writers put into the API server for these
/// reports.
/// `uids`: each Service's uid by NAMESPACE/NAME (the status objects'
/// owner).
fn write_speaker_status(cp: &ControlPlane, reports: &[Report], uids: &BTreeMap<String, Value>) {
    let now = rfc3339(std::time::SystemTime::now());
    let micro = now.replace('Z', ".000000Z");
    let mut objects = Vec::new();
    let mut statuses: Vec<(String, String, String, Value)> = Vec::new();
    let mut sessions: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in reports {
        for doc in r.service_documents() {
            let kind = doc["kind"].as_str().unwrap().to_string();
            let ns = doc["metadata"]["namespace"].as_str().unwrap().to_string();
            let svc = doc["status"]["serviceName"].as_str().unwrap();
            let name = status_name(svc, &r.node);
            let uid = uids[&format!("{ns}/{svc}")].clone();
            objects.push(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": kind,
                "metadata": {
                    "name": name, "namespace": ns, "labels": doc["metadata"]["labels"],
                    "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": svc, "uid": uid}],
                },
                "spec": {},
            }));
            let plural = if kind == "ServiceL2Status" {
                "servicel2statuses"
            } else {
                "servicebgpstatuses"
            };
            statuses.push((
                format!("/apis/ferrolb.io/v1beta1/namespaces/{ns}/{plural}/{name}"),
                format!("{plural}.ferrolb.io"),
                format!("{ns}/{name}"),
                doc["status"].clone(),
            ));
        }
        for (peer, session) in r.sessions() {
            sessions.entry(peer.to_string()).or_default().push(session);
        }
        // ConfigurationState speaker-NODE, as the speaker's
        // write_configuration_state makes it (no problems here).
        let name = format!("speaker-{}", r.node);
        objects.push(json!({
            "apiVersion": "ferrolb.io/v1beta1", "kind": "ConfigurationState",
            "metadata": {"name": name, "namespace": SYSTEM},
            "spec": {"component": "speaker", "node": r.node},
        }));
        let conditions: Vec<Value> = r
            .desired
            .node_excluded
            .iter()
            .map(|reason| {
                json!({
                    "type": "Announcing", "status": "False", "reason": "NodeNotEligible",
                    "message": reason, "lastTransitionTime": now,
                })
            })
            .collect();
        statuses.push((
            format!("/apis/ferrolb.io/v1beta1/namespaces/{SYSTEM}/configurationstates/{name}"),
            "configurationstates.ferrolb.io".into(),
            format!("{SYSTEM}/{name}"),
            json!({"result": "Valid", "errorCount": 0, "warningCount": 0, "problems": [], "conditions": conditions}),
        ));
        // Events: the speaker's own diff (Announcing, IPConflict), and the
        // Node's NotAnnouncing Warning.
        let event = |regarding: Value, type_: &str, reason: &str, action: &str, note: &str| {
            json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"generateName": format!("{}-", regarding["name"].as_str().unwrap_or("x")),
                             "namespace": regarding["namespace"]},
                "eventTime": micro, "reportingController": "ferrolb.io/speaker",
                "reportingInstance": r.node, "action": action, "reason": reason,
                "note": note, "type": type_, "regarding": regarding,
            })
        };
        for (reference, e) in ServiceEvents::default().diff(r) {
            objects.push(event(
                json!({"apiVersion": reference.api_version, "kind": reference.kind,
                       "namespace": reference.namespace, "name": reference.name}),
                &format!("{:?}", e.type_),
                &e.reason,
                &e.action,
                e.note.as_deref().unwrap_or_default(),
            ));
        }
        if let Some(reason) = &r.desired.node_excluded {
            objects.push(event(
                json!({"apiVersion": "v1", "kind": "Node", "namespace": "default", "name": r.node}),
                "Warning",
                "NotAnnouncing",
                "Announce",
                &format!("ferrolb-speaker announces nothing from this node: {reason}"),
            ));
        }
    }
    // kubectl 1.20 prints one JSON object per created object.
    let out = cp.ok_with_input(&["create", "-f", "-", "-o", "json"], &list(objects));
    let created: BTreeMap<String, Value> = serde_json::Deserializer::from_str(&out)
        .into_iter::<Value>()
        .map(|o| o.expect("kubectl create -o json"))
        .flat_map(|o| match o["items"].as_array() {
            Some(items) if o["kind"] == "List" => items.clone(),
            _ => vec![o],
        })
        .map(|o| {
            let m = &o["metadata"];
            let key = format!(
                "{}/{}",
                m["namespace"].as_str().unwrap_or_default(),
                m["name"].as_str().unwrap_or_default()
            );
            (key, o)
        })
        .collect();
    for (path, resource, ns_name, status) in statuses {
        let (ns, name) = ns_name.split_once('/').unwrap();
        let first = created.get(&ns_name).cloned();
        put_status(cp, &path, &["-n", ns, "get", &resource, name], first, |o| {
            o["status"] = status.clone();
        });
    }
    for (peer, mut list) in sessions {
        list.sort_by(|a, b| a["node"].as_str().cmp(&b["node"].as_str()));
        put_status(
            cp,
            &format!("/apis/ferrolb.io/v1beta2/namespaces/{SYSTEM}/bgppeers/{peer}"),
            &["-n", SYSTEM, "get", "bgppeers.ferrolb.io", &peer],
            None,
            |o| o["status"]["sessions"] = json!(list),
        );
    }
}

/// The speakers' view of the case: its manifests and Nodes, and the
/// Services as the API server holds them (ingress written by the
/// controller), as `status/services.yaml`; and each Service's uid by
/// NAMESPACE/NAME.
fn speaker_dir(cp: &ControlPlane, case: &Case) -> (tempfile::TempDir, BTreeMap<String, Value>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.yaml"), &case.manifests).unwrap();
    std::fs::write(dir.path().join("nodes.yaml"), nodes(case.node_labels)).unwrap();
    std::fs::create_dir(dir.path().join("status")).unwrap();
    let services = cp.json(&["-n", "default", "get", "svc"]);
    let items = services["items"].as_array().expect("Services");
    let uids = items
        .iter()
        .map(|s| {
            let m = &s["metadata"];
            (
                format!(
                    "{}/{}",
                    m["namespace"].as_str().unwrap_or_default(),
                    m["name"].as_str().unwrap_or_default()
                ),
                m["uid"].clone(),
            )
        })
        .collect();
    let text: Vec<String> = items
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s["apiVersion"] = json!("v1");
            s["kind"] = json!("Service");
            s.to_string()
        })
        .collect();
    std::fs::write(
        dir.path().join("status/services.yaml"),
        text.join("\n---\n"),
    )
    .unwrap();
    (dir, uids)
}

/// Deletes what the previous case made.
fn clean(cp: &ControlPlane, services: &[String], labels: &[String]) {
    if !services.is_empty() {
        let mut args = vec!["-n", "default", "delete", "svc", "--wait"];
        args.extend(services.iter().map(String::as_str));
        cp.ok(&args);
    }
    cp.ok(&[
        "-n",
        "default",
        "delete",
        "servicel2statuses,servicebgpstatuses,endpointslices,events",
        "--all",
    ]);
    cp.ok(&["-n", SYSTEM, "delete", CONFIG_KINDS, "--all"]);
    cp.ok(&[
        "-n",
        SYSTEM,
        "delete",
        "configurationstates",
        "speaker-node1",
        "speaker-node2",
        "speaker-node3",
        "--ignore-not-found",
    ]);
    // The "namespace selector" case labels namespace default (removing a
    // label it does not have is not an error worth stopping for).
    cp.kubectl(&["label", "namespace", "default", "tier-"]);
    for key in labels {
        let mut args = vec!["label", "node"];
        args.extend(NODES);
        let unset = format!("{key}-");
        args.push(&unset);
        cp.ok(&args);
    }
}

/// `key: "value"` pairs of a case's node labels.
fn label_pairs(labels: &str) -> Vec<(String, String)> {
    labels
        .split(',')
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').expect("key: value");
            (k.trim().to_string(), v.trim().trim_matches('"').to_string())
        })
        .collect()
}

/// Waits until the controller has written every IPAddressPool's status:
/// it has seen the case's configuration.
fn wait_pools_seen(cp: &ControlPlane, pools: usize) {
    wait_until(SETTLE, || {
        let l = cp.json(&["-n", SYSTEM, "get", "ipaddresspools"]);
        let items = l["items"].as_array()?;
        (items.len() == pools
            && items
                .iter()
                .all(|p| !p["status"]["availableIPv4"].is_null()))
        .then_some(())
    })
    .unwrap_or_else(|| {
        panic!("the controller wrote no status into the {pools} pool(s) in {SETTLE:?}")
    });
}

fn ingress(cp: &ControlPlane, name: &str) -> Option<Value> {
    let s = cp.json(&["-n", "default", "get", "svc", name]);
    let i = &s["status"]["loadBalancer"]["ingress"];
    i.as_array()
        .is_some_and(|a| !a.is_empty())
        .then(|| i.clone())
}

/// Applies the Service and waits until the controller assigned it, or
/// (`pending`) recorded its AllocationFailed Event.
fn apply_service(cp: &ControlPlane, svc: &Value, pending: bool) {
    let name = svc["metadata"]["name"].as_str().unwrap().to_string();
    cp.apply(&svc.to_string());
    let uid = cp.json(&["-n", "default", "get", "svc", &name])["metadata"]["uid"].clone();
    let done = wait_until(SETTLE, || {
        if pending {
            cp.event("default", &name, "AllocationFailed")
                .filter(|e| e["regarding"]["uid"] == uid)
                .map(|_| ())
        } else {
            ingress(cp, &name).map(|_| ())
        }
    });
    assert!(
        done.is_some(),
        "Service default/{name}: the controller did not {} in {SETTLE:?}",
        if pending {
            "record AllocationFailed"
        } else {
            "assign it"
        }
    );
}

/// The texts the case must show in cluster mode (see the module's notes).
fn cluster_says(case: &Case) -> Vec<String> {
    let mut says: Vec<String> = case.says.iter().map(|s| s.to_string()).collect();
    if case.speakers.is_none() && case.exit == 2 {
        says.push(format!("ConfigurationState {SYSTEM}/speaker-node"));
    }
    says
}

/// Runs the plugin for `case` (text and JSON): its exit code and text, or
/// a failure's description.
fn check(
    plugin: &Path,
    kubeconfig: &Path,
    case: &Case,
    extra: &[&str],
    says: &[String],
) -> Result<(i32, String), String> {
    let explain = |json: bool| {
        let mut c = Command::new(plugin);
        c.args(["explain", "--kubeconfig"])
            .arg(kubeconfig)
            .args(extra)
            .args(["service", case.service]);
        if json {
            c.args(["-o", "json"]);
        }
        run(&mut c)
    };
    let (code, text) = explain(false);
    let missing: Vec<&String> = says.iter().filter(|s| !text.contains(s.as_str())).collect();
    if code != case.exit || !missing.is_empty() {
        return Err(format!(
            "{}: exit {code} (want {}), missing {missing:?}:\n{text}",
            case.name, case.exit
        ));
    }
    let (jcode, jout) = explain(true);
    let doc: Value = serde_json::from_str(&jout)
        .map_err(|e| format!("{}: -o json is not JSON ({e}):\n{jout}", case.name))?;
    let verdict = ["Announced", "Pending", "AssignedNotAnnounced", "Error"][case.exit as usize];
    let kind_ok = if case.exit == 3 {
        doc["kind"] == "Error"
    } else {
        doc["verdict"] == verdict && doc["kind"] == "Service"
    };
    let reasons = doc["reasons"].as_array().map_or(0, Vec::len);
    if jcode != case.exit
        || doc["exitCode"] != case.exit
        || doc["schema"] != "ferrolb.io/explain/v1"
        || !kind_ok
        || ((case.exit == 1 || case.exit == 2) && reasons == 0)
    {
        return Err(format!("{}: -o json (exit {jcode}):\n{jout}", case.name));
    }
    Ok((code, text))
}

#[test]
fn broken_configurations_say_why_in_a_cluster() {
    if !ferrolb_e2e::require(&[
        ("etcd", "etcd-server"),
        ("curl", "curl"),
        ("openssl", "openssl"),
    ]) {
        return;
    }
    let started = Instant::now();
    let plugin = plugin_binary();
    let controller = controller_binary();
    println!("binaries: {:.0} s", started.elapsed().as_secs_f64());
    let cp = ControlPlane::start();
    println!("control plane: {:.0} s", started.elapsed().as_secs_f64());
    let deploy = workspace_root().join("deploy");
    let d = |p: &str| deploy.join(p).display().to_string();
    cp.ok(&["apply", "-f", &d("namespace.yaml"), "-f", &d("crds.yaml")]);
    cp.wait_crds();
    // Three Ready Nodes (the Ready condition through the status
    // subresource; no node controller runs to change it).
    for node in NODES {
        cp.apply(
            &json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}).to_string(),
        );
        put_status(
            &cp,
            &format!("/api/v1/nodes/{node}"),
            &["get", "node", node],
            None,
            |o| {
                o["status"]["conditions"] = json!([{"type": "Ready", "status": "True",
                "lastHeartbeatTime": rfc3339(std::time::SystemTime::now()),
                "lastTransitionTime": rfc3339(std::time::SystemTime::now()),
                "reason": "KubeletReady", "message": "simulated by the test"}]);
            },
        );
    }
    let kubeconfig = cp.kubeconfig().to_path_buf();
    let mut failures = Vec::new();
    let mut covered = 0;

    // "class mismatch", adapted (see the module's notes): before any
    // controller runs, a FerroLB serving only example.com/mine explains a
    // classless Service.
    {
        cp.apply(&list(parse_docs(&docs(&[
            POOL,
            L2,
            &service("web", "", ""),
        ]))));
        let case = Case {
            name: "class mismatch (--lb-class, v1.20 has no spec.loadBalancerClass)",
            manifests: String::new(),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 1,
            says: &[],
        };
        let says = vec![
            "the Service has no loadBalancerClass, but this FerroLB serves Services of loadBalancerClass \"example.com/mine\"".to_string(),
            "class mismatch".to_string(),
        ];
        match check(
            &plugin,
            &kubeconfig,
            &case,
            &["--lb-class", "example.com/mine"],
            &says,
        ) {
            Ok((code, text)) => {
                covered += 1;
                println!(
                    "ok: {} (exit {code})\n    {}",
                    case.name,
                    text.trim_end().replace('\n', "\n    ")
                );
            }
            Err(e) => failures.push(e),
        }
        clean(&cp, &["web".to_string()], &[]);
    }

    let log = cp.state_dir().join("controller.log");
    let _controller = Controller(
        Command::new(&controller)
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args([
                "--identity",
                "explain-cluster",
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-duration",
                "6",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting ferrolb-controller"),
    );

    let (mut services, mut labels): (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    for case in cases() {
        if case.name == "class mismatch" {
            continue; // adapted above
        }
        let t = Instant::now();
        clean(&cp, &services, &labels);
        let pairs = label_pairs(case.node_labels);
        labels = pairs.iter().map(|(k, _)| k.clone()).collect();
        for (k, v) in &pairs {
            let mut args = vec!["label", "node", "--overwrite"];
            args.extend(NODES);
            let kv = format!("{k}={v}");
            args.push(&kv);
            cp.ok(&args);
        }
        let all = parse_docs(&case.manifests);
        let (svcs, config): (Vec<Value>, Vec<Value>) =
            all.into_iter().partition(|d| d["kind"] == "Service");
        let config: Vec<Value> = config
            .into_iter()
            .map(|d| {
                if d["kind"] == "EndpointSlice" {
                    to_v1beta1(d)
                } else {
                    d
                }
            })
            .collect();
        let pools = config
            .iter()
            .filter(|d| d["kind"] == "IPAddressPool")
            .count();
        cp.apply(&list(config));
        wait_pools_seen(&cp, pools);
        services = Vec::new();
        let target = case
            .service
            .split_once('/')
            .map_or(case.service, |(_, n)| n);
        for svc in &svcs {
            let name = svc["metadata"]["name"].as_str().unwrap().to_string();
            apply_service(&cp, svc, case.exit == 1 && name == target);
            services.push(name);
        }
        if let Some(sim) = case.speakers {
            let (dir, uids) = speaker_dir(&cp, &case);
            write_speaker_status(&cp, &speaker_reports(dir.path(), sim), &uids);
        }
        match check(&plugin, &kubeconfig, &case, &[], &cluster_says(&case)) {
            Ok((code, text)) => {
                covered += 1;
                println!(
                    "ok: {} (exit {code}, {:.1} s)\n    {}",
                    case.name,
                    t.elapsed().as_secs_f64(),
                    text.trim_end().replace('\n', "\n    ")
                );
            }
            Err(e) => failures.push(e),
        }
    }
    println!(
        "{covered} cases in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "\n{}\n\ncontroller log: {}",
        failures.join("\n\n"),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}
