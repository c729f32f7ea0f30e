"""Multi-task orchestration (T/CES 130-2022, 6.5.1b): flows whose tasks are runs with
dependencies.

A flow run snapshots its flow, submits through the dispatcher every task whose parents
all succeeded, and advances on each ``run.completed``. A child receives its parents'
outputs and the ids of the files they uploaded as arguments. Every change to a flow
run happens with its row locked, and a task is claimed by a conditional update
(``waiting`` → ``queued``) before it is submitted, so a repeated event, or the same
event seen by two hub processes, never submits a task twice.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, HubError, NotFound, ValidationFailed
from rpahub_core.web import parse_model

from . import graph
from .models import Flow, FlowEdge, FlowRun, FlowTask, FlowTaskRun
from .schemas import FlowIn, FlowPut

OPEN = ("pending", "running")
ON_EXECUTOR = ("queued", "running")  # task runs whose run the dispatcher holds
TASK_DONE = ("success", "failed", "skipped", "cancelled")
RUN_DONE = ("success", "failed", "cancelled")
BROKEN = ("failed", "cancelled")  # a task that did not succeed blocks its descendants


class Plan:
    """A flow run's snapshot, read for the graph questions the run asks."""

    def __init__(self, definition: Mapping[str, Any]):
        self.policy = definition["failurePolicy"]
        self.order: list[str] = definition["order"]
        self.tasks = {t["key"]: t for t in definition["tasks"]}
        position = {k: i for i, k in enumerate(self.order)}
        self.parents = {k: sorted(t["parents"], key=position.__getitem__) for k, t in self.tasks.items()}
        self.children = graph.children_of([(k, self.parents[k]) for k in self.order])

    def ready(self, states: Mapping[str, str]) -> list[str]:
        return [k for k in self.order
                if states[k] == "waiting" and all(states[p] == "success" for p in self.parents[k])]


