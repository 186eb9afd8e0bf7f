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
use crate::yaml::{SourcePos, Step, locate, split_documents};
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

/// The first line of a parser's message without the position it repeats
/// (relative to the document), and the position as the file numbers it:
/// the document's first line `doc_start` added, lone carriage returns not
/// counted as line breaks ([`crate::yaml::text_position`]).
pub(crate) fn yaml_error(
    err: &serde_saphyr::Error,
    text: &str,
    doc_start: usize,
) -> (usize, Option<usize>, String) {
    let at = err.location().map(|l| {
        let line = usize::try_from(l.line()).unwrap_or(usize::MAX);
        let column = usize::try_from(l.column()).unwrap_or(usize::MAX);
        crate::yaml::text_position(text, line.max(1), column)
    });
    let line = at.map_or(doc_start, |(line, _)| doc_start + line - 1);
    (
        line,
        at.map(|(_, column)| column),
        crate::yaml::parser_message(err),
    )
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
    match crate::yaml::from_str::<Value>(text) {
        Ok(Value::Null) => {}
        Ok(value) => {
            let at = At {
                pos,
                text: Some(text),
                prefix: Vec::new(),
            };
            parse_value_at(value, &at, parsed)
        }
        Err(e) => {
            let (line, column, msg) = yaml_error(&e, text, pos.line);
            let mut problem = Problem::in_source(
                Severity::Error,
                SourcePos {
                    line,
                    ..pos.clone()
                },
                format!("document is not valid YAML: {msg}"),
            );
            problem.column = column;
            parsed.problems.push(problem);
        }
    }
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// Where a value being parsed is: the document's position, its text (to
/// locate a field in it), and the path of the value within it.
struct At<'a> {
    pos: &'a SourcePos,
    text: Option<&'a str>,
    prefix: Vec<Step>,
}

/// The field path as problems name it: `spec.addresses[1]`.
pub fn field_path(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Serde's name of an expected type, in the words of a YAML file.
fn expected_words(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "i8" | "i16" | "i32" | "i64" | "i128" => {
            "an integer".to_string()
        }
        "f32" | "f64" => "a number".to_string(),
        "a map" => "a mapping".to_string(),
        other if other.starts_with("struct ") => "a mapping".to_string(),
        other => other.to_string(),
    }
}

