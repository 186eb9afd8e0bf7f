//! Kubernetes mode: watches Services, Namespaces and FerroLB's configuration
//! through kube-runtime reflectors, and — while this replica holds the leader
//! Lease — runs the allocator over the whole snapshot and writes back what
//! changed: Service status and annotation, Events, pool status and the
//! controller's ConfigurationState.
//!
//! Allocation is global (new Services are ordered by creationTimestamp across
//! all namespaces, and a pool edit can move several Services), so each round
//! takes the whole snapshot rather than one object: any watch event triggers a
//! round (debounced), and a periodic round heals drift.
//!
//! Services are many (a cluster may hold 100,000), so they are not kept as
//! objects: the watch reduces each to an [`LbService`] as it arrives, in a
//! [`store::ServiceCache`], and a round shares them by `Arc` instead of
//! copying them. The other kinds are few and kept whole by reflectors.

pub mod lease;
pub mod metrics;
pub mod store;
pub mod write;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use ferrolb_config::Config;
use ferrolb_config::addr::AddrCount;
use ferrolb_config::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use ferrolb_config::report::{configuration_state, pool_capacity, pool_status};
use ferrolb_config::validate::{valid_subset, validate};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use store::ServiceCache;
use tokio::sync::{Notify, watch};

use crate::allocator::{
    Allocator, LbService, NamespaceLabels, OutcomeState, ServiceOutcome, Snapshot, namespace_labels,
};
use crate::leader::{Elector, Timing};
use metrics::{Health, Metrics, PoolLabels, ReasonLabels};

/// How the controller runs in a cluster.
#[derive(Debug, Clone)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of FerroLB's configuration objects and of the leader Lease.
    pub namespace: String,
    pub lb_class: Option<String>,
    pub metrics_addr: SocketAddr,
    /// This replica's identity in the Lease (usually the pod name).
    pub identity: String,
    pub lease_name: String,
    pub timing: Timing,
    /// Rounds also run this often without any change, to heal drift.
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("cannot configure the Kubernetes client: {0}")]
    Client(String),
    #[error("metrics server on {addr}: {source}")]
    Metrics {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A client from `--kubeconfig`, or the in-cluster / default configuration.
pub async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, ClusterError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                ClusterError::Kubeconfig {
                    path: path.clone(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ClusterError::Kubeconfig {
                    path: path.clone(),
                    source,
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ClusterError::Client(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| ClusterError::Client(e.to_string()))
}

/// Starts a reflector for `api`; every change pokes `notify`.
fn reflect<K>(api: Api<K>, notify: Arc<Notify>) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    reflect_with(api, notify, |_| {})
}

/// [`reflect`], with `strip` applied to each object before it is stored
/// (to keep only what the caller reads).
pub fn reflect_with<K>(api: Api<K>, notify: Arc<Notify>, strip: fn(&mut K)) -> Store<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let kind = K::kind(&()).to_string();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(strip),
    );
    tokio::spawn(follow(stream, notify, kind));
    reader
}

/// Drives a reflector's stream; every change pokes `notify`.
pub async fn follow<S, T>(stream: S, notify: Arc<Notify>, kind: String)
where
    S: futures::Stream<Item = Result<watcher::Event<T>, watcher::Error>>,
{
    let mut stream = std::pin::pin!(stream);
    loop {
        match stream.try_next().await {
            // A change, a deletion (a deleted pool moves its Services), or
            // the end of a re-list (the store is replaced then; objects
            // deleted while disconnected are gone). Not every listed object.
            Ok(Some(
                watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone,
            )) => notify.notify_one(),
            Ok(Some(watcher::Event::Init | watcher::Event::InitApply(_))) => {}
            Ok(None) => break,
            Err(e) => {
                // The watcher re-lists with backoff; nothing is lost.
                tracing::warn!(kind, error = %e, "watch error");
            }
        }
    }
}

fn snapshot<K>(store: &Store<K>) -> Vec<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.state().iter().map(|a| (**a).clone()).collect()
}

