# SPDX-License-Identifier: ISC
"""Runs the real nudgebridge binary for black-box tests.

``Bridge`` writes a configuration into a temporary folder (fresh whsec_
secrets, a write key, the Segment endpoint pointing at a ``sink.Sink``, an
admin token, short flush and retry intervals so tests run fast), starts
``$NB_BINARY serve --config ...``, waits for /healthz and keeps stderr in a
file.  It signs requests the way Nudgespot does (Standard Webhooks v1:
base64 of HMAC-SHA256 over ``{id}.{timestamp}.{body}``), talks to the admin
API and runs the command line.  Everything stays on 127.0.0.1; only the
Python standard library is used.

The store backend comes from the environment: ``NB_TEST_STORE=postgres``
(with ``NB_TEST_PG_DSN``, see tests/pg.sh) runs every Bridge on PostgreSQL
instead of a SQLite file.  Each Bridge then gets a fresh schema of its own
(``PGOPTIONS`` sets the ``search_path`` of every connection it and its
command line open; the schema is dropped by ``cleanup``), so tests stay as
independent as with one SQLite file per folder, and the lease is kept short
so a bridge restarted after ``kill -9`` takes its own rows back quickly.
A Bridge whose config names ``store.driver`` itself is left alone (the
PostgreSQL tests share one schema between instances).  Tests that only make
sense on one backend use ``sqlite_only(reason)``; without the DSN every
BridgeCase test of the postgres variant is skipped.
"""

import base64
import copy
import hashlib
import hmac
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
import unittest
import urllib.parse

from sink import Sink

BINARY = os.environ.get("NB_BINARY") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "nudgebridge")

WRITE_KEY = "wk_test_0123456789"

STORE = os.environ.get("NB_TEST_STORE", "sqlite").strip() or "sqlite"
PG_DSN = os.environ.get("NB_TEST_PG_DSN", "")
ON_POSTGRES = STORE == "postgres"
if STORE not in ("sqlite", "postgres"):
    raise RuntimeError("NB_TEST_STORE must be sqlite or postgres, not %r"
                       % STORE)

# On PostgreSQL an instance killed with -9 keeps its leases until they run
# out (the bridge leases for at least segment.timeout_ms + 5 s), so the
# postgres variant uses a shorter request timeout than the 10 s default.
PG_DEFAULTS = {"lease_s": 1, "timeout_ms": 2000}


# Tests (by unittest id, without the module's package) that test something
# only the SQLite store has; the postgres variant skips them with the reason.
# New tests can use @sqlite_only(reason) instead.
SQLITE_ONLY = {
    "test_ingest.TestStoreFull.test_503_when_full":
        "store.max_size_bytes is the SQLite file's cap; PostgreSQL has none "
        "(its 503s when the server is away: test_postgres.TestPgOutage)",
}


def sqlite_only(reason):
    """Skips a test (or class) when the suite runs on PostgreSQL."""
    return unittest.skipIf(ON_POSTGRES, "SQLite only: " + reason)


def psql(sql, dsn=None, timeout=30):
    """Runs sql with psql against dsn (default NB_TEST_PG_DSN)."""
    p = subprocess.run(["psql", dsn or PG_DSN, "-X", "-q", "-A", "-t", "-v",
                        "ON_ERROR_STOP=1", "-c", sql],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout,
                       env=dict(os.environ, PGOPTIONS=""))
    if p.returncode != 0:
        raise AssertionError("psql %r failed: %s" %
                             (sql, p.stderr.decode(errors="replace")))
    return p.stdout.decode(errors="replace")


def pg_new_schema(prefix="nb", dsn=None):
    """Creates an empty schema with a fresh name and returns the name."""
    name = "%s_%d_%s" % (prefix, os.getpid(), secrets.token_hex(4))
    psql("SET client_min_messages = warning; CREATE SCHEMA %s" % name, dsn)
    return name


def pg_drop_schema(name, dsn=None):
    psql("SET client_min_messages = warning; "
         "DROP SCHEMA IF EXISTS %s CASCADE" % name, dsn)


def pg_options(schema):
    """The PGOPTIONS value that puts a connection in schema."""
    return "-c search_path=%s" % schema


