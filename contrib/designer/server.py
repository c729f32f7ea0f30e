"""``python -m rpahub_contrib.designer``: answer ``/healthz`` and check sessions against the hub.

* ``GET /healthz`` — liveness, no credentials.
* ``GET /session?token=...`` — the hub's verdict on a person's session token, as JSON
  (200 with the lease, or the hub's 403).
* ``GET /?token=...`` — the designer's page for the person holding that token.

The registration secret comes from the environment (``RPAHUB_DESIGNER_SECRET``), never
the command line, which other users of the machine can read.
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET_ENV = "RPAHUB_DESIGNER_SECRET"
log = logging.getLogger("rpahub.designer")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rpahub_contrib.designer",
                                description="Minimal cloud designer checking sessions against an rpahub hub.")
    p.add_argument("--hub", required=True, help="hub base URL")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on (default %(default)s)")
    p.add_argument("--port", type=int, required=True, help="port to listen on")
    p.add_argument("--name", default="designer", help="shown on its page")
    p.add_argument("--instance-id", default="", help="the image instance it runs as (for the hub's bookkeeping)")
    return p


def check_session(hub: str, secret: str, token: str) -> tuple[int, dict]:
    """Ask the hub whether ``token`` is a live lease on this designer."""
    url = f"{hub}/api/v1/designer-session?" + urllib.parse.urlencode({"token": token})
    req = urllib.request.Request(url, headers={"X-Designer-Secret": secret})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        except ValueError:
            return err.code, {"successful": False, "resultHint": f"hub answered {err.code}", "resultValue": None}
    except (urllib.error.URLError, OSError) as err:
        return 502, {"successful": False, "resultHint": f"hub unreachable: {err}", "resultValue": None}


def make_handler(hub: str, secret: str, name: str):
    class Handler(BaseHTTPRequestHandler):
        server_version = "rpahub-designer/1"

        def log_message(self, fmt, *args):  # the query string carries tokens: log the path only
            log.info("%s %s", self.command, urllib.parse.urlsplit(self.path).path)

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):  # noqa: N802 - http.server's naming
            parts = urllib.parse.urlsplit(self.path)
            token = (urllib.parse.parse_qs(parts.query).get("token") or [""])[0]
            if parts.path == "/healthz":
                self._send(200, json.dumps({"status": "ok", "name": name}).encode(), "application/json")
            elif parts.path == "/session":
                status, answer = check_session(hub, secret, token) if token else (
                    400, {"successful": False, "resultHint": "token: required", "resultValue": None})
                self._send(status, json.dumps(answer).encode(), "application/json")
            elif parts.path == "/":
                status, answer = check_session(hub, secret, token) if token else (
                    401, {"resultHint": "open this designer with ?token=<sessionToken> from the hub"})
                if status == 200:
                    text = f"<h1>{html.escape(name)}</h1><p>Welcome, {html.escape(answer['resultValue']['userName'])}."
                else:
                    text = f"<h1>{html.escape(name)}</h1><p>{html.escape(answer.get('resultHint', 'refused'))}"
                self._send(status, text.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b'{"resultHint": "not found"}', "application/json")

    return Handler


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    secret = os.environ.pop(SECRET_ENV, "")
    if not secret:
        log.warning("no %s: every session check will be refused by the hub", SECRET_ENV)
    server = ThreadingHTTPServer((args.bind, args.port), make_handler(args.hub.rstrip("/"), secret, args.name))
    # SIGTERM (a recycle) ends serve_forever through SystemExit in the main thread.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    log.info("designer %s listening on http://%s:%d", args.name, args.bind, args.port)
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
