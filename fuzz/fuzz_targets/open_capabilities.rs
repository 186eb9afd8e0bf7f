//! The Optional Parameters of an OPEN, and a run of capabilities.
//! The body is [`ferrolb_bgp::fuzzing::open_capabilities`], which the regular tests
//! also run over the seed corpus (`bgp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::open_capabilities(data));
