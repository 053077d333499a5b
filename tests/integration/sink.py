# SPDX-License-Identifier: ISC
"""A Segment stand-in for the integration tests.

It listens on 127.0.0.1 (a free port), records every POST /v1/batch (the
Authorization header, the body as received and inflated when it came with
Content-Encoding: gzip, the parsed body, the time it arrived and the
answer it got) and checks HTTP Basic auth against the write key it expects
(401 otherwise).  Tests program its answers:

* ``mode = "ok"`` (200), ``"fail"`` (500), ``"429"`` (429 with Retry-After),
  ``"429reset"`` (429 with X-RateLimit-Reset only), ``"401"`` (401 whatever
  the key), ``"hang"`` (sleeps ``hang_s`` seconds and then answers 500),
  ``"slow"`` (sleeps ``hang_s`` seconds, then answers as in ``"ok"``);
* ``fail_next(n, status)`` answers the next n requests with status, then
  goes back to ``mode``;
* ``poison`` is a set of messageIds or event names: a batch containing one of
  them gets 400, as Segment does for a malformed message.

``enable_oauth()`` turns it into an OAuth-protected Segment: POST /token is
a token endpoint that verifies the client assertion (RS256 signature with
the public key, kid, iss, sub, aud, exp - iat <= 60, iat against its own
clock, a jti never seen before, the form fields) and answers tokens with a
short expires_in; batches then need a live Bearer token and the write key
in the body's writeKey.  Its clock may be set off ours (``clock_offset_s``)
to play a skewed server, and its answers are programmed like the batch
API's (``token_mode``, ``token_fail_next``; status 0 closes the connection
without an answer).

Only the standard library is used, except for the OAuth verification
(Debian's python3-cryptography).
"""

import base64
import email.utils
import gzip
import json
import secrets
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Batch:
    """One request the sink received; raw is the body after inflating."""

    def __init__(self, auth, body, raw, at, status, wire=None, encoding=None):
        self.auth = auth
        self.body = body
        self.raw = raw
        self.at = at
        self.status = status
        self.wire = raw if wire is None else wire
        self.encoding = encoding

    @property
    def messages(self):
        if isinstance(self.body, dict):
            return self.body.get("batch") or []
        return []


def _b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


class TokenRequest:
    """One POST /token: the form, the decoded assertion, the answer."""

    def __init__(self, form, header, claims, status, error, at):
        self.form = form
        self.header = header
        self.claims = claims
        self.status = status
        self.error = error      # why the assertion was refused, or None
        self.at = at


