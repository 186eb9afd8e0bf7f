//! Layer-2 owner election: every speaker computes the same owner for an IP
//! from the same inputs, without talking to the others.
//!
//! Among the eligible live nodes, the highest `preferredNodeSelectors`
//! weight wins; among equal weights, the highest score of a stable hash of
//! (node name, IP); a tie of scores (practically never) goes to the
//! greatest node name. The hash is FNV-1a (64 bits) followed by the
//! SplitMix64 finaliser: fixed here, so that speakers of different builds
//! agree, and so that one node's IPs spread evenly over the others when it
//! dies (each IP's order of nodes is independent of the other IPs').

use std::net::IpAddr;

/// A node that may own an IP, with its preference weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub node: &'a str,
    pub weight: i64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable score of `node` for `ip`.
pub fn score(node: &str, ip: IpAddr) -> u64 {
    let mut h = FNV_OFFSET;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(FNV_PRIME);
        }
    };
    feed(node.as_bytes());
    feed(&[0]);
    match ip {
        IpAddr::V4(v4) => feed(&v4.octets()),
        IpAddr::V6(v6) => feed(&v6.octets()),
    }
    // SplitMix64 finaliser: spreads FNV's low-entropy high bits.
    let mut z = h;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owner of `ip` among `candidates`; None when there is none.
pub fn owner<'a>(ip: IpAddr, candidates: &[Candidate<'a>]) -> Option<&'a str> {
    candidates
        .iter()
        .max_by(|a, b| {
            (a.weight, score(a.node, ip), a.node).cmp(&(b.weight, score(b.node, ip), b.node))
        })
        .map(|c| c.node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands<'a>(names: &[&'a str]) -> Vec<Candidate<'a>> {
        names
            .iter()
            .map(|n| Candidate { node: n, weight: 0 })
            .collect()
    }

    #[test]
    fn score_is_fixed_across_builds() {
        // Pinned values (computed independently, with Python, from the
        // algorithm in the module docs): a change here splits a
        // mixed-version cluster's election, so it must be deliberate.
        let ip: IpAddr = "198.51.100.10".parse().unwrap();
        assert_eq!(score("node1", ip), 0xdb38_b2f7_16ea_2dcc);
        assert_eq!(score("node2", ip), 0xa77a_3766_5d05_3224);
    }

    #[test]
    fn owner_is_independent_of_candidate_order() {
        let ip: IpAddr = "2001:db8::10".parse().unwrap();
        let one = owner(ip, &cands(&["a", "b", "c", "d"]));
        let two = owner(ip, &cands(&["d", "c", "b", "a"]));
        assert_eq!(one, two);
        assert!(one.is_some());
        assert_eq!(owner(ip, &[]), None);
    }

    #[test]
    fn weight_wins_over_hash() {
        let ip: IpAddr = "198.51.100.1".parse().unwrap();
        let mut c = cands(&["a", "b", "c"]);
        for preferred in ["a", "b", "c"] {
            for x in &mut c {
                x.weight = if x.node == preferred { 10 } else { 0 };
            }
            assert_eq!(owner(ip, &c), Some(preferred));
        }
    }

    #[test]
    fn removing_a_non_owner_keeps_the_owner_and_ips_spread() {
        let names = ["n1", "n2", "n3", "n4"];
        let mut per_node = std::collections::BTreeMap::new();
        for last in 0..=255u8 {
            let ip = IpAddr::from([203, 0, 113, last]);
            let all = owner(ip, &cands(&names)).unwrap();
            *per_node.entry(all).or_insert(0) += 1;
            // Dropping any node other than the owner never moves the IP.
            for gone in names.iter().filter(|n| **n != all) {
                let rest: Vec<&str> = names.iter().copied().filter(|n| n != gone).collect();
                assert_eq!(owner(ip, &cands(&rest)), Some(all));
            }
        }
        // Every node owns a share of 256 IPs (an even split is 64 each).
        assert_eq!(per_node.len(), 4, "{per_node:?}");
        assert!(per_node.values().all(|n| *n >= 32), "{per_node:?}");
    }
}
