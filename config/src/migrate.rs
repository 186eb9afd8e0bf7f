//! Converting MetalLB manifests to FerroLB ones.
//!
//! FerroLB serves MetalLB's kinds with MetalLB's field names under the API group
//! `ferrolb.io`, so most objects only change their `apiVersion`. Besides that the
//! conversion:
//!
//! - keeps only the spec fields FerroLB knows, and says so for every one it drops;
//! - keeps `metadata.name`, `namespace`, `labels` and `annotations` and drops what
//!   the API server wrote (uid, resourceVersion, managedFields, ...) and `status`;
//! - moves objects from `metallb-system` to `ferrolb-system`;
//! - splits the deprecated `AddressPool` kind into an `IPAddressPool` and its
//!   advertisements;
//! - converts the legacy `config` ConfigMap (MetalLB before v0.13) into objects,
//!   and that configuration alone (its `data.config` text) the same way;
//! - leaves out MetalLB's runtime status kinds.
//!
//! Nothing is dropped or changed silently except API-server bookkeeping: every
//! other change is a note printed as a `#` comment above the document it concerns.
//! Input that cannot be converted (bad YAML, a list instead of an object, a missing
//! name, ...) yields a document with only a comment naming the file, document and line.

use std::collections::BTreeSet;
use std::fmt;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::yaml::{SourcePos, split_documents};
use crate::{DEFAULT_NAMESPACE, GROUP};

/// MetalLB's API group.
const METALLB_GROUP: &str = "metallb.io";
/// The namespace MetalLB is installed in.
const METALLB_NAMESPACE: &str = "metallb-system";
/// The annotation `kubectl apply` keeps the previous manifest in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Metadata the API server writes; dropped without a note.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
    "ownerReferences",
];

/// Top-level keys of the legacy ConfigMap's `config`.
const LEGACY_KEYS: &[&str] = &["peers", "bgp-communities", "bfd-profiles", "address-pools"];

/// The result of converting one input stream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Migration {
    pub documents: Vec<MigratedDocument>,
    /// Names the conversion changed, one sentence each, that matter beyond
    /// the output (objects elsewhere may use the old name): the command
    /// prints them on stderr as well as in the comments.
    pub notices: Vec<String>,
}

/// One output document.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MigratedDocument {
    /// Human-readable notes about this document: anything not carried over, renamed namespace, etc. Printed as `# ` comment lines before the document.
    pub comments: Vec<String>,
    /// The converted object; None when the document could not be converted at all (then comments say why).
    pub object: Option<Value>,
    /// Whether the object was made from MetalLB configuration (false for
    /// objects copied unchanged, FerroLB's own or others).
    pub converted: bool,
}

impl MigratedDocument {
    /// An object copied as it was.
    fn object(comments: Vec<String>, object: Value) -> Self {
        MigratedDocument {
            comments,
            object: Some(object),
            converted: false,
        }
    }

    /// An object made from MetalLB configuration.
    fn converted(comments: Vec<String>, object: Value) -> Self {
        MigratedDocument {
            converted: true,
            ..MigratedDocument::object(comments, object)
        }
    }
}

impl Migration {
    /// Multi-document YAML: each document is `---`, its comment lines (`# ...`), then the object's YAML (if any).
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        for doc in &self.documents {
            out.push_str("---\n");
            for comment in &doc.comments {
                write_comment(&mut out, comment);
            }
            if let Some(object) = &doc.object {
                match serde_saphyr::to_string(object) {
                    Ok(text) => {
                        out.push_str(&text);
                        if !text.ends_with('\n') {
                            out.push('\n');
                        }
                    }
                    Err(e) => {
                        write_comment(&mut out, &format!("this object could not be written: {e}"))
                    }
                }
            }
        }
        out
    }

    /// Number of documents with an object.
    pub fn object_count(&self) -> usize {
        self.documents.iter().filter(|d| d.object.is_some()).count()
    }

    /// Number of comments (things a person should look at).
    pub fn comment_count(&self) -> usize {
        self.documents.iter().map(|d| d.comments.len()).sum()
    }
}

/// Writes `text` as comment lines, one `# ` line per line of text.
fn write_comment(out: &mut String, text: &str) {
    let mut lines = text.lines().peekable();
    if lines.peek().is_none() {
        out.push_str("#\n");
    }
    for line in lines {
        let line = line.trim_end();
        if line.is_empty() {
            out.push_str("#\n");
        } else {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
    }
}

/// Converts a multi-document MetalLB manifest named `source_name` (used in notes).
pub fn migrate(input: &str, source_name: &str) -> Migration {
    let mut documents = Vec::new();
    for doc in split_documents(input) {
        let loc = Loc {
            pos: SourcePos {
                file: source_name.to_string(),
                document: doc.index,
                line: doc.start_line,
            },
            item: None,
        };
        match crate::yaml::from_str::<Value>(doc.text) {
            Ok(value) => convert_value(value, &loc, &mut documents),
            Err(e) => documents.push(loc.failed(format!(
                "not valid YAML ({}); not converted",
                yaml_error(&e, "", doc.text, doc.start_line)
            ))),
        }
    }
    let notices = rename_conflicting_aliases(&mut documents, source_name);
    Migration { documents, notices }
}

/// Where a document came from; notes about documents that could not be
/// converted start with it.
struct Loc {
    pos: SourcePos,
    /// Index in the `items` of a List document.
    item: Option<usize>,
}

impl Loc {
    fn at(&self, msg: impl fmt::Display) -> String {
        match self.item {
            Some(i) => format!("{}: items[{i}]: {msg}", self.pos),
            None => format!("{}: {msg}", self.pos),
        }
    }

    fn failed(&self, msg: impl fmt::Display) -> MigratedDocument {
        MigratedDocument {
            comments: vec![self.at(msg)],
            ..MigratedDocument::default()
        }
    }

    fn item(&self, i: usize) -> Loc {
        Loc {
            pos: self.pos.clone(),
            item: Some(i),
        }
    }
}

/// The parser's message, after `{where_} line L, column C: ` when it gives a
/// position; the line is made absolute (the parser counts from `first_line`).
fn yaml_error(err: &serde_saphyr::Error, where_: &str, doc: &str, first_line: usize) -> String {
    let msg = crate::yaml::parser_message(err);
    match err.location() {
        Some(l) => {
            let (line, column) = crate::yaml::text_position(
                doc,
                usize::try_from(l.line()).unwrap_or(usize::MAX).max(1),
                usize::try_from(l.column()).unwrap_or(usize::MAX),
            );
            let line = first_line.saturating_add(line - 1);
            format!("{where_}line {line}, column {column}: {msg}")
        }
        None => msg.to_string(),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Reads a required string field of a document for dispatching.
fn required_str(obj: &Map<String, Value>, key: &str) -> Result<String, String> {
    match obj.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
        None | Some(Value::Null) | Some(Value::String(_)) => Err(format!("document has no {key}")),
        Some(other) => Err(format!("{key} is {}, not a string", type_name(other))),
    }
}

fn convert_value(value: Value, loc: &Loc, out: &mut Vec<MigratedDocument>) {
    let obj = match value {
        Value::Object(obj) => obj,
        other => {
            out.push(loc.failed(format!(
                "document is {}, not a mapping with apiVersion, kind and metadata; not converted",
                type_name(&other)
            )));
            return;
        }
    };
    if loc.item.is_none()
        && !obj.contains_key("apiVersion")
        && !obj.contains_key("kind")
        && LEGACY_KEYS.iter().any(|k| obj.contains_key(*k))
    {
        convert_legacy_text(&obj, loc, out);
        return;
    }
    let (api_version, kind) = match (required_str(&obj, "apiVersion"), required_str(&obj, "kind")) {
        (Ok(a), Ok(k)) => (a, k),
        (Err(e), _) | (_, Err(e)) => {
            out.push(loc.failed(format!("{e}; not converted")));
            return;
        }
    };
    let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
    if group == GROUP {
        out.push(MigratedDocument::object(Vec::new(), Value::Object(obj)));
        return;
    }
    if kind == "List" || (kind.ends_with("List") && obj.contains_key("items")) {
        match obj.get("items") {
            Some(Value::Null) | None => {
                out.push(loc.failed(format!("{kind} has no items; nothing to convert")));
            }
            Some(Value::Array(items)) if items.is_empty() => {
                out.push(loc.failed(format!("{kind} has no items; nothing to convert")));
            }
            Some(Value::Array(items)) => {
                if loc.item.is_some() {
                    out.push(loc.failed(format!("{kind} inside a list; not converted")));
                    return;
                }
                for (i, item) in items.iter().enumerate() {
                    convert_value(item.clone(), &loc.item(i), out);
                }
            }
            Some(other) => out.push(loc.failed(format!(
                "{kind}: items is {}, not a list; not converted",
                type_name(other)
            ))),
        }
        return;
    }
    if group == METALLB_GROUP {
        convert_metallb(&obj, &api_version, version, &kind, loc, out);
        return;
    }
    if api_version == "v1" && kind == "ConfigMap" && convert_configmap(&obj, loc, out) {
        return;
    }
    if group == "apiextensions.k8s.io"
        && kind == "CustomResourceDefinition"
        && obj
            .get("spec")
            .and_then(|s| s.get("group"))
            .and_then(Value::as_str)
            == Some(METALLB_GROUP)
    {
        let name = obj
            .get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("(no name)");
        out.push(loc.failed(format!(
            "CustomResourceDefinition {name} belongs to MetalLB; not converted (install FerroLB's CRDs instead)"
        )));
        return;
    }
    out.push(pass_through(obj, &kind));
}

/// A document that is neither MetalLB's nor FerroLB's: copied unchanged.
fn pass_through(obj: Map<String, Value>, kind: &str) -> MigratedDocument {
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    let mut comments = vec![format!(
        "{kind} {name}: not a MetalLB object; copied unchanged"
    )];
    if meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        == Some(METALLB_NAMESPACE)
    {
        comments.push(format!(
            "{kind} {name} stays in namespace {METALLB_NAMESPACE}; FerroLB's objects are in {DEFAULT_NAMESPACE}"
        ));
    }
    MigratedDocument::object(comments, Value::Object(obj))
}

/// The FerroLB kinds a MetalLB kind maps to one to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    IPAddressPool,
    L2Advertisement,
    BGPAdvertisement,
    BGPPeer,
    BFDProfile,
    Community,
}

const POOL_FIELDS: &[&str] = &[
    "addresses",
    "autoAssign",
    "avoidBuggyIPs",
    "serviceAllocation",
];
const SERVICE_ALLOCATION_FIELDS: &[&str] = &[
    "priority",
    "namespaces",
    "namespaceSelectors",
    "serviceSelectors",
];
const L2_FIELDS: &[&str] = &[
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "serviceSelectors",
    "nodeSelectors",
    "preferredNodeSelectors",
    "interfaces",
];
const BGP_ADVERTISEMENT_FIELDS: &[&str] = &[
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
    "ipAddressPools",
    "ipAddressPoolSelectors",
    "serviceSelectors",
    "nodeSelectors",
    "peers",
];
const PEER_FIELDS: &[&str] = &[
    "myASN",
    "localASN",
    "peerASN",
    "dynamicASN",
    "peerAddress",
    "interface",
    "peerPort",
    "dualStackAddressFamily",
    "sourceAddress",
    "holdTime",
    "keepaliveTime",
    "connectTime",
    "routerID",
    "password",
    "passwordSecret",
    "bfdProfile",
    "ebgpMultiHop",
    "nodeSelectors",
    "vrf",
    "enableGracefulRestart",
    "disableMP",
];
const BFD_FIELDS: &[&str] = &[
    "receiveInterval",
    "transmitInterval",
    "detectMultiplier",
    "echoInterval",
    "echoMode",
    "passiveMode",
    "minimumTtl",
];
const COMMUNITY_FIELDS: &[&str] = &["communities"];

/// Fields of a deprecated AddressPool's `bgpAdvertisements` entries.
const ADDRESS_POOL_ADVERTISEMENT_FIELDS: &[&str] = &[
    "aggregationLength",
    "aggregationLengthV6",
    "localPref",
    "communities",
];

impl Kind {
    fn from_name(kind: &str) -> Option<Kind> {
        Some(match kind {
            "IPAddressPool" => Kind::IPAddressPool,
            "L2Advertisement" => Kind::L2Advertisement,
            "BGPAdvertisement" => Kind::BGPAdvertisement,
            "BGPPeer" => Kind::BGPPeer,
            "BFDProfile" => Kind::BFDProfile,
            "Community" => Kind::Community,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kind::IPAddressPool => "IPAddressPool",
            Kind::L2Advertisement => "L2Advertisement",
            Kind::BGPAdvertisement => "BGPAdvertisement",
            Kind::BGPPeer => "BGPPeer",
            Kind::BFDProfile => "BFDProfile",
            Kind::Community => "Community",
        }
    }

    /// FerroLB's apiVersion for the kind.
    fn api_version(self) -> String {
        let version = match self {
            Kind::BGPPeer => "v1beta2",
            _ => "v1beta1",
        };
        format!("{GROUP}/{version}")
    }

    /// MetalLB's versions of the kind this migration reads.
    fn metallb_versions(self) -> &'static [&'static str] {
        match self {
            Kind::BGPPeer => &["v1beta1", "v1beta2"],
            _ => &["v1beta1"],
        }
    }

    fn fields(self) -> &'static [&'static str] {
        match self {
            Kind::IPAddressPool => POOL_FIELDS,
            Kind::L2Advertisement => L2_FIELDS,
            Kind::BGPAdvertisement => BGP_ADVERTISEMENT_FIELDS,
            Kind::BGPPeer => PEER_FIELDS,
            Kind::BFDProfile => BFD_FIELDS,
            Kind::Community => COMMUNITY_FIELDS,
        }
    }

    /// Whether an object of the kind means nothing without a spec.
    fn needs_spec(self) -> bool {
        matches!(self, Kind::IPAddressPool | Kind::BGPPeer)
    }

    /// Checks that the spec has the types FerroLB reads; the first mismatch as
    /// `spec.field: reason`.
    fn check_spec(self, spec: &Map<String, Value>) -> Result<(), String> {
        use crate::crd::{
            BFDProfileSpec, BGPAdvertisementSpec, BGPPeerSpec, CommunitySpec, IPAddressPoolSpec,
            L2AdvertisementSpec,
        };
        let spec = Value::Object(spec.clone());
        match self {
            Kind::IPAddressPool => check_type::<IPAddressPoolSpec>(spec, "spec"),
            Kind::L2Advertisement => check_type::<L2AdvertisementSpec>(spec, "spec"),
            Kind::BGPAdvertisement => check_type::<BGPAdvertisementSpec>(spec, "spec"),
            Kind::BGPPeer => check_type::<BGPPeerSpec>(spec, "spec"),
            Kind::BFDProfile => check_type::<BFDProfileSpec>(spec, "spec"),
            Kind::Community => check_type::<CommunitySpec>(spec, "spec"),
        }
    }
}

