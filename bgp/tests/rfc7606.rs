//! Every RFC 7606 classification path of UPDATE decoding: session reset,
//! treat-as-withdraw and attribute discard.

use ferrolb_bgp::message::notification::UpdateSubcode;
use ferrolb_bgp::{
    AttributeError, AttributeProblem, CodecContext, DecodeError, Decoded, ErrorCode, Message,
    Notification, Prefix, Update, decode_message,
};

const ORIGIN: &[u8] = &[0x40, 1, 1, 0];
const AS_PATH: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0xfb, 0xf0]; // 64496, four-octet
const NEXT_HOP: &[u8] = &[0x40, 3, 4, 192, 0, 2, 1];
const LOCAL_PREF: &[u8] = &[0x40, 5, 4, 0, 0, 0, 100];
const NLRI: &[u8] = &[24, 198, 51, 100];

/// An IPv6 MP_REACH_NLRI with next hop 2001:db8::1 and 2001:db8:1::/48.
fn mp_reach(attr_flags: u8) -> Vec<u8> {
    let mut v = vec![0, 2, 1, 16, 0x20, 0x01, 0x0d, 0xb8];
    v.extend_from_slice(&[0; 11]);
    v.push(1);
    v.push(0);
    v.extend_from_slice(&[48, 0x20, 0x01, 0x0d, 0xb8, 0, 1]);
    let mut a = vec![attr_flags, 14, v.len() as u8];
    a.extend_from_slice(&v);
    a
}

/// MP_UNREACH_NLRI withdrawing 2001:db8:2::/48.
const MP_UNREACH: &[u8] = &[0x80, 15, 10, 0, 2, 1, 48, 0x20, 0x01, 0x0d, 0xb8, 0, 2];

fn update(withdrawn: &[u8], attrs: &[&[u8]], nlri: &[u8]) -> Vec<u8> {
    let attrs = attrs.concat();
    let mut body = Vec::new();
    body.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
    body.extend_from_slice(withdrawn);
    body.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
    body.extend_from_slice(&attrs);
    body.extend_from_slice(nlri);
    let mut out = vec![0xff; 16];
    out.extend_from_slice(&(19 + body.len() as u16).to_be_bytes());
    out.push(2);
    out.extend_from_slice(&body);
    out
}

fn ebgp() -> CodecContext {
    CodecContext {
        four_octet_as: true,
        ..CodecContext::default()
    }
}

fn ibgp() -> CodecContext {
    CodecContext {
        internal_peer: true,
        ..ebgp()
    }
}

fn reset(bytes: &[u8], ctx: &CodecContext) -> Notification {
    match decode_message(bytes, ctx) {
        Err(DecodeError::SessionReset(n)) => {
            assert_eq!(n.code, ErrorCode::Update);
            n
        }
        other => panic!("expected a session reset, got {other:?}"),
    }
}

fn withdraw(bytes: &[u8], ctx: &CodecContext) -> (Vec<Prefix>, AttributeError) {
    match decode_message(bytes, ctx) {
        Err(DecodeError::TreatAsWithdraw { prefixes, reason }) => (prefixes, reason),
        other => panic!("expected treat-as-withdraw, got {other:?}"),
    }
}

fn withdraw_reason(bytes: &[u8], ctx: &CodecContext) -> (u8, AttributeProblem) {
    let (prefixes, reason) = withdraw(bytes, ctx);
    assert_eq!(prefixes, [p("198.51.100.0/24")]);
    (reason.type_code, reason.problem)
}

fn ok(bytes: &[u8], ctx: &CodecContext) -> (Update, Vec<AttributeError>) {
    match decode_message(bytes, ctx) {
        Ok(Decoded {
            message: Message::Update(u),
            discarded,
        }) => (u, discarded),
        other => panic!("expected an UPDATE, got {other:?}"),
    }
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn subcode(s: UpdateSubcode) -> u8 {
    s.into()
}

#[test]
fn baseline_is_valid() {
    let (u, discarded) = ok(&update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI), &ebgp());
    assert!(discarded.is_empty());
    assert_eq!(u.nlri.len(), 1);
}

// ---- session reset -------------------------------------------------------

