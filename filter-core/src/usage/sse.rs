//! Server-sent events read chunk by chunk (the WHATWG event-stream format): lines end in LF,
//! CRLF or CR (Vertex sends CRLF), a blank line dispatches the event, `data` lines of one event
//! are joined with a line feed, `:` starts a comment. Data is streamed to a sink as it arrives,
//! so an event of any size costs no memory here; only the short `event` name is kept.

/// What the framer reports while it reads.
pub trait SseSink {
    /// The next bytes of the current event's data (a line feed between two `data` lines).
    fn data(&mut self, bytes: &[u8]);
    /// The event ended (blank line, or the end of the stream after data); `name` is its
    /// `event` field if it had one (cut at 64 bytes).
    fn dispatch(&mut self, name: Option<&[u8]>);
}

/// Field names longer than this are not fields of ours (the line is ignored).
const MAX_FIELD: usize = 16;
/// `event` values are kept up to this many bytes.
const MAX_EVENT_NAME: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// At the start of a line.
    Start,
    /// Reading the field name.
    Field,
    /// Right after the colon (one space is skipped here).
    AfterColon,
    /// Reading the value.
    Value,
    /// Ignoring the rest of the line (comment, unknown or over-long field).
    Skip,
}

/// Reads one event stream; see the module docs.
#[derive(Debug, Clone)]
pub struct SseFramer {
    line: Line,
    field: Vec<u8>,
    /// The previous byte was a CR (an LF right after it belongs to the same line end).
    after_cr: bool,
    /// The current event has data (a `data` line was seen).
    has_data: bool,
    /// The current line is a `data` line whose value has started.
    in_data: bool,
    name: Option<Vec<u8>>,
}

impl Default for SseFramer {
    fn default() -> Self {
        SseFramer {
            line: Line::Start,
            field: Vec::new(),
            after_cr: false,
            has_data: false,
            in_data: false,
            name: None,
        }
    }
}

impl SseFramer {
    /// Reads the next bytes of the stream, reporting to `sink`.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl SseSink) {
        let mut rest = chunk;
        while let Some((&byte, tail)) = rest.split_first() {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                rest = tail;
                continue;
            }
            if self.line == Line::Value && self.in_data {
                // Stream the run of data up to the line end in one call.
                let stop = memchr::memchr2(b'\n', b'\r', rest).unwrap_or(rest.len());
                let (run, after) = rest.split_at(stop);
                sink.data(run);
                rest = after;
                if let Some((&end, after_end)) = rest.split_first() {
                    self.end_line(end, sink);
                    rest = after_end;
                }
                continue;
            }
            if byte == b'\n' || byte == b'\r' {
                self.end_line(byte, sink);
            } else {
                self.line_byte(byte, sink);
            }
            rest = tail;
        }
    }

    /// The stream ended: an event with data but no blank line yet is dispatched (a stream that
    /// closes right after its last event still counts it; Gemini ends streams by closing).
    pub fn finish(&mut self, sink: &mut impl SseSink) {
        if self.has_data {
            self.dispatch(sink);
        }
        *self = SseFramer::default();
    }

    fn line_byte(&mut self, byte: u8, sink: &mut impl SseSink) {
        match self.line {
            Line::Start if byte == b':' => self.line = Line::Skip,
            Line::Start | Line::Field if byte == b':' => self.field_done(sink),
            Line::Start | Line::Field => {
                self.line = Line::Field;
                if self.field.len() < MAX_FIELD {
                    self.field.push(byte);
                } else {
                    self.line = Line::Skip;
                }
            }
            Line::AfterColon => {
                self.line = Line::Value;
                if byte != b' ' {
                    self.value_byte(byte, sink);
                }
            }
            Line::Value => self.value_byte(byte, sink),
            Line::Skip => {}
        }
    }

    /// The colon after a field name: a `data` line begins (joined to the previous one with a
    /// line feed), or an `event` line, or another field we ignore.
    fn field_done(&mut self, sink: &mut impl SseSink) {
        self.line = Line::AfterColon;
        match self.field.as_slice() {
            b"data" => self.start_data(sink),
            b"event" => self.name = Some(Vec::new()),
            _ => self.line = Line::Skip,
        }
    }

    fn start_data(&mut self, sink: &mut impl SseSink) {
        if self.has_data {
            sink.data(b"\n");
        }
        self.has_data = true;
        self.in_data = true;
    }

    fn value_byte(&mut self, byte: u8, sink: &mut impl SseSink) {
        if self.in_data {
            sink.data(&[byte]);
        } else if let Some(name) = &mut self.name {
            if name.len() < MAX_EVENT_NAME {
                name.push(byte);
            }
        }
    }

    fn end_line(&mut self, byte: u8, sink: &mut impl SseSink) {
        self.after_cr = byte == b'\r';
        match self.line {
            Line::Start => {
                if self.has_data {
                    self.dispatch(sink);
                } else {
                    self.name = None;
                }
            }
            // A bare `data` line is an empty data line.
            Line::Field if self.field == b"data" => self.start_data(sink),
            _ => {}
        }
        self.line = Line::Start;
        self.field.clear();
        self.in_data = false;
    }

    fn dispatch(&mut self, sink: &mut impl SseSink) {
        sink.dispatch(self.name.as_deref());
        self.has_data = false;
        self.in_data = false;
        self.name = None;
    }
}
