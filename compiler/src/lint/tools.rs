//! `kvlar lint --tools FILE`: a policy checked against the tools its servers
//! really offer (a saved `tools/list` result, e.g. from `kvlar tools`).
//!
//! Two findings, both only where the inventory proves them:
//!
//! - **unknown argument**: a rule restricted to some tools (`tools:`,
//!   `resources:`, or a top-level `tool == …` / `tool in […]` / `tool glob …`
//!   test) reads an argument (`args.…`, a Kvlar `parameters` key or condition
//!   `field`) that none of the listed tools it applies to declares in its
//!   input schema. The server does not read that argument,
//!   so the rule tests something that has no effect on what the tool does: a
//!   deny rule on it is bypassed by leaving it out, and it is usually a typo
//!   (`args.pth`) or a key of another tool. Rules for every tool are not
//!   checked: they are written for servers in general;
//! - **unknown tool**: a tool name in `tools:` / `resources:` that no server
//!   offers, but that is close to one that does (`read_fiel`). Names far from
//!   every offered tool are left alone: a policy may cover several servers.
//!
//! A schema that does not spell out a level (no `properties`, `$ref`,
//! `anyOf`/`oneOf`/`allOf`, `patternProperties`, tuple `items`) is taken to
//! accept anything below it: no finding is ever a guess.

use std::collections::BTreeSet;
use std::sync::Arc;

use kvlar_vm::op::{Field, TestOp};
use kvlar_vm::program::{Matcher, PathSeg};
use miette::{Diagnostic, NamedSource, SourceSpan};
use serde_json::{Map, Value};

use super::logic::conjuncts;
use super::Warning;
use crate::diagnostic::did_you_mean;
use crate::ir::{ArgPath, Cond, CondKind, Operand};
use crate::load::yaml::{self, YKind, YNode, YamlProblem};
use crate::lower::matchers;
use crate::{ast, ir, Compiled};

type Src = NamedSource<Arc<str>>;

/// A tools file that cannot be used.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum ToolsError {
    #[error("cannot read tools file {path}: {message}")]
    #[diagnostic(code(kvlar::tools::read))]
    Read { path: String, message: String },

    #[error("{message}")]
    #[diagnostic(code(kvlar::tools::syntax))]
    Syntax {
        message: String,
        #[source_code]
        src: Src,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
    },

    #[error("{message}")]
    #[diagnostic(code(kvlar::tools::shape))]
    Shape {
        message: String,
        #[source_code]
        src: Src,
        #[label("{label}")]
        span: SourceSpan,
        label: String,
        #[help]
        help: Option<String>,
    },
}

/// One tool: its name and input schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub input_schema: Value,
}

/// The tools of one or more servers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Inventory {
    pub tools: Vec<Tool>,
}

const SHAPES: &str = "give a `tools/list` result (`{\"tools\": [...]}`), the JSON-RPC response that carries it, or a list of tools; `kvlar tools -- <server command>` writes one";

