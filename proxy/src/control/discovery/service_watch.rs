//! The watch of one Service's EndpointSlices, feeding its endpoints to the sink.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};

use super::addresses::{ready_address_times, SliceTimes};
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
        let mut ages = ReadyAges::default();
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
            let times = ready_address_times(slices.slices(), &self.target.port);
            let ready_since = ages.update(&times, applied == Applied::Listed);
            let endpoints: Vec<String> = times.into_keys().collect();
            if published.as_ref() != Some(&endpoints) {
                self.sink
                    .endpoints_changed(&self.target, &endpoints, &ready_since);
                self.metrics
                    .published(&self.target, endpoints.len(), arrived.elapsed());
                published = Some(endpoints);
            }
        }
    }
}

/// Since when each endpoint of the service has been ready, for fade-in.
///
/// Endpoints of the first list are as old as their slice (a restarted proxy
/// does not fade in every pod again); an endpoint that appears later became
/// ready at the pod change that added it (the slice's last-change-trigger
/// time), or now when the slice does not say. A known endpoint keeps its time.
#[derive(Default)]
struct ReadyAges {
    listed: bool,
    since: HashMap<String, SystemTime>,
}

impl ReadyAges {
    /// The ready-since time of each address of `times`, in its order.
    fn update(&mut self, times: &BTreeMap<String, SliceTimes>, listed: bool) -> Vec<SystemTime> {
        let first_list = listed && !std::mem::replace(&mut self.listed, true);
        let now = SystemTime::now();
        let mut next = HashMap::with_capacity(times.len());
        let out = times
            .iter()
            .map(|(address, t)| {
                let since = match self.since.get(address) {
                    Some(&known) => known,
                    None if first_list => t.created.unwrap_or(SystemTime::UNIX_EPOCH),
                    None => t.changed.filter(|&c| c <= now).unwrap_or(now),
                };
                next.insert(address.clone(), since);
                since
            })
            .collect();
        self.since = next;
        out
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
