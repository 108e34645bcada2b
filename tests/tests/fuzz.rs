//! Bounded random runs of the fuzz harnesses (`kvlar_tests::fuzz`), so a
//! short fuzzing pass is part of every `cargo test`, plus the regression
//! inputs the fuzzers found. Long runs: `docs/fuzzing.md`.
//!
//! Each run stops after `KVLAR_FUZZ_SECS` seconds (default 1.5) or
//! `KVLAR_FUZZ_MAX` inputs; `KVLAR_FUZZ_SEED` sets the seed (printed on failure).
#![forbid(unsafe_code)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use kvlar_tests::fuzz;

/// xorshift64*: small, seedable, good enough to drive mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Interesting bytes to insert when mutating text and programs.
const TOKENS: &[&[u8]] = &[
    b"\n",
    b"  ",
    b": ",
    b"- ",
    b"\"",
    b"'",
    b"{",
    b"}",
    b"[",
    b"]",
    b"(",
    b")",
    b"&&",
    b"||",
    b"!",
    b"==",
    b"=~ /a/",
    b"under",
    b"any(x in args.l: ",
    b"args.",
    b"tool",
    b"\\u{1F600}",
    b"\xff",
    b"\0",
    b"0",
    b"-1",
    b"99999999999999999999",
    b"*",
    b"[!",
    b"**/",
    b"\xe2\x80\x8b",
    b"effect: deny",
    b"reason: r",
    b"id: x",
    b"when: ",
    b"tools: [",
    b"match_on:",
    b"extends: [",
    b"&a",
    b"*a",
    b"!!str",
    b"---",
    b"%YAML 1.2",
];

fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = rng.next() as u8;
            }
            1 if !out.is_empty() => {
                let end = (at + rng.below(16)).min(out.len());
                out.drain(at.min(end)..end);
            }
            2 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                out.splice(at..at, t.iter().copied());
            }
            3 if !out.is_empty() => {
                // Duplicate a slice elsewhere.
                let from = rng.below(out.len());
                let to = (from + rng.below(32)).min(out.len());
                let piece = out[from..to].to_vec();
                out.splice(at..at, piece);
            }
            _ => {
                let n = rng.below(8);
                let r = rng.bytes(n);
                out.splice(at..at, r);
            }
        }
    }
    out
}

fn budget() -> (Duration, usize) {
    let secs = std::env::var("KVLAR_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(1.5);
    let max = std::env::var("KVLAR_FUZZ_MAX")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    (Duration::from_secs_f64(secs), max)
}

/// Runs `harness` on inputs from `input` until the budget is spent; on a
/// panic, reports the input (hex) and the seed. Returns how many ran.
fn run(name: &str, mut input: impl FnMut(&mut Rng) -> Vec<u8>, harness: impl Fn(&[u8])) -> usize {
    let seed = std::env::var("KVLAR_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4b56_4c41_5246_555a_u64);
    let mut rng = Rng(seed ^ name.len() as u64 ^ 0x9E37_79B9_7F4A_7C15);
    let (time, max) = budget();
    let start = Instant::now();
    let mut n = 0;
    while n < max && start.elapsed() < time {
        let data = input(&mut rng);
        if catch_unwind(AssertUnwindSafe(|| harness(&data))).is_err() {
            panic!(
                "{name}: finding after {n} inputs (KVLAR_FUZZ_SEED={seed}); input as hex: {}\ninput as text: {:?}",
                data.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                String::from_utf8_lossy(&data)
            );
        }
        n += 1;
    }
    eprintln!("{name}: {n} inputs in {:.1?}", start.elapsed());
    n
}

fn curated_policies() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../policies");
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(dir)
        .expect("policies/ is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|x| x == "yaml")
                && !p.to_string_lossy().ends_with(".test.yaml")
        })
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    out.sort();
    out.push(fuzz::BASE_POLICY.as_bytes().to_vec());
    out
}

#[test]
fn compile_text_random() {
    let seeds = curated_policies();
    assert!(seeds.len() > 5);
    let n = run(
        "compile_text",
        |rng| {
            if rng.below(8) == 0 {
                let n = rng.below(300);
                rng.bytes(n)
            } else {
                let s = &seeds[rng.below(seeds.len())];
                mutate(rng, s)
            }
        },
        fuzz::compile_text,
    );
    assert!(n > 20, "only {n} inputs ran");
}

