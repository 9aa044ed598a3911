//! Activity: requests allowed from the cache, counted per token, and the token usage metered
//! from responses, summed per token, provider, API, model, status and streaming; both sent to
//! the token-service in one batch per tick from the worker (never on the request path, and
//! never from a stream context, whose callouts Envoy cancels when the stream ends).

use std::collections::HashMap;

use ptk_wire::usage::{LONG_CONTEXT_TOKENS, MAX_MODEL_LEN};
use ptk_wire::{
    ActivityEntry, ActivityReport, GrantRelease, KeyEvent, TokenUsage, UsageApi, UsageEntry,
    ACTIVITY_PATH,
};

use crate::config::FilterConfig;
use crate::pipeline::callout_headers;

/// Headers and body of an HTTP callout.
pub type Call = (Vec<(String, String)>, Vec<u8>);

/// Distinct usage keys one batch holds; a response metered past it is counted in
/// [`ActivityBatch::usage_dropped`] (a worker flushes every second or so, so reaching it takes
/// thousands of distinct token × model combinations per second on one worker).
pub const MAX_USAGE_KEYS: usize = 4096;

/// What one metered response adds to a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeteredResponse<'a> {
    /// Token hash.
    pub hash: &'a str,
    /// Provider name.
    pub provider: &'a str,
    /// The API it came from.
    pub api: UsageApi,
    /// The model the provider named (cut at [`MAX_MODEL_LEN`] bytes), `""` if none.
    pub model: &'a str,
    /// HTTP status (101 for a WebSocket session).
    pub status: u16,
    /// Streamed (SSE or WebSocket).
    pub streamed: bool,
    /// Whether its final usage was seen and it ended normally.
    pub complete: bool,
    /// Its counts.
    pub usage: TokenUsage,
    /// A budgeted request that ended without its final usage: its estimate minus the tokens
    /// seen, when positive (`UsageEntry::shortfall_tokens`); 0 otherwise.
    pub shortfall_tokens: u64,
}

/// The key usage is summed under: hash, provider, API, model, status, streamed, long context.
type UsageKey = (String, String, UsageApi, String, u16, bool, bool);

/// Counts since the last flush, per token hash, and usage per [`UsageKey`].
#[derive(Debug, Default)]
pub struct ActivityBatch {
    counts: HashMap<String, u64>,
    usage: HashMap<UsageKey, (u64, u64, TokenUsage, u64)>,
    usage_dropped: u64,
    key_events: Vec<KeyEvent>,
    /// Budget grant tokens to give back, per grant id (`flow/budget.rs`).
    releases: HashMap<u64, u64>,
}

/// Most key events one report carries (a provider refusing every request of a busy worker
/// repeats itself; the first ones say it all).
const MAX_KEY_EVENTS: usize = 64;

impl ActivityBatch {
    /// Counts one request for `hash`.
    pub fn record(&mut self, hash: &str) {
        match self.counts.get_mut(hash) {
            // A u64 of requests from one worker between two flushes never saturates.
            Some(count) => *count = count.saturating_add(1),
            None => {
                self.counts.insert(hash.to_string(), 1);
            }
        }
    }

    /// Adds one metered response; false (and counted as dropped) if the batch is full.
    pub fn record_usage(&mut self, response: &MeteredResponse<'_>) -> bool {
        let model = cut_at_char(response.model, MAX_MODEL_LEN);
        let key: UsageKey = (
            response.hash.to_owned(),
            response.provider.to_owned(),
            response.api,
            model.to_owned(),
            response.status,
            response.streamed,
            response.usage.input > LONG_CONTEXT_TOKENS,
        );
        if !self.usage.contains_key(&key) && self.usage.len() >= MAX_USAGE_KEYS {
            self.usage_dropped = self.usage_dropped.saturating_add(1);
            return false;
        }
        let (requests, incomplete, usage, shortfall) = self.usage.entry(key).or_default();
        *requests = requests.saturating_add(1);
        if !response.complete {
            *incomplete = incomplete.saturating_add(1);
        }
        usage.add(&response.usage);
        *shortfall = shortfall.saturating_add(response.shortfall_tokens);
        true
    }

