//! What `explain` reads, from a standalone directory or from a cluster, into
//! one [`World`]: the configuration as the daemons use it (the valid
//! subset), the Services as the controller's allocator and the speakers'
//! decision read them, and what the speakers reported (their status
//! objects, BGP sessions and conflicts). Reading only: nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ferrolb_config::crd::{
    BFDProfile, BGPAdvertisement, BGPPeer, Community, ConfigurationState, IPAddressPool,
    L2Advertisement, ServiceBGPStatus, ServiceL2Status,
};
use ferrolb_config::validate::{valid_subset, validate};
use ferrolb_config::{Config, Problem};
use ferrolb_controller::allocator::LbService as AllocService;
use ferrolb_speaker::desired::LbService as SpeakerService;
use k8s_openapi::api::core::v1::{Event, Namespace, Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client};
use serde_json::Value;

/// Where the facts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A standalone directory (`ferrolb-controller --standalone DIR`).
    Directory(PathBuf),
    /// A cluster; FerroLB's objects in this namespace.
    Cluster { namespace: String },
}

impl Origin {
    /// `directory ./lab` or `cluster (FerroLB namespace ferrolb-system)`.
    pub fn describe(&self) -> String {
        match self {
            Origin::Directory(d) => format!("directory {}", d.display()),
            Origin::Cluster { namespace } => {
                format!("cluster (FerroLB namespace {namespace})")
            }
        }
    }
}

/// What one node's speaker reported about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpeakerReport {
    /// Why the speaker announces nothing at all, when it says so.
    pub excluded: Option<String>,
    /// How its membership stands (standalone status only).
    pub membership: Option<String>,
    /// Why layer 2 cannot run there (standalone status only).
    pub layer2_error: Option<String>,
    /// Configuration and reading problems it reported.
    pub problems: Vec<String>,
}

/// A `ServiceL2Status`: `node` answers ARP/NDP for the Service's IPs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Seen {
    /// `namespace/name` of the Service.
    pub service: String,
    pub node: String,
    pub interfaces: Vec<String>,
    /// When the object was created (cluster only): since when the node answers.
    pub since: Option<String>,
}

/// A `ServiceBGPStatus`: `node` announces the Service to these peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpSeen {
    pub service: String,
    pub node: String,
    pub peers: Vec<String>,
}

/// One node's session with one BGPPeer, as its speaker reported it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionSeen {
    /// Idle, Connect, Active, OpenSent, OpenConfirm, Established, or
    /// NotRunning (the speaker could not start the session).
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bfd_state: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The last error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Prefixes announced on the session (standalone status only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefixes: Option<u64>,
}

impl SessionSeen {
    pub fn established(&self) -> bool {
        self.state == "Established"
    }
}

/// Another host claiming an IP a speaker announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictSeen {
    /// The IP, when known.
    pub ip: Option<IpAddr>,
    /// The node that saw it, when known.
    pub node: Option<String>,
    /// The Service the Event is about (cluster).
    pub service: Option<String>,
    pub text: String,
}

/// What the speakers reported.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Nodes whose speaker reported (standalone: `status/speaker-NODE.yaml`
    /// exists; cluster: its ConfigurationState `speaker-NODE` exists).
    pub speakers: BTreeMap<String, SpeakerReport>,
    pub l2: Vec<L2Seen>,
    pub bgp: Vec<BgpSeen>,
    /// `(ip, node)` for every IP a speaker says it answers for on layer 2,
    /// when the speakers report per IP (standalone); None in a cluster,
    /// whose status objects are per Service.
    pub l2_by_ip: Option<BTreeSet<(IpAddr, String)>>,
    /// Per BGPPeer name, per node: the session.
    pub sessions: BTreeMap<String, BTreeMap<String, SessionSeen>>,
    pub conflicts: Vec<ConflictSeen>,
}

/// What an applied Service keeps of the one it replaces.
#[derive(Debug, Clone, Default)]
pub struct ServiceMeta {
    pub creation_timestamp: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    pub uid: Option<String>,
}

/// Validates a configuration as the daemons reading this origin do: every
/// problem of [`validate`], without those about Secrets when they cannot be
/// read (a cluster read with `ferrolb-view`).
pub fn validate_as_read(config: &Config, secrets_unread: bool) -> Vec<Problem> {
    validate(config)
        .into_iter()
        .filter(|p| !secrets_unread || !p.message.contains("Secret"))
        .collect()
}

