//! Standalone mode: the allocator over a directory of Kubernetes-style YAML,
//! without a cluster. Results go to `DIR/status/`, written atomically:
//!
//! - `services.yaml`: one document per Service considered, with its metadata
//!   (including `ferrolb.io/ip-allocated-from-pool`), its spec as read, and
//!   `status.loadBalancer.ingress` (empty when pending). Read back on start as
//!   the previous state, so no Service changes IP across restarts.
//!
//! Services are read one document at a time into their compact form (plus,
//! for LoadBalancer Services, their annotations, labels and spec as compact
//! JSON text for `services.yaml`); the previous state is read the same way
//! and `services.yaml` is written document by document.
//! - `events.yaml`: a list of `{type, reason, object, message}`.
//! - `pools.yaml`: each pool's status counts.
//! - `configuration.yaml`: the ConfigurationState (every configuration problem).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferrolb_config::Config;
use ferrolb_config::crd::{ConfigurationState, ConfigurationStateSpec, IPAddressPool};
use ferrolb_config::manifest::{Object, parse_read_document};
use ferrolb_config::problem::ObjectRef;
use ferrolb_config::report::{configuration_state, pool_status};
use ferrolb_config::source::{DirWatch, Loaded, load_dir_with_services};
use ferrolb_config::validate::{valid_subset, validate};
use ferrolb_config::yaml::{DocumentReader, SourcePos};
use ferrolb_config::{Problem, Severity};
use k8s_openapi::api::core::v1::Service;
use kube::api::ObjectMeta;
use serde_json::json;

use crate::allocator::{
    ALLOCATED_FROM_POOL_ANNOTATION, ALLOCATION_FAILED, Allocator, LbService, OutcomeState,
    ServiceKey, Snapshot, namespace_labels,
};

