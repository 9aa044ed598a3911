//! Provider key pools in the request flow: the pick of a key for each request (`key_pool.rs`,
//! over this Envoy's key states, `key_state.rs`), and what the provider's answer says about
//! the key it got: a 429 cools it down; an error whose whole body says the key itself was
//! refused (`key_refusal`: OpenAI's `invalid_api_key`, Anthropic's `authentication_error`,
//! Gemini's `API_KEY_INVALID`, …) takes it out of rotation here at once and is reported to the
//! token-service, which stops handing it out. The status alone never does: a 401 or 403 also
//! means a permission, a route or a region the key may not use, which the client chooses.

use ptk_wire::{KeyEvent, KeyEventKind, Provider};

use crate::flow::{Host, Level, RequestFlow, ResponseHost, Worker};
use crate::key_pool::{choose, decode, Chosen};
use crate::key_state::{cooldown_ms, read, write, KeyStates, Mark, REFUSED_MS};
use crate::refusal::Refusal;

impl Worker {
    /// The key for one request from the cached string `stored` (a key or a pool); advances
    /// this worker's turn when it is a pool. Reads shared data only for a pool.
    pub(super) fn choose_key(
        &self,
        host: &impl Host,
        provider: Provider,
        stored: &str,
    ) -> Result<Chosen, Refusal> {
        let states = if decode(stored).is_some() {
            read(host.shared(), provider)
        } else {
            KeyStates::default()
        };
        let turn = self.key_turn.get();
        self.key_turn.set(turn.wrapping_add(1));
        choose(stored, &states, turn, host.now_ms())
    }
}

impl RequestFlow {
    /// The response headers of a request forwarded with a pool key: a 429 cools it down.
    pub(super) fn key_health_headers(&mut self, worker: &Worker, host: &mut impl ResponseHost) {
        let Some(watch) = self.error_watch.as_ref() else {
            return;
        };
        let Some(id) = watch.pool_key.clone() else {
            return;
        };
        let provider = watch_provider(self);
        let status = host.response_header(":status");
        if status.as_deref().map(str::trim) != Some("429") {
            return;
        }
        let now = host.now_ms();
        let ms = cooldown_ms(
            host.response_header("retry-after-ms").as_deref(),
            host.response_header("retry-after").as_deref(),
            now,
        );
        let mark = Mark::Cooldown {
            until_ms: now.saturating_add(ms),
        };
        mark_key(worker, host, provider, &id, mark, KeyEventKind::RateLimited);
    }

    /// After a response body chunk: a refusal of the key the body showed marks it once.
    pub(super) fn key_health_body(&mut self, worker: &Worker, host: &mut impl ResponseHost) {
        let provider = watch_provider(self);
        let Some(watch) = self.error_watch.as_mut() else {
            return;
        };
        if !watch.key_refused {
            return;
        }
        watch.key_refused = false;
        let Some(id) = watch.pool_key.take() else {
            return;
        };
        let (mark, event) = refused(host.now_ms());
        mark_key(worker, host, provider, &id, mark, event);
    }
}

fn watch_provider(flow: &RequestFlow) -> Provider {
    flow.error_watch
        .as_ref()
        .map_or(Provider::Openai, |w| w.provider())
}

fn refused(now: u64) -> (Mark, KeyEventKind) {
    let until_ms = now.saturating_add(REFUSED_MS);
    (Mark::Refused { until_ms }, KeyEventKind::Refused)
}

/// Records the mark in shared data, logs it by the key's name and queues the event.
fn mark_key(
    worker: &Worker,
    host: &impl Host,
    provider: Provider,
    id: &str,
    mark: Mark,
    event: KeyEventKind,
) {
    let now = host.now_ms();
    if !write(host.shared(), worker.anchor.get(), provider, id, mark, now) {
        host.log(Level::Warn, "ptk filter: could not record a key state");
    }
    let what = match mark {
        Mark::Cooldown { until_ms } => format!(
            "rate-limited; cooling down for {} ms",
            until_ms.saturating_sub(now)
        ),
        Mark::Refused { .. } => "refused; out of rotation".to_owned(),
    };
    host.log(
        Level::Warn,
        &format!("ptk filter: {} pool key {id} {what}", provider.as_str()),
    );
    let cooling_ms = match mark {
        Mark::Cooldown { until_ms } => Some(until_ms.saturating_sub(now)),
        Mark::Refused { .. } => None,
    };
    worker.activity.borrow_mut().key_event(KeyEvent {
        provider,
        key: id.to_owned(),
        event,
        cooling_ms,
    });
}
