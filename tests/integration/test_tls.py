# SPDX-License-Identifier: ISC
"""Native TLS on the main listener (docs/security.md, "Compromised network").

Each test makes a throw-away self-signed certificate for 127.0.0.1 with the
`openssl` command line, starts the bridge with `tls` pointing at it, and
talks to it with Python's ssl module verifying against exactly that
certificate: a signed webhook over https gets its 200, plain HTTP on the
same port gets nothing, old protocol versions are refused, a SIGHUP with a
new certificate serves the new one to new connections, and a key that does
not belong to the certificate is an error naming tls.key_file.
"""

import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import unittest

from harness import BridgeCase, event, run_cli, wait_until

OPENSSL = shutil.which("openssl")


def make_cert(dir, name, cn="127.0.0.1"):
    """A self-signed P-256 certificate for 127.0.0.1; (cert, key) paths."""
    cert = os.path.join(dir, name + ".crt")
    key = os.path.join(dir, name + ".key")
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn,
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return cert, key


def der(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def client_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def https(port, ctx, method, path, body=None, headers=None, timeout=10.0):
    """One request; (status, parsed JSON or raw body, peer cert DER, version)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx,
                                       timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        raw = r.read()
        peer = conn.sock.getpeercert(binary_form=True)
        version = conn.sock.version()
        try:
            data = json.loads(raw)
        except ValueError:
            data = raw
        return r.status, data, peer, version
    finally:
        conn.close()


@unittest.skipIf(OPENSSL is None, "the openssl command is not installed")
class TestTLS(BridgeCase):

    START = False

    def setUp(self):
        super().setUp()
        self.bridge = self.make_bridge(start=False)
        self.cert, self.key = make_cert(self.bridge.dir, "one")
        self.bridge.config["tls"] = {"cert_file": "one.crt",
                                     "key_file": "one.key"}
        self.bridge.write_config()
        self.bridge.start(wait=False)
        self.ctx = client_context(self.cert)
        self.wait_tls_healthy()

    def wait_tls_healthy(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.bridge.alive():
                self.fail("bridge exited:\n" + self.bridge.log())
            try:
                status, _, _, _ = https(self.bridge.port, self.ctx, "GET",
                                        "/healthz", timeout=1.0)
                if status == 200:
                    return
            except (OSError, http.client.HTTPException) as e:
                last = e
            time.sleep(0.05)
        self.fail("no https /healthz after %.0fs (%r):\n%s" %
                  (timeout, last, self.bridge.log()))

    def signed_post(self, ctx, events):
        body = json.dumps(events).encode()
        h = {"Content-Type": "application/json"}
        h.update(self.bridge.signed_headers("acme", body))
        return https(self.bridge.port, ctx, "POST", "/v1/webhooks/acme",
                     body, h)

    def test_signed_webhook_over_https(self):
        status, data, peer, version = self.signed_post(self.ctx, [event()])
        self.assertEqual(status, 200, data)
        self.assertEqual(data, {"accepted": 1, "duplicates": 0,
                                "quarantined": 0})
        self.assertEqual(peer, der(self.cert))
        # TLS 1.3 is preferred whenever the client speaks it.
        self.assertEqual(version, "TLSv1.3")
        self.assertRegex(self.bridge.log(), r"msg=listening .*tls=on")

    def test_keep_alive_over_tls(self):
        conn = http.client.HTTPSConnection("127.0.0.1", self.bridge.port,
                                           context=self.ctx, timeout=10)
        try:
            for _ in range(3):
                conn.request("GET", "/healthz")
                r = conn.getresponse()
                self.assertEqual(r.status, 200)
                r.read()
        finally:
            conn.close()

    def test_tls12_still_accepted(self):
        ctx = client_context(self.cert)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        status, _, _, version = https(self.bridge.port, ctx, "GET",
                                      "/healthz")
        self.assertEqual((status, version), (200, "TLSv1.2"))

    def test_plain_http_to_tls_port_fails(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.bridge.port,
                                          timeout=5)
        with self.assertRaises((http.client.HTTPException, OSError)):
            try:
                conn.request("GET", "/healthz")
                conn.getresponse().read()
            finally:
                conn.close()
        # And the listener is still fine afterwards.
        self.assertEqual(https(self.bridge.port, self.ctx, "GET",
                               "/healthz")[0], 200)

    def test_old_protocols_refused(self):
        # The server must answer a TLS 1.1 hello with a protocol_version
        # alert: the client offers 1.1 only, at any security level.
        r = subprocess.run(
            [OPENSSL, "s_client", "-connect",
             "127.0.0.1:%d" % self.bridge.port, "-tls1_1",
             "-cipher", "DEFAULT:@SECLEVEL=0"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=10)
        out = r.stdout.decode("utf-8", "replace")
        self.assertNotEqual(r.returncode, 0, out)
        if "no protocols available" in out:
            self.skipTest("this openssl cannot offer TLS 1.1 at all")
        self.assertRegex(out, r"alert protocol version|wrong version",
                         out)

    def test_reload_serves_new_certificate(self):
        self.assertEqual(self.signed_post(self.ctx, [event()])[2],
                         der(self.cert))
        cert2, key2 = make_cert(self.bridge.dir, "two", cn="localhost")
        self.assertNotEqual(der(cert2), der(self.cert))
        self.bridge.config["tls"] = {"cert_file": "two.crt",
                                     "key_file": "two.key"}
        self.bridge.write_config()
        self.bridge.hup()
        self.assertTrue(self.bridge.wait_log(r"msg=\"config reloaded\""),
                        self.bridge.log())
        ctx2 = client_context(cert2)
        status, data, peer, _ = self.signed_post(ctx2, [event()])
        self.assertEqual(status, 200, data)
        self.assertEqual(peer, der(cert2))
        # A client that only trusts the old certificate is now refused.
        with self.assertRaises(ssl.SSLCertVerificationError):
            https(self.bridge.port, self.ctx, "GET", "/healthz")

    def test_reload_with_bad_key_keeps_old_certificate(self):
        cert2, _ = make_cert(self.bridge.dir, "two")
        _, key3 = make_cert(self.bridge.dir, "three")
        self.bridge.config["tls"] = {"cert_file": cert2, "key_file": key3}
        self.bridge.write_config()
        self.bridge.hup()
        m = self.bridge.wait_log(r"config reload refused.*tls\.key_file")
        self.assertTrue(m, self.bridge.log())
        status, _, peer, _ = https(self.bridge.port, self.ctx, "GET",
                                   "/healthz")
        self.assertEqual((status, peer), (200, der(self.cert)))

    def test_check_config_names_the_bad_key(self):
        b = self.bridge
        cert2, _ = make_cert(b.dir, "two")
        _, key3 = make_cert(b.dir, "three")
        cases = [
            ({"cert_file": cert2, "key_file": key3}, "tls.key_file"),
            ({"cert_file": "missing.crt", "key_file": key3},
             "tls.cert_file"),
            ({"cert_file": cert2, "key_file": "missing.key"},
             "tls.key_file"),
            ({"cert_file": key3, "key_file": key3}, "tls.cert_file"),
            ({"cert_file": cert2}, "tls.key_file"),
            ({"cert_file": cert2, "key_file": key3, "x": 1}, "tls.x"),
        ]
        for tls, key in cases:
            with self.subTest(tls=tls):
                cfg = dict(b.config)
                cfg["tls"] = tls
                path = os.path.join(b.dir, "bad.json")
                with open(path, "w") as f:
                    json.dump(cfg, f)
                r = run_cli("check-config", "--config", path, cwd=b.dir)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn(key + ":", r.stderr)
                # Never a word of the key itself.
                with open(key3) as f:
                    pem = f.read()
                body = "".join(pem.splitlines()[1:-1])
                self.assertNotIn(body[:40], r.stderr)


if __name__ == "__main__":
    unittest.main()
