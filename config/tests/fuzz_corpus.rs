//! The cargo-fuzz target bodies ([`ferrolb_config::fuzzing`]) run without
//! cargo-fuzz: over the committed minimized corpus in
//! `fuzz/corpus/<target>/`, over proptest-generated inputs, and with an
//! allocator that records the largest single allocation and the sum of
//! all allocations, bounded by the input's length.
//!
//! The campaigns' first seeds were written into the corpus directories by
//! the ignored test `write_seeds`, then minimized with the campaigns'
//! findings (`fuzz/run.sh --cmin`):
//!
//!     cargo test -p ferrolb-config --test fuzz_corpus -- --ignored write_seeds

#[path = "../../fuzz/replay.rs"]
mod replay;

use std::path::Path;

use ferrolb_config::fuzzing;
use proptest::prelude::*;
use replay::Target;

/// One object read from YAML is a few kilobytes of typed structs (a
/// Service's spec has dozens of optional fields) whatever its size; the
/// rest grows with what the text holds.
fn largest(len: usize) -> usize {
    256 * len + 64 * 1024
}

/// Reading, validating and re-reading a file costs a few hundred octets
/// per input octet, plus the typed objects. A document that expands (YAML
/// aliases replayed a million times) does not fit.
fn total(len: usize) -> usize {
    4096 * len + 1024 * 1024
}

const YAML_MANIFEST: Target = Target {
    name: "yaml_manifest",
    body: fuzzing::yaml_manifest,
    largest,
    total,
};
const MIGRATE: Target = Target {
    name: "migrate",
    body: fuzzing::migrate,
    largest,
    total,
};

#[test]
fn committed_corpus_replays_cleanly() {
    replay::replay_corpus(YAML_MANIFEST, 5);
    replay::replay_corpus(MIGRATE, 5);
}

