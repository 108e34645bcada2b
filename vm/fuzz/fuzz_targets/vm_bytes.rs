//! `cargo +nightly fuzz run vm_bytes` (from `vm/`): arbitrary bytes as a
//! `.kvbc` program (as they are, and as the body under a valid header so the
//! hash check does not stop everything): `Program::from_bytes` rejects them,
//! or the program decides a fixed set of calls (a VM fault denies) and
//! round-trips. Never a panic, never a hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvlar_tests::fuzz::vm_bytes(data));
