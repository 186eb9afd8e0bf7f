//! The README, the guides (docs/guides/*.md) and the READMEs of
//! deploy/containerlab and deploy/container:
//! every command and manifest they show is run or checked here, so they
//! cannot drift from the binaries, the chart and the schemas. Also: their
//! relative links lead to files and headings that exist, and the README's
//! table of Service annotations is the controller's list of keys.
//!
//! Each fenced block is marked with its info string (GitHub highlights by
//! the first word and ignores the rest):
//!
//! - ` ```yaml `: a manifest (a document with `kind:`), checked against the
//!   Kubernetes and CRD schemas like every file in deploy/, and with
//!   `ferrolb-controller validate` (no error) when it holds FerroLB kinds; or
//!   Helm values (no `kind:`), rendered with the chart and checked the same way.
//! - ` ```yaml metallb file=NAME `: MetalLB configuration, the input of a
//!   `ferrolb-controller migrate NAME` command of the guide (which runs).
//! - ` ```yaml kubeadm-config `: a kubeadm configuration file; it must set
//!   kube-proxy's IPVS mode with `strictARP: true`.
//! - ` ```yaml k3s-config `: K3s's /etc/rancher/k3s/config.yaml; it must
//!   disable ServiceLB.
//! - `file=NAME` on a yaml block: the block is also written to NAME in the
//!   guide's work directory, where its commands run.
//! - ` ```sh `: run in order by `sh -e` in the guide's work directory (which
//!   holds this repository's deploy/, config/, docs/ and tests/ and the named
//!   blocks), with the built ferrolb-controller, ferrolb-speaker and
//!   kubectl-ferrolb first on PATH, the first two named by
//!   `FERROLB_CONTROLLER_BIN`/`FERROLB_SPEAKER_BIN` (the demo's `run.sh`
//!   runs them instead of building); the block must exit 0,
//!   or N with `exit=N`.
//! - ` ```sh not-run=WHY `: not run here (WHY is a key of [`NOT_RUN`]): each
//!   command is listed with the reason, every file it names must exist (in
//!   the repository, as a named block, or written by an earlier command),
//!   `helm install`/`helm upgrade` is rendered with `helm template` instead,
//!   and a `ferrolb-controller`/`ferrolb-speaker` command is parsed by the
//!   binary (`COMMAND --help` fails on a subcommand, flag or value it does
//!   not take).
//! - ` ```text output ` or ` ```yaml output `: what the ` ```sh ` block just
//!   before it prints (stdout and stderr), compared line by line.
//!
//! Other blocks (` ```text `, ` ```toml `, ...) are prose.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrolb_e2e::speaker::{controller_binary, plugin_binary, speaker_binary};

use super::{Tools, documents, root};

/// Why a ` ```sh not-run=KEY ` block is not run here.
pub const NOT_RUN: &[(&str, &str)] = &[
    (
        "cluster",
        "needs a Kubernetes cluster (kubectl and helm talk to its API server)",
    ),
    (
        "host",
        "installs or reconfigures the machine it runs on, as root",
    ),
    (
        "containerlab",
        "needs containerlab and a container engine, neither installed here",
    ),
    (
        "images",
        "needs a container engine to build or move images, none installed here",
    ),
    ("node", "runs on a cluster node or a client of its network"),
    (
        "network",
        "as root, answers ARP/NDP on this machine's own network (tests/tests/l2.rs runs l2-probe in network namespaces)",
    ),
    (
        "router",
        "needs a BGP router to peer with (tests/tests/bgp_*.rs run bgp-probe against GoBGP, FRR, BIRD and ExaBGP in network namespaces)",
    ),
    (
        "daemon",
        "runs until stopped (controller/tests/standalone.rs and tests/tests/speaker.rs run both daemons in standalone mode, the speakers as root in network namespaces)",
    ),
    (
        "demo",
        "as root it is the full demo (network namespaces, Debian packages, a release build): tests/tests/demo_full.rs runs it and compares what it prints with the README",
    ),
    (
        "explain-cluster",
        "needs a cluster: tests/tests/explain_lab.rs runs these commands as written against a v1.20 API server with the real daemons, as a user bound only to ferrolb-view",
    ),
    (
        "test-command",
        "is the test command itself, which runs this test",
    ),
    (
        "build",
        "a release build of the workspace; the tests run their own build of the same binaries",
    ),
    (
        "kustomize",
        "needs the kustomize binary (kubectl builds kustomizations but does not edit them), not installed here",
    ),
];

