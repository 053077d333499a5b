# SPDX-License-Identifier: ISC
"""The operator console (issue 8): the page, its API additions, a browser.

* The admin listener serves the embedded page at / (and its two assets)
  without a token, with a strict Content-Security-Policy; everything else
  still needs the token.
* /v1/stats carries received_1m, delivered_1m and last_errors per source.
* POST /v1/dlq/replay and /purge take "keys": [...] (a selection), and a
  dry run with "return_keys" lists the keys it selects, so that "all
  matching" acts on exactly what the operator confirmed.
* A real browser: tests/console/console.spec.mjs drives Debian's chromium
  through playwright-core: a wrong token is refused, the right one signs
  in, the dead_letters alert (GET /v1/alerts) shows on the Sources page,
  a dead letter made by the sink rejecting one event with 400 is found,
  replayed after the sink is switched back to 200, and arrives at the sink.
  "Purge all matching" purges the events its confirmation counted and not
  one that arrived while the confirmation was open.
  It is skipped (with the reason printed) only when chromium or node is not
  installed; tests/run.sh installs both.
* The same browser reads a paused source's card (tests/console/
  paused.spec.mjs): an OAuth token endpoint that refuses the credentials
  is named there with its error code and description.

NB_CONSOLE_SCREENSHOTS=DIR makes the browser test write its screenshots
there (docs/console/ holds the published ones).
"""

import json
import os
import re
import shutil
import subprocess
import unittest

from harness import BridgeCase, event, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
CONSOLE_DIR = os.path.join(HERE, "..", "console")
DOCS_DIR = os.path.join(HERE, "..", "..", "docs")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def doc_reasons(name, pattern):
    """The reasons a docs page names in the table rows pattern finds."""
    with open(os.path.join(DOCS_DIR, name)) as f:
        text = f.read()
    out = []
    for m in re.finditer(pattern, text, re.M):
        out += re.findall(r"`([a-z_]+)`", m.group(1))
    return out


class TestConsolePage(BridgeCase):

    def test_reasons_are_the_stores(self):
        """One list of dead-letter reasons (store.h): the page's filter
        reads it from /console/reasons.js, the grammar takes exactly those,
        the metrics count each, the docs' tables name each."""
        r = self.bridge.admin("GET", "/console/reasons.js", auth=False)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.header("Content-Type").startswith("text/javascript"))
        self.assertIn("default-src 'none'", r.header("Content-Security-Policy"))
        m = re.fullmatch(r'"use strict";\nwindow\.NB_REASONS = (\[.*\]);\n',
                         r.raw.decode())
        self.assertIsNotNone(m, r.raw)
        reasons = json.loads(m.group(1))
        self.assertIn("quarantined", reasons)
        self.assertEqual(len(set(reasons)), len(reasons))
        r = self.bridge.admin("GET", "/v1/dlq?reason=lost")
        self.assertStatus(r, 400, "invalid_request")
        self.assertEqual(r.json["message"],
                         "reason: must be one of " + ", ".join(reasons))
        for x in reasons:
            self.assertEqual(self.bridge.admin(
                "GET", "/v1/dlq?reason=" + x).status, 200, x)
        counted = {k[len('nudgebridge_dead_letters_total{reason="'):-2]
                   for k in self.bridge.metrics()
                   if k.startswith("nudgebridge_dead_letters_total{")}
        self.assertEqual(counted, set(reasons) | {"other"})
        # The docs: delivery.md's table, api.md's filter row.
        self.assertEqual(sorted(doc_reasons(
            "delivery.md", r"^\| (`[a-z_]+`) \| .* \| .* \|$")),
            sorted(reasons))
        self.assertEqual(doc_reasons(
            "api.md", r"^\| `reason` \| `--reason` \| (.*) \|$"), reasons)
        page = self.bridge.admin("GET", "/", auth=False).raw.decode()
        self.assertLess(page.index('src="/console/reasons.js"'),
                        page.index('src="/console/console.js"'))

    def test_page_without_token(self):
        for path, ctype in (("/", "text/html"),
                            ("/index.html", "text/html"),
                            ("/console/console.css", "text/css"),
                            ("/console/console.js", "text/javascript")):
            r = self.bridge.admin("GET", path, auth=False)
            self.assertEqual(r.status, 200, (path, r))
            self.assertTrue(r.header("Content-Type").startswith(ctype), path)
            csp = r.header("Content-Security-Policy")
            self.assertIn("default-src 'none'", csp)
            self.assertIn("connect-src 'self'", csp)
            self.assertEqual(r.header("X-Content-Type-Options"), "nosniff")
        page = self.bridge.admin("GET", "/", auth=False).raw.decode()
        self.assertIn('src="/console/console.js"', page)
        # Nothing loads from elsewhere.
        self.assertNotIn("http://", page.replace("http://www.w3.org", ""))
        self.assertNotIn("https://", page)
        r = self.bridge.admin("HEAD", "/", auth=False)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.raw, b"")

    def test_api_still_needs_token(self):
        for method, path in (("GET", "/v1/stats"), ("GET", "/v1/dlq"),
                             ("GET", "/v1/alerts"),
                             ("GET", "/console/other.js"),
                             ("POST", "/"), ("GET", "/v1/dlq/1")):
            r = self.bridge.admin(method, path, auth=False)
            self.assertStatus(r, 401, "unauthorized")
        r = self.bridge.admin("GET", "/console/other.js")
        self.assertStatus(r, 404, "not_found")


