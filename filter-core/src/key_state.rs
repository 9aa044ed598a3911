//! Per-key health on this Envoy, shared by its workers: which pool keys are cooling down
//! after an upstream 429 and which were refused (401), in one shared-data entry per provider,
//! `ptk/v1/keys/<provider>`, read once per pooled request and written only when a provider
//! says something about a key.
//!
//! The entry is text, one line per key: `id \t cooling-until-ms \t refused-until-ms`. Lines
//! whose times have passed are dropped on the next write, so the entry stays as small as the
//! set of keys in trouble.

use ptk_wire::Provider;

use crate::shared_data::{CasAnchor, SharedData};

/// Cooldown after a 429 that says nothing of when to retry (Gemini sends no `retry-after`
/// header; OpenAI and Anthropic usually do).
pub const DEFAULT_COOLDOWN_MS: u64 = 60_000;

/// Longest cooldown honoured: a `retry-after` of days would park a key past any use.
pub const MAX_COOLDOWN_MS: u64 = 3_600_000;

/// How long a refused key stays out on this Envoy (the token-service stops handing it out
/// once the activity report reaches it, for longer: `token-service/src/key_health.rs`).
pub const REFUSED_MS: u64 = 600_000;

/// Attempts before a contended write is given up (the next 429 or 401 writes again).
const CAS_ATTEMPTS: usize = 8;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    /// Upstream 429: skip the key until then.
    Cooldown {
        /// Host time (ms) the cooldown ends.
        until_ms: u64,
    },
    /// Upstream 401: the key is out until then.
    Refused {
        /// Host time (ms) the refusal ends.
        until_ms: u64,
    },
}

/// The keys in trouble, as read from the shared entry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyStates {
    entries: Vec<(String, u64, u64)>,
}

impl KeyStates {
    /// Parses the entry (malformed lines are skipped: the key is then usable).
    pub fn parse(bytes: &[u8]) -> KeyStates {
        let text = String::from_utf8_lossy(bytes);
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split('\t');
                let id = parts.next()?.to_owned();
                let cooling = parts.next()?.parse().ok()?;
                let refused = parts.next()?.parse().ok()?;
                Some((id, cooling, refused))
            })
            .collect();
        KeyStates { entries }
    }

    /// The entry's text.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = String::new();
        for (id, cooling, refused) in &self.entries {
            out.push_str(&format!("{id}\t{cooling}\t{refused}\n"));
        }
        out.into_bytes()
    }

    /// Whether key `id` may be used at `now_ms`.
    pub fn usable(&self, id: &str, now_ms: u64) -> bool {
        !self
            .entries
            .iter()
            .any(|(i, cooling, refused)| i == id && (*cooling > now_ms || *refused > now_ms))
    }

    /// When key `id`'s cooldown ends, if it is cooling (and not refused) at `now_ms`.
    pub fn cooling_until(&self, id: &str, now_ms: u64) -> Option<u64> {
        let (_, cooling, refused) = self.entries.iter().find(|(i, _, _)| i == id)?;
        (*cooling > now_ms && *refused <= now_ms).then_some(*cooling)
    }

    /// Records `mark` for key `id`, dropping lines that ended before `now_ms`.
    pub fn mark(&mut self, id: &str, mark: Mark, now_ms: u64) {
        self.entries
            .retain(|(_, cooling, refused)| *cooling > now_ms || *refused > now_ms);
        let at = match self.entries.iter().position(|(i, _, _)| i == id) {
            Some(at) => at,
            None => {
                self.entries.push((id.to_owned(), 0, 0));
                self.entries.len().saturating_sub(1)
            }
        };
        if let Some(entry) = self.entries.get_mut(at) {
            match mark {
                Mark::Cooldown { until_ms } => entry.1 = entry.1.max(until_ms),
                Mark::Refused { until_ms } => entry.2 = entry.2.max(until_ms),
            }
        }
    }
}

/// The shared-data key of a provider's key states.
pub fn states_key(provider: Provider) -> String {
    format!("ptk/v1/keys/{}", provider.as_str())
}

/// The key states of `provider` (none if the entry is absent or unreadable).
pub fn read(shared: &impl SharedData, provider: Provider) -> KeyStates {
    match shared.get(&states_key(provider)) {
        Ok((Some(bytes), _)) => KeyStates::parse(&bytes),
        _ => KeyStates::default(),
    }
}

