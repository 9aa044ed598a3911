//! The OpenAI geo-403 egress fallback in the flow (decisions in `geo_fallback`).
//!
//! While a qualifying request streams upstream, its body is copied up to the configured bound
//! (never held for it). Its response is looked at only when the status is `403` with a body:
//! the headers are held until the body ends (at most `MAX_403_BODY`), then
//! - the geo marker, request replayable: the same request (swapped headers, real key, body)
//!   goes once through the fallback cluster by callout, and its answer is sent to the client
//!   (buffered whole by Envoy: an SSE stream arrives in one piece); no answer: 502;
//! - the geo marker, request not replayable: the provider's 403 passes as it came (counted);
//! - no marker: answered as every 401/403 of a request forwarded with a real key is
//!   (`error_watch`), with one upstream call; a pool key leaves rotation only when the body
//!   says it was refused (`key_refusal`).
//!
//! A geo-block seen is remembered in shared data for `learn_ms`: meanwhile OpenAI WebSocket
//! handshakes (which a callout cannot replay) carry `x-ptk-egress`, and an Envoy route on it
//! sends them through the egress cluster from the start.

use crate::cors::decorate;
use crate::flow::access_fields::log_usage;
use crate::flow::counts::Counter;
use crate::flow::{BodyStep, ContextHost, HeadersStep, Level, RequestBodyHost, RequestFlow};
use crate::flow::{Host, ResponseHost, Worker};
use crate::geo_fallback::{
    blocked_until, failed_reply, is_geo_block, qualifies, replay_call, replayed_reply,
    still_blocked, swapped_headers, ReplayBody, EGRESS_HEADER, EGRESS_VALUE, HOLD_HEADER,
    LEARNED_KEY, MAX_403_BODY,
};
use crate::key_refusal::key_refused;
use crate::pipeline::PendingCheck;
use crate::plan::RewritePlan;
use crate::refusal::LocalReply;
use crate::request::RequestHead;
use crate::shared_data::SharedData;
use crate::upstream_errors::{key_in_plan, on_headers, Forwarded, HeadersVerdict};

/// The first value of a header in `headers`.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    let found = headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name));
    found.map(|(_, v)| v.as_str())
}
use ptk_wire::Provider;

/// One forwarded OpenAI request that may be replayed.
pub(super) struct GeoWatch {
    key: String,
    /// The request headers as they went upstream (real key included).
    headers: Vec<(String, String)>,
    /// The request, for the answer to a refused key (`upstream_errors`).
    fwd: Forwarded,
    /// A held 403's headers (Envoy lends them to the header callback only).
    response: Vec<(String, String)>,
    origin: Option<String>,
    body: ReplayBody,
    /// No request body callback came (a bodyless request).
    bodyless: bool,
    phase: Phase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The request is upstream; its body is copied as it passes.
    Forwarded,
    /// A 403 came: its headers are held until its body is read.
    Holding,
    /// The replay is in flight.
    Replaying(u32),
}

impl std::fmt::Debug for GeoWatch {
    // Never print the real key or the body, even in a test failure.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeoWatch")
            .field("phase", &self.phase)
            .field("bodyless", &self.bodyless)
            .finish_non_exhaustive()
    }
}

