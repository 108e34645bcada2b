//! The Kvlar policy compiler: YAML policies → verified bytecode [`Program`].
//!
//! The pipeline is the module layout:
//! [`load`] (YAML → spanned [`ast`], expressions parsed by `kvlar-grammar`,
//! `extends` resolved) → [`lower`] (names, regexes, globs checked; AST →
//! [`ir`]) → [`codegen`] (IR → bytecode, verified by `kvlar-vm`).
//!
//! ```
//! use kvlar_vm::{Call, Effect};
//!
//! let yaml = r#"
//! name: demo
//! description: no recursive deletes
//! version: "1"
//! rules:
//!   - id: deny-rm-rf
//!     tools: [run_command, "exec*"]
//!     when: args.command =~ /rm\s+-[a-z]*r[a-z]*f/ && !(args.command contains "--dry-run")
//!     effect: deny
//!     reason: Recursive forced deletion is not permitted
//!   - id: allow-rest
//!     effect: allow
//! "#;
//! let compiled = kvlar_compiler::compile_str("demo.yaml", yaml).unwrap();
//! let args = serde_json::json!({"command": "rm -rf /"});
//! let d = compiled.program.evaluate(&Call::mcp("exec_shell", &args));
//! assert_eq!((d.effect(), d.rule()), (Effect::Deny, "deny-rm-rf"));
//!
//! let args = serde_json::json!({"command": "ls"});
//! let d = compiled.program.evaluate(&Call::mcp("exec_shell", &args));
//! assert_eq!((d.effect(), d.rule()), (Effect::Allow, "allow-rest"));
//! ```
#![forbid(unsafe_code)]

pub mod ast;
pub mod codegen;
pub mod diagnostic;
pub mod ir;
pub mod lint;
pub mod load;
pub mod lower;
pub mod source;

use std::path::{Path, PathBuf};

pub use diagnostic::{CompileError, Failure};
pub use kvlar_vm::Program;
pub use source::{FileId, SourceMap, Span};

/// The result of a successful compilation.
#[derive(Debug, Clone)]
pub struct Compiled {
    /// The verified program.
    pub program: Program,
    /// The policies as loaded (with spans), `extends` resolved.
    pub policies: ast::PolicySet,
    /// The IR the program was generated from.
    pub ir: ir::Program,
    /// Every file read, including the ones reached through `extends`.
    pub sources: SourceMap,
}

impl Compiled {
    /// Paths of every file read (what `--watch` watches).
    pub fn files(&self) -> Vec<PathBuf> {
        self.sources
            .files()
            .iter()
            .map(|f| f.path.clone())
            .collect()
    }
}

/// Compiles policy files, tried in the order given.
pub fn compile_files(paths: &[PathBuf]) -> Result<Compiled, Failure> {
    let mut sources = SourceMap::new();
    let (set, errors) = load::load_files_all(paths, &mut sources);
    finish(set, sources, errors)
}

fn sorted(mut errors: Vec<CompileError>) -> Failure {
    errors.sort_by_key(|e| e.line_col());
    Failure { errors }
}

/// Compiles one in-memory policy (`extends` relative to the current directory).
pub fn compile_str(name: &str, yaml: &str) -> Result<Compiled, Failure> {
    compile_strs(&[(name, yaml)])
}

/// Compiles several in-memory policies, tried in order.
pub fn compile_strs(policies: &[(&str, &str)]) -> Result<Compiled, Failure> {
    let mut sources = SourceMap::new();
    let mut set = ast::PolicySet::default();
    let mut errors = Vec::new();
    let base = Path::new(".");
    for (name, text) in policies {
        let (s, e) = load::load_str_all(name, text, base, &mut sources);
        set.policies.extend(s.policies);
        errors.extend(e);
    }
    finish(set, sources, errors)
}

/// Lowers what was loaded even when loading reported errors, so that every
/// error of every stage is reported at once (in file order).
fn finish(
    set: ast::PolicySet,
    sources: SourceMap,
    mut errors: Vec<CompileError>,
) -> Result<Compiled, Failure> {
    let lowered = lower::lower(&set, &sources);
    let ir = match lowered {
        Ok(ir) if errors.is_empty() => ir,
        Ok(_) => return Err(sorted(errors)),
        Err(more) => {
            errors.extend(more);
            return Err(sorted(errors));
        }
    };
    let program = codegen::generate(&ir, &sources).map_err(|e| {
        let (rule, message) = match &e {
            codegen::CodegenError::TooComplex { rule } => (
                rule.clone(),
                format!(
                    "the condition of rule `{rule}` needs more than {} registers",
                    kvlar_vm::program::MAX_REGS
                ),
            ),
            codegen::CodegenError::TooLarge { what, rule } => (
                rule.clone(),
                format!("the {what} outgrew the bytecode format at rule `{rule}`"),
            ),
            codegen::CodegenError::Verify(m) => {
                (String::new(), format!("internal compiler error: {m}"))
            }
        };
        let span = set
            .policies
            .iter()
            .flat_map(|p| &p.rules)
            .find(|r| r.id.value == rule)
            .map(|r| r.id.span)
            .or_else(|| set.policies.first().map(|p| p.span))
            .unwrap_or(Span::new(FileId(0), 0, 0));
        Failure {
            errors: vec![CompileError::type_mismatch(
                &sources,
                span,
                message,
                Some("split the condition over several rules".into()),
            )],
        }
    })?;
    Ok(Compiled {
        program,
        policies: set,
        ir,
        sources,
    })
}
