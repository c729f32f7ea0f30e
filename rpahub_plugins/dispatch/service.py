"""The run queue: placement through the scheduling policies, failover and retries.

A run waits in the queue until an admitted executor of its target (one executor, a
pool, or a label set) has a free slot. Its *lease* is the assignment: it holds while
the executor keeps heartbeating. When heartbeats stop for the offline timeout, the
run goes back to the queue with ``attempt + 1`` and its last checkpoint, and the next
``Execute`` carries both; the old executor's late reports are refused. A failed
finish with an application error is retried with exponential backoff; business
errors (``errorCode`` in the configured range) are final.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.dispatching import Candidate, RunRequest
from rpahub_core.errors import BadRequest, Conflict, NotFound

from .models import Pool, PoolMember, QueueEntry, RunPlan

log = logging.getLogger("rpahub.dispatch")

WAITING = ("pending", "retrying")


class Dispatcher:
    def __init__(self, hub, executors, settings: dict):
        self.hub = hub
        self.ex = executors  # the executor-integration plugin's services
        self.business_errors = tuple(settings.get("business_error_codes", (20000, 29999)))
        self.default_attempts = int(settings.get("max_attempts", 3))
        self.default_backoff_s = int(settings.get("backoff_s", 10))
        self.max_backoff_s = int(settings.get("max_backoff_s", 600))
        self.wake_event = None  # set by the ticker

    # -- submitting ----------------------------------------------------------------

    def submit(self, *, package_id: str, user_id: str, user_name: str, arguments: list[dict] = (),
               executor_id: str | None = None, pool: str | None = None, labels: list[str] = (),
               supplier: str | None = None, policy: str | None = None, priority: int = 0,
               max_attempts: int | None = None, backoff_s: int | None = None, video_required: bool = False,
               video_mode: int = 0):
        from rpahub_plugins.executors.models import Executor

        if sum(bool(x) for x in (executor_id, pool, labels)) > 1:
            raise BadRequest("target: name one executor, one pool, or a label set")
        if pool and not Pool.get_or_none(Pool.name == pool):
            raise NotFound(f"pool: {pool} not found")
        if executor_id and not Executor.get_or_none(Executor.id == executor_id):
            raise NotFound(f"executorId: executor {executor_id} is not admitted")
        with hubdb.atomic():
            run = self.ex.runs.create(package=package_id, arguments=list(arguments), user_id=user_id,
                                      user_name=user_name, video_required=video_required, video_mode=video_mode)
            plan = RunPlan.create(run_id=run.id, executor_id=executor_id, pool=pool,
                                  labels=json.dumps(sorted(labels)), supplier=supplier, policy=policy,
                                  priority=priority, max_attempts=max_attempts or self.default_attempts,
                                  backoff_s=self.default_backoff_s if backoff_s is None else backoff_s)
            self._enqueue(plan, not_before=utcnow())
        return run

    def _enqueue(self, plan: RunPlan, *, not_before: dt.datetime, previous: str | None = None) -> None:
        QueueEntry.delete().where(QueueEntry.run_id == plan.run_id).execute()
        QueueEntry.insert(run_id=plan.run_id, executor_id=plan.executor_id, pool=plan.pool, labels=plan.labels,
                          supplier=plan.supplier, policy=plan.policy, priority=plan.priority,
                          max_attempts=plan.max_attempts, backoff_s=plan.backoff_s, not_before=not_before,
                          previous_executor=previous).execute()
        hubdb.after_commit(self.wake)

    def wake(self) -> None:
        if self.wake_event is not None:
            self.wake_event.set()

    # -- placing -------------------------------------------------------------------

    def candidates(self) -> dict[str, Candidate]:
        """Admitted executors that are online and have a free slot."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        load: dict[str, int] = {}
        for row in (RunInstance.select(RunInstance.executor_id)
                    .where(RunInstance.state.in_(ACTIVE_STATES) & RunInstance.executor_id.is_null(False))):
            load[row.executor_id] = load.get(row.executor_id, 0) + 1
        out = {}
        for e in Executor.select().where(Executor.state != "offline"):
            active = load.get(e.id, 0)
            if active < e.slots:
                out[e.id] = Candidate(id=e.id, supplier=e.supplier_id, labels=tuple(json.loads(e.labels)),
                                      active=active, slots=e.slots)
        return out

    def tick(self) -> int:
        """Fail over lost runs, then place what waits. Returns how many runs were placed."""
        self.failover()
        placed = 0
        from rpahub_plugins.executors.models import RunInstance

        with hubdb.atomic():
            due = (QueueEntry.select().where(QueueEntry.not_before <= utcnow())
                   .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at).limit(200))
            if hubdb.is_postgres():  # several hub processes share the queue
                due = due.for_update(skip_locked=True)
            entries = list(due)
            if not entries:
                return 0
            free = self.candidates()
            pools = {m.executor_id: m.pool_id for m in PoolMember.select()}
            for entry in entries:
                run = RunInstance.get_or_none(RunInstance.id == entry.run_id)
                if run is None or run.state not in WAITING:
                    entry.delete_instance()
                    continue
                choices = self._matching(entry, run, free, pools)
                if not choices:
                    continue
                request = RunRequest(id=run.id, package_kind=run.package.kind, policy=self._policy(entry),
                                     pool=entry.pool, labels=tuple(json.loads(entry.labels)),
                                     supplier=entry.supplier, attempt=run.attempt,
                                     previous_executor=entry.previous_executor)
                choice = self.hub.select_executor(request, choices) or choices[0]
                self.ex.runs.assign(run, choice.id, detail=f"to {choice.id} by policy {request.policy}"
                                    + (f", attempt {run.attempt}" if run.attempt > 1 else ""))
                entry.delete_instance()
                placed += 1
                left = Candidate(id=choice.id, supplier=choice.supplier, labels=choice.labels,
                                 active=choice.active + 1, slots=choice.slots)
                if left.free > 0:
                    free[choice.id] = left
                else:
                    del free[choice.id]
        return placed

    def _policy(self, entry: QueueEntry) -> str:
        if entry.policy:
            return entry.policy
        if entry.pool:
            pool = Pool.get_or_none(Pool.name == entry.pool)
            if pool is not None:
                return pool.policy
        return "affinity" if json.loads(entry.labels) else "least_loaded"

    def _matching(self, entry, run, free: dict[str, Candidate], pools: dict[str, str]) -> list[Candidate]:
        from rpahub_plugins.executors.models import Executor

        wanted = set(json.loads(entry.labels))
        pool_labels: set[str] = set()
        if entry.pool:
            pool = Pool.get_or_none(Pool.name == entry.pool)
            pool_labels = set(json.loads(pool.labels)) if pool else set()
        out = []
        for c in free.values():
            if entry.executor_id and c.id != entry.executor_id:
                continue
            if entry.pool and pools.get(c.id) != entry.pool and not (pool_labels and pool_labels <= set(c.labels)):
                continue
            if wanted and not wanted <= set(c.labels):
                continue
            if entry.supplier and c.supplier != entry.supplier:
                continue
            if not self.ex.runs.accepts(Executor.get_by_id(c.id), run.package.kind):
                continue
            out.append(c)
        return sorted(out, key=lambda c: c.id)

    # -- failover and retries -----------------------------------------------------------

    def failover(self) -> int:
        """Requeue runs whose executor stopped heartbeating (its lease expired)."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        cutoff = utcnow() - dt.timedelta(seconds=self.ex.gateway.offline_after_s)
        lost = (RunInstance.select(RunInstance, Executor.last_heartbeat)
                .join(Executor, on=(RunInstance.executor_id == Executor.id))
                .where(RunInstance.state.in_(ACTIVE_STATES) & (Executor.last_heartbeat < cutoff)))
        count = 0
        for run in list(lost):
            with hubdb.atomic():
                current = RunInstance.get_by_id(run.id)
                if current.state not in ACTIVE_STATES or current.executor_id != run.executor_id:
                    continue  # someone else handled it meanwhile
                if current.state == "stopping":  # the stop can no longer be delivered: the run ends here
                    self.ex.runs.fail(current, reason=f"executor {run.executor_id} lost while stopping",
                                      state="cancelled")
                    continue
                self._retry_or_fail(current, reason=f"executor {run.executor_id} stopped heartbeating",
                                    backoff=False)
                count += 1
        return count

    def on_finished(self, run_id: str, status: int, error_code: int | None, *, stop_requested: bool = False) -> None:
        from rpahub_plugins.executors.models import RunInstance

        with hubdb.atomic():
            run = RunInstance.get_or_none(RunInstance.id == run_id)
            if run is None:
                return
            business = error_code is not None and self.business_errors[0] <= error_code <= self.business_errors[1]
            # A run someone asked to stop is never restarted, however it ended.
            if status == 2 and not business and not stop_requested and self._retry_or_fail(run, reason=f"failed with errorCode {error_code}",
                                                                    backoff=True, final_state=run.state):
                return
            self.hub.publish("run.completed", runId=run.id, state=run.state, status=status, errorCode=error_code,
                             attempt=run.attempt)

    def _retry_or_fail(self, run, *, reason: str, backoff: bool, final_state: str | None = None) -> bool:
        """Requeue ``run`` if attempts remain (True); else end it as failed (False)."""
        plan = RunPlan.get_or_none(RunPlan.run_id == run.id)
        max_attempts = plan.max_attempts if plan else 1
        if run.attempt >= max_attempts:
            if final_state is None:
                self.ex.runs.fail(run, reason=f"{reason}; no attempts left ({run.attempt}/{max_attempts})")
            return False
        previous = run.executor_id
        self.ex.runs.requeue(run, reason=reason)
        delay = 0
        if backoff and plan:
            delay = min(self.max_backoff_s, plan.backoff_s * 2 ** (run.attempt - 2))
        if plan is None:  # started directly on an executor: retry anywhere its package can run
            plan = RunPlan.create(run_id=run.id, max_attempts=max_attempts, backoff_s=self.default_backoff_s)
        self._enqueue(plan, not_before=utcnow() + dt.timedelta(seconds=delay), previous=previous)
        return True

    # -- pools ----------------------------------------------------------------------------

    def set_pool(self, name: str, *, description: str, policy: str, members: list[str], labels: list[str],
                 create: bool) -> Pool:
        from rpahub_plugins.sched_policies import POLICIES

        if policy not in POLICIES and not self._known_policy(policy):
            raise BadRequest(f"policy: unknown policy {policy!r} ({', '.join(sorted(POLICIES))})")
        with hubdb.atomic():
            pool = Pool.get_or_none(Pool.name == name)
            if create and pool is not None:
                raise Conflict(f"name: pool {name} exists")
            if not create and pool is None:
                raise NotFound(f"pool {name} not found")
            if pool is None:
                pool = Pool.create(name=name, description=description, policy=policy,
                                   labels=json.dumps(sorted(labels)))
            else:
                pool.description, pool.policy, pool.labels = description, policy, json.dumps(sorted(labels))
                pool.save()
            PoolMember.delete().where(PoolMember.pool == pool).execute()
            for member in sorted(set(members)):
                PoolMember.create(pool=pool, executor_id=member)
        hubdb.after_commit(self.wake)
        return pool

    def _known_policy(self, name: str) -> bool:
        probe = RunRequest(id="probe", package_kind="", policy=name)
        return self.hub.select_executor(probe, [Candidate(id="probe", supplier="")]) is not None

