//! Slot identification: never panics; a found token is non-empty and sits in the slot named.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::query::first_key_param;
use ptk_filter_core::slots::{bearer_token, subprotocol_token};
use ptk_filter_core::{identify, Slot};
use ptk_fuzz::head_from_bytes;

fuzz_target!(|data: &[u8]| {
    let head = head_from_bytes(data);
    for value in head.all("authorization") {
        if let Some(token) = bearer_token(value) {
            assert!(!token.is_empty() && value.contains(token));
        }
    }
    let Some(found) = identify(&head) else {
        return;
    };
    assert!(!found.token.is_empty());
    let in_slot = match found.slot {
        Slot::XApiKey => head.header("x-api-key") == Some(found.token.as_str()),
        Slot::XGoogApiKey => head.header("x-goog-api-key") == Some(found.token.as_str()),
        Slot::Bearer => {
            head.header("authorization").and_then(bearer_token) == Some(found.token.as_str())
        }
        Slot::QueryKey => first_key_param(head.query()).as_deref() == Some(found.token.as_str()),
        Slot::Subprotocol => {
            head.is_websocket_upgrade()
                && head
                    .all("sec-websocket-protocol")
                    .find_map(subprotocol_token)
                    == Some(found.token.as_str())
        }
    };
    assert!(in_slot, "token not in its slot {:?}", found.slot);
    // Debug output never shows the token.
    assert!(found.token.len() < 12 || !format!("{found:?}").contains(&found.token));
});
