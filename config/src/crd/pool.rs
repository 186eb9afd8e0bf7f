use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

fn zero() -> String {
    "0".to_string()
}

fn default_true() -> bool {
    true
}

/// A pool of addresses FerroLB may assign to LoadBalancer Services.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "IPAddressPool",
    doc = "A pool of addresses FerroLB assigns to LoadBalancer Services.",
    namespaced,
    status = "IPAddressPoolStatus",
    shortname = "ipp",
    category = "ferrolb",
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "Avoid Buggy IPs",
        type_ = "boolean",
        json_path = ".spec.avoidBuggyIPs"
    ),
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Assigned IPv4",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "Available IPv4",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "Assigned IPv6",
        type_ = "string",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "Available IPv6",
        type_ = "string",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// Address ranges: CIDRs (`198.51.100.0/24`, `2001:db8::/64`) or `first-last`
    /// ranges (`198.51.100.10-198.51.100.20`). IPv4 and IPv6 may be mixed.
    pub addresses: Vec<String>,
    /// Whether Services get addresses from this pool without asking for it. Default true.
    #[serde(default = "default_true")]
    pub auto_assign: bool,
    /// Skip IPv4 addresses ending in .0 and .255. Default false.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    /// Which Services may use this pool, and in which order pools are tried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

impl Default for IPAddressPoolSpec {
    fn default() -> Self {
        IPAddressPoolSpec {
            addresses: Vec::new(),
            auto_assign: true,
            avoid_buggy_ips: false,
            service_allocation: None,
        }
    }
}

/// Restricts a pool to some Services and sets its priority.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Lower numbers are tried first; pools without a priority come after all with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// Namespaces whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Namespaces (by their labels) whose Services may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,
    /// Services (by their labels) that may use the pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// Usage of a pool. IPv6 counts are decimal strings because a pool can hold up to
/// 2^128 addresses, more than any JSON integer; IPv4 counts always fit an integer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of the pool assigned to Services.
    #[serde(rename = "assignedIPv4", default)]
    pub assigned_ipv4: u64,
    /// IPv4 addresses of the pool still free (without `.0` and `.255` when
    /// `avoidBuggyIPs` is set).
    #[serde(rename = "availableIPv4", default)]
    pub available_ipv4: u64,
    /// Decimal string.
    #[serde(rename = "assignedIPv6", default = "zero")]
    pub assigned_ipv6: String,
    /// Decimal string.
    #[serde(rename = "availableIPv6", default = "zero")]
    pub available_ipv6: String,
    /// `Valid` (True/False) with the reason and message of the first problem
    /// (written by the controller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}
