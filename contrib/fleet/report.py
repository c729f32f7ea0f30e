"""Latency and throughput figures of a fleet run."""

from __future__ import annotations

import math
from collections import Counter


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summary(values: list[float]) -> dict:
    """count, p50, p95, p99 and max, in milliseconds."""
    v = sorted(values)
    return {"count": len(v), "p50Ms": _ms(percentile(v, 50)), "p95Ms": _ms(percentile(v, 95)),
            "p99Ms": _ms(percentile(v, 99)), "maxMs": _ms(v[-1] if v else None)}


class Recorder:
    """What every simulated executor adds to as it goes; read once at the end."""

    def __init__(self):
        self.latencies: dict[str, list[float]] = {}
        self.sent = Counter()  # frames or requests, by action
        self.errors = Counter()  # by "<what>: <why>"
        self.hub_errors = Counter()  # Error frames / refusals, by error code or HTTP status
        self.registered = 0
        self.refused = 0
        self.disconnects = 0
        self.runs_started = 0
        self.runs_finished = 0
        self.executes: list[dict] = []  # {"runInstanceId", "robotId", "at"} per Execute received

    def latency(self, what: str, seconds: float) -> None:
        self.latencies.setdefault(what, []).append(seconds)

    def report(self, *, config: dict, elapsed_s: float, peak_connected: int) -> dict:
        total = sum(self.sent.values())
        return {
            "config": config,
            "elapsedS": round(elapsed_s, 3),
            "registered": self.registered,
            "refused": self.refused,
            "peakConnected": peak_connected,
            "disconnects": self.disconnects,
            "sent": dict(self.sent),
            "throughputPerS": round(total / elapsed_s, 1) if elapsed_s > 0 else None,
            "latency": {k: summary(v) for k, v in sorted(self.latencies.items())},
            "errors": dict(self.errors),
            "hubErrors": dict(self.hub_errors),
            "runsStarted": self.runs_started,
            "runsFinished": self.runs_finished,
            "executes": self.executes,
        }


def text(report: dict) -> str:
    """The report as a person reads it."""
    lines = [f"fleet of {report['config']['count']} over {report['config']['transport']} "
             f"for {report['elapsedS']} s: {report['registered']} registered, {report['refused']} refused, "
             f"peak {report['peakConnected']} connected, {report['disconnects']} disconnects",
             f"sent {sum(report['sent'].values())} ({', '.join(f'{k} {v}' for k, v in sorted(report['sent'].items()))})"
             f", {report['throughputPerS']}/s",
             f"runs: {report['runsStarted']} started, {report['runsFinished']} finished"]
    for what, s in report["latency"].items():
        lines.append(f"  {what:<12} n={s['count']:<7} p50 {s['p50Ms']} ms  p95 {s['p95Ms']} ms  "
                     f"p99 {s['p99Ms']} ms  max {s['maxMs']} ms")
    for what, n in sorted(report["errors"].items()):
        lines.append(f"  error {what}: {n}")
    for code, n in sorted(report["hubErrors"].items()):
        lines.append(f"  hub answered {code}: {n}")
    return "\n".join(lines)
