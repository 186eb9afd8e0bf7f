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

/// `ferrolb-controller migrate FILE`
pub fn migrate(file: &Path) -> ExitCode {
    let input = match read_input(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let migration = ferrolb_config::migrate::migrate(&input, &file.display().to_string());
    print!("{}", migration.to_yaml());
    let notes = migration.comment_count();
    if notes > 0 {
        eprintln!("{notes} notes written as comments in the output: read them before applying");
    }
    ExitCode::SUCCESS
}
