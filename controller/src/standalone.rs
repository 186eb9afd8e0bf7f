//! Standalone mode: the allocator over a directory of Kubernetes-style YAML,
//! without a cluster. Results go to `DIR/status/`, written atomically:
//!
//! - `services.yaml`: one document per Service considered, with its metadata
//!   (including `ferrolb.io/ip-allocated-from-pool`), its spec as read, and
//!   `status.loadBalancer.ingress` (empty when pending). Read back on start as
//!   the previous state, so no Service changes IP across restarts.
//! - `events.yaml`: a list of `{type, reason, object, message}`.
//! - `pools.yaml`: each pool's status counts.
//! - `configuration.yaml`: the ConfigurationState (every configuration problem).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferrolb_config::Config;
use ferrolb_config::crd::{ConfigurationState, ConfigurationStateSpec, IPAddressPool};
use ferrolb_config::manifest::{Object, parse_stream};
use ferrolb_config::report::{configuration_state, pool_status};
use ferrolb_config::source::{DirWatch, Loaded, load_dir};
use ferrolb_config::validate::{valid_subset, validate};
use ferrolb_config::{Problem, Severity};
use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, Service, ServiceStatus};
use kube::api::ObjectMeta;
use serde_json::json;

use crate::allocator::{
    ALLOCATED_FROM_POOL_ANNOTATION, Allocator, LbService, OutcomeState, ServiceKey, ServiceOutcome,
    Snapshot, namespace_labels,
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
    events: Vec<EventRecord>,
    last_problems: Vec<Problem>,
}

/// Writes `contents` to `path` atomically (temporary file in the same folder, then rename).
pub fn write_atomic(path: &Path, contents: &str) -> Result<(), StandaloneError> {
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
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Previous results from `status/services.yaml`: status and pool annotation per Service.
fn previous_state(dir: &Path) -> BTreeMap<ServiceKey, Service> {
    let path = dir.join("status").join("services.yaml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return BTreeMap::new();
    };
    let parsed = parse_stream(&text, &path.display().to_string());
    for p in &parsed.problems {
        tracing::warn!("previous state: {p}");
    }
    parsed
        .objects
        .into_iter()
        .filter_map(|(o, _)| match o {
            Object::Service(s) => Some(*s),
            _ => None,
        })
        .map(|mut s| {
            if s.metadata.namespace.is_none() {
                s.metadata.namespace = Some("default".into());
            }
            (ServiceKey::of(&s), s)
        })
        .collect()
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
            events: Vec::new(),
            last_problems: Vec::new(),
        }
    }

    /// Loads the directory and runs one allocation round, then writes `status/`.
    pub fn run_once(&mut self) -> Result<Vec<ServiceOutcome>, StandaloneError> {
        let loaded = load_dir(&self.dir)?;
        self.apply(loaded)
    }

    /// Runs one allocation round over what was loaded, then writes `status/`.
    pub fn apply(&mut self, loaded: Loaded) -> Result<Vec<ServiceOutcome>, StandaloneError> {
        let Loaded {
            mut config,
            problems: mut all_problems,
            ..
        } = loaded;
        all_problems.extend(validate(&config));
        let valid = valid_subset(&config, &all_problems);
        self.record_problems(&all_problems);

        // Overlay the previous status (ours, from status/services.yaml) onto
        // the Services read as configuration, which carry none.
        let previous = previous_state(&self.dir);
        for svc in &mut config.services {
            if let Some(prev) = previous.get(&ServiceKey::of(svc)) {
                svc.status = prev.status.clone();
                let pool = prev
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ALLOCATED_FROM_POOL_ANNOTATION))
                    .cloned();
                if let Some(pool) = pool {
                    svc.metadata
                        .annotations
                        .get_or_insert_with(Default::default)
                        .insert(ALLOCATED_FROM_POOL_ANNOTATION.to_string(), pool);
                }
            }
        }

        self.allocator.set_pools(&valid.ip_address_pools);
        let ns_labels = namespace_labels(&config.namespaces);
        let services: Vec<LbService> = config.services.iter().map(LbService::from).collect();
        let snapshot = Snapshot::new(&services, &ns_labels);
        if !self.restored {
            let report = self.allocator.restore(snapshot);
            for (key, why) in &report.refused {
                tracing::warn!(service = %key, "previous IPs not kept: {why}");
            }
            self.restored = true;
        }
        let outcomes = self.allocator.reconcile(snapshot);
        for o in &outcomes {
            for e in &o.events {
                self.push_event(EventRecord {
                    type_: e.type_.as_str().to_string(),
                    reason: e.reason.to_string(),
                    object: o.service.to_string(),
                    message: e.message.clone(),
                });
            }
        }
        self.write_status(&config, &valid, &outcomes, &all_problems)?;
        Ok(outcomes)
    }

    fn push_event(&mut self, e: EventRecord) {
        self.events.push(e);
        if self.events.len() > MAX_EVENTS {
            let excess = self.events.len() - MAX_EVENTS;
            self.events.drain(..excess);
        }
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
        config: &Config,
        valid: &Config,
        outcomes: &[ServiceOutcome],
        problems: &[Problem],
    ) -> Result<(), StandaloneError> {
        let status_dir = self.dir.join("status");
        let by_key: BTreeMap<ServiceKey, &ServiceOutcome> =
            outcomes.iter().map(|o| (o.service.clone(), o)).collect();

        // services.yaml: Services of ours, in the order read.
        let mut services = String::new();
        for svc in &config.services {
            let key = ServiceKey::of(svc);
            let Some(outcome) = by_key.get(&key) else {
                continue;
            };
            if matches!(outcome.state, OutcomeState::Released(_)) {
                continue;
            }
            let mut annotations = svc.metadata.annotations.clone().unwrap_or_default();
            match &outcome.pool {
                Some(pool) => {
                    annotations.insert(ALLOCATED_FROM_POOL_ANNOTATION.to_string(), pool.clone());
                }
                None => {
                    annotations.remove(ALLOCATED_FROM_POOL_ANNOTATION);
                }
            }
            let out = Service {
                metadata: ObjectMeta {
                    name: svc.metadata.name.clone(),
                    namespace: svc.metadata.namespace.clone(),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    labels: svc.metadata.labels.clone(),
                    ..Default::default()
                },
                spec: svc.spec.clone(),
                status: Some(ServiceStatus {
                    load_balancer: Some(LoadBalancerStatus {
                        ingress: Some(
                            outcome
                                .ips
                                .iter()
                                .map(|ip| LoadBalancerIngress {
                                    ip: Some(ip.to_string()),
                                    ..Default::default()
                                })
                                .collect(),
                        ),
                    }),
                    ..Default::default()
                }),
            };
            let mut value = serde_json::to_value(&out).unwrap_or_default();
            value["apiVersion"] = json!("v1");
            value["kind"] = json!("Service");
            services.push_str("---\n");
            services.push_str(&yaml(&value));
        }
        write_atomic(&status_dir.join("services.yaml"), &services)?;

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
        let first = self.run_once()?;
        self.log_round(first);
        loop {
            if let Some(loaded) = watch.next_change(Duration::from_secs(3600)) {
                let outcomes = self.apply(loaded?)?;
                self.log_round(outcomes);
            }
        }
    }

    fn log_round(&self, outcomes: Vec<ServiceOutcome>) {
        let assigned = outcomes
            .iter()
            .filter(|o| o.state == OutcomeState::Assigned)
            .count();
        let pending = outcomes.iter().filter(|o| o.is_pending()).count();
        tracing::info!(assigned, pending, dir = %self.dir.display(), "allocation round done");
    }
}
