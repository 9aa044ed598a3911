//! WebSocket messages read from the raw RFC 6455 frames Envoy hands a proxy-wasm filter after
//! a 101 (Envoy does no framing of its own), chunk by chunk: frames split across chunks,
//! several per chunk, 7/16/64-bit lengths, masked or not, fragmented messages with control
//! frames between their fragments. The payload of text and binary messages (Gemini Live sends
//! JSON in binary frames) is streamed to a sink, message by message; nothing is held but a
//! frame header of at most 14 bytes.
//!
//! A message compressed with permessage-deflate (RSV1 on its first frame) cannot be read here:
//! it is reported as such and skipped. The filter does not offer that extension upstream when
//! it forwards a handshake with a real key, so a provider has no reason to compress.

/// What the reader reports while it reads.
pub trait WsSink {
    /// The next payload bytes of the current (uncompressed) text or binary message.
    fn data(&mut self, bytes: &[u8]);
    /// The current text or binary message ended (its last fragment's payload is complete).
    fn message_end(&mut self);
    /// A compressed message began; its bytes are skipped.
    fn compressed(&mut self);
    /// A close frame arrived (the session is ending normally).
    fn close(&mut self);
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const MASKED: u8 = 0x80;
const OP_CONTINUATION: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;

/// What the payload of the current frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payload {
    /// Part of a data message we read.
    Read,
    /// Part of a compressed message, or a control frame: skipped.
    Skip,
}

/// Reads one direction of a WebSocket connection; see the module docs.
#[derive(Debug, Clone, Default)]
pub struct WsFrames {
    /// Header bytes of the frame being read (at most 14).
    header: Vec<u8>,
    /// Payload bytes of the current frame still to come, and what they are.
    remaining: u64,
    payload: Option<Payload>,
    /// The current frame is the last of its message.
    fin: bool,
    mask: Option<[u8; 4]>,
    /// Payload bytes of the current frame already read (for the mask's phase).
    offset: u64,
    /// A data message is open (its first frame was not FIN); `compressed` if it is skipped.
    in_message: bool,
    compressed: bool,
}

impl WsFrames {
    /// Reads the next bytes of the connection, reporting to `sink`.
    pub fn feed(&mut self, chunk: &[u8], sink: &mut impl WsSink) {
        let mut rest = chunk;
        while !rest.is_empty() {
            rest = match self.payload {
                Some(kind) => self.payload_bytes(rest, kind, sink),
                None => self.header_byte(rest, sink),
            };
        }
    }

    fn header_byte<'a>(&mut self, rest: &'a [u8], sink: &mut impl WsSink) -> &'a [u8] {
        let Some((&byte, tail)) = rest.split_first() else {
            return rest;
        };
        self.header.push(byte);
        if let Some(length) = header_length(&self.header) {
            if self.header.len() >= length {
                self.start_frame(sink);
            }
        }
        tail
    }

    /// The header is complete: decide what the payload is.
    fn start_frame(&mut self, sink: &mut impl WsSink) {
        let header = std::mem::take(&mut self.header);
        let (Some(&first), Some(&second)) = (header.first(), header.get(1)) else {
            return;
        };
        let opcode = first & 0x0F;
        self.fin = first & FIN != 0;
        let ext = match second & 0x7F {
            126 => 2,
            127 => 8,
            _ => 0,
        };
        let length = match ext {
            0 => u64::from(second & 0x7F),
            _ => header
                .get(2..2usize.saturating_add(ext))
                .unwrap_or(&[])
                .iter()
                .fold(0u64, |n, b| n.wrapping_shl(8) | u64::from(*b)),
        };
        self.mask = (second & MASKED != 0)
            .then(|| {
                let at = 2usize.saturating_add(ext);
                header.get(at..at.saturating_add(4))?.try_into().ok()
            })
            .flatten();
        self.remaining = length;
        self.offset = 0;
        let kind = match opcode {
            OP_TEXT | OP_BINARY if !self.in_message => {
                self.in_message = !self.fin;
                self.compressed = first & RSV1 != 0;
                if self.compressed {
                    sink.compressed();
                }
                self.message_frame()
            }
            OP_CONTINUATION if self.in_message => {
                self.in_message = !self.fin;
                self.message_frame()
            }
            OP_CLOSE => {
                sink.close();
                Payload::Skip
            }
            _ => Payload::Skip,
        };
        self.payload = Some(kind);
        if self.remaining == 0 {
            self.end_frame(kind, sink);
        }
    }

    fn message_frame(&self) -> Payload {
        if self.compressed {
            Payload::Skip
        } else {
            Payload::Read
        }
    }

    fn payload_bytes<'a>(
        &mut self,
        rest: &'a [u8],
        kind: Payload,
        sink: &mut impl WsSink,
    ) -> &'a [u8] {
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(rest.len());
        let (now, tail) = rest.split_at(take);
        if kind == Payload::Read {
            match self.mask {
                None => sink.data(now),
                Some(mask) => {
                    let phase = usize::try_from(self.offset % 4).unwrap_or(0);
                    let clear: Vec<u8> = now
                        .iter()
                        .zip(mask.iter().cycle().skip(phase))
                        .map(|(b, m)| b ^ m)
                        .collect();
                    sink.data(&clear);
                }
            }
        }
        let taken = u64::try_from(take).unwrap_or(u64::MAX);
        self.remaining = self.remaining.saturating_sub(taken);
        self.offset = self.offset.saturating_add(taken);
        if self.remaining == 0 {
            self.end_frame(kind, sink);
        }
        tail
    }

    fn end_frame(&mut self, kind: Payload, sink: &mut impl WsSink) {
        self.payload = None;
        let data_frame_ended_message = kind == Payload::Read && self.fin;
        if data_frame_ended_message {
            sink.message_end();
        }
        if self.fin && !self.in_message {
            self.compressed = false;
        }
    }
}

/// The whole header's length once enough of it is known (2 bytes tell it).
fn header_length(header: &[u8]) -> Option<usize> {
    let second = *header.get(1)?;
    let ext = match second & 0x7F {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    let mask = if second & MASKED != 0 { 4 } else { 0 };
    Some(2usize.saturating_add(ext).saturating_add(mask))
}