/// Tags a yaml block may carry besides `file=NAME`.
const YAML_TAGS: [&str; 4] = ["metallb", "kubeadm-config", "k3s-config", "output"];

/// A fenced block of a guide.
#[derive(Clone, Debug)]
pub struct Block {
    pub guide: PathBuf,
    /// Line of the opening fence (1-based).
    pub line: usize,
    pub lang: String,
    pub tags: BTreeSet<String>,
    pub attrs: BTreeMap<String, String>,
    pub text: String,
}

impl Block {
    pub fn at(&self) -> String {
        let guide = self.guide.strip_prefix(root()).unwrap_or(&self.guide);
        format!("{}:{}", guide.display(), self.line)
    }

    pub fn has(&self, tag: &str) -> bool {
        self.tags.contains(tag)
    }

    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }

    /// A yaml block that is a Kubernetes manifest or Helm values (not MetalLB
    /// input, not a kubeadm file).
    pub fn is_checked_yaml(&self) -> bool {
        self.lang == "yaml"
            && !self.has("metallb")
            && !self.has("kubeadm-config")
            && !self.has("k3s-config")
    }

    pub fn is_manifest(&self) -> bool {
        self.text.lines().any(|l| l.starts_with("kind:"))
    }
}

/// The documents whose blocks are checked, in a fixed order: the README,
/// the guides, the READMEs of deploy/containerlab and deploy/container.
pub fn guides() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("docs/guides"))
        .expect("docs/guides")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    files.sort();
    files.insert(0, root().join("README.md"));
    files.push(root().join("deploy/containerlab/README.md"));
    files.push(root().join("deploy/container/README.md"));
    files
}

/// The fenced blocks of a Markdown file (a fence may be indented, as in a list).
pub fn blocks(path: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let mut words = info.split_whitespace();
                    let lang = words.next().unwrap_or("").to_string();
                    let mut tags = BTreeSet::new();
                    let mut attrs = BTreeMap::new();
                    for w in words {
                        match w.split_once('=') {
                            Some((k, v)) => {
                                attrs.insert(k.to_string(), v.to_string());
                            }
                            None => {
                                tags.insert(w.to_string());
                            }
                        }
                    }
                    let block = Block {
                        guide: path.to_path_buf(),
                        line: i + 1,
                        lang,
                        tags,
                        attrs,
                        text: String::new(),
                    };
                    open = Some((block, indent));
                }
            }
            Some((block, fence_indent)) => {
                if trimmed == "```" {
                    let (block, _) = open.take().unwrap();
                    out.push(block);
                } else {
                    let cut = line
                        .char_indices()
                        .take_while(|(n, c)| *n < *fence_indent && *c == ' ')
                        .count();
                    block.text.push_str(&line[cut..]);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "{}: a code block is not closed",
        path.display()
    );
    for b in &out {
        check_markers(b);
    }
    out
}

