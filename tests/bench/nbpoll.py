#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""nbpoll: operator-side pollers and a process sampler for the benchmarks.

Plays what watches a bridge in production while nbload plays Nudgespot:
Prometheus servers and dashboards scraping GET /metrics, an open console
polling the admin GET /v1/stats.  Each --poll starts CLIENTS threads that
each GET PATH on 127.0.0.1:PORT every EVERY_S seconds (a new connection
per poll; the next poll starts at once when one took longer than the
interval) and time every answer, whole body read.  With "bearer" the
request carries "Authorization: Bearer $NB_BENCH_ADMIN_TOKEN".

--pid PID samples the process every 0.2 s: resident set (VmRSS, and VmHWM
at the end) and open descriptors (entries of /proc/PID/fd).  Runs
--duration seconds (or until SIGTERM / SIGINT) and prints one JSON line.

    nbpoll.py --duration 10 --pid 1234 \\
        --poll metrics,18400,/metrics,4,1 --poll stats,18407,/v1/stats,1,1,bearer

Standard library only.
"""

import argparse
import http.client
import json
import os
import signal
import sys
import threading
import time

SAMPLE_S = 0.2
POLL_TIMEOUT_S = 120


def pct(values, p):
    """Nearest-rank percentile (p in 0..100) of values, or None."""
    if not values:
        return None
    v = sorted(values)
    rank = max(1, min(len(v), int(p / 100.0 * len(v) + 0.999999)))
    return v[rank - 1]


class Poller:
    def __init__(self, spec):
        parts = spec.split(",")
        if len(parts) not in (5, 6) or (len(parts) == 6 and
                                        parts[5] != "bearer"):
            raise ValueError("--poll NAME,PORT,PATH,CLIENTS,EVERY_S[,bearer]")
        self.name, self.path = parts[0], parts[2]
        self.port, self.clients = int(parts[1]), int(parts[3])
        self.every = float(parts[4])
        self.headers = {}
        if len(parts) == 6:
            token = os.environ.get("NB_BENCH_ADMIN_TOKEN", "")
            self.headers["Authorization"] = "Bearer " + token
        self.lat_ms, self.errors, self.status = [], 0, {}
        self.lock = threading.Lock()

    def once(self):
        t0 = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                          timeout=POLL_TIMEOUT_S)
        try:
            conn.request("GET", self.path, headers=self.headers)
            resp = conn.getresponse()
            resp.read()
            ms = (time.monotonic() - t0) * 1000.0
            with self.lock:
                self.lat_ms.append(ms)
                key = str(resp.status)
                self.status[key] = self.status.get(key, 0) + 1
        except (OSError, http.client.HTTPException):
            with self.lock:
                self.errors += 1
        finally:
            conn.close()

    def client(self, idx, stop):
        # Clients of one poller start spread over the interval.
        start = time.monotonic() + self.every * idx / self.clients
        k = 0
        while not stop.is_set():
            due = start + k * self.every
            wait = due - time.monotonic()
            if wait > 0 and stop.wait(wait):
                break
            self.once()
            k += 1

    def result(self):
        with self.lock:
            lat = list(self.lat_ms)
            out = {"count": len(lat), "errors": self.errors,
                   "status": dict(self.status)}
        for name, p in (("p50", 50), ("p90", 90), ("p99", 99)):
            v = pct(lat, p)
            out[name + "_ms"] = None if v is None else round(v, 3)
        out["max_ms"] = round(max(lat), 3) if lat else None
        return out


class Sampler:
    def __init__(self, pid):
        self.pid = pid
        self.rss_max = self.rss_end = 0.0
        self.fds_max = self.fds_end = 0

    def status_kb(self, key):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith(key + ":"):
                        return int(line.split()[1])
        except OSError:
            pass
        return None

    def sample(self):
        rss = self.status_kb("VmRSS")
        try:
            fds = len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            fds = None
        if rss is not None:
            self.rss_end = rss / 1024.0
            self.rss_max = max(self.rss_max, self.rss_end)
        if fds is not None:
            self.fds_end = fds
            self.fds_max = max(self.fds_max, fds)

    def run(self, stop):
        while not stop.is_set():
            self.sample()
            stop.wait(SAMPLE_S)

    def result(self):
        self.sample()
        hwm = self.status_kb("VmHWM")
        return {"rss_max_mb": round(self.rss_max, 1),
                "rss_end_mb": round(self.rss_end, 1),
                "hwm_mb": None if hwm is None else round(hwm / 1024.0, 1),
                "fds_max": self.fds_max, "fds_end": self.fds_end}


def main():
    ap = argparse.ArgumentParser(description="pollers and a sampler")
    ap.add_argument("--duration", type=float, default=3600)
    ap.add_argument("--pid", type=int)
    ap.add_argument("--poll", action="append", default=[])
    args = ap.parse_args()
    try:
        pollers = [Poller(s) for s in args.poll]
    except ValueError as e:
        ap.error(str(e))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    signal.signal(signal.SIGINT, lambda *a: stop.set())
    threads = []
    sampler = Sampler(args.pid) if args.pid else None
    if sampler:
        threads.append(threading.Thread(target=sampler.run, args=(stop,)))
    for p in pollers:
        for i in range(p.clients):
            threads.append(threading.Thread(target=p.client,
                                            args=(i, stop)))
    t0 = time.monotonic()
    for t in threads:
        t.daemon = True
        t.start()
    stop.wait(args.duration)
    stop.set()
    for t in threads:
        t.join(POLL_TIMEOUT_S)
    out = {"tool": "nbpoll",
           "duration_s": round(time.monotonic() - t0, 3),
           "polls": {p.name: p.result() for p in pollers}}
    if sampler:
        out["proc"] = sampler.result()
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
