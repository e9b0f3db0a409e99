#!/usr/bin/env python3
"""Scale-up experiment for ringress's fadeIn filter: 4 -> 5 cache-backed pods under steady keyed load.

Run from the repository root (Python 3 standard library only):

    cargo build --release -p ringress
    python3 benches/fadein/experiment.py                 # both runs, ~3 min
    python3 benches/fadein/experiment.py --only without  # a binary without fadeIn

Five simulated pods (one asyncio process): each holds an LRU cache of --cache product ids; a hit
answers after --hit-ms, a miss waits for one of --db-concurrency slots of the pod's "database" and
--miss-ms there, then caches the id. Responses carry x-backend and x-cache. Pods 1-4 start with
the ids the 4-pod ring gives them already cached (`ringress ring`, hottest last), as after a long
run; pod 5 starts empty. ringress routes GET /products/{id} to pods 1-4 by consistent hash of the
id (bounded load, --balance-factor, default 2). An open-loop generator sends --rate requests/s, ids zipf(--skew) over
--catalogue ids, the same sequence in every run; latency counts from each request's scheduled send
time. After --warmup s the route file is replaced (atomic rename) with one listing pods 1-5 and the
load goes on for --seconds s. The run is done without and with `fadeIn: {duration: --fade,
exponent: --exponent}` on the route, each with fresh pods and proxy on the same ports.

Writes to --out (default benches/fadein/): without.csv / with.csv (one row per second of
scheduled send time, t relative to the scale-up), results.md (also printed) and fadein.svg.
"""
import argparse
import asyncio
import bisect
import collections
import datetime
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PROCS = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- simulated pods

class Pod:
    def __init__(self, name, capacity, hit_s, miss_s, db_concurrency, prefill):
        self.name = name.encode()
        self.capacity = capacity
        self.hit_s = hit_s
        self.miss_s = miss_s
        self.db = asyncio.Semaphore(db_concurrency)
        self.cache = collections.OrderedDict()
        for key in prefill:  # coldest first: the hottest end up most recently used
            self.put(key.encode())

    def put(self, key):
        self.cache[key] = True
        self.cache.move_to_end(key)
        while len(self.cache) > self.capacity:
            self.cache.popitem(last=False)

    async def lookup(self, key):
        if key in self.cache:
            self.cache.move_to_end(key)
            await asyncio.sleep(self.hit_s)
            return b"hit"
        async with self.db:
            await asyncio.sleep(self.miss_s)
        self.put(key)
        return b"miss"

    async def serve(self, reader, writer):
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.split(b"\r\n")
                parts = lines[0].split(b" ")
                if len(parts) != 3:
                    return
                close = False
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value.strip())
                    elif name == b"connection" and b"close" in value.lower():
                        close = True
                if length:
                    await reader.readexactly(length)
                path = parts[1].split(b"?", 1)[0]
                if path.startswith(b"/products/"):
                    key = path[len(b"/products/"):]
                    cache = await self.lookup(key)
                    body = b'{"id":"%s","pod":"%s","name":"product %s"}\n' % (key, self.name, key)
                    status = b"200 OK"
                else:
                    cache, body, status = b"none", b"not found\n", b"404 Not Found"
                writer.write(b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                             b"x-backend: %s\r\nx-cache: %s\r\n%s\r\n%s"
                             % (status, len(body), self.name, cache,
                                b"connection: close\r\n" if close else b"", body))
                await writer.drain()
                if close:
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def serve_pods(config_path):
    with open(config_path) as f:
        cfg = json.load(f)
    servers = []
    for p in cfg["pods"]:
        pod = Pod(p["name"], cfg["cache"], cfg["hit_ms"] / 1000, cfg["miss_ms"] / 1000,
                  cfg["db_concurrency"], p["prefill"])
        servers.append(await asyncio.start_server(pod.serve, "127.0.0.1", p["port"],
                                                  reuse_address=True, backlog=1024))
    print("ready", flush=True)
    await asyncio.Event().wait()


