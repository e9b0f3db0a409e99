#!/usr/bin/env python3
"""Soak: mixed traffic through the real ringress binary for a long time while its route
file is rewritten (valid and invalid, alternating) and its endpoints churn, then checks
that nothing leaked and nothing was lost.

Run from the repository root (needs nginx: apt-get install -y nginx-light):

    python3 benches/e2e/soak.py                 # 10 minutes
    python3 benches/e2e/soak.py --minutes 1     # a quick look

What it does:
  backends  one nginx (2 workers) listening on 6 loopback ports; every answer carries
            X-Backend: <port>. Backends stay up throughout: removals are graceful, so no
            request may fail.
  proxy     target/release/ringress (built if missing) with --threads 2 and the route
            file below: products (consistentHash on the id, bounded load 2), batch (POST,
            powerOfRandomNChoices), search (LIFO 50/100), health (status 200); unmatched
            paths answer 404.
  traffic   --clients keep-alive clients (default 6) and one client that opens a new
            connection per request, each picking per request: 60% GET /products/<id> (1 in
            10 on one hot id, the rest uniform over 100,000 ids), 15% POST /batch with a
            1 KB body, 10% GET /search, 5% GET /health, 5% GET /missing/... (expects 404),
            5% a malformed request on a fresh connection (expects 400). Anything else (an
            unexpected status, a reset, a timeout) counts as a failure.
  changes   every 2.5 s one route-file rewrite, cycling: endpoint churn (valid; the sets
            cycle 3 -> 4 -> 5 -> 4 -> 3 -> one replaced -> 4 -> 4 -> 3 ...), an invalid file, a
            valid edit of a response header, an invalid file. So every 10 s the endpoints
            change, and invalid files alternate with valid ones. After each rewrite the
            script waits until the proxy counted it (generation or failure counter) and
            checks on /routes that a valid file took effect and an invalid one did not.
  samples   every 5 s: VmRSS, open file descriptors (/proc/PID/fd), the sum of
            ringress_endpoint_in_flight and ringress_active_requests.
  end       traffic stops; the script waits for in-flight and active requests to reach
            0 and for the descriptors to return to the pre-traffic baseline (upstream
            keep-alive connections close when nginx's keepalive_timeout, 10 s here,
            expires), then SIGTERMs the proxy and expects exit 0.

Pass: zero failed requests, every invalid file refused and every valid one in force,
in-flight and active back to 0, descriptors back to baseline, and RSS flat: the mean of
the last 2 minutes within max(4 MiB, 10%) of the mean of minutes 1-3 (the first minute
warms allocator arenas and pools; shorter runs scale these windows). Exit 0 on pass, 1
otherwise. Every process started is stopped on exit.
"""
import argparse
import atexit
import http.client
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

from proc_util import PROCS, free_port, http_get, log, on_signal, proc_status, start, stop_all, \
    wait_port, write


