//! `cargo +nightly fuzz run differential` (from `compiler/`): (policy, call)
//! pairs built from the input with `arbitrary` (native `tools`/`when` rules,
//! Kvlar `match_on` criteria, tool-name, path and URL tricks); the compiled
//! program run by the VM must decide every call exactly like the reference
//! interpreter (`kvlar_tests::reference`): effect, rule id and reason.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kvlar_tests::fuzz::differential(data);
});
