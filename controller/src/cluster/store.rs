//! The Service cache of cluster mode. Each Service is reduced to its
//! [`LbService`] the moment it arrives from the watch (a few hundred bytes
//! instead of the whole object with its managed fields), and the cache hands
//! out `Arc`s, so an allocation round takes a snapshot of 100,000 Services by
//! copying 100,000 pointers, not the Services.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use kube::runtime::watcher;
use tokio::sync::{Notify, watch};

use crate::allocator::{LbService, ServiceKey, Written};

/// One change to the cache, as the watch reports it, already compact.
#[derive(Debug, Clone)]
pub enum Change {
    /// A Service was added or modified.
    Apply(LbService),
    /// A Service was deleted.
    Delete(ServiceKey),
    /// A full re-list starts: the Services listed until [`Change::ListDone`]
    /// are all there are.
    ListStart,
    /// A Service listed during a re-list.
    Listed(LbService),
    /// The re-list is complete: Services not listed since
    /// [`Change::ListStart`] are gone.
    ListDone,
}

impl From<watcher::Event<Service>> for Change {
    fn from(ev: watcher::Event<Service>) -> Change {
        match ev {
            watcher::Event::Apply(s) => Change::Apply(LbService::from(&s)),
            watcher::Event::Delete(s) => Change::Delete(ServiceKey::of(&s)),
            watcher::Event::Init => Change::ListStart,
            watcher::Event::InitApply(s) => Change::Listed(LbService::from(&s)),
            watcher::Event::InitDone => Change::ListDone,
        }
    }
}

/// A cached Service, found by its key.
struct Entry {
    svc: Arc<LbService>,
    /// The list generation in which the Service was last seen.
    seen: u64,
    /// A status and pool annotation change that arrived while a snapshot
    /// shared `svc`: applied in place when the snapshot is gone (see
    /// [`ServiceCache::snapshot`]). Boxed, so an entry with none costs one
    /// pointer.
    pending: Option<Box<Written>>,
}

impl Entry {
    /// The status and pool annotation as they are now.
    fn current_written(&self) -> &Written {
        self.pending.as_deref().unwrap_or(self.svc.written())
    }

    /// Moves a pending status change into the Service: in place when no
    /// snapshot shares it any more, else in a new copy.
    fn settle(&mut self) {
        let Some(written) = self.pending.take() else {
            return;
        };
        match Arc::get_mut(&mut self.svc) {
            Some(svc) => svc.set_written(*written),
            None => {
                let mut copy = (*self.svc).clone();
                copy.set_written(*written);
                self.svc = Arc::new(copy);
            }
        }
    }
}

impl std::borrow::Borrow<ServiceKey> for Entry {
    fn borrow(&self) -> &ServiceKey {
        &self.svc.key
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Entry) -> bool {
        self.svc.key == other.svc.key
    }
}

impl Eq for Entry {}

impl std::hash::Hash for Entry {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.svc.key.hash(state)
    }
}

#[derive(Default)]
struct Inner {
    /// Keyed by the Service's own key (no second copy of it).
    services: HashSet<Entry>,
    /// Whether some entry may hold a pending status change.
    pending: bool,
    /// Namespace and pool names, each kept once and shared by every Service
    /// that mentions it.
    names: HashSet<Arc<str>>,
    generation: u64,
}

impl Inner {
    /// Settles every pending status change. A set's entries cannot be changed
    /// in place, so the set is rebuilt (a table of pointers, a few
    /// milliseconds for 100,000 Services), only after changes arrived.
    fn settle(&mut self) {
        if !std::mem::take(&mut self.pending) {
            return;
        }
        self.services = std::mem::take(&mut self.services)
            .into_iter()
            .map(|mut e| {
                e.settle();
                e
            })
            .collect();
    }
}

