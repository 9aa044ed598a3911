//! Subprotocol parsing and cleaning: never panics; the cleaned offer holds no key,
//! organization or project entry, and only entries of the input, in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::subprotocol::{clean, entries, is_dropped, needs_cleaning, token, KEY_PREFIX};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(t) = token(offer) {
        assert!(!t.is_empty() && offer.contains(&format!("{KEY_PREFIX}{t}")));
    }
    match clean(offer) {
        Some(cleaned) => {
            let mut rest = entries(offer);
            for entry in entries(&cleaned) {
                assert!(!is_dropped(entry), "kept {entry:?}");
                assert!(
                    rest.any(|e| e == entry),
                    "{entry:?} not in the offer, in order"
                );
            }
            assert!(!needs_cleaning(&cleaned));
            assert_eq!(clean(&cleaned).as_deref(), Some(cleaned.as_str()));
        }
        None => assert!(entries(offer).all(is_dropped)),
    }
});
