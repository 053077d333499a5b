# SPDX-License-Identifier: ISC
"""The install identity in Segment's messageId (CONTRACT.md section 6).

Segment de-duplicates on messageId across all of its customers, so the
messageId is made of (install id, source, event id): two bridges with
stores of their own send different messageIds for the same source name and
event id; one bridge sends the same one across retries, restarts and
replays, and shows it in `dlq show`, GET /v1/dlq/{key} and /v1/stats.  A
store written by an older release (schema version 1, built here with that
release's DDL) keeps the messageIds of its rows after the upgrade; rows
stored since get the install rule.  Every expected messageId is computed
here from the install id read out of the store (harness.message_id()).
"""

import json
import os
import sqlite3
import time
import unittest

from harness import (BridgeCase, event, legacy_message_id, message_id,
                     sqlite_only, wait_until)


def touched(body):
    return body.get("replayed", 0) + body.get("requarantined", 0)


class TestInstallIdentity(BridgeCase):
    START = False

    def test_two_stores_two_installs(self):
        a = self.make_bridge()
        b = self.make_bridge()
        ev = event(id="evt_shared_by_two_companies")
        self.assertCounts(a.post("acme", ev), 1, 0, 0)
        self.assertCounts(b.post("acme", ev), 1, 0, 0)
        self.assertNotEqual(a.install_id(), b.install_id())
        ma, mb = a.message_id("acme", ev["id"]), b.message_id("acme", ev["id"])
        self.assertNotEqual(ma, mb)
        # Both arrive: neither is lost to the other's de-duplication.
        self.assertFalse(self.sink.wait_ids({ma, mb}, timeout=10))
        self.assertEqual(len(self.sink.accepted_messages()), 2)
        self.assertTrue(ma.startswith("nb1-") and len(ma) == 68, ma)
        self.assertNotEqual(ma, legacy_message_id("acme", ev["id"]))
        # /v1/stats names the install id the store holds.
        for x in (a, b):
            r = x.admin("GET", "/v1/stats")
            self.assertEqual(r.status, 200, r)
            self.assertEqual(r.json["install_id"], x.install_id())

    def test_same_message_id_across_retry_restart_replay(self):
        b = self.make_bridge()
        ev = event()
        mid = b.message_id("acme", ev["id"])
        # Retries, then a kill -9 and a restart before it gets through.
        self.sink.set_mode("fail")
        self.assertCounts(b.post("acme", ev), 1, 0, 0)
        self.assertGreaterEqual(self.sink.wait_requests(2), 2)
        b.kill9()
        self.sink.set_mode("ok")
        b.start()
        self.assertFalse(self.sink.wait_ids({mid}, timeout=10))
        sent = [m["messageId"] for x in self.sink.all_batches()
                for m in x.messages]
        self.assertGreaterEqual(len(sent), 3)
        self.assertEqual(set(sent), {mid})
        self.assertEqual(b.install_id(), b.store_query(
            "SELECT install_id FROM install"), "the id changed")

        # The delivered event replayed after another restart: same id.
        b.kill9()
        b.start()
        # The sink's copy may precede the delivered mark the kill cut short:
        # then the restart sends it again, same id, and marks it.
        rows = wait_until(lambda: b.dlq("list", "--state", "delivered"),
                          timeout=10)
        self.assertEqual(len(rows or []), 1)
        key = rows[0]["key"]
        # What operators are shown carries the messageId that is sent.
        r = b.admin("GET", "/v1/dlq/" + key)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["track"]["messageId"], mid)
        self.assertEqual(b.dlq("show", key)["track"]["messageId"], mid)
        n = len(self.sink.accepted_messages())
        r = b.admin("POST", "/v1/dlq/replay",
                    {"key": key, "state": "delivered"})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(touched(r.json), 1, r.json)
        self.assertTrue(wait_until(
            lambda: len(self.sink.accepted_messages()) > n, timeout=10))
        self.assertEqual(self.sink.accepted_messages()[n]["messageId"], mid)


class TestMigrateInstallId(BridgeCase):
    """`migrate --install-id`: a store that takes over an install (a move
    from SQLite to PostgreSQL) makes the messageIds of the old one."""
    START = False

    def test_new_store_takes_the_old_install_id(self):
        old = self.make_bridge()
        new = self.make_bridge(start=False)
        install = old.install_id()
        r = new.cli("migrate", "--config", new.config_path,
                    "--install-id", install)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"\Aschema version [0-9]+\ninstall id %s\n\Z"
                         % install)
        # The same again changes nothing; another id is refused.
        r = new.cli("migrate", "--config", new.config_path,
                    "--install-id", install)
        self.assertEqual(r.returncode, 0, r.stderr)
        other = "0123456789abcdef0123456789abcdef"
        r = new.cli("migrate", "--config", new.config_path,
                    "--install-id", other)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has install id %s already" % install, r.stderr)
        r = new.cli("migrate", "--config", new.config_path,
                    "--install-id", "NOT-HEX")
        self.assertEqual(r.returncode, 1)
        self.assertIn("install id: not 32 lower-case hex digits", r.stderr)
        r = new.cli("migrate", "--config", new.config_path, "--install-id")
        self.assertEqual(r.returncode, 2)
        # A webhook retried across the move is stored on both sides: one
        # messageId, so Segment keeps one copy.
        new.start()
        self.assertEqual(new.install_id(), install)
        ev = event()
        self.assertCounts(old.post("acme", ev), 1, 0, 0)
        self.assertCounts(new.post("acme", ev), 1, 0, 0)
        mid = old.message_id("acme", ev["id"])
        self.assertEqual(new.message_id("acme", ev["id"]), mid)
        self.assertTrue(wait_until(
            lambda: len(self.sink.accepted_messages()) == 2, timeout=10))
        self.assertEqual({m["messageId"] for m in
                          self.sink.accepted_messages()}, {mid})


