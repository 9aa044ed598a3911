//! The JSON a budget notification carries.

use ptk_wire::{BudgetKind, BudgetPeriod};
use serde::Serialize;

/// Whose budget crossed a threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "scope", rename_all = "snake_case")]
pub enum BudgetScope {
    /// A token's own budget: named by its label and the first 12 hex characters of its hash
    /// (what `tokens list`, the CLI and the admin API accept), never the whole hash.
    Token {
        /// 12-hex hash prefix.
        token: String,
        /// The operator's label.
        label: String,
    },
    /// A group's budget (shared by its tokens).
    Group {
        /// The group's name.
        group: String,
    },
}

/// The unit of a budget's `limit` and `spent`.
fn unit(kind: BudgetKind) -> &'static str {
    match kind {
        BudgetKind::Tokens | BudgetKind::Tpm => "tokens",
        BudgetKind::Cost => "nano_usd",
    }
}

/// One threshold crossing: `{"type":"budget.threshold", "scope":"token"|"group", …}`. The
/// `text` field is a sentence for chat webhooks (Slack-compatible receivers show it as is).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetEvent {
    /// Whose budget.
    #[serde(flatten)]
    pub scope: BudgetScope,
    /// Tokens or cost.
    pub budget: BudgetKind,
    /// `day`, `week` or `month`.
    pub period: BudgetPeriod,
    /// The period's id (`2026-11-30`, `2026-W49`, `2026-11`).
    pub period_id: String,
    /// The threshold reached, in percent of the limit.
    pub threshold_percent: u8,
    /// The budget's limit, in `unit`.
    pub limit: u64,
    /// Settled spend in the period when the crossing was seen, in `unit`.
    pub spent: u64,
    /// When the period ends and the budget resets, RFC 3339 UTC.
    pub resets_at: String,
}

impl BudgetEvent {
    /// The key that makes a crossing send once across replicas: scope, budget, period id and
    /// threshold.
    pub fn claim_key(&self) -> String {
        let who = match &self.scope {
            BudgetScope::Token { token, .. } => format!("token:{token}"),
            BudgetScope::Group { group } => format!("group:{group}"),
        };
        format!(
            "ptk:notify:{who}:{}:{}:{}",
            unit(self.budget),
            self.period_id,
            self.threshold_percent
        )
    }

    /// The JSON body: the event's fields plus `type`, `unit` and `text`.
    pub fn body(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.insert("type".into(), "budget.threshold".into());
            object.insert("unit".into(), unit(self.budget).into());
            object.insert("text".into(), self.text().into());
        }
        value
    }

    /// One sentence for people: whose budget, how far, and when it resets.
    pub fn text(&self) -> String {
        let who = match &self.scope {
            BudgetScope::Token { token, label } => format!("Token {label:?} ({token})"),
            BudgetScope::Group { group } => format!("Group {group:?}"),
        };
        let amount = |v: u64| match self.budget {
            BudgetKind::Tokens | BudgetKind::Tpm => format!("{v} tokens"),
            BudgetKind::Cost => format!("${}", crate::pricing::format_usd(v)),
        };
        let verb = if self.threshold_percent >= 100 {
            "has used up"
        } else {
            "has used"
        };
        format!(
            "{who} {verb} {}% of its {} {} budget ({} of {}); it resets at {}.",
            self.threshold_percent,
            match self.period {
                BudgetPeriod::Minute => "per-minute",
                BudgetPeriod::Day => "daily",
                BudgetPeriod::Week => "weekly",
                BudgetPeriod::Month => "monthly",
            },
            match self.budget {
                BudgetKind::Tokens | BudgetKind::Tpm => "token",
                BudgetKind::Cost => "cost",
            },
            amount(self.spent),
            amount(self.limit),
            self.resets_at
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    pub(crate) fn sample() -> BudgetEvent {
        BudgetEvent {
            scope: BudgetScope::Token {
                token: "0123456789ab".into(),
                label: "team a".into(),
            },
            budget: BudgetKind::Cost,
            period: BudgetPeriod::Month,
            period_id: "2026-11".into(),
            threshold_percent: 80,
            limit: 5_000_000_000,
            spent: 4_000_000_001,
            resets_at: "2026-12-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn the_body_has_the_documented_shape() {
        let body = sample().body();
        assert_eq!(
            body,
            serde_json::json!({
                "type": "budget.threshold", "scope": "token", "token": "0123456789ab",
                "label": "team a", "budget": "cost", "unit": "nano_usd", "period": "month",
                "period_id": "2026-11", "threshold_percent": 80, "limit": 5_000_000_000u64,
                "spent": 4_000_000_001u64, "resets_at": "2026-12-01T00:00:00Z",
                "text": "Token \"team a\" (0123456789ab) has used 80% of its monthly cost budget ($4.000000 of $5.000000); it resets at 2026-12-01T00:00:00Z."
            })
        );
    }

    #[test]
    fn claim_keys_differ_by_every_part() {
        let a = sample();
        let mut keys = vec![a.claim_key()];
        let mut b = a.clone();
        b.threshold_percent = 100;
        keys.push(b.claim_key());
        let mut c = a.clone();
        c.period_id = "2026-12".into();
        keys.push(c.claim_key());
        let mut d = a.clone();
        d.budget = BudgetKind::Tokens;
        keys.push(d.claim_key());
        let mut e = a.clone();
        e.scope = BudgetScope::Group {
            group: "0123456789ab".into(),
        };
        keys.push(e.claim_key());
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), keys.len(), "{keys:?}");
    }
}
