//! Activity: requests allowed from the cache, counted per token and sent to the token-service
//! in one batch per tick (never on the request path), so `lastUsed` and request counts stay
//! true. (Not "usage": that is the providers' token counts, which metering adds.)

use std::collections::HashMap;

use ptk_wire::{ActivityEntry, ActivityReport, ACTIVITY_PATH};

use crate::config::FilterConfig;
use crate::pipeline::callout_headers;

/// Headers and body of an HTTP callout.
pub type Call = (Vec<(String, String)>, Vec<u8>);

/// Counts since the last flush, per token hash.
#[derive(Debug, Default)]
pub struct ActivityBatch {
    counts: HashMap<String, u64>,
}

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

    /// The activity call (headers and JSON body) for everything counted so far, emptying the
    /// batch; `None` when there is nothing to report.
    pub fn take_call(&mut self, config: &FilterConfig, secret: &str) -> Option<Call> {
        if self.counts.is_empty() {
            return None;
        }
        let mut entries: Vec<ActivityEntry> = self
            .counts
            .drain()
            .map(|(hash, count)| ActivityEntry { hash, count })
            .collect();
        entries.sort_by(|a, b| a.hash.cmp(&b.hash));
        let body = serde_json::to_vec(&ActivityReport { entries }).ok()?;
        Some((callout_headers(config, secret, ACTIVITY_PATH), body))
    }
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
}