impl Inventory {
    /// Reads a tools file (JSON, or YAML of the same shape).
    pub fn read(path: &std::path::Path) -> Result<Inventory, Box<ToolsError>> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Box::new(ToolsError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        })?;
        Inventory::parse(&path.display().to_string(), &text)
    }

    /// Parses a tools file; `name` is what diagnostics call it.
    pub fn parse(name: &str, text: &str) -> Result<Inventory, Box<ToolsError>> {
        Inventory::parse_inner(name, text).map_err(Box::new)
    }

    // Errors are cold and boxed once by `parse`.
    #[allow(clippy::result_large_err)]
    fn parse_inner(name: &str, text: &str) -> Result<Inventory, ToolsError> {
        let src = || NamedSource::new(name, Arc::<str>::from(text));
        let shape =
            |message: String, span: &std::ops::Range<usize>, label: &str| ToolsError::Shape {
                message,
                src: src(),
                span: (span.start, span.end - span.start).into(),
                label: label.to_string(),
                help: Some(SHAPES.to_string()),
            };
        let problem = |p: YamlProblem| match p {
            YamlProblem::Syntax {
                message,
                label,
                span,
            } => ToolsError::Syntax {
                message: format!("tools file is not valid JSON: {message}"),
                src: src(),
                span: (span.start, span.end - span.start).into(),
                label,
            },
            YamlProblem::DuplicateKey { key, span, .. } => ToolsError::Syntax {
                message: format!("duplicate key `{key}` in tools file"),
                src: src(),
                span: (span.start, span.end - span.start).into(),
                label: "repeated here".into(),
            },
        };
        let (root, mut problems) = yaml::parse(text).map_err(problem)?;
        if !problems.is_empty() {
            return Err(problem(problems.swap_remove(0)));
        }
        let list = tool_list(&root).ok_or_else(|| {
            shape(
                format!("expected a list of tools, found {}", root.kind.describe()),
                &root.span,
                "not a tools/list result",
            )
        })?;
        let mut tools = Vec::new();
        for entry in list {
            let YKind::Map(fields) = &entry.kind else {
                return Err(shape(
                    format!(
                        "expected a tool (a mapping), found {}",
                        entry.kind.describe()
                    ),
                    &entry.span,
                    "not a tool",
                ));
            };
            let name = match get(fields, "name") {
                Some(YNode {
                    kind: YKind::Str(s),
                    ..
                }) => s.clone(),
                Some(other) => {
                    return Err(shape(
                        format!(
                            "a tool's `name` must be a string, found {}",
                            other.kind.describe()
                        ),
                        &other.span,
                        "not a string",
                    ))
                }
                None => {
                    return Err(shape(
                        "a tool without `name`".into(),
                        &entry.span,
                        "this tool has no `name`",
                    ))
                }
            };
            let input_schema = match get(fields, "inputSchema") {
                Some(
                    n @ YNode {
                        kind: YKind::Map(_),
                        ..
                    },
                ) => to_json(n),
                Some(other) => {
                    return Err(shape(
                        format!(
                            "the `inputSchema` of tool `{name}` must be an object, found {}",
                            other.kind.describe()
                        ),
                        &other.span,
                        "not an object",
                    ))
                }
                None => {
                    return Err(shape(
                        format!("tool `{name}` has no `inputSchema`"),
                        &entry.span,
                        "MCP requires an `inputSchema` on every tool",
                    ))
                }
            };
            tools.push(Tool { name, input_schema });
        }
        Ok(Inventory { tools })
    }

    /// Adds the tools of another file (several servers behind one policy).
    pub fn extend(&mut self, other: Inventory) {
        self.tools.extend(other.tools);
    }
}

fn get<'n>(fields: &'n [(YNode, YNode)], key: &str) -> Option<&'n YNode> {
    fields
        .iter()
        .find(|(k, _)| matches!(&k.kind, YKind::Str(s) if s == key))
        .map(|(_, v)| v)
}

/// The tool list in one of the accepted shapes.
fn tool_list(root: &YNode) -> Option<&[YNode]> {
    match &root.kind {
        YKind::Seq(items) => Some(items),
        YKind::Map(fields) => {
            if let Some(YNode {
                kind: YKind::Seq(items),
                ..
            }) = get(fields, "tools")
            {
                return Some(items);
            }
            get(fields, "result").and_then(tool_list)
        }
        _ => None,
    }
}

fn to_json(n: &YNode) -> Value {
    match &n.kind {
        YKind::Map(fields) => {
            let mut m = Map::new();
            for (k, v) in fields {
                if let YKind::Str(key) = &k.kind {
                    m.insert(key.clone(), to_json(v));
                }
            }
            Value::Object(m)
        }
        YKind::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        YKind::Str(s) => Value::String(s.clone()),
        YKind::Int(i) => i64::try_from(*i)
            .map(Value::from)
            .or_else(|_| u64::try_from(*i).map(Value::from))
            .unwrap_or_else(|_| Value::from(*i as f64)),
        YKind::Float(f) => Value::from(*f),
        YKind::Bool(b) => Value::Bool(*b),
        YKind::Null => Value::Null,
    }
}

/// What a schema says about one argument path.
#[derive(Debug, PartialEq)]
enum Seen {
    /// Declared, or the schema does not say (nothing to report).
    Maybe,
    /// Not declared: `depth` segments were found, the next was not, and
    /// these are the keys declared at that level.
    Undeclared { depth: usize, known: Vec<String> },
}