/// Events kept in `events.yaml` in long-running mode (oldest dropped first).
pub const MAX_EVENTS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum StandaloneError {
    #[error(transparent)]
    Source(#[from] ferrolb_config::source::SourceError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Keeps the last [`MAX_EVENTS`] events.
fn push_capped(events: &mut VecDeque<EventRecord>, e: EventRecord) {
    if events.len() >= MAX_EVENTS {
        events.pop_front();
    }
    events.push_back(e);
}

/// One recorded event, as written to `events.yaml`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventRecord {
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    /// `namespace/name` of the Service, or `Kind namespace/name` for configuration objects.
    pub object: String,
    pub message: String,
}

/// The standalone controller's state across reloads.
pub struct Standalone {
    dir: PathBuf,
    allocator: Allocator,
    restored: bool,
    events: VecDeque<EventRecord>,
    last_problems: Vec<Problem>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Services of ours holding IPs.
    pub assigned: usize,
    /// Services of ours without IPs.
    pub pending: usize,
}

/// One Service read from the directory: its compact form for the allocator,
/// and what `services.yaml` repeats of it.
pub struct Entry {
    svc: LbService,
    /// For LoadBalancer Services (no other is written): compact JSON of
    /// `{"annotations": …, "spec": …}` as read (the rest of the document
    /// comes from `svc`). Kept as text, not as objects: a few dozen bytes
    /// for a small Service.
    doc: Option<Box<str>>,
}

impl AsRef<LbService> for Entry {
    fn as_ref(&self) -> &LbService {
        &self.svc
    }
}

/// The Services of a directory, in the order read, each once (the first
/// definition of a namespace/name counts), findable by key.
#[derive(Default)]
pub struct Services {
    entries: Vec<Entry>,
    /// Positions in `entries`, sorted by key.
    by_key: Vec<u32>,
}

impl Services {
    /// Reads the directory: configuration into [`Loaded`], Services into
    /// their compact form one by one as the files are read.
    pub fn load(dir: &Path) -> Result<(Loaded, Services), StandaloneError> {
        let mut out = Services::default();
        // Where each Service was first defined (file number, document, line),
        // to name it if the Service is defined again.
        let mut first_at: HashMap<ServiceKey, (u32, u32, u32)> = HashMap::new();
        let mut files: Vec<String> = Vec::new();
        // Namespace names, kept once.
        let mut namespaces: HashSet<Arc<str>> = HashSet::new();
        let loaded = load_dir_with_services(dir, &mut |svc, pos, problems| {
            let mut key = ServiceKey::of(&svc);
            match namespaces.get(&*key.namespace) {
                Some(ns) => key.namespace = ns.clone(),
                None => {
                    namespaces.insert(key.namespace.clone());
                }
            }
            if let Some((file, document, line)) = first_at.get(&key) {
                let first = SourcePos {
                    file: files[*file as usize].clone(),
                    document: *document as usize,
                    line: *line as usize,
                };
                problems.push(
                    Problem::error(
                        ObjectRef::new("Service", Some(&key.namespace), &key.name),
                        "metadata.name",
                        format!(
                            "defined twice; the definition at {first} is used and this one ignored"
                        ),
                    )
                    .with_source(Some(pos)),
                );
                return;
            }
            if files.last() != Some(&pos.file) {
                files.push(pos.file.clone());
            }
            let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
            first_at.insert(
                key.clone(),
                (at(files.len() - 1), at(pos.document), at(pos.line)),
            );
            let mut entry = Entry::read(&svc);
            entry.svc.key = key;
            out.entries.push(entry);
        })?;
        drop(first_at);
        let mut by_key: Vec<u32> = (0..out.entries.len() as u32).collect();
        by_key.sort_unstable_by(|a, b| {
            out.entries[*a as usize]
                .svc
                .key
                .cmp(&out.entries[*b as usize].svc.key)
        });
        out.by_key = by_key;
        out.entries.shrink_to_fit();
        Ok((loaded, out))
    }

    /// The Services, in the order read (each lends its [`LbService`]).
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The Service with this key.
    pub fn get(&self, key: &ServiceKey) -> Option<&Entry> {
        let i = self
            .by_key
            .binary_search_by(|i| self.entries[*i as usize].svc.key.cmp(key))
            .ok()?;
        self.entries.get(self.by_key[i] as usize)
    }

    fn get_mut(&mut self, key: &ServiceKey) -> Option<&mut Entry> {
        let i = self
            .by_key
            .binary_search_by(|i| self.entries[*i as usize].svc.key.cmp(key))
            .ok()?;
        let at = self.by_key[i] as usize;
        self.entries.get_mut(at)
    }

    /// Overlays the previous results (`status/services.yaml`): each Service's
    /// status IPs and pool annotation, read one document at a time.
    pub fn overlay_previous(&mut self, dir: &Path) {
        let path = dir.join("status").join("services.yaml");
        let Ok(file) = std::fs::File::open(&path) else {
            return;
        };
        let name = path.display().to_string();
        // Pool names, kept once.
        let mut pools: HashSet<Arc<str>> = HashSet::new();
        for doc in DocumentReader::new(std::io::BufReader::new(file)) {
            let doc = match doc {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("previous state {name}: {e}");
                    return;
                }
            };
            let parsed = parse_read_document(&doc, &name);
            for p in &parsed.problems {
                tracing::warn!("previous state: {p}");
            }
            for (obj, _) in parsed.objects {
                let Object::Service(mut prev) = obj else {
                    continue;
                };
                if prev.metadata.namespace.is_none() {
                    prev.metadata.namespace = Some("default".into());
                }
                let Some(entry) = self.get_mut(&ServiceKey::of(&prev)) else {
                    continue;
                };
                // The previous status always; the pool annotation when the
                // previous run wrote one (else the file's own stays).
                if prev.annotation_missing(ALLOCATED_FROM_POOL_ANNOTATION)
                    && let Some(own) = entry.svc.pool_annotation()
                {
                    prev.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(ALLOCATED_FROM_POOL_ANNOTATION.to_string(), own.to_string());
                }
                entry.svc.set_status_from(&prev);
                entry.svc.share_pool_annotation(|p| match pools.get(&**p) {
                    Some(shared) => shared.clone(),
                    None => {
                        pools.insert(p.clone());
                        p.clone()
                    }
                });
            }
        }
    }
}

/// Whether an object lacks an annotation.
trait AnnotationMissing {
    fn annotation_missing(&self, name: &str) -> bool;
}

impl AnnotationMissing for Service {
    fn annotation_missing(&self, name: &str) -> bool {
        self.metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key(name))
    }
}

impl Entry {
    /// The Service as the allocator reads it.
    pub fn service(&self) -> &LbService {
        &self.svc
    }

    fn read(svc: &Service) -> Entry {
        let compact = LbService::from(svc);
        let lb = svc.spec.as_ref().and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let doc = lb.then(|| {
            let mut doc = serde_json::Map::new();
            if let Some(a) = svc.metadata.annotations.as_ref().filter(|a| !a.is_empty()) {
                doc.insert("annotations".into(), json!(a));
            }
            if let Some(spec) = &svc.spec {
                doc.insert("spec".into(), json!(spec));
            }
            if let Some(l) = svc.metadata.labels.as_ref().filter(|l| !l.is_empty()) {
                doc.insert("labels".into(), json!(l));
            }
            serde_json::Value::Object(doc).to_string().into_boxed_str()
        });
        Entry { svc: compact, doc }
    }