#[test]
fn seeds_replay_cleanly() {
    for (name, bytes) in manifest_seeds() {
        eprintln!("yaml_manifest seed {name}");
        replay::run(YAML_MANIFEST, &bytes);
    }
    for (name, bytes) in migrate_seeds() {
        eprintln!("migrate seed {name}");
        replay::run(MIGRATE, &bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn yaml_manifest_mutated(data in mutated(manifest_seeds())) {
        replay::run(YAML_MANIFEST, &data);
    }

    #[test]
    fn migrate_mutated(data in mutated(migrate_seeds())) {
        replay::run(MIGRATE, &data);
    }
}

/// A seed with a few octets overwritten, inserted or removed (YAML's
/// punctuation more often than other octets).
fn mutated(seeds: Vec<(String, Vec<u8>)>) -> impl Strategy<Value = Vec<u8>> {
    let seeds: Vec<Vec<u8>> = seeds.into_iter().map(|(_, b)| b).collect();
    let octet = prop_oneof![
        any::<u8>(),
        prop::sample::select(b":-[]{}&*!|>'\"#,? \n\t".to_vec()),
    ];
    (
        prop::sample::select(seeds),
        prop::collection::vec((any::<prop::sample::Index>(), octet, 0u8..4), 1..8),
    )
        .prop_map(|(mut bytes, edits)| {
            for (at, byte, op) in edits {
                match op {
                    0 | 1 if !bytes.is_empty() => {
                        let i = at.index(bytes.len());
                        bytes[i] = byte;
                    }
                    2 => {
                        let i = at.index(bytes.len() + 1);
                        bytes.insert(i, byte);
                    }
                    _ if !bytes.is_empty() => {
                        let i = at.index(bytes.len());
                        bytes.remove(i);
                    }
                    _ => {}
                }
            }
            bytes
        })
}

// ---------------------------------------------------------------------------
// Seeds: the repository's example and test manifests, and a few written
// here for what they lack.

fn repo_file(path: &str) -> (String, Vec<u8>) {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    let bytes = std::fs::read(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    (path.replace('/', "_"), bytes)
}

fn written(name: &str, text: &str) -> (String, Vec<u8>) {
    (name.to_string(), text.as_bytes().to_vec())
}

const SERVICE_ANNOTATIONS: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
  annotations:
    ferrolb.io/loadBalancerIPs: 192.0.2.10,2001:db8::10
    ferrolb.io/address-pool: lan
    ferrolb.io/allow-shared-ip: web-key
    metallb.universe.tf/loadBalancerIPs: 192.0.2.11
    metallb.io/address-pool: other
spec:
  type: LoadBalancer
  ipFamilyPolicy: RequireDualStack
  ipFamilies: [IPv6, IPv4]
  loadBalancerIP: 192.0.2.12
  externalTrafficPolicy: Local
  selector: {app: web}
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: 8080}
status:
  loadBalancer:
    ingress: [{ip: 192.0.2.10}, {ip: 2001:db8::10}]
";

const TYPES: &str = "\
apiVersion: v1
kind: Service
metadata: {name: y, namespace: on}
---
apiVersion: v1
kind: Service
metadata:
  name: x
  annotations: {ferrolb.io/allow-shared-ip: yes, a: 1e3, b: ~}
spec: {ports: [{port: \"80\"}]}
---
--- {apiVersion: v1, kind: Namespace, metadata: {name: 0123}}
";

const ALIASES: &str = "\
x-pool: &addrs [192.0.2.0/28, '2001:db8::/124']
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata: &meta {name: lan}
spec:
  addresses: *addrs
  <<: {autoAssign: false}
...
apiVersion: v1
kind: List
items:
- apiVersion: ferrolb.io/v1beta1
  kind: L2Advertisement
  metadata: {name: l2}
  spec: {ipAddressPools: [lan], interfaces: [eth0]}
- apiVersion: v1
  kind: Node
  metadata: {name: node1, labels: {kubernetes.io/hostname: node1}}
";

fn manifest_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = [
        "deploy/examples/service.yaml",
        "deploy/examples/l2-ipv4.yaml",
        "deploy/examples/l2-dualstack.yaml",
        "deploy/examples/bgp.yaml",
        "deploy/examples/bad/wrong-type.yaml",
        "deploy/examples/bad/bfd-range.yaml",
        "deploy/examples/invalid/backwards-range.yaml",
        "deploy/examples/invalid/hold-time.yaml",
        "config/testdata/validate/good.yaml",
        "config/testdata/validate/bad.yaml",
    ]
    .into_iter()
    .map(repo_file)
    .collect();
    seeds.push(written("service-annotations.yaml", SERVICE_ANNOTATIONS));
    seeds.push(written("types.yaml", TYPES));
    seeds.push(written("aliases-list.yaml", ALIASES));
    seeds.push(written(
        "crlf.yaml",
        &SERVICE_ANNOTATIONS.replace('\n', "\r\n"),
    ));
    seeds.push((
        "not-utf8.yaml".into(),
        b"apiVersion: v1\nkind: Service\nmetadata: {name: \xff}\n".to_vec(),
    ));
    seeds
}

fn migrate_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds: Vec<(String, Vec<u8>)> = [
        "config/testdata/metallb/addresspool-v1beta1.yaml",
        "config/testdata/metallb/legacy-configmap.yaml",
        "config/tests/metallb-configsamples/bgppeer_with_bfdprofile.yaml",
        "config/tests/metallb-configsamples/bgpadvertisement_community_alias.yaml",
        "config/tests/metallb-configsamples/ipaddresspool_with_selector.yaml",
        "config/tests/metallb-configsamples/deployment_l2.yaml",
        "config/tests/metallb-configsamples/bgppeer_withsecret.yaml",
        "config/tests/metallb-configsamples/bgpadvertisement_communities_localpref.yaml",
        "config/tests/metallb-configsamples/l2adv_with_node_selector.yaml",
    ]
    .into_iter()
    .map(repo_file)
    .collect();
    seeds.push(written(
        "legacy-config-text.yaml",
        "peers:\n- peer-address: 192.0.2.1\n  peer-asn: 64512\n  my-asn: 64513\n  \
         node-selectors: [{match-labels: {rack: a}}]\n\
         bgp-communities: {no-advertise: 65535:65282}\n\
         bfd-profiles: [{name: fast, receive-interval: 300}]\n\
         address-pools:\n- name: default\n  protocol: bgp\n  addresses: [198.51.100.0/24]\n  \
         bgp-advertisements: [{aggregation-length: 32, communities: [no-advertise]}]\n",
    ));
    seeds.push(written("service-annotations.yaml", SERVICE_ANNOTATIONS));
    seeds
}

/// Adds the seeds of both targets to their corpus directories.
#[test]
#[ignore = "writes into the source tree"]
fn write_seeds() {
    replay::write_seeds(&replay::corpus_dir("yaml_manifest"), &manifest_seeds());
    replay::write_seeds(&replay::corpus_dir("migrate"), &migrate_seeds());
}

// ---------------------------------------------------------------------------
// Regressions.

/// Nine anchors of ten aliases each: 290 octets of YAML that the parser's
/// default limits (a million replayed events) let expand to a hundred
/// thousand values and tens of megabytes. A configuration file may use
/// aliases, but what they expand to stays in proportion to the file.
#[test]
fn aliases_do_not_expand_out_of_proportion() {
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..6 {
        let prev = format!("*a{}", i - 1);
        let list = [prev.as_str(); 10].join(", ");
        bomb.push_str(&format!("a{i}: &a{i} [{list}]\n"));
    }
    bomb.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: m}\n");
    for target in [YAML_MANIFEST, MIGRATE] {
        let cost = replay::measure(target.body, bomb.as_bytes());
        assert!(
            cost.total <= total(bomb.len()),
            "{}: {} octets allocated for {} octets of YAML",
            target.name,
            cost.total,
            bomb.len()
        );
    }
    // The expansion is refused with a message naming the document.
    let parsed = ferrolb_config::manifest::parse_stream(&bomb, "bomb.yaml");
    assert_eq!(parsed.problems.len(), 1, "{:?}", parsed.problems);
    let p = parsed.problems[0].to_string();
    assert!(p.starts_with("bomb.yaml:"), "{p}");
    assert!(p.contains("not valid YAML"), "{p}");
}

/// Found by `yaml_manifest`: a lone carriage return is a line break to
/// YAML but not to the document splitter, so a problem's line (the
/// parser's line added to the document's first line) pointed past the
/// document, 82 lines off for 82 carriage returns. Positions are now
/// counted as the file numbers its lines.
#[test]
fn lone_carriage_returns_do_not_shift_positions() {
    let text = "kind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\n\
                apiVersion: v1\r\r\r\r\nkind: Service\nmetadata:\n  name: on\n\
                ---\nkey: \r\r\rvalue\nbad: [\n";
    let parsed = ferrolb_config::manifest::parse_stream(text, "cr.yaml");
    let shown: Vec<String> = parsed.problems.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(
        shown[0].starts_with("cr.yaml:8:9 (document 2): error: metadata.name: expected a string, found the boolean on"),
        "{shown:#?}"
    );
    let src = parsed.problems[1].source.as_ref().unwrap();
    assert_eq!(src.document, 3);
    assert!((10..=12).contains(&src.line), "{shown:#?}");
    assert!(!shown[1].contains(" at line "), "{shown:#?}");
    // The input the campaign found.
    let found: Vec<u8> = [
        &b"apiVersion: v1\nkind: Service\nmetadata: {name: web}\n---\napiVersion: ferrol"[..],
        &[b'\r'; 82],
        &b"b.io/v1beta1\nkind: BGPAdvertisement\nmetadata:\n  name: to-tor\n"[..],
    ]
    .concat();
    replay::run(YAML_MANIFEST, &found);
}