class PrivatePostgres:
    """A mixin (before BridgeCase) that gives a test a PostgreSQL cluster of
    its own: tests/pg.sh with a state file of the test's, so a test may stop
    and start its server (an outage) without breaking whatever else uses
    the shared one.  Sets self.dsn; self.pg(ARGS) runs tests/pg.sh ARGS."""

    PG_SH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                         "pg.sh")

    def setUp(self):
        self.pg_state = tempfile.mktemp(prefix="nb-private-pg-",
                                        suffix=".env")
        self.pg_env = dict(os.environ, NB_PG_STATE=self.pg_state)
        self.pg_env.pop("PGOPTIONS", None)
        p = self.pg("start")
        if p.returncode != 0:
            self.skipTest("tests/pg.sh cannot start a private cluster: %s"
                          % p.stderr[-500:])
        self.addCleanup(self.pg, "stop")
        self.dsn = p.stdout.strip().split("=", 1)[1]
        super().setUp()
        # Cleanups run last first: the server is up again for DROP SCHEMA.
        self.addCleanup(self.pg, "start-server")

    def pg(self, *args):
        return subprocess.run(["bash", self.PG_SH] + list(args),
                              stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=self.pg_env, timeout=60,
                              universal_newlines=True)


def free_port():
    """A port nobody listens on right now, on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def new_secret(nbytes=32):
    return "whsec_" + base64.b64encode(os.urandom(nbytes)).decode()


def sign(secret, msg_id, ts, body):
    """The 'v1,<base64>' entry for body under a whsec_ secret."""
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, ("%s.%s." % (msg_id, ts)).encode() + body,
                   hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def message_id(source, event_id, install):
    """The messageId of an event stored now: the install rule.

    "nb1-" and the hex SHA-256 of the install id padded with NUL bytes to
    64 (one SHA-256 block), the source name, a NUL byte and the event id.
    install is the store's install id (Bridge.install_id()).
    """
    if not re.fullmatch(r"[0-9a-f]{32}", install or ""):
        raise ValueError("not an install id: %r" % (install,))
    h = hashlib.sha256(install.encode().ljust(64, b"\0") + source.encode() +
                       b"\0" + event_id.encode())
    return "nb1-" + h.hexdigest()


def legacy_message_id(source, event_id):
    """The messageId of a row stored before its store had an install id."""
    h = hashlib.sha256(source.encode() + b"\0" + event_id.encode())
    return "nb-" + h.hexdigest()


def new_id(prefix="evt"):
    return "%s_%s" % (prefix, secrets.token_hex(8))


def event(id=None, type="email.delivered", uid="u_1",
          email="ada@example.com", occurred_at="2026-11-28T09:59:58.123Z",
          **extra):
    """A valid Nudgespot event; keyword arguments add or replace fields."""
    ev = {"id": id or new_id(), "type": type, "occurred_at": occurred_at,
          "subscriber": {}}
    if uid is not None:
        ev["subscriber"]["uid"] = uid
    if email is not None:
        ev["subscriber"]["email"] = email
    ev.update(extra)
    return ev


def deep_merge(base, over):
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            deep_merge(base[k], v)
        else:
            base[k] = v
    return base


class Response:
    def __init__(self, status, headers, raw):
        self.status = status
        self.headers = headers
        self.raw = raw
        try:
            self.json = json.loads(raw) if raw else None
        except ValueError:
            self.json = None

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def error(self):
        return self.json.get("error") if isinstance(self.json, dict) else None

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.raw[:300])


def http_request(port, method, path, body=None, headers=None, timeout=15.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        h = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in h.items():
            conn.putheader(k, v)
        if body is not None or method in ("POST", "PUT"):
            conn.putheader("Content-Length", str(len(body or b"")))
        conn.endheaders()
        if body:
            conn.send(body)
        r = conn.getresponse()
        raw = r.read()
        return Response(r.status, r.getheaders(), raw)
    finally:
        conn.close()


class Bridge:
    """One nudgebridge process with its own folder, config and database."""

    def __init__(self, sink, sources=None, config=None, admin_token=True):
        self.sink = sink
        self.dir = tempfile.mkdtemp(prefix="nb-it-")
        self.port = free_port()
        self.admin_port = free_port()
        self.token = secrets.token_hex(16) if admin_token else None
        if sources is None:
            sources = [{"name": "acme"}]
        self.secrets = {}
        srcs = []
        for s in sources:
            s = dict(s)
            if "signing_secrets" not in s and "signing_secrets_env" not in s:
                s["signing_secrets"] = [new_secret()]
            s.setdefault("write_key", WRITE_KEY)
            self.secrets[s["name"]] = list(s.get("signing_secrets", []))
            srcs.append(s)
        self.config = {
            "listen": "127.0.0.1:%d" % self.port,
            # Several HTTP threads whatever the machine's default, so the
            # suite always runs the multi-thread front end.
            "http_threads": 2,
            "admin": {"listen": "127.0.0.1:%d" % self.admin_port},
            "store": {"driver": "sqlite", "path": "nb.db"},
            "segment": {
                "endpoint": sink.url if sink else "http://127.0.0.1:9",
                "flush_interval_ms": 50,
                "retry": {"initial_ms": 50, "max_ms": 500},
            },
            "sources": srcs,
        }
        if self.token:
            self.config["admin"]["token"] = self.token
        self.pg_schema = None
        own_driver = bool(config) and isinstance(config.get("store"), dict) \
            and "driver" in config["store"]
        if ON_POSTGRES and not own_driver:
            if not PG_DSN:
                raise unittest.SkipTest("NB_TEST_STORE=postgres needs "
                                        "NB_TEST_PG_DSN (see tests/pg.sh)")
            self.pg_schema = pg_new_schema()
            self.config["store"] = {"driver": "postgres", "dsn": PG_DSN,
                                    "lease_s": PG_DEFAULTS["lease_s"]}
            self.config["segment"]["timeout_ms"] = PG_DEFAULTS["timeout_ms"]
        if config:
            deep_merge(self.config, copy.deepcopy(config))
        self.config_path = os.path.join(self.dir, "nudgebridge.json")
        self.write_config()
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self._stderr = None
        self.env = dict(os.environ)
        if self.pg_schema:
            self.env["PGOPTIONS"] = pg_options(self.pg_schema)

    # -- process --------------------------------------------------------

    def write_config(self, config=None, raw=None):
        with open(self.config_path + ".tmp", "w") as f:
            if raw is not None:
                f.write(raw)
            else:
                json.dump(config or self.config, f, indent=2)
        os.replace(self.config_path + ".tmp", self.config_path)

    def start(self, wait=True, timeout=10.0):
        # A port free_port() chose may have been taken since as the
        # ephemeral port of someone's outgoing connection (this machine's
        # PostgreSQL clients, say): then choose again.
        for attempt in range(3):
            self._stderr = open(self.stderr_path, "ab")
            self.proc = subprocess.Popen(
                [BINARY, "serve", "--config", self.config_path],
                stdin=subprocess.DEVNULL, stdout=self._stderr,
                stderr=self._stderr, cwd=self.dir, env=self.env)
            if not wait:
                return self
            try:
                self.wait_healthy(timeout)
                return self
            except AssertionError:
                if attempt == 2 or not self._port_was_taken():
                    raise
                self._stderr.close()

    def _port_was_taken(self):
        """True when the bridge exited because one of the ports the
        harness chose was in use, and new ones were chosen."""
        if self.proc.poll() is None or "Address already in use" not in \
                self.log():
            return False
        mine = ("127.0.0.1:%d" % self.port,
                "127.0.0.1:%d" % self.admin_port)
        admin = self.config.get("admin", {})
        if (self.config.get("listen"), admin.get("listen")) != mine:
            return False
        self.port, self.admin_port = free_port(), free_port()
        self.config["listen"] = "127.0.0.1:%d" % self.port
        admin["listen"] = "127.0.0.1:%d" % self.admin_port
        self.write_config()
        return True

    def wait_healthy(self, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(
                    "nudgebridge exited with %d at start-up:\n%s" %
                    (self.proc.returncode, self.log()))
            try:
                r = self.get("/healthz", timeout=1.0)
                if r.status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("nudgebridge not healthy after %.0fs:\n%s" %
                             (timeout, self.log()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self._close_log()

    def terminate(self, timeout=30.0, sig=signal.SIGTERM):
        """Sends SIGTERM (or sig), waits, returns the exit status."""
        if not self.alive():
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = "timeout"
        self._close_log()
        return rc

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def restart(self, **kw):
        self.kill9()
        return self.start(**kw)

    def stop(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)
        self._close_log()

    def cleanup(self):
        self.stop()
        if os.environ.get("NB_KEEP_TMP"):
            return
        if self.pg_schema:
            try:
                pg_drop_schema(self.pg_schema)
            except (AssertionError, OSError, subprocess.SubprocessError):
                pass    # the server may be gone; the schema is harmless
            self.pg_schema = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def _close_log(self):
        if self._stderr:
            self._stderr.close()
            self._stderr = None

    def log(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    # -- the store ------------------------------------------------------

    def store_query(self, sql):
        """The first column of the first row sql returns, read from the
        bridge's store itself (its SQLite file, or its PostgreSQL schema
        with the bridge's own PGOPTIONS), None when there is no row."""
        store = self.config.get("store") or {}
        if store.get("driver", "sqlite") == "sqlite":
            path = os.path.join(self.dir, store.get("path", "nb.db"))
            db = sqlite3.connect(path, timeout=10)
            try:
                row = db.execute(sql).fetchone()
            finally:
                db.close()
            return row[0] if row else None
        p = subprocess.run(["psql", store["dsn"], "-X", "-q", "-A", "-t",
                            "-v", "ON_ERROR_STOP=1", "-c", sql],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30,
                           env=dict(self.env, PGOPTIONS=self.env.get(
                               "PGOPTIONS", "")))
        if p.returncode != 0:
            raise AssertionError("psql %r failed: %s" %
                                 (sql, p.stderr.decode(errors="replace")))
        out = p.stdout.decode().strip()
        return out.splitlines()[0] if out else None

    def install_id(self):
        """The store's install id (the store exists once the bridge has
        started), read from the store."""
        if getattr(self, "_install", None) is None:
            self._install = self.store_query(
                "SELECT install_id FROM install WHERE id = 1")
            if self._install is None:
                raise AssertionError("the store has no install id yet")
        return self._install

    def message_id(self, source, event_id):
        """The messageId this bridge's store gives an event stored now."""
        return message_id(source, event_id, self.install_id())

    # -- main listener --------------------------------------------------

    def get(self, path, timeout=15.0):
        return http_request(self.port, "GET", path, timeout=timeout)

    def request(self, method, path, body=None, headers=None):
        return http_request(self.port, method, path, body, headers)

    def signed_headers(self, source, body, id=None, ts=None, secret=None,
                       prefix="webhook-"):
        msg_id = id or new_id("msg")
        ts = int(time.time()) if ts is None else ts
        secret = secret or self.secrets[source][0]
        return {
            prefix + "id": msg_id,
            prefix + "timestamp": str(ts),
            prefix + "signature": sign(secret, msg_id, ts, body),
        }

    def post(self, source, body, headers=None, sign=True, id=None, ts=None,
             secret=None, content_type="application/json", method="POST",
             prefix="webhook-", path=None):
        """Posts body (bytes, or anything JSON) to /v1/webhooks/source."""
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        h = {}
        if content_type is not None:
            h["Content-Type"] = content_type
        if sign:
            h.update(self.signed_headers(source, body, id, ts, secret,
                                         prefix))
        h.update(headers or {})
        return http_request(self.port, method,
                            path or "/v1/webhooks/" + source, body, h)

    def metrics(self):
        """GET /metrics as {sample name with labels: value}."""
        r = self.get("/metrics")
        out = {}
        for line in r.raw.decode().splitlines():
            if not line or line.startswith("#"):
                continue
            parts = line.rsplit(" ", 1)
            if len(parts) != 2:
                continue
            try:
                out[parts[0]] = float(parts[1])
            except ValueError:
                pass
        return out

    # -- admin API ------------------------------------------------------

    def admin(self, method, path, body=None, token=None, auth=True):
        h = {}
        if auth:
            h["Authorization"] = "Bearer " + (token or self.token)
        if body is not None:
            h["Content-Type"] = "application/json"
        return http_request(self.admin_port, method, path, body, h)

    # -- command line ---------------------------------------------------

    def cli(self, *args, input=None, timeout=30.0):
        return run_cli(*args, input=input, timeout=timeout, cwd=self.dir,
                       env=self.env)

    def dlq(self, *args):
        """`nudgebridge dlq ARGS --config FILE --json` as parsed JSON."""
        r = self.cli("dlq", *args, "--config", self.config_path, "--json")
        if r.returncode != 0:
            raise AssertionError("dlq %s failed (%d): %s%s" %
                                 (" ".join(args), r.returncode, r.stdout,
                                  r.stderr))
        return json.loads(r.stdout)


