use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ConfigStatus;

fn default_aggregation_v4() -> i32 {
    32
}
fn default_aggregation_v6() -> i32 {
    128
}
fn default_peer_port() -> u16 {
    179
}

/// Announce pools' addresses to BGP peers from every eligible node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BGPAdvertisement",
    doc = "Announces pools' addresses to BGP peers from every eligible node.",
    namespaced,
    status = "ConfigStatus",
    shortname = "bgpadv",
    category = "ferrolb",
    printcolumn(
        name = "IPAddressPools",
        type_ = "string",
        json_path = ".spec.ipAddressPools"
    ),
    printcolumn(
        name = "IPAddressPool Selectors",
        type_ = "string",
        json_path = ".spec.ipAddressPoolSelectors",
        priority = 10
    ),
    printcolumn(name = "Peers", type_ = "string", json_path = ".spec.peers"),
    printcolumn(
        name = "Aggregation",
        type_ = "integer",
        json_path = ".spec.aggregationLength",
        priority = 10
    ),
    printcolumn(
        name = "Communities",
        type_ = "string",
        json_path = ".spec.communities",
        priority = 10
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPAdvertisementSpec {
    /// Prefix length used for IPv4 announcements (default 32: one route per IP).
    #[serde(default = "default_aggregation_v4")]
    #[schemars(range(min = 0, max = 32))]
    pub aggregation_length: i32,
    /// Prefix length used for IPv6 announcements (default 128).
    #[serde(default = "default_aggregation_v6")]
    #[schemars(range(min = 0, max = 128))]
    pub aggregation_length_v6: i32,
    /// LOCAL_PREF attribute; only sent to iBGP peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_pref: Option<u32>,
    /// Standard (`65000:100`), large (`large:1:2:3`) communities, or names of
    /// aliases defined in a `Community` object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub communities: Vec<String>,
    /// Pools (by name) this advertisement applies to. Empty together with
    /// `ipAddressPoolSelectors` means every pool.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,
    /// Pools (by label) this advertisement applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    /// Only Services matching one of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
    /// Only nodes matching one of these selectors announce.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// Peers (by BGPPeer name) to announce to; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}

impl Default for BGPAdvertisementSpec {
    fn default() -> Self {
        BGPAdvertisementSpec {
            aggregation_length: 32,
            aggregation_length_v6: 128,
            local_pref: None,
            communities: Vec::new(),
            ip_address_pools: Vec::new(),
            ip_address_pool_selectors: Vec::new(),
            service_selectors: Vec::new(),
            node_selectors: Vec::new(),
            peers: Vec::new(),
        }
    }
}

/// Schema of `dynamicASN`: an enum without `null`, which kubectl's client-side
/// validation refuses.
fn dynamic_asn_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "string",
        "enum": ["internal", "external"],
        "description": "Learn the peer's ASN from its OPEN: `internal` (same as ours) or `external`."
    })
}

/// Whether the peer's ASN is learned from its OPEN: same as ours, or different.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DynamicAsn {
    Internal,
    External,
}

/// Reference to a Secret of type kubernetes.io/basic-auth whose `password` key holds
/// the TCP MD5 password.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct SecretReference {
    /// Name of the Secret.
    pub name: String,
    /// Defaults to the BGPPeer's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A BGP session to set up from each eligible node.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta2",
    kind = "BGPPeer",
    doc = "A BGP session each eligible node opens to a router.",
    namespaced,
    status = "BGPPeerStatus",
    shortname = "bgpp",
    category = "ferrolb",
    printcolumn(name = "Address", type_ = "string", json_path = ".spec.peerAddress"),
    printcolumn(
        name = "Interface",
        type_ = "string",
        json_path = ".spec.interface",
        priority = 10
    ),
    printcolumn(name = "My ASN", type_ = "integer", json_path = ".spec.myASN"),
    printcolumn(name = "Peer ASN", type_ = "integer", json_path = ".spec.peerASN"),
    printcolumn(
        name = "Dynamic ASN",
        type_ = "string",
        json_path = ".spec.dynamicASN",
        priority = 10
    ),
    printcolumn(
        name = "BFD Profile",
        type_ = "string",
        json_path = ".spec.bfdProfile",
        priority = 10
    ),
    printcolumn(name = "Established", type_ = "string", json_path = ".status.summary"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerSpec {
    /// Our AS number.
    #[serde(rename = "myASN")]
    pub my_asn: u32,
    /// AS number presented to this peer instead of `myASN` (like FRR's `local-as`).
    #[serde(rename = "localASN", default, skip_serializing_if = "Option::is_none")]
    pub local_asn: Option<u32>,
    /// The peer's AS number. Set this or `dynamicASN`.
    #[serde(rename = "peerASN", default, skip_serializing_if = "Option::is_none")]
    pub peer_asn: Option<u32>,
    /// Learn the peer's ASN from its OPEN: `internal` (same as ours) or `external`.
    #[serde(
        rename = "dynamicASN",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(schema_with = "dynamic_asn_schema")]
    pub dynamic_asn: Option<DynamicAsn>,
    /// The peer's IPv4 or IPv6 address. Set this or `interface`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_address: Option<String>,
    /// Unnumbered peering over this interface's IPv6 link-local address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Default 179.
    #[serde(default = "default_peer_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub peer_port: u16,
    /// Negotiate IPv4 and IPv6 unicast on this one session.
    #[serde(default)]
    pub dual_stack_address_family: bool,
    /// Local address to connect from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_address: Option<String>,
    /// Proposed hold time, a duration such as `90s` (default). 0 or at least 3s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_time: Option<String>,
    /// Keepalive interval; defaults to a third of the hold time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_time: Option<String>,
    /// Time between connection attempts: the wait after a failed attempt,
    /// doubled after each further failure up to 30s (or this value, if
    /// larger), back to this value once a session is established. Default
    /// 1s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_time: Option<String>,
    /// BGP identifier (an IPv4 address); defaults to one of the node's addresses.
    #[serde(rename = "routerID", default, skip_serializing_if = "Option::is_none")]
    pub router_id: Option<String>,
    /// TCP MD5 password in clear text. Prefer `passwordSecret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretReference>,
    /// Name of a BFDProfile; enables BFD on the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_profile: Option<String>,
    /// Allow the eBGP peer to be more than one hop away.
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    /// Only nodes matching one of these selectors connect to this peer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,
    /// VRF device to bind the session to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vrf: Option<String>,
    /// Announce graceful restart (RFC 4724).
    #[serde(default)]
    pub enable_graceful_restart: bool,
    /// Use one session per address family instead of multiprotocol.
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
}

