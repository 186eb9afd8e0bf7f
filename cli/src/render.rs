//! The explanations as text for people (`-o json` prints them as they are).

use std::fmt::Write;

use crate::explain::{
    Attributes, BgpRoute, NodeExplanation, PeerExplanation, ServiceExplanation, Verdict,
};
use crate::world::SessionSeen;

fn attributes(a: &Attributes) -> String {
    let mut parts = Vec::new();
    if !a.communities.is_empty() {
        parts.push(format!("communities {}", a.communities.join(" ")));
    }
    if !a.large_communities.is_empty() {
        parts.push(format!(
            "large communities {}",
            a.large_communities.join(" ")
        ));
    }
    if let Some(p) = a.local_pref {
        parts.push(format!("local-pref {p}"));
    }
    parts.join(", ")
}

fn session(s: Option<&SessionSeen>) -> String {
    let Some(s) = s else {
        return "no session reported".to_string();
    };
    let mut out = format!("session {}", s.state);
    if let Some(t) = &s.last_transition_time {
        let _ = write!(out, " since {t}");
    }
    if let Some(b) = &s.bfd_state {
        let _ = write!(out, ", BFD {b}");
    }
    if let Some(p) = s.prefixes {
        let _ = write!(out, ", {p} prefixes sent");
    }
    if let Some(e) = &s.last_error {
        let _ = write!(out, ", last error: {e}");
    }
    out
}

fn route(r: &BgpRoute) -> String {
    let attrs = attributes(&r.attributes);
    format!(
        "{} {} {} to BGPPeer {} ({}{}{})",
        r.node,
        if r.announced {
            "announces"
        } else {
            "would announce"
        },
        r.prefix,
        r.peer,
        session(r.session.as_ref()),
        if attrs.is_empty() { "" } else { "; " },
        attrs
    )
}

