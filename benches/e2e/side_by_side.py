#!/usr/bin/env python3
"""HAProxy, NGINX and ringress (one or several variants) side by side on the same keyed traffic,
each proxy alone on one core, in several shapes of load. Writes a markdown table and two SVG plots:
CPU per request, p50/p99/p99.9 latency and ratios against HAProxy from the same rounds (plot.svg),
and p99 against connections over the plain closed-loop shapes (p99.svg).

Run from a clone (needs apt-get install -y nginx-light haproxy wrk, and python3):

    python3 benches/e2e/side_by_side.py
    python3 benches/e2e/side_by_side.py \\
        --variant on='target/release/ringress --fast-path on' \\
        --variant off='target/release/ringress --fast-path off'
    python3 benches/e2e/side_by_side.py --seconds 2 --rounds 1 --warmup 1    # a smoke run

Setup (peers.py, beside this file): four nginx backends serve a ~4 KB product JSON; each proxy
hashes /products/<id> onto them with bounded load. Each proxy runs with one worker pinned to CPU 1;
the load generator and the backends share CPU 0. With --threads 2, each proxy runs two workers
(HAProxy nbthread 2, NGINX worker_processes 2, ringress --threads 2) on both CPUs, sharing CPU 0
with the load generator and the backends. Every measurement starts its proxy afresh, warms
it up, then measures; the order of the targets rotates from round to round, and each figure is
the median over rounds (ratios: the median of the per-round ratios, so drift of the host between
rounds cancels out).

Shapes (--shapes, comma-separated):
  cN          closed loop, N connections (wrk: a connection sends its next request when the
              previous response arrived)
  cN+thinkMS  ... and waits MS milliseconds between a response and its next request
  rN          open loop at N requests/s (open-loop, from the benches crate: requests are due on a
              fixed schedule over --open-conns connections, latency counts from the due time,
              so a stall is charged to every request it delays, as wrk2 does)
  rP%         open loop at P% of HAProxy's maximum rate on this host now, measured before the
              rounds with the open-loop generator (the rate HAProxy kept up with when offered
              1.3x the best of wrk closed loops at 64 and 256 connections)
  +zipf       on any shape: hot keys (ids drawn heavily skewed) instead of uniform ids

With --direct SHAPES (default c1,c16+think5, the low-load shapes), each round of those shapes also
runs the same load straight at one backend, and a second table gives the latency each proxy adds
per hop: its p50 and p99 minus the direct ones from the same round.

Before measuring it builds target/release/ringress and open-loop (cargo build --release; skip with
--no-build). Variants are NAME=COMMAND; --routes, --listen, --admin and --threads N are appended.
"""
import argparse
import contextlib
import datetime
import html
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile

import peers

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
# Issue 24's shapes: closed loops from 1 to 256 connections, with think time, hot keys, and open
# loops at half and 90% of HAProxy's maximum rate on this host.
DEFAULT_SHAPES = "c1,c8,c64,c256,c16+think5,c64+think5,c64+zipf,r50%,r90%"
PEERS = ("haproxy", "nginx")
# Low-load shapes, where the latency a hop adds is the proxy's own and not queueing.
DEFAULT_DIRECT = "c1,c16+think5"
DIRECT = "127.0.0.1:%d" % peers.PORTS[0]
COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"]


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target")


def parse_shape(spec):
    """cN[+thinkMS][+zipf] or rN[+zipf] -> dict; exits with the grammar on anything else."""
    shape = {"name": spec, "conns": None, "rate": None, "rate_pct": None, "think_ms": 0,
             "zipf": False}
    parts = spec.split("+")
    head, mods = parts[0], parts[1:]
    try:
        if head.startswith("c"):
            shape["conns"] = int(head[1:])
        elif head.startswith("r") and head.endswith("%"):
            shape["rate_pct"] = int(head[1:-1])
            if not 0 < shape["rate_pct"] <= 200:
                raise ValueError
        elif head.startswith("r"):
            shape["rate"] = int(head[1:])
        else:
            raise ValueError
        for m in mods:
            if m == "zipf":
                shape["zipf"] = True
            elif m.startswith("think") and shape["conns"]:
                shape["think_ms"] = int(m[len("think"):])
            else:
                raise ValueError
    except ValueError:
        sys.exit("side_by_side.py: bad shape %r: want cN, cN+thinkMS, rN, rP%%, each optionally "
                 "+zipf (e.g. c64, c64+think5, r10000+zipf, r90%%)" % spec)
    if (shape["conns"] or shape["rate"] or shape["rate_pct"] or 0) <= 0:
        sys.exit("side_by_side.py: bad shape %r: N must be positive" % spec)
    return shape


