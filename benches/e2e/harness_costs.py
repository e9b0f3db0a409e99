#!/usr/bin/env python3
"""What each proxy costs the rest of the side-by-side bench: TCP segments per request on every
hop, upstream connections, how often the proxy sleeps, and the time per request of CPU 0, where wrk
and the backends run (peers.py: its backends, configurations and key script; the
proxy alone on CPU 1, wrk and the backends on CPU 0).

Run from the repository root (apt-get install -y nginx-light haproxy wrk):

    python3 benches/e2e/harness_costs.py              # 2 interleaved rounds

Why: peers.py's throughput and p99 are set by CPU 0 once it is saturated (its idle time per request
is in the table), so a proxy can use less CPU per request than another and still get fewer requests
through. Each round runs wrk for 7 s and measures a 4 s window inside it: segments from the `ss -ti`
counters of every established connection of each hop (data segments; all segments, ACKs included,
in brackets), voluntary context switches of the proxy's threads (/proc/PID/task/*/status), the busy
and idle time of CPU 0 (/proc/stat) and the backends' CPU time, each divided by the requests wrk
completed in the window. Hop counts assume the connections live through the window: NGINX
replaces its upstream connections (its keepalive pool is smaller than the load), so its upstream
hops read low.
"""
import argparse
import glob
import re
import statistics
import subprocess
import sys
import threading
import time

import peer_rounds

HOPS = ["client->proxy", "proxy->backend", "backend->proxy", "proxy->client"]


def segments(peers):
    """Data and all segments sent so far on each hop's established connections."""
    out = subprocess.run(["ss", "-tinH", "state", "established"],
                         capture_output=True, text=True).stdout.splitlines()
    listen = int(peers.LISTEN.rsplit(":", 1)[1])
    totals = {hop: [0, 0] for hop in HOPS}
    upstream = 0
    for head, info in zip(out[::2], out[1::2]):
        fields = head.split()
        local = int(fields[2].rsplit(":", 1)[1])
        peer = int(fields[3].rsplit(":", 1)[1])
        hop = {(True, False): "proxy->client", (False, True): "client->proxy"}.get(
            (local == listen, peer == listen))
        if hop is None and local in peers.PORTS:
            hop = "backend->proxy"
        elif hop is None and peer in peers.PORTS:
            hop, upstream = "proxy->backend", upstream + 1
        if hop is None:
            continue
        data = re.search(r"data_segs_out:(\d+)", info)
        every = re.search(r" segs_out:(\d+)", info)
        totals[hop][0] += int(data.group(1)) if data else 0
        totals[hop][1] += int(every.group(1)) if every else 0
    return totals, upstream


def voluntary_switches(pgid):
    total = 0
    pids = subprocess.run(["pgrep", "-g", str(pgid)], capture_output=True, text=True).stdout
    for pid in pids.split():
        for task in glob.glob("/proc/%s/task/*/status" % pid):
            try:
                with open(task) as f:
                    total += int(f.read().split("\nvoluntary_ctxt_switches:")[1].split()[0])
            except (OSError, IndexError):
                continue
    return total


def cpu0():
    """(busy, idle) clock ticks of CPU 0."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu0 "):
                v = list(map(int, line.split()[1:]))
                return v[0] + v[1] + v[2] + v[5] + v[6] + v[7], v[3] + v[4]
    raise RuntimeError("no cpu0 in /proc/stat")


def measure(peers, proxy_pgid, backends_pgid, conns):
    res = {}
    wrk = threading.Thread(target=lambda: res.update(
        peers.run_wrk("http://" + peers.LISTEN, 7, conns, False)))
    wrk.start()
    time.sleep(2)
    seg0, _ = segments(peers)
    vol0, (busy0, idle0), back0 = voluntary_switches(proxy_pgid), cpu0(), peers.group_cpu_seconds(backends_pgid)
    start = time.time()
    time.sleep(4)
    seg1, upstream = segments(peers)
    vol1, (busy1, idle1), back1 = voluntary_switches(proxy_pgid), cpu0(), peers.group_cpu_seconds(backends_pgid)
    window = time.time() - start
    wrk.join()
    n = max(1.0, res["rps"] * window)
    tick = 1e6 / peers.CLK / n
    row = {"rps": res["rps"], "errors": res["errors"], "upstream": upstream,
           "switches": (vol1 - vol0) / n, "cpu0": (busy1 - busy0) * tick,
           "idle0": (idle1 - idle0) * tick, "backends": (back1 - back0) * 1e6 / n}
    for hop in HOPS:
        row[hop] = ((seg1[hop][0] - seg0[hop][0]) / n, (seg1[hop][1] - seg0[hop][1]) / n)
    return row


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/ringress")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--peers", default=peer_rounds.DEFAULT_PEERS)
    a = ap.parse_args()
    peers = peer_rounds.load_peers(a.peers)
    rows = {t: [] for t in peer_rounds.NAMES}

    def one(r, t, proc, backends, _d):
        row = measure(peers, proc.pid, backends.pid, a.conns)
        rows[t].append(row)
        print("round %d %-8s %7.0f req/s  CPU 0 %.1f us/req (idle %.1f), backends %.1f, "
              "proxy sleeps %.2f/req" % (r + 1, t, row["rps"], row["cpu0"], row["idle0"],
                                         row["backends"], row["switches"]),
              file=sys.stderr, flush=True)

    peer_rounds.each_proxy(peers, a.binary, a.rounds, "harness", one)

    med = lambda t, k: statistics.median(x[k] for x in rows[t])  # noqa: E731
    print("| proxy | req/s | CPU 0 µs/req | CPU 0 idle µs/req | backends µs/req | proxy sleeps/req "
          "| upstream conns | " + " | ".join("%s segs/req" % h for h in HOPS) + " | errors |")
    print("| --- " + "| ---: " * (7 + len(HOPS)) + "|")
    for t in peer_rounds.NAMES:
        segs = " | ".join("%.2f (%.2f)" % (statistics.median(x[h][0] for x in rows[t]),
                                           statistics.median(x[h][1] for x in rows[t]))
                          for h in HOPS)
        print("| %s | %.0f | %.1f | %.1f | %.1f | %.2f | %d | %s | %d |" % (
            t, med(t, "rps"), med(t, "cpu0"), med(t, "idle0"), med(t, "backends"),
            med(t, "switches"), med(t, "upstream"), segs, sum(x["errors"] for x in rows[t])))


if __name__ == "__main__":
    main()
