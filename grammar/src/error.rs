//! The parser's error type.

use std::fmt;
use std::ops::Range;

/// A syntax error in a condition expression.
///
/// `span` is a byte range into the parsed text (an error at the end of the
/// input has the empty span `len..len`). `message` is the headline, `label`
/// describes what is wrong at `span`, and `help` optionally says how to fix
/// it. The compiler turns this into a `miette` diagnostic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub span: Range<usize>,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl ParseError {
    /// A new error without help text.
    pub fn new(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Self {
        ParseError {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
        }
    }

    /// Adds a help text.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ParseError {}
