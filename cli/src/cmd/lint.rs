//! `kvlar lint POLICY.yaml… [--together] [--tools TOOLS.json]… [--deny-warnings]`

use std::path::PathBuf;
use std::process::ExitCode;

use kvlar_compiler::lint::tools::Inventory;
use kvlar_compiler::lint::Warning;

use crate::report;
use crate::report::outln;

#[derive(clap::Args)]
pub struct Args {
    /// Policy files. Each is linted on its own (with its `extends` bases),
    /// unless `--together` is given.
    #[arg(required = true, value_name = "POLICY.yaml")]
    pub policies: Vec<PathBuf>,
    /// Lint the files as one policy set, tried in the order given (as
    /// `--policy a.yaml --policy b.yaml`), so that rules of one file can
    /// shadow rules of the next.
    #[arg(long)]
    pub together: bool,
    /// The tools the policy's servers offer: a saved `tools/list` result
    /// (`kvlar tools -- <server command> > tools.json`). Repeat for several
    /// servers. Adds the checks for arguments no tool of a rule takes and
    /// for misspelt tool names.
    #[arg(long, value_name = "TOOLS.json")]
    pub tools: Vec<PathBuf>,
    /// Exit with status 1 if there is any warning (notes do not count).
    #[arg(long)]
    pub deny_warnings: bool,
}

pub fn run(args: Args) -> ExitCode {
    let sets: Vec<Vec<PathBuf>> = if args.together {
        vec![args.policies.clone()]
    } else {
        args.policies.iter().map(|p| vec![p.clone()]).collect()
    };
    let mut inventory: Option<Inventory> = None;
    for path in &args.tools {
        match Inventory::read(path) {
            Ok(inv) => inventory.get_or_insert_with(Inventory::default).extend(inv),
            Err(e) => {
                report::print(*e);
                return ExitCode::from(1);
            }
        }
    }
    let (mut warnings, mut notes, mut failed) = (0, 0, false);
    for set in &sets {
        match kvlar_compiler::compile_files(set) {
            Ok(compiled) => {
                let mut findings = kvlar_compiler::lint::lint(&compiled);
                if let Some(inv) = &inventory {
                    findings.extend(kvlar_compiler::lint::tools::check(&compiled, inv));
                }
                let (w, n) = print_findings(findings);
                warnings += w;
                notes += n;
            }
            Err(failure) => {
                report::print(failure);
                failed = true;
            }
        }
    }
    outln!("{}", summary(warnings, notes));
    if failed || (args.deny_warnings && warnings > 0) {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// Prints every finding to stderr; returns (warnings, notes).
pub fn print_findings(findings: Vec<Warning>) -> (usize, usize) {
    let warnings = findings.iter().filter(|w| w.is_warning()).count();
    let notes = findings.len() - warnings;
    for f in findings {
        report::print(f);
    }
    (warnings, notes)
}

/// `0 warnings`, `1 warning, 2 notes`…
pub fn summary(warnings: usize, notes: usize) -> String {
    let mut s = format!("{warnings} warning{}", if warnings == 1 { "" } else { "s" });
    if notes > 0 {
        s.push_str(&format!(
            ", {notes} note{}",
            if notes == 1 { "" } else { "s" }
        ));
    }
    s
}