    /// The `services.yaml` document: metadata (name, namespace, annotations
    /// with the pool annotation set or removed, labels), the spec as read and
    /// `status.loadBalancer.ingress`.
    fn document(&self, ips: &[IpAddr], pool: Option<&str>) -> serde_json::Value {
        let mut doc: serde_json::Map<String, serde_json::Value> = self
            .doc
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .unwrap_or_default();
        let mut annotations = match doc.remove("annotations") {
            Some(serde_json::Value::Object(a)) => a,
            _ => serde_json::Map::new(),
        };
        match pool {
            Some(p) => {
                annotations.insert(ALLOCATED_FROM_POOL_ANNOTATION.into(), json!(p));
            }
            None => {
                annotations.remove(ALLOCATED_FROM_POOL_ANNOTATION);
            }
        }
        let mut metadata = serde_json::Map::new();
        if !annotations.is_empty() {
            metadata.insert("annotations".into(), annotations.into());
        }
        if let Some(labels) = doc.remove("labels") {
            metadata.insert("labels".into(), labels);
        }
        metadata.insert("name".into(), json!(&*self.svc.key.name));
        metadata.insert("namespace".into(), json!(&*self.svc.key.namespace));
        let ingress: Vec<serde_json::Value> =
            ips.iter().map(|ip| json!({"ip": ip.to_string()})).collect();
        let mut out = serde_json::Map::new();
        out.insert("metadata".into(), metadata.into());
        if let Some(spec) = doc.remove("spec") {
            out.insert("spec".into(), spec);
        }
        out.insert(
            "status".into(),
            json!({"loadBalancer": {"ingress": ingress}}),
        );
        out.insert("apiVersion".into(), json!("v1"));
        out.insert("kind".into(), json!("Service"));
        out.into()
    }
}

/// Writes `contents` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), StandaloneError> {
    write_atomic_with(path, |w| w.write_all(contents.as_bytes()))
}

/// Writes a file atomically, its contents produced piece by piece by `fill`
/// into a buffered writer (temporary file in the same folder, then rename).
pub fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), StandaloneError> {
    let err = |source| StandaloneError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        std::process::id()
    ));
    let file = std::fs::File::create(&tmp).map_err(err)?;
    let mut out = std::io::BufWriter::new(file);
    fill(&mut out).map_err(err)?;
    out.flush().map_err(err)?;
    drop(out);
    std::fs::rename(&tmp, path).map_err(err)
}

fn yaml(value: &impl serde::Serialize) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot serialize: {e}\n"))
}

impl Standalone {
    pub fn new(dir: &Path, lb_class: Option<&str>) -> Standalone {
        Standalone {
            dir: dir.to_path_buf(),
            allocator: match lb_class {
                Some(c) => Allocator::with_load_balancer_class(c),
                None => Allocator::new(),
            },
            restored: false,
            events: VecDeque::new(),
            last_problems: Vec::new(),
        }
    }

    /// Loads the directory and runs one allocation round, then writes `status/`.
    pub fn run_once(&mut self) -> Result<Round, StandaloneError> {
        let (loaded, mut services) = Services::load(&self.dir)?;
        // Overlay the previous status (ours, from status/services.yaml) onto
        // the Services read as configuration, which carry none.
        services.overlay_previous(&self.dir);
        self.apply(loaded, &services)
    }

