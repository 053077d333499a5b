#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""A local Segment stand-in for trying nudgebridge without a Segment account.

Listens on 127.0.0.1:PORT (default 8099), answers every POST /v1/batch with
200 {"success":true} and prints each Track message it receives, one JSON
document per message, so you can see exactly what Segment would get.  The
quickstart points sources at it when SEGMENT_WRITE_KEY is not set:

    python3 deploy/segment-standin.py 8099
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(min(n, 1 << 20))
        status = 200
        try:
            batch = json.loads(raw).get("batch", [])
        except (ValueError, AttributeError):
            batch, status = [], 400
        if self.path != "/v1/batch":
            status = 404
        for msg in batch:
            print(json.dumps(msg, indent=2), flush=True)
        body = json.dumps({"success": status == 200}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8099
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"segment stand-in on http://127.0.0.1:{port}/v1/batch",
          file=sys.stderr, flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
