//! UDP datagrams received by a speaker's membership, signed or not.
//! The body is [`ferrolb_speaker::membership::fuzzing::membership`], which
//! the regular tests also run over the committed corpus
//! (`speaker/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_speaker::membership::fuzzing::membership(data));
