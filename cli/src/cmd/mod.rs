//! One module per subcommand.
pub mod compile;
pub mod eval;
pub mod explain;
