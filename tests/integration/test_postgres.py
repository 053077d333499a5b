# SPDX-License-Identifier: ISC
"""Several bridge instances sharing one PostgreSQL store, black box.

Needs NB_TEST_PG_DSN (tests/pg.sh starts a throw-away cluster; tests/run.sh
does it for you); without it every test is skipped.  Each test gets a
schema of its own (PGOPTIONS sets the search_path of every connection the
bridges open), so runs never see each other's rows.  The outage test stops
and restarts a PostgreSQL server: it starts a private cluster of its own
with tests/pg.sh (never the shared one NB_TEST_PG_DSN names, which other
tests may be using) and deletes it afterwards.

The load generators below play Nudgespot and a load balancer: a webhook
that is not answered 200 (a 503, a refused or reset connection) is sent
again, same webhook-id and body, to the next instance, until it is
acknowledged.  "Acknowledged" in the assertions means "answered 200".
"""

import http.client
import json
import os
import threading
import time
import unittest

from harness import (BridgeCase, PrivatePostgres, event, message_id, new_id,
                     new_secret, pg_drop_schema, pg_new_schema, pg_options,
                     psql, wait_until)

DSN = os.environ.get("NB_TEST_PG_DSN", "")


class Poster(threading.Thread):
    """Posts signed webhooks of `per` events over `bridges` until stopped.

    Thread k starts at bridges[k % n] and moves to the next instance for
    each new webhook (requests spread over the fleet); a webhook answered
    anything but 200 is retried with the same id and body on the next
    instance, or on the same one when there is only one.
    """

    def __init__(self, bridges, k=0, per=2, give_up_s=40.0, pause_s=0.0):
        super().__init__(daemon=True)
        self.bridges = list(bridges)
        self.k = k
        self.per = per
        self.give_up_s = give_up_s
        self.pause_s = pause_s
        self.halt = threading.Event()
        self.lock = threading.Lock()
        self.sent = set()       # event ids ever posted
        self.acked = set()      # event ids answered 200
        self.unacked = []       # gave up on these
        self.statuses = {}      # status (or exception name) -> count
        self.unexpected = []    # answers neither 200 nor 503
        self.no_retry_after = []  # 503s without a valid Retry-After
        self.per_bridge = [0] * len(self.bridges)  # 200s per instance

    def _count(self, key):
        with self.lock:
            self.statuses[key] = self.statuses.get(key, 0) + 1

    def _webhook(self, i):
        evs = [event(properties={"poster": self.k, "i": i, "j": j})
               for j in range(self.per)]
        body = json.dumps(evs).encode()
        msg = new_id("msg")
        with self.lock:
            self.sent.update(e["id"] for e in evs)
        at = (self.k + i) % len(self.bridges)
        deadline = time.monotonic() + self.give_up_s
        while time.monotonic() < deadline:
            b = self.bridges[at]
            try:
                r = b.post("acme", body, id=msg)
                status = r.status
            except (OSError, http.client.HTTPException) as e:
                r, status = None, type(e).__name__
            self._count(status)
            if status == 200:
                with self.lock:
                    self.acked.update(e["id"] for e in evs)
                    self.per_bridge[at] += 1
                return
            if status == 503:
                ra = r.header("Retry-After")
                if not (ra and ra.isdigit() and int(ra) > 0):
                    with self.lock:
                        self.no_retry_after.append(r)
            elif r is not None:
                with self.lock:
                    self.unexpected.append(r)
                return
            at = (at + 1) % len(self.bridges)
            time.sleep(0.05)
        with self.lock:
            self.unacked.extend(e["id"] for e in evs)

    def run(self):
        i = 0
        while not self.halt.is_set():
            self._webhook(i)
            i += 1
            if self.pause_s:
                time.sleep(self.pause_s)

    def finish(self, timeout=45.0):
        self.halt.set()
        self.join(timeout)


def strip_sent_at(m):
    return {k: v for k, v in m.items() if k != "sentAt"}


