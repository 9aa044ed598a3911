//! Whether the proxy token a bound credential belongs to ([`crate::bound_table`]) is still
//! valid, for a request that carries only that credential (a keyless upload leg, an OpenAI
//! Realtime client secret): a fresh cached allow-verdict of the token counts (read, no unit
//! spent), else one `POST /v1/revalidate` of its hash, which charges no rate-limit unit and
//! carries no key (the credential was counted when it was issued, through the proxy).

use ptk_wire::RevalidateEntry;

use crate::activity::Call;
use crate::bound_table::Binding;
use crate::config::FilterConfig;
use crate::open_streams::{parse_revalidation, revalidate_call, Revalidated};
use crate::refusal::Refusal;
use crate::shared_data::SharedData;
use crate::verdict_cache::{cache_key, CachedVerdict};

/// Until when a cached allow-verdict says the token is valid, without spending a unit.
pub fn cached_valid_until(shared: &impl SharedData, cache_key: &str, now_ms: u64) -> Option<u64> {
    let stored = shared.get(cache_key).ok()?.0?;
    CachedVerdict::decode(&stored)
        .filter(|e| !e.key.is_empty() && now_ms < e.valid_until_ms)
        .map(|e| e.valid_until_ms)
}

/// The verdict-cache key of the binding's token (also its key among open requests and in the
/// refusal memory).
pub fn binding_key(binding: &Binding) -> String {
    cache_key(&binding.token_hash, binding.provider)
}

/// The revalidation callout for a binding's token (no rate-limit unit, no key).
pub fn bound_call(config: &FilterConfig, secret: &str, binding: &Binding) -> Call {
    let entry = RevalidateEntry {
        hash: binding.token_hash.clone(),
        provider: binding.provider,
    };
    revalidate_call(config, secret, vec![entry])
}

/// What the token-service said about a binding's token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoundVerdict {
    /// Valid for this long (ms): forward.
    Valid {
        /// How long the answer holds.
        ttl_ms: u64,
    },
    /// Refused: answer with this.
    Refused(Refusal),
    /// No usable answer (down, timeout, non-200, garbage, no verdict for the token): 503.
    Failed,
}

/// Maps the revalidation answer for `binding` to a verdict.
pub fn bound_verdict(binding: &Binding, status: Option<u16>, body: Option<&[u8]>) -> BoundVerdict {
    let key = binding_key(binding);
    let answer = parse_revalidation(status, body)
        .and_then(|answers| answers.into_iter().find(|(k, _)| *k == key));
    match answer {
        Some((_, Revalidated::Valid { ttl_ms, .. })) => BoundVerdict::Valid { ttl_ms },
        Some((_, Revalidated::Refused(reason))) => {
            BoundVerdict::Refused(Refusal::from_deny(reason, None, None))
        }
        None => BoundVerdict::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shared_data_double::SharedDataDouble;
    use ptk_wire::Provider;

    const HASH: &str = "ab00000000000000000000000000000000000000000000000000000000000001";

    fn binding(provider: Provider) -> Binding {
        Binding {
            token_hash: HASH.into(),
            provider,
        }
    }

    #[test]
    fn the_check_is_a_revalidation_of_the_bound_token() {
        let config = FilterConfig::parse(b"").unwrap();
        let b = binding(Provider::Gemini);
        let (headers, body) = bound_call(&config, "secret-0123456789abc", &b);
        assert!(headers.contains(&(":path".into(), ptk_wire::REVALIDATE_PATH.into())));
        let sent: ptk_wire::RevalidateRequest = serde_json::from_slice(&body).unwrap();
        assert_eq!(sent.entries.len(), 1);
        assert_eq!(sent.entries[0].hash, HASH);
        assert_eq!(sent.entries[0].provider, Provider::Gemini);
        let valid = format!(
            r#"{{"verdicts":[{{"verdict":"valid","hash":"{HASH}","provider":"gemini","ttl_ms":7}}]}}"#
        );
        assert_eq!(
            bound_verdict(&b, Some(200), Some(valid.as_bytes())),
            BoundVerdict::Valid { ttl_ms: 7 }
        );
        // The verdict must be for the binding's provider too.
        assert_eq!(
            bound_verdict(
                &binding(Provider::Openai),
                Some(200),
                Some(valid.as_bytes())
            ),
            BoundVerdict::Failed
        );
        for (reason, refusal) in [
            ("invalid", Refusal::Invalid),
            ("expired", Refusal::Expired),
            ("scope", Refusal::ProviderNotAllowed),
            ("store_unavailable", Refusal::TokenServiceUnavailable),
        ] {
            let refused = format!(
                r#"{{"verdicts":[{{"verdict":"refused","hash":"{HASH}","provider":"gemini","reason":"{reason}"}}]}}"#
            );
            assert_eq!(
                bound_verdict(&b, Some(200), Some(refused.as_bytes())),
                BoundVerdict::Refused(refusal)
            );
        }
        let other =
            r#"{"verdicts":[{"verdict":"valid","hash":"cd","provider":"gemini","ttl_ms":7}]}"#;
        for (status, body) in [
            (Some(200), Some(other.as_bytes())),
            (Some(200), Some(&b"junk"[..])),
            (Some(401), Some(valid.as_bytes())),
            (None, None),
        ] {
            assert_eq!(bound_verdict(&b, status, body), BoundVerdict::Failed);
        }
    }

    #[test]
    fn only_a_fresh_keyed_cached_verdict_counts() {
        let shared = SharedDataDouble::default();
        let key = binding_key(&binding(Provider::Gemini));
        assert_eq!(cached_valid_until(&shared, &key, 0), None);
        let entry = |key: &str| CachedVerdict {
            valid_until_ms: 1_000,
            units: 0,
            window: 1,
            key: key.into(),
            limits: None,
        };
        shared
            .raw_set(&key, &entry("AIza-real").encode(), None)
            .unwrap();
        assert_eq!(cached_valid_until(&shared, &key, 999), Some(1_000));
        assert_eq!(cached_valid_until(&shared, &key, 1_000), None);
        shared.raw_set(&key, &entry("").encode(), None).unwrap();
        assert_eq!(cached_valid_until(&shared, &key, 0), None);
    }
}
