# SPDX-License-Identifier: ISC
"""Slow and abusive clients (docs/security.md, "Hostile senders").

A thousand idle connections and fifty byte-at-a-time senders must not stop
a real sender from getting its 200; a request trickled one byte at a time
is cut at limits.request_timeout_s even though every byte resets evhttp's
idle timer; connections above limits.max_connections are closed at once;
oversized headers, bodies over the limit (also chunked) and a header with
10,000 signature entries are answered quickly and cheaply; guessing the
admin token is logged and locked out, and without a token the admin API
does not listen at all, whatever its address.  Everything runs
on 127.0.0.1 and every wait is bounded.
"""

import http.client
import json
import resource
import socket
import threading
import time
import unittest

from harness import BridgeCase, event, free_port, http_request, new_id, sign

IDLE = 1000
TRICKLERS = 50


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE,
                           (min(hard, max(need, soft)), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connect(port, timeout=5.0):
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


def closed_within(sock, seconds):
    """Seconds until the peer closed sock (EOF or reset), or None."""
    t0 = time.monotonic()
    sock.settimeout(0.1)
    while time.monotonic() - t0 < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - t0
        except socket.timeout:
            continue
        except OSError:
            return time.monotonic() - t0
    return None


def read_response(sock, timeout=5.0):
    """(status, headers dict, body, closed) of one HTTP/1.1 answer."""
    sock.settimeout(timeout)
    f = sock.makefile("rb")
    r = http.client.HTTPResponse(sock)
    r.fp = f
    r.begin()
    body = r.read()
    headers = {k.lower(): v for k, v in r.getheaders()}
    try:
        rest = sock.recv(1)
        closed = rest == b""
    except socket.timeout:
        closed = False
    except OSError:
        closed = True
    return r.status, headers, body, closed


class Trickler(threading.Thread):
    """Sends a never-ending request one byte at a time on many sockets."""

    def __init__(self, socks, interval=0.2):
        super().__init__(daemon=True)
        self.socks = list(socks)
        self.interval = interval
        self.stop = threading.Event()
        self.sent = 0
        self.line = (b"POST /v1/webhooks/acme HTTP/1.1\r\nHost: x\r\n" +
                     b"X-Slow: " + b"a" * 100000)

    def run(self):
        i = 0
        while not self.stop.is_set() and i < len(self.line):
            for s in list(self.socks):
                try:
                    s.send(self.line[i:i + 1])
                    self.sent += 1
                except OSError:
                    self.socks.remove(s)
            i += 1
            self.stop.wait(self.interval)


class TestSlowClients(BridgeCase):

    START = False

    def test_idle_and_trickling_connections_do_not_block(self):
        if raise_nofile(IDLE + TRICKLERS + 200) < IDLE + TRICKLERS + 100:
            self.skipTest("cannot open %d sockets here" % (IDLE + TRICKLERS))
        b = self.make_bridge(config={"limits": {"request_timeout_s": 60}})
        socks = []
        self.addCleanup(lambda: [s.close() for s in socks])
        for _ in range(IDLE):
            socks.append(connect(b.port))
        slow = [connect(b.port) for _ in range(TRICKLERS)]
        socks.extend(slow)
        t = Trickler(slow)
        t.start()
        self.addCleanup(t.stop.set)
        time.sleep(1.0)  # the bridge has accepted them all by now
        self.assertGreater(t.sent, TRICKLERS)
        t0 = time.monotonic()
        r = b.post("acme", [event()])
        elapsed = time.monotonic() - t0
        self.assertCounts(r, 1, 0, 0)
        self.assertLess(elapsed, 2.0, "webhook took %.2fs" % elapsed)
        t0 = time.monotonic()
        self.assertEqual(b.get("/healthz").status, 200)
        self.assertLess(time.monotonic() - t0, 2.0)
        # None of the abusers got an answer or was dropped early.
        self.assertEqual(len(t.socks), TRICKLERS)
        self.assertTrue(b.alive())

    def test_trickle_is_cut_at_the_request_deadline(self):
        # Each byte comes well inside read_timeout_s (evhttp's idle timer),
        # so only the whole-request deadline can end it.
        b = self.make_bridge(config={"limits": {"request_timeout_s": 2,
                                                "read_timeout_s": 30}})
        s = connect(b.port)
        self.addCleanup(s.close)
        t = Trickler([s], interval=0.25)
        t.start()
        self.addCleanup(t.stop.set)
        took = closed_within(s, 10.0)
        t.stop.set()
        self.assertIsNotNone(took, "a trickling client was never cut")
        self.assertGreater(took, 1.5)
        self.assertLess(took, 6.0)
        self.assertTrue(b.wait_log(r"connections closed by the guard.*"
                                   r"deadline=1"), b.log())
        # An idle connection is cut by the same deadline.
        s2 = connect(b.port)
        self.addCleanup(s2.close)
        took = closed_within(s2, 10.0)
        self.assertIsNotNone(took)
        self.assertLess(took, 6.0)
        # Keep-alive: the deadline restarts after each answer.
        conn = http.client.HTTPConnection("127.0.0.1", b.port, timeout=5)
        self.addCleanup(conn.close)
        for _ in range(3):
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            self.assertEqual(r.status, 200)
            time.sleep(1.0)

    def test_connections_over_the_limit_are_closed(self):
        b = self.make_bridge(config={"limits": {"max_connections": 20}})
        held = [connect(b.port) for _ in range(20)]
        self.addCleanup(lambda: [s.close() for s in held])
        time.sleep(0.3)
        extra = [connect(b.port) for _ in range(10)]
        self.addCleanup(lambda: [s.close() for s in extra])
        for s in extra:
            self.assertIsNotNone(closed_within(s, 3.0),
                                 "a connection over the limit stayed open")
        for s in held:
            s.settimeout(0.05)
            with self.assertRaises(socket.timeout):
                s.recv(1)
        self.assertTrue(b.wait_log(r"over_limit=\d+"), b.log())
        # Slots come back as soon as connections close.
        for s in held:
            s.close()
        held.clear()
        deadline = time.monotonic() + 5
        while True:
            try:
                r = b.post("acme", [event()])
                break
            except (OSError, http.client.HTTPException):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.assertCounts(r, 1, 0, 0)


class TestOversized(BridgeCase):

    CONFIG = {"limits": {"max_body_bytes": 4096}}

    def test_oversized_headers(self):
        s = connect(self.bridge.port)
        self.addCleanup(s.close)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" +
                  b"X-Big: " + b"b" * 20000 + b"\r\n\r\n")
        status, _, _, closed = read_response(s)
        # evhttp's own answer to headers over limits.max_header_bytes.
        self.assertIn(status, (400, 413, 431))
        self.assertTrue(closed or closed_within(s, 3.0) is not None)
        self.assertEqual(self.bridge.get("/healthz").status, 200)

    def test_many_headers(self):
        s = connect(self.bridge.port)
        self.addCleanup(s.close)
        hdrs = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + hdrs + b"\r\n")
        status, _, _, _ = read_response(s)
        self.assertIn(status, (400, 413, 431))

    def chunked_post(self, total, chunk=1024):
        body = json.dumps([event()]).encode()
        pad = b" " * max(0, total - len(body))
        data = body + pad
        h = {"Content-Type": "application/json",
             "Transfer-Encoding": "chunked"}
        h.update(self.bridge.signed_headers("acme", data))
        conn = http.client.HTTPConnection("127.0.0.1", self.bridge.port,
                                          timeout=30)
        try:
            conn.request("POST", "/v1/webhooks/acme",
                         body=(data[i:i + chunk]
                               for i in range(0, len(data), chunk)),
                         headers=h, encode_chunked=True)
            r = conn.getresponse()
            raw = r.read()
            return r.status, raw
        finally:
            conn.close()

    def test_chunked_body_within_limit(self):
        status, raw = self.chunked_post(2000)
        self.assertEqual(status, 200, raw)

    def test_chunked_body_beyond_limit(self):
        status, raw = self.chunked_post(10000)
        self.assertEqual(status, 413, raw)
        self.assertEqual(json.loads(raw)["error"], "body_too_large")

    def test_chunked_body_beyond_hard_cap(self):
        # Above evhttp's cap (8 MiB here) evhttp answers 413 itself and
        # stops reading; the client may see the answer or a reset.
        try:
            status, _ = self.chunked_post(9 * 1024 * 1024, chunk=65536)
            self.assertEqual(status, 413)
        except (ConnectionResetError, BrokenPipeError):
            pass
        self.assertEqual(self.bridge.get("/healthz").status, 200)

    def test_body_beyond_limit(self):
        r = self.bridge.post("acme", b"[" + b" " * 5000 + b"]")
        self.assertStatus(r, 413, "body_too_large")


