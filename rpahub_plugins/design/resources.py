"""Thin Falcon resources of the design-center API: validate, call the service, answer."""

from __future__ import annotations

import json

from pydantic import BaseModel

from rpahub_core.errors import NotFound
from rpahub_core.web import PageQuery, ok, operation, paginate

from .lifecycle import ACTIONS, DOMAINS, STATES, allowed, yours
from .models import Requirement, RequirementEvent, Trial
from .schemas import (
    RequirementAcceptIn,
    RequirementActionIn,
    RequirementBoardQuery,
    RequirementCommentIn,
    RequirementDesignIn,
    RequirementEvaluateIn,
    RequirementFilter,
    RequirementIn,
    RequirementPatch,
    RequirementQuery,
    RequirementTrialIn,
)
from .service import Requirements

TAGS = ("design",)
BODIES: dict[str, type[BaseModel]] = {"evaluate": RequirementEvaluateIn, "design": RequirementDesignIn,
                                      "accept": RequirementAcceptIn}


def requirement_json(r: Requirement, files: dict | None = None) -> dict:
    ids = json.loads(r.attachments)
    files = files if files is not None else _files(ids)
    evaluation = None
    if r.evaluated_at is not None:
        evaluation = {"effortDays": r.effort_days, "valueScore": r.value_score, "notes": r.evaluation_notes,
                      "evaluatedBy": r.evaluated_by, "evaluatedAt": r.evaluated_at}
    return {
        "id": r.id, "title": r.title, "description": r.description, "region": r.region, "scenario": r.scenario,
        "domain": r.domain, "domainLabel": DOMAINS.get(r.domain, r.domain), "expectedBenefit": r.expected_benefit,
        "priority": r.priority,
        "attachments": [{**files.get(i, {"fileId": i}), "url": ATTACHMENT_URL.format(r=r.id, f=i)} for i in ids],
        "submitterId": r.submitter_id, "submitterName": r.submitter_name, "state": r.state,
        "allowedActions": allowed(r.state), "assigneeId": r.assignee_id, "assigneeName": r.assignee_name,
        "evaluation": evaluation, "packageId": r.package_id, "parameters": json.loads(r.parameters),
        "vendor": r.vendor, "tags": json.loads(r.tags), "designedBy": r.designed_by, "appId": r.app_id,
        "acceptedAt": r.accepted_at, "version": r.version, "createdAt": r.created_at, "updatedAt": r.updated_at,
    }


ATTACHMENT_URL = "/api/v1/requirements/{r}/attachments/{f}"


def _files(ids: list[str]) -> dict:
    from rpahub_plugins.executors.models import StoredFile

    if not ids:
        return {}
    return {f.id: {"fileId": f.id, "fileName": f.name, "size": f.size, "contentType": f.content_type,
                   "fileUrl": f"/api/v1/files/{f.id}/content"}
            for f in StoredFile.select().where(StoredFile.id.in_(ids))}


def event_json(e: RequirementEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "action": e.action, "fromState": e.from_state or None,
            "toState": e.to_state or None, "comment": e.comment, "detail": json.loads(e.detail),
            "actorId": e.actor_id, "actorName": e.actor_name, "at": e.at}


def trials_json(trials: list[Trial]) -> list[dict]:
    """Each trial with its run's current state."""
    from rpahub_plugins.executors.models import RunInstance

    runs = {r.id: r for r in RunInstance.select().where(RunInstance.id.in_([t.run_id for t in trials]))} \
        if trials else {}
    out = []
    for t in trials:
        run = runs.get(t.run_id)
        out.append({"id": t.id, "runId": t.run_id, "packageId": t.package_id, "pool": t.pool,
                    "arguments": json.loads(t.arguments), "startedBy": t.started_by, "createdAt": t.created_at,
                    "runState": run.state if run else None, "executorId": run.executor_id if run else None,
                    "errorCode": run.error_code if run else None, "finishedAt": run.finished_at if run else None})
    return out


def detail_json(service: Requirements, r: Requirement, who) -> dict:
    """A requirement with its history; ``yourActions``: the next steps the caller may take."""
    latest = Trial.select().where(Trial.requirement == r.id).order_by(Trial.id.desc()).first()
    return {**requirement_json(r), "yourActions": yours(r, who), "history": [event_json(e) for e in service.history(r)],
            "latestTrial": trials_json([latest])[0] if latest else None}


def filtered(query, q: RequirementFilter, who):
    """Apply the filters every listing of requirements shares."""
    if q.assignee:
        query = query.where(Requirement.assignee_id == (who.id if q.assignee == "me" else q.assignee))
    if q.submitter:
        query = query.where(Requirement.submitter_id == (who.id if q.submitter == "me" else q.submitter))
    if q.region:
        query = query.where(Requirement.region == q.region)
    if q.domain:
        query = query.where(Requirement.domain == q.domain)
    if q.priority:
        query = query.where(Requirement.priority == q.priority)
    if q.q:
        query = query.where(Requirement.title.contains(q.q) | Requirement.description.contains(q.q))
    return query


