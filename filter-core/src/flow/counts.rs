//! Counters per outcome, so an operator can tell refusals from infrastructure failures. Kept in
//! the worker and added to Envoy's counters by the shim on each tick: a host call per counter
//! per request is measurable on the hot path, and counters a second late are fine.

use std::borrow::Cow;
use std::cell::{Cell, RefCell};

use ptk_wire::Provider;

use crate::provider_config::ProvidersConfig;
use crate::refusal::Refusal;

/// One counter of the filter (`wasmcustom.ptk.<name>` in Envoy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// A forwarded request.
    Allowed,
    /// A request allowed from the verdict cache (no callout).
    CacheHits,
    /// A keyless upload leg forwarded for a known session.
    UploadLegs,
    /// An upload session recorded in the session table.
    UploadStarted,
    /// A live upload session replaced by a new one (the table's ways were full).
    UploadEvicted,
    /// An upload session that could not be recorded (its keyless legs will get 401).
    UploadUnrecorded,
    /// A request forwarded with an OpenAI client secret minted through the proxy.
    SecretUses,
    /// A client secret bound to the token that minted it.
    SecretsMinted,
    /// A live client secret replaced by a new one (the table's ways were full).
    SecretsEvicted,
    /// A minted client secret that could not be bound (its use will get 401).
    SecretsUnrecorded,
    /// A callout that could not be started or came back without a usable answer.
    CalloutFailed,
    /// A check sent again after its first callout got no verdict (`retry`).
    CalloutRetried,
    /// A refusal, by class.
    Refused(Refusal),
    /// A provider refused the operator's credential (answered in its place): one counter per
    /// provider, built-in or configured ([`Counter::per_provider`]), kept apart from the slots.
    CredentialRefused(Provider),
    /// [`Counter::Allowed`] for one provider.
    AllowedBy(Provider),
    /// [`Counter::UsageInputTokens`] for one provider.
    InputTokensBy(Provider),
    /// [`Counter::UsageOutputTokens`] for one provider.
    OutputTokensBy(Provider),
    /// A fragment of the real key masked in a provider's response.
    KeyMasked,
    /// A metered response (or WebSocket session) recorded for the usage report.
    UsageResponses,
    /// Of those, one that ended without its final usage (aborted, error, disconnect).
    UsageIncomplete,
    /// A metered response the worker's usage batch had no room for (lost).
    UsageDropped,
    /// Metered input tokens (cached ones included).
    UsageInputTokens,
    /// Of those, read from a prompt cache.
    UsageCachedInputTokens,
    /// Metered output tokens (reasoning included).
    UsageOutputTokens,
    /// Of those, reasoning.
    UsageReasoningTokens,
    /// An OpenAI geo-403 replayed through the fallback egress (`geo_fallback`).
    GeoReplayed,
    /// An OpenAI geo-403 passed through because its request could not be replayed (body past
    /// the bound, or not ended when the 403 came).
    GeoUnreplayable,
    /// A replay through the fallback egress that could not be started or got no answer (502).
    GeoFailed,
    /// An OpenAI WebSocket handshake sent through the egress route after a geo-block.
    GeoRouted,
    /// A budgeted request that found its grant short and waited on a `budget_want` check.
    BudgetTopUps,
    /// A budget grant renewal sent ahead of need (`grant_renewal.rs`).
    BudgetRenewals,
    /// A budgeted WebSocket session closed because its budget could not cover its next turn.
    BudgetSessionsClosed,
}

/// How many counters there are (the length of [`Counter::ALL`]).
pub const COUNTERS: usize = 42;

