//! Provider errors on forwarded requests: the rule per provider and status, Gemini's invalid
//! key, and fragments of the real key in any other error (issue 10, item 14).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ptk_filter_core::key_fragments;
use ptk_filter_core::upstream_errors::{ask_identity, drop_extensions, key_in_plan, mask_frames};
use ptk_filter_core::upstream_errors::{
    gemini_key_refused, masked_headers, on_body, on_headers, BodyVerdict, Forwarded,
    HeadersVerdict, Rewritten, CODE, MESSAGE,
};
use ptk_filter_core::ws_frames::FrameScanner;
use ptk_filter_core::{identify, Dialect, LocalReply};

mod common;
use serde_json::Value;

const KEY: &str = "sk-proj-Xq7vB2nLp9RtY4wZk8HsD3fGj6INEL";
const DIALECTS: [Dialect; 4] = [
    Dialect::Openai,
    Dialect::Anthropic,
    Dialect::Gemini,
    Dialect::GeminiOpenai,
];

fn fwd(dialect: Dialect) -> Forwarded {
    Forwarded {
        dialect,
        websocket: false,
        origin: None,
    }
}

fn header<'a>(reply: &'a LocalReply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Gemini's answer to an invalid key, as the API sends it.
const GEMINI_INVALID_KEY: &str = r#"{
  "error": {
    "code": 400,
    "message": "API key not valid. Please pass a valid API key.",
    "status": "INVALID_ARGUMENT",
    "details": [
      {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {
          "service": "generativelanguage.googleapis.com"
        }
      },
      {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": "API key not valid. Please pass a valid API key."
      }
    ]
  }
}
"#;

const GEMINI_BAD_MODEL: &str = r#"{"error":{"code":400,"message":"* GenerateContentRequest.model: unexpected model name format\n","status":"INVALID_ARGUMENT"}}"#;

#[test]
fn successes_are_never_looked_at() {
    for dialect in DIALECTS {
        for status in [100, 101, 200, 201, 204, 206, 301, 304, 399] {
            assert_eq!(
                on_headers(&fwd(dialect), status, Some("application/json")),
                HeadersVerdict::Pass,
                "{dialect:?} {status}"
            );
        }
    }
}

#[test]
fn a_401_or_403_is_answered_in_the_providers_shape_with_its_status() {
    for dialect in DIALECTS {
        for status in [401u16, 403] {
            let HeadersVerdict::Replace(reply) = on_headers(&fwd(dialect), status, None) else {
                panic!("{dialect:?} {status} not replaced");
            };
            assert_eq!(reply.status, status);
            assert_eq!(header(&reply, "content-type"), Some("application/json"));
            assert_eq!(header(&reply, "access-control-allow-origin"), None);
            let body: Value = serde_json::from_slice(&reply.body).unwrap();
            match dialect {
                Dialect::Openai | Dialect::GeminiOpenai => {
                    let e = &body["error"];
                    assert_eq!(e["message"], MESSAGE);
                    assert_eq!(e["code"], CODE);
                    assert!(e["param"].is_null());
                    let kind = if status == 401 {
                        "invalid_request_error"
                    } else {
                        "permission_error"
                    };
                    assert_eq!(e["type"], kind);
                }
                Dialect::Anthropic => {
                    assert_eq!(body["type"], "error");
                    let kind = if status == 401 {
                        "authentication_error"
                    } else {
                        "permission_error"
                    };
                    assert_eq!(body["error"]["type"], kind);
                    assert_eq!(body["error"]["message"], MESSAGE);
                }
                Dialect::Gemini => {
                    assert_eq!(body["error"]["code"], status);
                    let kind = if status == 401 {
                        "UNAUTHENTICATED"
                    } else {
                        "PERMISSION_DENIED"
                    };
                    assert_eq!(body["error"]["status"], kind);
                    assert_eq!(body["error"]["message"], MESSAGE);
                }
            }
        }
    }
}

#[test]
fn a_replacement_is_cors_decorated_for_a_page() {
    let mut f = fwd(Dialect::Openai);
    f.origin = Some("https://app.example".to_string());
    let HeadersVerdict::Replace(reply) = on_headers(&f, 401, None) else {
        panic!("not replaced");
    };
    assert_eq!(
        header(&reply, "access-control-allow-origin"),
        Some("https://app.example")
    );
    let exposed = header(&reply, "access-control-expose-headers").unwrap();
    assert!(exposed.split(", ").any(|n| n == "retry-after"));
}

