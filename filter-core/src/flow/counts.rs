//! Counters per outcome, so an operator can tell refusals from infrastructure failures. Kept in
//! the worker and added to Envoy's counters by the shim on each tick: a host call per counter
//! per request is measurable on the hot path, and counters a second late are fine.

use std::cell::Cell;

use ptk_wire::Provider;

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
    /// A provider refused the operator's credential (answered in its place).
    CredentialRefused(Provider),
    /// A fragment of the real key masked in a provider's response.
    KeyMasked,
}

/// How many counters there are (the length of [`Counter::ALL`]).
pub const COUNTERS: usize = 27;

impl Counter {
    /// Every counter, in the order of their slots.
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
        Counter::CredentialRefused(Provider::Openai),
        Counter::CredentialRefused(Provider::Anthropic),
        Counter::CredentialRefused(Provider::Gemini),
        Counter::KeyMasked,
    ];

    /// The counter's name under `ptk.`.
    pub fn name(self) -> &'static str {
        match self {
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
            },
            Counter::CredentialRefused(provider) => match provider {
                // The response path knows the dialect only, and configured providers speak
                // OpenAI's: their refusals count with OpenAI's (never reached from a dialect).
                Provider::Openai | Provider::Configured(_) => "upstream_credential_refused.openai",
                Provider::Anthropic => "upstream_credential_refused.anthropic",
                Provider::Gemini => "upstream_credential_refused.gemini",
            },
            Counter::KeyMasked => "upstream_key_masked",
        }
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
            },
            Counter::CredentialRefused(provider) => match provider {
                Provider::Openai | Provider::Configured(_) => 23,
                Provider::Anthropic => 24,
                Provider::Gemini => 25,
            },
            Counter::KeyMasked => 26,
        }
    }
}

/// Counts not yet added to Envoy's counters, one per [`Counter`].
#[derive(Debug, Default)]
pub struct Counts {
    pending: [Cell<u64>; COUNTERS],
}

impl Counts {
    /// Counts one.
    pub fn add(&self, counter: Counter) {
        if let Some(cell) = self.pending.get(counter.slot()) {
            cell.set(cell.get().saturating_add(1));
        }
    }

    /// Counts a refusal by its class.
    pub fn refused(&self, refusal: Refusal) {
        self.add(Counter::Refused(refusal));
    }

    /// The count of `counter` since the last take, zeroing it.
    pub fn take(&self, counter: Counter) -> u64 {
        self.pending
            .get(counter.slot())
            .map_or(0, |cell| cell.replace(0))
    }

    /// The count of `counter` since the last take (tests).
    pub fn get(&self, counter: Counter) -> u64 {
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
    fn a_configured_provider_counts_with_openai_whose_dialect_it_speaks() {
        let configured = Counter::CredentialRefused(Provider::Configured("local-llm"));
        let openai = Counter::CredentialRefused(Provider::Openai);
        assert_eq!(configured.name(), "upstream_credential_refused.openai");
        let counts = Counts::default();
        counts.add(configured);
        assert_eq!(counts.take(openai), 1);
    }
}
