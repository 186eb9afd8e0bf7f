//! From a `BGPPeer` (and the objects it refers to) to what the `bgp` crate
//! runs: the session, the transport and the BFD session. Pure: every
//! problem is an error naming the peer and the field. A `bfdProfile` that
//! names no BFDProfile is not one: the session runs without BFD until the
//! profile exists (validation reports a warning on the peer).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use ferrolb_bgp::AddressFamily;
use ferrolb_bgp::bfd::io::PeerConfig as BfdPeerConfig;
use ferrolb_bgp::bfd::{Hop, Profile};
use ferrolb_bgp::session::{GracefulRestartConfig, PeerAs, SessionConfig};
use ferrolb_bgp::transport::{TransportConfig, TtlMode};
use ferrolb_config::Config;
use ferrolb_config::crd::{BGPPeer, DynamicAsn};
use ferrolb_config::duration;
use ferrolb_config::validate::peer_is_external;
use k8s_openapi::api::core::v1::Node;

/// Everything one BGP session needs.
#[derive(Debug, Clone)]
pub struct PeerSetup {
    pub session: SessionConfig,
    pub transport: TransportConfig,
    pub bfd: Option<BfdPeerConfig>,
}

/// The first IPv4 InternalIP of a Node.
pub fn node_ipv4(node: Option<&Node>) -> Option<Ipv4Addr> {
    node?
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv4Addr>().ok())
}

/// This node's first IPv6 InternalIP.
pub fn node_ipv6(node: Option<&Node>) -> Option<Ipv6Addr> {
    node?
        .status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<Ipv6Addr>().ok())
}

fn seconds(peer: &str, field: &str, text: &Option<String>) -> Result<Option<Duration>, String> {
    text.as_ref()
        .map(|t| duration::parse(t).map_err(|e| format!("BGPPeer {peer}: spec.{field} {t:?}: {e}")))
        .transpose()
}

fn secs_u16(peer: &str, field: &str, d: Duration) -> Result<u16, String> {
    u16::try_from(d.as_secs())
        .map_err(|_| format!("BGPPeer {peer}: spec.{field} is longer than 65535 s"))
}

/// The password of a peer: `spec.password`, or the `password` key of the
/// `kubernetes.io/basic-auth` Secret named by `spec.passwordSecret`.
pub fn password(peer: &BGPPeer, cfg: &Config) -> Result<Option<Vec<u8>>, String> {
    let name = peer.metadata.name.as_deref().unwrap_or_default();
    if let Some(pw) = &peer.spec.password {
        return Ok(Some(pw.as_bytes().to_vec()));
    }
    let Some(reference) = &peer.spec.password_secret else {
        return Ok(None);
    };
    let namespace = reference
        .namespace
        .as_deref()
        .or(peer.metadata.namespace.as_deref())
        .unwrap_or(ferrolb_config::DEFAULT_NAMESPACE);
    let secret = cfg
        .secrets
        .iter()
        .find(|s| {
            s.metadata.name.as_deref() == Some(reference.name.as_str())
                && s.metadata.namespace.as_deref().unwrap_or_default() == namespace
        })
        .ok_or_else(|| {
            format!(
                "BGPPeer {name}: spec.passwordSecret: Secret {namespace}/{} not found; the session waits for it",
                reference.name
            )
        })?;
    if let Some(pw) = secret.data.as_ref().and_then(|d| d.get("password")) {
        return Ok(Some(pw.0.clone()));
    }
    if let Some(pw) = secret.string_data.as_ref().and_then(|d| d.get("password")) {
        return Ok(Some(pw.as_bytes().to_vec()));
    }
    Err(format!(
        "BGPPeer {name}: spec.passwordSecret: Secret {namespace}/{} has no \"password\" key",
        reference.name
    ))
}

/// The IPv4 address this host would use towards `peer`, for a default BGP
/// identifier: for an IPv4 peer, the source address the kernel's routes
/// choose for it (a UDP socket is connected, which sends nothing);
/// otherwise (or when that fails) the first IPv4 address of an interface
/// that is up and not a loopback.
pub fn local_ipv4_for(peer: IpAddr) -> Option<Ipv4Addr> {
    if let IpAddr::V4(v4) = peer {
        let routed = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))
            .and_then(|s| s.connect((v4, 179)).and_then(|()| s.local_addr()))
            .ok()
            .and_then(|a| match a.ip() {
                IpAddr::V4(ip) if !ip.is_unspecified() => Some(ip),
                _ => None,
            });
        if routed.is_some() {
            return routed;
        }
    }
    first_interface_ipv4()
}

