"""Thin Falcon resources of the flows API: validate, call the service, answer."""

from __future__ import annotations

import json

from rpahub_core.errors import Forbidden
from rpahub_core.web import ok, operation, paginate

from .models import Flow, FlowRun
from .schemas import FlowIn, FlowPut, FlowQuery, FlowRunQuery
from .service import Flows, Plan

TAGS = ("flows",)


def flow_json(flow: Flow, definition: dict | None = None) -> dict:
    out = {"id": flow.id, "name": flow.name, "description": flow.description, "failurePolicy": flow.failure_policy,
           "version": flow.version, "createdBy": flow.created_by, "createdAt": flow.created_at,
           "updatedAt": flow.updated_at}
    if definition is not None:
        out.update(tasks=definition["tasks"], edges=definition["edges"], order=definition["order"])
    return out


def flow_run_json(fr: FlowRun) -> dict:
    return {"id": fr.id, "flowId": fr.flow_id, "flowName": fr.flow_name, "flowVersion": fr.flow_version,
            "failurePolicy": fr.failure_policy, "state": fr.state, "reason": fr.reason, "createdBy": fr.created_by,
            "createdAt": fr.created_at, "startedAt": fr.started_at, "finishedAt": fr.finished_at}


def flow_run_detail(flows: Flows, fr: FlowRun) -> dict:
    """The flow run with each task's state and run, in topological order, and the edges."""
    from rpahub_plugins.executors.models import RunInstance

    definition = json.loads(fr.definition)
    plan = Plan(definition)
    rows = flows.task_runs(fr)
    run_ids = [t.run_id for t in rows.values() if t.run_id]
    run_states = dict(RunInstance.select(RunInstance.id, RunInstance.state)
                      .where(RunInstance.id.in_(run_ids)).tuples()) if run_ids else {}
    tasks = [{"key": k, "parents": plan.parents[k], "packageId": plan.tasks[k]["packageId"],
              "state": rows[k].state, "runId": rows[k].run_id, "runState": run_states.get(rows[k].run_id),
              "detail": rows[k].detail, "queuedAt": rows[k].queued_at, "finishedAt": rows[k].finished_at}
             for k in plan.order]
    return {**flow_run_json(fr), "tasks": tasks, "edges": definition["edges"], "order": plan.order}


def may_start_runs(principal, why: str) -> None:
    """A flow's tasks are runs started as a person: defining or starting them takes ``runs.start``."""
    if not principal.can("runs.start"):
        raise Forbidden(f"permission runs.start required: {why}")


class FlowList:
    def __init__(self, flows: Flows):
        self.flows = flows

    @operation(permission="flows.read", summary="Flows (task graphs)", query=FlowQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Flow.select().order_by(Flow.name)
        if q.q:
            query = query.where(Flow.name.contains(q.q))
        ok(resp, paginate(query, q, flow_json))

    @operation(permission="flows.manage", summary="Create a flow: tasks and the parents each waits for (6.5.1b)",
               body=FlowIn, tags=TAGS, audit="flow.create", status=201)
    def on_post(self, req, resp):
        may_start_runs(req.context.principal, "a flow's tasks are runs")
        flow = self.flows.create(req.context.body, user_name=req.context.principal.name)
        req.context.audit_target = flow.id
        ok(resp, flow_json(flow, self.flows.definition(flow)), status=201)


class FlowItem:
    def __init__(self, flows: Flows):
        self.flows = flows

    @operation(permission="flows.read", summary="A flow with its tasks, edges and topological order", tags=TAGS)
    def on_get(self, req, resp, flow_id):
        flow = self.flows.get(flow_id)
        ok(resp, flow_json(flow, self.flows.definition(flow)))

    @operation(permission="flows.manage", summary="Replace a flow's definition (runs in progress keep theirs)",
               body=FlowPut, tags=TAGS, audit="flow.update")
    def on_put(self, req, resp, flow_id):
        may_start_runs(req.context.principal, "a flow's tasks are runs")
        flow = self.flows.update(flow_id, req.context.body)
        ok(resp, flow_json(flow, self.flows.definition(flow)))

    @operation(permission="flows.manage", summary="Delete a flow (its runs stay as history)", tags=TAGS,
               audit="flow.delete")
    def on_delete(self, req, resp, flow_id):
        self.flows.delete(flow_id)
        ok(resp, None)


class FlowStart:
    def __init__(self, flows: Flows):
        self.flows = flows

    @operation(permission="flows.run", summary="Start a run of the flow: its root tasks are queued at once",
               tags=TAGS, audit="flow_run.start", status=201)
    def on_post(self, req, resp, flow_id):
        who = req.context.principal
        may_start_runs(who, "a flow run starts its tasks as runs of yours")
        fr = self.flows.start(flow_id, user_id=who.id, user_name=who.name)
        req.context.audit_target = fr.id
        ok(resp, flow_run_detail(self.flows, self.flows.get_run(fr.id)), status=201)


class FlowRunList:
    @operation(permission="flows.read", summary="Flow runs, newest first", query=FlowRunQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = FlowRun.select().order_by(FlowRun.created_at.desc(), FlowRun.id)
        if q.flowId:
            query = query.where(FlowRun.flow_id == q.flowId)
        if q.state:
            query = query.where(FlowRun.state == q.state)
        ok(resp, paginate(query, q, flow_run_json))


class FlowRunItem:
    def __init__(self, flows: Flows):
        self.flows = flows

    @operation(permission="flows.read", summary="A flow run: the state of each task with its run id", tags=TAGS)
    def on_get(self, req, resp, flow_run_id):
        ok(resp, flow_run_detail(self.flows, self.flows.get_run(flow_run_id)))


class FlowRunCancel:
    def __init__(self, flows: Flows):
        self.flows = flows

    @operation(permission="flows.run", summary="Cancel a flow run: queued tasks are cancelled, running ones stopped",
               tags=TAGS, audit="flow_run.cancel")
    def on_post(self, req, resp, flow_run_id):
        fr = self.flows.cancel(flow_run_id, by=req.context.principal.name)
        ok(resp, flow_run_detail(self.flows, fr))
