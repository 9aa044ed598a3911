//! Server-to-client WebSocket frames as they pass through, chunk by chunk: where the payload
//! bytes of text, continuation and close frames are, so that a fragment of the real key can be
//! masked inside them without touching a frame header (a same-length rewrite keeps every frame
//! valid).
//!
//! Why: OpenAI's Realtime API accepts the upgrade of a refused key and then sends an `error`
//! event quoting the key masked (`Incorrect API key provided: sk-…INEL`) before closing with
//! 3000 `invalid_request_error.invalid_api_key`. Server frames are never masked (RFC 6455
//! §5.1); compressed ones (RSV1, permessage-deflate) cannot be read, which is why the filter
//! does not offer that extension upstream on a handshake it forwards with a real key.

use std::ops::Range;

/// Where the scanner is in the frame stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading a frame header; the bytes of it seen so far.
    Header(Vec<u8>),
    /// Inside a payload: bytes still to come, and whether to read them.
    Payload { remaining: u64, read: bool },
}

/// Follows the frames of one WebSocket response (server to client) across body chunks:
/// created per upgraded request, fed every chunk in order with [`FrameScanner::readable`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameScanner {
    state: State,
    /// The opcode of the message a continuation frame continues (text or binary).
    message_is_text: bool,
}

impl Default for FrameScanner {
    fn default() -> Self {
        FrameScanner {
            state: State::Header(Vec::new()),
            message_is_text: false,
        }
    }
}

const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_CLOSE: u8 = 0x8;
const RSV1: u8 = 0x40;

impl FrameScanner {
    /// The byte ranges of `chunk` that are payload of uncompressed text, continuation-of-text
    /// and close frames; advances past the chunk.
    pub fn readable(&mut self, chunk: &[u8]) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut at: usize = 0;
        // `at < chunk.len()` inside the loop, and a payload takes at most what is left of the
        // chunk and of the frame: none of the saturating operations below ever saturates.
        while let Some(&byte) = chunk.get(at) {
            match &mut self.state {
                State::Payload { remaining, read } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(chunk.len().saturating_sub(at));
                    let end = at.saturating_add(take);
                    if *read && take > 0 {
                        out.push(at..end);
                    }
                    at = end;
                    *remaining = remaining.saturating_sub(take as u64);
                    if *remaining == 0 {
                        self.state = State::Header(Vec::new());
                    }
                }
                State::Header(seen) => {
                    seen.push(byte);
                    at = at.saturating_add(1);
                    if let Some((payload, read)) = parse_header(seen, &mut self.message_is_text) {
                        self.state = if payload == 0 {
                            State::Header(Vec::new())
                        } else {
                            State::Payload {
                                remaining: payload,
                                read,
                            }
                        };
                    }
                }
            }
        }
        out
    }
}

/// A complete header's payload length and whether its payload is readable text; `None` while
/// more header bytes are needed.
fn parse_header(h: &[u8], message_is_text: &mut bool) -> Option<(u64, bool)> {
    let [first, second, rest @ ..] = h else {
        return None;
    };
    // The length (7 bits, or 16 or 64 bits big-endian after them), then the masking key.
    let (length, key) = match second & 0x7f {
        126 => {
            let (bytes, key) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*bytes)), key)
        }
        127 => {
            let (bytes, key) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*bytes), key)
        }
        short => (u64::from(short), rest),
    };
    let masked = second & 0x80 != 0;
    if masked && key.len() < 4 {
        return None;
    }
    let opcode = first & 0x0f;
    let compressed = first & RSV1 != 0;
    let text = match opcode {
        OP_TEXT => {
            *message_is_text = true;
            true
        }
        OP_CONTINUATION => *message_is_text,
        OP_CLOSE => true,
        // Binary starts a non-text message; other control frames are skipped.
        0x2 => {
            *message_is_text = false;
            false
        }
        _ => false,
    };
    // A masked server frame is a protocol error; never rewrite what cannot be read plainly.
    Some((length, text && !compressed && !masked))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(n as u8),
            n if n < 65536 => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    fn readable_text(stream: &[u8], cut: &[usize]) -> Vec<u8> {
        let mut scanner = FrameScanner::default();
        let mut out = Vec::new();
        let mut start = 0;
        for end in cut.iter().copied().chain([stream.len()]) {
            let chunk = &stream[start..end];
            for r in scanner.readable(chunk) {
                out.extend_from_slice(&chunk[r]);
            }
            start = end;
        }
        out
    }

    #[test]
    fn text_and_close_payloads_are_found_across_any_cut() {
        let big = vec![b'x'; 300];
        let huge = vec![b'y'; 70_000];
        let mut stream = frame(0x81, b"{\"type\":\"error\"}");
        stream.extend(frame(0x82, b"\x00\x01binary"));
        stream.extend(frame(0x89, b"ping"));
        stream.extend(frame(0x01, b"part1"));
        stream.extend(frame(0x80, b"part2"));
        stream.extend(frame(0x81, &big));
        stream.extend(frame(0x81, &huge));
        stream.extend(frame(0xC1, b"compressed"));
        stream.extend(frame(0x88, b"\x0b\xb8invalid_api_key"));
        let mut want = b"{\"type\":\"error\"}part1part2".to_vec();
        want.extend(&big);
        want.extend(&huge);
        want.extend(b"\x0b\xb8invalid_api_key");
        for cut in [
            vec![],
            vec![1],
            vec![3, 20, 21, 22],
            (1..stream.len()).step_by(7).collect::<Vec<_>>(),
        ] {
            assert_eq!(
                readable_text(&stream, &cut),
                want,
                "{:?}",
                &cut[..cut.len().min(5)]
            );
        }
    }

    #[test]
    fn binary_continuations_stay_binary() {
        let mut stream = frame(0x02, b"bin-a");
        stream.extend(frame(0x80, b"bin-b"));
        stream.extend(frame(0x81, b"txt"));
        assert_eq!(readable_text(&stream, &[4]), b"txt");
    }

    #[test]
    fn masked_server_frames_are_not_read() {
        let stream = vec![0x81, 0x84, 1, 2, 3, 4, b'a', b'b', b'c', b'd'];
        assert!(readable_text(&stream, &[]).is_empty());
    }

    #[test]
    fn a_masked_frames_length_key_and_payload_are_skipped_whole() {
        // A masked text frame (16-bit length 130, 4-byte key), then a plain one: only the
        // plain payload is read, whatever the cut.
        let mut stream = vec![0x81, 0x80 | 126, 0, 130, 1, 2, 3, 4];
        stream.extend([b'm'; 130]);
        stream.extend(frame(0x81, b"plain"));
        for cut in [vec![], (1..stream.len()).collect::<Vec<_>>()] {
            assert_eq!(readable_text(&stream, &cut), b"plain");
        }
    }
}
