//! `explain` against the real daemons, in the labs of network namespaces:
//!
//! - standalone: the controller and three `ferrolb-speaker --standalone`
//!   with GoBGP ([`ferrolb_e2e::speaker_lab`]): a layer-2 Service is
//!   announced by the node the client's neighbour entry names, a BGP
//!   Service by every node over its established session, with the
//!   advertisement's community;
//! - cluster: a v1.20 API server, the controller and three speakers under
//!   deploy/'s RBAC ([`ferrolb_e2e::cluster_lab`]); the README's `kubectl`
//!   commands of its `Explain` section run as written, through kubectl 1.20
//!   and the plugin on the PATH, as user `alice` (a client certificate)
//!   bound only to `ferrolb-view`: refused before the binding, then an
//!   announced layer-2 Service, an announced BGP Service, a pending one, a
//!   node and a peer. Then `plan` (issue #18) in the same cluster, as
//!   alice: the README's command of its `Plan` section, and three edits
//!   each planned, applied by the admin and compared with what the
//!   controller, the speakers and GoBGP then do (a node selector moves a
//!   layer-2 IP, a deleted BGPAdvertisement withdraws a route, a new pool
//!   changes one Service's IP and gives a pending one its own).
//!
//! Needs root and `ip`, `ping`, `sysctl`, `gobgpd`, `gobgp` (and `etcd`,
//! `curl`, `openssl` for the cluster); without them the tests print
//! `SKIPPED: …` (fail when `CI` is set).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use ferrolb_e2e::bgp::wait_until;
use ferrolb_e2e::cluster_lab::{self, Cluster};
use ferrolb_e2e::control_plane::workspace_root;
use ferrolb_e2e::netns::run_with_timeout;
use ferrolb_e2e::plan_check::{predicted_bgp, predicted_ips, predicted_layer2};
use ferrolb_e2e::speaker::plugin_binary;
use ferrolb_e2e::speaker_lab::{self, GOBGP_TOOLS, Network, Router, SpeakerLab, assigned};
use serde_json::Value;

/// How long the speakers may take to report what the test waits for.
const SETTLE: Duration = Duration::from_secs(30);

const CONFIG: &str = r#"apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: lan, namespace: ferrolb-system}
spec: {addresses: [198.51.100.100-198.51.100.101]}
---
apiVersion: ferrolb.io/v1beta1
kind: L2Advertisement
metadata: {name: lan, namespace: ferrolb-system}
spec: {ipAddressPools: [lan]}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: routed, namespace: ferrolb-system}
spec: {addresses: [203.0.113.200/32], autoAssign: false}
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: routed, namespace: ferrolb-system}
spec: {ipAddressPools: [routed], communities: ["64512:7"]}
---
apiVersion: ferrolb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: ferrolb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1, holdTime: 9s}
---
apiVersion: v1
kind: Secret
metadata: {name: memberlist, namespace: ferrolb-system}
stringData: {secretkey: "explain-e2e-key-0123456789"}
"#;

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
---
apiVersion: v1
kind: Service
metadata:
  name: routed
  namespace: default
  annotations: {ferrolb.io/address-pool: routed}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

/// A Service that stays pending: its requested IP is in no pool.
const TYPO: &str = r#"apiVersion: v1
kind: Service
metadata:
  name: typo
  namespace: default
  annotations: {ferrolb.io/loadBalancerIPs: 198.51.100.250}
spec: {type: LoadBalancer, ports: [{port: 8080}]}
"#;

