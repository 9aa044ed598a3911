//! Revocation for requests that are still open: long SSE streams and WebSockets (OpenAI
//! Realtime, Gemini Live) outlive the verdict that let them through. Every forwarded request is
//! registered here per worker; on each tick, every token with open streams is revalidated (a
//! still-valid cached verdict counts, else one batched `/v1/revalidate` call), and the streams
//! of a token that is now refused, or that could not be revalidated for `grace_ms`, are closed.
//!
//! The bound: a revocation reaches an open stream within the verdict TTL (a cached verdict is
//! trusted that long, as for new requests) plus one tick plus the callout. A change of the
//! token's limits (its model allow-list) closes its open streams within the same bound: the
//! streams were checked against the old list, and reconnecting checks them against the new
//! one.

use std::collections::{HashMap, HashSet};

use ptk_wire::{
    DenyReason, Limits, Provider, RevalidateEntry, RevalidateRequest, RevalidateResponse,
    Revalidation, REVALIDATE_PATH,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::activity::Call;
use crate::config::FilterConfig;
use crate::pipeline::callout_headers;
use crate::verdict_cache::cache_key;

/// Settings (plugin config `streams`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamsConfig {
    /// Revalidate open streams and close revoked ones.
    pub revalidate: bool,
    /// How long (ms) an open stream may go on without a successful revalidation (token-service
    /// unreachable) before it is closed too, failing closed like new requests.
    pub grace_ms: u64,
}

impl Default for StreamsConfig {
    fn default() -> Self {
        StreamsConfig {
            revalidate: true,
            grace_ms: 30_000,
        }
    }
}

/// Most tokens revalidated in one batch: as many as the token-service takes in one call.
pub const MAX_BATCH: usize = ptk_wire::MAX_REVALIDATE_ENTRIES;

/// Most batches a worker sends per tick; tokens beyond `MAX_BATCH × MAX_BATCHES_PER_TICK`
/// (4,096) wait for the next tick, oldest verdict first, and are never timed out for waiting.
pub const MAX_BATCHES_PER_TICK: usize = 4;

/// One token (for one provider) with open streams on this worker.
#[derive(Debug)]
struct Token {
    hash: String,
    provider: Provider,
    /// Until when the token is known valid (a check, a cached verdict or a revalidation).
    valid_until_ms: u64,
    /// A revalidation for it is in flight.
    asking: bool,
    /// Since when its revalidations have failed (no answer, or an answer that says nothing
    /// about the token); `None` while they succeed or before the first is sent.
    failing_since_ms: Option<u64>,
    /// [`limits_tag`] of the limits its streams were checked against; `None`: not compared
    /// (bound requests, checked when their credential was minted).
    limits_tag: Option<u64>,
    contexts: HashSet<u32>,
}

/// A short fingerprint of the limits that bind an open request (0: none), to tell when they
/// change: the model allow-list. Not the budget grant: every check hands out a new one (a
/// fingerprint over it changed at each check and closed every open request of a budgeted
/// token), and a revalidation carries none; an open request's spend is settled against the
/// budget when it ends whatever grant is current.
pub fn limits_tag(limits: Option<&Limits>) -> u64 {
    let binding = limits.map(|l| Limits {
        models: l.models.clone(),
        ..Limits::default()
    });
    let Some(json) = binding
        .filter(|l| *l != Limits::default())
        .and_then(|l| serde_json::to_vec(&l).ok())
    else {
        return 0;
    };
    let digest = Sha256::digest(&json);
    let mut tag = [0u8; 8];
    tag.copy_from_slice(digest.get(..8).unwrap_or(&[0u8; 8]));
    u64::from_le_bytes(tag).max(1)
}

/// A worker's open forwarded requests, grouped by verdict-cache key.
#[derive(Debug, Default)]
pub struct OpenStreams {
    by_context: HashMap<u32, String>,
    tokens: HashMap<String, Token>,
}

