# SPDX-License-Identifier: ISC
"""Helpers for the fault and hostile-input tests, on top of harness/sink.

harness.py and sink.py are shared with the other integration tests and are
used as they are; what the fault tests need besides lives here:

* ``Poster``: a thread that posts signed single-event webhooks to a bridge
  without pause, the way Nudgespot does: an answer other than 200 (503, a
  reset connection, a refused one) is retried with the same webhook-id and
  event until it gets a 200, so every event it ever sent is acknowledged in
  the end, and it records the event ids that got their 200;
* ``ReservedPort`` and ``SinkOnPort``: a port held, bound but not
  listening (connections to it are refused), so that no other test's server
  takes it while the bridge is refused, then the Segment stand-in started
  on it (to turn "connection refused" into a live endpoint at the same
  URL);
* ``Tmpfs``: a size-limited tmpfs mount (root only) for the disk-full test;
* ``raw_request``: an HTTP request written byte for byte on a socket, for
  the malformed requests http.client refuses to send;
* ``check_deliveries``: the crash-safety verdict over a sink's records.

Everything stays on 127.0.0.1; only the standard library is used.
"""

import collections
import http.client
import json
import os
import socket
import subprocess
import tempfile
import threading
import time

import sink as sink_module
from harness import event, message_id, new_id
from sink import Sink


class Poster(threading.Thread):
    """Posts signed single-event webhooks continuously to bridge/source."""

    def __init__(self, bridge, source="acme", pause_s=0.0, give_up_s=30.0):
        super().__init__(daemon=True)
        self.bridge = bridge
        self.source = source
        self.pause_s = pause_s
        self.give_up_s = give_up_s
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.acked = []           # event ids answered 200, in order
        self.sent = set()         # every event id ever posted
        self.statuses = collections.Counter()  # status or exception name
        self.unexpected = []      # answers that are neither 200 nor 503
        self.unacked = []         # gave up on these (bridge never came back)

    def stop(self, timeout=40.0):
        """Stops after the event in hand is acknowledged; joins."""
        self.stopping.set()
        self.join(timeout)

    def _one(self):
        n = len(self.sent)
        ev = event(id=new_id("evt"), type="email.opened",
                   uid="u_%d" % (n % 97),
                   message={"id": "msg_%d" % n, "subject": "Crash %d" % n},
                   properties={"n": n})
        body = json.dumps(ev).encode()
        msg = new_id("msg")
        with self.lock:
            self.sent.add(ev["id"])
        deadline = time.monotonic() + self.give_up_s
        while time.monotonic() < deadline:
            try:
                r = self.bridge.post(self.source, body, id=msg)
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                status, r = type(e).__name__, None
            with self.lock:
                self.statuses[status] += 1
            if status == 200:
                with self.lock:
                    self.acked.append(ev["id"])
                return
            if r is not None and status != 503:
                with self.lock:
                    self.unexpected.append((ev["id"], r))
                return
            time.sleep(0.01)
        with self.lock:
            self.unacked.append(ev["id"])

    def run(self):
        while not self.stopping.is_set():
            self._one()
            if self.pause_s:
                time.sleep(self.pause_s)

    def acked_ids(self):
        with self.lock:
            return list(self.acked)