/// `kubectl-ferrolb explain --standalone DIR ARGS`: (exit code, stdout and stderr).
fn explain_dir(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = run_with_timeout(
        Command::new(plugin_binary())
            .args(["explain", "--standalone"])
            .arg(dir)
            .args(args),
        Duration::from_secs(60),
    );
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Runs `f` until it gives `want` as exit code (at most [`SETTLE`]); the
/// last output either way.
fn until_exit(want: i32, mut f: impl FnMut() -> (i32, String)) -> Result<String, (i32, String)> {
    let mut last = (-1, String::new());
    wait_until(SETTLE, || {
        last = f();
        (last.0 == want).then_some(())
    })
    .map(|()| last.1.clone())
    .ok_or_else(|| last.clone())
}

#[test]
fn explain_the_standalone_lab() {
    let tools: Vec<(&str, &str)> = speaker_lab::TOOLS
        .iter()
        .chain(GOBGP_TOOLS)
        .copied()
        .collect();
    if !ferrolb_e2e::require(&tools) {
        return;
    }
    let net = Network::new();
    let lab = SpeakerLab::start(
        &net,
        &[("config.yaml", CONFIG), ("services.yaml", SERVICES)],
        Router::GoBgp,
    );
    let web_ip = assigned(lab.dir(), "web")[0].clone();
    let owner = speaker_lab::settled_owner(&lab, &web_ip)
        .unwrap_or_else(|| panic!("no single owner of {web_ip}:\n{}", lab.logs()));

    let web = until_exit(0, || explain_dir(lab.dir(), &["service", "default/web"]))
        .unwrap_or_else(|(c, out)| panic!("web: exit {c}:\n{out}\n{}", lab.logs()));
    assert!(
        web.contains(&format!(
            "{web_ip}: announced\n    layer 2: {owner} answers ARP"
        )),
        "the client's neighbour entry names {owner}:\n{web}"
    );
    let routed = until_exit(0, || {
        let (code, out) = explain_dir(lab.dir(), &["service", "default/routed"]);
        // Every node's session is up, not only the first one's.
        let all = ["node1", "node2", "node3"].iter().all(|n| {
            out.contains(&format!(
                "BGP: {n} announces 203.0.113.200/32 to BGPPeer router (session Established"
            ))
        });
        (if all { code } else { -1 }, out)
    })
    .unwrap_or_else(|(c, out)| panic!("routed: exit {c}:\n{out}\n{}", lab.logs()));
    assert!(routed.contains("communities 64512:7"), "{routed}");
    // At the router: the route from the three nodes, as explain says.
    let mut lab = lab;
    assert_eq!(
        lab.next_hops("203.0.113.200/32"),
        ["198.51.100.11", "198.51.100.12", "198.51.100.13"]
    );

    let (code, peer) = explain_dir(lab.dir(), &["peer", "router", "-o", "json"]);
    assert_eq!(code, 0, "{peer}");
    let peer: Value = serde_json::from_str(&peer).unwrap();
    for n in peer["nodes"].as_array().unwrap() {
        assert_eq!(n["session"]["state"], "Established", "{n}");
        assert_eq!(n["routes"][0]["prefix"], "203.0.113.200/32", "{n}");
        assert_eq!(n["routes"][0]["communities"][0], "64512:7", "{n}");
    }
    let (code, node) = explain_dir(lab.dir(), &["node", owner]);
    assert_eq!(code, 0, "{node}");
    assert!(
        node.contains(&format!("announces {web_ip} of default/web: answers ARP")),
        "{node}"
    );
    assert!(
        node.contains("BGPPeer router: session Established"),
        "{node}"
    );
    assert!(node.contains("membership: running on UDP"), "{node}");
}

/// The README's `not-run=explain-cluster` block of the section whose title
/// starts with `title` (`Explain: `, `Plan: `): each command with the exit
/// code its comment gives (`# exit N`; 0 without).
fn readme_cluster_commands(title: &str) -> Vec<(String, i32)> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("README section `{title}…`"));
    let block = section
        .split("```sh not-run=explain-cluster\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the section's not-run=explain-cluster block");
    block
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (command, comment) = l.split_once('#').unwrap_or((l, ""));
            let code = comment
                .trim()
                .strip_prefix("exit ")
                .and_then(|c| c.split(':').next())
                .map_or(0, |c| c.trim().parse().expect("exit code"));
            (command.trim().to_string(), code)
        })
        .collect()
}