class Flows:
    def __init__(self, hub):
        self.hub = hub

    # -- definitions ---------------------------------------------------------------

    def create(self, data: FlowIn | Mapping, *, user_name: str) -> Flow:
        spec, order = self._checked(FlowIn, data)
        with hubdb.atomic():
            if Flow.select().where(Flow.name == spec.name).exists():
                raise Conflict(f"name: flow {spec.name} exists")
            flow = Flow.create(name=spec.name, description=spec.description, failure_policy=spec.failurePolicy,
                               created_by=user_name)
            self._store_graph(flow, spec, order)
        return flow

    def update(self, flow_id: str, data: FlowPut | Mapping) -> Flow:
        spec, order = self._checked(FlowPut, data)
        with hubdb.atomic():
            flow = self.get(flow_id)
            if spec.version is not None and spec.version != flow.version:
                raise Conflict(f"version: flow {flow.name} is at version {flow.version}, not {spec.version}")
            if Flow.select().where((Flow.name == spec.name) & (Flow.id != flow.id)).exists():
                raise Conflict(f"name: flow {spec.name} exists")
            # Conditional on the version read: two concurrent edits cannot both win.
            changed = Flow.update(name=spec.name, description=spec.description, failure_policy=spec.failurePolicy,
                                  version=Flow.version + 1, updated_at=utcnow()).where(
                (Flow.id == flow.id) & (Flow.version == flow.version)).execute()
            if not changed:
                raise Conflict(f"version: flow {flow.name} changed meanwhile")
            self._store_graph(flow, spec, order)
        return self.get(flow_id)

    def delete(self, flow_id: str) -> None:
        """Its runs stay, as history: each follows the snapshot it started with."""
        with hubdb.atomic():
            flow = self.get(flow_id)
            FlowEdge.delete().where(FlowEdge.flow == flow.id).execute()
            FlowTask.delete().where(FlowTask.flow == flow.id).execute()
            flow.delete_instance()

    def get(self, flow_id: str) -> Flow:
        flow = Flow.get_or_none(Flow.id == flow_id)
        if flow is None:
            raise NotFound(f"flow {flow_id} not found")
        return flow

    def definition(self, flow: Flow) -> dict[str, Any]:
        """Tasks in topological order, the edges and the order: enough to draw the DAG."""
        tasks = list(FlowTask.select().where(FlowTask.flow == flow.id).order_by(FlowTask.position))
        edges = list(FlowEdge.select().where(FlowEdge.flow == flow.id).order_by(FlowEdge.id))
        parents: dict[str, list[str]] = {t.key: [] for t in tasks}
        for e in edges:
            parents[e.child].append(e.parent)
        return {
            "failurePolicy": flow.failure_policy,
            "tasks": [{"key": t.key, "packageId": t.package_id, "parents": parents[t.key],
                       "executorId": t.executor_id, "pool": t.pool, "labels": json.loads(t.labels),
                       "arguments": json.loads(t.arguments), "priority": t.priority, "maxAttempts": t.max_attempts}
                      for t in tasks],
            "edges": [{"parent": e.parent, "child": e.child} for e in edges],
            "order": [t.key for t in tasks],
        }

    def _checked(self, model, data):
        from rpahub_plugins.executors.models import Package

        spec = data if isinstance(data, model) else parse_model(model, data)
        errors = [{"field": f, "message": m} for f, m in graph.problems([(t.key, t.parents) for t in spec.tasks])]
        known = {p.id for p in Package.select(Package.id).where(Package.id.in_([t.packageId for t in spec.tasks]))}
        for i, t in enumerate(spec.tasks):
            if t.packageId not in known:
                errors.append({"field": f"tasks.{i}.packageId", "message": f"package {t.packageId} not found"})
            if sum(bool(x) for x in (t.executorId, t.pool, t.labels)) > 1:
                errors.append({"field": f"tasks.{i}", "message": "name one executor, one pool, or a label set"})
        if errors:
            raise ValidationFailed(errors)
        order = graph.topological_order([(t.key, t.parents) for t in spec.tasks],
                                        {t.key: t.priority for t in spec.tasks})
        return spec, order

    def _store_graph(self, flow: Flow, spec, order: list[str]) -> None:
        position = {k: i for i, k in enumerate(order)}
        FlowEdge.delete().where(FlowEdge.flow == flow.id).execute()
        FlowTask.delete().where(FlowTask.flow == flow.id).execute()
        FlowTask.insert_many([
            {"flow": flow.id, "key": t.key, "package_id": t.packageId, "executor_id": t.executorId, "pool": t.pool,
             "labels": json.dumps(sorted(t.labels)), "priority": t.priority, "max_attempts": t.maxAttempts,
             "arguments": json.dumps([a.model_dump() for a in t.arguments], ensure_ascii=False),
             "position": position[t.key]} for t in spec.tasks]).execute()
        edges = [{"flow": flow.id, "parent": p, "child": t.key} for t in spec.tasks for p in t.parents]
        if edges:
            FlowEdge.insert_many(edges).execute()

    # -- runs ------------------------------------------------------------------------

    def start(self, flow_id: str, *, user_id: str, user_name: str) -> FlowRun:
        with hubdb.atomic():
            flow = self.get(flow_id)
            definition = self.definition(flow)
            fr = FlowRun.create(flow_id=flow.id, flow_name=flow.name, flow_version=flow.version,
                                failure_policy=flow.failure_policy, created_by=user_name, created_by_id=user_id,
                                definition=json.dumps(definition, ensure_ascii=False))
            FlowTaskRun.insert_many([{"flow_run": fr.id, "key": k} for k in definition["order"]]).execute()
            self.hub.publish("flow_run.started", flowRunId=fr.id, flowId=flow.id)
            self._advance(fr)
        return fr

    def get_run(self, flow_run_id: str) -> FlowRun:
        fr = FlowRun.get_or_none(FlowRun.id == flow_run_id)
        if fr is None:
            raise NotFound(f"flow run {flow_run_id} not found")
        return fr

    def task_runs(self, fr: FlowRun) -> dict[str, FlowTaskRun]:
        return {t.key: t for t in FlowTaskRun.select().where(FlowTaskRun.flow_run == fr.id)}

    def cancel(self, flow_run_id: str, *, by: str) -> FlowRun:
        with hubdb.atomic():
            fr = self._locked(flow_run_id)
            if fr.state not in OPEN:
                raise Conflict(f"flow run {flow_run_id} already finished as {fr.state}")
            self._halt(fr, "cancelled", f"cancelled by {by}", by=by)
        return self.get_run(flow_run_id)

    def on_run_completed(self, run_id: str, state: str) -> None:
        """A run ended for good (``run.completed``): record it and move its flow run on."""
        task = FlowTaskRun.get_or_none(FlowTaskRun.run_id == run_id)
        if task is None or state not in RUN_DONE:
            return  # not a run of a flow
        with hubdb.atomic():
            fr = self._locked(task.flow_run_id)
            done = FlowTaskRun.update(state=state, finished_at=utcnow(), detail=_finish_detail(run_id, state)).where(
                (FlowTaskRun.id == task.id) & FlowTaskRun.state.in_(ON_EXECUTOR)).execute()
            if done and fr.state in OPEN:
                self._advance(fr)

    def on_run_progress(self, run_id: str) -> None:
        """A run was placed, started or put back in the queue: mirror it on its task."""
        from rpahub_plugins.executors.models import RunInstance

        task = FlowTaskRun.get_or_none(FlowTaskRun.run_id == run_id)
        if task is None:
            return
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None or run.state in RUN_DONE:
            return  # run.completed decides
        # Read from the run, not the event: events from several processes may arrive out of order.
        state = "queued" if run.state in ("pending", "retrying") else "running"
        with hubdb.atomic():
            self._locked(task.flow_run_id)  # the same lock order as on_run_completed: no deadlock
            FlowTaskRun.update(state=state).where(
                (FlowTaskRun.id == task.id) & FlowTaskRun.state.in_(ON_EXECUTOR)).execute()
            if state == "running":
                FlowRun.update(state="running", started_at=utcnow()).where(
                    (FlowRun.id == task.flow_run_id) & (FlowRun.state == "pending")).execute()

    def sweep(self, grace_s: int = 30) -> int:
        """Catch up with runs whose ``run.completed`` this hub never saw (a crash between
        commit and delivery, a bus that lost a message). Returns how many were applied."""
        from rpahub_plugins.executors.models import RunInstance

        cutoff = utcnow() - dt.timedelta(seconds=grace_s)
        # The grace leaves the dispatcher time to decide on a retry after a failed finish.
        rows = list(FlowTaskRun.select(FlowTaskRun.run_id, RunInstance.state)
                    .join(RunInstance, on=(FlowTaskRun.run_id == RunInstance.id))
                    .where(FlowTaskRun.state.in_(ON_EXECUTOR) & RunInstance.state.in_(RUN_DONE)
                           & (RunInstance.finished_at < cutoff)).tuples())
        for run_id, state in rows:
            self.on_run_completed(run_id, state)
        return len(rows)

    # -- the engine: always called with the flow run's row locked -----------------------

    def _locked(self, flow_run_id: str) -> FlowRun:
        query = FlowRun.select().where(FlowRun.id == flow_run_id)
        if hubdb.is_postgres():  # SQLite already serialises writers (BEGIN IMMEDIATE)
            query = query.for_update()
        fr = query.first()
        if fr is None:
            raise NotFound(f"flow run {flow_run_id} not found")
        return fr

    def _advance(self, fr: FlowRun) -> None:
        """Apply the failure policy, submit what is ready, end the flow run when nothing is left."""
        plan = Plan(json.loads(fr.definition))
        while fr.state in OPEN:
            states = {k: t.state for k, t in self.task_runs(fr).items()}
            broken = [k for k in plan.order if states[k] in BROKEN]
            if broken and plan.policy == "stop_all":
                self._halt(fr, "failed", f"task {broken[0]} {states[broken[0]]}", by="flow policy stop_all")
                return
            for key in broken:  # continue_independent: only what depends on a broken task gives up
                doomed = graph.descendants(key, plan.children)
                if doomed:
                    FlowTaskRun.update(state="skipped", finished_at=utcnow(), detail=f"task {key} {states[key]}").where(
                        (FlowTaskRun.flow_run == fr.id) & FlowTaskRun.key.in_(doomed)
                        & (FlowTaskRun.state == "waiting")).execute()
            ready = plan.ready(states)
            if not ready:
                self._end_if_settled(fr, plan)
                return
            refused = False
            for key in ready:
                if not self._submit(fr, plan, key):
                    refused = True
                    if plan.policy == "stop_all":
                        break  # the rest is about to be cancelled anyway
            if not refused:
                return  # nothing else changed
            # A submission was refused, so its task failed: the policy decides again.

    def _submit(self, fr: FlowRun, plan: Plan, key: str) -> bool:
        from rpahub_plugins.dispatch import dispatcher

        claimed = FlowTaskRun.update(state="queued", queued_at=utcnow()).where(
            (FlowTaskRun.flow_run == fr.id) & (FlowTaskRun.key == key) & (FlowTaskRun.state == "waiting")).execute()
        if not claimed:
            return True  # someone else submitted it
        task = plan.tasks[key]
        try:
            with hubdb.atomic():  # a savepoint: a refused submission leaves nothing behind
                run = dispatcher(self.hub).submit(
                    package_id=task["packageId"], user_id=fr.created_by_id, user_name=fr.created_by,
                    arguments=self._arguments(fr, plan, key), executor_id=task["executorId"], pool=task["pool"],
                    labels=task["labels"], priority=task["priority"], max_attempts=task["maxAttempts"])
        except HubError as exc:
            FlowTaskRun.update(state="failed", finished_at=utcnow(), detail=f"not submitted: {exc.hint}").where(
                (FlowTaskRun.flow_run == fr.id) & (FlowTaskRun.key == key)).execute()
            return False
        FlowTaskRun.update(run_id=run.id).where((FlowTaskRun.flow_run == fr.id) & (FlowTaskRun.key == key)).execute()
        return True

    def _arguments(self, fr: FlowRun, plan: Plan, key: str) -> list[dict]:
        """The task's own arguments, then each parent's outputs (``<parent>.<name>``) and the
        files its run uploaded (``<parent>.files``, always present, possibly empty)."""
        from rpahub_plugins.executors.models import RunInstance, StoredFile

        merged = {a["name"]: a for a in plan.tasks[key]["arguments"]}
        rows = self.task_runs(fr)
        for parent in plan.parents[key]:
            run = RunInstance.get_by_id(rows[parent].run_id)
            for name, value in json.loads(run.outputs or "{}").items():
                merged[f"{parent}.{name}"] = _argument(f"{parent}.{name}", value)
            files = StoredFile.select(StoredFile.id).where(StoredFile.run_id == run.id)
            if run.video_id:  # the recording documents the run; it is not one of its results
                files = files.where(StoredFile.id != run.video_id)
            ids = [f.id for f in files.order_by(StoredFile.created_at, StoredFile.id)]
            merged[f"{parent}.files"] = _argument(f"{parent}.files", ",".join(ids))
        return list(merged.values())

    def _halt(self, fr: FlowRun, state: str, reason: str, *, by: str) -> None:
        """End the flow run now: cancel what has not started, stop what runs."""
        from rpahub_plugins.executors import state as executors

        now = utcnow()
        FlowTaskRun.update(state="cancelled", finished_at=now, detail=reason).where(
            (FlowTaskRun.flow_run == fr.id) & (FlowTaskRun.state == "waiting")).execute()
        for task in FlowTaskRun.select().where((FlowTaskRun.flow_run == fr.id) & FlowTaskRun.state.in_(ON_EXECUTOR)
                                               & FlowTaskRun.run_id.is_null(False)).order_by(FlowTaskRun.id):
            try:
                run = executors(self.hub).runs.stop(task.run_id, by=by)
            except HubError:
                continue  # it finished meanwhile; its run.completed records how
            if run.state == "cancelled":  # still queued: cancelled at once
                FlowTaskRun.update(state="cancelled", finished_at=now, detail=reason).where(
                    (FlowTaskRun.id == task.id) & FlowTaskRun.state.in_(ON_EXECUTOR)).execute()
            # A task on an executor stays "running" until the executor confirms the stop.
        self._end(fr, state, reason)

    def _end_if_settled(self, fr: FlowRun, plan: Plan) -> None:
        states = {k: t.state for k, t in self.task_runs(fr).items()}
        if any(s not in TASK_DONE for s in states.values()):
            return
        broken = [k for k in plan.order if states[k] in BROKEN]
        if broken:
            self._end(fr, "failed", f"task {broken[0]} {states[broken[0]]}")
        else:
            self._end(fr, "success", "")

    def _end(self, fr: FlowRun, state: str, reason: str) -> None:
        now = utcnow()
        # Conditional, so the flow run ends exactly once and announces it once.
        ended = FlowRun.update(state=state, reason=reason, finished_at=now).where(
            (FlowRun.id == fr.id) & FlowRun.state.in_(OPEN)).execute()
        if not ended:
            return
        fr.state, fr.reason, fr.finished_at = state, reason, now
        self.hub.publish("flow_run.completed", flowRunId=fr.id, flowId=fr.flow_id, state=state, reason=reason)


def _argument(name: str, value: Any) -> dict[str, str]:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return {"name": name, "type": "String", "value": text}


def _finish_detail(run_id: str, state: str) -> str:
    from rpahub_plugins.executors.models import RunInstance

    run = RunInstance.get_or_none(RunInstance.id == run_id)
    if run is None or state == "success":
        return ""
    return f"errorCode {run.error_code}" if run.error_code is not None else ""
