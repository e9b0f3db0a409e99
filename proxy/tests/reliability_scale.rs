//! Scale events under load: endpoints added and removed while keep-alive
//! clients send keyed traffic, through the real binary to real backends.
//!
//! The same sequence, 3 → 4 → 5 → 4 → 3 endpoints, is driven two ways: by
//! rewriting the route file, and by EndpointSlice updates from the in-test
//! Kubernetes API server (a removal first marks the pod `terminating`). A
//! removed endpoint stays up until its in-flight requests are answered, as a
//! terminating pod does; to be sure requests are in flight across every
//! removal, each removal holds a few requests at the leaving backend until the
//! new table is in force. Checked for every event:
//! - no request fails, and every held request is answered by the leaving
//!   endpoint after it left the ring;
//! - no request that started after the new table was in force reached it;
//! - ring owners (admin `/ring`, the `ringress ring` CLI and the ring crate,
//!   all agreeing) move only to the added endpoint or from the removed one,
//!   and exactly those keys move;
//! - the serving backend seen by clients (the majority per key, as bounded
//!   load spills a few requests off busy owners) follows the ring owners.
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::thread;
use std::time::{Duration, Instant};

use ringress_ring::{hash_key, HashRing, Registry};
use support::cluster::{wait_for_endpoints, Cluster, SERVICE_ROUTES};
use support::k8s_apiserver::{ready, terminating, Ep};
use support::traffic::{Sample, Traffic};
use support::{eventually, Backend, Client, Ringress};

const KEYS: usize = 40;
const WORKERS: usize = 4;
/// Every backend answers after this, so requests are in flight at each change.
const DELAY: Duration = Duration::from_millis(25);
/// Requests per key in each observation window.
const PER_KEY: usize = 12;
/// Requests held at a leaving endpoint across its removal.
const HOLDS: usize = 2;
/// Most keys whose majority backend may be another than their ring owner in
/// a window, as a share: bounded load spills requests off busy owners (at 5
/// endpoints and 4 clients an owner with 2 requests in flight is over the
/// bound), and up to 3 of 40 keys were seen served mostly by a neighbour.
const MAX_OFF_OWNER: f64 = 0.2;

#[derive(Clone, Copy, Debug)]
enum Event {
    Add(usize),
    Remove(usize),
}

const START: [usize; 3] = [0, 1, 2];
const SEQUENCE: [Event; 4] = [
    Event::Add(3),
    Event::Add(4),
    Event::Remove(4),
    Event::Remove(3),
];

struct Fleet {
    proxy: Ringress,
    backends: Vec<Backend>,
    /// Each backend's endpoint as the ring names it.
    urls: Vec<String>,
    route: &'static str,
    /// Endpoints come from this cluster's EndpointSlices; without one, from
    /// the route file.
    cluster: Option<Cluster>,
}

fn file_routes(urls: &[String]) -> String {
    let endpoints: String = urls.iter().map(|u| format!("        - {u}\n")).collect();
    format!(
        r#"routes:
  - name: products
    match: {{path: "/products/{{id}}"}}
    filters:
      - consistentHashKey: "${{id}}"
    backend:
      retries: 0
      endpoints:
{endpoints}"#
    )
}

impl Fleet {
    fn with_file(n: usize, live: &[usize]) -> Self {
        let backends: Vec<Backend> = (0..n).map(|i| Backend::start(&format!("b{i}"))).collect();
        let urls: Vec<String> = backends.iter().map(Backend::url).collect();
        let proxy = Ringress::start(&file_routes(&pick(&urls, live)));
        Self::new(proxy, backends, urls, "products", None)
    }

    fn with_slices(n: usize, live: &[usize]) -> Self {
        let mut cluster = Cluster::new(n);
        let backends = std::mem::take(&mut cluster.pods);
        let urls = (0..n).map(|i| cluster.url(i)).collect();
        cluster.publish(live.iter().map(|&i| ready(&cluster.ip(i))).collect());
        // No retries, so a failed attempt cannot hide behind a second one.
        let proxy = cluster.proxy_with(&SERVICE_ROUTES.replace("retries: 1", "retries: 0"));
        Self::new(proxy, backends, urls, "web", Some(cluster))
    }

