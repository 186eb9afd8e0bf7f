//! End-to-end test of the speaker in cluster mode: a real Kubernetes API
//! server (v1.20, tests/apiserver/) runs inside a lab namespace on the
//! bridge, the controller and three speakers watch it (no kubelet: the
//! test writes the Node objects and EndpointSlices), and a client and a
//! GoBGP router check what the speakers announce.
//!
//! ```text
//!   [router] 198.51.100.1  gobgpd AS 64513     [client] 198.51.100.2
//!   [api]    198.51.100.3  etcd, kube-apiserver, kube-controller-manager, ferrolb-controller
//!   [node1..3] 198.51.100.11-13  ferrolb-speaker --kubeconfig K --node nodeN
//! ```
//!
//! The speakers authenticate as the `ferrolb-speaker` service account with
//! exactly the RBAC of deploy/rbac/speaker.yaml.
//!
//! Needs root and `ip`, `ping`, `gobgpd`; the API server binaries are built
//! once by tests/apiserver/build-binaries.sh (tests/run-all.sh does it).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use ferrolb_e2e::bgp::{GoBgp, GoBgpNeighbor, wait_until};
use ferrolb_e2e::netns::{Greeter, Host, Lab, Netns, tcp_fetch};
use ferrolb_e2e::speaker::{controller_binary, speaker_binary};
use serde_json::Value;

const TOOLS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("ping", "iputils-ping"),
    ("gobgpd", "gobgpd"),
    ("gobgp", "gobgpd"),
    ("etcd", "etcd-server"),
    ("curl", "curl"),
];
const API_ADDR: &str = "198.51.100.3";
const NODES: [(&str, &str, &str); 3] = [
    ("node1", "02:f1:0d:00:00:11", "198.51.100.11"),
    ("node2", "02:f1:0d:00:00:12", "198.51.100.12"),
    ("node3", "02:f1:0d:00:00:13", "198.51.100.13"),
];
const SETTLE: Duration = Duration::from_secs(30);
const TCP_PORT: u16 = 8080;
/// Service IPs the pools hold, configured on every node's `lo`.
const L2_IPS: [&str; 2] = ["198.51.100.100", "198.51.100.101"];
const BGP_IP: &str = "203.0.113.200";

const CONFIG: &str = r#"
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.100-198.51.100.101]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.200/32], autoAssign: false}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1, holdTime: 9s}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: nowhere, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64514, peerAddress: 198.51.100.250, connectTime: 5s}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed], communities: ["64512:7"]}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "cluster-e2e-key-0123456789"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata: {name: local, namespace: default}
spec: {type: LoadBalancer, externalTrafficPolicy: Local, ports: [{port: 8080}]}
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: local-1
  namespace: default
  labels: {kubernetes.io/service-name: local}
addressType: IPv4
endpoints:
- addresses: ["10.1.0.1"]
  conditions: {ready: true}
  topology: {kubernetes.io/hostname: node3}
---
apiVersion: v1
kind: Service
metadata:
  name: routed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

/// A process in a namespace; killed on drop.
struct Proc {
    child: Option<Child>,
    log: PathBuf,
}

