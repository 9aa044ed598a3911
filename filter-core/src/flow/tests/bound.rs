//! Bound credentials (a keyless upload leg): the session table, the guess throttle, the refusal
//! memory, the bound token's cached verdict or a revalidation, a forward without any key.

use super::*;
use crate::upload_sessions;

const LEG: &str = "/upload/v1beta/files?upload_id=abc&upload_protocol=resumable";

fn leg() -> RequestHead {
    RequestHead::new(vec![
        (":method".into(), "PUT".into()),
        (":path".into(), LEG.into()),
        (":authority".into(), "proxy.local".into()),
    ])
}

/// Records the upload session `abc` for [`TOKEN`] (Gemini).
fn start_session(w: &Worker, host: &FakeHost) {
    let start = ("abc", token_hash(TOKEN), Provider::Gemini);
    let start = (start.0, start.1.as_str(), start.2);
    let r = upload_sessions::record(&host.shared, w.anchor.get(), &w.config.uploads, start, T0);
    assert_eq!(r, upload_sessions::Recorded::Stored);
}

fn gemini_key() -> String {
    cache_key(&token_hash(TOKEN), Provider::Gemini)
}

#[test]
fn an_unknown_leg_is_401_and_counts_as_a_guess() {
    let mut host = FakeHost::new();
    let w = worker(
        r#"{"guess_throttle":{"max_refusals":1,"window_ms":60000}}"#,
        &host,
    );
    let (_, step) = headers(&w, &mut host, leg());
    assert_eq!(status(&step), 401);
    assert_eq!(refused(&w, Refusal::UnknownUpload), 1);
    let (_, step) = headers(&w, &mut host, leg());
    assert_eq!(status(&step), 429);
    assert!(host.sent.is_empty());
}

#[test]
fn a_known_leg_with_a_fresh_cached_verdict_forwards_without_a_key_or_a_unit() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    start_session(&w, &host);
    let e = CachedVerdict {
        valid_until_ms: T0 + 5_000,
        units: 2,
        window: 1,
        key: KEY.into(),
        limits: None,
    };
    host.shared
        .raw_set(&gemini_key(), &e.encode(), None)
        .unwrap();
    let (flow, step) = headers(&w, &mut host, leg());
    assert_eq!(step, Step::Forward);
    assert!(host.sent.is_empty());
    assert!(!sent_key(&host));
    assert!(flow.upload_watch.is_some());
    assert_eq!(w.counts.get(Counter::UploadLegs), 1);
    let units = CachedVerdict::decode(&host.shared.value(&gemini_key()).unwrap())
        .unwrap()
        .units;
    assert_eq!(units, 2, "a bound request spent a unit");
    assert_eq!(w.streams.borrow().len(), 1, "not registered as open");
}

#[test]
fn a_known_leg_without_a_verdict_is_revalidated() {
    for (answer_body, expect) in [
        (
            Some(revalidated(
                &token_hash(TOKEN),
                Some(1_000),
                Provider::Gemini,
            )),
            0,
        ),
        (
            Some(revalidated(&token_hash(TOKEN), None, Provider::Gemini)),
            401,
        ),
        (Some(b"garbage".to_vec()), 503),
    ] {
        let mut host = FakeHost::new();
        let w = worker("{}", &host);
        start_session(&w, &host);
        let (mut flow, step) = headers(&w, &mut host, leg());
        assert_eq!(step, Step::CallOut { token_id: 100 });
        assert_eq!(host.sent[0].path, "/v1/revalidate");
        let body = answer_body.as_deref();
        let step = flow
            .on_callout_response(&w, &mut host, 100, Some(200), body)
            .unwrap();
        match expect {
            0 => assert_eq!(step, Step::Forward),
            code => assert_eq!(status(&step), code),
        }
        if expect == 401 {
            // Remembered: the next leg is refused without a callout.
            let (_, step) = headers(&w, &mut host, leg());
            assert_eq!(status(&step), 401);
            assert_eq!(host.sent.len(), 1);
        }
    }
}

#[test]
fn a_revalidation_without_a_verdict_is_retried_once() {
    let mut host = FakeHost::new();
    let w = worker("{}", &host);
    start_session(&w, &host);
    let (mut flow, _) = headers(&w, &mut host, leg());
    let step = flow
        .on_callout_response(&w, &mut host, 100, None, None)
        .unwrap();
    assert_eq!(step, Step::CallOut { token_id: 101 });
    let step = flow
        .on_callout_response(&w, &mut host, 101, None, None)
        .unwrap();
    assert_eq!(status(&step), 503);
    assert_eq!(w.counts.get(Counter::CalloutFailed), 1);
}
