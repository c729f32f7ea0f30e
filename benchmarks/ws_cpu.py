"""Server CPU per WebSocket frame: Heartbeat and a 20-record ReportLogs, the hub against a
bare gevent-websocket echo under the same gunicorn worker; and log ingestion of
500-record ReportLogs against raw sqlite3 ``executemany``.

    python -m benchmarks.ws_cpu [--heartbeats 3000] [--logs 600] [--ingest 100] [--rounds 5]
                                [--profile DIR]

CPU is the worker's utime + stime from /proc over the whole sequence, divided by the
frames sent; each frame is followed by a ping whose pong is awaited, so both servers
handle the same frames, one at a time. Both servers stay up and every round measures
each of them in turn, so load from outside the benchmark weighs on both alike; figures
are the medians over the rounds. ``--profile DIR`` records the hub's worker with py-spy
(collapsed stacks, one file per kind of frame) during the last round.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
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


@contextlib.contextmanager
def profiled(pid: int, path: Path | None):
    """py-spy record of ``pid`` while the block runs (nothing when ``path`` is None)."""
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    proc = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "1000", "--format", "raw",
                             "--output", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attached before the first measured frame
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        if not path.exists():
            print(f"py-spy wrote no profile: {err.decode(errors='replace')[-500:]}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--heartbeats", type=int, default=3000)
    ap.add_argument("--logs", type=int, default=600)
    ap.add_argument("--ingest", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profile", type=Path, help="folder for py-spy profiles of the hub worker (last round)")
    args = ap.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")

    results: dict[str, list[tuple[float, float]]] = {}

    def measure(name: str, worker: int, send, n: int, profile: Path | None = None) -> None:
        with profiled(worker, profile):
            results.setdefault(name, []).append(per_frame(worker, send, n))

    with Bare("ws_echo") as bare, Hub() as hub:
        cb = Client(bare.url, "bare-1")
        ch, run_id = running_client(hub, "bench-1")
        small_bare, small_hub = logs_body("run-1", 20), logs_body(run_id, 20)
        big = logs_body(run_id, 500)
        for r in range(args.rounds):
            folder = args.profile if r == args.rounds - 1 else None
            measure("hb_bare", bare.worker, lambda: cb.send("Heartbeat", {}), args.heartbeats)
            measure("hb_hub", hub.worker, lambda: ch.send("Heartbeat", {"runInstanceId": run_id}),
                    args.heartbeats, folder and folder / "heartbeat.txt")
            measure("logs_bare", bare.worker, lambda: cb.send("ReportLogs", small_bare), args.logs)
            measure("logs_hub", hub.worker, lambda: ch.send("ReportLogs", small_hub), args.logs,
                    folder and folder / "logs20.txt")
            measure("ingest_hub", hub.worker, lambda: ch.send("ReportLogs", big), args.ingest,
                    folder and folder / "logs500.txt")
            results.setdefault("raw", []).append((raw_sqlite(args.ingest, 500), 0.0))
        cb.close()
        ch.close()

    def med(name: str, i: int = 0) -> float:
        return statistics.median(v[i] for v in results[name])

    hb_bare, hb_hub, logs_bare, logs_hub = med("hb_bare"), med("hb_hub"), med("logs_bare"), med("logs_hub")
    raw, ingest_hub = med("raw"), med("ingest_hub")
    print(row("measure", "bare", "hub", "ratio hub/bare"))
    print(row("---", "---", "---", "---"))
    print(row("server CPU per Heartbeat (ms)", f"{hb_bare:.3f}", f"{hb_hub:.3f}", f"{hb_hub / hb_bare:.2f}"))
    print(row("server CPU per 20-record ReportLogs (ms)", f"{logs_bare:.3f}", f"{logs_hub:.3f}",
              f"{logs_hub / logs_bare:.2f}"))
    print(row("wall time per Heartbeat round trip (ms)", f"{med('hb_bare', 1):.3f}", f"{med('hb_hub', 1):.3f}",
              f"{med('hb_hub', 1) / med('hb_bare', 1):.2f}"))
    # One worker takes in logs as fast as its CPU allows: its CPU per frame against raw
    # sqlite3's time for the same rows is the share of raw throughput the hub keeps.
    print(row("500 log records: raw sqlite3 executemany vs hub server CPU per ReportLogs (ms)", f"{raw:.3f}",
              f"{ingest_hub:.3f}", f"throughput {raw / ingest_hub:.2f} of raw"))
    print(row("500-record ReportLogs round trip, wall, client encoding included (ms)", "",
              f"{med('ingest_hub', 1):.3f}", ""))
    if args.rounds > 1:
        def spread(name: str) -> str:
            return " ".join(f"{v[0]:.3f}" for v in results[name])
        print(f"rounds (server CPU ms): heartbeat bare {spread('hb_bare')}; hub {spread('hb_hub')}; "
              f"500 records raw {spread('raw')}; hub {spread('ingest_hub')}")


if __name__ == "__main__":
    main()
