# SPDX-License-Identifier: ISC
"""Outbound delivery: CONTRACT sections 3, 4 and 6, black box.

The Track JSON Segment receives is compared, whole, with golden messages
computed here from the contract (the sink inflates gzip bodies, which are
the default); then gzip itself (the bytes inside are the bytes sent
without it), the retry rules (5xx, 429 with Retry-After or
X-RateLimit-Reset, 400 bisection, 401 pause, too_large, max_attempts,
max_age), the invalid_for_segment reason, and crash safety (kill -9 with
deliveries in flight).  OAuth is test_oauth.py's.
"""

import base64
import datetime
import gzip
import hashlib
import json
import re
import threading
import time
import unittest

from harness import (BridgeCase, WRITE_KEY, binary_version, event, new_id,
                     wait_until)

CONTRACT_NAMES = {
    "email.sent": "Email Sent",
    "email.delivered": "Email Delivered",
    "email.opened": "Email Opened",
    "email.clicked": "Email Link Clicked",
    "email.bounced": "Email Bounced",
    "email.spam_reported": "Email Marked as Spam",
    "email.unsubscribed": "Unsubscribed",
    "email.dropped": "Email Dropped",
    "email.deferred": "Email Deferred",
}

MAPPED = [
    ("message", "id", "email_id"),
    ("message", "subject", "email_subject"),
    ("message", "campaign_id", "campaign_id"),
    ("message", "campaign_name", "campaign_name"),
    ("link", "id", "link_id"),
    ("link", "url", "link_url"),
    ("bounce", "type", "bounce_type"),
    ("bounce", "reason", "bounce_reason"),
    ("list", "id", "list_id"),
    ("list", "name", "list_name"),
]

RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d\d):(\d\d))$")


def utc_ms(s):
    """occurred_at as the contract's UTC millisecond timestamp."""
    m = RFC3339.match(s)
    assert m, s
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    frac = (m.group(7) or "") + "000"
    ms = int(frac[:3])
    t = datetime.datetime(y, mo, d, h, mi, sec,
                          tzinfo=datetime.timezone.utc)
    if m.group(9):
        off = datetime.timedelta(hours=int(m.group(10)),
                                 minutes=int(m.group(11)))
        t = t - off if m.group(9) == "+" else t + off
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % ms


def golden(bridge, source, ev, names=None, anon="email"):
    """The Track message the contract requires for ev on source, stored
    now in bridge's store."""
    names = names or {}
    typ = ev["type"]
    name = names.get(typ) or CONTRACT_NAMES.get(typ) or typ
    sub = ev.get("subscriber") or {}
    msg = {
        "type": "track",
        "event": name,
        "messageId": bridge.message_id(source, ev["id"]),
        "timestamp": utc_ms(ev["occurred_at"]),
    }
    email = sub.get("email")
    if sub.get("uid"):
        msg["userId"] = sub["uid"]
    elif anon == "sha256":
        msg["anonymousId"] = hashlib.sha256(
            email.encode().lower()).hexdigest()
    else:
        msg["anonymousId"] = email
    props = {}
    for obj, key, out in MAPPED:
        v = (ev.get(obj) or {}).get(key)
        if v is not None and v != "":
            props[out] = v
    for k, v in (ev.get("properties") or {}).items():
        props.setdefault(k, v)
    msg["properties"] = props
    ctx = {
        "integration": {"name": "nudgespot", "version": "1.0.0"},
        "library": {"name": "nudgebridge", "version": binary_version()},
    }
    if email:
        ctx["traits"] = {"email": email}
    client = ev.get("client") or {}
    if client.get("ip"):
        ctx["ip"] = client["ip"]
    if client.get("user_agent"):
        ctx["userAgent"] = client["user_agent"]
    msg["context"] = ctx
    msg["integrations"] = {"Nudgespot": False}
    return msg


FULL = {
    "id": "evt_01JD8Z3Q4W5E6R7T8Y9U0I1O2P",
    "type": "email.clicked",
    "occurred_at": "2026-11-28T10:59:58.123456+01:00",
    "subscriber": {"uid": "u_42", "email": "ada@example.com"},
    "message": {"id": "msg_77", "subject": "Welcome aboard",
                "campaign_id": "cmp_9", "campaign_name": "Onboarding"},
    "link": {"id": "lnk_3", "url": "https://example.com/pricing"},
    "bounce": {"type": "hard", "reason": "550 5.1.1 user unknown"},
    "list": {"id": "lst_1", "name": "Newsletter"},
    "client": {"ip": "203.0.113.9",
               "user_agent": "Mozilla/5.0 (X11; Linux x86_64)"},
    "properties": {"any": "extra", "fields": 1,
                   "email_id": "ignored: mapped keys win",
                   "nested": {"a": [1, 2.5, True, None]}},
}

