//! Load stage: YAML policy files → spanned [`crate::ast`].
//!
//! [`yaml`] parses a file into a spanned node tree (serde-saphyr), [`schema`]
//! checks it against the policy language and builds the AST (parsing `when:`
//! expressions with `kvlar-grammar`, spans re-based onto the file through
//! [`scalar`]), and [`extends`] reads bases and appends their rules. Every
//! error of every file is collected; `Ok` only when there are none.

pub mod extends;
pub mod scalar;
pub mod schema;
pub mod yaml;

use std::path::{Path, PathBuf};

use crate::ast::PolicySet;
use crate::diagnostic::CompileError;
use crate::source::SourceMap;

/// Loads policy files (tried in the order given), resolving `extends`.
/// Every file read is added to `sources`.
pub fn load_files(
    paths: &[PathBuf],
    sources: &mut SourceMap,
) -> Result<PolicySet, Vec<CompileError>> {
    let mut loader = extends::Loader::new(sources);
    let mut roots = Vec::new();
    for p in paths {
        if let Some(idx) = loader.load_root_file(p) {
            roots.push(idx);
        }
    }
    loader.finish(&roots)
}

/// Loads one in-memory policy named `name` (the name shown in diagnostics);
/// `extends` entries are resolved relative to `base_dir`.
pub fn load_str(
    name: &str,
    text: &str,
    base_dir: &Path,
    sources: &mut SourceMap,
) -> Result<PolicySet, Vec<CompileError>> {
    let mut loader = extends::Loader::new(sources);
    let root = loader.load_root_text(name, text, base_dir);
    loader.finish(&[root])
}

/// Loads policy files like [`load_files`], returning what could be loaded
/// together with every error (so later stages can add theirs).
pub fn load_files_all(
    paths: &[PathBuf],
    sources: &mut SourceMap,
) -> (PolicySet, Vec<CompileError>) {
    let mut loader = extends::Loader::new(sources);
    let mut roots = Vec::new();
    for p in paths {
        if let Some(idx) = loader.load_root_file(p) {
            roots.push(idx);
        }
    }
    loader.finish_all(&roots)
}

/// [`load_str`], returning what could be loaded together with every error.
pub fn load_str_all(
    name: &str,
    text: &str,
    base_dir: &Path,
    sources: &mut SourceMap,
) -> (PolicySet, Vec<CompileError>) {
    let mut loader = extends::Loader::new(sources);
    let root = loader.load_root_text(name, text, base_dir);
    loader.finish_all(&[root])
}
