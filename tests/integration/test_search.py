# SPDX-License-Identifier: ISC
"""Finding and forgetting events (contract section 8), black box.

Search over the admin API and the command line (every filter, the
cursor, the case of an address), one event with its Track message and its
attempt history, erasure with its audit (the admin API and the command
line, dry runs, no address in the audit nor the log, no byte of it left
in the SQLite files), drop_types, and the promise that no batch holding an
erased person's event is sent after the erase returns: an erase races a
drain whose sink answers slowly, so batches are in flight and claimed when
it starts; the sink notes when each request arrived.  The same tests run
on PostgreSQL (NB_TEST_STORE=postgres), where the race is also run on two
instances sharing one database.
"""

import hashlib
import json
import os
import sqlite3
import subprocess
import threading
import time
import unittest

from harness import (ON_POSTGRES, BridgeCase, event, new_id,
                     new_secret, pg_drop_schema, pg_new_schema, pg_options,
                     qs, sqlite_only, wait_until)

DSN = os.environ.get("NB_TEST_PG_DSN", "")


def sha(s):
    return hashlib.sha256(s.encode()).hexdigest()


class SearchCase(BridgeCase):
    def post_events(self, evs, source="acme", bridge=None):
        r = (bridge or self.bridge).post(source, json.dumps(evs).encode())
        self.assertEqual(r.status, 200, r)
        return r

    def search(self, bridge=None, **params):
        r = (bridge or self.bridge).admin("GET", "/v1/events?" + qs(**params))
        self.assertEqual(r.status, 200, r)
        return r.json

    def ids(self, bridge=None, **params):
        return [e["id"] for e in self.search(bridge, **params)["events"]]