/// Everything `explain` looks at.
#[derive(Debug, Default)]
pub struct World {
    pub origin: Option<Origin>,
    /// The `loadBalancerClass` served (`--lb-class`); None: Services without one.
    pub lb_class: Option<String>,
    /// The valid part of the configuration with Nodes, Namespaces and
    /// EndpointSlices: what the controller and the speakers act on.
    pub config: Config,
    /// Every configuration problem found.
    pub problems: Vec<Problem>,
    /// The configuration as read, invalid objects included (what `plan`
    /// edits); its Services are in [`World::services`], not here.
    pub full: Config,
    /// Problems found reading the files (standalone), before validation.
    pub load_problems: Vec<Problem>,
    /// Secrets were not read (cluster): validation problems about them are
    /// left out.
    pub secrets_unread: bool,
    /// Per Service (`namespace/name`): its creationTimestamp and uid, which
    /// `kubectl apply` keeps when it replaces the Service (cluster only).
    pub service_meta: BTreeMap<String, ServiceMeta>,
    /// Every Service, as the allocator reads it (with its status IPs).
    pub services: Vec<AllocService>,
    /// The LoadBalancer Services with their assigned IPs, as the speakers read them.
    pub speaker_services: Vec<SpeakerService>,
    pub observed: Observed,
    /// What could not be read, and what that means for the verdict.
    pub notes: Vec<String>,
}

// ---------------------------------------------------------------- standalone

/// Reads a standalone directory: the controller's inputs with its last
/// results (`status/services.yaml`) as the controller itself reads them,
/// the speakers' inputs as the speakers read them, and every
/// `status/speaker-NODE.yaml`.
pub fn from_directory(dir: &Path, lb_class: Option<&str>) -> Result<World, String> {
    if !dir.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    let (loaded, mut services) =
        ferrolb_controller::standalone::Services::load(dir).map_err(|e| e.to_string())?;
    services.overlay_previous(dir);
    let load_problems = loaded.problems;
    let mut problems = load_problems.clone();
    problems.extend(validate(&loaded.config));
    let config = valid_subset(&loaded.config, &problems);
    let full = loaded.config;
    let services_file = dir.join("status").join("services.yaml");
    let mut notes = Vec::new();
    if !services_file.exists() {
        notes.push(format!(
            "{} does not exist: the controller has not run over this directory (ferrolb-controller --standalone {} --once)",
            services_file.display(),
            dir.display()
        ));
    }
    let speaker = ferrolb_speaker::daemon::standalone::read(dir, &services_file);
    let observed = read_speaker_files(&dir.join("status"));
    Ok(World {
        origin: Some(Origin::Directory(dir.to_path_buf())),
        lb_class: lb_class.map(str::to_string),
        config,
        problems,
        full,
        load_problems,
        secrets_unread: false,
        service_meta: BTreeMap::new(),
        services: services
            .entries()
            .iter()
            .map(|e| e.service().clone())
            .collect(),
        speaker_services: speaker.services,
        observed,
        notes,
    })
}

fn text(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn service_of(status: &Value) -> String {
    format!(
        "{}/{}",
        status["serviceNamespace"].as_str().unwrap_or("default"),
        status["serviceName"].as_str().unwrap_or_default()
    )
}

/// Reads every `speaker-NODE.yaml` of a `status/` folder.
pub fn read_speaker_files(status_dir: &Path) -> Observed {
    let mut observed = Observed {
        l2_by_ip: Some(BTreeSet::new()),
        ..Observed::default()
    };
    let Ok(entries) = std::fs::read_dir(status_dir) else {
        return observed;
    };
    let mut files: Vec<(String, PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let node = name.strip_prefix("speaker-")?.strip_suffix(".yaml")?;
            Some((node.to_string(), e.path()))
        })
        .collect();
    files.sort();
    for (node, path) in files {
        let Ok(text_) = std::fs::read_to_string(&path) else {
            continue;
        };
        let docs = serde_saphyr::from_multiple::<Value>(&text_).unwrap_or_default();
        read_speaker_documents(&node, &docs, &mut observed);
    }
    observed
}

