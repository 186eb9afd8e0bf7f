use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Written by the speaker: which node announces a Service in layer 2 mode.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceL2Status",
    doc = "Which node announces a Service in layer-2 mode (written by the speaker).",
    namespaced,
    status = "ServiceL2StatusStatus",
    category = "ferrolb",
    printcolumn(name = "Allocated Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    ),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces[*].name",
        priority = 10
    )
)]
pub struct ServiceL2StatusSpec {}

/// The node that answers ARP/NDP for the Service's IPs, and where.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceL2StatusStatus {
    /// The node that answers for the Service's IPs.
    pub node: String,
    /// The Service's name.
    pub service_name: String,
    /// The Service's namespace.
    pub service_namespace: String,
    /// The interfaces the node answers on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// An interface that announces a Service IP.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct InterfaceInfo {
    /// The interface's name on the node, e.g. `eth0`.
    pub name: String,
}

/// Written by the speaker: which node announces a Service to which BGP peers.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ServiceBGPStatus",
    doc = "Which node announces a Service to which BGP peers (written by the speaker).",
    namespaced,
    status = "ServiceBGPStatusStatus",
    category = "ferrolb",
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Service Name",
        type_ = "string",
        json_path = ".status.serviceName"
    ),
    printcolumn(
        name = "Service Namespace",
        type_ = "string",
        json_path = ".status.serviceNamespace"
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".status.peers")
)]
pub struct ServiceBGPStatusSpec {}

/// A node that announces the Service's IPs over BGP, and to which peers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceBGPStatusStatus {
    /// The node that announces the Service's IPs.
    pub node: String,
    /// The Service's name.
    pub service_name: String,
    /// The Service's namespace.
    pub service_namespace: String,
    /// BGPPeer names the Service is announced to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

/// Written by the controller and by each speaker: is the configuration they run
/// valid, and every problem found in it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "ConfigurationState",
    doc = "Whether the configuration a FerroLB component runs is valid, with every problem found.",
    namespaced,
    status = "ConfigurationStateStatus",
    shortname = "cfgstate",
    category = "ferrolb",
    printcolumn(name = "Component", type_ = "string", json_path = ".spec.component"),
    printcolumn(name = "Node", type_ = "string", json_path = ".spec.node"),
    printcolumn(name = "Result", type_ = "string", json_path = ".status.result"),
    printcolumn(name = "Errors", type_ = "integer", json_path = ".status.errorCount"),
    printcolumn(
        name = "Warnings",
        type_ = "integer",
        json_path = ".status.warningCount"
    ),
    printcolumn(
        name = "Last Error",
        type_ = "string",
        json_path = ".status.errorSummary",
        priority = 10
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateSpec {
    /// `controller` or `speaker`.
    pub component: String,
    /// The node, for a speaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// The verdict on the configuration the component runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigurationStateStatus {
    /// `Valid`, `ValidWithWarnings` or `Invalid` (some objects are ignored).
    pub result: String,
    /// Problems of severity `Error`.
    pub error_count: u32,
    /// Problems of severity `Warning`.
    pub warning_count: u32,
    /// The first error, for printing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_summary: Option<String>,
    /// Every problem found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<ReportedProblem>,
    /// A speaker's: `Announcing` False (reason `NodeNotEligible`) when its
    /// node announces nothing, with the reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One problem in a [`ConfigurationState`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReportedProblem {
    /// `Error` or `Warning`.
    pub severity: String,
    /// Kind of the object the problem is in (empty when the message alone
    /// names it, as in a speaker's report).
    pub kind: String,
    /// Namespace of that object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of that object (empty when the message alone names it).
    pub name: String,
    /// Field path, e.g. `spec.addresses[1]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong, and why.
    pub message: String,
}