impl RequestFlow {
    /// A request is forwarded with `plan` applied to `head`: watch it if the fallback is
    /// configured and it qualifies (OpenAI over HTTP, a real key in the plan); an OpenAI
    /// WebSocket handshake takes the egress route while a geo-block is remembered.
    pub(super) fn start_geo(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        head: &RequestHead,
        plan: &RewritePlan,
    ) {
        let provider = pending.identified.provider;
        let Some(config) = &worker.config.upstream(provider).geo_fallback else {
            return;
        };
        let Some(key) = key_in_plan(plan) else {
            return;
        };
        // Only the filter picks the egress route: a client's header goes, learned or not.
        let learned = pending.websocket && provider == Provider::Openai && config.learn_ms > 0 && {
            let stored = host.shared().get(LEARNED_KEY).ok().and_then(|(v, _)| v);
            still_blocked(stored.as_deref(), host.now_ms())
        };
        let egress = learned.then_some(EGRESS_VALUE);
        if egress.is_some() || head.header(EGRESS_HEADER).is_some() {
            if !host.set_request_header(EGRESS_HEADER, egress) {
                host.log(
                    Level::Warn,
                    "ptk filter: could not set the egress route header",
                );
            } else if learned {
                worker.counts.add(Counter::GeoRouted);
            }
        }
        // The hold filter says it is in front: the mark never goes upstream either way.
        let held = head.header(HOLD_HEADER).is_some();
        if held && !host.set_request_header(HOLD_HEADER, None) {
            host.log(Level::Warn, "ptk filter: could not remove the hold mark");
        }
        if !qualifies(provider, pending.websocket) {
            return;
        }
        if !held {
            // Answering a 403 in its place needs its headers held: without the hold filter
            // they would reach the client first, and the answer would break the response.
            if !worker.geo_hold_warned.replace(true) {
                host.log(
                    Level::Warn,
                    "ptk filter: geo_fallback is on but the hold filter in front of ptk is \
                     missing (see the README); OpenAI 403s pass through unreplayed",
                );
            }
            worker.counts.add(Counter::GeoUnreplayable);
            return;
        }
        self.geo = Some(Box::new(GeoWatch {
            key: key.to_string(),
            origin: pending.origin.clone(),
            headers: swapped_headers(head, plan),
            fwd: Forwarded {
                dialect: pending.identified.dialect,
                websocket: pending.websocket,
                origin: pending.origin.clone(),
            },
            response: Vec::new(),
            body: ReplayBody::new(config.max_request_body_bytes),
            bodyless: true,
            phase: Phase::Forwarded,
        }));
    }

    /// A request body chunk, before anything else looks at it: copied (what Envoy holds since
    /// the last chunk let through), as it came from the client.
    pub fn geo_request_chunk(&mut self, host: &impl RequestBodyHost, size: usize, end: bool) {
        let Some(geo) = self.geo.as_mut().filter(|g| g.phase == Phase::Forwarded) else {
            return;
        };
        geo.bodyless = false;
        if !geo.body.fits(size) {
            return;
        }
        let held = if size == 0 {
            Some(Vec::new())
        } else {
            host.request_body(size)
        };
        match held {
            Some(held) => geo.body.chunk(&held, end),
            // Unreadable: the copy would have a hole, so it must never be replayed.
            None => {
                geo.body.fits(usize::MAX);
            }
        }
    }

    /// What the flow did with that chunk: let through, the next copy starts after it.
    pub fn geo_request_step(&mut self, step: BodyStep) {
        if let (Some(geo), BodyStep::Continue) = (self.geo.as_mut(), step) {
            geo.body.passed();
        }
    }

    /// The response headers (`end`: no body follows): a 403 with a body is held to be read;
    /// anything else ends the watch.
    pub fn geo_headers(&mut self, host: &impl ContextHost, end: bool) -> Option<HeadersStep> {
        let geo = self.geo.as_mut()?;
        let status = host.response_header(":status");
        if end || status.as_deref().map(str::trim) != Some("403") {
            self.geo = None;
            return None;
        }
        geo.phase = Phase::Holding;
        geo.response = host.response_headers();
        // Passed on to the native hold filter in front of this one, which keeps them from the
        // client until the body has passed here: a wasm filter that pauses its headers gets
        // no body callback (proxy-wasm turns the pause into `StopAllIterationAndWatermark`).
        Some(HeadersStep::Continue)
    }

