#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A local Segment stand-in for trying nudgebridge without a Segment account.

Listens on 127.0.0.1:PORT (default 8099), answers every POST /v1/batch with
200 {"success":true} and prints each Track message it receives, one JSON
document per message under a line naming the batch (and the bytes on the
wire when the body came gzipped, as the bridge sends it by default), so
you can see exactly what Segment would get.  deploy/quickstart.sh points sources at it when
SEGMENT_WRITE_KEY is not set and starts it itself with --parent PID (its
own pid, which the bridge keeps when the script exec's into it): then the
stand-in ignores Ctrl-C (the bridge may still be draining into it) and
exits as soon as PID is no longer its parent, i.e. the bridge is gone.  By
hand:

    python3 deploy/segment-standin.py [--parent PID] [PORT]
"""

import gzip
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY_BYTES = 1 << 20
PARENT_POLL_S = 0.5


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        wire = self.rfile.read(min(n, MAX_BODY_BYTES))
        status = 200
        zipped = self.headers.get("Content-Encoding") == "gzip"
        try:
            raw = gzip.decompress(wire) if zipped else wire
            batch = json.loads(raw).get("batch", [])
        except (ValueError, AttributeError, OSError, EOFError):
            raw, batch, status = b"", [], 400
        if self.path != "/v1/batch":
            status = 404
        if status == 200:
            how = f", {len(wire)} of {len(raw)} bytes gzipped" if zipped \
                else ""
            print(f"segment stand-in: batch of {len(batch)} message(s){how}",
                  flush=True)
            for msg in batch:
                print(json.dumps(msg, indent=2), flush=True)
        body = json.dumps({"success": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def watch_parent(srv, parent):
    """Stops the server once parent is no longer our parent process."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    srv.shutdown()


def main():
    args, parent = sys.argv[1:], None
    if len(args) >= 2 and args[0] == "--parent" and args[1].isdigit():
        parent, args = int(args[1]), args[2:]
    if len(args) > 1 or (args and not args[0].isdigit()):
        print("usage: segment-standin.py [--parent PID] [PORT]",
              file=sys.stderr)
        return 2
    port = int(args[0]) if args else 8099
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    if parent is not None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(target=watch_parent, args=(srv, parent),
                         daemon=True).start()
    print(f"segment stand-in on http://127.0.0.1:{port}/v1/batch",
          file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
