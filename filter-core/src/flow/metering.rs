//! Token usage of a forwarded request: when its call is metered (`usage::classify`), a usage
//! watch follows it. A streamed Chat Completions request to a provider that accepts it is
//! asked for usage (its body held until complete, `stream_options.include_usage` added, its
//! `content-length` dropped) and the usage-only chunk is removed from the stream again; every
//! response chunk below 400 is read as it passes (never held) by the API's meter; when the
//! response ends, or the request is destroyed before that (reset, disconnect), what was seen
//! goes into the worker's activity batch, which the root context reports on its tick (a
//! callout from a dying stream context would be cancelled).

use ptk_wire::{Provider, TokenUsage};

use crate::activity::MeteredResponse;
use crate::dialect::Dialect;
use crate::flow::access_fields::log_usage;
use crate::flow::counts::Counter;
use crate::flow::{BodyStep, Host, Level, RequestFlow, ResponseHost, Worker};
use crate::pipeline::PendingCheck;
use crate::request::RequestHead;
use crate::usage::classify::{metered_api, response_framing};
use crate::usage::request_model::{model_in_path, RequestModel};
use crate::usage::{
    request_stream_usage, Framing, StreamUsage, UsageApi, UsageChunkStripper, UsageMeter,
};

/// The request side of a body the flow may rewrite.
pub trait RequestBodyHost: Host {
    /// The request body Envoy holds (`size` bytes: all of it once paused to the end).
    fn request_body(&self, size: usize) -> Option<Vec<u8>>;
    /// Replaces the first `size` bytes of the held request body; `false` if refused.
    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool;
}

/// Where the request body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// Not a streamed Chat Completions call we may ask: the body passes untouched.
    No,
    /// Held until complete, then read.
    Pending,
    /// Asked for usage: the usage-only chunk is removed from the response.
    Asked,
}

/// Who a metered call is recorded for: the dialect it speaks, its provider and the hash of the
/// token it was sent with (or whose bound credential it carries).
#[derive(Debug, Clone, Copy)]
pub(super) struct Caller<'a> {
    /// The dialect the request speaks.
    pub dialect: Dialect,
    /// The provider it goes to.
    pub provider: Provider,
    /// SHA-256 hex of the token it is recorded for.
    pub hash: &'a str,
}

/// One forwarded request's metering.
#[derive(Debug)]
pub(super) struct UsageWatch {
    hash: String,
    provider: Provider,
    api: UsageApi,
    upgrade: bool,
    ask: Ask,
    meter: Option<UsageMeter>,
    stripper: Option<UsageChunkStripper>,
    status: u16,
    /// The response is a stream (SSE or a WebSocket session).
    streamed: bool,
    /// Most request body bytes held (`metering.max_request_body_bytes`).
    hold_limit: usize,
    /// The request's `content-length`: a held body this long is whole.
    length: Option<usize>,
    /// The model the request named in its path or query (Gemini, Realtime).
    path_model: Option<String>,
    /// The request body's `model`, read as it passes (OpenAI and Anthropic JSON APIs).
    body_model: Option<RequestModel>,
}

impl UsageWatch {
    /// The metered API the request calls (how its body is read for a budget estimate).
    pub(super) fn api(&self) -> UsageApi {
        self.api
    }
}

impl RequestFlow {
    /// A request checked with a token is forwarded: metered for that token
    /// ([`RequestFlow::meter_for`]).
    pub(super) fn start_metering(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        pending: &PendingCheck,
        head: &RequestHead,
    ) {
        let identified = &pending.identified;
        let caller = Caller {
            dialect: identified.dialect,
            provider: identified.provider,
            hash: &pending.hash,
        };
        self.meter_for(worker, host, &caller, head);
    }

