//! Prometheus metrics of endpoint discovery.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus::{
    exponential_buckets, GaugeVec, Histogram, HistogramOpts, IntCounter, IntGaugeVec, Opts,
    Registry,
};

use super::target::ServiceTarget;

/// Handles to discovery's metrics; cheap to clone (each is an `Arc` inside).
///
/// Sync lag is shown two ways, since neither alone tells the whole story:
/// - `ringress_discovery_sink_seconds` (histogram): from a watch event reaching ringress to the
///   sink having taken the new endpoint list — the time ringress itself adds.
/// - `ringress_discovery_last_event_timestamp_seconds{service}`: when that service last got a
///   watch event or a completed list. Compared across replicas, or with the time a rollout
///   changed pods, it shows a watch that has fallen behind the API server.
#[derive(Clone)]
pub struct DiscoveryMetrics {
    endpoints: IntGaugeVec,
    last_event: GaugeVec,
    pub(super) events: IntCounter,
    pub(super) errors: IntCounter,
    sink_latency: Histogram,
}

impl DiscoveryMetrics {
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            endpoints: IntGaugeVec::new(
                Opts::new(
                    "ringress_discovery_endpoints",
                    "Ready endpoints of a watched service port.",
                ),
                &["service"],
            )?,
            last_event: GaugeVec::new(
                Opts::new(
                    "ringress_discovery_last_event_timestamp_seconds",
                    "Unix time of the last watch event or completed list of a watched service.",
                ),
                &["service"],
            )?,
            events: IntCounter::new(
                "ringress_discovery_events_total",
                "EndpointSlice watcher events received (list items and list start/end included).",
            )?,
            errors: IntCounter::new(
                "ringress_discovery_errors_total",
                "EndpointSlice list or watch failures (each is retried with backoff).",
            )?,
            sink_latency: Histogram::with_opts(
                HistogramOpts::new(
                    "ringress_discovery_sink_seconds",
                    "Time from a watch event's arrival to its endpoints reaching the proxy.",
                )
                // 50 µs .. ~0.4 s: the sink swaps a ring, so anything past a few ms is news.
                .buckets(exponential_buckets(0.000_05, 2.5, 10)?),
            )?,
        };
        registry.register(Box::new(metrics.endpoints.clone()))?;
        registry.register(Box::new(metrics.last_event.clone()))?;
        registry.register(Box::new(metrics.events.clone()))?;
        registry.register(Box::new(metrics.errors.clone()))?;
        registry.register(Box::new(metrics.sink_latency.clone()))?;
        Ok(metrics)
    }

    pub(super) fn published(&self, service: &ServiceTarget, endpoints: usize, took: Duration) {
        let label = service.to_string();
        self.endpoints
            .with_label_values(&[&label])
            .set(i64::try_from(endpoints).unwrap_or(i64::MAX));
        self.sink_latency.observe(took.as_secs_f64());
    }

    pub(super) fn event_seen(&self, service: &ServiceTarget) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.last_event
            .with_label_values(&[&service.to_string()])
            .set(now.as_secs_f64());
    }

    /// Drops a removed service's series so dashboards do not show it as stuck.
    pub(super) fn forget(&self, service: &ServiceTarget) {
        let label = service.to_string();
        let _ = self.endpoints.remove_label_values(&[&label]);
        let _ = self.last_event.remove_label_values(&[&label]);
    }
}
