//! The watch of one Service's EndpointSlices, feeding its endpoints to the sink.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use super::addresses::ready_addresses;
use super::backoff::RetryBackoff;
use super::metrics::DiscoveryMetrics;
use super::slice_set::{Applied, SliceSet};
use super::target::ServiceTarget;
use super::EndpointsSink;

/// How long one watch request lasts before it is renewed from its resourceVersion (no re-list).
/// kube's idle timeout is this plus 5 s, so a connection that died without a FIN (a node or NAT
/// losing it) is noticed within about a minute, not kube's default of nearly five.
const WATCH_TIMEOUT_SECS: u32 = 60;

/// Everything one Service's watch task needs; the task owns it until it is aborted.
pub(super) struct ServiceWatch {
    pub client: Client,
    pub target: ServiceTarget,
    pub sink: Arc<dyn EndpointsSink>,
    pub metrics: DiscoveryMetrics,
    pub synced: Arc<AtomicBool>,
    pub backoff: RetryBackoff,
}

impl ServiceWatch {
    /// Runs until aborted. kube's watcher lists, then watches from the list's resourceVersion;
    /// a dropped watch resumes from the last version seen, a 410 Gone starts over with a list,
    /// and every error waits out the backoff first. Errors never touch the endpoints in force:
    /// only events, or a completed list, change them.
    pub async fn run(self) {
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), &self.target.namespace);
        let config = watcher::Config::default()
            .labels(&self.target.label_selector())
            .timeout(WATCH_TIMEOUT_SECS);
        let mut events = watcher(api, config).backoff(self.backoff.build()).boxed();

        let _series = SeriesGuard(&self);
        let mut slices = SliceSet::default();
        let mut published: Option<Vec<String>> = None;
        let mut failing = false;
        while let Some(item) = events.next().await {
            let event = match item {
                Ok(event) => event,
                Err(error) => {
                    self.metrics.errors.inc();
                    // One warning per outage; the retries after it would only repeat it.
                    if !failing {
                        log::warn!("discovery {}: {error}; retrying with backoff", self.target);
                    } else {
                        log::debug!("discovery {}: {error}", self.target);
                    }
                    failing = true;
                    continue;
                }
            };
            let arrived = Instant::now();
            if std::mem::take(&mut failing) {
                log::info!("discovery {}: watch recovered", self.target);
            }
            self.metrics.events.inc();
            let applied = slices.apply(event);
            if applied == Applied::Buffered {
                continue;
            }
            self.metrics.event_seen(&self.target);
            if applied == Applied::Listed && !self.synced.swap(true, Ordering::Relaxed) {
                log::info!("discovery {}: initial list done", self.target);
            }
            let endpoints = ready_addresses(slices.slices(), &self.target.port);
            if published.as_ref() != Some(&endpoints) {
                self.sink.endpoints_changed(&self.target, &endpoints);
                self.metrics
                    .published(&self.target, endpoints.len(), arrived.elapsed());
                published = Some(endpoints);
            }
        }
    }
}

/// Drops the service's metric series when its watch ends (it is aborted when the service is no
/// longer wanted), after the watch's last update, so no stale series is left behind.
struct SeriesGuard<'a>(&'a ServiceWatch);

impl Drop for SeriesGuard<'_> {
    fn drop(&mut self) {
        self.0.metrics.forget(&self.0.target);
    }
}