OVERRIDES = {"email.unsubscribed": "Email Unsubscribed",
             "nudge.custom": "Custom Thing"}


class TestMapping(BridgeCase):
    SOURCES = [
        {"name": "acme"},
        {"name": "beta", "event_names": OVERRIDES, "anonymous_id": "sha256"},
    ]

    def deliver(self, source, evs):
        r = self.bridge.post(source, evs)
        self.assertCounts(r, len(evs), 0, 0)
        want = {self.bridge.message_id(source, e["id"]): e for e in evs}
        missing = self.sink.wait_ids(want, timeout=10)
        self.assertFalse(missing, "not delivered: %s" % missing)
        return self.sink.by_message_id()

    def test_full_example(self):
        got = self.deliver("acme", [FULL])
        msg = got[self.bridge.message_id("acme", FULL["id"])]
        want = golden(self.bridge, "acme", FULL)
        self.assertEqual(want["timestamp"], "2026-11-28T09:59:58.123Z")
        self.assertEqual(msg, want)
        # The install rule's: "nb1-" and 64 hex digits.
        self.assertEqual(len(msg["messageId"]), 68)

    def test_every_contract_type(self):
        evs = []
        for typ in list(CONTRACT_NAMES) + ["email.custom_thing",
                                           "nudge.custom"]:
            evs.append(event(type=typ, message={"id": "m_" + typ}))
        got = self.deliver("acme", evs)
        for e in evs:
            self.assertEqual(got[self.bridge.message_id("acme", e["id"])],
                             golden(self.bridge, "acme", e), e["type"])

    def test_overrides_and_sha256_identity(self):
        evs = [
            event(type="email.unsubscribed", uid=None,
                  email="Ada.Lovelace@Example.COM"),
            event(type="nudge.custom", uid=None, email="bob@example.org"),
            event(type="email.opened", uid="u_7", email=None),
        ]
        got = self.deliver("beta", evs)
        for e in evs:
            want = golden(self.bridge, "beta", e, OVERRIDES, "sha256")
            self.assertEqual(
                got[self.bridge.message_id("beta", e["id"])], want)
        m = got[self.bridge.message_id("beta", evs[0]["id"])]
        self.assertEqual(m["event"], "Email Unsubscribed")
        self.assertEqual(m["anonymousId"], hashlib.sha256(
            b"ada.lovelace@example.com").hexdigest())
        self.assertEqual(m["context"]["traits"],
                         {"email": "Ada.Lovelace@Example.COM"})
        self.assertNotIn("traits", got[self.bridge.message_id("beta",
                                                  evs[2]["id"])]["context"])

    def test_email_identity_and_absent_inputs(self):
        evs = [
            event(type="email.bounced", uid=None, email="x@example.com",
                  bounce={"type": "soft", "reason": ""},
                  message={"id": "m1", "subject": None},
                  occurred_at="2026-01-02T03:04:05Z"),
            event(type="email.opened", bounce={"type": "hard"},
                  occurred_at="2026-01-02T00:30:00.9-02:30",
                  client={"ip": "198.51.100.1"}),
        ]
        got = self.deliver("acme", evs)
        m0 = got[self.bridge.message_id("acme", evs[0]["id"])]
        self.assertEqual(m0, golden(self.bridge, "acme", evs[0]))
        self.assertEqual(m0["anonymousId"], "x@example.com")
        self.assertNotIn("userId", m0)
        self.assertEqual(m0["properties"], {"bounce_type": "soft",
                                            "email_id": "m1"})
        self.assertEqual(m0["timestamp"], "2026-01-02T03:04:05.000Z")
        m1 = got[self.bridge.message_id("acme", evs[1]["id"])]
        self.assertEqual(m1, golden(self.bridge, "acme", evs[1]))
        self.assertEqual(m1["timestamp"], "2026-01-02T03:00:00.900Z")
        self.assertEqual(m1["properties"]["bounce_type"], "hard")

    def test_batch_envelope(self):
        evs = [event() for _ in range(3)]
        self.deliver("acme", evs)
        batches = [b for b in self.sink.all_batches() if b.status == 200]
        self.assertTrue(batches)
        for b in batches:
            self.assertEqual(b.auth, "Basic " + base64.b64encode(
                (WRITE_KEY + ":").encode()).decode())
            self.assertEqual(b.content_type.split(";")[0].strip(),
                             "application/json")
            self.assertIn("sentAt", b.body)
            self.assertRegex(b.body["sentAt"],
                             r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
            sent = datetime.datetime.strptime(
                b.body["sentAt"][:19], "%Y-%m-%dT%H:%M:%S").replace(
                    tzinfo=datetime.timezone.utc)
            now = datetime.datetime.now(datetime.timezone.utc)
            self.assertLess(abs((now - sent).total_seconds()), 60)

    def test_message_id_stable_for_same_event_other_source(self):
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        self.assertCounts(self.bridge.post("beta", ev), 1, 0, 0)
        ids = {self.bridge.message_id("acme", ev["id"]),
               self.bridge.message_id("beta", ev["id"])}
        self.assertEqual(len(ids), 2)
        self.assertFalse(self.sink.wait_ids(ids))


def messages_bytes(batch):
    """The messages of a one-message batch, as the bytes Segment got."""
    head = b'{"batch":['
    assert batch.raw.startswith(head), batch.raw[:40]
    return batch.raw[len(head):batch.raw.rindex(b'],"sentAt":"')]


def gap_after_429(case, mode, value):
    """Seconds between a 429 (sink mode, header value) and the retry."""
    case.sink.set_mode(mode, retry_after=value)
    ev = event()
    case.assertCounts(case.bridge.post("acme", ev), 1, 0, 0)
    case.assertEqual(case.sink.wait_requests(1), 1)
    first = case.sink.all_batches()[0].at
    case.sink.set_mode("ok")
    case.assertFalse(case.sink.wait_ids({case.bridge.message_id("acme",
                                                                ev["id"])},
                                        timeout=15))
    return case.sink.all_batches()[1].at - first


class TestGzip(BridgeCase):
    START = False

    def deliver_all(self, bridge, evs):
        self.assertCounts(bridge.post("acme", evs), len(evs), 0, 0)
        want = {bridge.message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))

    def test_same_track_bytes_inside_gzip(self):
        evs = [dict(FULL, id=new_id())] + [
            event(type=t, properties={"n": i, "s": "\u00e9\"x\""})
            for i, t in enumerate(CONTRACT_NAMES)]
        one = {"segment": {"max_batch_count": 1}}
        plain = self.make_bridge(config=deep_merge_copy(
            one, {"segment": {"gzip": False}}))
        self.deliver_all(plain, evs)
        plain_metrics = plain.metrics()
        plain.stop()
        # The two bridges are two installs: their messageIds differ, so
        # messages are matched by event id and compared with the
        # messageId put back to plain's.
        by_mid = {plain.message_id("acme", e["id"]): e["id"] for e in evs}
        sent = {}
        for b in self.sink.all_batches():
            self.assertIsNone(b.encoding)
            self.assertEqual(b.wire, b.raw)
            mid = b.messages[0]["messageId"]
            sent[by_mid[mid]] = (mid, messages_bytes(b))
        self.assertEqual(len(sent), len(evs))
        k = len(self.sink.all_batches())
        zipped = self.make_bridge(config=one)   # gzip is the default
        self.assertCounts(zipped.post("acme", evs), len(evs), 0, 0)
        self.assertEqual(self.sink.wait_requests(k + len(evs), timeout=15),
                         k + len(evs))
        got = self.sink.all_batches()[k:]
        by_mid = {zipped.message_id("acme", e["id"]): e["id"] for e in evs}
        for b in got:
            self.assertEqual(b.encoding, "gzip")
            self.assertEqual(gzip.decompress(b.wire), b.raw)
            # The Track bytes are exactly those sent without gzip.
            mid = b.messages[0]["messageId"]
            plain_mid, plain_bytes = sent[by_mid[mid]]
            self.assertEqual(messages_bytes(b).replace(mid.encode(),
                                                       plain_mid.encode()),
                             plain_bytes)
        m = zipped.metrics()
        self.assertLess(m["nudgebridge_segment_sent_bytes_total"],
                        m["nudgebridge_segment_json_bytes_total"])
        self.assertEqual(plain_metrics["nudgebridge_segment_sent_bytes_total"],
                         plain_metrics["nudgebridge_segment_json_bytes_total"])

    def test_limits_apply_before_compression(self):
        # 40 messages of ~1.5 KB: gzip would fit them in one small body,
        # but max_batch_bytes counts the JSON, so they need several.
        b = self.make_bridge(config={"segment": {"max_batch_bytes": 20000}})
        evs = [event(properties={"pad": "p" * 1200}) for _ in range(40)]
        self.deliver_all(b, evs)
        batches = self.sink.all_batches()
        self.assertGreater(len(batches), 2)
        for x in batches:
            self.assertEqual(x.encoding, "gzip")
            self.assertLessEqual(len(x.raw), 20000)
            self.assertLess(len(x.wire), len(x.raw) / 4)


