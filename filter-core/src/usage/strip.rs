//! Removes the usage-only chunk from a Chat Completions stream whose request the filter
//! changed to ask for usage (`stream_options.rs`), so the client sees exactly the stream it
//! would have seen: clients that index `choices[0]` crash on a chunk with `"choices": []`.
//!
//! The chunk is recognised by content, not position: its `usage` is not null and its
//! `choices` is empty (OpenAI's moderation chunk also has empty `choices`, with null usage, and
//! is kept). An event is held only until its blank line arrives, and only while it is small
//! (the usage chunk is a few hundred bytes): an event longer than [`HOLD_LIMIT`] is passed on
//! as it comes. A client's SSE parser acts on an event only at its blank line, so holding the
//! head of an event until then delays nothing the client could see; every other byte is
//! forwarded exactly as received.

use serde_json::Value;

/// Events up to this size are held until they end; longer ones pass through unheld.
pub const HOLD_LIMIT: usize = 16 * 1024;

/// Rewrites one response stream, chunk by chunk; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct UsageChunkStripper {
    /// Bytes of the current event not yet forwarded.
    held: Vec<u8>,
    /// The current event grew past the limit: forward the rest as it comes.
    passing: bool,
    /// Length of the current line so far (0 at a line start).
    line_len: usize,
    /// The previous byte was a CR; `cr_ended_event` if that CR ended an event.
    after_cr: bool,
    cr_ended_event: bool,
    /// The last event ended was removed (so is the LF that completes its CRLF).
    removed_last: bool,
    /// How many usage-only chunks were removed.
    removed: u32,
}

impl UsageChunkStripper {
    /// The bytes to forward in place of `chunk` (possibly empty while an event is held).
    pub fn rewrite(&mut self, chunk: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(chunk.len());
        let mut start = 0usize;
        for (at, &byte) in chunk.iter().enumerate() {
            let after_cr = std::mem::take(&mut self.after_cr);
            let cr_ended_event = std::mem::take(&mut self.cr_ended_event);
            if after_cr && byte == b'\n' {
                if cr_ended_event {
                    // The LF of a CRLF blank line: it belongs to the event already decided.
                    self.take(chunk, start, at, &mut out);
                    if !self.removed_last {
                        out.push(byte);
                    }
                    start = at.saturating_add(1);
                }
                continue;
            }
            if byte != b'\n' && byte != b'\r' {
                self.line_len = self.line_len.saturating_add(1);
                continue;
            }
            let blank = self.line_len == 0;
            self.line_len = 0;
            self.after_cr = byte == b'\r';
            if blank {
                let end = at.saturating_add(1);
                self.take(chunk, start, end, &mut out);
                self.end_event(&mut out);
                self.cr_ended_event = self.after_cr;
                start = end;
            }
        }
        self.take(chunk, start, chunk.len(), &mut out);
        out
    }

    /// The stream ended: whatever is still held goes out unchanged.
    pub fn finish(&mut self) -> Vec<u8> {
        self.passing = false;
        std::mem::take(&mut self.held)
    }

    /// How many usage-only chunks were removed so far.
    pub fn removed(&self) -> u32 {
        self.removed
    }

    /// Adds `chunk[from..to]` to the current event: held, or forwarded if the event is long.
    fn take(&mut self, chunk: &[u8], from: usize, to: usize, out: &mut Vec<u8>) {
        let Some(part) = chunk.get(from..to) else {
            return;
        };
        if self.passing {
            out.extend_from_slice(part);
            return;
        }
        self.held.extend_from_slice(part);
        if self.held.len() > HOLD_LIMIT {
            out.append(&mut self.held);
            self.passing = true;
        }
    }

    /// The current event ended (its blank line is in `held` or already forwarded).
    fn end_event(&mut self, out: &mut Vec<u8>) {
        if self.passing {
            self.passing = false;
            self.removed_last = false;
            return;
        }
        let event = std::mem::take(&mut self.held);
        self.removed_last = is_usage_only(&event);
        if self.removed_last {
            self.removed = self.removed.saturating_add(1);
        } else {
            out.extend_from_slice(&event);
        }
    }
}

/// Whether a whole SSE event is a chunk with non-null `usage` and empty `choices`.
fn is_usage_only(event: &[u8]) -> bool {
    let data = event_data(event);
    let Ok(Value::Object(chunk)) = serde_json::from_slice::<Value>(&data) else {
        return false;
    };
    let usage = chunk.get("usage").is_some_and(|u| !u.is_null());
    let no_choices = matches!(chunk.get("choices"), Some(Value::Array(c)) if c.is_empty());
    usage && no_choices
}

/// The event's `data` lines joined with LF (the SSE rule), other fields ignored.
fn event_data(event: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    let lines = event.split(|b| *b == b'\n' || *b == b'\r');
    for line in lines {
        let Some(value) = line.strip_prefix(b"data") else {
            continue;
        };
        let value = match value.split_first() {
            Some((b':', rest)) => rest.strip_prefix(b" ").unwrap_or(rest),
            None => value,
            Some(_) => continue, // another field whose name starts with "data"
        };
        if !data.is_empty() {
            data.push(b'\n');
        }
        data.extend_from_slice(value);
    }
    data
}
