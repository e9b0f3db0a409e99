#!/usr/bin/env python3
"""Side-by-side load bench: the same keyed traffic through several reverse proxies.

Four static backends (nginx, one worker) serve a ~4 KB product JSON on
127.0.0.1:19001-19004. Each proxy under test listens on 127.0.0.1:18080, hashes
/products/<id> onto those backends, and runs pinned to CPU 1 with one worker;
wrk and the backends are pinned to CPU 0. So the figure is what one proxy core
delivers. Targets run interleaved (A B C A B C ...) and medians are reported,
with each target's throughput as a ratio to HAProxy's from the same rounds.

Targets:
  direct   wrk straight at one backend (the ceiling of this setup)
  haproxy  balance uri, hash-type consistent, hash-balance-factor 200
  nginx    hash $request_uri consistent, upstream keepalive
Both peers add X-Forwarded-For, -Host and -Proto to every request, as ringress does, so each
proxy forwards the same bytes and the backends parse the same requests.
  ours     the command given with --ours; {routes} in it is replaced by the path
           of a route file written for it (see ROUTES below), {listen} by
           127.0.0.1:18080, {admin} by 127.0.0.1:18081

Needs Debian's nginx-light (or nginx), haproxy and wrk on PATH. The other scripts in
benches/e2e import this file for its backends, configurations and wrk runs; side_by_side.py is
the full comparison (several shapes and ringress variants, a table and a plot).

Usage: peers.py [--ours 'CMD'] [--rounds 3] [--seconds 8] [--conns 64]
                [--zipf] [--targets direct,haproxy,nginx,ours] [--json FILE]
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PORTS = [19001, 19002, 19003, 19004]
LISTEN = "127.0.0.1:18080"
ADMIN = "127.0.0.1:18081"

def products_routes(ports):
    """The route file handed to --ours, in the project's route-file format."""
    eps = "\n".join("        - http://127.0.0.1:%d" % p for p in ports)
    return """routes:
  - name: products
    match:
      path: /products/{id}
    filters:
      - consistentHashKey: "${id}"
      - consistentHashBalanceFactor: 2
    backend:
      algorithm: consistentHash
      endpoints:
%s
""" % eps


ROUTES = products_routes(PORTS)


def body():
    attrs = [{"k": "attr%d" % i, "v": "value-%d" % i} for i in range(110)]
    return json.dumps({"id": "SKU", "name": "Sneaker", "brand": "Brand", "attributes": attrs})


def wait_port(addr, timeout=20.0):
    host, port = addr.rsplit(":", 1)
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, int(port)), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def wait_closed(addr, timeout=10.0):
    host, port = addr.rsplit(":", 1)
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, int(port)), timeout=0.2):
                time.sleep(0.05)
        except OSError:
            return True
    return False


