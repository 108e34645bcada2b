//! Fuzz harnesses, shared by the cargo-fuzz targets (`compiler/fuzz`,
//! `vm/fuzz`, `cli/fuzz`) and by the bounded random runs of `cargo test`
//! (`tests/tests/fuzz.rs`), so both exercise exactly the same checks.
//!
//! Each harness takes the raw fuzz input and panics on a finding. Structured
//! inputs ((policy, call) pairs, programs with a foreign chunk, JSON-RPC
//! lines) are built from the bytes with [`arbitrary::Unstructured`].

use std::fmt::Write as _;

use arbitrary::{Result as AResult, Unstructured};
use kvlar_compiler::Compiled;
use kvlar_vm::program::{Chunk, ProgramParts};
use kvlar_vm::{Call, Decision, Effect, Program, VM_FAULT};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::proxy_classify::{self as classify, ClientLine, ServerLine};
use crate::reference;

// ---------------------------------------------------------------------------
// Shared vocabulary

/// Tool names, with the usual tricks against exact and glob rules.
pub const TOOLS: &[&str] = &[
    "read_file",
    "write_file",
    "delete_file",
    "bash",
    "exec_shell",
    "get-env",
    "fetch",
    "Read_File",
    "DELETE_FILE",
    "read_file ",
    " read_file",
    "read_file\u{200b}",
    "r\u{0435}ad_file",
    "\u{ff52}\u{ff45}\u{ff41}\u{ff44}_file",
    "read_file\n",
    "read_file\0",
    "read/file",
    "",
    "*",
];
/// Tool patterns for `tools:` and `resources:`.
pub const TOOL_PATTERNS: &[&str] = &[
    "read_file",
    "delete_file",
    "bash",
    "get-env",
    "exec*",
    "*_file",
    "read_?ile",
    "[rw]*",
    "[!r]*",
    "[a-z]*",
    "*",
    "?",
];
/// Argument keys.
pub const KEYS: &[&str] = &[
    "path", "paths", "url", "command", "mode", "n", "o", "a.b", "list", "Path", "flag",
];
/// String values: paths, URLs, commands, odd text.
pub const STRINGS: &[&str] = &[
    "/srv/data/report.txt",
    "/srv/data",
    "/srv/data/",
    "/srv/data/../../etc/passwd",
    "/srv/data//../etc",
    "/srv/data/./x",
    "/srv/data/..%2F..%2Fetc%2Fpasswd",
    "/srv/database",
    "/etc/passwd",
    "//etc/passwd",
    "../etc",
    "srv/data/x",
    "https://good.com/x",
    "https://good.com@evil.com/",
    "https://evil.com:8080/",
    "https://EVIL.com./",
    "https:\\\\evil.com\\x",
    "https://good.com\\@evil.com/",
    "http://[::1]:80/",
    "http://0x7f.1/",
    "good.com",
    "rm -rf /",
    "ls -la",
    "ro",
    "",
    "é",
    "aéa",
    "\u{200b}",
];
const REGEXES: &[&str] = &[
    "rm\\s+-rf",
    "^ls",
    "^/etc",
    "evil",
    "(?i)EVIL",
    "^$",
    "",
    "\\.\\.",
    "%",
    "[\\\\@]",
    // Empty matches only; between the bytes of `é` none counts.
    "(?-u:\\B)",
];
const GLOBS: &[&str] = &["/srv/**", "**/.env", "*.txt", "/etc/*", "[!/]*", "{a,b}*"];
const DIRS: &[&str] = &[
    "/srv/data",
    "/srv/data/",
    "/",
    "/etc",
    "srv",
    "/srv/data/..",
];
const FUNCS: &[&str] = &["len", "lower", "upper", "host", "normpath"];
const BINOPS: &[&str] = &[
    "==",
    "!=",
    "<",
    ">=",
    "in",
    "not in",
    "contains",
    "startswith",
    "endswith",
    "under",
];
const KV_OPS: &[&str] = &[
    "equals",
    "not_equals",
    "contains",
    "starts_with",
    "ends_with",
    "matches",
    "greater_than",
    "less_than",
    "exists",
    "not_exists",
    "one_of",
    "not_in",
    "in_domain",
    "not_in_domain",
];