#[test]
fn differential_random() {
    let compiled = std::cell::Cell::new(0usize);
    let n = run(
        "differential",
        |rng| {
            let n = 64 + rng.below(2048);
            rng.bytes(n)
        },
        |data| {
            if fuzz::differential(data) {
                compiled.set(compiled.get() + 1);
            }
        },
    );
    assert!(n > 20, "only {n} inputs ran");
    // Not vacuous: most generated policy sets compile and get compared.
    assert!(
        compiled.get() * 2 > n,
        "only {} of {n} generated policy sets compiled",
        compiled.get()
    );
}

#[test]
fn vm_bytes_random() {
    let body = fuzz::base_body();
    let n = run(
        "vm_bytes",
        |rng| match rng.below(6) {
            0 => {
                let n = rng.below(200);
                rng.bytes(n)
            }
            // A whole valid file, mutated (mostly stopped by the hash).
            1 => mutate(rng, &fuzz::with_header(&body)),
            // A mutated body: `vm_bytes` also tries it under a valid header.
            _ => mutate(rng, &body),
        },
        fuzz::vm_bytes,
    );
    assert!(n > 20, "only {n} inputs ran");
}

#[test]
fn vm_chunk_random() {
    let n = run(
        "vm_chunk",
        |rng| {
            let n = 2 + rng.below(64);
            rng.bytes(n)
        },
        fuzz::vm_chunk,
    );
    assert!(n > 20, "only {n} inputs ran");
}

#[test]
fn proxy_lines_random() {
    let n = run(
        "proxy_lines",
        |rng| {
            let n = rng.below(512);
            rng.bytes(n)
        },
        fuzz::proxy_lines,
    );
    assert!(n > 20, "only {n} inputs ran");
}

// ---------------------------------------------------------------------------
// Regressions: inputs the fuzzers found.

/// `cli/fuzz` (proxy_lines): a carriage return between tokens. The proxy
/// forwarded this as a notification; a universal-newline reader (the Python
/// SDK's stdio server) executed the middle as a `tools/call` of a denied tool.
#[test]
fn regression_carriage_return_smuggles_a_call() {
    let line = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":\r{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":\"get-env\"}}\r}";
    let text = std::str::from_utf8(line).unwrap();
    assert_eq!(
        fuzz::peer_tool_calls(text).len(),
        4,
        "the property sees the hidden call"
    );
    assert!(matches!(
        kvlar_tests::proxy_classify::client_line(line),
        kvlar_tests::proxy_classify::ClientLine::Refuse { reply: None, .. }
    ));
    fuzz::check_client_line(line);
}

/// `cli/fuzz` proxy_lines, after 1.45 M executions: a generated message
/// with `\n` inside. Not a proxy bug — the proxy never classifies a line
/// with `\n` in it — but the harness's peer model split on `\n` as well and
/// saw a `tools/call` the proxy never forwards as one line. The harness now
/// splits the input into lines first, as the proxy does.
#[test]
fn regression_proxy_lines_newlines_inside_the_input() {
    let hex = "e6690a2aeeeeee0100017feeeeeeeeeeee2aeeee0aeeeeee00392dff748dcf473229bb8f8dd5eeeeeeeeeeeeeeeeeeee90909090909090909090909040404040404040006027";
    let data: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    fuzz::proxy_lines(&data);
}

/// Keys a case-insensitive peer (Go's encoding/json: `ſ` is `s`) merges.
#[test]
fn regression_case_insensitive_params_keys() {
    for line in [
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Arguments":{"evil":1}}}"#,
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"paramſ":{"name":"get-env"}}"#,
    ] {
        assert!(
            matches!(
                kvlar_tests::proxy_classify::client_line(line.as_bytes()),
                kvlar_tests::proxy_classify::ClientLine::Refuse { reply: Some(_), .. }
            ),
            "{line}"
        );
        fuzz::check_client_line(line.as_bytes());
    }
}

/// `compiler/fuzz` (compile_text): `extends` naming a device. `/dev/zero`
/// was read until memory ran out; now a base must be a regular file.
#[test]
fn regression_extends_a_device_is_an_error() {
    for dev in ["/dev/zero", "/dev/null", "/dev"] {
        let yaml = format!(
            "name: p\ndescription: d\nversion: \"1\"\nextends: [{dev}]\nrules:\n  - id: r\n    effect: allow\n"
        );
        let start = Instant::now();
        let failure = kvlar_compiler::compile_str("p.yaml", &yaml).expect_err(dev);
        assert!(start.elapsed() < Duration::from_secs(5));
        let text = kvlar_compiler::diagnostic::render(&failure);
        let expected = if dev == "/dev" {
            "Is a directory"
        } else {
            "not a regular file"
        };
        assert!(
            text.contains(expected) || text.contains("not a regular file"),
            "{dev}: {text}"
        );
        assert_eq!(failure.errors.len(), 1, "{dev}: {text}");
    }
}
