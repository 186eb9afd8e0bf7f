//! `ferrolb-controller validate` on a value YAML reads as another type than
//! the field's: `name: y` is a boolean (to Kubernetes' YAML too), and the
//! problem says so, naming the file, the line and column, the field and
//! the type expected, instead of "Service has no metadata.name".

use std::process::Command;

#[test]
fn validate_reports_a_boolean_name_as_a_boolean() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.yaml");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Service\nmetadata: {name: y}\nspec:\n  type: LoadBalancer\n---\n\
         apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    ferrolb.io/allow-shared-ip: on\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .arg("validate")
        .arg(&file)
        .output()
        .expect("run ferrolb-controller");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{text}");
    let path = file.display();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!(
                "{path}:3:18 (document 1): error: metadata.name: expected a string, found the boolean y (quote it: \"y\")"
            ),
            format!(
                "{path}:12:33 (document 2): error: Service web: metadata.annotations.ferrolb.io/allow-shared-ip: expected a string, found the boolean on (quote it: \"on\")"
            ),
        ],
        "{text}"
    );
    assert!(!text.contains("has no metadata.name"), "{text}");
}