class TestConsoleApi(BridgeCase):

    def test_stats_rates_and_last_errors(self):
        self.sink.poison = {"Email Bounced"}
        good = [event() for _ in range(3)]
        bad = event(type="email.bounced")
        r = self.bridge.post("acme", good + [bad])
        self.assertCounts(r, 4, 0, 0)
        self.assertEqual(self.sink.wait_count(3), 3)

        # The stand-in may have answered before the bridge recorded the
        # outcome (or a slow answer may be retried): wait for the store.
        def settled():
            s = self.bridge.admin("GET", "/v1/stats").json["sources"][0]
            return s if s["dead"] == 1 and s["delivered"] == 3 else None
        s = wait_until(settled, 20)
        self.assertTrue(s, "the rejected event was not dead-lettered, "
                        "or the others not marked delivered")
        self.assertEqual(s["received_1m"], 4)
        self.assertEqual(s["delivered_1m"], 3)
        self.assertEqual(len(s["last_errors"]), 1, s)
        e = s["last_errors"][0]
        self.assertTrue(e["error"].startswith("segment: 400"), e)
        self.assertEqual(e["state"], "dead")
        self.assertEqual(e["reason"], "rejected_by_segment")
        self.assertEqual(e["count"], 1)
        self.assertRegex(e["last_at"], r"^\d{4}-\d\d-\d\dT")
        body = self.bridge.admin("GET", "/v1/stats").json
        self.assertIs(body["rates_truncated"], False)

    def test_replay_and_purge_keys(self):
        evs = [event(occurred_at="not-a-time") for _ in range(4)]
        self.assertCounts(self.bridge.post("acme", evs), 0, 0, 4)
        rows = self.bridge.admin("GET", "/v1/dlq").json["events"]
        keys = [r["key"] for r in rows]
        self.assertEqual(len(keys), 4)
        r = self.bridge.admin("POST", "/v1/dlq/purge",
                              {"keys": keys[:2], "dry_run": True})
        self.assertEqual(r.json, {"purged": 2, "dry_run": True}, r)
        r = self.bridge.admin("POST", "/v1/dlq/purge",
                              {"keys": keys[:2] + ["999999"]})
        self.assertEqual(r.json["purged"], 2, r)
        left = [x["key"] for x in
                self.bridge.admin("GET", "/v1/dlq").json["events"]]
        self.assertEqual(left, keys[2:])
        # Filters still apply to each key.
        r = self.bridge.admin("POST", "/v1/dlq/replay",
                              {"keys": keys[2:], "source": "other",
                               "dry_run": True})
        self.assertEqual(r.json["replayed"], 0, r)
        r = self.bridge.admin("POST", "/v1/dlq/replay", {"keys": keys[2:]})
        self.assertEqual(r.json["replayed"], 2, r)
        self.assertEqual(r.json["requarantined"], 2, r)
        for bad in ({"keys": []}, {"keys": "1"}, {"keys": [1]},
                    {"keys": ["1"], "key": "1"}, {"keys": [""]},
                    {"keys": ["1"] * 1001}):
            r = self.bridge.admin("POST", "/v1/dlq/replay", bad)
            self.assertStatus(r, 400, "invalid_request")


