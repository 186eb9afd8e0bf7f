//! The `validate` and `migrate` subcommands.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use ferrolb_config::problem::count;
use ferrolb_config::source::load_paths;
use ferrolb_config::validate::validate as validate_config;
use ferrolb_config::{Problem, Severity};

/// Loads the paths, validates everything, and returns all problems: those found
/// reading the files, then those found validating the objects.
pub fn check_paths(paths: &[PathBuf]) -> Result<(Vec<Problem>, usize), String> {
    let loaded = load_paths(paths).map_err(|e| e.to_string())?;
    let mut problems = loaded.problems;
    problems.extend(validate_config(&loaded.config));
    Ok((problems, loaded.config.object_count()))
}

fn problem_json(p: &Problem) -> serde_json::Value {
    serde_json::json!({
        "severity": p.severity.to_string(),
        "file": p.source.as_ref().map(|s| s.file.clone()),
        "document": p.source.as_ref().map(|s| s.document),
        "line": p.source.as_ref().map(|s| s.line),
        "kind": p.object.as_ref().map(|o| o.kind.clone()),
        "namespace": p.object.as_ref().and_then(|o| o.namespace.clone()),
        "name": p.object.as_ref().map(|o| o.name.clone()),
        "field": p.field,
        "value": p.value,
        "message": p.message,
    })
}

/// `ferrolb-controller validate PATH...`
pub fn validate(paths: &[PathBuf], json: bool) -> ExitCode {
    let (problems, objects) = match check_paths(paths) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    for p in &problems {
        if json {
            println!("{}", problem_json(p));
        } else {
            println!("{p}");
        }
    }
    let (errors, warnings) = count(&problems);
    if !json {
        eprintln!("{objects} objects checked: {errors} errors, {warnings} warnings");
    }
    if problems.iter().any(|p| p.severity == Severity::Error) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn read_input(file: &Path) -> std::io::Result<String> {
    if file == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Ok(s)
    } else {
        std::fs::read_to_string(file)
    }
}

/// What `migrate` prints for one input, and whether it succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrateOutput {
    /// The converted manifest.
    pub stdout: String,
    /// Lines for stderr: what changed names, the count of notes, and why
    /// the command fails when it does.
    pub stderr: Vec<String>,
    /// False when the input yields no object at all.
    pub success: bool,
}

/// Converts `input`, read from `name`.
pub fn migrate_output(input: &str, name: &str) -> MigrateOutput {
    let migration = ferrolb_config::migrate::migrate(input, name);
    let mut stderr: Vec<String> = migration
        .notices
        .iter()
        .map(|n| format!("note: {n}"))
        .collect();
    let notes = migration.comment_count();
    if notes > 0 {
        stderr.push(format!(
            "{notes} notes written as comments in the output: read them before applying"
        ));
    }
    let success = migration.object_count() > 0;
    if !success {
        stderr.push(format!(
            "error: {name}: nothing was converted: it holds no MetalLB object, legacy MetalLB configuration or other object to carry over{}",
            if notes > 0 {
                " (the comments in the output say why for each document)"
            } else {
                " (it is empty)"
            }
        ));
    }
    MigrateOutput {
        stdout: migration.to_yaml(),
        stderr,
        success,
    }
}

/// `ferrolb-controller migrate FILE`
pub fn migrate(file: &Path) -> ExitCode {
    let input = match read_input(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let out = migrate_output(&input, &file.display().to_string());
    print!("{}", out.stdout);
    for line in &out.stderr {
        eprintln!("{line}");
    }
    if out.success {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// The kubectl plugin that `ferrolb-controller explain` and `plan` run.
pub const PLUGIN: &str = "kubectl-ferrolb";

/// Where the plugin is: beside this binary (as `cargo build` and an install
/// put them), else on the PATH.
pub fn plugin_path() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join(PLUGIN)))
        .filter(|p| p.is_file());
    beside.or_else(|| {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|dir| dir.join(PLUGIN))
            .find(|p| p.is_file())
    })
}