@unittest.skipUnless(DSN, "NB_TEST_PG_DSN is not set (see tests/pg.sh)")
class PgCase(BridgeCase):
    START = False
    # An instance killed with -9 holds its claims until the lease ends
    # (PostgreSQL has no start-up recovery: other instances may be alive).
    # The deliverer leases for at least one request timeout plus a margin,
    # so a short timeout keeps these tests short.
    LEASE_S = 2
    TIMEOUT_MS = 1000

    def setUp(self):
        super().setUp()
        self.dsn = getattr(self, "dsn", None) or DSN
        self.schema = pg_new_schema("nbit", self.dsn)
        self.addCleanup(pg_drop_schema, self.schema, self.dsn)
        self.sources = [{"name": "acme",
                         "signing_secrets": [new_secret()]}]

    def instance(self, start=True, segment=None):
        b = self.make_bridge(
            self.sources,
            {"store": {"driver": "postgres", "dsn": self.dsn,
                       "lease_s": self.LEASE_S, "path": None},
             "segment": dict({"timeout_ms": self.TIMEOUT_MS},
                             **(segment or {}))},
            start=False)
        del b.config["store"]["path"]
        b.write_config()
        b.env["PGOPTIONS"] = pg_options(self.schema)
        if start:
            b.start()
        return b

    def run_posters(self, bridges, n=4, per=2, pause_s=0.0):
        ps = [Poster(bridges, k, per=per, pause_s=pause_s)
              for k in range(n)]
        for p in ps:
            p.start()
        self.addCleanup(lambda: [p.finish(5) for p in ps])
        return ps

    def finish_posters(self, ps):
        for p in ps:
            p.finish()
        acked, sent = set(), set()
        for p in ps:
            self.assertFalse(p.is_alive(), "a poster did not stop")
            self.assertEqual(p.unexpected, [], "answers besides 200/503")
            self.assertEqual(p.no_retry_after, [], "503 without Retry-After")
            self.assertEqual(p.unacked, [], "webhooks never acknowledged")
            acked |= p.acked
            sent |= p.sent
        return acked, sent

    def assertDelivered(self, acked, sent, timeout=40):
        """Every acked event reached the sink; copies are identical."""
        want = {self.mid(i) for i in acked}
        missing = self.sink.wait_ids(want, timeout=timeout)
        self.assertFalse(missing, "%d of %d acknowledged events lost" %
                         (len(missing), len(want)))
        posted = {self.mid(i) for i in sent}
        seen, dups = {}, 0
        for m in self.sink.accepted_messages():
            mid = m.get("messageId")
            self.assertIn(mid, posted, "a message nobody posted")
            if mid in seen:
                dups += 1
                self.assertEqual(strip_sent_at(seen[mid]), strip_sent_at(m),
                                 "two different messages, one messageId")
            else:
                seen[mid] = m
        return dups

    def pending(self, bridge):
        r = bridge.admin("GET", "/v1/stats")
        if r.status != 200:
            return None
        return sum(x["pending"] for x in r.json["sources"])

    def mid(self, event_id):
        """The messageId of an acme event stored now: the install id is
        the database's, the same for every instance on the schema."""
        if getattr(self, "_install", None) is None:
            self._install = psql("SELECT install_id FROM %s.install"
                                 % self.schema, dsn=self.dsn).strip()
        return message_id("acme", event_id, self._install)

    def count_events(self):
        out = psql("SELECT count(*) FROM %s.events" % self.schema,
                   dsn=self.dsn)
        return int(out.strip())