def deep_merge_copy(a, b):
    out = json.loads(json.dumps(a))
    for k, v in b.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k].update(v)
        else:
            out[k] = v
    return out


class TestRateLimitReset(BridgeCase):
    """429 without Retry-After: X-RateLimit-Reset, seconds or Unix time."""

    def test_seconds(self):
        gap = gap_after_429(self, "429reset", "1")
        self.assertGreaterEqual(gap, 0.9, "retried %.3fs after a 429 with "
                                "X-RateLimit-Reset: 1" % gap)

    def test_unix_time(self):
        # A value over 10^9 is the Unix time to wait for: 2..3 s from now.
        gap = gap_after_429(self, "429reset",
                            lambda: str(int(time.time()) + 3))
        self.assertGreaterEqual(gap, 1.8, "retried %.3fs after a 429 with "
                                "a reset 3 s ahead" % gap)


class TestInvalidForSegment(BridgeCase):
    """The reason exists wherever reasons are listed and filtered.

    No input reaches it through the real mapper (the property test in
    tests/unit/test_segcheck.c shows every mapped message passes, and
    config refuses empty event names), so the dead-lettering itself is
    tested with a mapper that makes a bad message: test_deliver.c's
    test_invalid_for_segment.
    """

    def test_reason_is_known(self):
        self.assertEqual(self.bridge.dlq("list", "--reason",
                                         "invalid_for_segment"), [])
        r = self.bridge.admin("GET", "/v1/dlq?reason=invalid_for_segment")
        self.assertEqual(r.status, 200, r)
        r = self.bridge.admin("POST", "/v1/dlq/replay",
                              {"reason": "invalid_for_segment",
                               "dry_run": True})
        self.assertEqual(r.status, 200, r)
        bad = self.bridge.cli("dlq", "list", "--config",
                              self.bridge.config_path, "--reason", "nope")
        self.assertNotEqual(bad.returncode, 0)
        self.assertIn("invalid_for_segment", bad.stderr + bad.stdout)
        self.assertIn('nudgebridge_dead_letters_total{reason='
                      '"invalid_for_segment"}', self.bridge.metrics())


