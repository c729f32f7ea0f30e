"""The autoscaler: gathers each pool's load, asks :func:`decide`, lets the providers act.

Every evaluation calls ``hub.scale_pool`` for every enabled policy, also when the
size stays: providers reconcile towards the size they are given (an executor that
crashed is replaced) and report how many exist, which becomes the pool's size.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

import peewee

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, NotFound, ValidationFailed
from rpahub_plugins.dispatch.models import Pool, PoolMember, QueueEntry
from rpahub_plugins.executors.gateway import ACTIVE_STATES
from rpahub_plugins.executors.models import Executor, RunInstance

from .decide import Decision, ExecutorState, Limits, decide
from .models import AutoscaleEvent, AutoscalePolicy

log = logging.getLogger("rpahub.autoscale")


@dataclass(frozen=True)
class ScalingPool:
    """What a provider receives as ``pool`` in ``rpahub_scale_pool``."""

    name: str
    provider: str
    min: int
    max: int


@dataclass(frozen=True)
class Outcome:
    pool: str
    before: int
    after: int
    desired: int
    reason: str


def limits_of(policy: AutoscalePolicy) -> Limits:
    return Limits(min=policy.min_size, max=policy.max_size, queue_per_executor=policy.queue_per_executor,
                  max_wait_s=policy.max_wait_s, idle_s=policy.idle_s, cooldown_s=policy.cooldown_s)


class Autoscaler:
    def __init__(self, hub, settings: dict):
        self.hub = hub
        # Providers other plugins bring are named in [plugins.autoscale] providers.
        self.providers = {"local", *settings.get("providers", [])}
        self.local_max = int(settings.get("local_max_executors", 16))
        self.wake_event = None  # set by the ticker

    def wake(self) -> None:
        if self.wake_event is not None:
            self.wake_event.set()

    # -- policies ---------------------------------------------------------------------

    def set_policy(self, pool: str, *, provider: str, min_size: int, max_size: int, queue_per_executor: int,
                   max_wait_s: int, idle_s: int, cooldown_s: int, enabled: bool) -> AutoscalePolicy:
        errors = []
        if provider not in self.providers:
            errors.append({"field": "provider",
                           "message": f"unknown provider {provider!r} (known: {', '.join(sorted(self.providers))})"})
        if min_size > max_size:
            errors.append({"field": "min", "message": f"must not exceed max ({max_size})"})
        if provider == "local" and max_size > self.local_max:
            errors.append({"field": "max", "message": f"the local provider starts at most {self.local_max} executors"})
        if errors:
            raise ValidationFailed(errors)
        values = dict(provider=provider, min_size=min_size, max_size=max_size, queue_per_executor=queue_per_executor,
                      max_wait_s=max_wait_s, idle_s=idle_s, cooldown_s=cooldown_s, enabled=enabled,
                      updated_at=utcnow())
        with hubdb.atomic():
            if Pool.get_or_none(Pool.name == pool) is None:
                raise NotFound(f"pool {pool} not found")
            policy = AutoscalePolicy.get_or_none(AutoscalePolicy.pool == pool)
            if policy is None:
                policy = AutoscalePolicy.create(pool=pool, **values)
            else:
                if policy.provider != provider and policy.size:
                    # The old provider's executors would be left running with nobody to stop them.
                    raise Conflict(f"provider: scale pool {pool} to 0 with {policy.provider} before changing it")
                AutoscalePolicy.update(**values).where(AutoscalePolicy.pool == pool).execute()
                policy = AutoscalePolicy.get_by_id(pool)
        hubdb.after_commit(self.wake)
        return policy

    # -- evaluation -------------------------------------------------------------------

    def evaluate(self, now: dt.datetime | None = None) -> list[Outcome]:
        """One pass over the enabled policies; returns what happened to each pool."""
        now = now or utcnow()
        outcomes = []
        for policy in list(AutoscalePolicy.select().where(AutoscalePolicy.enabled == True)):  # noqa: E712
            try:
                outcome = self._evaluate(policy, now)
            except Exception:  # one pool's provider failing never stops the others
                log.exception("autoscaling pool %s failed", policy.pool)
                continue
            if outcome is not None:
                outcomes.append(outcome)
        self._housekeep()
        return outcomes

    def _housekeep(self) -> None:
        """Let the local provider stop the executors it drained, policy or not.

        A deleted pool's policy goes as soon as no executor serves it, and a disabled
        policy is not evaluated: without this, executors still draining out of such a
        pool would never be sent SIGTERM.
        """
        local = self.hub.state.get("autoscale.local")
        if local is None:
            return
        try:
            local.housekeep()
        except Exception:  # never stops the next tick
            log.exception("stopping drained local executors failed")

    def _evaluate(self, policy: AutoscalePolicy, now: dt.datetime) -> Outcome | None:
        pool_gone = Pool.get_or_none(Pool.name == policy.pool) is None
        if pool_gone:
            decision = Decision(0, "pool deleted")
        else:
            depth, oldest = self.queue(policy.pool, now)
            decision = decide(limits_of(policy), policy.size, self.members(policy.pool, now), depth, oldest,
                              policy.last_action_at, now)
        target = ScalingPool(policy.pool, policy.provider, policy.min_size, policy.max_size)
        count = self.hub.scale_pool(target, decision.desired)
        if count is None:
            log.warning("no scaling provider answered for pool %s (provider %s)", policy.pool, policy.provider)
            return None
        acted = decision.desired != policy.size
        reason = decision.reason if acted else f"provider {policy.provider} reported {count} executors"
        with hubdb.atomic():
            if count != policy.size:
                self._record(policy, count, reason, now)
            changes: dict = {AutoscalePolicy.size: count}
            if acted:
                changes[AutoscalePolicy.last_action_at] = now
            AutoscalePolicy.update(changes).where(AutoscalePolicy.pool == policy.pool).execute()
            if pool_gone and count == 0:
                AutoscalePolicy.delete().where(AutoscalePolicy.pool == policy.pool).execute()
        return Outcome(policy.pool, policy.size, count, decision.desired, decision.reason)

    def _record(self, policy: AutoscalePolicy, count: int, reason: str, now: dt.datetime) -> None:
        AutoscaleEvent.create(at=now, pool=policy.pool, provider=policy.provider, from_size=policy.size,
                              to_size=count, reason=reason[:512])
        detail = {"from": policy.size, "to": count, "reason": reason, "provider": policy.provider}
        self.hub.audit("pool.scale", target=policy.pool, detail=detail, source="autoscale")
        self.hub.publish("pool.scaled", pool=policy.pool, **detail)
        log.info("pool %s: %d -> %d executors (%s)", policy.pool, policy.size, count, reason)

    # -- inputs of the decision ---------------------------------------------------------

    def queue(self, pool: str, now: dt.datetime) -> tuple[int, float | None]:
        """Runs due and waiting for ``pool``, and how long the oldest has waited (seconds)."""
        due = QueueEntry.select().where((QueueEntry.pool == pool) & (QueueEntry.not_before <= now))
        oldest = due.order_by(QueueEntry.not_before).first()
        if oldest is None:
            return 0, None
        # A run in retry backoff waits from when it became due, not from when it was first queued.
        since = max(oldest.enqueued_at, oldest.not_before)
        return due.count(), max(0.0, (now - since).total_seconds())

    def members(self, pool: str, now: dt.datetime) -> list[ExecutorState]:
        """The pool's registered members, busy or idle since their last run (or registration)."""
        ids = [m.executor_id for m in PoolMember.select(PoolMember.executor_id).where(PoolMember.pool == pool)]
        if not ids:
            return []
        online = list(Executor.select().where(Executor.id.in_(ids) & (Executor.state != "offline")))
        busy = {r.executor_id for r in RunInstance.select(RunInstance.executor_id).where(
            RunInstance.executor_id.in_(ids) & RunInstance.state.in_(ACTIVE_STATES))}
        last = peewee.fn.MAX(RunInstance.finished_at).python_value(RunInstance.finished_at.python_value)
        ended = {r.executor_id: r.last for r in RunInstance.select(RunInstance.executor_id, last.alias("last"))
                 .where(RunInstance.executor_id.in_(ids) & RunInstance.finished_at.is_null(False))
                 .group_by(RunInstance.executor_id)}
        out = []
        for e in online:
            if e.id in busy:
                out.append(ExecutorState(e.id, busy=True))
                continue
            since = max((t for t in (e.registered_at, ended.get(e.id)) if t is not None), default=now)
            out.append(ExecutorState(e.id, busy=False, idle_s=max(0.0, (now - since).total_seconds())))
        return sorted(out, key=lambda e: e.id)
