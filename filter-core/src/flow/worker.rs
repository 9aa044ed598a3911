//! A worker's (VM's) state shared by its requests: the configuration, the counters and every
//! per-worker memory the flow consults. One per VM thread, so the `RefCell`s are never
//! borrowed across threads; every map in here is bounded (see each type).

use std::cell::{Cell, RefCell};

use crate::activity::ActivityBatch;
use crate::config::{CheckSecret, FilterConfig};
use crate::deny_cache::DenyCache;
use crate::flow::counts::Counts;
use crate::flow::timings::Timings;
use crate::guess_throttle::{GuessThrottle, KnownGood};
use crate::local_pool::LocalPool;
use crate::open_streams::OpenStreams;
use crate::shared_data::CasAnchor;

/// Everything a request's flow needs besides the request itself.
#[derive(Debug)]
pub struct Worker {
    /// The parsed plugin configuration.
    pub config: FilterConfig,
    /// The check secret from the VM environment (redacted in `Debug`).
    pub secret: CheckSecret,
    /// Outcome counters.
    pub counts: Counts,
    /// This worker's recent refusals.
    pub denies: RefCell<DenyCache>,
    /// Refused tokens per client address.
    pub throttle: RefCell<GuessThrottle>,
    /// (client, token) pairs that succeeded, which pass a throttled address.
    pub known: RefCell<KnownGood>,
    /// Requests allowed from the cache since the last flush.
    pub activity: RefCell<ActivityBatch>,
    /// Lease units this worker took from shared data in batches.
    pub pool: RefCell<LocalPool>,
    /// A CAS that no cache key can hold, for creating keys only when absent.
    pub anchor: Cell<CasAnchor>,
    /// Forwarded requests still open, by token.
    pub streams: RefCell<OpenStreams>,
    /// The host ids of the overhead histograms (set once they are defined).
    pub timings: Cell<Timings>,
    /// Whether this worker already warned that the geo fallback's hold filter is missing.
    pub geo_hold_warned: Cell<bool>,
    /// Whether this worker already warned that budgeted requests are estimated without the
    /// request-body hold filter (the default output cap, not the body's).
    pub budget_hold_warned: Cell<bool>,
    /// This worker's round-robin turn over provider key pools (`key_pool.rs`).
    pub key_turn: Cell<usize>,
}

impl Worker {
    /// A worker with empty memories for `config`.
    pub fn new(config: FilterConfig, secret: CheckSecret, anchor: CasAnchor) -> Worker {
        let denies = DenyCache::new(config.cache.deny_ttl_ms, config.cache.deny_entries);
        let throttle = GuessThrottle::new(config.guess_throttle.clone());
        Worker {
            config,
            secret,
            counts: Counts::default(),
            denies: RefCell::new(denies),
            throttle: RefCell::new(throttle),
            known: RefCell::new(KnownGood::default()),
            activity: RefCell::new(ActivityBatch::default()),
            pool: RefCell::new(LocalPool::default()),
            anchor: Cell::new(anchor),
            streams: RefCell::new(OpenStreams::default()),
            timings: Cell::new(Timings::default()),
            geo_hold_warned: Cell::new(false),
            budget_hold_warned: Cell::new(false),
            key_turn: Cell::new(0),
        }
    }
}