fn walk(schema: &Value, segs: &[PathSeg]) -> Seen {
    let mut node = schema;
    for (depth, seg) in segs.iter().enumerate() {
        let Some(obj) = node.as_object() else {
            return Seen::Maybe;
        };
        if ["$ref", "anyOf", "oneOf", "allOf", "not", "if"]
            .iter()
            .any(|k| obj.contains_key(*k))
        {
            return Seen::Maybe;
        }
        // A declared type that cannot hold the next segment: nothing below.
        let holds = |t: &str| match obj.get("type") {
            None => true,
            Some(Value::String(s)) => s == t,
            Some(Value::Array(ts)) => ts.iter().any(|x| x.as_str() == Some(t)),
            Some(_) => true,
        };
        match seg {
            PathSeg::Key(_) if !holds("object") => {
                return Seen::Undeclared {
                    depth,
                    known: Vec::new(),
                }
            }
            PathSeg::Index(_) if !holds("array") => {
                return Seen::Undeclared {
                    depth,
                    known: Vec::new(),
                }
            }
            PathSeg::Key(k) => {
                let props = obj.get("properties").and_then(Value::as_object);
                if let Some(next) = props.and_then(|p| p.get(k)) {
                    node = next;
                    continue;
                }
                if obj.contains_key("patternProperties") {
                    return Seen::Maybe;
                }
                if let Some(ap) = obj.get("additionalProperties").filter(|v| v.is_object()) {
                    node = ap;
                    continue;
                }
                let Some(props) = props else {
                    return Seen::Maybe;
                };
                return Seen::Undeclared {
                    depth,
                    known: props.keys().cloned().collect(),
                };
            }
            PathSeg::Index(_) => match obj.get("items") {
                Some(items) if items.is_object() => node = items,
                _ => return Seen::Maybe,
            },
        }
    }
    Seen::Maybe
}

/// The paths under which an argument reference may be found.
fn alternatives(path: &ArgPath) -> Vec<Vec<PathSeg>> {
    let key = |k: &str| PathSeg::Key(k.to_string());
    match path {
        ArgPath::Path(p) => vec![p.clone()],
        ArgPath::Param(k) => vec![vec![key(k)]],
        ArgPath::Field(f) => {
            let mut alts = vec![vec![key(f)]];
            if f.contains('.') {
                alts.push(f.split('.').map(key).collect());
            }
            alts
        }
    }
}

/// `args.a.b[*]` for messages.
fn display(path: &ArgPath) -> String {
    match path {
        ArgPath::Param(k) => format!("parameters key `{k}`"),
        ArgPath::Field(f) => format!("field `{f}`"),
        ArgPath::Path(p) => {
            let mut s = String::from("args");
            for seg in p {
                match seg {
                    PathSeg::Key(k)
                        if !k.is_empty()
                            && k.chars().all(|c| c.is_alphanumeric() || c == '_')
                            && !k.starts_with(|c: char| c.is_ascii_digit()) =>
                    {
                        s.push('.');
                        s.push_str(k);
                    }
                    PathSeg::Key(k) => s.push_str(&format!("[{}]", Value::String(k.clone()))),
                    PathSeg::Index(_) => s.push_str("[*]"),
                }
            }
            format!("`{s}`")
        }
    }
}

/// A test on a tool name.
type NameTest<'c> = Box<dyn Fn(&str) -> bool + 'c>;

/// Tests on the tool name from a rule's top-level conjuncts: the rule applies
/// only to names that pass all of them (no test: every tool).
fn tool_filter<'c>(cond: &'c Cond) -> Vec<NameTest<'c>> {
    let mut out: Vec<NameTest<'c>> = Vec::new();
    for c in conjuncts(cond) {
        match &c.kind {
            CondKind::NameIn {
                field: Field::Tool,
                matchers,
            } => out.push(Box::new(move |name: &str| {
                kvlar_vm::kvlar::name_matches(matchers, name)
            })),
            CondKind::Test {
                op: TestOp::Eq,
                a: Operand::Name(Field::Tool),
                b: Operand::Const(Value::String(s)),
            }
            | CondKind::Test {
                op: TestOp::Eq,
                a: Operand::Const(Value::String(s)),
                b: Operand::Name(Field::Tool),
            } => out.push(Box::new(move |name: &str| name == s)),
            CondKind::Test {
                op: TestOp::In,
                a: Operand::Name(Field::Tool),
                b: Operand::Const(Value::Array(items)),
            } => out.push(Box::new(move |name: &str| {
                items.iter().any(|v| v.as_str() == Some(name))
            })),
            CondKind::Regex {
                a: Operand::Name(Field::Tool),
                re,
                negate: false,
            } => out.push(Box::new(move |name: &str| re.is_match(name))),
            _ => {}
        }
    }
    out
}

fn names_text(names: &[&str]) -> String {
    let q: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match q.len() {
        1 => format!("tool {}", q[0]),
        n if n <= 4 => format!("any of the tools {}", q.join(", ")),
        n => format!(
            "any of the {n} tools it applies to ({}, …)",
            q[..3].join(", ")
        ),
    }
}