/// Refuses a marker the test does not know: a typo must not skip a check.
fn check_markers(b: &Block) {
    match b.lang.as_str() {
        "yaml" => {
            for t in &b.tags {
                assert!(
                    YAML_TAGS.contains(&t.as_str()),
                    "{}: unknown tag `{t}` on a yaml block (known: {YAML_TAGS:?}, file=NAME)",
                    b.at()
                );
            }
            for k in b.attrs.keys() {
                assert!(k == "file", "{}: unknown `{k}=` on a yaml block", b.at());
            }
            assert!(
                !b.has("metallb") || b.attr("file").is_some(),
                "{}: MetalLB input needs file=NAME so that a migrate command can name it",
                b.at()
            );
        }
        "sh" => {
            assert!(
                b.tags.is_empty(),
                "{}: unknown tags {:?} on a sh block",
                b.at(),
                b.tags
            );
            for (k, v) in &b.attrs {
                match k.as_str() {
                    "not-run" => assert!(
                        NOT_RUN.iter().any(|(key, _)| key == v),
                        "{}: not-run={v} is none of {:?}",
                        b.at(),
                        NOT_RUN.iter().map(|(k, _)| *k).collect::<Vec<_>>()
                    ),
                    "exit" => {
                        v.parse::<i32>()
                            .unwrap_or_else(|_| panic!("{}: exit={v} is not a number", b.at()));
                    }
                    _ => panic!("{}: unknown `{k}=` on a sh block", b.at()),
                }
            }
        }
        "text" => {
            for t in &b.tags {
                assert!(
                    t == "output",
                    "{}: unknown tag `{t}` on a text block",
                    b.at()
                );
            }
        }
        _ => {}
    }
}

/// A work directory for one guide: deploy/, config/, docs/ and tests/ of this
/// repository (symbolic links) and every `file=NAME` block.
pub fn work_dir(guide_blocks: &[Block]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("ferrolb-guide-")
        .tempdir()
        .unwrap();
    for d in ["deploy", "config", "docs", "tests"] {
        std::os::unix::fs::symlink(root().join(d), dir.path().join(d)).unwrap();
    }
    for b in guide_blocks {
        if let Some(name) = b.attr("file") {
            let rel = Path::new(name);
            assert!(
                rel.is_relative()
                    && rel
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                "{}: file={name} must be a plain relative path",
                b.at()
            );
            let path = dir.path().join(rel);
            assert!(
                !path.exists(),
                "{}: file={name} twice, or it shadows the repository",
                b.at()
            );
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).unwrap();
            }
            std::fs::write(&path, &b.text).unwrap();
        }
    }
    dir
}

/// The logical commands of a shell block: continuation lines joined,
/// comments and blank lines dropped.
pub fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => {
                current.push_str(part);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whitespace-separated words of a command up to a `#` comment, quotes
/// removed (enough for the file names and flags the checks look at).
pub fn words(command: &str) -> Vec<String> {
    let mut out = Vec::new();
    for w in command.split_whitespace() {
        if w.starts_with('#') {
            break;
        }
        out.push(w.trim_matches(|c| c == '"' || c == '\'').to_string());
    }
    out
}

/// Files a command reads: the values of -f/-k/--filename/--kustomize/
/// --values/--config (and containerlab's -t/--topo) and words that are paths
/// of this repository, apart from the files it writes.
fn files_named(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut i = 0;
    let mut takes_file = vec![
        "-f",
        "-k",
        "--filename",
        "--kustomize",
        "--values",
        "--config",
    ];
    if words.first().is_some_and(|w| w == "containerlab") {
        takes_file.extend(["-t", "--topo"]);
    }
    let written = files_written(words);
    while i < words.len() {
        let w = &words[i];
        if takes_file.contains(&w.as_str()) && i + 1 < words.len() {
            out.push(words[i + 1].clone());
            i += 2;
            continue;
        }
        if let Some((flag, value)) = w.split_once('=')
            && takes_file.contains(&flag)
        {
            out.push(value.to_string());
        } else if ["deploy/", "config/", "docs/", "tests/"]
            .iter()
            .any(|p| w.starts_with(p))
        {
            out.push(w.clone());
        }
        i += 1;
    }
    out.retain(|f| {
        f != "-"
            && !f.contains("://")
            && !f.starts_with('$')
            && !f.starts_with('/')
            && !written.contains(f)
    });
    out
}

/// Files a command writes (`> FILE`, `-o FILE` of a save, `--output FILE`).
fn files_written(words: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if let Some(target) = w.strip_prefix('>')
            && !target.is_empty()
        {
            out.push(target.to_string());
        } else if (w == ">" || w == ">>" || w == "-o" || w == "--output") && i + 1 < words.len() {
            out.push(words[i + 1].clone());
        }
    }
    out
}