# ---------------------------------------------------------------- processes and files

def start(cmd, logf):
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    return p


def stop(p):
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(timeout=15)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in list(PROCS):
        stop(p)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def http_get(url, timeout=2.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def write_atomic(path, text):
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".routes-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def routes_yaml(ports, fade, exponent, factor="2"):
    eps = ", ".join("http://127.0.0.1:%d" % p for p in ports)
    fade_line = ("      - fadeIn: {duration: %s, exponent: %s}\n" % (fade, exponent)) if fade else ""
    return ("routes:\n"
            "  - name: products\n"
            "    match: {path: \"/products/{id}\"}\n"
            "    filters:\n"
            "      - consistentHashKey: \"${id}\"\n"
            "      - consistentHashBalanceFactor: %s\n" % factor
            + fade_line +
            "    backend:\n"
            "      algorithm: consistentHash\n"
            "      endpoints: [%s]\n"
            "      timeouts: {connect: 1s, response: 10s}\n" % eps)


def ring_owners(binary, ports, ids):
    """{id: port} on the ring of these endpoints, from `ringress ring` (no load)."""
    eps = ",".join("http://127.0.0.1:%d" % p for p in ports)
    out = subprocess.run([binary, "ring", "--endpoints", eps] + ids, check=True,
                         capture_output=True, text=True).stdout
    owners = {}
    for line in out.splitlines():
        key, _, ep = line.partition("\t")
        owners[key] = int(ep.rsplit(":", 1)[1])
    return owners


# ---------------------------------------------------------------- workload

def catalogue(n, skew, seed):
    """Product ids by popularity rank and the cumulative zipf(skew) weights."""
    rng = random.Random(seed)
    ids = [str(100000 + i) for i in range(n)]
    rng.shuffle(ids)
    cdf, acc = [], 0.0
    for k in range(1, n + 1):
        acc += 1.0 / k ** skew
        cdf.append(acc)
    return ids, [c / acc for c in cdf]


def draw(ids, cdf, count, seed):
    rng = random.Random(seed + 1)
    return [ids[min(bisect.bisect_left(cdf, rng.random()), len(ids) - 1)] for _ in range(count)]


def lru_hit_rate(stream, route, pods, capacity, prefill):
    """Hit rate of `stream` over LRU caches, each request sent to route(key)."""
    caches = {p: collections.OrderedDict() for p in pods}
    for p, keys in prefill.items():
        for k in keys:
            caches[p][k] = True
    hits = 0
    for k in stream:
        c = caches[route(k)]
        if k in c:
            hits += 1
            c.move_to_end(k)
        else:
            c[k] = True
            if len(c) > capacity:
                c.popitem(last=False)
    return hits / len(stream)


# ---------------------------------------------------------------- load generator

class Conn:
    def __init__(self):
        self.reader = self.writer = None


async def request(port, conn, key, timeout):
    if conn.writer is None:
        conn.reader, conn.writer = await asyncio.open_connection("127.0.0.1", port)
    conn.writer.write(b"GET /products/%s HTTP/1.1\r\nhost: shop.example\r\n\r\n" % key.encode())
    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    hdr = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        hdr[name.strip().lower()] = value.strip()
    length = int(hdr.get(b"content-length", b"0"))
    if length:
        await asyncio.wait_for(conn.reader.readexactly(length), timeout)
    if b"close" in hdr.get(b"connection", b"").lower():
        conn.writer.close()
        conn.writer = None
    return status, hdr.get(b"x-backend", b"").decode(), hdr.get(b"x-cache", b"").decode()


async def drive(args, port, admin, keys, on_scale):
    """Open loop: request i is due at t0 + i/rate. Returns (records, events)."""
    loop = asyncio.get_running_loop()
    pool = asyncio.LifoQueue()
    for _ in range(args.connections):
        pool.put_nowait(Conn())
    records = []  # (due time rel. to scale-up, latency s, status, backend, cache)
    events = {}
    t0 = loop.time() + 0.2
    t_scale = t0 + args.warmup
    total = len(keys)

    async def one(due, key):
        conn = await pool.get()
        try:
            status, backend, cache = await request(port, conn, key, args.timeout)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
            if conn.writer is not None:
                conn.writer.close()
            conn.writer = None
            status, backend, cache = 0, "", ""
        finally:
            pool.put_nowait(conn)
        records.append((due - t_scale, loop.time() - due, status, backend, cache))

    async def scaler():
        await asyncio.sleep(max(0.0, t_scale - loop.time()))
        on_scale()
        events["renamed"] = loop.time() - t_scale
        gen0 = events.get("generation0")
        while loop.time() - t_scale < 10:
            st, body = await loop.run_in_executor(None, http_get, "http://%s/routes" % admin)
            if st == 200 and json.loads(body).get("generation") != gen0:
                events["applied"] = loop.time() - t_scale
                return
            await asyncio.sleep(0.02)

    async def spills():
        # The spill counter, read at each whole second of the timeline (t_scale + k).
        series = []
        k = -args.warmup
        while k <= args.seconds:
            await asyncio.sleep(max(0.0, t_scale + k - loop.time()))
            st, body = await loop.run_in_executor(None, http_get, "http://%s/metrics" % admin)
            m = re.search(r'^ringress_bounded_load_spills_total\{route="products"\} (\S+)$', body or "", re.M)
            if st == 200 and m:
                series.append((k, float(m.group(1))))
            k += 1
        events["spills"] = series

    st, body = http_get("http://%s/routes" % admin)
    events["generation0"] = json.loads(body).get("generation") if st == 200 else None
    tasks = set()
    side = [asyncio.ensure_future(scaler()), asyncio.ensure_future(spills())]
    i = 0
    while i < total:
        now = loop.time()
        while i < total and t0 + i / args.rate <= now:
            t = asyncio.ensure_future(one(t0 + i / args.rate, keys[i]))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
            i += 1
        if i < total:
            await asyncio.sleep(max(0.0, t0 + i / args.rate - loop.time()))
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 5)
    await asyncio.gather(*side)
    while not pool.empty():
        c = pool.get_nowait()
        if c.writer is not None:
            c.writer.close()
    return records, events


