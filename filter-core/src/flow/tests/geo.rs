//! The geo-403 egress fallback through the contexts: replayed once on the marker, never on
//! another 403, another provider, a body past the bound, or without the configuration.

use super::*;
use crate::flow::{Action, Root, Stream};

const GEO: &[u8] = br#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;
const KEY_403: &[u8] =
    br#"{"error":{"code":"invalid_api_key","message":"no","type":"invalid_request_error"}}"#;
const COMPLETION: &[u8] = br#"{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":3,"total_tokens":8}}"#;
const CONFIG: &str = r#"{"providers": {"openai": {"geo_fallback":
    {"cluster": "openai_egress", "authority": "egress.example", "max_request_body_bytes": 8}}}}"#;

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

/// A request with `auth` forwarded after its check, its body streamed in `chunks` (each let
/// through), the host then holding the swapped headers Envoy would send upstream; the hold
/// filter in front of ptk marked it, as `render_envoy.py` sets it up.
fn forwarded(config: &str, auth: (&str, &str), chunks: &[&[u8]]) -> (FakeHost, Root, Stream) {
    forwarded_held(config, auth, chunks, true)
}

fn forwarded_held(
    config: &str,
    auth: (&str, &str),
    chunks: &[&[u8]],
    held: bool,
) -> (FakeHost, Root, Stream) {
    let mut host = FakeHost::new();
    let root = root(config, &mut host);
    let mut stream = root.stream(7);
    let mut head = pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "proxy.local"),
    ]);
    head.push((auth.0.to_string(), auth.1.to_string()));
    if held {
        head.push(("x-ptk-geo-hold".into(), "1".into()));
    }
    if auth.0 == "x-api-key" {
        head.push(("anthropic-version".into(), "2023-06-01".into()));
    }
    host.ctx.request = Some(head);
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    host.ctx.answer = (Some("200".into()), Some(allow(1_000, None)));
    let size = host.ctx.answer.1.as_ref().unwrap().len();
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, size);
    assert!(sent_key(&host));
    for (n, chunk) in chunks.iter().enumerate() {
        host.request_body = chunk.to_vec();
        let end = n + 1 == chunks.len();
        assert_eq!(
            stream.on_request_body(&mut host, chunk.len(), end),
            Action::Continue,
            "the body is never held for the fallback"
        );
    }
    (host, root, stream)
}

/// The response arrives: `status` headers (passed on: the native hold filter in front keeps
/// a 403's from the client), then `body` in one chunk: what the filter did with it.
fn respond(host: &mut FakeHost, stream: &mut Stream, status: &str, body: &[u8]) -> Action {
    host.response = pairs(&[(":status", status), ("content-type", "application/json")]);
    assert_eq!(stream.on_response_headers(host, false), Action::Continue);
    assert!(
        host.replies.is_empty(),
        "nothing answered before the body is read"
    );
    // Envoy lends the response headers to the header callback only (a read in the body
    // callback fails, and the SDK panics on it).
    host.response.clear();
    host.body = body.to_vec();
    stream.on_response_body(host, body.len(), true)
}

fn count(root: &Root, counter: Counter) -> u64 {
    root.worker.as_ref().unwrap().counts.get(counter)
}

#[test]
fn a_geo_403_is_replayed_once_through_the_egress_and_its_answer_is_the_clients() {
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{\"a\":", b"1}"],
    );
    assert_eq!(respond(&mut host, &mut stream, "403", GEO), Action::Pause);
    assert_eq!(host.sent.len(), 2, "the check, then one replay");
    let replay = host.sent.last().unwrap();
    assert_eq!(replay.cluster, "openai_egress");
    assert_eq!(replay.path, "/v1/chat/completions");
    assert_eq!(replay.body, b"{\"a\":1}");
    assert!(
        host.replies.is_empty(),
        "nothing answered before the replay"
    );
    host.ctx.answer = (Some("200".into()), Some(COMPLETION.to_vec()));
    host.ctx.answer_headers = pairs(&[
        (":status", "200"),
        ("content-type", "application/json"),
        ("content-length", "150"),
    ]);
    let token = replay.token_id;
    stream.on_callout_response(&mut host, token, COMPLETION.len());
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 200);
    assert_eq!(host.replies[0].body, COMPLETION);
    assert_eq!(
        host.replies[0].headers,
        pairs(&[("content-type", "application/json")])
    );
    assert_eq!(count(&root, Counter::GeoReplayed), 1);
    // The replay's usage is metered: what the client got is what was spent.
    assert_eq!(count(&root, Counter::UsageResponses), 1);
    assert_eq!(count(&root, Counter::UsageInputTokens), 5);
    assert_eq!(count(&root, Counter::UsageOutputTokens), 3);
    // Answered once: a late duplicate is nobody's.
    stream.on_callout_response(&mut host, token, COMPLETION.len());
    assert_eq!(host.replies.len(), 1);
}

