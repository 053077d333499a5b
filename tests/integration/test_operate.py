# SPDX-License-Identifier: ISC
"""Operators: CONTRACT section 5 and the dead-letter rules of section 4.

`nudgebridge dlq` with every filter and --dry-run, the admin API (auth,
stats, dlq), /metrics after a known sequence, SIGTERM under load, SIGHUP
reloads (good and broken files) and check-config.
"""

import datetime
import json
import os
import re
import subprocess
import threading
import time
import unittest

from harness import (BridgeCase, ON_POSTGRES, PG_DSN, WRITE_KEY, event,
                     http_request, message_id, new_secret, pg_options, psql,
                     qs, run_cli, wait_until)


def touched(out):
    """How many events a replay/purge answer says it touched."""
    if isinstance(out, str):
        try:
            out = json.loads(out)
        except ValueError:
            m = re.search(r"\d+", out)
            return int(m.group(0)) if m else None
    if isinstance(out, dict):
        for k in ("replayed", "purged", "count", "touched", "matched"):
            if isinstance(out.get(k), int):
                return out[k]
    return None


class DlqCase(BridgeCase):
    SOURCES = [{"name": "acme"}, {"name": "beta"}]

    def quarantine(self, source, n, type="email.opened"):
        evs = [event(type=type, occurred_at="not-a-time") for _ in range(n)]
        r = self.bridge.post(source, evs)
        self.assertCounts(r, 0, 0, n)
        return evs

    def cli_json(self, *args):
        r = self.bridge.cli(*args, "--config", self.bridge.config_path,
                            "--json")
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        return json.loads(r.stdout)


