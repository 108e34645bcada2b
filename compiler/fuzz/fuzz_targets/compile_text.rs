//! `cargo +nightly fuzz run compile_text` (from `compiler/`): arbitrary text
//! as a policy YAML. `kvlar_compiler::compile_str` returns diagnostics that
//! render with spans inside the input, or a program that round-trips through
//! `.kvbc` and decides like the reference interpreter. Never a panic.
//! Seed it with the curated policies: `… compile_text fuzz/corpus/compile_text ../policies`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvlar_tests::fuzz::compile_text(data));