fn pick<'a, T>(u: &mut Unstructured<'_>, from: &'a [T]) -> AResult<&'a T> {
    u.choose(from)
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// An expression string literal.
fn lit(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

// ---------------------------------------------------------------------------
// Values and calls

fn scalar(u: &mut Unstructured<'_>) -> AResult<Value> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=4 => Value::String(pick(u, STRINGS)?.to_string()),
        5 => {
            // Several strings in one: long texts (often past the VM's
            // 64-byte split point) with the pieces' matches anywhere.
            let n = u.int_in_range(2..=10usize)?;
            let sep = *pick(u, &[" ", "/", "; ", ""])?;
            let parts = (0..n)
                .map(|_| pick(u, STRINGS).copied())
                .collect::<AResult<Vec<_>>>()?;
            Value::String(parts.join(sep))
        }
        6 => json!(u.int_in_range(-3..=1000i64)?),
        7 => json!(*pick(u, &[0.5f64, 1.0, -0.0, 1e300])?),
        8 => Value::Bool(u.arbitrary()?),
        _ => Value::Null,
    })
}

/// A JSON value nested at most `depth` levels.
pub fn value(u: &mut Unstructured<'_>, depth: u32) -> AResult<Value> {
    if depth == 0 {
        return scalar(u);
    }
    Ok(match u.int_in_range(0..=5u8)? {
        0 => {
            let n = u.int_in_range(0..=3usize)?;
            Value::Array(
                (0..n)
                    .map(|_| value(u, depth - 1))
                    .collect::<AResult<_>>()?,
            )
        }
        1 => Value::Object(object(u, depth - 1)?),
        _ => scalar(u)?,
    })
}

fn object(u: &mut Unstructured<'_>, depth: u32) -> AResult<Map<String, Value>> {
    let mut m = Map::new();
    for _ in 0..u.int_in_range(0..=4usize)? {
        m.insert(pick(u, KEYS)?.to_string(), value(u, depth)?);
    }
    Ok(m)
}

/// One generated call: a tool name and an argument object.
#[derive(Debug, Clone)]
pub struct GenCall {
    pub tool: String,
    pub args: Value,
}

impl GenCall {
    pub fn call(&self) -> Call<'_> {
        Call::mcp(&self.tool, &self.args)
    }
}

fn gen_call(u: &mut Unstructured<'_>) -> AResult<GenCall> {
    Ok(GenCall {
        tool: pick(u, TOOLS)?.to_string(),
        args: Value::Object(object(u, 2)?),
    })
}

/// Calls every program is run on, whatever the input.
pub fn fixed_calls() -> Vec<GenCall> {
    let mut out = Vec::new();
    for tool in ["read_file", "bash", "Read_File", "", "get-env"] {
        for args in [
            json!({}),
            json!({"path": "/srv/data/../../etc/passwd", "url": "https://good.com@evil.com/"}),
            json!({"command": "rm -rf /", "paths": ["/etc", "/srv/data/x"], "n": 5}),
            json!({"o": {"a.b": [1, {"x": null}]}, "a.b": "dotted", "flag": true}),
        ] {
            out.push(GenCall {
                tool: tool.to_string(),
                args,
            });
        }
    }
    out
}

fn same(vm: &Decision<'_>, r: &(Effect, String, Option<String>)) -> bool {
    vm.effect() == r.0 && vm.rule() == r.1 && vm.reason() == r.2.as_deref()
}