    /// A chunk of a held 403: held to its end (or `MAX_403_BODY`), then decided. `None`: the
    /// flow goes on as usual with this chunk.
    pub fn geo_body(
        &mut self,
        worker: &Worker,
        host: &mut impl ContextHost,
        size: usize,
        end: bool,
    ) -> Option<BodyStep> {
        let geo = self.geo.as_mut().filter(|g| g.phase == Phase::Holding)?;
        if !end && size <= MAX_403_BODY {
            return Some(BodyStep::Pause);
        }
        let body = host.response_body(size).unwrap_or_default();
        if !(end && is_geo_block(403, &body)) {
            // Not a geo-block: answered as every 401/403 of a request forwarded with a real key
            // is (`error_watch`), now that the body was read.
            let content_type = header(&geo.response, "content-type");
            let HeadersVerdict::Replace(reply) = on_headers(&geo.fwd, 403, content_type) else {
                self.geo = None;
                return None;
            };
            worker
                .counts
                .add(Counter::CredentialRefused(Provider::Openai));
            // Read whole: a pool key leaves rotation only if the body says it was refused.
            let refused = end && key_refused(Provider::Openai, 403, &body);
            if let Some(watch) = self.error_watch.as_mut().filter(|_| refused) {
                watch.key_refused = true;
                self.key_health_body(worker, host);
            }
            let line = "ptk filter: openai refused the proxy's upstream credential (status 403); \
                        answered in its place";
            host.log(Level::Warn, line);
            self.geo = None;
            return Some(self.send(host, &reply));
        }
        let Some(request) = geo.body.replayable(geo.bodyless) else {
            worker.counts.add(Counter::GeoUnreplayable);
            let line =
                "ptk filter: openai geo-403 on a request too large to replay; passed through";
            host.log(Level::Warn, line);
            let original = replayed_reply(403, &geo.response, body, &geo.key);
            let reply = decorate(original, geo.origin.as_deref());
            self.geo = None;
            return Some(self.send(host, &reply));
        };
        let Some(config) = &worker.config.upstream(Provider::Openai).geo_fallback else {
            self.geo = None;
            return None;
        };
        let authority = config.authority.as_deref();
        let authority = authority.unwrap_or(&worker.config.upstream(Provider::Openai).authority);
        let call = replay_call(&geo.headers, authority, request);
        host.log(
            Level::Warn,
            "ptk filter: openai geo-403; replaying once through the fallback egress",
        );
        if config.learn_ms > 0 {
            // Later WebSocket handshakes, on every worker, take the egress route from the start.
            let until = blocked_until(host.now_ms(), config.learn_ms);
            if host.shared().set(LEARNED_KEY, &until, None).is_err() {
                host.log(Level::Warn, "ptk filter: could not remember a geo-block");
            }
        }
        match host.dispatch(&config.cluster, &call, config.timeout_ms) {
            Ok(token_id) => {
                geo.phase = Phase::Replaying(token_id);
                // The copy is no longer needed while the replay runs.
                geo.body = ReplayBody::default();
                Some(BodyStep::Pause)
            }
            Err(status) => {
                let line = format!("ptk filter: could not start the geo fallback ({status})");
                host.log(Level::Error, &line);
                Some(self.replay_failed(worker, host))
            }
        }
    }

    /// Whether `token_id` is this request's replay.
    pub fn expects_replay(&self, token_id: u32) -> bool {
        self.geo
            .as_ref()
            .is_some_and(|g| g.phase == Phase::Replaying(token_id))
    }

    /// The replay's answer: sent to the client in the provider's place (502 if none came).
    pub fn on_replay_response(
        &mut self,
        worker: &Worker,
        host: &mut impl ContextHost,
        body_size: usize,
    ) {
        let Some(geo) = self.geo.as_ref() else {
            return;
        };
        let (status, body) = host.callout_answer(body_size);
        let Some(status) = status.and_then(|s| s.trim().parse::<u16>().ok()) else {
            host.log(Level::Error, "ptk filter: the geo fallback got no answer");
            self.replay_failed(worker, host);
            return;
        };
        worker.counts.add(Counter::GeoReplayed);
        let headers = host.callout_headers();
        let body = body.unwrap_or_default();
        let content_type = header(&headers, "content-type");
        let reply = replayed_reply(status, &headers, body, &geo.key);
        let reply = decorate(reply, geo.origin.as_deref());
        self.geo = None;
        // What the client gets is what was spent: metered before the reply drops the watch.
        if let Some(logged) = self.meter_replayed(worker, status, content_type, &reply.body) {
            log_usage(host, &logged.model, &logged.usage, logged.complete);
        }
        self.send(host, &reply);
    }

    /// 502 in OpenAI's shape, counted.
    fn replay_failed(&mut self, worker: &Worker, host: &mut impl ContextHost) -> BodyStep {
        worker.counts.add(Counter::GeoFailed);
        let origin = self.geo.take().and_then(|g| g.origin);
        let reply = decorate(failed_reply(), origin.as_deref());
        self.send(host, &reply)
    }

    /// Answers in the provider's place: nothing the provider sent counts or is decorated.
    fn send(&mut self, host: &mut impl ResponseHost, reply: &LocalReply) -> BodyStep {
        self.error_watch = None;
        self.cors_origin = None;
        self.mint = None;
        self.usage = None;
        if !host.send_reply(reply) {
            host.log(Level::Error, "ptk filter: could not send a local reply");
        }
        BodyStep::Pause
    }
}
