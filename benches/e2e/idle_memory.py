#!/usr/bin/env python3
"""Memory per idle keep-alive connection, HAProxy, NGINX and ringress side by side, and peak
memory per request in flight. Run from a clone (apt-get install -y nginx-light haproxy wrk):

    python3 benches/e2e/idle_memory.py                                  # ~4 min with the defaults
    python3 benches/e2e/idle_memory.py --n 1000 --targets ringress --no-wrk --inflight 0  # quick
    python3 benches/e2e/idle_memory.py --tls     # the same over TLS (each proxy terminating it)

Setup: peers.py's (beside this file): four nginx backends serving a ~4 KB JSON on
127.0.0.1:19001-19004, each proxy on 127.0.0.1:18080 with one worker pinned to CPU 1; this
script, its client connections, wrk and the backends run on CPU 0. Only the connection limits of
peers.py's configurations are raised here (HAProxy's global maxconn 4000 and NGINX's
worker_connections 8192 are below the largest N), and RLIMIT_NOFILE as far as allowed; HAProxy
needs two descriptors per connection and will not start with a maxconn the descriptor limit cannot
cover, so its maxconn is capped by it (about 9,980 with a hard limit of 20,000). The output says
what was changed. NGINX allocates its per-connection structures for every worker_connections slot
at start; a measurement of that per slot (two fresh starts) is printed beside the table.

Idle connections, for each target and each N of --n (the proxy started afresh for each):
  1. warm it up (wrk, 1 s, --wrk-conns connections), then wrk alone for --wrk-seconds
     (req/s and p99 without idle connections), then read RSS "before": VmRSS summed over the
     proxy's process group (NGINX master + worker; HAProxy's process; ringress's process);
  2. open N connections, each from a source address of its own run (127.0.1.x, so the client's
     TIME_WAIT ports never collide between runs), each sending one GET /products/<i> and
     reading the whole response, then keep them open and idle; read RSS "idle";
     KiB per connection = (idle - before) / connections still open;
  3. wrk again for --wrk-seconds while the N connections are held (normal traffic unaffected?);
     then count how many of the N are still open (the proxy did not close them);
  4. close the N connections (FIN), wait 1 s, read RSS "after close".

With --tls, every proxy also listens with TLS on 127.0.0.1:18443 (tls_h2.py's address and its
self-signed ECDSA P-256 certificate, made with openssl), and the client connections (Python's ssl
module, ALPN http/1.1), wrk (https) and the in-flight part use it.

In flight (--inflight M, default 1000; 0 skips): each target started afresh against one slow
backend (a Python asyncio server this script starts on 127.0.0.1:19005 that answers
GET /products/<digits> at once and holds GET /products/s<digits> until released), so M requests
can be held in flight at once, each with its client connection and its upstream connection:
  RSS "base" after warm-up; RSS with M idle client connections (one request done each); then one
  slow request sent on each connection, RSS sampled every 0.1 s until the backend holds all M and
  for 1 s more: "peak"; per request in flight = (peak - idle) / M (what a request adds to an idle
  connection: its state, buffers and upstream connection); per busy connection = (peak - base) / M.
  Then the backend answers all, and RSS is read once the responses arrived and after closing.

Prints a markdown table and writes it (--out, default target/idle-memory/idle-memory-DATE-TIME.md;
the raw figures beside it as .json). Variants of ringress: --variant NAME='COMMAND' (repeatable;
default ringress-on='BINARY --fast-path on' and ringress-off='BINARY --fast-path off'); --routes,
--listen, --admin and --threads 1 are appended, as side_by_side.py does. The target "ringress"
in --targets stands for every variant.
"""
import argparse
import asyncio
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

import peers
import tls_h2

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SLOW_PORT = 19005
HOST, PORT = peers.LISTEN.rsplit(":", 1)
PORT = int(PORT)
# --tls: every proxy also terminates TLS here (tls_h2.py's address and certificate), and the
# client connections and wrk use it: {"addr", "crt", "key", "pem", "ctx"} once set up.
TLS = {}
OPEN_CONCURRENCY = 64


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------ /proc

def group_pids(pgid):
    return [pid for pid, _ in peers.group_stats(pgid)]


