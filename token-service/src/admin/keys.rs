//! The provider keys on the admin surface: `GET /admin/api/keys` and the dashboard's keys
//! section list each provider's keys by name (label or last 4 characters, never the key) with
//! their pools and state; `POST /admin/api/keys/reload` re-reads them (the keys file, then the
//! environment) and swaps them in atomically, the same as `SIGHUP`, answering which providers
//! now have a key.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, SecondsFormat, Utc};
use maud::{html, Markup};
use serde::Serialize;
use serde_json::{json, Value};

use super::error::AdminError;
use super::guard::{Session, WriteSession};
use super::AdminState;
use crate::key_health::KeyState;
use crate::key_pools::NamedKey;
use crate::keys::known;
use crate::signals::reload_and_log;

/// One key as the keys view shows it.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// Its name: the label, or `...` and the last 4 characters.
    key: String,
    /// The pools it is in (`null`: the default pool).
    pools: Vec<Option<String>>,
    /// `usable`, `cooling` (a filter reported a 429) or `refused` (its provider refused it).
    state: &'static str,
    /// Until when it cools down or stays refused (RFC 3339); `null` when usable or unknown.
    until: Option<String>,
}

/// One provider's keys.
#[derive(Debug, Serialize)]
pub struct ProviderKeysView {
    /// The provider.
    provider: &'static str,
    /// Its keys over every pool, each once, in configuration order.
    keys: Vec<KeyView>,
}

fn rfc3339(at: Option<DateTime<Utc>>) -> Option<String> {
    at.map(|at| at.to_rfc3339_opts(SecondsFormat::Secs, true))
}

fn key_view(key: &NamedKey, pools: &[Option<&str>], state: KeyState) -> KeyView {
    let (name, until) = match state {
        KeyState::Usable => ("usable", None),
        KeyState::Cooling { until_ms } => (
            "cooling",
            i64::try_from(until_ms)
                .ok()
                .and_then(DateTime::from_timestamp_millis),
        ),
        KeyState::Refused { until_s } => (
            "refused",
            i64::try_from(until_s)
                .ok()
                .filter(|s| *s > 0)
                .and_then(|s| DateTime::from_timestamp(s, 0)),
        ),
    };
    KeyView {
        key: key.id.clone(),
        pools: pools.iter().map(|p| p.map(str::to_owned)).collect(),
        state: name,
        until: rfc3339(until),
    }
}

/// Every provider with a key, with its keys' states.
pub async fn views(state: &AdminState) -> Vec<ProviderKeysView> {
    let keys = state.key_ring.current();
    let mut out = Vec::new();
    for (provider, _) in known() {
        let of = keys.keys_of(provider);
        if of.is_empty() {
            continue;
        }
        let named: Vec<&NamedKey> = of.iter().map(|(k, _)| *k).collect();
        let states = state.key_health.states(provider, &named).await;
        out.push(ProviderKeysView {
            provider: provider.as_str(),
            keys: of
                .iter()
                .zip(states)
                .map(|((key, pools), st)| key_view(key, pools, st))
                .collect(),
        });
    }
    out
}

/// `GET /admin/api/keys`: each provider's keys by name, pools and state.
pub async fn list(_: Session, State(state): State<AdminState>) -> Json<Value> {
    Json(json!({ "providers": views(&state).await }))
}

/// The dashboard's keys section (server-rendered; maud escapes every name).
pub fn panel(providers: &[ProviderKeysView]) -> Markup {
    html! {
        section #keys {
            h2 { "Provider keys" }
            p.hint {
                "By label or last 4 characters, never the key. Cooling: a filter saw a 429 and \
                 rests the key on its Envoy; refused: the provider refused it (401), out of \
                 every pool. Reload the page to refresh."
            }
            @if providers.is_empty() { p.empty { "No provider keys configured." } }
            @for p in providers {
                h3 { (p.provider) }
                table.keys data-provider=(p.provider) {
                    thead { tr { th { "Key" } th { "Pools" } th { "State" } } }
                    tbody {
                        @for k in &p.keys {
                            tr data-key=(k.key) data-state=(k.state) {
                                td.key { code { (k.key) } }
                                td.pools {
                                    @for (i, pool) in k.pools.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (pool.as_deref().unwrap_or("(default)"))
                                    }
                                }
                                td.state {
                                    span class=(format!("state key-{}", k.state)) { (k.state) }
                                    @if let Some(until) = &k.until {
                                        " until " time datetime=(until) { (until) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

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