#[test]
fn withdrawn_length_overrunning_the_message() {
    let mut bytes = update(&[], &[ORIGIN], &[]);
    bytes[20] = 50; // Withdrawn Routes Length
    let n = reset(&bytes, &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::MalformedAttributeList));
}

#[test]
fn total_attribute_length_overrunning_the_message() {
    let mut bytes = update(&[], &[ORIGIN], &[]);
    bytes[22] = 5; // Total Path Attribute Length 5 > 4 octets present
    let n = reset(&bytes, &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::MalformedAttributeList));
}

#[test]
fn invalid_nlri_and_withdrawn_routes() {
    let attrs: &[&[u8]] = &[ORIGIN, AS_PATH, NEXT_HOP];
    for (withdrawn, nlri) in [
        (&[][..], &[33, 1, 2, 3, 4, 5][..]), // length > 32
        (&[][..], &[24, 198, 51][..]),       // truncated
        (&[40, 1, 2, 3, 4, 5][..], &[][..]), // withdrawn length > 32
        (&[8][..], &[][..]),                 // withdrawn truncated
    ] {
        let n = reset(&update(withdrawn, attrs, nlri), &ebgp());
        assert_eq!(n.subcode, subcode(UpdateSubcode::InvalidNetworkField));
    }
}

#[test]
fn repeated_mp_attributes() {
    let reach = mp_reach(0x80);
    let n = reset(
        &update(&[], &[&reach, ORIGIN, AS_PATH, &reach], &[]),
        &ebgp(),
    );
    assert_eq!(n.subcode, subcode(UpdateSubcode::MalformedAttributeList));
    let n = reset(&update(&[], &[MP_UNREACH, MP_UNREACH], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::MalformedAttributeList));
}

#[test]
fn unparsable_mp_reach_and_unreach() {
    // Next hop length 4 for IPv6.
    let bad_nh: &[u8] = &[0x80, 14, 9, 0, 2, 1, 4, 192, 0, 2, 1, 0];
    let n = reset(&update(&[], &[bad_nh, ORIGIN, AS_PATH], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::OptionalAttributeError));
    assert_eq!(n.data, bad_nh, "data is the erroneous attribute");

    // Unsupported AFI/SAFI (L2VPN EVPN).
    let evpn: &[u8] = &[0x80, 15, 3, 0, 25, 70];
    let n = reset(&update(&[], &[evpn], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::OptionalAttributeError));

    // MP_UNREACH too short for AFI and SAFI.
    let n = reset(&update(&[], &[&[0x80, 15, 2, 0, 2]], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::OptionalAttributeError));

    // Reserved octet missing after the next hop.
    let mut short = mp_reach(0x80);
    short.truncate(3 + 4 + 16);
    short[2] = 20;
    let n = reset(&update(&[], &[&short, ORIGIN, AS_PATH], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::OptionalAttributeError));

    // NLRI inside MP_REACH with an IPv6 prefix length of 129.
    let mut bad_nlri = mp_reach(0x80);
    let at = bad_nlri.len() - 7;
    bad_nlri[at] = 129;
    let n = reset(&update(&[], &[&bad_nlri, ORIGIN, AS_PATH], &[]), &ebgp());
    assert_eq!(n.subcode, subcode(UpdateSubcode::InvalidNetworkField));
}

#[test]
fn unrecognized_well_known_attribute() {
    let unknown_wk: &[u8] = &[0x40, 99, 1, 7];
    let n = reset(
        &update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, unknown_wk], NLRI),
        &ebgp(),
    );
    assert_eq!(
        n.subcode,
        subcode(UpdateSubcode::UnrecognizedWellKnownAttribute)
    );
    assert_eq!(n.data, unknown_wk);
}

#[test]
fn session_reset_beats_treat_as_withdraw() {
    let bad_origin: &[u8] = &[0x40, 1, 1, 9];
    let n = reset(
        &update(
            &[],
            &[bad_origin, AS_PATH, NEXT_HOP, MP_UNREACH, MP_UNREACH],
            NLRI,
        ),
        &ebgp(),
    );
    assert_eq!(n.subcode, subcode(UpdateSubcode::MalformedAttributeList));
}

