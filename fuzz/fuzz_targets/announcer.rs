//! Frames received by the layer-2 announcer, with ticks and polls between.
//! The body is [`ferrolb_arp::fuzzing::announcer`], which the regular tests
//! also run over the committed corpus (`arp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_arp::fuzzing::announcer(data));
