//! Ephemeral detection: never panics; off never passes; a pass means every credential value
//! of every slot is a Google ephemeral token in its SDK form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::config::EphemeralConfig;
use ptk_filter_core::credentials::{for_each_value, Place};
use ptk_filter_core::ephemeral::{pass_through, GEMINI_PREFIX, LIVE_PATH_MARKER};
use ptk_fuzz::head_from_bytes;

fuzz_target!(|data: &[u8]| {
    let head = head_from_bytes(data);
    assert_eq!(
        pass_through(
            &EphemeralConfig {
                pass_through: false
            },
            &head
        ),
        None
    );
    if pass_through(&EphemeralConfig { pass_through: true }, &head).is_none() {
        return;
    }
    assert!(head.is_websocket_upgrade() && head.path().contains(LIVE_PATH_MARKER));
    let mut any = false;
    for_each_value(&head, |place, value| {
        any = true;
        let token = match place {
            Place::Header("authorization") => value.get(6..).unwrap_or(""),
            _ => &value,
        };
        assert!(
            token.starts_with(GEMINI_PREFIX),
            "{place:?} passed a non-ephemeral value"
        );
        assert!(
            !token.contains(|c: char| c.is_whitespace() || c == ','),
            "{place:?}"
        );
    });
    assert!(any);
});