    /// A request is forwarded for `caller`: follow it if its call is metered. Drops
    /// `content-length` when its body may be rewritten (if that edit fails the body is left
    /// alone). Also a request forwarded with a credential bound to a token (an OpenAI Realtime
    /// client secret): its call is metered for that token like one sent with the token itself,
    /// or minting a secret would be a way around the meter and the budgets.
    pub(super) fn meter_for(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        caller: &Caller<'_>,
        head: &RequestHead,
    ) {
        if !worker.config.metering.enabled {
            return;
        }
        let dialect = caller.dialect;
        let upgrade = head.is_websocket_upgrade();
        let Some(api) = metered_api(dialect, head.method(), head.path(), upgrade) else {
            return;
        };
        let provider = caller.provider;
        // Only a body of known, bounded size is held: one of unknown length (chunked) or
        // beyond the bound could stall behind Envoy's flow control or its buffer limit.
        let length = head
            .header("content-length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let bounded = length.is_some_and(|n| n <= worker.config.metering.max_request_body_bytes);
        let may_ask = api == UsageApi::ChatCompletions
            && !upgrade
            && bounded
            && worker.config.upstream(provider).stream_usage;
        // The rewritten body has another length: drop the header so Envoy frames it itself.
        let ask = if may_ask && host.set_request_header("content-length", None) {
            Ask::Pending
        } else {
            Ask::No
        };
        let path_model = model_in_path(head.path());
        let limit = worker.config.metering.max_request_body_bytes;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let body_model = match (path_model.is_some(), upgrade, api) {
            (true, _, _) => None,
            (false, false, _) => Some(RequestModel::new(limit)),
            // Gemini Live names its model in the client's first message.
            (false, true, UsageApi::Live) => Some(RequestModel::live_setup(limit)),
            (false, true, _) => None,
        };
        self.usage = Some(Box::new(UsageWatch {
            hash: caller.hash.to_owned(),
            provider,
            api,
            upgrade,
            ask,
            meter: None,
            stripper: None,
            status: 0,
            streamed: false,
            hold_limit: usize::try_from(worker.config.metering.max_request_body_bytes)
                .unwrap_or(usize::MAX),
            length: length.and_then(|n| usize::try_from(n).ok()),
            path_model,
            body_model,
        }));
    }

    /// A request body chunk: held until the end (or all of its `content-length`) for a call
    /// that may be asked for usage, then rewritten if it is a stream that did not ask; every
    /// other body passes at once.
    pub fn on_request_body(
        &mut self,
        host: &mut impl RequestBodyHost,
        size: usize,
        end: bool,
    ) -> BodyStep {
        let Some(watch) = self.usage.as_mut() else {
            return BodyStep::Continue;
        };
        if watch.ask != Ask::Pending {
            // Passing as it comes: each callback holds only its own chunk.
            read_body_model(watch, host, size);
            return BodyStep::Continue;
        }
        if !end && size > watch.hold_limit {
            // A body longer than its `content-length` said (HTTP/2 may send none to check it
            // against): held any longer, Envoy could refuse it (413 past its buffer limit, 1 MiB
            // by default): it passes as it is, unasked.
            watch.ask = Ask::No;
            read_body_model(watch, host, size);
            return BodyStep::Continue;
        }
        // All of `content-length` in is the end, said or not: HTTP/2 trailers end the stream
        // after the last DATA frame. Held on to the trailers, the body would be lost: Envoy
        // (1.40) drops a body a filter buffered until trailers that came in while the filter
        // held the headers (the check callout) and that nothing after it holds too (see
        // `on_request_trailers` in `flow/context.rs`).
        if !end && watch.length != Some(size) {
            return BodyStep::Pause;
        }
        watch.ask = Ask::No;
        let Some(body) = host.request_body(size) else {
            return BodyStep::Continue;
        };
        if let Some(reader) = watch.body_model.as_mut() {
            reader.feed(&body);
        }
        let (rewritten, asked) = match request_stream_usage(&body) {
            StreamUsage::Unchanged => return BodyStep::Continue,
            StreamUsage::Injected(rewritten) => (rewritten, true),
            StreamUsage::Rewritten(rewritten) => (rewritten, false),
        };
        if !host.set_request_body(size, &rewritten) {
            host.log(Level::Warn, "ptk filter: could not rewrite a request body");
        } else if asked {
            watch.ask = Ask::Asked;
        }
        BodyStep::Continue
    }

    /// The response headers: a metered response below 400 gets its meter (the framing read
    /// from status and `content-type`); an error is recorded without reading its body.
    pub(super) fn metering_headers(&mut self, host: &mut impl ResponseHost) {
        let Some(watch) = self.usage.as_mut() else {
            return;
        };
        let status = host
            .response_header(":status")
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        watch.status = status;
        if status >= 400 {
            return;
        }
        // Every forwarded request asks for `accept-encoding: identity`; a provider that
        // compresses anyway cannot be read here: recorded as incomplete, never misread.
        let encoding = host.response_header("content-encoding");
        if encoding
            .is_some_and(|e| !e.trim().is_empty() && !e.trim().eq_ignore_ascii_case("identity"))
        {
            return;
        }
        let content_type = host.response_header("content-type");
        let framing = response_framing(status, content_type.as_deref(), watch.upgrade);
        if let Some(framing) = framing {
            watch.meter = Some(UsageMeter::new(watch.api, framing));
            let sse = framing == Framing::Sse;
            watch.streamed = sse || framing == Framing::WebSocket;
            // The stream may get shorter: a `content-length` left in place would make the
            // client wait for bytes that never come.
            if sse && watch.ask == Ask::Asked && host.remove_response_header("content-length") {
                watch.stripper = Some(UsageChunkStripper::default());
            }
        }
    }

    /// A response body chunk: read by the meter; in an asked stream, the usage-only chunk is
    /// cut out of it. At the end, the usage is recorded.
    pub(super) fn metering_body(
        &mut self,
        worker: &Worker,
        host: &mut impl ResponseHost,
        size: usize,
        end: bool,
    ) {
        let Some(watch) = self.usage.as_mut() else {
            return;
        };
        // The end often comes as an empty chunk: what the stripper still holds goes out then.
        let chunk = if size > 0 {
            host.response_body(size)
        } else {
            Some(Vec::new())
        };
        if let (Some(meter), Some(chunk)) = (watch.meter.as_mut(), chunk) {
            meter.feed(&chunk);
            if let Some(stripper) = watch.stripper.as_mut() {
                let mut out = stripper.rewrite(&chunk);
                if end {
                    out.extend(stripper.finish());
                }
                if out != chunk && !host.set_response_body(size, &out) {
                    host.log(Level::Warn, "ptk filter: could not remove a usage chunk");
                }
            }
        }
        if end {
            if let Some(logged) = self.finish_metering(worker, true) {
                log_usage(host, &logged.model, &logged.usage, logged.complete);
            }
        }
    }

    /// The response ended (`normally`), or the request is being destroyed before it did:
    /// records what was metered, once; what was recorded, for the access log (`None` if
    /// nothing was: not metered, never answered, or already recorded).
    pub fn finish_metering(&mut self, worker: &Worker, normally: bool) -> Option<Metered> {
        let mut watch = self.usage.take()?;
        let spent = self.take_spent();
        // Never answered (the client left before the response headers): nothing a response
        // could show, but the provider had the whole request and bills it (a completion runs
        // on without its caller). A budgeted one is charged its estimate, or leaving before
        // the answer would be a way to spend a budget for free.
        if watch.status == 0 && spent.is_none() {
            return None;
        }
        let metered = watch.meter.as_mut().map(|meter| meter.finish(normally));
        let (done, open) = watch
            .meter
            .as_ref()
            .map_or((0, false), |m| (m.responses_done(), m.response_open()));
        let (usage, model, complete) = match &metered {
            Some(m) => (m.usage, m.model.as_deref(), m.complete),
            None => (Default::default(), None, false),
        };
        // The response's own model first (the provider's resolved name), else the request's.
        let requested = watch.body_model.as_ref().and_then(RequestModel::model);
        let model = model
            .or(watch.path_model.as_deref())
            .or(requested)
            .unwrap_or("");
        // A budgeted request's estimate is released with its usage (same batch, so never in an
        // earlier report); one that ended without its final usage is charged its estimate.
        let seen = usage.input.saturating_add(usage.output);
        // An error answer (>= 400) is not billed: only a response that started is charged.
        let shortfall_tokens = match spent {
            Some((_, estimate)) if !complete && watch.status < 400 => estimate.saturating_sub(seen),
            _ => 0,
        };
        // A WebSocket session: every reservation it held (`session.rs`).
        let (held, session_shortfall) = self.settle_session(complete, done, open);
        let shortfall_tokens = shortfall_tokens.saturating_add(session_shortfall);
        let response = MeteredResponse {
            hash: &watch.hash,
            provider: watch.provider.as_str(),
            api: watch.api,
            model,
            status: watch.status,
            streamed: watch.streamed,
            complete,
            usage,
            shortfall_tokens,
        };
        let counts = &worker.counts;
        // `try_`: a stream is dropped outside any other use of the batch, but a wasm panic
        // would take every request of the worker with it.
        let recorded = worker.activity.try_borrow_mut().is_ok_and(|mut batch| {
            let recorded = batch.record_usage(&response);
            if let (true, Some((grant, estimate))) = (recorded, spent) {
                batch.release(grant, estimate);
            }
            for r in held.iter().filter(|_| recorded) {
                batch.release(r.grant, r.tokens);
            }
            recorded
        });
        if !recorded {
            counts.add(Counter::UsageDropped);
            return None;
        }
        counts.add(Counter::UsageResponses);
        if !complete {
            counts.add(Counter::UsageIncomplete);
        }
        counts.add_n(Counter::UsageInputTokens, usage.input);
        counts.add_n(Counter::UsageCachedInputTokens, usage.cached_input);
        counts.add_n(Counter::UsageOutputTokens, usage.output);
        counts.add_n(Counter::UsageReasoningTokens, usage.reasoning);
        counts.add_n(Counter::InputTokensBy(watch.provider), usage.input);
        counts.add_n(Counter::OutputTokensBy(watch.provider), usage.output);
        Some(Metered {
            model: model.to_string(),
            usage,
            complete,
        })
    }
}

impl UsageWatch {
    /// The API of a WebSocket session (`None`: not one).
    pub(super) fn session_api(&self) -> Option<UsageApi> {
        self.upgrade.then_some(self.api)
    }

