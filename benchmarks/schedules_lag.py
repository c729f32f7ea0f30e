"""Fire lag of many active schedules: each fires every minute, all on the minute (the
worst case: every occurrence of a minute falls due in the same tick).

    python -m benchmarks.schedules_lag [--schedules 10000] [--minutes 3]

Lag is the time from each occurrence to the creation of its run (``run_instance.created_at``
in the hub's database; a handled occurrence records the time of the tick that took it,
not when its turn came). The runs wait in the queue of a pool with no executor.
``--profile FILE`` records the worker with py-spy (installed separately) from the first
occurrence on, for 20 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rpahub_contrib.fleet.report import summary

from .common import Hub, cpu_s, machine, row
from .wsclient import upload_package


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--schedules", type=int, default=10000)
    ap.add_argument("--minutes", type=int, default=3)
    ap.add_argument("--profile", metavar="FILE", help="py-spy raw samples of the worker while the first minute fires")
    args = ap.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    with Hub() as hub:
        package = upload_package(hub.url, hub.token)
        status, body = hub.live.call("POST", "/api/v1/pools", {"name": "nobody"}, token=hub.token)
        assert status == 201, body
        # Anchored on a minute in the future so no occurrence is missed while they are created.
        anchor = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=30)).replace(second=0, microsecond=0)

        def create(i: int) -> None:
            status, body = hub.live.call("POST", "/api/v1/schedules", {
                "name": f"bench-{i:05d}", "packageId": package, "pool": "nobody", "unit": "minutes", "every": 1,
                "anchor": anchor.replace(tzinfo=None).isoformat(), "timezone": "UTC"}, token=hub.token)
            assert status == 201, body

        t0 = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, range(args.schedules)))
        created_s = time.monotonic() - t0
        # Bring every schedule's first occurrence to the next minute: what 30 minutes of waiting would.
        first = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).replace(second=0, microsecond=0, tzinfo=None)
        db_path = Path(hub.live.folder) / "var" / "rpahub.db"
        with sqlite3.connect(db_path, timeout=60) as db:
            db.execute("UPDATE schedule SET anchor = ?, next_run_at = ?", (first.isoformat(" "), first.isoformat(" ")))
        c0 = cpu_s(hub.worker)
        if args.profile:
            import subprocess

            time.sleep(max(0.0, (first - dt.datetime.now(dt.UTC).replace(tzinfo=None)).total_seconds()))
            subprocess.run(["py-spy", "record", "-p", str(hub.worker), "-d", "20", "-r", "100", "-f", "raw",
                            "-o", args.profile, "--nonblocking"], check=False, capture_output=True)
        end = first + dt.timedelta(minutes=args.minutes, seconds=30)
        while dt.datetime.now(dt.UTC).replace(tzinfo=None) < end:
            time.sleep(5)
        cpu = cpu_s(hub.worker) - c0
        with sqlite3.connect(db_path, timeout=60) as db:
            rows = db.execute("SELECT o.occurrence, r.created_at, o.outcome FROM schedule_occurrence o "
                              "LEFT JOIN run_instance r ON r.id = o.run_id").fetchall()
    parse = dt.datetime.fromisoformat
    lags = [(parse(f) - parse(o)).total_seconds() for o, f, outcome in rows if outcome == "fired" and f]
    by_minute: dict[str, int] = {}
    for o, _, _ in rows:
        by_minute[o[:16]] = by_minute.get(o[:16], 0) + 1
    s = summary(lags)
    print(row("measure", "value"))
    print(row("---", "---"))
    print(row("schedules created through the API", f"{args.schedules} in {created_s:.0f} s"))
    print(row("occurrences handled per minute", ", ".join(f"{k[11:]}: {v}" for k, v in sorted(by_minute.items()))))
    print(row("outcomes", ", ".join(f"{k}: {sum(1 for r in rows if r[2] == k)}" for k in
                                    sorted({r[2] for r in rows}))))
    print(row("fire lag p50 / p95 / p99 / max (ms)", f"{s['p50Ms']} / {s['p95Ms']} / {s['p99Ms']} / {s['maxMs']}"))
    print(row("worker CPU over the measured minutes (s)", f"{cpu:.1f}"))


if __name__ == "__main__":
    main()
