//! Shared helpers for the filter-core table tests.
#![allow(dead_code)]

use ptk_filter_core::RequestHead;

/// Builds a request head from `(name, value)` pairs.
pub fn head(pairs: &[(&str, &str)]) -> RequestHead {
    RequestHead::new(
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    )
}