/// What a revalidation said about one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revalidated {
    /// Still valid for this long (ms).
    Valid {
        /// How long the answer may be trusted.
        ttl_ms: u64,
        /// [`limits_tag`] of the token's limits now.
        limits_tag: u64,
    },
    /// Refused now: close its streams.
    Refused(DenyReason),
}

impl OpenStreams {
    /// Registers a forwarded request, known valid until `valid_until_ms`, checked against the
    /// limits of tag `limits_tag` (`None`: not compared). The first request of a token sets
    /// its tag: a later one checked against other limits is closed with the others when the
    /// tag is found changed, and reconnects.
    pub fn open(
        &mut self,
        context_id: u32,
        cache_key: &str,
        hash: &str,
        provider: Provider,
        valid_until_ms: u64,
        limits_tag: Option<u64>,
    ) {
        self.close(context_id);
        let token = self
            .tokens
            .entry(cache_key.to_string())
            .or_insert_with(|| Token {
                hash: hash.to_string(),
                provider,
                valid_until_ms,
                asking: false,
                failing_since_ms: None,
                limits_tag,
                contexts: HashSet::new(),
            });
        token.valid_until_ms = token.valid_until_ms.max(valid_until_ms);
        token.contexts.insert(context_id);
        self.by_context.insert(context_id, cache_key.to_string());
    }

    /// Forgets a request (its context is gone).
    pub fn close(&mut self, context_id: u32) {
        let Some(key) = self.by_context.remove(&context_id) else {
            return;
        };
        if let Some(token) = self.tokens.get_mut(&key) {
            token.contexts.remove(&context_id);
            if token.contexts.is_empty() {
                self.tokens.remove(&key);
            }
        }
    }

    /// Open requests on this worker.
    pub fn len(&self) -> usize {
        self.by_context.len()
    }

    /// True when nothing is open.
    pub fn is_empty(&self) -> bool {
        self.by_context.is_empty()
    }

    /// Extends tokens whose cached verdict is still valid: `cached(key)` gives the cache
    /// entry's validity and [`limits_tag`], if any. Returns the contexts to close: those of
    /// tokens whose cached limits are no longer the ones their streams were checked against.
    pub fn refresh_from_cache(
        &mut self,
        now_ms: u64,
        cached: impl Fn(&str) -> Option<(u64, u64)>,
    ) -> Vec<u32> {
        let mut changed = Vec::new();
        for (key, token) in &mut self.tokens {
            let entry = cached(key).filter(|(until, _)| *until > now_ms);
            if let Some((until, tag)) = entry {
                if token.limits_tag.is_some_and(|t| t != tag) {
                    changed.push(key.clone());
                } else if token.valid_until_ms <= now_ms {
                    token.valid_until_ms = until;
                }
            }
        }
        changed.iter().flat_map(|k| self.take_contexts(k)).collect()
    }

    /// Tokens due for revalidation, at most [`MAX_BATCH`] of them, those whose verdict ran out
    /// first (so none starves behind others), marked as being asked; `None` when none is due.
    pub fn due(&mut self, now_ms: u64) -> Option<Vec<(String, RevalidateEntry)>> {
        let mut due: Vec<(u64, &String, &mut Token)> = self
            .tokens
            .iter_mut()
            .filter(|(_, t)| t.valid_until_ms <= now_ms && !t.asking)
            .map(|(key, t)| (t.valid_until_ms, key, t))
            .collect();
        due.sort_unstable_by_key(|(until, _, _)| *until);
        let batch: Vec<(String, RevalidateEntry)> = due
            .into_iter()
            .take(MAX_BATCH)
            .map(|(_, key, t)| {
                t.asking = true;
                let entry = RevalidateEntry {
                    hash: t.hash.clone(),
                    provider: t.provider,
                };
                (key.clone(), entry)
            })
            .collect();
        (!batch.is_empty()).then_some(batch)
    }

