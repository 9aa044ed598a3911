//! A quota, `N/SECONDS`: what an operator types and what the limiters count against.

use std::fmt;
use std::str::FromStr;

use crate::token::TokenInputError;

/// Longest rate-limit window the input accepts, in seconds (about 12 days; the CLI, the
/// settings, the admin API and its OpenAPI maximum all refuse longer ones). Both limiters would
/// count any `u32` length the same way (the contract suite pins it); the bound stays because
/// it is documented, and because a window much longer than a day is a budget, which is
/// metering's job, not a rate.
pub const MAX_WINDOW_S: u32 = (1 << 20) - 1;

/// A per-token (or default) quota: at most `limit` requests per `window_s` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window (at least 1).
    pub limit: u32,
    /// Window length in seconds (1 to [`MAX_WINDOW_S`]).
    pub window_s: u32,
}

impl FromStr for RateLimit {
    type Err = TokenInputError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || TokenInputError::BadRateLimit(text.to_owned());
        let (limit, window) = text.trim().split_once('/').ok_or_else(bad)?;
        let limit: u32 = limit.trim().parse().map_err(|_| bad())?;
        let window_s: u32 = window.trim().parse().map_err(|_| bad())?;
        if limit == 0 || window_s == 0 || window_s > MAX_WINDOW_S {
            return Err(bad());
        }
        Ok(RateLimit { limit, window_s })
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.limit, self.window_s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn rate_limits_parse_and_print() {
        let rl: RateLimit = "100/60".parse().unwrap();
        assert_eq!(
            rl,
            RateLimit {
                limit: 100,
                window_s: 60
            }
        );
        assert_eq!(rl.to_string(), "100/60");
        assert_eq!(" 3 / 10 ".parse::<RateLimit>().unwrap().window_s, 10);
        assert_eq!(
            format!("1/{MAX_WINDOW_S}")
                .parse::<RateLimit>()
                .unwrap()
                .window_s,
            MAX_WINDOW_S
        );
        let too_long = format!("1/{}", MAX_WINDOW_S + 1);
        for bad in [
            "",
            "100",
            "0/60",
            "10/0",
            "-1/60",
            "a/b",
            "1/2/3",
            too_long.as_str(),
        ] {
            assert!(bad.parse::<RateLimit>().is_err(), "{bad} should be refused");
        }
    }
}
