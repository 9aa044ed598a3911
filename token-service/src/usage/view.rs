//! The one JSON shape of usage totals (CLI `--json`, admin API) and the `since` day both take.

use chrono::{NaiveDate, Utc};
use serde_json::{json, Value};

use super::rollup::{ModelTotals, UsageCounts, UsageRow};
use crate::pricing::format_usd;

/// The first day counted when none is given: the first of the current month (UTC).
pub fn month_start() -> String {
    Utc::now().format("%Y-%m-01").to_string()
}

/// `since` as a UTC calendar day (`YYYY-MM-DD`); the month's first day when absent; `Err`
/// with what was wrong.
pub fn since_day(text: Option<&str>) -> Result<String, String> {
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return Ok(month_start());
    };
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map(|day| day.format("%Y-%m-%d").to_string())
        .map_err(|_| format!("since must be a day like 2026-11-01, got {text:?}"))
}

/// Counts as JSON: requests, tokens, incomplete, the cost in USD of the priced responses (a
/// string with six decimals, and exact as `cost_nano_usd`, an integer), and how many responses had no price (`unpriced_requests`,
/// `unknown_price` when any: the cost then leaves them out).
pub fn counts_json(c: &UsageCounts) -> Value {
    json!({
        "requests": c.requests,
        "input_tokens": c.usage.input,
        "cached_input_tokens": c.usage.cached_input,
        "cache_write_tokens": c.usage.cache_write,
        "output_tokens": c.usage.output,
        "reasoning_tokens": c.usage.reasoning,
        "incomplete": c.incomplete,
        "cost_usd": format_usd(c.cost_nano_usd),
        "cost_nano_usd": c.cost_nano_usd,
        "unpriced_requests": c.unpriced_requests,
        "unknown_price": c.unpriced_requests > 0,
    })
}

/// One model's totals as JSON: `provider`, `model` and [`counts_json`].
pub fn model_json(m: &ModelTotals) -> Value {
    let mut value = counts_json(&m.counts);
    if let Some(object) = value.as_object_mut() {
        object.insert("provider".into(), json!(m.provider));
        object.insert("model".into(), json!(m.model));
    }
    value
}

/// One stored row as JSON: its key and [`counts_json`].
pub fn row_json(row: &UsageRow) -> Value {
    let mut value = counts_json(&row.counts);
    if let Some(object) = value.as_object_mut() {
        let k = &row.key;
        object.insert("day".into(), json!(k.day));
        object.insert("provider".into(), json!(k.provider));
        object.insert("model".into(), json!(k.model));
        object.insert("api".into(), json!(k.api));
    }
    value
}