/// Deserializes `value` as `T` to find the first field of the wrong type.
fn check_type<T: DeserializeOwned>(value: Value, prefix: &str) -> Result<(), String> {
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => Ok(()),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                prefix.to_string()
            } else {
                format!("{prefix}.{path}")
            };
            Err(format!("{field}: {}", e.into_inner()))
        }
    }
}

/// Adds a note when the spec does not have the types FerroLB reads.
fn note_type_errors(kind: Kind, spec: &Map<String, Value>, notes: &mut Vec<String>) {
    if let Err(e) = kind.check_spec(spec) {
        notes.push(format!(
            "{e}; FerroLB will refuse this object until it is fixed"
        ));
    }
}

/// The converted metadata of an object.
struct Meta {
    name: String,
    /// The namespace after renaming, if the object had one.
    namespace: Option<String>,
    /// Whether the namespace was `metallb-system`.
    renamed: bool,
    map: Map<String, Value>,
}

impl Meta {
    /// The same metadata under another name.
    fn renamed_to(&self, name: &str) -> Map<String, Value> {
        let mut map = self.map.clone();
        map.insert("name".into(), Value::String(name.to_string()));
        map
    }
}

/// Converts `metadata`; Err when the object has no usable name.
fn convert_metadata(
    obj: &Map<String, Value>,
    kind: &str,
    notes: &mut Vec<String>,
) -> Result<Meta, String> {
    let meta = match obj.get("metadata") {
        Some(Value::Object(m)) => m,
        None | Some(Value::Null) => return Err(format!("{kind} has no metadata.name")),
        Some(other) => {
            return Err(format!(
                "{kind}: metadata is {}, not a mapping",
                type_name(other)
            ));
        }
    };
    let name = match meta.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
        None | Some(Value::Null) | Some(Value::String(_)) => {
            return Err(format!("{kind} has no metadata.name"));
        }
        Some(other) => {
            return Err(format!(
                "{kind}: metadata.name is {}, not a string",
                type_name(other)
            ));
        }
    };
    let mut map = Map::new();
    map.insert("name".into(), Value::String(name.clone()));
    let mut namespace = None;
    let mut renamed = false;
    for (key, value) in meta {
        match (key.as_str(), value) {
            ("name", _) | (_, Value::Null) => {}
            ("namespace", Value::String(ns)) => {
                let ns = ns.trim();
                if ns == METALLB_NAMESPACE {
                    renamed = true;
                    notes.push(format!(
                        "namespace {METALLB_NAMESPACE} was renamed to {DEFAULT_NAMESPACE}"
                    ));
                    namespace = Some(DEFAULT_NAMESPACE.to_string());
                } else if !ns.is_empty() {
                    namespace = Some(ns.to_string());
                }
            }
            ("labels", Value::Object(labels)) => {
                if !labels.is_empty() {
                    map.insert(key.clone(), Value::Object(labels.clone()));
                }
            }
            ("annotations", Value::Object(annotations)) => {
                let mut annotations = annotations.clone();
                annotations.remove(LAST_APPLIED);
                if !annotations.is_empty() {
                    map.insert(key.clone(), Value::Object(annotations));
                }
            }
            ("namespace" | "labels" | "annotations", other) => notes.push(format!(
                "metadata.{key} is {}, which Kubernetes does not accept, and was dropped",
                type_name(other)
            )),
            (k, _) if SERVER_METADATA.contains(&k) => {}
            (k, _) => notes.push(format!("metadata.{k} was dropped")),
        }
    }
    if let Some(ns) = &namespace {
        map.insert("namespace".into(), Value::String(ns.clone()));
    }
    for key in ["labels", "annotations"] {
        if let Some(value) = map.get(key)
            && let Err(e) = check_type::<std::collections::BTreeMap<String, String>>(
                value.clone(),
                &format!("metadata.{key}"),
            )
        {
            notes.push(format!(
                "{e}; FerroLB will refuse this object until it is fixed"
            ));
        }
    }
    Ok(Meta {
        name,
        namespace,
        renamed,
        map,
    })
}

/// Keeps the non-null fields of `map` named in `allowed`; notes the others.
fn keep_fields(
    map: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
    notes: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        if allowed.contains(&key.as_str()) {
            out.insert(key.clone(), value.clone());
        } else {
            notes.push(format!(
                "field {prefix}.{key} is not supported by FerroLB and was dropped"
            ));
        }
    }
    out
}

/// Notes top-level keys other than apiVersion, kind, metadata, spec and status.
fn note_top_level(obj: &Map<String, Value>, notes: &mut Vec<String>) {
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "apiVersion" | "kind" | "metadata" | "spec" | "status"
        ) {
            notes.push(format!(
                "field {key} is not supported by FerroLB and was dropped"
            ));
        }
    }
}

fn build(kind: Kind, metadata: Map<String, Value>, spec: Map<String, Value>) -> Value {
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), Value::String(kind.api_version()));
    obj.insert("kind".into(), Value::String(kind.name().to_string()));
    obj.insert("metadata".into(), Value::Object(metadata));
    obj.insert("spec".into(), Value::Object(spec));
    Value::Object(obj)
}

fn convert_metallb(
    obj: &Map<String, Value>,
    api_version: &str,
    version: &str,
    kind: &str,
    loc: &Loc,
    out: &mut Vec<MigratedDocument>,
) {
    match (Kind::from_name(kind), kind) {
        (Some(k), _) if k.metallb_versions().contains(&version) => {
            out.push(convert_simple(obj, k, loc));
        }
        (_, "AddressPool") if matches!(version, "v1beta1" | "v1alpha1") => {
            convert_address_pool(obj, loc, out);
        }
        (_, "ServiceL2Status" | "ServiceBGPStatus" | "ConfigurationState") => {
            let name = obj
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("(no name)");
            out.push(loc.failed(format!(
                "{kind} {name} is runtime state written by MetalLB's speaker and controller; not converted, FerroLB's speaker writes its own"
            )));
        }
        (Some(_), _) | (_, "AddressPool") => out.push(loc.failed(format!(
            "{kind} in version {api_version} is not known to this migration; not converted"
        ))),
        (None, _) => out.push(loc.failed(format!(
            "MetalLB kind {kind} ({api_version}) has no FerroLB equivalent; not converted"
        ))),
    }
}

/// Spec of a document: Ok(None) when absent, Err when not a mapping.
fn spec_of<'a>(
    obj: &'a Map<String, Value>,
    kind: &str,
) -> Result<Option<&'a Map<String, Value>>, String> {
    match obj.get("spec") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(spec)) => Ok(Some(spec)),
        Some(other) => Err(format!(
            "{kind}: spec is {}, not a mapping; not converted",
            type_name(other)
        )),
    }
}

/// A MetalLB kind with a FerroLB twin.
fn convert_simple(obj: &Map<String, Value>, kind: Kind, loc: &Loc) -> MigratedDocument {
    let mut notes = Vec::new();
    let meta = match convert_metadata(obj, kind.name(), &mut notes) {
        Ok(m) => m,
        Err(e) => return loc.failed(format!("{e}; not converted")),
    };
    let described = format!("{} {}", kind.name(), meta.name);
    let source_spec = match spec_of(obj, &described) {
        Ok(Some(spec)) => spec.clone(),
        Ok(None) if kind.needs_spec() => {
            return loc.failed(format!("{described} has no spec; not converted"));
        }
        Ok(None) => Map::new(),
        Err(e) => return loc.failed(e),
    };
    note_top_level(obj, &mut notes);
    let mut spec = keep_fields(&source_spec, kind.fields(), "spec", &mut notes);
    if kind == Kind::IPAddressPool
        && let Some(Value::Object(alloc)) = spec.get("serviceAllocation")
    {
        let alloc = keep_fields(
            alloc,
            SERVICE_ALLOCATION_FIELDS,
            "spec.serviceAllocation",
            &mut notes,
        );
        spec.insert("serviceAllocation".into(), Value::Object(alloc));
    }
    if kind == Kind::BGPPeer {
        password_secret(&mut spec, &meta, &mut notes);
    }
    note_type_errors(kind, &spec, &mut notes);
    MigratedDocument::converted(notes, build(kind, meta.map, spec))
}

