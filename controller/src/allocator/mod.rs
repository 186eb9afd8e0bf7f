//! The pure, sans-IO IP allocator: a snapshot in, decisions out. No I/O, no
//! clocks, no async; the Kubernetes controller and the standalone file mode
//! drive it and write its decisions back.
//!
//! # Using it
//!
//! ```no_run
//! # use ferrolb_controller::allocator::*;
//! # let pools = vec![]; let objects: Vec<k8s_openapi::api::core::v1::Service> = vec![];
//! # let namespaces = NamespaceLabels::new();
//! let mut alloc = Allocator::new(); // or Allocator::with_load_balancer_class("name")
//! alloc.set_pools(&pools);
//! // Services are read once into their compact form; the objects can go.
//! let services: Vec<LbService> = objects.iter().map(LbService::from).collect();
//! let snapshot = Snapshot::new(&services, &namespaces);
//! alloc.restore(snapshot); // at start: claim every Service's status IPs again
//! for outcome in alloc.reconcile(snapshot) {
//!     // write outcome.ips / outcome.pool when outcome.changed; record outcome.events
//! }
//! ```
//!
//! Between full reconciles, [`Allocator::allocate`] decides for one Service and
//! [`Allocator::release`] frees a deleted one. [`Allocator::pool_usage`] gives
//! the counts for each pool's status. [`Allocator::pool_verdicts`] says, for
//! one Service, what every pool would give it or why it gives nothing (the
//! detail behind a pending reason).
//!
//! # Rules (MetalLB-compatible)
//!
//! - Ours: `spec.type: LoadBalancer` and `spec.loadBalancerClass` unset (or equal
//!   to the configured class). A Service that stops being ours, or is being
//!   deleted, is released at once.
//! - Requested IPs (`ferrolb.io/loadBalancerIPs`, `metallb.io/…`,
//!   `metallb.universe.tf/…`, then `spec.loadBalancerIP`) must lie in a pool the
//!   Service may use. A requested pool (`ferrolb.io/address-pool`, …) is the only
//!   one used, even with `autoAssign: false`; its `serviceAllocation` still applies.
//! - Otherwise pools with `autoAssign: true` admitting the Service (every given
//!   restriction of `serviceAllocation` met) are tried by priority (lower first,
//!   none last), then name. Within a pool, the lowest free address walking
//!   `addresses` in the order written; `avoidBuggyIPs` skips IPv4 `.0`/`.255`.
//! - Families follow `ipFamilyPolicy`/`ipFamilies` (dual-stack IPs come from one pool).
//! - Sharing (`allow-shared-ip` key): same key, no port+protocol overlap, same
//!   backends (both Cluster, or both Local with equal selectors).
//! - An assigned IP stays while valid; after a restart the status IPs are claimed
//!   again (older Service wins a conflict); new allocations are made in order of
//!   creationTimestamp, then namespace/name.
//! - An address in the `status.loadBalancer.ingress` of any Service is in use,
//!   whoever assigned it: while a Service this allocator does not handle
//!   (another loadBalancerClass, another type, being deleted) lists it, it is
//!   not handed out, requested or shared, and it counts as used in its pool.
//!   When a Service of ours holds (or claims after a restart) an address that
//!   a LoadBalancer of another class also lists, the older of the two keeps
//!   it (creationTimestamp, then namespace/name), so two controllers sharing
//!   a pool agree on which one moves. A Service of another type or being
//!   deleted is served by nobody: a Service of ours that shares an address
//!   with it keeps the address.
//!
//! # Cost
//!
//! A Service is held as an [`LbService`]: only the fields the rules read,
//! parsed once (a few hundred bytes, not the whole object).
//!
//! Nothing enumerates a pool. Per pool and family the used addresses are kept as
//! runs of *ordinals* (positions in the pool's address sequence), so the lowest
//! free address is one ordered-map lookup. Sharing is indexed: per address the
//! ports in use (a newcomer's check reads only its own ports), per sharing key
//! the addresses by backend and, per port, as runs, so the lowest shareable
//! address is found by skipping whole runs that use one of the newcomer's
//! ports, not by visiting every Service under the key. Memory grows with
//! assignments, not with pool sizes.

mod events;
mod intervals;
mod pool_index;
mod reconcile;
mod service;
mod sharing;
mod state;
mod verdicts;

#[cfg(test)]
mod histories;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

pub use events::{
    ALLOCATION_FAILED, Event, EventType, IP_ALLOCATED, IP_INVALIDATED, IP_RELEASED, PendingReason,
    ReleaseCause, Unusable,
};
pub use reconcile::{
    NAMESPACE_NAME_LABEL, NamespaceLabels, OutcomeState, RestoreReport, ServiceOutcome, Snapshot,
    namespace_labels,
};
pub use service::{
    ADDRESS_POOL_ANNOTATIONS, ALLOCATED_FROM_POOL_ANNOTATION, ALLOW_SHARED_IP_ANNOTATIONS,
    LOAD_BALANCER_IPS_ANNOTATIONS, Labels, LbService, NotOurs, ServiceKey, Uid, Written,
};
pub use state::Allocator;
pub use verdicts::{PoolRejection, PoolVerdict, Refusal};
