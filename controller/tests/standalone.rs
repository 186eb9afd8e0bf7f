//! `ferrolb-controller --standalone DIR`: allocation from files, results in DIR/status/.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
}

const POOL: &str = "apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan}
spec:
  addresses: [198.51.100.10-198.51.100.12, 2001:db8::10-2001:db8::11]
";

fn service(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n{extra}spec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n"
    )
}

fn run_once(dir: &Path) {
    let out = bin()
        .arg("--standalone")
        .arg(dir)
        .arg("--once")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// (name, ips) for each Service in status/services.yaml.
fn assignments(dir: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(dir.join("status/services.yaml")).unwrap();
    ferrolb_config::yaml::split_documents(&text)
        .iter()
        .map(|d| {
            let v: serde_json::Value = serde_saphyr::from_str(d.text).unwrap();
            let ips = v["status"]["loadBalancer"]["ingress"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["ip"].as_str().unwrap().to_string())
                .collect();
            (v["metadata"]["name"].as_str().unwrap().to_string(), ips)
        })
        .collect()
}

type Assignments = [(String, Vec<String>)];

fn names_ips(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
    list.iter()
        .map(|(n, ips)| (n.to_string(), ips.iter().map(|s| s.to_string()).collect()))
        .collect()
}

#[test]
fn allocates_writes_status_and_keeps_ips_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pool.yaml"), POOL).unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        service("b", "") + &service("c", "  creationTimestamp: \"2026-01-02T00:00:00Z\"\n"),
    )
    .unwrap();
    run_once(dir.path());
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[("b", &["198.51.100.10"]), ("c", &["198.51.100.11"])])
    );
    let svc_text = std::fs::read_to_string(dir.path().join("status/services.yaml")).unwrap();
    assert!(svc_text.contains("ferrolb.io/ip-allocated-from-pool: lan"));

    // A new Service that sorts first must not move the others after a restart.
    std::fs::write(
        dir.path().join("svc.yaml"),
        service("a", "")
            + &service("b", "")
            + &service("c", "  creationTimestamp: \"2026-01-02T00:00:00Z\"\n"),
    )
    .unwrap();
    run_once(dir.path());
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[
            ("a", &["198.51.100.12"]),
            ("b", &["198.51.100.10"]),
            ("c", &["198.51.100.11"])
        ])
    );

    // Pool exhausted: a fourth Service is pending, with a Warning event naming the pool.
    let mut all = std::fs::read_to_string(dir.path().join("svc.yaml")).unwrap();
    all.push_str(&service("d", ""));
    std::fs::write(dir.path().join("svc.yaml"), all).unwrap();
    run_once(dir.path());
    let a = assignments(dir.path());
    assert_eq!(a[3], ("d".to_string(), vec![]));
    let events = std::fs::read_to_string(dir.path().join("status/events.yaml")).unwrap();
    let events: serde_json::Value = serde_saphyr::from_str(&events).unwrap();
    let last = events.as_array().unwrap().last().unwrap();
    assert_eq!(last["type"], "Warning");
    assert_eq!(last["reason"], "AllocationFailed");
    assert_eq!(last["object"], "default/d");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("\"lan\" exhausted for IPv4"),
        "{last}"
    );

    let pools = std::fs::read_to_string(dir.path().join("status/pools.yaml")).unwrap();
    let pool: serde_json::Value =
        serde_saphyr::from_str(ferrolb_config::yaml::split_documents(&pools)[0].text).unwrap();
    assert_eq!(pool["status"]["assignedIPv4"], 3);
    assert_eq!(pool["status"]["availableIPv4"], 0);
    assert_eq!(pool["status"]["availableIPv6"], "2");
}

#[test]
fn addresses_in_the_status_of_services_of_another_class_are_in_use() {
    // A controller for example.com/x next to the default one, which gave
    // 198.51.100.10 to default/e (its file carries that status).
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pool.yaml"), POOL).unwrap();
    let held = service("e", "").replace(
        "spec:\n",
        "status: {loadBalancer: {ingress: [{ip: 198.51.100.10}]}}\nspec:\n",
    );
    let classed = |name: &str, extra: &str| {
        service(name, extra).replace(
            "  type: LoadBalancer\n",
            "  type: LoadBalancer\n  loadBalancerClass: example.com/x\n",
        )
    };
    std::fs::write(
        dir.path().join("svc.yaml"),
        held.clone()
            + &classed("classed", "")
            + &classed(
                "wants-it",
                "  annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.10}\n",
            ),
    )
    .unwrap();
    let run = || {
        let out = bin()
            .arg("--standalone")
            .arg(dir.path())
            .args(["--once", "--lb-class", "example.com/x"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run();
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[("classed", &["198.51.100.11"]), ("wants-it", &[])])
    );
    let events = std::fs::read_to_string(dir.path().join("status/events.yaml")).unwrap();
    let events: serde_json::Value = serde_saphyr::from_str(&events).unwrap();
    let refused = events
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["object"] == "default/wants-it")
        .unwrap();
    assert_eq!(refused["reason"], "AllocationFailed");
    assert_eq!(
        refused["message"],
        "requested IP 198.51.100.10 is in use: default/e (no loadBalancerClass, not served by this controller) has it in status.loadBalancer.ingress; it becomes free when that Service no longer lists it"
    );
    let pools = std::fs::read_to_string(dir.path().join("status/pools.yaml")).unwrap();
    let pool: serde_json::Value =
        serde_saphyr::from_str(ferrolb_config::yaml::split_documents(&pools)[0].text).unwrap();
    assert_eq!(pool["status"]["assignedIPv4"], 2);
    assert_eq!(pool["status"]["availableIPv4"], 1);

    // default/e is deleted: the address is free for the Service asking for it.
    std::fs::write(
        dir.path().join("svc.yaml"),
        classed("classed", "")
            + &classed(
                "wants-it",
                "  annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.10}\n",
            ),
    )
    .unwrap();
    run();
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[
            ("classed", &["198.51.100.11"]),
            ("wants-it", &["198.51.100.10"])
        ])
    );
}

