//! One whole BGP message, decoded under every codec context and as a stream.
//! The body is [`ferrolb_bgp::fuzzing::message`], which the regular tests
//! also run over the seed corpus (`bgp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::message(data));
