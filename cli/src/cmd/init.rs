//! `kvlar init [--template NAME] [--dir D] [--list] [--force]`: writes a
//! starter policy `D/NAME.yaml` and its test file `D/NAME.test.yaml` from the
//! curated policies in `policies/`, which are embedded in the binary.

use std::path::PathBuf;
use std::process::ExitCode;

use kvlar_compiler::diagnostic::did_you_mean;
use kvlar_compiler::load::yaml::{self, YKind};

use crate::report;
use crate::report::outln;

#[derive(clap::Args)]
pub struct Args {
    /// The template to start from (see --list).
    #[arg(long, short = 't', default_value = "default", value_name = "NAME")]
    pub template: String,
    /// Where to write `NAME.yaml` and `NAME.test.yaml`.
    #[arg(long, short = 'd', default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// List the templates with their descriptions, and write nothing.
    #[arg(long)]
    pub list: bool,
    /// Overwrite files that already exist.
    #[arg(long)]
    pub force: bool,
}

/// A curated policy and its test file.
pub struct Template {
    pub name: &'static str,
    pub policy: &'static str,
    pub tests: &'static str,
}

macro_rules! template {
    ($name:literal) => {
        Template {
            name: $name,
            policy: include_str!(concat!("../../../policies/", $name, ".yaml")),
            tests: include_str!(concat!("../../../policies/", $name, ".test.yaml")),
        }
    };
}

/// Every template, in the order `--list` shows them.
pub const TEMPLATES: &[Template] = &[
    template!("default"),
    template!("strict"),
    template!("permissive"),
    template!("filesystem"),
    template!("filesystem-native"),
    template!("shell"),
    template!("postgres"),
    template!("sqlite"),
    template!("git"),
    template!("github"),
    template!("slack"),
    template!("fetch"),
    template!("memory"),
];

/// The policy's `description:` (empty if it has none).
pub fn description(policy: &str) -> String {
    let Ok((root, _)) = yaml::parse(policy) else {
        return String::new();
    };
    let YKind::Map(entries) = root.kind else {
        return String::new();
    };
    entries
        .into_iter()
        .find_map(|(k, v)| match (k.kind, v.kind) {
            (YKind::Str(k), YKind::Str(v)) if k == "description" => Some(v),
            _ => None,
        })
        .unwrap_or_default()
}

pub fn run(args: Args) -> ExitCode {
    if args.list {
        let width = TEMPLATES.iter().map(|t| t.name.len()).max().unwrap_or(0);
        for t in TEMPLATES {
            outln!("{:width$}  {}", t.name, description(t.policy));
        }
        return ExitCode::SUCCESS;
    }
    let Some(t) = TEMPLATES.iter().find(|t| t.name == args.template) else {
        let names: Vec<&str> = TEMPLATES.iter().map(|t| t.name).collect();
        let help = match did_you_mean(&args.template, names.iter().copied()) {
            Some(m) => format!("did you mean `{m}`? templates: {}", names.join(", ")),
            None => format!(
                "templates: {} (`kvlar init --list` describes them)",
                names.join(", ")
            ),
        };
        return report::fail(format!("unknown template `{}`", args.template), Some(&help));
    };
    let policy = args.dir.join(format!("{}.yaml", t.name));
    let tests = args.dir.join(format!("{}.test.yaml", t.name));
    if !args.force {
        let existing: Vec<String> = [&policy, &tests]
            .iter()
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !existing.is_empty() {
            let verb = if existing.len() == 1 {
                "exists"
            } else {
                "exist"
            };
            return report::fail(
                format!("{} already {verb}", existing.join(" and ")),
                Some("nothing was written; pass --force to overwrite, or --dir to write elsewhere"),
            );
        }
    }
    if let Err(e) = std::fs::create_dir_all(&args.dir) {
        return report::fail(format!("cannot create {}: {e}", args.dir.display()), None);
    }
    for (path, text) in [(&policy, t.policy), (&tests, t.tests)] {
        if let Err(e) = std::fs::write(path, text) {
            return report::fail(format!("cannot write {}: {e}", path.display()), None);
        }
        outln!("wrote {}", path.display());
    }
    outln!("next: kvlar test -f {}", tests.display());
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_is_described() {
        for t in TEMPLATES {
            kvlar_compiler::compile_str(&format!("{}.yaml", t.name), t.policy)
                .unwrap_or_else(|f| panic!("{}: {f:?}", t.name));
            assert!(!description(t.policy).is_empty(), "{}", t.name);
            assert!(
                t.tests.contains(&format!("policy: \"{}.yaml\"", t.name))
                    || t.tests.contains(&format!("policy: {}.yaml", t.name)),
                "{}: the test file must name its policy beside it",
                t.name
            );
        }
    }
}
