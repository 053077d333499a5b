# SPDX-License-Identifier: ISC
"""Segment outage: refused, then 500s, then 429 with Retry-After: 2.

The bridge is configured with an endpoint on a port where nothing listens
(connection refused), takes events (a Segment outage never affects the
webhook answers), and keeps them.  After a while the stand-in starts on
that very port answering 500, then 429 with "Retry-After: 2", then 200.
Afterwards every event must have been delivered, and the sink's records
must show the retry schedule was respected:

* backoff: the gap between two attempts carrying the same message is at
  least the lower end of the jittered backoff, d/2 where
  d = min(max_ms, initial_ms * 2^(k-1)) after the k-th attempt; attempts
  the stand-in did not see (refused connections) only make k larger, and
  d grows with k, so counting the attempts the stand-in saw gives a valid
  lower bound;
* Retry-After: after a 429 answered at t, no request at all reaches the
  stand-in before t + 2 s (one request in flight at a time here, so every
  later request was started after the 429 was read);
* and retries keep coming: no gap after a 500 is longer than max_ms plus
  slack (unless a 429's Retry-After held it), so an outage never parks
  events for longer than the cap.
"""

import sys
import time
import unittest

from faults import ReservedPort, SinkOnPort
from harness import BridgeCase, WRITE_KEY, event

INITIAL_MS = 200
MAX_MS = 1600
RETRY_AFTER_S = 2
SLOP_S = 0.010


def min_delay_s(k):
    """Lower end of the jittered backoff after the k-th attempt (deliver.c)."""
    d = INITIAL_MS
    i = 1
    while i < k and d < MAX_MS:
        d *= 2
        i += 1
    d = min(d, MAX_MS)
    return (d // 2) / 1000.0


class OutageTest(BridgeCase):
    START = False

    def test_refused_then_500_then_429_then_ok(self):
        reserved = ReservedPort()
        self.addCleanup(reserved.release)
        port = reserved.port
        bridge = self.make_bridge(config={
            "segment": {
                "endpoint": "http://127.0.0.1:%d" % port,
                "flush_interval_ms": 50,
                "timeout_ms": 2000,
                "max_inflight": 1,
                "retry": {"initial_ms": INITIAL_MS, "max_ms": MAX_MS},
            }})

        # Events arrive during the outage: answered 200 as usual.
        ids = []
        for i in range(6):
            evs = [event(uid="u_%d" % j) for j in range(5)]
            r = bridge.post("acme", evs if i % 2 else evs[0])
            self.assertEqual(r.status, 200, r)
            ids.extend(e["id"] for e in (evs if i % 2 else evs[:1]))
            time.sleep(0.1)
        want = {bridge.message_id("acme", i) for i in ids}

        # Phase 1: connection refused for 2.5 s; retries are counted.
        time.sleep(2.5)
        m = bridge.metrics()
        refused = sum(v for k, v in m.items()
                      if k.startswith("nudgebridge_retries_total"))
        self.assertGreater(refused, 0, "no retry while refused")

        # Phase 2: the stand-in comes up on that port answering 500.
        reserved.release()
        sink = SinkOnPort(WRITE_KEY, port)
        self.addCleanup(sink.close)
        sink.set_mode("fail")
        t_up = time.monotonic()
        self.assertGreaterEqual(sink.wait_requests(3, timeout=10.0), 3)
        time.sleep(max(0.0, 3.0 - (time.monotonic() - t_up)))

        # Phase 3: 429 with Retry-After: 2, until two 429s were answered.
        sink.set_mode("429", retry_after=str(RETRY_AFTER_S))
        n0 = len(sink.all_batches())
        sink.wait_for(lambda: sum(1 for b in sink.all_batches()[n0:]
                                  if b.status == 429) >= 2, timeout=15.0)

        # Phase 4: healthy again; everything arrives.
        sink.set_mode("ok")
        missing = sink.wait_ids(want, timeout=20.0)
        self.assertEqual(missing, set(), "events lost in the outage")

        batches = sink.all_batches()
        by_msg = {}
        for b in batches:
            for msg in b.messages:
                by_msg.setdefault(msg.get("messageId"), []).append(b)
        n500 = sum(1 for b in batches if b.status == 500)
        n429 = sum(1 for b in batches if b.status == 429)
        self.assertGreaterEqual(n500, 1)
        self.assertGreaterEqual(n429, 2)

        # Backoff between attempts at the same message.
        violations = []
        checked = 0
        for mid, seen in by_msg.items():
            for k in range(1, len(seen)):
                prev, cur = seen[k - 1], seen[k]
                if 200 <= prev.status < 300:
                    continue  # a duplicate after success is not a retry
                gap = cur.at - prev.at
                low = min_delay_s(k)
                if prev.status == 429:
                    low = max(low, RETRY_AFTER_S)
                checked += 1
                if gap < low - SLOP_S:
                    violations.append((mid, k, prev.status, round(gap, 3),
                                       low))
                # Late: a retry after a 500 waits max_ms at most, plus
                # 3 s for a loaded machine.  Not when a 429 was answered
                # in between: its Retry-After holds every request (and
                # two in a row hold 4 s), so the gap is the 429s' doing.
                held = any(b.status == 429 and prev.at <= b.at < cur.at
                           for b in batches)
                if (prev.status == 500 and not held and
                        gap > MAX_MS / 1000.0 + 3.0):
                    violations.append((mid, k, "late", round(gap, 3),
                                       MAX_MS / 1000.0))
        self.assertGreater(checked, 0)
        self.assertEqual(violations, [], "retry schedule not respected")

        # No request at all inside a Retry-After window.
        inside = []
        for i, b in enumerate(batches):
            if b.status != 429:
                continue
            for later in batches[i + 1:]:
                if later.at < b.at + RETRY_AFTER_S - SLOP_S:
                    inside.append((round(later.at - b.at, 3), later.status))
        self.assertEqual(inside, [], "requests inside a Retry-After window")

        gaps = sorted(round(b2.at - b1.at, 3)
                      for b1, b2 in zip(batches, batches[1:]))
        sys.stdout.write(
            "\noutage: events=%d requests=%d (500: %d, 429: %d) "
            "retries_while_refused=%d gaps_checked=%d min_gap=%.3fs\n" %
            (len(want), len(batches), n500, n429, refused, checked,
             gaps[0] if gaps else 0.0))
        sys.stdout.flush()
        self.assertEqual(bridge.get("/readyz").status, 200)


if __name__ == "__main__":
    unittest.main()
