#!/usr/bin/env python3
"""TLS handshakes and HTTP/2 requests side by side: ringress, HAProxy and NGINX each terminate
TLS with the same ECDSA P-256 certificate (made here with openssl) and proxy to the same plain
HTTP/1.1 backends. The figure is CPU per handshake or per request of the proxy process.

Run from a clone after `apt-get install -y nginx-light haproxy wrk nghttp2-client` and
`cargo build --release -p ringress`:

    python3 benches/e2e/tls_h2.py                                      # ~13 min with the defaults
    python3 benches/e2e/tls_h2.py --rounds 1 --seconds 3 --warmup 1    # smoke run, ~2 min
    python3 benches/e2e/tls_h2.py --only handshake,h2 --targets ringress,haproxy

Setup: peers.py's (four nginx backends serving a ~4 KB JSON on CPU 0, each proxy alone on CPU 1
with one worker, hashing /products/<id> onto the backends); the load generators run on CPU 0.
Every measurement starts its proxy afresh, warms it up (--warmup seconds of the same load), then
measures (--seconds); the order of the targets rotates from round to round and figures are
medians over --rounds (ratios: medians of the per-round ratios against HAProxy).

Cases (--only, comma-separated kinds):
  handshake  a full TLS 1.3 handshake per request: N `openssl s_time -new` processes (N = 16 and
             64), each in a loop of connect, handshake, `GET /products/<i> HTTP/1.0`, read to the
             close. -new builds a fresh SSL object per connection and offers no session, so no
             handshake resumes (h2load and wrk would: both keep the session of the previous
             connection when they reconnect). No latency: s_time reports none.
  h2         h2load over TLS with ALPN h2, -c 16 -m 16 and -c 64 -m 10
  h2c        h2load over cleartext HTTP/2 with prior knowledge, the same two shapes
  h1         wrk over TLS, HTTP/1.1 keep-alive, 64 connections (a reference row)

All clients offer only TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519 (an OpenSSL configuration
file in OPENSSL_CONF for s_time and wrk, flags for h2load), so all three proxies negotiate the
same suite and group whatever their preference order; the table says what each negotiated.
Latency of the h2 cases comes from h2load's per-request log (--log-file), so p50/p99 are exact.

Listeners: TLS on 127.0.0.1:18443; cleartext h2 on 127.0.0.1:18080 (ringress's plain listener,
which takes HTTP/1.1 and h2c; HAProxy `proto h2`; NGINX `listen ... http2`, h2c only there).
"""
import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import peers
from side_by_side import cpu_model, target_dir

TLS = "127.0.0.1:18443"
H2C = peers.LISTEN
SUITE, GROUP = "TLS_AES_128_GCM_SHA256", "X25519"
PATHS = ["/products/%d" % i for i in range(64)]  # spread over the backends by the hash
TARGETS = ("ringress", "haproxy", "nginx")
KINDS = ("handshake", "h2", "h2c", "h1")

# What the clients offer (s_time, wrk and s_client read it; h2load gets flags).
CLIENT_OPENSSL_CONF = """openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = client
[client]
MinProtocol = TLSv1.3
Ciphersuites = %s
Groups = %s
""" % (SUITE, GROUP)


# (name, kind, connections, streams per connection) in the order they run.
CASES = [("handshake c16", "handshake", 16, 1), ("handshake c64", "handshake", 64, 1),
         ("h2 c16 m16", "h2", 16, 16), ("h2 c64 m10", "h2", 64, 10),
         ("h2c c16 m16", "h2c", 16, 16), ("h2c c64 m10", "h2c", 64, 10),
         ("h1 TLS keep-alive c64", "h1", 64, 1)]


def make_cert(d):
    """One self-signed ECDSA P-256 pair for all three; HAProxy wants it in one PEM."""
    crt, key, pem = (os.path.join(d, n) for n in ("cert.pem", "key.pem", "haproxy.pem"))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "30",
                    "-subj", "/CN=bench.local", "-addext",
                    "subjectAltName=DNS:bench.local,IP:127.0.0.1"],
                   check=True, capture_output=True)
    with open(pem, "w") as f:
        f.write(open(crt).read() + open(key).read())
    return crt, key, pem


