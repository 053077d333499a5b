# SPDX-License-Identifier: ISC
"""Hostile input over HTTP: the wire-level half of tests/unit/test_nasty.c.

* odd source names in the URL, raw and percent-encoded (the path is never
  decoded, so "%61cme" is not "acme"): 404 unknown_source, whatever the
  signature;
* CR in a header value and a 1 MiB header: 400 or 431 at once, nothing
  stored, and the listener keeps serving;
* 10,000 signature entries: only the first 16 are examined, so the answer
  is a fast 401 even when a valid entry comes later, and an entry 16 does
  count;
* signed bodies with deep nesting, invalid UTF-8, raw NUL, \\u0000, CRLF,
  duplicate keys, huge numbers and extreme times: the contract's 400 or a
  quarantine, never a 5xx or a crash;
* webhook-timestamp at and beyond the int64 limits, "-0", "+1": 401.

After each group the bridge must still answer /healthz and accept a
normal webhook, and its process must still be alive.
"""

import base64
import json
import os
import time
import unittest

from faults import raw_request
from harness import BridgeCase, event, new_id, sign

ODD_NAMES = [
    "../x", "..%2fx", "%2e%2e", "%2E%2E%2Facme", "..", ".", "acme/",
    "acme/../acme", "/acme", "ACME", "Acme", "%61cme", "a" * 64, "a" * 200,
    "", "a%20b", "a+b", "acme%00", "acme%0d%0aX-Injected:%201", "%C3%BCber",
    "_acme", "-acme", "acme;x", "acme.json", "%ff",
]