class OAuth:
    """The token endpoint's settings and what it saw and issued."""

    ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    def __init__(self, client_id, key_id, public_key_pem, aud,
                 expires_in=3600, clock_offset_s=0.0):
        from cryptography.hazmat.primitives import serialization
        self.client_id = client_id
        self.key_id = key_id
        self.public_key = serialization.load_pem_public_key(public_key_pem)
        self.aud = aud
        self.expires_in = expires_in
        self.clock_offset_s = clock_offset_s
        self.requests = []
        self.tokens = {}        # token -> monotonic expiry
        self.jtis = set()
        self.issued = []        # every token, in order
        self.mode = "ok"        # or an HTTP status to answer with
        self.fail_next = []
        self.refusal = {"error": "invalid_client",
                        "error_description": "Client authentication failed"}

    def now(self):
        return time.time() + self.clock_offset_s

    def check(self, form):
        """(header, claims, None) or (header, claims, why refused)."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding
        header = claims = None
        try:
            if form.get("grant_type") != ["client_credentials"]:
                return None, None, "grant_type"
            if form.get("client_assertion_type") != [self.ASSERTION_TYPE]:
                return None, None, "client_assertion_type"
            if form.get("scope") != ["tracking_api:write"]:
                return None, None, "scope"
            jwt = form["client_assertion"][0]
            h, c, sig = jwt.split(".")
            header = json.loads(_b64url_decode(h))
            claims = json.loads(_b64url_decode(c))
            self.public_key.verify(_b64url_decode(sig),
                                   (h + "." + c).encode(),
                                   padding.PKCS1v15(), hashes.SHA256())
        except (KeyError, ValueError, InvalidSignature) as e:
            return header, claims, "assertion: %s" % type(e).__name__
        if header.get("alg") != "RS256" or header.get("kid") != self.key_id:
            return header, claims, "header"
        if claims.get("iss") != self.client_id or \
                claims.get("sub") != self.client_id:
            return header, claims, "iss/sub"
        if claims.get("aud") != self.aud:
            return header, claims, "aud"
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int) or \
                not 0 < exp - iat <= 60:
            return header, claims, "iat/exp"
        now = self.now()
        if iat > now + 5 or exp < now:
            return header, claims, "iat not within the endpoint's clock"
        if not isinstance(claims.get("jti"), str) or \
                claims["jti"] in self.jtis:
            return header, claims, "jti reused"
        self.jtis.add(claims["jti"])
        return header, claims, None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # The bridge killed with -9 or timing out resets connections.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


class Sink:
    def __init__(self, write_key="wk_test"):
        self.write_key = write_key
        self.lock = threading.Condition()
        self.batches = []
        self.mode = "ok"
        self.retry_after = "1"
        self.hang_s = 5.0
        self.poison = set()
        self._fail_next = []
        self.oauth = None
        self.server = _Server(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       daemon=True)
        self.thread.start()

    # -- programming ----------------------------------------------------

    def set_mode(self, mode, retry_after="1", hang_s=5.0):
        with self.lock:
            self.mode = mode
            self.retry_after = retry_after
            self.hang_s = hang_s

    def fail_next(self, n, status=500):
        with self.lock:
            self._fail_next.extend([status] * n)

    def enable_oauth(self, client_id, key_id, public_key_pem,
                     expires_in=3600, clock_offset_s=0.0):
        """Batches now need a token from POST /token (see OAuth)."""
        with self.lock:
            self.oauth = OAuth(client_id, key_id, public_key_pem, self.url,
                               expires_in, clock_offset_s)
        return self.oauth

    def token_mode(self, mode):
        with self.lock:
            self.oauth.mode = mode

    def token_fail_next(self, n, status=500):
        with self.lock:
            self.oauth.fail_next.extend([status] * n)

    def revoke_tokens(self):
        """Every token issued so far is refused from now on."""
        with self.lock:
            self.oauth.tokens.clear()

    def token_requests(self):
        with self.lock:
            return list(self.oauth.requests)

    def wait_token_requests(self, k, timeout=10.0):
        self.wait_for(lambda: len(self.token_requests()) >= k, timeout)
        return len(self.token_requests())

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    # -- reading --------------------------------------------------------

    def all_batches(self):
        with self.lock:
            return list(self.batches)

    def accepted_messages(self):
        """Messages of batches answered 2xx, in order of arrival."""
        with self.lock:
            out = []
            for b in self.batches:
                if 200 <= b.status < 300:
                    out.extend(b.messages)
            return out

    def accepted_ids(self):
        return {m.get("messageId") for m in self.accepted_messages()}

    def by_message_id(self):
        """messageId -> first accepted message."""
        out = {}
        for m in self.accepted_messages():
            out.setdefault(m.get("messageId"), m)
        return out

    def wait_for(self, pred, timeout=10.0):
        """Waits until pred() is true; returns its last value."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while True:
                self.lock.release()
                try:
                    v = pred()
                finally:
                    self.lock.acquire()
                if v:
                    return v
                left = deadline - time.monotonic()
                if left <= 0:
                    return v
                self.lock.wait(min(left, 0.05))

    def wait_ids(self, ids, timeout=10.0):
        """Waits until every messageId of ids was accepted; returns missing."""
        ids = set(ids)
        self.wait_for(lambda: ids <= self.accepted_ids(), timeout)
        return ids - self.accepted_ids()

    def wait_count(self, k, timeout=10.0):
        """Waits until k unique messageIds were accepted; returns how many."""
        self.wait_for(lambda: len(self.accepted_ids()) >= k, timeout)
        return len(self.accepted_ids())

    def wait_requests(self, k, timeout=10.0):
        self.wait_for(lambda: len(self.all_batches()) >= k, timeout)
        return len(self.all_batches())

    # -- the server -----------------------------------------------------

    def _decide(self, auth, body):
        with self.lock:
            if self._fail_next:
                return self._fail_next.pop(0), None
            mode = self.mode
            ra = self.retry_after
            hang = self.hang_s
            poison = set(self.poison)
        if mode == "hang":
            time.sleep(hang)
            return 500, None
        if mode == "slow":
            time.sleep(hang)
        if mode == "fail":
            return 500, None
        # A callable header value is made when the answer is: a Unix time
        # "3 s from now" must count from the 429, not from the test's set-up.
        if callable(ra):
            ra = ra()
        if mode == "429":
            return 429, {"Retry-After": ra}
        if mode == "429reset":
            return 429, {"X-RateLimit-Reset": ra}
        if mode == "401":
            return 401, None
        if not self._authorized(auth, body):
            return 401, None
        if not isinstance(body, dict) or not isinstance(body.get("batch"),
                                                         list):
            return 400, None
        if poison:
            for m in body["batch"]:
                if not isinstance(m, dict):
                    return 400, None
                if m.get("messageId") in poison or m.get("event") in poison:
                    return 400, None
        return 200, None

    def _authorized(self, auth, body):
        with self.lock:
            oauth = self.oauth
            if oauth is None:
                return auth == "Basic " + base64.b64encode(
                    (self.write_key + ":").encode()).decode()
            if not auth or not auth.startswith("Bearer "):
                return False
            expiry = oauth.tokens.get(auth[len("Bearer "):])
            if expiry is None or expiry < time.monotonic():
                return False
        return isinstance(body, dict) and \
            body.get("writeKey") == self.write_key

    def _token(self, raw):
        """The token endpoint: (status, JSON answer)."""
        form = urllib.parse.parse_qs(raw.decode("ascii", "replace"),
                                     keep_blank_values=True)
        with self.lock:
            oauth = self.oauth
            forced = oauth.fail_next.pop(0) if oauth.fail_next else None
            mode = oauth.mode
            header, claims, why = oauth.check(form)
            if forced is not None:
                status, answer = forced, {"error": "server_error"}
            elif why is not None:
                status, answer = 400, {"error": "invalid_grant",
                                       "error_description": why}
            elif mode != "ok":
                status, answer = int(mode), dict(oauth.refusal)
            else:
                token = "tok_" + secrets.token_urlsafe(24)
                oauth.tokens[token] = time.monotonic() + oauth.expires_in
                oauth.issued.append(token)
                status, answer = 200, {"access_token": token,
                                       "token_type": "bearer",
                                       "expires_in": oauth.expires_in,
                                       "scope": "tracking_api:write"}
            oauth.requests.append(TokenRequest(form, header, claims, status,
                                               why, time.monotonic()))
            self.lock.notify_all()
        return status, answer

    def _handler(self):
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _answer(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def date_time_string(self, timestamp=None):
                # The token endpoint's clock, which tests may skew.
                t = time.time() if timestamp is None else timestamp
                if sink.oauth is not None:
                    t += sink.oauth.clock_offset_s
                return email.utils.formatdate(t, usegmt=True)

            def do_POST(self):
                # When the request came in (at is when it was answered).
                arrived = time.monotonic()
                n = int(self.headers.get("Content-Length") or 0)
                wire = self.rfile.read(n) if n else b""
                if self.path == "/token" and sink.oauth is not None:
                    status, answer = sink._token(wire)
                    if status == 0:
                        # A network error: the connection closes unanswered.
                        self.close_connection = True
                        return
                    self._answer(status, answer)
                    return
                if self.path != "/v1/batch":
                    self._answer(404, {"error": "not found"})
                    return
                encoding = self.headers.get("Content-Encoding")
                raw = wire
                if encoding == "gzip":
                    try:
                        raw = gzip.decompress(wire)
                    except (OSError, EOFError):
                        raw = b""
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                auth = self.headers.get("Authorization")
                status, headers = sink._decide(auth, body)
                b = Batch(auth, body, raw, time.monotonic(), status, wire,
                          encoding)
                b.content_type = self.headers.get("Content-Type")
                b.arrived = arrived
                with sink.lock:
                    sink.batches.append(b)
                    sink.lock.notify_all()
                try:
                    self._answer(status, {"success": status == 200},
                                 headers)
                except OSError:
                    pass

            def do_GET(self):
                self._answer(404, {"error": "not found"})

        return Handler
