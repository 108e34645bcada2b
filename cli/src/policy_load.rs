//! `--policy` arguments: YAML files compiled together, or one precompiled
//! `.kvbc` program (loaded and verified by the VM crate, no compiler involved).

use std::path::PathBuf;

use kvlar_compiler::{Compiled, SourceMap};
use kvlar_vm::Program;

use crate::report;

/// A program ready to run, with its sources when it was compiled here.
pub struct Loaded {
    pub program: Program,
    pub compiled: Option<Compiled>,
}

impl Loaded {
    pub fn sources(&self) -> Option<&SourceMap> {
        self.compiled.as_ref().map(|c| &c.sources)
    }
}

fn is_kvbc(p: &std::path::Path) -> bool {
    p.extension().is_some_and(|e| e == "kvbc")
}

/// Loads the policies or prints the diagnostics and returns `Err(())`.
pub fn load(paths: &[PathBuf]) -> Result<Loaded, ()> {
    if paths.is_empty() {
        report::fail(
            "no policy given",
            Some("pass --policy policy.yaml (repeatable) or --policy program.kvbc"),
        );
        return Err(());
    }
    if paths.iter().any(|p| is_kvbc(p)) {
        if paths.len() != 1 {
            report::fail(
                "a compiled .kvbc program cannot be combined with other --policy files",
                Some("compile all the YAML policies together: kvlar compile a.yaml b.yaml -o all.kvbc"),
            );
            return Err(());
        }
        let path = &paths[0];
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                report::fail(format!("cannot read {}: {e}", path.display()), None);
                return Err(());
            }
        };
        return match Program::from_bytes(&bytes) {
            Ok(program) => Ok(Loaded {
                program,
                compiled: None,
            }),
            Err(e) => {
                report::fail(
                    format!("{} is not a valid Kvlar program: {e}", path.display()),
                    Some("recompile it with `kvlar compile POLICY.yaml -o OUT.kvbc`"),
                );
                Err(())
            }
        };
    }
    match kvlar_compiler::compile_files(paths) {
        Ok(c) => Ok(Loaded {
            program: c.program.clone(),
            compiled: Some(c),
        }),
        Err(failure) => {
            report::print(failure);
            Err(())
        }
    }
}
