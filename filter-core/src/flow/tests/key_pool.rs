//! Provider key pools in the flow: round robin over cached pools, 429 cooldowns, refused keys
//! and their activity-report events.

use super::*;
use crate::flow::{BodyStep, HeadersStep};

/// OpenAI's answer to a refused key, and to a request from a region it does not serve.
pub(super) const INVALID_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-****abcd.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
const GEO_403: &str = r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#;

/// The pool key (by id) the last forwarded request went with.
fn key_sent(host: &FakeHost) -> String {
    let key = host
        .edits
        .iter()
        .rev()
        .find_map(|(_, v)| v.as_deref().filter(|v| v.contains("sk-pool-")))
        .unwrap();
    key.rsplit("sk-pool-").next().unwrap().to_owned()
}

/// A request from the cache: its step and the key id it went with (or its status).
pub(super) fn next(w: &Worker, host: &mut FakeHost) -> (RequestFlow, String) {
    host.edits.clear();
    let (flow, step) = headers(w, host, request());
    let got = match step {
        Step::Forward => key_sent(host),
        other => format!("{}", status(&other)),
    };
    (flow, got)
}

fn respond(flow: &mut RequestFlow, w: &Worker, host: &mut FakeHost, response: &[(&str, &str)]) {
    host.response = response
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let _: HeadersStep = flow.on_response_headers(w, host, false);
}

/// A response with a whole body, as Envoy hands it over: headers, then the body at its end.
pub(super) fn refuse(
    flow: &mut RequestFlow,
    w: &Worker,
    host: &mut FakeHost,
    status: &str,
    body: &str,
) {
    respond(flow, w, host, &[(":status", status)]);
    host.body = body.as_bytes().to_vec();
    let _: BodyStep = flow.on_response_body(w, host, body.len(), true);
}

pub(super) fn pooled(ids: &[&str]) -> (Worker, FakeHost) {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    let (mut flow, _) = headers(&w, &mut host, request());
    let step = answer(
        &mut flow,
        &w,
        &mut host,
        &allow_pool(60_000, Some((100, 1)), ids),
    );
    assert_eq!(step, Step::Forward);
    (w, host)
}

#[test]
fn cached_requests_take_the_pool_keys_in_turn_without_a_callout() {
    let (w, mut host) = pooled(&["a", "b"]);
    let got: Vec<String> = (0..4).map(|_| next(&w, &mut host).1).collect();
    assert_eq!(got, ["b", "a", "b", "a"]);
    assert_eq!(host.sent.len(), 1, "a pooled verdict called out again");
}

#[test]
fn a_429_cools_its_key_down_until_retry_after_then_it_is_used_again() {
    let (w, mut host) = pooled(&["a", "b"]);
    let (mut flow, id) = next(&w, &mut host);
    assert_eq!(id, "b");
    respond(
        &mut flow,
        &w,
        &mut host,
        &[(":status", "429"), ("retry-after", "2")],
    );
    let got: Vec<String> = (0..3).map(|_| next(&w, &mut host).1).collect();
    assert_eq!(got, ["a", "a", "a"], "a cooling key was used");
    host.now += 2_000;
    let got: Vec<String> = (0..2).map(|_| next(&w, &mut host).1).collect();
    assert!(got.contains(&"b".to_owned()), "{got:?}");
    // Every key cooling: a local 429 with the soonest end, nothing forwarded.
    for _ in 0..2 {
        let (mut flow, _) = next(&w, &mut host);
        respond(
            &mut flow,
            &w,
            &mut host,
            &[(":status", "429"), ("retry-after-ms", "4500")],
        );
    }
    let (_, step) = headers(&w, &mut host, request());
    let Step::Reply(reply) = step else {
        panic!("forwarded with every key cooling: {step:?}")
    };
    assert_eq!(reply.status, 429);
    assert!(
        reply
            .headers
            .iter()
            .any(|(n, v)| n == "retry-after" && v == "5"),
        "{reply:?}"
    );
    let report = w.activity.borrow_mut().take_call(&w.config, "s").unwrap();
    let body = String::from_utf8(report.1).unwrap();
    assert!(body.contains(r#""event":"rate_limited""#), "{body}");
    assert!(!body.contains("sk-pool-"), "a key in the report: {body}");
    // One event per key, with its latest cooldown (b cooled for 2 s, then 4.5 s).
    let report: ptk_wire::ActivityReport = serde_json::from_str(&body).unwrap();
    let cooling: Vec<(&str, Option<u64>)> = report
        .key_events
        .iter()
        .map(|e| (e.key.as_str(), e.cooling_ms))
        .collect();
    assert_eq!(cooling, [("b", Some(4500)), ("a", Some(4500))], "{body}");
}

#[test]
fn a_401_saying_the_key_is_invalid_takes_it_out_and_is_reported_by_name_a_403_does_not() {
    let (w, mut host) = pooled(&["a", "b", "c"]);
    let (mut flow, id) = next(&w, &mut host);
    assert_eq!(id, "b");
    refuse(&mut flow, &w, &mut host, "403", GEO_403);
    let (mut flow, id) = next(&w, &mut host);
    assert_eq!(id, "c");
    refuse(&mut flow, &w, &mut host, "401", INVALID_KEY);
    let mut got: Vec<String> = (0..4).map(|_| next(&w, &mut host).1).collect();
    got.sort();
    assert_eq!(
        got,
        ["a", "a", "b", "b"],
        "a refused key stayed in rotation"
    );
    let report = w.activity.borrow_mut().take_call(&w.config, "s").unwrap();
    let report: ptk_wire::ActivityReport = serde_json::from_slice(&report.1).unwrap();
    assert_eq!(report.key_events.len(), 1);
    assert_eq!(report.key_events[0].key, "c");
    let logs = host.logs.borrow();
    assert!(
        logs.iter().any(|(_, l)| l.contains("pool key c refused")),
        "{logs:?}"
    );
    assert!(
        !logs.iter().any(|(_, l)| l.contains("sk-pool-")),
        "{logs:?}"
    );
}