def describe(shape, open_conns):
    if shape["rate"]:
        text = "open loop, %d req/s%s over %d connections" % (
            shape["rate"], " (%d%% of HAProxy's maximum)" % shape["rate_pct"]
            if shape["rate_pct"] else "", open_conns)
    else:
        text = "closed loop, %d connection%s" % (shape["conns"], "" if shape["conns"] == 1 else "s")
        if shape["think_ms"]:
            text += ", %d ms think time" % shape["think_ms"]
    return text + (", hot keys" if shape["zipf"] else "")


def parse_variants(specs):
    if not specs:
        specs = ["ringress=" + os.path.join(target_dir(), "release", "ringress")]
    variants = {}
    for v in specs:
        name, _, cmd = v.partition("=")
        if not name or not cmd.strip() or name in PEERS or name in variants:
            sys.exit("side_by_side.py: --variant wants NAME=COMMAND with a new NAME other than "
                     "haproxy and nginx: %r" % v)
        variants[name] = cmd
    return variants


def build():
    cmd = ["cargo", "build", "--release", "--locked", "-p", "ringress", "--bin", "ringress",
           "-p", "ringress-benches", "--bin", "open-loop"]
    print("side_by_side.py: " + " ".join(cmd), file=sys.stderr, flush=True)
    if subprocess.run(cmd, cwd=REPO).returncode != 0:
        sys.exit("side_by_side.py: the build failed")


def run_open_loop(shape, seconds, open_conns, addr):
    cmd = ["taskset", "-c", "0", os.path.join(target_dir(), "release", "open-loop"),
           "--url", "http://" + addr, "--rate", str(shape["rate"]),
           "--seconds", str(seconds), "--conns", str(open_conns)]
    if shape["zipf"]:
        cmd.append("--zipf")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        sys.exit("side_by_side.py: open-loop failed: " + out.stderr.strip())
    r = json.loads(out.stdout)
    return {"rps": r["rps"], "kept_up_rps": r["kept_up_rps"], "requests": r["requests"],
            "p50_ms": r["p50_ms"],
            "p99_ms": r["p99_ms"], "p999_ms": r["p999_ms"],
            "errors": r["errors"] + r["unfinished"]}


def load(shape, seconds, open_conns, addr=peers.LISTEN):
    """One run of the shape's load at addr; the dict has requests completed."""
    if shape["rate"]:
        return run_open_loop(shape, seconds, open_conns, addr)
    res = peers.run_wrk("http://" + addr, seconds, shape["conns"], shape["zipf"],
                        shape["think_ms"])
    res["requests"] = res["rps"] * seconds
    return res


def with_threads(d, conf, cmd, one, many):
    """The peer's configuration (written by peers.py) with its worker count set."""
    if one != many:
        path = os.path.join(d, conf)
        with open(path) as f:
            text = f.read()
        if one not in text:
            sys.exit("side_by_side.py: %r not in %s (has peers.py changed?)" % (one, path))
        with open(path, "w") as f:
            f.write(text.replace(one, many))
    return cmd


@contextlib.contextmanager
def proxy_running(name, cmd, proxy_cpus, logf):
    """The proxy started on proxy_cpus and listening on peers.LISTEN; stopped, with its port
    closed, on the way out."""
    proc = peers.start(cmd, proxy_cpus, logf)
    try:
        if not peers.wait_port(peers.LISTEN):
            sys.exit("side_by_side.py: %s did not listen on %s; see %s" % (name, peers.LISTEN,
                                                                           logf.name))
        yield proc
    finally:
        peers.stop(proc)
        peers.wait_closed(peers.LISTEN)


