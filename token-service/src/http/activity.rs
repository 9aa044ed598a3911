//! `POST /v1/usage` (`ptk_wire::ACTIVITY_PATH`, its wire-1.0 spelling): batched activity
//! (request counts) from the filter's workers, for requests allowed from their
//! verdict cache (which this service never saw as checks), and the token usage they metered,
//! priced and added to today's (UTC) rollups.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ptk_wire::usage::MAX_MODEL_LEN;
use ptk_wire::{ActivityReport, UsageEntry};

use super::check::{authorize, CheckApiError};
use super::AppState;
use crate::budget::threshold_events;
use crate::pricing::PriceTable;
use crate::token::is_token_hash;
use crate::usage::rollup;

/// Most entries accepted in one report (a worker reports once a second).
const MAX_ENTRIES: usize = 100_000;

/// Largest report body accepted (bytes): a worker's fullest usage batch with the longest
/// model names, escaped, and its request counts fit well within it.
pub const MAX_REPORT_BYTES: usize = 16 * 1024 * 1024;

/// The handler: stamps lastUsed (throttled) and adds the counts. Unknown hashes are ignored
/// by the store (a stamp never creates a token).
pub async fn activity(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, CheckApiError> {
    authorize(&state, &headers)?;
    let report: ActivityReport = serde_json::from_slice(&body)
        .map_err(|_| CheckApiError::BadRequest("body must be a JSON ActivityReport"))?;
    if report.entries.len() > MAX_ENTRIES || !report.entries.iter().all(|e| is_token_hash(&e.hash))
    {
        return Err(CheckApiError::BadRequest(
            "entries must be at most 100000, each with a 64-hex hash",
        ));
    }
    for entry in &report.entries {
        state.checker.record_activity(&entry.hash, entry.count);
    }
    if !report.token_usage.iter().all(plausible)
        || report.token_usage.len() > MAX_ENTRIES
        || report.grant_releases.len() > MAX_ENTRIES
    {
        return Err(CheckApiError::BadRequest(
            "token_usage must be at most 100000 entries, each with a 64-hex hash, a provider \
             name of 1 to 64 characters and a model name of at most 128",
        ));
    }
    for entry in &report.token_usage {
        state.metrics.usage(entry);
    }
    if report.key_events.len() > MAX_ENTRIES {
        return Err(CheckApiError::BadRequest(
            "key_events must be at most 100000",
        ));
    }
    state.checker.key_events(&report.key_events).await;
    let now = chrono::Utc::now();
    let day = now.format("%Y-%m-%d").to_string();
    let rows = rollup(&report.token_usage, &day, PriceTable::bundled());
    // The rollups and the budget ledger in one transaction, then the grants' releases.
    if let Err(e) = state.budgets.settle(&report, &rows, now).await {
        // The filter does not resend a report: the counts are lost, and said so.
        tracing::error!(error = %e, rows = rows.len(), "could not store metered token usage");
        return Err(CheckApiError::Unavailable);
    }
    notify_thresholds(&state, &report);
    Ok(StatusCode::NO_CONTENT)
}

/// Looks, off the report's path (a task of its own), for budget thresholds the settled spend
/// of the report's tokens has reached, and hands them to the notifier.
fn notify_thresholds(state: &AppState, report: &ActivityReport) {
    if state.notifier.thresholds().is_empty() || report.token_usage.is_empty() {
        return;
    }
    let hashes: BTreeSet<String> = report.token_usage.iter().map(|e| e.hash.clone()).collect();
    let budgets = state.budgets.store().clone();
    let tokens = state.store.clone();
    let notifier = state.notifier.clone();
    tokio::spawn(async move {
        let now = chrono::Utc::now();
        match threshold_events(
            budgets.as_ref(),
            tokens.as_ref(),
            &hashes,
            notifier.thresholds(),
            now,
        )
        .await
        {
            Ok(events) => events.into_iter().for_each(|e| notifier.notify(e)),
            Err(e) => {
                tracing::warn!(error = %e, "could not read budgets for threshold notifications")
            }
        }
    });
}

/// An entry the store can key: a token hash, a provider and a model name of sane sizes.
fn plausible(entry: &UsageEntry) -> bool {
    is_token_hash(&entry.hash)
        && (1..=64).contains(&entry.provider.len())
        && entry.model.len() <= MAX_MODEL_LEN
}