#[test]
fn explain_and_plan_in_a_cluster_as_a_ferrolb_view_user() {
    let commands = readme_cluster_commands("Explain: ");
    let plan_commands = readme_cluster_commands("Plan: ");
    assert!(
        plan_commands
            .iter()
            .any(|(c, _)| c.starts_with("kubectl ferrolb plan -f ")),
        "{plan_commands:?}"
    );
    assert!(
        commands
            .iter()
            .any(|(c, _)| c.starts_with("kubectl ferrolb explain service")),
        "{commands:?}"
    );
    let mut extra: Vec<(&str, &str)> = GOBGP_TOOLS.to_vec();
    extra.push(("openssl", "openssl"));
    let Some(net) = cluster_lab::network(&extra) else {
        return;
    };
    let mut lab = Cluster::start(&net, &format!("{CONFIG}---\n{SERVICES}"), Router::GoBgp);
    lab.cp().apply(TYPO);
    let web_ip = lab.single_v4("web");
    let owner = lab
        .settled_owner("web", &web_ip)
        .unwrap_or_else(|| panic!("no single owner of {web_ip}:\n{}", lab.logs()));

    // kubectl 1.20 and the plugin on the PATH, as user alice.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(lab.cp().kubectl_path(), bin.path().join("kubectl")).unwrap();
    std::os::unix::fs::symlink(plugin_binary(), bin.path().join("kubectl-ferrolb")).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let alice = lab.cp().user_kubeconfig("alice");
    // In the repository's root, where the README's paths lead.
    let alice_runs = |command: &str| -> Output {
        run_with_timeout(
            net.api
                .ns
                .command("sh")
                .args(["-c", command])
                .current_dir(workspace_root())
                .env("PATH", &path)
                .env("KUBECONFIG", &alice),
            Duration::from_secs(60),
        )
    };
    let as_alice = |command: &str| -> (i32, String) {
        let out = alice_runs(command);
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };

    // Without a role, alice may not read what explain reads.
    let (code, out) = as_alice("kubectl ferrolb explain service default/web");
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("forbidden") && out.contains("ferrolb-view"),
        "{out}"
    );

    let mut outputs = Vec::new();
    for (command, want) in &commands {
        if let Some(args) = command.strip_prefix("kubectl ferrolb ") {
            let out = until_exit(*want, || as_alice(command)).unwrap_or_else(|(c, out)| {
                panic!("`{command}`: exit {c}, not {want}:\n{out}\n{}", lab.logs())
            });
            outputs.push((args.to_string(), out));
        } else {
            // Administration (the role binding): as cluster admin.
            let args: Vec<&str> = command
                .strip_prefix("kubectl ")
                .expect("a kubectl command")
                .split_whitespace()
                .collect();
            lab.cp().ok(&args);
        }
    }
    for (args, out) in &outputs {
        println!("$ kubectl ferrolb {args}\n{out}");
    }
    let output = |args: &str| -> &str {
        &outputs
            .iter()
            .find(|(a, _)| a == args)
            .unwrap_or_else(|| panic!("the README runs no `kubectl ferrolb {args}`"))
            .1
    };
    let web = output("explain service default/web");
    assert!(
        web.contains(&format!(
            "{web_ip}: announced\n    layer 2: {owner} answers ARP"
        )) && web.contains(" (since 20"),
        "the client's neighbour entry names {owner}:\n{web}"
    );
    let routed = output("explain service default/routed");
    for n in ["node1", "node2", "node3"] {
        assert!(
            routed.contains(&format!(
                "BGP: {n} announces 203.0.113.200/32 to BGPPeer router (session Established"
            )),
            "{routed}"
        );
    }
    assert!(routed.contains("communities 64512:7"), "{routed}");
    let typo = output("explain service default/typo");
    assert!(
        typo.contains("why: requested IP 198.51.100.250 is not in any IPAddressPool"),
        "{typo}"
    );
    assert!(
        typo.contains("lan: does not contain the requested IP 198.51.100.250"),
        "{typo}"
    );
    let node = output("explain node node1");
    assert!(
        node.contains("BGPPeer router: session Established"),
        "{node}"
    );
    let peer: Value =
        serde_json::from_str(output("explain peer router -o json")).expect("explain peer -o json");
    assert_eq!(peer["kind"], "BGPPeer");
    let states: Vec<&Value> = peer["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| &n["session"]["state"])
        .collect();
    assert_eq!(
        states,
        ["Established", "Established", "Established"],
        "{peer}"
    );

    plan_in_the_cluster(&mut lab, &plan_commands, &as_alice, &alice_runs, owner);
}