/// Reflectors over FerroLB's configuration kinds in one namespace (what
/// the controller and the speaker both watch).
pub struct ConfigStores {
    pools: Store<IPAddressPool>,
    l2: Store<L2Advertisement>,
    bgp: Store<BGPAdvertisement>,
    peers: Store<BGPPeer>,
    bfd: Store<BFDProfile>,
    communities: Store<Community>,
}

/// Drops `metadata.managedFields`, which nothing here reads, before an
/// object is stored.
pub fn strip_managed_fields<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

impl ConfigStores {
    /// Starts the reflectors over `namespace`; every change pokes `notify`.
    pub fn start(client: &Client, namespace: &str, notify: &Arc<Notify>) -> ConfigStores {
        ConfigStores {
            pools: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
            l2: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
            bgp: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
            peers: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
            bfd: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
            communities: reflect_with(
                Api::namespaced(client.clone(), namespace),
                notify.clone(),
                strip_managed_fields,
            ),
        }
    }

    /// Waits for the first list of every kind.
    pub async fn ready(&self) {
        let _ = self.pools.wait_until_ready().await;
        let _ = self.l2.wait_until_ready().await;
        let _ = self.bgp.wait_until_ready().await;
        let _ = self.peers.wait_until_ready().await;
        let _ = self.bfd.wait_until_ready().await;
        let _ = self.communities.wait_until_ready().await;
    }

    /// The configuration objects as they stand (the other kinds empty).
    pub fn config(&self) -> Config {
        Config {
            ip_address_pools: snapshot(&self.pools),
            l2_advertisements: snapshot(&self.l2),
            bgp_advertisements: snapshot(&self.bgp),
            bgp_peers: snapshot(&self.peers),
            bfd_profiles: snapshot(&self.bfd),
            communities: snapshot(&self.communities),
            ..Default::default()
        }
    }
}

struct Stores {
    services: Arc<ServiceCache>,
    namespaces: Store<Namespace>,
    config: ConfigStores,
}

impl Stores {
    async fn ready(&self) {
        self.services.wait_until_ready().await;
        let _ = self.namespaces.wait_until_ready().await;
        self.config.ready().await;
    }

    fn config(&self) -> Config {
        Config {
            // Services are not configuration: the allocator reads them from
            // the compact cache.
            namespaces: snapshot(&self.namespaces),
            ..self.config.config()
        }
    }
}

/// Writes each configuration object's `Valid` condition when it changed, and a
/// Warning Event for each problem not reported before.
async fn report_objects(
    client: &Client,
    recorder: &write::EventPublisher,
    config: &Config,
    problems: &[ferrolb_config::Problem],
    reported: &mut BTreeSet<String>,
) {
    async fn one<K>(
        client: &Client,
        recorder: &write::EventPublisher,
        obj: &K,
        problems: &[ferrolb_config::Problem],
        reported: &mut BTreeSet<String>,
    ) where
        K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let oref = ferrolb_config::config::object_ref(obj);
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::now(),
        );
        let cond =
            ferrolb_config::report::valid_condition(&oref, problems, obj.meta().generation, now);
        if !write::same_condition(write::current_valid_condition(obj).as_ref(), &cond)
            && let Err(e) = write::write_valid_condition(client, obj, &cond).await
        {
            tracing::warn!(object = %oref, error = %e, "cannot write the Valid condition");
        }
        let reference = write::object_reference(obj);
        for p in problems.iter().filter(|p| p.object.as_ref() == Some(&oref)) {
            let text = p.to_string();
            if reported.insert(text.clone())
                && let Err(e) = write::record_config_problem(recorder, &reference, &text).await
            {
                tracing::warn!(object = %oref, error = %e, "cannot record Event");
            }
        }
    }
    for o in &config.ip_address_pools {
        one(client, recorder, o, problems, reported).await;
    }
    for o in &config.l2_advertisements {
        one(client, recorder, o, problems, reported).await;
    }
    for o in &config.bgp_advertisements {
        one(client, recorder, o, problems, reported).await;
    }
    for o in &config.bgp_peers {
        one(client, recorder, o, problems, reported).await;
    }
    for o in &config.bfd_profiles {
        one(client, recorder, o, problems, reported).await;
    }
    for o in &config.communities {
        one(client, recorder, o, problems, reported).await;
    }
    // Forget problems that are gone, so they are reported again if they return.
    let current: BTreeSet<String> = problems.iter().map(|p| p.to_string()).collect();
    reported.retain(|t| current.contains(t));
}