class TestConsoleSnapshot(BridgeCase):

    def test_dry_run_returns_the_keys_it_selects(self):
        evs = [event(occurred_at="not-a-time") for _ in range(3)]
        self.assertCounts(self.bridge.post("acme", evs), 0, 0, 3)
        r = self.bridge.admin("POST", "/v1/dlq/purge",
                              {"reason": "quarantined", "dry_run": True,
                               "return_keys": True})
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["purged"], 3, r.json)
        self.assertEqual(len(r.json["keys"]), 3, r.json)
        self.assertIs(r.json["keys_truncated"], False)
        keys = r.json["keys"]
        # A dead letter that arrives after the confirmation is not touched.
        late = event(occurred_at="not-a-time")
        self.assertCounts(self.bridge.post("acme", late), 0, 0, 1)
        r = self.bridge.admin("POST", "/v1/dlq/purge",
                              {"reason": "quarantined", "keys": keys})
        self.assertEqual(r.json, {"purged": 3, "dry_run": False}, r)
        left = self.bridge.admin("GET", "/v1/dlq").json["events"]
        self.assertEqual([x["id"] for x in left], [late["id"]])
        for bad in ({"return_keys": True},
                    {"return_keys": True, "dry_run": True, "keys": ["1"]}):
            r = self.bridge.admin("POST", "/v1/dlq/replay", bad)
            self.assertStatus(r, 400, "invalid_request")


def tool_missing():
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium is not installed (%s); apt-get install chromium" \
            % CHROMIUM
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node/npm are not installed; apt-get install nodejs npm"
    return None


def ensure_node_modules():
    """npm ci (from package-lock.json) when node_modules is missing."""
    if os.path.isdir(os.path.join(CONSOLE_DIR, "node_modules",
                                  "playwright-core")):
        return
    cmd = ["npm", "ci", "--no-audit", "--no-fund"]
    if not os.path.exists(os.path.join(CONSOLE_DIR, "package-lock.json")):
        cmd[1] = "install"
    p = subprocess.run(cmd, cwd=CONSOLE_DIR, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=240)
    if p.returncode != 0:
        raise AssertionError("npm could not install playwright-core:\n" +
                             p.stdout.decode("utf-8", "replace"))


