//! The standalone inputs: the controller's directory. Manifests at its top
//! level give the configuration, Nodes, EndpointSlices and Secrets (the
//! Services there are the controller's input and are skipped); the assigned
//! IPs come from `status/services.yaml`, which the controller writes.
//! Changes are found by comparing each file's size and modification time,
//! checked as soon as the file system reports a change (inotify, through
//! `notify`) and at least every second.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use ferrolb_config::Problem;
use ferrolb_config::source::{load_dir_with_services, load_paths_with_services, manifest_files};

use crate::desired::LbService;
use ferrolb_config::validate::{valid_subset, validate};
use k8s_openapi::api::core::v1::Service;

use super::Snapshot;

/// How long a burst of file events may take before the directory is read.
const DEBOUNCE: std::time::Duration = std::time::Duration::from_millis(20);
/// The longest time between two checks, whatever the file system reports.
const FALLBACK: std::time::Duration = std::time::Duration::from_secs(1);

/// The directory as the daemon's [`super::Source`].
pub struct Source {
    dir: PathBuf,
    events: tokio::sync::mpsc::UnboundedReceiver<()>,
    _watcher: Option<notify::RecommendedWatcher>,
    /// A change was reported and not read yet (kept across a cancelled
    /// [`super::Source::next`]).
    pending: bool,
    /// When the next check is due whatever the file system reports.
    next_check: Option<tokio::time::Instant>,
    last: Option<Vec<(PathBuf, u64, Option<SystemTime>)>>,
    logged: Vec<String>,
}

impl Source {
    pub fn new(dir: &Path) -> Source {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let watcher = watch(dir, tx)
            .map_err(|e| {
                tracing::warn!(
                    "cannot watch {} for changes ({e}); checking it every second",
                    dir.display()
                )
            })
            .ok();
        Source {
            dir: dir.to_path_buf(),
            events,
            _watcher: watcher,
            pending: false,
            next_check: None,
            last: None,
            logged: Vec::new(),
        }
    }

    fn services_file(&self) -> PathBuf {
        self.dir.join("status").join("services.yaml")
    }

    fn fingerprint(&self) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
        let mut files = manifest_files(&self.dir).unwrap_or_default();
        files.push(self.services_file());
        files
            .into_iter()
            .map(|p| {
                let meta = std::fs::metadata(&p).ok();
                let len = meta.as_ref().map_or(u64::MAX, |m| m.len());
                let mtime = meta.and_then(|m| m.modified().ok());
                (p, len, mtime)
            })
            .collect()
    }

    /// A new snapshot when anything changed since the last one.
    pub fn poll(&mut self) -> Option<Snapshot> {
        let fp = self.fingerprint();
        if self.last.as_ref() == Some(&fp) {
            return None;
        }
        self.last = Some(fp);
        let snap = read(&self.dir, &self.services_file());
        let lines: Vec<String> = snap.problems.iter().map(ToString::to_string).collect();
        if lines != self.logged {
            for l in &lines {
                tracing::warn!("{l}");
            }
            self.logged = lines;
        }
        Some(snap)
    }
}

/// Watches the directory and its `status/` folder; pokes `tx` when a
/// manifest or `status/services.yaml` changes.
fn watch(
    dir: &Path,
    tx: tokio::sync::mpsc::UnboundedSender<()>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let status = dir.join("status");
    let _ = std::fs::create_dir_all(&status);
    let top = dir.to_path_buf();
    let services = status.join("services.yaml");
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let Ok(ev) = ev else { return };
        if ev.kind.is_access() {
            return;
        }
        let relevant = ev.paths.iter().any(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            *p == services
                || (p.parent() == Some(top.as_path())
                    && !name.starts_with('.')
                    && (name.ends_with(".yaml") || name.ends_with(".yml")))
        });
        if relevant {
            let _ = tx.send(());
        }
    })?;
    watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
    watcher.watch(&status, notify::RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

impl super::Source for Source {
    async fn next(&mut self) -> Option<Snapshot> {
        if self.last.is_some() {
            let deadline = *self
                .next_check
                .get_or_insert_with(|| tokio::time::Instant::now() + FALLBACK);
            if !self.pending {
                tokio::select! {
                    _ = self.events.recv() => self.pending = true,
                    _ = tokio::time::sleep_until(deadline) => {}
                }
            }
            if self.pending {
                tokio::time::sleep(DEBOUNCE).await;
                while self.events.try_recv().is_ok() {}
                self.pending = false;
            }
        }
        self.next_check = None;
        self.poll()
    }

    fn publish(&mut self, report: std::sync::Arc<super::status::Report>) {
        super::status::write(&self.dir, &report);
    }
}

/// Reads the directory and the controller's output.
pub fn read(dir: &Path, services_file: &Path) -> Snapshot {
    let mut snap = Snapshot::default();
    let mut skip = |_svc: Service, _pos, _problems: &mut Vec<Problem>| {};
    match load_dir_with_services(dir, &mut skip) {
        Ok(loaded) => {
            let mut problems = loaded.problems;
            let found = validate(&loaded.config);
            snap.config = valid_subset(&loaded.config, &found);
            problems.extend(found);
            snap.problems = problems;
        }
        Err(e) => snap.problems.push(Problem::in_source(
            ferrolb_config::Severity::Error,
            ferrolb_config::yaml::SourcePos {
                file: dir.display().to_string(),
                document: 0,
                line: 0,
            },
            e.to_string(),
        )),
    }
    if services_file.exists() {
        // One document at a time: only the compact view of each Service is kept.
        let mut services = Vec::new();
        let mut keep = |svc: Service, _pos, _problems: &mut Vec<Problem>| {
            services.extend(LbService::from_service(&svc));
        };
        match load_paths_with_services(&[services_file.to_path_buf()], &mut keep) {
            Ok(loaded) => {
                snap.services = services;
                snap.problems.extend(loaded.problems);
            }
            Err(e) => snap.problems.push(Problem::in_source(
                ferrolb_config::Severity::Error,
                ferrolb_config::yaml::SourcePos {
                    file: services_file.display().to_string(),
                    document: 0,
                    line: 0,
                },
                e.to_string(),
            )),
        }
    }
    snap
}
