//! `explain` (the `kubectl-ferrolb` plugin, also `ferrolb-controller
//! explain`) in standalone mode: a table of broken configurations, each
//! with the reason that must appear and the exit code (0 announced, 1
//! pending, 2 assigned but not announced, 3 error), and the README's
//! `explain` commands run exactly as written.
//!
//! Each case is a directory written by the test: its manifests and three
//! Ready Nodes; `ferrolb-controller --standalone DIR --once` assigns the IPs.
//! Where the case needs what speakers report (sessions, who answers,
//! conflicts), the speakers' status files are written by the speaker's own
//! code: its decision function (`ferrolb_speaker::desired::decide`) for each
//! node over the directory as the daemon reads it
//! (`daemon::standalone::read`), and its status writer
//! (`daemon::status::write`), with the session state and conflicts the case
//! chooses in place of a real router and LAN. The real daemons are
//! explained in `explain_lab.rs` (standalone lab and cluster).

use std::path::Path;
use std::process::Command;

use ferrolb_e2e::control_plane::workspace_root;
use ferrolb_e2e::readme;
use ferrolb_e2e::speaker::{controller_binary, plugin_binary};
use ferrolb_speaker::daemon::status;
use serde_json::Value;

#[path = "explain/cases.rs"]
mod cases;
use cases::{L2, POOL, Speakers, cases, docs, nodes, service, speaker_reports};

/// Writes each node's `status/speaker-NODE.yaml` as its speaker would
/// ([`speaker_reports`], then the speaker's status writer).
fn simulate_speakers(dir: &Path, sim: Speakers) {
    for report in speaker_reports(dir, sim) {
        status::write(dir, &report);
    }
}

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

#[test]
fn broken_configurations_say_why() {
    let plugin = plugin_binary();
    let mut failures = Vec::new();
    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.yaml"), &case.manifests).unwrap();
        std::fs::write(dir.path().join("nodes.yaml"), nodes(case.node_labels)).unwrap();
        controller_once(dir.path());
        if let Some(sim) = case.speakers {
            simulate_speakers(dir.path(), sim);
        }
        let explain = |json: bool| {
            let mut c = Command::new(&plugin);
            c.args(["explain", "--standalone"])
                .arg(dir.path())
                .args(["service", case.service]);
            if json {
                c.args(["-o", "json"]);
            }
            run(&mut c)
        };
        let (code, stdout, stderr) = explain(false);
        let text = format!("{stdout}{stderr}");
        let missing: Vec<&&str> = case.says.iter().filter(|s| !text.contains(**s)).collect();
        if code != case.exit || !missing.is_empty() {
            failures.push(format!(
                "{}: exit {code} (want {}), missing {missing:?}:\n{text}",
                case.name, case.exit
            ));
            continue;
        }
        // The JSON says the same, with the same exit code.
        let (jcode, jout, _) = explain(true);
        let doc: Value = serde_json::from_str(&jout)
            .unwrap_or_else(|e| panic!("{}: -o json is not JSON ({e}):\n{jout}", case.name));
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
            failures.push(format!("{}: -o json (exit {jcode}):\n{jout}", case.name));
        }
        println!("ok: {} (exit {code})", case.name);
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// `ferrolb-controller explain` runs the plugin installed beside it, with
/// the same output and exit code.
#[test]
fn the_controller_runs_the_plugin() {
    let plugin = plugin_binary();
    let controller = controller_binary();
    assert_eq!(plugin.parent(), controller.parent(), "built side by side");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.yaml"),
        docs(&[
            POOL,
            L2,
            &service(
                "typo",
                "annotations: {ferrolb.io/loadBalancerIPs: \"203.0.113.99\"}, ",
                "",
            ),
        ]),
    )
    .unwrap();
    std::fs::write(dir.path().join("nodes.yaml"), nodes("")).unwrap();
    controller_once(dir.path());
    let args = |c: &mut Command| {
        c.args(["explain", "--standalone"]).arg(dir.path()).args([
            "-o",
            "json",
            "service",
            "default/typo",
        ]);
    };
    let mut a = Command::new(&plugin);
    args(&mut a);
    let mut b = Command::new(&controller);
    args(&mut b);
    let (pa, pb) = (run(&mut a), run(&mut b));
    assert_eq!(pa.0, 1, "{pa:?}");
    assert_eq!(pa, pb);
    // Node and peer explanations exit 0; unknown ones 3.
    for (what, name, code) in [
        ("node", "node1", 0),
        ("node", "node9", 3),
        ("peer", "router", 3),
    ] {
        let (c, out, err) = run(Command::new(&controller)
            .args(["explain", "--standalone"])
            .arg(dir.path())
            .args([what, name]));
        assert_eq!(c, code, "{what} {name}: {out}{err}");
    }
    // Usage errors are 3 as well (not clap's 2, a verdict).
    let (c, _, _) = run(Command::new(&plugin).args(["explain", "bogus"]));
    assert_eq!(c, 3);
}

// ---------------------------------------------------------------- README

/// The README's standalone `explain` blocks, run as the docs harness runs
/// every README block (`sh -e` in a work directory holding the
/// repository's `deploy/`, the built binaries first on the PATH): each exits
/// with its `exit=N` and prints the `text output` block after it.
#[test]
fn readme_explain_commands_print_the_readmes_output() {
    let plugin = plugin_binary();
    let controller = controller_binary();
    assert_eq!(plugin.parent(), controller.parent(), "built side by side");
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(workspace_root().join("deploy"), work.path().join("deploy"))
        .unwrap();
    let ran = readme::run_section("Explain: ", work.path(), controller.parent().unwrap());
    assert!(ran >= 3, "the README's explain section runs {ran} blocks");
}