impl Counter {
    /// Every counter with a slot, in the order of their slots (the per-provider ones are
    /// [`Counter::per_provider`]).
    pub const ALL: [Counter; COUNTERS] = [
        Counter::Allowed,
        Counter::CacheHits,
        Counter::UploadLegs,
        Counter::UploadStarted,
        Counter::UploadEvicted,
        Counter::UploadUnrecorded,
        Counter::SecretUses,
        Counter::SecretsMinted,
        Counter::SecretsEvicted,
        Counter::SecretsUnrecorded,
        Counter::CalloutFailed,
        Counter::CalloutRetried,
        Counter::Refused(Refusal::MissingToken),
        Counter::Refused(Refusal::Invalid),
        Counter::Refused(Refusal::Expired),
        Counter::Refused(Refusal::ProviderNotAllowed),
        Counter::Refused(Refusal::RateLimited { retry_after_s: 0 }),
        Counter::Refused(Refusal::Throttled { retry_after_s: 0 }),
        Counter::Refused(Refusal::TokenServiceUnavailable),
        Counter::Refused(Refusal::ProviderUnconfigured),
        Counter::Refused(Refusal::UnknownUpload),
        Counter::Refused(Refusal::UnknownSecret),
        Counter::Refused(Refusal::TokenInRequest),
        Counter::KeyMasked,
        Counter::UsageResponses,
        Counter::UsageIncomplete,
        Counter::UsageDropped,
        Counter::UsageInputTokens,
        Counter::UsageCachedInputTokens,
        Counter::UsageOutputTokens,
        Counter::UsageReasoningTokens,
        Counter::GeoReplayed,
        Counter::GeoUnreplayable,
        Counter::GeoFailed,
        Counter::GeoRouted,
        Counter::Refused(Refusal::ModelNotAllowed),
        Counter::Refused(Refusal::BudgetExhausted {
            budget: None,
            retry_after_s: 0,
        }),
        Counter::Refused(Refusal::BudgetUnmetered),
        Counter::BudgetTopUps,
        Counter::BudgetRenewals,
        Counter::BudgetSessionsClosed,
        Counter::Refused(Refusal::BudgetBodyUnreadable),
    ];

    /// The counters kept per provider, each family for every built-in provider (walked from
    /// the registry, never listed by hand) and every one the configuration names.
    pub fn per_provider(config: &ProvidersConfig) -> impl Iterator<Item = Counter> + '_ {
        let configured = config.configured.iter().map(|c| c.provider);
        let families: [fn(Provider) -> Counter; 4] = [
            Counter::CredentialRefused,
            Counter::AllowedBy,
            Counter::InputTokensBy,
            Counter::OutputTokensBy,
        ];
        families.into_iter().flat_map(move |family| {
            Provider::ALL
                .into_iter()
                .chain(configured.clone())
                .map(family)
        })
    }

    /// Whether the counter is one provider's (kept apart from the slots).
    fn is_per_provider(self) -> bool {
        matches!(
            self,
            Counter::CredentialRefused(_)
                | Counter::AllowedBy(_)
                | Counter::InputTokensBy(_)
                | Counter::OutputTokensBy(_)
        )
    }

    /// The counter's name under `ptk.`.
    pub fn name(self) -> Cow<'static, str> {
        let name = match self {
            Counter::Allowed => "allowed",
            Counter::CacheHits => "cache_hits",
            Counter::UploadLegs => "upload.legs",
            Counter::UploadStarted => "upload.sessions_started",
            Counter::UploadEvicted => "upload.sessions_evicted",
            Counter::UploadUnrecorded => "upload.sessions_unrecorded",
            Counter::SecretUses => "ephemeral.secret_uses",
            Counter::SecretsMinted => "ephemeral.secrets_recorded",
            Counter::SecretsEvicted => "ephemeral.secrets_evicted",
            Counter::SecretsUnrecorded => "ephemeral.secrets_unrecorded",
            Counter::CalloutFailed => "callout_failed",
            Counter::CalloutRetried => "callout_retried",
            Counter::Refused(refusal) => match refusal {
                Refusal::MissingToken => "refused.missing_token",
                Refusal::Invalid => "refused.invalid",
                Refusal::Expired => "refused.expired",
                Refusal::ProviderNotAllowed => "refused.provider_not_allowed",
                Refusal::RateLimited { .. } => "refused.rate_limited",
                Refusal::Throttled { .. } => "refused.throttled",
                Refusal::TokenServiceUnavailable => "refused.token_service_unavailable",
                Refusal::ProviderUnconfigured => "refused.provider_unconfigured",
                Refusal::UnknownUpload => "refused.unknown_upload",
                Refusal::UnknownSecret => "refused.unknown_client_secret",
                Refusal::TokenInRequest => "refused.token_in_request",
                Refusal::ModelNotAllowed => "refused.model_not_allowed",
                Refusal::BudgetExhausted { .. } => "refused.budget_exhausted",
                Refusal::BudgetUnmetered => "refused.budget_unmetered",
                Refusal::BudgetBodyUnreadable => "refused.budget_body_unreadable",
            },
            Counter::CredentialRefused(provider) => {
                return format!("{CREDENTIAL_REFUSED}.{}", provider.as_str()).into();
            }
            Counter::AllowedBy(provider) => {
                return format!("allowed.{}", provider.as_str()).into();
            }
            Counter::InputTokensBy(provider) => {
                return format!("usage.input_tokens.{}", provider.as_str()).into();
            }
            Counter::OutputTokensBy(provider) => {
                return format!("usage.output_tokens.{}", provider.as_str()).into();
            }
            Counter::KeyMasked => "upstream_key_masked",
            Counter::UsageResponses => "usage.responses",
            Counter::UsageIncomplete => "usage.incomplete",
            Counter::UsageDropped => "usage.dropped",
            Counter::UsageInputTokens => "usage.input_tokens",
            Counter::UsageCachedInputTokens => "usage.cached_input_tokens",
            Counter::UsageOutputTokens => "usage.output_tokens",
            Counter::UsageReasoningTokens => "usage.reasoning_tokens",
            Counter::GeoReplayed => "geo_fallback.replayed",
            Counter::GeoUnreplayable => "geo_fallback.unreplayable",
            Counter::GeoFailed => "geo_fallback.failed",
            Counter::GeoRouted => "geo_fallback.routed",
            Counter::BudgetTopUps => "budget.top_ups",
            Counter::BudgetRenewals => "budget.renewals",
            Counter::BudgetSessionsClosed => "budget.sessions_closed",
        };
        name.into()
    }

    /// The counter's slot in [`Counts`] (its place in [`Counter::ALL`]; a test pins that).
    fn slot(self) -> usize {
        match self {
            Counter::Allowed => 0,
            Counter::CacheHits => 1,
            Counter::UploadLegs => 2,
            Counter::UploadStarted => 3,
            Counter::UploadEvicted => 4,
            Counter::UploadUnrecorded => 5,
            Counter::SecretUses => 6,
            Counter::SecretsMinted => 7,
            Counter::SecretsEvicted => 8,
            Counter::SecretsUnrecorded => 9,
            Counter::CalloutFailed => 10,
            Counter::CalloutRetried => 11,
            Counter::Refused(refusal) => match refusal {
                Refusal::MissingToken => 12,
                Refusal::Invalid => 13,
                Refusal::Expired => 14,
                Refusal::ProviderNotAllowed => 15,
                Refusal::RateLimited { .. } => 16,
                Refusal::Throttled { .. } => 17,
                Refusal::TokenServiceUnavailable => 18,
                Refusal::ProviderUnconfigured => 19,
                Refusal::UnknownUpload => 20,
                Refusal::UnknownSecret => 21,
                Refusal::TokenInRequest => 22,
                // Added after the geo counters: slots are never renumbered.
                Refusal::ModelNotAllowed => 35,
                Refusal::BudgetExhausted { .. } => 36,
                Refusal::BudgetUnmetered => 37,
                Refusal::BudgetBodyUnreadable => 41,
            },
            Counter::KeyMasked => 23,
            Counter::UsageResponses => 24,
            Counter::UsageIncomplete => 25,
            Counter::UsageDropped => 26,
            Counter::UsageInputTokens => 27,
            Counter::UsageCachedInputTokens => 28,
            Counter::UsageOutputTokens => 29,
            Counter::UsageReasoningTokens => 30,
            Counter::GeoReplayed => 31,
            Counter::GeoUnreplayable => 32,
            Counter::GeoFailed => 33,
            Counter::GeoRouted => 34,
            Counter::BudgetTopUps => 38,
            Counter::BudgetRenewals => 39,
            Counter::BudgetSessionsClosed => 40,
            // Counted per provider (`Counts::by_provider`), past every slot.
            Counter::CredentialRefused(_)
            | Counter::AllowedBy(_)
            | Counter::InputTokensBy(_)
            | Counter::OutputTokensBy(_) => COUNTERS,
        }
    }
}