def calibrate(shapes, a, makers, proxy_cpus, logf):
    """HAProxy's maximum rate on this host now, as the open-loop generator drives it (it costs
    the load's core more per request than wrk): the rate HAProxy kept up with when offered 1.3x
    the best of wrk closed loops at 64 and 256 connections. Sets the rate of every rP% shape from
    it; returns (the open-loop maximum, wrk's best)."""
    best = 0
    with proxy_running("haproxy", makers["haproxy"](), proxy_cpus, logf):
        peers.run_wrk("http://" + peers.LISTEN, max(1, a.warmup), 64, False)
        for conns in (64, 256):
            best = max(best, peers.run_wrk("http://" + peers.LISTEN, a.seconds, conns, False)["rps"])
        over = {"rate": int(best * 1.3), "zipf": False}
        top = run_open_loop(over, a.seconds, a.open_conns, peers.LISTEN)["kept_up_rps"]
    for s in shapes:
        if s["rate_pct"]:
            s["rate"] = int(round(top * s["rate_pct"] / 100.0, -2))
    print("side_by_side.py: HAProxy's maximum here now: %.0f req/s open loop (wrk closed loop: "
          "%.0f); open-loop rates: %s" % (top, best, ", ".join(
              "%s = %d" % (s["name"], s["rate"]) for s in shapes if s["rate_pct"])),
          file=sys.stderr, flush=True)
    return top, best


