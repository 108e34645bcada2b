//! Printing diagnostics: every user-facing error goes through miette.

use std::io::IsTerminal;

/// `println!` that ignores a closed stdout (`kvlar compile --emit asm … |
/// head`) instead of panicking on the broken pipe.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use outln;

/// `print!` that ignores a closed stdout (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout().lock(), $($arg)*);
    }};
}
pub(crate) use out;

/// Sets miette's report style: colours only on a terminal, never in CI logs.
pub fn install_hook() {
    let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = miette::set_hook(Box::new(move |_| {
        Box::new(
            miette::MietteHandlerOpts::new()
                .color(color)
                .unicode(true)
                .terminal_links(false)
                .context_lines(2)
                .build(),
        )
    }));
}

/// Prints a diagnostic to stderr.
pub fn print(diag: impl miette::Diagnostic + Send + Sync + 'static) {
    eprintln!("{:?}", miette::Report::new(diag));
}

/// A plain error (file unreadable, bad flag combination) as a diagnostic.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{message}")]
#[diagnostic(code(kvlar::cli))]
pub struct CliError {
    pub message: String,
    #[help]
    pub help: Option<String>,
}

pub fn fail(message: impl Into<String>, help: Option<&str>) -> std::process::ExitCode {
    print(CliError {
        message: message.into(),
        help: help.map(str::to_string),
    });
    std::process::ExitCode::from(1)
}
