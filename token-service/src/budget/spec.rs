//! What a budget is: a token budget (input + output tokens per period), a cost budget (USD per
//! period, held in nanodollars like the usage rollups) and a tokens-per-minute limit, as the
//! operator types them (`100000/day`, `25.50/month`, `20000`).

use std::fmt;

use ptk_wire::BudgetPeriod;
use serde::Serialize;

/// A limit per calendar period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PeriodLimit {
    /// Tokens, or nanodollars for a cost budget.
    pub limit: u64,
    /// `day`, `week` or `month`.
    pub period: BudgetPeriod,
}

/// The budgets of one token or one group; every one is optional.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Budgets {
    /// Input + output tokens per period.
    pub tokens: Option<PeriodLimit>,
    /// Nanodollars per period.
    pub cost: Option<PeriodLimit>,
    /// Tokens per calendar minute.
    pub tpm: Option<u64>,
}

impl Budgets {
    /// Whether no budget is set.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.cost.is_none() && self.tpm.is_none()
    }
}

/// A change to budgets: `None` leaves a budget alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetPatch {
    /// New token budget.
    pub tokens: Option<Option<PeriodLimit>>,
    /// New cost budget.
    pub cost: Option<Option<PeriodLimit>>,
    /// New tokens-per-minute limit.
    pub tpm: Option<Option<u64>>,
    /// New group (tokens only; `Some(None)` leaves the group).
    pub group: Option<Option<String>>,
}

impl BudgetPatch {
    /// Whether the patch names nothing.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_none() && self.cost.is_none() && self.tpm.is_none() && self.group.is_none()
    }

    /// `budgets` with this patch applied (the group is not part of [`Budgets`]).
    pub fn apply(&self, mut budgets: Budgets) -> Budgets {
        if let Some(tokens) = self.tokens {
            budgets.tokens = tokens;
        }
        if let Some(cost) = self.cost {
            budgets.cost = cost;
        }
        if let Some(tpm) = self.tpm {
            budgets.tpm = tpm;
        }
        budgets
    }
}

/// Why a budget as typed is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetInputError {
    /// Not `N/PERIOD` with N a positive whole number of tokens.
    #[error("token budget must be TOKENS/PERIOD with PERIOD day, week or month (e.g. 100000/day), got {0:?}")]
    Tokens(String),
    /// Not `USD/PERIOD`.
    #[error("cost budget must be USD/PERIOD with PERIOD day, week or month and at most 9 decimals (e.g. 25.50/month), got {0:?}")]
    Cost(String),
    /// Not a positive whole number.
    #[error("tokens per minute must be a positive whole number, got {0:?}")]
    Tpm(String),
    /// Not a group name.
    #[error("group names are 1 to 64 characters of a-z, 0-9, '.', '_' and '-', got {0:?}")]
    Group(String),
}

fn calendar_period(text: &str) -> Option<BudgetPeriod> {
    BudgetPeriod::parse(text.trim()).filter(|p| *p != BudgetPeriod::Minute)
}

/// Parses `TOKENS/PERIOD`.
pub fn parse_token_budget(text: &str) -> Result<PeriodLimit, BudgetInputError> {
    let bad = || BudgetInputError::Tokens(text.to_owned());
    let (n, period) = text.split_once('/').ok_or_else(bad)?;
    let limit: u64 = n.trim().parse().map_err(|_| bad())?;
    let period = calendar_period(period).ok_or_else(bad)?;
    (limit > 0)
        .then_some(PeriodLimit { limit, period })
        .ok_or_else(bad)
}

/// Parses `USD/PERIOD` (`25`, `25.5`, `0.000000001`) into nanodollars, exactly (no float).
pub fn parse_cost_budget(text: &str) -> Result<PeriodLimit, BudgetInputError> {
    let bad = || BudgetInputError::Cost(text.to_owned());
    let (usd, period) = text.split_once('/').ok_or_else(bad)?;
    let usd = usd.trim().trim_start_matches('$');
    let (whole, frac) = usd.split_once('.').unwrap_or((usd, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 9 {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let frac_nano: u64 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    let limit = whole
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac_nano))
        .filter(|n| *n > 0)
        .ok_or_else(bad)?;
    let period = calendar_period(period).ok_or_else(bad)?;
    Ok(PeriodLimit { limit, period })
}

/// Parses a tokens-per-minute limit.
pub fn parse_tpm(text: &str) -> Result<u64, BudgetInputError> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| BudgetInputError::Tpm(text.to_owned()))
}

/// Checks a group name: it becomes part of ledger and Redis keys, so a closed alphabet.
pub fn parse_group(text: &str) -> Result<String, BudgetInputError> {
    let name = text.trim();
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    ok.then(|| name.to_owned())
        .ok_or_else(|| BudgetInputError::Group(text.to_owned()))
}

/// Nanodollars as USD with up to nine decimals, trailing zeros dropped (`25.5`).
pub fn usd_text(nano: u64) -> String {
    let (whole, frac) = (nano / 1_000_000_000, nano % 1_000_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

impl fmt::Display for Budgets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(t) = self.tokens {
            parts.push(format!("{} tokens/{}", t.limit, t.period.as_str()));
        }
        if let Some(c) = self.cost {
            parts.push(format!("${}/{}", usd_text(c.limit), c.period.as_str()));
        }
        if let Some(tpm) = self.tpm {
            parts.push(format!("{tpm} tpm"));
        }
        if parts.is_empty() {
            return f.write_str("none");
        }
        f.write_str(&parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn budgets_parse_exactly_and_refuse_what_is_not_one() {
        let t = parse_token_budget("100000/day").unwrap();
        assert_eq!((t.limit, t.period), (100_000, BudgetPeriod::Day));
        assert_eq!(
            parse_token_budget(" 5 / week ").unwrap().period,
            BudgetPeriod::Week
        );
        let c = parse_cost_budget("25.50/month").unwrap();
        assert_eq!((c.limit, c.period), (25_500_000_000, BudgetPeriod::Month));
        assert_eq!(parse_cost_budget("$0.000000001/day").unwrap().limit, 1);
        assert_eq!(parse_cost_budget("3/week").unwrap().limit, 3_000_000_000);
        for bad in [
            "",
            "0/day",
            "10",
            "10/minute",
            "10/year",
            "-1/day",
            "1.5/day",
        ] {
            assert!(parse_token_budget(bad).is_err(), "{bad}");
        }
        for bad in [
            "0/day",
            "1.0000000001/day",
            "1e3/day",
            "/day",
            ".5/day",
            "x/month",
        ] {
            assert!(parse_cost_budget(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_tpm("20000").unwrap(), 20_000);
        assert!(parse_tpm("0").is_err() && parse_tpm("1k").is_err());
        assert_eq!(parse_group("team-a.eu_1").unwrap(), "team-a.eu_1");
        for bad in ["", "Team", "a b", "a:b", &"x".repeat(65)] {
            assert!(parse_group(bad).is_err(), "{bad}");
        }
        assert_eq!(usd_text(25_500_000_000), "25.5");
        assert_eq!(usd_text(3_000_000_000), "3");
        assert_eq!(usd_text(1), "0.000000001");
    }
}
