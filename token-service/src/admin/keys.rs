//! `POST /admin/api/keys/reload`: re-reads the provider keys (the keys file, then the
//! environment) and swaps them in atomically, the same as `SIGHUP`. Answers which providers
//! now have a key; never a key.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::AdminError;
use super::guard::WriteSession;
use super::AdminState;
use crate::signals::reload_and_log;

/// The handler: a write (session, origin and CSRF checks), like any other change.
pub async fn reload(
    _: WriteSession,
    State(state): State<AdminState>,
) -> Result<Json<Value>, AdminError> {
    let providers = reload_and_log(&state.key_ring, &state.metrics, "admin API")
        .map_err(|e| AdminError::KeysReload(e.to_string()))?;
    Ok(Json(json!({
        "providers": providers,
        "keys_file": state.key_ring.file().is_some(),
    })))
}
