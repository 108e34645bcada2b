//! `kvlar test -f FILE.test.yaml|DIR [--policy P] [--json] [--verbose] [--coverage]`:
//! runs policy test files (Kvlar's format plus native MCP `call:` cases; see
//! [`crate::testfile`]).
//!
//! Text output: a `FAIL` block per failing case (expected vs actual decision
//! and rule, the call, the explain trace), `PASS` lines with `--verbose`,
//! the unreached rules with `--coverage`, and the closing line
//! `N passed, M failed`. A test file that cannot be run (malformed, or its
//! policy does not compile) is reported on stderr and counts as one failure.
//! Exit status 0 only if everything passed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use kvlar_compiler::{CompileError, Failure};
use kvlar_vm::Effect;
use serde_json::{json, Value};

use crate::input::OwnedCall;
use crate::policy_load::{self, Loaded};
use crate::report;
use crate::report::outln;
use crate::testfile::{self, Case};
use crate::trace_view::{self, location, rule_span, RuleLine};

#[derive(clap::Args)]
pub struct Args {
    /// A test file, or a folder: every `*.test.yaml` under it, recursively, in sorted order.
    #[arg(
        short = 'f',
        long = "file",
        required = true,
        value_name = "FILE.test.yaml|DIR"
    )]
    pub files: Vec<PathBuf>,
    /// Test against these policies instead of each file's `policy:`.
    #[arg(long = "policy", short = 'p', value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Print a machine-readable JSON report on stdout instead of text.
    #[arg(long)]
    pub json: bool,
    /// Also list the cases that pass.
    #[arg(long, short = 'v')]
    pub verbose: bool,
    /// List the rules that no case reached (decided).
    #[arg(long)]
    pub coverage: bool,
}

/// One case's outcome.
struct Outcome<'c> {
    case: &'c Case,
    effect: Effect,
    rule: String,
    reason: Option<String>,
    problems: Vec<String>,
    trace: Vec<RuleLine>,
}

/// One test file's outcome.
struct FileRun {
    name: String,
    policies: Vec<PathBuf>,
    /// `Some` when the file could not be run.
    error: Option<Vec<Value>>,
    passed: usize,
    failed: usize,
    json_cases: Vec<Value>,
    /// The rules no case decided (id, location).
    unreached: Vec<(String, Option<String>)>,
    /// How many rules some case decided.
    reached: usize,
}

pub fn run(args: Args) -> ExitCode {
    let mut files = Vec::new();
    for f in &args.files {
        if f.is_dir() {
            let mut found = Vec::new();
            if let Err(e) = collect(f, &mut found) {
                return report::fail(format!("cannot read {}: {e}", f.display()), None);
            }
            if found.is_empty() {
                return report::fail(
                    format!("no *.test.yaml file under {}", f.display()),
                    Some("test files are named `<name>.test.yaml`"),
                );
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(f.clone());
        }
    }

    let runs: Vec<FileRun> = files.iter().map(|f| run_file(f, &args)).collect();
    let passed: usize = runs.iter().map(|r| r.passed).sum();
    let failed: usize = runs.iter().map(|r| r.failed).sum();

    if args.json {
        let out = json!({
            "files": runs.iter().map(|r| {
                let mut o = json!({
                    "file": r.name,
                    "policy": r.policies.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                    "passed": r.passed,
                    "failed": r.failed,
                    "cases": r.json_cases,
                });
                if let Some(errors) = &r.error {
                    o["errors"] = Value::Array(errors.clone());
                }
                if args.coverage && r.error.is_none() {
                    o["unreached_rules"] = r.unreached.iter()
                        .map(|(id, loc)| json!({"rule": id, "location": loc}))
                        .collect();
                }
                o
            }).collect::<Vec<_>>(),
            "passed": passed,
            "failed": failed,
        });
        outln!(
            "{}",
            serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
        );
    } else {
        if args.coverage {
            for r in runs.iter().filter(|r| r.error.is_none()) {
                outln!(
                    "coverage {}: {} of {} rules reached",
                    r.name,
                    r.reached,
                    r.reached + r.unreached.len()
                );
                for (id, loc) in &r.unreached {
                    match loc {
                        Some(loc) => outln!("  not reached: {id} ({loc})"),
                        None => outln!("  not reached: {id}"),
                    }
                }
            }
        }
        let broken = runs.iter().filter(|r| r.error.is_some()).count();
        if broken > 0 {
            outln!(
                "{broken} test file{} could not be run (see the diagnostics on stderr)",
                if broken == 1 { "" } else { "s" }
            );
        }
        outln!("{passed} passed, {failed} failed");
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Every `*.test.yaml` under `dir` (symlinked folders are not followed).
fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let ty = entry.file_type()?;
        if ty.is_dir() {
            collect(&path, out)?;
        } else if path.is_file()
            && path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".test.yaml"))
        {
            out.push(path);
        }
    }
    Ok(())
}

/// The errors of a failure as JSON (`{message, file, line, column}`), and
/// printed on stderr.
fn report_errors(errors: Vec<CompileError>) -> Vec<Value> {
    let json = errors
        .iter()
        .map(|e| {
            let loc = e.line_col();
            json!({
                "message": e.to_string(),
                "file": loc.as_ref().map(|l| l.0.clone()),
                "line": loc.as_ref().map(|l| l.1),
                "column": loc.as_ref().map(|l| l.2),
            })
        })
        .collect();
    report::print(Failure { errors });
    json
}

fn broken(name: String, policies: Vec<PathBuf>, errors: Vec<Value>) -> FileRun {
    FileRun {
        name,
        policies,
        error: Some(errors),
        passed: 0,
        failed: 1,
        json_cases: Vec::new(),
        unreached: Vec::new(),
        reached: 0,
    }
}