/// The family name of [`Counter::CredentialRefused`]: `<family>.<provider name>`.
pub const CREDENTIAL_REFUSED: &str = "upstream_credential_refused";

/// Counts not yet added to Envoy's counters, one per [`Counter`].
#[derive(Debug)]
pub struct Counts {
    pending: [Cell<u64>; COUNTERS],
    /// The per-provider counters that counted since the last take (at most four per built-in
    /// and configured provider: bounded by the registry).
    by_provider: RefCell<Vec<(Counter, u64)>>,
}

// By hand: `Default` for arrays stops at 32 elements.
impl Default for Counts {
    fn default() -> Self {
        Counts {
            pending: std::array::from_fn(|_| Cell::new(0)),
            by_provider: RefCell::default(),
        }
    }
}

impl Counts {
    /// Counts one.
    pub fn add(&self, counter: Counter) {
        self.add_n(counter, 1);
    }

    /// Counts `n` (token counters).
    pub fn add_n(&self, counter: Counter, n: u64) {
        if counter.is_per_provider() {
            let mut counts = self.by_provider.borrow_mut();
            match counts.iter_mut().find(|(c, _)| *c == counter) {
                Some((_, count)) => *count = count.saturating_add(n),
                None => counts.push((counter, n)),
            }
        } else if let Some(cell) = self.pending.get(counter.slot()) {
            cell.set(cell.get().saturating_add(n));
        }
    }

