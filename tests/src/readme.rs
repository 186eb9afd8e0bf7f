//! The README's fenced blocks, run as the docs harness runs them: a test
//! of one section (e.g. `Explain: …`) runs its commands and compares what
//! they print with the README's output blocks.

use std::path::Path;
use std::process::Command;

use crate::control_plane::workspace_root;

/// A fenced block: its info string (`sh exit=4`, `text output`,
/// `yaml file=NAME`, …) and its text.
#[derive(Debug, Clone)]
pub struct Block {
    pub info: String,
    pub text: String,
}

/// The fenced blocks of the README's section `## TITLE…` (the first whose
/// title starts with `title`).
pub fn section_blocks(title: &str) -> Vec<Block> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).expect("README.md");
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with(title))
        .unwrap_or_else(|| panic!("README section `## {title}…`"));
    let mut blocks = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        let Some(info) = line.strip_prefix("```") else {
            continue;
        };
        let mut text = String::new();
        for l in lines.by_ref() {
            if l.starts_with("```") {
                break;
            }
            text.push_str(l);
            text.push('\n');
        }
        blocks.push(Block {
            info: info.to_string(),
            text,
        });
    }
    blocks
}

/// Runs the section's blocks in `work` (which the caller prepares, e.g.
/// with a link to `deploy/`), with `bin_dir` first on the PATH: a
/// `file=NAME` block is written there; each `sh` block not marked
/// `not-run=…` runs under `sh -e` (stderr into stdout) and must exit with
/// its `exit=N` (default 0); a `text output` block must be what the `sh`
/// block just before it printed. Returns how many blocks ran.
pub fn run_section(title: &str, work: &Path, bin_dir: &Path) -> usize {
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    let mut last: Option<(String, String)> = None;
    for b in &section_blocks(title) {
        let mut words = b.info.split_whitespace();
        let lang = words.next().unwrap_or_default();
        let attrs: Vec<&str> = words.collect();
        if lang == "text" && attrs.contains(&"output") {
            let (script, printed) = last.take().unwrap_or_else(|| {
                panic!("`{title}`: an output block without a run sh block before it")
            });
            assert_eq!(
                printed.trim_end(),
                b.text.trim_end(),
                "the README's output of `{}` is not what it prints",
                script.trim_end()
            );
            continue;
        }
        last = None;
        if let Some(name) = attrs.iter().find_map(|a| a.strip_prefix("file=")) {
            std::fs::write(work.join(name), &b.text).expect("writing a README file block");
        }
        if lang != "sh" || attrs.iter().any(|a| a.starts_with("not-run=")) {
            continue;
        }
        let want: i32 = attrs
            .iter()
            .find_map(|a| a.strip_prefix("exit="))
            .map_or(0, |v| v.parse().expect("exit=N"));
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("set -e\nexec 2>&1\n{}", b.text))
            .current_dir(work)
            .env("PATH", &path)
            .env_remove("RUST_LOG")
            .output()
            .expect("running sh");
        let code = out.status.code().unwrap_or(-1);
        let printed = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            code,
            want,
            "`{}` exited {code}:\n{printed}",
            b.text.trim_end()
        );
        last = Some((b.text.clone(), printed));
        ran += 1;
    }
    ran
}
