//! The table of broken configurations of `explain` (issue #18): each case's
//! manifests, the labels of its three Ready Nodes, what the simulated
//! speakers report, and the exit code and texts `explain service` must
//! give. Shared by `explain.rs` (standalone mode) and `explain_cluster.rs`
//! (the same cases against a v1.20 API server), each including this file
//! with `#[path]`; each uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use ferrolb_speaker::daemon::bgp::PeerState;
use ferrolb_speaker::daemon::l2::Conflict;
use ferrolb_speaker::daemon::status::Report;
use ferrolb_speaker::desired::{Inputs, decide};

pub const NODES: [&str; 3] = ["node1", "node2", "node3"];

/// Three Ready Nodes, each with these extra labels.
pub fn nodes(labels: &str) -> String {
    NODES
        .iter()
        .map(|n| {
            format!(
                "apiVersion: v1\nkind: Node\nmetadata: {{name: {n}, labels: {{{labels}}}}}\nstatus: {{conditions: [{{type: Ready, status: \"True\"}}]}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

pub const POOL: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10-198.51.100.11]}\n";
pub const L2: &str = "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {ipAddressPools: [lan]}\n";
pub const BGP: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: routed, namespace: ferrolb-system}\nspec: {addresses: [203.0.113.10/32]}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: routed, namespace: ferrolb-system}\nspec: {ipAddressPools: [routed], communities: [\"64512:100\"]}\n---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: router, namespace: ferrolb-system}\nspec: {myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1}\n";

/// A LoadBalancer Service `default/NAME` with `extra` spec fields and
/// `meta` metadata fields (flow-style YAML, each ending in `, ` when given).
pub fn service(name: &str, meta: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{{meta}name: {name}, namespace: default}}\nspec: {{{extra}type: LoadBalancer, ports: [{{port: 80}}]}}\n"
    )
}

pub fn docs(parts: &[&str]) -> String {
    parts.join("---\n")
}

/// What the simulated speakers report.
#[derive(Clone, Copy)]
pub struct Speakers {
    /// Every session's state, and its last error.
    pub session: (&'static str, Option<&'static str>),
    /// Another host claiming this IP (seen by the node answering for it).
    pub conflict: Option<(&'static str, &'static str)>,
}

pub const UP: Speakers = Speakers {
    session: ("Established", None),
    conflict: None,
};

pub struct Case {
    pub name: &'static str,
    pub manifests: String,
    /// Labels of every Node.
    pub node_labels: &'static str,
    /// None: no speaker has reported.
    pub speakers: Option<Speakers>,
    pub service: &'static str,
    pub exit: i32,
    pub says: &'static [&'static str],
}