/// `helm install|upgrade ...` as the `helm template ...` arguments that
/// render the same objects.
pub fn helm_template_args(words: &[String]) -> Option<Vec<String>> {
    if words.first().map(String::as_str) != Some("helm") {
        return None;
    }
    let verb = words.get(1)?;
    if verb != "install" && verb != "upgrade" {
        return None;
    }
    let mut args = vec!["template".to_string()];
    for w in &words[2..] {
        if ["--install", "--create-namespace", "--wait", "--atomic"].contains(&w.as_str()) {
            continue;
        }
        args.push(w.clone());
    }
    Some(args)
}

/// What a not-run command would change of the checks: the helm renders it
/// implies (arguments of `helm template`, run in the work directory).
pub fn not_run_helm_renders(guide_blocks: &[Block]) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for b in guide_blocks {
        if b.lang == "sh" && b.attr("not-run").is_some() {
            for c in commands(&b.text) {
                if let Some(args) = helm_template_args(&words(&c)) {
                    out.push((format!("{}: {c}", b.at()), args));
                }
            }
        }
    }
    out
}

fn normalize(text: &str) -> Vec<String> {
    let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    while lines.first().is_some_and(String::is_empty) {
        lines.remove(0);
    }
    lines
}

/// Runs a ```sh block in `dir`: (exit code, stdout and stderr interleaved).
fn run_block(dir: &Path, text: &str) -> (i32, String) {
    let (controller, speaker, plugin) = (controller_binary(), speaker_binary(), plugin_binary());
    let mut path =
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).collect::<Vec<_>>();
    path.insert(0, plugin.parent().unwrap().to_path_buf());
    path.insert(0, speaker.parent().unwrap().to_path_buf());
    path.insert(0, controller.parent().unwrap().to_path_buf());
    let script = format!("set -e\nexec 2>&1\n{text}");
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env("FERROLB_CONTROLLER_BIN", &controller)
        .env("FERROLB_SPEAKER_BIN", &speaker)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A not-run command of one of FerroLB's binaries, up to the first shell