# A version 1 store exactly as the releases before version 2 created it
# (tests/unit/test_store.c holds the same text); its rows carry no rule.
V1_SCHEMA = """
CREATE TABLE events (
 seq INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL,
 event_id TEXT, type TEXT, payload BLOB NOT NULL, state INTEGER NOT NULL,
 reason TEXT, error TEXT, attempts INTEGER NOT NULL DEFAULT 0,
 received_ms INTEGER NOT NULL, age_base_ms INTEGER NOT NULL,
 next_ms INTEGER NOT NULL, lease_ms INTEGER NOT NULL DEFAULT 0,
 updated_ms INTEGER NOT NULL);
CREATE INDEX events_due ON events (source, next_ms, seq) WHERE state = 0;
CREATE INDEX events_state ON events (state, received_ms);
CREATE INDEX events_source_id ON events (source, event_id);
CREATE TABLE seen_requests (source TEXT NOT NULL, webhook_id TEXT NOT NULL,
 seen_ms INTEGER NOT NULL, PRIMARY KEY (source, webhook_id)) WITHOUT ROWID;
CREATE INDEX seen_requests_ms ON seen_requests (seen_ms);
CREATE TABLE seen_events (source TEXT NOT NULL, event_id TEXT NOT NULL,
 seen_ms INTEGER NOT NULL, PRIMARY KEY (source, event_id)) WITHOUT ROWID;
CREATE INDEX seen_events_ms ON seen_events (seen_ms);
CREATE TABLE meta (id INTEGER PRIMARY KEY CHECK (id = 1),
 probe_ms INTEGER NOT NULL);
"""


def build_v1_store(path, rows):
    """A version 1 SQLite store at path holding rows: (event, state,
    reason) with state 0 pending or 2 dead."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    db = sqlite3.connect(path)
    try:
        db.execute("PRAGMA journal_mode = WAL")
        db.executescript(V1_SCHEMA)
        t = int(time.time() * 1000) - 3600 * 1000     # an hour ago
        for ev, state, reason in rows:
            db.execute(
                "INSERT INTO events (source, event_id, type, payload, state,"
                " reason, error, attempts, received_ms, age_base_ms,"
                " next_ms, lease_ms, updated_ms) VALUES ('acme', ?, ?, ?,"
                " ?, ?, NULL, 0, ?, ?, ?, 0, ?)",
                (ev["id"], ev["type"], json.dumps(ev).encode(), state,
                 reason, t, t, t, t))
        db.execute("PRAGMA user_version = 1")
        db.commit()
    finally:
        db.close()


@sqlite_only("the PostgreSQL upgrade is test_store_pg's test_migrate_v1")
class TestUpgrade(BridgeCase):
    START = False

    def test_old_rows_keep_their_message_ids(self):
        pending, dead = event(id="evt_old_pending"), event(id="evt_old_dead")
        b = self.make_bridge(start=False)
        build_v1_store(os.path.join(b.dir, "nb.db"),
                       [(pending, 0, None), (dead, 2, "max_attempts")])
        b.start()
        old_p = legacy_message_id("acme", pending["id"])
        old_d = legacy_message_id("acme", dead["id"])
        # The pending row goes out with the messageId it always had.
        self.assertFalse(self.sink.wait_ids({old_p}, timeout=10))
        self.assertEqual(b.store_query("SELECT count(*) FROM events"
                                       " WHERE msgid_rule = 0"), 2)
        # A new event gets the install rule.
        new = event()
        self.assertCounts(b.post("acme", new), 1, 0, 0)
        mid_new = b.message_id("acme", new["id"])
        self.assertFalse(self.sink.wait_ids({mid_new}, timeout=10))
        self.assertNotEqual(mid_new, legacy_message_id("acme", new["id"]))
        # The old dead letter: shown and replayed with its old messageId,
        # after a restart too.
        b.kill9()
        b.start()
        rows = b.dlq("list")
        self.assertEqual([r["id"] for r in rows], [dead["id"]])
        r = b.admin("GET", "/v1/dlq/" + rows[0]["key"])
        self.assertEqual(r.json["track"]["messageId"], old_d)
        r = b.admin("POST", "/v1/dlq/replay", {"key": rows[0]["key"]})
        self.assertEqual(touched(r.json), 1, r.json)
        self.assertFalse(self.sink.wait_ids({old_d}, timeout=10))
        self.assertNotIn(message_id("acme", dead["id"], b.install_id()),
                         self.sink.accepted_ids())
        self.assertNotIn(message_id("acme", pending["id"], b.install_id()),
                         self.sink.accepted_ids())


if __name__ == "__main__":
    unittest.main()
