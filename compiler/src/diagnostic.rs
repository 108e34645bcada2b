//! Compile errors. Every user mistake is a [`CompileError`] with the exact
//! span of the offending token, rendered by miette as `file.yaml:LINE:COL`
//! plus a labelled snippet.

use std::path::Path;
use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::source::{SourceMap, Span};

type Src = NamedSource<Arc<str>>;

/// One compile error. Construct it with the lower-case constructor of the
/// same name (`CompileError::unknown_key(&sources, span, …)`), which fills in
/// the source code and the help text.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum CompileError {
    /// A policy file could not be read.
    #[error("cannot read `{path}`: {message}")]
    #[diagnostic(code(kvlar::io))]
    Io { path: String, message: String },

    /// The YAML itself is malformed.
    #[error("YAML syntax error: {message}")]
    #[diagnostic(code(kvlar::yaml::syntax))]
    YamlSyntax {
        message: String,
        label: String,
        #[source_code]
        src: Src,
        #[label("{label}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A mapping repeats a key.
    #[error("duplicate key `{key}`")]
    #[diagnostic(
        code(kvlar::yaml::duplicate_key),
        help("a YAML mapping must not repeat a key; remove or rename one of them")
    )]
    DuplicateKey {
        key: String,
        #[source_code]
        src: Src,
        #[label("duplicate key")]
        span: SourceSpan,
        #[label("first defined here")]
        first: SourceSpan,
    },

    /// A key that the policy language does not know.
    #[error("unknown key `{key}` in {context}")]
    #[diagnostic(code(kvlar::schema::unknown_key))]
    UnknownKey {
        key: String,
        context: String,
        #[source_code]
        src: Src,
        #[label("unknown key")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// A required key is absent.
    #[error("missing required key `{key}` in {context}")]
    #[diagnostic(code(kvlar::schema::missing_key))]
    MissingKey {
        key: String,
        context: String,
        #[source_code]
        src: Src,
        #[label("this {context} has no `{key}`")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A value of the wrong YAML type (`expected a list of strings, found a mapping`).
    #[error("expected {expected} for `{what}`, found {found}")]
    #[diagnostic(code(kvlar::schema::wrong_type))]
    WrongType {
        what: String,
        expected: String,
        found: String,
        #[source_code]
        src: Src,
        #[label("expected {expected}")]
        span: SourceSpan,
    },

    /// A value of the right type that is not acceptable.
    #[error("{message}")]
    #[diagnostic(code(kvlar::schema::invalid_value))]
    InvalidValue {
        message: String,
        label: String,
        #[source_code]
        src: Src,
        #[label("{label}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A Kvlar condition operator that does not exist.
    #[error("unknown condition operator `{name}`")]
    #[diagnostic(code(kvlar::schema::unknown_operator))]
    UnknownOperator {
        name: String,
        #[source_code]
        src: Src,
        #[label("unknown operator")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// An effect other than `allow`, `deny`, `require_approval`.
    #[error("unknown effect `{name}`")]
    #[diagnostic(code(kvlar::schema::unknown_effect))]
    UnknownEffect {
        name: String,
        #[source_code]
        src: Src,
        #[label("unknown effect")]
        span: SourceSpan,
        #[help]
        help: String,
    },

    /// A `when:` expression that does not parse.
    #[error("invalid expression: {message}")]
    #[diagnostic(code(kvlar::expr::syntax))]
    Expression {
        message: String,
        label: String,
        #[source_code]
        src: Src,
        #[label("{label}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// Two rules share an id.
    #[error("duplicate rule id `{id}`")]
    #[diagnostic(
        code(kvlar::rule::duplicate_id),
        help("rule ids must be unique across every policy compiled together, including `extends` bases")
    )]
    DuplicateRuleId {
        id: String,
        #[source_code]
        src: Src,
        #[label("duplicate rule id")]
        span: SourceSpan,
        /// The first definition, when it is in the same file.
        #[label("first defined here")]
        first: Option<SourceSpan>,
        /// The first definition, when it is in another file.
        #[related]
        related: Vec<Note>,
    },

    /// A policy extends itself, directly or through other policies.
    #[error("`extends` cycle: {chain}")]
    #[diagnostic(
        code(kvlar::extends::cycle),
        help("a policy cannot extend itself, directly or through its bases; remove one of the `extends` entries")
    )]
    ExtendsCycle {
        chain: String,
        #[source_code]
        src: Src,
        #[label("this entry closes the cycle")]
        span: SourceSpan,
    },

    /// An `extends` entry that names no file.
    #[error("`extends` target `{entry}` not found")]
    #[diagnostic(code(kvlar::extends::not_found))]
    ExtendsNotFound {
        entry: String,
        resolved: String,
        #[source_code]
        src: Src,
        #[label("no such file: {resolved}")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A regex (`parameters`, `matches`, `=~`) that does not compile.
    #[error("invalid regular expression: {message}")]
    #[diagnostic(code(kvlar::regex))]
    InvalidRegex {
        message: String,
        #[source_code]
        src: Src,
        #[label("invalid regex")]
        span: SourceSpan,
    },

    /// A glob pattern that does not compile.
    #[error("invalid glob pattern: {message}")]
    #[diagnostic(code(kvlar::glob))]
    InvalidGlob {
        message: String,
        #[source_code]
        src: Src,
        #[label("invalid glob")]
        span: SourceSpan,
    },

    /// A call of a function that does not exist.
    #[error("unknown function `{name}`")]
    #[diagnostic(code(kvlar::expr::unknown_function))]
    UnknownFunction {
        name: String,
        suggestion: Option<String>,
        #[source_code]
        src: Src,
        #[label("unknown function")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// An identifier that is neither a root (`tool`, `agent`, `action`, `args`)
    /// nor a quantifier variable in scope.
    #[error("unknown identifier `{name}`")]
    #[diagnostic(code(kvlar::expr::unknown_identifier))]
    UnknownIdentifier {
        name: String,
        suggestion: Option<String>,
        #[source_code]
        src: Src,
        #[label("unknown identifier")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },

    /// A function called with the wrong number of arguments.
    #[error("`{name}` takes {expected} argument{}, found {found}", if *expected == 1 { "" } else { "s" })]
    #[diagnostic(code(kvlar::expr::arity))]
    WrongArity {
        name: String,
        expected: usize,
        found: usize,
        #[source_code]
        src: Src,
        #[label("called with {found} argument{}", if *found == 1 { "" } else { "s" })]
        span: SourceSpan,
    },

    /// An operand whose type the operator or function cannot accept.
    #[error("type mismatch: {message}")]
    #[diagnostic(code(kvlar::expr::type_mismatch))]
    TypeMismatch {
        message: String,
        #[source_code]
        src: Src,
        #[label("type mismatch")]
        span: SourceSpan,
        #[help]
        help: Option<String>,
    },
}

/// A secondary location attached to an error (e.g. the first definition of a
/// duplicate rule id when it lives in another file).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(severity(Advice))]
pub struct Note {
    pub message: String,
    pub label: String,
    #[source_code]
    pub src: Src,
    #[label("{label}")]
    pub span: SourceSpan,
}

/// Everything that went wrong in one compilation: what `kvlar compile` prints.
#[derive(Debug, Default)]
pub struct Failure {
    pub errors: Vec<CompileError>,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.errors.len() {
            1 => f.write_str("1 error"),
            n => write!(f, "{n} errors"),
        }
    }
}

impl std::error::Error for Failure {}

impl Diagnostic for Failure {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new("kvlar::compile"))
    }

    fn related<'a>(&'a self) -> Option<Box<dyn Iterator<Item = &'a dyn Diagnostic> + 'a>> {
        Some(Box::new(self.errors.iter().map(|e| e as &dyn Diagnostic)))
    }
}

