//! Token usage in the admin API (a session needed, read-only): one token's totals per model and
//! per day and its stored rows, the fleet's totals per model and per token (with the token's
//! label), and a CSV export of the rows. The dashboard's usage view (`assets/usage.js`) reads
//! these.
//! `?since=YYYY-MM-DD` (a UTC day, inclusive) everywhere; the first of this month by default.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::error::AdminError;
use super::guard::Session;
use super::input::parse_hash;
use super::AdminState;
use crate::pricing::format_usd;
use crate::store::MAX_USAGE_ROWS;
use crate::usage::view::{counts_json, model_json, row_json, since_day};
use crate::usage::{per_day, per_model, UsageRow};

/// `?since=`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinceQuery {
    since: Option<String>,
}

fn since(query: Result<Query<SinceQuery>, QueryRejection>) -> Result<String, AdminError> {
    let Query(query) = query.map_err(|e| AdminError::BadRequest(e.body_text()))?;
    since_day(query.since.as_deref()).map_err(AdminError::BadRequest)
}

/// `GET /admin/api/tokens/{hash}/usage`: `{token, since, models, per_day, days}`: totals per
/// model and per UTC day (newest first), and the stored rows (a deleted token's usage is kept
/// and still answers).
pub async fn of_token(
    _: Session,
    State(state): State<AdminState>,
    hash: Result<Path<String>, PathRejection>,
    query: Result<Query<SinceQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let Path(hash) = hash.map_err(|_| AdminError::BadRequest("bad token id".into()))?;
    let hash = parse_hash(&hash)?;
    let since = since(query)?;
    let rows = state.usage.usage_of(hash, &since).await?;
    let models: Vec<Value> = per_model(&rows).iter().map(model_json).collect();
    let totals_per_day: Vec<Value> = per_day(&rows)
        .iter()
        .map(|(day, counts)| with_field(counts_json(counts), "day", json!(day)))
        .collect();
    let days: Vec<Value> = rows.iter().map(row_json).collect();
    Ok(Json(json!({
        "token": hash, "since": since, "models": models, "per_day": totals_per_day, "days": days
    })))
}

/// `GET /admin/api/usage`: `{since, models, tokens}`, the fleet's totals per model and per
/// token (costliest first); each token with its `label` (`null` once deleted: its usage is
/// kept).
pub async fn fleet(
    _: Session,
    State(state): State<AdminState>,
    query: Result<Query<SinceQuery>, QueryRejection>,
) -> Result<Json<Value>, AdminError> {
    let since = since(query)?;
    // Summed in the store: every row counts, however many there are.
    let models: Vec<Value> = state
        .usage
        .usage_by_model(&since)
        .await?
        .iter()
        .map(model_json)
        .collect();
    let by_token = state.usage.usage_by_token(&since).await?;
    let hashes: Vec<String> = by_token.iter().map(|(hash, _)| hash.clone()).collect();
    let labels = state.store.labels(&hashes).await?;
    let mut tokens = Vec::with_capacity(by_token.len());
    for (hash, counts) in by_token {
        let label = labels.get(&hash);
        let value = with_field(counts_json(&counts), "token", json!(hash));
        tokens.push(with_field(value, "label", json!(label)));
    }
    Ok(Json(
        json!({"since": since, "models": models, "tokens": tokens}),
    ))
}

/// `value` (an object) with `name` set to `field`.
fn with_field(mut value: Value, name: &str, field: Value) -> Value {
    if let Some(object) = value.as_object_mut() {
        object.insert(name.into(), field);
    }
    value
}

/// The CSV export's columns.
const CSV_HEADER: &str = "day,token,label,provider,model,api,requests,incomplete,input_tokens,\
cached_input_tokens,cache_write_tokens,output_tokens,reasoning_tokens,cost_usd,unpriced_requests\n";

/// `GET /admin/api/usage.csv`: every stored row since the day, one line each (a cell that
/// could start a spreadsheet formula is prefixed with `'`); more than [`MAX_USAGE_ROWS`] is
/// refused (400), never cut.
pub async fn csv(
    _: Session,
    State(state): State<AdminState>,
    query: Result<Query<SinceQuery>, QueryRejection>,
) -> Result<impl IntoResponse, AdminError> {
    let since = since(query)?;
    let rows = state
        .usage
        .usage_since(&since, MAX_USAGE_ROWS.saturating_add(1))
        .await?;
    if rows.len() > MAX_USAGE_ROWS {
        return Err(AdminError::BadRequest(format!(
            "more than {MAX_USAGE_ROWS} rows since {since}: export a later day at a time"
        )));
    }
    let mut hashes: Vec<String> = rows.iter().map(|row| row.key.hash.clone()).collect();
    hashes.sort_unstable();
    hashes.dedup();
    let labels = state.store.labels(&hashes).await?;
    let mut out = String::from(CSV_HEADER);
    for row in &rows {
        // A deleted token's rows keep its hash; its label cell is empty.
        let label = labels.get(&row.key.hash).map_or("", String::as_str);
        out.push_str(&csv_line(row, label));
    }
    let disposition = format!("attachment; filename=\"ptk-usage-since-{since}.csv\"");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        out,
    ))
}

fn csv_line(row: &UsageRow, label: &str) -> String {
    let (k, c) = (&row.key, &row.counts);
    let cost = if c.unpriced_requests == 0 {
        format_usd(c.cost_nano_usd)
    } else {
        String::new()
    };
    format!(
        "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
        k.day,
        k.hash,
        cell(label),
        cell(&k.provider),
        cell(&k.model),
        cell(&k.api),
        c.requests,
        c.incomplete,
        c.usage.input,
        c.usage.cached_input,
        c.usage.cache_write,
        c.usage.output,
        c.usage.reasoning,
        cost,
        c.unpriced_requests,
    )
}

/// A text cell: quoted when it holds a comma, quote or line end (RFC 4180), and never read as
/// a formula by a spreadsheet (a model name is the provider's text).
fn cell(text: &str) -> String {
    let guarded = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}
