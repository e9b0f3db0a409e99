#!/usr/bin/env python3
"""Scale figures for ringress, end to end, against the real binary and real backends.

Run from the repository root (needs wrk and nginx: apt-get install -y wrk nginx-light):

    python3 benches/e2e/scale.py                  # everything, ~3 min; --only tput,rss,apply,rebuild

Parts (--only selects; the default is all four):
  tput     throughput and proxy CPU per request with --threads 1 and 2: wrk (64 connections)
           sends GET /products/<id> (uniform ids) to a consistentHash route keyed on the id,
           served by nginx on 4 loopback ports (~4 KB JSON). Rounds interleave 1 and 2
           threads; medians are quoted. CPU is utime+stime of the ringress process
           (/proc/PID/stat) over the measured window divided by the requests wrk completed.
           With >= 4 CPUs the proxy gets CPUs 1..N to itself and wrk and nginx the rest;
           with fewer, 1 thread is pinned to CPU 1 and 2 threads share both CPUs.
  rss      peak RSS (VmHWM of /proc/PID/status) after start and traffic: the example route
           file, 1,000 routes x 10 endpoints (10,000 distinct addresses) and 1 route x 1,000
           endpoints. Every endpoint is a real nginx listener on its own loopback address
           (127.1.x.y and 127.2.x.y, one port), so traffic reaches all of them.
  apply    time to apply a 1,000-route file: `ringress check FILE` wall time, and in a running
           proxy the time from replacing the file (atomic rename) to the new table answering
           on /ring, plus the in-process compile-and-swap time from the
           ringress_route_reload_seconds histogram. "cold" goes from a 1-route file to the
           1,000-route file (every ring built); "edit" changes one route's endpoints in the
           1,000-route file (one ring rebuilt). The watcher polls every 500 ms, so the
           observed latency includes 0-500 ms of waiting.
  rebuild  `cargo bench -p ringress-benches --bench rebuild` (ring and runtime rebuild after
           one endpoint of a 1,000-endpoint Service changes), criterion medians.

--peers PATH also runs PATH (the side-by-side peers bench, benches/e2e/peers.py) with
this binary as --ours and prints its table. Every process started is stopped on exit.
"""
import argparse
import atexit
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from peers import products_routes
from proc_util import (cpu_seconds, free_port, http_get, log, metric, on_signal,
                       proc_status, start, stop, stop_all, wait_port, write)

PARTS = ("tput", "rss", "apply", "rebuild")
def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, spec="%.1f", none="–"):
    return none if x is None else spec % x


# ---------------------------------------------------------------- backends

BODY = '{"id":"SKU","name":"Sneaker","brand":"Brand","attributes":[%s]}' % ",".join(
    '{"k":"attr%d","v":"value-%d"}' % (i, i) for i in range(125))


def nginx_conf(d, name, listens, workers):
    """nginx serving BODY on every `host:port` in listens."""
    www = os.path.join(d, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, "body.json"), "w") as f:
        f.write(BODY)
    conf = """daemon off; worker_processes %d; pid %s/%s.pid; error_log %s/%s.err;
worker_rlimit_nofile %d;
events { worker_connections %d; }
http { access_log off; sendfile on; tcp_nodelay on; keepalive_requests 1000000;
  server {
%s
    location / { default_type application/json; root %s; rewrite ^ /body.json break; } }
}
""" % (workers, d, name, d, name, len(listens) + 8192, len(listens) + 4096,
       "\n".join("    listen %s backlog=4096;" % a for a in listens), www)
    path = os.path.join(d, name + ".conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", path]


# ---------------------------------------------------------------- route files



