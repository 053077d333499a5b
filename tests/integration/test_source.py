# SPDX-License-Identifier: ISC
"""Onboarding (issue 8): `nudgebridge source add|rotate|retire|list`.

A running bridge's configuration file is changed with the commands, the
bridge gets SIGHUP, and requests signed with exactly what the commands
printed are accepted (and keys retired are refused).
"""

import datetime
import hashlib
import json
import os
import re
import stat
import subprocess
import unittest

from harness import (BINARY, WRITE_KEY, BridgeCase, event, run_cli, sign,
                     wait_until)


def printed(out, label):
    m = re.search(r"^\s*%s:\s+(\S+)\s*$" % re.escape(label), out, re.M)
    return m.group(1) if m else None


def read(path):
    with open(path) as f:
        return f.read()


def fingerprint(key):
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class TestSource(BridgeCase):

    START = False

    def setUp(self):
        super().setUp()
        self.bridge = self.make_bridge(start=False)
        # The daemon has the write key; the operator's shell need not.
        self.bridge.env["NB_TEST_BETA_WK"] = WRITE_KEY
        self.bridge.start()
        os.chmod(self.bridge.config_path, 0o640)

    def source(self, *args):
        env = dict(os.environ)
        env.pop("NB_TEST_BETA_WK", None)
        return run_cli("source", *args, "--config", self.bridge.config_path,
                       env=env)

    def reload(self):
        n = len(re.findall("config reloaded", self.bridge.log()))
        self.bridge.hup()
        self.assertTrue(self.bridge.wait_log(
            r"(?s)(config reloaded.*){%d}" % (n + 1), 5), self.bridge.log())

    def post(self, source, secret=None, headers=None):
        ev = event()
        body = json.dumps([ev]).encode()
        if headers is None:
            return ev, self.bridge.post(source, body, secret=secret)
        h = {"Content-Type": "application/json"}
        h.update(headers)
        return ev, self.bridge.request("POST", "/v1/webhooks/" + source,
                                       body, h)

    def test_add_rotate_retire(self):
        r = self.source("add", "beta", "--write-key-env", "NB_TEST_BETA_WK")
        self.assertEqual(r.returncode, 0, r.stderr)
        url = printed(r.stdout, "Webhook URL")
        secret = printed(r.stdout, "Signing secret")
        self.assertEqual(url, "http://127.0.0.1:%d/v1/webhooks/beta" %
                         self.bridge.port)
        self.assertTrue(secret.startswith("whsec_"), r.stdout)
        self.assertEqual(r.stderr, "")
        # Atomic replace kept the mode and left no temporary file.
        self.assertEqual(stat.S_IMODE(os.stat(
            self.bridge.config_path).st_mode), 0o640)
        self.assertEqual(sorted(f for f in os.listdir(self.bridge.dir)
                                if f.startswith("nudgebridge.json")),
                         ["nudgebridge.json"])
        cfg = json.loads(read(self.bridge.config_path))
        self.assertEqual([s["name"] for s in cfg["sources"]],
                         ["acme", "beta"])
        self.assertEqual(cfg["sources"][0], self.bridge.config["sources"][0])

        # Not yet: the bridge has not reloaded.
        _, resp = self.post("beta", secret=secret)
        self.assertStatus(resp, 404, "unknown_source")
        self.reload()
        ev, resp = self.post("beta", secret=secret)
        self.assertCounts(resp, 1, 0, 0)
        self.assertEqual(self.sink.wait_count(1), 1)
        # The old source still works.
        self.assertCounts(self.post("acme")[1], 1, 0, 0)

        # rotate: both secrets valid.
        r = self.source("rotate", "beta")
        self.assertEqual(r.returncode, 0, r.stderr)
        new = printed(r.stdout, "Signing secret")
        self.assertTrue(new.startswith("whsec_") and new != secret)
        self.reload()
        self.assertCounts(self.post("beta", secret=secret)[1], 1, 0, 0)
        self.assertCounts(self.post("beta", secret=new)[1], 1, 0, 0)

        # list: fingerprints, never secrets, and each key's last use
        # (the bridge writes it to the store every few seconds).
        def listed():
            r = self.source("list")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertNotIn("whsec_", r.stdout)
            self.assertEqual(r.stdout.splitlines()[0].split(),
                             ["SOURCE", "ID", "KIND", "FINGERPRINT",
                              "LAST_USED"])
            rows = [l.split() for l in r.stdout.splitlines()[1:]]
            return [x for x in rows if x[0] == "beta"]
        def used():
            rows = listed()
            return rows if rows and all(x[4] != "never" for x in rows) \
                else None
        beta = wait_until(used)
        self.assertTrue(beta, listed())
        self.assertEqual([x[:4] for x in beta],
                         [["beta", "0", "secret", fingerprint(secret)],
                          ["beta", "1", "secret", fingerprint(new)]])
        for x in beta:
            used = datetime.datetime.strptime(x[4], "%Y-%m-%dT%H:%M:%S.%fZ")
            age = (datetime.datetime.utcnow() - used).total_seconds()
            self.assertLess(abs(age), 60, x)

        # retire the old one by fingerprint: refused while it was used in
        # the last 24 hours, saying when; then with --force.  It is
        # refused by the bridge after SIGHUP.
        r = self.source("retire", "beta", "--secret-id", fingerprint(secret))
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("verified a request at " + beta[0][4], r.stderr)
        self.assertIn("--force", r.stderr)
        self.assertEqual(json.loads(read(self.bridge.config_path))
                         ["sources"][1]["signing_secrets"], [secret, new])
        r = self.source("retire", "beta", "--secret-id", fingerprint(secret),
                        "--force")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.reload()
        _, resp = self.post("beta", secret=secret)
        self.assertStatus(resp, 401, "signature_mismatch")
        self.assertCounts(self.post("beta", secret=new)[1], 1, 0, 0)
        # The last key cannot be retired.
        r = self.source("retire", "beta", "--secret-id", "0")
        self.assertEqual(r.returncode, 2)
        self.assertIn("last key", r.stderr)
        # A key that never verified a request goes without --force.
        r = self.source("rotate", "beta")
        self.assertEqual(r.returncode, 0, r.stderr)
        unused = printed(r.stdout, "Signing secret")
        r = self.source("retire", "beta", "--secret-id", fingerprint(unused))
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("never verified a request", r.stderr)
        self.assertEqual(json.loads(read(self.bridge.config_path))
                         ["sources"][1]["signing_secrets"], [new])

        # Secrets never reach the bridge's log.
        for s in (secret, new, unused):
            self.assertNotIn(s, self.bridge.log())

    def test_add_ed25519_public_url(self):
        r = self.source("add", "gamma", "--write-key-env", "NB_TEST_BETA_WK",
                        "--ed25519", "--region", "us", "--public-url",
                        "https://hooks.example.com/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(printed(r.stdout, "Webhook URL"),
                         "https://hooks.example.com/v1/webhooks/gamma")
        sk = printed(r.stdout, "Signing key")
        self.assertTrue(sk.startswith("whsk_"), r.stdout)
        text = read(self.bridge.config_path)
        self.assertNotIn(sk, text)
        self.assertIn("whpk_", text)
        self.reload()
        body = json.dumps([event()]).encode()
        p = run_cli("sign", "--private-key", sk, input=body)
        self.assertEqual(p.returncode, 0, p.stderr)
        h = dict(l.split(": ", 1) for l in p.stdout.splitlines())
        h["Content-Type"] = "application/json"
        resp = self.bridge.request("POST", "/v1/webhooks/gamma", body, h)
        self.assertCounts(resp, 1, 0, 0)

    def test_add_with_oauth(self):
        try:
            from test_oauth import key_pair
            private, _ = key_pair()
        except (ImportError, TypeError, AttributeError):
            self.skipTest("python3-cryptography is not installed")
        before = read(self.bridge.config_path)
        # The key file must exist and hold a key: else nothing changes.
        r = self.source("add", "delta", "--write-key-env", "NB_TEST_BETA_WK",
                        "--oauth-client-id", "cid", "--oauth-key-id", "kid",
                        "--oauth-key-file", "segment-oauth.pem")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("sources[1].oauth.private_key_file", r.stderr)
        self.assertEqual(read(self.bridge.config_path), before)
        path = os.path.join(self.bridge.dir, "segment-oauth.pem")
        with open(path, "wb") as f:
            f.write(private)
        os.chmod(path, 0o600)
        r = self.source("add", "delta", "--write-key-env", "NB_TEST_BETA_WK",
                        "--oauth-client-id", "cid", "--oauth-key-id", "kid",
                        "--oauth-key-file", "segment-oauth.pem")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Segment OAuth:", r.stdout)
        self.assertIn("https://oauth2.segment.io/token", r.stdout)
        # From a variable the operator's shell does not have (the daemon's
        # environment will): checked with a throw-away key.
        r = self.source("add", "eps", "--write-key-env", "NB_TEST_BETA_WK",
                        "--region", "eu", "--oauth-client-id", "cid2",
                        "--oauth-key-id", "kid2", "--oauth-key-env",
                        "NB_TEST_OAUTH_KEY")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("https://oauth2.eu1.segmentapis.com/token", r.stdout)
        self.assertIn("NB_TEST_OAUTH_KEY (not set in this shell)", r.stdout)
        cfg = json.loads(read(self.bridge.config_path))
        self.assertEqual(cfg["sources"][1]["oauth"],
                         {"client_id": "cid", "key_id": "kid",
                          "private_key_file": "segment-oauth.pem"})
        self.assertEqual(cfg["sources"][2]["oauth"],
                         {"client_id": "cid2", "key_id": "kid2",
                          "private_key_env": "NB_TEST_OAUTH_KEY"})
        self.assertNotIn("PRIVATE KEY", read(self.bridge.config_path))
        self.assertNotIn("PRIVATE KEY", r.stdout + r.stderr)
        # Half an OAuth setup is refused.
        r = self.source("add", "zeta", "--write-key-env", "X",
                        "--oauth-client-id", "cid")
        self.assertEqual(r.returncode, 2)
        self.assertIn("--oauth-key-id", r.stderr)

    def test_refusals_change_nothing(self):
        before = read(self.bridge.config_path)
        for args, code in ((("add", "acme", "--write-key-env", "X"), 2),
                           (("add", "Bad!", "--write-key-env", "X"), 2),
                           (("add", "delta"), 2),
                           (("add", "delta", "--write-key-env", "X",
                             "--region", "mars"), 2),
                           (("rotate", "nope"), 2),
                           (("retire", "acme", "--secret-id", "9"), 2),
                           (("frobnicate",), 2)):
            r = self.source(*args)
            self.assertEqual(r.returncode, code, (args, r.stdout, r.stderr))
            self.assertEqual(r.stdout, "", args)
        self.assertEqual(read(self.bridge.config_path), before)
        # A file that would not load is refused before it replaces anything.
        cfg = json.loads(before)
        cfg["sources"][0]["signing_secrets_env"] = "NB_TEST_UNSET_VAR"
        self.bridge.write_config(cfg)
        broken = read(self.bridge.config_path)
        r = self.source("add", "delta", "--write-key-env", "X")
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn("NB_TEST_UNSET_VAR", r.stderr)
        self.assertEqual(read(self.bridge.config_path), broken)