# ---------------------------------------------------------------- one run

def run(args, name, fade, ports, pod_cfg, keys, tmp):
    pods_json = os.path.join(tmp, "pods.json")
    with open(pods_json, "w") as f:
        json.dump(pod_cfg, f)
    pod_log = open(os.path.join(tmp, "pods-%s.log" % name), "w")
    pods = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-pods", pods_json],
                            stdout=subprocess.PIPE, stderr=pod_log, text=True, start_new_session=True)
    PROCS.append(pods)
    if pods.stdout.readline().strip() != "ready":
        sys.exit("the simulated pods did not start; see %s" % pod_log.name)

    routes = os.path.join(tmp, "routes.yaml")
    write_atomic(routes, routes_yaml(ports[:4], fade, args.exponent, args.balance_factor))
    listen, admin = args.base_port + 5, args.base_port + 6
    proxy_log_path = os.path.join(tmp, "ringress-%s.log" % name)
    proxy_log = open(proxy_log_path, "w")
    proxy = start([args.binary, "--routes", routes, "--listen", "127.0.0.1:%d" % listen,
                   "--admin", "127.0.0.1:%d" % admin, "--threads", str(args.threads),
                   "--reload-interval", "200ms"], proxy_log)
    admin_addr = "127.0.0.1:%d" % admin
    deadline = time.time() + 20
    while True:
        if proxy.poll() is not None or time.time() > deadline:
            proxy_log.flush()
            sys.exit("ringress did not become ready:\n" + open(proxy_log_path).read()[-3000:])
        if http_get("http://%s/readyz" % admin_addr)[0] == 200 and \
                http_get("http://127.0.0.1:%d/products/ready-check" % listen)[0] == 200:
            break
        time.sleep(0.1)

    def scale_up():
        write_atomic(routes, routes_yaml(ports, fade, args.exponent, args.balance_factor))

    log("[%s] %d s at %d req/s with pods 1-4, then pods 1-5 for %d s%s"
        % (name, args.warmup, args.rate, args.seconds, " (fadeIn %s)" % fade if fade else ""))
    cpu0 = cpu_snapshot([proxy.pid, pods.pid])
    records, events = asyncio.run(drive(args, listen, admin_addr, keys, scale_up))
    cpu1 = cpu_snapshot([proxy.pid, pods.pid])
    events["cpu"] = cpu_use(cpu0, cpu1)
    stop(proxy)
    stop(pods)
    pod_log.close()
    proxy_log.close()
    errs = [l for l in open(proxy_log_path) if "ERROR" in l or "WARN" in l]
    if errs:
        log("[%s] ringress logged %d warnings/errors, e.g.: %s" % (name, len(errs), errs[0].strip()))
    events["proxy_log_warnings"] = len(errs)
    return records, events


