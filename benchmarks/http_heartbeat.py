"""HTTP heartbeat throughput and latency: the hub against a bare falcon handler under the
same gunicorn worker and settings, driven by the same fleet of HTTP executors that
heartbeat back to back.

    python -m benchmarks.http_heartbeat [--count 50] [--duration 20]
"""

from __future__ import annotations

import argparse
import time

from .common import Bare, Hub, cpu_s, fleet, machine, row


def load(server, count: int, duration: float) -> tuple[dict, float]:
    c0 = cpu_s(server.worker)
    report = fleet(server.url, "--transport", "http", "--count", str(count), "--ramp", "1", "--duration",
                   str(duration), "--heartbeat", "0", "--no-run", "--prefix", f"h{time.time_ns()}")
    return report, cpu_s(server.worker) - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--duration", type=float, default=20)
    args = ap.parse_args()
    print(f"machine: {machine()}; {time.strftime('%Y-%m-%d')}")
    with Bare("http_robot") as bare:
        b, b_cpu = load(bare, args.count, args.duration)
    with Hub() as hub:
        h, h_cpu = load(hub, args.count, args.duration)
    bn, hn = b["latency"]["heartbeat"]["count"], h["latency"]["heartbeat"]["count"]
    bt, ht = bn / b["elapsedS"], hn / h["elapsedS"]
    print(row("measure", "bare falcon", "hub", "ratio hub/bare"))
    print(row("---", "---", "---", "---"))
    print(row("heartbeats per second", f"{bt:.0f}", f"{ht:.0f}", f"{ht / bt:.2f}"))
    for p in ("p50Ms", "p99Ms"):
        bv, hv = b["latency"]["heartbeat"][p], h["latency"]["heartbeat"][p]
        print(row(f"heartbeat latency {p[:3]} (ms)", bv, hv, f"{hv / bv:.2f}"))
    print(row("server CPU per heartbeat (ms)", f"{b_cpu * 1000 / bn:.3f}", f"{h_cpu * 1000 / hn:.3f}",
              f"{(h_cpu / hn) / (b_cpu / bn):.2f}"))
    print(row("errors", b["errors"] or 0, h["errors"] or 0, ""))


if __name__ == "__main__":
    main()
