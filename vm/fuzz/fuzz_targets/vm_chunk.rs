//! `cargo +nightly fuzz run vm_chunk` (from `vm/`): arbitrary bytes as one
//! code chunk of an otherwise valid program (replacing a chunk, appended, or
//! spliced into one): `Program::new` (the verifier) rejects it, or the
//! program runs a fixed set of calls to a decision and terminates.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvlar_tests::fuzz::vm_chunk(data));