class TestEndpointChoice(BridgeCase):
    START = False

    def test_source_endpoint_wins(self):
        # Global endpoint is a closed port; the source's endpoint (and not
        # its region) is used.
        b = self.make_bridge(
            [{"name": "acme", "endpoint": self.sink.url, "region": "eu"}],
            {"segment": {"endpoint": "http://127.0.0.1:9"}})
        ev = event()
        self.assertCounts(b.post("acme", ev), 1, 0, 0)
        self.assertFalse(self.sink.wait_ids({b.message_id("acme",
                                                          ev["id"])}))


class TestRetries(BridgeCase):

    def test_outage_then_recovery(self):
        self.sink.set_mode("fail")
        evs = [event() for _ in range(6)]
        self.assertCounts(self.bridge.post("acme", evs[:3]), 3, 0, 0)
        self.assertCounts(self.bridge.post("acme", evs[3:]), 3, 0, 0)
        self.sink.wait_requests(3, timeout=10)
        failed = [m["messageId"] for b in self.sink.all_batches()
                  for m in b.messages]
        self.assertTrue(failed)
        self.sink.set_mode("ok")
        want = {self.bridge.message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        # Retries carried the same messageIds.
        self.assertLessEqual(set(failed), want)
        self.assertEqual(self.bridge.dlq("list"), [])

    def test_429_retry_after(self):
        gap = gap_after_429(self, "429", "1")
        self.assertGreaterEqual(gap, 0.9, "retried %.3fs after a 429 with "
                                "Retry-After: 1" % gap)

    def test_400_bisection(self):
        evs = [event() for _ in range(7)]
        bad = evs[4]
        self.sink.poison = {self.bridge.message_id("acme", bad["id"])}
        self.assertCounts(self.bridge.post("acme", evs), 7, 0, 0)
        want = {self.bridge.message_id("acme", e["id"])
                for e in evs if e is not bad}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        rows = wait_until(lambda: self.bridge.dlq("list"), timeout=10)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["id"], bad["id"])
        self.assertEqual(rows[0]["reason"], "rejected_by_segment")
        self.assertEqual(rows[0]["source"], "acme")
        self.assertNotIn(self.bridge.message_id("acme", bad["id"]),
                         self.sink.accepted_ids())

    def test_too_large(self):
        big = event(properties={"blob": "b" * 33000})
        ok = event()
        self.assertCounts(self.bridge.post("acme", [big, ok]), 2, 0, 0)
        self.assertFalse(self.sink.wait_ids(
            {self.bridge.message_id("acme", ok["id"])}))
        rows = wait_until(lambda: self.bridge.dlq("list"), timeout=10)
        self.assertEqual([(r["id"], r["reason"]) for r in rows],
                         [(big["id"], "too_large")])
        for b in self.sink.all_batches():
            self.assertLessEqual(len(b.raw), 500000)
            for m in b.messages:
                self.assertNotEqual(m["messageId"],
                                    self.bridge.message_id("acme", big["id"]))


