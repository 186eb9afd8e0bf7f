//! The whole configuration one component acts on: FerroLB objects plus the
//! core objects they refer to. Built from the API server or from files.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;

use crate::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use crate::problem::ObjectRef;
use crate::yaml::SourcePos;

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub ip_address_pools: Vec<IPAddressPool>,
    pub l2_advertisements: Vec<L2Advertisement>,
    pub bgp_advertisements: Vec<BGPAdvertisement>,
    pub bgp_peers: Vec<BGPPeer>,
    pub bfd_profiles: Vec<BFDProfile>,
    pub communities: Vec<Community>,
    pub services: Vec<Service>,
    pub nodes: Vec<Node>,
    pub namespaces: Vec<Namespace>,
    pub secrets: Vec<Secret>,
    pub endpoint_slices: Vec<EndpointSlice>,
    /// Where each object was read from, when it came from files.
    pub sources: BTreeMap<ObjectRef, SourcePos>,
}

/// The [`ObjectRef`] of any Kubernetes object.
pub fn object_ref<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectRef {
    let meta = obj.meta();
    ObjectRef {
        kind: K::kind(&()).to_string(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone().unwrap_or_default(),
    }
}

impl Config {
    /// Where an object came from, if it was read from a file.
    pub fn source_of(&self, obj: &ObjectRef) -> Option<SourcePos> {
        self.sources.get(obj).cloned()
    }

    /// Number of objects of every kind.
    pub fn object_count(&self) -> usize {
        self.ip_address_pools.len()
            + self.l2_advertisements.len()
            + self.bgp_advertisements.len()
            + self.bgp_peers.len()
            + self.bfd_profiles.len()
            + self.communities.len()
            + self.services.len()
            + self.nodes.len()
            + self.namespaces.len()
            + self.secrets.len()
            + self.endpoint_slices.len()
    }
}
