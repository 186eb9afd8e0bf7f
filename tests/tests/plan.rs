//! `plan -f NEW.yaml` (the `kubectl-ferrolb` plugin, also `ferrolb-controller
//! plan`) in standalone mode, over a copy of the full demo's configuration
//! (deploy/demo/lab, its Nodes given the `kubernetes.io/hostname` label a
//! cluster gives them): each edit is planned, then applied to the directory,
//! and what the daemons then do must be what the plan said.
//!
//! - The allocation half: the real controller runs once over the edited
//!   directory (`ferrolb-controller --standalone DIR --once`); every
//!   Service's IPs in its `status/services.yaml` must be the IPs before the
//!   edit with the plan's `get`, `lose` and `change` applied.
//! - The announcement half: the speaker's own decision
//!   (`ferrolb_speaker::desired::decide`, for each Node over the directory as
//!   the speaker daemon reads it, `daemon::standalone::read`) before and
//!   after the edit; the layer-2 owners and BGP routes after the edit must be
//!   those before with the plan's `layer2` and `bgp` changes applied.
//!
//! The edits: shrink a pool (Services lose or change IPs, exit 4), delete an
//! advertisement (its routes are withdrawn, exit 0), change node selectors
//! (layer-2 IPs move to another node, a peer's routes go), a no-op (exit 0,
//! "no change"), an invalid proposal (its problems with file and line; exit
//! 5, or 4 when what the daemons would act on changes IPs). No root, no
//! network.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use ferrolb_e2e::control_plane::workspace_root;
use ferrolb_e2e::plan_check::{predicted_bgp, predicted_ips, predicted_layer2};
use ferrolb_e2e::readme;
use ferrolb_e2e::speaker::{controller_binary, plugin_binary};
use ferrolb_speaker::desired::{Inputs, decide};
use serde_json::Value;

const NODES: [&str; 3] = ["node1", "node2", "node3"];

fn run(command: &mut Command) -> (i32, String, String) {
    let out = command.output().expect("running a binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn controller_once(dir: &Path) {
    let (code, _, err) = run(Command::new(controller_binary())
        .arg("--standalone")
        .arg(dir)
        .arg("--once"));
    assert_eq!(code, 0, "controller: {err}");
}

/// A copy of the full demo's directory, Nodes labelled with their host
/// name, after one controller round.
fn demo_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lab = workspace_root().join("deploy/demo/lab");
    for f in [
        "config.yaml",
        "nodes.yaml",
        "services.yaml",
        "memberlist.yaml",
    ] {
        let mut text = std::fs::read_to_string(lab.join(f)).unwrap();
        if f == "nodes.yaml" {
            for n in NODES {
                text = text.replace(
                    &format!("  name: {n}\n"),
                    &format!("  name: {n}\n  labels: {{kubernetes.io/hostname: {n}}}\n"),
                );
            }
        }
        std::fs::write(dir.path().join(f), text).unwrap();
    }
    controller_once(dir.path());
    dir
}

/// The documents of a manifest (split on `---` lines).
fn documents(text: &str) -> Vec<String> {
    text.split("\n---\n").map(str::to_string).collect()
}

fn is_object(doc: &str, kind: &str, name: &str) -> bool {
    doc.lines().any(|l| l.trim() == format!("kind: {kind}"))
        && doc.lines().any(|l| l.trim() == format!("name: {name}"))
}

/// Applies an edit to the directory's `config.yaml` as `kubectl apply`
/// (and `kubectl delete`) would: the object of the same kind and name
/// replaced (or added), deleted ones removed.
fn apply_to_directory(dir: &Path, new: &[(&str, &str, &str)], delete: &[(&str, &str)]) {
    let path = dir.join("config.yaml");
    let mut docs = documents(&std::fs::read_to_string(&path).unwrap());
    for (kind, name) in delete {
        let before = docs.len();
        docs.retain(|d| !is_object(d, kind, name));
        assert_eq!(docs.len() + 1, before, "{kind} {name} in config.yaml");
    }
    for (kind, name, text) in new {
        match docs.iter_mut().find(|d| is_object(d, kind, name)) {
            Some(d) => *d = text.to_string(),
            None => docs.push(text.to_string()),
        }
    }
    std::fs::write(&path, docs.join("\n---\n")).unwrap();
}