impl Default for BGPPeerSpec {
    fn default() -> Self {
        BGPPeerSpec {
            my_asn: 0,
            local_asn: None,
            peer_asn: None,
            dynamic_asn: None,
            peer_address: None,
            interface: None,
            peer_port: 179,
            dual_stack_address_family: false,
            source_address: None,
            hold_time: None,
            keepalive_time: None,
            connect_time: None,
            router_id: None,
            password: None,
            password_secret: None,
            bfd_profile: None,
            ebgp_multi_hop: false,
            node_selectors: Vec::new(),
            vrf: None,
            enable_graceful_restart: false,
            disable_mp: false,
        }
    }
}

/// Session state per node, written by the speakers.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerStatus {
    /// For printing: `established/total` sessions, e.g. `3/3`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// One entry per node that runs a session with this peer, written by that
    /// node's speaker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessions: Vec<BGPSessionState>,
    /// `Valid` (True/False) with the reason and message of the first problem
    /// (written by the controller).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// One node's session with the peer.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BGPSessionState {
    /// The node whose speaker runs this session.
    pub node: String,
    /// FSM state: Idle, Connect, Active, OpenSent, OpenConfirm, Established.
    pub state: String,
    /// State of the BFD session bound to it (`Up`, `Down`, `Init`,
    /// `AdminDown`); absent without a `bfdProfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd_state: Option<String>,
    /// When `state` last changed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The last error: a connect failure, a NOTIFICATION sent or received, a
    /// missing password Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// How many prefixes the speaker announces to the peer over this
    /// session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<u64>,
}

/// BFD timers for BGP sessions that name this profile.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "BFDProfile",
    doc = "BFD timers for BGP sessions that name this profile.",
    namespaced,
    status = "ConfigStatus",
    shortname = "bfdp",
    category = "ferrolb",
    printcolumn(
        name = "Passive Mode",
        type_ = "boolean",
        json_path = ".spec.passiveMode"
    ),
    printcolumn(
        name = "Transmit Interval",
        type_ = "integer",
        json_path = ".spec.transmitInterval"
    ),
    printcolumn(
        name = "Receive Interval",
        type_ = "integer",
        json_path = ".spec.receiveInterval"
    ),
    printcolumn(
        name = "Multiplier",
        type_ = "integer",
        json_path = ".spec.detectMultiplier"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct BFDProfileSpec {
    /// Minimum interval between received packets we can handle, in ms (10–60000; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub receive_interval: Option<u32>,
    /// Minimum transmit interval we want, in ms (10–60000; default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub transmit_interval: Option<u32>,
    /// Packets that may be lost before the session is down (2–255; default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 255))]
    pub detect_multiplier: Option<u32>,
    /// Echo transmit interval in ms (10–60000). Accepted and range-checked for
    /// MetalLB compatibility; FerroLB's BFD sends no echo packets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 10, max = 60000))]
    pub echo_interval: Option<u32>,
    /// Accepted for MetalLB compatibility; FerroLB's BFD sends no echo packets
    /// and advertises a Required Min Echo RX Interval of zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub echo_mode: Option<bool>,
    /// Wait for the peer to start the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passive_mode: Option<bool>,
    /// Minimum TTL accepted on incoming packets for multi-hop sessions (1–254; default 254).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 254))]
    pub minimum_ttl: Option<u32>,
}

/// Named community values usable in BGPAdvertisements.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1beta1",
    kind = "Community",
    doc = "Named BGP community values for BGPAdvertisements.",
    namespaced,
    status = "ConfigStatus",
    category = "ferrolb",
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CommunitySpec {
    /// Aliases, each a name for a community value.
    #[serde(default)]
    pub communities: Vec<CommunityAlias>,
}

/// `name` can be used in a BGPAdvertisement's `communities` in place of `value`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct CommunityAlias {
    /// The alias, written in a BGPAdvertisement's `communities`. A well-known
    /// community name (`no-export`, ...) is allowed only with that community's
    /// value.
    pub name: String,
    /// `65000:100` or `large:1:2:3`.
    pub value: String,
}