/// `ferrolb-controller explain ARGS`: runs `kubectl-ferrolb explain ARGS`
/// (the explanation needs the speakers' decision function too, which this
/// binary does not hold), passing its output and exit code through; exit 3
/// when the plugin is not installed.
pub fn explain(args: &[std::ffi::OsString]) -> ExitCode {
    run_plugin("explain", args)
}

/// `ferrolb-controller plan ARGS`: runs `kubectl-ferrolb plan ARGS`, as
/// [`explain`] does.
pub fn plan(args: &[std::ffi::OsString]) -> ExitCode {
    run_plugin("plan", args)
}

/// Runs `kubectl-ferrolb SUBCOMMAND ARGS`, passing its output and exit code
/// through; exit 3 when the plugin is not installed or cannot run.
fn run_plugin(subcommand: &str, args: &[std::ffi::OsString]) -> ExitCode {
    let Some(plugin) = plugin_path() else {
        eprintln!(
            "error: {subcommand} runs {PLUGIN}, which is neither beside this binary nor on the PATH; it is built with it (cargo build --release builds target/release/{PLUGIN})"
        );
        return ExitCode::from(3);
    };
    match std::process::Command::new(&plugin)
        .arg(subcommand)
        .args(args)
        .status()
    {
        Ok(status) => ExitCode::from(
            status
                .code()
                .and_then(|c| u8::try_from(c).ok())
                .unwrap_or(3),
        ),
        Err(e) => {
            eprintln!("error: cannot run {}: {e}", plugin.display());
            ExitCode::from(3)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_fails_naming_the_file_when_nothing_is_converted() {
        for (input, why) in [
            ("", "(it is empty)"),
            ("# only a comment\n", "(it is empty)"),
            ("listen: 8080\n", "say why for each document"),
            (
                "apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: x}\n",
                "say why for each document",
            ),
            ("peers: []\n", "say why for each document"),
        ] {
            let out = migrate_output(input, "cm.txt");
            assert!(!out.success, "{input:?}: {out:?}");
            let last = out.stderr.last().unwrap();
            assert!(
                last.starts_with("error: cm.txt: nothing was converted") && last.contains(why),
                "{input:?}: {last}"
            );
        }
    }

    #[test]
    fn migrate_converts_the_legacy_configuration_text() {
        let text = "peers:\n- {peer-address: 192.0.2.1, peer-asn: 64501, my-asn: 64500}\naddress-pools:\n- {name: lan, protocol: layer2, addresses: [198.51.100.0/28]}\nbgp-communities: {edge: \"64500:1\"}\n";
        let out = migrate_output(text, "config.txt");
        assert!(out.success, "{out:?}");
        for kind in [
            "kind: BGPPeer",
            "kind: IPAddressPool",
            "kind: L2Advertisement",
            "kind: Community",
        ] {
            assert!(out.stdout.contains(kind), "{kind}: {}", out.stdout);
        }
        assert!(out.stdout.contains("namespace: ferrolb-system"));
    }

    #[test]
    fn migrate_says_on_stderr_which_aliases_it_renamed() {
        let input = "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: c, namespace: metallb-system}\nspec:\n  communities: [{name: no-export, value: \"65000:1\"}, {name: no-peer, value: \"65535:65284\"}]\n---\napiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv, namespace: metallb-system}\nspec: {communities: [no-export, no-peer]}\n";
        let out = migrate_output(input, "metallb.yaml");
        assert!(out.success);
        assert_eq!(
            out.stderr[0],
            "note: metallb.yaml: Community ferrolb-system/c: community alias no-export was renamed to metallb-no-export, because FerroLB reads no-export as the well-known community 65535:65281; BGPAdvertisement adv changed to match; change any other BGPAdvertisement in namespace ferrolb-system that names no-export to name metallb-no-export"
        );
        assert_eq!(out.stderr.len(), 2, "{:?}", out.stderr);
        assert!(
            out.stdout.contains("- metallb-no-export\n"),
            "{}",
            out.stdout
        );
    }
}