// ---- treat-as-withdraw ----------------------------------------------------

#[test]
fn malformed_origin() {
    for origin in [&[0x40, 1, 1, 3][..], &[0x40, 1, 2, 0, 0], &[0x40, 1, 0]] {
        let (code, _) = withdraw_reason(&update(&[], &[origin, AS_PATH, NEXT_HOP], NLRI), &ebgp());
        assert_eq!(code, 1);
    }
    let (_, problem) = withdraw_reason(
        &update(&[], &[&[0x40, 1, 1, 3], AS_PATH, NEXT_HOP], NLRI),
        &ebgp(),
    );
    assert_eq!(problem, AttributeProblem::InvalidValue("undefined ORIGIN"));
}

#[test]
fn attribute_flags_conflict() {
    // ORIGIN marked optional.
    let (code, problem) = withdraw_reason(
        &update(&[], &[&[0xc0, 1, 1, 0], AS_PATH, NEXT_HOP], NLRI),
        &ebgp(),
    );
    assert_eq!(code, 1);
    assert_eq!(problem, AttributeProblem::FlagsConflict { flags: 0xc0 });
    // MED marked well-known.
    let (code, _) = withdraw_reason(
        &update(
            &[],
            &[ORIGIN, AS_PATH, NEXT_HOP, &[0x40, 4, 4, 0, 0, 0, 1]],
            NLRI,
        ),
        &ebgp(),
    );
    assert_eq!(code, 4);
    // COMMUNITIES marked non-transitive.
    let (code, _) = withdraw_reason(
        &update(
            &[],
            &[ORIGIN, AS_PATH, NEXT_HOP, &[0x80, 8, 4, 0, 0, 0, 1]],
            NLRI,
        ),
        &ebgp(),
    );
    assert_eq!(code, 8);
    // The Partial and Extended Length bits are no conflict.
    let long_origin: &[u8] = &[0x50, 1, 0, 1, 0];
    ok(
        &update(&[], &[long_origin, AS_PATH, NEXT_HOP], NLRI),
        &ebgp(),
    );
}

#[test]
fn malformed_as_path() {
    let cases: [&[u8]; 5] = [
        &[0x40, 2, 6, 7, 1, 0, 0, 0xfb, 0xf0], // unknown segment type
        &[0x40, 2, 2, 2, 0],                   // zero-length segment
        &[0x40, 2, 6, 2, 2, 0, 0, 0xfb, 0xf0], // segment overruns
        &[0x40, 2, 7, 2, 1, 0, 0, 0xfb, 0xf0, 2], // single trailing octet
        &[0x40, 2, 6, 3, 1, 0, 0, 0xfb, 0xf0], // confed segment from eBGP
    ];
    for as_path in cases {
        let (code, problem) =
            withdraw_reason(&update(&[], &[ORIGIN, as_path, NEXT_HOP], NLRI), &ebgp());
        assert_eq!(code, 2);
        assert!(matches!(problem, AttributeProblem::InvalidValue(_)));
    }
    // RFC 7607: AS 0 in AS_PATH.
    let zero: &[u8] = &[0x40, 2, 6, 2, 1, 0, 0, 0, 0];
    let (code, problem) = withdraw_reason(&update(&[], &[ORIGIN, zero, NEXT_HOP], NLRI), &ebgp());
    assert_eq!(
        (code, problem),
        (2, AttributeProblem::InvalidValue("AS 0 in the path"))
    );
    // A confed segment from an internal peer is accepted.
    ok(
        &update(&[], &[ORIGIN, cases[4], NEXT_HOP, LOCAL_PREF], NLRI),
        &ibgp(),
    );
    // A two-octet AS_PATH read on a four-octet session is malformed.
    let two_octet: &[u8] = &[0x40, 2, 4, 2, 1, 0xfb, 0xf0];
    let (code, _) = withdraw_reason(&update(&[], &[ORIGIN, two_octet, NEXT_HOP], NLRI), &ebgp());
    assert_eq!(code, 2);
}