def makers(d, binary, crt, key, pem):
    """Per target, a function writing its configuration and returning its command."""
    ours = ("%s --routes {routes} --listen {listen} --admin {admin} --threads 1 "
            "--tls-listen %s --tls-cert %s --tls-key %s" % (binary, TLS, crt, key))
    # NGINX: the `http2` listen parameter (deprecated from 1.25.1 for `http2 on;`, still taken);
    # on a cleartext listener it means h2c with prior knowledge only. TLS 1.3 is not in
    # nginx 1.22's default ssl_protocols.
    nginx_tls = "ssl_certificate %s; ssl_certificate_key %s; ssl_protocols TLSv1.2 TLSv1.3;" % (
        crt, key)
    return {
        "ringress": lambda: peers.ours_cmd(d, ours),
        "haproxy": lambda: peers.haproxy_cmd(
            d, binds=("%s ssl crt %s alpn h2,http/1.1" % (TLS, pem), "%s proto h2" % H2C)),
        "nginx": lambda: peers.nginx_cmd(
            d, listens=("%s ssl http2" % TLS, "%s http2" % H2C), server_extra=nginx_tls),
    }


def negotiated(env):
    """What a client with our settings negotiates with the proxy listening now (openssl s_client)."""
    out = subprocess.run(["openssl", "s_client", "-connect", TLS, "-alpn", "h2,http/1.1"],
                         input="", capture_output=True, text=True, errors="replace", env=env,
                         timeout=20).stdout  # stdout: also the bytes the server sent
    proto = re.search(r"^New, (\S+), Cipher is (\S+)", out, re.M)
    group = re.search(r"^Server Temp Key: ([^,\s]+)", out, re.M)
    alpn = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    if not proto:
        return "no TLS handshake"
    return "%s %s %s, ALPN %s" % (proto.group(1), proto.group(2),
                                  group.group(1) if group else "?", alpn.group(1) if alpn else "none")


def run_handshakes(conns, seconds, env):
    """conns parallel `openssl s_time -new` loops; returns handshakes done and their wall time."""
    procs = []
    t0 = time.monotonic()
    for i in range(conns):
        cmd = ["taskset", "-c", "0", "openssl", "s_time", "-connect", TLS, "-new",
               "-ciphersuites", SUITE, "-time", str(seconds), "-www", PATHS[i % len(PATHS)]]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True, env=env))
    outs = [p.communicate(timeout=seconds + 60)[0] for p in procs]
    wall = time.monotonic() - t0
    # s_time gives up at its first failed connection: a failed process is one error.
    done = errors = 0
    for p, out in zip(procs, outs):
        m = re.search(r"^(\d+) connections in [\d.]+ real seconds, (\d+) bytes read per connection",
                      out, re.M)
        if p.returncode != 0 or not m:
            errors += 1
            continue
        done += int(m.group(1))
        if int(m.group(2)) < 1000:  # no ~4 KB body: the proxy did not answer the GET
            errors += 1
    # s_time stops on a whole second of the clock (time(NULL)), so the wall time of the whole
    # group, start-up included, is the window: the rate is a slight under-estimate.
    return {"done": done, "rate": done / wall, "errors": errors, "tls": None,
            "p50_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}


def run_h2load(kind, conns, streams, seconds, d):
    scheme, addr = ("https", TLS) if kind == "h2" else ("http", H2C)
    log = os.path.join(d, "h2load.log")
    cmd = ["taskset", "-c", "0", "h2load", "-t1", "-c%d" % conns, "-m%d" % streams,
           "-D%d" % seconds, "--tls13-ciphers=" + SUITE, "--groups=" + GROUP, "--log-file=" + log]
    cmd += ["%s://%s%s" % (scheme, addr, p) for p in PATHS]  # h2load cycles through them
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored, (\d+) timeout", out, re.M)
    if not m:
        sys.exit("tls_h2.py: h2load printed no summary:\n" + out)
    ok, errors = int(m.group(4)), int(m.group(5))  # failed: errors and statuses not 2xx/3xx
    tls = None
    c = re.search(r"^Cipher: (\S+)", out, re.M)
    if c:
        p = re.search(r"^TLS Protocol: (\S+)", out, re.M)
        k = re.search(r"^Server Temp Key: (\S+)", out, re.M)
        a = re.search(r"^Application protocol: (\S+)", out, re.M)
        tls = "%s %s %s, ALPN %s" % (p.group(1) if p else "?", c.group(1),
                                     k.group(1) if k else "?", a.group(1) if a else "?")
    # Per request: start (µs since the epoch), status, µs to the end of the response.
    lat = []
    with open(log) as f:
        for line in f:
            parts = line.split("\t")
            if len(parts) == 3 and parts[1] != "-1":
                lat.append(int(parts[2]) / 1e3)
    os.unlink(log)
    lat.sort()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else None

    return {"done": ok, "rate": ok / seconds, "errors": errors, "tls": tls,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99),
            "mean_ms": statistics.fmean(lat) if lat else None, "max_ms": lat[-1] if lat else None}