#[test]
fn the_replay_carries_the_swapped_headers_and_the_configured_authority() {
    let (mut host, _root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    respond(&mut host, &mut stream, "403", GEO);
    let seen = &host.sent.last().unwrap().headers;
    assert!(seen.contains(&("authorization".into(), format!("Bearer {KEY}"))));
    assert!(seen.contains(&(":authority".into(), "egress.example".into())));
    assert!(seen.contains(&("content-length".into(), "2".into())));
    assert!(!seen.iter().any(|(_, v)| v.contains(TOKEN)));
}

#[test]
fn a_non_geo_403_is_answered_as_a_refused_key_with_one_upstream_call() {
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    assert_eq!(
        respond(&mut host, &mut stream, "403", KEY_403),
        Action::Pause
    );
    assert_eq!(host.sent.len(), 1, "only the check: no replay");
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 403);
    let worker = root.worker.as_ref().unwrap();
    assert_eq!(
        worker
            .counts
            .get(Counter::CredentialRefused(Provider::Openai)),
        1
    );
    assert_eq!(count(&root, Counter::GeoReplayed), 0);
}

#[test]
fn a_geo_403_past_the_body_bound_passes_through_as_it_came() {
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{\"a\":", b"\"long\"}"],
    );
    assert_eq!(respond(&mut host, &mut stream, "403", GEO), Action::Pause);
    assert_eq!(host.sent.len(), 1, "not replayed");
    assert_eq!(host.replies[0].status, 403);
    assert_eq!(host.replies[0].body, GEO, "the provider's own answer");
    assert_eq!(
        host.replies[0].headers,
        pairs(&[("content-type", "application/json")])
    );
    assert_eq!(count(&root, Counter::GeoUnreplayable), 1);
}

#[test]
fn other_responses_and_providers_are_never_held() {
    // A success passes at once.
    let (mut host, _root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    assert_eq!(
        respond(&mut host, &mut stream, "200", b"{}"),
        Action::Continue
    );
    // A bodyless 403 has no marker to read.
    let (mut host, _root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    host.response = pairs(&[(":status", "403")]);
    assert_eq!(stream.on_response_headers(&mut host, true), Action::Pause);
    assert_eq!(host.sent.len(), 1);
    // Anthropic: its 403 is answered as every refused key is, never held, never replayed.
    let (mut host, _root, mut stream) = forwarded(CONFIG, ("x-api-key", TOKEN), &[b"{}"]);
    host.response = pairs(&[(":status", "403")]);
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    assert!(answering(&host));
    assert_eq!(host.sent.len(), 1);
    // Not configured: the same.
    let (mut host, _root, mut stream) = forwarded(
        "{}",
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    host.response = pairs(&[(":status", "403")]);
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    assert!(answering(&host));
    assert_eq!(host.sent.len(), 1);
}

#[test]
fn a_replay_without_an_answer_or_that_cannot_start_is_a_502() {
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    respond(&mut host, &mut stream, "403", GEO);
    host.ctx.answer = (None, None);
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, 0);
    assert_eq!(host.replies[0].status, 502);
    assert_eq!(count(&root, Counter::GeoFailed), 1);
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    host.dispatch_fails = true;
    assert_eq!(respond(&mut host, &mut stream, "403", GEO), Action::Pause);
    assert_eq!(host.replies[0].status, 502);
    assert_eq!(count(&root, Counter::GeoFailed), 1);
}

#[test]
fn only_openai_may_configure_a_fallback() {
    let config = r#"{"providers": {"anthropic": {"geo_fallback": {"cluster": "x"}}}}"#;
    let error = crate::FilterConfig::parse(config.as_bytes()).unwrap_err();
    assert!(error.contains("geo_fallback"), "{error}");
    let config = r#"{"providers": {"openai": {"geo_fallback": {"cluster": "a b"}}}}"#;
    let error = crate::FilterConfig::parse(config.as_bytes()).unwrap_err();
    assert!(
        error.contains("providers.openai.geo_fallback.cluster"),
        "{error}"
    );
}

/// An OpenAI Realtime handshake forwarded on `host` (its check answered), plus `extra`.
fn handshake(root: &Root, host: &mut FakeHost, extra: &[(&str, &str)]) -> Stream {
    let mut stream = root.stream(8);
    let mut head = pairs(&[
        (":method", "GET"),
        (":path", "/v1/realtime?model=gpt-realtime"),
        (":authority", "proxy.local"),
        ("authorization", &format!("Bearer {TOKEN}")),
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ]);
    head.extend(pairs(extra));
    host.ctx.request = Some(head);
    host.edits.clear();
    assert_eq!(stream.on_request_headers(host, false), Action::Pause);
    host.ctx.answer = (Some("200".into()), Some(allow(1_000, None)));
    let size = host.ctx.answer.1.as_ref().unwrap().len();
    let token = host.last_token();
    stream.on_callout_response(host, token, size);
    assert!(sent_key(host));
    stream
}

fn egress_edits(host: &FakeHost) -> Vec<Option<String>> {
    let edits = host.edits.iter().filter(|(n, _)| n == "x-ptk-egress");
    edits.map(|(_, v)| v.clone()).collect()
}

#[test]
fn a_websocket_handshake_is_never_held() {
    // A callout cannot carry an upgrade: the handshake's 403 is answered as any refusal.
    let mut host = FakeHost::new();
    let root = root(CONFIG, &mut host);
    let mut stream = handshake(&root, &mut host, &[]);
    host.response = pairs(&[(":status", "403")]);
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    assert!(answering(&host));
    assert_eq!(host.sent.len(), 1);
}

#[test]
fn after_a_geo_block_handshakes_take_the_egress_route_until_it_is_forgotten() {
    let (mut host, root, mut stream) = forwarded(
        CONFIG,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    // Before any geo-block: direct.
    handshake(&root, &mut host, &[]);
    assert!(egress_edits(&host).is_empty());
    respond(&mut host, &mut stream, "403", GEO);
    handshake(&root, &mut host, &[]);
    assert_eq!(egress_edits(&host), [Some("geo-fallback".to_string())]);
    assert_eq!(count(&root, Counter::GeoRouted), 1);
    // Ten minutes later (the default learn_ms), direct again.
    host.now += 600_000;
    handshake(&root, &mut host, &[]);
    assert!(egress_edits(&host).is_empty());
}

#[test]
fn only_the_filter_picks_the_egress_route() {
    // A client's header is removed, on HTTP calls and handshakes alike.
    let mut host = FakeHost::new();
    let root = root(CONFIG, &mut host);
    handshake(&root, &mut host, &[("x-ptk-egress", "geo-fallback")]);
    assert_eq!(egress_edits(&host), [None]);
    let mut stream = root.stream(9);
    host.ctx.request = Some(pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "proxy.local"),
        ("authorization", &format!("Bearer {TOKEN}")),
        ("x-ptk-egress", "geo-fallback"),
    ]));
    host.edits.clear();
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    let size = host.ctx.answer.1.as_ref().unwrap().len();
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, size);
    assert!(sent_key(&host));
    assert_eq!(egress_edits(&host), [None]);
}

