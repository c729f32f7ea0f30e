"""Monitoring figures (6.3.1b): runs by state and result, success rate, durations and queue
waits, executors by state, the queue, and licences about to expire.

The API (``/api/v1/ops/stats``), the Prometheus collector and the alert rules all read
their figures here, so a dashboard, a scrape and an alert never disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import peewee

from rpahub_core.db import utcnow
from rpahub_plugins.executors.models import Executor, Licence, RunInstance

from .records import share_models
from .schemas import RESULTS, RUN_STATES

EXECUTOR_STATES = ("online", "busy", "offline")


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (what an operator computes by hand)."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)], 3)


def summary(values: list[float]) -> dict:
    return {"count": len(values), "mean": round(sum(values) / len(values), 3) if values else None,
            "p95": percentile(values, 95), "max": round(max(values), 3) if values else None}


def success_rate(results: dict[str, int]) -> float | None:
    """Successes among runs that ended on their own: cancelled runs were a person's decision."""
    decided = results.get("success", 0) + results.get("failed", 0)
    return round(results.get("success", 0) / decided, 4) if decided else None


class Figures:
    """Accumulates the runs of one group."""

    def __init__(self, key: str, label: str | None = None):
        self.key, self.label = key, label if label is not None else key
        self.states: dict[str, int] = defaultdict(int)
        self.durations: list[float] = []
        self.waits: list[float] = []

    def add(self, state, created, dispatched, started, finished) -> None:
        self.states[state] += 1
        if dispatched is not None:
            self.waits.append((dispatched - created).total_seconds())
        if finished is not None and (started or dispatched) is not None:
            self.durations.append((finished - (started or dispatched)).total_seconds())

    def json(self) -> dict:
        results = {r: self.states.get(r, 0) for r in RESULTS}
        return {"key": self.key, "label": self.label, "total": sum(self.states.values()),
                "states": {s: self.states.get(s, 0) for s in RUN_STATES if self.states.get(s)},
                "results": results, "successRate": success_rate(results),
                "duration": summary(self.durations), "queueWait": summary(self.waits)}


class Stats:
    def __init__(self, hub):
        self.hub = hub

    def runs(self, *, start: dt.datetime, end: dt.datetime, group_by: str | None = None, app_id: str | None = None,
             executor_id: str | None = None) -> dict:
        cols = [RunInstance.state, RunInstance.created_at, RunInstance.dispatched_at, RunInstance.started_at,
                RunInstance.finished_at, RunInstance.executor_id]
        share = share_models(self.hub)
        query = RunInstance.select(*cols)
        if share:
            App, AppRun = share
            query = (RunInstance.select(*cols, App.id, App.name)
                     .join(AppRun, peewee.JOIN.LEFT_OUTER, on=(AppRun.run_id == RunInstance.id))
                     .join(App, peewee.JOIN.LEFT_OUTER, on=(App.id == AppRun.app)))
            if app_id:
                query = query.where(AppRun.app == app_id)
        elif app_id:
            query = query.where(peewee.SQL("1 = 0"))
        query = query.where((RunInstance.created_at >= start) & (RunInstance.created_at < end))
        if executor_id:
            query = query.where(RunInstance.executor_id == executor_id)
        overall = Figures("all")
        groups: dict[str, Figures] = {}
        for row in query.tuples().iterator():
            state, created, dispatched, started, finished, executor = row[:6]
            app = (row[6], row[7]) if share else (None, None)
            overall.add(state, created, dispatched, started, finished)
            if group_by:
                key, label = group_key(group_by, state, created, executor, app)
                if key not in groups:
                    groups[key] = Figures(key, label)
                groups[key].add(state, created, dispatched, started, finished)
        out = {"from": start, "to": end, **overall.json()}
        out.pop("key"), out.pop("label")
        if group_by:
            out["groupBy"] = group_by
            out["groups"] = [g.json() for g in sorted(groups.values(), key=lambda g: g.key)]
        return out

    # -- the fleet, now -----------------------------------------------------------------

    def executors(self) -> dict:
        counts = dict(Executor.select(Executor.state, peewee.fn.COUNT(Executor.id)).group_by(Executor.state).tuples())
        return {**{s: counts.get(s, 0) for s in EXECUTOR_STATES}, "total": sum(counts.values())}

    def queue(self) -> dict:
        """Runs waiting for an executor: how many, and how long the longest has waited for one
        (an entry delayed on purpose, a retry's back-off, counts from when it became eligible)."""
        if self.hub.pm.get_plugin("dispatch") is None:
            return {"length": 0, "ready": 0, "oldestWaitS": None}
        from rpahub_plugins.dispatch.models import QueueEntry

        now = utcnow()
        length = QueueEntry.select().count()
        ready = QueueEntry.select(QueueEntry.enqueued_at, QueueEntry.not_before).where(QueueEntry.not_before <= now)
        waits = [(now - max(enq, nb)).total_seconds() for enq, nb in ready.tuples()]
        return {"length": length, "ready": len(waits), "oldestWaitS": round(max(waits), 3) if waits else None}

    def licences(self, days: int) -> list[dict]:
        """Bindings (a robot or a pool) whose best valid licence ends within ``days`` days,
        or that have no valid licence left since their last one expired."""
        now = utcnow()
        best: dict[tuple, Licence] = {}
        for lic in Licence.select().where(Licence.revoked_at.is_null()):
            binding = (lic.supplier_id, lic.robot_id, lic.pool)
            if binding not in best or lic.expires_at > best[binding].expires_at:
                best[binding] = lic
        horizon = now + dt.timedelta(days=days)
        out = [{"id": lic.id, "supplier": lic.supplier_id, "robotId": lic.robot_id, "pool": lic.pool,
                "expiresAt": lic.expires_at, "expired": lic.expires_at <= now,
                "daysLeft": round((lic.expires_at - now).total_seconds() / 86400, 2)}
               for lic in best.values() if lic.expires_at < horizon]
        return sorted(out, key=lambda x: x["expiresAt"])


def group_key(group_by: str, state, created: dt.datetime, executor, app) -> tuple[str, str]:
    if group_by == "state":
        return state, state
    if group_by == "executor":
        return executor or "", executor or "(not placed)"
    if group_by == "app":
        return app[0] or "", app[1] or "(no app)"
    if group_by == "day":
        key = created.strftime("%Y-%m-%d")
        return key, key
    key = created.strftime("%Y-%m-%dT%H:00")
    return key, key