#[test]
fn malformed_fixed_length_attributes() {
    let cases: [(&[u8], u8); 7] = [
        (&[0x40, 3, 5, 192, 0, 2, 1, 0], 3),       // NEXT_HOP
        (&[0x80, 4, 3, 0, 0, 1], 4),               // MED
        (&[0xc0, 8, 0], 8),                        // COMMUNITIES empty
        (&[0xc0, 8, 5, 0, 0, 0, 1, 0], 8),         // COMMUNITIES not ×4
        (&[0xc0, 16, 7, 0, 2, 0, 0, 0, 0, 1], 16), // EXT COMMUNITIES not ×8
        (&[0xc0, 32, 13, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 4], 32), // LARGE not ×12
        (&[0xc0, 32, 0], 32),                      // LARGE empty
    ];
    for (attr, expected) in cases {
        // The malformed NEXT_HOP replaces the good one.
        let next_hop = if expected == 3 { attr } else { NEXT_HOP };
        let (code, problem) = withdraw_reason(
            &update(&[], &[ORIGIN, AS_PATH, next_hop, attr], NLRI),
            &ebgp(),
        );
        assert_eq!(code, expected);
        assert!(matches!(problem, AttributeProblem::BadLength { .. }));
    }
    let ibgp_cases: [(&[u8], u8); 4] = [
        (&[0x40, 5, 3, 0, 0, 1], 5),              // LOCAL_PREF
        (&[0x80, 9, 5, 192, 0, 2, 1, 0], 9),      // ORIGINATOR_ID
        (&[0x80, 10, 0], 10),                     // CLUSTER_LIST empty
        (&[0x80, 10, 6, 192, 0, 2, 1, 0, 0], 10), // CLUSTER_LIST not ×4
    ];
    for (attr, expected) in ibgp_cases {
        let mut attrs: Vec<&[u8]> = vec![ORIGIN, AS_PATH, NEXT_HOP, attr];
        if expected != 5 {
            attrs.push(LOCAL_PREF);
        }
        let (code, _) = withdraw_reason(&update(&[], &attrs, NLRI), &ibgp());
        assert_eq!(code, expected);
    }
}

#[test]
fn missing_well_known_attributes() {
    for (attrs, missing) in [
        (vec![AS_PATH, NEXT_HOP], 1u8),
        (vec![ORIGIN, NEXT_HOP], 2),
        (vec![ORIGIN, AS_PATH], 3),
        (vec![], 1),
    ] {
        let (code, problem) = withdraw_reason(&update(&[], &attrs, NLRI), &ebgp());
        assert_eq!((code, problem), (missing, AttributeProblem::Missing));
    }
    // LOCAL_PREF is mandatory on internal sessions only.
    let (code, _) = withdraw_reason(&update(&[], &[ORIGIN, AS_PATH, NEXT_HOP], NLRI), &ibgp());
    assert_eq!(code, 5);
    // MP_REACH_NLRI needs ORIGIN and AS_PATH but not NEXT_HOP.
    let reach = mp_reach(0x80);
    ok(&update(&[], &[&reach, ORIGIN, AS_PATH], &[]), &ebgp());
    let (prefixes, reason) = withdraw(&update(&[], &[&reach, AS_PATH], &[]), &ebgp());
    assert_eq!(prefixes, [p("2001:db8:1::/48")]);
    assert_eq!(reason.type_code, 1);
    // Withdrawals alone need no attributes.
    ok(&update(&[24, 192, 0, 2], &[], &[]), &ebgp());
    ok(&update(&[], &[MP_UNREACH], &[]), &ebgp());
}

#[test]
fn attribute_overrunning_the_attributes_field() {
    // RFC 7606 §4: the last attribute claims 9 octets but 4 remain; the
    // NLRI is still found through the Total Path Attribute Length.
    let overrun: &[u8] = &[0xc0, 8, 9, 0, 0, 0, 1];
    let (code, problem) = withdraw_reason(
        &update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, overrun], NLRI),
        &ebgp(),
    );
    assert_eq!((code, problem), (8, AttributeProblem::Overrun));
    // Fewer octets than an attribute header.
    let (code, problem) = withdraw_reason(
        &update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xc0, 8]], NLRI),
        &ebgp(),
    );
    assert_eq!((code, problem), (8, AttributeProblem::Overrun));
    // Extended length flag with only three octets left.
    let (_, problem) = withdraw_reason(
        &update(&[], &[ORIGIN, AS_PATH, NEXT_HOP, &[0xd0, 8, 0]], NLRI),
        &ebgp(),
    );
    assert_eq!(problem, AttributeProblem::Overrun);
}