class TestConsoleBrowser(BridgeCase):
    CONFIG = {"alerts": {"interval_ms": 200}}

    def setUp(self):
        why = tool_missing()
        if why:
            print("\nSKIP browser test: " + why)
            self.skipTest(why)
        ensure_node_modules()
        super().setUp()

    def test_sign_in_find_replay(self):
        # Segment rejects one event with 400: it becomes a dead letter.
        bad = event(type="email.bounced")
        self.sink.poison = {self.bridge.message_id("acme", bad["id"])}
        self.assertCounts(self.bridge.post("acme", [event(), bad]), 2, 0, 0)
        self.assertTrue(wait_until(lambda: self.bridge.admin(
            "GET", "/v1/dlq?reason=rejected_by_segment").json["events"], 10))
        quarantined = [event(occurred_at="yesterday") for _ in range(2)]
        self.assertCounts(self.bridge.post("acme", quarantined), 0, 0, 2)
        # The dead letters set off an alert, which the browser must show.
        self.assertTrue(wait_until(lambda: [
            a for a in self.bridge.admin("GET", "/v1/alerts").json["alerts"]
            if (a["alert"], a["source"]) == ("dead_letters", "acme")], 10))
        # The sink answers 200 again; the browser replays the event.
        self.sink.poison = set()
        before = len(self.sink.accepted_messages())

        # One more quarantined event, signed now, sent by the browser test
        # while its "Purge all matching" confirmation is open.
        late = event(occurred_at="yesterday")
        late_body = json.dumps([late]).encode()
        late_headers = {"Content-Type": "application/json"}
        late_headers.update(self.bridge.signed_headers("acme", late_body))

        env = dict(os.environ)
        env.update({
            "NB_ADMIN_URL": "http://127.0.0.1:%d" % self.bridge.admin_port,
            "NB_TOKEN": self.bridge.token,
            "NB_DEAD_ID": bad["id"],
            "NB_DEAD_MESSAGE_ID": self.bridge.message_id("acme", bad["id"]),
            "NB_INSTALL_ID": self.bridge.install_id(),
            "NB_QUARANTINED": str(len(quarantined)),
            "NB_MAIN_URL": "http://127.0.0.1:%d/v1/webhooks/acme" %
            self.bridge.port,
            "NB_LATE_BODY": late_body.decode(),
            "NB_LATE_HEADERS": json.dumps(late_headers),
            "NB_LATE_ID": late["id"],
            "CHROMIUM": CHROMIUM,
        })
        shots = os.environ.get("NB_CONSOLE_SCREENSHOTS")
        if shots:
            env["NB_SCREENSHOTS"] = os.path.abspath(shots)
        p = subprocess.run(["node", "console.spec.mjs"], cwd=CONSOLE_DIR,
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180)
        out = p.stdout.decode("utf-8", "replace")
        print(out)
        self.assertEqual(p.returncode, 0, out)
        self.assertNotIn(self.bridge.token, out)

        # The replayed event arrived at the Segment stand-in, once more.
        mid = self.bridge.message_id("acme", bad["id"])
        self.assertEqual(self.sink.wait_ids([mid]), set())
        later = self.sink.accepted_messages()[before:]
        self.assertEqual([m["messageId"] for m in later], [mid])
        self.assertEqual(later[0]["event"], "Email Bounced")
        # The token was never logged.
        self.assertNotIn(self.bridge.token, self.bridge.log())


class TestConsolePaused(BridgeCase):
    START = False

    def setUp(self):
        why = tool_missing()
        if why:
            print("\nSKIP browser test: " + why)
            self.skipTest(why)
        try:
            from test_oauth import key_pair
            private, public = key_pair()
        except (ImportError, TypeError, AttributeError):
            self.skipTest("python3-cryptography is not installed")
        ensure_node_modules()
        super().setUp()
        oauth = self.sink.enable_oauth("cid", "kid", public)
        oauth.refusal = {"error": "invalid_client",
                         "error_description": "Unknown key kid"}
        self.sink.token_mode("401")
        self.bridge = self.make_bridge(
            [{"name": "acme", "oauth": {
                "client_id": "cid", "key_id": "kid",
                "private_key_file": "k.pem", "auth_server": self.sink.url}}],
            start=False)
        fd = os.open(os.path.join(self.bridge.dir, "k.pem"),
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(private)
        self.bridge.start()

    def test_oauth_refusal_on_the_card(self):
        self.assertTrue(wait_until(lambda: any(
            s["paused"] for s in self.bridge.admin(
                "GET", "/v1/stats").json["sources"]), 10))
        env = dict(os.environ)
        env.update({
            "NB_ADMIN_URL": "http://127.0.0.1:%d" % self.bridge.admin_port,
            "NB_TOKEN": self.bridge.token,
            "NB_PAUSED_SOURCE": "acme",
            "NB_PAUSED_TEXT": "invalid_client: Unknown key kid",
            "CHROMIUM": CHROMIUM,
        })
        p = subprocess.run(["node", "paused.spec.mjs"], cwd=CONSOLE_DIR,
                           env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=180)
        out = p.stdout.decode("utf-8", "replace")
        print(out)
        self.assertEqual(p.returncode, 0, out)


if __name__ == "__main__":
    unittest.main()
