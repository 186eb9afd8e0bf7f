//! The standalone configuration source: files and directories of
//! Kubernetes-style YAML, read once or watched for changes.
//!
//! A directory's `*.yaml` and `*.yml` files at its top level are read in name
//! order; sub-directories are not. The `status/` folder inside it is output,
//! written by FerroLB's binaries, and is never read as configuration.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use notify::{RecursiveMode, Watcher};

use k8s_openapi::api::core::v1::Service;

use crate::config::Config;
use crate::manifest::{Object, parse_read_document};
use crate::problem::{Problem, Severity};
use crate::yaml::{DocumentReader, SourcePos};

/// A configuration read from files, and every problem found reading it.
#[derive(Debug, Default)]
pub struct Loaded {
    pub config: Config,
    pub problems: Vec<Problem>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
}

fn is_manifest(path: &Path) -> bool {
    path.is_file()
        && matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        )
        && !path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
}

/// The manifest files of a directory (top level only, sorted by name).
pub fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| is_manifest(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Reads files and directories (see the module docs for what a directory holds).
/// A path that cannot be read is an error; problems inside files are reported in
/// [`Loaded::problems`] and the rest still loads.
pub fn load_paths(paths: &[PathBuf]) -> Result<Loaded, SourceError> {
    load(paths, None)
}

/// What [`load_paths_with_services`] does with each Service it reads: the
/// Service (its namespace defaulted), where it was read, and the list of
/// problems to add to.
pub type ServiceSink<'a> = &'a mut dyn FnMut(Service, SourcePos, &mut Vec<Problem>);

/// [`load_paths`], except that each Service is handed to `on_service` as it
/// is read, and not kept in [`Loaded::config`] (nor in its sources). Files
/// are read one document at a time, so a directory of 100,000 Services is
/// never held whole: the caller keeps what it needs of each.
pub fn load_paths_with_services(
    paths: &[PathBuf],
    on_service: ServiceSink<'_>,
) -> Result<Loaded, SourceError> {
    load(paths, Some(on_service))
}

/// Whether a file is UTF-8 text, read in pieces.
fn is_utf8(path: &Path) -> std::io::Result<bool> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry = 0usize;
    loop {
        let n = file.read(&mut buf[carry..])?;
        if n == 0 {
            return Ok(carry == 0);
        }
        let filled = carry + n;
        match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => carry = 0,
            // A character cut at the end of the piece: keep its bytes.
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                buf.copy_within(valid..filled, 0);
                carry = filled - valid;
            }
            Err(_) => return Ok(false),
        }
    }
}