def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def group_kib(pgid, key="VmRSS"):
    """key (VmRSS, VmHWM) summed over the process group, KiB."""
    return sum(status_kib(p, key) for p in group_pids(pgid))


def settled_rss(pgid, wait=1.0):
    """RSS after `wait` seconds, median of three samples 0.2 s apart."""
    time.sleep(wait)
    xs = []
    for i in range(3):
        if i:
            time.sleep(0.2)
        xs.append(group_kib(pgid))
    return statistics.median(xs)


# ------------------------------------------------------------------ configurations

def patch(path, pattern, repl, what):
    with open(path) as f:
        text = f.read()
    text, n = re.subn(pattern, repl, text, flags=re.M)
    if n < 1:
        sys.exit("idle_memory.py: could not patch %s in %s (has peers.py changed?)" % (what, path))
    with open(path, "w") as f:
        f.write(text)
    return text


def haproxy(d, maxconn, slow=False):
    binds = (peers.LISTEN,)
    if TLS:
        binds += ("%s ssl crt %s alpn http/1.1" % (TLS["addr"], TLS["pem"]),)
    cmd = peers.haproxy_cmd(d, binds=binds)
    path = os.path.join(d, "haproxy.cfg")
    patch(path, r"^(\s*maxconn\s+)\d+", r"\g<1>%d" % maxconn, "maxconn")
    if slow:
        patch(path, r"(^\s*server b\d+ 127\.0\.0\.1:\d+\n?)+",
              "  server s1 127.0.0.1:%d\n" % SLOW_PORT, "the servers")
    return cmd


def nginx(d, conns, nofile, slow=False):
    if TLS:
        cmd = peers.nginx_cmd(d, listens=(peers.LISTEN, "%s ssl" % TLS["addr"]),
                              server_extra="ssl_certificate %s; ssl_certificate_key %s; "
                              "ssl_protocols TLSv1.2 TLSv1.3;" % (TLS["crt"], TLS["key"]))
    else:
        cmd = peers.nginx_cmd(d)
    path = os.path.join(d, "proxy.conf")
    patch(path, r"worker_connections\s+\d+;", "worker_connections %d;" % conns,
          "worker_connections")
    patch(path, r"worker_processes 1;", "worker_processes 1; worker_rlimit_nofile %d;"
          % nofile, "worker_processes")
    if slow:
        patch(path, r"(^\s*server 127\.0\.0\.1:\d+;\n?)+",
              "    server 127.0.0.1:%d;\n" % SLOW_PORT, "the servers")
    return cmd


def ringress(d, template, slow=False):
    path = os.path.join(d, "routes.yaml")
    with open(path, "w") as f:
        f.write(peers.products_routes([SLOW_PORT]) if slow else peers.ROUTES)
    cmd = (template + " --routes {routes} --listen {listen} --admin {admin} --threads 1")
    if TLS:
        cmd += " --tls-listen %s --tls-cert %s --tls-key %s" % (TLS["addr"], TLS["crt"], TLS["key"])
    cmd = cmd.replace("{routes}", path).replace("{listen}", peers.LISTEN)
    cmd = cmd.replace("{admin}", "127.0.0.1:%d" % free_port())  # not peers.ADMIN: may be taken
    return ["sh", "-c", "exec " + cmd]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def maker(target, variants, d, limits, slow):
    sub = os.path.join(d, ("slow-" if slow else "") + target)
    os.makedirs(sub, exist_ok=True)
    os.chmod(sub, 0o755)
    if target == "haproxy":
        return haproxy(sub, limits["haproxy"], slow)
    if target == "nginx":
        return nginx(sub, limits["nginx"], limits["nofile"], slow)
    return ringress(sub, variants[target], slow)


# ------------------------------------------------------------------ client

REQ = ("GET %s HTTP/1.1\r\nHost: idle-memory\r\nUser-Agent: idle_memory.py\r\n"
       "Accept: */*\r\n\r\n")


async def read_response(r):
    head = await r.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await r.readuntil(b"\r\n")).split(b";")[0], 16)
            await r.readexactly(size + 2)
            if size == 0:
                break
    else:
        await r.readexactly(length)
    return status