/// Decides every call with the VM and the reference interpreter; panics when
/// they disagree (with the policies in the message).
pub fn check_against_reference(compiled: &Compiled, calls: &[GenCall], sources: &[String]) {
    for c in calls {
        let call = c.call();
        let vm = compiled.program.evaluate(&call);
        let r = reference::evaluate(&compiled.policies, &call);
        assert!(
            same(&vm, &r),
            "VM and reference disagree\ncall: {c:?}\nVM: {vm:?}\nreference: {r:?}\npolicies:\n{}",
            sources.join("---\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Compiler: arbitrary text

/// Arbitrary text as a policy: a diagnostic (that renders) or a program that
/// round-trips through the binary format and decides like the reference
/// interpreter on [`fixed_calls`]. Never a panic.
pub fn compile_text(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    compile_and_check(&[("fuzz.yaml", text)]);
}

/// Compiles in-memory policies and checks the result; `true` if it compiled.
pub fn compile_and_check(policies: &[(&str, &str)]) -> bool {
    match kvlar_compiler::compile_strs(policies) {
        Ok(compiled) => {
            let bytes = compiled.program.to_bytes();
            let again = Program::from_bytes(&bytes).expect("a compiled program loads back");
            assert_eq!(again.hash(), compiled.program.hash());
            assert_eq!(again.to_bytes(), bytes);
            let sources: Vec<String> = policies.iter().map(|(_, t)| t.to_string()).collect();
            check_against_reference(&compiled, &fixed_calls(), &sources);
            true
        }
        Err(failure) => {
            assert!(!failure.errors.is_empty(), "a failure without an error");
            let rendered = kvlar_compiler::diagnostic::render(&failure);
            assert!(!rendered.is_empty());
            for e in &failure.errors {
                if let (Some((file, _, _)), Some(range)) = (e.line_col(), e.byte_range()) {
                    if let Some((_, text)) = policies.iter().find(|(n, _)| *n == file) {
                        assert!(
                            text.get(range.clone()).is_some(),
                            "span {range:?} is not inside {file} on char boundaries: {e:?}"
                        );
                    }
                }
            }
            false
        }
    }
}

// ---------------------------------------------------------------------------
// Compiler + VM vs reference: generated (policy, call) pairs

fn path_expr(u: &mut Unstructured<'_>, var: Option<&str>) -> AResult<String> {
    Ok(match u.int_in_range(0..=9u8)? {
        0 => "tool".to_string(),
        1 => "agent".to_string(),
        2 if var.is_some() => var.unwrap_or("args").to_string(),
        3 => format!("args[{}]", lit(pick(u, KEYS)?)),
        4 => format!("args.list[{}]", u.int_in_range(0..=2u8)?),
        5 => format!("args.o.{}", pick(u, &["path", "url", "n", "list"])?),
        _ => {
            let k = pick(u, KEYS)?;
            if k.contains('.') {
                format!("args[{}]", lit(k))
            } else {
                format!("args.{k}")
            }
        }
    })
}

fn operand(u: &mut Unstructured<'_>, var: Option<&str>) -> AResult<String> {
    Ok(match u.int_in_range(0..=5u8)? {
        0 | 1 => path_expr(u, var)?,
        2 => format!("{}({})", pick(u, FUNCS)?, path_expr(u, var)?),
        3 => lit(pick(u, STRINGS)?),
        4 => u.int_in_range(-1..=10i64)?.to_string(),
        _ => format!("[{}, {}]", lit(pick(u, STRINGS)?), lit(pick(u, STRINGS)?)),
    })
}

/// A `when:` expression (at most `depth` levels of `&&`, `||`, `!`, `any`).
pub fn expr(u: &mut Unstructured<'_>, depth: u32, var: Option<&str>) -> AResult<String> {
    let kind = if depth == 0 {
        u.int_in_range(0..=5u8)?
    } else {
        u.int_in_range(0..=10u8)?
    };
    Ok(match kind {
        0 | 1 => format!(
            "{} {} {}",
            operand(u, var)?,
            pick(u, BINOPS)?,
            operand(u, var)?
        ),
        2 => format!(
            "{} {} /{}/{}",
            operand(u, var)?,
            pick(u, &["=~", "!~"])?,
            pick(u, REGEXES)?.replace('/', "\\/"),
            pick(u, &["", "i", "s"])?
        ),
        3 => format!("{} glob {}", operand(u, var)?, lit(pick(u, GLOBS)?)),
        4 => format!("{} under {}", operand(u, var)?, lit(pick(u, DIRS)?)),
        5 => format!("exists({})", path_expr(u, var)?),
        6 => format!("!({})", expr(u, depth - 1, var)?),
        7 => format!(
            "({}) && ({})",
            expr(u, depth - 1, var)?,
            expr(u, depth - 1, var)?
        ),
        8 => format!(
            "({}) || ({})",
            expr(u, depth - 1, var)?,
            expr(u, depth - 1, var)?
        ),
        _ => {
            let over = pick(
                u,
                &[
                    "args.paths",
                    "args.list",
                    "args.o",
                    "[\"/etc\", \"/srv/data/x\"]",
                ],
            )?;
            let name = if var.is_some() { "y" } else { "x" };
            format!(
                "{}({name} in {over}: {})",
                pick(u, &["any", "all"])?,
                expr(u, depth - 1, Some(name))?
            )
        }
    })
}

fn rule_yaml(u: &mut Unstructured<'_>, out: &mut String, id: &str) -> AResult<()> {
    let _ = writeln!(out, "  - id: {}", q(id));
    out.push_str("    description: generated\n");
    if u.ratio(1, 2)? {
        let n = u.int_in_range(1..=2usize)?;
        let tools: Vec<String> = (0..n)
            .map(|_| pick(u, TOOL_PATTERNS).map(|t| q(t)))
            .collect::<AResult<_>>()?;
        let _ = writeln!(out, "    tools: [{}]", tools.join(", "));
    }
    if u.ratio(1, 3)? {
        let mut m = Map::new();
        if u.arbitrary()? {
            m.insert("resources".into(), json!([pick(u, TOOL_PATTERNS)?]));
        }
        if u.ratio(1, 3)? {
            let mut params = Map::new();
            params.insert(pick(u, KEYS)?.to_string(), json!(pick(u, REGEXES)?));
            m.insert("parameters".into(), Value::Object(params));
        }
        if u.arbitrary()? {
            let op = *pick(u, KV_OPS)?;
            let v = match op {
                "one_of" | "not_in" => json!([scalar(u)?, scalar(u)?]),
                "in_domain" | "not_in_domain" => json!(pick(u, &["good.com", "evil.com"])?),
                "matches" => json!(pick(u, REGEXES)?),
                _ => scalar(u)?,
            };
            m.insert(
                "conditions".into(),
                json!([{"field": pick(u, KEYS)?, "operator": op, "value": v}]),
            );
        }
        let _ = writeln!(out, "    match_on: {}", Value::Object(m));
    }
    if u.ratio(2, 3)? {
        let e = expr(u, 3, None)?;
        let _ = writeln!(out, "    when: {}", q(&e));
    }
    match u.int_in_range(0..=2u8)? {
        0 => out.push_str("    effect: allow\n"),
        1 => out.push_str("    effect: deny\n    reason: \"denied\"\n"),
        _ => out.push_str("    effect: require_approval\n    reason: \"ask\"\n"),
    }
    Ok(())
}

/// One to three policies (YAML) and up to eight calls.
pub fn policies_and_calls(u: &mut Unstructured<'_>) -> AResult<(Vec<String>, Vec<GenCall>)> {
    let mut yamls = Vec::new();
    for p in 0..u.int_in_range(1..=3usize)? {
        let mut y = format!("name: gen-{p}\ndescription: generated\nversion: \"1\"\n");
        match u.int_in_range(0..=2u8)? {
            0 => y.push_str("default_outcome: allow\n"),
            1 => y.push_str("default_outcome: deny\n"),
            _ => {}
        }
        let n = u.int_in_range(0..=4usize)?;
        if n == 0 {
            y.push_str("rules: []\n");
        } else {
            y.push_str("rules:\n");
            for r in 0..n {
                rule_yaml(u, &mut y, &format!("p{p}-r{r}"))?;
            }
        }
        yamls.push(y);
    }
    let n = u.int_in_range(1..=8usize)?;
    let calls = (0..n).map(|_| gen_call(u)).collect::<AResult<_>>()?;
    Ok((yamls, calls))
}

/// Differential: generated policies compiled and run by the VM decide every
/// generated call exactly like the reference interpreter. Returns whether the
/// generated policies compiled (an invalid one is a diagnostic, also fine).
pub fn differential(data: &[u8]) -> bool {
    let mut u = Unstructured::new(data);
    let Ok((yamls, calls)) = policies_and_calls(&mut u) else {
        return false;
    };
    let names: Vec<String> = (0..yamls.len()).map(|i| format!("gen-{i}.yaml")).collect();
    let inputs: Vec<(&str, &str)> = names
        .iter()
        .map(String::as_str)
        .zip(yamls.iter().map(String::as_str))
        .collect();
    match kvlar_compiler::compile_strs(&inputs) {
        Ok(compiled) => {
            check_against_reference(&compiled, &calls, &yamls);
            check_against_reference(&compiled, &fixed_calls(), &yamls);
            true
        }
        Err(f) => {
            assert!(!f.errors.is_empty());
            false
        }
    }
}

// ---------------------------------------------------------------------------
// VM: the loader and verifier

/// The policy whose program the VM harnesses corrupt: every kind of
/// instruction the compiler emits (dispatch, globs, Kvlar criteria,
/// quantifier chunks, functions, regexes).
pub const BASE_POLICY: &str = r#"name: base
description: the program the VM fuzz targets corrupt
version: "1"
default_outcome: allow
rules:
  - id: no-shell
    tools: [bash, "exec*"]
    when: args.command =~ /rm\s+-rf/i || len(args.command) > 100
    effect: deny
    reason: shells
  - id: srv-only
    tools: [read_file, write_file]
    when: '!(args.path under "/srv/data") || any(p in args.paths: !(normpath(p) under "/srv/data"))'
    effect: deny
    reason: outside /srv/data
  - id: hosts
    when: host(args.url) in ["evil.com", "127.0.0.1"] || lower(tool) == "get-env"
    effect: require_approval
    reason: ask
  - id: kvlar-style
    description: Kvlar criteria
    match_on:
      resources: ["delete_*"]
      parameters: {path: "^/etc"}
      conditions:
        - {field: o.n, operator: greater_than, value: 3}
        - {field: url, operator: not_in_domain, value: ["good.com"]}
    effect: {type: deny, reason: "kvlar"}
  - id: all-ok
    when: 'all(x in args.list: x glob "*.txt") && exists(args.flag)'
    effect: allow
"#;

/// [`BASE_POLICY`] compiled once per process.
fn base_program() -> &'static Program {
    static BASE: std::sync::OnceLock<Program> = std::sync::OnceLock::new();
    BASE.get_or_init(|| {
        kvlar_compiler::compile_str("base.yaml", BASE_POLICY)
            .expect("BASE_POLICY compiles")
            .program
    })
}

/// Calls the VM harnesses run: each takes a different path through
/// [`BASE_POLICY`].
pub fn vm_calls() -> Vec<GenCall> {
    let mut out = fixed_calls();
    for (tool, args) in [
        ("bash", json!({"command": "RM -RF /"})),
        ("exec_x", json!({"command": "ls"})),
        (
            "read_file",
            json!({"path": "/srv/data/a", "paths": ["/srv/data/b", "/etc/x"]}),
        ),
        ("fetch", json!({"url": "https://good.com@evil.com/"})),
        (
            "delete_x",
            json!({"path": "/etc/x", "o": {"n": 4}, "url": "https://a.com"}),
        ),
        ("other", json!({"list": ["a.txt", "b.txt"], "flag": null})),
    ] {
        out.push(GenCall {
            tool: tool.into(),
            args,
        });
    }
    out
}

/// Runs a program that loaded: every call terminates with a decision within
/// the program's static step bound, and a runtime fault is a denial (fail closed).
fn run_all(program: &Program) {
    for c in vm_calls() {
        let (d, steps) = program.evaluate_counting(&c.call());
        let bound = program.step_bound(&c.args);
        assert!(
            u128::from(steps) <= bound,
            "{steps} steps, over the static bound {bound}"
        );
        assert_eq!(program.evaluate(&c.call()), d);
        if d.rule() == VM_FAULT {
            assert_eq!(d.effect(), Effect::Deny, "a VM fault must deny");
        }
        let _ = program.disassemble();
    }
}

/// The `.kvbc` header for `body`: magic, version, the body's SHA-256.
pub fn with_header(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(38 + body.len());
    out.extend_from_slice(kvlar_vm::format::MAGIC);
    out.extend_from_slice(&kvlar_vm::format::VERSION.to_le_bytes());
    out.extend_from_slice(&Sha256::digest(body));
    out.extend_from_slice(body);
    out
}

/// Arbitrary bytes as a program: rejected, or it runs [`vm_calls`] to a
/// decision without panicking and round-trips. The bytes are tried as they
/// are and as the body under a valid header (so the hash check does not stop
/// every input at the door).
pub fn vm_bytes(data: &[u8]) {
    for bytes in [data.to_vec(), with_header(data)] {
        if let Ok(program) = Program::from_bytes(&bytes) {
            run_all(&program);
            let again = program.to_bytes();
            let reloaded = Program::from_bytes(&again).expect("a loaded program saves and loads");
            assert_eq!(reloaded.hash(), program.hash());
        }
    }
}

/// The valid body of [`BASE_POLICY`]'s program (for seeding and mutating).
pub fn base_body() -> Vec<u8> {
    base_program().to_bytes()[38..].to_vec()
}

/// Arbitrary bytes as one chunk of an otherwise valid program (replacing an
/// existing chunk, or appended as a new one): `Program::new` rejects it, or
/// the program runs every call to a decision.
pub fn vm_chunk(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(mode) = u.int_in_range(0..=2u8) else {
        return;
    };
    let Ok(slot) = u.arbitrary::<u8>() else {
        return;
    };
    let program = base_program();
    let mut chunks = program.chunks().to_vec();
    let code = u.take_rest().to_vec();
    let at = slot as usize % chunks.len();
    match mode {
        0 => chunks[at] = Chunk { code },
        1 => chunks.push(Chunk { code }),
        _ => {
            // Splice the bytes into an existing chunk.
            let old = &chunks[at].code;
            let cut = (slot as usize).min(old.len());
            let mut spliced = old[..cut].to_vec();
            spliced.extend_from_slice(&code);
            spliced.extend_from_slice(&old[cut..]);
            chunks[at] = Chunk { code: spliced };
        }
    }
    let parts = ProgramParts {
        consts: program.consts().to_vec(),
        chunks,
        nregs: program.nregs(),
        rules: program.rules().to_vec(),
        policies: program.policies().to_vec(),
        debug: program.debug().to_vec(),
        source_names: program.source_names().to_vec(),
    };
    if let Ok(p) = Program::new(parts) {
        run_all(&p);
        let reloaded = Program::from_bytes(&p.to_bytes()).expect("a verified program round-trips");
        assert_eq!(reloaded.hash(), p.hash());
    }
}

// ---------------------------------------------------------------------------
// Proxy: line classification

/// Top-level member names, including look-alikes of the ones that matter.
const MEMBER_KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "result",
    "Method",
    "METHOD",
    "method ",
    "ID",
    "Params",
    "paramſ",
    "p\\u0061rams",
    "m\\u0065thod",
];
const METHODS: &[&str] = &[
    "\"tools/call\"",
    "\"Tools/Call\"",
    "\"tools/call \"",
    "\" tools/call\"",
    "\"tools\\/call\"",
    "\"tools/\\u0063all\"",
    "\"tools/\\u200bcall\"",
    "\"tools/call\\u0000\"",
    "\"TOOLS/CALL\"",
    "\"ping\"",
    "\"tools/list\"",
    "\"notifications/cancelled\"",
    "\"initialize\"",
];
const PARAM_KEYS: &[&str] = &[
    "name",
    "arguments",
    "Name",
    "Arguments",
    "argumentſ",
    "n\\u0061me",
    "_meta",
    "requestId",
];
const NAMES: &[&str] = &[
    "\"echo\"",
    "\"get-env\"",
    "\"get\\u002denv\"",
    "\"Get-Env\"",
    "7",
    "null",
    "[\"get-env\"]",
];
const WS: &[&str] = &["", " ", "\t", "\r", "\n", "\r\n", "  "];

fn ws(u: &mut Unstructured<'_>) -> AResult<&'static str> {
    if u.ratio(1, 4)? {
        u.choose(WS).copied()
    } else {
        Ok("")
    }
}

fn json_text(u: &mut Unstructured<'_>, depth: u32) -> AResult<String> {
    Ok(match u.int_in_range(0..=6u8)? {
        0 if depth > 0 => message(u, depth - 1)?,
        1 if depth > 0 => params_text(u, depth - 1)?,
        2 => serde_json::to_string(&value(u, 2)?).unwrap_or_default(),
        3 => pick(u, NAMES)?.to_string(),
        4 => pick(u, METHODS)?.to_string(),
        _ => u.int_in_range(0..=3i32)?.to_string(),
    })
}

fn params_text(u: &mut Unstructured<'_>, depth: u32) -> AResult<String> {
    let mut out = String::from("{");
    for i in 0..u.int_in_range(0..=4usize)? {
        if i > 0 {
            out.push(',');
        }
        let key = *pick(u, PARAM_KEYS)?;
        let v = match key {
            "name" | "Name" | "n\\u0061me" => pick(u, NAMES)?.to_string(),
            "arguments" | "Arguments" | "argumentſ" if u.ratio(3, 4)? => {
                serde_json::to_string(&Value::Object(object(u, 2)?)).unwrap_or_default()
            }
            _ => json_text(u, depth)?,
        };
        let _ = write!(out, "{}\"{key}\"{}:{}{v}", ws(u)?, ws(u)?, ws(u)?);
    }
    out.push('}');
    Ok(out)
}

/// A JSON-RPC-looking object (or batch) built from look-alike members.
pub fn message(u: &mut Unstructured<'_>, depth: u32) -> AResult<String> {
    if depth > 0 && u.ratio(1, 8)? {
        let n = u.int_in_range(0..=3usize)?;
        let items: Vec<String> = (0..n)
            .map(|_| message(u, depth - 1))
            .collect::<AResult<_>>()?;
        return Ok(format!("[{}]", items.join(",")));
    }
    let mut out = String::from("{");
    for i in 0..u.int_in_range(0..=5usize)? {
        if i > 0 {
            out.push(',');
        }
        let key = *pick(u, MEMBER_KEYS)?;
        let v = match key.to_ascii_lowercase().trim() {
            "method" | "m\\u0065thod" => pick(u, METHODS)?.to_string(),
            "params" | "paramſ" | "p\\u0061rams" => params_text(u, depth)?,
            "id" => pick(u, &["1", "\"a\"", "null", "1.0", "{}", "[1]"])?.to_string(),
            "jsonrpc" => "\"2.0\"".to_string(),
            _ => json_text(u, depth)?,
        };
        let _ = write!(out, "{}\"{key}\"{}:{}{v}{}", ws(u)?, ws(u)?, ws(u)?, ws(u)?);
    }
    out.push('}');
    Ok(out)
}

/// How lenient peers might read one forwarded line (no `\n` in it: the
/// proxy splits on those): as it is, or split on `\r` as universal-newline
/// readers do, each parsed keeping the first or the last duplicate member,
/// case-sensitive or not (Go). Returns the `tools/call`s such a peer could
/// see: (id, name, arguments).
pub fn peer_tool_calls(line: &str) -> Vec<(Value, Value, Value)> {
    let mut found = Vec::new();
    let pieces: Vec<&str> = line.split('\r').collect();
    let mut readings: Vec<&str> = vec![line];
    if pieces.len() > 1 {
        readings.extend(pieces);
    }
    for text in readings {
        let Ok(members) = raw_members(text) else {
            // A batch: every item (nested ones too), duplicates kept.
            if let Ok(items) = serde_json::from_str::<Vec<&serde_json::value::RawValue>>(text) {
                for item in items {
                    found.extend(peer_tool_calls(item.get()));
                }
            }
            continue;
        };
        for insensitive in [false, true] {
            for last_wins in [false, true] {
                let get = |name: &str| -> Option<&Value> {
                    let mut hits = members.iter().filter(|(k, _)| {
                        if insensitive {
                            go_fold(k) == name
                        } else {
                            k == name
                        }
                    });
                    if last_wins {
                        hits.next_back().map(|(_, v)| v)
                    } else {
                        hits.next().map(|(_, v)| v)
                    }
                };
                let method = get("method").and_then(Value::as_str);
                let is_call = method.is_some_and(|m| {
                    if insensitive {
                        go_fold(m) == "tools/call"
                    } else {
                        m == "tools/call"
                    }
                });
                if !is_call {
                    continue;
                }
                let Some(id) = get("id") else { continue };
                let params = get("params").cloned().unwrap_or(Value::Null);
                let pget = |name: &str| -> Value {
                    match &params {
                        Value::Object(m) => m
                            .iter()
                            .filter(|(k, _)| {
                                if insensitive {
                                    go_fold(k) == name
                                } else {
                                    *k == name
                                }
                            })
                            .map(|(_, v)| v.clone())
                            .next_back()
                            .unwrap_or(Value::Null),
                        _ => Value::Null,
                    }
                };
                found.push((id.clone(), pget("name"), pget("arguments")));
            }
        }
    }
    found
}

fn go_fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| if c == '\u{017F}' { 's' } else { c })
        .collect()
}

/// Top-level members of a JSON object in order, duplicates kept.
fn raw_members(text: &str) -> Result<Vec<(String, Value)>, serde_json::Error> {
    use serde::de::{Deserializer as _, MapAccess, Visitor};
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<(String, Value)>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new();
            while let Some(kv) = m.next_entry::<String, Value>()? {
                out.push(kv);
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let members = (&mut de).deserialize_map(V)?;
    de.end()?;
    Ok(members)
}

/// The decision stand-in for the proxy harness: `get-env` and any argument
/// named `evil` are denied, everything else allowed.
pub fn allowed(name: &str, args: &Value) -> bool {
    name != "get-env" && args.get("evil").is_none()
}

/// Arbitrary client and server lines through the proxy's classification:
/// never a panic, and nothing a peer could read as a `tools/call` is
/// forwarded unless it is exactly the call that was evaluated (same id,
/// name and arguments), so it passed through the policy.
pub fn proxy_lines(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let raw = u.ratio(1, 4).unwrap_or(false);
    let line = if raw {
        u.take_rest().to_vec()
    } else {
        match message(&mut u, 2) {
            Ok(m) => m.into_bytes(),
            Err(_) => return,
        }
    };
    // The proxy splits its input on `\n` before classifying (lines.rs).
    for piece in line.split(|&b| b == b'\n') {
        check_server_line(piece);
        let _ = classify::scan_id(piece);
        check_client_line(piece);
    }
}

/// The property of [`proxy_lines`] for one client line.
pub fn check_client_line(line: &[u8]) {
    let text = std::str::from_utf8(line).ok();
    match classify::client_line(line) {
        ClientLine::Forward { .. } => {
            let text = text.expect("only UTF-8 is forwarded");
            let seen = peer_tool_calls(text);
            assert!(
                seen.is_empty(),
                "a line forwarded without evaluation is read as a tools/call by a peer: {text:?} → {seen:?}"
            );
        }
        ClientLine::Evaluate(call) => {
            let text = text.expect("only UTF-8 is evaluated");
            let id: Value = serde_json::from_str(call.id.get()).expect("the id is JSON");
            for (peer_id, name, args) in peer_tool_calls(text) {
                let args = if args.is_null() { json!({}) } else { args };
                assert_eq!(
                    (&peer_id, name.as_str(), &args),
                    (&id, Some(&*call.name), &call.args),
                    "a peer reads another call than the one evaluated: {text:?}"
                );
            }
            assert!(call.args.is_object());
            let _ = allowed(&call.name, &call.args);
        }
        ClientLine::Reply(bytes) => check_reply(&bytes),
        ClientLine::Refuse { reply, .. } => {
            if let Some(bytes) = reply {
                check_reply(&bytes);
            }
        }
        ClientLine::Drop => {
            assert!(
                text.is_some_and(|t| t.trim().is_empty()),
                "only blank lines are dropped"
            );
        }
    }
}

/// The proxy's own answers are one line of valid JSON.
fn check_reply(bytes: &[u8]) {
    assert_eq!(bytes.last(), Some(&b'\n'));
    assert_eq!(bytes.iter().filter(|&&b| b == b'\n').count(), 1);
    assert!(!bytes.contains(&b'\r'));
    serde_json::from_slice::<Value>(bytes).expect("a reply is JSON");
}

/// Server lines: forwarded exactly when they are JSON.
pub fn check_server_line(line: &[u8]) {
    let is_json = std::str::from_utf8(line)
        .ok()
        .is_some_and(|t| serde_json::from_str::<serde::de::IgnoredAny>(t).is_ok());
    match classify::server_line(line) {
        ServerLine::Forward { .. } => assert!(is_json),
        ServerLine::Invalid(_) => assert!(!is_json),
    }
}
