"""What each kind of alert rule measures, from the rows as they are now.

``measure(rule, hub)`` answers a :class:`Measurement`: the value compared with the
rule's threshold, whether the condition holds, a sentence for people and labels for
machines.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

from rpahub_core.db import utcnow
from rpahub_plugins.executors.models import Executor, RunInstance

from .records import share_models
from .stats import Stats

# Which filters each kind understands (anything else is refused when the rule is saved).
FILTERS = {
    "failure_rate": ("appId", "executorId", "pool", "minRuns"),
    "executor_offline": ("executorId", "pool"),
    "queue_wait": ("executorId", "pool"),
    "licence_expiry": ("supplier", "robotId", "pool"),
}
UNITS = {"failure_rate": "%", "executor_offline": " executors", "queue_wait": " min", "licence_expiry": " days"}


@dataclass
class Measurement:
    value: float | None
    breached: bool
    text: str
    labels: dict = field(default_factory=dict)


def measure(rule, hub) -> Measurement:
    filters = json.loads(rule.filters or "{}")
    return KINDS[rule.kind](rule, filters, hub)


def _failure_rate(rule, f: dict, hub) -> Measurement:
    since = utcnow() - dt.timedelta(minutes=rule.window_min)
    query = RunInstance.select(RunInstance.state).where(
        (RunInstance.finished_at >= since) & RunInstance.state.in_(("success", "failed")))
    if f.get("executorId"):
        query = query.where(RunInstance.executor_id == f["executorId"])
    if f.get("appId"):
        share = share_models(hub)
        if share is None:
            return Measurement(None, False, "the share plugin is not enabled: no run belongs to an app")
        query = query.where(RunInstance.id.in_(share[1].select(share[1].run_id).where(share[1].app == f["appId"])))
    if f.get("pool"):
        if hub.pm.get_plugin("dispatch") is None:
            return Measurement(None, False, "the dispatch plugin is not enabled: no run belongs to a pool")
        from rpahub_plugins.dispatch.models import RunPlan

        query = query.where(RunInstance.id.in_(RunPlan.select(RunPlan.run_id).where(RunPlan.pool == f["pool"])))
    states = [s for (s,) in query.tuples()]
    failed, total = states.count("failed"), len(states)
    labels = {"failed": failed, "finished": total, "windowMinutes": rule.window_min}
    if total < int(f.get("minRuns") or 1):
        return Measurement(None, False, f"{total} runs finished in the last {rule.window_min} min: too few to judge",
                           labels)
    rate = round(100.0 * failed / total, 2)
    return Measurement(rate, rate >= rule.threshold,
                       f"failure rate {rate:g}% ({failed} of {total} runs failed in the last {rule.window_min} min; "
                       f"threshold {rule.threshold:g}%)", labels)


def _pool_members(pool: str) -> set[str] | None:
    try:
        from rpahub_plugins.dispatch.models import Pool, PoolMember
    except ImportError:  # pragma: no cover - dispatch is a built-in
        return None
    row = Pool.get_or_none(Pool.name == pool)
    if row is None:
        return set()
    members = {m for (m,) in PoolMember.select(PoolMember.executor_id).where(PoolMember.pool == pool).tuples()}
    wanted = set(json.loads(row.labels or "[]"))
    if wanted:  # executors carrying all the pool's labels belong to it too
        for robot, labels in Executor.select(Executor.id, Executor.labels).tuples():
            if wanted <= set(json.loads(labels or "[]")):
                members.add(robot)
    return members


def _executor_offline(rule, f: dict, hub) -> Measurement:
    silent_since = utcnow() - dt.timedelta(minutes=rule.window_min)
    query = Executor.select(Executor.id).where(
        (Executor.state == "offline") & Executor.registered_at.is_null(False)
        & (Executor.last_heartbeat.is_null() | (Executor.last_heartbeat <= silent_since)))
    if f.get("executorId"):
        query = query.where(Executor.id == f["executorId"])
    offline = sorted(robot for (robot,) in query.tuples())
    if f.get("pool"):
        members = _pool_members(f["pool"]) or set()
        offline = [r for r in offline if r in members]
    shown = ", ".join(offline[:10]) + (" ..." if len(offline) > 10 else "")
    return Measurement(float(len(offline)), len(offline) >= max(rule.threshold, 1),
                       f"{len(offline)} executors offline for {rule.window_min} min or more"
                       + (f": {shown}" if offline else ""), {"executors": offline[:50]})


def _queue_wait(rule, f: dict, hub) -> Measurement:
    if hub.pm.get_plugin("dispatch") is None:
        return Measurement(None, False, "the dispatch plugin is not enabled: there is no queue")
    from rpahub_plugins.dispatch.models import QueueEntry

    now = utcnow()
    query = QueueEntry.select(QueueEntry.run_id, QueueEntry.enqueued_at, QueueEntry.not_before).where(
        QueueEntry.not_before <= now)
    if f.get("pool"):
        query = query.where(QueueEntry.pool == f["pool"])
    if f.get("executorId"):
        query = query.where(QueueEntry.executor_id == f["executorId"])
    waits = sorted(((now - max(enq, nb)).total_seconds() / 60, run) for run, enq, nb in query.tuples())
    if not waits:
        return Measurement(0.0, False, "no run is waiting in the queue", {"waiting": 0})
    longest, run_id = waits[-1]
    longest = round(longest, 2)
    over = sum(1 for w, _ in waits if w >= rule.threshold)
    return Measurement(longest, longest >= rule.threshold,
                       f"run {run_id} has waited {longest:g} min for an executor ({len(waits)} waiting, "
                       f"{over} longer than {rule.threshold:g} min)", {"waiting": len(waits), "oldestRunId": run_id})


def _licence_expiry(rule, f: dict, hub) -> Measurement:
    ending = Stats(hub).licences(max(0, int(rule.threshold)))
    for key, attr in (("supplier", "supplier"), ("robotId", "robotId"), ("pool", "pool")):
        if f.get(key):
            ending = [lic for lic in ending if lic[attr] == f[key]]
    names = [lic["robotId"] or f"pool {lic['pool']}" for lic in ending]
    soonest = min((lic["daysLeft"] for lic in ending), default=None)
    return Measurement(float(len(ending)), bool(ending),
                       f"{len(ending)} licences end within {rule.threshold:g} days"
                       + (f" (soonest in {soonest:g} days): {', '.join(names[:10])}" if ending else ""),
                       {"licences": [lic["id"] for lic in ending[:50]], "soonestDaysLeft": soonest})


KINDS = {"failure_rate": _failure_rate, "executor_offline": _executor_offline, "queue_wait": _queue_wait,
         "licence_expiry": _licence_expiry}
