//! A limited token's model allow-list through the contexts: the hold mark (limited tokens on
//! body routes only), the held body read whole however it is split, escapes and duplicate
//! keys, fresh checks and cached verdicts alike, a `POST` without a body, the filter's own
//! 403 left as it is by its response watches, and the refusal without the hold filter.

use super::*;
use crate::flow::{Action, Root, Stream};
use crate::models::HOLD_HEADER;
use ptk_wire::Limits;

/// The plugin configuration `render_envoy.py` writes: the hold filter is installed.
const HOLD: &str = r#"{"limits": {"body_hold": true}}"#;

fn pairs(head: &[(&str, &str)]) -> Vec<(String, String)> {
    head.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn root(config: &str, host: &mut FakeHost) -> Root {
    let mut root = Root::new(1);
    let env = |name: &str| (name == "PTK_CHECK_SECRET").then(|| "check-secret-0123456789".into());
    assert!(root.configure(host, config.as_bytes(), env));
    root
}

/// An allow whose limits are `models` (`None`: a plain allow), cached with a lease.
fn allow_models(models: Option<&[&str]>) -> Vec<u8> {
    serde_json::to_vec(&CheckResponse::Allow {
        key: KEY.into(),
        cache_ttl_ms: 60_000,
        lease: Some(Lease {
            units: 10,
            window: 1,
        }),
        limits: models.map(|m| Limits {
            models: Some(m.iter().map(|s| (*s).to_string()).collect()),
            ..Limits::default()
        }),
        pool: Vec::new(),
    })
    .unwrap()
}

/// OpenAI chat completions, Bearer [`TOKEN`].
fn chat() -> Vec<(String, String)> {
    let auth = format!("Bearer {TOKEN}");
    pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "proxy.local"),
        ("authorization", &auth),
    ])
}

/// The request `head` (`end`: no body follows) on a new stream of `root`, its check answered
/// with `answer` when it calls out: the action the headers ended with.
fn headers(
    root: &Root,
    host: &mut FakeHost,
    head: Vec<(String, String)>,
    end: bool,
    answer: &[u8],
) -> (Stream, Action) {
    let mut stream = root.stream(7);
    host.ctx.request = Some(head);
    let before = host.sent.len();
    let action = stream.on_request_headers(host, end);
    if host.sent.len() == before {
        return (stream, action);
    }
    assert_eq!(action, Action::Pause);
    host.ctx.answer = (Some("200".into()), Some(answer.to_vec()));
    let token = host.last_token();
    stream.on_callout_response(host, token, answer.len());
    let action = if host.replies.is_empty() {
        Action::Continue
    } else {
        Action::Pause
    };
    (stream, action)
}

/// Whether the request was marked for the hold filter.
fn marked(host: &FakeHost) -> bool {
    host.edits
        .iter()
        .any(|(n, v)| n == HOLD_HEADER && v.as_deref() == Some("1"))
}

/// Streams `chunks` of the body (Envoy buffers what ptk pauses on, so each call sees all of
/// it so far): the action of each chunk.
fn body(host: &mut FakeHost, stream: &mut Stream, chunks: &[&[u8]]) -> Vec<Action> {
    let mut buffered = Vec::new();
    let mut actions = Vec::new();
    for (n, chunk) in chunks.iter().enumerate() {
        buffered.extend_from_slice(chunk);
        host.request_body = buffered.clone();
        let end = n + 1 == chunks.len();
        let action = stream.on_request_body(host, buffered.len(), end);
        if action == Action::Continue {
            buffered.clear();
        }
        actions.push(action);
    }
    actions
}

/// The error code of the one local reply sent.
fn refused_code(host: &FakeHost) -> String {
    assert_eq!(host.replies.len(), 1, "one reply");
    assert_eq!(host.replies[0].status, 403);
    let json: serde_json::Value = serde_json::from_slice(&host.replies[0].body).unwrap();
    json["error"]["code"].as_str().unwrap().to_string()
}

fn count(root: &Root, refusal: Refusal) -> u64 {
    refused(root.worker.as_ref().unwrap(), refusal)
}