fn first_interface_ipv4() -> Option<Ipv4Addr> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we free below.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return None;
    }
    let mut found = None;
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned.
        let entry = unsafe { &*cur };
        cur = entry.ifa_next;
        let flags = entry.ifa_flags;
        let up = flags & (libc::IFF_UP as u32) != 0;
        let loopback = flags & (libc::IFF_LOOPBACK as u32) != 0;
        if !up || loopback || entry.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr is non-null and points to a sockaddr.
        if i32::from(unsafe { (*entry.ifa_addr).sa_family }) != libc::AF_INET {
            continue;
        }
        // SAFETY: an AF_INET address is a sockaddr_in.
        let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
        found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
        break;
    }
    // SAFETY: the list from getifaddrs, freed once.
    unsafe { libc::freeifaddrs(list) };
    found
}

/// Builds the session, transport and BFD settings of `peer` for this node.
/// The BGP identifier is the peer's `routerID`, else this node's IPv4
/// InternalIP, else the IPv4 `sourceAddress`, else what `local_v4` finds
/// for the peer (see [`local_ipv4_for`]).
///
/// A peer with `interface` and no `peerAddress` (unnumbered) is reached
/// at the link-local address `unnumbered` reports for that interface (see
/// [`ferrolb_bgp::unnumbered`]); until there is one, this is an error that
/// says what it waits for.
pub fn setup(
    peer: &BGPPeer,
    cfg: &Config,
    node: Option<&Node>,
    local_v4: &dyn Fn(IpAddr) -> Option<Ipv4Addr>,
    unnumbered: &dyn Fn(&str) -> Result<SocketAddrV6, String>,
) -> Result<PeerSetup, String> {
    let name = peer.metadata.name.as_deref().unwrap_or_default();
    let spec = &peer.spec;
    let (peer_ip, scope_id) = match (spec.peer_address.as_deref(), spec.interface.as_deref()) {
        (Some(address), _) => {
            let ip: IpAddr = address.parse().map_err(|_| {
                format!("BGPPeer {name}: spec.peerAddress {address:?} is not an IP address")
            })?;
            (ip, 0)
        }
        (None, Some(iface)) => {
            let found = unnumbered(iface)
                .map_err(|e| format!("BGPPeer {name}: spec.interface {iface}: {e}"))?;
            (IpAddr::V6(*found.ip()), found.scope_id())
        }
        (None, None) => {
            return Err(format!(
                "BGPPeer {name}: set spec.peerAddress or spec.interface"
            ));
        }
    };
    let source: Option<IpAddr> = spec
        .source_address
        .as_deref()
        .map(|s| {
            s.parse().map_err(|_| {
                format!("BGPPeer {name}: spec.sourceAddress {s:?} is not an IP address")
            })
        })
        .transpose()?;
    let router_id = match &spec.router_id {
        Some(id) => id.parse::<Ipv4Addr>().map_err(|_| {
            format!("BGPPeer {name}: spec.routerID {id:?} is not an IPv4 address")
        })?,
        None => node_ipv4(node)
            .or(match source {
                Some(IpAddr::V4(v4)) => Some(v4),
                _ => None,
            })
            .or_else(|| local_v4(peer_ip))
            .ok_or_else(|| {
                format!(
                    "BGPPeer {name}: spec.routerID is needed: the node has no IPv4 InternalIP, spec.sourceAddress is not IPv4 and this host has no IPv4 address"
                )
            })?,
    };
    let local_asn = spec.local_asn.unwrap_or(spec.my_asn);
    let peer_as = match (spec.dynamic_asn, spec.peer_asn) {
        (Some(DynamicAsn::Internal), _) => PeerAs::Internal,
        (Some(DynamicAsn::External), _) => PeerAs::External,
        (None, Some(asn)) => PeerAs::Fixed(asn),
        (None, None) => {
            return Err(format!(
                "BGPPeer {name}: set spec.peerASN or spec.dynamicASN"
            ));
        }
    };
    let mut session = SessionConfig::new(local_asn, router_id, peer_as);
    if let Some(hold) = seconds(name, "holdTime", &spec.hold_time)? {
        session.hold_time = secs_u16(name, "holdTime", hold)?;
    }
    if let Some(keepalive) = seconds(name, "keepaliveTime", &spec.keepalive_time)? {
        session.keepalive_time = Some(secs_u16(name, "keepaliveTime", keepalive)?);
    }
    if let Some(connect) = seconds(name, "connectTime", &spec.connect_time)? {
        session.connect_retry_initial = connect.max(Duration::from_secs(1));
        session.connect_retry_max = session.connect_retry_max.max(session.connect_retry_initial);
    }
    if spec.disable_mp {
        session.families = vec![match peer_ip {
            IpAddr::V4(_) => AddressFamily::IPV4_UNICAST,
            IpAddr::V6(_) => AddressFamily::IPV6_UNICAST,
        }];
    }
    session.graceful_restart = spec.enable_graceful_restart.then(|| GracefulRestartConfig {
        forwarding_preserved: true,
        ..GracefulRestartConfig::default()
    });
    session.hostname = node.and_then(|n| n.metadata.name.clone());
    // IPv6 routes over an IPv4 session: this node's IPv6 InternalIP as the
    // next hop, where it has one (the IPv4-mapped address used otherwise is
    // refused by Linux routers: "IPv6 does not support RTA_VIA"). IPv4
    // routes over an IPv6 session use the local IPv6 address (RFC 8950).
    if peer_ip.is_ipv4() {
        session.next_hop_v6 = node_ipv6(node);
    }
    session
        .validate()
        .map_err(|e| format!("BGPPeer {name}: {e}"))?;

    let peer_socket = match peer_ip {
        IpAddr::V6(v6) if scope_id != 0 => {
            SocketAddr::V6(SocketAddrV6::new(v6, spec.peer_port, 0, scope_id))
        }
        ip => SocketAddr::new(ip, spec.peer_port),
    };
    let mut transport = TransportConfig::new(peer_socket);
    transport.source = source;
    // The speaker connects; it never listens (several peers, one port).
    transport.listen_port = None;
    transport.bind_device = spec.vrf.clone().filter(|v| !v.is_empty());
    transport.md5_key = password(peer, cfg)?;
    let external = peer_is_external(peer).unwrap_or(true);
    transport.ttl = match (external, spec.ebgp_multi_hop) {
        (true, false) => TtlMode::Ttl(1),
        (true, true) => TtlMode::Ttl(255),
        (false, _) => TtlMode::Default,
    };

    // A bfdProfile that names no (valid) BFDProfile: the session runs
    // without BFD (validation warns about it), and restarts with BFD once
    // the profile exists, since its settings change.
    let profile = spec.bfd_profile.as_ref().and_then(|profile_name| {
        cfg.bfd_profiles.iter().find(|p| {
            p.metadata.name.as_deref() == Some(profile_name.as_str())
                && p.metadata.namespace == peer.metadata.namespace
        })
    });
    let bfd = match profile {
        None => None,
        Some(profile) => {
            let p = &profile.spec;
            let mut bfd = Profile::default();
            if let Some(v) = p.receive_interval {
                bfd.receive_interval_ms = v;
            }
            if let Some(v) = p.transmit_interval {
                bfd.transmit_interval_ms = v;
            }
            if let Some(v) = p.detect_multiplier {
                bfd.detect_multiplier = u8::try_from(v).unwrap_or(u8::MAX);
            }
            if let Some(v) = p.passive_mode {
                bfd.passive_mode = v;
            }
            if let Some(v) = p.minimum_ttl {
                bfd.minimum_ttl = u8::try_from(v).unwrap_or(u8::MAX);
            }
            let hop = if spec.ebgp_multi_hop {
                Hop::MultiHop
            } else {
                Hop::SingleHop
            };
            let mut peer_cfg = BfdPeerConfig::new(peer_ip, hop, bfd);
            peer_cfg.scope_id = scope_id;
            peer_cfg.source = source;
            peer_cfg.bind_device = transport.bind_device.clone();
            Some(peer_cfg)
        }
    };
    Ok(PeerSetup {
        session,
        transport,
        bfd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferrolb_config::manifest::parse_stream;

    fn cfg(text: &str) -> Config {
        let parsed = parse_stream(text, "t.yaml");
        let mut problems = parsed.problems;
        let mut cfg = Config::default();
        cfg.add_objects(parsed.objects, &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
        cfg
    }

    fn no_unnumbered(iface: &str) -> Result<SocketAddrV6, String> {
        Err(format!("no discovery for {iface} in this test"))
    }

    const NODE: &str = "apiVersion: v1\nkind: Node\nmetadata: {name: n1}\nstatus: {addresses: [{type: InternalIP, address: \"2001:db8::5\"}, {type: InternalIP, address: 198.51.100.5}]}\n";

    #[test]
    fn every_field_reaches_the_session() {
        let c = cfg(&format!(
            "{NODE}---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: p, namespace: ferrolb-system}}\nspec: {{myASN: 64512, localASN: 4200000000, peerASN: 64513, peerAddress: 198.51.100.1, peerPort: 1179, sourceAddress: 198.51.100.5, holdTime: 9s, keepaliveTime: 3s, connectTime: 5s, ebgpMultiHop: true, vrf: red, enableGracefulRestart: true, disableMP: true, passwordSecret: {{name: pw}}, bfdProfile: fast}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: pw, namespace: ferrolb-system}}\ntype: kubernetes.io/basic-auth\nstringData: {{password: s3cret}}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast, namespace: ferrolb-system}}\nspec: {{receiveInterval: 100, transmitInterval: 100, detectMultiplier: 3}}\n"
        ));
        let s = setup(
            &c.bgp_peers[0],
            &c,
            c.nodes.first(),
            &|_| None,
            &no_unnumbered,
        )
        .unwrap();
        assert_eq!(s.session.local_asn, 4_200_000_000);
        assert_eq!(s.session.peer_as, PeerAs::Fixed(64513));
        assert_eq!(s.session.router_id, Ipv4Addr::new(198, 51, 100, 5));
        assert_eq!(s.session.hold_time, 9);
        assert_eq!(s.session.keepalive_time, Some(3));
        assert_eq!(s.session.connect_retry_initial, Duration::from_secs(5));
        assert_eq!(s.session.families, [AddressFamily::IPV4_UNICAST]);
        assert!(s.session.graceful_restart.unwrap().forwarding_preserved);
        assert_eq!(s.session.hostname.as_deref(), Some("n1"));
        assert_eq!(
            s.session.next_hop_v6,
            Some("2001:db8::5".parse().unwrap()),
            "IPv6 routes over an IPv4 session: the node's IPv6 InternalIP"
        );
        assert_eq!(s.transport.peer, "198.51.100.1:1179".parse().unwrap());
        assert_eq!(s.transport.listen_port, None);
        assert_eq!(s.transport.bind_device.as_deref(), Some("red"));
        assert_eq!(s.transport.md5_key.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(s.transport.ttl, TtlMode::Ttl(255));
        let bfd = s.bfd.unwrap();
        assert_eq!(bfd.hop, Hop::MultiHop);
        assert_eq!(bfd.profile.transmit_interval_ms, 100);
        assert_eq!(bfd.profile.detect_multiplier, 3);
    }

    #[test]
    fn an_unnumbered_peer_is_reached_at_the_address_found_on_its_interface() {
        let c = cfg(&format!(
            "{NODE}---\napiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: u, namespace: ferrolb-system}}\nspec: {{myASN: 64512, peerASN: 64513, interface: eth1, bfdProfile: fast}}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: fast, namespace: ferrolb-system}}\nspec: {{receiveInterval: 100, transmitInterval: 100}}\n"
        ));
        let found = |iface: &str| -> Result<SocketAddrV6, String> {
            assert_eq!(iface, "eth1");
            Ok(SocketAddrV6::new("fe80::2".parse().unwrap(), 0, 0, 7))
        };
        let s = setup(&c.bgp_peers[0], &c, c.nodes.first(), &|_| None, &found).unwrap();
        assert_eq!(
            s.transport.peer,
            SocketAddr::V6(SocketAddrV6::new("fe80::2".parse().unwrap(), 179, 0, 7))
        );
        assert_eq!(s.transport.ttl, TtlMode::Ttl(1), "eBGP on the link");
        let bfd = s.bfd.unwrap();
        assert_eq!(bfd.scope_id, 7);
        assert_eq!(bfd.peer, "fe80::2".parse::<IpAddr>().unwrap());
        assert_eq!(s.session.router_id, Ipv4Addr::new(198, 51, 100, 5));
        // Nothing found yet: an error that names the peer and the interface.
        let err = setup(
            &c.bgp_peers[0],
            &c,
            c.nodes.first(),
            &|_| None,
            &no_unnumbered,
        )
        .unwrap_err();
        assert_eq!(
            err,
            "BGPPeer u: spec.interface eth1: no discovery for eth1 in this test"
        );
    }

    #[test]
    fn router_id_defaults_and_errors_name_the_field() {
        let peer = |extra: &str| {
            format!(
                "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: p, namespace: ferrolb-system}}\nspec: {{myASN: 64512, peerASN: 64512, peerAddress: \"2001:db8::1\"{extra}}}\n"
            )
        };
        // From the node's IPv4 InternalIP.
        let c = cfg(&format!("{NODE}---\n{}", peer("")));
        let s = setup(
            &c.bgp_peers[0],
            &c,
            c.nodes.first(),
            &|_| None,
            &no_unnumbered,
        )
        .unwrap();
        assert_eq!(s.session.router_id, Ipv4Addr::new(198, 51, 100, 5));
        assert_eq!(s.session.next_hop_v6, None, "the session's own address");
        assert_eq!(s.transport.ttl, TtlMode::Default, "iBGP");
        assert_eq!(
            s.session.families,
            [AddressFamily::IPV4_UNICAST, AddressFamily::IPV6_UNICAST]
        );
        // An IPv6-only node without routerID.
        let c = cfg(&peer(""));
        let err = setup(&c.bgp_peers[0], &c, None, &|_| None, &no_unnumbered).unwrap_err();
        assert!(err.contains("BGPPeer p: spec.routerID is needed"), "{err}");
        // Else the host's own IPv4 address.
        let found = setup(
            &c.bgp_peers[0],
            &c,
            None,
            &|_| Some(Ipv4Addr::new(10, 9, 9, 9)),
            &no_unnumbered,
        );
        assert_eq!(found.unwrap().session.router_id, Ipv4Addr::new(10, 9, 9, 9));
        let c = cfg(&peer(", routerID: 10.0.0.1"));
        assert_eq!(
            setup(&c.bgp_peers[0], &c, None, &|_| None, &no_unnumbered)
                .unwrap()
                .session
                .router_id,
            Ipv4Addr::new(10, 0, 0, 1)
        );
        // A missing Secret.
        let c = cfg(&peer(", routerID: 10.0.0.1, passwordSecret: {name: nope}"));
        let err = setup(&c.bgp_peers[0], &c, None, &|_| None, &no_unnumbered).unwrap_err();
        assert!(
            err.contains("spec.passwordSecret: Secret ferrolb-system/nope not found"),
            "{err}"
        );
    }

    #[test]
    fn a_bfd_profile_that_does_not_exist_yet_leaves_the_session_without_bfd() {
        let peer = |extra: &str| {
            format!(
                "apiVersion: ferrolb.io/v1beta2\nkind: BGPPeer\nmetadata: {{name: p, namespace: ferrolb-system}}\nspec: {{myASN: 64512, peerASN: 64513, peerAddress: 198.51.100.1, routerID: 10.0.0.1{extra}}}\n"
            )
        };
        let c = cfg(&peer(", bfdProfile: later"));
        let s = setup(&c.bgp_peers[0], &c, None, &|_| None, &no_unnumbered).unwrap();
        assert!(s.bfd.is_none());
        let c = cfg(&format!(
            "{}---\napiVersion: ferrolb.io/v1beta1\nkind: BFDProfile\nmetadata: {{name: later, namespace: ferrolb-system}}\nspec: {{receiveInterval: 200}}\n",
            peer(", bfdProfile: later")
        ));
        let with_bfd = setup(&c.bgp_peers[0], &c, None, &|_| None, &no_unnumbered).unwrap();
        // The settings differ (the daemon compares their Debug text), so the
        // session restarts with BFD once the profile exists.
        assert_ne!(format!("{s:?}"), format!("{with_bfd:?}"));
        assert_eq!(with_bfd.bfd.unwrap().profile.receive_interval_ms, 200);
    }
}