fn load(paths: &[PathBuf], mut on_service: Option<ServiceSink<'_>>) -> Result<Loaded, SourceError> {
    let mut files = Vec::new();
    for p in paths {
        let meta = std::fs::metadata(p).map_err(|source| SourceError::Io {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            files.extend(manifest_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    let mut loaded = Loaded::default();
    for f in files {
        let name = f.display().to_string();
        let io_err = |source| SourceError::Io {
            path: f.clone(),
            source,
        };
        match is_utf8(&f) {
            Ok(true) => {}
            Ok(false) => {
                loaded.problems.push(Problem::in_source(
                    Severity::Error,
                    SourcePos {
                        file: name,
                        document: 0,
                        line: 0,
                    },
                    "file is not UTF-8 text",
                ));
                continue;
            }
            // A file removed between listing and reading is simply gone.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(io_err(source)),
        }
        let file = match std::fs::File::open(&f) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(source) => return Err(io_err(source)),
        };
        for doc in DocumentReader::new(std::io::BufReader::new(file)) {
            let doc = doc.map_err(io_err)?;
            let mut parsed = parse_read_document(&doc, &name);
            drop(doc);
            loaded.problems.append(&mut parsed.problems);
            for (mut obj, pos) in parsed.objects {
                obj.default_namespace();
                match (obj, on_service.as_mut()) {
                    (Object::Service(svc), Some(sink)) => sink(*svc, pos, &mut loaded.problems),
                    (other, _) => {
                        loaded
                            .config
                            .add_objects(vec![(other, pos)], &mut loaded.problems);
                    }
                }
            }
        }
        loaded.files.push(f);
    }
    Ok(loaded)
}

/// Reads one directory.
pub fn load_dir(dir: &Path) -> Result<Loaded, SourceError> {
    load_paths(&[dir.to_path_buf()])
}

/// Reads one directory, handing each Service to `on_service` (see
/// [`load_paths_with_services`]).
pub fn load_dir_with_services(
    dir: &Path,
    on_service: ServiceSink<'_>,
) -> Result<Loaded, SourceError> {
    load_paths_with_services(&[dir.to_path_buf()], on_service)
}

/// Watches a directory and reloads it when a manifest in it changes.
pub struct DirWatch {
    dir: PathBuf,
    events: mpsc::Receiver<notify::Result<notify::Event>>,
    _watcher: notify::RecommendedWatcher,
}

/// How long to wait for more events after one arrives, so an editor's burst of
/// writes and renames leads to one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

impl DirWatch {
    pub fn new(dir: &Path) -> Result<DirWatch, SourceError> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        })
        .map_err(|source| SourceError::Watch {
            path: dir.to_path_buf(),
            source,
        })?;
        watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| SourceError::Watch {
                path: dir.to_path_buf(),
                source,
            })?;
        Ok(DirWatch {
            dir: dir.to_path_buf(),
            events: rx,
            _watcher: watcher,
        })
    }

    fn relevant(&self, ev: &notify::Event) -> bool {
        if ev.kind.is_access() {
            return false;
        }
        ev.paths.iter().any(|p| {
            let top_level = p.parent() == Some(self.dir.as_path()) || p.parent().is_none();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            top_level
                && !name.starts_with('.')
                && (name.ends_with(".yaml") || name.ends_with(".yml"))
        })
    }

    /// Waits up to `timeout` for a change to a manifest, then (after [`DEBOUNCE`])
    /// reloads the directory. None when nothing changed in time.
    pub fn next_change(&self, timeout: Duration) -> Option<Result<Loaded, SourceError>> {
        self.wait_change(timeout).then(|| load_dir(&self.dir))
    }

    /// Waits up to `timeout` for a change to a manifest, and then for the
    /// burst of events to settle ([`DEBOUNCE`]); false when nothing changed
    /// in time. The caller reloads as it likes.
    pub fn wait_change(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match self.events.recv_timeout(left) {
                Ok(Ok(ev)) if self.relevant(&ev) => break,
                Ok(Ok(_)) => continue,
                Ok(Err(e)) => {
                    tracing::warn!(dir = %self.dir.display(), error = %e, "file watch error; reloading to be safe");
                    break;
                }
                Err(_) => return false,
            }
        }
        // Drain the burst.
        let settle = Instant::now() + DEBOUNCE;
        while let Some(left) = settle.checked_duration_since(Instant::now()) {
            if self.events.recv_timeout(left).is_err() {
                break;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const POOL: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p1\nspec:\n  addresses: [192.0.2.0/28]\n";

    #[test]
    fn loads_top_level_manifests_only() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.yaml"), POOL).unwrap();
        fs::write(
            dir.path().join("b.yml"),
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n",
        )
        .unwrap();
        fs::write(dir.path().join("notes.txt"), "not yaml").unwrap();
        fs::create_dir(dir.path().join("status")).unwrap();
        fs::write(dir.path().join("status/out.yaml"), POOL.replace("p1", "p2")).unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        assert_eq!(loaded.files.len(), 2);
        assert_eq!(loaded.config.ip_address_pools.len(), 1);
        assert_eq!(loaded.config.services.len(), 1);
        assert_eq!(
            loaded.config.services[0].metadata.namespace.as_deref(),
            Some("default")
        );
        assert_eq!(
            loaded.config.ip_address_pools[0]
                .metadata
                .namespace
                .as_deref(),
            Some("ferrolb-system")
        );
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    }

    #[test]
    fn bad_documents_are_reported_and_the_rest_loads() {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "{POOL}---\nkind: [unclosed\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n---\n{}",
            POOL.replace("p1", "p3")
        );
        fs::write(dir.path().join("mixed.yaml"), text).unwrap();
        let loaded = load_dir(dir.path()).unwrap();
        let names: Vec<_> = loaded
            .config
            .ip_address_pools
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["p1", "p3"]);
        assert_eq!(loaded.problems.len(), 2, "{:#?}", loaded.problems);
        let yaml_err = &loaded.problems[0];
        assert_eq!(yaml_err.severity, Severity::Error);
        let src = yaml_err.source.as_ref().unwrap();
        assert_eq!(src.document, 2);
        assert_eq!(src.line, 8);
        assert!(yaml_err.message.contains("not valid YAML"), "{yaml_err}");
        let unknown = &loaded.problems[1];
        assert_eq!(unknown.severity, Severity::Warning);
        assert!(unknown.message.contains("Deployment d"), "{unknown}");
        assert_eq!(unknown.source.as_ref().unwrap().document, 3);
    }

    #[test]
    fn services_go_to_the_sink_one_by_one_and_files_not_utf8_are_skipped_whole() {
        let dir = tempfile::tempdir().unwrap();
        let svc = |name: &str, ns: &str| {
            format!(
                "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{ns}spec:\n  type: LoadBalancer\n"
            )
        };
        fs::write(
            dir.path().join("a.yaml"),
            format!(
                "{POOL}{}{}",
                svc("web", ""),
                svc("db", "  namespace: shop\n")
            ),
        )
        .unwrap();
        let mut bad = svc("lost", "").into_bytes();
        bad.extend_from_slice(b"# \xff\n");
        fs::write(dir.path().join("b.yaml"), bad).unwrap();
        let mut seen = Vec::new();
        let loaded = load_dir_with_services(dir.path(), &mut |s, pos, _| {
            seen.push((
                s.metadata.namespace.clone().unwrap(),
                s.metadata.name.clone().unwrap(),
                pos.document,
                pos.line,
            ));
        })
        .unwrap();
        assert_eq!(
            seen,
            [
                ("default".to_string(), "web".to_string(), 2, 8),
                ("shop".to_string(), "db".to_string(), 3, 15),
            ]
        );
        assert!(loaded.config.services.is_empty());
        assert_eq!(loaded.config.ip_address_pools.len(), 1);
        assert_eq!(loaded.problems.len(), 1, "{:?}", loaded.problems);
        assert!(loaded.problems[0].to_string().contains("not UTF-8"));
        assert!(loaded.problems[0].to_string().contains("b.yaml"));
        // Without a sink, Services are configuration as before.
        assert_eq!(load_dir(dir.path()).unwrap().config.services.len(), 2);
    }

    #[test]
    fn missing_path_is_an_error() {
        let err = load_paths(&[PathBuf::from("/nonexistent/ferrolb")]).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ferrolb"));
    }

    #[test]
    fn watch_picks_up_edits_and_ignores_status() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("a.yaml"), POOL).unwrap();
        fs::create_dir(dir.path().join("status")).unwrap();
        let watch = DirWatch::new(dir.path()).unwrap();
        // Output written under status/ is not a configuration change.
        fs::write(dir.path().join("status/x.yaml"), "x: 1\n").unwrap();
        assert!(watch.next_change(Duration::from_millis(300)).is_none());
        let started = Instant::now();
        fs::write(dir.path().join("b.yaml"), POOL.replace("p1", "p2")).unwrap();
        let loaded = watch
            .next_change(Duration::from_secs(5))
            .expect("change seen")
            .unwrap();
        assert_eq!(loaded.config.ip_address_pools.len(), 2);
        // Reported, not asserted: timings belong in benchmarks.
        eprintln!("reload after {:?}", started.elapsed());
        fs::remove_file(dir.path().join("a.yaml")).unwrap();
        let loaded = watch
            .next_change(Duration::from_secs(5))
            .expect("removal seen")
            .unwrap();
        assert_eq!(loaded.config.ip_address_pools.len(), 1);
    }
}