/// Every Service's IPs in `status/services.yaml`.
fn assigned(dir: &Path) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let text = std::fs::read_to_string(dir.join("status/services.yaml")).unwrap();
    let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    docs.iter()
        .filter(|d| !d.is_null())
        .map(|d| {
            let key = format!(
                "{}/{}",
                d["metadata"]["namespace"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            );
            let ips = d["status"]["loadBalancer"]["ingress"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["ip"].as_str().unwrap().parse().unwrap())
                .collect();
            (key, ips)
        })
        .collect()
}

/// What the speakers announce: per layer-2 IP its owners, and every BGP
/// route (prefix, node, peer) with its attributes (as text).
#[derive(Debug, Default, PartialEq, Eq)]
struct Announced {
    l2: BTreeMap<IpAddr, BTreeSet<String>>,
    bgp: BTreeMap<(String, String, String), String>,
}

/// The speaker's decision for each Node over the directory, as the
/// speaker daemon reads it.
fn announced(dir: &Path) -> Announced {
    let snap = ferrolb_speaker::daemon::standalone::read(dir, &dir.join("status/services.yaml"));
    let mut out = Announced::default();
    for node in NODES {
        let d = decide(Inputs {
            config: &snap.config,
            services: &snap.services,
            members: None,
            node,
            lb_class: None,
        });
        for ip in d.l2.keys() {
            out.l2.entry(*ip).or_default().insert(node.to_string());
        }
        for (peer, routes) in &d.bgp {
            for (prefix, attrs) in routes.iter() {
                out.bgp.insert(
                    (prefix.to_string(), node.to_string(), peer.clone()),
                    attrs_text(
                        attrs.communities.iter().map(ToString::to_string).collect(),
                        attrs
                            .large_communities
                            .iter()
                            .map(ToString::to_string)
                            .collect(),
                        attrs.local_pref,
                    ),
                );
            }
        }
    }
    out
}

fn attrs_text(communities: Vec<String>, large: Vec<String>, local_pref: Option<u32>) -> String {
    format!("{communities:?} {large:?} {local_pref:?}")
}

fn attrs_of_json(v: &Value) -> String {
    let list = |k: &str| -> Vec<String> {
        v[k].as_array()
            .into_iter()
            .flatten()
            .map(|x| x.as_str().unwrap().to_string())
            .collect()
    };
    attrs_text(
        list("communities"),
        list("largeCommunities"),
        v["localPref"].as_u64().map(|x| x as u32),
    )
}

/// The announcements before with the plan's changes applied.
fn predicted_announcements(before: &Announced, plan: &Value) -> Announced {
    Announced {
        l2: predicted_layer2(&before.l2, plan),
        bgp: predicted_bgp(&before.bgp, plan, attrs_of_json),
    }
}

/// One edit of the demo's configuration.
struct Edit {
    name: &'static str,
    /// (kind, name, document) proposed, written to NEW.yaml.
    new: Vec<(&'static str, &'static str, String)>,
    /// (kind, name) deleted (`--delete KIND/NAME`).
    delete: Vec<(&'static str, &'static str)>,
    exit: i32,
    says: Vec<String>,
}

const LAN_L2: &str = "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata:\n  name: lan\n  namespace: ferrolb-system\nspec:\n  ipAddressPools: [lan]\n";