/// Records `mark` for key `id` of `provider` (compare-and-swap; an absent entry is created
/// with the anchor). `false` if the write did not land.
pub fn write(
    shared: &impl SharedData,
    anchor: CasAnchor,
    provider: Provider,
    id: &str,
    mark: Mark,
    now_ms: u64,
) -> bool {
    let key = states_key(provider);
    for _ in 0..CAS_ATTEMPTS {
        let Ok((stored, cas)) = shared.get(&key) else {
            return false;
        };
        let mut states = stored.map_or_else(KeyStates::default, |b| KeyStates::parse(&b));
        states.mark(id, mark, now_ms);
        let Some(cas) = cas.or(anchor.cas()) else {
            return false;
        };
        if shared.set(&key, &states.encode(), Some(cas)).is_ok() {
            return true;
        }
    }
    false
}

/// The cooldown a 429 asks for (ms), from `retry-after-ms` (OpenAI), else `retry-after` in
/// seconds or as an HTTP date, else [`DEFAULT_COOLDOWN_MS`]; at most [`MAX_COOLDOWN_MS`].
pub fn cooldown_ms(retry_after_ms: Option<&str>, retry_after: Option<&str>, now_ms: u64) -> u64 {
    let from_ms = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok());
    let from_header = retry_after.and_then(|v| {
        let v = v.trim();
        if let Ok(seconds) = v.parse::<u64>() {
            return Some(seconds.saturating_mul(1000));
        }
        let at = httpdate::parse_http_date(v).ok()?;
        let at_ms = at.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
        Some(u64::try_from(at_ms).ok()?.saturating_sub(now_ms))
    });
    let ms = match from_ms {
        // Whole milliseconds; a negative or absurd value falls back to the default.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Some(ms) if ms.is_finite() && ms >= 0.0 => ms.ceil() as u64,
        _ => from_header.unwrap_or(DEFAULT_COOLDOWN_MS),
    };
    ms.clamp(1, MAX_COOLDOWN_MS)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::shared_data_double::SharedDataDouble;

    #[test]
    fn retry_after_forms() {
        // 2026-11-29T00:00:00Z in ms, and the same instant plus 30 s as an HTTP date.
        let now = 1_795_910_400_000;
        let date = "Sun, 29 Nov 2026 00:00:30 GMT";
        assert_eq!(cooldown_ms(None, Some("7"), now), 7_000);
        assert_eq!(cooldown_ms(Some("1500.2"), Some("7"), now), 1_501);
        assert_eq!(cooldown_ms(None, Some(date), now), 30_000);
        assert_eq!(cooldown_ms(None, None, now), DEFAULT_COOLDOWN_MS);
        assert_eq!(
            cooldown_ms(Some("-1"), Some("garbage"), now),
            DEFAULT_COOLDOWN_MS
        );
        assert_eq!(cooldown_ms(None, Some("99999999"), now), MAX_COOLDOWN_MS);
        // A date already past: retry at once (1 ms, never 0: a zero cooldown is no cooldown).
        assert_eq!(cooldown_ms(None, Some(date), now + 60_000), 1);
    }

    #[test]
    fn marks_expire_and_the_entry_round_trips() {
        let mut states = KeyStates::default();
        states.mark("a", Mark::Cooldown { until_ms: 100 }, 0);
        states.mark("b", Mark::Refused { until_ms: 500 }, 0);
        assert!(!states.usable("a", 99) && states.usable("a", 100));
        assert_eq!(states.cooling_until("a", 50), Some(100));
        assert_eq!(states.cooling_until("b", 50), None);
        assert_eq!(KeyStates::parse(&states.encode()), states);
        states.mark("b", Mark::Cooldown { until_ms: 900 }, 200);
        // `a` ended before 200: dropped.
        assert_eq!(states.entries.len(), 1);
        assert!(KeyStates::parse(b"junk\nx\t1\n").entries.is_empty());
    }

    #[test]
    fn writes_create_and_update_the_shared_entry() {
        let shared = SharedDataDouble::default();
        let anchor = CasAnchor::refresh(&shared);
        let p = Provider::Openai;
        assert!(write(
            &shared,
            anchor,
            p,
            "a",
            Mark::Cooldown { until_ms: 10 },
            0
        ));
        assert!(write(
            &shared,
            anchor,
            p,
            "b",
            Mark::Refused { until_ms: 20 },
            0
        ));
        let states = read(&shared, p);
        assert!(!states.usable("a", 5) && !states.usable("b", 5));
        assert!(read(&shared, Provider::Gemini).usable("a", 5));
    }
}
