# SPDX-License-Identifier: ISC
"""OAuth 2.0 client credentials towards Segment: CONTRACT section 6, black box.

The sink plays an OAuth-protected Segment (sink.OAuth): POST /token checks
every client assertion the way a token endpoint does (the RS256 signature
with the public key of the key pair made here, kid, iss = sub = client_id,
aud = the configured auth_server, exp - iat <= 60, iat against its own
clock, a jti never seen before, the form fields) and batches need a live
Bearer token plus the write key in the body.  The tests: tokens used and
renewed before they lapse (short expires_in), a 401 from /v1/batch fetches
a new token once and then pauses, the token endpoint's 400/401 pause the
source with its error in the stats, the metrics and the log, its 5xx and
429 are retried, a skewed server clock is corrected from its Date, and
neither the key, the assertions nor the tokens ever reach the log.  Needs
Debian's python3-cryptography.
"""

import base64
import json
import os
import re
import time
import unittest

from harness import BridgeCase, WRITE_KEY, event, wait_until

try:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
except ImportError:                                     # pragma: no cover
    rsa = None

CLIENT_ID = "cid_3xJqN1"
KEY_ID = "kid_0fA9"


def key_pair():
    """(private PEM, public PEM) of a fresh RSA 2048 key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@unittest.skipIf(rsa is None, "python3-cryptography is not installed")
class OAuthCase(BridgeCase):
    START = False
    EXPIRES_IN = 3600
    CLOCK_OFFSET_S = 0.0
    EXTRA = None

    def setUp(self):
        super().setUp()
        self.private, public = key_pair()
        self.oauth = self.sink.enable_oauth(CLIENT_ID, KEY_ID, public,
                                            self.EXPIRES_IN,
                                            self.CLOCK_OFFSET_S)
        config = {"log": {"level": "debug"}}
        if self.EXTRA:
            config.update(self.EXTRA)
        self.bridge = self.make_bridge(
            [{"name": "acme",
              "oauth": {"client_id": CLIENT_ID, "key_id": KEY_ID,
                        "private_key_file": "segment-oauth.pem",
                        "auth_server": self.sink.url}}],
            config, start=False)
        path = os.path.join(self.bridge.dir, "segment-oauth.pem")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(self.private)
        self.before_start()
        self.bridge.start()

    def before_start(self):
        """Programs the sink before the bridge's first token request."""

    def deliver(self, n=1, timeout=15):
        evs = [event() for _ in range(n)]
        self.assertCounts(self.bridge.post("acme", evs), n, 0, 0)
        want = {self.bridge.message_id("acme", e["id"]) for e in evs}
        missing = self.sink.wait_ids(want, timeout=timeout)
        self.assertFalse(missing, "not delivered: %s" % missing)
        return evs

    def assert_no_secrets_logged(self):
        log = self.bridge.log()
        pem_lines = [ln for ln in self.private.decode().splitlines()
                     if ln and not ln.startswith("-----")]
        for line in pem_lines:
            self.assertNotIn(line, log)
        for token in self.oauth.issued:
            self.assertNotIn(token, log)
        for req in self.sink.token_requests():
            jwt = req.form.get("client_assertion", [""])[0]
            for part in jwt.split("."):
                if len(part) > 8:
                    self.assertNotIn(part, log)
        self.assertNotIn(WRITE_KEY, log)
        self.assertNotIn(base64.b64encode(
            (WRITE_KEY + ":").encode()).decode(), log)

    def paused_entry(self):
        stats = self.bridge.admin("GET", "/v1/stats")
        self.assertEqual(stats.status, 200, stats)
        for s in stats.json["sources"]:
            if s["source"] == "acme" and s["paused"]:
                return s
        return None