def run_cli(*args, input=None, timeout=30.0, cwd=None, env=None):
    if isinstance(input, str):
        input = input.encode()
    p = subprocess.run([BINARY] + list(args), input=input,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, cwd=cwd, env=env)
    p.stdout = p.stdout.decode("utf-8", "replace")
    p.stderr = p.stderr.decode("utf-8", "replace")
    return p


_version = None


def binary_version():
    """The release the binary reports (`nudgebridge version`)."""
    global _version
    if _version is None:
        p = run_cli("version")
        m = re.search(r"\d+\.\d+\.\d+[^\s]*", p.stdout)
        _version = m.group(0) if m else p.stdout.strip()
    return _version


def wait_until(pred, timeout=10.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(interval)


class BridgeCase(unittest.TestCase):
    """A test case with a fresh sink and a started bridge per test.

    Subclasses override SOURCES / CONFIG, or call self.make_bridge() to get
    more.
    """

    SOURCES = None
    CONFIG = None
    START = True

    def setUp(self):
        if ON_POSTGRES and not PG_DSN:
            self.skipTest("NB_TEST_STORE=postgres needs NB_TEST_PG_DSN "
                          "(see tests/pg.sh)")
        if ON_POSTGRES and self.id() in SQLITE_ONLY:
            self.skipTest("SQLite only: " + SQLITE_ONLY[self.id()])
        self.sink = Sink(WRITE_KEY)
        self.addCleanup(self.sink.close)
        if self.START:
            self.bridge = self.make_bridge(self.SOURCES, self.CONFIG)

    def mid(self, source, event_id):
        """The messageId the case's bridge gives an event stored now."""
        return self.bridge.message_id(source, event_id)

    def make_bridge(self, sources=None, config=None, start=True, **kw):
        b = Bridge(self.sink, sources, config, **kw)
        self.addCleanup(b.cleanup)
        self.addCleanup(self._dump_log_on_failure, b)
        self.addCleanup(self._check_sanitizers, b)
        if start:
            b.start()
        return b

    SANITIZER_REPORT = re.compile(
        r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:)")

    def _check_sanitizers(self, b):
        """Fails the test when the bridge logged a sanitizer report."""
        m = self.SANITIZER_REPORT.search(b.log())
        if m:
            log = b.log()
            raise AssertionError("sanitizer report in the bridge's "
                                 "stderr:\n%s" % log[max(0, m.start() - 200):
                                                     m.start() + 4000])

    def _failed(self):
        """Whether this test has failed so far. Read from the result:
        inside a cleanup, unittest's _outcome.success is always True (each
        cleanup runs in a test part of its own)."""
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(t is self for t, _ in result.errors + result.failures)

    def _dump_log_on_failure(self, b):
        if self._failed() or os.environ.get("NB_SHOW_LOG"):
            print("\n--- nudgebridge log (%s) ---\n%s--- end ---" %
                  (self.id(), b.log()[-6000:]))

    def assertStatus(self, r, status, error=None):
        self.assertEqual(r.status, status, r)
        self.assertIsInstance(r.json, dict, "body is not a JSON object: %r"
                              % (r.raw,))
        if error is not None:
            self.assertEqual(r.json.get("error"), error, r)
            self.assertIsInstance(r.json.get("message"), str, r)

    def assertCounts(self, r, accepted, duplicates, quarantined):
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json, {"accepted": accepted,
                                  "duplicates": duplicates,
                                  "quarantined": quarantined})


def qs(**params):
    return urllib.parse.urlencode(params)
