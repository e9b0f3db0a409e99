//! Event pacing (`--poll-interval`, on by default): under dense traffic the
//! workers collect events on an interval (`ringress_paced_polls_total` grows)
//! and every request still succeeds; once traffic stops the pacer goes
//! dormant, so an idle proxy does not wake up every interval and burns next to
//! no CPU; a lone request on an idle proxy, and requests further apart than
//! two intervals on average, are served without pacing; `--poll-interval 0`
//! never paces; with a deep queue (responses held for the next pass) every
//! response still answers its own request. Real binary, real backends, real
//! sockets.
mod support;

use std::time::Duration;

use support::{consistent_routes, Backend, Load, Ringress};

/// CPU time (user + system) the process has used, from /proc/PID/stat.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

fn polls(proxy: &Ringress) -> f64 {
    proxy.metric("ringress_paced_polls_total", "")
}

/// A backend and a proxy pacing on a long interval, so that the debug build
/// under test traffic is busy enough.
fn paced_proxy() -> (Backend, Ringress) {
    let backend = Backend::start("a");
    let proxy = Ringress::start_with(
        &consistent_routes(&[&backend], ""),
        &["--poll-interval", "1ms"],
    );
    (backend, proxy)
}

/// `clients` keep-alive clients for 2 s against a backend taking `delay` per
/// request; every request must succeed, answered by its own response (`Load`
/// checks the backend's `x-path`). Returns how many were served.
fn load_without_failures(
    proxy: &Ringress,
    backend: &Backend,
    clients: usize,
    delay: Duration,
) -> usize {
    backend.set_delay(delay);
    let load = Load::start(proxy.listen, clients);
    std::thread::sleep(Duration::from_secs(2));
    let outcome = load.stop();
    assert!(outcome.failures.is_empty(), "{:?}", outcome.failures);
    outcome.ok
}

#[test]
fn busy_workers_pace_themselves_and_an_idle_proxy_stops_pacing() {
    let (backend, proxy) = paced_proxy();
    let before = polls(&proxy);

    // Pacing needs many requests in flight: 32 clients, a backend taking 2 ms.
    let served = load_without_failures(&proxy, &backend, 32, Duration::from_millis(2));
    assert!(served > 100, "only {served} requests");
    let busy = polls(&proxy);
    assert!(
        busy > before,
        "no paced polls under load ({before} -> {busy})"
    );

    // Idle: dormant within a few intervals, and the count stops.
    std::thread::sleep(Duration::from_millis(300));
    let idle_start = polls(&proxy);
    let cpu_start = cpu_time(proxy.child.id());
    std::thread::sleep(Duration::from_secs(2));
    // The admin scrape itself is a request on another listener, not paced.
    assert_eq!(polls(&proxy), idle_start, "still pacing while idle");
    let idle_cpu = cpu_time(proxy.child.id()) - cpu_start;
    // Idle costs only the route-file poll and timers.
    assert!(
        idle_cpu <= Duration::from_millis(100),
        "idle proxy used {idle_cpu:?} of CPU in 2 s"
    );

    // A lone request on the idle proxy is served and does not start pacing.
    assert_eq!(proxy.get("/products/lone").status, 200);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(polls(&proxy), idle_start);
}

#[test]
fn poll_interval_zero_never_paces() {
    let backend = Backend::start("a");
    let proxy = Ringress::start_with(
        &consistent_routes(&[&backend], ""),
        &["--poll-interval", "0"],
    );
    // The traffic that is paced with an interval (above).
    let served = load_without_failures(&proxy, &backend, 32, Duration::from_millis(2));
    assert!(served > 100, "only {served} requests");
    assert_eq!(polls(&proxy), 0.0);
}

#[test]
fn requests_further_apart_than_two_intervals_are_not_paced() {
    let backend = Backend::start("a");
    let proxy = Ringress::start_with(
        &consistent_routes(&[&backend], ""),
        &["--poll-interval", "1ms"],
    );
    let mut client = proxy.client();
    for i in 0..100 {
        assert_eq!(client.get(&format!("/products/{i}")).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(polls(&proxy), 0.0);
}

#[test]
fn a_deep_queue_is_paced_and_every_response_answers_its_own_request() {
    let (backend, proxy) = paced_proxy();
    let before = polls(&proxy);
    // ~48 requests in flight per worker (two workers): past the pacer's
    // deep-queue mark of 32, where responses leave with the next pass's.
    let served = load_without_failures(&proxy, &backend, 96, Duration::from_millis(5));
    assert!(served > 1000, "only {served} requests");
    assert!(polls(&proxy) > before, "no paced polls under a deep queue");
}