    /// A session's running charge (input + output tokens metered) and the responses (Live:
    /// turns) seen ending; zeros before its first server message.
    pub(super) fn session_progress(&self) -> (u64, u64) {
        self.meter
            .as_ref()
            .map_or((0, 0), |m| (m.seen_tokens(), m.responses_done()))
    }
}

/// Feeds the request body chunk Envoy holds to the body's model reader, while it wants more.
fn read_body_model(watch: &mut UsageWatch, host: &impl RequestBodyHost, size: usize) {
    let Some(reader) = watch.body_model.as_mut().filter(|r| r.wants_more()) else {
        return;
    };
    if let Some(chunk) = host.request_body(size) {
        reader.feed(&chunk);
    }
}

/// What a metered response recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metered {
    /// The model the response named (empty if none).
    pub model: String,
    /// Its usage (what was seen when incomplete).
    pub usage: TokenUsage,
    /// Whether the final usage was seen.
    pub complete: bool,
}

impl RequestFlow {
    /// The response of a geo-fallback replay (`geo.rs`), whole: metered as the provider's
    /// answer would have been, and recorded (what was, for the access log).
    pub(super) fn meter_replayed(
        &mut self,
        worker: &Worker,
        status: u16,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Option<Metered> {
        let watch = self.usage.as_mut()?;
        watch.status = status;
        let framing = (status < 400)
            .then(|| response_framing(status, content_type, watch.upgrade))
            .flatten();
        if let Some(framing) = framing {
            let mut meter = UsageMeter::new(watch.api, framing);
            meter.feed(body);
            watch.streamed = framing == Framing::Sse;
            watch.meter = Some(meter);
        }
        self.finish_metering(worker, true)
    }
}
