//! The speaker's status, as Kubernetes-shaped documents: a
//! `ServiceL2Status` per Service this node answers for, a
//! `ServiceBGPStatus` per Service it announces over BGP, each selected
//! BGPPeer's session from this node, and a `SpeakerStatus` document with
//! every IP not announced here and why. In standalone mode they go to
//! `DIR/status/speaker-NODE.yaml`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ferrolb_config::Problem;
use serde_json::{Value, json};

use super::bgp::PeerState;
use super::l2::L2;
use crate::desired::Desired;

pub struct View<'a> {
    pub node: &'a str,
    pub desired: &'a Desired,
    pub l2: &'a L2,
    pub peers: BTreeMap<String, PeerState>,
    pub peer_errors: &'a BTreeMap<String, String>,
    pub problems: &'a [Problem],
    pub membership: &'a str,
}

/// RFC 3339 UTC time of `t`, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The documents, in a stable order.
pub fn documents(v: &View<'_>) -> Vec<Value> {
    let mut docs = Vec::new();
    for s in &v.desired.services {
        let l2_ifaces: Vec<Value> = s
            .ips
            .iter()
            .filter(|d| d.l2_owner.as_deref() == Some(v.node))
            .filter_map(|d| d.ip)
            .flat_map(|ip| v.l2.interfaces.get(&ip).cloned().unwrap_or_default())
            .map(|name| json!({ "name": name }))
            .collect();
        let owns = s.ips.iter().any(|d| d.l2_owner.as_deref() == Some(v.node));
        let labels = json!({
            "ferrolb.io/node": v.node,
            "ferrolb.io/service-name": s.key.name,
            "ferrolb.io/service-namespace": s.key.namespace,
        });
        if owns {
            docs.push(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "ServiceL2Status",
                "metadata": {"name": format!("{}-{}", s.key.name, v.node), "namespace": s.key.namespace, "labels": labels},
                "status": {
                    "node": v.node,
                    "serviceName": s.key.name,
                    "serviceNamespace": s.key.namespace,
                    "interfaces": l2_ifaces,
                },
            }));
        }
        let mut peers: Vec<&str> = s
            .ips
            .iter()
            .flat_map(|d| d.bgp.iter().map(|(p, _)| p.as_str()))
            .collect();
        peers.sort();
        peers.dedup();
        if !peers.is_empty() {
            docs.push(json!({
                "apiVersion": "ferrolb.io/v1beta1",
                "kind": "ServiceBGPStatus",
                "metadata": {"name": format!("{}-{}", s.key.name, v.node), "namespace": s.key.namespace, "labels": labels},
                "status": {
                    "node": v.node,
                    "serviceName": s.key.name,
                    "serviceNamespace": s.key.namespace,
                    "peers": peers,
                },
            }));
        }
    }
    for name in &v.desired.peers {
        let session = match (v.peers.get(name), v.peer_errors.get(name)) {
            (Some(st), err) => json!({
                "node": v.node,
                "state": st.state,
                "bfdState": st.bfd_state,
                "lastTransitionTime": rfc3339(st.last_transition),
                "message": err.or(st.last_error.as_ref()),
                "prefixes": st.prefixes,
            }),
            (None, err) => json!({
                "node": v.node,
                "state": "NotRunning",
                "message": err,
            }),
        };
        docs.push(json!({
            "apiVersion": "ferrolb.io/v1beta2",
            "kind": "BGPPeer",
            "metadata": {"name": name, "namespace": ferrolb_config::DEFAULT_NAMESPACE},
            "status": {"sessions": [session]},
        }));
    }
    let not_announced: Vec<Value> = v
        .desired
        .services
        .iter()
        .flat_map(|s| {
            s.ips
                .iter()
                .filter(|d| !d.reasons.is_empty())
                .map(move |d| {
                    json!({
                        "service": s.key.to_string(),
                        "ip": d.ip,
                        "pool": d.pool,
                        "layer2Owner": d.l2_owner,
                        "reasons": d.reasons,
                    })
                })
        })
        .collect();
    let announced: Vec<Value> = v
        .desired
        .services
        .iter()
        .flat_map(|s| {
            s.ips
                .iter()
                .filter(|d| d.announced_here(v.node))
                .map(move |d| {
                    json!({
                        "service": s.key.to_string(),
                        "ip": d.ip,
                        "layer2": d.l2_owner.as_deref() == Some(v.node),
                        "bgpPeers": d.bgp.iter().map(|(p, pfx)| json!({"peer": p, "prefix": pfx.to_string()})).collect::<Vec<_>>(),
                    })
                })
        })
        .collect();
    let conflicts: Vec<Value> = v
        .l2
        .conflicts
        .iter()
        .map(|c| json!({"ip": c.ip, "interface": c.interface, "otherMAC": c.other_mac, "kind": c.kind}))
        .collect();
    docs.push(json!({
        "apiVersion": "ferrolb.io/v1beta1",
        "kind": "SpeakerStatus",
        "metadata": {"name": v.node},
        "status": {
            "node": v.node,
            "excluded": v.desired.node_excluded,
            "membership": v.membership,
            "layer2Error": v.l2.error,
            "announced": announced,
            "notAnnounced": not_announced,
            "conflicts": conflicts,
            "problems": v.problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        },
    }));
    docs
}

/// Writes `DIR/status/speaker-NODE.yaml` (atomically); a failure is logged.
pub fn write(dir: &Path, node: &str, docs: &[Value]) {
    let mut text = String::from("# Written by ferrolb-speaker; overwritten on every change.\n");
    for doc in docs {
        text.push_str("---\n");
        match serde_saphyr::to_string(doc) {
            Ok(y) => text.push_str(&y),
            Err(e) => text.push_str(&format!("# cannot serialize: {e}\n")),
        }
    }
    let status_dir = dir.join("status");
    let path = status_dir.join(format!("speaker-{node}.yaml"));
    let tmp = status_dir.join(format!(".speaker-{node}.yaml.tmp"));
    let result = std::fs::create_dir_all(&status_dir)
        .and_then(|()| std::fs::write(&tmp, text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = result {
        tracing::warn!("cannot write {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::rfc3339;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_796_614_984)),
            "2026-12-07T03:43:04Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
    }
}
