//! Which interfaces announce a Service IP: a pure function of the node's
//! interfaces, its default routes and the L2Advertisement.
//!
//! The rule, first match wins:
//!
//! 1. **Listed**: the L2Advertisement's `interfaces` list is non-empty →
//!    the listed interfaces that exist on the node, in list order,
//!    whatever their state (the announcer stays silent on a down one until
//!    it comes up). No fallback: an admin who listed interfaces that this
//!    node lacks gets none here.
//! 2. **Subnet**: every interface that is up, is not a loopback, and has
//!    an address of the IP's family whose subnet contains the IP; in
//!    interface index order.
//! 3. **DefaultRoute**: the interface of the default route of the IP's
//!    family, if the node has one and that interface exists.
//! 4. Otherwise none.

use std::net::IpAddr;

/// What the rule needs to know of one interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceSnapshot {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Administratively and operationally up.
    pub up: bool,
    /// A loopback interface.
    pub loopback: bool,
    /// Addresses with their prefix lengths.
    pub addresses: Vec<(IpAddr, u8)>,
}

/// The interface index of the default route, per family.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DefaultRoutes {
    /// Interface of the IPv4 default route.
    pub ipv4: Option<u32>,
    /// Interface of the IPv6 default route.
    pub ipv6: Option<u32>,
}

/// Which step of the rule decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChoiceRule {
    /// The L2Advertisement lists interfaces.
    Listed,
    /// Interfaces with a subnet containing the IP.
    Subnet,
    /// The default route's interface.
    DefaultRoute,
    /// Nothing matched.
    NoInterface,
}

/// The outcome of [`choose_interfaces`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceChoice {
    /// The step that decided.
    pub rule: ChoiceRule,
    /// Chosen interface indexes (possibly empty).
    pub interfaces: Vec<u32>,
}

/// True when `ip` is in the subnet `net`/`prefix_len`. Different families
/// never match; a prefix length longer than the address never matches.
pub fn subnet_contains(net: IpAddr, prefix_len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(net), IpAddr::V4(ip)) if prefix_len <= 32 => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix_len))
                .unwrap_or(0);
            u32::from(net) & mask == u32::from(ip) & mask
        }
        (IpAddr::V6(net), IpAddr::V6(ip)) if prefix_len <= 128 => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix_len))
                .unwrap_or(0);
            u128::from(net) & mask == u128::from(ip) & mask
        }
        _ => false,
    }
}

