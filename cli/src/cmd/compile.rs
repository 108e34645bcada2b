//! `kvlar compile POLICY.yaml… [-o OUT.kvbc] [--emit asm|ir|stats]`

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::ValueEnum;

use crate::report;
use crate::report::{out, outln};

#[derive(clap::Args)]
pub struct Args {
    /// Policy files, tried in the order given.
    #[arg(required = true, value_name = "POLICY.yaml")]
    pub policies: Vec<PathBuf>,
    /// Write the compiled program here (`.kvbc`).
    #[arg(short, long, value_name = "OUT.kvbc")]
    pub output: Option<PathBuf>,
    /// Print the program in another form on stdout.
    #[arg(long, value_enum)]
    pub emit: Option<Emit>,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Emit {
    /// Disassembled bytecode, rule by rule.
    Asm,
    /// The intermediate representation (resolved condition trees).
    Ir,
    /// Sizes and counts.
    Stats,
}

pub fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let compiled = match kvlar_compiler::compile_files(&args.policies) {
        Ok(c) => c,
        Err(failure) => {
            report::print(failure);
            return ExitCode::from(1);
        }
    };
    let elapsed = started.elapsed();
    // Lint findings are warnings here: printed, never failing the build.
    let _ = super::lint::print_findings(kvlar_compiler::lint::lint(&compiled));
    let program = &compiled.program;
    let bytes = program.to_bytes();
    if let Some(out) = &args.output {
        if let Err(e) = std::fs::write(out, &bytes) {
            return report::fail(format!("cannot write {}: {e}", out.display()), None);
        }
    }
    let yaml_bytes: usize = compiled.sources.files().iter().map(|f| f.text.len()).sum();
    match args.emit {
        Some(Emit::Asm) => out!("{}", program.disassemble()),
        Some(Emit::Ir) => out!("{}", compiled.ir),
        Some(Emit::Stats) => {
            outln!("policies        {}", program.policy_count());
            outln!("rules           {}", program.rule_count());
            outln!("constants       {}", program.consts().len());
            outln!("chunks          {}", program.chunks().len());
            outln!("registers       {}", program.nregs());
            let fast = program.fast_summary();
            outln!("inline rules    {}", fast.inline_rules);
            outln!("bit runs        {} ({} steps)", fast.runs, fast.run_steps);
            let n = fast.immediate_tools;
            outln!(
                "entry shortcut  {} ({n} tool{} decided by the lookup alone)",
                if fast.entry_shortcut { "yes" } else { "no" },
                if n == 1 { "" } else { "s" }
            );
            outln!("twin sets       {}", fast.twin_sets);
            outln!(
                "one-pass plans  {} (tools decided by one regex pass over one argument)",
                fast.plans
            );
            outln!(
                "unknown tools   {}",
                if fast.unknown_glob_gate {
                    "glob gate (a tool no rule's glob matches is decided at once)"
                } else {
                    "no gate (a rule may apply to any tool)"
                }
            );
            outln!("code bytes      {}", program.code_size());
            outln!("program bytes   {}", bytes.len());
            outln!("source files    {}", compiled.sources.files().len());
            outln!("source bytes    {yaml_bytes}");
            outln!(
                "size ratio      {:.2}",
                bytes.len() as f64 / yaml_bytes.max(1) as f64
            );
            outln!("compile time    {:.3} ms", elapsed.as_secs_f64() * 1e3);
            outln!("hash            {}", program.hash_hex());
        }
        None => {}
    }
    let summary = format!(
        "compiled {} {} ({} {}) into {} bytes, hash {}{}",
        program.policy_count(),
        if program.policy_count() == 1 {
            "policy"
        } else {
            "policies"
        },
        program.rule_count(),
        if program.rule_count() == 1 {
            "rule"
        } else {
            "rules"
        },
        bytes.len(),
        &program.hash_hex()[..16],
        args.output
            .as_ref()
            .map(|o| format!(" → {}", o.display()))
            .unwrap_or_default()
    );
    if args.emit.is_some() {
        eprintln!("{summary}");
    } else {
        outln!("{summary}");
    }
    ExitCode::SUCCESS
}
