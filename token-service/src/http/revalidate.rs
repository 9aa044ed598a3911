//! `POST /v1/revalidate`: are the tokens of the filter's still-open requests (long SSE streams,
//! WebSockets) still valid? Answers without charging the rate limit and without any key.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::Json;
use ptk_wire::{RevalidateRequest, RevalidateResponse, MAX_REVALIDATE_ENTRIES};

use super::check::{authorize, CheckApiError};
use super::AppState;
use crate::token::is_token_hash;

/// The handler: one verdict per entry, in the order asked.
pub async fn revalidate(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<RevalidateResponse>, CheckApiError> {
    authorize(&state, &headers)?;
    let request: RevalidateRequest = serde_json::from_slice(&body)
        .map_err(|_| CheckApiError::BadRequest("body must be a JSON RevalidateRequest"))?;
    if request.entries.len() > MAX_REVALIDATE_ENTRIES
        || !request.entries.iter().all(|e| is_token_hash(&e.hash))
    {
        return Err(CheckApiError::BadRequest(
            "entries must be at most 1024, each with a 64-hex hash",
        ));
    }
    let mut verdicts = Vec::with_capacity(request.entries.len());
    for entry in &request.entries {
        verdicts.push(state.checker.revalidate(entry).await);
    }
    Ok(Json(RevalidateResponse { verdicts }))
}
