//! The proxy's own overhead per request, as two Envoy histograms (microseconds): what the
//! filter adds before a request reaches its provider, and how long its check callouts take.
//!
//! - `ptk.overhead_us`: from the request headers reaching the filter to the request being
//!   forwarded: the filter's own work, plus on a cache miss its check callout (recorded for
//!   forwarded requests only; a refusal's latency is the client's, not added to a call).
//! - `ptk.check_callout_us`: from a check callout's dispatch to its answer (each attempt; a
//!   callout that never answers is not recorded: `callout_failed` counts it).
//!
//! Host time is Envoy's wall clock in nanoseconds; a clock step backwards records 0. One
//! histogram sample is one host call, so each request costs at most two samples.

use std::cell::Cell;

use crate::flow::{ContextHost, MetricType};

/// Histogram name of the overhead per forwarded request (under Envoy's `wasmcustom.`).
pub const OVERHEAD: &str = "ptk.overhead_us";
/// Histogram name of a check callout's round trip.
pub const CHECK_CALLOUT: &str = "ptk.check_callout_us";

/// The host ids of the two histograms (each a no-op when the host refused to define it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    overhead: Option<u32>,
    check_callout: Option<u32>,
}

impl Timings {
    /// Defines both histograms.
    pub fn define(host: &mut impl ContextHost) -> Timings {
        Timings {
            overhead: host.define_metric(MetricType::Histogram, OVERHEAD),
            check_callout: host.define_metric(MetricType::Histogram, CHECK_CALLOUT),
        }
    }
}

/// One request's clock: when its headers arrived and when its last callout left (µs).
#[derive(Debug, Default)]
pub(super) struct RequestClock {
    started_us: Cell<u64>,
    callout_sent_us: Cell<u64>,
}

impl RequestClock {
    /// The request headers arrived.
    pub(super) fn start(&self, host: &impl ContextHost) {
        self.started_us.set(host.now_us());
    }

    /// A check callout was dispatched.
    pub(super) fn callout_sent(&self, host: &impl ContextHost) {
        self.callout_sent_us.set(host.now_us());
    }

    /// The callout's answer arrived: its round trip.
    pub(super) fn callout_answered(&self, host: &mut impl ContextHost, timings: Timings) {
        if let Some(id) = timings.check_callout {
            let took = host.now_us().saturating_sub(self.callout_sent_us.get());
            host.record_metric(id, took);
        }
    }

    /// The request is forwarded: the overhead since its headers arrived.
    pub(super) fn forwarded(&self, host: &mut impl ContextHost, timings: Timings) {
        if let Some(id) = timings.overhead {
            let took = host.now_us().saturating_sub(self.started_us.get());
            host.record_metric(id, took);
        }
    }
}
