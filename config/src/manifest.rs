//! Reading Kubernetes-style YAML manifests into typed objects. Every document is
//! parsed on its own: a bad one is reported with its file and position and the
//! others still load.

use k8s_openapi::api::core::v1::{Namespace, Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::{Config, object_ref};
use crate::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, IPAddressPool, L2Advertisement,
};
use crate::problem::{ObjectRef, Problem, Severity};
use crate::yaml::{SourcePos, split_documents};
use crate::{DEFAULT_NAMESPACE, GROUP};

/// One object read from a manifest.
#[derive(Debug, Clone)]
pub enum Object {
    IPAddressPool(Box<IPAddressPool>),
    L2Advertisement(Box<L2Advertisement>),
    BGPAdvertisement(Box<BGPAdvertisement>),
    BGPPeer(Box<BGPPeer>),
    BFDProfile(Box<BFDProfile>),
    Community(Box<Community>),
    Service(Box<Service>),
    Node(Box<Node>),
    Namespace(Box<Namespace>),
    Secret(Box<Secret>),
    EndpointSlice(Box<EndpointSlice>),
}

/// The objects of a stream with their positions, and the problems found reading it.
#[derive(Debug, Default)]
pub struct Parsed {
    pub objects: Vec<(Object, SourcePos)>,
    pub problems: Vec<Problem>,
}

/// The first line of a parser's message, with the document's line offset applied
/// to any line it reports.
fn yaml_error(err: &serde_saphyr::Error, doc_start: usize) -> (usize, String) {
    let line = err
        .location()
        .map(|l| doc_start + l.line().saturating_sub(1) as usize)
        .unwrap_or(doc_start);
    let text = err.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid YAML")
        .trim()
        .to_string();
    (line, first)
}

/// Parses a multi-document YAML stream named `file`.
pub fn parse_stream(text: &str, file: &str) -> Parsed {
    let mut parsed = Parsed::default();
    for doc in split_documents(text) {
        let pos = SourcePos {
            file: file.to_string(),
            document: doc.index,
            line: doc.start_line,
        };
        parse_document(doc.text, &pos, &mut parsed);
    }
    parsed
}

/// Parses one document read from `file` by a
/// [`DocumentReader`](crate::yaml::DocumentReader).
pub fn parse_read_document(doc: &crate::yaml::OwnedDocument, file: &str) -> Parsed {
    let pos = SourcePos {
        file: file.to_string(),
        document: doc.index,
        line: doc.start_line,
    };
    let mut parsed = Parsed::default();
    parse_document(&doc.text, &pos, &mut parsed);
    parsed
}