    /// Applies one answer; returns the contexts to close.
    pub fn revalidated(&mut self, key: &str, answer: Revalidated, now_ms: u64) -> Vec<u32> {
        let Some(token) = self.tokens.get_mut(key) else {
            return Vec::new();
        };
        token.asking = false;
        match answer {
            Revalidated::Valid { limits_tag, .. }
                if token.limits_tag.is_some_and(|t| t != limits_tag) =>
            {
                self.take_contexts(key)
            }
            Revalidated::Valid { ttl_ms, .. } => {
                token.valid_until_ms = token.valid_until_ms.max(now_ms.saturating_add(ttl_ms));
                token.failing_since_ms = None;
                Vec::new()
            }
            // A rate limit or an unavailable store says nothing about the token itself: a
            // failed revalidation, like no answer.
            Revalidated::Refused(DenyReason::RateLimited | DenyReason::StoreUnavailable) => {
                token.failing_since_ms.get_or_insert(now_ms);
                Vec::new()
            }
            Revalidated::Refused(_) => self.take_contexts(key),
        }
    }

    /// A revalidation got no usable answer for these keys (those still being asked): they may
    /// be asked again, and their grace period runs from the first such failure.
    pub fn unanswered(&mut self, keys: &[String], now_ms: u64) {
        for key in keys {
            if let Some(token) = self.tokens.get_mut(key).filter(|t| t.asking) {
                token.asking = false;
                token.failing_since_ms.get_or_insert(now_ms);
            }
        }
    }

    /// Contexts of tokens whose revalidations have failed for `grace_ms`: to close. A token
    /// that merely waited its turn is never overdue.
    pub fn overdue(&mut self, now_ms: u64, grace_ms: u64) -> Vec<u32> {
        let keys: Vec<String> = self
            .tokens
            .iter()
            .filter(|(_, t)| {
                t.failing_since_ms
                    .is_some_and(|since| since.saturating_add(grace_ms) <= now_ms)
            })
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().flat_map(|k| self.take_contexts(k)).collect()
    }

    fn take_contexts(&mut self, key: &str) -> Vec<u32> {
        let Some(token) = self.tokens.remove(key) else {
            return Vec::new();
        };
        for context in &token.contexts {
            self.by_context.remove(context);
        }
        let mut contexts: Vec<u32> = token.contexts.into_iter().collect();
        contexts.sort_unstable();
        contexts
    }
}

/// The revalidation callout (headers and JSON body) for these entries.
pub fn revalidate_call(config: &FilterConfig, secret: &str, entries: Vec<RevalidateEntry>) -> Call {
    let body = serde_json::to_vec(&RevalidateRequest { entries }).unwrap_or_default();
    (callout_headers(config, secret, REVALIDATE_PATH), body)
}