#[test]
fn a_refused_websocket_handshake_gets_plain_text() {
    for dialect in DIALECTS {
        let f = Forwarded {
            dialect,
            websocket: true,
            origin: None,
        };
        for status in [401u16, 403] {
            let HeadersVerdict::Replace(reply) = on_headers(&f, status, None) else {
                panic!("{dialect:?} {status}");
            };
            assert_eq!(reply.status, status);
            assert_eq!(reply.body, MESSAGE.as_bytes());
            assert_eq!(
                header(&reply, "content-type"),
                Some("text/plain; charset=utf-8")
            );
        }
    }
}

#[test]
fn other_errors_are_read_and_event_streams_are_not_held() {
    for dialect in DIALECTS {
        for status in [
            400u16, 402, 404, 408, 409, 413, 422, 429, 500, 502, 503, 529,
        ] {
            assert_eq!(
                on_headers(&fwd(dialect), status, Some("application/json")),
                HeadersVerdict::Inspect { hold: true }
            );
            assert_eq!(
                on_headers(
                    &fwd(dialect),
                    status,
                    Some("Text/Event-Stream; charset=utf-8")
                ),
                HeadersVerdict::Inspect { hold: false }
            );
        }
    }
}

#[test]
fn geminis_invalid_key_400_is_a_credential_refusal_in_the_dialects_shape() {
    let body = GEMINI_INVALID_KEY.as_bytes();
    assert!(gemini_key_refused(body));
    // Without a content-length: the shaped body exactly.
    let BodyVerdict::Rewrite { body: out, class } =
        on_body(&fwd(Dialect::Gemini), 400, body, KEY, true, false)
    else {
        panic!("not rewritten");
    };
    assert_eq!(class, Rewritten::CredentialRefused);
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], 400);
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(v["error"]["message"], MESSAGE);
    // With one: the same length, still valid JSON.
    let BodyVerdict::Rewrite { body: out, .. } =
        on_body(&fwd(Dialect::Gemini), 400, body, KEY, true, true)
    else {
        panic!("not rewritten");
    };
    assert_eq!(out.len(), body.len());
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["message"], MESSAGE);
    // The OpenAI-compatible endpoint's clients are OpenAI SDKs, and Gemini's streaming form
    // is an array.
    let array = format!("[{}]", GEMINI_INVALID_KEY.trim());
    let BodyVerdict::Rewrite { body: out, .. } = on_body(
        &fwd(Dialect::GeminiOpenai),
        400,
        array.as_bytes(),
        KEY,
        true,
        false,
    ) else {
        panic!("not rewritten");
    };
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["error"]["code"], CODE);
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[test]
fn a_short_announced_length_takes_a_shorter_message() {
    let tight = r#"{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT","details":[{"reason":"API_KEY_INVALID"}]}}"#;
    let BodyVerdict::Rewrite { body: out, class } = on_body(
        &fwd(Dialect::Gemini),
        400,
        tight.as_bytes(),
        KEY,
        true,
        true,
    ) else {
        panic!("not rewritten");
    };
    assert_eq!(class, Rewritten::CredentialRefused);
    assert_eq!(out.len(), tight.len());
    let v: Value = serde_json::from_slice(&out).unwrap();
    assert_ne!(v["error"]["message"], "x");
    // Too short for any message: passed (it holds no key).
    let tiny = r#"[{"error":{"details":[{"reason":"API_KEY_INVALID"}]}}]"#;
    assert_eq!(
        on_body(&fwd(Dialect::Gemini), 400, tiny.as_bytes(), KEY, true, true),
        BodyVerdict::Pass
    );
}

