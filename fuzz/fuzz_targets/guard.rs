//! The whole pipeline on arbitrary heads, on every forwarding path (a token checked, fresh or
//! cached; the Gemini Live pass-through; an OpenAI client-secret use; a keyless upload leg).
//! Whenever the core forwards: nothing shaped like a generated token (`ptk_` and 32 URL-safe
//! characters) is anywhere upstream, raw or decoded; on a token's path, no credential value
//! the client sent (at least 12 bytes) is either, and the real key is there exactly once. All
//! checked the slow way, independently of the guard's own code. And the guard's work stays
//! within its linear bound (`guard::Cost`) whatever the head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ptk_filter_core::credentials::{for_each_value, MAX_GUARDED_BYTES, MIN_GUARDED_LEN};
use ptk_filter_core::guard::{
    inspect, outbound, Sought, MAX_COPIES, MAX_FORMS, MAX_OUTBOUND_BYTES,
};
use ptk_filter_core::{decide_headers, FilterConfig, HeadersDecision, RewritePlan};
use ptk_fuzz::{head_from_bytes, holds_token_shape, occurs};
use ptk_wire::Provider;

const KEY: &str = "sk-FUZZ-real-key-000";

fuzz_target!(|data: &[u8]| {
    let (switch, rest) = data.split_first().unwrap_or((&0, data));
    let config = if switch & 1 == 1 {
        FilterConfig::parse(br#"{"ephemeral":{"pass_through":true}}"#)
    } else {
        FilterConfig::parse(b"")
    };
    let Ok(config) = config else {
        return;
    };
    let head = head_from_bytes(rest);
    let (plan, token): (RewritePlan, Option<String>) = match decide_headers(&config, &head) {
        HeadersDecision::Check(pending) => {
            let Ok(plan) = pending.allow(&config, &head, KEY) else {
                return;
            };
            (plan, Some(pending.identified.token.clone()))
        }
        HeadersDecision::Passthrough(plan) => (plan, None),
        HeadersDecision::ClientSecret(secret) => {
            let Ok(plan) = secret.allow(&head, config.upstream(Provider::Openai)) else {
                return;
            };
            (plan, None)
        }
        HeadersDecision::UploadLeg(leg) => {
            let authority = &config.upstream(Provider::Gemini).authority;
            let Ok(plan) = leg.allow(&head, authority) else {
                return;
            };
            (plan, None)
        }
        HeadersDecision::Preflight(_) | HeadersDecision::Reply(_) => return,
    };
    let up: Vec<(&str, &str)> = outbound(&head, &plan).collect();
    for (name, value) in &up {
        assert!(
            !holds_token_shape(name, false) && !holds_token_shape(value, *name == ":path"),
            "a generated token went upstream in {name}: {value:?}"
        );
    }
    // The guard's work on this head, on the path it took: within the linear bound.
    let sought = match &token {
        Some(t) => Sought::Slots(Some(t)),
        None => Sought::Shape,
    };
    let cost = inspect(&head, &plan, sought).cost;
    assert!(cost.forms <= MAX_FORMS * cost.texts, "{cost:?}");
    assert!(cost.searched <= MAX_FORMS * cost.outbound, "{cost:?}");
    assert!(cost.decoded <= MAX_COPIES * cost.outbound, "{cost:?}");
    assert!(cost.needles <= MAX_GUARDED_BYTES, "{cost:?}");
    assert!(cost.outbound <= MAX_OUTBOUND_BYTES || cost.searched == 0, "{cost:?}");
    let Some(token) = token else {
        return;
    };
    let mut secrets = vec![token];
    for_each_value(&head, |_, value| {
        secrets.push(value.trim().to_string());
        if let Some((_, after)) = value.trim().split_once(char::is_whitespace) {
            secrets.push(after.trim().to_string());
        }
    });
    for secret in secrets.iter().filter(|s| s.len() >= MIN_GUARDED_LEN) {
        for (name, value) in &up {
            let found = occurs(name, secret, false) || occurs(value, secret, *name == ":path");
            assert!(
                !found,
                "a credential went upstream in {name}: {secret:?} in {value:?}"
            );
        }
    }
    let keys: usize = up.iter().map(|(_, v)| v.matches(KEY).count()).sum();
    assert_eq!(keys, 1, "the real key must be upstream exactly once");
});