def many_addr(n, net):
    """The n-th distinct loopback address of block 127.NET.0.0/16."""
    return "127.%d.%d.%d" % (net, n // 250, n % 250 + 1)


def wide_routes(n_routes, per_route, port, first_name="r0", changed=None):
    """n_routes routes /rI/products/{id}, each on per_route distinct endpoints
    (127.1.x.y:port). `changed` moves one endpoint of that route to a new address."""
    out = ["routes:"]
    for i in range(n_routes):
        eps = [many_addr(i * per_route + j, 1) for j in range(per_route)]
        if i == changed:
            eps[0] = many_addr(n_routes * per_route + 1, 1)
        out.append("  - name: %s\n    match: {path: \"/r%d/products/{id}\"}\n"
                   "    filters: [{consistentHashKey: \"${id}\"}]\n"
                   "    backend:\n      endpoints: [%s]"
                   % (first_name if i == 0 else "r%d" % i, i,
                      ", ".join("http://%s:%d" % (a, port) for a in eps)))
    return "\n".join(out) + "\n"


def big_route(n_endpoints, port):
    eps = ", ".join("http://%s:%d" % (many_addr(n, 2), port) for n in range(n_endpoints))
    return """routes:
  - name: big
    match: {path: "/r0/products/{id}"}
    filters: [{consistentHashKey: "${id}"}]
    backend:
      endpoints: [%s]
""" % eps


KEYS_LUA = """math.randomseed(os.time() + (tonumber(tostring({}):sub(8), 16) or 0))
local routes = tonumber(os.getenv("ROUTES") or "0")
request = function()
  local id = math.random(1, 100000)
  if routes > 0 then
    return wrk.format("GET", "/r" .. math.random(0, routes - 1) .. "/products/" .. id)
  end
  return wrk.format("GET", "/products/" .. id)
end
"""

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def wrk(d, url, seconds, conns, threads, cpus, routes=0):
    lua = os.path.join(d, "keys.lua")
    if not os.path.exists(lua):
        with open(lua, "w") as f:
            f.write(KEYS_LUA)
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency", "-s", lua, url]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    env = dict(os.environ, ROUTES=str(routes))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env,
                         timeout=seconds + 60).stdout
    m = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s)", out)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + out)
    lat = {q: float(v) * UNITS[u]
           for q, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}
    errors = 0
    m2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m2:
        errors += int(m2.group(1))
    m2 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m2:
        errors += sum(int(x) for x in m2.groups())
    return {"requests": int(m.group(1)),
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": lat.get("50"), "p99": lat.get("99"), "errors": errors}


class Proxy:
    """The ringress binary on free ports, stopped with SIGINT."""

    def __init__(self, binary, routes, logf, threads=1, cpus=None):
        self.listen = "127.0.0.1:%d" % free_port()
        self.admin = "127.0.0.1:%d" % free_port()
        self.proc = start([binary, "--routes", routes, "--listen", self.listen,
                           "--admin", self.admin, "--threads", str(threads)], logf, cpus)
        self.pid = self.proc.pid
        host, port = self.admin.rsplit(":", 1)
        if not wait_port(host, int(port)) or not wait_port("127.0.0.1", int(self.listen.rsplit(":", 1)[1])):
            self.stop()
            raise RuntimeError("ringress did not start; see %s" % logf.name)

    def stop(self):
        stop(self.proc)


# ---------------------------------------------------------------- parts

def part_tput(a, d, logf, results):
    ncpu = os.cpu_count() or 1
    ports = [free_port() for _ in range(4)]
    split = ncpu >= 4 and a.pin == "auto"
    load_cpus = ("0,%d-%d" % (3, ncpu - 1) if ncpu > 3 else "0") if a.pin == "auto" else None
    load_workers = 1 if not split else max(1, ncpu - 2)
    backends = start(nginx_conf(d, "tput", ["127.0.0.1:%d" % p for p in ports], load_workers),
                     logf, load_cpus if ncpu >= 2 else None)
    try:
        if not all(wait_port("127.0.0.1", p) for p in ports):
            raise RuntimeError("nginx backends did not start; see %s" % d)
        routes = os.path.join(d, "products.yaml")
        write(routes, products_routes(ports))
        runs = {1: [], 2: []}
        pin = {}
        for t in (1, 2):
            if split:
                pin[t] = "1-%d" % t if t > 1 else "1"
            elif ncpu >= 2 and t == 1 and a.pin == "auto":
                pin[t] = "1"
            else:
                pin[t] = None
        for r in range(a.rounds):
            for t in (1, 2):
                proxy = Proxy(a.bin, routes, logf, threads=t, cpus=pin[t])
                try:
                    url = "http://" + proxy.listen
                    wcpus = load_cpus if ncpu >= 2 else None
                    wrk(d, url, 2, a.conns, load_workers, wcpus)  # warm-up
                    c0 = cpu_seconds(proxy.pid)
                    res = wrk(d, url, a.seconds, a.conns, load_workers, wcpus)
                    res["cpu_us"] = 1e6 * (cpu_seconds(proxy.pid) - c0) / max(1, res["requests"])
                    res["hwm"] = proc_status(proxy.pid, "VmHWM")
                finally:
                    proxy.stop()
                runs[t].append(res)
                log("tput round %d, %d thread(s): %8.0f req/s  p50 %.2f ms  p99 %.2f ms  "
                    "%.1f us CPU/req  errors %d" % (r + 1, t, res["rps"], res["p50"] or -1,
                                                    res["p99"] or -1, res["cpu_us"], res["errors"]))
        results["tput"] = {"runs": runs, "pin": pin, "load_cpus": load_cpus}
    finally:
        stop(backends)


def scale_backends(d, logf, port, n_wide, n_big):
    listens = ["%s:%d" % (many_addr(n, 1), port) for n in range(n_wide + 1)]
    listens += ["%s:%d" % (many_addr(n, 2), port) for n in range(n_big)]
    p = start(nginx_conf(d, "scale", listens, 1), logf)
    last = many_addr(n_big - 1, 2)
    if not wait_port(last, port, timeout=60):
        stop(p)
        raise RuntimeError("nginx with %d listeners did not start; see %s/scale.err" % (len(listens), d))
    return p


def part_rss(a, d, logf, results, port):
    out = []
    cases = [
        ("example file (examples/routes.yaml), idle", None, 0),
        ("1,000 routes x 10 endpoints", wide_routes(a.routes, 10, port), a.routes),
        ("1 route x 1,000 endpoints", big_route(a.endpoints, port), 1),
    ]
    for label, text, routes in cases:
        if text is None:
            path = "examples/routes.yaml"
        else:
            path = os.path.join(d, "rss.yaml")
            write(path, text)
        proxy = Proxy(a.bin, path, logf, threads=1)
        try:
            start_rss = proc_status(proxy.pid, "VmRSS")
            res = None
            if routes:
                res = wrk(d, "http://" + proxy.listen, a.rss_seconds, 32, 1, None, routes=routes)
            hwm, rss = proc_status(proxy.pid, "VmHWM"), proc_status(proxy.pid, "VmRSS")
            # Then one Prometheus scrape, which renders every series at once.
            t0 = time.perf_counter()
            _, body = http_get("http://%s/metrics" % proxy.admin, timeout=60)
            scrape = (time.perf_counter() - t0, len(body.encode()))
            out.append({"case": label, "start": start_rss, "hwm": hwm, "rss": rss, "scrape": scrape,
                        "hwm_scrape": proc_status(proxy.pid, "VmHWM"),
                        "requests": res and res["requests"], "errors": res and res["errors"]})
        finally:
            proxy.stop()
        r = out[-1]
        log("rss %-45s start %.1f MiB  peak %.1f MiB  after traffic %.1f MiB  requests %s  errors %s"
            "  /metrics %.0f ms %.1f MB, peak after it %.1f MiB"
            % (label, r["start"], r["hwm"], r["rss"], r["requests"], r["errors"],
               r["scrape"][0] * 1e3, r["scrape"][1] / 1e6, r["hwm_scrape"]))
    results["rss"] = out


def wait_route(admin, name, timeout=30.0):
    end = time.time() + timeout
    url = "http://%s/ring?route=%s&key=1" % (admin, name)
    while time.time() < end:
        if http_get(url, timeout=2)[0] == 200:
            return True
        time.sleep(0.002)
    return False


def part_apply(a, d, logf, results, port):
    big = os.path.join(d, "apply-check.yaml")
    write(big, wide_routes(a.routes, 10, port))
    check = []
    for _ in range(a.rounds + 2):
        t0 = time.perf_counter()
        p = subprocess.run([a.bin, "check", big], capture_output=True, text=True, timeout=60)
        check.append(time.perf_counter() - t0)
        if p.returncode != 0:
            raise RuntimeError("ringress check failed:\n" + p.stdout + p.stderr)
    log("apply: ringress check, %d routes: %s" % (a.routes, " ".join("%.0f ms" % (x * 1e3) for x in check)))

    path = os.path.join(d, "apply.yaml")

    def small(k):
        return wide_routes(1, 10, port, first_name="small%d" % k)

    write(path, small(0))
    proxy = Proxy(a.bin, path, logf, threads=1)
    cold, edit = [], []
    try:
        def apply(text, marker):
            s0 = metric(proxy.admin, "ringress_route_reload_seconds_sum")
            n0 = metric(proxy.admin, "ringress_route_reload_seconds_count")
            # Writes at a random phase of the watcher's 500 ms poll, so the
            # observed latency samples the wait instead of locking onto it.
            time.sleep(random.uniform(0, 0.5))
            t0 = time.perf_counter()
            write(path, text)
            if not wait_route(proxy.admin, marker):
                raise RuntimeError("route file with %s was not put in force" % marker)
            seen = time.perf_counter() - t0
            # The histogram is observed just after the swap that /routes shows.
            end = time.time() + 5
            while time.time() < end and metric(
                    proxy.admin, "ringress_route_reload_seconds_count") == n0:
                time.sleep(0.01)
            s1 = metric(proxy.admin, "ringress_route_reload_seconds_sum")
            return {"seen": seen, "inproc": None if s0 is None or s1 is None else s1 - s0}

        for k in range(1, a.rounds + 1):
            cold.append(apply(wide_routes(a.routes, 10, port, first_name="cold%d" % k), "cold%d" % k))
            # One endpoint of route 1 moves: one ring rebuilt, the rest reused.
            edit.append(apply(wide_routes(a.routes, 10, port, first_name="edit%d" % k, changed=1),
                              "edit%d" % k))
            apply(small(k), "small%d" % k)
            log("apply round %d: cold seen %.0f ms (in-process %s ms), edit seen %.0f ms (in-process %s ms)"
                % (k, cold[-1]["seen"] * 1e3, fmt(cold[-1]["inproc"] and cold[-1]["inproc"] * 1e3),
                   edit[-1]["seen"] * 1e3, fmt(edit[-1]["inproc"] and edit[-1]["inproc"] * 1e3)))
        # The table in force now has 10 endpoints; count the upstream series left.
        _, body = http_get("http://%s/metrics" % proxy.admin, timeout=60)
        series = sum(1 for line in body.splitlines()
                     if line.startswith("ringress_upstream_duration_seconds_count{"))
        log("apply: after going back to 1 route x 10 endpoints, /metrics has %d upstream series "
            "(%.1f MB), RSS %.1f MiB" % (series, len(body.encode()) / 1e6, proc_status(proxy.pid, "VmRSS")))
    finally:
        proxy.stop()
    results["apply"] = {"check": check, "cold": cold, "edit": edit, "series_after": series}


def part_rebuild(a, results):
    cmd = ["cargo", "bench", "-p", "ringress-benches", "--bench", "rebuild", "--",
           "--warm-up-time", "1", "--measurement-time", "3"]
    log("rebuild: " + " ".join(cmd))
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError("cargo bench failed:\n" + p.stderr[-4000:])
    found, name = [], None
    for line in p.stdout.splitlines():
        m = re.match(r"^(\S+/\S+)\s*(time:.*)?$", line)
        if m and not line.startswith(" "):
            name = m.group(1)
        t = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", line)
        if t and name:
            found.append((name, float(t.group(1)), t.group(2)))
            name = None
    results["rebuild"] = found


# ---------------------------------------------------------------- report

def report(a, results):
    lines = []
    if "tput" in results:
        t = results["tput"]
        lines += ["", "Throughput and CPU per request (%d rounds x %d s, %d connections, medians; "
                  "wrk and nginx on CPUs %s)" % (a.rounds, a.seconds, a.conns, t["load_cpus"] or "all"), "",
                  "| proxy threads | proxy CPUs | req/s | p50 ms | p99 ms | CPU µs/req | peak RSS MiB | errors |",
                  "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        med = {}
        for n, runs in sorted(t["runs"].items()):
            med[n] = {k: median([r[k] for r in runs]) for k in ("rps", "p50", "p99", "cpu_us", "hwm")}
            lines.append("| %d | %s | %.0f | %.2f | %.2f | %.1f | %.1f | %d |" % (
                n, t["pin"][n] or "all (shared)", med[n]["rps"], med[n]["p50"] or 0, med[n]["p99"] or 0,
                med[n]["cpu_us"], med[n]["hwm"], sum(r["errors"] for r in runs)))
        r1, r2 = t["runs"][1], t["runs"][2]
        rps_ratio = median([b["rps"] / x["rps"] for x, b in zip(r1, r2)])
        cpu_ratio = median([b["cpu_us"] / x["cpu_us"] for x, b in zip(r1, r2)])
        lines += ["", "2 threads vs 1: req/s %.2f×, CPU per request %.2f× (medians of per-round ratios)"
                  % (rps_ratio, cpu_ratio)]
    if "rss" in results:
        lines += ["", "Memory (one worker thread; peak = VmHWM after start and traffic)", "",
                  "| route file | RSS after start MiB | peak RSS MiB | requests | errors "
                  "| then one /metrics scrape | peak RSS after it MiB |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for r in results["rss"]:
            lines.append("| %s | %.1f | %.1f | %s | %s | %.0f ms, %.1f MB | %.1f |" % (
                r["case"], r["start"], r["hwm"], fmt(r["requests"], "%d"), fmt(r["errors"], "%d"),
                r["scrape"][0] * 1e3, r["scrape"][1] / 1e6, r["hwm_scrape"]))
    if "apply" in results:
        ap = results["apply"]
        def ms(xs):
            return fmt(median(xs) and median(xs) * 1e3, "%.1f")

        def rng(xs):
            return "%.0f–%.0f" % (min(xs) * 1e3, max(xs) * 1e3) if xs else "–"

        lines += ["", "Applying a %d-route file (%d endpoints per route; medians of %d)"
                  % (a.routes, 10, a.rounds), "",
                  "| what | median ms | range ms |", "| --- | ---: | ---: |",
                  "| `ringress check FILE` (process start, parse, validate) | %s | %s |"
                  % (ms(ap["check"]), rng(ap["check"]))]
        for label, rs in (("cold: 1 route → %d routes" % a.routes, ap["cold"]),
                          ("edit: one endpoint of one route changed", ap["edit"])):
            seen = [r["seen"] for r in rs]
            inproc = [r["inproc"] for r in rs if r["inproc"] is not None]
            lines.append("| %s, in process: compile + rings + swap (`ringress_route_reload_seconds`) | %s | %s |"
                         % (label, ms(inproc), rng(inproc)))
            lines.append("| %s, file replaced → new table answering (watcher polls every 500 ms) | %s | %s |"
                         % (label, ms(seen), rng(seen)))
        lines += ["", "After the last round (back to 1 route x 10 endpoints) /metrics still lists %d "
                  "upstream latency series." % ap["series_after"]]
    if "rebuild" in results:
        lines += ["", "Rebuild after one endpoint of a 1,000-endpoint Service changes "
                  "(`cargo bench -p ringress-benches --bench rebuild`, criterion medians)", "",
                  "| bench | median |", "| --- | ---: |"]
        for name, value, unit in results["rebuild"]:
            lines.append("| %s | %.3g %s |" % (name, value, unit))
    print("\n".join(lines).lstrip("\n"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ",".join(PARTS))
    ap.add_argument("--no-build", action="store_true", help="use the binary as it is")
    ap.add_argument("--bin", default="target/release/ringress")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per figure (medians)")
    ap.add_argument("--seconds", type=int, default=5, help="measured seconds per throughput round")
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--pin", choices=("auto", "none"), default="auto",
                    help="throughput: pin the proxy and the load to separate CPUs (auto) or not at all")
    ap.add_argument("--routes", type=int, default=1000, help="routes in the big route files")
    ap.add_argument("--endpoints", type=int, default=1000, help="endpoints of the one-route file")
    ap.add_argument("--rss-seconds", type=int, default=3, help="traffic before reading peak RSS")
    ap.add_argument("--peers", metavar="PATH", help="also run this peers.py with our binary as --ours")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    a = ap.parse_args()
    parts = [p for p in a.only.split(",") if p]
    for p in parts:
        if p not in PARTS:
            sys.exit("scale.py: unknown part %r (choose from %s)" % (p, ",".join(PARTS)))
    if not os.path.exists("Cargo.toml") or not os.path.isdir("benches/e2e"):
        sys.exit("scale.py: run from the repository root")
    need = {"tput": ["wrk", "nginx", "taskset"], "rss": ["wrk", "nginx"], "rebuild": ["cargo"]}
    for p in parts:
        for tool in need.get(p, []):
            if not shutil.which(tool):
                sys.exit("scale.py: %s is not on PATH (apt-get install -y wrk nginx-light)" % tool)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    atexit.register(stop_all)

    needs_bin = any(p != "rebuild" for p in parts) or a.peers
    if needs_bin and not a.no_build:
        log("building: cargo build --release -p ringress")
        subprocess.run(["cargo", "build", "--release", "-p", "ringress"], check=True)
    if needs_bin and not os.access(a.bin, os.X_OK):
        sys.exit("scale.py: %s is not an executable (build it, or pass --bin)" % a.bin)
    a.bin = os.path.abspath(a.bin)

    d = tempfile.mkdtemp(prefix="ringress-scale-")
    os.chmod(d, 0o755)  # nginx workers may run as an unprivileged user
    logf = open(os.path.join(d, "procs.log"), "w")
    results = {}
    began = time.time()
    try:
        if "tput" in parts:
            part_tput(a, d, logf, results)
        if "rss" in parts or "apply" in parts:
            port = free_port()
            backends = scale_backends(d, logf, port, a.routes * 10, a.endpoints) if "rss" in parts else None
            try:
                if "rss" in parts:
                    part_rss(a, d, logf, results, port)
                if "apply" in parts:
                    part_apply(a, d, logf, results, port)
            finally:
                stop(backends)
        if "rebuild" in parts:
            part_rebuild(a, results)
    except (RuntimeError, subprocess.SubprocessError) as e:
        log("scale.py: %s" % e)
        a.keep = True
    finally:
        stop_all()
        logf.close()
    log("took %.0f s%s" % (time.time() - began, "; files kept in " + d if a.keep else ""))
    uname = os.uname()
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                  if line.startswith("model name")), "unknown CPU")
    print("ringress scale figures, %s, %s, %d CPUs, Linux %s"
          % (time.strftime("%Y-%m-%d"), model, os.cpu_count() or 0, uname.release))
    print("command: python3 benches/e2e/scale.py " + " ".join(sys.argv[1:]))
    print()
    report(a, results)
    if not a.keep:
        shutil.rmtree(d, ignore_errors=True)
    if a.peers:
        cmd = [sys.executable, a.peers, "--ours",
               "%s --routes {routes} --listen {listen} --admin {admin} --threads 1" % a.bin]
        log("peers: " + " ".join(cmd))
        print()
        sys.stdout.flush()
        subprocess.run(cmd, timeout=1800)


if __name__ == "__main__":
    main()