pub fn cases() -> Vec<Case> {
    let req = |ip: &'static str| -> String {
        format!("annotations: {{ferrolb.io/loadBalancerIPs: \"{ip}\"}}, ")
    };
    let share = |key: &str, port: u16, local: bool| -> String {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {{NAME}}, namespace: default, annotations: {{ferrolb.io/loadBalancerIPs: \"198.51.100.10\", ferrolb.io/allow-shared-ip: {key}}}}}\nspec: {{type: LoadBalancer, {}ports: [{{port: {port}}}]}}\n",
            if local {
                "externalTrafficPolicy: Local, selector: {app: x}, "
            } else {
                ""
            }
        )
    };
    vec![
        // ---- pending (exit 1)
        Case {
            name: "class mismatch",
            manifests: docs(&[
                POOL,
                L2,
                &service("web", "", "loadBalancerClass: example.com/other, "),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 1,
            says: &[
                "loadBalancerClass is \"example.com/other\"",
                "class mismatch",
            ],
        },
        Case {
            name: "namespace not listed",
            manifests: docs(&[
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: shop, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10/32], serviceAllocation: {namespaces: [shop]}}\n",
                &service("web", "", ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 1,
            says: &["shop: serviceAllocation.namespaces [shop] does not include namespace default"],
        },
        Case {
            name: "namespace selector",
            manifests: docs(&[
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: gold, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10/32], serviceAllocation: {namespaceSelectors: [{matchLabels: {tier: gold}}]}}\n",
                "apiVersion: v1\nkind: Namespace\nmetadata: {name: default, labels: {tier: bronze}}\n",
                &service("web", "", ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 1,
            says: &["gold: serviceAllocation.namespaceSelectors do not select namespace default"],
        },
        Case {
            name: "Service selector",
            manifests: docs(&[
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: web-only, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10/32], serviceAllocation: {serviceSelectors: [{matchLabels: {app: web}}]}}\n",
                &service("api", "labels: {app: api}, ", ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/api",
            exit: 1,
            says: &["web-only: serviceAllocation.serviceSelectors do not select the Service"],
        },
        Case {
            name: "autoAssign false",
            manifests: docs(&[
                "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: reserved, namespace: ferrolb-system}\nspec: {addresses: [198.51.100.10/32], autoAssign: false}\n",
                &service("web", "", ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 1,
            says: &["reserved: autoAssign is false"],
        },
        Case {
            name: "family not offered",
            manifests: docs(&[POOL, L2, &service("web6", "", "ipFamilies: [IPv6], ")]),
            node_labels: "",
            speakers: None,
            service: "default/web6",
            exit: 1,
            says: &[
                "why: no IPAddressPool that admits this Service has IPv6 addresses",
                "lan: the pool has no IPv6 addresses",
            ],
        },
        Case {
            name: "exhausted",
            manifests: docs(&[
                POOL,
                L2,
                &service("a", "", ""),
                &service("b", "", ""),
                &service("c", "", ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/c",
            exit: 1,
            says: &["lan: exhausted: 2 of 2 IPv4 addresses in use"],
        },
        Case {
            name: "requested IP outside every pool",
            manifests: docs(&[POOL, L2, &service("typo", &req("203.0.113.99"), "")]),
            node_labels: "",
            speakers: None,
            service: "default/typo",
            exit: 1,
            says: &[
                "why: requested IP 203.0.113.99 is not in any IPAddressPool",
                "lan: does not contain the requested IP 203.0.113.99",
            ],
        },
        Case {
            name: "requested IP held by another Service",
            manifests: docs(&[
                POOL,
                L2,
                &service("a-first", &req("198.51.100.10"), ""),
                &service("b-second", &req("198.51.100.10"), ""),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/b-second",
            exit: 1,
            says: &[
                "the requested IP 198.51.100.10 is in use by default/a-first and cannot be shared: this Service has no allow-shared-ip annotation",
            ],
        },
        Case {
            name: "sharing refused: ports overlap",
            manifests: docs(&[
                POOL,
                L2,
                &share("k", 80, false).replace("{NAME}", "a-first"),
                &share("k", 80, false).replace("{NAME}", "b-second"),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/b-second",
            exit: 1,
            says: &["in use by default/a-first and cannot be shared: both use port 80/TCP"],
        },
        Case {
            name: "sharing refused: different backends",
            manifests: docs(&[
                POOL,
                L2,
                &share("k", 80, false).replace("{NAME}", "a-first"),
                &share("k", 443, true).replace("{NAME}", "b-second"),
            ]),
            node_labels: "",
            speakers: None,
            service: "default/b-second",
            exit: 1,
            says: &[
                "cannot be shared: externalTrafficPolicy differs (Local here, Cluster on default/a-first)",
            ],
        },
        // ---- assigned but not announced (exit 2)
        Case {
            name: "no advertisement selects the pool",
            manifests: docs(&[POOL, &service("web", "", "")]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/web",
            exit: 2,
            says: &[
                "no L2Advertisement or BGPAdvertisement selects pool lan and Service default/web",
            ],
        },
        Case {
            name: "node selectors exclude every node",
            manifests: docs(&[
                POOL,
                "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {ipAddressPools: [lan], nodeSelectors: [{matchLabels: {rack: r9}}]}\n",
                &service("web", "", ""),
            ]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/web",
            exit: 2,
            says: &[
                "no node is eligible",
                "no L2Advertisement selecting pool lan selects node node1",
            ],
        },
        Case {
            name: "interfaces named that no node has",
            manifests: docs(&[
                POOL,
                "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: lan, namespace: ferrolb-system}\nspec: {ipAddressPools: [lan], interfaces: [eth9]}\n",
                &service("web", "", ""),
            ]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/web",
            exit: 2,
            says: &[
                "answers on no interface: the L2Advertisement names eth9, and node",
                "has none of them (or none is up)",
            ],
        },
        Case {
            name: "nodes excluded by label",
            manifests: docs(&[POOL, L2, &service("web", "", "")]),
            node_labels: "node.kubernetes.io/exclude-from-external-load-balancers: \"\"",
            speakers: Some(UP),
            service: "default/web",
            exit: 2,
            says: &[
                "node node2 is labelled node.kubernetes.io/exclude-from-external-load-balancers",
            ],
        },
        Case {
            name: "externalTrafficPolicy Local without a ready endpoint",
            manifests: docs(&[
                POOL,
                L2,
                &service("local", "", "externalTrafficPolicy: Local, "),
                "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: local-1, namespace: default, labels: {kubernetes.io/service-name: local}}\naddressType: IPv4\nendpoints: [{addresses: [10.1.0.1], conditions: {ready: false}, nodeName: node3}]\n",
            ]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/local",
            exit: 2,
            says: &["externalTrafficPolicy is Local and node node3 has no ready endpoint"],
        },
        Case {
            name: "no established session to a selected peer",
            manifests: docs(&[BGP, &service("routed", "", "")]),
            node_labels: "",
            speakers: Some(Speakers {
                session: ("Active", Some("connect: Connection refused (os error 111)")),
                conflict: None,
            }),
            service: "default/routed",
            exit: 2,
            says: &[
                "no established session from node node1 to BGPPeer router (state Active, last error: connect: Connection refused (os error 111)): 203.0.113.10/32 is not sent",
            ],
        },
        Case {
            name: "the elected node's speaker has not reported",
            manifests: docs(&[POOL, L2, &service("web", "", "")]),
            node_labels: "",
            speakers: None,
            service: "default/web",
            exit: 2,
            says: &["is elected to answer ARP for 198.51.100.10, but its speaker has not reported"],
        },
        // ---- announced (exit 0)
        Case {
            name: "layer 2",
            manifests: docs(&[POOL, L2, &service("web", "", "")]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/web",
            exit: 0,
            says: &["Service default/web: announced", "answers ARP on eth0"],
        },
        Case {
            name: "BGP",
            manifests: docs(&[BGP, &service("routed", "", "")]),
            node_labels: "",
            speakers: Some(UP),
            service: "default/routed",
            exit: 0,
            says: &[
                "BGP: node1 announces 203.0.113.10/32 to BGPPeer router (session Established",
                "1 prefixes sent; communities 64512:100)",
                "BGP: node3 announces 203.0.113.10/32",
            ],
        },
        Case {
            name: "conflict seen",
            manifests: docs(&[POOL, L2, &service("web", "", "")]),
            node_labels: "",
            speakers: Some(Speakers {
                session: ("Established", None),
                conflict: Some(("198.51.100.10", "02:00:00:00:00:99")),
            }),
            service: "default/web",
            exit: 0,
            says: &["conflict: another host (02:00:00:00:00:99) claims 198.51.100.10 on"],
        },
        // ---- no verdict (exit 3)
        Case {
            name: "no such Service",
            manifests: docs(&[POOL, L2]),
            node_labels: "",
            speakers: None,
            service: "default/absent",
            exit: 3,
            says: &[],
        },
    ]
}

/// Each node's report as its speaker would make it: the speaker's
/// decision over the directory (its manifests, `nodes.yaml` and the
/// controller's `status/services.yaml`), with the sessions and conflicts of
/// `sim`.
pub fn speaker_reports(dir: &Path, sim: Speakers) -> Vec<Report> {
    let snap = ferrolb_speaker::daemon::standalone::read(dir, &dir.join("status/services.yaml"));
    let mut reports = Vec::new();
    for node in NODES {
        let desired = decide(Inputs {
            config: &snap.config,
            services: &snap.services,
            members: None,
            node,
            lb_class: None,
        });
        let (state, error) = sim.session;
        let peers = desired
            .peers
            .iter()
            .map(|p| {
                let sent = desired.bgp.get(p).map_or(0, |r| r.len());
                (
                    p.clone(),
                    PeerState {
                        state: state.to_string(),
                        bfd_state: None,
                        last_transition: SystemTime::now(),
                        last_error: error.map(str::to_string),
                        prefixes: if state == "Established" { sent } else { 0 },
                    },
                )
            })
            .collect();
        // The announcer's interface choice, as the runner makes it on a
        // node whose only LAN interface is eth0: the advertisement's list
        // (only the interfaces the node has), else eth0.
        let interfaces: BTreeMap<IpAddr, Vec<String>> = desired
            .l2
            .iter()
            .map(|(ip, a)| {
                let chosen = if a.interfaces.is_empty() {
                    vec!["eth0".to_string()]
                } else {
                    a.interfaces
                        .iter()
                        .filter(|i| *i == "eth0")
                        .cloned()
                        .collect()
                };
                (*ip, chosen)
            })
            .collect();
        let conflicts = sim
            .conflict
            .map(|(ip, mac)| (ip.parse::<IpAddr>().unwrap(), mac))
            .filter(|(ip, _)| desired.l2.contains_key(ip))
            .map(|(ip, mac)| Conflict {
                ip,
                interface: "eth0".into(),
                other_mac: mac.into(),
                kind: "arp_sender",
            })
            .into_iter()
            .collect();
        let report = Report {
            node: node.to_string(),
            desired: Arc::new(desired),
            interfaces,
            conflicts,
            peers,
            membership: "not running (simulated by the test)".into(),
            ..Report::default()
        };
        reports.push(report);
    }
    reports
}