class TestMaxAttempts(BridgeCase):
    CONFIG = {"segment": {"retry": {"max_attempts": 2}}}

    def test_dead_after_max_attempts(self):
        self.sink.set_mode("fail")
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        rows = wait_until(lambda: self.bridge.dlq("list"), timeout=10)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["id"], ev["id"])
        self.assertEqual(rows[0]["reason"], "max_attempts")
        self.assertIn("500", rows[0]["error"] or "")
        n = len(self.sink.all_batches())
        self.assertEqual(n, 2, "attempts made with max_attempts 2")


class TestMaxAge(BridgeCase):
    CONFIG = {"segment": {"retry": {"max_age_s": 1}}}

    def test_dead_after_max_age(self):
        self.sink.set_mode("fail")
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        rows = wait_until(lambda: self.bridge.dlq("list"), timeout=10)
        self.assertEqual(len(rows), 1, rows)
        self.assertEqual(rows[0]["reason"], "max_age")
        self.assertTrue(rows[0]["error"], rows[0])


class TestPause(BridgeCase):
    SOURCES = [{"name": "acme", "write_key": "wk_wrong"}]

    def test_401_pauses_and_reload_resumes(self):
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        self.sink.wait_requests(1)
        self.assertEqual(self.sink.all_batches()[0].status, 401)
        time.sleep(1.0)
        # Paused: no retry storm (initial_ms is 50 ms).
        self.assertLessEqual(len(self.sink.all_batches()), 2)
        stats = self.bridge.admin("GET", "/v1/stats")
        self.assertEqual(stats.status, 200, stats)
        self.assertIn("paused", stats.raw.decode())
        self.assertTrue(paused_in_stats(stats.json, "acme"), stats.json)
        metrics = self.bridge.get("/metrics").raw.decode()
        self.assertRegex(metrics, r'(?m)^nudgebridge_\w*paused\w*\{[^}]*'
                         r'source="acme"[^}]*\} 1(\.0+)?$')
        self.assertTrue(re.search(r"(?i)paus", self.bridge.log()),
                        "no log line about the pause")
        self.assertNotIn("wk_wrong", self.bridge.log())
        # Fix the write key, reload.
        self.bridge.config["sources"][0]["write_key"] = WRITE_KEY
        self.bridge.write_config()
        self.bridge.hup()
        self.assertFalse(self.sink.wait_ids(
            {self.bridge.message_id("acme", ev["id"])}, timeout=10))
        stats = wait_until(
            lambda: (lambda s: s if not paused_in_stats(s.json, "acme")
                     else None)(self.bridge.admin("GET", "/v1/stats")),
            timeout=5)
        self.assertTrue(stats, "still paused after the reload")
        self.assertEqual(self.bridge.dlq("list"), [])