class TestSignatureFlood(BridgeCase):

    CONFIG = {"limits": {"max_header_bytes": 1048576}}

    def test_ten_thousand_signature_entries(self):
        body = json.dumps([event()]).encode()
        msg_id = new_id("msg")
        ts = int(time.time())
        good = sign(self.bridge.secrets["acme"][0], msg_id, ts, body)
        junk = " ".join("v1,%s" % ("A" * 43 + "=") for _ in range(10000))
        for sig, name in ((junk, "junk"), (junk + " " + good, "late")):
            with self.subTest(name):
                t0 = time.monotonic()
                r = self.bridge.post("acme", body, headers={
                    "webhook-id": msg_id, "webhook-timestamp": str(ts),
                    "webhook-signature": sig})
                elapsed = time.monotonic() - t0
                self.assertEqual(r.status, 401, r)
                self.assertIn(r.error, ("signature_mismatch",
                                        "signature_malformed"))
                self.assertLess(elapsed, 1.0)
        # The bridge is unharmed, and a normal request still works.
        self.assertCounts(self.bridge.post("acme", [event()]), 1, 0, 0)


class TestAdminGuessing(BridgeCase):

    def test_failed_admin_auth_is_rate_limited_and_logged(self):
        b = self.bridge
        guess = "guess-" + "x" * 26
        statuses = [b.admin("GET", "/v1/stats", token=guess).status
                    for _ in range(25)]
        self.assertEqual(statuses[:19], [401] * 19)
        self.assertIn(429, statuses[19:])
        # Locked out: guesses wait for the window to pass...
        r = b.admin("GET", "/v1/stats", token=guess)
        self.assertStatus(r, 429, "too_many_attempts")
        self.assertIsNotNone(r.header("Retry-After"))
        # ...but the holder of the token is never locked out by others.
        self.assertEqual(b.admin("GET", "/v1/stats").status, 200)
        log = b.log()
        self.assertGreaterEqual(log.count("admin authentication failed"), 19)
        self.assertNotIn(guess, log)
        self.assertNotIn(b.token, log)

    def admin_from(self, source, token=None, auth=True):
        """GET /v1/stats from the loopback address source."""
        conn = http.client.HTTPConnection(
            "127.0.0.1", self.bridge.admin_port, timeout=10,
            source_address=(source, 0))
        try:
            h = {}
            if auth:
                h["Authorization"] = "Bearer " + (token or self.bridge.token)
            conn.request("GET", "/v1/stats", headers=h)
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    def test_lockout_is_per_address(self):
        """A client guessing from one address locks out that address only:
        the operator at another address keeps working."""
        guess = "guess-" + "y" * 26
        statuses = [self.admin_from("127.0.0.2", guess) for _ in range(25)]
        self.assertEqual(statuses[:20], [401] * 20)
        self.assertEqual(statuses[20:], [429] * 5)
        self.assertEqual(self.admin_from("127.0.0.2", guess), 429)
        # The token's holder is served, even from the guesser's address.
        self.assertEqual(self.admin_from("127.0.0.2"), 200)
        self.assertEqual(self.admin_from("127.0.0.1"), 200)
        # The operator's own mistakes are counted on their own.
        self.assertEqual(self.admin_from("127.0.0.1", guess), 401)
        self.assertEqual(self.admin_from("127.0.0.1"), 200)
        self.assertEqual(self.admin_from("127.0.0.3"), 200)

    def test_requests_without_credentials_lock_no_one(self):
        """A web page's <img> pointing at the admin port sends no
        Authorization header: it is refused, and guesses nothing."""
        for _ in range(40):
            self.assertEqual(self.admin_from("127.0.0.1", auth=False), 401)
        r = self.bridge.admin("GET", "/v1/stats")
        self.assertEqual(r.status, 200, r)

    def test_no_token_no_listener_even_on_all_addresses(self):
        port = free_port()
        b = self.make_bridge(admin_token=False,
                             config={"admin": {"listen": "0.0.0.0:%d" %
                                               port}})
        self.assertTrue(b.wait_log(r"admin API off"), b.log())
        with self.assertRaises(OSError):
            http_request(port, "GET", "/v1/stats", timeout=2)


if __name__ == "__main__":
    unittest.main()