/// Parses one document found at `pos` (its line is where the document
/// starts) into `parsed`.
pub fn parse_document(text: &str, pos: &SourcePos, parsed: &mut Parsed) {
    match serde_saphyr::from_str::<Value>(text) {
        Ok(Value::Null) => {}
        Ok(value) => parse_value(value, pos, parsed),
        Err(e) => {
            let (line, msg) = yaml_error(&e, pos.line);
            parsed.problems.push(Problem::in_source(
                Severity::Error,
                SourcePos {
                    line,
                    ..pos.clone()
                },
                format!("document is not valid YAML: {msg}"),
            ));
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Parses one document's value (which may be a `List` of objects).
pub fn parse_value(value: Value, pos: &SourcePos, parsed: &mut Parsed) {
    if !value.is_object() {
        parsed.problems.push(Problem::in_source(
            Severity::Error,
            pos.clone(),
            "document is not a mapping with apiVersion, kind and metadata".to_string(),
        ));
        return;
    }
    let api_version = str_field(&value, "apiVersion")
        .unwrap_or_default()
        .to_string();
    let kind = str_field(&value, "kind").unwrap_or_default().to_string();
    if api_version.is_empty() || kind.is_empty() {
        parsed.problems.push(Problem::in_source(
            Severity::Error,
            pos.clone(),
            "document has no apiVersion or no kind".to_string(),
        ));
        return;
    }
    if kind == "List" || kind.ends_with("List") && value.get("items").is_some() {
        match value.get("items").and_then(Value::as_array) {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let before = parsed.problems.len();
                    parse_value(item.clone(), pos, parsed);
                    for p in &mut parsed.problems[before..] {
                        p.message = format!("items[{i}]: {}", p.message);
                    }
                }
            }
            None => parsed.problems.push(Problem::in_source(
                Severity::Error,
                pos.clone(),
                format!("{kind} has no items list"),
            )),
        }
        return;
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let describe = if name.is_empty() {
        format!("{kind} (no name)")
    } else {
        format!("{kind} {name}")
    };
    let (group, version) = api_version
        .split_once('/')
        .unwrap_or(("", api_version.as_str()));
    let warn = |parsed: &mut Parsed, msg: String| {
        parsed
            .problems
            .push(Problem::in_source(Severity::Warning, pos.clone(), msg));
    };
    let object = match (group, version, kind.as_str()) {
        (GROUP, "v1beta1", "IPAddressPool") => {
            typed::<IPAddressPool>(value, pos, parsed).map(|o| Object::IPAddressPool(Box::new(o)))
        }
        (GROUP, "v1beta1", "L2Advertisement") => {
            typed(value, pos, parsed).map(|o| Object::L2Advertisement(Box::new(o)))
        }
        (GROUP, "v1beta1", "BGPAdvertisement") => {
            typed(value, pos, parsed).map(|o| Object::BGPAdvertisement(Box::new(o)))
        }
        (GROUP, "v1beta2", "BGPPeer") => {
            typed(value, pos, parsed).map(|o| Object::BGPPeer(Box::new(o)))
        }
        (GROUP, "v1beta1", "BFDProfile") => {
            typed(value, pos, parsed).map(|o| Object::BFDProfile(Box::new(o)))
        }
        (GROUP, "v1beta1", "Community") => {
            typed(value, pos, parsed).map(|o| Object::Community(Box::new(o)))
        }
        ("", "v1", "Service") => typed(value, pos, parsed).map(|o| Object::Service(Box::new(o))),
        ("", "v1", "Node") => typed(value, pos, parsed).map(|o| Object::Node(Box::new(o))),
        ("", "v1", "Namespace") => {
            typed(value, pos, parsed).map(|o| Object::Namespace(Box::new(o)))
        }
        ("", "v1", "Secret") => typed(value, pos, parsed).map(|o| Object::Secret(Box::new(o))),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            typed(value, pos, parsed).map(|o| Object::EndpointSlice(Box::new(o)))
        }
        (GROUP, _, "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState") => {
            warn(
                parsed,
                format!(
                    "{describe}: {kind} is status written by FerroLB, not configuration; skipped"
                ),
            );
            None
        }
        (GROUP, _, "BGPPeer") => {
            parsed.problems.push(Problem::in_source(
                Severity::Error,
                pos.clone(),
                format!(
                    "{describe}: apiVersion {api_version} is not served; BGPPeer is {GROUP}/v1beta2"
                ),
            ));
            None
        }
        (
            GROUP,
            _,
            "IPAddressPool" | "L2Advertisement" | "BGPAdvertisement" | "BFDProfile" | "Community",
        ) => {
            parsed.problems.push(Problem::in_source(
                Severity::Error,
                pos.clone(),
                format!(
                    "{describe}: apiVersion {api_version} is not served; {kind} is {GROUP}/v1beta1"
                ),
            ));
            None
        }
        ("metallb.io" | "metallb.universe.tf", _, _) => {
            warn(
                parsed,
                format!(
                    "{describe}: MetalLB object ({api_version}) skipped; change apiVersion to {GROUP}/... or convert the file with `ferrolb-controller migrate`"
                ),
            );
            None
        }
        _ => {
            warn(
                parsed,
                format!("{describe}: kind {kind} ({api_version}) is not used by FerroLB; skipped"),
            );
            None
        }
    };
    if let Some(obj) = object {
        parsed.objects.push((obj, pos.clone()));
    }
}

/// Deserializes a value into `K`, reporting the field path of any mismatch.
fn typed<K>(value: Value, pos: &SourcePos, parsed: &mut Parsed) -> Option<K>
where
    K: DeserializeOwned + Resource<DynamicType = ()>,
{
    let kind = K::kind(&()).to_string();
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    if name.is_empty() {
        parsed.problems.push(Problem::in_source(
            Severity::Error,
            pos.clone(),
            format!("{kind} has no metadata.name"),
        ));
        return None;
    }
    let namespace = value
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .map(str::to_string);
    match serde_path_to_error::deserialize::<_, K>(value) {
        Ok(obj) => Some(obj),
        Err(e) => {
            let path = e.path().to_string();
            let mut p = Problem::error(
                ObjectRef::new(&kind, namespace.as_deref(), &name),
                if path == "." { String::new() } else { path },
                e.into_inner().to_string(),
            );
            if p.field.as_deref() == Some("") {
                p.field = None;
            }
            parsed.problems.push(p.with_source(Some(pos.clone())));
            None
        }
    }
}

fn default_namespace<K: Resource<DynamicType = ()>>(obj: &mut K, ns: &str) {
    let meta = obj.meta_mut();
    if meta.namespace.as_deref().is_none_or(str::is_empty) {
        meta.namespace = Some(ns.to_string());
    }
}

impl Object {
    /// Kind, namespace and name of the object.
    pub fn object_ref(&self) -> ObjectRef {
        match self {
            Object::IPAddressPool(o) => object_ref(&**o),
            Object::L2Advertisement(o) => object_ref(&**o),
            Object::BGPAdvertisement(o) => object_ref(&**o),
            Object::BGPPeer(o) => object_ref(&**o),
            Object::BFDProfile(o) => object_ref(&**o),
            Object::Community(o) => object_ref(&**o),
            Object::Service(o) => object_ref(&**o),
            Object::Node(o) => object_ref(&**o),
            Object::Namespace(o) => object_ref(&**o),
            Object::Secret(o) => object_ref(&**o),
            Object::EndpointSlice(o) => object_ref(&**o),
        }
    }

    /// Namespaced objects without a namespace get `default` (core objects) or
    /// `ferrolb-system` (FerroLB objects), as `kubectl apply` into those
    /// namespaces would.
    pub fn default_namespace(&mut self) {
        match self {
            Object::IPAddressPool(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::L2Advertisement(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::BGPAdvertisement(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::BGPPeer(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::BFDProfile(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::Community(o) => default_namespace(&mut **o, DEFAULT_NAMESPACE),
            Object::Service(o) => default_namespace(&mut **o, "default"),
            Object::Secret(o) => default_namespace(&mut **o, "default"),
            Object::EndpointSlice(o) => default_namespace(&mut **o, "default"),
            Object::Node(_) | Object::Namespace(_) => {}
        }
    }
}

impl Config {
    /// Adds parsed objects (see [`Object::default_namespace`] for namespaces).
    /// A second object with the same kind, namespace and name is refused with an
    /// error naming both places.
    pub fn add_objects(&mut self, objects: Vec<(Object, SourcePos)>, problems: &mut Vec<Problem>) {
        for (mut obj, pos) in objects {
            obj.default_namespace();
            let oref = obj.object_ref();
            if let Some(first) = self.sources.get(&oref) {
                problems.push(
                    Problem::error(
                        oref.clone(),
                        "metadata.name",
                        format!(
                            "defined twice; the definition at {first} is used and this one ignored"
                        ),
                    )
                    .with_source(Some(pos)),
                );
                continue;
            }
            self.sources.insert(oref, pos);
            match obj {
                Object::IPAddressPool(o) => self.ip_address_pools.push(*o),
                Object::L2Advertisement(o) => self.l2_advertisements.push(*o),
                Object::BGPAdvertisement(o) => self.bgp_advertisements.push(*o),
                Object::BGPPeer(o) => self.bgp_peers.push(*o),
                Object::BFDProfile(o) => self.bfd_profiles.push(*o),
                Object::Community(o) => self.communities.push(*o),
                Object::Service(o) => self.services.push(*o),
                Object::Node(o) => self.nodes.push(*o),
                Object::Namespace(o) => self.namespaces.push(*o),
                Object::Secret(o) => self.secrets.push(*o),
                Object::EndpointSlice(o) => self.endpoint_slices.push(*o),
            }
        }
    }
}
