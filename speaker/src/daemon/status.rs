//! The speaker's status, as Kubernetes-shaped documents: a
//! `ServiceL2Status` per Service this node answers for, a
//! `ServiceBGPStatus` per Service it announces over BGP, each selected
//! BGPPeer's session from this node, and a `SpeakerStatus` document with
//! every IP not announced here and why. In standalone mode they go to
//! `DIR/status/speaker-NODE.yaml`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use super::bgp::PeerState;
use super::l2::Conflict;
use crate::desired::{Desired, IpDecision, ServiceDecision};

/// What the daemon publishes after a change: compact, and shared with the
/// daemon (the decision is one `Arc`). The documents are made from it one
/// at a time when they are written, so 10,000 Services never sit in
/// memory as JSON trees.
#[derive(Debug, Default)]
pub struct Report {
    pub node: String,
    pub desired: Arc<Desired>,
    /// Interfaces announcing each IP this node answers for.
    pub interfaces: BTreeMap<IpAddr, Vec<String>>,
    /// Why layer 2 cannot run, if it cannot.
    pub l2_error: Option<String>,
    /// Other hosts answering for our IPs.
    pub conflicts: Vec<Conflict>,
    /// This node's session to each peer it runs.
    pub peers: BTreeMap<String, PeerState>,
    /// Peers selected for this node that cannot run, and why.
    pub peer_errors: BTreeMap<String, String>,
    /// Configuration and reading problems.
    pub problems: Vec<String>,
    /// How membership stands.
    pub membership: String,
}

/// Kinds of the per-Service status objects.
pub const L2_KIND: &str = "ServiceL2Status";
pub const BGP_KIND: &str = "ServiceBGPStatus";

impl Report {
    /// Whether this node answers for one of the Service's IPs.
    pub fn owns_l2(&self, s: &ServiceDecision) -> bool {
        s.ips
            .iter()
            .any(|d| d.l2_owner.as_deref() == Some(self.node.as_str()))
    }

    /// Interfaces announcing the Service's layer-2 IPs from this node.
    pub fn l2_interfaces(&self, s: &ServiceDecision) -> Vec<&str> {
        s.ips
            .iter()
            .filter(|d| d.l2_owner.as_deref() == Some(self.node.as_str()))
            .filter_map(|d| d.ip)
            .flat_map(|ip| self.interfaces.get(&ip).into_iter().flatten())
            .map(String::as_str)
            .collect()
    }

    /// Peers this node announces one of the Service's IPs to, sorted.
    pub fn bgp_peers<'s>(&self, s: &'s ServiceDecision) -> Vec<&'s str> {
        let mut peers: Vec<&str> = s
            .ips
            .iter()
            .flat_map(|d| d.bgp.iter().map(|(p, _)| &**p))
            .collect();
        peers.sort_unstable();
        peers.dedup();
        peers
    }

    /// The `ServiceL2Status` and `ServiceBGPStatus` documents, made one at
    /// a time, in a stable order.
    pub fn service_documents(&self) -> impl Iterator<Item = Value> + '_ {
        self.desired.services.iter().flat_map(move |s| {
            let labels = json!({
                "ferrolb.io/node": self.node,
                "ferrolb.io/service-name": s.key.name,
                "ferrolb.io/service-namespace": s.key.namespace,
            });
            let meta = |labels: Value| {
                json!({"name": format!("{}-{}", s.key.name, self.node), "namespace": s.key.namespace, "labels": labels})
            };
            let l2 = self.owns_l2(s).then(|| {
                let ifaces: Vec<Value> = self
                    .l2_interfaces(s)
                    .into_iter()
                    .map(|name| json!({ "name": name }))
                    .collect();
                json!({
                    "apiVersion": "ferrolb.io/v1beta1",
                    "kind": L2_KIND,
                    "metadata": meta(labels.clone()),
                    "status": {
                        "node": self.node,
                        "serviceName": s.key.name,
                        "serviceNamespace": s.key.namespace,
                        "interfaces": ifaces,
                    },
                })
            });
            let peers = self.bgp_peers(s);
            let bgp = (!peers.is_empty()).then(|| {
                json!({
                    "apiVersion": "ferrolb.io/v1beta1",
                    "kind": BGP_KIND,
                    "metadata": meta(labels),
                    "status": {
                        "node": self.node,
                        "serviceName": s.key.name,
                        "serviceNamespace": s.key.namespace,
                        "peers": peers,
                    },
                })
            });
            l2.into_iter().chain(bgp)
        })
    }

    /// This node's session to each BGPPeer that selects it, by peer name.
    pub fn sessions(&self) -> impl Iterator<Item = (&str, Value)> + '_ {
        self.desired.peers.iter().map(move |name| {
            let session = match (self.peers.get(name), self.peer_errors.get(name)) {
                (Some(st), err) => json!({
                    "node": self.node,
                    "state": st.state,
                    "bfdState": st.bfd_state,
                    "lastTransitionTime": rfc3339(st.last_transition),
                    "message": err.or(st.last_error.as_ref()),
                    "prefixes": st.prefixes,
                }),
                (None, err) => json!({
                    "node": self.node,
                    "state": "NotRunning",
                    "message": err,
                }),
            };
            (name.as_str(), session)
        })
    }

    /// The `SpeakerStatus` document (standalone mode's summary): borrowed,
    /// serialized without an intermediate tree.
    pub fn speaker_status(&self) -> SpeakerStatus<'_> {
        let each = |keep: fn(&Report, &IpDecision) -> bool| {
            self.desired
                .services
                .iter()
                .flat_map(move |s| {
                    s.ips
                        .iter()
                        .filter(move |d| keep(self, d))
                        .map(move |d| (s, d))
                })
                .collect::<Vec<_>>()
        };
        SpeakerStatus {
            api_version: "ferrolb.io/v1beta1",
            kind: "SpeakerStatus",
            metadata: SpeakerMeta { name: &self.node },
            status: SpeakerBody {
                node: &self.node,
                excluded: self.desired.node_excluded.as_deref(),
                membership: &self.membership,
                layer2_error: self.l2_error.as_deref(),
                announced: each(|r, d| d.announced_here(&r.node))
                    .into_iter()
                    .map(|(s, d)| Announced {
                        service: Key(s),
                        ip: d.ip,
                        layer2: d.l2_owner.as_deref() == Some(self.node.as_str()),
                        bgp_peers: d
                            .bgp
                            .iter()
                            .map(|(p, pfx)| PeerPrefix {
                                peer: p,
                                prefix: pfx.to_string(),
                            })
                            .collect(),
                    })
                    .collect(),
                not_announced: each(|_, d| !d.reasons.is_empty())
                    .into_iter()
                    .map(|(s, d)| NotAnnounced {
                        service: Key(s),
                        ip: d.ip,
                        pool: d.pool.as_deref(),
                        layer2_owner: d.l2_owner.as_deref(),
                        reasons: &d.reasons,
                    })
                    .collect(),
                conflicts: self
                    .conflicts
                    .iter()
                    .map(|c| ConflictEntry {
                        ip: c.ip,
                        interface: &c.interface,
                        other_mac: &c.other_mac,
                        kind: c.kind,
                    })
                    .collect(),
                problems: &self.problems,
            },
        }
    }
}

