//! UPDATE codec benchmarks: decode and encode of UPDATEs carrying one prefix
//! and carrying as many prefixes as a message holds, IPv4 in the classic
//! NLRI field and IPv6 in MP_REACH_NLRI, with and without communities.
//! Throughput is reported in prefixes per second.
//!
//! Pure computation, no network. IPv4 prefixes are /32s from 198.18.0.0/15
//! (RFC 2544 benchmarking range; the documentation ranges are too small for
//! the extended-message case), IPv6 prefixes are /128s from 2001:db8::/32.
//!
//!     cargo bench -p ferrolb-bgp --bench codec

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ferrolb_bgp::{
    AsPath, CodecContext, Community, LargeCommunity, MAX_EXTENDED_MESSAGE_LEN, MAX_MESSAGE_LEN,
    Message, NextHop, Origin, PathAttributes, Prefix, decode_message, pack_announcements,
};

/// One benchmark case: an encoded UPDATE and the message it encodes.
struct Case {
    name: &'static str,
    ctx: CodecContext,
    message: Message,
    bytes: Vec<u8>,
    prefixes: u64,
}

fn ctx(max_message_len: usize) -> CodecContext {
    CodecContext {
        four_octet_as: true,
        max_message_len,
        internal_peer: false,
    }
}

/// What a typical eBGP speaker attaches: ORIGIN, a three-AS path, MED.
fn plain_attributes() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence([64500, 65551, 4_200_000_001])),
        med: Some(100),
        ..Default::default()
    }
}

/// The same plus 8 communities and 4 large communities, as a load balancer
/// tagging its service routes would send.
fn tagged_attributes() -> PathAttributes {
    PathAttributes {
        communities: (0..7)
            .map(|i| Community::new(64500, 100 + i))
            .chain([Community::NO_EXPORT])
            .collect(),
        large_communities: (0..4)
            .map(|i| LargeCommunity::new(4_200_000_001, 1, i))
            .collect(),
        ..plain_attributes()
    }
}

fn v4_hosts(n: u32) -> Vec<Prefix> {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    (0..n)
        .map(|i| Prefix::new(Ipv4Addr::from(base + i).into(), 32).unwrap())
        .collect()
}

fn v6_hosts(n: u32) -> Vec<Prefix> {
    let base = u128::from("2001:db8::".parse::<Ipv6Addr>().unwrap());
    (0..n)
        .map(|i| Prefix::new(Ipv6Addr::from(base + u128::from(i)).into(), 128).unwrap())
        .collect()
}

/// The first UPDATE `pack_announcements` builds for `prefixes`: with more
/// prefixes than fit, a message filled to `ctx.max_message_len`.
fn case(
    name: &'static str,
    ctx: CodecContext,
    attrs: &PathAttributes,
    next_hop: NextHop,
    prefixes: &[Prefix],
) -> Case {
    let update = pack_announcements(attrs, next_hop, prefixes, &ctx)
        .expect("benchmark UPDATE packs")
        .swap_remove(0);
    let count = update.announced().count() as u64;
    let message = Message::Update(update);
    let bytes = message
        .encode(&ctx)
        .expect("benchmark UPDATE encodes")
        .to_vec();
    // Decode once outside the timing loop: the benchmark must measure
    // successful decoding of every prefix, not an early error.
    let decoded = decode_message(&bytes, &ctx).expect("benchmark UPDATE decodes");
    assert_eq!(decoded.message, message);
    assert!(decoded.discarded.is_empty());
    Case {
        name,
        ctx,
        message,
        bytes,
        prefixes: count,
    }
}

fn cases() -> Vec<Case> {
    let nh4 = NextHop::V4(Ipv4Addr::new(198, 51, 100, 1));
    let nh6 = NextHop::v6("2001:db8:ffff::1".parse().unwrap());
    let (plain, tagged) = (plain_attributes(), tagged_attributes());
    let (v4, v6) = (v4_hosts(20_000), v6_hosts(5_000));
    let (std, ext) = (ctx(MAX_MESSAGE_LEN), ctx(MAX_EXTENDED_MESSAGE_LEN));
    let cases = vec![
        case("ipv4/1", std, &plain, nh4, &v4[..1]),
        case("ipv4/packed", std, &plain, nh4, &v4),
        case("ipv4/packed+communities", std, &tagged, nh4, &v4),
        case("ipv4/packed-extended-message", ext, &plain, nh4, &v4),
        case("ipv6/1", std, &plain, nh6, &v6[..1]),
        case("ipv6/packed", std, &plain, nh6, &v6),
        case("ipv6/packed+communities", std, &tagged, nh6, &v6),
    ];
    for c in &cases {
        eprintln!(
            "case {}: {} prefixes in a {}-octet UPDATE",
            c.name,
            c.prefixes,
            c.bytes.len()
        );
    }
    cases
}

fn codec(c: &mut Criterion) {
    let cases = cases();

    let mut group = c.benchmark_group("decode");
    for case in &cases {
        group.throughput(Throughput::Elements(case.prefixes));
        group.bench_function(case.name, |b| {
            b.iter(|| decode_message(black_box(&case.bytes), &case.ctx).unwrap())
        });
    }
    group.finish();

    let mut group = c.benchmark_group("encode");
    for case in &cases {
        group.throughput(Throughput::Elements(case.prefixes));
        let mut out = BytesMut::with_capacity(case.bytes.len());
        group.bench_function(case.name, |b| {
            b.iter(|| {
                out.clear();
                black_box(&case.message)
                    .encode_into(&case.ctx, &mut out)
                    .unwrap();
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