/// Compact Services by namespace/name, shared between the watch task (which
/// writes) and the allocation loop (which takes snapshots).
pub struct ServiceCache {
    inner: Mutex<Inner>,
    ready: watch::Sender<bool>,
}

impl Default for ServiceCache {
    fn default() -> Self {
        ServiceCache {
            inner: Mutex::default(),
            ready: watch::Sender::new(false),
        }
    }
}

impl ServiceCache {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves the map consistent (every
        // change is one insert or remove): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies one change; true when a Service was added, changed or removed.
    pub fn apply(&self, change: Change) -> bool {
        let mut inner = self.lock();
        let inner = &mut *inner;
        match change {
            Change::Apply(svc) | Change::Listed(svc) => {
                let mut svc = svc;
                svc.key.namespace = intern(&mut inner.names, &svc.key.namespace);
                svc.share_pool_annotation(|p| intern(&mut inner.names, p));
                let seen = inner.generation;
                if let Some(mut e) = inner.services.take(&svc.key) {
                    e.seen = seen;
                    if svc.same_but_written(&e.svc) {
                        // Only status or pool annotation changed (usually our
                        // own write coming back): no new copy of the Service.
                        let changed = svc.written() != e.current_written();
                        e.pending = None;
                        if svc.written() != e.svc.written() {
                            let written = svc.written().clone();
                            match Arc::get_mut(&mut e.svc) {
                                Some(cached) => cached.set_written(written),
                                None => {
                                    e.pending = Some(Box::new(written));
                                    inner.pending = true;
                                }
                            }
                        }
                        inner.services.insert(e);
                        return changed;
                    }
                }
                inner.services.insert(Entry {
                    svc: Arc::new(svc),
                    seen,
                    pending: None,
                });
                true
            }
            Change::Delete(key) => inner.services.remove(&key),
            Change::ListStart => {
                inner.generation += 1;
                false
            }
            Change::ListDone => {
                let current = inner.generation;
                let before = inner.services.len();
                inner.services.retain(|e| e.seen == current);
                let removed = before != inner.services.len();
                // Forget names nobody uses any more.
                let used: HashSet<&str> = inner
                    .services
                    .iter()
                    .flat_map(|e| [Some(&*e.svc.key.namespace), e.svc.pool_annotation()])
                    .flatten()
                    .collect();
                inner.names.retain(|n| used.contains(&**n));
                drop(used);
                self.ready.send_replace(true);
                removed
            }
        }
    }

    /// Every Service now, in no particular order. The Services are shared,
    /// not copied: while the snapshot lives, a status change to one of them is
    /// kept aside and applied in place once the snapshot is dropped (at the
    /// next snapshot), so a round that writes every Service does not end up
    /// holding two copies of each.
    pub fn snapshot(&self) -> Vec<Arc<LbService>> {
        let mut inner = self.lock();
        inner.settle();
        inner.services.iter().map(|e| e.svc.clone()).collect()
    }

    /// The Service as cached (its status may be one change behind while a
    /// snapshot shares it).
    pub fn get(&self, key: &ServiceKey) -> Option<Arc<LbService>> {
        self.lock().services.get(key).map(|e| e.svc.clone())
    }

    pub fn len(&self) -> usize {
        self.lock().services.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a first full list has been received.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until a first full list has been received.
    pub async fn wait_until_ready(&self) {
        let mut rx = self.ready.subscribe();
        // Only fails when the sender is dropped, which `self` prevents.
        let _ = rx.wait_for(|r| *r).await;
    }

    /// Feeds a watch stream into the cache until it ends, poking `notify`
    /// after every change. Watch errors are logged; the watcher retries.
    pub async fn follow<E: std::fmt::Display>(
        &self,
        stream: impl Stream<Item = Result<watcher::Event<Service>, E>>,
        notify: &Notify,
    ) {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            match item {
                Ok(ev) => {
                    if self.apply(Change::from(ev)) {
                        notify.notify_one();
                    }
                }
                Err(e) => {
                    // The watcher re-lists with backoff; nothing is lost.
                    tracing::warn!(kind = "Service", error = %e, "watch error");
                }
            }
        }
    }
}

fn intern(set: &mut HashSet<Arc<str>>, s: &Arc<str>) -> Arc<str> {
    match set.get(&**s) {
        Some(shared) => shared.clone(),
        None => {
            set.insert(s.clone());
            s.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;

    fn svc(ns: &str, name: &str, port: i32) -> LbService {
        let mut s = Service::default();
        s.metadata.namespace = Some(ns.into());
        s.metadata.name = Some(name.into());
        s.spec = Some(ServiceSpec {
            type_: Some("LoadBalancer".into()),
            ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                port,
                ..Default::default()
            }]),
            ..Default::default()
        });
        s.metadata.annotations =
            Some([("ferrolb.io/allow-shared-ip".to_string(), "k".to_string())].into());
        LbService::from(&s)
    }

