//! The live policy: compiled programs behind the [`Decide`] seam.

use std::path::PathBuf;

use kvlar_vm::{Call, Decision, Program};
use miette::{Diagnostic, GraphicalReportHandler, GraphicalTheme};

/// What the protocol layer needs from a policy: a decision per call and the
/// content hash reported with it. [`Loaded`] (a compiled program) is the one
/// implementation the binary uses.
pub trait Decide: Send + Sync + 'static {
    fn decide<'s>(&'s self, call: &Call<'_>) -> Decision<'s>;
    fn policy_hash(&self) -> &str;
}

/// A compiled policy set and what was read to build it.
pub struct Loaded {
    pub program: Program,
    /// `program.hash_hex()`, computed once.
    pub hash: String,
    pub policies: usize,
    pub rules: usize,
    /// Every file read, the policies and everything they extend (canonical paths).
    pub files: Vec<PathBuf>,
}

impl Decide for Loaded {
    fn decide<'s>(&'s self, call: &Call<'_>) -> Decision<'s> {
        self.program.evaluate(call)
    }
    fn policy_hash(&self) -> &str {
        &self.hash
    }
}

/// Compiles the policy files; on failure, the rendered diagnostic.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, String> {
    match kvlar_compiler::compile_files(paths) {
        Ok(compiled) => {
            let program = compiled.program;
            Ok(Loaded {
                hash: program.hash_hex(),
                policies: program.policy_count(),
                rules: program.rule_count(),
                files: compiled
                    .sources
                    .files()
                    .iter()
                    .map(|f| f.path.clone())
                    .collect(),
                program,
            })
        }
        Err(failure) => Err(render(&failure)),
    }
}

/// Renders a diagnostic the way miette's graphical reporter does (file:line:column, snippet).
pub fn render(diagnostic: &dyn Diagnostic) -> String {
    use std::io::IsTerminal;
    let theme = if std::io::stderr().is_terminal() {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let mut out = String::new();
    let handler = GraphicalReportHandler::new_themed(theme).with_width(120);
    if handler.render_report(&mut out, diagnostic).is_err() {
        out = diagnostic.to_string();
    }
    out
}