class TestSearch(SearchCase):
    SOURCES = [{"name": "acme"}, {"name": "beta"}]
    CONFIG = {"segment": {"retry": {"max_attempts": 2}}}

    def test_filters(self):
        a1 = event(email="Ada@Example.com", uid="u_ada", type="email.opened")
        a2 = event(email="ada@example.com", uid=None, type="email.clicked")
        b1 = event(email="bob@example.com", uid="u_bob")
        q1 = event(email="ada@example.com", uid="u_ada", occurred_at="no")
        self.post_events([a1, b1])
        self.post_events([a2, q1], source="beta")
        self.assertFalse(self.sink.wait_ids(
            [self.mid("acme", a1["id"]), self.mid("acme", b1["id"]),
             self.mid("beta", a2["id"])]))
        # Newest first; the address in any case; the uid exactly.
        self.assertEqual(self.ids(email="ADA@example.COM"),
                         [q1["id"], a2["id"], a1["id"]])
        self.assertEqual(self.ids(uid="u_ada"), [q1["id"], a1["id"]])
        self.assertEqual(self.ids(uid="U_ADA"), [])
        self.assertEqual(self.ids(email="ada@example.com", uid="u_ada"),
                         [q1["id"], a1["id"]])
        self.assertEqual(self.ids(email="ada@example.com", source="beta",
                                  state="dead"), [q1["id"]])
        self.assertEqual(self.ids(type="email.opened"), [a1["id"]])
        self.assertEqual(self.ids(id=b1["id"]), [b1["id"]])
        # The delivered marks follow the sink's answers.
        self.assertTrue(wait_until(
            lambda: len(self.ids(state="delivered")) == 3))
        self.assertEqual(self.ids(state="pending"), [])
        self.assertEqual(self.ids(email="nobody@example.com"), [])
        self.assertEqual(self.ids(since="1m", uid="u_bob"), [b1["id"]])
        self.assertEqual(self.ids(until="2000-01-01T00:00:00Z"), [])
        # The answer's shape.
        page = self.search(email="ada@example.com", limit=1)
        self.assertEqual(set(page), {"events", "next"})
        e = page["events"][0]
        for k in ("key", "id", "source", "type", "state", "received_at"):
            self.assertIn(k, e)
        self.assertEqual((e["id"], e["state"], e["reason"]),
                         (q1["id"], "dead", "quarantined"))
        # The cursor walks the rest, one by one, and ends with null.
        seen = [e["id"]]
        while page["next"] is not None:
            page = self.search(email="ada@example.com", limit=1,
                               after=page["next"])
            seen += [x["id"] for x in page["events"]]
        self.assertEqual(seen, [q1["id"], a2["id"], a1["id"]])

    def test_bad_queries(self):
        for q in ("limit=0", "limit=1001", "limit=x", "state=lost",
                  "after=abc", "since=yesterday", "email=", "color=red",
                  "uid=a%01b", "dry_run=true", "limit=1&limit=2"):
            r = self.bridge.admin("GET", "/v1/events?" + q)
            self.assertStatus(r, 400, "invalid_request")
        r = self.bridge.admin("POST", "/v1/events", body=b"{}")
        self.assertStatus(r, 405, "method_not_allowed")
        self.assertEqual(self.bridge.admin("GET", "/v1/events/999999").status,
                         404)
        self.assertEqual(self.bridge.admin("GET", "/v1/events/x/y").status,
                         404)
        r = self.bridge.admin("GET", "/v1/events", auth=False)
        self.assertStatus(r, 401, "unauthorized")

    def test_show_with_attempts(self):
        ev = event(email="cy@example.com", uid="u_cy",
                   properties={"plan": "pro"})
        self.sink.fail_next(1, 503)  # max_attempts 2: one failure, then 200
        self.post_events([ev])
        self.assertFalse(self.sink.wait_ids([self.mid("acme", ev["id"])]))
        key = self.search(uid="u_cy")["events"][0]["key"]

        def delivered():
            r = self.bridge.admin("GET", "/v1/events/" + key)
            self.assertEqual(r.status, 200, r)
            return r.json if r.json["state"] == "delivered" else None
        # The sink has the message; the bridge marks it on the 200.
        o = wait_until(delivered, timeout=10)
        self.assertTrue(o, "the event was never marked delivered")
        self.assertEqual(o["event"], ev)
        self.assertEqual(o["state"], "delivered")
        self.assertEqual(o["tries"], 1)
        self.assertEqual(o["track"]["messageId"], self.mid("acme", ev["id"]))
        self.assertEqual(o["track"]["userId"], "u_cy")
        self.assertEqual(o["track"]["properties"]["plan"], "pro")
        at = o["attempts"]
        self.assertEqual([a["status"] for a in at], [503, 200], at)
        for a in at:
            self.assertEqual(a["batch_size"], 1)
            self.assertGreaterEqual(a["latency_ms"], 0)
            self.assertTrue(a["at"].endswith("Z"))
        self.assertEqual(at[0]["error"], "segment: 503")
        self.assertIsNone(at[1]["error"])

    def test_network_error_and_dead(self):
        ev = event(email="dee@example.com")
        self.sink.set_mode("fail")
        self.post_events([ev])
        # max_attempts 2: dead after two failures.
        wait_until(lambda: self.ids(state="dead", email="dee@example.com"))
        key = self.search(email="dee@example.com")["events"][0]["key"]
        o = self.bridge.admin("GET", "/v1/events/" + key).json
        self.assertEqual(o["reason"], "max_attempts")
        self.assertEqual([a["status"] for a in o["attempts"]], [500, 500])
        # A network failure has no status, only an error.
        nb = self.make_bridge(config={"segment": {
            "endpoint": "http://127.0.0.1:9", "retry": {"max_attempts": 1}}})
        self.post_events([event(email="dee@example.com")], bridge=nb)
        wait_until(lambda: self.ids(bridge=nb, state="dead"))
        key = self.search(bridge=nb)["events"][0]["key"]
        o = nb.admin("GET", "/v1/events/" + key).json
        self.assertEqual(len(o["attempts"]), 1)
        self.assertIsNone(o["attempts"][0]["status"])
        self.assertTrue(o["attempts"][0]["error"].startswith("segment: "))

    def test_cli(self):
        ev = event(email="eve@example.com", uid="u_eve")
        self.post_events([ev])
        self.assertFalse(self.sink.wait_ids([self.mid("acme", ev["id"])]))
        r = self.bridge.cli("events", "list", "--config",
                            self.bridge.config_path, "--email",
                            "EVE@example.com", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        page = json.loads(r.stdout)
        self.assertEqual([e["id"] for e in page["events"]], [ev["id"]])
        self.assertIsNone(page["next"])
        key = page["events"][0]["key"]

        def shown():
            r = self.bridge.cli("events", "show", key, "--config",
                                self.bridge.config_path)
            self.assertEqual(r.returncode, 0, r.stderr)
            o = json.loads(r.stdout)
            # The sink has the message; the bridge marks it on the 200.
            return o if o["state"] == "delivered" else None
        o = wait_until(shown, timeout=10)
        self.assertTrue(o, "the event was never marked delivered")
        self.assertEqual(o["event"], ev)
        self.assertEqual([a["status"] for a in o["attempts"]], [200])
        r = self.bridge.cli("events", "list", "--config",
                            self.bridge.config_path, "--uid", "u_eve")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(ev["id"], r.stdout)
        self.assertIn("delivered", r.stdout)
        r = self.bridge.cli("events", "list", "--config",
                            self.bridge.config_path, "--state", "lost")
        self.assertEqual(r.returncode, 2)
        r = self.bridge.cli("events", "show", "424242", "--config",
                            self.bridge.config_path)
        self.assertEqual(r.returncode, 1)


    @sqlite_only("SQLite's person index is folded late")
    def test_kill9_before_fold(self):
        """Events acknowledged and then a kill -9 before the committer
        folded them into the person index: a search after the restart
        finds every one (admin API by address and by uid, the command
        line), and the restarted committer folds them."""
        db = os.path.join(self.bridge.dir, "nb.db")

        def fold_state():
            con = sqlite3.connect(db, timeout=5)
            try:
                return con.execute(
                    "SELECT folded, (SELECT max(seq) FROM events)"
                    " FROM people_fold").fetchone()
            finally:
                con.close()

        evs = [event(email="kim@example.com", uid="u_kim",
                     properties={"i": i}) for i in range(40)]
        for i in range(0, 40, 10):
            self.post_events(evs[i:i + 10] + [event(email="x@example.net")])
        self.bridge.kill9()
        folded, top = fold_state()
        self.bridge.start()
        want = [e["id"] for e in evs]
        self.assertEqual(self.ids(email="kim@example.com", limit=100),
                         want[::-1], "folded %d of %d" % (folded, top))
        self.assertEqual(self.ids(uid="u_kim", limit=100), want[::-1])
        self.assertTrue(wait_until(
            lambda: fold_state()[0] == fold_state()[1], timeout=10))
        self.assertEqual(self.ids(email="kim@example.com", limit=100),
                         want[::-1])
        r = self.bridge.cli("events", "list", "--config",
                            self.bridge.config_path, "--email",
                            "kim@example.com", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json.loads(r.stdout)["events"]), 40)