class RequirementList:
    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.read", summary="Requirements, newest first, filtered", query=RequirementQuery,
               tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = filtered(Requirement.select(), q, req.context.principal)
        if q.state:
            query = query.where(Requirement.state.in_(q.state))
        page = paginate(query.order_by(Requirement.created_at.desc(), Requirement.id), q, lambda r: r)
        files = _files([i for r in page["items"] for i in json.loads(r.attachments)])
        ok(resp, {**page, "items": [requirement_json(r, files) for r in page["items"]]})

    @operation(permission="design.submit", summary="Submit a requirement (需求提报, 6.2.1a)", body=RequirementIn,
               tags=TAGS, audit="requirement.submit", status=201)
    def on_post(self, req, resp):
        r = self.service.submit(req.context.body, req.context.principal)
        req.context.audit_target = r.id
        ok(resp, detail_json(self.service, r, req.context.principal), status=201)


class RequirementBoard:
    @operation(permission="design.read", summary="How many requirements are in each state",
               query=RequirementBoardQuery, tags=TAGS)
    def on_get(self, req, resp):
        import peewee

        query = filtered(Requirement.select(Requirement.state, peewee.fn.COUNT(Requirement.id)),
                         req.context.query, req.context.principal).group_by(Requirement.state)
        counts = {s: 0 for s in STATES}
        counts.update(dict(query.tuples()))
        ok(resp, {"counts": counts, "total": sum(counts.values())})


class Assignees:
    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.evaluate", summary="Who may be assigned a requirement: active people holding "
               "design.develop", tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, {"items": self.service.designers()})


class RequirementAttachment:
    """Whoever may read a requirement may read its attachments (no files.read needed)."""

    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.read", summary="Download an attachment of a requirement (HTTP Range supported)",
               tags=TAGS, produces="*/*")
    def on_get(self, req, resp, req_id, file_id):
        from rpahub_plugins.executors import state
        from rpahub_plugins.executors.resources import send_file

        r = self.service.get(req_id)
        if file_id not in json.loads(r.attachments):
            raise NotFound(f"requirement {req_id} has no attachment {file_id}")
        files = state(self.service.hub).files
        row = files.get(file_id)
        send_file(req, resp, files.open(row), row.size, row.content_type, row.name)


class RequirementItem:
    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.read", summary="A requirement with its history and latest trial run", tags=TAGS)
    def on_get(self, req, resp, req_id):
        ok(resp, detail_json(self.service, self.service.get(req_id), req.context.principal))

    @operation(permission="design.submit", summary="Correct a requirement that waits for review (its submitter)",
               body=RequirementPatch, tags=TAGS, audit="requirement.update")
    def on_patch(self, req, resp, req_id):
        r = self.service.update(req_id, req.context.body, req.context.principal)
        ok(resp, detail_json(self.service, r, req.context.principal))


class RequirementComments:
    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.read", summary="Comment on a requirement (kept in its history)",
               body=RequirementCommentIn, tags=TAGS, audit="requirement.comment", status=201)
    def on_post(self, req, resp, req_id):
        event = self.service.comment(req_id, req.context.body.comment, req.context.principal)
        ok(resp, event_json(event), status=201)


class RequirementTrials:
    def __init__(self, service: Requirements):
        self.service = service

    @operation(permission="design.read", summary="Trial runs of a requirement, newest first, with their run state",
               query=PageQuery, tags=TAGS)
    def on_get(self, req, resp, req_id):
        r = self.service.get(req_id)
        query = Trial.select().where(Trial.requirement == r.id).order_by(Trial.id.desc())
        page = paginate(query, req.context.query, lambda t: t)
        ok(resp, {**page, "items": trials_json(page["items"])})

    @operation(permission="design.read",
               summary="Start a trial run of the delivered package on a test pool (6.2.1e; design.test or the "
                       "assigned designer)",
               body=RequirementTrialIn, tags=TAGS, audit="requirement.trial", status=201)
    def on_post(self, req, resp, req_id):
        trial = self.service.start_trial(req_id, req.context.body, req.context.principal)
        req.context.audit_target = trial.run_id
        ok(resp, trials_json([trial])[0], status=201)


def transition(service: Requirements, action: str):
    """The resource of ``POST /api/v1/requirements/{id}/<action>``, with that action's permission."""
    spec = ACTIONS[action]

    class Transition:
        @operation(permission=spec.permission, summary=spec.summary, body=BODIES.get(action, RequirementActionIn),
                   tags=TAGS, audit=f"requirement.{action}")
        def on_post(self, req, resp, req_id):
            r = service.act(req_id, action, req.context.body, req.context.principal)
            ok(resp, detail_json(service, r, req.context.principal))

    Transition.__name__ = Transition.__qualname__ = f"Requirement{action.title()}"
    return Transition()