fn load_policies(paths: &[PathBuf]) -> Result<Loaded, Vec<Value>> {
    if paths
        .iter()
        .any(|p| p.extension().is_some_and(|e| e == "kvbc"))
    {
        return policy_load::load(paths)
            .map_err(|()| vec![json!({"message": "the compiled program could not be loaded"})]);
    }
    match kvlar_compiler::compile_files(paths) {
        Ok(c) => Ok(Loaded {
            program: c.program.clone(),
            compiled: Some(c),
        }),
        Err(f) => Err(report_errors(f.errors)),
    }
}

fn run_file(path: &Path, args: &Args) -> FileRun {
    let name = path.display().to_string();
    let file = match testfile::load(path, args.policies.is_empty()) {
        Ok(f) => f,
        Err(errors) => return broken(name, args.policies.clone(), report_errors(errors)),
    };
    let policies = if args.policies.is_empty() {
        file.policy.iter().cloned().collect()
    } else {
        args.policies.clone()
    };
    let loaded = match load_policies(&policies) {
        Ok(l) => l,
        Err(errors) => return broken(name, policies, errors),
    };

    let mut reached = BTreeSet::new();
    let mut run = FileRun {
        name,
        policies,
        error: None,
        passed: 0,
        failed: 0,
        json_cases: Vec::new(),
        unreached: Vec::new(),
        reached: 0,
    };
    if args.verbose && !args.json {
        outln!("== {} ({} cases)", run.name, file.cases.len());
    }
    for case in &file.cases {
        let mut trace = kvlar_vm::Trace::default();
        let d = loaded
            .program
            .evaluate_traced(&case.call.as_call(), &mut trace);
        if let Some(r) = trace.decided {
            reached.insert(r);
        }
        let outcome = Outcome {
            case,
            effect: d.effect(),
            rule: d.rule().to_string(),
            reason: d.reason().map(str::to_string),
            problems: problems(case, d.effect(), d.rule(), d.reason()),
            trace: trace_view::group(&loaded, &trace),
        };
        let ok = outcome.problems.is_empty();
        if ok {
            run.passed += 1;
        } else {
            run.failed += 1;
        }
        if args.json {
            run.json_cases.push(case_json(&loaded, &outcome));
        } else if !ok {
            print_failure(&run.name, &loaded, &outcome);
        } else if args.verbose {
            outln!("PASS {}:{} {}", run.name, case.line, case.id);
        }
    }
    let rules = loaded.program.rules();
    run.reached = reached.len();
    run.unreached = (0..rules.len())
        .filter_map(|i| u16::try_from(i).ok())
        .filter(|i| !reached.contains(i))
        .map(|i| {
            (
                rules[i as usize].id.clone(),
                location(&loaded, rule_span(&loaded, i)),
            )
        })
        .collect();
    run
}

/// What is wrong with a decision, given the case's expectations.
fn problems(case: &Case, effect: Effect, rule: &str, reason: Option<&str>) -> Vec<String> {
    let mut out = Vec::new();
    if effect != case.expect {
        out.push(format!("expected decision {}, got {effect}", case.expect));
    }
    if let Some(want) = &case.rule {
        if want != rule {
            out.push(format!("expected rule {want}, got {rule}"));
        }
    }
    if let Some(want) = &case.reason_contains {
        match reason {
            Some(r) if r.contains(want.as_str()) => {}
            Some(r) => out.push(format!("expected reason containing {want:?}, got {r:?}")),
            None => out.push(format!(
                "expected reason containing {want:?}, but the decision has no reason"
            )),
        }
    }
    out
}

fn call_text(c: &OwnedCall) -> String {
    format!(
        "tool {:?}, agent {:?}, action {:?}, arguments {}",
        c.tool, c.agent, c.action, c.args
    )
}

fn print_failure(file: &str, loaded: &Loaded, o: &Outcome) {
    let c = o.case;
    outln!("FAIL {file}:{} {}", c.line, c.id);
    if let Some(d) = &c.description {
        outln!("  description: {d}");
    }
    let mut expected = c.expect.to_string();
    if let Some(r) = &c.rule {
        expected.push_str(&format!(", rule {r}"));
    }
    if let Some(r) = &c.reason_contains {
        expected.push_str(&format!(", reason containing {r:?}"));
    }
    outln!("  expected: {expected}");
    match &o.reason {
        Some(reason) => outln!(
            "  actual:   {}, rule {}, reason {reason:?}",
            o.effect,
            o.rule
        ),
        None => outln!("  actual:   {}, rule {}", o.effect, o.rule),
    }
    for p in &o.problems {
        outln!("  - {p}");
    }
    outln!("  call:     {}", call_text(&c.call));
    outln!();
    trace_view::print(loaded, &o.trace);
}

fn case_json(loaded: &Loaded, o: &Outcome) -> Value {
    let c = o.case;
    let mut v = json!({
        "id": c.id,
        "description": c.description,
        "line": c.line,
        "passed": o.problems.is_empty(),
        "call": {"tool": c.call.tool, "agent": c.call.agent, "action": c.call.action, "arguments": c.call.args},
        "expected": {"decision": c.expect.as_str(), "rule": c.rule, "reason_contains": c.reason_contains},
        "actual": {"decision": o.effect.as_str(), "rule": o.rule, "reason": o.reason},
        "problems": o.problems,
    });
    if !o.problems.is_empty() {
        v["trace"] = Value::Array(trace_view::to_json(loaded, &o.trace));
    }
    v
}
