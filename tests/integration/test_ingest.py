# SPDX-License-Identifier: ISC
"""Inbound callbacks: every row of CONTRACT section 2, black box.

Each test starts the real binary against a Segment stand-in and checks the
status, the JSON body and what got stored (through `nudgebridge dlq` and the
sink) for one kind of request.
"""

import json
import re
import time
import unittest

from harness import (BridgeCase, event, new_id, new_secret, run_cli, sign,
                     wait_until)


class TestAccept(BridgeCase):

    def test_single_event(self):
        r = self.bridge.post("acme", event())
        self.assertCounts(r, 1, 0, 0)
        self.assertEqual(r.header("Content-Type").split(";")[0].strip(),
                         "application/json")

    def test_array(self):
        r = self.bridge.post("acme", [event(), event(), event()])
        self.assertCounts(r, 3, 0, 0)

    def test_charset_parameter_allowed(self):
        r = self.bridge.post("acme", event(),
                             content_type="application/json; charset=utf-8")
        self.assertCounts(r, 1, 0, 0)

    def test_unknown_fields_ignored_and_null_is_absent(self):
        ev = event(future_field={"x": 1}, link=None, bounce=None,
                   properties=None)
        ev["subscriber"]["extra_key"] = "ok"
        r = self.bridge.post("acme", ev)
        self.assertCounts(r, 1, 0, 0)

    def test_duplicate_webhook_id(self):
        body = [event(), event()]
        r = self.bridge.post("acme", body, id="msg_same_1")
        self.assertCounts(r, 2, 0, 0)
        r = self.bridge.post("acme", body, id="msg_same_1")
        self.assertCounts(r, 0, 2, 0)
        # Same webhook-id, different body: still the same request.
        r = self.bridge.post("acme", [event()], id="msg_same_1")
        self.assertCounts(r, 0, 1, 0)

    def test_duplicate_event_id_earlier(self):
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        r = self.bridge.post("acme", [ev, event()])
        self.assertCounts(r, 1, 1, 0)

    def test_duplicate_event_id_same_array(self):
        ev = event()
        r = self.bridge.post("acme", [ev, event(), dict(ev)])
        self.assertCounts(r, 2, 1, 0)
        # Only two messages ever reach Segment.
        self.assertEqual(self.sink.wait_count(2), 2)
        time.sleep(0.3)
        self.assertEqual(len(self.sink.accepted_ids()), 2)