def start(cmd, cpu, log):
    full = ["taskset", "-c", str(cpu)] + cmd
    return subprocess.Popen(full, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(p):
    if p and p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def write_backends(d):
    os.makedirs(os.path.join(d, "www"), exist_ok=True)
    with open(os.path.join(d, "www", "body.json"), "w") as f:
        f.write(body())
    servers = "\n".join(
        """  server { listen 127.0.0.1:%d reuseport backlog=4096; keepalive_requests 1000000;
    location / { add_header X-Backend b%d; default_type application/json;
      root %s/www; rewrite ^ /body.json break; } }""" % (p, i + 1, d)
        for i, p in enumerate(PORTS))
    conf = """daemon off; worker_processes 1; pid %s/backends.pid; error_log %s/backends.err;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nodelay on;
%s
}
""" % (d, d, servers)
    path = os.path.join(d, "backends.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", path]


def haproxy_cmd(d, binds=(LISTEN,)):
    """binds: what follows `bind` on each of the frontend's bind lines (tls_h2.py adds TLS, h2c)."""
    servers = "\n".join("  server b%d 127.0.0.1:%d" % (i + 1, p) for i, p in enumerate(PORTS))
    conf = """global
  nbthread 1
  maxconn 4000
defaults
  mode http
  timeout connect 1s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
%s
  # The headers ringress adds to every request: the same work, the same bytes to the backends.
  option forwardfor
  http-request set-header X-Forwarded-Host %%[req.hdr(host)]
  http-request set-header X-Forwarded-Proto https if { ssl_fc }
  http-request set-header X-Forwarded-Proto http unless { ssl_fc }
  default_backend be
backend be
  balance uri
  hash-type consistent
  hash-balance-factor 200
%s
""" % ("\n".join("  bind " + b for b in binds), servers)
    path = os.path.join(d, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    return ["haproxy", "-db", "-f", path]


def nginx_cmd(d, listens=(LISTEN,), server_extra=""):
    """listens: what follows `listen` on each of the server's listen lines; server_extra:
    directives added to that server block (tls_h2.py: certificate, http2)."""
    servers = "\n".join("    server 127.0.0.1:%d;" % p for p in PORTS)
    conf = """daemon off; worker_processes 1; pid %s/proxy.pid; error_log %s/proxy.err;
events { worker_connections 8192; }
http { access_log off;
  upstream be { hash $request_uri consistent;
%s
    keepalive 256; }
  server { %s keepalive_requests 1000000;%s
    location / { proxy_pass http://be; proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme; } }
}
""" % (d, d, servers, " ".join("listen %s;" % x for x in listens),
       (" " + server_extra) if server_extra else "")
    path = os.path.join(d, "proxy.conf")
    with open(path, "w") as f:
        f.write(conf)
    return ["nginx", "-p", d, "-c", path]


def ours_cmd(d, template):
    path = os.path.join(d, "routes.yaml")
    with open(path, "w") as f:
        f.write(ROUTES)
    cmd = template.replace("{routes}", path).replace("{listen}", LISTEN).replace("{admin}", ADMIN)
    return ["sh", "-c", "exec " + cmd]


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def parse_wrk(out):
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        sys.exit("peers.py: wrk printed no summary:\n" + out)
    rps = float(m.group(1))
    lat = {}
    for q, v, u in re.findall(r"^\s+(50|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M):
        lat[q] = float(v) * UNITS[u]
    # keys.lua's done() line: exact microseconds, and 99.9%.
    m = re.search(r"^PERCENTILES_US p50=(\d+) p90=(\d+) p99=(\d+) p999=(\d+)", out, re.M)
    if m:
        lat = {"50": int(m.group(1)) / 1e3, "90": int(m.group(2)) / 1e3,
               "99": int(m.group(3)) / 1e3, "99.9": int(m.group(4)) / 1e3}
    errs = 0
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        errs += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errs += sum(int(x) for x in m.groups())
    return {"rps": rps, "p50_ms": lat.get("50"), "p99_ms": lat.get("99"),
            "p999_ms": lat.get("99.9"), "errors": errs}


CLK = os.sysconf("SC_CLK_TCK")


def group_stats(pgid):
    """(pid, fields of /proc/PID/stat after the command) of every live process in the group."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 of stat: process group
            out.append((int(pid), fields))
    return out


def group_split(pgid):
    """(user, system) CPU seconds of every live process in the process group."""
    user = system = 0
    for _, fields in group_stats(pgid):
        user += int(fields[11])  # utime
        system += int(fields[12])  # stime
    return user / CLK, system / CLK


def group_cpu_seconds(pgid):
    """User+system CPU seconds of every live process in the process group."""
    return sum(group_split(pgid))


def run_wrk(url, seconds, conns, zipf, think_ms=0, extra_env=None):
    env = dict(os.environ, **(extra_env or {}))
    if zipf:
        env["ZIPF"] = "1"
    if think_ms:
        env["THINK_MS"] = str(think_ms)
    cmd = ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
           "--latency", "-s", os.path.join(HERE, "keys.lua"), url]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=seconds + 30).stdout
    return parse_wrk(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ours", help="command that starts the project's proxy")
    ap.add_argument("--targets", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--zipf", action="store_true", help="hot-key (skewed) ids")
    ap.add_argument("--json", help="write the medians as JSON here")
    a = ap.parse_args()
    for tool in ("nginx", "haproxy", "wrk", "taskset"):
        if not shutil.which(tool):
            sys.exit("peers.py: %s is not on PATH (apt-get install nginx-light haproxy wrk)" % tool)
    targets = (a.targets or ("direct,haproxy,nginx" + (",ours" if a.ours else ""))).split(",")
    if "ours" in targets and not a.ours:
        sys.exit("peers.py: target 'ours' needs --ours 'CMD'")
    d = tempfile.mkdtemp(prefix="peers-")
    os.chmod(d, 0o755)  # nginx workers may run as an unprivileged user
    logs = open(os.path.join(d, "procs.log"), "w")
    backends = start(write_backends(d), 0, logs)
    results = {t: [] for t in targets}
    try:
        if not all(wait_port("127.0.0.1:%d" % p) for p in PORTS):
            sys.exit("peers.py: backends did not start; see %s" % d)
        makers = {"haproxy": lambda: haproxy_cmd(d), "nginx": lambda: nginx_cmd(d),
                  "ours": lambda: ours_cmd(d, a.ours)}
        for r in range(a.rounds):
            for t in targets:
                if t == "direct":
                    url = "http://127.0.0.1:%d" % PORTS[0]
                    proc = None
                else:
                    url = "http://" + LISTEN
                    proc = start(makers[t](), 1, logs)
                    if not wait_port(LISTEN):
                        stop(proc)
                        sys.exit("peers.py: %s did not listen on %s; see %s/procs.log" % (t, LISTEN, d))
                try:
                    run_wrk(url, 2, a.conns, a.zipf)  # warm-up
                    cpu0 = group_cpu_seconds(proc.pid) if proc else 0
                    res = run_wrk(url, a.seconds, a.conns, a.zipf)
                    cpu = (group_cpu_seconds(proc.pid) - cpu0) if proc else 0
                    res["cpu_us_per_req"] = 1e6 * cpu / max(1, res["rps"] * a.seconds) if proc else None
                finally:
                    stop(proc)
                    wait_closed(LISTEN) if proc else None
                results[t].append(res)
                print("round %d %-8s %9.0f req/s  p50 %6.2f ms  p99 %6.2f ms  cpu %6.1f us/req  errors %d"
                      % (r + 1, t, res["rps"], res["p50_ms"] or -1, res["p99_ms"] or -1,
                         res["cpu_us_per_req"] or 0, res["errors"]),
                      file=sys.stderr, flush=True)
    finally:
        stop(backends)
        logs.close()
    med = {}
    for t, rs in results.items():
        med[t] = {k: statistics.median([x[k] for x in rs if x[k] is not None] or [0])
                  for k in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
        med[t]["errors"] = sum(x["errors"] for x in rs)
    # The proxy has a core of its own while wrk and the backends share the other,
    # so req/s is often capped by that other core: CPU per request is the figure
    # that compares proxies; "cpu vs haproxy" below 1.00 means cheaper than HAProxy.
    print("%-8s %9s %8s %8s %10s %7s %10s %10s" % ("target", "req/s", "p50 ms", "p99 ms",
                                                   "cpu us/req", "errors", "rps vs hap", "cpu vs hap"))
    for t in targets:
        m = med[t]
        rr = cr = ""
        if "haproxy" in results:
            m["rps_vs_haproxy"] = statistics.median(
                [x["rps"] / h["rps"] for x, h in zip(results[t], results["haproxy"])])
            rr = "%.2fx" % m["rps_vs_haproxy"]
            if t != "direct":
                m["cpu_vs_haproxy"] = statistics.median(
                    [x["cpu_us_per_req"] / h["cpu_us_per_req"]
                     for x, h in zip(results[t], results["haproxy"]) if h["cpu_us_per_req"]])
                cr = "%.2fx" % m["cpu_vs_haproxy"]
        print("%-8s %9.0f %8.2f %8.2f %10.1f %7d %10s %10s" % (
            t, m["rps"], m["p50_ms"], m["p99_ms"], m["cpu_us_per_req"] or 0, m["errors"], rr, cr))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(med, f, indent=2)
    shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