class HostileTest(BridgeCase):
    SOURCES = [{"name": "acme"}, {"name": "a" * 63}]
    CONFIG = {"limits": {"max_header_bytes": 1024 * 1024}}  # the maximum

    def setUp(self):
        super().setUp()
        self.body = json.dumps(event()).encode()

    def still_serving(self):
        self.assertTrue(self.bridge.alive(), self.bridge.log()[-3000:])
        self.assertEqual(self.bridge.get("/healthz").status, 200)
        ev = event()
        r = self.bridge.post("acme", ev)
        self.assertCounts(r, 1, 0, 0)
        return ev

    def raw(self, path="/v1/webhooks/acme", headers=None, extra=b"",
            body=None):
        body = self.body if body is None else body
        h = self.bridge.signed_headers("acme", body)
        h.update(headers or {})
        lines = [b"POST " + path.encode("latin-1") + b" HTTP/1.1",
                 b"Host: 127.0.0.1", b"Content-Type: application/json",
                 b"Content-Length: %d" % len(body)]
        for k, v in h.items():
            if isinstance(v, str):
                v = v.encode("latin-1")
            lines.append(k.encode() + b": " + v)
        data = b"\r\n".join(lines) + extra + b"\r\n\r\n" + body
        return raw_request(self.bridge.port, data)

    def test_odd_source_names(self):
        self.assertEqual(self.raw("/v1/webhooks/" + "a" * 63)[0], 401,
                         "a 63-character name is valid (then unsigned)")
        for name in ODD_NAMES:
            with self.subTest(name=name):
                st, _, body, _ = self.raw("/v1/webhooks/" + name)
                self.assertEqual(st, 404, (name, body))
                self.assertEqual(json.loads(body)["error"],
                                 "unknown_source", body)
        # Also through http.client (it quotes nothing we pass).
        r = self.bridge.post("acme", self.body,
                             path="/v1/webhooks/%2e%2e%2facme")
        self.assertStatus(r, 404, "unknown_source")
        self.still_serving()

    def test_cr_and_nul_in_header_values(self):
        # A bare CR inside a header value: refused by the HTTP parser.
        st, _, body, secs = self.raw(extra=b"\r\nX-Bad: a\rb")
        self.assertIn(st, (400, 431), body)
        # A CR inside webhook-id itself.
        st, _, body, _ = self.raw(headers={"webhook-id": "msg_1\rX"})
        self.assertIn(st, (400, 401, 431), body)
        self.assertNotEqual(st // 100, 2)
        # A tab (a control character the header syntax allows) in the id:
        # the signature layer refuses ids outside 0x21..0x7E.
        body = self.body
        h = self.bridge.signed_headers("acme", body, id="msg\t1")
        r = self.bridge.post("acme", body, sign=False, headers=h)
        self.assertStatus(r, 401, "signature_malformed")
        # Folded (obs-fold) and NUL-carrying unrelated headers are harmless.
        st, _, body, _ = self.raw(extra=b"\r\nX-Fold: a\r\n continued")
        self.assertIn(st, (200, 400), body)
        st, _, body, _ = self.raw(extra=b"\r\nX-Nul: a\x00b")
        self.assertIn(st, (200, 400), body)
        self.still_serving()

    def test_huge_header(self):
        # Beyond this test's 1 MiB header limit: refused while reading.
        st, _, body, secs = self.raw(
            extra=b"\r\nX-Big: " + b"a" * (3 * 1024 * 1024))
        self.assertIn(st, (400, 413, 431), body)
        self.assertLess(secs, 5.0)
        self.still_serving()

    def test_huge_header_default_limit(self):
        b = self.make_bridge(config={"limits": {}})
        body = self.body
        h = b.signed_headers("acme", body)
        h["webhook-signature"] = "v1," + "A" * (1 << 20)
        lines = ["POST /v1/webhooks/acme HTTP/1.1", "Host: x",
                 "Content-Type: application/json",
                 "Content-Length: %d" % len(body)]
        lines += ["%s: %s" % kv for kv in h.items()]
        st, _, rb, secs = raw_request(
            b.port, "\r\n".join(lines).encode() + b"\r\n\r\n" + body)
        self.assertIn(st, (400, 413, 431), rb)
        self.assertLess(secs, 5.0)
        self.assertEqual(b.get("/healthz").status, 200)

    def test_one_mebibyte_signature_header(self):
        # 1 MiB: over even the largest header limit, refused while reading.
        st, _, body, secs = self.raw(
            headers={"webhook-signature": "v1," + "A" * (1 << 20)})
        self.assertIn(st, (400, 413, 431), body)
        self.assertLess(secs, 5.0)
        # 900 KiB: within the limit, the signature parser gets all of it.
        n = 900 * 1024
        for sig in ["v1," + "A" * n, "v1a," + "A" * n, " " * n + "v1,x",
                    "v1,x " * (n // 5), ",,,," * (n // 4),
                    "v1," + "=" * n]:
            with self.subTest(sig=sig[:8]):
                t0 = time.monotonic()
                st, _, body, _ = self.raw(
                    headers={"webhook-signature": sig})
                self.assertEqual(st, 401, body)
                self.assertIn(json.loads(body)["error"],
                              ("signature_malformed", "signature_mismatch",
                               "signature_missing"))
                self.assertLess(time.monotonic() - t0, 2.0)
        self.still_serving()

    def test_ten_thousand_signature_entries(self):
        body = self.body
        msg, ts = new_id("msg"), int(time.time())
        good = sign(self.bridge.secrets["acme"][0], msg, ts, body)
        junk_v1a = ["v1a," + base64.b64encode(os.urandom(64)).decode()
                    for _ in range(10000)]
        junk_v1 = ["v1," + base64.b64encode(os.urandom(32)).decode()
                   for _ in range(10000)]

        def post(entries, msg_id=None):
            h = {"webhook-id": msg_id or msg, "webhook-timestamp": str(ts),
                 "webhook-signature": " ".join(entries)}
            t0 = time.monotonic()
            r = self.bridge.post("acme", body, sign=False, headers=h)
            return r, time.monotonic() - t0

        # 10,000 entries, all wrong (and Ed25519, the costly kind): fast.
        r, secs = post(junk_v1a)
        self.assertStatus(r, 401, "signature_mismatch")
        self.assertLess(secs, 1.0)
        r, secs = post(junk_v1)
        self.assertStatus(r, 401, "signature_mismatch")
        self.assertLess(secs, 1.0)
        # The valid entry after 10,000: never looked at.
        r, secs = post(junk_v1a + [good])
        self.assertStatus(r, 401, "signature_mismatch")
        self.assertLess(secs, 1.0)
        # As entry 17: not examined; as entry 16: examined, accepted.
        r, _ = post(junk_v1[:16] + [good])
        self.assertStatus(r, 401, "signature_mismatch")
        r, _ = post(junk_v1[:15] + [good] + junk_v1)
        self.assertCounts(r, 1, 0, 0)
        self.still_serving()

    def post_signed(self, raw):
        return self.bridge.post("acme", raw)

    def test_nasty_bodies(self):
        deep = b"[" * 100000 + b"]" * 100000
        deep_obj = b'{"a":' * 100000 + b"1" + b"}" * 100000
        ev = event()
        cases = [
            ("deep arrays", deep, 400, "invalid_json"),
            ("deep objects", deep_obj, 400, "invalid_json"),
            ("deep in properties",
             json.dumps(event(properties={})).encode().replace(
                 b'"properties": {}',
                 b'"properties": ' + b'{"a":' * 5000 + b"1" + b"}" * 5000),
             400, "invalid_json"),
            ("invalid UTF-8",
             json.dumps(event()).encode().replace(b"ada", b"\xc3\x28a"),
             400, "invalid_json"),
            ("overlong UTF-8",
             json.dumps(event()).encode().replace(b"ada", b"\xc0\xafa"),
             400, "invalid_json"),
            ("lone surrogate escape",
             json.dumps(event(properties={"s": "x"})).encode().replace(
                 b'"x"', b'"\\ud800"'), 400, "invalid_json"),
            ("raw NUL", json.dumps(event()).encode().replace(
                b"ada", b"a\x00a"), 400, "invalid_json"),
            ("integer beyond 64 bits",
             json.dumps(event(properties={"n": 1})).encode().replace(
                 b'"n": 1', b'"n": 123456789012345678901234567890'),
             400, "invalid_json"),
            ("real overflow",
             json.dumps(event(properties={"n": 1})).encode().replace(
                 b'"n": 1', b'"n": 1e400'), 400, "invalid_json"),
            ("empty array", b"[]", 400, "invalid_payload"),
            ("1001 events", json.dumps([event() for _ in range(1001)])
             .encode(), 400, "invalid_payload"),
            ("scalar", b"42", 400, "invalid_payload"),
            ("BOM", b"\xef\xbb\xbf" + json.dumps(ev).encode(), 400,
             "invalid_json"),
        ]
        for name, raw, st, err in cases:
            with self.subTest(case=name):
                r = self.post_signed(raw)
                self.assertStatus(r, st, err)
        self.still_serving()

    def test_nasty_events_quarantined_or_accepted(self):
        long_frac = "2026-11-28T09:59:58." + "9" * 200 + "Z"
        cases = [
            # (event, expected (accepted, quarantined))
            (event(id="evt_nul\u0000x"), (0, 1)),
            (event(id="evt_crlf\r\nX-Injected: 1"), (0, 1)),
            (event(type="email.opened\r\n"), (0, 1)),
            (event(uid="u\u0000"), (0, 1)),
            (event(uid="u_1", email="a\r\n@example.com"), (0, 1)),
            (event(id="x" * 129), (0, 1)),
            (event(id="é"), (0, 1)),
            (event(occurred_at="9999-12-31T23:59:59.999Z"), (1, 0)),
            (event(occurred_at="0000-01-01T00:00:00Z"), (1, 0)),
            (event(occurred_at="2026-11-28T09:59:58+23:59"), (1, 0)),
            (event(occurred_at=long_frac), (1, 0)),
            (event(occurred_at="99999-01-01T00:00:00Z"), (0, 1)),
            (event(occurred_at="-2026-11-28T09:59:58Z"), (0, 1)),
            (event(occurred_at="9223372036854775807"), (0, 1)),
            (event(message={"subject": "line\r\nX-Injected: 1\u0000"}),
             (1, 0)),
            (event(properties={"big": 2 ** 63 - 1, "small": -2 ** 63,
                               "real": 1e308, "neg0": -0.0}), (1, 0)),
        ]
        ok_ids = []
        for ev, (acc, quar) in cases:
            with self.subTest(event=json.dumps(ev)[:80]):
                r = self.post_signed(json.dumps(ev).encode())
                self.assertCounts(r, acc, 0, quar)
                if acc:
                    ok_ids.append(ev)
        # Duplicate keys: the last one wins (jansson), for id as for others.
        a, b_ = new_id(), new_id()
        raw = json.dumps(event(id=a)).encode()
        raw = raw.replace(b'"id": "%s"' % a.encode(),
                          b'"id": "%s", "id": "%s"' % (a.encode(),
                                                       b_.encode()))
        r = self.post_signed(raw)
        self.assertCounts(r, 1, 0, 0)
        want = {self.bridge.message_id("acme", e["id"]) for e in ok_ids}
        want.add(self.bridge.message_id("acme", b_))
        self.assertEqual(self.sink.wait_ids(want, timeout=15.0), set())
        self.assertNotIn(self.bridge.message_id("acme", a),
                         self.sink.accepted_ids())
        got = self.sink.by_message_id()
        for e in ok_ids:
            m = got[self.bridge.message_id("acme", e["id"])]
            self.assertRegex(m["timestamp"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            subj = (e.get("message") or {}).get("subject")
            if subj is not None:
                self.assertEqual(m["properties"]["email_subject"], subj)
        self.still_serving()

    def test_timestamps_at_integer_limits(self):
        body = self.body
        cases = [
            ("9223372036854775807", "timestamp_out_of_tolerance"),
            ("9223372036854775808", "signature_malformed"),
            ("99999999999999999999999", "signature_malformed"),
            ("-9223372036854775808", "signature_malformed"),
            ("-1", "signature_malformed"),
            ("-0", "signature_malformed"),
            ("+1", "signature_malformed"),
            ("0", "timestamp_out_of_tolerance"),
            # Leading white space is not part of a header value (OWS): the
            # bridge sees the plain number, the signer signed " N".
            (" %d" % int(time.time()), "signature_mismatch"),
            ("%d.5" % int(time.time()), "signature_malformed"),
            ("0x10", "signature_malformed"),
        ]
        for ts, err in cases:
            with self.subTest(ts=ts):
                msg = new_id("msg")
                key = self.bridge.secrets["acme"][0]
                h = {"webhook-id": msg, "webhook-timestamp": ts,
                     "webhook-signature": sign(key, msg, ts, body)}
                r = self.bridge.post("acme", body, sign=False, headers=h)
                self.assertStatus(r, 401, err)
        self.still_serving()


if __name__ == "__main__":
    unittest.main()
