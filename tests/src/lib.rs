//! Shared helpers for the cross-crate tests.
#![forbid(unsafe_code)]

pub mod fuzz;
pub mod reference;

/// The proxy's line classification (`cli/src/proxy/classify.rs`, pure: serde
/// only), compiled here as well so the fuzz harnesses can reach it without
/// the `kvlar` binary crate.
#[doc(hidden)]
#[path = "../../cli/src/proxy/classify.rs"]
pub mod proxy_classify;