/// Outcomes waiting to be written, at most (see [`run`]).
const WRITE_QUEUE: usize = 256;

/// Service writes in flight during a round, and as many Event creations
/// beside them. The v1.20 API server's defaults allow 200 mutating requests
/// in flight; measured in docs/BENCHMARKS.md ("Controller first round").
pub const WRITES_IN_FLIGHT: usize = 32;

/// For lab measurements only: overrides [`WRITES_IN_FLIGHT`] (1 to 200).
const WRITES_IN_FLIGHT_ENV: &str = "FERROLB_LAB_WRITES_IN_FLIGHT";

/// [`WRITES_IN_FLIGHT`], or the lab's override when it is set and valid.
fn writes_in_flight() -> usize {
    match std::env::var(WRITES_IN_FLIGHT_ENV) {
        Ok(v) if !v.is_empty() => match v.parse::<usize>() {
            Ok(n) if (1..=200).contains(&n) => n,
            _ => {
                tracing::warn!(
                    "{WRITES_IN_FLIGHT_ENV}={v:?} is not a number from 1 to 200; using {WRITES_IN_FLIGHT}"
                );
                WRITES_IN_FLIGHT
            }
        },
        _ => WRITES_IN_FLIGHT,
    }
}

/// One allocation round as the cluster loop runs it: after a start (or after
/// losing the lead) `restoring` claims every Service's status IPs first
/// (rule 8); then every Service is reconciled and each outcome handed to
/// `each` as it is decided. Public so that measurements run exactly this.
pub fn round(
    alloc: &mut Allocator,
    services: &[Arc<LbService>],
    namespaces: &NamespaceLabels,
    restoring: bool,
    each: impl FnMut(ServiceOutcome),
) {
    let snap = Snapshot::new(services, namespaces);
    if restoring {
        let report = alloc.restore(snap);
        tracing::info!(
            claimed = report.claimed,
            refused = report.refused.len(),
            "restored assignments from Service status"
        );
        for (key, why) in &report.refused {
            tracing::warn!(service = %key, "previous IPs not kept: {why}");
        }
    }
    alloc.reconcile_each(snap, each);
}

/// Logs (at debug level: `RUST_LOG=ferrolb_controller=debug`), for a
/// Service that just became pending (or pending for a new reason), what
/// every pool would give it or why it gives nothing: the detail behind its
/// `AllocationFailed` Event, as `explain service` shows it.
pub fn log_pool_verdicts(alloc: &Allocator, svc: &LbService, namespaces: &NamespaceLabels) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for v in alloc.pool_verdicts(svc, namespaces.get(&*svc.key.namespace)) {
        tracing::debug!(service = %svc.key, "pending: {v}");
    }
}

/// Counts allocations and failures for the metrics.
fn count_events(metrics: &Metrics, events: &[crate::allocator::Event]) {
    for e in events {
        match e.reason {
            crate::allocator::IP_ALLOCATED => {
                metrics.allocations.inc();
            }
            crate::allocator::ALLOCATION_FAILED => {
                metrics
                    .allocation_failures
                    .get_or_create(&ReasonLabels {
                        reason: e.reason.into(),
                    })
                    .inc();
            }
            _ => {}
        }
    }
}