/// Checks a compiled policy set against the tools in `inventory`; findings
/// in rule order.
pub fn check(compiled: &Compiled, inventory: &Inventory) -> Vec<Warning> {
    let mut out = Vec::new();
    for (policy, ast_policy) in compiled.ir.policies.iter().zip(&compiled.policies.policies) {
        for (rule, ast_rule) in policy.rules.iter().zip(&ast_policy.rules) {
            unknown_tools(compiled, inventory, ast_rule, &mut out);
            unknown_arguments(compiled, inventory, rule, &mut out);
        }
    }
    out
}

/// An offered tool that `name` is a slip of: the same up to case and
/// `-`/`_`, or one or two edits away (a swap of neighbours is one edit) for
/// names long enough that this is not a different word. Tighter than the
/// did-you-mean of keys: policies name tools of other servers too.
fn close_tool<'i>(name: &str, inventory: &'i Inventory) -> Option<&'i str> {
    let norm = |s: &str| s.to_lowercase().replace('-', "_");
    let n = norm(name);
    let limit = match name.chars().count() {
        0..=4 => 0,
        5..=9 => 1,
        _ => 2,
    };
    inventory
        .tools
        .iter()
        .map(|t| (t.name.as_str(), strsim::osa_distance(&n, &norm(&t.name))))
        .filter(|(_, d)| *d <= limit)
        .min_by_key(|(_, d)| *d)
        .map(|(t, _)| t)
}

fn unknown_tools(
    compiled: &Compiled,
    inventory: &Inventory,
    rule: &ast::Rule,
    out: &mut Vec<Warning>,
) {
    let listed = rule
        .tools
        .iter()
        .chain(rule.match_on.iter().flat_map(|m| m.resources.iter()));
    for entry in listed {
        let Some(Matcher::Exact(name)) = matchers(std::slice::from_ref(entry)).pop() else {
            continue;
        };
        if inventory.tools.iter().any(|t| t.name == name) {
            continue;
        }
        let Some(suggestion) = close_tool(&name, inventory) else {
            continue;
        };
        out.push(Warning::UnknownTool {
            rule: rule.id.value.clone(),
            tool: name.clone(),
            src: compiled.sources.named_source(entry.span.file),
            span: entry.span.into(),
            help: format!(
                "did you mean `{suggestion}`? Tool names are compared exactly, so this entry matches no call to the servers in the tools file"
            ),
        });
    }
}

