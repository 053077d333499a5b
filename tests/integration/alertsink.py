# SPDX-License-Identifier: ISC
"""An alert receiver for the integration tests.

It listens on 127.0.0.1 (a free port) and records every POST: the headers,
the body, the time it came and whether its Standard Webhooks signature
verified against ``secret`` (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``: HMAC-SHA256 over ``{id}.{timestamp}.{body}``,
base64, within 5 minutes of our clock), the way a receiver following the
specification checks it.  Tests program its answers:

* ``mode = "ok"`` (204), ``"fail"`` (500), ``"hang"`` (accepts the request
  and never answers until ``close``);
* ``fail_next(n, status)`` answers the next n requests with status, then
  goes back to ``mode``.

Only the standard library is used.
"""

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Alert:
    """One POST the receiver got."""

    def __init__(self, headers, raw, at, verified, status):
        self.headers = headers
        self.raw = raw
        self.at = at
        self.verified = verified
        self.status = status
        try:
            self.body = json.loads(raw)
        except ValueError:
            self.body = None

    def get(self, key, default=None):
        return self.body.get(key, default) if isinstance(self.body, dict) \
            else default

    def __repr__(self):
        return "<Alert %s %s %s %s>" % (self.get("alert"), self.get("status"),
                                        self.get("source"), self.status)


def verify(secret, headers, raw, tolerance=300):
    """True when one v1 entry of webhook-signature verifies."""
    mid = headers.get("webhook-id")
    ts = headers.get("webhook-timestamp")
    sig = headers.get("webhook-signature")
    if not (secret and mid and ts and sig):
        return False
    try:
        if abs(time.time() - int(ts)) > tolerance:
            return False
    except ValueError:
        return False
    key = base64.b64decode(secret[len("whsec_"):])
    want = hmac.new(key, ("%s.%s." % (mid, ts)).encode() + raw,
                    hashlib.sha256).digest()
    for entry in sig.split(" "):
        version, _, b64 = entry.partition(",")
        if version != "v1":
            continue
        try:
            if hmac.compare_digest(base64.b64decode(b64), want):
                return True
        except ValueError:
            continue
    return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass    # a client that went away is not the test's business


class AlertSink:
    def __init__(self, secret=None):
        self.secret = secret
        self.mode = "ok"
        self._fail = []
        self._lock = threading.Lock()
        self._alerts = []
        self._release = threading.Event()
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d/alerts" % self.port
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        daemon=True)
        self._thread.start()

    def fail_next(self, n, status=500):
        with self._lock:
            self._fail.extend([status] * n)

    def close(self):
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    @property
    def alerts(self):
        with self._lock:
            return list(self._alerts)

    def delivered(self):
        """Alerts answered 2xx, in arrival order."""
        return [a for a in self.alerts if 200 <= a.status < 300]

    def find(self, alert=None, status=None, source=None, delivered=True):
        out = []
        for a in (self.delivered() if delivered else self.alerts):
            if alert is not None and a.get("alert") != alert:
                continue
            if status is not None and a.get("status") != status:
                continue
            if source is not None and a.get("source") != source:
                continue
            out.append(a)
        return out

    def wait(self, alert=None, status=None, source=None, count=1,
             timeout=20.0, delivered=True):
        deadline = time.monotonic() + timeout
        while True:
            got = self.find(alert, status, source, delivered)
            if len(got) >= count or time.monotonic() > deadline:
                return got
            time.sleep(0.05)

    def _decide(self):
        with self._lock:
            if self._fail:
                return self._fail.pop(0)
        return {"ok": 204, "fail": 500, "hang": None}[self.mode]

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                headers = {k.lower(): v for k, v in self.headers.items()}
                status = sink._decide()
                a = Alert(headers, raw, time.time(),
                          verify(sink.secret, headers, raw),
                          status if status is not None else 0)
                with sink._lock:
                    sink._alerts.append(a)
                if status is None:
                    sink._release.wait()
                    return
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