impl Proc {
    fn spawn(ns: &Netns, program: &Path, args: &[&str], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("log file");
        let child = ns
            .command(program)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("fd"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        Proc {
            child: Some(child),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The control plane inside the `api` namespace; stopped on drop.
struct ControlPlane {
    state: tempfile::TempDir,
    kubeconfig: PathBuf,
    kubectl: PathBuf,
}

impl ControlPlane {
    fn start(ns: &Netns) -> ControlPlane {
        let state = tempfile::Builder::new()
            .prefix("ferrolb-speaker-api-")
            .tempdir()
            .expect("temp dir");
        let out = ns
            .command(root().join("tests/apiserver/start.sh"))
            .arg(state.path())
            .env("APISERVER_BIND", API_ADDR)
            .stdin(Stdio::null())
            .output()
            .expect("start.sh");
        assert!(
            out.status.success(),
            "start.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let env = std::fs::read_to_string(state.path().join("env")).expect("env file");
        let get = |k: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(PathBuf::from)
                .expect("env key")
        };
        ControlPlane {
            kubeconfig: get("KUBECONFIG"),
            kubectl: get("KUBECTL"),
            state,
        }
    }

    fn kubectl(&self, ns: &Netns, args: &[&str], stdin: Option<&str>) -> Output {
        use std::io::Write;
        let mut child = ns
            .command(&self.kubectl)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kubectl");
        if let Some(text) = stdin {
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("writing to kubectl");
        }
        drop(child.stdin.take());
        child.wait_with_output().expect("kubectl output")
    }

    fn ok(&self, ns: &Netns, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl(ns, args, stdin);
        assert!(
            out.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, ns: &Netns, args: &[&str]) -> Value {
        let mut full = args.to_vec();
        full.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(ns, &full, None)).expect("kubectl json")
    }
}

impl ControlPlane {
    /// A kubeconfig that authenticates as service account `ns/sa` (its
    /// token Secret, made by the controller-manager).
    fn service_account_kubeconfig(&self, netns: &Netns, ns: &str, sa: &str) -> PathBuf {
        let token = wait_until(Duration::from_secs(20), || {
            let secrets = self.json(netns, &["-n", ns, "get", "secrets"]);
            secrets["items"].as_array()?.iter().find_map(|s| {
                let owner = &s["metadata"]["annotations"]["kubernetes.io/service-account.name"];
                (owner == sa && s["type"] == "kubernetes.io/service-account-token")
                    .then(|| s["data"]["token"].as_str().map(str::to_owned))
                    .flatten()
            })
        })
        .expect("service-account token Secret within 20 s");
        let out = Command::new("base64")
            .arg("-d")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().expect("stdin").write_all(token.as_bytes())?;
                c.wait_with_output()
            })
            .expect("base64 -d");
        let token = String::from_utf8(out.stdout).expect("token text");
        let admin = std::fs::read_to_string(&self.kubeconfig).expect("kubeconfig");
        let field = |key: &str| {
            admin
                .lines()
                .find_map(|l| l.trim().strip_prefix(key))
                .expect("kubeconfig field")
                .to_owned()
        };
        let path = self.state.path().join(format!("{sa}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: sa\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: sa}}\ncurrent-context: t\n",
                field("server: "),
                field("certificate-authority: ")
            ),
        )
        .expect("writing the kubeconfig");
        path
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let _ = Command::new(root().join("tests/apiserver/stop.sh"))
            .arg(self.state.path())
            .output();
    }
}

fn node_json(name: &str, ip: &str) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": ip}],
        },
    })
    .to_string()
}

fn ping(ns: &Netns, ip: &str) -> bool {
    ns.exec(
        "ping",
        &["-4", "-c", "1", "-W", "1", ip],
        Duration::from_secs(5),
    )
    .status
    .success()
}

