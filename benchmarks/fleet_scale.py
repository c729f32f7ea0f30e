"""Connected executors per worker, RSS per connection, and dispatch latency.

    python -m benchmarks.fleet_scale [--count 10000] [--ramp 120] [--runs 50] [--profile FILE]

A fleet of simulated WebSocket executors ramps up against one hub worker; the worker's
RSS is read before the ramp and once every executor is connected. Then runs are
dispatched one at a time to the idle fleet: dispatch latency is the time from just
before ``POST /api/v1/dispatch`` to the ``Execute`` frame arriving at the executor.
``--profile FILE`` records the hub's worker with py-spy (collapsed stacks) while the
runs are dispatched.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rpahub_contrib.fleet.report import summary

from .common import SECRET, Hub, cpu_s, machine, row, rss_kb
from .ws_cpu import profiled
from .wsclient import upload_package


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--ramp", type=float, default=120)
    ap.add_argument("--hold", type=float, default=30, help="seconds all connected, heartbeating, before the runs")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--heartbeat", type=float, default=15)
    ap.add_argument("--profile", type=Path, help="py-spy profile of the hub worker while the runs are dispatched")
    args = ap.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    out = os.path.join(tempfile.mkdtemp(), "fleet.json")
    with Hub(env={"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": str(int(args.heartbeat))},
             worker_connections=args.count + 500) as hub:
        package = upload_package(hub.url, hub.token)
        base_rss, base_cpu = rss_kb(hub.worker), cpu_s(hub.worker)
        duration = args.hold + args.runs * 0.5 + 30
        proc = subprocess.Popen(
            [sys.executable, "-m", "rpahub_contrib.fleet", "--hub", hub.url, "--supplier", "bench", "--count",
             str(args.count), "--ramp", str(args.ramp), "--duration", str(duration), "--heartbeat",
             str(args.heartbeat), "--batches", "0", "--json", out],
            env={**os.environ, "RPAHUB_FLEET_SECRET": SECRET}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True)
        t_end_ramp = time.monotonic() + args.ramp
        while time.monotonic() < t_end_ramp:
            time.sleep(1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            _, body = hub.live.call("GET", "/api/v1/executors?state=online&pageSize=1", token=hub.token)
            if body["resultValue"]["total"] >= args.count:
                break
            time.sleep(1)
        online = body["resultValue"]["total"]
        time.sleep(args.hold)
        full_rss, cpu_hold0 = rss_kb(hub.worker), cpu_s(hub.worker)
        time.sleep(10)
        hold_cpu = (cpu_s(hub.worker) - cpu_hold0) / 10
        created = {}
        with profiled(hub.worker, args.profile):
            for _ in range(args.runs):
                t0 = time.time()
                status, body = hub.live.call("POST", "/api/v1/dispatch", {"packageId": package, "supplier": "bench"},
                                             token=hub.token)
                assert status == 201, body
                created[body["resultValue"]["id"]] = t0
                time.sleep(0.5)
        _, err = proc.communicate(timeout=duration + args.ramp + 300)
        report = json.load(open(out))
        ramp_cpu = cpu_s(hub.worker) - base_cpu
    lat = [e["at"] - created[e["runInstanceId"]] for e in report["executes"] if e["runInstanceId"] in created]
    per_conn = (full_rss - base_rss) / max(1, online)
    print(err.strip().splitlines()[0] if err.strip() else "")
    print(row("measure", "value"))
    print(row("---", "---"))
    print(row("executors registered / online on one worker", f"{report['registered']} / {online}"))
    print(row("refused, errors, disconnects", f"{report['refused']}, {report['errors'] or 0}, {report['disconnects']}"))
    print(row("worker RSS before / with every executor connected (MiB)",
              f"{base_rss / 1024:.0f} / {full_rss / 1024:.0f}"))
    print(row("RSS per connected executor (KB)", f"{per_conn:.1f}"))
    print(row(f"worker CPU while holding them, heartbeat {args.heartbeat:g} s (cores)", f"{hold_cpu:.2f}"))
    print(row("register latency p50 / p99 (ms)", f"{report['latency']['register']['p50Ms']} / "
              f"{report['latency']['register']['p99Ms']}"))
    hb = report["latency"].get("heartbeat", {})
    print(row("heartbeat taken in p50 / p99 (ms)", f"{hb.get('p50Ms')} / {hb.get('p99Ms')}"))
    d = summary(lat)
    print(row(f"dispatch latency, {d['count']} runs, p50 / p95 / p99 (ms)",
              f"{d['p50Ms']} / {d['p95Ms']} / {d['p99Ms']}"))
    print(row("worker CPU over the whole run (s)", f"{ramp_cpu:.1f}"))


if __name__ == "__main__":
    main()