def cpu_snapshot(pids):
    """Wall time, CPU seconds of the machine (busy), of each pid and of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v) - v[3] - (v[4] if len(v) > 4 else 0)) / tick
    per = []
    for pid in pids:
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            per.append((int(fields[11]) + int(fields[12])) / tick)
        except OSError:
            per.append(0.0)
    t = os.times()
    return time.monotonic(), busy, per, t.user + t.system


def cpu_use(a, b):
    wall = b[0] - a[0]
    proxy = b[2][0] - a[2][0]
    pods = b[2][1] - a[2][1]
    own = b[3] - a[3]
    others = max(0.0, (b[1] - a[1]) - proxy - pods - own)
    return {k: 100 * v / wall for k, v in
            (("proxy", proxy), ("pods", pods), ("self", own), ("others", others))}


# ---------------------------------------------------------------- figures

def pct(sorted_xs, q):
    if not sorted_xs:
        return None
    return sorted_xs[min(len(sorted_xs) - 1, max(0, math.ceil(q * len(sorted_xs)) - 1))]


def window_stats(records, lo, hi, new_pod):
    rs = [r for r in records if lo <= r[0] < hi]
    ok = [r for r in rs if r[2] == 200]
    lat = sorted(r[1] * 1000 for r in ok)
    return {
        "requests": len(rs),
        "errors": len(rs) - len(ok),
        "p50": pct(lat, 0.50),
        "p99": pct(lat, 0.99),
        "hit": sum(r[4] == "hit" for r in ok) / len(ok) if ok else None,
        "new": sum(r[3] == new_pod for r in ok) / len(ok) if ok else None,
        "new_hit": (sum(r[4] == "hit" for r in ok if r[3] == new_pod)
                    / max(1, sum(r[3] == new_pod for r in ok))) if ok else None,
    }


def per_second(records, events, args, new_pod):
    spills = dict(events.get("spills", []))
    rows = []
    for t in range(-args.warmup, args.seconds):
        s = window_stats(records, t, t + 1, new_pod)
        sp = (spills[t + 1] - spills[t]) if (t in spills and t + 1 in spills) else None
        rows.append(dict(t=t, spills=sp, **s))
    return rows


def write_csv(path, rows):
    cols = ["t", "requests", "errors", "p50", "p99", "hit", "new", "new_hit", "spills"]
    head = ["t_s", "requests", "errors", "p50_ms", "p99_ms", "hit_rate", "new_pod_share",
            "new_pod_hit_rate", "bounded_load_spills"]

    def cell(v):
        if v is None:
            return ""
        return ("%.3f" % v) if isinstance(v, float) else str(v)
    with open(path, "w") as f:
        f.write(",".join(head) + "\n")
        for r in rows:
            f.write(",".join(cell(r[c]) for c in cols) + "\n")


def nice_step(span, ticks=5):
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def svg_plot(path, series, args, fade_s, slice_share):
    """series: [(label, colour, rows)]. Three panels sharing the time axis."""
    W, PH, L, R, T, GAP = 900, 200, 70, 20, 40, 50
    panels = [("p99 latency (ms), per second", "p99", 1.0),
              ("cache hit rate (%), per second", "hit", 100.0),
              ("share of requests served by the new pod (%)", "new", 100.0)]
    H = T + len(panels) * (PH + GAP) + 10
    x0, x1 = -args.warmup, args.seconds
    X = lambda t: L + (t - x0) / (x1 - x0) * (W - L - R)
    o = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
         'font-family="sans-serif" font-size="12">' % (W, H, W, H),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14" font-weight="bold">ringress: scale 4 \u2192 5 cache pods '
         'at %d req/s</text>' % (L, args.rate)]
    for i, (label, colour, _) in enumerate(series):  # legend, top right
        lx = W - R - 360 + 180 * i
        o.append('<line x1="%d" y1="16" x2="%d" y2="16" stroke="%s" stroke-width="2.5"/>'
                 % (lx, lx + 20, colour))
        o.append('<text x="%d" y="20">%s</text>' % (lx + 25, label))
    for pi, (title, key, scale) in enumerate(panels):
        top = T + pi * (PH + GAP) + 16
        bot = top + PH - 16
        vals = [r[key] * scale for _, _, rows in series for r in rows if r[key] is not None]
        if key == "p99":
            lo, hi = 0.0, max(vals + [1.0])
        elif key == "hit":
            lo, hi = max(0.0, math.floor(min(vals + [100.0]) / 10) * 10 - 0.0), 100.0
            if hi - lo < 10:
                lo = hi - 10
        else:
            lo, hi = 0.0, max(25.0, slice_share * 100 + 5, max(vals + [0.0]))
        step = nice_step(hi - lo)
        hi = lo + math.ceil((hi - lo) / step) * step
        Y = lambda v: bot - (v - lo) / (hi - lo) * (bot - top)
        if key == "new":
            title += " \u2014 dotted: its ring slice, %.1f%% of requests" % (slice_share * 100)
        o.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (L, top - 6, title))
        if fade_s and any(lbl.startswith("with ") for lbl, _, _ in series):
            o.append('<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="#1f77b4" opacity="0.07"/>'
                     % (X(0), top, X(min(fade_s, x1)) - X(0), bot - top))
        v = lo
        while v <= hi + 1e-9:
            o.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>' % (L, Y(v), W - R, Y(v)))
            o.append('<text x="%d" y="%.1f" text-anchor="end">%s</text>'
                     % (L - 6, Y(v) + 4, ("%g" % round(v, 3))))
            v += step
        tstep = max(1, int(nice_step(x1 - x0, 8)))
        t = math.ceil(x0 / tstep) * tstep
        while t <= x1:
            o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#eee"/>' % (X(t), top, X(t), bot))
            o.append('<text x="%.1f" y="%d" text-anchor="middle">%d</text>' % (X(t), bot + 15, t))
            t += tstep
        o.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                 % (L, top, W - L - R, bot - top))
        o.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="black" stroke-dasharray="5,4"/>'
                 % (X(0), top, X(0), bot))
        if pi == 1:  # below the hit-rate lines, which stay near the top
            o.append('<text x="%.1f" y="%d">\u2190 route file lists pod 5</text>' % (X(0) + 4, bot - 22))
            if fade_s and any(lbl.startswith("with ") for lbl, _, _ in series):
                o.append('<text x="%.1f" y="%d" fill="#1f77b4">shaded: fade-in duration</text>'
                         % (X(0) + 4, bot - 8))
        if pi == len(panels) - 1:
            o.append('<text x="%.1f" y="%d" text-anchor="middle">seconds since the route file '
                     'listed pod 5 (by scheduled send time)</text>' % ((L + W - R) / 2, bot + 32))
        for label, colour, rows in series:
            pts, segs = [], []
            for r in rows:
                if r[key] is None:
                    if pts:
                        segs.append(pts)
                    pts = []
                    continue
                pts.append("%.1f,%.1f" % (X(r["t"] + 0.5), Y(min(hi, r[key] * scale))))
            if pts:
                segs.append(pts)
            for s in segs:
                o.append('<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>'
                         % (colour, " ".join(s)))
        if key == "new":
            ys = Y(slice_share * 100)
            o.append('<line x1="%.1f" y1="%.1f" x2="%d" y2="%.1f" stroke="#555" stroke-dasharray="2,3"/>'
                     % (X(0), ys, W - R, ys))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(x for x in o if x) + "\n")


def fmt(v, spec):
    return "–" if v is None else spec % v


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(REPO, "target/release/ringress"),
                    help="the ringress binary (default: target/release/ringress of this checkout)")
    ap.add_argument("--rate", type=int, default=400, help="requests per second (open loop)")
    ap.add_argument("--warmup", type=int, default=20, help="seconds with 4 pods before the scale-up")
    ap.add_argument("--seconds", type=int, default=60, help="seconds with 5 pods after the scale-up")
    ap.add_argument("--fade", default="30s", help="fadeIn duration of the 'with' run")
    ap.add_argument("--exponent", default="1.0", help="fadeIn exponent of the 'with' run")
    ap.add_argument("--only", choices=["with", "without"])
    ap.add_argument("--out", default=HERE)
    ap.add_argument("--catalogue", type=int, default=20000, help="product ids")
    ap.add_argument("--skew", type=float, default=1.0, help="zipf exponent of id popularity")
    ap.add_argument("--cache", type=int, default=6500, help="LRU entries per pod")
    ap.add_argument("--hit-ms", type=float, default=1.0)
    ap.add_argument("--miss-ms", type=float, default=30.0)
    ap.add_argument("--db-concurrency", type=int, default=2)
    ap.add_argument("--balance-factor", default="2",
                    help="consistentHashBalanceFactor of the route (.inf: bounded load off)")
    ap.add_argument("--threads", type=int, default=1, help="ringress worker threads")
    ap.add_argument("--connections", type=int, default=64, help="keep-alive connections, at most")
    ap.add_argument("--timeout", type=float, default=10.0, help="client timeout per request (s)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--base-port", type=int, default=18101,
                    help="pods 1-5 listen on BASE..BASE+4, ringress on BASE+5, its admin on BASE+6")
    ap.add_argument("--raw", action="store_true",
                    help="also write every request (NAME-requests.csv) to --out")
    ap.add_argument("--serve-pods", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_pods:
        asyncio.run(serve_pods(args.serve_pods))
        return

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    args.binary = os.path.abspath(args.binary)
    if not os.access(args.binary, os.X_OK):
        sys.exit("no ringress binary at %s: cargo build --release -p ringress, or --binary PATH" % args.binary)
    os.makedirs(args.out, exist_ok=True)
    fade_s = parse_duration(args.fade)
    runs = [r for r in ("without", "with") if args.only in (None, r)]

    tmp = tempfile.mkdtemp(prefix="ringress-fadein-")
    if "with" in runs:
        probe = os.path.join(tmp, "check.yaml")
        with open(probe, "w") as f:
            f.write(routes_yaml([1, 2, 3, 4, 5], args.fade, args.exponent))
        c = subprocess.run([args.binary, "check", probe], capture_output=True, text=True)
        if c.returncode != 0:
            sys.exit("this binary rejects the fadeIn route (a build without the filter? "
                     "--only without runs the other half):\n" + c.stdout + c.stderr)

    # Fixed ports, the same in both runs and on every machine: endpoint addresses place the pods
    # on the ring, so each pod's slice of the catalogue is the same from run to run.
    ports = [args.base_port + i for i in range(5)]
    for p in ports + [args.base_port + 5, args.base_port + 6]:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", p))
            except OSError:
                sys.exit("port %d is taken: choose --base-port (pods use 7 ports from it)" % p)
    ids, cdf = catalogue(args.catalogue, args.skew, args.seed)
    total = args.rate * (args.warmup + args.seconds)
    keys = draw(ids, cdf, total, args.seed)
    own4 = ring_owners(args.binary, ports[:4], ids)
    own5 = ring_owners(args.binary, ports, ids)
    rank = {k: i for i, k in enumerate(ids)}
    prefill = {p: [] for p in ports}
    for k in reversed(ids):  # coldest first
        prefill[own4[k]].append(k)
    names = {p: "pod-%d" % (i + 1) for i, p in enumerate(ports)}
    new_pod = names[ports[4]]
    pod_cfg = {"cache": args.cache, "hit_ms": args.hit_ms, "miss_ms": args.miss_ms,
               "db_concurrency": args.db_concurrency,
               "pods": [{"name": names[p], "port": p, "prefill": prefill[p] if i < 4 else []}
                        for i, p in enumerate(ports)]}

    # Sizing check, offline: the same request stream over the same LRU sizes, without the proxy.
    w = [(sum(1 for k in ids if own4[k] == p), sum(1 for k in ids if own5[k] == p)) for p in ports]
    mass = [0.0] * 5
    prev = 0.0
    for i, k in enumerate(ids):
        pmass = cdf[i] - prev
        prev = cdf[i]
        mass[ports.index(own5[k])] += pmass
    moved_mass = mass[4]
    rnd = random.Random(args.seed + 2)
    sim_stream = keys[: min(len(keys), 200000)]
    sim_hash = lru_hit_rate(sim_stream, lambda k: own4[k], ports[:4], args.cache,
                            {p: prefill[p] for p in ports[:4]})
    sim_rand = lru_hit_rate(sim_stream, lambda k: ports[rnd.randrange(4)], ports[:4], args.cache,
                            {p: prefill[p] for p in ports[:4]})
    log("ids per pod on the 4-pod ring: %s; on the 5-pod ring: %s; cache %d per pod"
        % ([a for a, _ in w[:4]], [b for _, b in w], args.cache))
    log("request share of the ids pod 5 owns: %.1f%%; offline LRU hit rate, warm start: "
        "consistent hash %.1f%%, random spreading %.1f%%" % (moved_mass * 100, sim_hash * 100, sim_rand * 100))

    results = {}
    for name in runs:
        fade = args.fade if name == "with" else None
        records, events = run(args, name, fade, ports, pod_cfg, keys, tmp)
        rows = per_second(records, events, args, new_pod)
        write_csv(os.path.join(args.out, "%s.csv" % name), rows)
        if args.raw:
            with open(os.path.join(args.out, "%s-requests.csv" % name), "w") as f:
                f.write("due_s,latency_ms,status,backend,cache\n")
                for r in sorted(records):
                    f.write("%.4f,%.3f,%d,%s,%s\n" % (r[0], r[1] * 1000, r[2], r[3], r[4]))
        results[name] = (records, events, rows)
        log("[%s] route file renamed at +%.3f s, new table in force at +%s s; %d requests, %d errors"
            % (name, events.get("renamed", float("nan")),
               fmt(events.get("applied"), "%.3f"), len(records), sum(r[2] != 200 for r in records)))

    # Summary
    windows = [("before (last %d s with 4 pods)" % min(10, args.warmup), -min(10, args.warmup), 0)]
    for lo, hi in ((0, 10), (10, 30), (30, 60), (60, 120)):
        if lo < args.seconds:
            windows.append(("%d–%d s after" % (lo, min(hi, args.seconds)), lo, min(hi, args.seconds)))
    stats = {n: [window_stats(results[n][0], lo, hi, new_pod) for _, lo, hi in windows] for n in runs}
    lines = []
    commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    version = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    lines.append("# fadeIn experiment: scale 4 → 5 cache pods\n")
    lines.append("%s UTC, %s (%s), experiment script at commit %s, %d CPUs. "
                 "`python3 benches/fadein/experiment.py %s`\n"
                 % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M"), version, args.binary,
                    commit or "?", os.cpu_count(), " ".join(sys.argv[1:])))
    lines.append("Load: %d req/s open loop over %d ids, zipf(%g); %d s with pods 1–4, then %d s with "
                 "pods 1–5, `consistentHashBalanceFactor: %s`. Pods: LRU of %d ids, hit %g ms, miss %g ms "
                 "behind %d database slots. The 'with' run adds `fadeIn: {duration: %s, exponent: %s}`.\n"
                 % (args.rate, args.catalogue, args.skew, args.warmup, args.seconds, args.balance_factor,
                    args.cache, args.hit_ms, args.miss_ms, args.db_concurrency, args.fade, args.exponent))
    lines.append("Ring (`ringress ring`, same ports in both runs): ids per pod with 4 pods %s, with 5 pods %s; "
                 "the ids of pod 5's slice draw %.1f%% of the requests. Offline LRU check on the same "
                 "stream, 4 pods, warm caches: %.1f%% hits with consistent hashing, %.1f%% with "
                 "random spreading.\n"
                 % ("/".join(str(a) for a, _ in w[:4]), "/".join(str(b) for _, b in w),
                    moved_mass * 100, sim_hash * 100, sim_rand * 100))
    lines.append("| window | run | p50 ms | p99 ms | hit rate | pod 5 share | pod 5 hit rate "
                 "| bounded-load spills | errors |")
    lines.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for wi, (label, lo, hi) in enumerate(windows):
        for n in runs:
            st = stats[n][wi]
            sp = dict(results[n][1].get("spills", []))
            spills = (sp[hi] - sp[lo]) if (lo in sp and hi in sp) else None
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                label, n, fmt(st["p50"], "%.1f"), fmt(st["p99"], "%.1f"),
                fmt(st["hit"] and st["hit"] * 100, "%.1f%%"), fmt(st["new"] and st["new"] * 100, "%.1f%%"),
                fmt(st["new_hit"] and st["new_hit"] * 100, "%.1f%%") if lo >= 0 else "–",
                fmt(spills, "%d"), st["errors"]))
    lines.append("")
    for n in runs:
        ev = results[n][1]
        sp = ev.get("spills", [])
        tot = (sp[-1][1] - sp[0][1]) if len(sp) > 1 else None
        cpu = ev.get("cpu", {})
        lines.append("- %s: new route table in force %s s after the rename; bounded-load spills "
                     "during the run: %s; ringress warnings/errors logged: %d. CPU over the run, in "
                     "%% of one CPU: ringress %s, pods %s, load generator %s, all other processes %s."
                     % (n, fmt(ev.get("applied"), "%.2f"), fmt(tot, "%d"), ev.get("proxy_log_warnings", 0),
                        fmt(cpu.get("proxy"), "%.0f"), fmt(cpu.get("pods"), "%.0f"),
                        fmt(cpu.get("self"), "%.0f"), fmt(cpu.get("others"), "%.0f")))
    lines.append("\nPer-second series: %s. Plot: fadein.svg.\n"
                 % ", ".join("`%s.csv`" % n for n in runs))
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    colours = {"without": "#d62728", "with": "#1f77b4"}
    labels = {"without": "without fadeIn", "with": "with fadeIn %s" % args.fade}
    svg_plot(os.path.join(args.out, "fadein.svg"),
             [(labels[n], colours[n], results[n][2]) for n in runs], args, fade_s, moved_mass)
    log("wrote %s/{%s,results.md,fadein.svg}" % (args.out, ",".join("%s.csv" % n for n in runs)))


def parse_duration(s):
    total, pos = 0.0, 0
    for m in re.finditer(r"(\d+(?:\.\d+)?)(ms|s|m|h)", s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]
        pos = m.end()
    if pos != len(s) or not s:
        sys.exit("bad duration %r (e.g. 30s, 1m30s)" % s)
    return total


if __name__ == "__main__":
    try:
        main()
    finally:
        stop_all()