def measure_all(a, shapes, variants):
    d = tempfile.mkdtemp(prefix="ringress-side-by-side-")
    os.chmod(d, 0o755)  # nginx workers may run as an unprivileged user
    logf = open(os.path.join(d, "procs.log"), "w")  # noqa: SIM115 (lives until the end)
    makers = {"haproxy": lambda: with_threads(d, "haproxy.cfg", peers.haproxy_cmd(d),
                                              "nbthread 1", "nbthread %d" % a.threads),
              "nginx": lambda: with_threads(d, "proxy.conf", peers.nginx_cmd(d),
                                            "worker_processes 1", "worker_processes %d" % a.threads)}
    for name, cmd in variants.items():
        full = cmd + " --routes {routes} --listen {listen} --admin {admin} --threads %d" % a.threads
        makers[name] = lambda full=full: peers.ours_cmd(d, full)
    proxy_cpus = "1" if a.threads == 1 else ",".join(str(c) for c in range(a.threads))
    targets = list(makers)
    rows = {s["name"]: {t: [] for t in targets} for s in shapes}
    direct = {s["name"]: [] for s in shapes if s["name"] in a.direct}
    backends = peers.start(peers.write_backends(d), 0, logf)
    try:
        if not all(peers.wait_port("127.0.0.1:%d" % p) for p in peers.PORTS):
            sys.exit("side_by_side.py: backends did not start; see %s" % d)
        if any(s["rate_pct"] for s in shapes):
            a.haproxy_max = calibrate(shapes, a, makers, proxy_cpus, logf)
        for r in range(a.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for shape in shapes:
                if shape["name"] in direct:
                    # The same load straight at one backend: what each proxy adds per hop.
                    if a.warmup:
                        load(shape, a.warmup, a.open_conns, DIRECT)
                    res = load(shape, a.seconds, a.open_conns, DIRECT)
                    direct[shape["name"]].append(res)
                    print("round %d %-12s %-10s %8.0f req/s  p50 %6.3f  p99 %6.3f ms"
                          % (r + 1, shape["name"], "direct", res["rps"], res["p50_ms"] or 0,
                             res["p99_ms"] or 0), file=sys.stderr, flush=True)
                for t in order:
                    with proxy_running(t, makers[t](), proxy_cpus, logf) as proc:
                        if a.warmup:
                            load(shape, a.warmup, a.open_conns)
                        cpu0 = peers.group_cpu_seconds(proc.pid)
                        be0 = peers.group_cpu_seconds(backends.pid)
                        res = load(shape, a.seconds, a.open_conns)
                        cpu = peers.group_cpu_seconds(proc.pid) - cpu0
                        be = peers.group_cpu_seconds(backends.pid) - be0
                    res["cpu_us"] = 1e6 * cpu / max(1, res["requests"])
                    # What the proxy makes the backends (on the load's core) spend per request.
                    res["backend_cpu_us"] = 1e6 * be / max(1, res["requests"])
                    rows[shape["name"]][t].append(res)
                    print("round %d %-12s %-10s %8.0f req/s  cpu %6.1f us/req  p50 %6.3f  "
                          "p99 %6.3f  p99.9 %6.3f ms  errors %d"
                          % (r + 1, shape["name"], t, res["rps"], res["cpu_us"],
                             res["p50_ms"] or 0, res["p99_ms"] or 0, res["p999_ms"] or 0,
                             res["errors"]), file=sys.stderr, flush=True)
    finally:
        peers.stop(backends)
        logf.close()
    shutil.rmtree(d, ignore_errors=True)
    return targets, rows, direct


def summarize(targets, rows):
    """Medians per shape and target, ratios against HAProxy from the same rounds."""
    out = {}
    for shape, by_target in rows.items():
        base = by_target["haproxy"]
        out[shape] = {}
        for t in targets:
            rs = by_target[t]
            m = {k: statistics.median(x[k] or 0 for x in rs)
                 for k in ("rps", "cpu_us", "backend_cpu_us", "p50_ms", "p99_ms", "p999_ms")}
            m["errors"] = sum(x["errors"] for x in rs)
            for k, key in (("cpu_vs_haproxy", "cpu_us"), ("p99_vs_haproxy", "p99_ms"),
                           ("p999_vs_haproxy", "p999_ms")):
                ratios = [x[key] / h[key] for x, h in zip(rs, base) if h[key] and x[key]]
                m[k] = statistics.median(ratios) if ratios else None
            out[shape][t] = m
    return out


def added_per_hop(targets, rows, direct):
    """Per shape measured direct and target: p50 and p99 through the proxy minus direct, in µs,
    medians over rounds of the same round's difference (drift of the host cancels out)."""
    out = {}
    for shape, base in direct.items():
        out[shape] = {"direct": {k: statistics.median(x[k] or 0 for x in base)
                                 for k in ("p50_ms", "p99_ms")}}
        for t in targets:
            out[shape][t] = {k: 1e3 * statistics.median((x[k] or 0) - (b[k] or 0)
                                                        for x, b in zip(rows[shape][t], base))
                             for k in ("p50_ms", "p99_ms")}
    return out


def ratio(x):
    return "%.2f×" % x if x is not None else "–"


def markdown(a, shapes, targets, variants, summary, hop):
    lines = [
        "# Side by side: HAProxy, NGINX, ringress",
        "",
        "%s, %s, %d CPUs; %d round(s) of %d s (warm-up %d s), medians; ratios are medians of "
        "per-round ratios against HAProxy. %s" % (
            datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu_model(), os.cpu_count(),
            a.rounds, a.seconds, a.warmup,
            "Each proxy: one worker on CPU 1; load and backends on CPU 0." if a.threads == 1
            else "Each proxy: %d workers on CPUs 0-%d, shared with the load and the backends."
            % (a.threads, a.threads - 1)),
        "",
        "Variants: " + "; ".join("`%s` = `%s`" % (n, c) for n, c in variants.items()),
        "",
    ]
    if getattr(a, "haproxy_max", None):
        lines += ["HAProxy's maximum rate in this run, measured before the rounds: %.0f req/s as "
                  "the open-loop generator drives it (the rate it kept up with when offered 1.3× "
                  "the best of wrk closed loops at 64 and 256 connections, %.0f req/s); the rP%% "
                  "shapes are that share of it." % a.haproxy_max, ""]
    lines += [
        "| shape | target | req/s | CPU µs/req | CPU vs HAProxy | p50 ms | p99 ms | p99.9 ms "
        "| p99 vs HAProxy | p99.9 vs HAProxy | errors | backends' CPU µs/req |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in shapes:
        for t in targets:
            m = summary[s["name"]][t]
            lines.append("| %s | %s | %.0f | %.1f | %s | %.3f | %.3f | %.3f | %s | %s | %d | %.1f |" % (
                s["name"], t, m["rps"], m["cpu_us"], ratio(m["cpu_vs_haproxy"]), m["p50_ms"],
                m["p99_ms"], m["p999_ms"], ratio(m["p99_vs_haproxy"]),
                ratio(m["p999_vs_haproxy"]), m["errors"], m["backend_cpu_us"]))
    if hop:
        lines += ["", "Added latency per hop: through the proxy minus the same load straight at one "
                  "backend (%s) in the same round; medians over rounds of the per-round "
                  "difference." % DIRECT, "",
                  "| shape | direct p50 ms | direct p99 ms | target | added p50 µs | added p99 µs |",
                  "| --- | ---: | ---: | --- | ---: | ---: |"]
        for s in shapes:
            if s["name"] not in hop:
                continue
            h = hop[s["name"]]
            for t in targets:
                lines.append("| %s | %.3f | %.3f | %s | %.0f | %.0f |" % (
                    s["name"], h["direct"]["p50_ms"], h["direct"]["p99_ms"], t,
                    h[t]["p50_ms"], h[t]["p99_ms"]))
    lines += ["", "Shapes:"]
    lines += ["- `%s`: %s" % (s["name"], describe(s, a.open_conns)) for s in shapes]
    return "\n".join(lines) + "\n"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def svg_plot(shapes, targets, summary):
    """Per shape, CPU per request (bars) and p50/p99/p99.9 (bars on a log scale) per target."""
    row_h, left, panel_w, gap, top = 150, 110, 380, 60, 60
    width = left + 2 * panel_w + gap + 20
    height = top + row_h * len(shapes) + 50
    color = {t: COLORS[i % len(COLORS)] for i, t in enumerate(targets)}
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="20" font-size="14">CPU per request (µs, lower is cheaper)</text>' % left,
           '<text x="%d" y="20" font-size="14">latency p50 / p99 / p99.9 (ms, log scale)</text>'
           % (left + panel_w + gap)]
    x = left
    for t in targets:  # legend
        out.append('<rect x="%d" y="32" width="10" height="10" fill="%s"/>' % (x, color[t]))
        out.append('<text x="%d" y="41">%s</text>' % (x + 14, html.escape(t)))
        x += 30 + 7 * len(t)
    all_lat = [summary[s["name"]][t][k] for s in shapes for t in targets
               for k in ("p50_ms", "p99_ms", "p999_ms") if summary[s["name"]][t][k]]
    lo = math.floor(math.log10(min(all_lat))) if all_lat else -2
    hi = math.ceil(math.log10(max(all_lat))) if all_lat else 1
    hi = max(hi, lo + 1)
    for i, s in enumerate(shapes):
        y0 = top + i * row_h
        base = y0 + row_h - 25
        bar_h = row_h - 45
        out.append('<text x="%d" y="%d" text-anchor="end" font-size="12">%s</text>'
                   % (left - 10, y0 + row_h / 2, html.escape(s["name"])))
        # CPU panel.
        cpu_max = max(summary[s["name"]][t]["cpu_us"] for t in targets) or 1
        slot = panel_w / len(targets)
        for j, t in enumerate(targets):
            v = summary[s["name"]][t]["cpu_us"]
            h = bar_h * v / cpu_max
            bx = left + j * slot + slot * 0.15
            out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"/>'
                       % (bx, base - h, slot * 0.7, h, color[t]))
            out.append('<text x="%.1f" y="%.1f" text-anchor="middle">%.1f</text>'
                       % (bx + slot * 0.35, base - h - 3, v))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
                   % (left, base, left + panel_w, base))
        # Latency panel: three bars per target (p50, p99, p99.9), log scale from 10^lo.
        px = left + panel_w + gap
        for e in range(lo, hi + 1):
            gy = base - bar_h * (e - lo) / (hi - lo)
            out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                       % (px, gy, px + panel_w, gy))
            out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#777">%s</text>'
                       % (px - 3, gy + 4, ("%g" % 10 ** e)))
        for j, t in enumerate(targets):
            for k, key in enumerate(("p50_ms", "p99_ms", "p999_ms")):
                v = summary[s["name"]][t][key]
                if not v:
                    continue
                h = bar_h * (math.log10(v) - lo) / (hi - lo)
                bx = px + j * slot + slot * (0.1 + 0.27 * k)
                out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" '
                           'fill-opacity="%.2f"><title>%s %s %s: %.3f ms</title></rect>'
                           % (bx, base - h, slot * 0.25, max(h, 0.5), color[t],
                              (0.45, 0.7, 1.0)[k], html.escape(s["name"]), html.escape(t),
                              key[:-3], v))
        out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="black"/>'
                   % (px, base, px + panel_w, base))
    out.append('<text x="%d" y="%d" fill="#555">latency bars per target: p50 (light), p99, '
               'p99.9 (dark)</text>' % (left + panel_w + gap, height - 15))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def p99_plot(shapes, targets, summary):
    """p99 (log scale) against connections, one line per target, over the plain closed-loop
    shapes (cN without think time or hot keys); None when fewer than two were run."""
    closed = sorted((s for s in shapes if s["conns"] and not s["think_ms"] and not s["zipf"]),
                    key=lambda s: s["conns"])
    if len(closed) < 2:
        return None
    w, h, left, right, top, bottom = 640, 400, 70, 130, 40, 50
    xs = [math.log(s["conns"]) for s in closed]
    vals = [summary[s["name"]][t]["p99_ms"] for s in closed for t in targets]
    lo = math.floor(math.log10(max(min(v for v in vals if v > 0), 1e-3))) if any(vals) else -1
    hi = math.ceil(math.log10(max(vals))) if any(vals) else 1
    hi = max(hi, lo + 1)

    def px(x):
        span = (xs[-1] - xs[0]) or 1
        return left + (w - left - right) * (x - xs[0]) / span

    def py(v):
        v = max(v, 10 ** lo)
        return top + (h - top - bottom) * (hi - math.log10(v)) / (hi - lo)

    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="12">' % (w, h),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="22" font-size="14">p99 latency (ms, log scale) against connections '
           '(closed loop)</text>' % left]
    for e in range(lo, hi + 1):
        y = py(10 ** e)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   % (left, y, w - right, y))
        out.append('<text x="%d" y="%.1f" text-anchor="end" fill="#555">%s</text>'
                   % (left - 6, y + 4, "%g" % (10 ** e)))
    for s, x in zip(closed, xs):
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#555">%d</text>'
                   % (px(x), h - bottom + 18, s["conns"]))
    out.append('<text x="%d" y="%d" text-anchor="middle" fill="#555">connections</text>'
               % ((left + w - right) // 2, h - 12))
    for i, t in enumerate(targets):
        color = COLORS[i % len(COLORS)]
        pts = [(px(x), py(summary[s["name"]][t]["p99_ms"])) for s, x in zip(closed, xs)]
        out.append('<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>'
                   % (color, " ".join("%.1f,%.1f" % p for p in pts)))
        out += ['<circle cx="%.1f" cy="%.1f" r="3" fill="%s"/>' % (x, y, color) for x, y in pts]
        out.append('<text x="%d" y="%d" fill="%s">%s</text>'
                   % (w - right + 12, top + 16 + 18 * i, color, html.escape(t)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=COMMAND",
                    help="a ringress build or flag set (repeatable; default: "
                         "ringress=target/release/ringress)")
    ap.add_argument("--shapes", default=DEFAULT_SHAPES)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="seconds of the same load before each")
    ap.add_argument("--open-conns", type=int, default=64, help="connections of open-loop shapes")
    ap.add_argument("--out", help="directory for results.md, results.json and plot.svg "
                                  "(default: TARGET/side-by-side/DATE-TIME)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries as they are")
    ap.add_argument("--direct", default=DEFAULT_DIRECT, metavar="SHAPES",
                    help="shapes also run straight at one backend, for the latency each proxy adds "
                         "per hop (default: %(default)s, the low-load ones; '' for none)")
    ap.add_argument("--threads", type=int, default=1, choices=(1, 2),
                    help="workers per proxy: 1 (on CPU 1) or 2 (on CPUs 0 and 1)")
    a = ap.parse_args()
    if a.rounds < 1 or a.seconds < 1 or a.warmup < 0 or a.open_conns < 1:
        sys.exit("side_by_side.py: --rounds, --seconds and --open-conns must be >= 1")
    shapes = [parse_shape(s) for s in a.shapes.split(",") if s]
    a.direct = {x for x in a.direct.split(",") if x}
    if not shapes:
        sys.exit("side_by_side.py: no shapes")
    variants = parse_variants(a.variant)
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit("side_by_side.py: %s is not on PATH (apt-get install -y nginx-light haproxy "
                     "wrk)" % tool)
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("side_by_side.py: needs CPUs 0 and 1 (load and backends on 0, the proxy on 1)")
    if not a.no_build:
        build()
    out_dir = a.out or os.path.join(target_dir(), "side-by-side",
                                    datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    os.makedirs(out_dir, exist_ok=True)

    targets, rows, direct = measure_all(a, shapes, variants)
    summary = summarize(targets, rows)
    hop = added_per_hop(targets, rows, direct)
    md = markdown(a, shapes, targets, variants, summary, hop)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"shapes": shapes, "variants": variants, "rounds": rows, "medians": summary,
                   "direct_rounds": direct, "added_per_hop_us": hop}, f, indent=1)
    with open(os.path.join(out_dir, "plot.svg"), "w") as f:
        f.write(svg_plot(shapes, targets, summary))
    p99 = p99_plot(shapes, targets, summary)
    if p99:
        with open(os.path.join(out_dir, "p99.svg"), "w") as f:
            f.write(p99)
    print(md)
    print("side_by_side.py: wrote %s/{results.md,results.json,plot.svg,p99.svg}" % out_dir,
          file=sys.stderr)


if __name__ == "__main__":
    main()
