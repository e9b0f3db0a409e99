"""Shared by the scripts that run ringress, HAProxy and NGINX on the side-by-side bench's setup
(peers.py, beside this file): its backends on CPU 0, each proxy in turn alone on CPU 1."""
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_PEERS = os.path.join(HERE, "peers.py")


def load_peers(path):
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    import peers  # noqa: E402 (found at run time)

    return peers


def each_proxy(peers, binary, rounds, tag, measure):
    """Calls measure(round, name, proxy process, backends, work dir) for HAProxy, NGINX and
    ringress in each round, with the proxy listening and the backends up; returns the work dir."""
    ours = binary + " --routes {routes} --listen {listen} --admin {admin} --threads 1"
    return each_target(peers, rounds, tag, lambda d: {
        "haproxy": lambda: peers.haproxy_cmd(d), "nginx": lambda: peers.nginx_cmd(d),
        "ringress": lambda: peers.ours_cmd(d, ours)}, measure)


def each_target(peers, rounds, tag, makers_in, measure):
    """As each_proxy, for the targets of makers_in(work dir): name -> command maker, in order."""
    d = tempfile.mkdtemp(prefix="ringress-%s-" % tag)
    os.chmod(d, 0o755)
    logf = open(os.path.join(d, "procs.log"), "w")  # noqa: SIM115 (lives until exit)
    makers = makers_in(d)
    backends = peers.start(peers.write_backends(d), 0, logf)
    try:
        if not all(peers.wait_port("127.0.0.1:%d" % p) for p in peers.PORTS):
            sys.exit("backends did not start; see %s" % d)
        for r in range(rounds):
            for name, make in makers.items():
                proc = peers.start(make(), 1, logf)
                try:
                    if not peers.wait_port(peers.LISTEN):
                        sys.exit("%s did not listen; see %s/procs.log" % (name, d))
                    measure(r, name, proc, backends, d)
                finally:
                    peers.stop(proc)
                    peers.wait_closed(peers.LISTEN)
    finally:
        peers.stop(backends)
    return d


NAMES = ("haproxy", "nginx", "ringress")
