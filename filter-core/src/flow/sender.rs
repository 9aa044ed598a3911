//! Who sent a request, as the guess throttle sees it.

use crate::flow::{Host, Worker};
use crate::guess_throttle::{client_key, pair_fingerprint};

/// The guess throttle's view of a request's sender (empty when the throttle is off).
#[derive(Debug)]
pub(super) struct Sender {
    /// The throttle key of the source address.
    pub(super) key: String,
    /// The (address, token) known-good fingerprint (0: none).
    pub(super) pair: u64,
}

impl Sender {
    /// The throttle key of the request's source address (read only with the throttle on).
    pub(super) fn key_of(worker: &Worker, host: &impl Host) -> String {
        if worker.config.guess_throttle.enabled {
            client_key(&host.source_address())
        } else {
            String::new()
        }
    }

    /// The sender of a bound request whose token is `token_hash` (no pair for an unknown
    /// address).
    pub(super) fn of(key: String, token_hash: &str) -> Sender {
        let pair = if key.is_empty() {
            0
        } else {
            pair_fingerprint(&key, token_hash)
        };
        Sender { key, pair }
    }

    /// The sender of a token request (reads the source address only with the throttle on).
    pub(super) fn of_token(worker: &Worker, host: &impl Host, token_hash: &str) -> Sender {
        if !worker.config.guess_throttle.enabled {
            return Sender {
                key: String::new(),
                pair: 0,
            };
        }
        let key = client_key(&host.source_address());
        let pair = pair_fingerprint(&key, token_hash);
        Sender { key, pair }
    }

    /// Remembers that this sender used a valid token (no-op with the throttle off).
    pub(super) fn allowed(&self, worker: &Worker, host: &impl Host) {
        if self.pair != 0 {
            worker.known.borrow_mut().insert(host.shared(), self.pair);
        }
    }
}
