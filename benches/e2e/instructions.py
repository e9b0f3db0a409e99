#!/usr/bin/env python3
"""Instructions per proxied request, counted by valgrind's callgrind: a figure that does not
depend on machine noise, for comparing ringress with HAProxy and NGINX on the traffic of the
side-by-side bench (peers.py: its backends, configurations and key script).

Run from the repository root (apt-get install -y valgrind wrk nginx-light haproxy):

    python3 benches/e2e/instructions.py                    # ringress, HAProxy, NGINX
    python3 benches/e2e/instructions.py --only ringress --callgrind-out /tmp/cg.out

Each proxy runs under callgrind with one worker while wrk (1 thread, 8 connections) sends
keyed GET /products/<id> for --seconds; the figure is the proxy's user-space instructions
(all processes of it, start-up included, so run long enough for it to vanish: start-up is
under 1% at 15 s) divided by the requests wrk completed. Kernel work (the TCP stack, about
three quarters of HAProxy's and NGINX's CPU time in peers.py; see cpu_split.py) is not
counted. Keep --callgrind-out files to read with callgrind_annotate.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

from proc_util import log

HERE = os.path.dirname(os.path.abspath(__file__))


def total_ir(path):
    """Instructions in one callgrind output file ("totals:" or "summary:" line)."""
    with open(path) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    return 0


def measure(peers, name, d, seconds, binary, out_prefix):
    if name == "ringress":
        with open(os.path.join(d, "routes.yaml"), "w") as f:
            f.write(peers.ROUTES)
        cmd = [binary, "--routes", os.path.join(d, "routes.yaml"), "--listen", peers.LISTEN,
               "--admin", peers.ADMIN, "--threads", "1"]
    elif name == "haproxy":
        cmd = peers.haproxy_cmd(d)
    else:
        cmd = peers.nginx_cmd(d)
    for old in glob.glob(out_prefix + ".*"):
        os.remove(old)
    env = dict(os.environ, RUST_LOG="error")
    proxy = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--trace-children=yes", "--dump-instr=no",
         "--callgrind-out-file=" + out_prefix + ".%p"] + cmd,
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        if not peers.wait_port(peers.LISTEN, 120):
            sys.exit("%s did not listen under valgrind" % name)
        time.sleep(2)
        out = subprocess.run(
            ["wrk", "-t1", "-c8", "-d%ds" % seconds, "-s", os.path.join(peers.HERE, "keys.lua"),
             "http://" + peers.LISTEN], capture_output=True, text=True).stdout
    finally:
        os.killpg(proxy.pid, 2 if name == "ringress" else 15)
        proxy.wait()
        # Workers (nginx) outlive their master for a moment and write their counts on exit.
        end = time.time() + 30
        while time.time() < end:
            try:
                os.killpg(proxy.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
    m = re.search(r"(\d+) requests in", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    requests = int(m.group(1)) if m else 0
    ir = sum(total_ir(p) for p in glob.glob(out_prefix + ".*"))
    return requests, ir, int(non2xx.group(1)) if non2xx else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="ringress,haproxy,nginx")
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--binary", default="target/release/ringress")
    ap.add_argument("--peers", default=os.path.join(HERE, "peers.py"),
                    help="path of peers.py, whose backends and configurations are used")
    ap.add_argument("--callgrind-out", default=None,
                    help="prefix of the callgrind files kept (default: a temporary directory)")
    a = ap.parse_args()

    sys.path.insert(0, os.path.dirname(os.path.abspath(a.peers)))
    import peers  # noqa: E402 (found at run time)

    d = tempfile.mkdtemp(prefix="ringress-instr-")
    os.chmod(d, 0o755)  # nginx workers run as another user and read the body from here
    cg_dir = os.path.join(d, "callgrind")
    os.makedirs(cg_dir)
    os.chmod(cg_dir, 0o1777)  # ... and write their callgrind files here
    logf = open(os.path.join(d, "backends.log"), "w")  # noqa: SIM115 (lives until exit)
    backends = peers.start(peers.write_backends(d), 0, logf)
    rows = []
    try:
        if not all(peers.wait_port("127.0.0.1:%d" % p) for p in peers.PORTS):
            sys.exit("backends did not start")
        for name in a.only.split(","):
            prefix = a.callgrind_out or os.path.join(cg_dir, name)
            if a.callgrind_out and len(a.only.split(",")) > 1:
                prefix += "-" + name
            log("callgrind: %s for %d s" % (name, a.seconds))
            requests, ir, errors = measure(peers, name, d, a.seconds, a.binary, prefix)
            rows.append((name, requests, ir, errors))
    finally:
        peers.stop(backends)
    print("| proxy | requests | instructions | per request | vs HAProxy | non-2xx |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    base = next((ir / r for n, r, ir, _ in rows if n == "haproxy" and r), None)
    for name, requests, ir, errors in rows:
        per = ir / requests if requests else float("nan")
        ratio = "%.2f×" % (per / base) if base else "–"
        print("| %s | %d | %d | %.1fk | %s | %d |" % (name, requests, ir, per / 1000, ratio, errors))


if __name__ == "__main__":
    main()