/// Moves a peer's passwordSecret out of metallb-system and reminds that the
/// Secret itself has to be created where FerroLB looks for it.
fn password_secret(spec: &mut Map<String, Value>, meta: &Meta, notes: &mut Vec<String>) {
    let Some(Value::Object(secret)) = spec.get_mut("passwordSecret") else {
        return;
    };
    let mut moved = meta.renamed && !secret.contains_key("namespace");
    if secret.get("namespace").and_then(Value::as_str) == Some(METALLB_NAMESPACE) {
        secret.insert(
            "namespace".into(),
            Value::String(DEFAULT_NAMESPACE.to_string()),
        );
        notes.push(format!(
            "spec.passwordSecret.namespace {METALLB_NAMESPACE} was changed to {DEFAULT_NAMESPACE}"
        ));
        moved = true;
    }
    if moved && let Some(name) = secret.get("name").and_then(Value::as_str) {
        notes.push(format!(
            "spec.passwordSecret: copy Secret {METALLB_NAMESPACE}/{name} to namespace {DEFAULT_NAMESPACE} (type kubernetes.io/basic-auth, key password)"
        ));
    }
}

/// The deprecated AddressPool kind: an IPAddressPool plus its advertisements.
fn convert_address_pool(obj: &Map<String, Value>, loc: &Loc, out: &mut Vec<MigratedDocument>) {
    let mut notes = Vec::new();
    let meta = match convert_metadata(obj, "AddressPool", &mut notes) {
        Ok(m) => m,
        Err(e) => {
            out.push(loc.failed(format!("{e}; not converted")));
            return;
        }
    };
    let described = format!("AddressPool {}", meta.name);
    let spec = match spec_of(obj, &described) {
        Ok(Some(spec)) => spec,
        Ok(None) => {
            out.push(loc.failed(format!("{described} has no spec; not converted")));
            return;
        }
        Err(e) => {
            out.push(loc.failed(e));
            return;
        }
    };
    note_top_level(obj, &mut notes);
    let mut pool_spec = Map::new();
    for (key, value) in spec {
        match key.as_str() {
            _ if value.is_null() => {}
            "addresses" | "autoAssign" | "avoidBuggyIPs" => {
                pool_spec.insert(key.clone(), value.clone());
            }
            "protocol" | "bgpAdvertisements" => {}
            other => notes.push(format!(
                "field spec.{other} is not supported by FerroLB and was dropped"
            )),
        }
    }
    let pool = PoolParts {
        meta,
        pool_spec,
        protocol: spec.get("protocol").cloned(),
        advertisements: spec.get("bgpAdvertisements").cloned(),
        field: "spec".to_string(),
        advertisements_field: "spec.bgpAdvertisements".to_string(),
    };
    out.extend(pool.split("deprecated AddressPool", notes));
}

/// An address pool in MetalLB's old shape, with camelCase field names.
struct PoolParts {
    meta: Meta,
    pool_spec: Map<String, Value>,
    protocol: Option<Value>,
    /// The `bgpAdvertisements` list; entries have camelCase keys.
    advertisements: Option<Value>,
    /// How notes name the pool's fields (`spec`, `data.config address-pools[0]`).
    field: String,
    /// How notes name the advertisements list.
    advertisements_field: String,
}

impl PoolParts {
    /// The IPAddressPool and its advertisements; `notes` go on the pool.
    fn split(self, what: &str, mut notes: Vec<String>) -> Vec<MigratedDocument> {
        let name = self.meta.name.clone();
        let field = self.field.clone();
        let ads_field = self.advertisements_field.clone();
        let mut docs = Vec::new();
        let mut created = Vec::new();
        match self.protocol.as_ref().and_then(Value::as_str).map(str::trim) {
            Some("layer2") => {
                if self
                    .advertisements
                    .as_ref()
                    .is_some_and(|a| a.as_array().is_none_or(|a| !a.is_empty()))
                {
                    notes.push(format!(
                        "{ads_field} only applies to protocol bgp and was dropped"
                    ));
                }
                let adv_name = format!("{name}-l2");
                let mut spec = Map::new();
                spec.insert("ipAddressPools".into(), Value::Array(vec![name.clone().into()]));
                created.push(format!("L2Advertisement {adv_name}"));
                docs.push(MigratedDocument::converted(
                    Vec::new(),
                    build(Kind::L2Advertisement, self.meta.renamed_to(&adv_name), spec),
                ));
            }
            Some("bgp") => {
                let entries: Vec<Value> = match &self.advertisements {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(list)) => list.clone(),
                    Some(other) => {
                        notes.push(format!(
                            "{ads_field} is {}, not a list, and was dropped; a default BGPAdvertisement was created",
                            type_name(other)
                        ));
                        Vec::new()
                    }
                };
                let single = entries.len() <= 1;
                let entries = if entries.is_empty() {
                    vec![Value::Object(Map::new())]
                } else {
                    entries
                };
                for (i, entry) in entries.iter().enumerate() {
                    let adv_name = if single {
                        format!("{name}-bgp")
                    } else {
                        format!("{name}-bgp-{}", i + 1)
                    };
                    let entry_field = format!("{ads_field}[{i}]");
                    let Value::Object(entry) = entry else {
                        notes.push(format!(
                            "{entry_field} is {}, not a mapping, and was dropped",
                            type_name(entry)
                        ));
                        continue;
                    };
                    let mut adv_notes = Vec::new();
                    let mut spec = keep_fields(
                        entry,
                        ADDRESS_POOL_ADVERTISEMENT_FIELDS,
                        &entry_field,
                        &mut adv_notes,
                    );
                    spec.insert("ipAddressPools".into(), Value::Array(vec![name.clone().into()]));
                    note_type_errors(Kind::BGPAdvertisement, &spec, &mut adv_notes);
                    if !adv_notes.is_empty() {
                        adv_notes.insert(0, format!("from {entry_field} of {what} {name}"));
                    }
                    created.push(format!("BGPAdvertisement {adv_name}"));
                    docs.push(MigratedDocument::converted(
                        adv_notes,
                        build(Kind::BGPAdvertisement, self.meta.renamed_to(&adv_name), spec),
                    ));
                }
            }
            Some(other) => notes.push(format!(
                "{field}.protocol {other:?} is neither layer2 nor bgp; no advertisement was created, add an L2Advertisement or BGPAdvertisement for IPAddressPool {name}"
            )),
            None => notes.push(format!(
                "{field}.protocol is missing; no advertisement was created, add an L2Advertisement or BGPAdvertisement for IPAddressPool {name}"
            )),
        }
        let mut summary = format!("{what} {name} was converted into IPAddressPool {name}");
        if !created.is_empty() {
            summary.push_str(" and ");
            summary.push_str(&created.join(", "));
        }
        notes.insert(0, summary);
        note_type_errors(Kind::IPAddressPool, &self.pool_spec, &mut notes);
        let pool = build(Kind::IPAddressPool, self.meta.map.clone(), self.pool_spec);
        docs.insert(0, MigratedDocument::converted(notes, pool));
        docs
    }
}

/// A v1 ConfigMap: converts the legacy MetalLB configuration when it holds one
/// (then true); false to copy the ConfigMap unchanged.
fn convert_configmap(cm: &Map<String, Value>, loc: &Loc, out: &mut Vec<MigratedDocument>) -> bool {
    let Some(config) = cm.get("data").and_then(|d| d.get("config")) else {
        return false;
    };
    let in_metallb_namespace = cm
        .get("metadata")
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        == Some(METALLB_NAMESPACE);
    let name = cm
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    let text = match config {
        Value::String(text) => text,
        other if in_metallb_namespace => {
            out.push(loc.failed(format!(
                "ConfigMap {name}: data.config is {}, not a string holding MetalLB's configuration; not converted",
                type_name(other)
            )));
            return true;
        }
        _ => return false,
    };
    let parsed = crate::yaml::from_str::<Value>(text);
    let config = match parsed {
        Ok(Value::Object(m))
            if in_metallb_namespace || LEGACY_KEYS.iter().any(|k| m.contains_key(*k)) =>
        {
            m
        }
        Ok(Value::Null) if in_metallb_namespace => Map::new(),
        Err(e) if in_metallb_namespace => {
            out.push(loc.failed(format!(
                "ConfigMap {name}: data.config is not valid YAML ({}); not converted",
                yaml_error(&e, "data.config ", text, 1)
            )));
            return true;
        }
        Ok(other) if in_metallb_namespace => {
            out.push(loc.failed(format!(
                "ConfigMap {name}: data.config holds {}, not a mapping; not converted",
                type_name(&other)
            )));
            return true;
        }
        _ => return false,
    };
    let head = format!(
        "the legacy MetalLB ConfigMap {} was converted into the objects that follow; the ConfigMap itself is not carried over",
        name.trim()
    );
    out.extend(convert_legacy(cm, &config, loc, head));
    true
}

/// Renames the keys of a legacy mapping (`pairs` is legacy → FerroLB); unknown
/// keys are noted and dropped, nulls dropped.
fn rename_keys(
    map: &Map<String, Value>,
    pairs: &[(&str, &str)],
    field: &str,
    notes: &mut Vec<String>,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        match pairs.iter().find(|(legacy, _)| legacy == key) {
            Some((_, new)) => {
                out.insert((*new).to_string(), value.clone());
            }
            None => notes.push(format!(
                "{field}.{key} is not supported by FerroLB and was dropped"
            )),
        }
    }
    out
}

const LEGACY_PEER_KEYS: &[(&str, &str)] = &[
    ("my-asn", "myASN"),
    ("peer-asn", "peerASN"),
    ("peer-address", "peerAddress"),
    ("peer-port", "peerPort"),
    ("source-address", "sourceAddress"),
    ("hold-time", "holdTime"),
    ("keepalive-time", "keepaliveTime"),
    ("router-id", "routerID"),
    ("password", "password"),
    ("bfd-profile", "bfdProfile"),
    ("ebgp-multihop", "ebgpMultiHop"),
    ("node-selectors", "nodeSelectors"),
];
const LEGACY_SELECTOR_KEYS: &[(&str, &str)] = &[
    ("match-labels", "matchLabels"),
    ("match-expressions", "matchExpressions"),
];
const LEGACY_BFD_KEYS: &[(&str, &str)] = &[
    ("name", "name"),
    ("receive-interval", "receiveInterval"),
    ("transmit-interval", "transmitInterval"),
    ("detect-multiplier", "detectMultiplier"),
    ("echo-interval", "echoInterval"),
    ("echo-mode", "echoMode"),
    ("passive-mode", "passiveMode"),
    ("minimum-ttl", "minimumTtl"),
];
const LEGACY_POOL_KEYS: &[(&str, &str)] = &[
    ("name", "name"),
    ("protocol", "protocol"),
    ("addresses", "addresses"),
    ("auto-assign", "autoAssign"),
    ("avoid-buggy-ips", "avoidBuggyIPs"),
    ("bgp-advertisements", "bgpAdvertisements"),
];
const LEGACY_ADVERTISEMENT_KEYS: &[(&str, &str)] = &[
    ("aggregation-length", "aggregationLength"),
    ("aggregation-length-v6", "aggregationLengthV6"),
    ("localpref", "localPref"),
    ("communities", "communities"),
];

