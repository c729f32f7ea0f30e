"""The run queue: placement through the scheduling policies, failover and retries.

A run waits in the queue until an admitted executor of its target (one executor, a
pool, or a label set) has a free slot. Its *lease* is the assignment: it holds while
the executor keeps heartbeating. When heartbeats stop for the offline timeout, the
run goes back to the queue with ``attempt + 1`` and its last checkpoint, and the next
``Execute`` carries both; the old executor's late reports are refused. A failed
finish with an application error is retried with exponential backoff; business
errors (``errorCode`` in the configured range) are final.

A run's policies resolve, field by field: the request's own value, then what the
``rpahub_admit_run`` hook proposes for its package (the library answers with the app's
retry and scheduling policy, and refuses unapproved versions: SEC-5), then the pool's
scheduling policy, then the global settings.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time

import peewee

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.dispatching import Candidate, RunRequest
from rpahub_core.errors import BadRequest, Conflict, HubError, NotFound

from .index import ExecutorIndex
from .models import Pool, PoolMember, QueueEntry, RunPlan

log = logging.getLogger("rpahub.dispatch")


def _pause() -> None:
    """Let other greenlets run between placements (a gevent switch when patched)."""
    time.sleep(0)

WAITING = ("pending", "retrying")
_PLACEMENT = ("run_id", "executor_id", "pool", "labels", "supplier", "policy", "priority", "max_attempts",
              "backoff_s")
PLAN_COLUMNS = (*_PLACEMENT, "decided_attempt")
ENTRY_COLUMNS = (*_PLACEMENT, "not_before", "enqueued_at")
STALE = object()  # _place: the chosen executor is no longer free (the index was behind)
RECONCILE_S = 1.0  # a slice of the executor table is re-read this often (index.py)


class Dispatcher:
    def __init__(self, hub, executors, settings: dict):
        self.hub = hub
        self.ex = executors  # the executor-integration plugin's services
        self.business_errors = tuple(settings.get("business_error_codes", (20000, 29999)))
        self.default_attempts = int(settings.get("max_attempts", 3))
        self.default_backoff_s = int(settings.get("backoff_s", 10))
        self.max_backoff_s = int(settings.get("max_backoff_s", 600))
        self.wake_event = None  # set by the ticker
        self._swept_at: dt.datetime | None = None
        # Placements choose from memory; the placement transaction re-checks the choice.
        self.index = ExecutorIndex(executors.gateway.offline_after_s, self.supplier_kinds)
        executors.gateway.liveness_listeners.append(self.index.heard)
        self._reconciled_at = 0.0
        self._stale = ""  # the executor of the last STALE answer of _place

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
        if policy:
            self.check_policy(policy)
        proposed: dict = {}
        submission = {"package_id": package_id, "executor_id": executor_id, "pool": pool, "labels": list(labels),
                      "supplier": supplier}
        # A plugin may refuse the run here (e.g. an unapproved version outside the test pool).
        for answer in self.hub.pm.hook.rpahub_admit_run(submission=submission, hub=self.hub):
            proposed.update({k: v for k, v in (answer or {}).items() if v is not None})
        # request > rpahub_admit_run (the app) > pool (policy only, when placed) > settings
        policy = policy or proposed.get("policy")
        max_attempts = max_attempts or proposed.get("max_attempts") or self.default_attempts
        if backoff_s is None:
            backoff_s = proposed.get("backoff_s", self.default_backoff_s)
        with hubdb.atomic():
            run = self.ex.runs.create(package=package_id, arguments=list(arguments), user_id=user_id,
                                      user_name=user_name, video_required=video_required, video_mode=video_mode)
            plan = RunPlan.create(run_id=run.id, executor_id=executor_id, pool=pool,
                                  labels=json.dumps(sorted(labels)), supplier=supplier, policy=policy,
                                  priority=priority, max_attempts=max_attempts, backoff_s=backoff_s)
            self._enqueue(plan, not_before=utcnow())
        return run

    def submit_many(self, requests: list[dict]) -> list:
        """What :meth:`submit` does for each of ``requests`` (its keyword arguments, and the
        new run's ``run_id``), with one statement per table for all of them. Returns, in
        order, the run's id or the :class:`HubError` that refused it (the others still go
        in). Runs in the caller's transaction; the hook is asked about every run, as by
        :meth:`submit`."""
        from rpahub_plugins.executors.gateway import insert_rows
        from rpahub_plugins.executors.models import Executor, Package

        def named(model, field, values):
            values = {v for v in values if v}
            return {v for (v,) in model.select(field).where(field.in_(list(values))).tuples()} if values else set()

        pools = named(Pool, Pool.name, (r.get("pool") for r in requests))
        executors = named(Executor, Executor.id, (r.get("executor_id") for r in requests))
        packages = named(Package, Package.id, (r["package_id"] for r in requests))
        out: list = []
        runs, plans = [], []
        for r in requests:
            executor_id, pool, labels = r.get("executor_id"), r.get("pool"), list(r.get("labels") or ())
            supplier, policy = r.get("supplier"), r.get("policy")
            try:
                if sum(bool(x) for x in (executor_id, pool, labels)) > 1:
                    raise BadRequest("target: name one executor, one pool, or a label set")
                if pool and pool not in pools:
                    raise NotFound(f"pool: {pool} not found")
                if executor_id and executor_id not in executors:
                    raise NotFound(f"executorId: executor {executor_id} is not admitted")
                if policy:
                    self.check_policy(policy)
                proposed: dict = {}
                submission = {"package_id": r["package_id"], "executor_id": executor_id, "pool": pool,
                              "labels": labels, "supplier": supplier}
                for answer in self.hub.pm.hook.rpahub_admit_run(submission=submission, hub=self.hub):
                    proposed.update({k: v for k, v in (answer or {}).items() if v is not None})
                if r["package_id"] not in packages:
                    raise NotFound(f"packageId: package {r['package_id']} not found")
            except HubError as exc:
                out.append(exc)
                continue
            max_attempts = r.get("max_attempts") or proposed.get("max_attempts") or self.default_attempts
            backoff_s = r.get("backoff_s")
            if backoff_s is None:
                backoff_s = proposed.get("backoff_s", self.default_backoff_s)
            runs.append({"id": r["run_id"], "package_id": r["package_id"], "arguments": list(r.get("arguments") or ()),
                         "user_id": r["user_id"], "user_name": r["user_name"],
                         "video_required": r.get("video_required", False), "video_mode": r.get("video_mode", 0)})
            plans.append((r["run_id"], executor_id, pool, json.dumps(sorted(labels)), supplier,
                          policy or proposed.get("policy"), r.get("priority", 0), max_attempts, backoff_s))
            out.append(r["run_id"])
        if runs:
            now = utcnow()
            with hubdb.atomic():
                self.ex.runs.create_many(runs)
                insert_rows(RunPlan, PLAN_COLUMNS, [(*p, 0) for p in plans])
                insert_rows(QueueEntry, ENTRY_COLUMNS, [(*p, now, now) for p in plans])
                hubdb.after_commit(self.wake)
        return out

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

    def supplier_kinds(self) -> dict[str, tuple]:
        """Supplier code -> the package kinds its vendor adapter runs (empty: any)."""
        from rpahub_plugins.executors.models import Supplier

        return {s.code: tuple(getattr(self.ex.adapters.get(s.adapter), "package_kinds", ()) or ())
                for s in Supplier.select(Supplier.code, Supplier.adapter)}

    def candidates(self) -> dict[str, Candidate]:
        """Admitted executors alive now (heartbeat within the offline timeout), not paused,
        with a free slot, read from the database (what the index converges to).

        Each carries, in ``extra["kinds"]``, the package kinds its vendor adapter runs
        (empty: any), so matching needs no further queries.
        """
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        load: dict[str, int] = {}
        for row in (RunInstance.select(RunInstance.executor_id)
                    .where(RunInstance.state.in_(ACTIVE_STATES) & RunInstance.executor_id.is_null(False))):
            load[row.executor_id] = load.get(row.executor_id, 0) + 1
        kinds = self.supplier_kinds()
        alive = utcnow() - dt.timedelta(seconds=self.ex.gateway.offline_after_s)
        out, labels_of = {}, {}  # most executors share a handful of label sets: parse each once
        for robot_id, supplier, labels, slots in (
                Executor.select(Executor.id, Executor.supplier, Executor.labels, Executor.slots)
                .where((Executor.state != "offline") & (Executor.last_heartbeat >= alive)
                       & (Executor.paused == False)).tuples()):  # noqa: E712 (SQL, not Python)
            active = load.get(robot_id, 0)
            if active < slots:
                if labels not in labels_of:
                    labels_of[labels] = tuple(json.loads(labels))
                out[robot_id] = Candidate(id=robot_id, supplier=supplier, labels=labels_of[labels], active=active,
                                          slots=slots, extra={"kinds": kinds.get(supplier, ())})
        return out

    def maintain(self) -> None:
        """Keep the index close to the database: what changed here, and a slice of the rest."""
        self.index.refresh()
        if time.monotonic() - self._reconciled_at >= RECONCILE_S:
            self._reconciled_at = time.monotonic()
            self.index.reconcile_step()

    def tick(self) -> int:
        """Fail over lost runs, then place what waits. Returns how many runs were placed.

        Each placement is its own short transaction, and the worker yields between them,
        so a long queue never holds the database (or, on SQLite, the process) for long.
        """
        self.failover()
        now = utcnow()
        if self._swept_at is None or (now - self._swept_at).total_seconds() >= 60:
            self._swept_at = now
            self.sweep_decisions()
        try:
            placed = self._place_waiting()
        finally:
            self.maintain()  # after placing: a placement never waits for a reconcile slice
        return placed

    def _place_waiting(self) -> int:
        from rpahub_plugins.executors.models import Package, RunInstance

        placed = 0
        if not QueueEntry.select().where(QueueEntry.not_before <= utcnow()).exists():
            return 0  # nothing waits
        free = self.index.free()
        if not free:
            return 0
        pools = {m.executor_id: m.pool_id for m in PoolMember.select()}
        pool_rows = {p.name: p for p in Pool.select()}
        kinds: dict[str, str] = {}
        offset = 0
        while free:
            page = list(QueueEntry.select().where(QueueEntry.not_before <= utcnow())
                        .order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at).offset(offset).limit(200))
            if not page:
                break
            offset += len(page)
            for entry in page:
                if not free:
                    break
                run = RunInstance.get_or_none(RunInstance.id == entry.run_id)
                if run is None or run.state not in WAITING:
                    QueueEntry.delete().where(QueueEntry.run_id == entry.run_id).execute()
                    offset -= 1
                    continue
                if run.package_id not in kinds:
                    kinds[run.package_id] = Package.get_by_id(run.package_id).kind
                for _ in range(3):  # a stale choice is dropped and the policy asked again
                    choices = self._matching(entry, kinds[run.package_id], free, pools, pool_rows)
                    if not choices:
                        choice = None  # unplaceable now: the entries behind it still get their turn
                        break
                    choice = self._place(entry, run, kinds[run.package_id], choices, pools, pool_rows)
                    if choice is not STALE:
                        break
                    self.index.changed(self._stale)  # re-read before the next placement
                    free.pop(self._stale, None)
                else:
                    choice = None
                if choice is not None:
                    placed += 1
                    offset -= 1
                    left = Candidate(id=choice.id, supplier=choice.supplier, labels=choice.labels,
                                     active=choice.active + 1, slots=choice.slots, extra=choice.extra)
                    if left.free > 0:
                        free[choice.id] = left
                    else:
                        del free[choice.id]
                _pause()
        return placed

    def _place(self, entry, run, kind: str, choices: list[Candidate], pools, pool_rows):
        """Assign ``run`` to the policy's choice; None when another process took the run,
        STALE (and the executor in ``_stale``) when the choice can no longer take it."""
        request = RunRequest(id=run.id, package_kind=kind, policy=self._policy(entry, pool_rows),
                             pool=entry.pool, labels=tuple(json.loads(entry.labels)), supplier=entry.supplier,
                             attempt=run.attempt, previous_executor=entry.previous_executor)
        try:
            choice = self.hub.select_executor(request, choices)
        except Exception:  # a broken policy plugin must not stop dispatching
            log.exception("scheduling policy %r failed; using least_loaded", request.policy)
            choice = None
        if choice is None:
            from rpahub_plugins.sched_policies import least_loaded

            choice = least_loaded(request, choices)
        try:
            with hubdb.atomic():
                locked = QueueEntry.select().where(QueueEntry.run_id == entry.run_id)
                if hubdb.is_postgres():  # several hub processes share the queue
                    locked = locked.for_update(skip_locked=True)
                if locked.first() is None:
                    return None  # another process has it
                if not self._still_free(entry, kind, choice.id, pools, pool_rows):
                    self._stale = choice.id
                    return STALE
                self.ex.runs.assign(run, choice.id, detail=f"to {choice.id} by policy {request.policy}"
                                    + (f", attempt {run.attempt}" if run.attempt > 1 else ""))
                QueueEntry.delete().where(QueueEntry.run_id == entry.run_id).execute()
        except Conflict:  # the run stopped waiting (cancelled) meanwhile
            QueueEntry.delete().where(QueueEntry.run_id == entry.run_id).execute()
            return None
        return choice

    def _still_free(self, entry, kind: str, robot_id: str, pools, pool_rows) -> bool:
        """Inside the placement transaction, from the database: whether ``robot_id`` is
        alive, not paused, has a free slot and still matches ``entry``. On PostgreSQL its
        row stays locked until the commit, so a second process placing on it waits and
        then counts this run."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        query = Executor.select(Executor.supplier, Executor.labels, Executor.slots, Executor.paused,
                                Executor.state, Executor.last_heartbeat).where(Executor.id == robot_id)
        if hubdb.is_postgres():
            query = query.for_update()
        row = query.tuples().first()
        if row is None:
            return False
        supplier, labels, slots, paused, state, heard = row
        alive = utcnow() - dt.timedelta(seconds=self.ex.gateway.offline_after_s)
        if paused or state == "offline" or heard is None or heard < alive:
            return False
        active = RunInstance.select().where((RunInstance.executor_id == robot_id)
                                            & RunInstance.state.in_(ACTIVE_STATES)).count()
        if active >= slots:
            return False
        kinds = self.index.kinds.get(supplier)
        if kinds is None:
            kinds = self.supplier_kinds().get(supplier, ())
        now = Candidate(id=robot_id, supplier=supplier, labels=tuple(json.loads(labels)), active=active, slots=slots,
                        extra={"kinds": kinds})
        return bool(self._matching(entry, kind, {robot_id: now}, pools, pool_rows))

    def _policy(self, entry: QueueEntry, pool_rows) -> str:
        if entry.policy:
            return entry.policy
        if entry.pool and entry.pool in pool_rows:
            return pool_rows[entry.pool].policy
        return "affinity" if json.loads(entry.labels) else "least_loaded"

    def _matching(self, entry, kind: str, free: dict[str, Candidate], pools: dict[str, str],
                  pool_rows) -> list[Candidate]:
        wanted = set(json.loads(entry.labels))
        pool = pool_rows.get(entry.pool) if entry.pool else None
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
            if c.extra.get("kinds") and kind not in c.extra["kinds"]:
                continue
            out.append(c)
        return sorted(out, key=lambda c: c.id)

    # -- failover and retries -----------------------------------------------------------

    def failover(self) -> int:
        """Requeue runs whose lease expired: their executor went silent, restarted or
        stopped naming them."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import RunInstance

        if hubdb.availability.recovering(self.ex.gateway.offline_after_s):
            # The database was away: leases expired because nobody could renew them, not
            # because their executors went silent. Requeueing now would run them twice; they
            # get a full offline timeout from the last failure to be heard again.
            return 0
        lost = list(RunInstance.select().where(RunInstance.state.in_(ACTIVE_STATES)
                                               & (RunInstance.lease_expires_at < utcnow())).limit(500))
        count = 0
        for run in lost:
            with hubdb.atomic():
                if run.state == "stopping":  # the stop can no longer be delivered: the run ends here
                    self.ex.runs.fail(run, reason=f"executor {run.executor_id} lost while stopping",
                                      state="cancelled")
                    continue
                if self._retry_or_fail(run, reason=f"executor {run.executor_id} no longer holds it",
                                       backoff=False):
                    count += 1
            _pause()
        return count

    def sweep_decisions(self) -> int:
        """Decide failed runs whose retry decision was lost (a crash between the finish and
        its event). ``tick`` runs it about once a minute."""
        from rpahub_plugins.executors.models import RunEvent, RunInstance

        now = utcnow()
        undecided = (RunInstance.select().join(RunPlan, peewee.JOIN.LEFT_OUTER,
                                                on=(RunPlan.run_id == RunInstance.id))
                     .where((RunInstance.state == "failed") & (RunInstance.finish_status == 2)
                            & (RunInstance.finished_at < now - dt.timedelta(seconds=10))
                            & (RunInstance.finished_at > now - dt.timedelta(days=1))
                            & (RunPlan.run_id.is_null() | (RunPlan.decided_attempt < RunInstance.attempt)))
                     .limit(200))
        count = 0
        for run in list(undecided):
            stopped = RunEvent.select().where((RunEvent.run == run.id) & (RunEvent.state == "stopping")).exists()
            self.on_finished(run.id, 2, run.error_code, stop_requested=stopped)
            count += 1
        return count

    def on_finished(self, run_id: str, status: int, error_code: int | None, *, stop_requested: bool = False) -> None:
        from rpahub_plugins.executors.models import RunInstance

        with hubdb.atomic():
            run = RunInstance.get_or_none(RunInstance.id == run_id)
            if run is None:
                return
            plan = RunPlan.get_or_none(RunPlan.run_id == run.id)
            if plan is not None and plan.decided_attempt >= run.attempt:
                return  # this attempt was decided already (a repeated event, or the sweep)
            decided = run.attempt
            business = error_code is not None and self.business_errors[0] <= error_code <= self.business_errors[1]
            # A run someone asked to stop is never restarted, however it ended.
            retried = status == 2 and not business and not stop_requested and self._retry_or_fail(
                run, reason=f"failed with errorCode {error_code}", backoff=True, final_state=run.state)
            plan = RunPlan.get_or_none(RunPlan.run_id == run_id) or RunPlan.create(run_id=run_id, max_attempts=1)
            RunPlan.update(decided_attempt=decided).where(RunPlan.run_id == run_id).execute()
            if retried:
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
        if not self.ex.runs.requeue(run, reason=reason):
            return True  # someone else took it back first: nothing left to decide here
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
        self.check_policy(policy)
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

    def check_policy(self, name: str, field: str = "policy") -> None:
        """Refuse (400, naming ``field``) a policy no scheduling-policy plugin answers for."""
        from rpahub_plugins.sched_policies import POLICIES

        if name not in POLICIES and not self._known_policy(name):
            raise BadRequest(f"{field}: unknown policy {name!r} ({', '.join(sorted(POLICIES))})")

    def _known_policy(self, name: str) -> bool:
        probe = RunRequest(id="probe", package_kind="", policy=name)
        return self.hub.select_executor(probe, [Candidate(id="probe", supplier="")]) is not None

