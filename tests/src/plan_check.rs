//! What `plan -o json` (schema `ferrolb.io/plan/v1`, docs/PLAN.md)
//! predicts, applied to what the daemons did before an edit: the tests
//! then compare it with what they do after the edit is applied
//! (`tests/tests/plan.rs` in standalone mode, `tests/tests/explain_lab.rs`
//! against a cluster with real speakers and a router).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde_json::Value;

/// A JSON array of IP strings.
pub fn ips_of(v: &Value) -> BTreeSet<IpAddr> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            i.as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("not an IP: {i}"))
        })
        .collect()
}

fn array<'a>(v: &'a Value, what: &str) -> &'a Vec<Value> {
    v.as_array()
        .unwrap_or_else(|| panic!("the plan's {what} is not an array: {v}"))
}

fn text(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

fn names(v: &Value) -> BTreeSet<String> {
    array(v, "node list").iter().map(text).collect()
}

/// Every Service's IPs ("NS/NAME" → IPs) before, with the plan's `lose`,
/// `change`, `get` and `newPending` applied.
pub fn predicted_ips(
    before: &BTreeMap<String, BTreeSet<IpAddr>>,
    plan: &Value,
) -> BTreeMap<String, BTreeSet<IpAddr>> {
    let mut out = before.clone();
    let s = &plan["services"];
    for l in array(&s["lose"], "services.lose") {
        out.insert(text(&l["service"]), BTreeSet::new());
    }
    for c in array(&s["change"], "services.change") {
        out.insert(text(&c["service"]), ips_of(&c["after"]["ips"]));
    }
    for g in array(&s["get"], "services.get") {
        out.insert(text(&g["service"]), ips_of(&g["ips"]));
    }
    for p in array(&s["newPending"], "services.newPending") {
        out.insert(text(&p["service"]), BTreeSet::new());
    }
    out
}

/// The layer-2 owners of each IP before, with the plan's `layer2` changes
/// applied. Panics when a change's `from` is not who owns the IP before
/// (the plan would then describe another state than the one measured).
pub fn predicted_layer2(
    before: &BTreeMap<IpAddr, BTreeSet<String>>,
    plan: &Value,
) -> BTreeMap<IpAddr, BTreeSet<String>> {
    let mut l2 = before.clone();
    for c in array(&plan["layer2"], "layer2") {
        let ip: IpAddr = text(&c["ip"]).parse().expect("layer2[].ip");
        assert_eq!(
            l2.get(&ip).cloned().unwrap_or_default(),
            names(&c["from"]),
            "the plan's owners of {ip} now"
        );
        let to = names(&c["to"]);
        if to.is_empty() {
            l2.remove(&ip);
        } else {
            l2.insert(ip, to);
        }
    }
    l2
}

/// The routes sent before, (prefix, node, peer) → attributes, with the
/// plan's `bgp` changes applied; `attrs` reads a change's `after`
/// attributes into what the caller compares.
pub fn predicted_bgp<V: Clone>(
    before: &BTreeMap<(String, String, String), V>,
    plan: &Value,
    attrs: impl Fn(&Value) -> V,
) -> BTreeMap<(String, String, String), V> {
    let mut bgp = before.clone();
    for c in array(&plan["bgp"], "bgp") {
        let key = (text(&c["prefix"]), text(&c["node"]), text(&c["peer"]));
        match c["change"].as_str() {
            Some("withdrawn") => {
                assert!(bgp.remove(&key).is_some(), "{key:?} is not sent now");
            }
            Some("added" | "attributes") => {
                bgp.insert(key, attrs(&c["after"]));
            }
            other => panic!("bgp[].change {other:?}"),
        }
    }
    bgp
}