class TestSourceEdits(BridgeCase):
    """Editing a configuration that is a symlink, or two edits at once."""

    START = False

    def source(self, config, *args):
        return run_cli("source", *args, "--config", config)

    def test_symlinked_config_stays_a_link(self):
        b = self.make_bridge(start=False)
        real_dir = os.path.join(b.dir, "etc")
        os.mkdir(real_dir)
        real = os.path.join(real_dir, "nudgebridge.json")
        os.rename(b.config_path, real)
        os.symlink(os.path.join("etc", "nudgebridge.json"), b.config_path)
        b.env["NB_TEST_BETA_WK"] = WRITE_KEY
        b.start()
        for args in (("add", "beta", "--write-key-env", "NB_TEST_BETA_WK"),
                     ("rotate", "acme")):
            r = self.source(b.config_path, *args)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(os.path.islink(b.config_path),
                            "the link was replaced by a file")
        self.assertEqual(sorted(os.listdir(real_dir)), ["nb.db",
                                                        "nb.db-shm",
                                                        "nb.db-wal",
                                                        "nudgebridge.json"])
        secret = printed(r.stdout, "Signing secret")
        cfg = json.loads(read(real))
        self.assertEqual([s["name"] for s in cfg["sources"]],
                         ["acme", "beta"])
        self.assertIn(secret, cfg["sources"][0]["signing_secrets"])
        # The daemon reads the link's target: it sees the new key.
        n = len(re.findall("config reloaded", b.log()))
        b.hup()
        self.assertTrue(b.wait_log(r"(?s)(config reloaded.*){%d}" % (n + 1),
                                   5), b.log())
        r = b.post("acme", [event()], secret=secret)
        self.assertCounts(r, 1, 0, 0)

    def test_concurrent_edits_keep_every_key(self):
        """Edits at once are serialized: none loses another's key."""
        b = self.make_bridge(start=False)
        n = 12
        procs = [subprocess.Popen(
            [BINARY, "source", "rotate", "acme", "--config", b.config_path],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(n)]
        printed_keys = []
        for p in procs:
            out, err = p.communicate(timeout=60)
            self.assertEqual(p.returncode, 0, err)
            printed_keys.append(printed(out, "Signing secret"))
        kept = json.loads(read(b.config_path))["sources"][0][
            "signing_secrets"]
        self.assertEqual(len(kept), 1 + n, "keys were lost")
        self.assertEqual(sorted(kept[1:]), sorted(printed_keys))
        self.assertEqual(sorted(f for f in os.listdir(b.dir)
                                if f.startswith("nudgebridge.json")),
                         ["nudgebridge.json"])


if __name__ == "__main__":
    unittest.main()
