//! Query parsing and stripping: never panics; the stripped path keeps the path and only the
//! parts that are not credential or account parameters, in order; stripping is idempotent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::query::{
    first_key_param, is_stripped_param, normalize_name, params, strip_params,
};

fn parts(query: &str) -> Vec<&str> {
    query.split(['&', ';']).filter(|p| !p.is_empty()).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let query = input.split_once('?').map(|(_, q)| q);
    let _ = first_key_param(query);
    if let Some(q) = query {
        for (name, _) in params(q) {
            let _ = is_stripped_param(&name);
        }
    }
    let Some(out) = strip_params(input) else {
        // Nothing to strip: no part is a stripped name.
        if let Some(q) = query {
            for part in parts(q) {
                let name = part.split_once('=').map_or(part, |(n, _)| n);
                assert!(!is_stripped_param(&normalize_name(name)), "missed {part:?}");
            }
        }
        return;
    };
    let (path, _) = input.split_once('?').unwrap_or((input, ""));
    assert!(out.starts_with(path));
    let kept = out
        .get(path.len()..)
        .unwrap_or("")
        .strip_prefix('?')
        .unwrap_or("");
    let original = parts(query.unwrap_or(""));
    let mut rest = original.iter();
    for part in parts(kept) {
        let name = part.split_once('=').map_or(part, |(n, _)| n);
        assert!(!is_stripped_param(&normalize_name(name)), "kept {part:?}");
        assert!(
            rest.any(|p| *p == part),
            "{part:?} was not in the input, in order"
        );
    }
    assert_eq!(strip_params(&out), None, "not idempotent");
});
