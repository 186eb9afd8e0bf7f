//! The controller's command-line tools, run as a person would run them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run ferrolb-controller")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn crds_output_is_the_committed_file() {
    let out = run(&["crds"]);
    assert!(out.status.success());
    let committed = std::fs::read_to_string(root().join("deploy/crds.yaml")).unwrap();
    assert!(
        stdout(&out) == committed,
        "deploy/crds.yaml is stale: run `cargo run -p ferrolb-controller -- crds > deploy/crds.yaml`"
    );
}

#[test]
fn crds_have_columns_status_and_schema() {
    let text = stdout(&run(&["crds"]));
    let docs = ferrolb_config::yaml::split_documents(&text);
    let mut kinds = Vec::new();
    for d in docs {
        let crd: serde_json::Value = serde_saphyr::from_str(d.text).unwrap();
        assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
        assert_eq!(crd["spec"]["group"], "ferrolb.io");
        assert_eq!(crd["spec"]["scope"], "Namespaced");
        let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_string();
        let v = &crd["spec"]["versions"][0];
        assert!(
            v["schema"]["openAPIV3Schema"]["properties"]["spec"].is_object(),
            "{kind}"
        );
        assert!(
            v["subresources"]["status"].is_object(),
            "{kind} has a status subresource"
        );
        let columns = v["additionalPrinterColumns"].as_array().unwrap();
        assert!(!columns.is_empty(), "{kind} has printer columns");
        kinds.push((kind, v["name"].as_str().unwrap().to_string()));
    }
    let expected = [
        ("IPAddressPool", "v1beta1"),
        ("L2Advertisement", "v1beta1"),
        ("BGPAdvertisement", "v1beta1"),
        ("BGPPeer", "v1beta2"),
        ("BFDProfile", "v1beta1"),
        ("Community", "v1beta1"),
        ("ServiceL2Status", "v1beta1"),
        ("ServiceBGPStatus", "v1beta1"),
        ("ConfigurationState", "v1beta1"),
    ];
    let got: Vec<(&str, &str)> = kinds
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expected);
}

#[test]
fn pool_crd_schema_keeps_metallb_field_names_and_defaults() {
    let text = stdout(&run(&["crds"]));
    let pool: serde_json::Value =
        serde_saphyr::from_str(ferrolb_config::yaml::split_documents(&text)[0].text).unwrap();
    let spec = &pool["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let props = spec["properties"].as_object().unwrap();
    for field in [
        "addresses",
        "autoAssign",
        "avoidBuggyIPs",
        "serviceAllocation",
    ] {
        assert!(props.contains_key(field), "IPAddressPool spec has {field}");
    }
    assert_eq!(props["autoAssign"]["default"], true);
    assert_eq!(props["avoidBuggyIPs"]["default"], false);
    let columns: Vec<&str> = pool["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        columns.contains(&"Addresses") && columns.contains(&"Auto Assign"),
        "{columns:?}"
    );
}

#[test]
fn validate_accepts_the_shipped_examples() {
    let out = run(&["validate", "deploy/examples"]);
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text, "", "examples have no problems, not even warnings");
}

#[test]
fn validate_refuses_each_bad_example_naming_file_object_and_field() {
    let cases = [
        (
            "invalid/backwards-range.yaml",
            "IPAddressPool ferrolb-system/backwards: spec.addresses[0]",
            "first address 198.51.100.20 is after last address 198.51.100.10",
        ),
        (
            "invalid/hold-time.yaml",
            "BGPPeer ferrolb-system/bad-hold: spec.holdTime \"2s\"",
            "at least 3s",
        ),
        (
            "bad/bfd-range.yaml",
            "BFDProfile ferrolb-system/bad-bfd: spec.detectMultiplier \"1\"",
            "must be from 2 to 255",
        ),
        (
            "bad/wrong-type.yaml",
            "IPAddressPool ferrolb-system/wrong-type: spec.addresses",
            "expected a sequence",
        ),
    ];
    for (file, object_and_field, reason) in cases {
        let path = format!("deploy/examples/{file}");
        let out = run(&["validate", &path]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {text}");
        assert!(text.starts_with(&format!("{path}:")), "{file}: {text}");
        assert!(text.contains(object_and_field), "{file}: {text}");
        assert!(text.contains(reason), "{file}: {text}");
    }
}

#[test]
fn validate_reports_every_problem_of_a_file() {
    let out = run(&["validate", "config/testdata/validate/bad.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 20, "{text}");
    // References to objects that do not exist (a pool, a peer, a community
    // alias, a BFD profile) are warnings: a configuration may be split
    // across files.
    assert_eq!(
        text.lines().filter(|l| l.contains(": warning: ")).count(),
        6,
        "{text}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("14 errors, 6 warnings"), "{stderr}");
}

#[test]
fn validate_json_lines_carry_every_field() {
    let out = run(&[
        "validate",
        "--json",
        "deploy/examples/invalid/hold-time.yaml",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let line: serde_json::Value =
        serde_json::from_str(stdout(&out).lines().next().unwrap()).unwrap();
    assert_eq!(line["severity"], "error");
    assert_eq!(line["file"], "deploy/examples/invalid/hold-time.yaml");
    assert_eq!(line["document"], 1);
    assert_eq!(line["kind"], "BGPPeer");
    assert_eq!(line["namespace"], "ferrolb-system");
    assert_eq!(line["name"], "bad-hold");
    assert_eq!(line["field"], "spec.holdTime");
    assert_eq!(line["value"], "2s");
}

#[test]
fn validate_of_a_missing_path_fails_clearly() {
    let out = run(&["validate", "no/such/dir"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no/such/dir"));
}

#[test]
fn migrated_metallb_sample_validates_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    for sample in [
        "v0.14-all-kinds.yaml",
        "legacy-configmap.yaml",
        "addresspool-v1beta1.yaml",
    ] {
        let out = run(&["migrate", &format!("config/testdata/metallb/{sample}")]);
        assert!(out.status.success(), "{sample}");
        let text = stdout(&out);
        assert!(
            !text.contains("metallb.io/"),
            "{sample}: no MetalLB apiVersion left:\n{text}"
        );
        let file = dir.path().join(sample);
        std::fs::write(&file, &text).unwrap();
        let check = run(&["validate", file.to_str().unwrap()]);
        let report = stdout(&check);
        assert!(
            !report.contains(": error: "),
            "{sample}: migrated output has errors:\n{report}\n--- output ---\n{text}"
        );
    }
}