#[test]
fn mp_reach_flags_conflict_withdraws_its_prefixes() {
    let reach = mp_reach(0xc0); // transitive bit set
    let (prefixes, reason) = withdraw(&update(&[], &[&reach, ORIGIN, AS_PATH], &[]), &ebgp());
    assert_eq!(prefixes, [p("2001:db8:1::/48")]);
    assert_eq!(reason.type_code, 14);
}

#[test]
fn treat_as_withdraw_lists_every_prefix() {
    let reach = mp_reach(0x80);
    let bad_med: &[u8] = &[0x80, 4, 2, 0, 0];
    let bytes = update(
        &[24, 203, 0, 113],
        &[MP_UNREACH, &reach, ORIGIN, AS_PATH, NEXT_HOP, bad_med],
        NLRI,
    );
    let (prefixes, reason) = withdraw(&bytes, &ebgp());
    assert_eq!(reason.type_code, 4);
    assert_eq!(
        prefixes,
        [
            p("203.0.113.0/24"),
            p("2001:db8:2::/48"),
            p("198.51.100.0/24"),
            p("2001:db8:1::/48")
        ]
    );
}

#[test]
fn treat_as_withdraw_beats_attribute_discard() {
    let bad_atomic: &[u8] = &[0x40, 6, 1, 0];
    let bad_nh: &[u8] = &[0x40, 3, 3, 192, 0, 2];
    let (code, _) = withdraw_reason(
        &update(&[], &[ORIGIN, AS_PATH, bad_nh, bad_atomic], NLRI),
        &ebgp(),
    );
    assert_eq!(code, 3);
}

// ---- attribute discard -----------------------------------------------------

fn discarded(attr: &[u8], ctx: &CodecContext) -> (Update, Vec<AttributeError>) {
    let mut attrs: Vec<&[u8]> = vec![ORIGIN, AS_PATH, NEXT_HOP];
    if ctx.internal_peer {
        attrs.push(LOCAL_PREF);
    }
    attrs.push(attr);
    let (u, notes) = ok(&update(&[], &attrs, NLRI), ctx);
    assert_eq!(notes.len(), 1, "{notes:?}");
    (u, notes)
}

#[test]
fn malformed_atomic_aggregate_and_aggregator() {
    let (u, notes) = discarded(&[0x40, 6, 1, 0], &ebgp());
    assert!(!u.attributes.atomic_aggregate);
    assert_eq!(notes[0].type_code, 6);
    let (_, notes) = discarded(&[0x80, 6, 0], &ebgp()); // flags conflict
    assert_eq!(
        notes[0].problem,
        AttributeProblem::FlagsConflict { flags: 0x80 }
    );
    // AGGREGATOR of 6 octets on a four-octet session.
    let (u, notes) = discarded(&[0xc0, 7, 6, 0xfb, 0xf0, 192, 0, 2, 1], &ebgp());
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(notes[0].type_code, 7);
    // AGGREGATOR of 8 octets on a two-octet session.
    let two = CodecContext::default();
    let as_path_2: &[u8] = &[0x40, 2, 4, 2, 1, 0xfb, 0xf0];
    let (u, notes) = ok(
        &update(
            &[],
            &[
                ORIGIN,
                as_path_2,
                NEXT_HOP,
                &[0xc0, 7, 8, 0, 0, 0xfb, 0xf0, 192, 0, 2, 1],
            ],
            NLRI,
        ),
        &two,
    );
    assert_eq!(u.attributes.aggregator, None);
    assert_eq!(notes[0].type_code, 7);
    // AGGREGATOR marked well-known.
    let (_, notes) = discarded(&[0x40, 7, 8, 0, 0, 0xfb, 0xf0, 192, 0, 2, 1], &ebgp());
    assert!(matches!(
        notes[0].problem,
        AttributeProblem::FlagsConflict { .. }
    ));
}