class TestDlqCli(DlqCase):

    def test_list_filters(self):
        a = self.quarantine("acme", 2, "email.opened")
        b = self.quarantine("beta", 3, "email.clicked")
        dlq = self.bridge.dlq
        rows = dlq("list")
        self.assertEqual(len(rows), 5)
        for row in rows:
            self.assertEqual(set(row) >= {"key", "id", "source", "type",
                                          "reason", "error", "received_at"},
                             True, row)
        self.assertEqual({r["id"] for r in dlq("list", "--source", "acme")},
                         {e["id"] for e in a})
        self.assertEqual(len(dlq("list", "--type", "email.clicked")), 3)
        self.assertEqual(len(dlq("list", "--reason", "quarantined")), 5)
        self.assertEqual(dlq("list", "--reason", "too_large"), [])
        self.assertEqual([r["id"] for r in dlq("list", "--id", b[1]["id"])],
                         [b[1]["id"]])
        self.assertEqual(len(dlq("list", "--since", "1h")), 5)
        self.assertEqual(dlq("list", "--until", "1h"), [])
        future = (datetime.datetime.now(datetime.timezone.utc) +
                  datetime.timedelta(hours=1)).strftime(
                      "%Y-%m-%dT%H:%M:%SZ")
        self.assertEqual(dlq("list", "--since", future), [])
        self.assertEqual(len(dlq("list", "--until", future)), 5)
        self.assertEqual(len(dlq("list", "--source", "beta", "--type",
                                 "email.clicked", "--since", "7d")), 3)

    def test_show(self):
        a = self.quarantine("acme", 1)
        row = self.bridge.dlq("list")[0]
        r = self.bridge.cli("dlq", "show", row["key"], "--config",
                            self.bridge.config_path)
        self.assertEqual(r.returncode, 0, r.stderr)
        shown = json.loads(r.stdout)
        self.assertEqual(shown["key"], row["key"])
        self.assertEqual(shown["id"], a[0]["id"])
        self.assertEqual(shown.get("payload"), a[0])
        r = self.bridge.cli("dlq", "show", "no-such-key", "--config",
                            self.bridge.config_path)
        self.assertNotEqual(r.returncode, 0)

    def test_show_says_what_the_api_says(self):
        """The CLI and the API share one core: the same event, the same
        Track message or the same reason there is none, also once the
        event's source is gone from the configuration."""
        ok = event()
        self.sink.poison = {self.bridge.message_id("beta", ok["id"])}
        self.assertCounts(self.bridge.post("beta", ok), 1, 0, 0)
        self.quarantine("beta", 1)
        rows = wait_until(lambda: (lambda r: r if len(r) == 2 else None)(
            self.bridge.dlq("list", "--source", "beta")), timeout=10)
        self.assertTrue(rows, "no dead letters for beta")

        def both(key):
            api = self.bridge.admin("GET", "/v1/dlq/" + key)
            self.assertEqual(api.status, 200, api)
            cli = self.bridge.cli("dlq", "show", key, "--config",
                                  self.bridge.config_path)
            self.assertEqual(cli.returncode, 0, cli.stderr)
            shown = json.loads(cli.stdout)
            for k in ("key", "id", "source", "payload", "track",
                      "track_error", "reason", "state"):
                self.assertEqual(shown.get(k), api.json.get(k), k)
            return shown

        rejected = [r["key"] for r in rows if r["id"] == ok["id"]][0]
        quarantined = [r["key"] for r in rows if r["id"] != ok["id"]][0]
        self.assertEqual(both(rejected)["track"]["messageId"],
                         self.bridge.message_id("beta", ok["id"]))
        self.assertIn("occurred_at", both(quarantined)["track_error"])
        # beta leaves the configuration (and the running bridge).
        self.bridge.config["sources"] = [
            s for s in self.bridge.config["sources"] if s["name"] != "beta"]
        self.bridge.write_config()
        log_at = len(self.bridge.log())
        self.bridge.hup()
        self.assertTrue(wait_until(lambda: "config reloaded" in
                                   self.bridge.log()[log_at:], timeout=5))
        for key in (rejected, quarantined):
            shown = both(key)
            self.assertIsNone(shown["track"])
            self.assertEqual(shown["track_error"], "source not configured")

    def test_replay_quarantined_stays_quarantined(self):
        self.quarantine("acme", 2)
        before = self.bridge.dlq("list")
        out = self.cli_json("dlq", "replay", "--source", "acme",
                            "--dry-run")
        self.assertEqual(self.bridge.dlq("list"), before)
        self.assertEqual(out.get("requarantined"), 2, out)
        out = self.cli_json("dlq", "replay", "--source", "acme")
        self.assertEqual(out.get("requarantined"), 2, out)
        rows = self.bridge.dlq("list")
        self.assertEqual(sorted(r["key"] for r in rows),
                         sorted(r["key"] for r in before))
        for r in rows:
            self.assertEqual(r["reason"], "quarantined")
            self.assertIn("occurred_at", r["error"])
        time.sleep(0.2)
        self.assertEqual(self.sink.accepted_ids(), set())

    def test_purge(self):
        self.quarantine("acme", 2)
        self.quarantine("beta", 1)
        out = self.cli_json("dlq", "purge", "--source", "acme", "--dry-run")
        self.assertEqual(touched(out), 2, out)
        self.assertEqual(len(self.bridge.dlq("list")), 3)
        out = self.cli_json("dlq", "purge", "--source", "acme")
        self.assertEqual(touched(out), 2, out)
        rows = self.bridge.dlq("list")
        self.assertEqual([r["source"] for r in rows], ["beta"])
        key = rows[0]["key"]
        out = self.cli_json("dlq", "purge", "--key", key)
        self.assertEqual(touched(out), 1, out)
        self.assertEqual(self.bridge.dlq("list"), [])

    def test_replay_rejected_after_fix(self):
        evs = [event(), event(), event()]
        bad = evs[1]
        bad_mid = self.bridge.message_id("acme", bad["id"])
        self.sink.poison = {bad_mid}
        self.assertCounts(self.bridge.post("acme", evs), 3, 0, 0)
        rows = wait_until(lambda: self.bridge.dlq(
            "list", "--reason", "rejected_by_segment"), timeout=10)
        self.assertEqual([r["id"] for r in rows], [bad["id"]])
        # Dry run touches nothing.
        out = self.cli_json("dlq", "replay", "--reason",
                            "rejected_by_segment", "--dry-run")
        self.assertEqual(touched(out), 1, out)
        time.sleep(0.3)
        self.assertNotIn(bad_mid, self.sink.accepted_ids())
        self.assertEqual(len(self.bridge.dlq("list")), 1)
        # Fix the sink, replay for real.
        self.sink.poison = set()
        out = self.cli_json("dlq", "replay", "--reason",
                            "rejected_by_segment")
        self.assertEqual(touched(out), 1, out)
        self.assertFalse(self.sink.wait_ids({bad_mid}, timeout=10))
        self.assertEqual(self.bridge.dlq("list"), [])


