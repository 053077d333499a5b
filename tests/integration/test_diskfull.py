# SPDX-License-Identifier: ISC
"""Disk full: 503 (never a 200 without storage, never a 4xx), then recovery.

Two ways to run out of room:

* a real full filesystem: the store on a 2 MiB tmpfs (root only, skipped
  with the reason otherwise); room is made by remounting it at 64 MiB, with
  the bridge running;
* the portable size cap store.max_size_bytes (no root needed); room is made
  by purging quarantined events through the admin API, with the bridge
  running.

In both, webhooks are posted until the answers turn 503: every answer must
be 200 or 503 "unavailable" with Retry-After (a 4xx would make Nudgespot
drop the event), /readyz must then say 503.  The stand-in answers 500
meanwhile, so everything acknowledged stays pending in the full store.
After room is made, /readyz must come back to 200, a new webhook must be
accepted, and once the stand-in answers 200 every event ever acknowledged,
before and after, must reach it: nothing stored was harmed and no 200 was
given without storage.
"""

import sys
import time
import unittest

from faults import Tmpfs
from harness import BridgeCase, event, wait_until

PAD = "x" * 1500


def padded(i, valid=True):
    ev = event(uid="u_%d" % i, properties={"pad": PAD, "i": i})
    if not valid:
        ev["occurred_at"] = "not a time"  # quarantined, kept in the store
    return ev


class DiskFullCase(BridgeCase):
    START = False

    def fill(self, bridge, per_request, quarantined=0, max_requests=400):
        """Posts until 503; returns (acked valid ids, statuses)."""
        acked, statuses = [], []
        after_503 = 0
        for i in range(max_requests):
            evs = [padded(i * 100 + j) for j in range(per_request)]
            evs += [padded(i * 100 + 50 + j, valid=False)
                    for j in range(quarantined)]
            r = bridge.post("acme", evs)
            statuses.append(r.status)
            self.assertIn(r.status, (200, 503), r)
            if r.status == 200:
                self.assertEqual(r.json["accepted"], per_request, r)
                self.assertEqual(r.json["quarantined"], quarantined, r)
                acked.extend(e["id"] for e in evs[:per_request])
            else:
                self.assertEqual(r.error, "unavailable", r)
                self.assertIsNotNone(r.header("Retry-After"), r)
                after_503 += 1
                if after_503 >= 5:
                    break
        self.assertIn(503, statuses, "never ran out of room")
        self.assertGreater(len(acked), 0, "nothing accepted before full")
        return acked, statuses

    def stays_unready(self, bridge, seconds=2.5):
        """/readyz says 503 throughout (the store probe runs every 1 s)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            r = bridge.get("/readyz")
            self.assertEqual(r.status, 503, r)
            self.assertEqual(r.json.get("reason"), "store_unavailable", r)
            time.sleep(0.25)

    def small_post_is_503(self, bridge):
        r = bridge.post("acme", event())
        self.assertIn(r.status, (200, 503), r)
        return r

    def finish(self, bridge, acked):
        """Room is back: ready, accepting, and everything delivered."""
        ok = wait_until(lambda: bridge.get("/readyz").status == 200,
                        timeout=15.0, interval=0.2)
        self.assertTrue(ok, "not ready again after room was made")
        ev = event()
        r = bridge.post("acme", ev)
        self.assertEqual(r.status, 200, r)
        acked = acked + [ev["id"]]
        self.sink.set_mode("ok")
        missing = self.sink.wait_ids(
            {bridge.message_id("acme", i) for i in acked}, timeout=30.0)
        self.assertEqual(missing, set(), "acknowledged events lost")
        return acked


class TmpfsFullTest(DiskFullCase):
    def full_tmpfs(self):
        fs = Tmpfs("2m")
        self.addCleanup(fs.cleanup)
        reason = fs.mount()
        if reason:
            sys.stdout.write("\ndiskfull: skipped: %s\n" % reason)
            self.skipTest(reason)
        self.sink.set_mode("fail")
        bridge = self.make_bridge(config={
            "store": {"path": fs.dir + "/nb.db", "lease_s": 1},
            "segment": {"timeout_ms": 1000,
                        "retry": {"initial_ms": 200, "max_ms": 1000}}})
        acked, statuses = self.fill(bridge, per_request=20)
        return fs, bridge, acked, statuses

    def test_tmpfs_full_then_remounted_larger(self):
        fs, bridge, acked, statuses = self.full_tmpfs()
        free = fs.free_bytes()
        r = bridge.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.assertEqual(r.json.get("reason"), "store_unavailable", r)
        self.assertEqual(self.small_post_is_503(bridge).status, 503)

        # Room again, with the bridge running.
        fs.resize("64m")
        acked = self.finish(bridge, acked)
        self.assertTrue(bridge.alive())
        sys.stdout.write(
            "\ndiskfull(tmpfs 2m): acknowledged=%d requests=%d "
            "first_503_at_request=%d free_bytes_when_full=%d\n" %
            (len(acked), len(statuses), statuses.index(503) + 1, free))

    # On a full filesystem the store probe's one tiny row (sq_probe in
    # src/store_sqlite_ops.c) fits into WAL space the failed commit had
    # already allocated: without the probe's free-space check (statvfs,
    # disk_check) the committer looked healthy a second later and
    # /readyz flapped back to 200 while every real request still failed.
    def test_tmpfs_full_readyz_stays_unready(self):
        fs, bridge, acked, statuses = self.full_tmpfs()
        self.stays_unready(bridge)


class SizeCapTest(DiskFullCase):
    def test_max_size_bytes_then_purge(self):
        self.sink.set_mode("fail")
        bridge = self.make_bridge(config={
            "store": {"max_size_bytes": 1024 * 1024},
            "segment": {"retry": {"initial_ms": 200, "max_ms": 1000}}})
        acked, statuses = self.fill(bridge, per_request=5, quarantined=15)
        r = bridge.get("/readyz")
        self.assertEqual(r.status, 503, r)
        self.stays_unready(bridge)
        self.assertEqual(self.small_post_is_503(bridge).status, 503)

        # Room again: purge the quarantined events (operator action).
        r = bridge.admin("POST", "/v1/dlq/purge", {"reason": "quarantined"})
        self.assertEqual(r.status, 200, r)
        self.assertGreater(r.json.get("purged", 0), 0, r)
        purged = r.json["purged"]
        acked = self.finish(bridge, acked)
        sys.stdout.write(
            "\ndiskfull(max_size_bytes 1 MiB): acknowledged=%d requests=%d "
            "first_503_at_request=%d purged=%d\n" %
            (len(acked), len(statuses), statuses.index(503) + 1, purged))


if __name__ == "__main__":
    unittest.main()
