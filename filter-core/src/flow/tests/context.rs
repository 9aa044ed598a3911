//! The shim's contexts (`Stream`, `Root`): configuration, local replies with the logged path
//! redacted, resuming after a callout, metrics on the tick, closing revoked streams.

use super::*;
use crate::flow::{Action, ContextHost, MetricType, Root, COUNTERS};

/// What the contexts read from and did to the fake host.
#[derive(Default)]
pub struct ContextFake {
    /// The request headers the host hands over (`None`: unreadable).
    pub request: Option<Vec<(String, String)>>,
    /// The callout answer being delivered (`:status`, body) and how often it was read.
    pub answer: (Option<String>, Option<Vec<u8>>),
    pub answers_read: std::cell::Cell<usize>,
    /// The headers of that callout answer.
    pub answer_headers: Vec<(String, String)>,
    pub resumed: usize,
    /// How many times a held response was resumed.
    pub responses_resumed: usize,
    /// Defined metrics (kind, name) by id, and what was added to each id.
    pub metrics: Vec<(MetricType, String)>,
    pub added: Vec<(u32, i64)>,
    /// (request context, root context) of each stream reset.
    pub closed: Vec<(u32, u32)>,
    /// Resets of the stream by itself.
    pub resets: usize,
    pub tick_ms: Option<u64>,
    /// Host time in µs, and the histogram samples recorded (id, value).
    pub now_us: u64,
    pub recorded: Vec<(u32, u64)>,
}

impl ContextHost for FakeHost {
    fn request_headers(&self) -> Option<Vec<(String, String)>> {
        self.ctx.request.clone()
    }

    fn callout_headers(&self) -> Vec<(String, String)> {
        self.ctx.answer_headers.clone()
    }

    fn resume_request(&mut self) -> bool {
        self.ctx.resumed += 1;
        true
    }

    fn resume_response(&mut self) -> bool {
        self.ctx.responses_resumed += 1;
        true
    }

    fn callout_answer(&self, body_size: usize) -> (Option<String>, Option<Vec<u8>>) {
        self.ctx.answers_read.set(self.ctx.answers_read.get() + 1);
        let (status, body) = self.ctx.answer.clone();
        let body = body.map(|b| b[..body_size.min(b.len())].to_vec());
        (status, body)
    }

    fn define_metric(&mut self, kind: MetricType, name: &str) -> Option<u32> {
        self.ctx.metrics.push((kind, name.into()));
        Some(u32::try_from(self.ctx.metrics.len() - 1).unwrap())
    }

    fn add_to_metric(&mut self, id: u32, delta: i64) {
        self.ctx.added.push((id, delta));
    }

    fn close_stream(&mut self, context_id: u32, root_id: u32) -> bool {
        self.ctx.closed.push((context_id, root_id));
        true
    }

    fn reset_stream(&mut self) -> bool {
        self.ctx.resets += 1;
        true
    }

    fn set_tick(&mut self, period_ms: u64) {
        self.ctx.tick_ms = Some(period_ms);
    }

    fn now_us(&self) -> u64 {
        self.ctx.now_us
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.ctx.recorded.push((id, value));
    }
}

fn pairs(head: &[(&str, &str)]) -> Vec<(String, String)> {
    head.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The chat request of the tests as the host hands it over.
fn chat() -> Vec<(String, String)> {
    let auth = format!("Bearer {TOKEN}");
    pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
        (":authority", "proxy.local"),
        ("authorization", &auth),
    ])
}

/// A root configured with `config`, its id 1.
fn root(config: &str, host: &mut FakeHost) -> Root {
    let mut root = Root::new(1);
    let env = |name: &str| (name == "PTK_CHECK_SECRET").then(|| "check-secret-0123456789".into());
    assert!(root.configure(host, config.as_bytes(), env));
    root
}

/// The total added to the metric of this name.
fn metric(host: &FakeHost, name: &str) -> i64 {
    let id = host.ctx.metrics.iter().position(|(_, n)| n == name);
    let id = u32::try_from(id.unwrap_or_else(|| panic!("{name} not defined"))).unwrap();
    host.ctx
        .added
        .iter()
        .filter(|(i, _)| *i == id)
        .map(|(_, d)| d)
        .sum()
}

