//! `kvlar explain CALL.json --policy P [--format text|json]`: the decision,
//! then every rule the VM considered, in order, with each test it ran, whether
//! it passed and the value it saw — as source snippets of the policy.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::ValueEnum;
use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
};
use serde_json::{json, Value};

use crate::input;
use crate::policy_load::{self, Loaded};
use crate::report;

#[derive(clap::Args)]
pub struct Args {
    /// The call: a Kvlar action, MCP tools/call params, or a JSON-RPC tools/call request.
    #[arg(value_name = "CALL.json")]
    pub call: PathBuf,
    /// Policy files (compiled together, tried in order) or one `.kvbc` program.
    #[arg(long = "policy", short = 'p', required = true, value_name = "POLICY")]
    pub policies: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Agent id given to MCP-shaped calls.
    #[arg(long, default_value = kvlar_vm::call::MCP_AGENT)]
    pub agent_id: String,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

struct TestLine {
    label: String,
    passed: bool,
    actual: String,
    span: Option<(u16, u32, u32)>,
}

struct RuleLine {
    index: u16,
    matched: bool,
    tests: Vec<TestLine>,
}

fn location(loaded: &Loaded, span: Option<(u16, u32, u32)>) -> Option<String> {
    let (file, start, _) = span?;
    let sources = loaded.sources()?;
    let f = sources.files().get(file as usize)?;
    let (line, col) = kvlar_compiler::source::line_col(&f.text, start as usize);
    Some(format!("{}:{line}:{col}", f.name))
}

fn rule_span(loaded: &Loaded, index: u16) -> Option<(u16, u32, u32)> {
    let c = loaded.compiled.as_ref()?;
    let rule = c
        .policies
        .policies
        .iter()
        .flat_map(|p| &p.rules)
        .nth(index as usize)?;
    Some((
        rule.id.span.file.0 as u16,
        rule.id.span.start as u32,
        rule.id.span.end as u32,
    ))
}

pub fn run(args: Args) -> ExitCode {
    let Ok(loaded) = policy_load::load(&args.policies) else {
        return ExitCode::from(1);
    };
    let text = match std::fs::read_to_string(&args.call) {
        Ok(t) => t,
        Err(e) => return report::fail(format!("cannot read {}: {e}", args.call.display()), None),
    };
    let parsed: Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => {
            return report::fail(
                format!("{} is not valid JSON: {e}", args.call.display()),
                Some("a call is a Kvlar action, an MCP tools/call params object or a JSON-RPC tools/call request"),
            )
        }
    };
    let call = match input::to_call(&parsed, &args.agent_id) {
        Ok(c) => c,
        Err(why) => return report::fail(format!("{}: {why}", args.call.display()), None),
    };
    let program = &loaded.program;
    let mut trace = kvlar_vm::Trace::default();
    let decision = program.evaluate_traced(&call.as_call(), &mut trace);

    // Group the recorded tests by rule, in rule order.
    let mut rules: BTreeMap<u16, RuleLine> = BTreeMap::new();
    for ev in &trace.events {
        let Some(d) = program.debug_at(ev.chunk, ev.pc) else {
            continue;
        };
        rules
            .entry(d.rule)
            .or_insert_with(|| RuleLine {
                index: d.rule,
                matched: false,
                tests: Vec::new(),
            })
            .tests
            .push(TestLine {
                label: d.label.clone(),
                passed: ev.passed,
                actual: ev.actual.clone(),
                span: d.span,
            });
    }
    if let Some(r) = trace.decided {
        rules
            .entry(r)
            .or_insert_with(|| RuleLine {
                index: r,
                matched: false,
                tests: Vec::new(),
            })
            .matched = true;
    }

