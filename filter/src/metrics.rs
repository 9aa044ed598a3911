//! Envoy's side of the counters the flow keeps (`ptk_filter_core::flow::Counts`): defined once,
//! added to on each tick (a host call per counter per request is measurable on the hot path,
//! and counters a second late are fine).

use std::cell::Cell;

use proxy_wasm::types::MetricType;
use ptk_filter_core::flow::{Counter, Counts, COUNTERS};

use crate::host;

/// The host ids of the filter's counters and of the `open_requests` gauge (each a no-op when
/// the host refused to define it).
#[derive(Debug)]
pub struct Metrics {
    counters: [Option<u32>; COUNTERS],
    open_requests: Option<u32>,
    /// The gauge value this worker last added: each worker adds the change of its own value,
    /// so Envoy's one stat holds the total over workers.
    open_flushed: Cell<i64>,
}

impl Metrics {
    /// Defines every counter (Envoy prefixes them with `wasmcustom.`).
    pub fn define() -> Metrics {
        Metrics {
            counters: Counter::ALL
                .map(|c| host::define_metric(MetricType::Counter, &format!("ptk.{}", c.name()))),
            open_requests: host::define_metric(MetricType::Gauge, "ptk.open_requests"),
            open_flushed: Cell::new(0),
        }
    }

    /// Adds the counts gathered since the last flush to Envoy's counters; `open` is this
    /// worker's number of forwarded requests still open.
    pub fn flush(&self, counts: &Counts, open: usize) {
        let open = i64::try_from(open).unwrap_or(i64::MAX);
        let delta = open.saturating_sub(self.open_flushed.replace(open));
        if delta != 0 {
            host::add_to_metric(self.open_requests, delta);
        }
        for (counter, id) in Counter::ALL.iter().zip(self.counters) {
            let n = counts.take(*counter);
            if n > 0 {
                host::add_to_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
    }
}
