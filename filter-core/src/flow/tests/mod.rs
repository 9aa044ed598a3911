//! A fake host drives every branch of the flow natively: time, shared data with Envoy's exact
//! semantics (`SharedDataDouble`), callouts answered by the test, rewrites that can fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

mod abandoned_grants;
mod access_log;
mod bound;
mod budget;
mod budget_attacks;
mod budget_references;
mod cached;
mod callout;
mod context;
mod geo;
mod grant_renewal;
mod key_pool;
mod key_refusal;
mod metering;
mod model_gate;
mod response;
mod session;
mod tick;

use ptk_wire::{CheckRequest, CheckResponse, DenyReason, Lease, Provider, Revalidation};

use crate::activity::Call;
use crate::config::validate_secret;
use crate::flow::{Counter, Host, Level, RequestBodyHost, RequestFlow, ResponseHost, Step, Worker};
use crate::refusal::LocalReply;
use crate::refusal::Refusal;
use crate::request::RequestHead;
use crate::shared_data::CasAnchor;
use crate::shared_data_double::SharedDataDouble;
use crate::token_hash;
use crate::verdict_cache::{cache_key, CachedVerdict};

/// Host time of the tests (ms).
pub const T0: u64 = 1_800_000_000_000;
/// The proxy token of the tests.
pub const TOKEN: &str = "ptk_flowtest0123456789abcdefghij";
/// The real key the fake token-service hands out.
pub const KEY: &str = "sk-real-key-for-flow-tests";

/// One callout the flow started.
pub struct Sent {
    pub token_id: u32,
    pub cluster: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The fake host: records what the flow did.
#[derive(Default)]
pub struct FakeHost {
    pub shared: SharedDataDouble,
    pub now: u64,
    pub source: String,
    pub sent: Vec<Sent>,
    pub dispatch_fails: bool,
    /// The response: its headers, its body, what was set on it and replies sent.
    pub response: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub replies: Vec<LocalReply>,
    pub rewrite_fails: bool,
    /// Request header edits: (name, value; `None` removes).
    pub edits: Vec<(String, Option<String>)>,
    /// What the contexts read and did (`context.rs`).
    pub ctx: context::ContextFake,
    /// Log lines written.
    pub logs: std::cell::RefCell<Vec<(Level, String)>>,
    /// The request body Envoy holds.
    pub request_body: Vec<u8>,
    /// The access-log fields set, last value of each.
    pub log_fields: Vec<(String, String)>,
    /// Random draws so far (each draw is distinct and deterministic).
    pub draws: u64,
}

impl Host for FakeHost {
    type Shared = SharedDataDouble;

    fn shared(&self) -> &SharedDataDouble {
        &self.shared
    }

    fn now_ms(&self) -> u64 {
        self.now
    }

    fn source_address(&self) -> String {
        self.source.clone()
    }

    fn dispatch(&mut self, cluster: &str, call: &Call, _timeout_ms: u64) -> Result<u32, String> {
        if self.dispatch_fails {
            return Err("InternalFailure".into());
        }
        let path = call.0.iter().find(|(n, _)| n == ":path").unwrap().1.clone();
        let token_id = 100 + u32::try_from(self.sent.len()).unwrap();
        self.sent.push(Sent {
            token_id,
            cluster: cluster.into(),
            path,
            headers: call.0.clone(),
            body: call.1.clone(),
        });
        Ok(token_id)
    }

    fn set_request_header(&mut self, name: &str, value: Option<&str>) -> bool {
        self.edits.push((name.into(), value.map(str::to_string)));
        !self.rewrite_fails
    }

    fn log(&self, level: Level, message: &str) {
        self.logs.borrow_mut().push((level, message.into()));
    }

    fn set_log_field(&mut self, name: &str, value: &str) -> bool {
        self.log_fields.retain(|(n, _)| n != name);
        self.log_fields.push((name.into(), value.into()));
        true
    }