/// `explain service`.
pub fn service(e: &ServiceExplanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Service {}: {}", e.service, e.verdict.text());
    let a = &e.allocation;
    match e.verdict {
        Verdict::Pending => {
            for r in &e.reasons {
                let _ = writeln!(out, "  why: {r}");
            }
            if !a.pools.is_empty() {
                let _ = writeln!(out, "  pools, in the order they are tried:");
                for p in &a.pools {
                    match &p.rejected {
                        Some(r) => {
                            let _ = writeln!(out, "    {}: {r}", p.pool);
                        }
                        None => {
                            let ips: Vec<String> = p.ips.iter().map(ToString::to_string).collect();
                            let _ = writeln!(out, "    {}: would give {}", p.pool, ips.join(", "));
                        }
                    }
                }
            }
            for p in &a.ignored_pools {
                let _ = writeln!(out, "  {p}");
            }
        }
        _ => {
            let ips: Vec<String> = a.status_ips.iter().map(ToString::to_string).collect();
            let _ = writeln!(
                out,
                "  IPs: {}{}",
                ips.join(", "),
                a.pool
                    .as_deref()
                    .map(|p| format!(" (pool {p})"))
                    .unwrap_or_default()
            );
            for ip in &e.ips {
                let _ = writeln!(
                    out,
                    "  {}: {}",
                    ip.ip,
                    if ip.announced {
                        "announced"
                    } else {
                        "not announced"
                    }
                );
                if let Some(l2) = &ip.layer2 {
                    let arp = if ip.ip.is_ipv4() { "ARP" } else { "NDP" };
                    for n in &l2.answering {
                        let mut line = format!("layer 2: {} answers {arp}", n.node);
                        if !n.interfaces.is_empty() {
                            let _ = write!(line, " on {}", n.interfaces.join(", "));
                        }
                        if let Some(s) = &n.since {
                            let _ = write!(line, " (since {s})");
                        }
                        let _ = writeln!(out, "    {line}");
                    }
                    if l2.answering.is_empty()
                        && let Some(o) = &l2.elected_owner
                    {
                        let _ = writeln!(out, "    layer 2: {o} is elected to answer {arp}");
                    }
                }
                for r in &ip.bgp {
                    let _ = writeln!(out, "    BGP: {}", route(r));
                }
                for c in &ip.conflicts {
                    let _ = writeln!(out, "    conflict: {c}");
                }
                for r in &ip.reasons {
                    let _ = writeln!(out, "    why: {r}");
                }
                if ip.announced && !ip.other_nodes.is_empty() {
                    let _ = writeln!(out, "    not from the other nodes:");
                    for n in &ip.other_nodes {
                        let _ = writeln!(out, "      {}: {}", n.node, n.reasons.join("; "));
                    }
                }
            }
        }
    }
    for n in &e.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

/// `explain node`.
pub fn node(e: &NodeExplanation) -> String {
    let mut out = String::new();
    let verb = if e.speaker.is_some() {
        "announces"
    } else {
        "would announce"
    };
    let _ = writeln!(
        out,
        "Node {}: {}",
        e.node,
        match &e.excluded {
            Some(r) => format!("{verb} nothing: {r}"),
            None => format!(
                "{verb} {} Service IP{}",
                e.announces.len(),
                if e.announces.len() == 1 { "" } else { "s" }
            ),
        }
    );
    if let Some(s) = &e.speaker {
        if let Some(m) = &s.membership {
            let _ = writeln!(out, "  membership: {m}");
        }
        if let Some(l) = &s.layer2_error {
            let _ = writeln!(out, "  layer 2 cannot run: {l}");
        }
        for p in &s.problems {
            let _ = writeln!(out, "  problem: {p}");
        }
    }
    for p in &e.peers {
        let _ = writeln!(
            out,
            "  BGPPeer {}: {}; {} route{} to send",
            p.peer,
            session(p.session.as_ref()),
            p.routes.len(),
            if p.routes.len() == 1 { "" } else { "s" }
        );
        for r in &p.routes {
            let attrs = attributes(&r.attributes);
            let _ = writeln!(
                out,
                "    {}{}{}",
                r.prefix,
                if attrs.is_empty() { "" } else { ": " },
                attrs
            );
        }
    }
    for a in &e.announces {
        let mut how = Vec::new();
        if a.layer2 {
            let arp = if a.ip.is_ipv4() { "ARP" } else { "NDP" };
            how.push(if a.interfaces.is_empty() {
                format!("answers {arp}")
            } else {
                format!("answers {arp} on {}", a.interfaces.join(", "))
            });
        }
        for b in &a.bgp {
            how.push(format!("sends {} to {}", b.prefix, b.peer));
        }
        let _ = writeln!(
            out,
            "  {verb} {} of {}: {}{}",
            a.ip,
            a.service,
            how.join("; "),
            if a.reported || e.speaker.is_none() {
                ""
            } else {
                " (not in its speaker's status)"
            }
        );
    }
    for n in &e.not_announced {
        let ip = n.ip.map(|i| i.to_string()).unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  does not announce {ip} of {}: {}",
            n.service,
            n.reasons.join("; ")
        );
    }
    for c in &e.conflicts {
        let _ = writeln!(out, "  conflict: {c}");
    }
    for n in &e.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    out
}

/// `explain peer`.
pub fn peer(e: &PeerExplanation) -> String {
    let mut out = String::new();
    let target = match (&e.peer_address, &e.interface) {
        (Some(a), _) => a.clone(),
        (None, Some(i)) => format!("unnumbered on {i}"),
        (None, None) => "?".into(),
    };
    let _ = writeln!(
        out,
        "BGPPeer {}: {target}, AS {} -> AS {}",
        e.peer,
        e.my_asn,
        e.peer_asn
            .map(|a| a.to_string())
            .unwrap_or_else(|| "dynamic".into())
    );
    let _ = writeln!(
        out,
        "  advertisements reaching it: {}",
        if e.advertisements.is_empty() {
            "none".to_string()
        } else {
            e.advertisements.join(", ")
        }
    );
    for n in &e.nodes {
        if !n.selected {
            let _ = writeln!(
                out,
                "  {}: no session: {}",
                n.node,
                n.reason.as_deref().unwrap_or("not selected")
            );
            continue;
        }
        let _ = writeln!(
            out,
            "  {}: {}; {} route{} to send{}",
            n.node,
            session(n.session.as_ref()),
            n.routes.len(),
            if n.routes.len() == 1 { "" } else { "s" },
            n.reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        );
        for r in &n.routes {
            let attrs = attributes(&r.attributes);
            let _ = writeln!(
                out,
                "    {}{}{}",
                r.prefix,
                if attrs.is_empty() { "" } else { ": " },
                attrs
            );
        }
    }
    out
}
