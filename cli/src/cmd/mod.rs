//! One module per subcommand.
pub mod compile;
pub mod eval;
pub mod explain;
pub mod init;
pub mod lint;
pub mod schema;
pub mod test;
pub mod tools;
pub mod wrap;