    /// Runs one allocation round over what was loaded, then writes `status/`.
    fn apply(&mut self, loaded: Loaded, services: &Services) -> Result<Round, StandaloneError> {
        let Loaded {
            config,
            problems: mut all_problems,
            ..
        } = loaded;
        all_problems.extend(validate(&config));
        let valid = valid_subset(&config, &all_problems);
        self.record_problems(&all_problems);

        self.allocator.set_pools(&valid.ip_address_pools);
        let ns_labels = namespace_labels(&config.namespaces);
        let snapshot = Snapshot::new(&services.entries, &ns_labels);
        if !self.restored {
            let report = self.allocator.restore(snapshot);
            for (key, why) in &report.refused {
                tracing::warn!(service = %key, "previous IPs not kept: {why}");
            }
            self.restored = true;
        }
        let mut round = Round::default();
        let mut failed = Vec::new();
        self.allocator.reconcile_each(snapshot, |o| {
            if o.events.iter().any(|e| e.reason == ALLOCATION_FAILED) {
                failed.push(o.service.clone());
            }
            match o.state {
                OutcomeState::Assigned => round.assigned += 1,
                OutcomeState::Pending(_) => round.pending += 1,
                OutcomeState::Released(_) => {}
            }
            for e in o.events {
                push_capped(
                    &mut self.events,
                    EventRecord {
                        type_: e.type_.as_str().to_string(),
                        reason: e.reason.to_string(),
                        object: o.service.to_string(),
                        message: e.message,
                    },
                );
            }
        });
        for key in &failed {
            if let Some(entry) = services.get(key) {
                crate::cluster::log_pool_verdicts(&self.allocator, &entry.svc, &ns_labels);
            }
        }
        self.write_status(services, &valid, &all_problems)?;
        Ok(round)
    }

    fn push_event(&mut self, e: EventRecord) {
        push_capped(&mut self.events, e);
    }

    /// Configuration problems become Warning events once (not on every reload).
    fn record_problems(&mut self, problems: &[Problem]) {
        let new: Vec<Problem> = problems
            .iter()
            .filter(|p| !self.last_problems.contains(p))
            .cloned()
            .collect();
        for p in &new {
            tracing::warn!("{p}");
            self.push_event(EventRecord {
                type_: "Warning".into(),
                reason: if p.severity == Severity::Error {
                    "InvalidConfiguration".into()
                } else {
                    "ConfigurationWarning".into()
                },
                object: p
                    .object
                    .as_ref()
                    .map(|o| o.to_string())
                    .or_else(|| p.source.as_ref().map(|s| s.file.clone()))
                    .unwrap_or_default(),
                message: p.to_string(),
            });
        }
        self.last_problems = problems.to_vec();
    }

    fn write_status(
        &self,
        services: &Services,
        valid: &Config,
        problems: &[Problem],
    ) -> Result<(), StandaloneError> {
        let status_dir = self.dir.join("status");

        // services.yaml: Services of ours, in the order read, one document
        // at a time straight to the file.
        write_atomic_with(&status_dir.join("services.yaml"), |out| {
            for entry in &services.entries {
                if !self.allocator.handles(&entry.svc) {
                    continue;
                }
                let (ips, pool) = self
                    .allocator
                    .assignment(&entry.svc.key)
                    .unwrap_or((&[], ""));
                let pool = (!pool.is_empty()).then_some(pool);
                out.write_all(b"---\n")?;
                out.write_all(yaml(&entry.document(ips, pool)).as_bytes())?;
            }
            Ok(())
        })?;
        write_atomic(&status_dir.join("events.yaml"), &yaml(&self.events))?;

        // pools.yaml: the status of every valid pool.
        let mut pools = String::new();
        for pool in &valid.ip_address_pools {
            pools.push_str("---\n");
            pools.push_str(&yaml(&self.pool_document(pool)));
        }
        write_atomic(&status_dir.join("pools.yaml"), &pools)?;

        let state = ConfigurationState {
            metadata: ObjectMeta {
                name: Some("controller".into()),
                namespace: Some(ferrolb_config::DEFAULT_NAMESPACE.into()),
                ..Default::default()
            },
            spec: ConfigurationStateSpec {
                component: "controller".into(),
                node: None,
            },
            status: Some(configuration_state(problems)),
        };
        write_atomic(&status_dir.join("configuration.yaml"), &yaml(&state))?;
        Ok(())
    }

    fn pool_document(&self, pool: &IPAddressPool) -> serde_json::Value {
        let name = pool.metadata.name.clone().unwrap_or_default();
        let (v4, v6) = self.allocator.pool_usage(&name);
        json!({
            "apiVersion": "ferrolb.io/v1beta1",
            "kind": "IPAddressPool",
            "metadata": {"name": name, "namespace": pool.metadata.namespace},
            "status": pool_status(pool, v4, v6),
        })
    }

    /// Runs until the process is stopped: allocates, then re-allocates on every
    /// change to the directory (picked up within a second).
    pub fn run_forever(&mut self) -> Result<(), StandaloneError> {
        let watch = DirWatch::new(&self.dir)?;
        loop {
            let round = self.run_once()?;
            tracing::info!(
                assigned = round.assigned,
                pending = round.pending,
                dir = %self.dir.display(),
                "allocation round done"
            );
            while !watch.wait_change(Duration::from_secs(3600)) {}
        }
    }
}