/// The list under `key` of the legacy configuration.
fn legacy_list<'a>(
    config: &'a Map<String, Value>,
    key: &str,
    notes: &mut Vec<String>,
) -> &'a [Value] {
    match config.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(list)) => list,
        Some(other) => {
            notes.push(format!(
                "data.config {key} is {}, not a list, and was dropped",
                type_name(other)
            ));
            &[]
        }
    }
}

/// The mapping at `field` of a legacy list, or a note.
fn legacy_item<'a>(
    item: &'a Value,
    field: &str,
    notes: &mut Vec<String>,
) -> Option<&'a Map<String, Value>> {
    match item {
        Value::Object(m) => Some(m),
        other => {
            notes.push(format!(
                "data.config {field} is {}, not a mapping, and was dropped",
                type_name(other)
            ));
            None
        }
    }
}

/// The `name` of a legacy list item, or a note.
fn legacy_name(
    item: &mut Map<String, Value>,
    field: &str,
    notes: &mut Vec<String>,
) -> Option<String> {
    match item.remove("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_string()),
        _ => {
            notes.push(format!("data.config {field} has no name and was dropped"));
            None
        }
    }
}

/// A deterministic object name for a legacy peer, from its address.
fn peer_name(address: Option<&str>, n: usize, used: &mut BTreeSet<String>) -> String {
    let from_address = address.map(|a| {
        let dashed: String = a
            .trim()
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        dashed.trim_matches('-').to_string()
    });
    let mut name = match from_address {
        Some(a) if !a.is_empty() && a.len() <= 200 => format!("peer-{a}"),
        _ => format!("peer-{n}"),
    };
    let base = name.clone();
    let mut k = n;
    while used.contains(&name) {
        name = format!("{base}-{k}");
        k += 1;
    }
    used.insert(name.clone());
    name
}

/// The metadata of an object made from the legacy ConfigMap.
fn legacy_meta(name: &str, cm: &Meta) -> Meta {
    let namespace = cm.namespace.as_deref();
    let mut map = Map::new();
    map.insert("name".into(), Value::String(name.to_string()));
    if let Some(ns) = namespace {
        map.insert("namespace".into(), Value::String(ns.to_string()));
    }
    Meta {
        name: name.to_string(),
        namespace: namespace.map(str::to_string),
        renamed: cm.renamed,
        map,
    }
}

/// The legacy ConfigMap's configuration as FerroLB objects.
/// MetalLB's legacy configuration given as it is, without its ConfigMap
/// (what `kubectl get configmap config -n metallb-system -o
/// jsonpath='{.data.config}'` prints): converted as that ConfigMap is.
fn convert_legacy_text(config: &Map<String, Value>, loc: &Loc, out: &mut Vec<MigratedDocument>) {
    let mut cm = Map::new();
    cm.insert(
        "metadata".into(),
        serde_json::json!({"name": "config", "namespace": METALLB_NAMESPACE}),
    );
    let head = loc.at(format!(
        "MetalLB's legacy configuration (the data.config of its ConfigMap config in namespace {METALLB_NAMESPACE}) was converted into the objects that follow"
    ));
    out.extend(convert_legacy(&cm, config, loc, head));
}

/// The legacy configuration `config` of ConfigMap `cm` as FerroLB objects;
/// `head` is the first note.
fn convert_legacy(
    cm: &Map<String, Value>,
    config: &Map<String, Value>,
    loc: &Loc,
    head: String,
) -> Vec<MigratedDocument> {
    let mut head = vec![head];
    let cm_meta = match convert_metadata(cm, "ConfigMap", &mut Vec::new()) {
        Ok(m) => m,
        Err(e) => return vec![loc.failed(format!("{e}; not converted"))],
    };
    if cm_meta.renamed {
        head.push(format!(
            "namespace {METALLB_NAMESPACE} was renamed to {DEFAULT_NAMESPACE}"
        ));
    }
    for key in config.keys() {
        if !LEGACY_KEYS.contains(&key.as_str()) {
            head.push(format!(
                "data.config {key} is not supported by FerroLB and was dropped"
            ));
        }
    }
    let mut docs = Vec::new();

    // BFD profiles.
    for (i, item) in legacy_list(config, "bfd-profiles", &mut head)
        .iter()
        .enumerate()
    {
        let field = format!("bfd-profiles[{i}]");
        let Some(item) = legacy_item(item, &field, &mut head) else {
            continue;
        };
        let mut notes = Vec::new();
        let mut spec = rename_keys(
            item,
            LEGACY_BFD_KEYS,
            &format!("data.config {field}"),
            &mut notes,
        );
        let Some(name) = legacy_name(&mut spec, &field, &mut head) else {
            continue;
        };
        note_type_errors(Kind::BFDProfile, &spec, &mut notes);
        docs.push(MigratedDocument::converted(
            notes,
            build(Kind::BFDProfile, legacy_meta(&name, &cm_meta).map, spec),
        ));
    }

    // Community aliases. An alias that FerroLB would read as a community value
    // (a well-known name, or one with ':') is replaced by its value where used.
    let mut replaced: Vec<(String, String)> = Vec::new();
    match config.get("bgp-communities") {
        None | Some(Value::Null) => {}
        Some(Value::Object(aliases)) => {
            let mut notes = Vec::new();
            let mut list = Vec::new();
            for (alias, value) in aliases {
                let Some(value) = value.as_str() else {
                    notes.push(format!(
                        "data.config bgp-communities {alias} is {}, not a string, and was dropped",
                        type_name(value)
                    ));
                    continue;
                };
                if crate::community::CommunityValue::looks_like_value(alias) {
                    notes.push(format!(
                        "alias {alias} reads as a community value in FerroLB; it is not defined here and advertisements that used it name {value} instead"
                    ));
                    replaced.push((alias.clone(), value.to_string()));
                    continue;
                }
                let mut entry = Map::new();
                entry.insert("name".into(), Value::String(alias.clone()));
                entry.insert("value".into(), Value::String(value.to_string()));
                list.push(Value::Object(entry));
            }
            if !list.is_empty() || !notes.is_empty() {
                let mut spec = Map::new();
                spec.insert("communities".into(), Value::Array(list));
                docs.push(MigratedDocument::converted(
                    notes,
                    build(
                        Kind::Community,
                        legacy_meta("communities", &cm_meta).map,
                        spec,
                    ),
                ));
            }
        }
        Some(other) => head.push(format!(
            "data.config bgp-communities is {}, not a mapping, and was dropped",
            type_name(other)
        )),
    }

    // Peers.
    let mut used = BTreeSet::new();
    for (i, item) in legacy_list(config, "peers", &mut head).iter().enumerate() {
        let field = format!("peers[{i}]");
        let Some(item) = legacy_item(item, &field, &mut head) else {
            continue;
        };
        let mut notes = Vec::new();
        let mut spec = rename_keys(
            item,
            LEGACY_PEER_KEYS,
            &format!("data.config {field}"),
            &mut notes,
        );
        if let Some(Value::Array(selectors)) = spec.get("nodeSelectors") {
            let converted = selectors
                .iter()
                .enumerate()
                .map(|(j, sel)| match sel {
                    Value::Object(sel) => Value::Object(rename_keys(
                        sel,
                        LEGACY_SELECTOR_KEYS,
                        &format!("data.config {field}.node-selectors[{j}]"),
                        &mut notes,
                    )),
                    other => other.clone(),
                })
                .collect();
            spec.insert("nodeSelectors".into(), Value::Array(converted));
        }
        let name = peer_name(
            spec.get("peerAddress").and_then(Value::as_str),
            i + 1,
            &mut used,
        );
        note_type_errors(Kind::BGPPeer, &spec, &mut notes);
        docs.push(MigratedDocument::converted(
            notes,
            build(Kind::BGPPeer, legacy_meta(&name, &cm_meta).map, spec),
        ));
    }

    // Address pools.
    for (i, item) in legacy_list(config, "address-pools", &mut head)
        .iter()
        .enumerate()
    {
        let field = format!("address-pools[{i}]");
        let Some(item) = legacy_item(item, &field, &mut head) else {
            continue;
        };
        let mut notes = Vec::new();
        let mut spec = rename_keys(
            item,
            LEGACY_POOL_KEYS,
            &format!("data.config {field}"),
            &mut notes,
        );
        let Some(name) = legacy_name(&mut spec, &field, &mut head) else {
            continue;
        };
        let advertisements = spec.remove("bgpAdvertisements").map(|ads| match ads {
            Value::Array(list) => Value::Array(
                list.iter()
                    .enumerate()
                    .map(|(j, ad)| match ad {
                        Value::Object(ad) => {
                            let mut ad = rename_keys(
                                ad,
                                LEGACY_ADVERTISEMENT_KEYS,
                                &format!("data.config {field}.bgp-advertisements[{j}]"),
                                &mut notes,
                            );
                            replace_aliases(&mut ad, &replaced);
                            Value::Object(ad)
                        }
                        other => other.clone(),
                    })
                    .collect(),
            ),
            other => other,
        });
        let protocol = spec.remove("protocol");
        let pool = PoolParts {
            meta: legacy_meta(&name, &cm_meta),
            pool_spec: spec,
            protocol,
            advertisements,
            field: format!("data.config {field}"),
            advertisements_field: format!("data.config {field}.bgp-advertisements"),
        };
        docs.extend(pool.split("legacy address pool", notes));
    }

    if docs.is_empty() {
        head.push("data.config defines no objects".to_string());
        return vec![MigratedDocument {
            comments: head,
            ..MigratedDocument::default()
        }];
    }
    let first = &mut docs[0].comments;
    head.append(first);
    *first = head;
    docs
}

/// Replaces advertisement communities that name a replaced alias by its value.
fn replace_aliases(ad: &mut Map<String, Value>, replaced: &[(String, String)]) {
    if let Some(Value::Array(list)) = ad.get_mut("communities") {
        for c in list.iter_mut() {
            if let Some((_, value)) = replaced
                .iter()
                .find(|(alias, _)| Some(alias.as_str()) == c.as_str())
            {
                *c = Value::String(value.clone());
            }
        }
    }
}

/// A community alias `migrate` renamed.
struct Rename {
    namespace: String,
    old: String,
    new: String,
    /// The Community object that defines it.
    community: String,
    /// What FerroLB reads the old name as.
    reads_as: String,
}

