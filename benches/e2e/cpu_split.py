#!/usr/bin/env python3
"""Where a proxy's CPU per request goes: user space (the proxy's own code) against the kernel
(the TCP stack, wake-ups, syscalls), for ringress, HAProxy and NGINX on the traffic and setup of
the side-by-side bench (peers.py: its backends, configurations and key script,
the proxy alone on CPU 1, wrk and the backends on CPU 0).

Run from the repository root (apt-get install -y nginx-light haproxy wrk; perf and strace for
the optional columns):

    python3 benches/e2e/cpu_split.py                   # 3 interleaved rounds of 8 s
    python3 benches/e2e/cpu_split.py --perf --strace   # + kernel share by perf, syscalls/request

user and sys are the process group's utime and stime from /proc (clock ticks) over the round,
divided by the requests wrk completed; medians over the rounds. --perf samples CPU 1 for 5 s of
an extra round and reports the share of samples in the kernel; --strace counts the syscalls of
an extra 3 s round (strace slows the proxy, so only the count per request is kept).

The last lines turn issue 8's bars into a user-space budget: what is left of 0.8 x HAProxy's
(and 0.9 x NGINX's) CPU per request after HAProxy's own kernel time, which any proxy with the
same four socket calls per request pays as well.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

import peer_rounds



def group_pids(pgid):
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open("/proc/%s/stat" % pid) as f:
                    if int(f.read().rsplit(")", 1)[1].split()[2]) == pgid:
                        out.append(pid)
            except OSError:
                pass
    return out


def wrk_background(peers, seconds, conns):
    return subprocess.Popen(
        ["taskset", "-c", "0", "wrk", "-t1", "-c%d" % conns, "-d%ds" % seconds,
         "-s", os.path.join(peers.HERE, "keys.lua"), "http://" + peers.LISTEN],
        stdout=subprocess.DEVNULL)


def kernel_share(peers, conns, out):
    """Share of CPU 1's samples (the proxy's core) that fall in the kernel, by perf."""
    w = wrk_background(peers, 8, conns)
    time.sleep(1.5)
    subprocess.run(["perf", "record", "-q", "-C", "1", "-o", out, "--", "sleep", "5"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    w.wait()
    rep = subprocess.run(["perf", "report", "-i", out, "--sort", "dso", "--stdio"],
                         capture_output=True, text=True).stdout
    kernel = total = 0.0
    for line in rep.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].endswith("%"):
            share = float(parts[0][:-1])
            total += share
            if parts[1] == "[kernel.kallsyms]":
                kernel += share
    return 100 * kernel / total if total else None


def syscalls_per_request(peers, pgid, conns, out):
    args = ["strace", "-c", "-f", "-o", out]
    for pid in group_pids(pgid):
        args += ["-p", pid]
    st = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    time.sleep(1)
    res = peers.run_wrk("http://" + peers.LISTEN, 3, conns, False)
    st.send_signal(2)
    st.wait()
    calls = {}
    with open(out) as f:
        for line in f:
            p = line.split()
            if len(p) >= 5 and p[0][0].isdigit() and p[-1] != "total":
                try:
                    calls[p[-1]] = int(p[3])
                except ValueError:
                    pass
    n = res["rps"] * 3
    if not n:
        return None, ""
    top = sorted(calls.items(), key=lambda kv: -kv[1])
    detail = ", ".join("%s %.2f" % (k, v / n) for k, v in top if v / n >= 0.05)
    return sum(calls.values()) / n, detail


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default="target/release/ringress")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--conns", type=int, default=64)
    ap.add_argument("--perf", action="store_true", help="kernel share of CPU 1's samples by perf")
    ap.add_argument("--strace", action="store_true", help="syscalls per request by strace -c")
    ap.add_argument("--peers", default=peer_rounds.DEFAULT_PEERS)
    a = ap.parse_args()
    peers = peer_rounds.load_peers(a.peers)
    rows = {t: [] for t in peer_rounds.NAMES}
    extra = {t: {} for t in peer_rounds.NAMES}
    last = a.rounds - 1

    def measure(r, t, proc, _backends, d):
        peers.run_wrk("http://" + peers.LISTEN, 2, a.conns, False)
        u0, s0 = peers.group_split(proc.pid)
        res = peers.run_wrk("http://" + peers.LISTEN, a.seconds, a.conns, False)
        u1, s1 = peers.group_split(proc.pid)
        n = max(1, res["rps"] * a.seconds)
        row = {"rps": res["rps"], "user": 1e6 * (u1 - u0) / n,
               "sys": 1e6 * (s1 - s0) / n, "errors": res["errors"]}
        rows[t].append(row)
        print("round %d %-8s %7.0f req/s  user %5.1f  sys %5.1f us/req  errors %d"
              % (r + 1, t, row["rps"], row["user"], row["sys"], row["errors"]),
              file=sys.stderr, flush=True)
        if r == last and a.perf:
            extra[t]["kernel"] = kernel_share(peers, a.conns, os.path.join(d, "perf-%s.data" % t))
        if r == last and a.strace:
            extra[t]["syscalls"] = syscalls_per_request(
                peers, proc.pid, a.conns, os.path.join(d, "strace-%s" % t))

    peer_rounds.each_proxy(peers, a.binary, a.rounds, "split", measure)

    med = {t: {k: statistics.median(x[k] for x in rs) for k in ("rps", "user", "sys")}
           for t, rs in rows.items()}
    print("| proxy | req/s | user µs/req | sys µs/req | total | sys share | kernel share (perf) "
          "| syscalls/req | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for t, m in med.items():
        total = m["user"] + m["sys"]
        kernel = extra[t].get("kernel")
        calls, detail = extra[t].get("syscalls", (None, ""))
        print("| %s | %.0f | %.1f | %.1f | %.1f | %.0f%% | %s | %s | %d |" % (
            t, m["rps"], m["user"], m["sys"], total, 100 * m["sys"] / total if total else 0,
            "%.0f%%" % kernel if kernel is not None else "–",
            "%.2f (%s)" % (calls, detail) if calls is not None else "–",
            sum(x["errors"] for x in rows[t])))
    hap, ngx = med["haproxy"], med["nginx"]
    hap_total, ngx_total = hap["user"] + hap["sys"], ngx["user"] + ngx["sys"]
    kernel_floor = min(hap["sys"], ngx["sys"])
    for name, bar, total, peer in (("0.8 x HAProxy", 0.8, hap_total, hap),
                                   ("0.9 x NGINX", 0.9, ngx_total, ngx)):
        budget = bar * total - kernel_floor
        print("%s = %.1f µs/req; less the lower peer kernel time (%.1f) leaves %.1f µs of user "
              "space = %.0f%% of that peer's own user time (%.1f)"
              % (name, bar * total, kernel_floor, budget, 100 * budget / peer["user"],
                 peer["user"]))


if __name__ == "__main__":
    main()