/// Adds what one speaker's status documents say (the documents of
/// `status/speaker-NODE.yaml`).
pub fn read_speaker_documents(node: &str, docs: &[Value], observed: &mut Observed) {
    let mut report = SpeakerReport::default();
    for doc in docs {
        let status = &doc["status"];
        match doc["kind"].as_str() {
            Some("ServiceL2Status") => observed.l2.push(L2Seen {
                service: service_of(status),
                node: text(&status["node"]).unwrap_or_else(|| node.to_string()),
                interfaces: status["interfaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|i| text(&i["name"]))
                    .collect(),
                since: None,
            }),
            Some("ServiceBGPStatus") => observed.bgp.push(BgpSeen {
                service: service_of(status),
                node: text(&status["node"]).unwrap_or_else(|| node.to_string()),
                peers: status["peers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                    .collect(),
            }),
            Some("BGPPeer") => {
                let peer = doc["metadata"]["name"].as_str().unwrap_or_default();
                for s in status["sessions"].as_array().into_iter().flatten() {
                    observed
                        .sessions
                        .entry(peer.to_string())
                        .or_default()
                        .insert(
                            text(&s["node"]).unwrap_or_else(|| node.to_string()),
                            SessionSeen {
                                state: text(&s["state"]).unwrap_or_default(),
                                bfd_state: text(&s["bfdState"]),
                                last_transition_time: text(&s["lastTransitionTime"]),
                                last_error: text(&s["message"]),
                                prefixes: s["prefixes"].as_u64(),
                            },
                        );
                }
            }
            Some("SpeakerStatus") => {
                report.excluded = text(&status["excluded"]);
                report.membership = text(&status["membership"]);
                report.layer2_error = text(&status["layer2Error"]);
                report.problems = status["problems"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(text)
                    .collect();
                for a in status["announced"].as_array().into_iter().flatten() {
                    if a["layer2"].as_bool() == Some(true)
                        && let Some(ip) = a["ip"].as_str().and_then(|s| s.parse().ok())
                        && let Some(set) = observed.l2_by_ip.as_mut()
                    {
                        set.insert((ip, node.to_string()));
                    }
                }
                for c in status["conflicts"].as_array().into_iter().flatten() {
                    let ip: Option<IpAddr> = c["ip"].as_str().and_then(|s| s.parse().ok());
                    observed.conflicts.push(ConflictSeen {
                        ip,
                        node: Some(node.to_string()),
                        service: None,
                        text: format!(
                            "another host ({}) claims {} on {node}'s {} ({})",
                            c["otherMAC"].as_str().unwrap_or("?"),
                            c["ip"].as_str().unwrap_or("?"),
                            c["interface"].as_str().unwrap_or("?"),
                            c["kind"].as_str().unwrap_or("?"),
                        ),
                    });
                }
            }
            _ => {}
        }
    }
    observed.speakers.insert(node.to_string(), report);
}

// ---------------------------------------------------------------- cluster

/// What a list refused with: the verb and resource, for the message.
fn list_error(what: &str, e: kube::Error) -> String {
    match &e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "cannot list {what}: forbidden ({}); explain needs the read-only ClusterRole ferrolb-view (deploy/rbac/view.yaml)",
            s.message
        ),
        _ => format!("cannot list {what}: {e}"),
    }
}

async fn list<K>(api: Api<K>, what: &str) -> Result<Vec<K>, String>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .map_err(|e| list_error(what, e))
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

/// EndpointSlices: `discovery.k8s.io/v1`, else `v1beta1` (Kubernetes 1.20),
/// converted as the speaker converts them.
async fn endpoint_slices(client: &Client) -> Result<Vec<EndpointSlice>, String> {
    match Api::<EndpointSlice>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => return Ok(l.items),
        Err(e) if !is_not_found(&e) => return Err(list_error("EndpointSlices", e)),
        Err(_) => {}
    }
    let ar = ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "discovery.k8s.io/v1beta1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| list_error("EndpointSlices (discovery.k8s.io/v1beta1)", e))?
        .items;
    Ok(items
        .iter()
        .filter_map(ferrolb_speaker::daemon::cluster::endpoint_slice_from_v1beta1)
        .collect())
}

