//! Streaming capture of a few values out of a JSON document that arrives in arbitrary chunks,
//! without holding the document: only the values at the asked-for paths are copied, each up to
//! a byte limit, and the scanner itself keeps a stack of open containers and one short key.
//!
//! Why not parse the body: a response can be megabytes (embeddings, images, long completions)
//! and the filter must never hold or delay it (issue 13); the usage object is a few hundred
//! bytes at a known path. The scanner trusts the provider's JSON to be well formed; on bytes
//! that cannot be JSON it stops capturing (`broken`) instead of guessing.

use memchr::memchr2;

/// A path of object keys from the document's root. Array levels are transparent, so
/// `["usageMetadata"]` also matches inside a top-level array of response objects (Gemini's
/// `streamGenerateContent` without `alt=sse`).
pub type Path = &'static [&'static str];

/// Keys longer than this are remembered as "some other key" (no path of ours has one).
const MAX_KEY: usize = 48;
/// Open containers beyond this depth mark the document broken (no provider nests that deep
/// where usage lives; the bound keeps the stack small on hostile input).
const MAX_DEPTH: usize = 128;

/// One value copied out of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// Index of the matched path in the list the capture was created with.
    pub path: usize,
    /// The value's JSON text, exactly as it appeared (empty if it exceeded the limit).
    pub value: Vec<u8>,
    /// Whether the value was longer than the limit and so was not kept.
    pub overflowed: bool,
}

/// An open container.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// An object: its current key (None: too long to keep, or none read yet) and whether the
    /// next string is a key.
    Object {
        key: Option<Vec<u8>>,
        expect_key: bool,
    },
    Array,
}

/// Where the lexer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lex {
    /// Between tokens.
    Between,
    /// Inside a string; `key` if it is an object key; `escape` after a backslash.
    Str { key: bool, escape: bool },
    /// Inside a number or literal (`true`, `false`, `null`).
    Scalar,
}

/// A value being copied: where it started and what it holds so far.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Active {
    path: usize,
    /// Stack depth of the value's parent (the value ends when the stack is back at it).
    depth: usize,
    bytes: Vec<u8>,
    overflowed: bool,
}

/// Captures the values at `paths` from one JSON document fed in chunks; see the module docs.
#[derive(Debug, Clone)]
pub struct JsonCapture {
    paths: &'static [Path],
    limit: usize,
    stack: Vec<Frame>,
    lex: Lex,
    key: Vec<u8>,
    key_overflow: bool,
    active: Option<Active>,
    done: Vec<Captured>,
    broken: bool,
}

impl JsonCapture {
    /// A capture of the values at `paths`, each kept up to `limit` bytes.
    pub fn new(paths: &'static [Path], limit: usize) -> JsonCapture {
        JsonCapture {
            paths,
            limit,
            stack: Vec::new(),
            lex: Lex::Between,
            key: Vec::new(),
            key_overflow: false,
            active: None,
            done: Vec::new(),
            broken: false,
        }
    }

    /// Whether bytes were seen that cannot be JSON (nothing more is captured).
    pub fn broken(&self) -> bool {
        self.broken
    }

    /// The values completed so far, in document order; they are handed out once.
    pub fn drain(&mut self) -> Vec<Captured> {
        std::mem::take(&mut self.done)
    }

    /// Ends the document (a scalar at its very end completes here) and gets ready for the
    /// next one (SSE events and WebSocket messages are one document each).
    pub fn end_document(&mut self) {
        if self.lex == Lex::Scalar {
            self.finish_value_at(self.stack.len());
        }
        self.stack.clear();
        self.lex = Lex::Between;
        self.key.clear();
        self.key_overflow = false;
        self.active = None;
        self.broken = false;
    }

    /// Feeds the next bytes of the document.
    pub fn feed(&mut self, chunk: &[u8]) {
        let mut rest = chunk;
        while !rest.is_empty() && !self.broken {
            rest = match self.lex {
                Lex::Str { key, escape: false } => self.string_run(rest, key),
                _ => {
                    let Some((&byte, tail)) = rest.split_first() else {
                        break;
                    };
                    self.byte(byte);
                    tail
                }
            };
        }
    }

