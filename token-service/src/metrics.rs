//! Prometheus metrics of the token-service, served as OpenMetrics text on `GET /metrics` of
//! the metrics listener (`PTK_METRICS_LISTEN`).
//!
//! Why `prometheus-client`: it is the Prometheus project's own Rust client, with typed label
//! sets (a label can only be one of the values we name here) and no global registry, so tests
//! build as many independent apps as they like. Labels are fixed words (outcomes, operations,
//! actions), or providers' and models' names (bounded): never a token, a hash or a key.

use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use ptk_wire::{CheckResponse, DenyReason};

/// The `outcome` of a check: `allow` or the deny reason's wire name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The store or limiter operation that failed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    operation: &'static str,
}

/// An admin action (`create`, `update`, `delete`, `keys_reload`, `login`...) and its result.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabel {
    action: &'static str,
    result: &'static str,
}

/// Token usage by provider, model and token type, named as the OpenTelemetry GenAI semantic
/// conventions name them (`gen_ai.provider.name`, `gen_ai.response.model`,
/// `gen_ai.token.type`), dots as underscores.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabel {
    gen_ai_provider_name: String,
    gen_ai_response_model: String,
    gen_ai_token_type: &'static str,
}

/// Metered responses by provider, model and whether their final usage was seen.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResponseLabel {
    gen_ai_provider_name: String,
    gen_ai_response_model: String,
    usage: &'static str,
}

/// A provider key by its name (label or `...` + last 4 characters, never more).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabel {
    provider: String,
    key: String,
}

/// A provider key and what a filter saw of it (`refused`, `rate_limited`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyEventLabel {
    provider: String,
    key: String,
    event: &'static str,
}

/// Distinct models the usage metric keeps a label for; later ones count under `other` (a
/// model name is provider text: its label set must stay bounded).
const MAX_MODEL_LABELS: usize = 256;