fn plan_json(dir: &Path, new_file: Option<&Path>, delete: &[(&str, &str)]) -> (i32, Value) {
    let mut c = Command::new(plugin_binary());
    c.arg("plan").arg("--standalone").arg(dir);
    if let Some(f) = new_file {
        c.arg("-f").arg(f);
    }
    for (kind, name) in delete {
        c.arg("--delete").arg(format!("{kind}/{name}"));
    }
    c.args(["-o", "json"]);
    let (code, out, err) = run(&mut c);
    let doc: Value = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("-o json is not JSON ({e}):\n{out}\n{err}"));
    (code, doc)
}

fn plan_text(dir: &Path, new_file: Option<&Path>, delete: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new(plugin_binary());
    c.arg("plan").arg("--standalone").arg(dir);
    if let Some(f) = new_file {
        c.arg("-f").arg(f);
    }
    for (kind, name) in delete {
        c.arg("--delete").arg(format!("{kind}/{name}"));
    }
    let (code, out, err) = run(&mut c);
    (code, format!("{out}{err}"))
}

fn edits(owner_of_web: &str) -> Vec<Edit> {
    // A node that does not answer for default/web's IPv4 address now.
    let other = NODES.iter().find(|n| **n != owner_of_web).unwrap();
    vec![
        Edit {
            name: "shrink a pool",
            new: vec![(
                "IPAddressPool",
                "lan",
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lan\n  namespace: ferrolb-system\nspec:\n  addresses:\n    - 198.51.100.110-198.51.100.111\n    - 2001:db8::100-2001:db8::119\n".into(),
            )],
            delete: vec![],
            exit: 4,
            says: vec![
                "replaced: IPAddressPool ferrolb-system/lan".into(),
                "default/web changes 198.51.100.101, 2001:db8::100 (pool lan) to ".into(),
                "Result: an IP a Service holds would change or be lost (exit 4)".into(),
            ],
        },
        Edit {
            name: "delete an advertisement",
            new: vec![],
            delete: vec![("BGPAdvertisement", "routed")],
            exit: 0,
            says: vec![
                "deleted: BGPAdvertisement ferrolb-system/routed".into(),
                "withdrawn by node1, node2, node3".into(),
                "Result: no IP a Service holds would change or be lost (exit 0)".into(),
            ],
        },
        Edit {
            name: "change node selectors",
            new: vec![
                (
                    "L2Advertisement",
                    "lan",
                    format!(
                        "{LAN_L2}  nodeSelectors:\n    - matchLabels: {{kubernetes.io/hostname: {other}}}\n"
                    ),
                ),
                (
                    "BGPPeer",
                    "router",
                    "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata:\n  name: router\n  namespace: ferrolb-system\nspec:\n  myASN: 64512\n  peerASN: 64513\n  peerAddress: 198.51.100.1\n  holdTime: 9s\n  nodeSelectors:\n    - matchLabels: {kubernetes.io/hostname: node1}\n".into(),
                ),
            ],
            delete: vec![],
            exit: 0,
            says: vec![
                format!("-> {other}"),
                "to router: withdrawn by node2, node3".into(),
            ],
        },
        Edit {
            name: "no-op",
            new: vec![("L2Advertisement", "lan", LAN_L2.into())],
            delete: vec![],
            exit: 0,
            says: vec![
                "unchanged: L2Advertisement ferrolb-system/lan".into(),
                "Services:\n  no change".into(),
                "Pools:\n  no change".into(),
                "Announcements:\n  no change".into(),
                "Result: no change (exit 0)".into(),
            ],
        },
        Edit {
            name: "invalid new pool",
            new: vec![(
                "IPAddressPool",
                "extra",
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: extra\n  namespace: ferrolb-system\nspec:\n  addresses:\n    - 198.51.100.300/32\n".into(),
            )],
            delete: vec![],
            exit: 5,
            says: vec![
                "the proposal has 1 new problem (1 error)".into(),
                "new.yaml:1 (document 1): error: IPAddressPool ferrolb-system/extra: spec.addresses[0] \"198.51.100.300/32\"".into(),
                "Result: no change; the proposal has configuration errors (exit 5)".into(),
            ],
        },
        Edit {
            name: "invalid replacement of a pool in use",
            new: vec![(
                "IPAddressPool",
                "lan",
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: lan\n  namespace: ferrolb-system\nspec:\n  addresses:\n    - 198.51.100.100-198.51.100.119\n    - not-an-address\n".into(),
            )],
            delete: vec![],
            exit: 4,
            says: vec![
                "new.yaml:1 (document 1): error: IPAddressPool ferrolb-system/lan: spec.addresses[1] \"not-an-address\"".into(),
                "the daemons would ignore the invalid objects and act on the rest".into(),
                "default/web loses 198.51.100.101, 2001:db8::100 (pool lan)".into(),
                "lan: IPv4 2 in use, 18 free; IPv6 1 in use, 25 free -> absent".into(),
                "removed (or invalid)".into(),
            ],
        },
    ]
}