impl From<Vec<CompileError>> for Failure {
    fn from(errors: Vec<CompileError>) -> Self {
        Failure { errors }
    }
}

/// Width used by [`render`] (fixed, so snapshots do not depend on the terminal).
pub const RENDER_WIDTH: usize = 100;

/// Renders a diagnostic as plain text (unicode, no colour, fixed width), for
/// tests, snapshots and non-terminal output.
pub fn render(err: &dyn Diagnostic) -> String {
    let handler =
        miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
            .with_width(RENDER_WIDTH)
            .with_links(false);
    let mut out = String::new();
    if handler.render_report(&mut out, err).is_err() {
        out = format!("{err}");
    }
    out
}

/// The closest candidate to `name`, if it is close enough to be a plausible
/// typo (Jaro-Winkler ≥ 0.8, or at most 2 edits for names longer than 3).
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(&'a str, usize, f64)> = None;
    for cand in candidates {
        if cand == name {
            continue;
        }
        let lev = strsim::levenshtein(name, cand);
        let jw = strsim::jaro_winkler(name, cand);
        let close = jw >= 0.8 || (lev <= 2 && name.chars().count() > 3);
        if !close {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, blev, bjw)) => lev < blev || (lev == blev && jw > bjw),
        };
        if better {
            best = Some((cand, lev, jw));
        }
    }
    best.map(|(c, _, _)| c)
}

fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn suggestion_help(suggestion: Option<&str>, tail: String) -> String {
    match suggestion {
        Some(s) => format!("did you mean `{s}`? {tail}"),
        None => tail,
    }
}

fn ss(span: Span) -> SourceSpan {
    span.into()
}

impl CompileError {
    /// A file that could not be read (no span: the path is named instead).
    pub fn io(path: &Path, err: &std::io::Error) -> Self {
        CompileError::Io {
            path: path.display().to_string(),
            message: err.to_string(),
        }
    }

    pub fn yaml_syntax(
        sources: &SourceMap,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
    ) -> Self {
        let message = message.into();
        // The classic trap: `when: any(x in args.paths: ...)` — a `: ` inside
        // an unquoted value starts a mapping in YAML.
        let help = message.contains("mapping values are not allowed").then(|| {
            "a `: ` inside an unquoted value starts a YAML mapping; quote the value \
             (`when: \"any(x in args.paths: x under '/etc')\"`) or use a block scalar (`when: >-` and the expression on the next lines)"
                .to_string()
        });
        CompileError::YamlSyntax {
            message,
            label: label.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// `span` is the repeated key, `first` its first occurrence (same file).
    pub fn duplicate_key(
        sources: &SourceMap,
        span: Span,
        first: Span,
        key: impl Into<String>,
    ) -> Self {
        CompileError::DuplicateKey {
            key: key.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            first: ss(first),
        }
    }

    /// `context` names the mapping (`policy`, `rule`, `match_on`, …);
    /// `allowed` are the keys it accepts (listed in the help, and searched for
    /// a did-you-mean).
    pub fn unknown_key(
        sources: &SourceMap,
        span: Span,
        key: impl Into<String>,
        context: impl Into<String>,
        allowed: &[&str],
    ) -> Self {
        let key = key.into();
        let suggestion = did_you_mean(&key, allowed.iter().copied());
        let help = suggestion_help(
            suggestion,
            format!("allowed keys here: {}", backticked(allowed)),
        );
        CompileError::UnknownKey {
            key,
            context: context.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// `span` points at the mapping (or the key that owns it) lacking `key`.
    pub fn missing_key(
        sources: &SourceMap,
        span: Span,
        key: impl Into<String>,
        context: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        CompileError::MissingKey {
            key: key.into(),
            context: context.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// `what` names the value (`tools`, `rules[2].id`…), `expected` / `found`
    /// are phrases such as `a list of strings` / `a mapping`.
    pub fn wrong_type(
        sources: &SourceMap,
        span: Span,
        what: impl Into<String>,
        expected: impl Into<String>,
        found: impl Into<String>,
    ) -> Self {
        CompileError::WrongType {
            what: what.into(),
            expected: expected.into(),
            found: found.into(),
            src: sources.named_source(span.file),
            span: ss(span),
        }
    }

    pub fn invalid_value(
        sources: &SourceMap,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        CompileError::InvalidValue {
            message: message.into(),
            label: label.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// Did-you-mean over every spelling in [`crate::ast::KvOp::SPELLINGS`].
    pub fn unknown_operator(sources: &SourceMap, span: Span, name: impl Into<String>) -> Self {
        let name = name.into();
        let all: Vec<&str> = crate::ast::KvOp::SPELLINGS
            .iter()
            .map(|(s, _)| *s)
            .collect();
        let suggestion = did_you_mean(&name, all.iter().copied());
        let help = suggestion_help(suggestion, format!("operators: {}", backticked(&all)));
        CompileError::UnknownOperator {
            name,
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    pub fn unknown_effect(sources: &SourceMap, span: Span, name: impl Into<String>) -> Self {
        const EFFECTS: &[&str] = &["allow", "deny", "require_approval"];
        let name = name.into();
        let suggestion = did_you_mean(&name, EFFECTS.iter().copied());
        let help = suggestion_help(
            suggestion,
            format!("an effect is one of {}", backticked(EFFECTS)),
        );
        CompileError::UnknownEffect {
            name,
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    pub fn expression(
        sources: &SourceMap,
        span: Span,
        message: impl Into<String>,
        label: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        CompileError::Expression {
            message: message.into(),
            label: label.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// `span` is the second definition, `first` the first one (any file).
    pub fn duplicate_rule_id(
        sources: &SourceMap,
        span: Span,
        first: Span,
        id: impl Into<String>,
    ) -> Self {
        let (first_label, related) = if first.file == span.file {
            (Some(ss(first)), Vec::new())
        } else {
            (
                None,
                vec![Note {
                    message: "the rule id was first used here".to_string(),
                    label: "first defined here".to_string(),
                    src: sources.named_source(first.file),
                    span: ss(first),
                }],
            )
        };
        CompileError::DuplicateRuleId {
            id: id.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            first: first_label,
            related,
        }
    }

    /// `chain` lists the files of the cycle, first and last equal
    /// (`a.yaml`, `b.yaml`, `a.yaml`); `span` is the `extends` entry closing it.
    pub fn extends_cycle(sources: &SourceMap, span: Span, chain: &[String]) -> Self {
        CompileError::ExtendsCycle {
            chain: chain.join(" → "),
            src: sources.named_source(span.file),
            span: ss(span),
        }
    }

    pub fn extends_not_found(
        sources: &SourceMap,
        span: Span,
        entry: impl Into<String>,
        resolved: &Path,
        help: Option<String>,
    ) -> Self {
        CompileError::ExtendsNotFound {
            entry: entry.into(),
            resolved: resolved.display().to_string(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    pub fn invalid_regex(sources: &SourceMap, span: Span, message: impl Into<String>) -> Self {
        CompileError::InvalidRegex {
            message: message.into(),
            src: sources.named_source(span.file),
            span: ss(span),
        }
    }

    pub fn invalid_glob(sources: &SourceMap, span: Span, message: impl Into<String>) -> Self {
        CompileError::InvalidGlob {
            message: message.into(),
            src: sources.named_source(span.file),
            span: ss(span),
        }
    }

    pub fn unknown_function(
        sources: &SourceMap,
        span: Span,
        name: impl Into<String>,
        suggestion: Option<&str>,
    ) -> Self {
        CompileError::UnknownFunction {
            name: name.into(),
            suggestion: suggestion.map(str::to_string),
            src: sources.named_source(span.file),
            span: ss(span),
            help: suggestion.map(|s| format!("did you mean `{s}`?")),
        }
    }

    pub fn unknown_identifier(
        sources: &SourceMap,
        span: Span,
        name: impl Into<String>,
        suggestion: Option<&str>,
    ) -> Self {
        let help = match suggestion {
            Some(s) => format!("did you mean `{s}`?"),
            None => "paths start with `tool`, `agent`, `action`, `args` or a variable bound by `any`/`all`".to_string(),
        };
        CompileError::UnknownIdentifier {
            name: name.into(),
            suggestion: suggestion.map(str::to_string),
            src: sources.named_source(span.file),
            span: ss(span),
            help: Some(help),
        }
    }

    pub fn wrong_arity(
        sources: &SourceMap,
        span: Span,
        name: impl Into<String>,
        expected: usize,
        found: usize,
    ) -> Self {
        CompileError::WrongArity {
            name: name.into(),
            expected,
            found,
            src: sources.named_source(span.file),
            span: ss(span),
        }
    }

    pub fn type_mismatch(
        sources: &SourceMap,
        span: Span,
        message: impl Into<String>,
        help: Option<String>,
    ) -> Self {
        CompileError::TypeMismatch {
            message: message.into(),
            src: sources.named_source(span.file),
            span: ss(span),
            help,
        }
    }

    /// The source and primary span, when the error has a location.
    fn primary(&self) -> Option<(&Src, SourceSpan)> {
        use CompileError::*;
        match self {
            Io { .. } => None,
            YamlSyntax { src, span, .. }
            | DuplicateKey { src, span, .. }
            | UnknownKey { src, span, .. }
            | MissingKey { src, span, .. }
            | WrongType { src, span, .. }
            | InvalidValue { src, span, .. }
            | UnknownOperator { src, span, .. }
            | UnknownEffect { src, span, .. }
            | Expression { src, span, .. }
            | DuplicateRuleId { src, span, .. }
            | ExtendsCycle { src, span, .. }
            | ExtendsNotFound { src, span, .. }
            | InvalidRegex { src, span, .. }
            | InvalidGlob { src, span, .. }
            | UnknownFunction { src, span, .. }
            | UnknownIdentifier { src, span, .. }
            | WrongArity { src, span, .. }
            | TypeMismatch { src, span, .. } => Some((src, *span)),
        }
    }

    /// File name, 1-based line and 1-based column (in characters) of the
    /// primary label; `None` for errors without a location (`Io`).
    pub fn line_col(&self) -> Option<(String, usize, usize)> {
        let (src, span) = self.primary()?;
        let text: &str = src.inner();
        let mut offset = span.offset().min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let (line, col) = crate::source::line_col(text, offset);
        Some((src.name().to_string(), line, col))
    }

    /// The primary span as a byte range in its file (`None` for `Io`).
    pub fn byte_range(&self) -> Option<std::ops::Range<usize>> {
        self.primary()
            .map(|(_, s)| s.offset()..s.offset() + s.len())
    }
}
