//! Scanning an HTTP/1.1 SSE response as it arrives, for time-to-first-event and
//! time-to-last-event. Byte-level on purpose: chunked framing, LiteLLM's re-chunking and
//! Envoy's pass-through all keep `data:` and `[DONE]` intact, so no HTTP client is needed.

use crate::fixtures::find;

/// What has been seen so far in one response.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The status code, once the status line and headers are complete.
    pub status: Option<u16>,
    /// A `data:` line has arrived in the body.
    pub first_event: bool,
    /// `data: [DONE]` has arrived.
    pub done: bool,
}

/// Re-reads everything received so far (responses are a few hundred bytes).
pub fn scan(received: &[u8]) -> Progress {
    let Some(end) = find(received, b"\r\n\r\n") else {
        return Progress::default();
    };
    let status = std::str::from_utf8(&received[..end])
        .ok()
        .and_then(|head| head.split(' ').nth(1))
        .and_then(|code| code.parse().ok());
    let body = &received[end + 4..];
    Progress {
        status,
        first_event: find(body, b"data:").is_some(),
        done: find(body, b"data: [DONE]").is_some(),
    }
}

/// SSE events (`data:` lines) in a response received so far: the chunks the client got, for
/// the harness's CPU per chunk. Counted in the body only (after the head).
pub fn count_events(received: &[u8]) -> usize {
    let body = find(received, b"\r\n\r\n").map_or(received, |end| &received[end + 4..]);
    body.windows(b"data:".len())
        .filter(|w| *w == b"data:")
        .count()
}

/// The `q` quantile (0..=1) of `samples` by nearest rank; `None` when empty.
pub fn quantile(samples: &mut [f64], q: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = (q * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn progress_follows_a_chunked_stream() {
        let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";
        assert_eq!(scan(&head[..20]), Progress::default());
        let mut got = head.to_vec();
        assert_eq!(scan(&got).status, Some(200));
        assert!(!scan(&got).first_event);
        got.extend_from_slice(b"1a\r\ndata: {\"x\":1}\n\n\r\n");
        assert!(scan(&got).first_event && !scan(&got).done);
        got.extend_from_slice(b"e\r\ndata: [DONE]\n\n\r\n0\r\n\r\n");
        assert!(scan(&got).done);
    }

    #[test]
    fn events_are_counted_in_the_body_only() {
        let got = b"HTTP/1.1 200 OK\r\nx-data: data:\r\n\r\n1a\r\ndata: {\"x\":1}\n\n\r\ne\r\ndata: [DONE]\n\n";
        assert_eq!(count_events(got), 2);
        assert_eq!(count_events(b"data: a\n\n"), 1);
    }

    #[test]
    fn refusals_report_their_status() {
        let got = scan(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 2\r\n\r\n{}");
        assert_eq!(got.status, Some(401));
        assert!(!got.first_event);
    }

    #[test]
    fn quantiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.5), Some(50.0));
        assert_eq!(quantile(&mut v, 0.99), Some(99.0));
        assert_eq!(quantile(&mut [], 0.5), None);
    }
}