class TestTokens(OAuthCase):

    def test_bearer_token_and_write_key_in_body(self):
        self.deliver(3)
        reqs = self.sink.token_requests()
        self.assertEqual(len(reqs), 1, [r.error for r in reqs])
        self.assertIsNone(reqs[0].error)
        self.assertEqual(reqs[0].status, 200)
        self.assertEqual(reqs[0].header,
                         {"alg": "RS256", "typ": "JWT", "kid": KEY_ID})
        c = reqs[0].claims
        self.assertEqual((c["iss"], c["sub"], c["aud"]),
                         (CLIENT_ID, CLIENT_ID, self.sink.url))
        self.assertLessEqual(c["exp"] - c["iat"], 60)
        self.assertLess(abs(c["iat"] - time.time()), 10)
        token = self.oauth.issued[0]
        for b in self.sink.all_batches():
            self.assertEqual(b.status, 200)
            self.assertEqual(b.auth, "Bearer " + token)
            self.assertEqual(b.body["writeKey"], WRITE_KEY)
            self.assertEqual(b.encoding, "gzip")
        # The token is reused, not fetched per batch.
        self.deliver(2)
        self.assertEqual(len(self.sink.token_requests()), 1)
        m = self.bridge.metrics()
        self.assertEqual(
            m['nudgebridge_oauth_token_requests_total{status="200"}'], 1)
        self.assert_no_secrets_logged()

    def test_401_fetches_a_new_token_once(self):
        self.deliver(1)
        self.assertEqual(len(self.sink.token_requests()), 1)
        self.sink.revoke_tokens()
        self.deliver(2)
        statuses = [b.status for b in self.sink.all_batches()]
        self.assertIn(401, statuses)
        self.assertEqual(statuses[-1], 200)
        self.assertEqual(len(self.sink.token_requests()), 2)
        self.assertEqual(self.sink.all_batches()[-1].auth,
                         "Bearer " + self.oauth.issued[1])
        self.assertIsNone(self.paused_entry())
        self.assertEqual(self.bridge.dlq("list"), [])
        self.assert_no_secrets_logged()

    def test_401_with_a_fresh_token_pauses(self):
        self.sink.set_mode("401")
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        p = wait_until(self.paused_entry, timeout=10)
        self.assertTrue(p, "not paused after two 401s")
        self.assertEqual(p["paused_status"], 401)
        self.assertIn("fresh OAuth token", p["paused_error"])
        # One token, then exactly one more after the first 401.
        self.assertEqual(len(self.sink.token_requests()), 2)
        n = len(self.sink.all_batches())
        self.assertEqual(n, 2)
        time.sleep(0.5)
        self.assertEqual(len(self.sink.all_batches()), n)
        self.assertEqual(self.bridge.dlq("list"), [])
        # A reload resumes; the event was kept.
        self.sink.set_mode("ok")
        self.bridge.hup()
        self.assertFalse(self.sink.wait_ids(
            {self.bridge.message_id("acme", ev["id"])}, timeout=10))


class TestRenewal(OAuthCase):
    # Renewed at 2 s, no longer sent after 3 s (src/oauth.c fetch_got: half
    # and three quarters of the life, counted from the token request), while
    # the sink expires it 4 s after it answered.  So a batch sent with a
    # token has at least 1 s to reach the sink's check: with 2 s of life
    # that was 0.5 s, and one stall of a loaded CI runner gave a 401.  A
    # bridge that keeps sending a token after it lapsed meets a 401 within
    # the loop below.
    EXPIRES_IN = 4

    def test_renewed_before_it_lapses(self):
        # 6.5 s of batches: renewals near 2, 4 and 6 s after the first
        # token, so 3 requests are in with 2 s to spare for slow fetches.
        deadline = time.monotonic() + 6.5
        while time.monotonic() < deadline:
            self.deliver(1)
            time.sleep(0.2)
        reqs = self.sink.token_requests()
        self.assertGreaterEqual(len(reqs), 3, "tokens fetched: %d" %
                                len(reqs))
        self.assertTrue(all(r.status == 200 for r in reqs),
                        [(r.status, r.error) for r in reqs])
        # Every batch carried a live token: none was refused.
        self.assertEqual({b.status for b in self.sink.all_batches()}, {200})
        # Unique jti every time (the sink refuses a reuse with 400).
        jtis = [r.claims["jti"] for r in reqs]
        self.assertEqual(len(jtis), len(set(jtis)))
        self.assert_no_secrets_logged()


