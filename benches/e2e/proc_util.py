"""Helpers shared by the end-to-end bench scripts: processes they start (all stopped on exit),
free ports, HTTP GETs, /proc figures and atomic file replacement."""
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

PROCS = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    """A port free on every address (so 127.x.y.z:PORT is free too)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


def wait_port(host, port, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def start(cmd, logf, cpus=None):
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGINT):
    if p is None:
        return
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
            p.wait(timeout=10)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    if p in PROCS:
        PROCS.remove(p)


def stop_all():
    for p in list(PROCS):
        stop(p, signal.SIGKILL if p.poll() is None else signal.SIGINT)


def on_signal(signum, _frame):
    stop_all()
    sys.exit(128 + signum)


def http_get(url, timeout=5.0):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def proc_status(pid, field):
    """A kB field of /proc/PID/status (VmHWM, VmRSS), in MiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return None


CLK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime, stime (all threads)


def metric(admin, name):
    """Sum of a metric's samples (no labels needed here); None when absent."""
    status, text = http_get("http://%s/metrics" % admin)
    if status != 200:
        return None
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith(name + " ") or line.startswith(name + "{")]
    return sum(values) if values else None


def write(path, text):
    """Replaces the file atomically, as Kubernetes swaps a ConfigMap."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)