class TestQuarantine(BridgeCase):

    def test_quarantine_counts_and_dlq(self):
        good = event()
        no_id = event()
        del no_id["id"]
        bad_time = event(occurred_at="yesterday")
        no_subscriber = event(subscriber={})
        bad_type = event(type="")
        long_id = event(id="x" * 129)
        ctrl_id = event(id="evt\u0001bad")
        bad_leaf = event(message={"id": 7})
        body = [good, no_id, bad_time, no_subscriber, bad_type, long_id,
                ctrl_id, bad_leaf]
        r = self.bridge.post("acme", body)
        self.assertCounts(r, 1, 0, 7)

        rows = self.bridge.dlq("list", "--reason", "quarantined")
        self.assertEqual(len(rows), 7, rows)
        for row in rows:
            for k in ("key", "id", "source", "type", "reason", "error",
                      "received_at"):
                self.assertIn(k, row, row)
            self.assertEqual(row["source"], "acme")
            self.assertEqual(row["reason"], "quarantined")
            self.assertTrue(row["error"], row)
            self.assertRegex(row["received_at"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        ids = [row["id"] for row in rows]
        # Missing and invalid ids are listed as null, with their own key.
        self.assertIn(None, ids)
        self.assertIn(bad_time["id"], ids)
        self.assertIn(no_subscriber["id"], ids)
        self.assertNotIn(long_id["id"], ids)
        self.assertNotIn(ctrl_id["id"], ids)
        keys = [row["key"] for row in rows]
        self.assertEqual(len(set(keys)), len(keys))
        for k in keys:
            self.assertTrue(isinstance(k, str) and k, keys)
        # The error names the broken rule.
        by_id = {row["id"]: row for row in rows if row["id"]}
        self.assertIn("occurred_at", by_id[bad_time["id"]]["error"])
        self.assertIn("subscriber", by_id[no_subscriber["id"]]["error"])
        # The valid event is delivered, the others never are.
        self.assertEqual(self.sink.wait_count(1), 1)
        time.sleep(0.3)
        self.assertEqual(self.sink.accepted_ids(),
                         {self.bridge.message_id("acme", good["id"])})

    def test_quarantined_id_still_dedupes_nothing_else(self):
        bad = event(occurred_at="not a time")
        r = self.bridge.post("acme", bad)
        self.assertCounts(r, 0, 0, 1)


class TestRefusals(BridgeCase):

    def test_method_not_allowed(self):
        for method in ("GET", "PUT", "DELETE"):
            r = self.bridge.request(method, "/v1/webhooks/acme",
                                    body=b"{}" if method == "PUT" else None)
            self.assertStatus(r, 405, "method_not_allowed")
            self.assertEqual(r.header("Allow"), "POST", r.headers)

    def test_unknown_and_invalid_source(self):
        names = ["nope", "ACME", "a" * 64, "a" * 63, "-acme", "_x", "ac.me",
                 "ac%20me"]
        for name in names:
            r = self.bridge.post("acme", event(),
                                 path="/v1/webhooks/" + name)
            self.assertStatus(r, 404, "unknown_source")
        r = self.bridge.post("acme", event(), path="/v1/webhooks/../x")
        self.assertStatus(r, 404)
        r = self.bridge.post("acme", event(), path="/v1/webhooks/")
        self.assertStatus(r, 404)
        r = self.bridge.post("acme", event(), path="/v1/webhooks/acme/x")
        self.assertStatus(r, 404)

    def test_unsupported_media_type(self):
        for ct in (None, "text/plain", "application/x-www-form-urlencoded",
                   "application/jsonx"):
            r = self.bridge.post("acme", event(), content_type=ct)
            self.assertStatus(r, 415, "unsupported_media_type")

    def test_signature_missing(self):
        body = json.dumps(event()).encode()
        r = self.bridge.post("acme", body, sign=False)
        self.assertStatus(r, 401, "signature_missing")
        # Only some of the three headers.
        h = self.bridge.signed_headers("acme", body)
        del h["webhook-signature"]
        r = self.bridge.post("acme", body, sign=False, headers=h)
        self.assertStatus(r, 401, "signature_missing")

    def test_signature_malformed(self):
        body = json.dumps(event()).encode()
        h = self.bridge.signed_headers("acme", body)
        for bad in ("garbage", "v1,", "v1", ",", "v1,not*base64!",
                    "v1,AAAA", "v1a,AAAA"):
            hh = dict(h, **{"webhook-signature": bad})
            r = self.bridge.post("acme", body, sign=False, headers=hh)
            self.assertStatus(r, 401, "signature_malformed")
        # An entry of an unknown version is ignored, not garbled.
        hh = dict(h, **{"webhook-signature": "v2,AAAA"})
        r = self.bridge.post("acme", body, sign=False, headers=hh)
        self.assertEqual(r.status, 401, r)
        hh = dict(h, **{"webhook-signature": " "})
        r = self.bridge.post("acme", body, sign=False, headers=hh)
        self.assertEqual(r.status, 401, r)
        self.assertIn(r.error, ("signature_malformed", "signature_missing"))
        hh = dict(h, **{"webhook-signature": "garbage"})
        r = self.bridge.post("acme", body, sign=False, headers=hh)
        self.assertStatus(r, 401, "signature_malformed")
        hh = dict(h, **{"webhook-timestamp": "soon"})
        r = self.bridge.post("acme", body, sign=False, headers=hh)
        self.assertStatus(r, 401, "signature_malformed")

    def test_timestamp_out_of_tolerance(self):
        now = int(time.time())
        for ts in (now - 400, now + 400):
            r = self.bridge.post("acme", event(), ts=ts)
            self.assertStatus(r, 401, "timestamp_out_of_tolerance")
        # Inside the window, either direction.
        for ts in (now - 250, now + 250):
            r = self.bridge.post("acme", event(), ts=ts)
            self.assertCounts(r, 1, 0, 0)

    def test_signature_mismatch(self):
        r = self.bridge.post("acme", event(), secret=new_secret())
        self.assertStatus(r, 401, "signature_mismatch")
        # Signed body differs from the sent body.
        body = json.dumps(event()).encode()
        h = self.bridge.signed_headers("acme", body + b" ")
        r = self.bridge.post("acme", body, sign=False, headers=h)
        self.assertStatus(r, 401, "signature_mismatch")

    def test_check_order(self):
        # Unsigned request with a bad body: the signature is checked first.
        r = self.bridge.post("acme", b"not json", sign=False)
        self.assertStatus(r, 401, "signature_missing")
        # Unknown source with a bad content type: the source comes first.
        r = self.bridge.post("acme", event(), path="/v1/webhooks/nope",
                             content_type="text/plain", sign=False)
        self.assertStatus(r, 404, "unknown_source")
        # Method before source.
        r = self.bridge.request("GET", "/v1/webhooks/nope")
        self.assertStatus(r, 405, "method_not_allowed")
        # Content type before signature.
        r = self.bridge.post("acme", event(), content_type="text/plain",
                             sign=False)
        self.assertStatus(r, 415, "unsupported_media_type")

    def test_invalid_json(self):
        for body in (b"not json", b"{\"id\": \"\xff\xfe\"}", b"",
                     b"{\"a\":1", b"[1,]"):
            r = self.bridge.post("acme", body)
            self.assertStatus(r, 400, "invalid_json")

    def test_invalid_payload(self):
        for body in (b"42", b"\"str\"", b"null", b"[]", b"[1]",
                     json.dumps([event(), 1]).encode(),
                     json.dumps([[event()]]).encode()):
            r = self.bridge.post("acme", body)
            self.assertStatus(r, 400, "invalid_payload")
        many = [event(id="evt_%d" % i) for i in range(1001)]
        r = self.bridge.post("acme", many)
        self.assertStatus(r, 400, "invalid_payload")
        # Nothing of those was stored: the same ids are accepted now.
        r = self.bridge.post("acme", many[:1000])
        self.assertCounts(r, 1000, 0, 0)

    def test_healthz(self):
        r = self.bridge.get("/healthz")
        self.assertEqual(r.status, 200, r)
        self.assertIsNotNone(r.json, r)
        r = self.bridge.get("/readyz")
        self.assertEqual(r.status, 200, r)


class TestSchemes(BridgeCase):

    def test_svix_headers(self):
        r = self.bridge.post("acme", event(), prefix="svix-")
        self.assertCounts(r, 1, 0, 0)
        r = self.bridge.post("acme", event(), prefix="svix-",
                             secret=new_secret())
        self.assertStatus(r, 401, "signature_mismatch")

    def test_published_test_vector_shape(self):
        # The contract's vector, under a source with that secret but a
        # timestamp we control (the vector's own is years old).
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        self.assertEqual(
            sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                 b'{"test": 2432232314}'),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")

    def test_rotation_two_secrets(self):
        old, new = new_secret(), new_secret(48)
        b = self.make_bridge([{"name": "rot", "signing_secrets": [old, new]}])
        self.assertCounts(b.post("rot", event(), secret=old), 1, 0, 0)
        self.assertCounts(b.post("rot", event(), secret=new), 1, 0, 0)
        # Several entries in one header: one valid is enough; unknown
        # versions are ignored.
        body = json.dumps(event()).encode()
        h = b.signed_headers("rot", body, secret=new)
        good = h["webhook-signature"]
        wrong = sign(new_secret(), h["webhook-id"], h["webhook-timestamp"],
                     body)
        h["webhook-signature"] = "v2,abcd %s %s" % (wrong, good)
        self.assertCounts(b.post("rot", body, sign=False, headers=h),
                          1, 0, 0)

    def test_short_secret_24_bytes_and_long_64(self):
        s24, s64 = new_secret(24), new_secret(64)
        b = self.make_bridge([{"name": "k", "signing_secrets": [s24, s64]}])
        self.assertCounts(b.post("k", event(), secret=s24), 1, 0, 0)
        self.assertCounts(b.post("k", event(), secret=s64), 1, 0, 0)

    def test_ed25519(self):
        kg = run_cli("keygen", "--ed25519")
        self.assertEqual(kg.returncode, 0, kg.stderr)
        pk = re.search(r"whpk_[A-Za-z0-9+/=]+", kg.stdout)
        sk = re.search(r"whsk_[A-Za-z0-9+/=]+", kg.stdout)
        self.assertTrue(pk and sk, kg.stdout)
        pk, sk = pk.group(0), sk.group(0)
        b = self.make_bridge([{"name": "ed", "signing_secrets": [],
                               "public_keys": [pk]}])
        body = json.dumps(event()).encode()
        msg_id = new_id("msg")
        ts = int(time.time())
        sig = ed25519_sign(sk, msg_id, ts, body)
        self.assertTrue(sig.startswith("v1a,"), sig)
        h = {"webhook-id": msg_id, "webhook-timestamp": str(ts),
             "webhook-signature": sig}
        self.assertCounts(b.post("ed", body, sign=False, headers=h), 1, 0, 0)
        # Same signature on another body: mismatch.
        h["webhook-id"] = new_id("msg")
        r = b.post("ed", body, sign=False, headers=h)
        self.assertStatus(r, 401, "signature_mismatch")
        # A key that is not trusted.
        kg2 = run_cli("keygen", "--ed25519")
        sk2 = re.search(r"whsk_[A-Za-z0-9+/=]+", kg2.stdout).group(0)
        msg_id = new_id("msg")
        h = {"webhook-id": msg_id, "webhook-timestamp": str(ts),
             "webhook-signature": ed25519_sign(sk2, msg_id, ts, body)}
        r = b.post("ed", body, sign=False, headers=h)
        self.assertStatus(r, 401, "signature_mismatch")


def ed25519_sign(sk, msg_id, ts, body):
    """Signs with `nudgebridge sign --private-key`; returns the v1a entry."""
    p = run_cli("sign", "--private-key", sk, "--id", msg_id,
                "--timestamp", str(ts), input=body)
    if p.returncode != 0:
        raise AssertionError("nudgebridge sign failed (%d): %s" %
                             (p.returncode, p.stderr))
    m = re.search(r"v1a,[A-Za-z0-9+/=]+", p.stdout)
    if not m:
        raise AssertionError("no v1a entry in: %r" % p.stdout)
    return m.group(0)


class TestBodyLimit(BridgeCase):
    CONFIG = {"limits": {"max_body_bytes": 4096}}

    def test_body_too_large(self):
        ev = event(properties={"pad": "x" * 4900})
        body = json.dumps(ev).encode()
        self.assertGreater(len(body), 4096)
        r = self.bridge.post("acme", body)
        self.assertStatus(r, 413, "body_too_large")
        # Before the content type and the signature.
        r = self.bridge.post("acme", body, sign=False,
                             content_type="text/plain")
        self.assertStatus(r, 413, "body_too_large")
        # At the limit is fine.
        ev = event(properties={"p": ""})
        pad = 4096 - len(json.dumps(ev).encode())
        ev["properties"]["p"] = "y" * pad
        body = json.dumps(ev).encode()
        self.assertEqual(len(body), 4096)
        self.assertCounts(self.bridge.post("acme", body), 1, 0, 0)


class TestStoreFull(BridgeCase):
    # The empty schema alone takes about 136 KiB (a root page per table and
    # index, 34 pages at schema version 6): leave room for a few groups above
    # it.
    CONFIG = {"store": {"max_size_bytes": 262144}}

    def test_503_when_full(self):
        self.sink.set_mode("fail")
        acked = []
        r = None
        for i in range(200):
            evs = [event(properties={"pad": "z" * 400}) for _ in range(10)]
            r = self.bridge.post("acme", evs)
            if r.status != 200:
                break
            acked.extend(evs)
        self.assertStatus(r, 503, "unavailable")
        ra = r.header("Retry-After")
        self.assertIsNotNone(ra, r.headers)
        self.assertTrue(ra.isdigit() and int(ra) > 0, ra)
        self.assertTrue(acked, "the store was full before any commit")
        r = self.bridge.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(self.bridge.get("/healthz").status, 200)
        # What was acknowledged is still delivered.
        self.sink.set_mode("ok")
        want = {self.bridge.message_id("acme", e["id"]) for e in acked}
        missing = self.sink.wait_ids(want, timeout=30)
        self.assertFalse(missing, "%d acknowledged events not delivered"
                         % len(missing))


class TestRestart(BridgeCase):

    def test_restart_keeps_acknowledged(self):
        self.sink.set_mode("fail")
        evs = [event() for _ in range(5)]
        self.assertCounts(self.bridge.post("acme", evs[:2], id="msg_r1"),
                          2, 0, 0)
        self.assertCounts(self.bridge.post("acme", evs[2:]), 3, 0, 0)
        self.bridge.kill9()
        self.sink.set_mode("ok")
        self.bridge.start()
        want = {self.bridge.message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        # Dedupe memory survives the restart too.
        self.assertCounts(self.bridge.post("acme", evs[:2], id="msg_r1"),
                          0, 2, 0)
        self.assertCounts(self.bridge.post("acme", [evs[4]]), 0, 1, 0)


if __name__ == "__main__":
    unittest.main()
