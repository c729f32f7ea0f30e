"""Server CPU per WebSocket frame: Heartbeat and a 20-record ReportLogs, the hub against a
bare gevent-websocket echo under the same gunicorn worker; and log ingestion of
500-record ReportLogs against raw sqlite3 ``executemany``.

    python -m benchmarks.ws_cpu [--heartbeats 3000] [--logs 600] [--ingest 100]

CPU is the worker's utime + stime from /proc over the whole sequence, divided by the
frames sent; each frame is followed by a ping whose pong is awaited, so both servers
handle the same frames, one at a time.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

from .common import Bare, Hub, cpu_s, machine, row
from .wsclient import Client, running_client

RECORD = "发票校验 step done: invoice 4400012345 checked against the ledger, amount 1234.56 CNY " * 2


def logs_body(run_id: str, n: int, first: int = 0) -> dict:
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    return {"runInstanceId": run_id, "logs": [{"content": f"#{first + i} {RECORD}", "screenshot": None,
                                               "logAt": at, "logLevel": 0} for i in range(n)]}


def per_frame(worker: int, send, n: int) -> tuple[float, float]:
    """(server CPU ms per frame, wall ms per frame) over n frames."""
    for _ in range(min(50, n)):  # warm-up
        send()
    c0, t0 = cpu_s(worker), time.perf_counter()
    for _ in range(n):
        send()
    return (cpu_s(worker) - c0) * 1000 / n, (time.perf_counter() - t0) * 1000 / n


def raw_sqlite(n_frames: int, records: int) -> float:
    """ms per batch of ``records`` rows: executemany + commit in a WAL database."""
    path = Path(tempfile.mkdtemp()) / "raw.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE log (id INTEGER PRIMARY KEY, run TEXT, content TEXT, screenshot TEXT, "
               "log_at TEXT, level INTEGER, executor_id TEXT)")
    db.execute("CREATE INDEX log_run ON log(run)")
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    t0 = time.perf_counter()
    for _ in range(n_frames):
        rows = [("run-1", f"#{i} {RECORD}", None, at, 0, "bench-1") for i in range(records)]
        db.execute("BEGIN")
        db.executemany("INSERT INTO log (run, content, screenshot, log_at, level, executor_id) "
                       "VALUES (?, ?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
    return (time.perf_counter() - t0) * 1000 / n_frames


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heartbeats", type=int, default=3000)
    ap.add_argument("--logs", type=int, default=600)
    ap.add_argument("--ingest", type=int, default=100)
    args = ap.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")

    with Bare("ws_echo") as bare:
        c = Client(bare.url, "bare-1")
        hb_bare = per_frame(bare.worker, lambda: c.send("Heartbeat", {}), args.heartbeats)
        body = logs_body("run-1", 20)
        logs_bare = per_frame(bare.worker, lambda: c.send("ReportLogs", body), args.logs)
        c.close()

    with Hub() as hub:
        c, run_id = running_client(hub, "bench-1")
        hb_hub = per_frame(hub.worker, lambda: c.send("Heartbeat", {"runInstanceId": run_id}), args.heartbeats)
        body = logs_body(run_id, 20)
        logs_hub = per_frame(hub.worker, lambda: c.send("ReportLogs", body), args.logs)
        big = logs_body(run_id, 500)
        ingest_hub = per_frame(hub.worker, lambda: c.send("ReportLogs", big), args.ingest)
        c.close()
    raw = raw_sqlite(args.ingest, 500)

    print(row("measure", "bare", "hub", "ratio hub/bare"))
    print(row("---", "---", "---", "---"))
    print(row("server CPU per Heartbeat (ms)", f"{hb_bare[0]:.3f}", f"{hb_hub[0]:.3f}", f"{hb_hub[0] / hb_bare[0]:.2f}"))
    print(row("server CPU per 20-record ReportLogs (ms)", f"{logs_bare[0]:.3f}", f"{logs_hub[0]:.3f}",
              f"{logs_hub[0] / logs_bare[0]:.2f}"))
    print(row("wall time per Heartbeat round trip (ms)", f"{hb_bare[1]:.3f}", f"{hb_hub[1]:.3f}",
              f"{hb_hub[1] / hb_bare[1]:.2f}"))
    # One worker takes in logs as fast as its CPU allows: its CPU per frame against raw
    # sqlite3's time for the same rows is the share of raw throughput the hub keeps.
    print(row("500 log records: raw sqlite3 executemany vs hub server CPU per ReportLogs (ms)", f"{raw:.3f}",
              f"{ingest_hub[0]:.3f}", f"throughput {raw / ingest_hub[0]:.2f} of raw"))
    print(row("500-record ReportLogs round trip, wall, client encoding included (ms)", "", f"{ingest_hub[1]:.3f}",
              ""))


if __name__ == "__main__":
    main()