#[test]
fn predictions_are_what_the_daemons_then_do() {
    // Who answers for default/web's IPv4 address in the demo now.
    let probe = demo_copy();
    let web_v4 = assigned(probe.path())["default/web"]
        .iter()
        .find(|ip| ip.is_ipv4())
        .copied()
        .unwrap();
    let owner = announced(probe.path()).l2[&web_v4]
        .iter()
        .next()
        .unwrap()
        .clone();

    let mut failures = Vec::new();
    for edit in edits(&owner) {
        let dir = demo_copy();
        let proposal = tempfile::tempdir().unwrap();
        let new_file: Option<PathBuf> = (!edit.new.is_empty()).then(|| {
            let f = proposal.path().join("new.yaml");
            let docs: Vec<&str> = edit.new.iter().map(|(_, _, d)| d.as_str()).collect();
            std::fs::write(&f, docs.join("---\n")).unwrap();
            f
        });
        let (code, text) = plan_text(dir.path(), new_file.as_deref(), &edit.delete);
        let missing: Vec<&String> = edit.says.iter().filter(|s| !text.contains(*s)).collect();
        if code != edit.exit || !missing.is_empty() {
            failures.push(format!(
                "{}: exit {code} (want {}), missing {missing:?}:\n{text}",
                edit.name, edit.exit
            ));
            continue;
        }
        let (jcode, plan) = plan_json(dir.path(), new_file.as_deref(), &edit.delete);
        assert_eq!(jcode, code, "{}: -o json exits as text does", edit.name);
        assert_eq!(plan["schema"], "ferrolb.io/plan/v1");
        assert_eq!(plan["exitCode"], code);
        // Nothing in the plan says a restarted controller would differ.
        let notes = plan["notes"].to_string();
        assert!(!notes.contains("restarted"), "{}: {notes}", edit.name);
        if edit.name == "no-op" {
            assert_eq!(plan["anyChange"], false, "{plan:#}");
        } else if edit.exit != 5 {
            assert_eq!(plan["anyChange"], true, "{}: {plan:#}", edit.name);
        }

        // Now apply it, and let the daemons decide.
        let ips_before = assigned(dir.path());
        let ann_before = announced(dir.path());
        let new: Vec<(&str, &str, &str)> = edit
            .new
            .iter()
            .map(|(k, n, d)| (*k, *n, d.as_str()))
            .collect();
        apply_to_directory(dir.path(), &new, &edit.delete);
        controller_once(dir.path());
        let ips_after = assigned(dir.path());
        let ann_after = announced(dir.path());
        let want_ips = predicted_ips(&ips_before, &plan);
        if want_ips != ips_after {
            failures.push(format!(
                "{}: the controller assigned {ips_after:#?}\nthe plan predicted {want_ips:#?}\n{text}",
                edit.name
            ));
        }
        let want_ann = predicted_announcements(&ann_before, &plan);
        if want_ann != ann_after {
            failures.push(format!(
                "{}: the speakers decide {ann_after:#?}\nthe plan predicted {want_ann:#?}\n{text}",
                edit.name
            ));
        }
        match edit.name {
            "shrink a pool" => {
                let s = &plan["services"];
                let moved =
                    s["lose"].as_array().unwrap().len() + s["change"].as_array().unwrap().len();
                assert!(moved > 0, "{text}");
            }
            "delete an advertisement" | "change node selectors" => {
                assert_eq!(ips_before, ips_after, "{}: no IP changes", edit.name);
                assert_ne!(ann_before, ann_after, "{}: announcements change", edit.name);
            }
            "no-op" | "invalid new pool" => {
                assert_eq!(ips_before, ips_after);
                assert_eq!(ann_before, ann_after);
            }
            _ => {}
        }
        println!("ok: {} (exit {code})\n{text}", edit.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// `ferrolb-controller plan` runs the plugin installed beside it, with the
/// same output and exit code; `--fail-on` and `--prune`; errors exit 3.
#[test]
fn the_controller_runs_the_plugin_and_options_hold() {
    let plugin = plugin_binary();
    let controller = controller_binary();
    assert_eq!(plugin.parent(), controller.parent(), "built side by side");
    let dir = demo_copy();
    let proposal = tempfile::tempdir().unwrap();
    let file = proposal.path().join("new.yaml");
    std::fs::write(&file, LAN_L2).unwrap();
    let args = |c: &mut Command, extra: &[&str]| {
        c.args(["plan", "--standalone"])
            .arg(dir.path())
            .arg("-f")
            .arg(&file)
            .args(extra);
    };
    let both = |extra: &[&str]| {
        let mut a = Command::new(&plugin);
        args(&mut a, extra);
        let mut b = Command::new(&controller);
        args(&mut b, extra);
        let (pa, pb) = (run(&mut a), run(&mut b));
        assert_eq!(pa, pb, "{extra:?}");
        pa
    };
    assert_eq!(both(&[]).0, 0);
    // --prune: everything but the L2Advertisement goes; Services lose IPs.
    let (code, out, _) = both(&["--prune"]);
    assert_eq!(code, 4, "{out}");
    assert!(
        out.contains("pruned: IPAddressPool ferrolb-system/lan"),
        "{out}"
    );
    assert_eq!(both(&["--prune", "--fail-on", "none"]).0, 0);
    // Something changes but no IP: 0, or 4 with --fail-on any-change.
    let del = ["--delete", "BGPAdvertisement/routed"];
    assert_eq!(both(&del).0, 0);
    assert_eq!(both(&[del[0], del[1], "--fail-on", "any-change"]).0, 4);
    // Errors: no such object, unknown kind, no such file, usage.
    for extra in [
        &["--delete", "BGPPeer/nope"][..],
        &["--delete", "Widget/x"],
        &["-f", "/nonexistent/x.yaml"],
        &["--bogus"],
    ] {
        let (code, out, err) = both(extra);
        assert_eq!(code, 3, "{extra:?}: {out}{err}");
    }
    let (code, out, _) = both(&["--delete", "BGPPeer/nope", "-o", "json"]);
    assert_eq!(code, 3);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["kind"], "Error");
    assert_eq!(doc["schema"], "ferrolb.io/plan/v1");
}

// ---------------------------------------------------------------- README

/// The README's `plan` blocks, run as the docs harness runs every README
/// block (`sh -e` in a work directory holding the repository's `deploy/`,
/// `file=NAME` blocks written there, the built binaries first on the
/// PATH): each exits with its `exit=N` and prints the `text output` block
/// after it.
#[test]
fn readme_plan_commands_print_the_readmes_output() {
    let plugin = plugin_binary();
    let controller = controller_binary();
    assert_eq!(plugin.parent(), controller.parent(), "built side by side");
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace_root().join("deploy"), work.path().join("deploy"))
        .unwrap();
    let ran = readme::run_section("Plan: ", work.path(), controller.parent().unwrap());
    assert!(ran >= 2, "the README's plan section runs {ran} blocks");
}