class ReservedPort:
    """A port on 127.0.0.1 bound but not listening until release().

    A connection to it is refused, as to a free port, but the kernel hands
    it to no one else meanwhile: without SO_REUSEADDR no other socket may
    bind it, and no bind to port 0 is given it.  free_port() alone leaves
    a gap in which a test running beside this one can take the port for a
    server of its own, and the bridge then talks to that server.
    """

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    def release(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class SinkOnPort(Sink):
    """A sink.Sink listening on the given port instead of a free one."""

    def __init__(self, write_key, port):
        real = sink_module._Server

        class Fixed(real):
            def __init__(self, _addr, handler):
                super().__init__(("127.0.0.1", port), handler)

        sink_module._Server = Fixed
        try:
            super().__init__(write_key)
        finally:
            sink_module._Server = real


class Tmpfs:
    """A tmpfs of the given size mounted on a new folder (root only)."""

    def __init__(self, size="2m"):
        self.dir = tempfile.mkdtemp(prefix="nb-tmpfs-")
        self.mounted = False
        self.size = size

    def mount(self):
        """None on success, else the reason it cannot be used."""
        if os.geteuid() != 0:
            return "not root: cannot mount a tmpfs"
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + self.size,
                            "tmpfs", self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        if p.returncode != 0:
            return "mount -t tmpfs failed: %s" % p.stdout.decode().strip()
        self.mounted = True
        return None

    def resize(self, size):
        subprocess.run(["mount", "-o", "remount,size=" + size, self.dir],
                       check=True, timeout=10)
        self.size = size

    def free_bytes(self):
        st = os.statvfs(self.dir)
        return st.f_bavail * st.f_frsize

    def cleanup(self):
        if self.mounted:
            subprocess.run(["umount", "-l", self.dir], timeout=10)
            self.mounted = False
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


def raw_request(port, data, timeout=10.0):
    """Writes data (bytes) on a new connection to 127.0.0.1:port.

    Returns (status or None, headers dict lower-cased, body bytes, seconds):
    status None when the server closed without an answer.
    """
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:
            pass  # the server may answer and close before reading it all
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not c:
                break
            chunks.append(c)
            if _complete(b"".join(chunks)):
                break
    raw = b"".join(chunks)
    secs = time.monotonic() - t0
    if not raw.startswith(b"HTTP/"):
        return None, {}, raw, secs
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers, body, secs


def _complete(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip() or 0)
    return False


def strip_sent_at(m):
    return {k: v for k, v in m.items() if k != "sentAt"}


def check_deliveries(sink, source, acked, install):
    """The crash-safety verdict: a dict of counts and problems.

    acked: event ids answered 200; install: the store's install id.  Looks
    at every message of every batch the sink answered 2xx: each must carry
    the messageId of an acknowledged event, copies of one messageId must be
    the same Track message (apart from sentAt, which belongs to the batch),
    and every acknowledged event must be there.
    """
    want = {message_id(source, i, install): i for i in acked}
    seen = {}
    dup = 0
    foreign = []
    differing = []
    for m in sink.accepted_messages():
        mid = m.get("messageId")
        if mid not in want:
            foreign.append(mid)
            continue
        if mid in seen:
            dup += 1
            if strip_sent_at(seen[mid]) != strip_sent_at(m):
                differing.append(mid)
        else:
            seen[mid] = m
    missing = sorted(want[k] for k in set(want) - set(seen))
    return {
        "acknowledged": len(want),
        "delivered_unique": len(seen),
        "duplicate_deliveries": dup,
        "missing": missing,
        "foreign": foreign,
        "differing": differing,
    }


def patch_for_slow_binary(start_timeout=90.0, stop_timeout=60.0):
    """Adapts harness.Bridge to a binary run under valgrind.

    Start-up gets start_timeout seconds instead of 10, and a bridge a test
    leaves running is stopped with SIGTERM (waiting up to stop_timeout
    seconds for its drain) instead of SIGKILL, so valgrind writes its leak
    report at exit.  Tests that kill -9 on purpose still do.  Used by
    tests/valgrind.sh; harness.py itself is not changed.
    """
    import harness

    orig_wait = harness.Bridge.wait_healthy
    orig_stop = harness.Bridge.stop

    def wait_healthy(self, timeout=10.0):
        return orig_wait(self, max(timeout, start_timeout))

    def stop(self):
        if self.alive():
            self.terminate(timeout=stop_timeout)
        orig_stop(self)

    harness.Bridge.wait_healthy = wait_healthy
    harness.Bridge.stop = stop
