//! One manifest file of the standalone source, read and validated.
//! The body is [`ferrolb_config::fuzzing::yaml_manifest`], which the regular tests
//! also run over the committed corpus (`config/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_config::fuzzing::yaml_manifest(data));