#[test]
fn without_a_valid_configuration_every_request_gets_503_and_its_logged_path_is_redacted() {
    let mut host = FakeHost::new();
    let mut bad = Root::new(1);
    assert!(!bad.configure(&mut host, b"{\"cache\":{\"nope\":1}}", |_| None));
    let logs = host.logs.borrow().clone();
    assert!(logs
        .iter()
        .any(|(l, m)| *l == Level::Critical && m.starts_with("ptk filter: bad config: ")));
    // A valid config without its check secret is refused too.
    assert!(!Root::new(1).configure(&mut host, b"{}", |_| None));
    let mut stream = bad.stream(7);
    let path = format!("/v1/chat/completions?key={TOKEN}");
    host.ctx.request = Some(pairs(&[(":method", "POST"), (":path", &path)]));
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    assert_eq!(host.replies.len(), 1);
    assert_eq!(host.replies[0].status, 503);
    assert_eq!(
        host.edits,
        [(":path".into(), Some("/v1/chat/completions".into()))]
    );
    assert!(host.sent.is_empty());
    // Nothing to watch on the response side.
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    assert_eq!(
        stream.on_response_body(&mut host, 0, true),
        Action::Continue
    );
}

#[test]
fn unreadable_request_headers_get_503_never_forwarded() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    let mut stream = root.stream(7);
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    assert_eq!(host.replies[0].status, 503);
    assert!(host.sent.is_empty() && host.edits.is_empty());
}

#[test]
fn a_checked_request_pauses_only_its_own_answer_resumes_it_and_its_end_closes_it() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    let token = host.last_token();
    host.ctx.answer = (Some("200".into()), Some(allow(1_000, Some((3, 1)))));
    // Another context's callout is neither read nor decided.
    stream.on_callout_response(&mut host, token + 1, 0);
    assert_eq!((host.ctx.answers_read.get(), host.ctx.resumed), (0, 0));
    let size = host.ctx.answer.1.as_ref().unwrap().len();
    stream.on_callout_response(&mut host, token, size);
    assert_eq!(host.ctx.resumed, 1);
    assert!(sent_key(&host));
    let worker = root.worker.clone().unwrap();
    assert_eq!(worker.streams.borrow().len(), 1);
    host.response = vec![(":status".into(), "200".into())];
    assert_eq!(
        stream.on_response_headers(&mut host, false),
        Action::Continue
    );
    drop(stream);
    assert_eq!(
        worker.streams.borrow().len(),
        0,
        "an ended request stayed open"
    );
}

#[test]
fn a_garbled_callout_status_is_a_transport_failure() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    stream.on_request_headers(&mut host, false);
    host.ctx.answer = (Some("2OO".into()), Some(allow(1_000, None)));
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, 64);
    // Retried once (no verdict), then 503.
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, 64);
    assert_eq!(host.ctx.resumed, 0);
    assert_eq!(host.replies.last().map(|r| r.status), Some(503));
}

#[test]
fn the_configuration_sets_the_tick_and_defines_every_counter_once() {
    let mut host = FakeHost::new();
    let config = r#"{"cache":{"activity_flush_ms":250},"providers":{"selfhosted":{"path_prefix":"/selfhosted/","authority":"llm.internal:8000"}}}"#;
    root(config, &mut host);
    assert_eq!(host.ctx.tick_ms, Some(250));
    let names: Vec<&str> = host.ctx.metrics.iter().map(|(_, n)| n.as_str()).collect();
    for name in [
        "ptk.allowed",
        "ptk.upstream_key_masked",
        "ptk.upstream_credential_refused.openai",
        "ptk.upstream_credential_refused.anthropic",
        "ptk.upstream_credential_refused.gemini",
        "ptk.upstream_credential_refused.selfhosted",
    ] {
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }
    // Four families per provider (3 built-in, 1 configured), one gauge, two histograms.
    assert_eq!(names.len(), COUNTERS + 4 * (3 + 1) + 1 + 2);
    for name in ["ptk.allowed.selfhosted", "ptk.usage.input_tokens.gemini"] {
        assert!(names.contains(&name), "{name}");
    }
    let histograms = host.ctx.metrics.iter();
    let histograms = histograms.filter(|(k, _)| *k == MetricType::Histogram);
    let histograms: Vec<_> = histograms.map(|(_, n)| n.as_str()).collect();
    assert_eq!(histograms, ["ptk.overhead_us", "ptk.check_callout_us"]);
    let gauges = host
        .ctx
        .metrics
        .iter()
        .filter(|(k, _)| *k == MetricType::Gauge);
    let gauges: Vec<_> = gauges.map(|(_, n)| n.as_str()).collect();
    assert_eq!(gauges, ["ptk.open_requests"]);
}