def open_client(src):
    """A client connection to the proxy (over TLS with --tls) from source address src."""
    if TLS:
        host, port = TLS["addr"].rsplit(":", 1)
        return asyncio.open_connection(host, int(port), ssl=TLS["ctx"], local_addr=(src, 0))
    return asyncio.open_connection(HOST, PORT, local_addr=(src, 0))


async def request(r, w, path):
    w.write((REQ % path).encode())
    return await read_response(r)


class Client:
    """Connections held open on a persistent event loop (idle while the loop is not running)."""

    def __init__(self, src):
        self.loop = asyncio.new_event_loop()
        self.src = src
        self.conns = []
        self.errors = {}

    def run(self, coro, timeout=None):
        return self.loop.run_until_complete(asyncio.wait_for(coro, timeout))

    async def _open_one(self, i, sem):
        async with sem:
            try:
                r, w = await asyncio.wait_for(
                    open_client(self.src), 10)
                status = await asyncio.wait_for(request(r, w, "/products/%d" % i), 10)
                if status != 200:
                    raise RuntimeError("status %d" % status)
                self.conns.append((r, w))
            except Exception as e:  # noqa: BLE001 (any failure counts; the kind is reported)
                k = type(e).__name__ + (": " + str(e) if str(e) else "")
                self.errors[k[:80]] = self.errors.get(k[:80], 0) + 1

    def open(self, n, first_id=1):
        async def all_of_them():
            sem = asyncio.Semaphore(OPEN_CONCURRENCY)
            await asyncio.gather(*[self._open_one(first_id + i, sem) for i in range(n)])
        t0 = time.time()
        self.run(all_of_them())
        return time.time() - t0

    def alive(self):
        """Connections the proxy has not closed (no EOF, no error), after handling events."""
        self.run(asyncio.sleep(0.3))
        return sum(1 for r, w in self.conns
                   if not r.at_eof() and r.exception() is None and not w.transport.is_closing())

    def close(self):
        for _, w in self.conns:
            w.close()
        self.run(asyncio.sleep(0.2))
        self.conns = []
        self.loop.close()


_src = [0]


def next_source():
    """A loopback source address of its own per run: 127.0.1.1, 127.0.1.2, ..."""
    _src[0] += 1
    return "127.0.%d.%d" % (1 + _src[0] // 250, 1 + _src[0] % 250)


# ------------------------------------------------------------------ slow backend

def serve_slow(port):
    body = peers.body().encode()
    state = {"pending": 0, "release": None}

    async def handle(r, w):
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path == "/_pending":
                    out = str(state["pending"]).encode()
                elif path == "/_release":
                    state["release"].set()
                    state["release"] = asyncio.Event()
                    out = b"released"
                else:
                    if path.startswith("/products/s"):
                        state["pending"] += 1
                        ev = state["release"]
                        try:
                            await asyncio.wait_for(ev.wait(), 25)
                        except asyncio.TimeoutError:
                            pass
                        state["pending"] -= 1
                    out = body
                w.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n" % len(out) + out)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            w.close()

    async def main():
        state["release"] = asyncio.Event()
        srv = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096,
                                         reuse_address=True)
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def backend_get(path):
    with socket.create_connection(("127.0.0.1", SLOW_PORT), timeout=5) as s:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += s.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < n:
            rest += s.recv(4096)
        return rest.decode()


# ------------------------------------------------------------------ measurements

def wrk(seconds, conns):
    try:
        url = "https://" + TLS["addr"] if TLS else "http://" + peers.LISTEN
        return peers.run_wrk(url, seconds, conns, False)
    except SystemExit as e:  # run_wrk exits when wrk printed no summary
        log(str(e))
        return None
    except subprocess.TimeoutExpired:
        return None


