//! A budgeted WebSocket session's reservation (OpenAI Realtime, Responses over a WebSocket,
//! Gemini Live; `docs/wire-protocol.md` "Budgets"): what it spent from grants ("held"), and
//! how much more it must hold before the next client message may go on.
//!
//! One estimate at the handshake cannot bound a session that spends per response, so the
//! session keeps a headroom instead: before any client message is forwarded, what it holds
//! must cover what the meter charged so far plus one turn's reservation (`per_turn`) for every
//! response that may be running, at least one. A message that asks for a response
//! (`response.create`; Live: a `clientContent` with `turnComplete`, a `toolResponse`) counts
//! one more. So a response starts with at least `per_turn` tokens held for it, and a session
//! spends past what it held by at most one response's `(actual − per_turn)⁺` for each
//! response running at once. A session outlives its grants: a hold older than
//! [`RENEW_AFTER_MS`] no longer counts, so what it covered is held again from a current grant
//! before the reservation behind it can lapse.
//!
//! The client's messages are read from the raw frames (`usage::ws`) as they pass, for whether
//! each asks for a response (`budget::asks`).

use ptk_wire::GrantRelease;

use super::asks::Asks;
use crate::usage::ws::WsFrames;
use crate::usage::UsageApi;

/// What a chunk of client frames held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientChunk {
    /// Messages that ended in it (none: it cannot start anything yet).
    pub messages: u64,
    /// Of those, messages that ask for a response.
    pub asks: u64,
}

/// A hold is renewed (spent again from a current grant) this long after its grant was first
/// spent from. The token-service lets a grant's reservation lapse 300 s after the grant
/// expires, and nothing is spent from an expired grant, so a hold younger than this is still
/// reserved; an older one may not be, and a long session would then spend unreserved.
pub const RENEW_AFTER_MS: u64 = 240_000;

/// Tokens held from one grant, since its first spend.
#[derive(Debug, Clone, Copy)]
struct Hold {
    release: GrantRelease,
    since_ms: u64,
}

/// A budgeted session's reservation; see the module docs.
#[derive(Debug, Clone)]
pub struct SessionBudget {
    per_turn: u64,
    holds: Vec<Hold>,
    /// Messages asking for a response: forwarded, and read but not forwarded yet.
    asked: u64,
    queued: u64,
    frames: WsFrames,
    trigger: Asks,
}

impl SessionBudget {
    /// A session of `api` that reserves `per_turn` tokens per response and holds `tokens`
    /// of grant `grant` (spent at its handshake, host time `now_ms`).
    pub fn new(
        api: UsageApi,
        per_turn: u64,
        grant: u64,
        tokens: u64,
        now_ms: u64,
    ) -> SessionBudget {
        let mut session = SessionBudget {
            per_turn,
            holds: Vec::new(),
            asked: 0,
            queued: 0,
            frames: WsFrames::default(),
            trigger: Asks::new(api == UsageApi::Live),
        };
        session.hold(grant, tokens, now_ms);
        session
    }

    /// Tokens spent from grants for this session so far.
    pub fn held(&self) -> u64 {
        self.holds
            .iter()
            .fold(0u64, |sum, h| sum.saturating_add(h.release.tokens))
    }

    /// Of those, the ones still reserved at `now_ms` (not due for renewal).
    fn held_fresh(&self, now_ms: u64) -> u64 {
        self.holds
            .iter()
            .filter(|h| now_ms.saturating_sub(h.since_ms) < RENEW_AFTER_MS)
            .fold(0u64, |sum, h| sum.saturating_add(h.release.tokens))
    }

    /// `tokens` more spent from grant `grant` at `now_ms`.
    pub fn hold(&mut self, grant: u64, tokens: u64, now_ms: u64) {
        match self.holds.iter_mut().find(|h| h.release.grant == grant) {
            Some(h) => h.release.tokens = h.release.tokens.saturating_add(tokens),
            None => self.holds.push(Hold {
                release: GrantRelease { grant, tokens },
                since_ms: now_ms,
            }),
        }
    }

    /// Reads the next client bytes (any split): the messages that ended in them. Their asks
    /// count as queued until [`SessionBudget::forwarded`].
    pub fn read_client(&mut self, chunk: &[u8]) -> ClientChunk {
        let (ended, asked) = (self.trigger.ended, self.trigger.asked);
        self.frames.feed(chunk, &mut self.trigger);
        let asks = self.trigger.asked.saturating_sub(asked);
        self.queued = self.queued.saturating_add(asks);
        ClientChunk {
            messages: self.trigger.ended.saturating_sub(ended),
            asks,
        }
    }

    /// The messages read so far went on to the provider.
    pub fn forwarded(&mut self) {
        self.asked = self.asked.saturating_add(std::mem::take(&mut self.queued));
    }