    fn new(
        proxy: Ringress,
        backends: Vec<Backend>,
        urls: Vec<String>,
        route: &'static str,
        cluster: Option<Cluster>,
    ) -> Self {
        for b in &backends {
            b.set_delay(DELAY);
        }
        Self {
            proxy,
            backends,
            urls,
            route,
            cluster,
        }
    }

    /// Puts `live` in force; `leaving` is on its way out (a terminating pod).
    fn put(&self, live: &[usize], leaving: Option<usize>) {
        match &self.cluster {
            None => self
                .proxy
                .write_routes(&file_routes(&pick(&self.urls, live))),
            Some(cluster) => {
                let mut eps: Vec<Ep> = live.iter().map(|&i| ready(&cluster.ip(i))).collect();
                eps.extend(leaving.map(|i| terminating(&cluster.ip(i))));
                cluster.publish(eps);
            }
        }
    }

    /// The leaving endpoint is gone: its pod disappears from the slice.
    fn gone(&self, live: &[usize]) {
        if self.cluster.is_some() {
            self.put(live, None);
        }
    }

    fn url_of(&self, name: &str) -> &str {
        let i = self.backends.iter().position(|b| b.name == name).unwrap();
        &self.urls[i]
    }

    /// Each key's ring owner for `live`, checked three ways: the ring crate,
    /// the running proxy's admin `/ring`, and the `ringress ring` CLI.
    /// The first `n` keys `hold-<i>` that endpoint `owner` owns among `live`.
    fn keys_owned_by(&self, owner: usize, live: &[usize], n: usize) -> Vec<String> {
        let urls = pick(&self.urls, live);
        let registry = Registry::new();
        let ring = HashRing::new(urls.iter().map(|u| registry.endpoint(u)).collect());
        (0..)
            .map(|i| format!("hold-{i}"))
            .filter(|k| {
                let i = ring.owner(hash_key(k.as_bytes())).unwrap();
                ring.endpoints()[i].addr() == self.urls[owner]
            })
            .take(n)
            .collect()
    }

    fn owners(&self, keys: &[String], live: &[usize]) -> BTreeMap<String, String> {
        let urls = pick(&self.urls, live);
        let registry = Registry::new();
        let ring = HashRing::new(urls.iter().map(|u| registry.endpoint(u)).collect());
        let crate_owners: BTreeMap<String, String> = keys
            .iter()
            .map(|k| {
                let i = ring.owner(hash_key(k.as_bytes())).unwrap();
                (k.clone(), ring.endpoints()[i].addr().to_string())
            })
            .collect();

        let mut admin = Client::new(self.proxy.admin);
        for k in keys {
            let resp = admin
                .get(&format!("/ring?route={}&key={k}", self.route))
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&resp.body).unwrap();
            assert_eq!(
                v["owner"].as_str(),
                Some(crate_owners[k].as_str()),
                "admin /ring owner of {k} vs the ring crate: {}",
                resp.body
            );
        }

        let out = std::process::Command::new(support::process::binary())
            .args(["ring", "--endpoints", &urls.join(",")])
            .args(keys)
            .output()
            .unwrap();
        assert!(out.status.success());
        let cli: BTreeMap<String, String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, o)| (k.to_string(), o.to_string()))
            .collect();
        assert_eq!(cli, crate_owners, "`ringress ring` vs the ring crate");
        crate_owners
    }
}

fn pick(urls: &[String], live: &[usize]) -> Vec<String> {
    live.iter().map(|&i| urls[i].clone()).collect()
}

