//! Whether a failed check callout is sent once more.
//!
//! Several token-service replicas sit behind one Envoy cluster. When one dies, the callouts
//! already on its connections (and the few the load balancer still sends it before outlier
//! detection and health checks take it out) fail. proxy-wasm's `dispatch_http_call` cannot
//! choose a host, so a failed callout is simply dispatched again: the cluster's load balancer,
//! with the failed host ejected or marked unhealthy, picks another replica.
//!
//! Only an answer that carries no verdict is retried: no response at all (reset, refused
//! connection, timeout) or a 5xx. A 200 (allow or deny, whatever its body), a 4xx (a wrong
//! check secret, a malformed request) and any other status are final, so a retry can never
//! turn a deny into an allow: it only replaces "no verdict" with the verdict of another
//! replica.

/// Most retries a single check may take (`token_service.retries`).
pub const MAX_RETRIES: u8 = 1;

/// What the first callout's failure tells about the check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CalloutOutcome {
    /// A verdict or a final refusal from the token-service: use it.
    Answered,
    /// No verdict (transport failure, timeout, 5xx): another replica may answer.
    NoVerdict,
}

/// Classifies a callout result by its status (`None`: Envoy got no response).
pub fn outcome(status: Option<u16>) -> CalloutOutcome {
    match status {
        None => CalloutOutcome::NoVerdict,
        Some(code) if (500..=599).contains(&code) => CalloutOutcome::NoVerdict,
        Some(_) => CalloutOutcome::Answered,
    }
}

/// True when a callout that ended with `status` after `retries_done` retries is sent again,
/// given at most `max_retries` (configured, capped at [`MAX_RETRIES`]).
pub fn should_retry(status: Option<u16>, retries_done: u8, max_retries: u8) -> bool {
    retries_done < max_retries.min(MAX_RETRIES) && outcome(status) == CalloutOutcome::NoVerdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_response_and_5xx_are_retried_once() {
        for status in [None, Some(500), Some(502), Some(503), Some(504), Some(599)] {
            assert!(should_retry(status, 0, 1), "{status:?}");
            assert!(!should_retry(status, 1, 1), "{status:?} retried twice");
        }
    }

    #[test]
    fn verdicts_and_final_refusals_are_never_retried() {
        // 200 carries allow and deny alike; 401/403 are a wrong check secret; 4xx a bad call.
        for status in [200, 204, 301, 400, 401, 403, 404, 429, 499, 600] {
            assert!(!should_retry(Some(status), 0, 1), "{status}");
        }
    }

    #[test]
    fn retries_can_be_turned_off_and_are_capped() {
        assert!(!should_retry(None, 0, 0));
        assert!(!should_retry(Some(503), 0, 0));
        // A larger configured value still means one retry.
        assert!(should_retry(None, 0, 9));
        assert!(!should_retry(None, 1, 9));
    }
}
