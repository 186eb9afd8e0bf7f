//! Integration tests against a real Kubernetes API server (v1.20, built from
//! Debian's source package by tests/apiserver/build-binaries.sh and cached):
//! our CRDs and examples against the server's schema validation, and the
//! controller binary under exactly the RBAC in deploy/, with kubectl as the user
//! (the control plane: [`ferrolb_e2e::control_plane`]).
//!
//! Needs root (apt-get for the one-time build). Without it the test says
//! SKIPPED, except under CI (env CI set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ferrolb_e2e::control_plane::{ControlPlane, workspace_root};
use serde_json::Value;

/// The workspace's built binaries live next to the test's deps folder.
fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo build --workspace` first (tests/run-all.sh does)",
        path.display()
    );
    path
}

fn can_run() -> bool {
    let is_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout == b"0\n")
        .unwrap_or(false);
    if is_root {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("the API server tests need root (they install build dependencies with apt-get)");
    }
    eprintln!("SKIPPED: API server tests need root");
    false
}

/// A controller process, killed on drop.
struct Controller(Child);

impl Controller {
    fn start(kubeconfig: &Path, identity: &str, log: &Path) -> Controller {
        Controller::start_with(kubeconfig, identity, log, &[])
    }

    /// With extra flags (e.g. `--lb-class`).
    fn start_with(kubeconfig: &Path, identity: &str, log: &Path, extra: &[&str]) -> Controller {
        let log = std::fs::File::create(log).unwrap();
        let child = Command::new(binary("ferrolb-controller"))
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(extra)
            .args([
                "--identity",
                identity,
                "--metrics-addr",
                "127.0.0.1:0",
                "--lease-duration",
                "6",
            ])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        Controller(child)
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until `f` returns Some.
fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> (T, Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(v) = f() {
            return (v, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

fn ingress_ips(svc: &Value) -> Vec<String> {
    svc["status"]["loadBalancer"]["ingress"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|i| i["ip"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn service_yaml(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\nspec:\n  type: LoadBalancer\n  ports: [{{port: 80}}]\n"
    )
}

#[test]
fn real_api_server() {
    if !can_run() {
        return;
    }
    let cp = ControlPlane::start();
    let deploy = workspace_root().join("deploy");
    let d = |p: &str| deploy.join(p).display().to_string();

    // CRDs are accepted and become established.
    cp.ok(&[
        "apply",
        "-f",
        &d("namespace.yaml"),
        "-f",
        &d("crds.yaml"),
        "-f",
        &d("rbac/"),
    ]);
    cp.ok(&[
        "wait",
        "--for",
        "condition=established",
        "--timeout",
        "30s",
        "crd",
        "--all",
    ]);

    // Every shipped example passes the server's validation (server-side dry run).
    cp.ok(&["apply", "--dry-run=server", "-f", &d("examples/")]);
    // Bad examples the schema can refuse are refused, naming the field.
    for (file, field) in [
        ("bfd-range.yaml", "spec.detectMultiplier"),
        ("wrong-type.yaml", "spec.addresses"),
    ] {
        let out = cp.kubectl(&[
            "apply",
            "--dry-run=server",
            "--validate=false",
            "-f",
            &d(&format!("examples/bad/{file}")),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file} must be refused");
        assert!(
            err.contains(field),
            "{file}: the refusal names {field}: {err}"
        );
    }

    // The controller, as its ServiceAccount with exactly deploy/rbac, assigns IPs.
    let sa_kubeconfig = cp.service_account_kubeconfig("ferrolb-system", "ferrolb-controller");
    cp.ok(&["apply", "-f", &d("examples/l2-ipv4.yaml")]);
    let pool2 = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: spare, namespace: ferrolb-system}\nspec:\n  addresses: [203.0.113.200-203.0.113.250]\n";
    assert!(cp.apply_stdin(pool2).status.success());
    let logs = cp.state_dir();
    let a = Controller::start(&sa_kubeconfig, "replica-a", &logs.join("a.log"));
    assert!(cp.apply_stdin(&service_yaml("web")).status.success());
    let (ips, took) = wait_for("web to get an IP", Duration::from_secs(30), || {
        let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "web"]));
        (!ips.is_empty()).then_some(ips)
    });
    eprintln!("web got {ips:?} after {took:?}");
    assert_eq!(ips, ["198.51.100.240"]);
    let svc = cp.json(&["-n", "default", "get", "svc", "web"]);
    assert_eq!(
        svc["metadata"]["annotations"]["ferrolb.io/ip-allocated-from-pool"],
        "lan"
    );
    let (_, _) = wait_for("an IPAllocated Event", Duration::from_secs(10), || {
        let ev = cp.json(&["-n", "default", "get", "events.events.k8s.io"]);
        ev["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["reason"] == "IPAllocated" && e["regarding"]["name"] == "web")
            .cloned()
    });
    wait_for("pool status counts", Duration::from_secs(10), || {
        let p = cp.json(&["-n", "ferrolb-system", "get", "ipaddresspools", "lan"]);
        (p["status"]["assignedIPv4"] == 1 && p["status"]["availableIPv4"] == 10).then_some(())
    });
    wait_for(
        "the controller's ConfigurationState",
        Duration::from_secs(10),
        || {
            let out = cp.kubectl(&[
                "-n",
                "ferrolb-system",
                "get",
                "configurationstates",
                "controller",
                "-o",
                "json",
            ]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            (v["status"]["result"] == "Valid").then_some(())
        },
    );

    // A bad object is reported on the object itself and in the ConfigurationState;
    // the good ones keep working.
    // (deploy/examples/invalid/: accepted by the server, refused by FerroLB.)
    cp.ok(&["apply", "-f", &d("examples/invalid/")]);
    for (resource, name, field) in [
        ("ipaddresspools", "backwards", "spec.addresses[0]"),
        ("bgppeers", "bad-hold", "spec.holdTime"),
    ] {
        wait_for(
            &format!("Valid=False on {resource}/{name}"),
            Duration::from_secs(15),
            || {
                let p = cp.json(&["-n", "ferrolb-system", "get", resource, name]);
                let c = p["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Valid")?
                    .clone();
                (c["status"] == "False" && c["message"].as_str()?.contains(field)).then_some(())
            },
        );
        wait_for(
            &format!("an InvalidConfiguration Event on {name}"),
            Duration::from_secs(10),
            || {
                let ev = cp.json(&["-n", "ferrolb-system", "get", "events.events.k8s.io"]);
                ev["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|e| {
                        e["reason"] == "InvalidConfiguration" && e["regarding"]["name"] == name
                    })
                    .cloned()
            },
        );
    }
    wait_for(
        "ConfigurationState Invalid with both errors",
        Duration::from_secs(10),
        || {
            let v = cp.json(&[
                "-n",
                "ferrolb-system",
                "get",
                "configurationstates",
                "controller",
            ]);
            (v["status"]["result"] == "Invalid" && v["status"]["errorCount"] == 2).then_some(())
        },
    );
    cp.ok(&["delete", "-f", &d("examples/invalid/")]);

    // Restarting etcd and the API server mid-run loses nothing.
    cp.restart(&["etcd", "kube-apiserver"]);
    assert!(
        cp.apply_stdin(&service_yaml("after-restart"))
            .status
            .success()
    );
    let (ips, _) = wait_for(
        "a Service created after the restart to get an IP",
        Duration::from_secs(60),
        || {
            let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "after-restart"]));
            (!ips.is_empty()).then_some(ips)
        },
    );
    assert_eq!(ips, ["198.51.100.241"]);
    assert_eq!(
        ingress_ips(&cp.json(&["-n", "default", "get", "svc", "web"])),
        ["198.51.100.240"]
    );

    // A second replica waits on the Lease and takes over when the first dies.
    let b = Controller::start(&sa_kubeconfig, "replica-b", &logs.join("b.log"));
    std::thread::sleep(Duration::from_secs(2));
    let mut a = a;
    let _ = a.0.kill(); // SIGKILL: no clean release of the Lease.
    let killed = Instant::now();
    assert!(
        cp.apply_stdin(&service_yaml("after-failover"))
            .status
            .success()
    );
    let (ips, _) = wait_for("the standby to allocate", Duration::from_secs(30), || {
        let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "after-failover"]));
        (!ips.is_empty()).then_some(ips)
    });
    let failover = killed.elapsed();
    eprintln!(
        "failover: standby allocated {ips:?} {failover:?} after the leader was killed (lease 6 s)"
    );
    assert!(
        failover < Duration::from_secs(6 + 3),
        "takeover within the lease duration (+ one retry period)"
    );
    assert_eq!(ips, ["198.51.100.242"]);
    let web = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "web"]));
    assert_eq!(
        web,
        ["198.51.100.240"],
        "no Service changes IP across the failover"
    );
    // While it stood by, the standby said which Lease it waited for and who held it.
    let b_log = std::fs::read_to_string(logs.join("b.log")).unwrap();
    assert!(
        b_log.contains("standing by: Lease ferrolb-system/ferrolb-controller is held by replica-a"),
        "{b_log}"
    );

    // An address in the status of a Service this controller does not serve
    // is in use, whoever put it there. (v1.20 has no spec.loadBalancerClass:
    // the holder is a NodePort Service whose status another controller, here
    // kubectl, wrote.)
    let node_port = "apiVersion: v1\nkind: Service\nmetadata: {name: np, namespace: default}\nspec:\n  type: NodePort\n  ports: [{port: 80}]\n";
    assert!(cp.apply_stdin(node_port).status.success());
    cp.write_ingress("default", "np", &["198.51.100.243"]);
    let wants = service_yaml("wants-243").replace(
        "namespace: default}",
        "namespace: default, annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.243}}",
    );
    assert!(cp.apply_stdin(&wants).status.success());
    let (refused, _) = wait_for(
        "an AllocationFailed Event naming the holder",
        Duration::from_secs(30),
        || cp.event("default", "wants-243", "AllocationFailed"),
    );
    assert_eq!(refused["type"], "Warning");
    assert_eq!(
        refused["note"],
        "requested IP 198.51.100.243 is in use: default/np (type NodePort, not LoadBalancer) has it in status.loadBalancer.ingress; it becomes free when that Service no longer lists it"
    );
    assert!(ingress_ips(&cp.json(&["-n", "default", "get", "svc", "wants-243"])).is_empty());
    // A new Service skips it, and the pool counts it as used.
    assert!(cp.apply_stdin(&service_yaml("next")).status.success());
    let (ips, _) = wait_for("next to get an IP", Duration::from_secs(30), || {
        let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "next"]));
        (!ips.is_empty()).then_some(ips)
    });
    assert_eq!(ips, ["198.51.100.244"]);
    wait_for(
        "pool status counting the address another Service holds",
        Duration::from_secs(10),
        || {
            let p = cp.json(&["-n", "ferrolb-system", "get", "ipaddresspools", "lan"]);
            (p["status"]["assignedIPv4"] == 5 && p["status"]["availableIPv4"] == 6).then_some(())
        },
    );
    // The holder is deleted: the address is free, and goes to the Service asking for it.
    cp.ok(&["-n", "default", "delete", "svc", "np"]);
    let (ips, _) = wait_for(
        "wants-243 to get the freed address",
        Duration::from_secs(30),
        || {
            let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "wants-243"]));
            (!ips.is_empty()).then_some(ips)
        },
    );
    assert_eq!(ips, ["198.51.100.243"]);
    cp.ok(&["-n", "default", "delete", "svc", "wants-243", "next"]);

    // A controller for another class has a Lease of its own and leads at
    // once, next to the default one (which keeps its Lease).
    let lease_holder = |name: &str| {
        let out = cp.kubectl(&["-n", "ferrolb-system", "get", "lease", name, "-o", "json"]);
        let v: Value = serde_json::from_slice(&out.stdout).ok()?;
        v["spec"]["holderIdentity"].as_str().map(str::to_string)
    };
    let classed = Controller::start_with(
        &sa_kubeconfig,
        "classed-a",
        &logs.join("classed.log"),
        &["--lb-class", "example.com/x"],
    );
    let (holder, _) = wait_for(
        "the example.com/x controller to hold its own Lease",
        Duration::from_secs(30),
        || lease_holder("ferrolb-controller-example-com-x"),
    );
    assert_eq!(holder, "classed-a");
    assert_eq!(
        lease_holder("ferrolb-controller").as_deref(),
        Some("replica-b")
    );
    drop(classed);

    // Deleting a pool re-allocates its Services from another, with a Warning Event.
    cp.ok(&["-n", "ferrolb-system", "delete", "ipaddresspool", "lan"]);
    wait_for(
        "web to move to the spare pool",
        Duration::from_secs(30),
        || {
            let ips = ingress_ips(&cp.json(&["-n", "default", "get", "svc", "web"]));
            (ips.len() == 1 && ips[0].starts_with("203.0.113.")).then_some(())
        },
    );
    wait_for(
        "a Warning Event about the invalidated IP",
        Duration::from_secs(10),
        || {
            let ev = cp.json(&["-n", "default", "get", "events.events.k8s.io"]);
            ev["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["type"] == "Warning" && e["regarding"]["name"] == "web")
                .cloned()
        },
    );

    // 1,000 Services created at once all get IPs.
    // IPv6 single-stack: the test cluster's IPv4 ClusterIP range holds only 254.
    let many: String = (0..1000)
        .map(|i| {
            let svc = service_yaml(&format!("bulk-{i:04}")).replace(
                "  type: LoadBalancer\n",
                "  type: LoadBalancer\n  ipFamilyPolicy: SingleStack\n  ipFamilies: [IPv6]\n",
            );
            format!("---\n{svc}")
        })
        .collect();
    let big = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: bulk, namespace: ferrolb-system}\nspec:\n  addresses: [2001:db8:1000::/64]\n  serviceAllocation: {priority: 1, namespaces: [default]}\n";
    assert!(cp.apply_stdin(big).status.success());
    let created = Instant::now();
    let out = cp.apply_stdin(&many);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let apply_took = created.elapsed();
    let ((), all) = wait_for(
        "1,000 Services to get IPs",
        Duration::from_secs(300),
        || {
            let list = cp.json(&["-n", "default", "get", "svc", "-l", "!nonexistent"]);
            let done = list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| {
                    s["metadata"]["name"].as_str().unwrap().starts_with("bulk-")
                        && !ingress_ips(s).is_empty()
                })
                .count();
            (done == 1000).then_some(())
        },
    );
    eprintln!(
        "BENCH: 1000 Services: kubectl apply took {apply_took:?}; all had IPs {:?} after the apply started",
        created.elapsed()
    );
    let _ = all;
    drop(b);
}
