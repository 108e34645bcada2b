//! `cargo +nightly fuzz run proxy_lines` (from `cli/`): arbitrary client and
//! server lines (raw bytes, or JSON-RPC look-alikes built with `arbitrary`:
//! look-alike methods and keys, escapes, batches, `\r`) through the proxy's
//! classification (`cli/src/proxy/classify.rs`). Never a panic; a line is
//! forwarded unevaluated only if no peer — first or last duplicate wins,
//! case-insensitive keys, `\r` as a line break — could read a `tools/call`
//! in it, and an evaluated call is the only call a peer can read.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| kvlar_tests::fuzz::proxy_lines(data));
