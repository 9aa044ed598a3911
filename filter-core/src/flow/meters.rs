//! Envoy's side of the counters the flow keeps ([`Counts`]): defined once when the
//! configuration arrives, added to on each tick (a host call per counter per request is
//! measurable on the hot path, and counters a second late are fine).

use std::cell::Cell;

use crate::flow::counts::{Counter, Counts};
use crate::flow::ContextHost;
use crate::provider_config::ProvidersConfig;

/// The kind of an Envoy metric (proxy-wasm's `MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    /// Only ever added to.
    Counter,
    /// Moves both ways.
    Gauge,
    /// Records values into buckets (`flow::timings`).
    Histogram,
}

/// The host ids of the filter's counters and of the `open_requests` gauge (each a no-op when
/// the host refused to define it).
#[derive(Debug)]
pub struct Meters {
    counters: Vec<(Counter, Option<u32>)>,
    open_requests: Option<u32>,
    /// The gauge value this worker last added: each worker adds the change of its own value,
    /// so Envoy's one stat holds the total over workers.
    open_flushed: Cell<i64>,
}

impl Meters {
    /// Defines every counter, the per-provider ones for every built-in and configured provider
    /// (Envoy prefixes them with `wasmcustom.`).
    pub fn define(host: &mut impl ContextHost, providers: &ProvidersConfig) -> Meters {
        let all = Counter::ALL.into_iter();
        let counters = all.chain(Counter::per_provider(providers));
        let mut define = |counter: Counter| {
            let name = format!("ptk.{}", counter.name());
            (counter, host.define_metric(MetricType::Counter, &name))
        };
        let counters = counters.map(&mut define).collect();
        Meters {
            counters,
            open_requests: host.define_metric(MetricType::Gauge, "ptk.open_requests"),
            open_flushed: Cell::new(0),
        }
    }

    /// Adds the counts gathered since the last flush to Envoy's counters; `open` is this
    /// worker's number of forwarded requests still open.
    pub fn flush(&self, host: &mut impl ContextHost, counts: &Counts, open: usize) {
        let open = i64::try_from(open).unwrap_or(i64::MAX);
        let delta = open.saturating_sub(self.open_flushed.replace(open));
        if let (Some(id), true) = (self.open_requests, delta != 0) {
            host.add_to_metric(id, delta);
        }
        for (counter, id) in &self.counters {
            let n = counts.take(*counter);
            if let (Some(id), true) = (id, n > 0) {
                host.add_to_metric(*id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}
