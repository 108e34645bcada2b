//! The best time per evaluation of one call, for A/B comparisons of two
//! builds on a noisy machine (run them interleaved, compare the minima):
//!
//! ```text
//! cargo build --release -p kvlar-tests --example probe
//! target/release/examples/probe policies/filesystem.yaml list_directory '{"path":"/srv/project"}'
//! ```
//!
//! Prints the decision, then the minimum over 15 rounds of 1,000,000 calls
//! (`KVLAR_PROBE_CALLS=N`: N calls per round, e.g. fewer under callgrind).
//! More `TOOL ARGS-JSON` pairs after the call are decided once before the
//! timing, as the criterion bench decides the earlier cases of a group.
//! The criterion benches (`benches/eval.rs`) are the published figures.
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, policy, tool, call_args, before @ ..] = args.as_slice() else {
        eprintln!("usage: probe POLICY.yaml TOOL ARGS-JSON [TOOL ARGS-JSON]...");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(policy).unwrap_or_else(|e| {
        eprintln!("{policy}: {e}");
        std::process::exit(2)
    });
    let call_args: serde_json::Value = serde_json::from_str(call_args).unwrap_or_else(|e| {
        eprintln!("arguments: {e}");
        std::process::exit(2)
    });
    let compiled = kvlar_compiler::compile_strs(&[(policy.as_str(), text.as_str())])
        .unwrap_or_else(|_| {
            eprintln!("{policy}: does not compile (see `kvlar compile`)");
            std::process::exit(1)
        });
    // Calls decided once before timing, as the criterion bench decides each
    // earlier case of its group (their lazy-DFA states are then in the cache).
    let earlier: Vec<(&str, serde_json::Value)> = before
        .chunks(2)
        .map(|pair| match pair {
            [t, a] => match serde_json::from_str(a) {
                Ok(v) => (t.as_str(), v),
                Err(e) => {
                    eprintln!("arguments of earlier call {t}: {e}");
                    std::process::exit(2)
                }
            },
            _ => {
                eprintln!("earlier calls come as TOOL ARGS-JSON pairs");
                std::process::exit(2)
            }
        })
        .collect();
    for (t, a) in &earlier {
        compiled.program.evaluate(&kvlar_vm::Call::mcp(t, a));
    }
    let call = kvlar_vm::Call::mcp(tool, &call_args);
    let d = compiled.program.evaluate(&call);
    println!("{:?} {}", d.effect(), d.rule());
    let n: u32 = std::env::var("KVLAR_PROBE_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let mut best = f64::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(compiled.program.evaluate(std::hint::black_box(&call)));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(n));
    }
    println!("min {best:.1} ns");
}
