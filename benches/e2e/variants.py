#!/usr/bin/env python3
"""Several ringress builds or flag sets against HAProxy, interleaved round by round, on the setup
of the side-by-side bench (peers.py: its backends on CPU 0 with wrk, its route
file, each proxy alone on CPU 1). For telling two variants apart on a noisy machine: each round
runs HAProxy and every variant back to back, and the summary gives medians of per-round
differences against HAProxy, which the host's drift cancels out of.

Run from the repository root (apt-get install -y nginx-light haproxy wrk):

    python3 benches/e2e/variants.py \\
        now='target/release/ringress' \\
        off='target/release/ringress --fast-path off' \\
        --rounds 6 --seconds 6 [--conns 64] [--zipf]

Each variant is NAME=COMMAND; the route, listen and admin flags are appended (one worker).
"""
import argparse
import statistics
import sys

import peer_rounds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="+", help="NAME=COMMAND")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--zipf", action="store_true")
    ap.add_argument("--peers", default=peer_rounds.DEFAULT_PEERS)
    a = ap.parse_args()
    peers = peer_rounds.load_peers(a.peers)
    commands = {}
    for v in a.variants:
        name, _, cmd = v.partition("=")
        if not cmd or name == "haproxy":
            sys.exit("variants are NAME=COMMAND, NAME not haproxy: %r" % v)
        commands[name] = cmd + " --routes {routes} --listen {listen} --admin {admin} --threads 1"

    def makers(d):
        out = {"haproxy": lambda: peers.haproxy_cmd(d)}
        for name, full in commands.items():
            out[name] = lambda full=full: peers.ours_cmd(d, full)
        return out

    rows = {name: [] for name in ["haproxy"] + list(commands)}
    url = "http://" + peers.LISTEN

    def measure(r, name, proc, _backends, _d):
        peers.run_wrk(url, 1, a.conns, a.zipf)  # warm-up
        before = peers.group_cpu_seconds(proc.pid)
        res = peers.run_wrk(url, a.seconds, a.conns, a.zipf)
        cpu = peers.group_cpu_seconds(proc.pid) - before
        res["cpu"] = 1e6 * cpu / max(1, res["rps"] * a.seconds)
        rows[name].append(res)
        print("round %d %-10s %7.0f req/s  p50 %5.2f  p99 %5.2f ms  cpu %5.1f us/req  "
              "errors %d" % (r + 1, name, res["rps"], res["p50_ms"], res["p99_ms"],
                             res["cpu"], res["errors"]), file=sys.stderr, flush=True)

    peer_rounds.each_target(peers, a.rounds, "variants", makers, measure)

    base = rows["haproxy"]
    print("| target | req/s | p50 ms | p99 ms | CPU µs/req | CPU vs HAProxy | p50 − HAProxy's "
          "| p99 − HAProxy's | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, rs in rows.items():
        def med(key, rs=rs):
            return statistics.median(x[key] for x in rs)

        ratio = statistics.median(x["cpu"] / h["cpu"] for x, h in zip(rs, base))
        d50 = statistics.median(x["p50_ms"] - h["p50_ms"] for x, h in zip(rs, base))
        d99 = statistics.median(x["p99_ms"] - h["p99_ms"] for x, h in zip(rs, base))
        print("| %s | %.0f | %.2f | %.2f | %.1f | %.3f× | %+.2f | %+.2f | %d |"
              % (name, med("rps"), med("p50_ms"), med("p99_ms"), med("cpu"), ratio, d50, d99,
                 sum(x["errors"] for x in rs)))


if __name__ == "__main__":
    main()
