//! Budgets on the wire (wire 1.2): the grant an `allow_limited` verdict carries, the deny that
//! names the budget a request is over, and the settlement a filter reports back.
//!
//! The filter's contract (`docs/wire-protocol.md`, "Budgets"): a verdict carrying a
//! [`BudgetGrant`] lets the filter admit requests from its cache only while the sum of their
//! estimates fits in `tokens`, and only until `expires_in_ms` after it sent the check. Each
//! request's estimate is spent from the grant before it is forwarded; when the request ends, its
//! metered usage goes in the activity report's `token_usage` and its estimate in a
//! [`GrantRelease`] of the same report (or a later one, never an earlier one); unspent tokens of
//! a grant the filter drops are released too. The token-service counts what a grant reserved
//! as spent until it is released or lapses, so concurrent requests cannot overshoot together.

use serde::{Deserialize, Serialize};

/// Tokens the filter may spend on its estimates, while the verdict is cached, against every
/// budget that applies to the token. Unknown fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetGrant {
    /// The grant's id: releases name it.
    pub id: u64,
    /// Tokens (input + output, in the OpenTelemetry definitions) the filter may spend on its
    /// estimates. Never more than what remains of the tightest budget.
    pub tokens: u64,
    /// Milliseconds after the check was sent after which no estimate may be spent from the
    /// grant (the earliest end of a budget period that applies, at most the cache TTL). The
    /// token-service lets the reservation lapse a grace period later.
    pub expires_in_ms: u64,
}

/// Tokens of a grant the filter gives back: the estimates of requests that ended (their metered
/// usage is in the same report's `token_usage`, or an earlier one) and what it never spent.
/// Unknown fields are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRelease {
    /// [`BudgetGrant::id`].
    pub grant: u64,
    /// Tokens released (never more than the grant; any excess is ignored).
    pub tokens: u64,
}

/// Whose budget refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    /// The token's own budget.
    Token,
    /// The budget of the group (team, project) the token belongs to.
    Group,
}

/// What a budget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetKind {
    /// Input plus output tokens per period.
    Tokens,
    /// Cost in USD per period.
    Cost,
    /// Tokens per minute.
    Tpm,
}

/// A budget's calendar period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetPeriod {
    /// A calendar minute (`tpm`).
    Minute,
    /// A UTC day, from 00:00.
    Day,
    /// An ISO week, from Monday 00:00 UTC.
    Week,
    /// A calendar month, from the 1st 00:00 UTC.
    Month,
}

impl BudgetPeriod {
    /// The spelling used on the wire, in the CLI (`N/day`) and in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetPeriod::Minute => "minute",
            BudgetPeriod::Day => "day",
            BudgetPeriod::Week => "week",
            BudgetPeriod::Month => "month",
        }
    }

    /// Parses [`BudgetPeriod::as_str`]'s spelling.
    pub fn parse(text: &str) -> Option<BudgetPeriod> {
        [
            BudgetPeriod::Minute,
            BudgetPeriod::Day,
            BudgetPeriod::Week,
            BudgetPeriod::Month,
        ]
        .into_iter()
        .find(|p| p.as_str() == text)
    }
}

/// Which budget a `budget_exhausted` deny is about, and when its period resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetDenial {
    /// The token's own budget or its group's.
    pub scope: BudgetScope,
    /// Tokens, cost or tokens per minute.
    pub kind: BudgetKind,
    /// The budget's period.
    pub period: BudgetPeriod,
    /// When the period ends and the budget is whole again, Unix seconds (UTC).
    pub resets_at_s: u64,
}