class TestErase(SearchCase):
    SOURCES = [{"name": "acme"}, {"name": "beta"}]

    def test_erase_and_audit(self):
        ada = [event(email="Ada@Example.com", uid="u_ada") for _ in range(3)]
        quar = event(email="ada@example.com", uid=None, occurred_at="bad")
        bob = event(email="bob@example.com", uid="u_bob")
        self.post_events(ada[:2] + [bob])
        self.post_events([ada[2], quar], source="beta")
        self.assertFalse(self.sink.wait_ids(
            [self.mid("acme", e["id"]) for e in ada[:2] + [bob]]))
        # A dry run counts and changes nothing.
        r = self.bridge.admin("POST", "/v1/erase",
                              {"email": "ADA@example.com", "dry_run": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual((r.json["erased"], r.json["dry_run"]), (4, True))
        self.assertEqual(len(self.ids(email="ada@example.com")), 4)
        r = self.bridge.admin("POST", "/v1/erase",
                              {"email": "ADA@example.com"})
        self.assertEqual(r.status, 200, r)
        o = r.json
        self.assertEqual((o["erased"], o["dry_run"], o["kind"]),
                         (4, False, "email"))
        self.assertEqual(o["subject"], sha("ada@example.com"))
        self.assertEqual(o["delivered"] + o["pending"] + o["dead"], 4)
        self.assertEqual(o["dead"], 1)
        self.assertEqual(self.ids(email="ada@example.com"), [])
        self.assertEqual(self.ids(uid="u_ada"), [])
        self.assertEqual(self.ids(), [bob["id"]])
        r = self.bridge.admin("GET", "/v1/dlq?state=all")
        self.assertEqual([e["id"] for e in r.json["events"]], [bob["id"]])
        # The command line, by uid: nothing left, audited all the same.
        r = self.bridge.cli("erase", "--config", self.bridge.config_path,
                            "--uid", "u_ada", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["erased"], 0)
        r = self.bridge.cli("erase", "--config", self.bridge.config_path,
                            "--uid", "u_bob")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("erased 1 events", r.stdout)
        self.assertEqual(self.ids(), [])
        # The audit: newest first, no address anywhere.
        r = self.bridge.admin("GET", "/v1/audit")
        self.assertEqual(r.status, 200, r)
        au = r.json["audit"]
        self.assertEqual([(a["actor"], a["kind"], a["erased"], a["dry_run"])
                          for a in au],
                         [("cli", "uid", 1, False), ("cli", "uid", 0, False),
                          ("admin", "email", 4, False),
                          ("admin", "email", 4, True)])
        self.assertEqual(au[0]["subject"], sha("u_bob"))
        for a in au:
            self.assertIn("at", a)
        page = self.bridge.admin("GET", "/v1/audit?limit=3").json
        self.assertEqual(len(page["audit"]), 3)
        rest = self.bridge.admin("GET", "/v1/audit?" + qs(
            after=page["next"])).json
        self.assertEqual(rest["audit"], au[3:])
        self.assertIsNone(rest["next"])
        text = r.raw.decode()
        for secret in ("ada@example.com", "Ada@Example", "ADA@"):
            self.assertNotIn(secret, text)
            self.assertNotIn(secret.lower(), self.bridge.log().lower())

    def test_bad_erase(self):
        for body in ({}, {"email": "a@b", "uid": "u"}, {"email": ""},
                     {"email": 5}, {"email": "a@b", "dry_run": "yes"},
                     {"email": "a@b", "color": "red"}, [1]):
            r = self.bridge.admin("POST", "/v1/erase", body)
            self.assertStatus(r, 400, "invalid_request")
        r = self.bridge.admin("GET", "/v1/erase")
        self.assertStatus(r, 405, "method_not_allowed")
        r = self.bridge.cli("erase", "--config", self.bridge.config_path)
        self.assertEqual(r.returncode, 2)
        for q in ("limit=0", "after=x", "color=1"):
            r = self.bridge.admin("GET", "/v1/audit?" + q)
            self.assertStatus(r, 400, "invalid_request")

    @sqlite_only("the bytes of the SQLite files")
    def test_no_bytes_left(self):
        mark = "Zed.Forget-Me@Example.org"
        evs = [event(email=mark, uid="uid-forget-me",
                     properties={"i": i}) for i in range(30)]
        others = [event(email="other%d@example.net" % i) for i in range(300)]
        for i in range(0, 300, 50):
            self.post_events(others[i:i + 50] + evs[i // 10:i // 10 + 5])
        self.assertFalse(self.sink.wait_ids(
            [self.mid("acme", e["id"]) for e in evs]))
        files = [os.path.join(self.bridge.dir, "nb.db" + s)
                 for s in ("", "-wal", "-shm")]

        def holds(needle):
            for f in files:
                try:
                    with open(f, "rb") as fh:
                        if needle.encode() in fh.read():
                            return True
                except FileNotFoundError:
                    pass
            return False

        self.assertTrue(holds(mark))
        r = self.bridge.cli("erase", "--config", self.bridge.config_path,
                            "--email", mark.lower())
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("erased 30 events", r.stdout)
        self.assertFalse(holds(mark))
        self.assertFalse(holds("uid-forget-me"))
        # Others' events written afterwards reuse the freed pages.
        more = [event(email="later%d@example.net" % i) for i in range(200)]
        self.post_events(more)
        self.assertFalse(self.sink.wait_ids(
            [self.mid("acme", e["id"]) for e in more]))
        self.assertFalse(holds(mark))
        self.assertNotIn(mark.lower(), (r.stdout + r.stderr).lower())


class TestDropTypes(SearchCase):
    SOURCES = [{"name": "acme", "drop_types": ["email.opened",
                                               "email.delivered"]},
               {"name": "beta"}]

    def test_filtered(self):
        kept = event(type="email.clicked")
        dropped = [event(type="email.opened"), event(type="email.delivered")]
        quar = event(type="email.opened", occurred_at="nope")
        r = self.post_events([dropped[0], kept, dropped[1], quar])
        # The answer's keys in order, filtered last.
        self.assertEqual(list(r.json), ["accepted", "duplicates",
                                        "quarantined", "filtered"])
        self.assertEqual(r.json, {"accepted": 1, "duplicates": 0,
                                  "quarantined": 1, "filtered": 2})
        # Only filtered: still a 200 with every count.
        r = self.post_events([event(type="email.opened")])
        self.assertEqual(r.json, {"accepted": 0, "duplicates": 0,
                                  "quarantined": 0, "filtered": 1})
        # A source without drop_types answers as section 2 says.
        r = self.post_events([event(type="email.opened")], source="beta")
        self.assertEqual(r.json, {"accepted": 1, "duplicates": 0,
                                  "quarantined": 0})
        self.assertFalse(self.sink.wait_ids([self.mid("acme",
                                                        kept["id"])]))
        # Never stored, never sent; the quarantined one is kept.
        self.assertEqual(sorted(self.ids(source="acme")),
                         sorted([kept["id"], quar["id"]]))
        sent = self.sink.accepted_ids()
        for e in dropped:
            self.assertNotIn(self.mid("acme", e["id"]), sent)
        m = self.bridge.metrics()
        self.assertEqual(m['nudgebridge_events_total{outcome="filtered"}'],
                         3)
        self.bridge.wait_log(r"filtered=1")


# How long after its start an erase has flagged the held events, at most.
FLAG_S = 1.0


class RaceMixin:
    """An erase racing a drain that a slow sink keeps in flight."""

    def held(self, bridge):
        """Events claimed by deliverers (leased) now, fleet-wide."""
        r = bridge.admin("GET", "/v1/stats")
        return sum(s["inflight"] for s in r.json["sources"]) \
            if r.status == 200 else 0

    def race(self, bridges, erase_on):
        self.sink.set_mode("slow", hang_s=0.8)
        target = "Race.Target@Example.com"
        stop = threading.Event()
        posted = {"target": [], "other": []}

        def poster(k):
            i = 0
            while not stop.is_set():
                evs = [event(email=target if j % 3 == 0 else
                             "other%d.%d@example.com" % (k, i))
                       for j in range(6)]
                b = bridges[(k + i) % len(bridges)]
                r = b.post("acme", json.dumps(evs).encode())
                if r.status == 200:
                    for j, e in enumerate(evs):
                        posted["target" if j % 3 == 0 else "other"].append(
                            e["id"])
                i += 1
                time.sleep(0.02)

        ts = [threading.Thread(target=poster, args=(k,), daemon=True)
              for k in range(2)]
        for t in ts:
            t.start()
        # Batches of the target are in flight, and more claimed and
        # queued behind them, when the erase starts.
        self.sink.wait_requests(4, timeout=20)
        self.assertTrue(wait_until(lambda: self.held(bridges[0]) >= 40,
                                   timeout=20))
        stop.set()
        for t in ts:
            t.join(10)
        started = time.monotonic()
        r = erase_on.admin("POST", "/v1/erase", {"email": target.lower()})
        returned = time.monotonic()
        self.assertEqual(r.status, 200, r)
        erased = r.json["erased"]
        self.assertGreater(erased, 0)
        want = {erase_on.message_id("acme", i) for i in posted["target"]}
        self.sink.set_mode("ok")
        # The others drain fully; then nothing of the target may come.
        others = {erase_on.message_id("acme", i) for i in posted["other"]}
        self.assertFalse(self.sink.wait_ids(others, timeout=60))
        late, during = [], []
        for b in self.sink.all_batches():
            ids = {m.get("messageId") for m in b.messages}
            if ids & want and b.arrived > returned:
                late.append(len(ids & want))
            # Once the erase flagged them, queued batches drop the
            # person's events; only sends already under way arrive.
            if ids & want and b.arrived > started + FLAG_S:
                during.append(round(b.arrived - started, 2))
        self.assertEqual(late, [], "batches of the erased person were "
                         "sent after the erase returned")
        self.assertEqual(during, [], "batches of the erased person were "
                         "sent after the erase flagged them")
        # Whatever reached Segment before, the store has nothing left.
        sent_before = self.sink.accepted_ids() & want
        self.assertLessEqual(len(sent_before), len(want))
        for b in bridges:
            page = b.admin("GET", "/v1/events?" + qs(
                email=target.lower())).json
            self.assertEqual(page["events"], [])
        return erased, len(want), len(sent_before)


# Small batches from large claims: a claim queues many batches behind the
# two in flight, so an erase finds the person's rows claimed, some in
# flight (waited for) and some queued (dropped before their send).
RACE_SEGMENT = {"max_batch_bytes": 1500, "max_batch_count": 60,
                "max_inflight": 2, "flush_interval_ms": 10}


class TestEraseRace(SearchCase, RaceMixin):
    CONFIG = {"segment": RACE_SEGMENT}

    def test_race(self):
        erased, posted, sent = self.race([self.bridge], self.bridge)
        self.assertGreater(posted - sent, 0)


@unittest.skipUnless(ON_POSTGRES and DSN,
                     "the PostgreSQL variant only (NB_TEST_STORE=postgres)")
class TestEraseRaceTwoInstances(SearchCase, RaceMixin):
    """Two instances on one PostgreSQL database: the erase runs on one,
    both hold claimed batches of the person in flight."""

    START = False

    def instance(self):
        b = self.make_bridge(
            [{"name": "acme", "signing_secrets": self.secrets}],
            {"store": {"driver": "postgres", "dsn": DSN, "lease_s": 2,
                       "path": None},
             "segment": dict(RACE_SEGMENT, timeout_ms=3000)},
            start=False)
        del b.config["store"]["path"]
        b.write_config()
        b.env["PGOPTIONS"] = pg_options(self.schema)
        b.start()
        return b

    def test_race(self):
        self.schema = pg_new_schema("nbrace", DSN)
        self.addCleanup(pg_drop_schema, self.schema, DSN)
        self.secrets = [new_secret()]
        a, b = self.instance(), self.instance()
        erased, posted, sent = self.race([a, b], b)
        self.assertGreater(posted - sent, 0)


class TestEventsConsole(SearchCase):
    """The console's Events view in a real browser (tests/console/
    events.spec.mjs), skipped (saying why) only without chromium or node,
    which tests/run.sh installs."""

    def setUp(self):
        from test_console import CHROMIUM, CONSOLE_DIR, ensure_node_modules, \
            tool_missing
        why = tool_missing()
        if why:
            print("\nSKIP browser test: " + why)
            self.skipTest(why)
        ensure_node_modules()
        self.chromium, self.console_dir = CHROMIUM, CONSOLE_DIR
        super().setUp()

    def test_events_view(self):
        email, uid = "Grace.Hopper@Example.com", "u_grace"
        delivered = event(email=email, uid=uid, type="email.opened")
        dead = event(email=email, uid=uid, type="email.clicked")
        other = event(email="alan@example.com", uid="u_alan")
        self.sink.fail_next(1, 503)
        self.post_events([delivered])
        mid = self.mid("acme", delivered["id"])
        self.assertFalse(self.sink.wait_ids([mid]))
        self.sink.poison = {self.mid("acme", dead["id"])}
        self.post_events([dead])
        self.assertTrue(wait_until(lambda: self.ids(state="dead")))
        self.sink.poison = set()
        self.post_events([other])
        self.assertTrue(wait_until(
            lambda: len(self.ids(state="delivered")) == 2))
        env = dict(os.environ)
        env.update({
            "NB_ADMIN_URL": "http://127.0.0.1:%d" % self.bridge.admin_port,
            "NB_TOKEN": self.bridge.token,
            "NB_EMAIL": email,
            "NB_UID": uid,
            "NB_DELIVERED_ID": delivered["id"],
            "NB_DELIVERED_MESSAGE_ID": self.mid("acme", delivered["id"]),
            "NB_DEAD_ID": dead["id"],
            "CHROMIUM": self.chromium,
        })
        shots = os.environ.get("NB_CONSOLE_SCREENSHOTS")
        if shots:
            env["NB_SCREENSHOTS"] = os.path.abspath(shots)
        p = subprocess.run(["node", "events.spec.mjs"],
                           cwd=self.console_dir, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=180)
        out = p.stdout.decode("utf-8", "replace")
        print(out)
        self.assertEqual(p.returncode, 0, out)
        self.assertNotIn(self.bridge.token, out)
        # The replayed event went out again, with the same messageId.
        self.assertTrue(self.sink.wait_for(lambda: [
            m for m in self.sink.accepted_messages()
            if m["messageId"] == mid][1:]))


if __name__ == "__main__":
    unittest.main()
