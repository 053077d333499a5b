# SPDX-License-Identifier: ISC
"""Several bridge instances sharing one PostgreSQL store, black box.

Needs NB_TEST_PG_DSN (tests/pg.sh starts a throw-away cluster; tests/run.sh
does it for you); without it every test is skipped.  Each test gets a
schema of its own (PGOPTIONS sets the search_path of every connection the
bridges open), so runs never see each other's rows.
"""

import os
import secrets
import subprocess
import time
import unittest

from harness import BridgeCase, event, message_id, new_secret

DSN = os.environ.get("NB_TEST_PG_DSN", "")


def psql(sql):
    p = subprocess.run(["psql", DSN, "-q", "-v", "ON_ERROR_STOP=1", "-c",
                        sql], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" %
                             (sql, p.stderr.decode(errors="replace")))


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
        self.schema = "nbit_%d_%s" % (os.getpid(), secrets.token_hex(4))
        psql("SET client_min_messages = warning; CREATE SCHEMA %s"
             % self.schema)
        self.addCleanup(psql, "SET client_min_messages = warning; "
                        "DROP SCHEMA %s CASCADE" % self.schema)
        self.sources = [{"name": "acme",
                         "signing_secrets": [new_secret()]}]

    def instance(self, start=True):
        b = self.make_bridge(
            self.sources,
            {"store": {"driver": "postgres", "dsn": DSN,
                       "lease_s": self.LEASE_S, "path": None},
             "segment": {"timeout_ms": self.TIMEOUT_MS}},
            start=False)
        del b.config["store"]["path"]
        b.write_config()
        b.env["PGOPTIONS"] = "-c search_path=%s" % self.schema
        if start:
            b.start()
        return b


class TestSharedStore(PgCase):

    def test_two_instances_share_dedupe_and_queue(self):
        a, b = self.instance(), self.instance()
        evs = [event() for _ in range(10)]
        self.assertCounts(a.post("acme", evs[:5], id="msg_pg_1"), 5, 0, 0)
        # The same webhook delivered to the other instance is a duplicate.
        self.assertCounts(b.post("acme", evs[:5], id="msg_pg_1"), 0, 5, 0)
        self.assertCounts(b.post("acme", evs[5:]), 5, 0, 0)
        self.assertCounts(a.post("acme", [evs[7]]), 0, 1, 0)
        want = {message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15))
        time.sleep(0.5)
        # Two deliverers, but each row was claimed by one of them.
        n = sum(len(x.messages) for x in self.sink.all_batches())
        self.assertEqual(n, 10, "messages sent for 10 events")
        # Quarantine and dlq work against the shared store too.
        self.assertCounts(a.post("acme", event(occurred_at="no")), 0, 0, 1)
        rows = b.dlq("list")
        self.assertEqual([r["reason"] for r in rows], ["quarantined"])

    def test_restart_keeps_acknowledged(self):
        a = self.instance()
        self.sink.set_mode("fail")
        evs = [event() for _ in range(4)]
        self.assertCounts(a.post("acme", evs), 4, 0, 0)
        a.kill9()
        self.sink.set_mode("ok")
        a.start()
        want = {message_id("acme", e["id"]) for e in evs}
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
        want = {message_id("acme", e["id"]) for e in evs}
        self.assertFalse(self.sink.wait_ids(want, timeout=15),
                         "rows leased by a dead instance never taken over")
        self.assertTrue(b.alive())


if __name__ == "__main__":
    unittest.main()