def start_target(cmd, logf):
    """The proxy listening on peers.LISTEN, or the tail of its log (a str) if it did not."""
    if peers.wait_port(peers.LISTEN, timeout=0.3):
        return "%s is taken by another process" % peers.LISTEN
    logf.flush()
    at = logf.tell()
    proc = peers.start(cmd, 1, logf)
    if not all(peers.wait_port(addr) for addr in [peers.LISTEN] + ([TLS["addr"]] if TLS else [])):
        peers.stop(proc)
        logf.flush()
        with open(logf.name) as f:
            f.seek(at)
            tail = " / ".join(f.read().strip().splitlines()[-3:])
        return "did not listen: " + tail[-300:]
    return proc


def stop_target(proc):
    peers.stop(proc)
    peers.wait_closed(peers.LISTEN)


def idle_run(a, target, cmd, n, logf):
    res = {"target": target, "n": n}
    proc = start_target(cmd, logf)
    if isinstance(proc, str):
        res["error"] = proc
        log("%s: %s" % (target, proc))
        return res
    try:
        pg = proc.pid
        res["rss_start"] = group_kib(pg)
        if not a.no_wrk:
            wrk(1, a.wrk_conns)  # warm-up
            res["wrk_alone"] = wrk(a.wrk_seconds, a.wrk_conns)
        else:
            warm = Client(next_source())
            warm.open(100)
            warm.close()
        res["rss_before"] = settled_rss(pg)
        client = Client(next_source())
        res["open_seconds"] = client.open(n)
        res["opened"] = len(client.conns)
        res["open_errors"] = client.errors
        res["rss_idle"] = settled_rss(pg)
        res["alive_idle"] = client.alive()
        if res["alive_idle"]:
            res["kib_per_conn"] = (res["rss_idle"] - res["rss_before"]) / res["alive_idle"]
        if not a.no_wrk:
            res["wrk_idle"] = wrk(a.wrk_seconds, a.wrk_conns)
            res["rss_idle_after_wrk"] = group_kib(pg)
        res["alive_end"] = client.alive()
        client.close()
        res["rss_after_close"] = settled_rss(pg)
        res["hwm"] = group_kib(pg, "VmHWM")
    finally:
        if proc.poll() is not None:
            res["exited"] = "the proxy exited (status %s) during the run" % proc.returncode
        stop_target(proc)
    return res


def inflight_run(a, target, cmd, m, logf):
    res = {"target": target, "m": m}
    proc = start_target(cmd, logf)
    if isinstance(proc, str):
        res["error"] = proc
        log("%s: %s" % (target, proc))
        return res
    try:
        pg = proc.pid
        warm = Client(next_source())
        warm.open(100)
        warm.close()
        res["rss_base"] = settled_rss(pg)
        client = Client(next_source())
        client.open(m)
        res["opened"] = len(client.conns)
        res["open_errors"] = client.errors
        res["rss_idle"] = settled_rss(pg)

        async def hold():
            tasks = [asyncio.ensure_future(request(r, w, "/products/s%d" % i))
                     for i, (r, w) in enumerate(client.conns)]
            peak, held, t_end = 0, 0, time.time() + 20
            while time.time() < t_end:
                peak = max(peak, group_kib(pg))
                held = int(backend_get("/_pending"))
                if held >= len(client.conns):
                    break
                await asyncio.sleep(0.1)
            samples = []
            for _ in range(10):
                await asyncio.sleep(0.1)
                samples.append(group_kib(pg))
            res["held"] = int(backend_get("/_pending"))
            res["rss_peak"] = max([peak] + samples)
            res["rss_held"] = statistics.median(samples)
            backend_get("/_release")
            done = await asyncio.gather(*[asyncio.wait_for(t, 30) for t in tasks],
                                        return_exceptions=True)
            res["answered"] = sum(1 for x in done if x == 200)

        client.run(hold(), 60)
        if res["held"]:
            res["kib_per_inflight"] = (res["rss_peak"] - res["rss_idle"]) / res["held"]
            res["kib_per_busy_conn"] = (res["rss_peak"] - res["rss_base"]) / res["held"]
        res["rss_answered"] = settled_rss(pg)
        client.close()
        res["rss_after_close"] = settled_rss(pg)
        res["hwm"] = group_kib(pg, "VmHWM")
    finally:
        if proc.poll() is not None:
            res["exited"] = "the proxy exited (status %s) during the run" % proc.returncode
        stop_target(proc)
    return res


# ------------------------------------------------------------------ report