/// The namespace of an output object, "" when it has none.
fn namespace_of(object: &Value) -> String {
    object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn is_kind(object: &Value, kind: Kind) -> bool {
    object.get("kind").and_then(Value::as_str) == Some(kind.name())
}

/// MetalLB reads a BGPAdvertisement's community as an alias first, FerroLB as
/// a community value first: an alias of a converted Community whose name
/// FerroLB reads as a value (a well-known name such as `no-export`, or one
/// with ':') would change meaning. Unless it is a well-known name with that
/// very value, it is renamed to `metallb-NAME`, and the converted
/// BGPAdvertisements of its namespace that name it are changed to match.
/// Returns one notice per rename.
fn rename_conflicting_aliases(docs: &mut [MigratedDocument], source_name: &str) -> Vec<String> {
    use crate::community::CommunityValue;
    // Every alias name in use, per namespace, so that new names are unique.
    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for object in docs.iter().filter_map(|d| d.object.as_ref()) {
        if !is_kind(object, Kind::Community) {
            continue;
        }
        let ns = namespace_of(object);
        for alias in object
            .pointer("/spec/communities")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = alias.get("name").and_then(Value::as_str) {
                taken.insert((ns.clone(), name.to_string()));
            }
        }
    }
    // (namespace, old name) -> new name, and where each was defined.
    let mut renamed: Vec<Rename> = Vec::new();
    for doc in docs.iter_mut().filter(|d| d.converted) {
        let Some(object) = doc.object.as_mut() else {
            continue;
        };
        if !is_kind(object, Kind::Community) {
            continue;
        }
        let ns = namespace_of(object);
        let community = name_of(object);
        let Some(list) = object
            .pointer_mut("/spec/communities")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (i, alias) in list.iter_mut().enumerate() {
            let Some(entry) = alias.as_object_mut() else {
                continue;
            };
            let (Some(name), value) = (
                entry
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                entry
                    .get("value")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            ) else {
                continue;
            };
            if !CommunityValue::looks_like_value(&name) {
                continue;
            }
            let parsed = value.as_deref().and_then(|v| CommunityValue::parse(v).ok());
            let known = CommunityValue::well_known(&name);
            if known.is_some() && parsed == known {
                continue;
            }
            let reads_as = match known {
                Some(k) => format!("the well-known community {k}"),
                None => "a community value".to_string(),
            };
            let new = match renamed.iter().find(|r| r.namespace == ns && r.old == name) {
                Some(r) => r.new.clone(),
                None => {
                    let base: String = name
                        .trim()
                        .chars()
                        .map(|c| {
                            if c == ':' || c.is_whitespace() {
                                '-'
                            } else {
                                c
                            }
                        })
                        .collect();
                    let mut new = format!("metallb-{base}");
                    let mut k = 2;
                    while taken.contains(&(ns.clone(), new.clone())) {
                        new = format!("metallb-{base}-{k}");
                        k += 1;
                    }
                    taken.insert((ns.clone(), new.clone()));
                    renamed.push(Rename {
                        namespace: ns.clone(),
                        old: name.clone(),
                        new: new.clone(),
                        community: community.clone(),
                        reads_as: reads_as.clone(),
                    });
                    new
                }
            };
            entry.insert("name".into(), Value::String(new.clone()));
            doc.comments.push(format!(
                "spec.communities[{i}].name {name} was renamed to {new}: FerroLB reads {name} as {reads_as}, while in MetalLB this alias means {}",
                value.as_deref().unwrap_or("(no value)")
            ));
        }
    }
    if renamed.is_empty() {
        return Vec::new();
    }
    // The converted advertisements that name a renamed alias.
    let mut changed: Vec<Vec<String>> = vec![Vec::new(); renamed.len()];
    for doc in docs.iter_mut().filter(|d| d.converted) {
        let Some(object) = doc.object.as_mut() else {
            continue;
        };
        if !is_kind(object, Kind::BGPAdvertisement) {
            continue;
        }
        let ns = namespace_of(object);
        let adv = name_of(object);
        let Some(list) = object
            .pointer_mut("/spec/communities")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for (i, c) in list.iter_mut().enumerate() {
            let Some(text) = c.as_str().map(str::to_string) else {
                continue;
            };
            if let Some(k) = renamed
                .iter()
                .position(|r| r.namespace == ns && r.old == text)
            {
                let new = &renamed[k].new;
                *c = Value::String(new.clone());
                doc.comments.push(format!(
                    "spec.communities[{i}] {text} was changed to {new}, the renamed alias of Community {}",
                    renamed[k].community
                ));
                if !changed[k].contains(&adv) {
                    changed[k].push(adv.clone());
                }
            }
        }
    }
    renamed
        .iter()
        .zip(changed)
        .map(|(r, advs)| {
            let (ns, old, new, community) = (&r.namespace, &r.old, &r.new, &r.community);
            let object = if ns.is_empty() {
                format!("Community {community}")
            } else {
                format!("Community {ns}/{community}")
            };
            let used = if advs.is_empty() {
                format!("no BGPAdvertisement in {source_name} names it")
            } else {
                format!("BGPAdvertisement {} changed to match", advs.join(", "))
            };
            let where_ = if ns.is_empty() {
                String::new()
            } else {
                format!(" in namespace {ns}")
            };
            format!(
                "{source_name}: {object}: community alias {old} was renamed to {new}, because FerroLB reads {old} as {}; {used}; change any other BGPAdvertisement{where_} that names {old} to name {new}",
                r.reads_as
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::Config;
    use crate::manifest::parse_stream;
    use crate::validate::validate;

    const ALL_KINDS: &str = include_str!("../testdata/metallb/v0.14-all-kinds.yaml");
    const LEGACY: &str = include_str!("../testdata/metallb/legacy-configmap.yaml");
    const ADDRESS_POOL: &str = include_str!("../testdata/metallb/addresspool-v1beta1.yaml");

    const RENAMED: &str = "namespace metallb-system was renamed to ferrolb-system";

    /// (apiVersion, kind, namespace, name) of every output object, None for
    /// documents without one.
    fn ids(m: &Migration) -> Vec<Option<(String, String, String, String)>> {
        m.documents
            .iter()
            .map(|d| {
                d.object.as_ref().map(|o| {
                    let s = |p: &str| {
                        o.pointer(p)
                            .and_then(Value::as_str)
                            .unwrap_or("-")
                            .to_string()
                    };
                    (
                        s("/apiVersion"),
                        s("/kind"),
                        s("/metadata/namespace"),
                        s("/metadata/name"),
                    )
                })
            })
            .collect()
    }

    fn id(api: &str, kind: &str, ns: &str, name: &str) -> Option<(String, String, String, String)> {
        Some((api.into(), kind.into(), ns.into(), name.into()))
    }

    /// The document holding `kind` `name`.
    fn doc<'a>(m: &'a Migration, kind: &str, name: &str) -> &'a MigratedDocument {
        m.documents
            .iter()
            .find(|d| {
                d.object.as_ref().is_some_and(|o| {
                    o["kind"] == kind && o.pointer("/metadata/name") == Some(&json!(name))
                })
            })
            .unwrap_or_else(|| panic!("no {kind} {name} in {m:#?}"))
    }

    fn spec<'a>(m: &'a Migration, kind: &str, name: &str) -> &'a Value {
        &doc(m, kind, name).object.as_ref().unwrap()["spec"]
    }

    /// The objects of `to_yaml()` read back the way FerroLB's manifest reader splits documents.
    fn reparse(yaml: &str) -> Vec<Value> {
        split_documents(yaml)
            .iter()
            .map(|d| {
                crate::yaml::from_str::<Value>(d.text)
                    .unwrap_or_else(|e| panic!("document {} does not parse: {e}\n{yaml}", d.index))
            })
            .collect()
    }

    fn assert_round_trip(m: &Migration) {
        let yaml = m.to_yaml();
        let expected: Vec<Value> = m
            .documents
            .iter()
            .filter_map(|d| d.object.clone())
            .collect();
        assert_eq!(reparse(&yaml), expected, "{yaml}");
    }

    /// Loads the output like `ferrolb-controller validate` does and returns its errors.
    fn validation_errors(yaml: &str) -> Vec<String> {
        let parsed = parse_stream(yaml, "migrated.yaml");
        let mut problems = parsed.problems;
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut problems);
        problems.extend(validate(&cfg));
        problems
            .iter()
            .filter(|p| p.is_error())
            .map(|p| p.to_string())
            .collect()
    }

    #[test]
    fn migrate_v014_sample_objects() {
        let m = migrate(ALL_KINDS, "v0.14-all-kinds.yaml");
        let v1 = "ferrolb.io/v1beta1";
        let v2 = "ferrolb.io/v1beta2";
        let ns = "ferrolb-system";
        assert_eq!(
            ids(&m),
            vec![
                id(v1, "IPAddressPool", ns, "production"),
                id(v1, "IPAddressPool", ns, "office"),
                id(v1, "IPAddressPool", ns, "datacenter"),
                id(v1, "L2Advertisement", ns, "office"),
                id(v1, "Community", ns, "communities"),
                id(v1, "BGPAdvertisement", ns, "production"),
                id(v1, "BGPAdvertisement", ns, "datacenter-summary"),
                id(v1, "BFDProfile", ns, "fast"),
                id(v2, "BGPPeer", ns, "tor-a"),
                id(v2, "BGPPeer", ns, "tor-b"),
                None,
            ]
        );
        // The pool: metadata cleaned of server fields and last-applied, status gone.
        assert_eq!(
            doc(&m, "IPAddressPool", "production").object,
            Some(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {
                    "name": "production",
                    "namespace": "ferrolb-system",
                    "labels": {"tier": "production"},
                    "annotations": {"owner": "network-team"},
                },
                "spec": {
                    "addresses": ["198.51.100.0/25", "203.0.113.10-203.0.113.20", "2001:db8:1::/120"],
                    "autoAssign": true,
                    "avoidBuggyIPs": false,
                    "serviceAllocation": {
                        "priority": 50,
                        "namespaces": ["web", "shop"],
                        "namespaceSelectors": [{"matchLabels": {"environment": "production"}}],
                        "serviceSelectors": [{"matchExpressions": [
                            {"key": "exposure", "operator": "In", "values": ["public"]}
                        ]}],
                    },
                },
            }))
        );
        assert_eq!(
            *spec(&m, "L2Advertisement", "office"),
            json!({
                "ipAddressPools": ["office"],
                "interfaces": ["eth0", "bond0.100"],
                "nodeSelectors": [{
                    "matchLabels": {"kubernetes.io/os": "linux"},
                    "matchExpressions": [
                        {"key": "node-role.kubernetes.io/control-plane", "operator": "DoesNotExist"}
                    ],
                }],
            })
        );
        assert_eq!(
            *spec(&m, "Community", "communities"),
            json!({"communities": [
                {"name": "edge", "value": "65000:300"},
                {"name": "big", "value": "large:64500:1:2"},
            ]})
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "production"),
            json!({
                "ipAddressPools": ["production"],
                "aggregationLength": 32,
                "aggregationLengthV6": 128,
                "localPref": 100,
                "communities": ["65535:65282", "large:1:2:3", "edge"],
                "peers": ["tor-a", "tor-b"],
            })
        );
        assert_eq!(
            *spec(&m, "BFDProfile", "fast"),
            json!({
                "receiveInterval": 300,
                "transmitInterval": 300,
                "detectMultiplier": 3,
                "echoMode": false,
                "passiveMode": false,
                "minimumTtl": 254,
            })
        );
        assert_eq!(
            *spec(&m, "BGPPeer", "tor-a"),
            json!({
                "myASN": 64500,
                "peerASN": 64501,
                "peerAddress": "203.0.113.1",
                "peerPort": 179,
                "holdTime": "90s",
                "keepaliveTime": "30s",
                "routerID": "198.51.100.250",
                "bfdProfile": "fast",
                "ebgpMultiHop": true,
                "passwordSecret": {"name": "tor-a-password", "namespace": "ferrolb-system"},
                "nodeSelectors": [{"matchLabels": {"rack": "r1"}}],
            })
        );
        // v1beta1 BGPPeer: same fields, nodeSelectors copied as they are.
        assert_eq!(
            *spec(&m, "BGPPeer", "tor-b"),
            json!({
                "myASN": 64500,
                "peerASN": 64500,
                "peerAddress": "2001:db8::2",
                "sourceAddress": "2001:db8::10",
                "holdTime": "180s",
                "keepaliveTime": "60s",
                "password": "example-only",
                "nodeSelectors": [{
                    "matchLabels": {"rack": "r2"},
                    "matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-9"]}
                    ],
                }],
            })
        );
    }

    #[test]
    fn migrate_v014_sample_comments() {
        let m = migrate(ALL_KINDS, "v0.14-all-kinds.yaml");
        for d in &m.documents[..8] {
            assert_eq!(d.comments, vec![RENAMED], "{d:?}");
        }
        assert_eq!(
            doc(&m, "BGPPeer", "tor-a").comments,
            vec![
                RENAMED,
                "spec.passwordSecret.namespace metallb-system was changed to ferrolb-system",
                "spec.passwordSecret: copy Secret metallb-system/tor-a-password to namespace ferrolb-system (type kubernetes.io/basic-auth, key password)",
            ]
        );
        assert_eq!(doc(&m, "BGPPeer", "tor-b").comments, vec![RENAMED]);
        assert_eq!(
            m.documents[10].comments,
            vec![
                "v0.14-all-kinds.yaml:185 (document 11): ServiceL2Status l2-8x2kq is runtime state written by MetalLB's speaker and controller; not converted, FerroLB's speaker writes its own"
            ]
        );
        assert_eq!(m.comment_count(), 13);
    }

    #[test]
    fn migrate_legacy_configmap() {
        let m = migrate(LEGACY, "legacy-configmap.yaml");
        let v1 = "ferrolb.io/v1beta1";
        let ns = "ferrolb-system";
        assert_eq!(
            ids(&m),
            vec![
                id(v1, "BFDProfile", ns, "fast"),
                id(v1, "Community", ns, "communities"),
                id("ferrolb.io/v1beta2", "BGPPeer", ns, "peer-203-0-113-1"),
                id("ferrolb.io/v1beta2", "BGPPeer", ns, "peer-2001-db8--2"),
                id(v1, "IPAddressPool", ns, "office"),
                id(v1, "L2Advertisement", ns, "office-l2"),
                id(v1, "IPAddressPool", ns, "production"),
                id(v1, "BGPAdvertisement", ns, "production-bgp-1"),
                id(v1, "BGPAdvertisement", ns, "production-bgp-2"),
            ]
        );
        assert_eq!(
            *spec(&m, "BGPPeer", "peer-203-0-113-1"),
            json!({
                "myASN": 64500,
                "peerASN": 64501,
                "peerAddress": "203.0.113.1",
                "holdTime": "90s",
                "keepaliveTime": "30s",
                "routerID": "198.51.100.250",
                "bfdProfile": "fast",
                "ebgpMultiHop": true,
                "nodeSelectors": [{
                    "matchLabels": {"rack": "r1"},
                    "matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["node-9"]}
                    ],
                }],
            })
        );
        assert_eq!(
            *spec(&m, "BGPPeer", "peer-2001-db8--2"),
            json!({
                "myASN": 64500,
                "peerASN": 64500,
                "peerAddress": "2001:db8::2",
                "peerPort": 1179,
                "sourceAddress": "2001:db8::10",
                "password": "example-only",
            })
        );
        assert_eq!(
            *spec(&m, "BFDProfile", "fast"),
            json!({
                "receiveInterval": 300,
                "transmitInterval": 300,
                "detectMultiplier": 3,
                "echoMode": false,
                "passiveMode": true,
                "minimumTtl": 254,
            })
        );
        // no-advertise is a well-known community in FerroLB: not an alias.
        assert_eq!(
            *spec(&m, "Community", "communities"),
            json!({"communities": [{"name": "edge", "value": "65000:300"}]})
        );
        assert_eq!(
            *spec(&m, "IPAddressPool", "office"),
            json!({"addresses": ["198.51.100.192/27", "198.51.100.230-198.51.100.240"]})
        );
        assert_eq!(
            *spec(&m, "L2Advertisement", "office-l2"),
            json!({"ipAddressPools": ["office"]})
        );
        assert_eq!(
            *spec(&m, "IPAddressPool", "production"),
            json!({
                "addresses": ["203.0.113.0/25", "2001:db8:1::/120"],
                "autoAssign": false,
                "avoidBuggyIPs": true,
            })
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "production-bgp-1"),
            json!({
                "aggregationLength": 32,
                "localPref": 100,
                "communities": ["edge", "65535:65282"],
                "ipAddressPools": ["production"],
            })
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "production-bgp-2"),
            json!({
                "aggregationLength": 25,
                "aggregationLengthV6": 120,
                "communities": ["65000:400"],
                "ipAddressPools": ["production"],
            })
        );
        let comments: Vec<Vec<String>> = m.documents.iter().map(|d| d.comments.clone()).collect();
        assert_eq!(
            comments,
            [
                vec![
                    "the legacy MetalLB ConfigMap config was converted into the objects that follow; the ConfigMap itself is not carried over".to_string(),
                    RENAMED.to_string(),
                ],
                vec!["alias no-advertise reads as a community value in FerroLB; it is not defined here and advertisements that used it name 65535:65282 instead".to_string()],
                vec![],
                vec![],
                vec!["legacy address pool office was converted into IPAddressPool office and L2Advertisement office-l2".to_string()],
                vec![],
                vec!["legacy address pool production was converted into IPAddressPool production and BGPAdvertisement production-bgp-1, BGPAdvertisement production-bgp-2".to_string()],
                vec![],
                vec![],
            ]
        );
    }

    #[test]
    fn migrate_legacy_configuration_text_as_its_configmap() {
        // What `kubectl get cm config -n metallb-system -o jsonpath='{.data.config}'` prints.
        let cm: Value = serde_saphyr::from_str(LEGACY).unwrap();
        let text = cm["data"]["config"].as_str().unwrap();
        assert!(text.starts_with("peers:"), "{text}");
        let from_text = migrate(text, "config.yaml");
        let from_cm = migrate(LEGACY, "legacy-configmap.yaml");
        let objects = |m: &Migration| -> Vec<Value> {
            m.documents
                .iter()
                .filter_map(|d| d.object.clone())
                .collect()
        };
        assert_eq!(objects(&from_text), objects(&from_cm));
        assert_eq!(objects(&from_text).len(), 9);
        assert!(from_text.documents.iter().all(|d| d.object.is_some()));
        // The same notes, but the first, which says what was read.
        let comments = |m: &Migration| -> Vec<Vec<String>> {
            m.documents.iter().map(|d| d.comments.clone()).collect()
        };
        let (mut a, mut b) = (comments(&from_text), comments(&from_cm));
        assert_eq!(
            a[0].remove(0),
            "config.yaml:1 (document 1): MetalLB's legacy configuration (the data.config of its ConfigMap config in namespace metallb-system) was converted into the objects that follow"
        );
        b[0].remove(0);
        assert_eq!(a, b);
        assert!(validation_errors(&from_text.to_yaml()).is_empty());
        // Only the legacy keys make a document without apiVersion and kind
        // legacy configuration; an empty one converts to nothing, and says so.
        let m = migrate("peers: []\n", "empty.yaml");
        assert_eq!(m.documents.len(), 1);
        assert_eq!(m.documents[0].object, None);
        assert_eq!(
            m.documents[0].comments.last().map(String::as_str),
            Some("data.config defines no objects")
        );
        let m = migrate("listen: 8080\n", "other.yaml");
        assert_eq!(
            m.documents[0].comments,
            ["other.yaml:1 (document 1): document has no apiVersion; not converted"]
        );
    }

    #[test]
    fn migrate_legacy_unknown_and_broken_entries() {
        let input = r#"apiVersion: v1
kind: ConfigMap
metadata:
  name: config
data:
  config: |
    peers:
    - peer-address: 192.0.2.1
      peer-asn: 64501
      my-asn: 64500
      color: blue
      node-selectors:
      - match-labels: {rack: r1}
        match-fields: {x: y}
    - peer-address: 192.0.2.1
      peer-asn: 64502
      my-asn: 64500
    - peer-asn: 64503
      my-asn: 64500
      peer-address: 5
    - just a string
    bfd-profiles:
    - receive-interval: 300
    address-pools:
    - name: a
      protocol: layer3
      addresses: [192.0.2.128/26]
    - name: b
      addresses: [192.0.2.192/26]
      bgp-advertisements: [{localpref: 5}]
    - name: c
      protocol: layer2
      addresses: [192.0.2.64/27]
      bgp-advertisements: [{localpref: 5}]
      shared: true
    bgp-communities: [1, 2]
    extra-key: 1
"#;
        let m = migrate(input, "in.yaml");
        assert_eq!(
            ids(&m),
            vec![
                id("ferrolb.io/v1beta2", "BGPPeer", "-", "peer-192-0-2-1"),
                id("ferrolb.io/v1beta2", "BGPPeer", "-", "peer-192-0-2-1-2"),
                id("ferrolb.io/v1beta2", "BGPPeer", "-", "peer-3"),
                id("ferrolb.io/v1beta1", "IPAddressPool", "-", "a"),
                id("ferrolb.io/v1beta1", "IPAddressPool", "-", "b"),
                id("ferrolb.io/v1beta1", "IPAddressPool", "-", "c"),
                id("ferrolb.io/v1beta1", "L2Advertisement", "-", "c-l2"),
            ]
        );
        assert_eq!(
            m.documents[0].comments,
            vec![
                "the legacy MetalLB ConfigMap config was converted into the objects that follow; the ConfigMap itself is not carried over",
                "data.config extra-key is not supported by FerroLB and was dropped",
                "data.config bfd-profiles[0] has no name and was dropped",
                "data.config bgp-communities is a list, not a mapping, and was dropped",
                "data.config peers[3] is a string, not a mapping, and was dropped",
                "data.config peers[0].color is not supported by FerroLB and was dropped",
                "data.config peers[0].node-selectors[0].match-fields is not supported by FerroLB and was dropped",
            ]
        );
        assert_eq!(
            *spec(&m, "BGPPeer", "peer-192-0-2-1"),
            json!({"peerAddress": "192.0.2.1", "peerASN": 64501, "myASN": 64500,
                   "nodeSelectors": [{"matchLabels": {"rack": "r1"}}]})
        );
        assert_eq!(
            doc(&m, "BGPPeer", "peer-3").comments,
            vec![
                "spec.peerAddress: invalid type: integer `5`, expected a string; FerroLB will refuse this object until it is fixed"
            ]
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "a").comments,
            vec![
                "legacy address pool a was converted into IPAddressPool a",
                "data.config address-pools[0].protocol \"layer3\" is neither layer2 nor bgp; no advertisement was created, add an L2Advertisement or BGPAdvertisement for IPAddressPool a",
            ]
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "b").comments,
            vec![
                "legacy address pool b was converted into IPAddressPool b",
                "data.config address-pools[1].protocol is missing; no advertisement was created, add an L2Advertisement or BGPAdvertisement for IPAddressPool b",
            ]
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "c").comments,
            vec![
                "legacy address pool c was converted into IPAddressPool c and L2Advertisement c-l2",
                "data.config address-pools[2].shared is not supported by FerroLB and was dropped",
                "data.config address-pools[2].bgp-advertisements only applies to protocol bgp and was dropped",
            ]
        );
        assert_round_trip(&m);
    }

    #[test]
    fn migrate_legacy_configmap_edge_cases() {
        // Broken data.config in metallb-system: not converted, and said why.
        let m = migrate(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: \"peers: [\"\n",
            "cm.yaml",
        );
        assert_eq!(m.documents.len(), 1);
        assert_eq!(m.documents[0].object, None);
        assert_eq!(
            m.documents[0].comments,
            vec![
                "cm.yaml:1 (document 1): ConfigMap config: data.config is not valid YAML (data.config line 1, column 8: unclosed bracket '['); not converted"
            ]
        );
        // An empty configuration.
        let m = migrate(
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  config: \"\"\n",
            "cm.yaml",
        );
        assert_eq!(m.documents.len(), 1);
        assert_eq!(m.documents[0].object, None);
        assert_eq!(
            m.documents[0].comments.last().map(String::as_str),
            Some("data.config defines no objects")
        );
        // Someone else's ConfigMap with a `config` key, and one without: unchanged.
        for text in [
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: web}\ndata:\n  config: \"listen: 8080\"\n",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: config, namespace: metallb-system}\ndata:\n  other: x\n",
        ] {
            let m = migrate(text, "cm.yaml");
            let original: Value = serde_saphyr::from_str(text).unwrap();
            assert_eq!(m.documents.len(), 1);
            assert_eq!(m.documents[0].object.as_ref(), Some(&original));
            assert!(
                m.documents[0].comments[0].ends_with(": not a MetalLB object; copied unchanged"),
                "{:?}",
                m.documents[0].comments
            );
        }
    }

    #[test]
    fn migrate_address_pool_kind() {
        let m = migrate(ADDRESS_POOL, "addresspool-v1beta1.yaml");
        let v1 = "ferrolb.io/v1beta1";
        let ns = "ferrolb-system";
        assert_eq!(
            ids(&m),
            vec![
                id(v1, "IPAddressPool", ns, "office"),
                id(v1, "L2Advertisement", ns, "office-l2"),
                id(v1, "IPAddressPool", ns, "production"),
                id(v1, "BGPAdvertisement", ns, "production-bgp-1"),
                id(v1, "BGPAdvertisement", ns, "production-bgp-2"),
                id(v1, "IPAddressPool", ns, "ipv6"),
                id(v1, "BGPAdvertisement", ns, "ipv6-bgp"),
            ]
        );
        assert_eq!(
            *spec(&m, "IPAddressPool", "office"),
            json!({"addresses": ["198.51.100.0/26", "198.51.100.100-198.51.100.110"]})
        );
        assert_eq!(
            *spec(&m, "L2Advertisement", "office-l2"),
            json!({"ipAddressPools": ["office"]})
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "production").object,
            Some(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "production", "namespace": "ferrolb-system", "labels": {"tier": "production"}},
                "spec": {"addresses": ["203.0.113.0/24"], "autoAssign": false, "avoidBuggyIPs": true},
            }))
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "production-bgp-1"),
            json!({"aggregationLength": 24, "localPref": 100, "communities": ["65535:65281"], "ipAddressPools": ["production"]})
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "production-bgp-2"),
            json!({"aggregationLength": 32, "localPref": 200, "ipAddressPools": ["production"]})
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "ipv6-bgp"),
            json!({"ipAddressPools": ["ipv6"]})
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "production").comments,
            vec![
                "deprecated AddressPool production was converted into IPAddressPool production and BGPAdvertisement production-bgp-1, BGPAdvertisement production-bgp-2",
                RENAMED,
            ]
        );
        assert_eq!(
            doc(&m, "IPAddressPool", "office").comments,
            vec![
                "deprecated AddressPool office was converted into IPAddressPool office and L2Advertisement office-l2",
                RENAMED,
            ]
        );
        assert!(
            doc(&m, "BGPAdvertisement", "production-bgp-1")
                .comments
                .is_empty()
        );
        assert_eq!(m.comment_count(), 6);
    }

    #[test]
    fn migrate_address_pool_with_odd_advertisements() {
        let input = "apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: p}
spec:
  protocol: bgp
  addresses: [192.0.2.0/24]
  bgpAdvertisements:
    - {aggregationLength: 24, peers: [x]}
    - 7
    - {aggregationLength: wide}
";
        let m = migrate(input, "in.yaml");
        assert_eq!(
            ids(&m),
            vec![
                id("ferrolb.io/v1beta1", "IPAddressPool", "-", "p"),
                id("ferrolb.io/v1beta1", "BGPAdvertisement", "-", "p-bgp-1"),
                id("ferrolb.io/v1beta1", "BGPAdvertisement", "-", "p-bgp-3"),
            ]
        );
        assert_eq!(
            m.documents[0].comments,
            vec![
                "deprecated AddressPool p was converted into IPAddressPool p and BGPAdvertisement p-bgp-1, BGPAdvertisement p-bgp-3",
                "spec.bgpAdvertisements[1] is a number, not a mapping, and was dropped",
            ]
        );
        assert_eq!(
            m.documents[1].comments,
            vec![
                "from spec.bgpAdvertisements[0] of deprecated AddressPool p",
                "field spec.bgpAdvertisements[0].peers is not supported by FerroLB and was dropped",
            ]
        );
        assert_eq!(
            m.documents[2].comments,
            vec![
                "from spec.bgpAdvertisements[2] of deprecated AddressPool p",
                "spec.aggregationLength: invalid type: string \"wide\", expected i32; FerroLB will refuse this object until it is fixed",
            ]
        );
    }

    #[test]
    fn migrate_drops_unsupported_fields_with_a_comment() {
        let input = "apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: p
  namespace: lb
  finalizers: [x]
  managedFields: [{manager: kubectl}]
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: '{}'
spec:
  addresses: [192.0.2.0/28]
  futureField: 1
  unset: null
  serviceAllocation:
    priority: 1
    weight: 3
extra: true
status:
  assignedIPv4: 1
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: r, namespace: metallb-system}
spec:
  myASN: 64500
  peerASN: 64501
  peerAddress: 192.0.2.1
  connectTime: 5s
  vrf: red
  passwordSecret: {name: s}
  ttl: 3
