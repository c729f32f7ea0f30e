"""The design center's requirements (T/CES 130-2022 6.2.1a–f): submission, the lifecycle
of :mod:`.lifecycle`, history, trial runs, and acceptance into the artifact library.

Every change happens with the requirement's row locked and is written conditionally on
the version read, so two people acting at once cannot both move it; a caller may also
name the version they saw and is refused (409) if it moved since.
"""

from __future__ import annotations

import json
from typing import Any

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, Forbidden, NotFound, ValidationFailed

from .lifecycle import ACTIONS, allowed
from .models import Requirement, RequirementEvent, Trial
from .schemas import (
    RequirementAcceptIn,
    RequirementActionIn,
    RequirementDesignIn,
    RequirementEvaluateIn,
    RequirementIn,
    RequirementPatch,
    RequirementTrialIn,
)

MANAGE = "design.manage"  # acts on any requirement as its submitter or designer


class Requirements:
    def __init__(self, hub):
        self.hub = hub
        self.settings = {"test_pool": "test", **hub.settings.plugin("design")}

    # -- submission and edits ---------------------------------------------------------

    def submit(self, data: RequirementIn, who: UserPrincipal) -> Requirement:
        attachments = self._attachments(data.attachments, who)
        if data.appId is not None:
            self._existing_app(data.appId)
        with hubdb.atomic():
            req = Requirement.create(
                title=data.title, description=data.description, region=data.region, scenario=data.scenario,
                domain=data.domain, expected_benefit=data.expectedBenefit, priority=data.priority,
                attachments=json.dumps(attachments), app_id=data.appId, submitter_id=who.id,
                submitter_name=who.name, state="submitted")
            self._record(req, who, kind="transition", action="submit", to_state="submitted")
            self.hub.publish("requirement.submitted", requirementId=req.id, title=req.title, domain=req.domain,
                             region=req.region, submitter=who.name)
        return req

    def update(self, req_id: str, data: RequirementPatch, who: UserPrincipal) -> Requirement:
        changes = data.model_dump(exclude_unset=True, exclude={"version"})
        with hubdb.atomic():
            req = self._locked(req_id, data.version)
            if req.submitter_id != who.id and not who.can(MANAGE):
                raise Forbidden(f"only its submitter {req.submitter_name} (or design.manage) may edit "
                                f"requirement {req.id}")
            if req.state != "submitted":
                raise Conflict(f"requirement {req.id} is {req.state}: only a submitted requirement can be edited")
            columns: dict[str, Any] = {}
            for name, column in (("title", "title"), ("description", "description"), ("region", "region"),
                                 ("scenario", "scenario"), ("domain", "domain"),
                                 ("expectedBenefit", "expected_benefit"), ("priority", "priority")):
                if changes.get(name) is not None:
                    columns[column] = changes[name]
            if data.attachments is not None:
                columns["attachments"] = json.dumps(self._attachments(data.attachments, who))
            if columns:
                self._save(req, **columns)
                self._record(req, who, kind="edit", detail={"fields": sorted(k for k in changes
                                                                             if changes[k] is not None)})
        return self.get(req_id)

    # -- the lifecycle ---------------------------------------------------------------

    def act(self, req_id: str, action: str, data: RequirementActionIn, who: UserPrincipal) -> Requirement:
        """Take ``action`` on the requirement (the caller's permission for it is already checked)."""
        spec = ACTIONS[action]
        if spec.why_required and not data.comment.strip():
            raise ValidationFailed([{"field": "comment", "message": f"required: say why you {action} it"}])
        with hubdb.atomic():
            req = self._locked(req_id, data.version)
            if req.state not in spec.sources:
                now = allowed(req.state)
                raise Conflict(f"requirement {req.id} is {req.state}: cannot {action} it; "
                               f"allowed now: {', '.join(now) if now else 'nothing (final state)'}",
                               value={"state": req.state, "allowed": now})
            columns, detail = getattr(self, f"_{action}")(req, data, who)
            previous = req.state
            self._save(req, state=spec.target, **columns)
            self._record(req, who, kind="transition", action=action, from_state=previous, to_state=spec.target,
                         comment=data.comment, detail=detail)
            self.hub.publish("requirement.transitioned", requirementId=req.id, action=action, fromState=previous,
                             toState=spec.target, by=who.name)
            if action == "accept":
                self.hub.publish("requirement.accepted", requirementId=req.id, appId=req.app_id,
                                 packageId=req.package_id, acceptedBy=who.name, designer=req.assignee_name)
        return self.get(req_id)

    def _withdraw(self, req, data, who):
        if req.submitter_id != who.id and not who.can(MANAGE):
            raise Forbidden(f"only its submitter {req.submitter_name} (or design.manage) may withdraw "
                            f"requirement {req.id}")
        return {}, {}

    def _approve(self, req, data, who):
        return {}, {}

    def _reject(self, req, data, who):
        return {}, {}

    def _evaluate(self, req, data: RequirementEvaluateIn, who):
        user_id, user_name = self._designer(data.assignee)
        columns = {"assignee_id": user_id, "assignee_name": user_name, "effort_days": data.effortDays,
                   "value_score": data.valueScore, "evaluation_notes": data.notes, "evaluated_by": who.name,
                   "evaluated_at": utcnow()}
        detail = {"assignee": user_name, "effortDays": data.effortDays, "valueScore": data.valueScore}
        if req.assignee_id and req.assignee_id != user_id:
            detail["previousAssignee"] = req.assignee_name
        return columns, detail

    def _design(self, req, data: RequirementDesignIn, who):
        from rpahub_plugins.executors.models import Package
        from rpahub_plugins.share.params import check_schema

        if req.assignee_id != who.id and not who.can(MANAGE):
            raise Forbidden(f"requirement {req.id} is assigned to {req.assignee_name}: only they "
                            f"(or design.manage) may deliver its design")
        package = Package.get_or_none(Package.id == data.packageId)
        if package is None:
            raise ValidationFailed([{"field": "packageId",
                                     "message": f"package {data.packageId} not found (upload it via "
                                                f"POST /api/v1/packages)"}])
        taken = self._version_of(data.packageId)
        if taken:
            raise ValidationFailed([{"field": "packageId", "message": f"package {data.packageId} is already {taken}"}])
        check_schema(data.parameters)
        columns = {"package_id": package.id,
                   "parameters": json.dumps([p.model_dump(exclude_unset=True) for p in data.parameters],
                                            ensure_ascii=False),
                   "vendor": data.vendor, "tags": json.dumps(sorted(set(data.tags)), ensure_ascii=False),
                   "designed_by_id": who.id, "designed_by": who.name}
        return columns, {"packageId": package.id, "package": f"{package.name}@{package.version}",
                         "parameters": [p.name for p in data.parameters]}

    def _rework(self, req, data, who):
        return {}, {}

    def _pass(self, req, data, who):
        latest = Trial.select().where(Trial.requirement == req.id).order_by(Trial.id.desc()).first()
        if latest is None:
            raise Conflict(f"requirement {req.id} has no trial run: start one with "
                           f"POST /api/v1/requirements/{req.id}/trials")
        if latest.package_id != req.package_id:
            raise Conflict(f"the latest trial run {latest.run_id} ran an earlier package, not the delivered "
                           f"{req.package_id}: start a trial of it")
        state = self._run_state(latest.run_id)
        if state != "success":
            raise Conflict(f"the latest trial run {latest.run_id} is {state}, not success: testing cannot pass",
                           value={"runId": latest.run_id, "runState": state})
        return {}, {"runId": latest.run_id}

    def _accept(self, req, data: RequirementAcceptIn, who):
        from rpahub_plugins.share import library
        from rpahub_plugins.share.params import ParameterSpec

        # Maker-checker: whoever built the delivery does not also accept it.
        if who.id in (req.assignee_id, req.designed_by_id):
            raise Forbidden(f"you designed requirement {req.id}: acceptance needs someone else "
                            f"holding design.accept")
        if data.appName and req.app_id:
            raise ValidationFailed([{"field": "appName", "message": (
                f"requirement {req.id} changes app {req.app_id}: it becomes a new version of that app, "
                f"whose name stays")}])
        try:
            app = library(self.hub).accept_delivery(
                requirement_id=req.id, app_id=req.app_id, name=data.appName or req.title,
                description=req.description, region=req.region, scenario=req.scenario, domain=req.domain,
                vendor=req.vendor, tags=json.loads(req.tags),
                parameters=[ParameterSpec(**p) for p in json.loads(req.parameters)], package_id=req.package_id,
                accepted_by=who)
        except Conflict as exc:
            if not exc.hint.startswith("name:"):
                raise
            raise Conflict(f"appName: {exc.hint[5:].strip()}: accept with another appName") from None
        req.app_id = app.id
        return {"app_id": app.id, "accepted_at": utcnow()}, {"appId": app.id, "packageId": req.package_id}

    def _refuse(self, req, data, who):
        return {}, {}

    # -- comments and trials -----------------------------------------------------------

    def comment(self, req_id: str, text: str, who: UserPrincipal) -> RequirementEvent:
        with hubdb.atomic():
            req = self.get(req_id)
            return self._record(req, who, kind="comment", comment=text)

    def start_trial(self, req_id: str, data: RequirementTrialIn, who: UserPrincipal) -> Trial:
        """Run the delivered package on a test pool (6.2.1e), through the dispatcher."""
        from rpahub_plugins.dispatch import dispatcher
        from rpahub_plugins.dispatch.models import Pool
        from rpahub_plugins.share.params import ParameterSpec, to_arguments

        with hubdb.atomic():
            req = self._locked(req_id, None)
            if not (who.can("design.test") or who.id == req.assignee_id or who.can(MANAGE)):
                raise Forbidden(f"permission design.test required (or be the assigned designer "
                                f"{req.assignee_name})")
            if req.state != "designed":
                raise Conflict(f"requirement {req.id} is {req.state}: trial runs test a delivered design "
                               f"(state designed)")
            pool = data.pool or str(self.settings["test_pool"])
            if Pool.get_or_none(Pool.name == pool) is None:
                raise ValidationFailed([{"field": "pool", "message": (
                    f"no pool named {pool}" if data.pool else
                    f"the test pool {pool} does not exist: create it (POST /api/v1/pools) or set "
                    f"[plugins.design] test_pool")}])
            params = [ParameterSpec(**p) for p in json.loads(req.parameters)]
            arguments = to_arguments(params, data.arguments)
            run = dispatcher(self.hub).submit(package_id=req.package_id, user_id=who.id, user_name=who.name,
                                              arguments=arguments, pool=pool)
            trial = Trial.create(requirement=req.id, run_id=run.id, package_id=req.package_id, pool=pool,
                                 arguments=json.dumps(data.arguments, ensure_ascii=False), started_by_id=who.id,
                                 started_by=who.name)
            self._record(req, who, kind="trial", action="start",
                         detail={"runId": run.id, "pool": pool, "packageId": req.package_id})
        return trial

    def on_run_completed(self, run_id: str, state: str) -> None:
        """A trial run ended: note the outcome in its requirement's history."""
        trial = Trial.get_or_none(Trial.run_id == run_id)
        if trial is None:
            return
        with hubdb.atomic():
            RequirementEvent.create(requirement=trial.requirement_id, kind="trial", action="finish",
                                    detail=json.dumps({"runId": run_id, "state": state}), actor_id="system",
                                    actor_name="system")

    # -- reading -------------------------------------------------------------------------

    def get(self, req_id: str) -> Requirement:
        req = Requirement.get_or_none(Requirement.id == req_id)
        if req is None:
            raise NotFound(f"requirement {req_id} not found")
        return req

    def history(self, req: Requirement) -> list[RequirementEvent]:
        return list(RequirementEvent.select().where(RequirementEvent.requirement == req.id)
                    .order_by(RequirementEvent.id))

    @staticmethod
    def _run_state(run_id: str) -> str:
        from rpahub_plugins.executors.models import RunInstance

        run = RunInstance.get_or_none(RunInstance.id == run_id)
        return run.state if run is not None else "missing"

    # -- helpers ---------------------------------------------------------------------------

    def _locked(self, req_id: str, version: int | None) -> Requirement:
        query = Requirement.select().where(Requirement.id == req_id)
        if hubdb.is_postgres():  # SQLite already serialises writers (BEGIN IMMEDIATE)
            query = query.for_update()
        req = query.first()
        if req is None:
            raise NotFound(f"requirement {req_id} not found")
        if version is not None and version != req.version:
            raise Conflict(f"version: requirement {req.id} is at version {req.version}, not {version}: "
                           f"reload it", value={"version": req.version, "state": req.state})
        return req

    def _save(self, req: Requirement, **columns) -> None:
        changed = Requirement.update(**columns, version=Requirement.version + 1, updated_at=utcnow()).where(
            (Requirement.id == req.id) & (Requirement.version == req.version)).execute()
        if not changed:
            raise Conflict(f"version: requirement {req.id} changed meanwhile: reload it")
        req.version += 1

    def _record(self, req: Requirement, who, *, kind: str, action: str = "", from_state: str = "",
                to_state: str = "", comment: str = "", detail: dict | None = None) -> RequirementEvent:
        return RequirementEvent.create(requirement=req.id, kind=kind, action=action, from_state=from_state,
                                       to_state=to_state, comment=comment,
                                       detail=json.dumps(detail or {}, ensure_ascii=False), actor_id=who.id,
                                       actor_name=who.name)

    def _attachments(self, ids: list[str], who: UserPrincipal) -> list[str]:
        """The ids, each a requirement attachment this person uploaded (duplicates dropped)."""
        from rpahub_plugins.executors.models import StoredFile

        unique = list(dict.fromkeys(ids))
        files = {f.id: f for f in StoredFile.select().where(StoredFile.id.in_(unique))} if unique else {}
        errors = []
        for i, file_id in enumerate(ids):
            f = files.get(file_id)
            if f is None:
                errors.append({"field": f"attachments.{i}", "message": f"file {file_id} not found"})
            elif f.source != "demand":
                errors.append({"field": f"attachments.{i}", "message": (
                    f"file {file_id} is not a requirement attachment (uploaded as {f.source}; "
                    f"use POST /v1/file/demand/upload)")})
            elif f.uploaded_by != f"user:{who.id}":
                errors.append({"field": f"attachments.{i}", "message": f"file {file_id} was uploaded by someone else"})
        if errors:
            raise ValidationFailed(errors)
        return unique

    def designers(self) -> list[dict]:
        """Active people who may be assigned a requirement (they hold design.develop)."""
        from rpahub_plugins.auth_local import identity

        return identity(self.hub).holders("design.develop")

    def _designer(self, ref: str) -> tuple[str, str]:
        """The assignee named by user id or username: an active person who may design."""
        from rpahub_plugins.auth_local import identity
        from rpahub_plugins.auth_local.models import User

        user = User.get_or_none((User.id == ref) | (User.username == ref))
        if user is None:
            raise ValidationFailed([{"field": "assignee", "message": f"no user {ref}"}])
        if not user.is_active:
            raise ValidationFailed([{"field": "assignee", "message": f"user {user.username} is disabled"}])
        held = identity(self.hub).permissions_of(user)
        if not ({"design.develop", "*"} & held):
            raise ValidationFailed([{"field": "assignee",
                                     "message": f"user {user.username} does not hold design.develop"}])
        return user.id, user.username

    @staticmethod
    def _existing_app(app_id: str) -> None:
        from rpahub_plugins.share.models import App

        if App.get_or_none(App.id == app_id) is None:
            raise ValidationFailed([{"field": "appId", "message": f"app {app_id} not found"}])

    @staticmethod
    def _version_of(package_id: str) -> str:
        """Which app version the package already is, if any: a package belongs to one app version."""
        from rpahub_plugins.share.models import App, AppVersion

        row = AppVersion.select().where(AppVersion.package_id == package_id).first()
        if row is None:
            return ""
        app = App.get_or_none(App.id == row.app_id)
        return f"version {row.version} of app {app.name if app else row.app_id}"