/// The Services of the cluster lab.
const LAB_SERVICES: [&str; 3] = ["web", "routed", "typo"];
/// The BGP pool's one prefix.
const ROUTED: &str = "203.0.113.200/32";

/// What the daemons of the cluster lab do, as the client and the router
/// see it: each Service's IPs (its status), the node that answers ARP for
/// each layer-2 IP (the client's neighbour entry after a ping, agreeing
/// with the ServiceL2Status objects), and the nodes whose route to
/// [`ROUTED`] the router has (GoBGP's RIB).
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    ips: BTreeMap<String, BTreeSet<IpAddr>>,
    l2: BTreeMap<IpAddr, BTreeSet<String>>,
    bgp: BTreeMap<(String, String, String), ()>,
}

fn lab_ips(lab: &Cluster<'_>) -> BTreeMap<String, BTreeSet<IpAddr>> {
    LAB_SERVICES
        .iter()
        .map(|s| {
            let ips = lab
                .service_ips("default", s)
                .iter()
                .map(|ip| ip.parse().expect("an IP in the status"))
                .collect();
            (format!("default/{s}"), ips)
        })
        .collect()
}

fn lab_routes(lab: &mut Cluster<'_>) -> BTreeMap<(String, String, String), ()> {
    lab.next_hops(ROUTED)
        .iter()
        .map(|hop| {
            let node = speaker_lab::NODES
                .iter()
                .find(|n| n.v4 == hop)
                .unwrap_or_else(|| panic!("next hop {hop} is no node"));
            (
                (
                    ROUTED.to_string(),
                    node.name.to_string(),
                    "router".to_string(),
                ),
                (),
            )
        })
        .collect()
}

/// Waits for the state `want` (bounded): the IPs first, then each layer-2
/// owner (a new IP is put on the nodes' `lo` so that the client's ping is
/// answered), then the router's routes. The state seen, whether or not it
/// is `want`.
fn seen(lab: &mut Cluster<'_>, served: &mut BTreeSet<IpAddr>, want: Option<&Seen>) -> Seen {
    let ips = settle(want.map(|w| &w.ips), || lab_ips(lab));
    let mut l2 = BTreeMap::new();
    for (service, addrs) in &ips {
        let name = service.trim_start_matches("default/");
        for ip in addrs
            .iter()
            .filter(|ip| ip.to_string().starts_with("198.51.100."))
        {
            if served.insert(*ip) {
                lab.serve(&ip.to_string());
            }
            let owner = lab
                .settled_owner(name, &ip.to_string())
                .map_or_else(|| "no single owner".to_string(), str::to_string);
            l2.insert(*ip, BTreeSet::from([owner]));
        }
    }
    let bgp = settle(want.map(|w| &w.bgp), || lab_routes(lab));
    Seen { ips, l2, bgp }
}

/// `read()` once it equals `want` (waiting at most [`SETTLE`]), or the
/// last reading; with no `want`, one reading.
fn settle<T: PartialEq>(want: Option<&T>, mut read: impl FnMut() -> T) -> T {
    let Some(want) = want else {
        return read();
    };
    let mut last = None;
    wait_until(SETTLE, || {
        let now = read();
        let done = now == *want;
        last = Some(now);
        done.then_some(())
    });
    last.unwrap_or_else(read)
}