#[test]
fn invalid_configuration_is_reported_and_valid_objects_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let bad_pool = POOL.replace("lan", "bad").replace(
        "[198.51.100.10-198.51.100.12, 2001:db8::10-2001:db8::11]",
        "[203.0.113.20-203.0.113.10]",
    );
    std::fs::write(
        dir.path().join("pools.yaml"),
        format!("{POOL}---\n{bad_pool}---\nkind: [broken\n"),
    )
    .unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service("web", "")).unwrap();
    run_once(dir.path());
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[("web", &["198.51.100.10"])])
    );
    let state = std::fs::read_to_string(dir.path().join("status/configuration.yaml")).unwrap();
    let state: serde_json::Value = serde_saphyr::from_str(&state).unwrap();
    assert_eq!(state["status"]["result"], "Invalid");
    assert_eq!(state["status"]["errorCount"], 2);
    let problems = state["status"]["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["name"] == "bad" && p["field"] == "spec.addresses[0]")
    );
    let events = std::fs::read_to_string(dir.path().join("status/events.yaml")).unwrap();
    assert!(events.contains("InvalidConfiguration"));
    // status/ is output: an unreadable file there is never read as configuration.
    std::fs::write(dir.path().join("status/junk.yaml"), "kind: [broken\n").unwrap();
    run_once(dir.path());
    let state = std::fs::read_to_string(dir.path().join("status/configuration.yaml")).unwrap();
    assert!(state.contains("errorCount: 2"), "{state}");
}

#[test]
fn long_running_mode_reallocates_on_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pool.yaml"), POOL).unwrap();
    std::fs::write(dir.path().join("svc.yaml"), service("web", "")).unwrap();
    let mut child = bin()
        .arg("--standalone")
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |want: &dyn Fn(&Assignments) -> bool| -> Option<Duration> {
        let start = Instant::now();
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(dir.path().join("status/services.yaml"))
                && !text.is_empty()
                && want(&assignments(dir.path()))
            {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        None
    };
    let first = wait_for(&|a| a.len() == 1);
    let changed_at = Instant::now();
    std::fs::write(dir.path().join("svc2.yaml"), service("api", "")).unwrap();
    let second = wait_for(&|a| a.len() == 2);
    let _ = child.kill();
    let _ = child.wait();
    assert!(first.is_some(), "initial allocation written");
    let took = second.map(|_| changed_at.elapsed());
    assert!(took.is_some(), "change picked up within the 5 s bound");
    eprintln!("change picked up after {:?}", took.unwrap());
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[("web", &["198.51.100.10"]), ("api", &["198.51.100.11"])])
    );
}

#[test]
fn services_yaml_repeats_metadata_and_spec_as_read() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pool.yaml"), POOL).unwrap();
    std::fs::write(
        dir.path().join("svc.yaml"),
        "apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  labels: {app: web}
  annotations: {example.com/note: \"hello: world\", ferrolb.io/ip-allocated-from-pool: stale}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080, name: http}]
---
apiVersion: v1
kind: Service
metadata: {name: internal}
spec: {type: ClusterIP, ports: [{port: 81}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {type: LoadBalancer, ports: [{port: 9}]}
",
    )
    .unwrap();
    run_once(dir.path());
    let text = std::fs::read_to_string(dir.path().join("status/services.yaml")).unwrap();
    let docs = ferrolb_config::yaml::split_documents(&text);
    // The ClusterIP Service is not ours; the second "web" is a duplicate.
    assert_eq!(docs.len(), 1, "{text}");
    let doc: serde_json::Value = serde_saphyr::from_str(docs[0].text).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "web",
                "namespace": "shop",
                "labels": {"app": "web"},
                "annotations": {
                    "example.com/note": "hello: world",
                    "ferrolb.io/ip-allocated-from-pool": "lan",
                },
            },
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080, "name": "http"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.10"}]}},
        })
    );
    let state = std::fs::read_to_string(dir.path().join("status/configuration.yaml")).unwrap();
    assert!(
        state.contains("defined twice; the definition at")
            && state.contains("svc.yaml:1 (document 1) is used and this one ignored"),
        "{state}"
    );
}

/// The demo of the README (`deploy/demo/run.sh`) gives what its comments say.
#[test]
fn the_demo_allocates_as_its_comments_say() {
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo");
    let dir = tempfile::tempdir().unwrap();
    for f in ["pools.yaml", "services.yaml"] {
        std::fs::copy(demo.join(f), dir.path().join(f)).unwrap();
    }
    run_once(dir.path());
    assert_eq!(
        assignments(dir.path()),
        names_ips(&[
            ("web", &["198.51.100.10"]),
            ("api", &["203.0.113.1", "2001:db8:10::10"]),
            ("dns-tcp", &["203.0.113.2"]),
            ("dns-udp", &["203.0.113.2"]),
            ("ingress", &["203.0.113.6"]),
            ("vpn", &["198.51.100.200"]),
            ("typo", &[]),
        ])
    );
    let events = std::fs::read_to_string(dir.path().join("status/events.yaml")).unwrap();
    let events: serde_json::Value = serde_saphyr::from_str(&events).unwrap();
    let warnings: Vec<_> = events
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Warning")
        .map(|e| {
            (
                e["object"].as_str().unwrap(),
                e["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        warnings,
        [(
            "default/typo",
            "requested IP 198.51.100.250 is not in any IPAddressPool"
        )]
    );
}
