//! Criterion benchmarks of the sans-IO announcer core with 10,000 owned
//! IPs (5,000 IPv4, 5,000 IPv6) on one interface.
//!
//! Run: `cargo bench -p ferrolb-arp --bench announcer`.
//!
//! Addresses: IPv4 from 198.18.0.0/15 (RFC 2544's benchmarking range; the
//! documentation ranges hold too few addresses), IPv6 from 2001:db8::/32.
//! Nothing here touches a network.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_arp::{Announcer, Instant, Interface, MacAddr, Output};

const IFINDEX: u32 = 2;
const OWNED_V4: u32 = 5_000;
const OWNED_V6: u32 = 5_000;
const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(198, 18, 255, 1);
const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);

fn owned_v4(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 18, 0, 10)) + i)
}

fn owned_v6(i: u32) -> Ipv6Addr {
    Ipv6Addr::from(u128::from(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0)) + u128::from(i))
}

/// An announcer owning 10,000 addresses whose gratuitous bursts are over.
fn loaded_announcer() -> Announcer {
    let mut announcer = Announcer::default();
    let iface = Interface {
        index: IFINDEX,
        name: "eth0".into(),
        mac: MacAddr::from(OUR_MAC),
        vlan: None,
        up: true,
    };
    announcer.set_interface(iface, Instant::ZERO).unwrap();
    for i in 0..OWNED_V4 {
        announcer
            .add_ip(IFINDEX, IpAddr::V4(owned_v4(i)), Instant::ZERO)
            .unwrap();
    }
    for i in 0..OWNED_V6 {
        announcer
            .add_ip(IFINDEX, IpAddr::V6(owned_v6(i)), Instant::ZERO)
            .unwrap();
    }
    // Every burst round is due by then: no timers left.
    announcer.poll(Instant::from_millis(60_000));
    assert_eq!(announcer.next_deadline(), None);
    announcer
}

/// A broadcast ARP request from the client for `target`.
fn arp_request(target: Ipv4Addr) -> Vec<u8> {
    let mut f = Vec::with_capacity(42);
    f.extend_from_slice(&[0xff; 6]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&CLIENT_V4.octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&target.octets());
    f
}

fn ones_complement_sum(data: &[u8], mut sum: u32) -> u32 {
    for pair in data.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    sum
}

/// A Neighbor Solicitation from the client for `target`, sent to its
/// solicited-node group, with a source link-layer address option.
fn neighbor_solicitation(target: Ipv6Addr) -> Vec<u8> {
    let t = target.octets();
    let group = Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(t[13]),
        u16::from_be_bytes([t[14], t[15]]),
    );
    let mut icmp = vec![135, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&t);
    icmp.extend_from_slice(&[1, 1]);
    icmp.extend_from_slice(&CLIENT_MAC);
    let len = icmp.len() as u16;
    let mut sum = ones_complement_sum(&CLIENT_V6.octets(), 0);
    sum = ones_complement_sum(&group.octets(), sum);
    sum += u32::from(len) + 58;
    sum = ones_complement_sum(&icmp, sum);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    icmp[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());

    let mut f = Vec::with_capacity(86);
    f.extend_from_slice(&[0x33, 0x33, 0xff, t[13], t[14], t[15]]);
    f.extend_from_slice(&CLIENT_MAC);
    f.extend_from_slice(&[0x86, 0xdd]);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[58, 255]);
    f.extend_from_slice(&CLIENT_V6.octets());
    f.extend_from_slice(&group.octets());
    f.extend_from_slice(&icmp);
    f
}

fn sends(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::Send { .. }))
        .count()
}

fn handle_frame(c: &mut Criterion) {
    let mut announcer = loaded_announcer();
    let owned_arp = arp_request(owned_v4(OWNED_V4 / 2));
    let foreign_arp = arp_request(Ipv4Addr::new(198, 19, 200, 1));
    let owned_ns = neighbor_solicitation(owned_v6(OWNED_V6 / 2));
    // The frames are what they claim to be.
    assert_eq!(sends(&announcer.handle_frame(IFINDEX, &owned_arp)), 1);
    assert_eq!(sends(&announcer.handle_frame(IFINDEX, &foreign_arp)), 0);
    assert_eq!(sends(&announcer.handle_frame(IFINDEX, &owned_ns)), 1);

    let mut group = c.benchmark_group("handle_frame_10k_owned");
    group.throughput(Throughput::Elements(1));
    group.bench_function("arp_request_owned", |b| {
        b.iter(|| announcer.handle_frame(IFINDEX, black_box(&owned_arp)))
    });
    group.bench_function("arp_request_not_owned", |b| {
        b.iter(|| announcer.handle_frame(IFINDEX, black_box(&foreign_arp)))
    });
    group.bench_function("neighbor_solicitation_owned", |b| {
        b.iter(|| announcer.handle_frame(IFINDEX, black_box(&owned_ns)))
    });
    group.finish();
}

/// From `add_ip` to the first gratuitous frame returned by `poll`, with
/// 10,000 addresses already owned. The address is released again after
/// each iteration, outside the timed part.
fn add_to_first_gratuitous(c: &mut Criterion) {
    let mut announcer = loaded_announcer();
    let mut group = c.benchmark_group("add_ip_to_first_gratuitous_10k_owned");
    let cases = [
        ("ipv4", IpAddr::V4(Ipv4Addr::new(198, 19, 100, 1))),
        (
            "ipv6",
            IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1)),
        ),
    ];
    for (name, ip) in cases {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                let mut now = Instant::from_millis(120_000);
                for _ in 0..iters {
                    now = now + Duration::from_millis(1);
                    let start = std::time::Instant::now();
                    announcer.add_ip(IFINDEX, black_box(ip), now).unwrap();
                    let outputs = announcer.poll(now);
                    let first = outputs
                        .iter()
                        .find(|o| matches!(o, Output::Send { .. }))
                        .expect("a gratuitous frame is due at once");
                    black_box(first);
                    total += start.elapsed();
                    drop(outputs);
                    announcer.remove_ip(IFINDEX, ip).unwrap();
                }
                total
            })
        });
    }
    group.finish();
}

criterion_group!(benches, handle_frame, add_to_first_gratuitous);
criterion_main!(benches);