def paused_in_stats(obj, source):
    """True when the stats JSON says source is paused (shape-tolerant)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "paused":
                if v is True and obj.get("source", obj.get("name")) == source:
                    return True
                if isinstance(v, list):
                    for p in v:
                        if p == source or (isinstance(p, dict) and
                                           p.get("source") == source):
                            return True
                if isinstance(v, dict) and source in v:
                    return True
            if k == source and isinstance(v, dict) and v.get("paused"):
                return True
            if paused_in_stats(v, source):
                return True
    elif isinstance(obj, list):
        return any(paused_in_stats(x, source) for x in obj)
    return False


class TestRateLimit(BridgeCase):
    CONFIG = {"segment": {"rate_limit_rps": 10, "max_batch_count": 1}}

    def test_rate_limited_per_write_key(self):
        evs = [event() for _ in range(25)]
        self.assertCounts(self.bridge.post("acme", evs), 25, 0, 0)
        want = {self.bridge.message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        times = sorted(b.at for b in self.sink.all_batches())
        self.assertEqual(len(times), 25)
        # A burst of at most rps, then rps per second: 15 more take 1.5 s.
        self.assertGreaterEqual(times[-1] - times[0], 1.2,
                                "25 requests in %.2fs at 10 rps" %
                                (times[-1] - times[0]))


class TestLogHygiene(BridgeCase):
    CONFIG = {"log": {"level": "debug"}}

    def test_logs_hold_no_secrets(self):
        self.sink.fail_next(1)
        ev = event(email="grace.hopper@example.net")
        body = json.dumps([ev]).encode()
        h = self.bridge.signed_headers("acme", body)
        self.assertCounts(self.bridge.post("acme", body, sign=False,
                                           headers=h), 1, 0, 0)
        self.assertEqual(self.bridge.post("acme", body, sign=False,
                                          headers=dict(h, **{
                                              "webhook-id": "msg_x"})).status,
                         401)
        self.assertFalse(self.sink.wait_ids(
            {self.bridge.message_id("acme", ev["id"])}))
        self.bridge.hup()
        time.sleep(0.3)
        log = self.bridge.log()
        self.assertTrue(log, "nothing logged at debug level")
        secret = self.bridge.secrets["acme"][0]
        for needle in (secret, secret[len("whsec_"):], WRITE_KEY,
                       base64.b64encode((WRITE_KEY + ":").encode()).decode(),
                       self.bridge.token, "grace.hopper@example.net",
                       h["webhook-signature"][3:]):
            self.assertNotIn(needle, log)


class TestCrash(BridgeCase):

    def test_kill9_in_flight(self):
        self.sink.set_mode("hang", hang_s=0.3)
        acked = []
        for i in range(20):
            evs = [event() for _ in range(5)]
            r = self.bridge.post("acme", evs)
            self.assertCounts(r, 5, 0, 0)
            acked.extend(evs)
        self.sink.wait_requests(1)
        self.sink.set_mode("ok")
        self.sink.fail_next(0)
        time.sleep(0.05)
        self.bridge.kill9()
        self.bridge.start()
        want = {self.bridge.message_id("acme", e["id"]) for e in acked}
        missing = self.sink.wait_ids(want, timeout=20)
        self.assertFalse(missing, "%d acknowledged events lost" %
                         len(missing))
        # Duplicates, if any, are identical messages.
        seen = {}
        for m in self.sink.accepted_messages():
            if m["messageId"] in seen:
                self.assertEqual(seen[m["messageId"]]["event"], m["event"])
                self.assertEqual(seen[m["messageId"]]["timestamp"],
                                 m["timestamp"])
                self.assertEqual(seen[m["messageId"]]["properties"],
                                 m["properties"])
            seen[m["messageId"]] = m
        self.assertEqual(set(seen), want)

    def test_kill9_while_sink_slow(self):
        self.sink.set_mode("slow", hang_s=0.5)
        acked = []
        stop = threading.Event()

        def post_loop():
            while not stop.is_set():
                evs = [event() for _ in range(3)]
                try:
                    r = self.bridge.post("acme", evs)
                except OSError:
                    return
                if r.status == 200:
                    acked.extend(evs)

        t = threading.Thread(target=post_loop)
        t.start()
        self.sink.wait_requests(2, timeout=10)
        self.bridge.kill9()
        stop.set()
        t.join(10)
        self.assertTrue(acked)
        self.sink.set_mode("ok")
        self.bridge.start()
        want = {self.bridge.message_id("acme", e["id"]) for e in acked}
        missing = self.sink.wait_ids(want, timeout=20)
        self.assertFalse(missing, "%d of %d acknowledged events lost" %
                         (len(missing), len(want)))


if __name__ == "__main__":
    unittest.main()
