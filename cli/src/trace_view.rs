//! A traced evaluation, grouped rule by rule and shown on the policy's source:
//! what `kvlar explain` prints, and what `kvlar test` prints for a failing case.

use std::collections::BTreeMap;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, Severity,
};
use serde_json::{json, Value};

use crate::policy_load::Loaded;
use crate::report::outln;

/// One test the VM ran, with the value it saw.
pub struct TestLine {
    pub label: String,
    pub passed: bool,
    pub actual: String,
    pub span: Option<(u16, u32, u32)>,
}

/// One rule the VM considered, with its tests in order.
pub struct RuleLine {
    pub index: u16,
    pub matched: bool,
    pub tests: Vec<TestLine>,
}

/// `file:line:col` of a span of the loaded sources.
pub fn location(loaded: &Loaded, span: Option<(u16, u32, u32)>) -> Option<String> {
    let (file, start, _) = span?;
    let sources = loaded.sources()?;
    let f = sources.files().get(file as usize)?;
    let (line, col) = kvlar_compiler::source::line_col(&f.text, start as usize);
    Some(format!("{}:{line}:{col}", f.name))
}

/// The span of the `id` of rule number `index` (program order).
pub fn rule_span(loaded: &Loaded, index: u16) -> Option<(u16, u32, u32)> {
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

/// The id of rule number `index`.
pub fn rule_id(loaded: &Loaded, index: u16) -> &str {
    loaded
        .program
        .rules()
        .get(index as usize)
        .map_or("?", |r| r.id.as_str())
}

/// Groups the recorded tests by rule, in rule order; the deciding rule is
/// marked as matched.
pub fn group(loaded: &Loaded, trace: &kvlar_vm::Trace) -> Vec<RuleLine> {
    fn line(rules: &mut BTreeMap<u16, RuleLine>, index: u16) -> &mut RuleLine {
        rules.entry(index).or_insert_with(|| RuleLine {
            index,
            matched: false,
            tests: Vec::new(),
        })
    }
    let mut rules: BTreeMap<u16, RuleLine> = BTreeMap::new();
    for ev in &trace.events {
        let Some(d) = loaded.program.debug_at(ev.chunk, ev.pc) else {
            continue;
        };
        line(&mut rules, d.rule).tests.push(TestLine {
            label: d.label.clone(),
            passed: ev.passed,
            actual: ev.actual.clone(),
            span: d.span,
        });
    }
    if let Some(r) = trace.decided {
        line(&mut rules, r).matched = true;
    }
    rules.into_values().collect()
}

/// The considered rules as JSON (`explain --format json`, `test --json`).
pub fn to_json(loaded: &Loaded, rules: &[RuleLine]) -> Vec<Value> {
    rules
        .iter()
        .map(|r| {
            json!({
                "rule": rule_id(loaded, r.index),
                "matched": r.matched,
                "location": location(loaded, rule_span(loaded, r.index)),
                "tests": r.tests.iter().map(|t| json!({
                    "test": t.label,
                    "passed": t.passed,
                    "actual": t.actual,
                    "location": location(loaded, t.span),
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Prints every considered rule (or says that none was).
pub fn print(loaded: &Loaded, rules: &[RuleLine]) {
    if rules.is_empty() {
        outln!("no rule considered this call");
    }
    for r in rules {
        print_rule(loaded, r, rule_id(loaded, r.index));
    }
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
        outln!("{header}");
        for t in &r.tests {
            outln!("    {}", test_text(t));
        }
        outln!();
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
        outln!("{out}");
    } else {
        outln!("{}", view.message);
    }
    for t in r
        .tests
        .iter()
        .filter(|t| t.span.is_none_or(|(f, _, _)| Some(f) != file))
    {
        outln!("    {}", test_text(t));
    }
}
