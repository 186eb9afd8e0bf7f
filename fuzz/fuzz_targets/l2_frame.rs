//! One Ethernet frame from the LAN: ARP, NDP or anything else.
//! The body is [`ferrolb_arp::fuzzing::l2_frame`], which the regular tests
//! also run over the committed corpus (`arp/tests/fuzz_corpus.rs`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ferrolb_arp::fuzzing::l2_frame(data));