#[test]
fn with_learn_ms_zero_nothing_is_remembered() {
    let config = r#"{"providers": {"openai": {"geo_fallback": {"cluster": "e", "learn_ms": 0}}}}"#;
    let (mut host, root, mut stream) = forwarded(
        config,
        ("authorization", &format!("Bearer {TOKEN}")),
        &[b"{}"],
    );
    respond(&mut host, &mut stream, "403", GEO);
    handshake(&root, &mut host, &[]);
    assert!(egress_edits(&host).is_empty());
}

#[test]
fn without_the_hold_filter_in_front_nothing_is_replayed_and_the_403_is_answered_at_its_headers() {
    let bearer = format!("Bearer {TOKEN}");
    let (mut host, root, mut stream) =
        forwarded_held(CONFIG, ("authorization", &bearer), &[b"{}"], false);
    // As without the fallback: answered in place, as every refused key is (never replayed,
    // never a local reply after the 403's headers went out).
    host.response = pairs(&[(":status", "403"), ("content-type", "application/json")]);
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    assert!(answering(&host));
    assert_eq!(host.sent.len(), 1, "replayed without the hold filter");
    assert_eq!(count(&root, Counter::GeoUnreplayable), 1);
    let warned = |host: &FakeHost| {
        let logs = host.logs.borrow();
        logs.iter()
            .filter(|(_, m)| m.contains("hold filter"))
            .count()
    };
    assert_eq!(warned(&host), 1);
    // Warned once per worker, however many requests.
    let mut again = root.stream(9);
    host.ctx.request = Some(pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        ("authorization", &bearer),
    ]));
    host.ctx.answer = (Some("200".into()), Some(allow(1_000, None)));
    cache_verdict(&host, T0 + 10_000, 5, 1);
    assert_eq!(again.on_request_headers(&mut host, false), Action::Continue);
    assert_eq!(warned(&host), 1);
    // With the hold filter, its mark is removed before the request goes upstream.
    let (host, _, _) = forwarded(CONFIG, ("authorization", &bearer), &[b"{}"]);
    assert!(host.edits.contains(&("x-ptk-geo-hold".into(), None)));
}
