# SPDX-License-Identifier: ISC
"""The ecosystem files in deploy/ against the bridge that exports the data.

deploy/prometheus/alerts.yml must pass ``promtool check rules`` (Debian's
``prometheus`` package; tests/run.sh installs it), and every metric name
its rules and the Grafana dashboard's queries use must be one a running
bridge exports on /metrics (read from the live ``# TYPE`` lines, a
histogram's _bucket, _sum and _count included), so a renamed series
cannot leave a dashboard panel or an alert silently empty.  The dashboard
must be valid JSON and show what operators are promised: ingest by
outcome, delivery rate and latency, queue depth and age per source, dead
letters by reason, commit latency.
"""

import json
import os
import re
import shutil
import subprocess
import unittest

from harness import BridgeCase

TOP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
RULES = os.path.join(TOP, "deploy", "prometheus", "alerts.yml")
DASHBOARD = os.path.join(TOP, "deploy", "grafana", "nudgebridge.json")
NAME = re.compile(r"\bnudgebridge_[a-z0-9_]+")


def exported(text):
    """Metric names of an exposition, with the histograms' own series."""
    names = set()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            names.add(parts[2])
            if parts[3] == "histogram":
                names.update(parts[2] + s for s in ("_bucket", "_sum",
                                                    "_count"))
    return names


def dashboard_exprs(d):
    out = []
    for p in d.get("panels", []):
        for t in p.get("targets", []):
            out.append(t["expr"])
        for sub in p.get("panels", []):
            out.extend(t["expr"] for t in sub.get("targets", []))
    return out


class TestDeployFiles(BridgeCase):
    CONFIG = {"alerts": {"interval_ms": 200}}

    def test_promtool_check_rules(self):
        promtool = shutil.which("promtool")
        if promtool is None:
            self.skipTest("promtool missing (Debian package prometheus; "
                          "tests/run.sh installs it)")
        p = subprocess.run([promtool, "check", "rules", RULES],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60, universal_newlines=True)
        self.assertEqual(p.returncode, 0, p.stdout)
        self.assertIn("SUCCESS", p.stdout)

    def test_names_are_exported(self):
        names = exported(self.bridge.get("/metrics").raw.decode())
        self.assertIn("nudgebridge_alert_firing", names)
        with open(DASHBOARD) as f:
            d = json.load(f)
        exprs = dashboard_exprs(d)
        self.assertGreaterEqual(len(exprs), 10)
        used = set()
        for e in exprs:
            used.update(NAME.findall(e))
        with open(RULES) as f:
            rules = f.read()
        in_rules = set(NAME.findall(rules))
        self.assertEqual(sorted(used - names), [],
                         "dashboard queries name series the bridge does "
                         "not export")
        self.assertEqual(sorted(in_rules - names), [],
                         "alert rules name series the bridge does not "
                         "export")
        # What the dashboard promises.
        for want in ("nudgebridge_events_total",
                     "nudgebridge_events_delivered_total",
                     "nudgebridge_delivery_latency_seconds_bucket",
                     "nudgebridge_queue_pending",
                     "nudgebridge_queue_oldest_pending_age_seconds",
                     "nudgebridge_dead_letters_total",
                     "nudgebridge_store_commit_seconds_bucket"):
            self.assertIn(want, used)
        self.assertTrue(any("by (outcome)" in e for e in exprs))
        self.assertTrue(any("by (reason)" in e for e in exprs))
        # One alert rule per condition the bridge tells about.
        for want in ("nudgebridge_source_paused",
                     "nudgebridge_queue_dead",
                     "nudgebridge_queue_oldest_pending_age_seconds",
                     "nudgebridge_source_last_received_timestamp_seconds"):
            self.assertIn(want, in_rules)
        self.assertIn('alert="store_unavailable"', rules)


if __name__ == "__main__":
    unittest.main()
