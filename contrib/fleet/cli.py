"""``rpahub-fleet``: N simulated executors against a hub, and a report of what they saw."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys

SECRET_ENV = "RPAHUB_FLEET_SECRET"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rpahub-fleet", description=(
        "Simulate a fleet of T/CES 130 executors against a hub: register, heartbeat, run what the hub "
        "sends (logs in batches, checkpoints, finish), then report latencies, errors and throughput."))
    p.add_argument("--hub", default="http://127.0.0.1:8080", help="hub base URL (default %(default)s)")
    p.add_argument("--transport", choices=("ws", "http"), default="ws")
    p.add_argument("--count", type=int, default=100, help="simulated executors (default %(default)s)")
    p.add_argument("--supplier", default="fleet", help="an admitted supplier code (default %(default)s)")
    p.add_argument("--secret", default=None, help=f"its secret (better: environment variable {SECRET_ENV})")
    p.add_argument("--prefix", default="fleet", help="robot ids are <prefix>-00000... (default %(default)s)")
    p.add_argument("--ramp", type=float, default=10.0, help="seconds over which executors connect")
    p.add_argument("--duration", type=float, default=60.0, help="seconds to keep going after the ramp")
    p.add_argument("--heartbeat", type=float, default=15.0, help="heartbeat period in seconds")
    p.add_argument("--no-run", action="store_true", help="ignore Execute (connections and heartbeats only)")
    p.add_argument("--batches", type=int, default=3, help="ReportLogs messages per run")
    p.add_argument("--records", type=int, default=20, help="log records per ReportLogs")
    p.add_argument("--record-bytes", type=int, default=200, help="content length of a log record")
    p.add_argument("--batch-every", type=float, default=1.0, help="seconds between two ReportLogs of a run")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON ('-' for standard output)")
    return p


def raise_open_files_limit() -> int:
    """Each executor holds a socket: lift the soft limit on open files to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    secret = args.secret or os.environ.get(SECRET_ENV)
    if not secret:
        print(f"rpahub-fleet: the supplier secret is needed (--secret or {SECRET_ENV})", file=sys.stderr)
        return 2
    if args.count < 1:
        print("rpahub-fleet: --count must be at least 1", file=sys.stderr)
        return 2
    limit = raise_open_files_limit()
    if args.count + 64 > limit:
        print(f"rpahub-fleet: {args.count} executors need more open files than the limit {limit}", file=sys.stderr)
        return 2

    from gevent import monkey

    monkey.patch_all()
    from .report import text
    from .sim import Fleet, Profile

    profile = Profile(hub=args.hub, transport=args.transport, count=args.count, supplier=args.supplier,
                      secret=secret, prefix=args.prefix, ramp_s=args.ramp, duration_s=args.duration,
                      heartbeat_s=args.heartbeat, run=not args.no_run, batches=args.batches,
                      records=args.records, record_bytes=args.record_bytes, batch_every_s=args.batch_every)
    report = Fleet(profile).run()
    print(text(report), file=sys.stderr)
    if args.json == "-":
        json.dump(report, sys.stdout, ensure_ascii=False, indent=2)
    elif args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report, out, ensure_ascii=False, indent=2)
    failed = report["refused"] or report["errors"] or report["registered"] < args.count
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
