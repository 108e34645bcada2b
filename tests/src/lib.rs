//! Shared helpers for the cross-crate tests.
#![forbid(unsafe_code)]

pub mod reference;
