//! One file given to `ferrolb-controller migrate`; its output read back.
//! The body is [`ferrolb_config::fuzzing::migrate`], which the regular tests
//! also run over the committed corpus (`config/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_config::fuzzing::migrate(data));
