//! MetalLB's 18 published configuration samples (copies in
//! `tests/metallb-configsamples/`, see the README there): each one, converted by
//! `migrate` and loaded the way `ferrolb-controller validate` loads a file, has
//! no error. Warnings are allowed: most samples are fragments that name a pool,
//! a peer or a Secret defined elsewhere, which is a valid way to split a
//! configuration across files.

use std::path::{Path, PathBuf};

use ferrolb_config::migrate::migrate;
use ferrolb_config::problem::Problem;
use ferrolb_config::source::load_paths;
use ferrolb_config::validate::validate;

fn samples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/metallb-configsamples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    files
}

/// `migrate` on the file, then `validate` on the output written to a file.
fn migrate_and_validate(sample: &Path, out_dir: &Path) -> (String, Vec<Problem>) {
    let name = sample.file_name().unwrap().to_str().unwrap();
    let text = std::fs::read_to_string(sample).unwrap();
    let migration = migrate(&text, name);
    assert!(
        migration.documents.iter().any(|d| d.object.is_some()),
        "{name}: migrate converted nothing:\n{}",
        migration.to_yaml()
    );
    let yaml = migration.to_yaml();
    assert!(!yaml.contains("metallb.io/"), "{name}:\n{yaml}");
    let out = out_dir.join(name);
    std::fs::write(&out, &yaml).unwrap();
    let loaded = load_paths(&[out]).unwrap();
    let mut problems = loaded.problems;
    problems.extend(validate(&loaded.config));
    (yaml, problems)
}

#[test]
fn every_metallb_sample_migrates_and_validates_without_errors() {
    let files = samples();
    assert_eq!(files.len(), 18, "{files:#?}");
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for sample in &files {
        let (yaml, problems) = migrate_and_validate(sample, dir.path());
        let errors: Vec<String> = problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.to_string())
            .collect();
        if !errors.is_empty() {
            failures.push(format!(
                "{}:\n  {}\n--- migrated ---\n{yaml}",
                sample.display(),
                errors.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} samples have errors after migrate:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

#[test]
fn fragments_get_a_warning_naming_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let sample = samples()
        .into_iter()
        .find(|p| p.ends_with("bgpadv_selectspool_by_list.yaml"))
        .unwrap();
    let (_, problems) = migrate_and_validate(&sample, dir.path());
    let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(text.len(), 2, "{text:#?}");
    assert!(
        text[0].contains(
            "warning: BGPAdvertisement ferrolb-system/advertisement: spec.ipAddressPools[0] \"test-addresspool\": selects nothing until IPAddressPool ferrolb-system/test-addresspool exists"
        ),
        "{text:#?}"
    );
    assert!(
        text[1].contains(
            "warning: BGPAdvertisement ferrolb-system/advertisement: spec.peers[0] \"ebgp-single-hop0\": "
        ) && text[1].contains("until BGPPeer ferrolb-system/ebgp-single-hop0 exists"),
        "{text:#?}"
    );
}