#[test]
fn local_pref_from_an_external_peer() {
    let (u, notes) = discarded(LOCAL_PREF, &ebgp());
    assert_eq!(u.attributes.local_pref, None);
    assert_eq!(notes[0].problem, AttributeProblem::FromExternalPeer);
}

#[test]
fn as4_attributes() {
    // From a four-octet peer they must not appear at all.
    let as4_path: &[u8] = &[0xc0, 17, 6, 2, 1, 0, 1, 0, 0];
    let (u, notes) = discarded(as4_path, &ebgp());
    assert_eq!(u.attributes.as4_path, None);
    assert_eq!(notes[0].problem, AttributeProblem::FromFourOctetPeer);

    // From a two-octet peer: malformed ones are discarded.
    let two = CodecContext::default();
    let as_path_2: &[u8] = &[0x40, 2, 4, 2, 1, 0x5b, 0xa0];
    for (bad, code) in [
        (&[0xc0, 17, 5, 2, 1, 0, 1, 0][..], 17u8),    // overrun
        (&[0xc0, 17, 0][..], 17),                     // empty
        (&[0xc0, 17, 6, 9, 1, 0, 1, 0, 0][..], 17),   // bad segment type
        (&[0x80, 17, 6, 2, 1, 0, 1, 0, 0][..], 17),   // flags conflict
        (&[0xc0, 18, 6, 0, 1, 0, 0, 192, 0][..], 18), // AS4_AGGREGATOR length
        (&[0xc0, 17, 6, 2, 1, 0, 0, 0, 0][..], 17),   // AS 0 (RFC 7607)
    ] {
        let (u, notes) = ok(
            &update(&[], &[ORIGIN, as_path_2, NEXT_HOP, bad], NLRI),
            &two,
        );
        assert_eq!(notes.len(), 1);
        assert_eq!(notes[0].type_code, code);
        assert_eq!(u.attributes.as4_path, None);
        assert_eq!(u.attributes.as4_aggregator, None);
    }
}

#[test]
fn repeated_attributes_keep_the_first() {
    // RFC 7606 §3(g).
    let second_origin: &[u8] = &[0x40, 1, 1, 2];
    let (u, notes) = discarded(second_origin, &ebgp());
    assert_eq!(u.attributes.origin, Some(ferrolb_bgp::Origin::Igp));
    assert_eq!(
        notes[0],
        AttributeError {
            type_code: 1,
            problem: AttributeProblem::Duplicate
        }
    );
    // Also for unrecognised attributes, and even when the repeat is malformed.
    let unknown: &[u8] = &[0xc0, 99, 1, 1];
    let (u, notes) = ok(
        &update(
            &[],
            &[
                ORIGIN,
                AS_PATH,
                NEXT_HOP,
                unknown,
                &[0xc0, 99, 0],
                &[0x40, 1, 0],
            ],
            NLRI,
        ),
        &ebgp(),
    );
    assert_eq!(u.attributes.unknown.len(), 1);
    assert_eq!(notes.len(), 2);
}

#[test]
fn unknown_optional_attributes_pass_through() {
    let transitive: &[u8] = &[0xe0, 99, 2, 1, 2]; // partial already set
    let non_transitive: &[u8] = &[0x80, 100, 1, 3];
    let bytes = update(
        &[],
        &[ORIGIN, AS_PATH, NEXT_HOP, transitive, non_transitive],
        NLRI,
    );
    let (mut u, notes) = ok(&bytes, &ebgp());
    assert!(notes.is_empty());
    assert_eq!(u.attributes.unknown.len(), 2);
    // Re-encoded unchanged.
    assert_eq!(
        Message::Update(u.clone()).encode(&ebgp()).unwrap().to_vec(),
        bytes
    );
    // Passed on: Partial set on the transitive one, the other dropped.
    u.attributes.pass_through_unknown();
    assert_eq!(u.attributes.unknown.len(), 1);
    assert_eq!(u.attributes.unknown[0].flags, 0xe0);
}
