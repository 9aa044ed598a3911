//! Every precedence case of slot extraction and provider identification
//! (original Worker §2.1 and §2.3, plus DESIGN.md's Bearer + `anthropic-version` rule).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
use common::head;
use ptk_filter_core::slots::{bearer_token, subprotocol_token};
use ptk_filter_core::{identify, Dialect, Slot};

type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<(&'static str, Dialect, Slot)>,
);

const CASES: &[Case] = &[
    (
        "x-api-key alone",
        &[(":path", "/v1/messages"), ("x-api-key", "A")],
        Some(("A", Dialect::Anthropic, Slot::XApiKey)),
    ),
    (
        "x-goog-api-key alone",
        &[
            (":path", "/v1beta/models/m:generateContent"),
            ("x-goog-api-key", "G"),
        ],
        Some(("G", Dialect::Gemini, Slot::XGoogApiKey)),
    ),
    (
        "bearer alone",
        &[
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "bearer on gemini openai path",
        &[
            (":path", "/v1beta/openai/chat/completions"),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::GeminiOpenai, Slot::Bearer)),
    ),
    (
        "gemini openai prefix needs trailing slash",
        &[(":path", "/v1beta/openai"), ("authorization", "Bearer B")],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "gemini openai prefix is case sensitive",
        &[
            (":path", "/V1BETA/openai/chat"),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "gemini openai prefix ignores the query",
        &[
            (":path", "/v1/chat?x=/v1beta/openai/"),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "bearer with anthropic-version",
        &[
            (":path", "/v1/messages"),
            ("authorization", "Bearer B"),
            ("anthropic-version", "2026-10-21"),
        ],
        Some(("B", Dialect::Anthropic, Slot::Bearer)),
    ),
    (
        "anthropic-version beats the gemini openai path",
        &[
            (":path", "/v1beta/openai/x"),
            ("authorization", "Bearer B"),
            ("anthropic-version", "2023-06-01"),
        ],
        Some(("B", Dialect::Anthropic, Slot::Bearer)),
    ),
    (
        "empty anthropic-version does not count",
        &[
            (":path", "/v1/messages"),
            ("authorization", "Bearer B"),
            ("anthropic-version", ""),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "query key alone",
        &[(":path", "/v1beta/models/m:generateContent?key=Q&alt=sse")],
        Some(("Q", Dialect::Gemini, Slot::QueryKey)),
    ),
    (
        "query key is percent-decoded",
        &[(":path", "/v1beta/m?key=a%2Fb")],
        Some(("a/b", Dialect::Gemini, Slot::QueryKey)),
    ),
    (
        "bearer beats query key",
        &[(":path", "/v1/chat?key=Q"), ("authorization", "Bearer B")],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "bearer beats query key on gemini openai path",
        &[
            (":path", "/v1beta/openai/chat?key=Q"),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::GeminiOpenai, Slot::Bearer)),
    ),
    (
        "x-api-key beats every other slot",
        &[
            (":path", "/v1/messages?key=Q"),
            ("authorization", "Bearer B"),
            ("x-goog-api-key", "G"),
            ("x-api-key", "A"),
        ],
        Some(("A", Dialect::Anthropic, Slot::XApiKey)),
    ),
    (
        "x-goog-api-key beats bearer and query",
        &[
            (":path", "/v1/x?key=Q"),
            ("authorization", "Bearer B"),
            ("x-goog-api-key", "G"),
        ],
        Some(("G", Dialect::Gemini, Slot::XGoogApiKey)),
    ),
    (
        "empty x-api-key falls through",
        &[
            (":path", "/v1/chat"),
            ("x-api-key", ""),
            ("authorization", "Bearer B"),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "empty x-goog-api-key falls through",
        &[(":path", "/v1/chat?key=Q"), ("x-goog-api-key", "")],
        Some(("Q", Dialect::Gemini, Slot::QueryKey)),
    ),
    (
        "basic auth is ignored and falls to the query",
        &[
            (":path", "/v1beta/m?key=Q"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ],
        Some(("Q", Dialect::Gemini, Slot::QueryKey)),
    ),
    (
        "basic auth alone is no token",
        &[
            (":path", "/v1/chat"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ],
        None,
    ),
    (
        "bearer scheme is case-insensitive and the token trimmed",
        &[(":path", "/v1/chat"), ("authorization", "bEaReR \t tok  ")],
        Some(("tok", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "bearer without a token",
        &[(":path", "/v1/chat"), ("authorization", "Bearer   ")],
        None,
    ),
    (
        "bearer glued to the token",
        &[(":path", "/v1/chat"), ("authorization", "Bearertok")],
        None,
    ),
    (
        "x-api-key kept verbatim (not trimmed)",
        &[(":path", "/v1/messages"), ("x-api-key", " A ")],
        Some((" A ", Dialect::Anthropic, Slot::XApiKey)),
    ),
    (
        "empty query key is no token",
        &[(":path", "/v1beta/m?key=")],
        None,
    ),
    ("nothing at all", &[(":path", "/v1/chat/completions")], None),
    (
        "subprotocol ignored without an upgrade",
        &[
            (":path", "/v1/realtime"),
            (
                "sec-websocket-protocol",
                "realtime, openai-insecure-api-key.S",
            ),
        ],
        None,
    ),
    (
        "subprotocol on an upgrade",
        &[
            (":path", "/v1/realtime?model=m"),
            ("upgrade", "websocket"),
            (
                "sec-websocket-protocol",
                "realtime, openai-insecure-api-key.S, openai-beta.realtime-v1",
            ),
        ],
        Some(("S", Dialect::Openai, Slot::Subprotocol)),
    ),
    (
        "subprotocol is openai even on the gemini openai path",
        &[
            (":path", "/v1beta/openai/realtime"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "openai-insecure-api-key.S"),
        ],
        Some(("S", Dialect::Openai, Slot::Subprotocol)),
    ),
    (
        "query key beats subprotocol on an upgrade",
        &[
            (":path", "/ws/x?key=Q"),
            ("upgrade", "websocket"),
            ("sec-websocket-protocol", "openai-insecure-api-key.S"),
        ],
        Some(("Q", Dialect::Gemini, Slot::QueryKey)),
    ),
    (
        "header slots work on upgrades",
        &[
            (":path", "/v1/realtime"),
            ("upgrade", "websocket"),
            ("authorization", "Bearer B"),
            (
                "sec-websocket-protocol",
                "realtime, openai-insecure-api-key.S",
            ),
        ],
        Some(("B", Dialect::Openai, Slot::Bearer)),
    ),
    (
        "x-goog-api-key on a Live upgrade",
        &[
            (
                ":path",
                "//ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent",
            ),
            ("upgrade", "websocket"),
            ("x-goog-api-key", "G"),
        ],
        Some(("G", Dialect::Gemini, Slot::XGoogApiKey)),
    ),
    (
        "empty subprotocol token",
        &[
            (":path", "/v1/realtime"),
            ("upgrade", "websocket"),
            (
                "sec-websocket-protocol",
                "realtime, openai-insecure-api-key.",
            ),
        ],
        None,
    ),
];

#[test]
fn identification_table() {
    for (name, pairs, want) in CASES {
        let got = identify(&head(pairs)).map(|i| (i.token.clone(), i.dialect, i.slot));
        let want = want.map(|(t, r, s)| (t.to_string(), r, s));
        assert_eq!(got, want, "case: {name}");
    }
}

#[test]
fn bearer_parsing() {
    assert_eq!(bearer_token("Bearer x"), Some("x"));
    assert_eq!(bearer_token("BEARER\tx y "), Some("x y"));
    assert_eq!(bearer_token("Bearer"), None);
    assert_eq!(bearer_token("Token x"), None);
    assert_eq!(bearer_token("Beärer x"), None);
    assert_eq!(bearer_token(""), None);
}

#[test]
fn subprotocol_parsing() {
    assert_eq!(
        subprotocol_token("a, openai-insecure-api-key.T ,b"),
        Some("T")
    );
    assert_eq!(subprotocol_token(",,openai-insecure-api-key.T"), Some("T"));
    assert_eq!(subprotocol_token("Openai-insecure-api-key.T"), None);
    assert_eq!(subprotocol_token("realtime"), None);
}

#[test]
fn debug_output_never_shows_the_token() {
    let found = identify(&head(&[("authorization", "Bearer ptk_secret_sentinel")])).unwrap();
    assert!(!format!("{found:?}").contains("ptk_secret_sentinel"));
}