class TestRefused(OAuthCase):
    STATUS = None

    def before_start(self):
        self.sink.token_mode(str(self.STATUS))

    def check_pause(self, status):
        ev = event()
        self.assertCounts(self.bridge.post("acme", ev), 1, 0, 0)
        p = wait_until(self.paused_entry, timeout=10)
        self.assertTrue(p, "not paused after the token endpoint's %d" %
                        status)
        self.assertEqual(p["paused_status"], status)
        self.assertIn("invalid_client", p["paused_error"])
        self.assertIn("Client authentication failed", p["paused_error"])
        metrics = self.bridge.get("/metrics").raw.decode()
        self.assertRegex(metrics, r'(?m)^nudgebridge_source_paused_oauth'
                         r'\{source="acme",error="invalid_client"\} 1$')
        self.assertRegex(metrics, r'(?m)^nudgebridge_source_paused'
                         r'\{source="acme"\} 1$')
        self.assertTrue(self.bridge.wait_log(r"invalid_client"))
        # Nothing was sent, nothing dead: the event waits.
        self.assertEqual(self.sink.all_batches(), [])
        self.assertEqual(self.bridge.dlq("list"), [])
        n = len(self.sink.token_requests())
        time.sleep(0.5)
        self.assertEqual(len(self.sink.token_requests()), n)
        # Fixed on the Segment side, then a reload: delivered.
        self.sink.token_mode("ok")
        self.bridge.hup()
        self.assertFalse(self.sink.wait_ids(
            {self.bridge.message_id("acme", ev["id"])}, timeout=10))
        self.assertIsNone(wait_until(lambda: self.paused_entry() is None,
                                     timeout=5) and None)
        self.assert_no_secrets_logged()



class TestRefused400(TestRefused):
    STATUS = 400

    def test_400_pauses(self):
        self.check_pause(400)


class TestRefused401(TestRefused):
    STATUS = 401

    def test_401_pauses(self):
        self.check_pause(401)


class TestTokenRetries(OAuthCase):
    EXTRA = {"segment": {"retry": {"initial_ms": 50, "max_ms": 200}}}

    def before_start(self):
        self.sink.token_fail_next(1, 0)     # no answer at all
        self.sink.token_fail_next(2, 503)
        self.sink.token_fail_next(1, 429)
        self.sink.token_fail_next(1, 500)

    def test_network_errors_5xx_and_429_retried(self):
        self.deliver(2)
        statuses = [r.status for r in self.sink.token_requests()]
        self.assertEqual(statuses, [0, 503, 503, 429, 500, 200])
        self.assertIsNone(self.paused_entry())
        m = self.bridge.metrics()
        self.assertEqual(
            m['nudgebridge_oauth_token_requests_total{status="error"}'], 1)
        self.assertEqual(
            m['nudgebridge_oauth_token_requests_total{status="503"}'], 2)
        self.assertEqual(
            m['nudgebridge_oauth_token_requests_total{status="429"}'], 1)


class TestShutdownWithoutToken(OAuthCase):
    """No token (the endpoint answers 503) and nothing due: no drain wait."""

    def before_start(self):
        self.sink.token_mode("503")

    def test_sigterm_exits_without_waiting_for_a_token(self):
        self.assertTrue(self.sink.wait_token_requests(1))
        t0 = time.monotonic()
        self.assertEqual(self.bridge.terminate(), 0)
        self.assertLess(time.monotonic() - t0, 5.0,
                        "waited for the drain deadline with nothing due")


class TestClockSkew(OAuthCase):
    CLOCK_OFFSET_S = 3600.0   # the token endpoint is an hour ahead

    def test_iat_follows_the_endpoints_date(self):
        self.deliver(1)
        reqs = self.sink.token_requests()
        # The first assertion used our clock and was refused; the bridge
        # read the endpoint's Date and signed a corrected one at once.
        self.assertEqual([r.status for r in reqs], [400, 200])
        self.assertIn("iat", reqs[0].error)
        self.assertLess(abs(reqs[1].claims["iat"] - (time.time() + 3600)),
                        10)
        self.assertIsNone(self.paused_entry())


class TestCheckConfig(OAuthCase):

    def test_bad_key_named_without_its_content(self):
        path = os.path.join(self.bridge.dir, "segment-oauth.pem")
        with open(path, "wb") as f:
            f.write(b"-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYBYTES\n")
        r = self.bridge.cli("check-config", "--config",
                            self.bridge.config_path)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("sources[0].oauth.private_key_file", r.stderr)
        self.assertNotIn("TOPSECRETKEYBYTES", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