#[test]
fn unrelated_errors_pass_untouched() {
    let cases: [(Dialect, u16, &str); 5] = [
        (Dialect::Gemini, 400, GEMINI_BAD_MODEL),
        // The API_KEY_ rule is Gemini's only.
        (Dialect::Openai, 400, GEMINI_INVALID_KEY),
        (Dialect::Anthropic, 400, GEMINI_INVALID_KEY),
        (
            Dialect::Openai,
            429,
            r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, Used 29000.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#,
        ),
        (
            Dialect::Anthropic,
            529,
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        ),
    ];
    for (dialect, status, body) in cases {
        assert_eq!(
            on_body(&fwd(dialect), status, body.as_bytes(), KEY, true, true),
            BodyVerdict::Pass,
            "{dialect:?} {status}"
        );
    }
    // A Gemini 400 seen only in pieces is never replaced.
    assert_eq!(
        on_body(
            &fwd(Dialect::Gemini),
            400,
            GEMINI_INVALID_KEY.as_bytes(),
            KEY,
            false,
            true
        ),
        BodyVerdict::Pass
    );
}

#[test]
fn any_error_quoting_the_key_is_masked_in_place() {
    let tail = &KEY[KEY.len() - 4..];
    let bodies = [
        format!(
            r#"{{"error":{{"message":"Quota exceeded for key sk-proj-***{tail}.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}}}"#
        ),
        format!(r#"{{"error":{{"message":"bad key {KEY}"}}}}"#),
        format!(r#"{{"error":{{"message":"key begins {}…"}}}}"#, &KEY[..24]),
    ];
    for dialect in DIALECTS {
        for status in [400u16, 404, 429, 500] {
            for body in &bodies {
                let BodyVerdict::Rewrite { body: out, class } =
                    on_body(&fwd(dialect), status, body.as_bytes(), KEY, true, true)
                else {
                    panic!("{dialect:?} {status}: {body}");
                };
                assert_eq!(class, Rewritten::FragmentMasked);
                assert_eq!(out.len(), body.len());
                assert!(!key_fragments::contains(&out, KEY));
                assert!(!String::from_utf8_lossy(&out).contains(tail));
                // Everything else is byte for byte.
                let same = out
                    .iter()
                    .zip(body.as_bytes())
                    .filter(|(a, b)| a == b)
                    .count();
                assert!(
                    same >= body.len() - KEY.len(),
                    "{}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }
}

#[test]
fn header_values_quoting_the_key_are_masked() {
    let headers = vec![
        (":status".to_string(), "429".to_string()),
        ("x-request-id".to_string(), "req_123".to_string()),
        (
            "x-debug".to_string(),
            format!("key=sk-proj-****{}", &KEY[KEY.len() - 5..]),
        ),
    ];
    let changed = masked_headers(&headers, KEY);
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].0, "x-debug");
    assert!(!changed[0].1.contains("INEL"));
}

/// Many keys and many printed forms: whatever a provider prints of the key's tail after a mask,
/// or of its middle verbatim, never survives.
#[test]
fn fragments_of_random_keys_never_survive() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let masks = [
        "*",
        "***",
        "...",
        "\u{2026}",
        "\u{2022}\u{2022}",
        "\\u2026",
        "*****.",
    ];
    for _ in 0..400 {
        let len = 20 + (next() % 150) as usize;
        let prefix = ["sk-proj-", "sk-ant-api03-", "AIza", "sk-"][(next() % 4) as usize];
        let mut key = prefix.to_string();
        while key.len() < len {
            key.push(ALPHABET[(next() % 62) as usize] as char);
        }
        let shown = 4 + (next() % 6) as usize;
        let mask = masks[(next() % masks.len() as u64) as usize];
        let start = (next() % (key.len() as u64 - 16)) as usize;
        let forms = [
            format!(
                "{}{mask}{}",
                &key[..prefix.len()],
                &key[key.len() - shown..]
            ),
            format!(
                "{}{mask}{}",
                &key[..prefix.len() + 4],
                &key[key.len() - shown..]
            ),
            key[start..start + 16].to_string(),
            key.clone(),
        ];
        for form in forms {
            let text = format!(
                r#"{{"error":{{"message":"Incorrect API key provided: {form}. See docs."}}}}"#
            );
            let mut out = text.clone().into_bytes();
            assert!(key_fragments::mask(&mut out, &key) > 0, "{key} {text}");
            let out = String::from_utf8(out).unwrap();
            assert_eq!(out.len(), text.len());
            assert!(!out.contains(&key[key.len() - 4..]), "{key}: {out}");
            assert!(out.ends_with(". See docs.\"}}"), "{out}");
        }
    }
}

#[test]
fn the_key_is_found_in_every_dialects_plan() {
    let cases: [&[(&str, &str)]; 5] = [
        &[
            (":path", "/v1/chat/completions"),
            ("authorization", "Bearer ptk_aaaaaaaaaaaaaaaa"),
        ],
        &[
            (":path", "/v1/messages"),
            ("x-api-key", "ptk_aaaaaaaaaaaaaaaa"),
        ],
        &[
            (":path", "/v1/messages"),
            ("authorization", "Bearer ptk_aaaaaaaaaaaaaaaa"),
            ("anthropic-version", "2023-06-01"),
        ],
        &[
            (":path", "/v1beta/models/m:generateContent"),
            ("x-goog-api-key", "ptk_aaaaaaaaaaaaaaaa"),
        ],
        &[
            (":path", "/v1beta/openai/chat/completions"),
            ("authorization", "Bearer ptk_aaaaaaaaaaaaaaaa"),
        ],
    ];
    for pairs in cases {
        let head = common::head(pairs);
        let identified = identify(&head).unwrap();
        let upstream = ptk_filter_core::config::ProviderConfig {
            authority: "upstream".to_string(),
            request_headers: Vec::new(),
            stream_usage: false,
            geo_fallback: None,
        };
        let plan = ptk_filter_core::plan::rewrite_plan(&head, &identified, KEY, &upstream);
        assert_eq!(key_in_plan(&plan), Some(KEY), "{pairs:?}");
    }
}

#[test]
fn providers_are_asked_for_identity_when_the_client_accepts_a_coding() {
    for (accept, ask) in [
        (None, false),
        (Some(""), false),
        (Some("identity"), false),
        (Some(" Identity "), false),
        (Some("gzip, deflate"), true),
        (Some("br"), true),
        (Some("gzip;q=1.0, identity;q=0.5"), true),
        (Some("*"), true),
    ] {
        assert_eq!(ask_identity(accept), ask, "{accept:?}");
    }
}

#[test]
fn an_accepted_websocket_has_its_first_frames_searched() {
    let ws = Forwarded {
        dialect: Dialect::Openai,
        websocket: true,
        origin: None,
    };
    assert_eq!(on_headers(&ws, 101, None), HeadersVerdict::Frames);
    assert_eq!(
        on_headers(&fwd(Dialect::Openai), 101, None),
        HeadersVerdict::Pass
    );
    assert_eq!(on_headers(&ws, 200, None), HeadersVerdict::Pass);
}

/// OpenAI's Realtime API after accepting the upgrade of a refused key: an error event quoting
/// it masked, then a close; cut anywhere, every frame stays valid and the tail is gone.
#[test]
fn a_realtime_error_event_is_masked_inside_its_frame() {
    let event = format!(
        r#"{{"type":"error","error":{{"type":"invalid_request_error","code":"invalid_api_key","message":"Incorrect API key provided: sk-proj-********{}."}}}}"#,
        &KEY[KEY.len() - 4..]
    );
    let mut stream = vec![0x81, 126];
    stream.extend_from_slice(&(event.len() as u16).to_be_bytes());
    stream.extend_from_slice(event.as_bytes());
    let close = b"\x0b\xb8invalid_request_error.invalid_api_key";
    stream.extend_from_slice(&[0x88, close.len() as u8]);
    stream.extend_from_slice(close);
    for cut in [stream.len(), 3, 40, 150] {
        let mut scanner = FrameScanner::default();
        let mut out = Vec::new();
        for piece in [&stream[..cut], &stream[cut..]] {
            let mut chunk = piece.to_vec();
            mask_frames(&mut scanner, &mut chunk, KEY);
            out.extend(chunk);
        }
        assert_eq!(out.len(), stream.len());
        assert_eq!(&out[..4], &stream[..4], "the frame header is untouched");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains(&KEY[KEY.len() - 4..]), "cut {cut}: {text}");
        assert!(text.contains("invalid_request_error.invalid_api_key"));
    }
}

#[test]
fn extensions_are_dropped_from_forwarded_handshakes_only() {
    assert!(drop_extensions(true, Some("permessage-deflate")));
    assert!(!drop_extensions(true, None));
    assert!(!drop_extensions(false, Some("permessage-deflate")));
}