#[test]
fn the_tick_flushes_counts_once_and_the_open_gauge_by_its_change() {
    let mut host = FakeHost::new();
    let mut root = root("{}", &mut host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    root.on_tick(&mut host);
    assert_eq!(metric(&host, "ptk.allowed"), 1);
    assert_eq!(metric(&host, "ptk.cache_hits"), 1);
    assert_eq!(metric(&host, "ptk.open_requests"), 1);
    // The activity of the cached request is reported.
    assert_eq!(host.sent.last().unwrap().path, "/v1/usage");
    root.on_tick(&mut host);
    assert_eq!(metric(&host, "ptk.allowed"), 1, "a count was added twice");
    drop(stream);
    root.on_tick(&mut host);
    assert_eq!(metric(&host, "ptk.open_requests"), 0);
}

#[test]
fn a_revalidation_refusal_resets_the_open_stream_on_behalf_of_the_root() {
    let mut host = FakeHost::new();
    let mut root = root("{}", &mut host);
    cache_verdict(&host, T0 + 1_000, 5, 1);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    host.now = T0 + 1_000;
    root.on_tick(&mut host);
    let revalidation = host.sent.iter().find(|s| s.path == "/v1/revalidate");
    let token = revalidation.unwrap().token_id;
    let body = revalidated(&token_hash(TOKEN), None, Provider::Openai);
    host.ctx.answer = (Some("200".into()), Some(body.clone()));
    root.on_callout_response(&mut host, token, body.len());
    assert_eq!(host.ctx.closed, [(7, 1)]);
    let logs = host.logs.borrow().clone();
    assert!(logs
        .iter()
        .any(|(_, m)| m.contains("closed 1 open request(s)")));
}

#[test]
fn a_provider_refusing_the_key_without_a_body_stops_the_response() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    assert_eq!(
        stream.on_request_headers(&mut host, false),
        Action::Continue
    );
    host.response = vec![
        (":status".into(), "401".into()),
        ("content-type".into(), "application/json".into()),
    ];
    // No body follows: nothing to read, the local reply goes at the headers.
    assert_eq!(stream.on_response_headers(&mut host, true), Action::Pause);
    assert_eq!(host.replies.len(), 1);
    assert!(stream.flow.error_watch.is_none());
}

/// The histogram samples recorded under `name`.
fn samples(host: &FakeHost, name: &str) -> Vec<u64> {
    let id = host.ctx.metrics.iter().position(|(_, n)| n == name);
    let id = u32::try_from(id.unwrap_or_else(|| panic!("{name} not defined"))).unwrap();
    let recorded = host.ctx.recorded.iter().filter(|(i, _)| *i == id);
    recorded.map(|(_, v)| *v).collect()
}

#[test]
fn the_overhead_runs_from_the_headers_to_the_forward_and_each_callout_is_timed() {
    let mut host = FakeHost::new();
    let root = root("{}", &mut host);
    let mut stream = root.stream(7);
    host.ctx.request = Some(chat());
    host.ctx.now_us = 1_000;
    assert_eq!(stream.on_request_headers(&mut host, false), Action::Pause);
    // The first callout answers 503 at 1.4 ms (sent again), the second allows at 2 ms.
    host.ctx.now_us = 1_400;
    host.ctx.answer = (Some("503".into()), Some(Vec::new()));
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, 0);
    assert_eq!(host.sent.len(), 2, "no retry");
    host.ctx.now_us = 2_000;
    host.ctx.answer = (Some("200".into()), Some(allow(1_000, None)));
    let size = host.ctx.answer.1.as_ref().unwrap().len();
    let token = host.last_token();
    stream.on_callout_response(&mut host, token, size);
    assert_eq!(host.ctx.resumed, 1);
    assert_eq!(samples(&host, "ptk.check_callout_us"), [400, 600]);
    assert_eq!(samples(&host, "ptk.overhead_us"), [1_000]);
    // A cached forward is sampled too; a refusal is not.
    cache_verdict(&host, T0 + 10_000, 5, 1);
    let mut cached = root.stream(8);
    host.ctx.now_us = 5_000;
    assert_eq!(
        cached.on_request_headers(&mut host, false),
        Action::Continue
    );
    assert_eq!(samples(&host, "ptk.overhead_us"), [1_000, 0]);
    let mut refused = root.stream(9);
    host.ctx.request = Some(pairs(&[
        (":method", "POST"),
        (":path", "/v1/chat/completions"),
    ]));
    assert_eq!(refused.on_request_headers(&mut host, false), Action::Pause);
    assert_eq!(samples(&host, "ptk.overhead_us").len(), 2);
}