fn unknown_arguments(
    compiled: &Compiled,
    inventory: &Inventory,
    rule: &ir::Rule,
    out: &mut Vec<Warning>,
) {
    let filters = tool_filter(&rule.cond);
    if filters.is_empty() {
        // A rule for every tool is written for servers in general ("any
        // tool that takes a `url`"), not only for the ones in the file.
        return;
    }
    let tools: Vec<&Tool> = inventory
        .tools
        .iter()
        .filter(|t| filters.iter().all(|f| f(&t.name)))
        .collect();
    if tools.is_empty() {
        return;
    }
    let mut reported = BTreeSet::new();
    for arg in &rule.args {
        // Keys declared where the last alternative (the dotted path, for a
        // Kvlar field) stops, and the key it stops at.
        let mut known = BTreeSet::new();
        let mut missing = String::new();
        let mut seen_somewhere = false;
        let alts = alternatives(&arg.path);
        for tool in &tools {
            for (i, alt) in alts.iter().enumerate() {
                match walk(&tool.input_schema, alt) {
                    Seen::Maybe => seen_somewhere = true,
                    Seen::Undeclared { depth, known: k } if i + 1 == alts.len() => {
                        if let Some(PathSeg::Key(key)) = alt.get(depth) {
                            missing = key.clone();
                        }
                        known.extend(k);
                    }
                    Seen::Undeclared { .. } => {}
                }
            }
        }
        if seen_somewhere || !reported.insert((arg.span.file, arg.span.start, arg.span.end)) {
            continue;
        }
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
        let mut help = match did_you_mean(&missing, known.iter().map(String::as_str)) {
            Some(s) => format!("did you mean `{s}`? "),
            None => String::new(),
        };
        if let ArgPath::Param(k) = &arg.path {
            if k.contains('.') {
                help.push_str("`parameters` keys are top-level names; to reach into nested objects use a condition (`field:` follows dots) or `when: args.a.b …`. ");
            }
        }
        if known.is_empty() {
            help.push_str("the schema declares nothing there (not an object with properties)");
        } else {
            let list: Vec<String> = known.iter().map(|k| format!("`{k}`")).collect();
            help.push_str(&format!("declared there: {}", list.join(", ")));
        }
        out.push(Warning::UnknownArgument {
            rule: rule.id.clone(),
            arg: display(&arg.path),
            tools_text: names_text(&names),
            src: compiled.sources.named_source(arg.span.file),
            span: arg.span.into(),
            help,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> PathSeg {
        PathSeg::Key(k.into())
    }

    #[test]
    fn schema_walk() {
        let schema = serde_json::json!({
            "type": "object",
            "properties": {
                "path": {"type": "string"},
                "edits": {"type": "array", "items": {"type": "object", "properties": {"oldText": {}}}},
                "opts": {"type": "object"},
                "env": {"type": "object", "additionalProperties": {"type": "string"}},
                "u": {"anyOf": [{"type": "string"}]},
            }
        });
        assert_eq!(walk(&schema, &[key("path")]), Seen::Maybe);
        assert_eq!(
            walk(&schema, &[key("pth")]),
            Seen::Undeclared {
                depth: 0,
                known: vec![
                    "edits".into(),
                    "env".into(),
                    "opts".into(),
                    "path".into(),
                    "u".into()
                ]
            }
        );
        assert_eq!(
            walk(&schema, &[key("edits"), PathSeg::Index(3), key("oldText")]),
            Seen::Maybe
        );
        assert_eq!(
            walk(&schema, &[key("edits"), PathSeg::Index(0), key("newText")]),
            Seen::Undeclared {
                depth: 2,
                known: vec!["oldText".into()]
            }
        );
        // Levels the schema does not spell out accept anything.
        assert_eq!(walk(&schema, &[key("opts"), key("anything")]), Seen::Maybe);
        assert_eq!(walk(&schema, &[key("env"), key("HOME")]), Seen::Maybe);
        assert_eq!(walk(&schema, &[key("u"), key("x")]), Seen::Maybe);
        assert_eq!(
            walk(&serde_json::json!({"type": "object"}), &[key("x")]),
            Seen::Maybe
        );
        // Keys inside a string or a list, elements of an object: never there.
        assert_eq!(
            walk(&schema, &[key("path"), key("x")]),
            Seen::Undeclared {
                depth: 1,
                known: vec![]
            }
        );
        assert_eq!(
            walk(&schema, &[key("edits"), key("oldText")]),
            Seen::Undeclared {
                depth: 1,
                known: vec![]
            }
        );
        assert_eq!(
            walk(&schema, &[key("opts"), PathSeg::Index(0)]),
            Seen::Undeclared {
                depth: 1,
                known: vec![]
            }
        );
    }

    #[test]
    fn kvlar_fields_try_the_top_level_name_then_the_dotted_path() {
        assert_eq!(
            alternatives(&ArgPath::Field("a.b".into())),
            vec![vec![key("a.b")], vec![key("a"), key("b")]]
        );
        assert_eq!(
            alternatives(&ArgPath::Param("a.b".into())),
            vec![vec![key("a.b")]]
        );
    }

    #[test]
    fn accepted_shapes_and_errors() {
        let t = r#"{"name": "read_file", "inputSchema": {"type": "object"}}"#;
        for text in [
            format!("[{t}]"),
            format!("{{\"tools\": [{t}]}}"),
            format!("{{\"jsonrpc\": \"2.0\", \"id\": 2, \"result\": {{\"tools\": [{t}], \"nextCursor\": null}}}}"),
        ] {
            let inv = Inventory::parse("t.json", &text).unwrap_or_else(|e| panic!("{e:?}"));
            assert_eq!(inv.tools.len(), 1);
            assert_eq!(inv.tools[0].name, "read_file");
        }
        let err = Inventory::parse("t.json", "{\"tools\": [{\"inputSchema\": {}}]}").unwrap_err();
        let ToolsError::Shape { span, label, .. } = &*err else {
            panic!("{err:?}")
        };
        assert_eq!(
            (span.offset(), label.as_str()),
            (11, "this tool has no `name`")
        );
        let err = Inventory::parse(
            "t.json",
            "{\"tools\": [{\"name\": 5, \"inputSchema\": {}}]}",
        )
        .unwrap_err();
        let ToolsError::Shape { span, .. } = &*err else {
            panic!("{err:?}")
        };
        assert_eq!((span.offset(), span.len()), (20, 1));
        assert!(matches!(
            *Inventory::parse("t.json", "{\"tools\": [").unwrap_err(),
            ToolsError::Syntax { .. }
        ));
        assert!(matches!(
            *Inventory::parse("t.json", "{\"nope\": 1}").unwrap_err(),
            ToolsError::Shape { .. }
        ));
    }
}
