//! Token usage read from provider responses as they pass, without holding or delaying them
//! (issue 13): SSE framing and a streaming JSON capture that copy only the usage values, each
//! provider's usage objects mapped to one normalised shape, and a meter per response (or
//! WebSocket session: frames read in `ws.rs`) that applies each API's merge rule (overwrite
//! cumulative snapshots, sum per-response counts).
//!
//! Sources for where usage lives and what each count means:
//! `../shared/reference/usage-metering.md` §1 (read from the providers' SDK type definitions).

pub mod anthropic;
pub mod classify;
pub mod gemini;
pub mod json_capture;
pub mod meter;
pub mod openai;
pub mod request_model;
pub mod sse;
pub mod stream_options;
pub mod strip;
pub mod tokens;
pub mod ws;

pub use meter::{Framing, MeteredUsage, UsageApi, UsageMeter};
pub use stream_options::{request_stream_usage, StreamUsage};
pub use strip::UsageChunkStripper;
pub use tokens::TokenUsage;