    /// Counts a refusal by its class.
    pub fn refused(&self, refusal: Refusal) {
        self.add(Counter::Refused(refusal));
    }

    /// The count of `counter` since the last take, zeroing it.
    pub fn take(&self, counter: Counter) -> u64 {
        if counter.is_per_provider() {
            let mut counts = self.by_provider.borrow_mut();
            return counts
                .iter_mut()
                .find(|(c, _)| *c == counter)
                .map_or(0, |(_, n)| std::mem::take(n));
        }
        self.pending
            .get(counter.slot())
            .map_or(0, |cell| cell.replace(0))
    }

    /// The count of `counter` since the last take (tests).
    pub fn get(&self, counter: Counter) -> u64 {
        if counter.is_per_provider() {
            let counts = self.by_provider.borrow();
            let found = counts.iter().find(|(c, _)| *c == counter);
            return found.map_or(0, |(_, n)| *n);
        }
        self.pending.get(counter.slot()).map_or(0, Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_counter_has_its_own_slot_and_name() {
        for (i, counter) in Counter::ALL.iter().enumerate() {
            assert_eq!(counter.slot(), i, "{counter:?}");
            let same_name = Counter::ALL.iter().filter(|c| c.name() == counter.name());
            assert_eq!(same_name.count(), 1, "{counter:?}");
        }
        let counts = Counts::default();
        counts.refused(Refusal::RateLimited { retry_after_s: 9 });
        assert_eq!(
            counts.take(Counter::Refused(Refusal::RateLimited { retry_after_s: 0 })),
            1
        );
        assert_eq!(counts.get(Counter::Allowed), 0);
    }

    #[test]
    fn a_configured_provider_counts_under_its_own_name_apart_from_openai() {
        let configured = Counter::CredentialRefused(Provider::Configured("local-llm"));
        let openai = Counter::CredentialRefused(Provider::Openai);
        assert_eq!(configured.name(), "upstream_credential_refused.local-llm");
        assert_eq!(openai.name(), "upstream_credential_refused.openai");
        let counts = Counts::default();
        counts.add(configured);
        counts.add(configured);
        assert_eq!(counts.get(openai), 0);
        assert_eq!(counts.take(configured), 2);
        assert_eq!(counts.take(configured), 0);
    }

    #[test]
    fn every_built_in_provider_has_its_refusal_counter_named_from_the_registry() {
        let config = crate::FilterConfig::parse(
            br#"{"providers":{"local-llm":{"path_prefix":"/local/","authority":"llm:8000"}}}"#,
        )
        .unwrap();
        let names: Vec<_> = Counter::per_provider(&config.providers)
            .map(Counter::name)
            .collect();
        for family in [
            "upstream_credential_refused",
            "allowed",
            "usage.input_tokens",
            "usage.output_tokens",
        ] {
            let of_family: Vec<_> = names
                .iter()
                .filter_map(|n| n.strip_prefix(family)?.strip_prefix('.'))
                .filter(|rest| !rest.contains('.'))
                .collect();
            assert_eq!(of_family, ["openai", "anthropic", "gemini", "local-llm"]);
        }
        assert_eq!(names.len(), 16);
        let counts = Counts::default();
        counts.add(Counter::CredentialRefused(Provider::Gemini));
        assert_eq!(
            counts.take(Counter::CredentialRefused(Provider::Anthropic)),
            0
        );
        assert_eq!(counts.take(Counter::CredentialRefused(Provider::Gemini)), 1);
    }

    #[test]
    fn per_provider_families_count_apart_and_by_n() {
        let counts = Counts::default();
        counts.add(Counter::AllowedBy(Provider::Openai));
        counts.add_n(Counter::InputTokensBy(Provider::Openai), 120);
        counts.add_n(Counter::InputTokensBy(Provider::Openai), 5);
        counts.add_n(Counter::OutputTokensBy(Provider::Anthropic), 7);
        assert_eq!(counts.get(Counter::AllowedBy(Provider::Anthropic)), 0);
        assert_eq!(counts.get(Counter::CredentialRefused(Provider::Openai)), 0);
        assert_eq!(counts.take(Counter::InputTokensBy(Provider::Openai)), 125);
        assert_eq!(counts.take(Counter::InputTokensBy(Provider::Openai)), 0);
        assert_eq!(counts.take(Counter::OutputTokensBy(Provider::Anthropic)), 7);
        assert_eq!(counts.take(Counter::AllowedBy(Provider::Openai)), 1);
        assert_eq!(counts.get(Counter::UsageInputTokens), 0);
    }
}