def metrics(admin):
    """{name: sum of its samples} for every ringress_ sample on /metrics."""
    status, text = http_get("http://%s/metrics" % admin)
    if status != 200:
        raise RuntimeError("/metrics answered %d" % status)
    sums = {}
    for line in text.splitlines():
        if line.startswith("ringress_"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            sums[name] = sums.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return sums


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


# ---------------------------------------------------------------- backends

def nginx(d, ports):
    body = json.dumps({"id": "SKU", "attributes": ["value-%d" % i for i in range(100)]})
    conf = """daemon off; worker_processes 2; pid %s/nginx.pid; error_log %s/nginx.err;
events { worker_connections 4096; }
http { access_log off; tcp_nodelay on; keepalive_requests 1000000; keepalive_timeout 10s;
  server {
%s
    location / { default_type application/json; add_header X-Backend $server_port;
                 return 200 '%s'; } }
}
""" % (d, d, "\n".join("    listen 127.0.0.1:%d backlog=4096;" % p for p in ports), body)
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", path]


# ---------------------------------------------------------------- route files

def routes(ports, version):
    eps = ", ".join("http://127.0.0.1:%d" % p for p in ports)
    return """routes:
  - name: products
    match: {path: "/products/{id}", method: [GET]}
    filters:
      - consistentHashKey: "${id}"
      - consistentHashBalanceFactor: 2
      - setResponseHeader: {name: X-Version, value: "%s"}
    backend:
      algorithm: consistentHash
      endpoints: [%s]
      timeouts: {connect: 1s, response: 10s}
      retries: 1
  - name: batch
    match: {pathPrefix: /batch, method: POST}
    backend:
      algorithm: powerOfRandomNChoices
      endpoints: [%s]
  - name: search
    match: {path: /search}
    filters:
      - lifo: {maxConcurrency: 50, maxQueueSize: 100, timeout: 2s}
    backend:
      algorithm: roundRobin
      endpoints: [%s]
  - name: health
    match: {path: /health}
    backend: {status: 200}
""" % (version, eps, eps, eps)


def invalid(n, ports):
    """A file the proxy must refuse; several would visibly change the table if taken."""
    text = routes(ports, "bad%d" % n)
    kind = n % 6
    if kind == 0:
        return text.replace("consistentHashBalanceFactor: 2", "consistentHashBalanceFactor: 0.5")
    if kind == 1:
        return text.replace("      - consistentHashBalanceFactor: 2\n",
                            "      - noSuchFilter: 1\n")
    if kind == 2:
        return text.replace("endpoints: [", "endpoints: [ftp://x, ", 1)
    if kind == 3:
        return text.replace("name: health", "name: products")
    if kind == 4:
        return "routes:\n  - name: broken\n    backend: {status: 99}\n"
    return text + "  - [unclosed\n"


def churn_sets(ports):
    """Endpoint sets the products/batch/search routes cycle through: grow, shrink, replace."""
    a, b, c, d, e, f = ports
    # Consecutive sets differ, also across the wrap: an unchanged file is not a reload.
    return [[a, b, c], [a, b, c, d], [a, b, c, d, e], [a, b, c, d], [a, b, c],
            [b, c, f], [b, c, f, a], [a, b, c, f]]


def table_in_force(admin):
    """(endpoint ports of products, its X-Version value) as /routes reports them."""
    status, body = http_get("http://%s/routes" % admin)
    if status != 200:
        return None
    for r in json.loads(body)["routes"]:
        if r["route"]["name"] == "products":
            eps = sorted(int(e["address"].rsplit(":", 1)[1]) for e in r["endpoints"])
            version = next((f["setResponseHeader"]["value"] for f in r["route"]["filters"]
                            if "setResponseHeader" in f), None)
            return eps, version
    return None


# ---------------------------------------------------------------- traffic

class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.expected_4xx = 0
        self.failed = 0
        self.failures = {}
        self.by_kind = {}

    def count(self, kind, good, what=None):
        with self.lock:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
            if good:
                self.ok += 1
            else:
                self.failed += 1
                key = "%s: %s" % (kind, what)
                self.failures[key] = self.failures.get(key, 0) + 1


BATCH_BODY = json.dumps({"ids": list(range(1000, 1150))}).encode()


def client(port, stop, tally, seed, keep_alive):
    rnd = random.Random(seed)
    conn = None
    while not stop.is_set():
        r = rnd.random()
        if r < 0.05:
            bad_request(port, tally)
            continue
        if r < 0.65:
            key = 4242 if rnd.random() < 0.1 else rnd.randrange(100000)
            kind, method, path, body, want = "products", "GET", "/products/%d" % key, None, 200
        elif r < 0.80:
            kind, method, path, body, want = "batch", "POST", "/batch", BATCH_BODY, 200
        elif r < 0.90:
            kind, method, path, body, want = "search", "GET", "/search?q=s%d" % rnd.randrange(99), None, 200
        elif r < 0.95:
            kind, method, path, body, want = "health", "GET", "/health", None, 200
        else:
            kind, method, path, body, want = "missing", "GET", "/missing/%d" % rnd.randrange(99), None, 404
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
            headers = {} if keep_alive else {"Connection": "close"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            good = resp.status == want and (want != 200 or kind == "health" or len(data) > 100)
            tally.count(kind, good, "status %d" % resp.status)
            if want == 404 and good:
                with tally.lock:
                    tally.expected_4xx += 1
            if not keep_alive or resp.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            tally.count(kind, False, type(e).__name__)
            if conn is not None:
                conn.close()
            conn = None
    if conn is not None:
        conn.close()


def bad_request(port, tally):
    """A malformed request line on a fresh connection: must be a 400, never a crash."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
            s.sendall(b"GET /products/1 HTTP/1.1 trailing\r\nHost: x\r\n\r\n")
            head = b""
            while b"\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    break
                head += chunk
        good = head.startswith(b"HTTP/1.1 400")
        tally.count("malformed", good, head[:20])
        if good:
            with tally.lock:
                tally.expected_4xx += 1
    except OSError as e:
        tally.count("malformed", False, type(e).__name__)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=6, help="keep-alive clients (default 6)")
    ap.add_argument("--binary", default="target/release/ringress")
    args = ap.parse_args()

    atexit.register(stop_all)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    if not os.path.exists(args.binary):
        log("building %s" % args.binary)
        subprocess.run(["cargo", "build", "--release", "-p", "ringress"], check=True)

    d = tempfile.mkdtemp(prefix="ringress-soak-")
    logf = open(os.path.join(d, "processes.log"), "w")  # noqa: SIM115 (lives until exit)
    ports = [free_port() for _ in range(6)]
    start(nginx(d, ports), logf)
    for p in ports:
        if not wait_port("127.0.0.1", p):
            sys.exit("nginx did not listen on %d (see %s)" % (p, d))

    sets = churn_sets(ports)
    route_file = os.path.join(d, "routes.yaml")
    write(route_file, routes(sets[0], "v0"))
    listen, admin_port = free_port(), free_port()
    admin = "127.0.0.1:%d" % admin_port
    proxy = start([args.binary, "--routes", route_file, "--listen", "127.0.0.1:%d" % listen,
                   "--admin", admin, "--threads", "2"], logf)
    if not wait_port("127.0.0.1", listen) or http_get("http://%s/readyz" % admin)[0] != 200:
        sys.exit("ringress did not start (see %s)" % d)
    time.sleep(0.5)
    fds_baseline = fd_count(proxy.pid)
    rss_start = proc_status(proxy.pid, "VmRSS")
    log("soak: %.1f min, %d keep-alive clients + 1 closing client, backends %s, work dir %s"
        % (args.minutes, args.clients, ports, d))
    log("baseline: RSS %.1f MiB, %d fds" % (rss_start, fds_baseline))

    tally = Tally()
    stop = threading.Event()
    threads = [threading.Thread(target=client, args=(listen, stop, tally, i, True), daemon=True)
               for i in range(args.clients)]
    threads.append(threading.Thread(target=client, args=(listen, stop, tally, 999, False),
                                    daemon=True))
    for t in threads:
        t.start()

    duration = args.minutes * 60.0
    t0 = time.time()
    samples = []  # (t, rss, fds, in_flight, active)
    next_sample = t0
    next_change = t0 + 2.5
    step = 0
    churn_index = 0
    current = (sets[0], "v0")
    valid_applied = invalid_refused = 0
    change_errors = []
    while time.time() - t0 < duration:
        now = time.time()
        if now >= next_sample:
            m = metrics(admin)
            samples.append((now - t0, proc_status(proxy.pid, "VmRSS"), fd_count(proxy.pid),
                            m.get("ringress_endpoint_in_flight", 0.0),
                            m.get("ringress_active_requests", 0.0)))
            s = samples[-1]
            if len(samples) % 12 == 1:
                log("t=%4.0fs RSS %.1f MiB, %d fds, in-flight %d, active %d, %d ok, %d failed"
                    % (s[0], s[1], s[2], s[3], s[4], tally.ok, tally.failed))
            next_sample += 5.0
        if now >= next_change:
            before = metrics(admin)
            gen0 = before.get("ringress_route_table_generation", 0)
            fail0 = before.get("ringress_route_reload_failures_total", 0)
            phase = step % 4
            if phase in (1, 3):
                write(route_file, invalid(step // 2, current[0]))
                ok = wait_for(lambda: metrics(admin).get(
                    "ringress_route_reload_failures_total", 0) > fail0)
                in_force = table_in_force(admin)
                if not ok:
                    change_errors.append("step %d: invalid file not counted as failure" % step)
                elif in_force != (sorted(current[0]), current[1]) or \
                        metrics(admin).get("ringress_route_table_generation") != gen0:
                    change_errors.append("step %d: invalid file took effect: %s" % (step, in_force))
                else:
                    invalid_refused += 1
            else:
                if phase == 0:
                    churn_index = (churn_index + 1) % len(sets)
                    current = (sets[churn_index], current[1])
                else:
                    current = (current[0], "v%d" % step)
                write(route_file, routes(*current))
                ok = wait_for(lambda: metrics(admin).get(
                    "ringress_route_table_generation", 0) > gen0)
                in_force = table_in_force(admin)
                if not ok or in_force != (sorted(current[0]), current[1]):
                    change_errors.append("step %d: valid file not in force: %s (wanted %s)"
                                         % (step, in_force, current))
                else:
                    valid_applied += 1
            step += 1
            next_change += 2.5
        time.sleep(0.05)

    stop.set()
    for t in threads:
        t.join(timeout=30)
    elapsed = time.time() - t0
    stuck = [t for t in threads if t.is_alive()]

    # Drain: counters to zero, descriptors back once nginx closes idle upstream connections.
    end_deadline = time.time() + 60
    while time.time() < end_deadline:
        m = metrics(admin)
        in_flight = m.get("ringress_endpoint_in_flight", 0.0)
        active = m.get("ringress_active_requests", 0.0)
        fds = fd_count(proxy.pid)
        if in_flight == 0 and active == 0 and fds <= fds_baseline:
            break
        time.sleep(1)
    drained_after = time.time() - t0 - elapsed
    rss_end = proc_status(proxy.pid, "VmRSS")
    final = metrics(admin)

    proxy.send_signal(signal.SIGTERM)
    try:
        exit_code = proxy.wait(timeout=30)
    except subprocess.TimeoutExpired:
        exit_code = None
    PROCS.remove(proxy)

    # RSS flatness: early window after warm-up vs the last window.
    minute = duration / 10.0 if duration < 600 else 60.0
    early = [s[1] for s in samples if minute <= s[0] < 3 * minute]
    late = [s[1] for s in samples if s[0] >= duration - 2 * minute]
    early_mean = statistics.mean(early) if early else rss_start
    late_mean = statistics.mean(late) if late else rss_end
    growth = late_mean - early_mean
    rss_flat = growth <= max(4.0, 0.10 * early_mean)
    rss_peak = max(s[1] for s in samples) if samples else rss_end

    total = tally.ok + tally.failed
    checks = {
        "zero failed requests": tally.failed == 0,
        "every client stopped": not stuck,
        "every valid file in force, every invalid one refused": not change_errors,
        "in-flight back to 0": in_flight == 0,
        "active requests back to 0": active == 0,
        "fds back to baseline": fds <= fds_baseline,
        "RSS flat": rss_flat,
        "SIGTERM exit 0": exit_code == 0,
    }
    print()
    print("ringress soak, %s, %d CPUs, %.1f min" % (time.strftime("%Y-%m-%d %H:%M %Z"),
                                                    os.cpu_count(), elapsed / 60))
    print("requests        %d (%.0f/s): %d as expected (%d of them the expected 404/400), %d failed"
          % (total, total / elapsed, tally.ok, tally.expected_4xx, tally.failed))
    print("by kind         %s" % ", ".join("%s %d" % kv for kv in sorted(tally.by_kind.items())))
    if tally.failures:
        print("failures        %s" % tally.failures)
    print("route files     %d valid in force (%d endpoint churns), %d invalid refused"
          % (valid_applied, (step + 3) // 4, invalid_refused))
    print("proxy counters  reloads %d, reload failures %d, spills %d, retries %d, "
          "rejected %d, connect failures %d"
          % (final.get("ringress_route_reloads_total", 0),
             final.get("ringress_route_reload_failures_total", 0),
             final.get("ringress_bounded_load_spills_total", 0),
             final.get("ringress_retries_total", 0),
             final.get("ringress_rejected_requests_total", 0),
             final.get("ringress_upstream_connect_failures_total", 0)))
    print("RSS             start %.1f, mean of %.0f-%.0f s %.1f, mean of the last %.0f s %.1f, "
          "peak %.1f, end %.1f MiB (growth %+.1f MiB)"
          % (rss_start, minute, 3 * minute, early_mean, 2 * minute, late_mean, rss_peak, rss_end,
             growth))
    print("fds             baseline %d, peak %d, end %d (%.0f s after traffic stopped)"
          % (fds_baseline, max(s[2] for s in samples), fds, drained_after))
    print("in flight       peak %d, end %d; active requests peak %d, end %d"
          % (max(s[3] for s in samples), in_flight, max(s[4] for s in samples), active))
    for e in change_errors[:10]:
        print("change error    %s" % e)
    for name, ok in checks.items():
        print("%-5s %s" % ("PASS" if ok else "FAIL", name))
    if all(checks.values()):
        shutil.rmtree(d, ignore_errors=True)
        sys.exit(0)
    print("logs kept in %s" % d)
    sys.exit(1)


def wait_for(cond, timeout=5.0):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False


if __name__ == "__main__":
    main()