#[test]
fn a_fresh_check_and_a_cached_verdict_both_hold_and_decide_on_the_body() {
    let mut host = FakeHost::new();
    let root = root(HOLD, &mut host);
    let limited = allow_models(Some(&["gpt-5*"]));
    // Cache miss: checked, forwarded marked, the body decides.
    let (mut stream, action) = headers(&root, &mut host, chat(), false, &limited);
    assert_eq!(action, Action::Continue);
    assert!(marked(&host) && sent_key(&host));
    let ok = body(&mut host, &mut stream, &[br#"{"model":"gpt-5-mini"}"#]);
    assert_eq!(ok, [Action::Continue]);
    assert!(host.replies.is_empty());
    // Cache hit: no callout, marked again, and a refused model is answered from the body.
    let sent = host.sent.len();
    host.edits.clear();
    let (mut stream, action) = headers(&root, &mut host, chat(), false, &limited);
    assert_eq!((action, host.sent.len()), (Action::Continue, sent));
    assert!(marked(&host), "a cached verdict's request is held too");
    let refused = body(&mut host, &mut stream, &[br#"{"model":"gpt-4o"}"#]);
    assert_eq!(refused, [Action::Pause]);
    assert_eq!(refused_code(&host), "model_not_allowed");
    assert_eq!(count(&root, Refusal::ModelNotAllowed), 1);
}

#[test]
fn every_split_of_the_body_is_read_whole() {
    let allowed: &[u8] = br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-5"}"#;
    let refused: &[u8] = br#"{"messages":[{"role":"user","content":"hi"}],"model":"gpt-4o"}"#;
    for (whole, allow) in [(allowed, true), (refused, false)] {
        for at in 0..=whole.len() {
            let mut host = FakeHost::new();
            let root = root(HOLD, &mut host);
            let limited = allow_models(Some(&["gpt-5"]));
            let (mut stream, _) = headers(&root, &mut host, chat(), false, &limited);
            let (a, b) = whole.split_at(at);
            let actions = body(&mut host, &mut stream, &[a, b]);
            assert_eq!(actions[0], Action::Pause, "held until the end (split {at})");
            let last = if allow {
                Action::Continue
            } else {
                Action::Pause
            };
            assert_eq!(actions[1], last, "split at {at}");
            assert_eq!(host.replies.is_empty(), allow, "split at {at}");
        }
    }
}

#[test]
fn a_body_ended_by_trailers_is_decided_at_the_trailers() {
    // HTTP/2 request trailers end the stream: the body's last chunk never says `end`.
    for (whole, allow) in [
        (&br#"{"model":"gpt-5"}"#[..], true),
        (&br#"{"model":"gpt-4o"}"#[..], false),
    ] {
        let mut host = FakeHost::new();
        let root = root(HOLD, &mut host);
        let limited = allow_models(Some(&["gpt-5"]));
        let (mut stream, _) = headers(&root, &mut host, chat(), false, &limited);
        let (a, b) = whole.split_at(5);
        host.request_body = a.to_vec();
        assert_eq!(
            stream.on_request_body(&mut host, a.len(), false),
            Action::Pause
        );
        host.request_body = whole.to_vec();
        assert_eq!(
            stream.on_request_body(&mut host, whole.len(), false),
            Action::Pause
        );
        assert!(host.replies.is_empty() && !b.is_empty());
        let action = stream.on_request_trailers(&mut host);
        let text = String::from_utf8_lossy(whole);
        if allow {
            assert_eq!(action, Action::Continue, "{text}");
            assert!(host.replies.is_empty(), "{text}");
        } else {
            assert_eq!(action, Action::Pause, "{text}");
            assert_eq!(refused_code(&host), "model_not_allowed", "{text}");
        }
    }
    // Trailers of a request nothing held pass.
    let mut host = FakeHost::new();
    let root = root(HOLD, &mut host);
    let (mut stream, _) = headers(&root, &mut host, chat(), false, &allow_models(None));
    host.request_body = br#"{"model":"gpt-4o"}"#.to_vec();
    assert_eq!(
        stream.on_request_body(&mut host, 18, false),
        Action::Continue
    );
    assert_eq!(stream.on_request_trailers(&mut host), Action::Continue);
    assert!(host.replies.is_empty());
}

#[test]
fn escapes_are_decoded_and_a_duplicate_model_is_refused() {
    let cases: [(&[u8], bool); 5] = [
        (br#"{"model":"gpt\u002d4o"}"#, true),
        (br#"{"mod\u0065l":"gpt-4o"}"#, true),
        (br#"{"mod\u0065l":"gpt-5"}"#, false),
        (br#"{"model":"gpt-4o","model":"gpt-5"}"#, false),
        (br#"{"model":"gpt-4o","mod\u0065l":"gpt-4o"}"#, false),
    ];
    for (whole, allow) in cases {
        let mut host = FakeHost::new();
        let root = root(HOLD, &mut host);
        let limited = allow_models(Some(&["gpt-4o"]));
        let (mut stream, _) = headers(&root, &mut host, chat(), false, &limited);
        body(&mut host, &mut stream, &[whole]);
        let text = String::from_utf8_lossy(whole);
        assert_eq!(host.replies.is_empty(), allow, "{text}");
        if !allow {
            assert_eq!(refused_code(&host), "model_not_allowed", "{text}");
        }
    }
}

#[test]
fn only_a_limited_tokens_request_on_a_body_route_is_marked() {
    let gemini = pairs(&[
        (":method", "POST"),
        (":path", "/v1beta/models/gemini-2.5-flash:generateContent"),
        (":authority", "proxy.local"),
        ("x-goog-api-key", TOKEN),
    ]);
    let mut models = chat();
    models[0].1 = "GET".into();
    models[1].1 = "/v1/models".into();
    let cases = [
        (chat(), None, false),
        (chat(), Some(["gpt-5*", "gemini-*"]), true),
        (models, Some(["gpt-5*", "gemini-*"]), false),
        (gemini, Some(["gpt-5*", "gemini-*"]), false),
    ];
    for (head, models, want) in cases {
        let mut host = FakeHost::new();
        let root = root(HOLD, &mut host);
        let answer = allow_models(models.as_ref().map(|m| &m[..]));
        let path = head[1].1.clone();
        let (mut stream, action) = headers(&root, &mut host, head, false, &answer);
        assert_eq!(action, Action::Continue, "{path}");
        assert_eq!(marked(&host), want, "{path} limited {models:?}");
        assert!(host.edits.iter().all(|(n, _)| n != HOLD_HEADER || want));
        // Not held: its body passes at once.
        if !want {
            host.request_body = b"{}".to_vec();
            assert_eq!(
                stream.on_request_body(&mut host, 2, false),
                Action::Continue
            );
        }
    }
}

#[test]
fn the_filters_own_403_is_not_rewritten_by_its_response_watches() {
    let mut host = FakeHost::new();
    let root = root(HOLD, &mut host);
    let limited = allow_models(Some(&["gpt-5*"]));
    let (mut stream, _) = headers(&root, &mut host, chat(), false, &limited);
    body(&mut host, &mut stream, &[br#"{"model":"gpt-4o"}"#]);
    let reply = host.replies[0].clone();
    // The local reply passes back through ptk's response callbacks.
    host.response = reply.headers.clone();
    host.response.push((":status".into(), "403".into()));
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    host.response.clear();
    host.body = reply.body.clone();
    let size = host.body.len();
    assert_eq!(
        stream.on_response_body(&mut host, size, true),
        Action::Continue
    );
    assert_eq!(host.replies.len(), 1, "no second reply");
    assert_eq!(host.body, reply.body, "the 403 went out as it was");
    let text = String::from_utf8_lossy(&host.body);
    assert!(text.contains("model_not_allowed") && !text.contains("credential"));
    let worker = root.worker.as_ref().unwrap();
    assert_eq!(
        worker
            .counts
            .get(Counter::Refused(Refusal::ModelNotAllowed)),
        1
    );
    assert_eq!(
        worker
            .counts
            .get(Counter::CredentialRefused(Provider::Openai)),
        0
    );
}

#[test]
fn a_post_without_a_body_of_a_limited_token_is_refused_fresh_or_cached() {
    let mut host = FakeHost::new();
    let root = root(HOLD, &mut host);
    let limited = allow_models(Some(&["gpt-5*"]));
    let (_, action) = headers(&root, &mut host, chat(), true, &limited);
    assert_eq!(action, Action::Pause);
    assert_eq!(refused_code(&host), "model_not_allowed");
    assert!(!sent_key(&host), "never forwarded");
    // The token's verdict was still cached: the next one is decided without a callout.
    let sent = host.sent.len();
    host.replies.clear();
    let (_, action) = headers(&root, &mut host, chat(), true, &limited);
    assert_eq!((action, host.sent.len()), (Action::Pause, sent));
    assert_eq!(refused_code(&host), "model_not_allowed");
    assert!(!sent_key(&host));
    assert_eq!(count(&root, Refusal::ModelNotAllowed), 2);
    // An unlimited token's bodiless POST is the provider's to answer.
    let mut host = FakeHost::new();
    let plain = self::root(HOLD, &mut host);
    let (_, action) = headers(&plain, &mut host, chat(), true, &allow_models(None));
    assert_eq!(action, Action::Continue);
    assert!(sent_key(&host) && host.replies.is_empty());
}

#[test]
fn without_the_hold_filter_a_body_model_is_refused_at_the_headers_and_logged() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    let limited = allow_models(Some(&["gpt-5*"]));
    let (_, action) = headers(&root, &mut host, chat(), false, &limited);
    assert_eq!(action, Action::Pause);
    assert_eq!(refused_code(&host), "model_not_allowed");
    assert!(!sent_key(&host) && !marked(&host));
    let logs = host.logs.borrow();
    assert!(logs
        .iter()
        .any(|(l, m)| *l == Level::Warn && m.contains("limits.body_hold")));
}
