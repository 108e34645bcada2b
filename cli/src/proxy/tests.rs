//! Tests across the protocol layer.