/// What one event did, for the assertions and the figures.
struct EventFigures {
    label: String,
    /// Keys whose ring owner moved, and how many the ring crate predicts.
    moved: usize,
    expected: usize,
    /// Keys whose majority backend moved, and of those, moved elsewhere than
    /// to/from the changed endpoint (keys served mostly off their owner).
    seen_moved: usize,
    seen_stray: usize,
    /// Requests held at the leaving endpoint across its removal.
    held: usize,
    /// Requests of the traffic answered by the leaving endpoint after the
    /// table without it was in force.
    across: usize,
}

/// Observation window: samples started in `[from, to)`.
#[derive(Clone, Copy)]
struct Window {
    from: Instant,
    to: Instant,
}

/// Runs `SEQUENCE` under traffic and checks every event; returns the figures line.
fn scale_under_load(fleet: &mut Fleet, test: &str) -> String {
    let keys: Vec<String> = (0..KEYS).map(|i| format!("k{i}")).collect();
    let mut live = START.to_vec();
    wait_for_endpoints(&fleet.proxy, &pick(&fleet.urls, &live));
    let traffic = Traffic::start(fleet.proxy.listen, WORKERS, "/products/", &keys);
    let observe = |traffic: &Traffic| {
        traffic.wait_for(KEYS, Duration::from_secs(30)); // settle past the change
        let from = Instant::now();
        traffic.wait_for(KEYS * PER_KEY, Duration::from_secs(60));
        Window {
            from,
            to: Instant::now(),
        }
    };

    let mut owners = vec![fleet.owners(&keys, &live)];
    let mut windows = vec![observe(&traffic)];
    // For each removal: the leaving endpoint and when the table without it was in force.
    let mut removals: Vec<(usize, Instant)> = Vec::new();
    let mut figures: Vec<EventFigures> = Vec::new();

    for event in SEQUENCE {
        let before = owners.last().unwrap().clone();
        let mut held = 0;
        match event {
            Event::Add(i) => {
                live.push(i);
                fleet.put(&live, None);
                wait_for_endpoints(&fleet.proxy, &pick(&fleet.urls, &live));
            }
            Event::Remove(r) => {
                // Held keys come from their own key space: among the 40
                // traffic keys a leaving endpoint may own fewer than HOLDS.
                let hold_keys = fleet.keys_owned_by(r, &live, HOLDS);
                live.retain(|&i| i != r);
                let leaving = &fleet.backends[r];
                leaving.hold();
                assert_eq!(hold_keys.len(), HOLDS, "keys owned by {}", fleet.urls[r]);
                let holders: Vec<_> = hold_keys
                    .into_iter()
                    .map(|k| hold_at(fleet.proxy.listen, k, leaving.name.clone()))
                    .collect();
                eventually(
                    Duration::from_secs(30),
                    "requests held at the leaving endpoint",
                    || (leaving.held() == HOLDS).then_some(()),
                );

                fleet.put(&live, Some(r));
                wait_for_endpoints(&fleet.proxy, &pick(&fleet.urls, &live));
                let in_force = Instant::now();
                held = leaving.held();
                assert_eq!(held, HOLDS, "held requests survive the removal");
                removals.push((r, in_force));

                // The traffic in flight at the change drains; the held requests
                // are answered; only then does the endpoint go away.
                eventually(
                    Duration::from_secs(30),
                    "the leaving endpoint to drain",
                    || (leaving.in_flight() == HOLDS).then_some(()),
                );
                leaving.release();
                for h in holders {
                    let (status, backend) = h.join().unwrap();
                    assert_eq!(
                        (status, backend.as_str()),
                        (200, leaving.name.as_str()),
                        "a request held across the removal is answered by the leaving endpoint"
                    );
                }
                eventually(
                    Duration::from_secs(30),
                    "the leaving endpoint to go idle",
                    || (leaving.in_flight() == 0).then_some(()),
                );
                fleet.backends[r].stop();
                fleet.gone(&live);
            }
        }
        let after = fleet.owners(&keys, &live);
        let (moved, expected) = check_ring_moves(event, &fleet.urls, &before, &after);
        owners.push(after);
        windows.push(observe(&traffic));
        figures.push(EventFigures {
            label: match event {
                Event::Add(i) => format!("+{}", fleet.backends[i].name),
                Event::Remove(i) => format!("-{}", fleet.backends[i].name),
            },
            moved,
            expected,
            seen_moved: 0,
            seen_stray: 0,
            held,
            across: 0,
        });
    }

    let samples = traffic.stop();
    let failed: Vec<String> = samples
        .iter()
        .filter(|s| !s.ok())
        .map(|s| {
            format!(
                "{} at +{:?}: {}",
                s.key,
                s.started - windows[0].from,
                s.why()
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed while scaling: {:?}",
        failed.len(),
        samples.len(),
        &failed[..failed.len().min(20)]
    );
    for (&(r, in_force), fig) in removals
        .iter()
        .zip(figures.iter_mut().filter(|f| f.label.starts_with('-')))
    {
        // Traffic that picked the endpoint on the old table and was answered
        // after the new one was in force: in flight across the removal.
        fig.across = samples
            .iter()
            .filter(|s| s.finished > in_force && s.backend() == Some(&fleet.backends[r].name))
            .count();
        let late = samples
            .iter()
            .filter(|s| s.started > in_force && s.backend() == Some(&fleet.backends[r].name))
            .count();
        assert_eq!(
            late, 0,
            "requests sent to {} after it left the ring",
            fleet.urls[r]
        );
    }

    // Clients see the ring: each key's majority backend is its owner, in
    // every window, for nearly every key; the rest are keys whose owner was
    // often over the load bound, so their requests spilled to a neighbour.
    let majorities: Vec<BTreeMap<String, Option<String>>> = windows
        .iter()
        .map(|w| majority(fleet, &keys, &samples, *w))
        .collect();
    let off_owner: Vec<BTreeSet<&str>> = majorities
        .iter()
        .zip(&owners)
        .map(|(seen, own)| {
            own.iter()
                .filter(|(k, o)| seen[*k].as_deref() != Some(o.as_str()))
                .map(|(k, _)| k.as_str())
                .collect()
        })
        .collect();
    for (i, off) in off_owner.iter().enumerate() {
        assert!(
            off.len() as f64 <= MAX_OFF_OWNER * KEYS as f64,
            "window {i}: {off:?} of {KEYS} keys served mostly off their owner"
        );
    }
    // A key seen moving between unchanged endpoints must be one of those.
    for (i, (event, fig)) in SEQUENCE.iter().zip(&mut figures).enumerate() {
        let changed = match *event {
            Event::Add(e) | Event::Remove(e) => fleet.urls[e].as_str(),
        };
        for k in &keys {
            let (b, a) = (&majorities[i][k], &majorities[i + 1][k]);
            if b != a {
                fig.seen_moved += 1;
                if b.as_deref() != Some(changed) && a.as_deref() != Some(changed) {
                    fig.seen_stray += 1;
                    assert!(
                        off_owner[i].contains(k.as_str()) || off_owner[i + 1].contains(k.as_str()),
                        "{}: {k} seen moving {b:?} -> {a:?}, both unchanged endpoints",
                        fig.label
                    );
                }
            }
        }
    }

    // Metrics are recorded after each response; wait until all are counted.
    let proxy = &fleet.proxy;
    eventually(Duration::from_secs(10), "every request counted", || {
        (proxy.metric_sum("ringress_requests_total", &[]) as usize >= samples.len()).then_some(())
    });
    let retries = proxy.metric_sum("ringress_retries_total", &[]);
    let spills = proxy.metric_sum("ringress_bounded_load_spills_total", &[]);
    assert_eq!(retries, 0.0, "no request needed a retry");

    let events: Vec<String> = figures
        .iter()
        .map(|f| {
            let mut s = format!(
                "{}:ring_moved={}/{}_expected,seen_moved={},stray={}",
                f.label, f.moved, f.expected, f.seen_moved, f.seen_stray
            );
            if f.label.starts_with('-') {
                s += &format!(",answered_after_removal={}+{}_held", f.across, f.held);
            }
            s
        })
        .collect();
    format!(
        "FIGURES test={test} endpoints=3>4>5>4>3 keys={KEYS} clients={WORKERS} delay={DELAY:?} \
         requests={} failed=0 retries={retries} spills={spills} \
         keys_off_owner_per_window={:?} events=[{}]",
        samples.len(),
        off_owner.iter().map(BTreeSet::len).collect::<Vec<_>>(),
        events.join(" ")
    )
}

/// Sends `GET /products/KEY?hold` until the leaving backend answers it (a
/// request may spill to another endpoint while the owner is busy), on its own
/// connection; returns the final status and serving backend.
fn hold_at(
    proxy: std::net::SocketAddr,
    key: String,
    leaving: String,
) -> thread::JoinHandle<(u16, String)> {
    thread::spawn(move || {
        let mut client = Client::new(proxy);
        client.timeout = Duration::from_secs(120);
        for _ in 0..200 {
            let resp = client.get(&format!("/products/{key}?hold")).unwrap();
            let backend = resp.header("x-backend").unwrap_or("").to_string();
            if resp.status != 200 || backend == leaving {
                return (resp.status, backend);
            }
        }
        panic!("{key} never reached {leaving}");
    })
}

/// Checks that ring owners moved only to the added / from the removed
/// endpoint, and that every key it gained or lost moved. Returns (moved, expected).
fn check_ring_moves(
    event: Event,
    urls: &[String],
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
) -> (usize, usize) {
    let (changed, added) = match event {
        Event::Add(i) => (urls[i].as_str(), true),
        Event::Remove(i) => (urls[i].as_str(), false),
    };
    let mut moved = 0;
    for (k, b) in before {
        let a = &after[k];
        if a != b {
            moved += 1;
            let (side, label) = if added { (a, "to") } else { (b, "from") };
            assert_eq!(side, changed, "{k} moved {b} -> {a}, not {label} {changed}");
        }
    }
    let expected = if added {
        after.values().filter(|o| *o == changed).count()
    } else {
        before.values().filter(|o| *o == changed).count()
    };
    assert_eq!(
        moved, expected,
        "every key of {changed} moves, and no other"
    );
    assert!(
        expected > 0,
        "{changed} owns some of the {} keys",
        before.len()
    );
    (moved, expected)
}

/// Each key's backend (as a ring address) serving more than half its
/// requests in the window, if one does.
fn majority(
    fleet: &Fleet,
    keys: &[String],
    samples: &[Sample],
    w: Window,
) -> BTreeMap<String, Option<String>> {
    let mut counts: BTreeMap<&str, HashMap<&str, usize>> =
        keys.iter().map(|k| (k.as_str(), HashMap::new())).collect();
    for s in samples
        .iter()
        .filter(|s| s.started >= w.from && s.started < w.to)
    {
        *counts
            .entry(&s.key)
            .or_default()
            .entry(fleet.url_of(s.backend().unwrap()))
            .or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(k, c)| {
            let total: usize = c.values().sum();
            let top = c
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .filter(|(_, n)| 2 * n > total);
            (k.to_string(), top.map(|(u, _)| u.to_string()))
        })
        .collect()
}

#[test]
fn static_endpoints_scale_up_and_down_under_load_without_loss() {
    let mut fleet = Fleet::with_file(5, &START);
    let figures = scale_under_load(&mut fleet, "static");
    println!("{figures}");
}

#[test]
fn endpoint_slices_scale_up_and_down_with_a_draining_terminating_pod() {
    let mut fleet = Fleet::with_slices(5, &START);
    let figures = scale_under_load(&mut fleet, "endpointslices");
    println!("{figures}");
}
