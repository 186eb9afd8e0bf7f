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

// ---------------------------------------------------------------- plan

fn ips_text(ips: &[std::net::IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn usage_text(u: Option<&crate::plan::PoolUsage>) -> String {
    let Some(u) = u else {
        return "absent".to_string();
    };
    let mut parts = Vec::new();
    if u.assigned_ipv4 + u.available_ipv4 > 0 {
        parts.push(format!(
            "IPv4 {} in use, {} free",
            u.assigned_ipv4, u.available_ipv4
        ));
    }
    if u.assigned_ipv6 != "0" || u.available_ipv6 != "0" {
        parts.push(format!(
            "IPv6 {} in use, {} free",
            u.assigned_ipv6, u.available_ipv6
        ));
    }
    if parts.is_empty() {
        "no addresses".to_string()
    } else {
        parts.join("; ")
    }
}

fn nodes_text(nodes: &[String]) -> String {
    if nodes.is_empty() {
        "nobody".to_string()
    } else {
        nodes.join(", ")
    }
}

/// A plan, grouped for an administrator: the configuration's problems,
/// then IP changes, pools, announcements, notes and the result.
pub fn plan(p: &crate::plan::Plan) -> String {
    let mut out = String::new();
    let e = &p.edits;
    let mut edits = Vec::new();
    for (what, list) in [
        ("replaced", &e.replaced),
        ("added", &e.added),
        ("deleted", &e.deleted),
        ("pruned", &e.pruned),
        ("unchanged", &e.unchanged),
    ] {
        if !list.is_empty() {
            edits.push(format!("{what}: {}", list.join(", ")));
        }
    }
    let _ = writeln!(out, "Plan over the {}", p.source);
    for line in &edits {
        let _ = writeln!(out, "  {line}");
    }
    for i in &e.ignored {
        let _ = writeln!(out, "  ignored: {i}");
    }

    let new: Vec<&crate::plan::PlanProblem> = p.problems.iter().filter(|x| x.new).collect();
    if !new.is_empty() {
        let errors = new.iter().filter(|x| x.severity == "error").count();
        let _ = writeln!(
            out,
            "Configuration: the proposal has {} new problem{} ({errors} error{}){}:",
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            if errors == 1 { "" } else { "s" },
            if errors > 0 {
                "; the daemons would ignore the invalid objects and act on the rest, as shown below"
            } else {
                ""
            }
        );
        for x in &new {
            let _ = writeln!(out, "  {}", x.text);
        }
    }
    let old = p.problems.len() - new.len();
    if old > 0 {
        let _ = writeln!(
            out,
            "Configuration: {old} problem{} the current configuration has too",
            if old == 1 { "" } else { "s" }
        );
    }

    let s = &p.services;
    let _ = writeln!(out, "Services:");
    let mut any = false;
    for l in &s.lose {
        any = true;
        let _ = writeln!(
            out,
            "  {} loses {} (pool {}): {}",
            l.service,
            ips_text(&l.ips),
            l.pool,
            l.reason
        );
    }
    for c in &s.change {
        any = true;
        let _ = writeln!(
            out,
            "  {} changes {} (pool {}) to {} (pool {})",
            c.service,
            ips_text(&c.before.ips),
            c.before.pool,
            ips_text(&c.after.ips),
            c.after.pool
        );
    }
    for g in &s.get {
        any = true;
        let _ = writeln!(
            out,
            "  {} gets {} (pool {})",
            g.service,
            ips_text(&g.ips),
            g.pool
        );
    }
    for n in &s.new_pending {
        any = true;
        let _ = writeln!(out, "  {} would be pending: {}", n.service, n.reason);
    }
    if !any {
        let _ = writeln!(out, "  no change");
    }
    let _ = writeln!(
        out,
        "  {} unchanged, {} still pending",
        s.unchanged, s.still_pending
    );

    let _ = writeln!(out, "Pools:");
    if p.pools.is_empty() {
        let _ = writeln!(out, "  no change");
    }
    for c in &p.pools {
        let mut flags = Vec::new();
        if c.before.is_none() {
            flags.push("new pool".to_string());
        }
        if c.after.is_none() {
            flags.push("removed (or invalid)".to_string());
        }
        if !c.newly_exhausted.is_empty() {
            flags.push(format!("exhausted ({})", c.newly_exhausted.join(", ")));
        }
        if !c.freed.is_empty() {
            flags.push(format!("no longer exhausted ({})", c.freed.join(", ")));
        }
        let _ = writeln!(
            out,
            "  {}: {} -> {}{}",
            c.pool,
            usage_text(c.before.as_ref()),
            usage_text(c.after.as_ref()),
            if flags.is_empty() {
                String::new()
            } else {
                format!(": {}", flags.join(", "))
            }
        );
    }

    let _ = writeln!(out, "Announcements:");
    if p.layer2.is_empty() && p.bgp.is_empty() {
        let _ = writeln!(out, "  no change");
    }
    for l in &p.layer2 {
        let _ = writeln!(
            out,
            "  layer 2 {} ({}): {} -> {}",
            l.ip,
            l.services.join(", "),
            nodes_text(&l.from),
            nodes_text(&l.to)
        );
    }
    // BGP: one line per prefix, peer and kind of change, naming the nodes.
    let mut grouped: Vec<(String, Vec<String>)> = Vec::new();
    for b in &p.bgp {
        let head = match b.change {
            "attributes" => format!(
                "  BGP {} ({}) to {}: attributes {} -> {}, sent by",
                b.prefix,
                b.services.join(", "),
                b.peer,
                b.before.as_ref().map(attributes).unwrap_or_default(),
                b.after.as_ref().map(attributes).unwrap_or_default()
            ),
            change => format!(
                "  BGP {} ({}) to {}: {change} by",
                b.prefix,
                b.services.join(", "),
                b.peer
            ),
        };
        match grouped.iter_mut().find(|(h, _)| *h == head) {
            Some((_, nodes)) => nodes.push(b.node.clone()),
            None => grouped.push((head, vec![b.node.clone()])),
        }
    }
    for (head, nodes) in grouped {
        let _ = writeln!(out, "{head} {}", nodes.join(", "));
    }

    for n in &p.notes {
        let _ = writeln!(out, "note: {n}");
    }
    let result = if p.ip_change {
        "an IP a Service holds would change or be lost"
    } else if p.any_change {
        "no IP a Service holds would change or be lost"
    } else {
        "no change"
    };
    let _ = writeln!(
        out,
        "Result: {result}{} (exit {})",
        if p.new_errors {
            "; the proposal has configuration errors"
        } else {
            ""
        },
        p.exit_code
    );
    out
}