def run_wrk_tls(conns, seconds, env):
    r = peers.run_wrk("https://" + TLS, seconds, conns, False, extra_env=env)
    return {"done": r["rps"] * seconds, "rate": r["rps"], "errors": r["errors"], "tls": None,
            "p50_ms": r["p50_ms"], "p99_ms": r["p99_ms"], "mean_ms": None, "max_ms": None}


def load(case, seconds, d, env):
    _, kind, conns, streams = case
    if kind == "handshake":
        return run_handshakes(conns, seconds, env)
    if kind in ("h2", "h2c"):
        return run_h2load(kind, conns, streams, seconds, d)
    return run_wrk_tls(conns, seconds, env)


def measure(a, todo, targets, d, env, make):
    rows = {c[0]: {t: [] for t in targets} for c in todo}
    tls = {}
    logf = open(os.path.join(d, "procs.log"), "w")  # noqa: SIM115 (lives until the end)
    backends = peers.start(peers.write_backends(d), 0, logf)
    try:
        if not all(peers.wait_port("127.0.0.1:%d" % p) for p in peers.PORTS):
            sys.exit("tls_h2.py: backends did not start; see %s" % d)
        for r in range(a.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            for case in todo:
                for t in order:
                    proc = peers.start(make[t](), 1, logf)
                    try:
                        if not (peers.wait_port(TLS) and peers.wait_port(H2C)):
                            sys.exit("tls_h2.py: %s did not listen on %s and %s; see %s/procs.log"
                                     % (t, TLS, H2C, d))
                        if t not in tls:
                            tls[t] = negotiated(env)
                        if a.warmup:
                            load(case, a.warmup, d, env)
                        cpu0 = peers.group_cpu_seconds(proc.pid)
                        res = load(case, a.seconds, d, env)
                        res["cpu_us"] = 1e6 * (peers.group_cpu_seconds(proc.pid) - cpu0) / max(
                            1, res["done"])
                    finally:
                        peers.stop(proc)
                        peers.wait_closed(TLS)
                        peers.wait_closed(H2C)
                    rows[case[0]][t].append(res)
                    print("round %d %-22s %-9s %9.0f /s  cpu %7.1f us each  p50 %s  p99 %s ms  "
                          "errors %d%s" % (r + 1, case[0], t, res["rate"], res["cpu_us"],
                                           fmt(res["p50_ms"], 3), fmt(res["p99_ms"], 3),
                                           res["errors"], "  " + res["tls"] if res["tls"] else ""),
                          file=sys.stderr, flush=True)
    finally:
        peers.stop(backends)
        logf.close()
    return rows, tls


def fmt(x, digits=1):
    return "–" if x is None else "%.*f" % (digits, x)


def ratio(x):
    return "–" if x is None else "%.2f×" % x


def summarize(rows, targets):
    out = {}
    for case, by_target in rows.items():
        out[case] = {}
        for t in targets:
            rs = by_target[t]
            m = {}
            for k in ("rate", "cpu_us", "p50_ms", "p99_ms", "mean_ms", "max_ms"):
                vals = [x[k] for x in rs if x[k] is not None]
                m[k] = statistics.median(vals) if vals else None
            m["errors"] = sum(x["errors"] for x in rs)
            m["tls"] = sorted({x["tls"] for x in rs if x["tls"]})
            for k, key in (("cpu_vs_haproxy", "cpu_us"), ("rate_vs_haproxy", "rate")):
                base = by_target.get("haproxy")
                ratios = [x[key] / h[key] for x, h in zip(rs, base or []) if h[key] and x[key]]
                m[k] = statistics.median(ratios) if ratios else None
            out[case][t] = m
    return out


def markdown(a, targets, summary, tls, versions):
    lines = [
        "# TLS handshakes and HTTP/2 side by side: ringress, HAProxy, NGINX",
        "",
        "%s, %s, `nproc` %d; %d round(s) of %d s (warm-up %d s), medians; ratios are medians of "
        "per-round ratios against HAProxy (CPU ratio = target / HAProxy: below 1.00 is cheaper)."
        % (datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), cpu_model(), os.cpu_count(),
           a.rounds, a.seconds, a.warmup),
        "",
        "Command: `python3 benches/e2e/tls_h2.py %s`" % " ".join(sys.argv[1:]),
        "",
        "Versions: " + "; ".join(versions),
        "",
        "Negotiated (openssl s_client with the clients' settings; the h2 rows' own from h2load):",
        "",
    ]
    lines += ["- %s: %s" % (t, tls.get(t, "–")) for t in targets]
    lines += [
        "",
        "| case | target | per s | CPU µs each | CPU vs HAProxy | per s vs HAProxy | mean ms "
        "| p50 ms | p99 ms | max ms | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case, by_target in summary.items():
        for t in targets:
            m = by_target[t]
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |" % (
                case, t, fmt(m["rate"], 0), fmt(m["cpu_us"]), ratio(m["cpu_vs_haproxy"]),
                ratio(m["rate_vs_haproxy"]), fmt(m["mean_ms"], 3), fmt(m["p50_ms"], 3),
                fmt(m["p99_ms"], 3), fmt(m["max_ms"], 3), m["errors"]))
    h2_tls = sorted({"%s: %s" % (t, s) for by_t in summary.values() for t in targets
                     for s in by_t[t]["tls"]})
    if h2_tls:
        lines += ["", "h2load's report of the TLS h2 runs: " + "; ".join(h2_tls)]
    lines += [
        "",
        "Per s: handshakes/s (handshake rows: one full TLS 1.3 handshake and one HTTP/1.0 GET per "
        "connection, `openssl s_time -new`, N processes, over the wall time of the group, start-up "
        "included), else requests/s. CPU µs each: user+system "
        "CPU of the proxy's processes over the measured run divided by the handshakes or requests "
        "done. The load generators and the backends share the other core, so the rates are often "
        "bound by that core: CPU per handshake or request is the figure that compares proxies. "
        "h2 latency: h2load's per-request log (exact percentiles); h1: wrk; handshakes: none. "
        "Errors: h2load's failed requests, wrk's errors and non-2xx, failed s_time processes.",
    ]
    return "\n".join(lines) + "\n"