    fn names(cache: &ServiceCache) -> Vec<String> {
        let mut v: Vec<String> = cache.snapshot().iter().map(|s| s.key.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn applies_changes_and_relists() {
        let cache = ServiceCache::default();
        assert!(!cache.is_ready());
        assert!(!cache.apply(Change::ListStart));
        assert!(cache.apply(Change::Listed(svc("a", "one", 80))));
        assert!(cache.apply(Change::Listed(svc("a", "two", 80))));
        assert!(cache.apply(Change::Listed(svc("b", "three", 80))));
        assert!(!cache.apply(Change::ListDone));
        assert!(cache.is_ready());
        assert_eq!(names(&cache), ["a/one", "a/two", "b/three"]);

        // The same object again changes nothing; a new port does.
        assert!(!cache.apply(Change::Apply(svc("a", "one", 80))));
        assert!(cache.apply(Change::Apply(svc("a", "one", 81))));
        assert!(cache.apply(Change::Delete(ServiceKey::new("a", "two"))));
        assert!(!cache.apply(Change::Delete(ServiceKey::new("a", "two"))));
        assert_eq!(names(&cache), ["a/one", "b/three"]);

        // A re-list that no longer has b/three: it goes at ListDone, not before.
        cache.apply(Change::ListStart);
        cache.apply(Change::Listed(svc("a", "one", 81)));
        cache.apply(Change::Listed(svc("c", "four", 80)));
        assert_eq!(names(&cache), ["a/one", "b/three", "c/four"]);
        assert!(cache.apply(Change::ListDone));
        assert_eq!(names(&cache), ["a/one", "c/four"]);
        assert_eq!(cache.len(), 2);
        assert!(cache.get(&ServiceKey::new("a", "one")).is_some());
    }

    #[test]
    fn namespaces_are_shared() {
        let cache = ServiceCache::default();
        cache.apply(Change::Apply(svc("shop", "one", 80)));
        cache.apply(Change::Apply(svc("shop", "two", 80)));
        let one = cache.get(&ServiceKey::new("shop", "one")).unwrap();
        let two = cache.get(&ServiceKey::new("shop", "two")).unwrap();
        assert!(Arc::ptr_eq(&one.key.namespace, &two.key.namespace));
    }

    fn with_status(mut svc: LbService, ip: &str, pool: &str) -> LbService {
        use k8s_openapi::api::core::v1::{LoadBalancerIngress, LoadBalancerStatus, ServiceStatus};
        let obj = Service {
            metadata: kube::api::ObjectMeta {
                annotations: Some(
                    [(
                        crate::allocator::ALLOCATED_FROM_POOL_ANNOTATION.to_string(),
                        pool.to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            },
            status: Some(ServiceStatus {
                load_balancer: Some(LoadBalancerStatus {
                    ingress: Some(vec![LoadBalancerIngress {
                        ip: Some(ip.into()),
                        ..Default::default()
                    }]),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        svc.set_status_from(&obj);
        svc
    }

    #[test]
    fn status_changes_while_a_snapshot_lives_are_applied_in_place_after_it() {
        let cache = ServiceCache::default();
        cache.apply(Change::Apply(svc("a", "one", 80)));
        let key = ServiceKey::new("a", "one");
        let addr = Arc::as_ptr(&cache.get(&key).unwrap()) as usize;

        // No snapshot: a status change updates the cached Service in place.
        assert!(cache.apply(Change::Apply(with_status(
            svc("a", "one", 80),
            "192.0.2.1",
            "lan"
        ))));
        let now = cache.get(&key).unwrap();
        assert_eq!(Arc::as_ptr(&now) as usize, addr);
        assert_eq!(
            now.status_ips(),
            ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(now.pool_annotation(), Some("lan"));
        drop(now);

        // A round holds a snapshot: the change waits, the snapshot is unchanged.
        let snap = cache.snapshot();
        let again = with_status(svc("a", "one", 80), "192.0.2.2", "lan");
        assert!(cache.apply(Change::Apply(again.clone())));
        // The same status again is no change.
        assert!(!cache.apply(Change::Apply(again)));
        assert_eq!(
            snap[0].status_ips(),
            ["192.0.2.1".parse::<std::net::IpAddr>().unwrap()]
        );
        drop(snap);
        // The next snapshot has it, in the same allocation.
        let snap = cache.snapshot();
        assert_eq!(Arc::as_ptr(&snap[0]) as usize, addr);
        assert_eq!(
            snap[0].status_ips(),
            ["192.0.2.2".parse::<std::net::IpAddr>().unwrap()]
        );

        // While shared, a status change and then a spec change: the spec
        // change replaces the Service and the waiting status goes with it.
        cache.apply(Change::Apply(with_status(
            svc("a", "one", 80),
            "192.0.2.3",
            "lan",
        )));
        cache.apply(Change::Apply(svc("a", "one", 81)));
        drop(snap);
        let snap = cache.snapshot();
        assert!(snap[0].status_ips().is_empty());
        assert_ne!(Arc::as_ptr(&snap[0]) as usize, addr);
        drop(snap);

        // A snapshot still alive at the next one: a copy carries the change.
        cache.apply(Change::Apply(with_status(
            svc("a", "one", 81),
            "192.0.2.4",
            "lan",
        )));
        let held = cache.snapshot();
        cache.apply(Change::Apply(with_status(
            svc("a", "one", 81),
            "192.0.2.5",
            "lan",
        )));
        let next = cache.snapshot();
        assert_eq!(
            next[0].status_ips(),
            ["192.0.2.5".parse::<std::net::IpAddr>().unwrap()]
        );
        assert_eq!(
            held[0].status_ips(),
            ["192.0.2.4".parse::<std::net::IpAddr>().unwrap()]
        );
        // Deleting drops a waiting change too.
        cache.apply(Change::Apply(with_status(
            svc("a", "one", 81),
            "192.0.2.6",
            "lan",
        )));
        assert!(cache.apply(Change::Delete(key)));
        drop((held, next));
        assert!(cache.snapshot().is_empty());
    }

    #[tokio::test]
    async fn follows_a_watch_stream() {
        let cache = ServiceCache::default();
        let notify = Notify::new();
        let mut object = Service::default();
        object.metadata.namespace = Some("a".into());
        object.metadata.name = Some("one".into());
        let events: Vec<Result<watcher::Event<Service>, String>> = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(object.clone())),
            Err("connection reset".into()),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Delete(object)),
        ];
        cache.follow(futures::stream::iter(events), &notify).await;
        assert!(cache.is_ready());
        assert!(cache.is_empty());
        // Changes poked the loop (a permit is stored).
        tokio::time::timeout(std::time::Duration::from_secs(1), notify.notified())
            .await
            .expect("notified");
        cache.wait_until_ready().await;
    }
}