";
        let m = migrate(input, "in.yaml");
        assert_eq!(
            m.documents[0].object,
            Some(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "IPAddressPool",
                "metadata": {"name": "p", "namespace": "lb"},
                "spec": {"addresses": ["192.0.2.0/28"], "serviceAllocation": {"priority": 1}},
            }))
        );
        assert_eq!(
            m.documents[0].comments,
            vec![
                "metadata.finalizers was dropped",
                "field extra is not supported by FerroLB and was dropped",
                "field spec.futureField is not supported by FerroLB and was dropped",
                "field spec.serviceAllocation.weight is not supported by FerroLB and was dropped",
            ]
        );
        assert_eq!(
            *spec(&m, "BGPPeer", "r"),
            json!({"myASN": 64500, "peerASN": 64501, "peerAddress": "192.0.2.1",
                   "connectTime": "5s", "vrf": "red", "passwordSecret": {"name": "s"}})
        );
        assert_eq!(
            m.documents[1].comments,
            vec![
                RENAMED,
                "field spec.ttl is not supported by FerroLB and was dropped",
                "spec.passwordSecret: copy Secret metallb-system/s to namespace ferrolb-system (type kubernetes.io/basic-auth, key password)",
            ]
        );
        assert_eq!(m.comment_count(), 7);
    }

    #[test]
    fn migrate_garbage_gives_comments_not_panics() {
        let input = "a: [
---
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
---
just text
---
kind: IPAddressPool
metadata: {name: x}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: nospec, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: five}
spec:
  addresses: 5
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: listspec}
spec: [1, 2]
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {namespace: metallb-system}
---
apiVersion: 7
kind: IPAddressPool
---
apiVersion: metallb.io/v1beta1
kind: BGPPeer
metadata: {name: [a]}
spec: {myASN: 1}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: all, labels: [x], annotations: {a: 1}}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: b}
spec: {receiveInterval: -1, echoMode: yes}
";
        let m = migrate(input, "bad.yaml");
        let comments: Vec<&Vec<String>> = m.documents.iter().map(|d| &d.comments).collect();
        assert_eq!(
            comments,
            vec![
                &vec!["bad.yaml:1 (document 1): not valid YAML (line 1, column 4: unclosed bracket '['); not converted".to_string()],
                &vec!["bad.yaml:3 (document 2): document is a list, not a mapping with apiVersion, kind and metadata; not converted".to_string()],
                &vec!["bad.yaml:6 (document 3): document is a string, not a mapping with apiVersion, kind and metadata; not converted".to_string()],
                &vec!["bad.yaml:8 (document 4): document has no apiVersion; not converted".to_string()],
                &vec!["bad.yaml:11 (document 5): IPAddressPool nospec has no spec; not converted".to_string()],
                &vec!["spec.addresses: invalid type: integer `5`, expected a sequence; FerroLB will refuse this object until it is fixed".to_string()],
                &vec!["bad.yaml:21 (document 7): IPAddressPool listspec: spec is a list, not a mapping; not converted".to_string()],
                &vec!["bad.yaml:26 (document 8): L2Advertisement has no metadata.name; not converted".to_string()],
                &vec!["bad.yaml:30 (document 9): apiVersion is a number, not a string; not converted".to_string()],
                &vec!["bad.yaml:33 (document 10): BGPPeer: metadata.name is a list, not a string; not converted".to_string()],
                &vec![
                    "metadata.labels is a list, which Kubernetes does not accept, and was dropped".to_string(),
                    "metadata.annotations.a: invalid type: integer `1`, expected a string; FerroLB will refuse this object until it is fixed".to_string(),
                ],
                &vec!["spec.receiveInterval: invalid value: integer `-1`, expected u32; FerroLB will refuse this object until it is fixed".to_string()],
            ]
        );
        let with_objects: Vec<usize> = m
            .documents
            .iter()
            .enumerate()
            .filter(|(_, d)| d.object.is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(with_objects, vec![5, 10, 11]);
        // The wrong type is carried over as it is, for the reader to fix.
        assert_eq!(*spec(&m, "IPAddressPool", "five"), json!({"addresses": 5}));
        // An L2Advertisement without spec announces every pool: converted.
        assert_eq!(*spec(&m, "L2Advertisement", "all"), json!({}));
        assert_round_trip(&m);
    }

    #[test]
    fn migrate_unknown_kinds_versions_and_other_objects() {
        let input = "apiVersion: metallb.io/v1beta3
kind: IPAddressPool
metadata: {name: p}
spec: {addresses: [192.0.2.0/24]}
---
apiVersion: metallb.io/v1beta1
kind: MetalLB
metadata: {name: metallb, namespace: metallb-system}
---
apiVersion: metallb.io/v1beta1
kind: ServiceBGPStatus
metadata: {name: bgp-x, namespace: web}
---
apiVersion: metallb.io/v1
kind: AddressPool
metadata: {name: old}
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: {name: already, namespace: ferrolb-system, uid: abc}
spec: {addresses: [192.0.2.0/24]}
status: {assignedIPv4: 3}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: metallb-system}
spec: {type: LoadBalancer}
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: ipaddresspools.metallb.io}
spec: {group: metallb.io}
";
        let m = migrate(input, "x.yaml");
        assert_eq!(m.documents.len(), 7);
        let objects: Vec<bool> = m.documents.iter().map(|d| d.object.is_some()).collect();
        assert_eq!(objects, [false, false, false, false, true, true, false]);
        let comments: Vec<&[String]> = m.documents.iter().map(|d| d.comments.as_slice()).collect();
        assert_eq!(
            comments,
            [
                &["x.yaml:1 (document 1): IPAddressPool in version metallb.io/v1beta3 is not known to this migration; not converted".to_string()][..],
                &["x.yaml:6 (document 2): MetalLB kind MetalLB (metallb.io/v1beta1) has no FerroLB equivalent; not converted".to_string()],
                &["x.yaml:10 (document 3): ServiceBGPStatus bgp-x is runtime state written by MetalLB's speaker and controller; not converted, FerroLB's speaker writes its own".to_string()],
                &["x.yaml:14 (document 4): AddressPool in version metallb.io/v1 is not known to this migration; not converted".to_string()],
                &[],
                &[
                    "Service web: not a MetalLB object; copied unchanged".to_string(),
                    "Service web stays in namespace metallb-system; FerroLB's objects are in ferrolb-system".to_string(),
                ],
                &["x.yaml:29 (document 7): CustomResourceDefinition ipaddresspools.metallb.io belongs to MetalLB; not converted (install FerroLB's CRDs instead)".to_string()],
            ]
        );
        // FerroLB and core objects are copied exactly.
        let originals: Vec<Value> = split_documents(input)
            .iter()
            .map(|d| serde_saphyr::from_str(d.text).unwrap())
            .collect();
        assert_eq!(m.documents[4].object.as_ref(), Some(&originals[4]));
        assert_eq!(m.documents[5].object.as_ref(), Some(&originals[5]));
    }

    #[test]
    fn migrate_list_documents() {
        let input = "apiVersion: v1
kind: List
items:
- apiVersion: metallb.io/v1beta1
  kind: IPAddressPool
  metadata: {name: a, namespace: metallb-system, resourceVersion: '1'}
  spec: {addresses: [192.0.2.0/28]}
- apiVersion: metallb.io/v1beta1
  kind: AddressPool
  metadata: {name: b}
  spec: {protocol: layer2, addresses: [192.0.2.16/28]}
- 42
---
apiVersion: v1
kind: List
items: []
";
        let m = migrate(input, "list.yaml");
        assert_eq!(
            ids(&m),
            vec![
                id("ferrolb.io/v1beta1", "IPAddressPool", "ferrolb-system", "a"),
                id("ferrolb.io/v1beta1", "IPAddressPool", "-", "b"),
                id("ferrolb.io/v1beta1", "L2Advertisement", "-", "b-l2"),
                None,
                None,
            ]
        );
        assert_eq!(
            m.documents[4].comments,
            vec!["list.yaml:14 (document 2): List has no items; nothing to convert"]
        );
        assert_eq!(
            m.documents[3].comments,
            vec![
                "list.yaml:1 (document 1): items[2]: document is a number, not a mapping with apiVersion, kind and metadata; not converted"
            ]
        );
    }

    #[test]
    fn migrate_output_round_trips_and_validates() {
        for (name, text) in [
            ("v0.14-all-kinds.yaml", ALL_KINDS),
            ("legacy-configmap.yaml", LEGACY),
            ("addresspool-v1beta1.yaml", ADDRESS_POOL),
        ] {
            let m = migrate(text, name);
            assert_round_trip(&m);
            let yaml = m.to_yaml();
            assert!(!yaml.contains("metallb.io/"), "{name}:\n{yaml}");
            assert!(!yaml.contains("last-applied"), "{name}:\n{yaml}");
            let errors = validation_errors(&yaml);
            assert!(errors.is_empty(), "{name}: {errors:#?}\n{yaml}");
            // Every comment is on its own `# ` line.
            let comment_lines = yaml.lines().filter(|l| l.starts_with("# ")).count();
            assert_eq!(comment_lines, m.comment_count(), "{name}");
        }
    }

    #[test]
    fn migrate_renames_aliases_that_read_as_community_values() {
        let input = r#"apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: aliases, namespace: metallb-system}
spec:
  communities:
  - {name: no-export, value: "65535:65281"}
  - {name: no-advertise, value: "65000:2"}
  - {name: "65000:1", value: "65000:10"}
  - {name: metallb-no-advertise, value: "65000:3"}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv, namespace: metallb-system}
