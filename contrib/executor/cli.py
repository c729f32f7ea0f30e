"""``rpahub-executor``: the reference executor's command line."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import tempfile
from pathlib import Path

SECRET_ENV = "RPAHUB_EXECUTOR_SECRET"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpahub-executor",
                                description="Reference RPA executor for rpahub (T/CES 130-2022 clause 7).")
    p.add_argument("--hub", default="http://127.0.0.1:8080", help="hub base URL (default %(default)s)")
    p.add_argument("--transport", choices=("ws", "http"), default="ws", help="executor protocol (default %(default)s)")
    p.add_argument("--robot-id", default=socket.gethostname(), help="this executor's unique id (default: host name)")
    p.add_argument("--supplier", required=True, help="supplier code the hub admitted")
    p.add_argument("--secret", default=None, help=f"supplier secret (better: environment variable {SECRET_ENV})")
    p.add_argument("--heartbeat", type=float, default=15.0, help="heartbeat period in seconds (default %(default)s)")
    p.add_argument("--workdir", type=Path, default=None,
                   help="folder for packages, run outputs and recordings (default: a folder in the temp dir)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Their debug output carries the signed download and upload URLs: keep those out of logs.
    for noisy in ("urllib3", "charset_normalizer", "websocket"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    log = logging.getLogger("rpahub.executor")
    # Packages run with this process's environment: they must not see the supplier secret.
    secret = args.secret or os.environ.pop(SECRET_ENV, "")
    os.environ.pop(SECRET_ENV, None)
    if not secret:
        log.error("no supplier secret: pass --secret or set %s", SECRET_ENV)
        return 2
    if not args.robot_id or len(args.robot_id) > 128:
        log.error("--robot-id: 1 to 128 characters")
        return 2
    if args.heartbeat <= 0:
        log.error("--heartbeat: must be positive")
        return 2
    workdir = args.workdir or Path(tempfile.gettempdir()) / f"rpahub-executor-{args.robot_id}"

    from .agent import Agent

    if args.transport == "ws":
        from .ws import WsTransport as transport_class
    else:
        from .http_transport import HttpTransport as transport_class
    transport = transport_class(args.hub, args.robot_id, heartbeat_s=args.heartbeat)
    agent = Agent(transport, hub_url=args.hub, supplier=args.supplier, secret=secret, robot_id=args.robot_id,
                  heartbeat_s=args.heartbeat, workdir=workdir.resolve())

    def on_signal(signum, _frame):
        log.info("%s received: shutting down", signal.Signals(signum).name)
        agent.shutdown()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return agent.serve()


if __name__ == "__main__":
    raise SystemExit(main())
