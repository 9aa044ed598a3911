//! `POST /v1/usage` (`ptk_wire::ACTIVITY_PATH`, its wire-1.0 spelling): batched activity
//! (request counts) from the filter's workers, for requests allowed from their
//! verdict cache (which this service never saw as checks).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use ptk_wire::ActivityReport;

use super::check::{authorize, CheckApiError};
use super::AppState;
use crate::token::is_token_hash;

/// Most entries accepted in one report (a worker reports once a second).
const MAX_ENTRIES: usize = 100_000;

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
    Ok(StatusCode::NO_CONTENT)
}