    fn random_u64(&mut self) -> Option<u64> {
        self.draws += 1;
        // An odd multiplier: distinct draws, spread over all 64 bits.
        Some(self.draws.wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }
}

impl ResponseHost for FakeHost {
    fn response_header(&self, name: &str) -> Option<String> {
        let found = self.response.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.clone())
    }

    fn response_headers(&self) -> Vec<(String, String)> {
        self.response.clone()
    }

    fn set_response_header(&mut self, name: &str, value: &str) -> bool {
        self.response.retain(|(n, _)| n != name);
        self.response.push((name.into(), value.into()));
        true
    }

    fn remove_response_header(&mut self, name: &str) -> bool {
        self.response.retain(|(n, _)| n != name);
        true
    }

    fn response_body(&self, size: usize) -> Option<Vec<u8>> {
        Some(self.body[..size.min(self.body.len())].to_vec())
    }

    fn set_response_body(&mut self, size: usize, body: &[u8]) -> bool {
        self.body
            .splice(..size.min(self.body.len()), body.iter().copied());
        true
    }

    fn send_reply(&mut self, reply: &LocalReply) -> bool {
        self.replies.push(reply.clone());
        true
    }
}

impl RequestBodyHost for FakeHost {
    fn request_body(&self, size: usize) -> Option<Vec<u8>> {
        Some(self.request_body[..size.min(self.request_body.len())].to_vec())
    }

    fn set_request_body(&mut self, size: usize, body: &[u8]) -> bool {
        let end = size.min(self.request_body.len());
        self.request_body.splice(..end, body.iter().copied());
        true
    }
}

/// A provider's 401/403 with a body is being answered in place: no local reply, and the
/// response headers left are the answer's own (no provider header, no `content-length`).
pub fn answering(host: &FakeHost) -> bool {
    let answers = |name: &str| {
        name.starts_with(':')
            || name == "content-type"
            || name == "vary"
            || name.starts_with("access-control-")
    };
    host.replies.is_empty() && host.response.iter().all(|(n, _)| answers(n))
}

impl FakeHost {
    /// A host at [`T0`] with the CAS anchor refreshed.
    pub fn new() -> FakeHost {
        FakeHost {
            now: T0,
            source: "203.0.113.7:5555".into(),
            ..FakeHost::default()
        }
    }

    /// The last callout's check request.
    pub fn last_check(&self) -> CheckRequest {
        serde_json::from_slice(&self.sent.last().unwrap().body).unwrap()
    }