def versions(binary):
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            return (p.stdout + p.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return [first_line([binary, "--version"]), first_line(["haproxy", "-v"]),
            first_line(["nginx", "-v"]), first_line(["h2load", "--version"]),
            first_line(["openssl", "version"]), first_line(["wrk", "-v"])]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=",".join(KINDS), help="kinds of case, of " + ",".join(KINDS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2, help="seconds of the same load before each")
    ap.add_argument("--binary", default=os.path.join(target_dir(), "release", "ringress"))
    ap.add_argument("--out", help="markdown file (default benches/results/DATE-tls-h2.md; "
                                  "a .json beside it holds every round)")
    a = ap.parse_args()
    kinds = [k for k in a.only.split(",") if k]
    targets = [t for t in a.targets.split(",") if t]
    if set(kinds) - set(KINDS) or set(targets) - set(TARGETS) or not kinds or not targets:
        sys.exit("tls_h2.py: --only takes %s; --targets takes %s" % (",".join(KINDS),
                                                                     ",".join(TARGETS)))
    if a.rounds < 1 or a.seconds < 1 or a.warmup < 0:
        sys.exit("tls_h2.py: --rounds and --seconds must be >= 1")
    for tool in ("nginx", "haproxy", "wrk", "h2load", "openssl", "taskset"):
        if not shutil.which(tool):
            sys.exit("tls_h2.py: %s is not on PATH (apt-get install -y nginx-light haproxy wrk "
                     "nghttp2-client)" % tool)
    if "ringress" in targets:
        help_text = subprocess.run([a.binary, "--help"], capture_output=True, text=True).stdout \
            if os.access(a.binary, os.X_OK) else ""
        if "--tls-listen" not in help_text:
            sys.exit("tls_h2.py: %s is missing or has no --tls-listen (cargo build --release "
                     "-p ringress)" % a.binary)
    if not {0, 1} <= os.sched_getaffinity(0):
        sys.exit("tls_h2.py: needs CPUs 0 and 1 (load and backends on 0, the proxy on 1)")
    out = a.out or os.path.join(peers.HERE, "..", "results",
                                datetime.date.today().isoformat() + "-tls-h2.md")

    d = tempfile.mkdtemp(prefix="ringress-tls-h2-")
    os.chmod(d, 0o755)  # nginx workers may run as an unprivileged user
    conf = os.path.join(d, "client-openssl.cnf")
    with open(conf, "w") as f:
        f.write(CLIENT_OPENSSL_CONF)
    env = {"OPENSSL_CONF": conf}  # for the clients only, never the proxies
    crt, key, pem = make_cert(d)
    todo = [c for c in CASES if c[1] in kinds]
    rows, tls = measure(a, todo, targets, d, dict(os.environ, **env), makers(d, a.binary, crt,
                                                                              key, pem))
    summary = summarize(rows, targets)
    md = markdown(a, targets, summary, tls, versions(a.binary))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write(md)
    with open(os.path.splitext(out)[0] + ".json", "w") as f:
        json.dump({"rounds": rows, "medians": summary, "negotiated": tls}, f, indent=1)
    print(md)
    print("tls_h2.py: wrote %s and its .json" % os.path.normpath(out), file=sys.stderr)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