    /// Inside a string, not after a backslash: copies the run up to the next quote or
    /// backslash in one step (most of a response's bytes are string contents).
    fn string_run<'a>(&mut self, rest: &'a [u8], key: bool) -> &'a [u8] {
        let stop = memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(stop);
        self.record(run);
        if key {
            self.key_bytes(run);
        }
        let Some((&byte, after)) = tail.split_first() else {
            return tail;
        };
        self.record(&[byte]);
        if byte == b'\\' {
            if key {
                self.key_bytes(&[byte]);
            }
            self.lex = Lex::Str { key, escape: true };
        } else {
            self.lex = Lex::Between;
            if key {
                self.end_key();
            } else {
                self.finish_value_at(self.stack.len());
            }
        }
        after
    }

    fn byte(&mut self, byte: u8) {
        match self.lex {
            Lex::Str { key, escape: true } => {
                self.record(&[byte]);
                if key {
                    self.key_bytes(&[byte]);
                }
                self.lex = Lex::Str { key, escape: false };
            }
            Lex::Str { .. } => {} // handled by string_run
            Lex::Scalar => {
                if is_scalar_byte(byte) {
                    self.record(&[byte]);
                } else {
                    self.lex = Lex::Between;
                    self.finish_value_at(self.stack.len());
                    self.between(byte);
                }
            }
            Lex::Between => self.between(byte),
        }
    }

    fn between(&mut self, byte: u8) {
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => self.record(&[byte]),
            b'"' if self.expecting_key() => {
                self.record(&[byte]);
                self.key.clear();
                self.key_overflow = false;
                self.lex = Lex::Str {
                    key: true,
                    escape: false,
                };
            }
            b'"' => {
                self.start_value();
                self.record(&[byte]);
                self.lex = Lex::Str {
                    key: false,
                    escape: false,
                };
            }
            b'{' | b'[' => {
                self.start_value();
                self.record(&[byte]);
                if self.stack.len() >= MAX_DEPTH {
                    self.broken = true;
                    return;
                }
                self.stack.push(if byte == b'{' {
                    Frame::Object {
                        key: None,
                        expect_key: true,
                    }
                } else {
                    Frame::Array
                });
            }
            b'}' | b']' => {
                self.record(&[byte]);
                let closes = matches!(
                    (self.stack.last(), byte),
                    (Some(Frame::Object { .. }), b'}') | (Some(Frame::Array), b']')
                );
                if !closes {
                    self.broken = true;
                    return;
                }
                self.stack.pop();
                self.finish_value_at(self.stack.len());
            }
            b':' => self.record(&[byte]),
            b',' => {
                self.record(&[byte]);
                if let Some(Frame::Object { expect_key, .. }) = self.stack.last_mut() {
                    *expect_key = true;
                }
            }
            _ if is_scalar_byte(byte) => {
                self.start_value();
                self.record(&[byte]);
                self.lex = Lex::Scalar;
            }
            _ => self.broken = true,
        }
    }

    fn expecting_key(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Object {
                expect_key: true,
                ..
            })
        )
    }

    fn key_bytes(&mut self, bytes: &[u8]) {
        if self.key.len().saturating_add(bytes.len()) > MAX_KEY {
            self.key_overflow = true;
        } else {
            self.key.extend_from_slice(bytes);
        }
    }

    fn end_key(&mut self) {
        let key = (!self.key_overflow).then(|| std::mem::take(&mut self.key));
        if let Some(Frame::Object {
            key: slot,
            expect_key,
        }) = self.stack.last_mut()
        {
            *slot = key;
            *expect_key = false;
        }
    }

    /// A value begins here: starts a capture if its path is one of ours and none is running.
    fn start_value(&mut self) {
        if self.active.is_some() {
            return;
        }
        let Some(path) = self.matching_path() else {
            return;
        };
        self.active = Some(Active {
            path,
            depth: self.stack.len(),
            bytes: Vec::new(),
            overflowed: false,
        });
    }

    fn matching_path(&self) -> Option<usize> {
        let keys: Vec<Option<&[u8]>> = self
            .stack
            .iter()
            .filter_map(|frame| match frame {
                Frame::Object { key, .. } => Some(key.as_deref()),
                Frame::Array => None,
            })
            .collect();
        self.paths.iter().position(|path| {
            path.len() == keys.len()
                && path
                    .iter()
                    .zip(&keys)
                    .all(|(want, have)| *have == Some(want.as_bytes()))
        })
    }

    fn record(&mut self, bytes: &[u8]) {
        if let Some(active) = &mut self.active {
            if active.bytes.len().saturating_add(bytes.len()) > self.limit {
                active.overflowed = true;
                active.bytes.clear();
            } else if !active.overflowed {
                active.bytes.extend_from_slice(bytes);
            }
        }
    }

    /// A value ended with the stack at `depth`: completes the capture that began there.
    fn finish_value_at(&mut self, depth: usize) {
        if self.active.as_ref().is_some_and(|a| a.depth == depth) {
            if let Some(active) = self.active.take() {
                self.done.push(Captured {
                    path: active.path,
                    value: trim_end(active.bytes),
                    overflowed: active.overflowed,
                });
            }
        }
    }
}

/// Bytes of numbers and of the literals `true`, `false`, `null`.
fn is_scalar_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'+' | b'.')
}

fn trim_end(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    bytes
}
