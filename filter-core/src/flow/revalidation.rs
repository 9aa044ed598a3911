//! The root context's tick: revalidate the tokens of open requests whose verdict ran out
//! (closing those of refused tokens, or of tokens whose revalidations failed for the grace
//! period) and report the requests allowed from the cache.

use std::collections::HashMap;

use crate::flow::{Host, Level, Worker};
use crate::open_streams::{limits_tag, parse_revalidation, revalidate_call, MAX_BATCHES_PER_TICK};
use crate::shared_data::SharedData;
use crate::verdict_cache::CachedVerdict;

/// Revalidation callouts in flight: token id -> the cache keys asked.
#[derive(Debug, Default)]
pub struct Revalidations {
    in_flight: HashMap<u32, Vec<String>>,
}

impl Revalidations {
    /// Tokens of open streams whose verdict ran out: trust a fresh cached verdict, ask about
    /// the rest in a few batches, oldest verdicts first. Returns the requests to close: those
    /// whose revalidations have failed for the grace period.
    pub fn on_tick(&mut self, worker: &Worker, host: &mut impl Host) -> Vec<u32> {
        let now = host.now_ms();
        let overdue = {
            let mut streams = worker.streams.borrow_mut();
            if streams.is_empty() {
                return Vec::new();
            }
            let mut closing = streams.refresh_from_cache(now, |key| {
                let stored = host.shared().get(key).ok()?.0?;
                CachedVerdict::decode(&stored)
                    .filter(|e| !e.key.is_empty())
                    .map(|e| (e.valid_until_ms, limits_tag(e.limits.as_ref())))
            });
            closing.extend(streams.overdue(now, worker.config.streams.grace_ms));
            closing
        };
        for _ in 0..MAX_BATCHES_PER_TICK {
            let Some(due) = worker.streams.borrow_mut().due(now) else {
                break;
            };
            let (keys, entries): (Vec<String>, Vec<_>) = due.into_iter().unzip();
            let call = revalidate_call(&worker.config, worker.secret.expose(), entries);
            let ts = &worker.config.token_service;
            match host.dispatch(&ts.cluster, &call, ts.timeout_ms) {
                Ok(token_id) => {
                    self.in_flight.insert(token_id, keys);
                }
                Err(_) => {
                    worker.streams.borrow_mut().unanswered(&keys, now);
                    break;
                }
            }
        }
        overdue
    }

    /// A root callout came back: a revalidation closes the streams of refused tokens
    /// (returned); anything else is an activity report, best effort (a lost batch only makes
    /// `lastUsed` a little older).
    pub fn on_callout_response(
        &mut self,
        worker: &Worker,
        host: &mut impl Host,
        token_id: u32,
        status: Option<u16>,
        body: Option<&[u8]>,
    ) -> Vec<u32> {
        let Some(keys) = self.in_flight.remove(&token_id) else {
            if status != Some(204) {
                host.log(Level::Warn, "ptk filter: activity report was not accepted");
            }
            return Vec::new();
        };
        let now = host.now_ms();
        let mut streams = worker.streams.borrow_mut();
        match parse_revalidation(status, body) {
            Some(answers) => {
                let mut closing = Vec::new();
                for (key, answer) in answers {
                    closing.extend(streams.revalidated(&key, answer, now));
                }
                // Keys the answer left out may be asked again.
                streams.unanswered(&keys, now);
                closing
            }
            None => {
                host.log(
                    Level::Warn,
                    &format!("ptk filter: stream revalidation failed (status {status:?})"),
                );
                streams.unanswered(&keys, now);
                Vec::new()
            }
        }
    }

    /// Whether `token_id` is a revalidation in flight.
    pub fn expects(&self, token_id: u32) -> bool {
        self.in_flight.contains_key(&token_id)
    }
}

/// Sends the requests allowed from the cache since the last tick to the token-service.
pub fn report_activity(worker: &Worker, host: &mut impl Host) {
    let call = worker
        .activity
        .borrow_mut()
        .take_call(&worker.config, worker.secret.expose());
    let Some(call) = call else {
        return;
    };
    let ts = &worker.config.token_service;
    if host.dispatch(&ts.cluster, &call, ts.timeout_ms).is_err() {
        host.log(Level::Warn, "ptk filter: could not send an activity report");
    }
}