def nginx_slots(d, limit, nofile):
    """NGINX allocates and touches its connection and event arrays for all worker_connections
    when the worker starts, so that part of its per-connection memory is in "RSS before":
    measure it from two fresh starts (1024 and `limit` slots), no traffic."""
    os.chmod(d, 0o755)
    rss = []
    with open(os.path.join(d, "log"), "w") as logf:
        for slots in (1024, limit):
            sub = os.path.join(d, str(slots))
            os.makedirs(sub)
            os.chmod(sub, 0o755)
            proc = start_target(nginx(sub, slots, nofile), logf)
            if isinstance(proc, str):
                return "NGINX per worker_connections slot: not measured (%s)" % proc
            time.sleep(0.5)
            rss.append(group_kib(proc.pid))
            stop_target(proc)
    per = (rss[1] - rss[0]) / (limit - 1024)
    return ("NGINX allocates its connection and event structures for every worker_connections slot "
            "when it starts: %.2f KiB per slot (fresh RSS %.1f MiB with 1024 slots, %.1f MiB with "
            "%d), which is in \"RSS before\", not in KiB/conn; its whole cost per connection is "
            "KiB/conn + %.2f" % (per, rss[0] / 1024, rss[1] / 1024, limit, per))


def mib(k):
    return "–" if k is None else "%.1f" % (k / 1024)


def fmt(x, spec):
    return "–" if x is None else spec % x


def machine():
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return "%s, %d CPUs, Linux %s" % (model, os.cpu_count(), platform.release())


def version(cmd):
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout + out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def marginal(idle):
    """What one more idle connection costs, between the smallest and the largest N of each
    target: fixed costs cancel (what opening the connections 64 at a time leaves behind, such
    as pooled upstream connections), and so does most of the allocator's granularity (RSS can
    grow in 2 MiB steps: 2 KiB per connection at N = 1,000)."""
    rows = []
    for target in dict.fromkeys(r["target"] for r in idle):
        ok = [r for r in idle if r["target"] == target and "error" not in r
              and r.get("alive_idle")]
        if len(ok) < 2:
            continue
        lo, hi = min(ok, key=lambda r: r["n"]), max(ok, key=lambda r: r["n"])
        grew = (hi["rss_idle"] - hi["rss_before"]) - (lo["rss_idle"] - lo["rss_before"])
        rows.append("| %s | %d → %d | %.2f |" % (target, lo["alive_idle"], hi["alive_idle"],
                                                grew / (hi["alive_idle"] - lo["alive_idle"])))
    if not rows:
        return []
    return ["", "Marginal cost: (ΔRSS at the largest N − ΔRSS at the smallest) / (difference "
            "in connections), KiB per idle connection.", "",
            "| target | N | KiB per additional idle connection |", "| --- | --- | ---: |"] + rows