/// Applies the rule (see the module documentation) for `ip`, given the
/// L2Advertisement's `listed` interface names (empty when it lists none).
pub fn choose_interfaces(
    ip: IpAddr,
    listed: &[String],
    interfaces: &[InterfaceSnapshot],
    default_routes: DefaultRoutes,
) -> InterfaceChoice {
    if !listed.is_empty() {
        let mut chosen: Vec<u32> = Vec::new();
        for name in listed {
            if let Some(iface) = interfaces.iter().find(|i| &i.name == name)
                && !chosen.contains(&iface.index)
            {
                chosen.push(iface.index);
            }
        }
        return InterfaceChoice {
            rule: ChoiceRule::Listed,
            interfaces: chosen,
        };
    }

    let mut chosen: Vec<u32> = interfaces
        .iter()
        .filter(|i| i.up && !i.loopback)
        .filter(|i| {
            i.addresses
                .iter()
                .any(|&(net, len)| subnet_contains(net, len, ip))
        })
        .map(|i| i.index)
        .collect();
    if !chosen.is_empty() {
        chosen.sort_unstable();
        chosen.dedup();
        return InterfaceChoice {
            rule: ChoiceRule::Subnet,
            interfaces: chosen,
        };
    }

    let default = match ip {
        IpAddr::V4(_) => default_routes.ipv4,
        IpAddr::V6(_) => default_routes.ipv6,
    };
    match default.filter(|index| interfaces.iter().any(|i| i.index == *index)) {
        Some(index) => InterfaceChoice {
            rule: ChoiceRule::DefaultRoute,
            interfaces: vec![index],
        },
        None => InterfaceChoice {
            rule: ChoiceRule::NoInterface,
            interfaces: Vec::new(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn iface(
        index: u32,
        name: &str,
        up: bool,
        loopback: bool,
        addrs: &[(&str, u8)],
    ) -> InterfaceSnapshot {
        InterfaceSnapshot {
            index,
            name: name.to_owned(),
            up,
            loopback,
            addresses: addrs.iter().map(|&(a, l)| (ip(a), l)).collect(),
        }
    }

    fn node() -> Vec<InterfaceSnapshot> {
        vec![
            iface(
                1,
                "lo",
                true,
                true,
                &[("127.0.0.1", 8), ("::1", 128), ("192.0.2.250", 24)],
            ),
            iface(
                2,
                "eth0",
                true,
                false,
                &[("192.0.2.5", 24), ("2001:db8:1::5", 64), ("fe80::5", 64)],
            ),
            iface(3, "eth1", true, false, &[("198.51.100.5", 24)]),
            iface(4, "eth2", false, false, &[("203.0.113.5", 24)]),
            iface(5, "bond0", true, false, &[("192.0.2.6", 25)]),
        ]
    }

    const ROUTES: DefaultRoutes = DefaultRoutes {
        ipv4: Some(3),
        ipv6: Some(2),
    };

    #[test]
    fn subnet_maths() {
        assert!(subnet_contains(ip("192.0.2.0"), 24, ip("192.0.2.255")));
        assert!(!subnet_contains(ip("192.0.2.0"), 24, ip("198.51.100.1")));
        assert!(subnet_contains(ip("192.0.2.77"), 0, ip("203.0.113.1")));
        assert!(subnet_contains(ip("192.0.2.7"), 32, ip("192.0.2.7")));
        assert!(!subnet_contains(ip("192.0.2.7"), 33, ip("192.0.2.7")));
        assert!(subnet_contains(
            ip("2001:db8::"),
            32,
            ip("2001:db8:ffff::1")
        ));
        assert!(!subnet_contains(
            ip("2001:db8::"),
            33,
            ip("2001:db8:ffff::1")
        ));
        assert!(subnet_contains(ip("::"), 0, ip("2001:db8::1")));
        assert!(!subnet_contains(ip("2001:db8::"), 129, ip("2001:db8::")));
        assert!(!subnet_contains(ip("0.0.0.0"), 0, ip("2001:db8::1")));
    }

    #[test]
    fn listed_interfaces_win_in_list_order() {
        let listed = vec![
            "eth2".to_owned(),
            "eth0".to_owned(),
            "missing".to_owned(),
            "eth2".to_owned(),
        ];
        let choice = choose_interfaces(ip("192.0.2.10"), &listed, &node(), ROUTES);
        assert_eq!(choice.rule, ChoiceRule::Listed);
        // eth2 is down but listed: kept; duplicates and unknown names dropped.
        assert_eq!(choice.interfaces, vec![4, 2]);
    }

    #[test]
    fn listed_but_absent_gives_none_without_fallback() {
        let listed = vec!["missing".to_owned()];
        let choice = choose_interfaces(ip("192.0.2.10"), &listed, &node(), ROUTES);
        assert_eq!(
            choice,
            InterfaceChoice {
                rule: ChoiceRule::Listed,
                interfaces: vec![]
            }
        );
    }

    #[test]
    fn subnet_match_skips_loopback_and_down() {
        // 192.0.2.10 is in eth0's /24, bond0's 192.0.2.0/25 and lo's /24.
        let choice = choose_interfaces(ip("192.0.2.10"), &[], &node(), ROUTES);
        assert_eq!(choice.rule, ChoiceRule::Subnet);
        assert_eq!(choice.interfaces, vec![2, 5]);
        // 192.0.2.200 is outside bond0's /25.
        let choice = choose_interfaces(ip("192.0.2.200"), &[], &node(), ROUTES);
        assert_eq!(choice.interfaces, vec![2]);
        // 203.0.113.0/24 is only on eth2, which is down: default route.
        let choice = choose_interfaces(ip("203.0.113.10"), &[], &node(), ROUTES);
        assert_eq!(
            choice,
            InterfaceChoice {
                rule: ChoiceRule::DefaultRoute,
                interfaces: vec![3]
            }
        );
    }

    #[test]
    fn ipv6_uses_ipv6_subnets_and_default_route() {
        let choice = choose_interfaces(ip("2001:db8:1::10"), &[], &node(), ROUTES);
        assert_eq!(
            (choice.rule, choice.interfaces),
            (ChoiceRule::Subnet, vec![2])
        );
        let choice = choose_interfaces(ip("2001:db8:2::10"), &[], &node(), ROUTES);
        assert_eq!(
            (choice.rule, choice.interfaces),
            (ChoiceRule::DefaultRoute, vec![2])
        );
    }

    #[test]
    fn no_default_route_or_stale_one_gives_none() {
        let none = DefaultRoutes::default();
        let choice = choose_interfaces(ip("2001:db8:2::10"), &[], &node(), none);
        assert_eq!(choice.rule, ChoiceRule::NoInterface);
        assert!(choice.interfaces.is_empty());
        let stale = DefaultRoutes {
            ipv4: Some(99),
            ipv6: None,
        };
        let choice = choose_interfaces(ip("203.0.113.10"), &[], &node(), stale);
        assert_eq!(choice.rule, ChoiceRule::NoInterface);
    }
}
