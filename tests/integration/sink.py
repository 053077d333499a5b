# SPDX-License-Identifier: ISC
"""A Segment stand-in for the integration tests.

It listens on 127.0.0.1 (a free port), records every POST /v1/batch (the
Authorization header, the parsed body, the time it arrived and the answer it
got) and checks HTTP Basic auth against the write key it expects (401
otherwise).  Tests program its answers:

* ``mode = "ok"`` (200), ``"fail"`` (500), ``"429"`` (429 with Retry-After),
  ``"401"`` (401 whatever the key), ``"hang"`` (sleeps ``hang_s`` seconds and
  then answers 500), ``"slow"`` (sleeps ``hang_s`` seconds, then answers
  as in ``"ok"``);
* ``fail_next(n, status)`` answers the next n requests with status, then
  goes back to ``mode``;
* ``poison`` is a set of messageIds or event names: a batch containing one of
  them gets 400, as Segment does for a malformed message.

Only the standard library is used.
"""

import base64
import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Batch:
    """One request the sink received."""

    def __init__(self, auth, body, raw, at, status):
        self.auth = auth
        self.body = body
        self.raw = raw
        self.at = at
        self.status = status

    @property
    def messages(self):
        if isinstance(self.body, dict):
            return self.body.get("batch") or []
        return []


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The bridge killed with -9 or timing out resets connections.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Sink:
    def __init__(self, write_key="wk_test"):
        self.write_key = write_key
        self.lock = threading.Condition()
        self.batches = []
        self.mode = "ok"
        self.retry_after = "1"
        self.hang_s = 5.0
        self.poison = set()
        self._fail_next = []
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    # -- programming ----------------------------------------------------

    def set_mode(self, mode, retry_after="1", hang_s=5.0):
        with self.lock:
            self.mode = mode
            self.retry_after = retry_after
            self.hang_s = hang_s

    def fail_next(self, n, status=500):
        with self.lock:
            self._fail_next.extend([status] * n)

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- reading --------------------------------------------------------

    def all_batches(self):
        with self.lock:
            return list(self.batches)

    def accepted_messages(self):
        """Messages of batches answered 2xx, in order of arrival."""
        with self.lock:
            out = []
            for b in self.batches:
                if 200 <= b.status < 300:
                    out.extend(b.messages)
            return out

    def accepted_ids(self):
        return {m.get("messageId") for m in self.accepted_messages()}

    def by_message_id(self):
        """messageId -> first accepted message."""
        out = {}
        for m in self.accepted_messages():
            out.setdefault(m.get("messageId"), m)
        return out

    def wait_for(self, pred, timeout=10.0):
        """Waits until pred() is true; returns its last value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                self.lock.release()
                try:
                    v = pred()
                finally:
                    self.lock.acquire()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return v
                self.lock.wait(min(left, 0.05))

    def wait_ids(self, ids, timeout=10.0):
        """Waits until every messageId of ids was accepted; returns missing."""
        ids = set(ids)
        self.wait_for(lambda: ids <= self.accepted_ids(), timeout)
        return ids - self.accepted_ids()

    def wait_count(self, k, timeout=10.0):
        """Waits until k unique messageIds were accepted; returns how many."""
        self.wait_for(lambda: len(self.accepted_ids()) >= k, timeout)
        return len(self.accepted_ids())

    def wait_requests(self, k, timeout=10.0):
        self.wait_for(lambda: len(self.all_batches()) >= k, timeout)
        return len(self.all_batches())

    # -- the server -----------------------------------------------------

    def _decide(self, auth, body):
        with self.lock:
            if self._fail_next:
                return self._fail_next.pop(0), None
            mode = self.mode
            ra = self.retry_after
            hang = self.hang_s
            poison = set(self.poison)
        if mode == "hang":
            time.sleep(hang)
            return 500, None
        if mode == "slow":
            time.sleep(hang)
        if mode == "fail":
            return 500, None
        if mode == "429":
            return 429, ra
        if mode == "401":
            return 401, None
        expected = "Basic " + base64.b64encode(
            (self.write_key + ":").encode()).decode()
        if auth != expected:
            return 401, None
        if not isinstance(body, dict) or not isinstance(body.get("batch"),
                                                         list):
            return 400, None
        if poison:
            for m in body["batch"]:
                if not isinstance(m, dict):
                    return 400, None
                if m.get("messageId") in poison or m.get("event") in poison:
                    return 400, None
        return 200, None

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body, retry_after=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                if self.path != "/v1/batch":
                    self._answer(404, {"error": "not found"})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                auth = self.headers.get("Authorization")
                status, ra = sink._decide(auth, body)
                b = Batch(auth, body, raw, time.monotonic(), status)
                b.content_type = self.headers.get("Content-Type")
                with sink.lock:
                    sink.batches.append(b)
                    sink.lock.notify_all()
                try:
                    self._answer(status, {"success": status == 200}, ra)
                except OSError:
                    pass

            def do_GET(self):
                self._answer(404, {"error": "not found"})

        return Handler