/// operator, parsed by that binary: `COMMAND --help` parses every
/// subcommand, flag and value, then prints the help instead of running.
/// None for another command; else the arguments checked, or what the binary
/// refused.
fn parse_with_help(dir: &Path, words: &[String]) -> Option<Result<String, String>> {
    let binary = match words.first()?.as_str() {
        "ferrolb-controller" => controller_binary(),
        "ferrolb-speaker" => speaker_binary(),
        _ => return None,
    };
    let args: Vec<&String> = words[1..]
        .iter()
        .take_while(|w| {
            !(w.contains(['|', '>', '<', ';']) || w.as_str() == "&&" || w.as_str() == "&")
        })
        .collect();
    let shown = format!(
        "{} {} --help",
        words[0],
        args.iter()
            .map(|a| a.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = Command::new(&binary)
        .args(&args)
        .arg("--help")
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    Some(if out.status.success() {
        Ok(shown)
    } else {
        Err(format!(
            "`{shown}` fails:\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ))
    })
}

/// What checking one guide found: commands run, commands not run (with why),
/// not-run commands whose arguments the binary parsed, and problems.
#[derive(Default)]
pub struct Report {
    pub ran: Vec<String>,
    pub not_run: Vec<String>,
    pub parsed: Vec<String>,
    pub problems: Vec<String>,
}

/// Runs a guide's ```sh blocks, compares their outputs, checks the files its
/// not-run commands name, its MetalLB inputs and kubeadm files, and runs
/// `ferrolb-controller validate` on its FerroLB manifests.
pub fn check_guide(guide: &Path) -> Report {
    let all = blocks(guide);
    let dir = work_dir(&all);
    let mut report = Report::default();
    let mut written: BTreeSet<String> = BTreeSet::new();
    let mut last_output: Option<(String, String)> = None; // (where, output)
    let mut migrated: BTreeSet<String> = BTreeSet::new();
    for b in &all {
        if b.has("output") {
            match last_output.take() {
                None => report.problems.push(format!(
                    "{}: an output block with no ```sh block run just before it",
                    b.at()
                )),
                Some((from, got)) => {
                    if normalize(&got) != normalize(&b.text) {
                        report.problems.push(format!(
                            "{}: the output shown is not what {from} prints now.\n--- shown ---\n{}\n--- printed ---\n{}",
                            b.at(),
                            b.text.trim_end(),
                            got.trim_end()
                        ));
                    }
                }
            }
            continue;
        }
        if b.lang == "sh" {
            last_output = None;
            match b.attr("not-run") {
                Some(why) => {
                    let reason = NOT_RUN.iter().find(|(k, _)| *k == why).unwrap().1;
                    for c in commands(&b.text) {
                        let w = words(&c);
                        for f in files_named(&w) {
                            let exists = dir.path().join(&f).exists() || written.contains(&f);
                            if !exists {
                                report.problems.push(format!(
                                    "{}: `{c}` names {f}, which neither the repository, a file= block nor an earlier command provides",
                                    b.at()
                                ));
                            }
                        }
                        match parse_with_help(dir.path(), &w) {
                            None => {}
                            Some(Ok(shown)) => report.parsed.push(format!("{}: {shown}", b.at())),
                            Some(Err(e)) => report.problems.push(format!(
                                "{}: `{c}` is not run, and its binary refuses its arguments: {e}",
                                b.at()
                            )),
                        }
                        written.extend(files_written(&w));
                        report.not_run.push(format!("{} ({reason}): {c}", b.at()));
                    }
                }
                None => {
                    let want: i32 = b.attr("exit").map_or(0, |v| v.parse().unwrap());
                    let (code, out) = run_block(dir.path(), &b.text);
                    if code != want {
                        report.problems.push(format!(
                            "{}: exited {code}, expected {want}:\n{}\n--- output ---\n{out}",
                            b.at(),
                            b.text.trim_end()
                        ));
                    }
                    for c in commands(&b.text) {
                        let w = words(&c);
                        if let Some(i) = w.iter().position(|x| x == "migrate") {
                            migrated.extend(w[i + 1..].iter().cloned());
                        }
                        report.ran.push(format!("{}: {c}", b.at()));
                    }
                    last_output = Some((b.at(), out));
                }
            }
            continue;
        }
        last_output = None;
        if b.lang != "yaml" {
            continue;
        }
        let checked = if b.has("kubeadm-config") {
            check_kubeadm_config(&b.text)
        } else if b.has("k3s-config") {
            check_k3s_config(&b.text)
        } else {
            Ok(())
        };
        if let Err(e) = checked {
            report.problems.push(format!("{}: {e}", b.at()));
        }
    }
    // MetalLB inputs are converted by a migrate command that ran.
    for b in all.iter().filter(|b| b.has("metallb")) {
        let name = b.attr("file").unwrap();
        if !migrated.iter().any(|m| m == name) {
            report.problems.push(format!(
                "{}: MetalLB input {name} is not converted by a `ferrolb-controller migrate {name}` that runs",
                b.at()
            ));
        }
    }
    // FerroLB manifests pass `ferrolb-controller validate` without an error.
    for (i, b) in all
        .iter()
        .filter(|b| b.is_checked_yaml() && b.is_manifest() && b.text.contains("ferrolb.io/"))
        .enumerate()
    {
        let file = dir.path().join(format!(".manifest-{i}.yaml"));
        std::fs::write(&file, &b.text).unwrap();
        let out = Command::new(controller_binary())
            .arg("validate")
            .arg(&file)
            .output()
            .unwrap();
        if !out.status.success() {
            report.problems.push(format!(
                "{}: `ferrolb-controller validate` refuses it:\n{}{}",
                b.at(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    report
}

/// A kubeadm configuration: kubeadm's and kube-proxy's kinds only, and
/// kube-proxy in IPVS mode with strictARP.
fn check_kubeadm_config(text: &str) -> Result<(), String> {
    let docs = documents(text);
    let mut proxy = None;
    for d in &docs {
        let api = d["apiVersion"].as_str().unwrap_or("");
        let kind = d["kind"].as_str().unwrap_or("");
        match (api, kind) {
            (
                "kubeadm.k8s.io/v1beta3" | "kubeadm.k8s.io/v1beta4",
                "InitConfiguration" | "ClusterConfiguration" | "JoinConfiguration",
            ) => {}
            ("kubeproxy.config.k8s.io/v1alpha1", "KubeProxyConfiguration") => proxy = Some(d),
            _ => return Err(format!("{api} {kind} is not a kubeadm or kube-proxy kind")),
        }
    }
    let proxy = proxy.ok_or("no KubeProxyConfiguration")?;
    if proxy["mode"] != "ipvs" {
        return Err(format!(
            "KubeProxyConfiguration mode is {}, not ipvs",
            proxy["mode"]
        ));
    }
    if proxy["ipvs"]["strictARP"] != true {
        return Err("KubeProxyConfiguration ipvs.strictARP is not true".into());
    }
    Ok(())
}

/// K3s's configuration file: a mapping whose `disable` names servicelb.
fn check_k3s_config(text: &str) -> Result<(), String> {
    let docs = documents(text);
    let [config] = docs.as_slice() else {
        return Err("one YAML document expected".into());
    };
    let disabled = match &config["disable"] {
        serde_json::Value::String(s) => vec![s.clone()],
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => vec![],
    };
    if disabled.iter().any(|d| d == "servicelb") {
        Ok(())
    } else {
        Err("`disable` does not name servicelb".into())
    }
}

/// The guides' manifests for the schema checks, written into `dir`:
/// yaml blocks as they are, Helm values rendered with the chart, and what
/// each not-run `helm install` renders.
pub fn guide_documents(t: &Tools, dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for guide in guides() {
        let all = blocks(&guide);
        let stem = guide
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .replace(['/', '.'], "-");
        for b in all.iter().filter(|b| b.is_checked_yaml()) {
            let path = dir.join(format!("{stem}-{}.yaml", b.line));
            if b.is_manifest() {
                std::fs::write(&path, &b.text).unwrap();
            } else {
                let values = dir.join(format!("{stem}-{}-values.yaml", b.line));
                std::fs::write(&values, &b.text).unwrap();
                std::fs::write(&path, super::helm_template(t, Some(&values), false)).unwrap();
            }
            files.push(path);
        }
        let renders = not_run_helm_renders(&all);
        if !renders.is_empty() {
            let work = work_dir(&all);
            for (n, (what, args)) in renders.into_iter().enumerate() {
                let out = Command::new(&t.helm)
                    .args(&args)
                    .current_dir(work.path())
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{what}: `helm {}` fails:\n{}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                );
                let path = dir.join(format!("{stem}-helm-{n}.yaml"));
                std::fs::write(&path, &out.stdout).unwrap();
                println!("{what}: rendered with `helm {}`", args.join(" "));
                files.push(path);
            }
        }
    }
    files
}

// ---------------------------------------------------------------------
// Links and the Service annotations.

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_`
/// dropped, spaces as `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The lines of a Markdown file outside fenced blocks.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// Relative links (`[text](path#anchor)`) of a Markdown file that lead
/// nowhere: the file does not exist, or a Markdown file has no such heading.
pub fn broken_links(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap();
    let at = file
        .strip_prefix(root())
        .unwrap_or(file)
        .display()
        .to_string();
    let mut out = Vec::new();
    for (n, line) in prose_lines(&text).into_iter().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let Some(end) = rest.find(')') else { break };
            let target = &rest[..end];
            rest = &rest[end..];
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = match target.split_once('#') {
                Some((p, f)) => (p, Some(f)),
                None => (target, None),
            };
            let dest = if path.is_empty() {
                file.to_path_buf()
            } else {
                file.parent().unwrap().join(path)
            };
            if !dest.exists() {
                out.push(format!(
                    "{at}: a link to {target}, which does not exist (prose line {})",
                    n + 1
                ));
                continue;
            }
            if let Some(fragment) = fragment
                && dest.extension().is_some_and(|e| e == "md")
            {
                let headings: Vec<String> = prose_lines(&std::fs::read_to_string(&dest).unwrap())
                    .into_iter()
                    .filter_map(|l| l.strip_prefix('#'))
                    .map(|h| anchor(h.trim_start_matches('#')))
                    .collect();
                if !headings.iter().any(|h| h == fragment) {
                    out.push(format!(
                        "{at}: a link to {target}: {} has no heading with anchor #{fragment}",
                        dest.strip_prefix(root()).unwrap_or(&dest).display()
                    ));
                }
            }
        }
    }
    out
}

/// The prefixes of the Service annotations the controller reads.
const ANNOTATION_PREFIXES: [&str; 3] = ["ferrolb.io/", "metallb.io/", "metallb.universe.tf/"];

/// The Service annotations the controller declares, as its source
/// (controller/src/allocator/service.rs) spells them: each constant named
/// `…_ANNOTATION` or `…_ANNOTATIONS` with its keys, in its order (the order
/// of precedence).
pub fn controller_annotations() -> Vec<(String, Vec<String>)> {
    let source = root().join("controller/src/allocator/service.rs");
    let text = std::fs::read_to_string(&source).unwrap();
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        let Some(decl) = line.trim_start().strip_prefix("pub const ") else {
            continue;
        };
        let name = decl.split(':').next().unwrap().trim().to_string();
        if !(name.ends_with("_ANNOTATION") || name.ends_with("_ANNOTATIONS")) {
            continue;
        }
        // The value: from `=` to the `;` that ends it (the type may hold one).
        let mut value = line.split_once('=').expect("`= value`").1.to_string();
        while !value.contains(';') {
            value.push_str(lines.next().expect("a constant ends with `;`"));
        }
        let keys: Vec<String> = value
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect();
        out.push((name, keys));
    }
    assert!(
        out.len() >= 4,
        "{}: expected the annotation constants, found {out:?}",
        source.display()
    );
    out
}

/// The rows of the tables in section `heading` of a Markdown file that name
/// annotations: the annotation keys of each row, in order.
fn annotation_rows(file: &Path, heading: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(file).unwrap();
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("{}: no section `{heading}`", file.display()));
    let section = &text[start + heading.len() + 2..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|row| {
            row.split('`')
                .skip(1)
                .step_by(2)
                .filter(|code| {
                    ANNOTATION_PREFIXES.iter().any(|p| {
                        code.strip_prefix(p).is_some_and(|k| {
                            !k.is_empty()
                                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                        })
                    })
                })
                .map(str::to_string)
                .collect::<Vec<String>>()
        })
        .filter(|keys| !keys.is_empty())
        .collect()
}

/// The annotation tables against the controller's constants: the README's
/// `## Service annotations` has one row per constant, naming exactly its
/// keys in their order of precedence; the MetalLB guide's `## Annotations
/// that keep working` one such row per constant with a MetalLB spelling.
pub fn annotation_table_problems() -> Vec<String> {
    let constants = controller_annotations();
    let mut problems = Vec::new();
    for (file, heading, metallb_only) in [
        ("README.md", "## Service annotations", false),
        (
            "docs/guides/migrating-from-metallb.md",
            "## Annotations that keep working",
            true,
        ),
    ] {
        let rows = annotation_rows(&root().join(file), heading);
        let wanted: Vec<&(String, Vec<String>)> = constants
            .iter()
            .filter(|(_, keys)| !metallb_only || keys.iter().any(|k| k.starts_with("metallb")))
            .collect();
        for (name, keys) in &wanted {
            if !rows.contains(keys) {
                problems.push(format!(
                    "{file}, {heading}: no table row names exactly {keys:?} in this order ({name} in controller/src/allocator/service.rs)"
                ));
            }
        }
        for row in &rows {
            if !wanted.iter().any(|(_, keys)| keys == row) {
                problems.push(format!(
                    "{file}, {heading}: the row naming {row:?} matches no annotation constant of controller/src/allocator/service.rs: {constants:?}"
                ));
            }
        }
    }
    problems
}