def markdown(a, argv, variants, notes, idle, inflight, binary_info):
    lines = [
        "# Memory per idle keep-alive connection%s: HAProxy, NGINX, ringress"
        % (" over TLS" if TLS else ""),
        "",
        "- command: `%s`" % argv,
        "- date: %s" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "- machine: %s" % machine(),
        "- %s; %s; ringress binary %s" % (version(["haproxy", "-v"]), version(["nginx", "-v"]),
                                          binary_info),
        "- variants: " + "; ".join("`%s` = `%s`" % (k, v) for k, v in variants.items()),
        "- each proxy: one worker pinned to CPU 1 (peers.py); client, wrk and backends on CPU 0",
    ] + ["- " + n for n in notes] + [
        "",
        "RSS: VmRSS summed over the proxy's processes (NGINX: master + worker), MiB; user space "
        "only (the kernel's socket memory is not in it). KiB/conn = "
        "(RSS with N idle − RSS before) / connections still open. Each connection sent one "
        "GET /products/<i> and read the response before going idle. wrk: %s; \"alone\" before the "
        "idle connections were opened, \"idle\" while they were held." % (
            "off" if a.no_wrk else "%d s, %d connections, GET /products/<random id>"
            % (a.wrk_seconds, a.wrk_conns)),
        "",
        "| target | N | open / still open | RSS before | RSS with N idle | KiB/conn "
        "| RSS after close | req/s alone | req/s with N idle | p99 ms alone | p99 ms with N idle |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in idle:
        if "error" in r:
            lines.append("| %s | %d | %s |  |  |  |  |  |  |  |  |" % (r["target"], r["n"], r["error"].replace("|", "/")))
            continue
        wa, wi = r.get("wrk_alone"), r.get("wrk_idle")
        lines.append("| %s | %d | %d / %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            r["target"], r["n"], r["opened"], r["alive_end"], mib(r["rss_before"]),
            mib(r["rss_idle"]), fmt(r.get("kib_per_conn"), "%.2f"), mib(r["rss_after_close"]),
            fmt(wa and wa["rps"], "%.0f"), fmt(wi and wi["rps"], "%.0f"),
            fmt(wa["p99_ms"] if wa and wa["rps"] else None, "%.2f"),
            fmt(wi["p99_ms"] if wi and wi["rps"] else None, "%.2f")))
    lines += marginal(idle)
    errs = ["%s N=%d: %s" % (r["target"], r["n"], r["open_errors"]) for r in idle
            if r.get("open_errors")]
    errs += ["%s N=%d: wrk errors alone %d, with idle %d" % (
        r["target"], r["n"], (r.get("wrk_alone") or {}).get("errors", 0),
        (r.get("wrk_idle") or {}).get("errors", 0)) for r in idle
        if (r.get("wrk_alone") or {}).get("errors") or (r.get("wrk_idle") or {}).get("errors")]
    errs += ["%s N=%d: wrk got no response %s" % (r["target"], r["n"], w) for r in idle
             for k, w in (("wrk_alone", "alone"), ("wrk_idle", "with the idle connections held"))
             if not a.no_wrk and "error" not in r and not (r.get(k) or {}).get("rps")]
    errs += ["%s%s: %s" % (r["target"], " M=%d" % r["m"] if "m" in r else " N=%d" % r["n"],
                           r["exited"]) for r in idle + inflight if r.get("exited")]
    errs += ["%s M=%d: %s" % (r["target"], r["m"], r["open_errors"]) for r in inflight
             if r.get("open_errors")]
    if errs:
        lines += ["", "Failures: " + "; ".join(errs)]
    if inflight:
        lines += [
            "",
            "## Requests in flight",
            "",
            "M client connections each with one request held by the slow backend on "
            "127.0.0.1:%d (a request in flight also holds an upstream connection). Per request "
            "in flight = (peak RSS − RSS with M idle connections) / requests held; per busy "
            "connection = (peak RSS − RSS base) / requests held." % SLOW_PORT,
            "",
            "| target | M | held / answered | RSS base | RSS with M idle | peak RSS, M in flight "
            "| KiB per request in flight | KiB per busy connection | RSS after answers "
            "| RSS after close |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for r in inflight:
            if "error" in r:
                lines.append("| %s | %d | %s |  |  |  |  |  |  |  |" % (r["target"], r["m"], r["error"].replace("|", "/")))
                continue
            lines.append("| %s | %d | %d / %d | %s | %s | %s | %s | %s | %s | %s |" % (
                r["target"], r["m"], r.get("held", 0), r.get("answered", 0), mib(r["rss_base"]),
                mib(r["rss_idle"]), mib(r.get("rss_peak")), fmt(r.get("kib_per_inflight"), "%.2f"),
                fmt(r.get("kib_per_busy_conn"), "%.2f"), mib(r.get("rss_answered")),
                mib(r.get("rss_after_close"))))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main

def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--serve-slow":
        serve_slow(int(sys.argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", default="1000,3000,10000", help="idle connection counts")
    ap.add_argument("--targets", default="haproxy,nginx,ringress",
                    help="haproxy, nginx, ringress (all variants) or variant names")
    ap.add_argument("--binary", default=os.path.join(REPO, "target", "release", "ringress"))
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=COMMAND",
                    help="a ringress command (repeatable; default ringress-on='BINARY "
                         "--fast-path on', ringress-off='BINARY --fast-path off')")
    ap.add_argument("--no-wrk", action="store_true", help="skip the wrk runs")
    ap.add_argument("--wrk-seconds", type=int, default=4)
    ap.add_argument("--wrk-conns", type=int, default=16)
    ap.add_argument("--inflight", type=int, default=1000,
                    help="requests held in flight at once (0: skip that part)")
    ap.add_argument("--tls", action="store_true",
                    help="client connections and wrk over TLS (each proxy terminating it with "
                         "the same certificate); the in-flight part too")
    ap.add_argument("--out", help="markdown file (default target/idle-memory/"
                                  "idle-memory-DATE-TIME.md; the figures beside it as .json)")
    a = ap.parse_args()
    try:
        ns = [int(x) for x in a.n.split(",") if x]
    except ValueError:
        sys.exit("idle_memory.py: --n wants comma-separated counts, e.g. 1000,3000,10000")
    if not ns or min(ns) < 1 or a.inflight < 0:
        sys.exit("idle_memory.py: --n wants positive counts, --inflight >= 0")
    variants = {}
    for v in a.variant or ["ringress-on=%s --fast-path on" % a.binary,
                           "ringress-off=%s --fast-path off" % a.binary]:
        name, _, cmd = v.partition("=")
        if not name or not cmd.strip() or name in ("haproxy", "nginx", "ringress") or name in variants:
            sys.exit("idle_memory.py: --variant wants NAME=COMMAND with a new NAME other than "
                     "haproxy, nginx and ringress: %r" % v)
        variants[name] = cmd
    targets = []
    for t in a.targets.split(","):
        if t == "ringress":
            targets += list(variants)
        elif t in ("haproxy", "nginx") or t in variants:
            targets.append(t)
        elif t:
            sys.exit("idle_memory.py: unknown target %r (haproxy, nginx, ringress, %s)"
                     % (t, ", ".join(variants)))
    tools = ["nginx", "taskset"] + (["haproxy"] if "haproxy" in targets else [])
    tools += [] if a.no_wrk else ["wrk"]
    for tool in tools:
        if not shutil.which(tool):
            sys.exit("idle_memory.py: %s is not on PATH (apt-get install -y nginx-light haproxy "
                     "wrk)" % tool)
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("idle_memory.py: needs CPUs 0 and 1 (client and backends on 0, the proxy on 1)")
    os.sched_setaffinity(0, {0})  # the client runs on CPU 0 with wrk and the backends
    busy = [addr for addr in [peers.LISTEN, tls_h2.TLS] + ["127.0.0.1:%d" % p for p in peers.PORTS + [SLOW_PORT]]
            if peers.wait_port(addr, timeout=0.1)]
    if busy:
        sys.exit("idle_memory.py: %s already in use (another bench running?)" % ", ".join(busy))

    biggest = max(ns + [a.inflight])
    # Connection limits: N idle + wrk + warm-up + upstream connections + slack. HAProxy wants
    # two descriptors per connection (maxsock = 2 * maxconn + 14 here) and exits at start when
    # RLIMIT_NOFILE is below that, so its maxconn is capped by the limit this process may set.
    limit = biggest + 1024
    nofile = raise_nofile(2 * limit + 64)
    limits = {"nginx": limit, "haproxy": min(limit, (nofile - 32) // 2), "nofile": nofile}
    notes = ["changed from peers.py's configurations: HAProxy global maxconn 4000 -> %d, "
             "NGINX worker_connections 8192 -> %d (and worker_rlimit_nofile %d); "
             "RLIMIT_NOFILE %d for every process"
             % (limits["haproxy"], limit, nofile, nofile)]
    if limits["haproxy"] < limit:
        notes.append("HAProxy's maxconn is capped at %d because RLIMIT_NOFILE cannot go above %d "
                     "here (HAProxy reserves two descriptors per connection): it does not accept "
                     "connections beyond that, so N above about %d is not all open, and wrk "
                     "competes for the free slots" % (limits["haproxy"], nofile,
                                                        limits["haproxy"] - 20))
    if "nginx" in targets:
        notes.append(nginx_slots(d_probe := tempfile.mkdtemp(prefix="ringress-idle-memory-"),
                                 limit, nofile))
        shutil.rmtree(d_probe, ignore_errors=True)
    binary_info = a.binary
    if os.path.exists(a.binary):
        binary_info = "`%s` (modified %s)" % (a.binary, datetime.datetime.fromtimestamp(
            os.path.getmtime(a.binary), datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"))
    elif any(t in variants for t in targets):
        log("idle_memory.py: warning: %s does not exist" % a.binary)

    out = a.out or os.path.join(REPO, "target", "idle-memory", "idle-memory-%s.md"
                                % datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)

    d = tempfile.mkdtemp(prefix="ringress-idle-memory-")
    os.chmod(d, 0o755)  # nginx workers may run as an unprivileged user
    if a.tls:
        crt, key, pem = tls_h2.make_cert(d)
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        TLS.update(addr=tls_h2.TLS, crt=crt, key=key, pem=pem, ctx=ctx)
        notes.append("over TLS on %s: one self-signed ECDSA P-256 certificate for all three "
                     "(tls_h2.py's); the client is Python's ssl module with its defaults (TLS "
                     "1.3), ALPN http/1.1; wrk over https" % tls_h2.TLS)
    logf = open(os.path.join(d, "procs.log"), "w")  # noqa: SIM115 (lives until the end)
    idle, inflight = [], []
    backends = peers.start(peers.write_backends(d), 0, logf)
    slow = None
    try:
        if not all(peers.wait_port("127.0.0.1:%d" % p) for p in peers.PORTS):
            sys.exit("idle_memory.py: backends did not start; see %s" % d)
        for t in targets:
            for n in ns:
                r = idle_run(a, t, maker(t, variants, d, limits, False), n, logf)
                idle.append(r)
                wa, wi = r.get("wrk_alone") or {}, r.get("wrk_idle") or {}
                log("%-12s N=%-6d opened %s (errors %s) in %.1fs, still open %s: RSS before %s, "
                    "idle %s, after close %s MiB; %s KiB/conn; wrk %s -> %s req/s, p99 %s -> %s ms"
                    % (t, n, r.get("opened"), r.get("open_errors") or 0, r.get("open_seconds", 0),
                       r.get("alive_end"), mib(r.get("rss_before")), mib(r.get("rss_idle")),
                       mib(r.get("rss_after_close")), fmt(r.get("kib_per_conn"), "%.2f"),
                       fmt(wa.get("rps"), "%.0f"), fmt(wi.get("rps"), "%.0f"),
                       fmt(wa.get("p99_ms"), "%.2f"), fmt(wi.get("p99_ms"), "%.2f")))
        if a.inflight:
            slow = peers.start([sys.executable, os.path.abspath(__file__), "--serve-slow",
                                str(SLOW_PORT)], 0, logf)
            if not peers.wait_port("127.0.0.1:%d" % SLOW_PORT):
                sys.exit("idle_memory.py: the slow backend did not start; see %s" % d)
            for t in targets:
                r = inflight_run(a, t, maker(t, variants, d, limits, True), a.inflight, logf)
                inflight.append(r)
                log("%-12s M=%-6d in flight: held %s answered %s: RSS base %s, idle %s, peak %s "
                    "MiB; %s KiB per request in flight, %s per busy connection"
                    % (t, a.inflight, r.get("held"), r.get("answered"), mib(r.get("rss_base")),
                       mib(r.get("rss_idle")), mib(r.get("rss_peak")),
                       fmt(r.get("kib_per_inflight"), "%.2f"),
                       fmt(r.get("kib_per_busy_conn"), "%.2f")))
    finally:
        peers.stop(slow)
        peers.stop(backends)
        logf.close()
    argv = "python3 " + shlex.join([os.path.relpath(sys.argv[0])] + sys.argv[1:])
    md = markdown(a, argv, variants, notes, idle, inflight, binary_info)
    with open(out, "w") as f:
        f.write(md)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"variants": variants, "notes": notes, "idle": idle, "inflight": inflight},
                  f, indent=1)
    print(md)
    shutil.rmtree(d, ignore_errors=True)
    log("idle_memory.py: wrote %s (and .json)" % out)


if __name__ == "__main__":
    main()