impl At<'_> {
    /// A problem for the value at `path` (below this value) that is not
    /// of the `expected` type: where it is and what YAML read it as, e.g.
    /// `metadata.name: expected a string, found the boolean y (quote it:
    /// "y")`. None when the document text is not at hand or the value
    /// cannot be found in it.
    fn wrong_type(&self, path: &[Step], expected: &str) -> Option<Problem> {
        let full: Vec<Step> = self.prefix.iter().chain(path).cloned().collect();
        let found = locate(self.text?, &full)?;
        let expected = expected_words(expected);
        let mut message = format!("expected {expected}, found {}", found.describe());
        if expected == "a string" && found.quoting_makes_a_string() {
            message.push_str(&format!(" (quote it: \"{}\")", found.written));
        }
        let (line, column) = crate::yaml::text_position(self.text?, found.line, found.column);
        let source = SourcePos {
            line: self.pos.line + line.saturating_sub(1),
            ..self.pos.clone()
        };
        let mut problem = Problem::in_source(Severity::Error, source, message);
        problem.field = Some(field_path(path));
        Some(problem.at_column(column))
    }

    /// [`At::wrong_type`] for a value that is present but not of the
    /// `expected` JSON type; a message without position when it cannot be
    /// located.
    fn wrong_type_or(&self, path: &[Step], expected: &str, value: &Value) -> Problem {
        self.wrong_type(path, expected).unwrap_or_else(|| {
            let mut p = Problem::in_source(
                Severity::Error,
                self.pos.clone(),
                format!("expected {expected}, found {}", json_type(value)),
            );
            p.field = Some(field_path(path));
            p
        })
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

fn key(k: &str) -> Step {
    Step::Key(k.to_string())
}

/// Parses one document's value (which may be a `List` of objects).
pub fn parse_value(value: Value, pos: &SourcePos, parsed: &mut Parsed) {
    let at = At {
        pos,
        text: None,
        prefix: Vec::new(),
    };
    parse_value_at(value, &at, parsed)
}

fn parse_value_at(value: Value, at: &At<'_>, parsed: &mut Parsed) {
    let pos = at.pos;
    if !value.is_object() {
        parsed.problems.push(Problem::in_source(
            Severity::Error,
            pos.clone(),
            "document is not a mapping with apiVersion, kind and metadata".to_string(),
        ));
        return;
    }
    // A value YAML read as another type (`kind: on`) is reported as such.
    let mut mistyped = false;
    for field in ["apiVersion", "kind"] {
        if let Some(v) = value.get(field).filter(|v| !v.is_string() && !v.is_null()) {
            parsed
                .problems
                .push(at.wrong_type_or(&[key(field)], "a string", v));
            mistyped = true;
        }
    }
    if mistyped {
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
                    let item_at = At {
                        pos,
                        text: at.text,
                        prefix: at
                            .prefix
                            .iter()
                            .cloned()
                            .chain([key("items"), Step::Index(i)])
                            .collect(),
                    };
                    parse_value_at(item.clone(), &item_at, parsed);
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
            typed::<IPAddressPool>(value, at, parsed).map(|o| Object::IPAddressPool(Box::new(o)))
        }
        (GROUP, "v1beta1", "L2Advertisement") => {
            typed(value, at, parsed).map(|o| Object::L2Advertisement(Box::new(o)))
        }
        (GROUP, "v1beta1", "BGPAdvertisement") => {
            typed(value, at, parsed).map(|o| Object::BGPAdvertisement(Box::new(o)))
        }
        (GROUP, "v1beta2", "BGPPeer") => {
            typed(value, at, parsed).map(|o| Object::BGPPeer(Box::new(o)))
        }
        (GROUP, "v1beta1", "BFDProfile") => {
            typed(value, at, parsed).map(|o| Object::BFDProfile(Box::new(o)))
        }
        (GROUP, "v1beta1", "Community") => {
            typed(value, at, parsed).map(|o| Object::Community(Box::new(o)))
        }
        ("", "v1", "Service") => typed(value, at, parsed).map(|o| Object::Service(Box::new(o))),
        ("", "v1", "Node") => typed(value, at, parsed).map(|o| Object::Node(Box::new(o))),
        ("", "v1", "Namespace") => typed(value, at, parsed).map(|o| Object::Namespace(Box::new(o))),
        ("", "v1", "Secret") => typed(value, at, parsed).map(|o| Object::Secret(Box::new(o))),
        ("discovery.k8s.io", "v1", "EndpointSlice") => {
            typed(value, at, parsed).map(|o| Object::EndpointSlice(Box::new(o)))
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
fn typed<K>(value: Value, at: &At<'_>, parsed: &mut Parsed) -> Option<K>
where
    K: DeserializeOwned + Resource<DynamicType = ()>,
{
    let pos = at.pos;
    let kind = K::kind(&()).to_string();
    // `metadata` that is not a mapping, or a name YAML read as another
    // type (`name: y` is a boolean), is reported as such: the object has
    // a name, just not a string one.
    let metadata = value.get("metadata").filter(|m| !m.is_null());
    let mistyped = match metadata {
        Some(m) if !m.is_object() => Some(at.wrong_type_or(&[key("metadata")], "a mapping", m)),
        Some(m) => m
            .get("name")
            .filter(|n| !n.is_string() && !n.is_null())
            .map(|n| at.wrong_type_or(&[key("metadata"), key("name")], "a string", n)),
        None => None,
    };
    if let Some(problem) = mistyped {
        parsed.problems.push(problem);
        return None;
    }
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
            let steps: Option<Vec<Step>> = e
                .path()
                .iter()
                .map(|segment| match segment {
                    serde_path_to_error::Segment::Seq { index } => Some(Step::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => Some(Step::Key(key.clone())),
                    _ => None,
                })
                .collect();
            let message = e.into_inner().to_string();
            let object = ObjectRef::new(&kind, namespace.as_deref(), &name);
            // "invalid type: boolean `true`, expected a string": say where,
            // and what YAML read the value as.
            let located = message
                .strip_prefix("invalid type: ")
                .and_then(|m| m.split_once(", expected "))
                .zip(steps)
                .and_then(|((_, expected), steps)| at.wrong_type(&steps, expected));
            if let Some(mut p) = located {
                p.object = Some(object);
                parsed.problems.push(p);
                return None;
            }
            let mut p = Problem::error(
                object,
                if path == "." { String::new() } else { path },
                message,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse_stream(text, "services.yaml")
            .problems
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// A syntax error names its place once, as the file numbers it; the
    /// parser's own position (counted from the document) and its advice
    /// to programmers are left out.
    #[test]
    fn a_syntax_error_names_the_file_position_only() {
        let text = "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n   b: c\n\
                    ---\n{a: 1, a: 2}\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:9:5 (document 2): error: document is not valid YAML: mapping values are not allowed in this context",
                "services.yaml:11:8 (document 3): error: document is not valid YAML: duplicate mapping key: a",
            ]
        );
    }

    /// `name: y` is a boolean to YAML 1.1 (and to Kubernetes): the
    /// problem says so, where, and how to make it a string.
    #[test]
    fn a_name_yaml_reads_as_a_boolean_is_reported_as_such() {
        let text =
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: y\nspec:\n  type: LoadBalancer\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:4:9 (document 1): error: metadata.name: expected a string, found the boolean y (quote it: \"y\")"
            ]
        );
        // Quoted, it is a name.
        assert!(problems(&text.replace("name: y", "name: \"y\"")).is_empty());
        // In a later document and a flow mapping, through an alias, as a number.
        let text = "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\n\n\
                    apiVersion: v1\nkind: Service\nmetadata: {name: 0123, namespace: on}\n\
                    ---\nx: &n off\napiVersion: v1\nkind: Service\nmetadata:\n  name: *n\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:8:18 (document 2): error: metadata.name: expected a string, found the number 0123 (quote it: \"0123\")",
                "services.yaml:14:9 (document 3): error: metadata.name: expected a string, found the boolean off (quote it: \"off\")",
            ]
        );
    }

    #[test]
    fn other_fields_of_another_type_are_located() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations:\n    metallb.universe.tf/allow-shared-ip: yes\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:6:42 (document 1): error: Service web: metadata.annotations.metallb.universe.tf/allow-shared-ip: expected a string, found the boolean yes (quote it: \"yes\")"
            ]
        );
        let text = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: p\nspec:\n  addresses: [192.0.2.0/28]\n  autoAssign: \"yes\"\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:7:15 (document 1): error: IPAddressPool p: spec.autoAssign: expected a boolean, found the string \"yes\""
            ]
        );
        let text = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata:\n    name: true\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:7:11 (document 1): error: metadata.name: items[0]: expected a string, found the boolean true (quote it: \"true\")"
            ]
        );
        let text = "apiVersion: v1\nkind: on\nmetadata:\n  name: a\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:2:7 (document 1): error: kind: expected a string, found the boolean on (quote it: \"on\")"
            ]
        );
        let text = "apiVersion: v1\nkind: Service\nmetadata: [a]\n";
        assert_eq!(
            problems(text),
            [
                "services.yaml:3:11 (document 1): error: metadata: expected a mapping, found a sequence"
            ]
        );
    }
}