    let rule_id = |i: u16| {
        program
            .rules()
            .get(i as usize)
            .map_or("?", |r| r.id.as_str())
    };
    match args.format {
        Format::Json => {
            let considered: Vec<Value> = rules
                .values()
                .map(|r| {
                    json!({
                        "rule": rule_id(r.index),
                        "matched": r.matched,
                        "location": location(&loaded, rule_span(&loaded, r.index)),
                        "tests": r.tests.iter().map(|t| json!({
                            "test": t.label,
                            "passed": t.passed,
                            "actual": t.actual,
                            "location": location(&loaded, t.span),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            let out = json!({
                "decision": decision.effect.as_str(),
                "rule": decision.rule,
                "reason": decision.reason,
                "call": {"tool": call.tool, "agent": call.agent, "action": call.action, "arguments": call.args},
                "policy_hash": program.hash_hex(),
                "considered": considered,
            });
            println!(
                "{}",
                serde_json::to_string_pretty(&out).unwrap_or_else(|_| out.to_string())
            );
        }
        Format::Text => {
            println!("decision: {}", decision.effect);
            match location(&loaded, trace.decided.and_then(|r| rule_span(&loaded, r))) {
                Some(loc) => println!("rule:     {} ({loc})", decision.rule),
                None => println!("rule:     {}", decision.rule),
            }
            if let Some(reason) = decision.reason {
                println!("reason:   {reason}");
            }
            println!(
                "call:     tool {:?}, agent {:?}, action {:?}",
                call.tool, call.agent, call.action
            );
            println!();
            if rules.is_empty() {
                println!("no rule considered this call");
            }
            for r in rules.values() {
                print_rule(&loaded, r, rule_id(r.index));
            }
        }
    }
    ExitCode::SUCCESS
}

/// One rule as a miette advice: the rule's source with every test labelled.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct RuleView {
    message: String,
    src: NamedSource<String>,
    labels: Vec<LabeledSpan>,
}

impl Diagnostic for RuleView {
    fn severity(&self) -> Option<Severity> {
        Some(Severity::Advice)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.src)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().cloned()))
    }
}

fn test_text(t: &TestLine) -> String {
    format!(
        "{} {} (value: {})",
        if t.passed { "✓ passed" } else { "✗ failed" },
        t.label,
        t.actual
    )
}

fn print_rule(loaded: &Loaded, r: &RuleLine, id: &str) {
    let verdict = if r.matched {
        "✓ matched"
    } else {
        "✗ did not match"
    };
    let header = format!("rule `{id}` {verdict}");
    let file = r
        .tests
        .iter()
        .find_map(|t| t.span)
        .or_else(|| rule_span(loaded, r.index))
        .map(|s| s.0);
    let source = file.and_then(|f| loaded.sources().and_then(|s| s.files().get(f as usize)));
    let Some(source) = source else {
        // Precompiled program: no source text, print the labels.
        println!("{header}");
        for t in &r.tests {
            println!("    {}", test_text(t));
        }
        println!();
        return;
    };
    let mut labels: Vec<LabeledSpan> = r
        .tests
        .iter()
        .filter_map(|t| {
            let (f, s, e) = t.span?;
            (Some(f) == file).then(|| {
                LabeledSpan::new(
                    Some(format!(
                        "{} (value: {})",
                        if t.passed { "✓ passed" } else { "✗ failed" },
                        t.actual
                    )),
                    s as usize,
                    (e - s) as usize,
                )
            })
        })
        .collect();
    if labels.is_empty() {
        if let Some((_, s, e)) = rule_span(loaded, r.index) {
            let text = if r.matched {
                "matches every call"
            } else {
                "not reached"
            };
            labels.push(LabeledSpan::new(
                Some(text.to_string()),
                s as usize,
                (e - s) as usize,
            ));
        }
    }
    let view = RuleView {
        message: header,
        src: NamedSource::new(source.name.clone(), source.text.to_string()),
        labels,
    };
    let handler = if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        GraphicalReportHandler::new()
    } else {
        GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
    };
    let mut out = String::new();
    if handler.render_report(&mut out, &view).is_ok() {
        println!("{out}");
    } else {
        println!("{}", view.message);
    }
    for t in r
        .tests
        .iter()
        .filter(|t| t.span.is_none_or(|(f, _, _)| Some(f) != file))
    {
        println!("    {}", test_text(t));
    }
}