/// `plan` in the cluster, as alice (bound only to `ferrolb-view`): the
/// README's `not-run=explain-cluster` block of its `Plan` section with its
/// exit codes, then three edits, each planned (`-o json`), applied by the
/// cluster admin and compared with what the controller, the speakers and
/// the router then do: layer 2 moved to another node by a node selector,
/// a BGPAdvertisement deleted, and the README's example pool (every IP
/// changes, the pending Service gets its requested IP).
fn plan_in_the_cluster(
    lab: &mut Cluster<'_>,
    readme: &[(String, i32)],
    as_alice: &dyn Fn(&str) -> (i32, String),
    alice_runs: &dyn Fn(&str) -> Output,
    owner: &str,
) {
    // As a cluster labels its Nodes.
    for n in speaker_lab::NODES {
        lab.cp().ok(&[
            "label",
            "node",
            n.name,
            "--overwrite",
            &format!("kubernetes.io/hostname={}", n.name),
        ]);
    }
    for (command, want) in readme {
        let (code, out) = as_alice(command);
        println!("$ {command}\n{out}");
        assert_eq!(code, *want, "`{command}`:\n{out}");
        assert!(
            out.contains("Plan over the cluster (FerroLB namespace ferrolb-system)"),
            "{out}"
        );
        if command.contains("deploy/examples/l2-ipv4.yaml") {
            assert!(out.contains("default/web changes "), "{out}");
        }
    }

    let other = speaker_lab::NODES
        .iter()
        .map(|n| n.name)
        .find(|n| *n != owner)
        .unwrap();
    let edits_dir = tempfile::tempdir().unwrap();
    let selector = edits_dir.path().join("l2-on-other-node.yaml");
    std::fs::write(
        &selector,
        format!(
            "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {{name: lan, namespace: ferrolb-system}}\nspec:\n  ipAddressPools: [lan]\n  nodeSelectors:\n    - matchLabels: {{kubernetes.io/hostname: {other}}}\n"
        ),
    )
    .unwrap();
    let example = workspace_root().join("deploy/examples/l2-ipv4.yaml");
    // (what, plan arguments, how the admin applies it, plan's exit code)
    let edits: [(&str, String, Vec<String>, i32); 3] = [
        (
            "node selector",
            format!("-f {}", selector.display()),
            vec!["apply".into(), "-f".into(), selector.display().to_string()],
            0,
        ),
        (
            "delete the BGPAdvertisement",
            "--delete BGPAdvertisement/routed".into(),
            [
                "-n",
                "ferrolb-system",
                "delete",
                "bgpadvertisement",
                "routed",
            ]
            .map(String::from)
            .to_vec(),
            0,
        ),
        (
            "the README's example pool",
            format!("-f {}", example.display()),
            vec!["apply".into(), "-f".into(), example.display().to_string()],
            4,
        ),
    ];
    let mut served: BTreeSet<IpAddr> = lab_ips(lab).into_values().flatten().collect();
    for (what, args, apply, exit) in edits {
        let before = seen(lab, &mut served, None);
        let command = format!("kubectl ferrolb plan {args} -o json");
        let out = alice_runs(&command);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let plan: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
            panic!(
                "{what}: `{command}` is not JSON ({e}):\n{stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        assert_eq!(out.status.code(), Some(exit), "{what}: {plan:#}");
        assert_eq!(plan["exitCode"], exit, "{what}");
        assert_eq!(plan["anyChange"], true, "{what}: {plan:#}");
        let want = Seen {
            ips: predicted_ips(&before.ips, &plan),
            l2: predicted_layer2(&before.l2, &plan),
            bgp: predicted_bgp(&before.bgp, &plan, |_| ()),
        };
        let apply: Vec<&str> = apply.iter().map(String::as_str).collect();
        lab.cp().ok(&apply);
        let after = seen(lab, &mut served, Some(&want));
        assert_eq!(
            after,
            want,
            "{what}: the daemons did (left) not what the plan said (right); before: {before:#?}\nplan: {plan:#}\n{}",
            lab.logs()
        );
        assert_ne!(before, after, "{what}: nothing changed");
        println!("ok: {what}: {before:?} -> {after:?}");
    }
}
