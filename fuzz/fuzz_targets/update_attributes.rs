//! The Path Attributes field of an UPDATE (first octet selects the context).
//! The body is [`ferrolb_bgp::fuzzing::update_attributes`], which the regular tests
//! also run over the seed corpus (`bgp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_bgp::fuzzing::update_attributes(data));
