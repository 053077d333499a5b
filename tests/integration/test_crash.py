# SPDX-License-Identifier: ISC
"""Crash safety: kill -9 under steady load, 20 times, on the same store.

A Poster thread posts signed single-event webhooks without pause and
records every event that got a 200 (an event whose request failed, because
the bridge died under it, is retried with the same webhook-id until it is
acknowledged, as Nudgespot does).  Meanwhile the bridge is killed with
SIGKILL at a random moment 0.1..0.6 s after each start and restarted at
once on the same database, 20 times.  The Segment stand-in answers 200 for
the first third of the kills, 500 for the second (so a backlog of retries
is pending at the kills), and 200 after a 0.3 s delay for the last third
(so batches are in flight, already accepted by "Segment" but not yet
recorded as delivered, when the process dies).

Afterwards, with the stand-in answering 200, every acknowledged event must
reach it: none missing, every delivered messageId the messageId of an
acknowledged event, and any duplicate delivery the very same Track message
(only the batch's sentAt may differ).  The counts are printed.

NB_CRASH_SEED=<int> replays one schedule of kill delays.
"""

import os
import random
import sys
import time
import unittest

from faults import Poster, check_deliveries
from harness import BridgeCase

KILLS = 20


class CrashTest(BridgeCase):
    START = False

    def test_kill9_under_load(self):
        seed = int(os.environ.get("NB_CRASH_SEED") or
                   random.SystemRandom().randrange(1 << 30))
        rng = random.Random(seed)
        bridge = self.make_bridge(config={
            "segment": {"flush_interval_ms": 20,
                        "retry": {"initial_ms": 50, "max_ms": 400}}})
        poster = Poster(bridge)
        poster.start()
        self.addCleanup(poster.stop, 5.0)

        t0 = time.monotonic()
        kills = 0
        for k in range(KILLS):
            if k == KILLS // 3:
                self.sink.set_mode("fail")
            elif k == 2 * KILLS // 3:
                self.sink.set_mode("slow", hang_s=0.3)
            time.sleep(rng.uniform(0.1, 0.6))
            self.assertTrue(bridge.alive(), bridge.log()[-3000:])
            bridge.kill9()
            kills += 1
            bridge.start(timeout=15.0)
        self.sink.set_mode("ok")
        poster.stop()
        self.assertFalse(poster.is_alive(), "poster did not stop")
        acked = poster.acked_ids()

        missing = self.sink.wait_ids(
            {bridge.message_id("acme", i) for i in acked}, timeout=30.0)
        v = check_deliveries(self.sink, "acme", acked, bridge.install_id())
        elapsed = time.monotonic() - t0
        statuses = dict(poster.statuses)
        sys.stdout.write(
            "\ncrash: seed=%d kills=%d acknowledged=%d delivered_unique=%d "
            "duplicate_deliveries=%d missing=%d sink_requests=%d "
            "post_outcomes=%s elapsed=%.1fs\n" %
            (seed, kills, v["acknowledged"], v["delivered_unique"],
             v["duplicate_deliveries"], len(v["missing"]),
             len(self.sink.all_batches()), statuses, elapsed))
        sys.stdout.flush()

        self.assertEqual(kills, KILLS)
        self.assertEqual(poster.unexpected, [],
                         "answers other than 200/503 under crashes")
        self.assertEqual(poster.unacked, [], "events never acknowledged")
        self.assertGreater(len(acked), 100, "too little load to mean much")
        self.assertEqual(len(set(acked)), len(acked))
        self.assertEqual(missing, set(), "acknowledged events lost")
        self.assertEqual(v["missing"], [])
        self.assertEqual(v["foreign"], [],
                         "delivered messageIds of no acknowledged event")
        self.assertEqual(v["differing"], [],
                         "duplicates that are not the same Track message")
        self.assertEqual(v["delivered_unique"], v["acknowledged"])


if __name__ == "__main__":
    unittest.main()