/// The node each ServiceL2Status of `service` names.
fn l2_status_nodes(cp: &ControlPlane, ns: &Netns, service: &str) -> Vec<String> {
    let list = cp.json(ns, &["get", "servicel2statuses", "-A"]);
    let mut nodes: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["status"]["serviceName"] == service)
        .filter_map(|o| o["status"]["node"].as_str().map(str::to_owned))
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn speakers_in_cluster_mode_announce_and_fail_over() {
    if !ferrolb_e2e::require(TOOLS) {
        return;
    }
    let lab = Lab::new();
    let add = |h: &Host, ip: &str| {
        h.ns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])
    };
    let router = lab.host("router", "02:f1:0d:00:00:01");
    add(&router, "198.51.100.1");
    // GoBGP's helper also listens on its IPv6 address.
    router
        .ns
        .ip(&["addr", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    let client = lab.host("client", "02:f1:0d:00:00:02");
    add(&client, "198.51.100.2");
    let api = lab.host("api", "02:f1:0d:00:00:03");
    add(&api, API_ADDR);
    let mut nodes = Vec::new();
    for (name, mac, ip) in NODES {
        let host = lab.host(name, mac);
        host.ns.sysctl("net.ipv4.conf.all.arp_ignore", "1");
        host.ns.sysctl("net.ipv4.conf.all.arp_announce", "2");
        add(&host, ip);
        let mut greeters = Vec::new();
        for sip in L2_IPS.iter().chain([&BGP_IP]) {
            host.ns
                .ip(&["addr", "add", &format!("{sip}/32"), "dev", "lo"]);
            let addr = SocketAddr::new(sip.parse::<IpAddr>().expect("ip"), TCP_PORT);
            greeters.push(Greeter::start(&host.ns, addr, name));
        }
        nodes.push((name, mac, host, greeters));
    }

    let cp = ControlPlane::start(&api.ns);
    let ans = &api.ns;
    cp.ok(
        ans,
        &[
            "apply",
            "-f",
            root()
                .join("deploy/namespace.yaml")
                .to_str()
                .expect("utf-8"),
        ],
        None,
    );
    cp.ok(
        ans,
        &[
            "apply",
            "-f",
            root().join("deploy/crds.yaml").to_str().expect("utf-8"),
        ],
        None,
    );
    wait_until(Duration::from_secs(20), || {
        cp.kubectl(ans, &["get", "ipaddresspools", "-A"], None)
            .status
            .success()
            .then_some(())
    })
    .expect("CRDs established");
    for (name, _, ip) in NODES {
        cp.ok(ans, &["apply", "-f", "-"], Some(&node_json(name, ip)));
        cp.ok(
            ans,
            &[
                "replace",
                "--raw",
                &format!("/api/v1/nodes/{name}/status"),
                "-f",
                "-",
            ],
            Some(&node_json(name, ip)),
        );
    }
    cp.ok(ans, &["apply", "-f", "-"], Some(CONFIG));
    // The speakers run with exactly the RBAC in deploy/.
    cp.ok(
        ans,
        &[
            "apply",
            "-f",
            root()
                .join("deploy/rbac/speaker.yaml")
                .to_str()
                .expect("utf-8"),
        ],
        None,
    );
    let speaker_kc = cp.service_account_kubeconfig(ans, "ferrolb-system", "ferrolb-speaker");
    let speaker_kc = speaker_kc.to_str().expect("utf-8").to_owned();

    let dir = tempfile::tempdir().expect("logs");
    let kc = cp.kubeconfig.to_str().expect("utf-8").to_owned();
    let _controller = Proc::spawn(
        ans,
        &controller_binary(),
        &[
            "--kubeconfig",
            &kc,
            "--identity",
            "c1",
            "--metrics-addr",
            "127.0.0.1:7472",
        ],
        dir.path().join("controller.log"),
    );
    let gobgp = {
        let neighbors: Vec<GoBgpNeighbor> = NODES
            .iter()
            .map(|(_, _, ip)| GoBgpNeighbor::new(ip, 64512))
            .collect();
        GoBgp::start(&router.ns, 64513, &neighbors)
    };
    let mut speakers: Vec<Proc> = nodes
        .iter()
        .map(|(name, _, host, _)| {
            Proc::spawn(
                &host.ns,
                &speaker_binary(),
                &["--kubeconfig", &speaker_kc, "--node", name],
                dir.path().join(format!("speaker-{name}.log")),
            )
        })
        .collect();
    let logs = |speakers: &[Proc]| -> String {
        speakers
            .iter()
            .map(|p| format!("--- {} ---\n{}", p.log.display(), p.log()))
            .collect()
    };

    // The controller assigned the IPs; one speaker owns web's.
    let web_ip = wait_until(SETTLE, || {
        let svc = cp.json(ans, &["-n", "default", "get", "service", "web"]);
        svc["status"]["loadBalancer"]["ingress"][0]["ip"]
            .as_str()
            .map(str::to_owned)
    })
    .unwrap_or_else(|| panic!("web got no IP:\n{}", _controller.log()));
    // One ServiceL2Status names the owner, and the client reaches that node
    // (right after the start the speakers may still be joining the
    // membership, and the status objects lag them a little: wait until
    // they agree).
    let cns = &client.ns;
    let owner = wait_until(SETTLE, || {
        let n = l2_status_nodes(&cp, ans, "web");
        if n.len() != 1 || !ping(cns, &web_ip) {
            return None;
        }
        let mac = NODES.iter().find(|x| x.0 == n[0])?.1;
        (cns.neighbour(&web_ip, "eth0").as_deref() == Some(mac)).then(|| n[0].clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "no single owner of {web_ip} answering:\n{}",
            logs(&speakers)
        )
    });
    let owner_mac = NODES.iter().find(|n| n.0 == owner).expect("owner").1;
    let addr = SocketAddr::new(web_ip.parse::<IpAddr>().expect("ip"), TCP_PORT);
    assert_eq!(
        tcp_fetch(cns, addr, Duration::from_secs(3)).as_deref(),
        Ok(owner.as_str())
    );

    // externalTrafficPolicy: Local follows the v1beta1 EndpointSlice (node3).
    let local = wait_until(SETTLE, || {
        let n = l2_status_nodes(&cp, ans, "local");
        (n.len() == 1).then(|| n[0].clone())
    })
    .unwrap_or_else(|| panic!("no ServiceL2Status for local:\n{}", logs(&speakers)));
    assert_eq!(local, "node3");

    // BGP: the routed Service's route from every node, with the community.
    let prefix = format!("{BGP_IP}/32");
    let mut gobgp = gobgp;
    let from_all = wait_until(SETTLE, || {
        let rib = gobgp.rib(&router.ns, "ipv4");
        let paths = rib
            .get(&prefix)
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        (paths == 3).then_some(())
    });
    assert!(
        from_all.is_some(),
        "{prefix} not from 3 nodes:\n{}",
        logs(&speakers)
    );
    // Each speaker reports its session in the BGPPeer's status.
    let sessions = wait_until(SETTLE, || {
        let peer = cp.json(ans, &["-n", "ferrolb-system", "get", "bgppeer", "router"]);
        let s = peer["status"]["sessions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (s.len() == 3 && s.iter().all(|x| x["state"] == "Established")).then_some(s)
    });
    assert!(
        sessions.is_some(),
        "BGPPeer status sessions:\n{}",
        logs(&speakers)
    );
    // And its ConfigurationState.
    cp.ok(
        ans,
        &[
            "-n",
            "ferrolb-system",
            "get",
            "configurationstate",
            "speaker-node1",
        ],
        None,
    );

    // The owner records an Event on the Service.
    let announcing = wait_until(SETTLE, || {
        let events = cp.json(ans, &["-n", "default", "get", "events"]);
        events["items"]
            .as_array()?
            .iter()
            .find(|e| {
                e["involvedObject"]["name"] == "web"
                    && e["reason"] == "Announcing"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&format!("announcing from {owner}")))
            })
            .cloned()
    });
    assert!(
        announcing.is_some(),
        "no Announcing Event on web:\n{}",
        logs(&speakers)
    );

    // A peer nobody answers for: a Warning Event on the BGPPeer per node.
    let problem = wait_until(SETTLE, || {
        let events = cp.json(ans, &["-n", "ferrolb-system", "get", "events"]);
        events["items"]
            .as_array()?
            .iter()
            .find(|e| {
                e["involvedObject"]["name"] == "nowhere" && e["reason"] == "BGPSessionProblem"
            })
            .cloned()
    });
    assert!(
        problem.is_some(),
        "no BGPSessionProblem Event on BGPPeer nowhere:\n{}",
        logs(&speakers)
    );

    // Metrics and health on every speaker.
    let metrics = wait_until(SETTLE, || {
        let out = cns.exec(
            "curl",
            &["-fsS", "http://198.51.100.12:7472/metrics"],
            Duration::from_secs(5),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text.contains("ferrolb_speaker_bgp_session_up{peer=\"router\"} 1")
            && text.contains("ferrolb_speaker_membership_members 3"))
        .then_some(text)
    });
    assert!(metrics.is_some(), "metrics of node2:\n{}", logs(&speakers));
    let ready = cns.exec(
        "curl",
        &["-fsS", "http://198.51.100.11:7472/readyz"],
        Duration::from_secs(5),
    );
    assert!(ready.status.success(), "readyz");

    // kill -9 the owner of web's IP: another node takes over.
    let idx = NODES
        .iter()
        .position(|n| n.0 == owner)
        .expect("owner index");
    speakers[idx].kill();
    let moved = wait_until(SETTLE, || {
        cns.neighbour(&web_ip, "eth0").filter(|m| m != owner_mac)
    })
    .unwrap_or_else(|| panic!("{web_ip} did not move off {owner}:\n{}", logs(&speakers)));
    let new_owner = NODES.iter().find(|n| n.1 == moved).expect("a node's MAC").0;
    assert_eq!(
        tcp_fetch(cns, addr, Duration::from_secs(3)).as_deref(),
        Ok(new_owner)
    );
    // The new owner's ServiceL2Status replaces the dead speaker's.
    assert!(
        wait_until(SETTLE, || (l2_status_nodes(&cp, ans, "web") == [new_owner])
            .then_some(()))
        .is_some(),
        "ServiceL2Status of web: {:?}, expected only {new_owner}:\n{}",
        l2_status_nodes(&cp, ans, "web"),
        logs(&speakers)
    );
    for s in &mut speakers {
        s.kill();
    }
}
