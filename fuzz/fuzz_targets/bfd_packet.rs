//! A received BFD Control packet.
//! The body is [`ferrolb_bgp::fuzzing::bfd_packet`], which the regular tests
//! also run over the seed corpus (`bgp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::bfd_packet(data));
