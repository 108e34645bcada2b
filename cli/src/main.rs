//! `kvlar`: the command-line entry points — `compile`, `eval`, `explain`, `proxy`.
#![forbid(unsafe_code)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cmd;
mod input;
mod policy_load;
mod proxy;
mod report;
mod testfile;
mod trace_view;

/// Kvlar: a firewall for AI-agent tool calls.
///
/// Policies (YAML) are compiled to verified bytecode; the VM decides allow,
/// deny or require_approval for every MCP `tools/call`.
#[derive(Parser)]
#[command(name = "kvlar", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile policies to bytecode; print diagnostics on error.
    Compile(cmd::compile::Args),
    /// Decide on calls, one JSON line in, one JSON line out.
    Eval(cmd::eval::Args),
    /// Decide on one call and show why, rule by rule.
    Explain(cmd::explain::Args),
    /// Run an MCP server behind the firewall (stdio).
    Proxy(proxy::ProxyArgs),
    /// Find shadowed, unreachable and risky rules.
    Lint(cmd::lint::Args),
    /// Ask an MCP server for its tools (the file `lint --tools` reads).
    Tools(cmd::tools::Args),
    /// Put an MCP client's servers behind `kvlar proxy` (rewrites its config).
    Wrap(cmd::wrap::Args),
    /// Undo `kvlar wrap`: restore the servers' original commands.
    Unwrap(cmd::wrap::UnwrapArgs),
    /// Run policy test files (`*.test.yaml`).
    Test(cmd::test::Args),
    /// Write a starter policy and its test file from a template.
    Init(cmd::init::Args),
    /// Print the JSON Schema of the policy format (for editors).
    Schema(cmd::schema::Args),
}

fn main() -> ExitCode {
    report::install_hook();
    let cli = Cli::parse();
    match cli.command {
        Command::Compile(a) => cmd::compile::run(a),
        Command::Eval(a) => cmd::eval::run(a),
        Command::Explain(a) => cmd::explain::run(a),
        Command::Proxy(a) => proxy::run(a),
        Command::Lint(a) => cmd::lint::run(a),
        Command::Tools(a) => cmd::tools::run(a),
        Command::Wrap(a) => cmd::wrap::run(a),
        Command::Unwrap(a) => cmd::wrap::run_unwrap(a),
        Command::Test(a) => cmd::test::run(a),
        Command::Init(a) => cmd::init::run(a),
        Command::Schema(a) => cmd::schema::run(a),
    }
}