    /// Queues budget grant tokens to give back. Released in the report that carries what is
    /// in the batch now, or a later one: a request's estimate is released only once its usage
    /// is in the batch (`flow/budget.rs`), never in a report before it.
    pub fn release(&mut self, grant: u64, tokens: u64) {
        if tokens > 0 {
            let held = self.releases.entry(grant).or_default();
            *held = held.saturating_add(tokens);
        }
    }

    /// Queues what a provider said of a pool key for the next report (the same event for the
    /// same key once per report, with the latest cooldown).
    pub fn key_event(&mut self, event: KeyEvent) {
        let same = |e: &&mut KeyEvent| {
            e.provider == event.provider && e.key == event.key && e.event == event.event
        };
        if let Some(queued) = self.key_events.iter_mut().find(same) {
            queued.cooling_ms = event.cooling_ms;
        } else if self.key_events.len() < MAX_KEY_EVENTS {
            self.key_events.push(event);
        }
    }

    /// Metered responses that found the batch full, since the worker started.
    pub fn usage_dropped(&self) -> u64 {
        self.usage_dropped
    }

    /// The activity call (headers and JSON body) for everything counted so far, emptying the
    /// batch; `None` when there is nothing to report.
    pub fn take_call(&mut self, config: &FilterConfig, secret: &str) -> Option<Call> {
        let quiet = self.usage.is_empty() && self.key_events.is_empty();
        if self.counts.is_empty() && quiet && self.releases.is_empty() {
            return None;
        }
        let mut entries: Vec<ActivityEntry> = self
            .counts
            .drain()
            .map(|(hash, count)| ActivityEntry { hash, count })
            .collect();
        entries.sort_by(|a, b| a.hash.cmp(&b.hash));
        let mut token_usage: Vec<UsageEntry> = self
            .usage
            .drain()
            .map(
                |(
                    (hash, provider, api, model, status, streamed, long_context),
                    (requests, incomplete, usage, shortfall_tokens),
                )| {
                    UsageEntry {
                        hash,
                        provider,
                        api,
                        model,
                        status,
                        streamed,
                        long_context,
                        requests,
                        incomplete,
                        usage,
                        shortfall_tokens,
                    }
                },
            )
            .collect();
        // A total order over the whole key: the report is the same however the map iterates.
        let key = |e: &UsageEntry| {
            let (hash, provider, model) = (e.hash.clone(), e.provider.clone(), e.model.clone());
            (
                hash,
                provider,
                e.api,
                model,
                e.status,
                e.streamed,
                e.long_context,
            )
        };
        token_usage.sort_by_key(key);
        let mut grant_releases: Vec<GrantRelease> = self
            .releases
            .drain()
            .map(|(grant, tokens)| GrantRelease { grant, tokens })
            .collect();
        grant_releases.sort_by_key(|r| r.grant);
        let report = ActivityReport {
            entries,
            token_usage,
            key_events: std::mem::take(&mut self.key_events),
            grant_releases,
        };
        let body = serde_json::to_vec(&report).ok()?;
        Some((callout_headers(config, secret, ACTIVITY_PATH), body))
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut_at_char(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    text.get(..end).unwrap_or("")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn batches_counts_per_hash_and_empties() {
        let config = FilterConfig::parse(b"").unwrap();
        let mut batch = ActivityBatch::default();
        assert!(batch.take_call(&config, "s").is_none());
        batch.record("b");
        batch.record("a");
        batch.record("b");
        let (headers, body) = batch.take_call(&config, "secret-value").unwrap();
        let report: ActivityReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            report.entries,
            vec![
                ActivityEntry {
                    hash: "a".into(),
                    count: 1
                },
                ActivityEntry {
                    hash: "b".into(),
                    count: 2
                }
            ]
        );
        assert!(headers.contains(&(":path".to_string(), "/v1/usage".to_string())));
        assert!(batch.take_call(&config, "s").is_none());
    }

    fn metered<'a>(
        hash: &'a str,
        model: &'a str,
        complete: bool,
        input: u64,
    ) -> MeteredResponse<'a> {
        MeteredResponse {
            hash,
            provider: "openai",
            api: UsageApi::ChatCompletions,
            model,
            status: 200,
            streamed: true,
            complete,
            usage: TokenUsage {
                input,
                output: 1,
                ..TokenUsage::default()
            },
            shortfall_tokens: 0,
        }
    }

    #[test]
    fn shortfalls_are_summed_per_entry_and_releases_per_grant_in_the_same_report() {
        let config = FilterConfig::parse(b"").unwrap();
        let mut batch = ActivityBatch::default();
        batch.release(7, 0);
        assert!(
            batch.take_call(&config, "s").is_none(),
            "nothing to release"
        );
        let aborted = MeteredResponse {
            shortfall_tokens: 300,
            ..metered("a", "gpt-x", false, 5)
        };
        assert!(batch.record_usage(&aborted));
        assert!(batch.record_usage(&MeteredResponse {
            shortfall_tokens: 20,
            ..aborted.clone()
        }));
        batch.release(9, 100);
        batch.release(7, 500);
        batch.release(9, 1);
        let (_, body) = batch.take_call(&config, "s").unwrap();
        let report: ActivityReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.token_usage[0].shortfall_tokens, 320);
        let releases: Vec<(u64, u64)> = report
            .grant_releases
            .iter()
            .map(|r| (r.grant, r.tokens))
            .collect();
        assert_eq!(releases, vec![(7, 500), (9, 101)]);
        // Releases alone make a report.
        batch.release(3, 4);
        let (_, body) = batch.take_call(&config, "s").unwrap();
        let report: ActivityReport = serde_json::from_slice(&body).unwrap();
        assert_eq!(report.grant_releases.len(), 1);
        assert!(report.token_usage.is_empty());
    }

    #[test]
    fn usage_is_summed_per_key_and_sent_with_the_activity() {
        let config = FilterConfig::parse(b"").unwrap();
        let mut batch = ActivityBatch::default();
        assert!(batch.record_usage(&metered("a", "gpt-x", true, 10)));
        assert!(batch.record_usage(&metered("a", "gpt-x", false, 5)));
        assert!(batch.record_usage(&metered("a", "gpt-y", true, 1)));
        let (_, body) = batch.take_call(&config, "s").unwrap();
        let report: ActivityReport = serde_json::from_slice(&body).unwrap();
        assert!(report.entries.is_empty());
        assert_eq!(report.token_usage.len(), 2);
        let x = &report.token_usage[0];
        assert_eq!(
            (x.model.as_str(), x.requests, x.incomplete),
            ("gpt-x", 2, 1)
        );
        assert_eq!((x.usage.input, x.usage.output), (15, 2));
        assert!(batch.take_call(&config, "s").is_none());
    }

    #[test]
    fn the_batch_is_bounded_and_long_model_names_are_cut_at_a_character() {
        let mut batch = ActivityBatch::default();
        let long = "é".repeat(100);
        assert!(batch.record_usage(&metered("h", &long, true, 1)));
        let key_model = batch.usage.keys().next().unwrap().3.clone();
        assert!(key_model.len() <= MAX_MODEL_LEN && long.starts_with(&key_model));
        for n in 1..MAX_USAGE_KEYS {
            assert!(batch.record_usage(&metered(&format!("h{n}"), "m", true, 1)));
        }
        assert!(!batch.record_usage(&metered("one-more", "m", true, 1)));
        assert!(
            batch.record_usage(&metered("h1", "m", true, 1)),
            "a known key still adds"
        );
        assert_eq!(batch.usage_dropped(), 1);
    }

    #[test]
    fn responses_above_the_long_context_threshold_are_summed_apart() {
        let config = FilterConfig::parse(b"").unwrap();
        let mut batch = ActivityBatch::default();
        batch.record_usage(&metered("a", "gpt-x", true, 150_000));
        batch.record_usage(&metered("a", "gpt-x", true, 150_000));
        batch.record_usage(&metered("a", "gpt-x", true, 250_000));
        let (_, body) = batch.take_call(&config, "s").unwrap();
        let report: ActivityReport = serde_json::from_slice(&body).unwrap();
        let tiers: Vec<(bool, u64)> = report
            .token_usage
            .iter()
            .map(|e| (e.long_context, e.usage.input))
            .collect();
        // Two 150k responses stay at the base tier though their sum is above 200k.
        assert_eq!(tiers, vec![(false, 300_000), (true, 250_000)]);
    }
}