    /// Responses that may be running once the queued messages go on, given `done` the meter
    /// saw end: the ones asked for and not ended, at least one (a server that starts responses
    /// itself, voice activity detection, is covered by that one).
    pub fn running(&self, done: u64) -> u64 {
        self.asked
            .saturating_add(self.queued)
            .saturating_sub(done)
            .max(1)
    }

    /// Whether a response asked for (and forwarded) is still running (`done`: responses
    /// ended).
    pub fn asked_open(&self, done: u64) -> bool {
        self.asked > done
    }

    /// Tokens still to hold before the next client message may go on at `now_ms`, with
    /// `charged` what the meter read so far and `done` the responses it saw end (0: enough
    /// held). Holds due for renewal do not count: what they covered is held again.
    pub fn shortfall(&self, charged: u64, done: u64, now_ms: u64) -> u64 {
        let room = self.per_turn.saturating_mul(self.running(done));
        charged
            .saturating_add(room)
            .saturating_sub(self.held_fresh(now_ms))
    }

    /// What an unfinished session is charged beyond what was metered: one turn for each
    /// response asked for and not ended, at least one (`done`: responses ended).
    pub fn unfinished(&self, done: u64) -> u64 {
        let open = self.asked.saturating_sub(done).max(1);
        self.per_turn.saturating_mul(open)
    }

    /// Everything held, to release when the session's usage is recorded.
    pub fn releases(&self) -> Vec<GrantRelease> {
        self.holds
            .iter()
            .map(|h| h.release)
            .filter(|r| r.tokens > 0)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A masked client text frame (as a browser sends it) carrying `text`.
    fn frame(text: &str) -> Vec<u8> {
        let mask = [1u8, 2, 3, 4];
        let mut out = vec![0x81, 0x80 | u8::try_from(text.len()).unwrap()];
        out.extend_from_slice(&mask);
        out.extend(text.bytes().zip(mask.iter().cycle()).map(|(b, m)| b ^ m));
        out
    }

    #[test]
    fn response_create_asks_for_a_response_and_other_events_do_not() {
        let mut s = SessionBudget::new(UsageApi::Realtime, 100, 1, 100, 0);
        let mut bytes = frame(r#"{"type":"conversation.item.create","item":{}}"#);
        bytes.extend(frame(r#"{"event_id":"e","type":"response.create"}"#));
        // Split anywhere: the message that ends in the second part is counted there.
        let (a, b) = bytes.split_at(55);
        assert_eq!(
            s.read_client(a),
            ClientChunk {
                messages: 1,
                asks: 0
            }
        );
        assert_eq!(
            s.read_client(b),
            ClientChunk {
                messages: 1,
                asks: 1
            }
        );
        assert_eq!(s.running(0), 1);
        assert_eq!(s.shortfall(0, 0, 0), 0);
        s.read_client(&frame(r#"{"type":"response.create"}"#));
        assert_eq!(s.running(0), 2);
        assert_eq!(s.shortfall(30, 0, 0), 130);
        assert_eq!(s.shortfall(30, 2, 0), 30);
        // Queued asks are not open responses until they are forwarded.
        assert!(!s.asked_open(0));
        s.forwarded();
        assert!(s.asked_open(1) && !s.asked_open(2));
    }

    #[test]
    fn live_turn_ends_and_tool_answers_ask_and_audio_does_not() {
        let mut s = SessionBudget::new(UsageApi::Live, 10, 1, 10, 0);
        let asks = |s: &mut SessionBudget, text: &str| s.read_client(&frame(text)).asks;
        assert_eq!(asks(&mut s, r#"{"realtimeInput":{"audio":{}}}"#), 0);
        assert_eq!(asks(&mut s, r#"{"clientContent":{"turns":[]}}"#), 0);
        let turn = r#"{"clientContent":{"turns":[],"turnComplete":true}}"#;
        assert_eq!(asks(&mut s, turn), 1);
        let tool = r#"{"toolResponse":{"functionResponses":[{"id":"1","response":{}}]}}"#;
        assert_eq!(asks(&mut s, tool), 1);
    }

    #[test]
    fn holds_add_up_per_grant_and_are_released_together() {
        let mut s = SessionBudget::new(UsageApi::Realtime, 100, 1, 100, 0);
        s.hold(1, 50, 10);
        s.hold(2, 70, RENEW_AFTER_MS - 1);
        assert_eq!(s.held(), 220);
        let got: Vec<_> = s.releases().iter().map(|r| (r.grant, r.tokens)).collect();
        assert_eq!(got, vec![(1, 150), (2, 70)]);
        // Charged past what is held: the shortfall covers it and the next turn.
        assert_eq!(s.shortfall(300, 0, RENEW_AFTER_MS - 1), 180);
        // Grant 1's hold is due for renewal: held again (its tokens still go back at the end).
        assert_eq!(s.shortfall(300, 0, RENEW_AFTER_MS), 180 + 150);
        assert_eq!(s.releases().len(), 2);
    }
}