class TestAdminApi(DlqCase):

    def test_auth(self):
        r = self.bridge.admin("GET", "/v1/stats", auth=False)
        self.assertStatus(r, 401)
        r = self.bridge.admin("GET", "/v1/stats", token="wrong" * 6)
        self.assertStatus(r, 401)
        r = http_request(self.bridge.admin_port, "GET", "/v1/stats",
                         headers={"Authorization": "Basic " +
                                  self.bridge.token})
        self.assertStatus(r, 401)
        r = self.bridge.admin("GET", "/v1/stats")
        self.assertEqual(r.status, 200, r)
        # The admin API is not on the main listener.
        self.assertIn(self.bridge.get("/v1/stats").status, (404, 405))

    def test_admin_off_without_token(self):
        b = self.make_bridge(admin_token=False)
        with self.assertRaises(OSError):
            http_request(b.admin_port, "GET", "/v1/stats", timeout=2)

    def test_stats_and_dlq(self):
        self.quarantine("acme", 2)
        self.quarantine("beta", 1, "email.clicked")
        ok = event()
        self.assertCounts(self.bridge.post("acme", ok), 1, 0, 0)
        self.sink.wait_ids({self.bridge.message_id("acme", ok["id"])})
        r = self.bridge.admin("GET", "/v1/stats")
        self.assertEqual(r.status, 200, r)
        text = json.dumps(r.json)
        self.assertIn("acme", text)
        self.assertIn("beta", text)

        r = self.bridge.admin("GET", "/v1/dlq")
        self.assertEqual(r.status, 200, r)
        rows = r.json if isinstance(r.json, list) else r.json.get(
            "events", r.json.get("items"))
        self.assertEqual(len(rows), 3, r.json)
        r = self.bridge.admin("GET", "/v1/dlq?" + qs(source="beta"))
        rows = r.json if isinstance(r.json, list) else r.json.get(
            "events", r.json.get("items"))
        self.assertEqual([x["source"] for x in rows], ["beta"])
        key = rows[0]["key"]
        for params, n in (({"reason": "quarantined"}, 3),
                          ({"reason": "too_large"}, 0),
                          ({"type": "email.clicked"}, 1),
                          ({"since": "1h"}, 3), ({"until": "1h"}, 0),
                          ({"source": "acme", "type": "email.opened"}, 2)):
            r = self.bridge.admin("GET", "/v1/dlq?" + qs(**params))
            self.assertEqual(r.status, 200, r)
            self.assertEqual(len(r.json["events"]), n, (params, r.json))
        r = self.bridge.admin("GET", "/v1/dlq/" + key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["key"], key)
        self.assertEqual(r.json["source"], "beta")
        r = self.bridge.admin("GET", "/v1/dlq/nope")
        self.assertEqual(r.status, 404, r)
        r = self.bridge.admin("GET", "/v1/dlq?" + qs(bogus="1"))
        self.assertEqual(r.status, 400, r)

        r = self.bridge.admin("POST", "/v1/dlq/replay",
                              {"source": "acme", "dry_run": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(touched(r.json), 2, r.json)
        r = self.bridge.admin("POST", "/v1/dlq/purge",
                              {"source": "acme", "dry_run": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(touched(r.json), 2, r.json)
        self.assertEqual(len(self.bridge.dlq("list")), 3)
        r = self.bridge.admin("POST", "/v1/dlq/purge", {"source": "acme"})
        self.assertEqual(touched(r.json), 2, r.json)
        self.assertEqual(len(self.bridge.dlq("list")), 1)
        r = self.bridge.admin("POST", "/v1/dlq/purge", {"sourc": "x"})
        self.assertEqual(r.status, 400, r)
        r = self.bridge.admin("POST", "/v1/dlq/replay", b"not json")
        self.assertEqual(r.status, 400, r)

    def test_replay_over_api(self):
        ev = event()
        mid = self.bridge.message_id("acme", ev["id"])
        self.sink.poison = {mid}
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        rows = wait_until(lambda: self.bridge.dlq("list"), timeout=10)
        self.assertEqual(len(rows), 1)
        self.sink.poison = set()
        r = self.bridge.admin("POST", "/v1/dlq/replay",
                              {"key": rows[0]["key"]})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(touched(r.json), 1, r.json)
        self.assertFalse(self.sink.wait_ids({mid}, timeout=10))


class TestAdminThread(DlqCase):
    """The admin API runs on a thread of its own: an operator's request
    that waits on the database never delays a webhook."""

    def test_stuck_replay_does_not_delay_webhooks(self):
        if not ON_POSTGRES:
            self.skipTest("needs a row lock another session holds: "
                          "PostgreSQL (integration.pg.test_operate)")
        self.quarantine("acme", 3)
        # Another session holds the dead letters' rows: the replay's
        # UPDATE waits for it, inside the admin API's store call.
        env = dict(os.environ, PGOPTIONS=pg_options(self.bridge.pg_schema))
        holder = subprocess.Popen(
            ["psql", PG_DSN, "-X", "-q", "-A", "-t"], env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.addCleanup(holder.kill)
        holder.stdin.write("BEGIN; SELECT count(*) FROM (SELECT seq FROM "
                           "events WHERE state = 2 FOR UPDATE) l;\n")
        holder.stdin.flush()
        self.assertEqual(holder.stdout.readline().strip(), "3")
        answer = {}

        def replay():
            answer["r"] = self.bridge.admin("POST", "/v1/dlq/replay", {})
        t = threading.Thread(target=replay)
        t.start()
        self.assertTrue(wait_until(lambda: psql(
            "SELECT count(*) FROM pg_locks WHERE NOT granted") != "0",
            timeout=10), "the replay never waited for the lock")
        # Webhooks on fresh connections reach every HTTP worker, the
        # main thread's included; each is answered at once.
        for _ in range(12):
            t0 = time.monotonic()
            r = http_request(self.bridge.port, "POST", "/v1/webhooks/acme",
                             *self.signed([event()]), timeout=5)
            self.assertEqual(r.status, 200, r)
            self.assertLess(time.monotonic() - t0, 3.0)
        self.assertTrue(t.is_alive(), "the replay did not wait")
        holder.stdin.write("COMMIT;\n")
        holder.stdin.close()
        t.join(20)
        self.assertEqual(answer["r"].status, 200, answer["r"])
        self.assertEqual(answer["r"].json["replayed"], 3)

    def test_long_replay_lets_others_in(self):
        """A replay is worked a bounded step per turn of the admin thread's
        loop (a selection of keys goes 50 keys a step): other requests are
        answered between its steps, not after it.  Proof without timing:
        the replay takes the keys in the order given and re-quarantines
        each row (a new updated_at), so an answer showing the first row
        replayed followed by one showing the last row not yet replayed
        were both given while the replay was under way."""
        r = self.bridge.post("acme", [event(occurred_at="x")
                                      for _ in range(1000)])
        self.assertEqual(r.json["quarantined"], 1000, r)
        rows = self.bridge.dlq("list")
        self.assertEqual(len(rows), 1000)
        first, last = rows[0], rows[-1]
        time.sleep(0.01)  # updated_at has a resolution of milliseconds
        done = {}

        def replay():
            done["r"] = self.bridge.admin(
                "POST", "/v1/dlq/replay", {"keys": [x["key"] for x in rows]})
        t = threading.Thread(target=replay)
        t.start()

        def updated(row):
            r = self.bridge.admin("GET", "/v1/dlq/" + row["key"])
            self.assertEqual(r.status, 200, r)
            return r.json["updated_at"] != row["updated_at"]
        halfway = False
        while t.is_alive() and not halfway:
            if updated(first) and not updated(last):
                halfway = True
        t.join()
        self.assertEqual(done["r"].json["replayed"], 1000, done["r"])
        self.assertTrue(updated(last))
        self.assertTrue(halfway, "no request answered while the replay "
                        "ran")

    def signed(self, body):
        body = json.dumps(body).encode()
        h = {"Content-Type": "application/json"}
        h.update(self.bridge.signed_headers("acme", body))
        return body, h


class TestMetrics(BridgeCase):

    def test_counters_after_known_sequence(self):
        ok = [event(), event()]
        self.assertCounts(self.bridge.post("acme", ok), 2, 0, 0)
        self.assertCounts(self.bridge.post("acme", ok[0]), 0, 1, 0)
        self.assertCounts(self.bridge.post("acme",
                                           event(occurred_at="x")), 0, 0, 1)
        self.assertEqual(self.bridge.post("acme", event(),
                                          sign=False).status, 401)
        self.assertEqual(self.bridge.post("nope", event(), sign=False,
                                          path="/v1/webhooks/nope").status,
                         404)
        self.sink.wait_ids({self.bridge.message_id("acme", e["id"])
                            for e in ok})
        r = self.bridge.get("/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"),
                        r.headers)
        m = wait_until(lambda: (lambda m: m if m.get(
            "nudgebridge_events_delivered_total") == 2 else None)(
                self.bridge.metrics()), timeout=5) or self.bridge.metrics()

        def v(name):
            return m.get(name, 0)
        self.assertEqual(v('nudgebridge_events_total{outcome="accepted"}'), 2)
        self.assertEqual(v('nudgebridge_events_total{outcome="duplicate"}'),
                         1)
        self.assertEqual(
            v('nudgebridge_events_total{outcome="quarantined"}'), 1)
        self.assertEqual(v('nudgebridge_http_requests_total{status="401",'
                           'error="signature_missing"}'), 1)
        self.assertEqual(v('nudgebridge_http_requests_total{status="404",'
                           'error="unknown_source"}'), 1)
        self.assertEqual(sum(val for k, val in m.items() if k.startswith(
            'nudgebridge_http_requests_total{status="200"')), 3)
        self.assertEqual(v("nudgebridge_events_delivered_total"), 2)
        self.assertGreaterEqual(
            v('nudgebridge_segment_requests_total{status="200"}'), 1)
        self.assertEqual(v('nudgebridge_queue_dead{source="acme"}'), 1)
        self.assertEqual(v('nudgebridge_queue_pending{source="acme"}'), 0)
        self.assertIn("nudgebridge_build_info", r.raw.decode())


class TestSignals(BridgeCase):

    def test_sigterm_under_load(self):
        self.sink.set_mode("slow", hang_s=0.2)
        acked = []
        other = []
        stop = threading.Event()

        def post_loop():
            while not stop.is_set():
                evs = [event() for _ in range(4)]
                try:
                    r = self.bridge.post("acme", evs)
                except OSError:
                    return
                if r.status == 200:
                    acked.extend(evs)
                else:
                    other.append(r.status)

        threads = [threading.Thread(target=post_loop) for _ in range(3)]
        for t in threads:
            t.start()
        self.sink.wait_requests(2, timeout=10)
        time.sleep(0.2)
        rc = self.bridge.terminate(timeout=30)
        stop.set()
        for t in threads:
            t.join(10)
        self.assertEqual(rc, 0, self.bridge.log()[-3000:])
        self.assertTrue(acked)
        for s in other:
            self.assertEqual(s, 503, "answer during shutdown")
        # What was acknowledged and not yet sent is still in the store.
        self.sink.set_mode("ok")
        self.bridge.start()
        want = {self.bridge.message_id("acme", e["id"]) for e in acked}
        missing = self.sink.wait_ids(want, timeout=20)
        self.assertFalse(missing, "%d of %d acknowledged events lost" %
                         (len(missing), len(want)))
        self.assertEqual(self.bridge.terminate(), 0)

    def test_sigterm_drain_deadline(self):
        b = self.make_bridge(config={"limits": {"drain_s": 1}})
        self.sink.set_mode("fail")
        evs = [event() for _ in range(3)]
        self.assertCounts(b.post("acme", evs), 3, 0, 0)
        self.sink.wait_requests(1)
        t0 = time.monotonic()
        self.assertEqual(b.terminate(timeout=20), 0)
        self.assertLess(time.monotonic() - t0, 6.0,
                        "drain took longer than drain_s allows")
        self.sink.set_mode("ok")
        b.start()
        self.assertFalse(self.sink.wait_ids(
            {b.message_id("acme", e["id"]) for e in evs}))

    def test_sigterm_idle_exits_zero(self):
        self.assertEqual(self.bridge.terminate(timeout=15), 0)

    def test_sigint_exits_zero(self):
        import signal
        self.assertEqual(self.bridge.terminate(timeout=15,
                                               sig=signal.SIGINT), 0)

    def test_sighup_rotation(self):
        old = self.bridge.secrets["acme"][0]
        new = new_secret()
        self.bridge.config["sources"][0]["signing_secrets"] = [old, new]
        self.bridge.write_config()
        self.bridge.hup()
        ok = wait_until(lambda: self.bridge.post(
            "acme", event(), secret=new).status == 200, timeout=5)
        self.assertTrue(ok, "new secret not accepted after SIGHUP")
        self.assertCounts(self.bridge.post("acme", event(), secret=old),
                          1, 0, 0)
        # Retire the old secret.
        self.bridge.config["sources"][0]["signing_secrets"] = [new]
        self.bridge.write_config()
        self.bridge.hup()
        gone = wait_until(lambda: self.bridge.post(
            "acme", event(), secret=old).status == 401, timeout=5)
        self.assertTrue(gone, "old secret still accepted")
        self.assertCounts(self.bridge.post("acme", event(), secret=new),
                          1, 0, 0)

    def test_sighup_broken_file_keeps_config(self):
        old = self.bridge.secrets["acme"][0]
        log_before = len(self.bridge.log())
        self.bridge.write_config(raw="{ this is not json")
        self.bridge.hup()
        m = wait_until(lambda: re.search(r"(?i)(reload|config)",
                                         self.bridge.log()[log_before:]),
                       timeout=5)
        self.assertTrue(m, "no log line for the refused reload")
        self.assertTrue(self.bridge.alive())
        self.assertCounts(self.bridge.post("acme", event(), secret=old),
                          1, 0, 0)
        # A file that parses but does not validate is refused too.
        cfg = json.loads(json.dumps(self.bridge.config))
        cfg["sources"][0]["signing_secrets"] = ["not-a-secret"]
        self.bridge.write_config(cfg)
        self.bridge.hup()
        time.sleep(0.3)
        self.assertTrue(self.bridge.alive())
        self.assertCounts(self.bridge.post("acme", event(), secret=old),
                          1, 0, 0)
        self.assertNotIn(old, self.bridge.log())


class TestCheckConfig(BridgeCase):
    START = False

    def check(self, cfg):
        path = os.path.join(self.tmp, "c.json")
        with open(path, "w") as f:
            if isinstance(cfg, str):
                f.write(cfg)
            else:
                json.dump(cfg, f)
        return run_cli("check-config", "--config", path)

    def setUp(self):
        super().setUp()
        import tempfile
        import shutil
        self.tmp = tempfile.mkdtemp(prefix="nb-cc-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def good(self):
        return {"listen": "127.0.0.1:0",
                "store": {"driver": "sqlite", "path": "x.db"},
                "sources": [{"name": "acme",
                             "signing_secrets": [new_secret()],
                             "write_key": "wk"}]}

    def test_valid(self):
        r = self.check(self.good())
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)

    def test_names_bad_key(self):
        cases = []
        c = self.good()
        c["sources"][0]["signing_secrets"] = [new_secret(), "whsec_%%%"]
        cases.append((c, r"sources\[0\]\.signing_secrets\[1\]"))
        c = self.good()
        c["sources"][0]["name"] = "Bad Name"
        cases.append((c, r"sources\[0\]\.name"))
        c = self.good()
        c["limits"] = {"max_body_bytes": "big"}
        cases.append((c, r"limits\.max_body_bytes"))
        c = self.good()
        c["sources"][0]["region"] = "mars"
        cases.append((c, r"sources\[0\]\.region"))
        c = self.good()
        c["segment"] = {"retry": {"max_attempts": -1}}
        cases.append((c, r"segment\.retry\.max_attempts"))
        c = self.good()
        del c["sources"]
        cases.append((c, r"sources"))
        c = self.good()
        c["sources"].append(dict(c["sources"][0]))
        cases.append((c, r"sources\[1\]"))
        for cfg, pattern in cases:
            r = self.check(cfg)
            self.assertNotEqual(r.returncode, 0, cfg)
            self.assertRegex(r.stderr + r.stdout, pattern)
        r = self.check("{ nope")
        self.assertNotEqual(r.returncode, 0)

    def test_weak_admin_token_refused(self):
        """admin.token needs 32 characters, 8 of them different."""
        for weak in ("tok", "x" * 64, "ab" * 40, "0123456789abcdef" * 2):
            weak = weak[:31] if len(weak) == 32 else weak
            c = self.good()
            c["admin"] = {"token": weak}
            r = self.check(c)
            self.assertNotEqual(r.returncode, 0, weak)
            self.assertIn("admin.token: too weak", r.stderr)
            if len(weak) > 3:
                self.assertNotIn(weak, r.stderr + r.stdout)
        c = self.good()
        c["admin"] = {"token": "0123456789abcdef" * 2}
        r = self.check(c)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_secret_from_env_and_file(self):
        secret = new_secret()
        path = os.path.join(self.tmp, "wk.txt")
        with open(path, "w") as f:
            f.write("wk_from_file\n")
        c = self.good()
        src = c["sources"][0]
        del src["signing_secrets"]
        del src["write_key"]
        src["signing_secrets_env"] = "NB_TEST_SECRET"
        src["write_key_file"] = path
        env = dict(os.environ, NB_TEST_SECRET=secret)
        with open(os.path.join(self.tmp, "c.json"), "w") as f:
            json.dump(c, f)
        r = run_cli("check-config", "--config",
                    os.path.join(self.tmp, "c.json"), env=env)
        self.assertEqual(r.returncode, 0, r.stderr + r.stdout)
        self.assertNotIn(secret, r.stderr + r.stdout)
        env.pop("NB_TEST_SECRET")
        r = run_cli("check-config", "--config",
                    os.path.join(self.tmp, "c.json"), env=env)
        self.assertNotEqual(r.returncode, 0)


if __name__ == "__main__":
    unittest.main()