/// The answers of a revalidation callout, by cache key; `None` when the callout failed or
/// answered something else than a 200 with a verdict list.
pub fn parse_revalidation(
    status: Option<u16>,
    body: Option<&[u8]>,
) -> Option<Vec<(String, Revalidated)>> {
    if status != Some(200) {
        return None;
    }
    let parsed: RevalidateResponse = serde_json::from_slice(body?).ok()?;
    Some(
        parsed
            .verdicts
            .into_iter()
            .map(|v| match v {
                Revalidation::Valid {
                    hash,
                    provider,
                    ttl_ms,
                    limits,
                } => {
                    let limits_tag = limits_tag(limits.as_ref());
                    let answer = Revalidated::Valid { ttl_ms, limits_tag };
                    (cache_key(&hash, provider), answer)
                }
                Revalidation::Refused {
                    hash,
                    provider,
                    reason,
                } => (cache_key(&hash, provider), Revalidated::Refused(reason)),
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_callout_and_its_answer() {
        let config = FilterConfig::parse(b"").unwrap();
        let entry = RevalidateEntry {
            hash: "ab".into(),
            provider: Provider::Gemini,
        };
        let (headers, body) = revalidate_call(&config, "secret-value-1234", vec![entry]);
        assert!(headers.contains(&(":path".to_string(), REVALIDATE_PATH.to_string())));
        let sent: RevalidateRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent.entries[0].hash, "ab");
        let answer = br#"{"verdicts":[{"verdict":"refused","hash":"ab","provider":"gemini","reason":"invalid"}]}"#;
        assert_eq!(
            parse_revalidation(Some(200), Some(answer)),
            Some(vec![(
                cache_key("ab", Provider::Gemini),
                Revalidated::Refused(DenyReason::Invalid)
            )])
        );
        assert_eq!(parse_revalidation(Some(404), Some(answer)), None);
        assert_eq!(parse_revalidation(None, None), None);
        assert_eq!(parse_revalidation(Some(200), Some(b"junk")), None);
    }

    #[test]
    fn the_limits_tag_follows_the_model_allow_list_not_the_budget_grant() {
        let grant = |id| {
            Some(ptk_wire::BudgetGrant {
                id,
                tokens: 1000,
                expires_in_ms: 1000,
            })
        };
        let with = |models: Option<&[&str]>, budget| Limits {
            models: models.map(|m| m.iter().map(|s| s.to_string()).collect()),
            budget,
        };
        // A budget alone binds nothing the tag follows: as if no limits (what a revalidation
        // of a budgeted token says).
        assert_eq!(limits_tag(Some(&with(None, grant(1)))), 0);
        assert_eq!(limits_tag(Some(&with(None, grant(1)))), limits_tag(None));
        // Grants change at every check; the tag does not.
        let a = limits_tag(Some(&with(Some(&["gpt-5*"]), grant(1))));
        let b = limits_tag(Some(&with(Some(&["gpt-5*"]), grant(2))));
        let revalidated = limits_tag(Some(&with(Some(&["gpt-5*"]), None)));
        assert!(a != 0 && a == b && b == revalidated);
        // The allow-list does.
        assert_ne!(a, limits_tag(Some(&with(Some(&["gpt-4*"]), grant(1)))));
    }

    fn streams() -> OpenStreams {
        let mut s = OpenStreams::default();
        s.open(1, "k1", "h1", Provider::Openai, 1_000, Some(0));
        s.open(2, "k1", "h1", Provider::Openai, 1_000, Some(0));
        s.open(3, "k2", "h2", Provider::Gemini, 5_000, Some(0));
        s
    }

    #[test]
    fn nothing_is_due_while_the_verdict_holds() {
        let mut s = streams();
        assert!(s.due(999).is_none());
        let due = s.due(1_000).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "k1");
        assert_eq!(due[0].1.hash, "h1");
        assert!(
            s.due(1_000).is_none(),
            "a token being asked is not asked twice"
        );
    }

    #[test]
    fn a_refused_token_closes_all_its_streams_and_only_its() {
        let mut s = streams();
        s.due(2_000);
        let closed = s.revalidated("k1", Revalidated::Refused(DenyReason::Invalid), 2_000);
        assert_eq!(closed, vec![1, 2]);
        assert_eq!(s.len(), 1);
        s.close(1); // the context ends later: nothing left to forget
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_valid_answer_extends_and_transient_refusals_keep_streams() {
        let mut s = streams();
        s.due(1_000);
        assert!(s
            .revalidated(
                "k1",
                Revalidated::Valid {
                    ttl_ms: 1_000,
                    limits_tag: 0
                },
                1_000
            )
            .is_empty());
        assert!(s.due(1_999).is_none());
        s.due(2_000);
        let rate = Revalidated::Refused(DenyReason::RateLimited);
        assert!(s.revalidated("k1", rate, 2_000).is_empty());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn a_fresh_cached_verdict_counts_as_valid() {
        let mut s = streams();
        s.refresh_from_cache(1_500, |k| (k == "k1").then_some((3_000, 0)));
        assert!(s.due(2_999).is_none());
        s.refresh_from_cache(3_500, |_| Some((3_000, 0))); // stale cache entries do not count
        assert!(s.due(3_500).is_some());
    }

    #[test]
    fn streams_nobody_could_revalidate_are_closed_after_the_grace() {
        let mut s = streams();
        let asked = s.due(1_000).unwrap();
        s.unanswered(
            &asked.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            1_000,
        );
        assert!(s.overdue(30_999, 30_000).is_empty());
        assert_eq!(s.overdue(31_000, 30_000), vec![1, 2]);
        // k2 was never asked (its verdict still held): it is not overdue, however long.
        assert!(s.overdue(100_000, 30_000).is_empty());
        let asked = s.due(100_000).unwrap();
        s.unanswered(
            &asked.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            100_000,
        );
        assert_eq!(s.overdue(130_000, 30_000), vec![3]);
        assert!(s.is_empty());
    }

    #[test]
    fn a_success_resets_the_grace_and_answered_keys_are_not_failures() {
        let mut s = streams();
        let keys: Vec<String> = s.due(1_000).unwrap().into_iter().map(|(k, _)| k).collect();
        s.unanswered(&keys, 1_000);
        s.due(2_000);
        s.revalidated(
            "k1",
            Revalidated::Valid {
                ttl_ms: 1_000,
                limits_tag: 0,
            },
            2_000,
        );
        // The root marks every asked key unanswered after applying the answers: an answered
        // one must not count as a failure.
        s.unanswered(&keys, 2_000);
        assert!(s.overdue(40_000, 30_000).is_empty());
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn thousands_of_tokens_are_all_revalidated_and_none_starves() {
        // More open tokens on one worker than a tick may ask about, every one due each tick:
        // the ones whose verdict ran out first go first, so each is asked every other tick at
        // worst, and none is ever cut for having waited its turn.
        let mut s = OpenStreams::default();
        let tokens = MAX_BATCH * MAX_BATCHES_PER_TICK + 904;
        for n in 0..tokens {
            let id = u32::try_from(n).unwrap();
            s.open(id, &format!("k{n}"), "h", Provider::Openai, 1_000, Some(0));
        }
        let mut last_asked: HashMap<String, u64> = HashMap::new();
        let mut now = 1_000;
        for _tick in 0..40 {
            for _ in 0..MAX_BATCHES_PER_TICK {
                let Some(batch) = s.due(now) else { break };
                for (key, _) in batch {
                    s.revalidated(
                        &key,
                        Revalidated::Valid {
                            ttl_ms: 500,
                            limits_tag: 0,
                        },
                        now,
                    );
                    last_asked.insert(key, now);
                }
            }
            assert!(s.overdue(now, 30_000).is_empty());
            if now > 3_000 {
                assert!(last_asked.values().all(|at| now - at <= 2_000));
            }
            now += 1_000;
        }
        assert_eq!(last_asked.len(), tokens);
        assert_eq!(s.len(), tokens, "no valid stream was cut");
    }

    #[test]
    fn the_oldest_verdicts_are_asked_first() {
        let mut s = OpenStreams::default();
        for n in 0..(MAX_BATCH as u64 + 10) {
            let id = u32::try_from(n).unwrap();
            // Later ids ran out earlier.
            s.open(
                id,
                &format!("k{n}"),
                "h",
                Provider::Openai,
                10_000 - n,
                Some(0),
            );
        }
        let first = s.due(20_000).unwrap();
        assert_eq!(first.len(), MAX_BATCH);
        assert!(first
            .iter()
            .any(|(k, _)| k == &format!("k{}", MAX_BATCH + 9)));
        assert!(!first.iter().any(|(k, _)| k == "k0"));
    }

    #[test]
    fn closing_contexts_forgets_tokens() {
        let mut s = streams();
        s.close(1);
        s.close(2);
        s.close(3);
        assert!(s.is_empty());
        assert!(s.due(u64::MAX).is_none());
    }
}
