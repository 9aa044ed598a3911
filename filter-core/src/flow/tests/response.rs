//! The response of a forwarded request: the real-key watch and CORS decoration.

use super::*;
use crate::flow::{BodyStep, HeadersStep};

fn forwarded_from_cache(origin: Option<&str>) -> (Worker, FakeHost, RequestFlow) {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let mut headers = vec![
        (":method".to_string(), "POST".to_string()),
        (":path".to_string(), "/v1/chat/completions".to_string()),
        ("authorization".to_string(), format!("Bearer {TOKEN}")),
        ("accept-encoding".to_string(), "gzip".to_string()),
    ];
    if let Some(origin) = origin {
        headers.push(("origin".into(), origin.into()));
    }
    let mut flow = RequestFlow::new(7);
    assert_eq!(
        flow.on_request_headers(&w, &mut host, RequestHead::new(headers)),
        Step::Forward
    );
    // The provider is asked for an answer the watch can read.
    assert!(host
        .edits
        .contains(&("accept-encoding".into(), Some("identity".into()))));
    (w, host, flow)
}

#[test]
fn a_provider_refusing_the_real_key_is_answered_in_its_place() {
    let (w, mut host, mut flow) = forwarded_from_cache(None);
    host.response = vec![
        (":status".into(), "401".into()),
        ("content-type".into(), "application/json".into()),
        ("content-length".into(), "140".into()),
        ("x-request-id".into(), "req_1".into()),
    ];
    host.body = format!(
        r#"{{"error":{{"message":"Incorrect API key provided: {KEY}","code":"invalid_api_key"}}}}"#
    )
    .into_bytes();
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    // The provider's headers are gone (its length too), the answer's are in.
    assert!(answering(&host), "{:?}", host.response);
    let size = host.body.len();
    assert_eq!(
        flow.on_response_body(&w, &mut host, size, true),
        BodyStep::Continue
    );
    let body = String::from_utf8(host.body.clone()).unwrap();
    assert!(body.contains("upstream_credential_refused"), "{body}");
    assert!(!body.contains(KEY) && !body.contains("Incorrect"), "{body}");
    assert_eq!(
        w.counts.get(Counter::CredentialRefused(Provider::Openai)),
        1
    );
}

#[test]
fn an_error_quoting_the_key_is_masked_and_a_success_passes_decorated() {
    let (w, mut host, mut flow) = forwarded_from_cache(Some("https://app.example"));
    host.response = vec![
        (":status".into(), "500".into()),
        ("content-type".into(), "application/json".into()),
    ];
    host.body = format!(r#"{{"error":{{"message":"bad key {KEY}"}}}}"#).into_bytes();
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    assert!(host
        .response
        .iter()
        .any(|(n, _)| n == "access-control-allow-origin"));
    let size = host.body.len();
    assert_eq!(
        flow.on_response_body(&w, &mut host, size, false),
        BodyStep::Pause
    );
    assert_eq!(
        flow.on_response_body(&w, &mut host, size, true),
        BodyStep::Continue
    );
    assert!(
        !String::from_utf8_lossy(&host.body).contains(KEY),
        "the key went to the client"
    );
    assert_eq!(w.counts.get(Counter::KeyMasked), 1);
    // A success drops the watch at once.
    let (w, mut host, mut flow) = forwarded_from_cache(None);
    host.response = vec![(":status".into(), "200".into())];
    assert_eq!(
        flow.on_response_headers(&w, &mut host, false),
        HeadersStep::Continue
    );
    assert!(flow.error_watch.is_none());
}

#[test]
fn a_configured_provider_refusing_its_key_counts_under_its_own_name() {
    let mut host = FakeHost::new();
    let config = r#"{"providers":{"selfhosted":{"path_prefix":"/selfhosted/","authority":"llm.internal:8000"}}}"#;
    let w = worker(config, &host);
    let head = RequestHead::new(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/selfhosted/v1/chat/completions".into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), format!("Bearer {TOKEN}")),
    ]);
    let (mut flow, _) = headers(&w, &mut host, head);
    assert_eq!(
        answer(&mut flow, &w, &mut host, &allow(1_000, None)),
        Step::Forward
    );
    host.response = vec![
        (":status".into(), "401".into()),
        ("content-type".into(), "application/json".into()),
    ];
    assert_eq!(
        flow.on_response_headers(&w, &mut host, true),
        HeadersStep::Stop
    );
    let selfhosted = Provider::parse("selfhosted").unwrap();
    assert_eq!(w.counts.get(Counter::CredentialRefused(selfhosted)), 1);
    assert_eq!(
        w.counts.get(Counter::CredentialRefused(Provider::Openai)),
        0
    );
}