spec:
  communities: [no-advertise, no-export, "65000:1", metallb-no-advertise, no-advertise]
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: elsewhere, namespace: other}
spec:
  communities: [no-advertise]
---
apiVersion: ferrolb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: native, namespace: ferrolb-system}
spec:
  communities: [no-advertise]
"#;
        let m = migrate(input, "split.yaml");
        // no-export means what FerroLB's well-known no-export means: kept.
        assert_eq!(
            *spec(&m, "Community", "aliases"),
            json!({"communities": [
                {"name": "no-export", "value": "65535:65281"},
                {"name": "metallb-no-advertise-2", "value": "65000:2"},
                {"name": "metallb-65000-1", "value": "65000:10"},
                {"name": "metallb-no-advertise", "value": "65000:3"},
            ]})
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "adv"),
            json!({"communities": [
                "metallb-no-advertise-2", "no-export", "metallb-65000-1",
                "metallb-no-advertise", "metallb-no-advertise-2",
            ]})
        );
        // Another namespace's aliases, and FerroLB's own objects, are untouched.
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "elsewhere"),
            json!({"communities": ["no-advertise"]})
        );
        assert_eq!(
            *spec(&m, "BGPAdvertisement", "native"),
            json!({"communities": ["no-advertise"]})
        );
        assert_eq!(
            doc(&m, "Community", "aliases").comments,
            vec![
                RENAMED,
                "spec.communities[1].name no-advertise was renamed to metallb-no-advertise-2: FerroLB reads no-advertise as the well-known community 65535:65282, while in MetalLB this alias means 65000:2",
                "spec.communities[2].name 65000:1 was renamed to metallb-65000-1: FerroLB reads 65000:1 as a community value, while in MetalLB this alias means 65000:10",
            ]
        );
        assert_eq!(
            doc(&m, "BGPAdvertisement", "adv").comments,
            vec![
                RENAMED,
                "spec.communities[0] no-advertise was changed to metallb-no-advertise-2, the renamed alias of Community aliases",
                "spec.communities[2] 65000:1 was changed to metallb-65000-1, the renamed alias of Community aliases",
                "spec.communities[4] no-advertise was changed to metallb-no-advertise-2, the renamed alias of Community aliases",
            ]
        );
        assert_eq!(
            m.notices,
            vec![
                "split.yaml: Community ferrolb-system/aliases: community alias no-advertise was renamed to metallb-no-advertise-2, because FerroLB reads no-advertise as the well-known community 65535:65282; BGPAdvertisement adv changed to match; change any other BGPAdvertisement in namespace ferrolb-system that names no-advertise to name metallb-no-advertise-2",
                "split.yaml: Community ferrolb-system/aliases: community alias 65000:1 was renamed to metallb-65000-1, because FerroLB reads 65000:1 as a community value; BGPAdvertisement adv changed to match; change any other BGPAdvertisement in namespace ferrolb-system that names 65000:1 to name metallb-65000-1",
            ]
        );
        let errors = validation_errors(&m.to_yaml());
        assert!(errors.is_empty(), "{errors:#?}");
        assert_round_trip(&m);
        // A Community alone: renamed all the same, and said so.
        let alone = migrate(split_documents(input)[0].text, "community.yaml");
        assert_eq!(alone.notices.len(), 2);
        assert!(
            alone.notices[0].contains("no BGPAdvertisement in community.yaml names it; change any other BGPAdvertisement in namespace ferrolb-system that names no-advertise to name metallb-no-advertise-2"),
            "{:?}",
            alone.notices
        );
    }

    #[test]
    fn migrate_to_yaml_layout() {
        let m = Migration {
            documents: vec![
                MigratedDocument {
                    comments: vec!["first".into(), "two\nlines".into()],
                    object: Some(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}}),
                    ),
                    converted: false,
                },
                MigratedDocument {
                    comments: vec!["only a note".into()],
                    ..MigratedDocument::default()
                },
            ],
            notices: Vec::new(),
        };
        assert_eq!(
            m.to_yaml(),
            "---\n# first\n# two\n# lines\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n---\n# only a note\n"
        );
        assert_eq!(m.comment_count(), 3);
        assert_eq!(Migration::default().to_yaml(), "");
    }

    #[test]
    fn migrate_never_panics_on_damaged_samples() {
        // Each document of the samples (and the legacy configuration inside the
        // ConfigMap), cut short before every line and with every line removed.
        let legacy_config: Value = serde_saphyr::from_str(LEGACY).unwrap();
        let legacy_config = legacy_config["data"]["config"]
            .as_str()
            .unwrap()
            .to_string();
        let mut texts: Vec<String> = [ALL_KINDS, LEGACY, ADDRESS_POOL]
            .iter()
            .flat_map(|t| split_documents(t).into_iter().map(|d| d.text.to_string()))
            .collect();
        texts.push(legacy_config.clone());
        for text in &texts {
            let lines: Vec<&str> = text.lines().collect();
            for i in 0..lines.len() {
                let mut without = lines.clone();
                without.remove(i);
                for damaged in [lines[..i].join("\n"), without.join("\n")] {
                    let _ = reparse(&migrate(&damaged, "damaged.yaml").to_yaml());
                    if *text != legacy_config {
                        continue;
                    }
                    // The legacy configuration inside its ConfigMap.
                    let cm = json!({
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": "config", "namespace": "metallb-system"},
                        "data": {"config": damaged},
                    });
                    let cm = serde_saphyr::to_string(&cm).unwrap();
                    let _ = reparse(&migrate(&cm, "damaged.yaml").to_yaml());
                }
            }
        }
        for text in [
            "",
            "---",
            "--- ~",
            "null",
            "[]",
            "{}",
            "'",
            "\t",
            "a: *b",
            "? x",
            "apiVersion: metallb.io/\nkind: X",
            "apiVersion: /\nkind: List\nitems: 3",
            "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: [1]}]",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: 3\ndata: {config: 'peers: 3'}",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {namespace: metallb-system}\ndata: {config: [1]}",
        ] {
            let m = migrate(text, "odd.yaml");
            let _ = reparse(&m.to_yaml());
        }
    }
}