    /// The last callout's token id.
    pub fn last_token(&self) -> u32 {
        self.sent.last().unwrap().token_id
    }
}

/// A worker for this plugin configuration (JSON), the anchor refreshed in `host`.
pub fn worker(config: &str, host: &FakeHost) -> Worker {
    let config = crate::FilterConfig::parse(config.as_bytes()).unwrap();
    let secret = validate_secret("PTK_CHECK_SECRET", Some("check-secret-0123456789")).unwrap();
    Worker::new(config, secret, CasAnchor::refresh(&host.shared))
}

/// An OpenAI chat request with [`TOKEN`] (or `token`) as Bearer.
pub fn request_with(token: &str) -> RequestHead {
    let auth = format!("Bearer {token}");
    RequestHead::new(vec![
        (":method".into(), "POST".into()),
        (":path".into(), "/v1/chat/completions".into()),
        (":authority".into(), "proxy.local".into()),
        ("authorization".into(), auth),
    ])
}

/// An OpenAI chat request with [`TOKEN`].
pub fn request() -> RequestHead {
    request_with(TOKEN)
}

/// The verdict-cache key of [`TOKEN`] for OpenAI.
pub fn key_of_token() -> String {
    cache_key(&token_hash(TOKEN), Provider::Openai)
}

/// An allow body.
pub fn allow(ttl_ms: u64, lease: Option<(u32, u64)>) -> Vec<u8> {
    serde_json::to_vec(&CheckResponse::Allow {
        key: KEY.into(),
        cache_ttl_ms: ttl_ms,
        lease: lease.map(|(units, window)| Lease { units, window }),
        limits: None,
        pool: Vec::new(),
    })
    .unwrap()
}

/// An allow body with a pool of keys `sk-pool-<id>` named `ids` (the first is `key`).
pub fn allow_pool(ttl_ms: u64, lease: Option<(u32, u64)>, ids: &[&str]) -> Vec<u8> {
    let pool: Vec<ptk_wire::PoolKey> = ids
        .iter()
        .map(|id| ptk_wire::PoolKey {
            id: (*id).to_owned(),
            key: format!("sk-pool-{id}"),
        })
        .collect();
    serde_json::to_vec(&CheckResponse::Allow {
        key: pool[0].key.clone(),
        cache_ttl_ms: ttl_ms,
        lease: lease.map(|(units, window)| Lease { units, window }),
        limits: None,
        pool,
    })
    .unwrap()
}

/// A deny body.
pub fn deny(reason: DenyReason, retry_after_s: Option<u64>) -> Vec<u8> {
    serde_json::to_vec(&CheckResponse::Deny {
        reason,
        retry_after_s,
        budget: None,
    })
    .unwrap()
}

/// A revalidation answer for `hash` (OpenAI).
pub fn revalidated(hash: &str, valid: Option<u64>, provider: Provider) -> Vec<u8> {
    let verdict = match valid {
        Some(ttl_ms) => Revalidation::Valid {
            hash: hash.into(),
            provider,
            ttl_ms,
            limits: None,
        },
        None => Revalidation::Refused {
            hash: hash.into(),
            provider,
            reason: DenyReason::Invalid,
        },
    };
    serde_json::to_vec(&ptk_wire::RevalidateResponse {
        verdicts: vec![verdict],
    })
    .unwrap()
}

/// Puts a verdict with `units` in the shared cache for [`TOKEN`].
pub fn cache_verdict(host: &FakeHost, valid_until_ms: u64, units: u32, window: u64) {
    let entry = CachedVerdict {
        valid_until_ms,
        units,
        window,
        key: KEY.into(),
        limits: None,
    };
    host.shared
        .raw_set(&key_of_token(), &entry.encode(), None)
        .unwrap();
}

/// Units left in the shared cache for [`TOKEN`].
pub fn cached_units(host: &FakeHost) -> Option<u32> {
    host.shared
        .value(&key_of_token())
        .and_then(|v| CachedVerdict::decode(&v))
        .map(|e| e.units)
}

/// A request's headers step, on a fresh flow.
pub fn headers(worker: &Worker, host: &mut FakeHost, head: RequestHead) -> (RequestFlow, Step) {
    let mut flow = RequestFlow::new(7);
    let step = flow.on_request_headers(worker, host, head);
    (flow, step)
}

/// The last callout answered with a 200 and `body`.
pub fn answer(flow: &mut RequestFlow, worker: &Worker, host: &mut FakeHost, body: &[u8]) -> Step {
    let token = host.last_token();
    flow.on_callout_response(worker, host, token, Some(200), Some(body))
        .expect("the flow's own callout")
}

/// The status of a reply, or a panic naming the step.
pub fn status(step: &Step) -> u16 {
    match step {
        Step::Reply(reply) => reply.status,
        other => panic!("expected a reply, got {other:?}"),
    }
}

/// Whether the request headers got the real key (in any edit).
pub fn sent_key(host: &FakeHost) -> bool {
    host.edits
        .iter()
        .any(|(_, v)| v.as_deref().is_some_and(|v| v.contains(KEY)))
}

/// The count of a refusal class.
pub fn refused(worker: &Worker, refusal: Refusal) -> u64 {
    worker.counts.get(Counter::Refused(refusal))
}