class TestSharedStore(PgCase):

    def test_two_instances_share_dedupe_and_queue(self):
        a, b = self.instance(), self.instance()
        evs = [event() for _ in range(10)]
        self.assertCounts(a.post("acme", evs[:5], id="msg_pg_1"), 5, 0, 0)
        # The same webhook delivered to the other instance is a duplicate.
        self.assertCounts(b.post("acme", evs[:5], id="msg_pg_1"), 0, 5, 0)
        self.assertCounts(b.post("acme", evs[5:]), 5, 0, 0)
        self.assertCounts(a.post("acme", [evs[7]]), 0, 1, 0)
        want = {self.mid(e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        time.sleep(0.5)
        # Two deliverers, but each row was claimed by one of them.
        n = sum(len(x.messages) for x in self.sink.all_batches())
        self.assertEqual(n, 10, "messages sent for 10 events")
        # Quarantine and dlq work against the shared store too.
        self.assertCounts(a.post("acme", event(occurred_at="no")), 0, 0, 1)
        rows = b.dlq("list")
        self.assertEqual([r["reason"] for r in rows], ["quarantined"])

    def named_instance(self):
        """An instance whose connections carry the schema's name, so that
        end_connections() ends only theirs."""
        a = self.instance(start=False)
        a.config["store"]["dsn"] = "%s%sapplication_name=%s" % (
            self.dsn, "&" if "?" in self.dsn else "?", self.schema)
        a.write_config()
        a.start()
        return a

    def end_connections(self):
        """Has the server end those connections; how many it ended."""
        return int(psql("SELECT count(pg_terminate_backend(pid))"
                        " FROM pg_stat_activity WHERE application_name ="
                        " '%s'" % self.schema, dsn=self.dsn).strip())

    def test_dropped_connections_are_not_seen_by_senders(self):
        # The server closes the bridge's connections (a restart of a
        # pooler, idle_session_timeout, a firewall): the next webhook is
        # stored on a new connection and answered 200, not 503.
        a = self.named_instance()
        self.assertCounts(a.post("acme", event()), 1, 0, 0)
        self.assertGreaterEqual(self.end_connections(), 1)
        evs = [event(), event()]
        for e in evs:
            self.assertCounts(a.post("acme", e), 1, 0, 0)
        self.assertFalse(self.sink.wait_ids(
            {self.mid(e["id"]) for e in evs}, timeout=15))
        self.assertIn("store reconnected", a.log())

    def test_dropped_connections_are_not_seen_by_operators(self):
        # The same for the reads that answer an operator and a scraper:
        # the admin API's lists and figures and /metrics are answered from
        # a new connection, not 503 once first.
        a = self.named_instance()
        self.assertCounts(a.post("acme", event()), 1, 0, 0)
        paths = ("/v1/stats", "/v1/events?limit=5", "/v1/dlq",
                 "/v1/audit")
        for path in paths:
            self.assertEqual(a.admin("GET", path).status, 200, path)
        r = a.get("/metrics")
        self.assertIn(b'nudgebridge_queue_dead{source="acme"}', r.raw)
        for path in paths:
            self.assertGreaterEqual(self.end_connections(), 1)
            r = a.admin("GET", path)
            self.assertEqual(r.status, 200, "%s: %s" % (path, r.raw))
            self.assertGreaterEqual(self.end_connections(), 1)
            r = a.get("/metrics")
            self.assertEqual(r.status, 200, r.raw)
            self.assertIn(b'nudgebridge_queue_dead{source="acme"}', r.raw)

    def test_restart_keeps_acknowledged(self):
        a = self.instance()
        self.sink.set_mode("fail")
        evs = [event() for _ in range(4)]
        self.assertCounts(a.post("acme", evs), 4, 0, 0)
        a.kill9()
        self.sink.set_mode("ok")
        a.start()
        want = {self.mid(e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))


class TestLeaseTakeover(PgCase):

    def test_killed_instance_rows_taken_over(self):
        a = self.instance()
        self.sink.set_mode("hang", hang_s=3.0)
        evs = [event() for _ in range(6)]
        self.assertCounts(a.post("acme", evs), 6, 0, 0)
        self.sink.wait_requests(1, timeout=10)
        a.kill9()           # dies holding the lease on every row
        self.sink.set_mode("ok")
        b = self.instance()
        want = {self.mid(e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15),
                         "rows leased by a dead instance never taken over")
        self.assertTrue(b.alive())


class TestFleetKill(PgCase):

    def test_kill9_mid_delivery_spread_over_two(self):
        a, b = self.instance(), self.instance()
        # Slow answers keep batches in flight on both instances.
        self.sink.set_mode("slow", hang_s=0.3)
        ps = self.run_posters([a, b], n=4, per=2)
        self.assertGreaterEqual(self.sink.wait_requests(4, timeout=15), 4)
        time.sleep(0.5)
        a.kill9()           # mid-delivery: holds leases, has answers due
        time.sleep(1.0)     # the load goes on, now on b only
        acked, sent = self.finish_posters(ps)
        self.sink.set_mode("ok")
        n_a = sum(p.per_bridge[0] for p in ps)
        n_b = sum(p.per_bridge[1] for p in ps)
        self.assertGreater(n_a, 0, "instance a acknowledged nothing")
        self.assertGreater(n_b, 0, "instance b acknowledged nothing")
        self.assertTrue(acked <= sent)
        # a's leases run out (lease_s, at least timeout + 5 s) and b sends
        # a's share too: wait for the queue to be empty, so that batches
        # a had in flight when it died (which reached the sink, but were
        # never marked delivered) are sent again by b before the check.
        self.assertDelivered(acked, sent, timeout=40)
        self.assertTrue(wait_until(lambda: self.pending(b) == 0,
                                   timeout=30),
                        "rows left pending: %r" % self.pending(b))
        self.assertEqual(self.count_events(), len(acked))
        dups = self.assertDelivered(acked, sent, timeout=1)
        self.assertTrue(b.alive())
        if os.environ.get("NB_SHOW_LOG"):
            print("acked %d (a %d, b %d webhooks), duplicates %d" %
                  (len(acked), n_a, n_b, dups))


class TestConcurrentDuplicate(PgCase):
    EVENTS = 15
    COPIES = 8          # concurrent copies of each, alternating a and b

    def race(self, body, ids):
        """Posts body once per webhook id in ids, all at the same moment,
        alternating between the two instances; returns the responses."""
        out, lock = [], threading.Lock()
        gate = threading.Barrier(len(ids))

        def one(k):
            try:
                gate.wait(10)
                r = self.bridges[k % 2].post("acme", body, id=ids[k])
            except Exception as e:  # reported below as a missing answer
                r = e
            with lock:
                out.append(r)

        ts = [threading.Thread(target=one, args=(k,))
              for k in range(len(ids))]
        for t in ts:
            t.start()
        for t in ts:
            t.join(30)
        self.assertEqual(len(out), len(ids))
        for r in out:
            self.assertEqual(getattr(r, "status", r), 200, r)
            self.assertEqual(r.json["accepted"] + r.json["duplicates"], 1, r)
        return out

    def check_sent_once(self, evs):
        want = {self.mid(e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        time.sleep(0.5)
        n = sum(1 for m in self.sink.accepted_messages()
                if m.get("messageId") in want)
        self.assertEqual(n, len(want), "raced events sent more than once")

    def test_same_webhook_to_both_stored_once(self):
        self.bridges = (self.instance(), self.instance())
        evs = [event() for _ in range(self.EVENTS)]
        for e in evs:
            msg = new_id("msg")
            out = self.race(json.dumps(e).encode(), [msg] * self.COPIES)
            self.assertEqual(sum(r.json["accepted"] for r in out), 1,
                             "webhook %s stored more than once" % msg)
        self.assertEqual(self.count_events(), self.EVENTS)
        self.check_sent_once(evs)

    def test_same_event_in_different_webhooks_stored_once(self):
        # Nudgespot may send an event again under a new webhook-id: the
        # event id key has to hold under the same race.
        self.bridges = (self.instance(), self.instance())
        evs = [event() for _ in range(self.EVENTS)]
        for e in evs:
            out = self.race(json.dumps(e).encode(),
                            [new_id("msg") for _ in range(self.COPIES)])
            self.assertEqual(sum(r.json["accepted"] for r in out), 1,
                             "event %s stored more than once" % e["id"])
        self.assertEqual(self.count_events(), self.EVENTS)
        self.check_sent_once(evs)


class TestFleet(PgCase):
    """One install, one rate budget for the whole fleet (section 6).

    segment.rate_limit_rps is R requests per second for all the instances
    on the database.  Every request here carries one message and the
    backlog outlasts the test, so each instance sends as fast as its share
    lets it.  A token bucket of rate r and burst b sends at most b + r * W
    requests in any W seconds; an instance's burst is max(1, its share), so
    the fleet may send at most R * W + R in any window of W seconds (R is at
    least the number of instances here).  That is the tolerance; two
    instances that did not share would send 2 * R * W.
    """
    R = 4           # the fleet's budget, requests per second
    W = 4.0         # the window measured, seconds
    EVENTS = 400    # more than the test can send

    def rate_instance(self):
        return self.instance(segment={"rate_limit_rps": self.R,
                                      "max_batch_count": 1})

    def stats(self, b):
        r = b.admin("GET", "/v1/stats")
        self.assertEqual(r.status, 200, r)
        return r.json

    def share(self, b):
        return self.stats(b)["rate_limit"]["share_rps"]

    def sent(self, b):
        return b.metrics().get(
            'nudgebridge_segment_requests_total{status="200"}', 0)

    def count(self, t0, t1):
        return sum(1 for x in self.sink.all_batches() if t0 <= x.at < t1)

    def busiest(self, t0, t1):
        """The most requests in any window of W seconds within [t0, t1)."""
        ts = sorted(x.at for x in self.sink.all_batches() if t0 <= x.at < t1)
        return max([sum(1 for u in ts if t <= u < t + self.W)
                    for t in ts if t + self.W <= t1] or [0])

    def backlog(self, b):
        for _ in range(self.EVENTS // 200):
            evs = [event() for _ in range(200)]
            self.assertCounts(b.post("acme", evs), 200, 0, 0)

    def test_one_install_id_and_the_live_instances(self):
        a, b = self.instance(), self.instance()
        self.assertTrue(wait_until(
            lambda: len(self.stats(a)["instances"]) == 2 and
            len(self.stats(b)["instances"]) == 2, timeout=10))
        sa, sb = self.stats(a), self.stats(b)
        self.assertEqual(sa["install_id"], sb["install_id"])
        self.assertEqual(sa["install_id"], self._install_id())
        self.assertEqual([i["id"] for i in sa["instances"]],
                         [i["id"] for i in sb["instances"]])
        mine = [i for i in sa["instances"] if i["self"]]
        theirs = [i for i in sb["instances"] if i["self"]]
        self.assertEqual(len(mine), 1)
        self.assertEqual(len(theirs), 1)
        self.assertNotEqual(mine[0]["id"], theirs[0]["id"])
        self.assertEqual(mine[0]["pid"], a.proc.pid)
        for i in sa["instances"]:
            self.assertTrue(i["host"])
            self.assertLessEqual(i["started_at"], i["heartbeat_at"])
        self.assertEqual(sa["rate_limit"]["live_instances"], 2)
        self.assertTrue(sa["rate_limit"]["shared"])
        # The same event through either instance: one messageId.
        ev = event()
        self.assertCounts(a.post("acme", ev), 1, 0, 0)
        self.assertCounts(b.post("acme", ev), 0, 1, 0)
        self.assertFalse(self.sink.wait_ids({self.mid(ev["id"])}))

    def _install_id(self):
        return psql("SELECT install_id FROM %s.install" % self.schema,
                    dsn=self.dsn).strip()

    def test_budget_shared_and_given_back(self):
        R, W = self.R, self.W
        a = self.rate_instance()
        self.backlog(a)
        self.assertTrue(wait_until(lambda: self.share(a) == R, timeout=10))
        # One instance: the whole budget.
        start = time.monotonic()
        time.sleep(1.0 + W)
        one = self.count(start + 1.0, start + 1.0 + W)
        self.assertLessEqual(one, R * W + R, "one instance over budget")
        self.assertGreaterEqual(one, R * W * 0.6, "one instance too slow")

        # A second instance: the same budget, shared.
        b = self.rate_instance()
        joined = time.monotonic()
        self.assertTrue(wait_until(
            lambda: self.share(a) == R / 2 and self.share(b) == R / 2,
            timeout=10), "the shares did not settle at R/2")
        sent_a, sent_b = self.sent(a), self.sent(b)
        t0 = time.monotonic()
        time.sleep(W)
        two = self.count(t0, t0 + W)
        self.assertLessEqual(two, R * W + R, "two instances over budget")
        self.assertGreaterEqual(two, R * W * 0.6, "two instances too slow")
        self.assertGreater(self.sent(a) - sent_a, 0, "a sent nothing")
        self.assertGreater(self.sent(b) - sent_b, 0, "b sent nothing")
        # Not only in that window: never over budget since b started.
        self.assertLessEqual(self.busiest(joined, time.monotonic()),
                             R * W + R, "over budget while b joined")

        # kill -9 of one: the other's share grows back within a lease.
        a.kill9()
        killed = time.monotonic()
        self.assertTrue(wait_until(lambda: self.share(b) == R,
                                   timeout=15, interval=0.1),
                        "the dead instance's share never came back")
        back = time.monotonic() - killed
        # The lease, then at most a beat (a quarter of the lease) to see
        # it, and the polling's own delay: 1.5 to 2.5 s.  The bound leaves
        # room for late beats on a loaded machine (CI runs four tests at
        # once on two cores) and still fails a share that comes back only
        # once the dead instance is forgotten (ten leases).
        self.assertLess(back, self.LEASE_S * 3,
                        "share back after %.2f s" % back)
        t1 = time.monotonic()
        time.sleep(W)
        alone = self.count(t1, t1 + W)
        self.assertLessEqual(alone, R * W + R, "survivor over budget")
        self.assertGreaterEqual(alone, R * W * 0.6,
                                "survivor did not take the budget back")
        if os.environ.get("NB_SHOW_LOG"):
            print("requests in %.0f s: one %d, two %d, survivor %d; share "
                  "back %.2f s after kill -9" % (W, one, two, alone, back))


@unittest.skipUnless(DSN, "NB_TEST_PG_DSN is not set (see tests/pg.sh)")
class TestPgOutage(PrivatePostgres, PgCase):
    """PostgreSQL stopped (pg_ctl stop -m fast) and started under load.

    Runs on a private cluster (tests/pg.sh with a state file of its own):
    stopping the shared server would break whatever else uses it.
    """

    def test_stop_and_start_under_load(self):
        a, b = self.instance(), self.instance()
        self.sink.set_mode("slow", hang_s=0.05)
        # One poster per instance, each retrying on its own instance (as
        # Nudgespot does against one URL), two spread over both.
        ps = [Poster([a], 0), Poster([b], 1), Poster([a, b], 2),
              Poster([a, b], 3)]
        for p in ps:
            p.start()
        self.addCleanup(lambda: [p.finish(5) for p in ps])
        self.assertTrue(self.sink.wait_count(10, timeout=15))
        before = sum(len(p.acked) for p in ps)
        self.assertGreater(before, 0)

        r = self.pg("stop-server", "fast")
        self.assertEqual(r.returncode, 0, r.stderr)
        down_at = time.monotonic()
        for x in (a, b):
            self.assertTrue(wait_until(
                lambda: x.get("/readyz").status == 503, timeout=10),
                "/readyz still 200 with the database down")
            self.assertEqual(x.get("/healthz").status, 200)
        self.assertTrue(wait_until(
            lambda: sum(p.statuses.get(503, 0) for p in ps) > 0,
            timeout=10), "no 503 while the database is down")
        time.sleep(max(0.0, 2.0 - (time.monotonic() - down_at)))
        # Nothing is answered 200 while the server is down.
        acked_down = sum(len(p.acked) for p in ps)
        time.sleep(0.5)
        self.assertEqual(sum(len(p.acked) for p in ps), acked_down,
                         "200 while PostgreSQL is stopped")
        self.assertTrue(all(x.alive() for x in (a, b)))

        r = self.pg("start-server")
        self.assertEqual(r.returncode, 0, r.stderr)
        for x in (a, b):
            self.assertTrue(wait_until(
                lambda: x.get("/readyz").status == 200, timeout=25),
                "/readyz not back after PostgreSQL returned")
        # Webhooks are accepted again by both, without a restart.
        more = sum(len(p.acked) for p in ps)
        self.assertTrue(wait_until(
            lambda: sum(len(p.acked) for p in ps) > more + 8, timeout=15),
            "webhooks not accepted after PostgreSQL returned")
        acked, sent = self.finish_posters(ps)
        self.assertGreater(sum(p.statuses.get(503, 0) for p in ps), 0)
        self.assertDelivered(acked, sent, timeout=40)
        self.assertTrue(all(x.alive() for x in (a, b)))
        if os.environ.get("NB_SHOW_LOG"):
            print("statuses %r" % [p.statuses for p in ps])
        self.assertTrue(a.wait_log(r"store (connection lost|unreachable)",
                                   timeout=1) or
                        b.wait_log(r"store (connection lost|unreachable)",
                                   timeout=1),
                        "no log line about the lost database")


if __name__ == "__main__":
    unittest.main()