/// Every metric of one token-service. Cheap to share (`Arc`); counters are atomics.
pub struct Metrics {
    registry: Registry,
    checks: Family<OutcomeLabel, Counter>,
    check_seconds: Histogram,
    store_errors: Family<ErrorLabel, Counter>,
    limiter_errors: Family<ErrorLabel, Counter>,
    admin_actions: Family<ActionLabel, Counter>,
    token_usage: Family<TokenLabel, Counter>,
    usage_responses: Family<ResponseLabel, Counter>,
    notifications: Family<OutcomeLabel, Counter>,
    key_state: Family<KeyLabel, Gauge>,
    key_events: Family<KeyEventLabel, Counter>,
    models: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// The check-latency buckets: 0.1 ms to about 3.3 s, doubling. A check is a primary-key read
/// (tens of microseconds) unless the store or Redis is slow, which is what the top shows.
fn check_buckets() -> impl Iterator<Item = f64> {
    exponential_buckets(0.0001, 2.0, 16)
}

/// The `outcome` label of a deny reason (its wire name, but `provider_not_allowed` for the
/// wire's `scope`: one name per concept on the operator's side).
fn deny_outcome(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::Invalid => "invalid",
        DenyReason::Expired => "expired",
        DenyReason::ProviderNotAllowed => "provider_not_allowed",
        DenyReason::RateLimited => "rate_limited",
        DenyReason::StoreUnavailable => "store_unavailable",
        DenyReason::ProviderUnconfigured => "provider_unconfigured",
        DenyReason::BudgetExhausted => "budget_exhausted",
    }
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let checks = Family::<OutcomeLabel, Counter>::default();
        let check_seconds = Histogram::new(check_buckets());
        let store_errors = Family::<ErrorLabel, Counter>::default();
        let limiter_errors = Family::<ErrorLabel, Counter>::default();
        let admin_actions = Family::<ActionLabel, Counter>::default();
        let token_usage = Family::<TokenLabel, Counter>::default();
        let usage_responses = Family::<ResponseLabel, Counter>::default();
        let notifications = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "ptk_budget_notifications",
            "Budget threshold notifications, by outcome: delivered, failed (gave up after \
             retries), duplicate (another replica sent it), dropped (queue full)",
            notifications.clone(),
        );
        registry.register(
            "ptk_gen_ai_client_token_usage",
            "Tokens the filter metered (gen_ai.client.token.usage): gen_ai_token_type input \
             (cached included) or output (reasoning included)",
            token_usage.clone(),
        );
        registry.register(
            "ptk_metered_responses",
            "Metered responses reported by the filter; usage is complete, or incomplete when \
             a response ended without its final usage",
            usage_responses.clone(),
        );
        let key_state = Family::<KeyLabel, Gauge>::default();
        let key_events = Family::<KeyEventLabel, Counter>::default();
        registry.register(
            "ptk_provider_key_state",
            "Pool keys by provider and name (label or last 4 characters): 1 refused by its \
             provider and out of rotation, 0 in rotation (as last seen by this replica)",
            key_state.clone(),
        );
        registry.register(
            "ptk_provider_key_events",
            "What filters saw of pool keys upstream: refused (401) or rate_limited (429)",
            key_events.clone(),
        );
        registry.register(
            "ptk_checks",
            "Checks answered, by outcome (allow or the deny reason)",
            checks.clone(),
        );
        registry.register(
            "ptk_check_duration_seconds",
            "Time to decide a check, from parsed request to verdict",
            check_seconds.clone(),
        );
        registry.register(
            "ptk_store_errors",
            "Token store operations that failed, by operation",
            store_errors.clone(),
        );
        registry.register(
            "ptk_limiter_errors",
            "Rate limiter operations that failed, by operation (checks then fail open)",
            limiter_errors.clone(),
        );
        registry.register(
            "ptk_admin_actions",
            "Admin actions (API, dashboard, SIGHUP), by action and result",
            admin_actions.clone(),
        );
        Metrics {
            registry,
            checks,
            check_seconds,
            store_errors,
            limiter_errors,
            admin_actions,
            token_usage,
            usage_responses,
            notifications,
            key_state,
            key_events,
            models: std::sync::Mutex::default(),
        }
    }

    /// Sets a pool key's state: refused (1) or in rotation (0). `key` is its name.
    pub fn key_state(&self, provider: &str, key: &str, refused: bool) {
        let label = KeyLabel {
            provider: provider.to_owned(),
            key: key.to_owned(),
        };
        self.key_state.get_or_create(&label).set(i64::from(refused));
    }

    /// Counts one key event a filter reported. `key` is the key's name.
    pub fn key_event(&self, provider: &str, key: &str, event: &'static str) {
        let label = KeyEventLabel {
            provider: provider.to_owned(),
            key: key.to_owned(),
            event,
        };
        self.key_events.get_or_create(&label).inc();
    }

    /// Counts reported token usage (one report entry: its responses and their tokens).
    pub fn usage(&self, entry: &ptk_wire::UsageEntry) {
        let model = self.model_label(&entry.model);
        let label = |kind: &'static str| TokenLabel {
            gen_ai_provider_name: entry.provider.clone(),
            gen_ai_response_model: model.clone(),
            gen_ai_token_type: kind,
        };
        for (kind, n) in [("input", entry.usage.input), ("output", entry.usage.output)] {
            if n > 0 {
                self.token_usage.get_or_create(&label(kind)).inc_by(n);
            }
        }
        let complete = entry.requests.saturating_sub(entry.incomplete);
        for (usage, n) in [("complete", complete), ("incomplete", entry.incomplete)] {
            if n > 0 {
                let label = ResponseLabel {
                    gen_ai_provider_name: entry.provider.clone(),
                    gen_ai_response_model: model.clone(),
                    usage,
                };
                self.usage_responses.get_or_create(&label).inc_by(n);
            }
        }
    }

    /// The model's label: itself while fewer than [`MAX_MODEL_LABELS`] are in use, else `other`.
    fn model_label(&self, model: &str) -> String {
        let Ok(mut models) = self.models.lock() else {
            return "other".to_owned();
        };
        if models.contains(model) || models.len() < MAX_MODEL_LABELS {
            models.insert(model.to_owned());
            model.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// Counts one decided check and its latency.
    pub fn observe_check(&self, verdict: &CheckResponse, took: Duration) {
        let outcome = match verdict {
            CheckResponse::Allow { .. } => "allow",
            CheckResponse::Deny { reason, .. } => deny_outcome(*reason),
        };
        self.checks.get_or_create(&OutcomeLabel { outcome }).inc();
        self.check_seconds.observe(took.as_secs_f64());
    }

    /// Counts a check the API refused before deciding (`unauthorized`, `bad_request`).
    pub fn refused_check(&self, outcome: &'static str) {
        self.checks.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// Counts a budget notification's outcome (`delivered`, `failed`, `duplicate`, `dropped`).
    pub fn notification(&self, outcome: &'static str) {
        self.notifications
            .get_or_create(&OutcomeLabel { outcome })
            .inc();
    }

    /// Counts a failed store operation.
    pub fn store_error(&self, operation: &'static str) {
        self.store_errors
            .get_or_create(&ErrorLabel { operation })
            .inc();
    }

    /// Counts a failed limiter operation.
    pub fn limiter_error(&self, operation: &'static str) {
        self.limiter_errors
            .get_or_create(&ErrorLabel { operation })
            .inc();
    }

    /// Counts an admin action; `ok` false counts it as `result="error"`.
    pub fn admin_action(&self, action: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.admin_actions
            .get_or_create(&ActionLabel { action, result })
            .inc();
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail; an error would only mean a bug in a label.
        if encode(&mut text, &self.registry).is_err() {
            tracing::error!("metrics: encoding failed");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

/// The content type of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn counters_move_and_the_histogram_has_buckets() {
        let m = Metrics::new();
        let allow = CheckResponse::Allow {
            key: "sk-never-in-metrics".into(),
            cache_ttl_ms: 1000,
            lease: None,
            limits: None,
            pool: Vec::new(),
        };
        m.observe_check(&allow, Duration::from_micros(300));
        m.observe_check(&allow, Duration::from_millis(5));
        m.observe_check(
            &CheckResponse::Deny {
                reason: DenyReason::RateLimited,
                retry_after_s: Some(3),
                budget: None,
            },
            Duration::from_micros(50),
        );
        m.refused_check("unauthorized");
        m.store_error("get");
        m.limiter_error("acquire");
        m.admin_action("create", true);
        m.admin_action("keys_reload", false);
        let text = m.render();
        for line in [
            "ptk_checks_total{outcome=\"allow\"} 2",
            "ptk_checks_total{outcome=\"rate_limited\"} 1",
            "ptk_checks_total{outcome=\"unauthorized\"} 1",
            "ptk_check_duration_seconds_count 3",
            "ptk_check_duration_seconds_bucket{le=\"0.0001\"} 1",
            "ptk_check_duration_seconds_bucket{le=\"+Inf\"} 3",
            "ptk_store_errors_total{operation=\"get\"} 1",
            "ptk_limiter_errors_total{operation=\"acquire\"} 1",
            "ptk_admin_actions_total{action=\"create\",result=\"ok\"} 1",
            "ptk_admin_actions_total{action=\"keys_reload\",result=\"error\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("sk-never-in-metrics"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