/// Runs the controller until the process is stopped.
pub async fn run(opts: Options) -> Result<(), ClusterError> {
    let client = client(opts.kubeconfig.as_ref()).await?;
    let metrics = Arc::new(Metrics::default());
    let health = Arc::new(Health::default());
    let listener_check = tokio::net::TcpListener::bind(opts.metrics_addr)
        .await
        .map_err(|source| ClusterError::Metrics {
            addr: opts.metrics_addr,
            source,
        })?;
    drop(listener_check);
    tokio::spawn(metrics::serve(
        opts.metrics_addr,
        metrics.clone(),
        health.clone(),
    ));

    let notify = Arc::new(Notify::new());
    let ns = opts.namespace.as_str();
    let services = Arc::new(ServiceCache::default());
    {
        let (cache, notify) = (services.clone(), notify.clone());
        let watch = watcher(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff();
        tokio::spawn(async move { cache.follow(watch, &notify).await });
    }
    let stores = Stores {
        services,
        namespaces: reflect(Api::<Namespace>::all(client.clone()), notify.clone()),
        config: ConfigStores::start(&client, ns, &notify),
    };
    stores.ready().await;
    health.ready.store(true, Ordering::Relaxed);
    tracing::info!("caches synced");

    let (leader_tx, mut leader_rx) = watch::channel(false);
    let elector = Elector::new(opts.identity.clone(), opts.timing);
    tokio::spawn(lease::run(
        Api::<Lease>::namespaced(client.clone(), ns),
        opts.lease_name.clone(),
        elector,
        leader_tx,
    ));

    let recorder = write::EventPublisher::new(client.clone(), write::MANAGER, &opts.identity);
    let in_flight = writes_in_flight();
    let mut allocator: Option<Allocator> = None;
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut last_state = None;
    loop {
        tokio::select! {
            _ = notify.notified() => {
                // Let a burst of events settle into one round.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = leader_rx.changed() => {}
            _ = tokio::time::sleep(opts.resync) => {}
        }
        let leading = *leader_rx.borrow();
        metrics.leader.set(leading as i64);
        if !leading {
            // A replica that lost the Lease forgets its state; it restores from
            // the Services' status when it leads again.
            allocator = None;
            last_state = None;
            continue;
        }
        let started = Instant::now();
        let config = stores.config();
        let problems = validate(&config);
        let valid = valid_subset(&config, &problems);
        let mut alloc = allocator.take().unwrap_or_else(|| match &opts.lb_class {
            Some(c) => Allocator::with_load_balancer_class(c.clone()),
            None => Allocator::new(),
        });
        alloc.set_pools(&valid.ip_address_pools);
        let ns_labels = namespace_labels(&config.namespaces);
        // Pointers to the cached Services, not copies.
        let services = stores.services.snapshot();
        let restoring = last_state.is_none();

        // The allocator decides on a blocking thread and hands each outcome
        // with something to write over a short queue; the writers below drain
        // it. So the first round after a start, which may write every Service,
        // never holds more than the queue's worth of outcomes.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<ServiceOutcome>(WRITE_QUEUE);
        let counters = metrics.clone();
        let decide = tokio::task::spawn_blocking(move || {
            let mut failed = std::collections::HashSet::new();
            round(&mut alloc, &services, &ns_labels, restoring, |o| {
                count_events(&counters, &o.events);
                if o.events
                    .iter()
                    .any(|e| e.reason == crate::allocator::ALLOCATION_FAILED)
                {
                    failed.insert(o.service.clone());
                }
                if o.changed || !o.events.is_empty() {
                    // Fails only when the loop is gone.
                    let _ = tx.blocking_send(o);
                }
            });
            for svc in services.iter().filter(|s| failed.contains(&s.key)) {
                log_pool_verdicts(&alloc, svc, &ns_labels);
            }
            alloc
        });

        // Services: write what changed, `in_flight` at a time (one status
        // PATCH each). Their Events go to a second queue with as many
        // creations in flight, so that an Event never holds a Service's
        // write back; the round still waits for both. An Event is sent
        // after its Service's write was tried, as before.
        let (event_tx, mut event_rx) =
            tokio::sync::mpsc::channel::<(Arc<LbService>, ServiceOutcome)>(WRITE_QUEUE);
        let writes_failed = std::sync::atomic::AtomicUsize::new(0);
        let events_failed = std::sync::atomic::AtomicUsize::new(0);
        let services_written = async {
            let event_tx = event_tx;
            futures::stream::poll_fn(|cx| rx.poll_recv(cx))
                .map(|o| {
                    let client = client.clone();
                    let svc = stores.services.get(&o.service);
                    let (event_tx, writes_failed) = (&event_tx, &writes_failed);
                    async move {
                        if o.changed
                            && !matches!(
                                o.state,
                                OutcomeState::Released(crate::allocator::ReleaseCause::Deleted)
                            )
                            && let Err(e) = write::write_service(&client, &o).await
                        {
                            writes_failed.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(service = %o.service, error = %e, "cannot write Service");
                        }
                        if let Some(svc) = svc
                            && !o.events.is_empty()
                        {
                            // Fails only when the receiver is gone, which
                            // it is not before this stream ends.
                            let _ = event_tx.send((svc, o)).await;
                        }
                    }
                })
                .buffer_unordered(in_flight)
                .for_each(|()| async {})
                .await;
            started.elapsed()
        };
        let events_recorded = futures::stream::poll_fn(|cx| event_rx.poll_recv(cx))
            .map(|(svc, o)| {
                let (recorder, events_failed) = (&recorder, &events_failed);
                async move {
                    if let Err(e) = write::record_events(recorder, &svc, &o.events).await {
                        events_failed.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(service = %o.service, error = %e, "cannot record Event");
                    }
                }
            })
            .buffer_unordered(in_flight)
            .for_each(|()| async {});
        let (statuses_after, ()) = futures::join!(services_written, events_recorded);
        let alloc = match decide.await {
            Ok(alloc) => allocator.insert(alloc),
            Err(e) => {
                // A bug, not an input problem: start over from the Services'
                // status next round rather than stop allocating.
                tracing::error!(error = %e, "allocation round failed; restoring next round");
                last_state = None;
                continue;
            }
        };

        // Pools: status counts and metrics.
        for pool in &valid.ip_address_pools {
            let name = pool.metadata.name.clone().unwrap_or_default();
            let (v4, v6) = alloc.pool_usage(&name);
            let status = pool_status(pool, v4, v6);
            if let Err(e) = write::write_pool_status(&client, pool, &status).await {
                tracing::warn!(pool = name, error = %e, "cannot write pool status");
            }
            let (cap4, cap6) = pool_capacity(pool);
            let gauge = |c: AddrCount| {
                c.to_u64()
                    .map_or(i64::MAX, |v| v.min(i64::MAX as u64) as i64)
            };
            for (family, total, used) in [("IPv4", cap4, AddrCount::from(v4)), ("IPv6", cap6, v6)] {
                let labels = PoolLabels {
                    pool: name.clone(),
                    family: family.into(),
                };
                metrics
                    .pool_addresses_total
                    .get_or_create(&labels)
                    .set(gauge(total));
                metrics
                    .pool_addresses_assigned
                    .get_or_create(&labels)
                    .set(gauge(used));
            }
        }

        // Each FerroLB object: a Valid condition in its status, and a Warning
        // Event the first time a problem is seen.
        report_objects(&client, &recorder, &config, &problems, &mut reported).await;

        // ConfigurationState: only when the problems changed.
        let state = configuration_state(&problems);
        if last_state.as_ref() != Some(&state) {
            for p in &problems {
                tracing::warn!("{p}");
            }
            match write::write_configuration_state(&client, ns, &state).await {
                Ok(()) => last_state = Some(state),
                Err(e) => tracing::warn!(error = %e, "cannot write ConfigurationState"),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        metrics.reconcile_duration.observe(seconds);
        tracing::debug!(
            seconds,
            statuses_written_after = statuses_after.as_secs_f64(),
            writes_failed = writes_failed.load(Ordering::Relaxed),
            events_failed = events_failed.load(Ordering::Relaxed),
            in_flight,
            "round ended"
        );
        drop((config, valid, problems));
        crate::memory::release_free_memory();
    }
}