/// Reads the cluster with get/list only: every Service, Namespace, Node and
/// EndpointSlice, FerroLB's configuration in `namespace`, the speakers'
/// status objects, BGPPeer sessions and ConfigurationStates, and
/// `IPConflict` Events.
pub async fn from_cluster(
    client: Client,
    namespace: &str,
    lb_class: Option<&str>,
) -> Result<World, String> {
    let mut notes = Vec::new();
    let objects: Vec<Service> = list(Api::all(client.clone()), "Services").await?;
    let nodes: Vec<Node> = list(Api::all(client.clone()), "Nodes").await?;
    let namespaces: Vec<Namespace> = match Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
    {
        Ok(l) => l.items,
        Err(e) => {
            notes.push(format!(
                "{}: pools' serviceAllocation.namespaceSelectors are matched without the Namespaces' labels",
                list_error("Namespaces", e)
            ));
            Vec::new()
        }
    };
    let ns = namespace;
    let mut config = Config {
        ip_address_pools: list(
            Api::<IPAddressPool>::namespaced(client.clone(), ns),
            "IPAddressPools",
        )
        .await?,
        l2_advertisements: list(
            Api::<L2Advertisement>::namespaced(client.clone(), ns),
            "L2Advertisements",
        )
        .await?,
        bgp_advertisements: list(
            Api::<BGPAdvertisement>::namespaced(client.clone(), ns),
            "BGPAdvertisements",
        )
        .await?,
        bgp_peers: list(Api::<BGPPeer>::namespaced(client.clone(), ns), "BGPPeers").await?,
        bfd_profiles: list(
            Api::<BFDProfile>::namespaced(client.clone(), ns),
            "BFDProfiles",
        )
        .await?,
        communities: list(
            Api::<Community>::namespaced(client.clone(), ns),
            "Communities",
        )
        .await?,
        nodes,
        namespaces,
        endpoint_slices: endpoint_slices(&client).await?,
        ..Config::default()
    };
    // Secrets are not read (ferrolb-view cannot): a reference to one is
    // not a problem here.
    let problems: Vec<Problem> = validate_as_read(&config, true);
    let full = config.clone();
    config = valid_subset(&config, &problems);

    let mut observed = Observed::default();
    for o in list(
        Api::<ServiceL2Status>::all(client.clone()),
        "ServiceL2Statuses",
    )
    .await?
    {
        let Some(s) = o.status else { continue };
        observed.l2.push(L2Seen {
            service: format!("{}/{}", s.service_namespace, s.service_name),
            node: s.node,
            interfaces: s.interfaces.into_iter().map(|i| i.name).collect(),
            since: o.metadata.creation_timestamp.map(|t| t.0.to_string()),
        });
    }
    for o in list(
        Api::<ServiceBGPStatus>::all(client.clone()),
        "ServiceBGPStatuses",
    )
    .await?
    {
        let Some(s) = o.status else { continue };
        observed.bgp.push(BgpSeen {
            service: format!("{}/{}", s.service_namespace, s.service_name),
            node: s.node,
            peers: s.peers,
        });
    }
    for peer in &config.bgp_peers {
        let name = peer.metadata.name.clone().unwrap_or_default();
        for s in peer.status.iter().flat_map(|st| &st.sessions) {
            observed.sessions.entry(name.clone()).or_default().insert(
                s.node.clone(),
                SessionSeen {
                    state: s.state.clone(),
                    bfd_state: s.bfd_state.clone(),
                    last_transition_time: s.last_transition_time.clone(),
                    last_error: s.message.clone(),
                    prefixes: s.prefixes,
                },
            );
        }
    }
    for state in list(
        Api::<ConfigurationState>::namespaced(client.clone(), ns),
        "ConfigurationStates",
    )
    .await?
    {
        if state.spec.component != "speaker" {
            continue;
        }
        let Some(node) = state.spec.node.clone() else {
            continue;
        };
        let status = state.status.unwrap_or_default();
        observed.speakers.insert(
            node,
            SpeakerReport {
                excluded: status
                    .conditions
                    .iter()
                    .find(|c| c.type_ == "Announcing" && c.status == "False")
                    .map(|c| c.message.clone()),
                membership: None,
                layer2_error: None,
                problems: status.problems.into_iter().map(|p| p.message).collect(),
            },
        );
    }
    let conflict_events = Api::<Event>::all(client.clone())
        .list(&ListParams::default().fields("reason=IPConflict"))
        .await
        .map_err(|e| list_error("Events", e))?;
    for e in conflict_events.items {
        let obj = &e.involved_object;
        observed.conflicts.push(ConflictSeen {
            ip: None,
            node: None,
            service: Some(format!(
                "{}/{}",
                obj.namespace.as_deref().unwrap_or("default"),
                obj.name.as_deref().unwrap_or_default()
            )),
            text: e.message.unwrap_or_default(),
        });
    }

    Ok(World {
        origin: Some(Origin::Cluster {
            namespace: namespace.to_string(),
        }),
        lb_class: lb_class.map(str::to_string),
        problems,
        full,
        load_problems: Vec::new(),
        secrets_unread: true,
        service_meta: objects
            .iter()
            .map(|s| {
                (
                    format!(
                        "{}/{}",
                        s.metadata.namespace.as_deref().unwrap_or("default"),
                        s.metadata.name.as_deref().unwrap_or_default()
                    ),
                    ServiceMeta {
                        creation_timestamp: s.metadata.creation_timestamp.clone(),
                        uid: s.metadata.uid.clone(),
                    },
                )
            })
            .collect(),
        services: objects.iter().map(AllocService::from).collect(),
        speaker_services: objects
            .iter()
            .filter_map(SpeakerService::from_service)
            .collect(),
        config,
        observed,
        notes,
    })
}