/// A Service as `namespace/name`.
pub struct Key<'a>(&'a ServiceDecision);

impl Serialize for Key<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0.key)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerStatus<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: SpeakerMeta<'a>,
    pub status: SpeakerBody<'a>,
}

#[derive(Serialize)]
pub struct SpeakerMeta<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeakerBody<'a> {
    node: &'a str,
    excluded: Option<&'a str>,
    membership: &'a str,
    layer2_error: Option<&'a str>,
    announced: Vec<Announced<'a>>,
    not_announced: Vec<NotAnnounced<'a>>,
    conflicts: Vec<ConflictEntry<'a>>,
    problems: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Announced<'a> {
    service: Key<'a>,
    ip: Option<IpAddr>,
    layer2: bool,
    bgp_peers: Vec<PeerPrefix<'a>>,
}

#[derive(Serialize)]
pub struct PeerPrefix<'a> {
    peer: &'a str,
    prefix: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotAnnounced<'a> {
    service: Key<'a>,
    ip: Option<IpAddr>,
    pool: Option<&'a str>,
    layer2_owner: Option<&'a str>,
    reasons: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConflictEntry<'a> {
    ip: IpAddr,
    interface: &'a str,
    #[serde(rename = "otherMAC")]
    other_mac: &'a str,
    kind: &'static str,
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

/// Writes `DIR/status/speaker-NODE.yaml` (atomically); a failure is logged.
pub fn write(dir: &Path, report: &Report) {
    let status_dir = dir.join("status");
    let path = status_dir.join(format!("speaker-{}.yaml", report.node));
    let tmp = status_dir.join(format!(".speaker-{}.yaml.tmp", report.node));
    let result = std::fs::create_dir_all(&status_dir)
        .and_then(|()| std::fs::File::create(&tmp))
        .and_then(|file| {
            let mut out = std::io::BufWriter::new(file);
            out.write_all(b"# Written by ferrolb-speaker; overwritten on every change.\n")?;
            let doc = |out: &mut std::io::BufWriter<std::fs::File>,
                       text: Result<String, serde_saphyr::SerializeError>|
             -> std::io::Result<()> {
                out.write_all(b"---\n")?;
                match text {
                    Ok(y) => out.write_all(y.as_bytes()),
                    Err(e) => writeln!(out, "# cannot serialize: {e}"),
                }
            };
            for d in report.service_documents() {
                doc(&mut out, serde_saphyr::to_string(&d))?;
            }
            for (name, session) in report.sessions() {
                let d = json!({
                    "apiVersion": "ferrolb.io/v1beta2",
                    "kind": "BGPPeer",
                    "metadata": {"name": name, "namespace": ferrolb_config::DEFAULT_NAMESPACE},
                    "status": {"sessions": [session]},
                });
                doc(&mut out, serde_saphyr::to_string(&d))?;
            }
            // The summary is the one large document: serialized straight
            // into the file.
            out.write_all(b"---\n")?;
            if let Err(e) = serde_saphyr::to_io_writer(&mut out, &report.speaker_status()) {
                writeln!(out, "\n# cannot serialize: {e}")?;
            }
            out.into_inner().map(drop).map_err(|e| e.into_error())
        })
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
