"""Customer service (6.4.2): problems reported about apps, handled, and verified by the
person who reported them (问题反馈 → 问题处理 → 问题验收).

The lifecycle is one explicit table: each action names the states it may be taken
from and the state it leads to; who may take it is checked separately. Each
transition is a conditional update on the version read, so two handlers acting at
once cannot both succeed, and every transition leaves a line of history.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from rpahub_core import db as hubdb
from rpahub_core.auth import ANY_PERMISSION, UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, Forbidden, NotFound

from .models import Feedback, FeedbackEvent

STATES = ("open", "in_progress", "resolved", "accepted", "reopened", "closed")
CATEGORIES = ("bug", "usage", "data", "performance", "suggestion", "other")
SEVERITIES = ("low", "normal", "high", "critical")


@dataclass(frozen=True)
class Action:
    sources: tuple[str, ...]
    target: str
    who: str  # handler | assignee | reporter | admin: checked by Desk.may


ACTIONS: dict[str, Action] = {
    "assign": Action(("open", "in_progress", "reopened"), "in_progress", "handler"),
    "resolve": Action(("in_progress",), "resolved", "assignee"),
    "accept": Action(("resolved",), "accepted", "reporter"),
    "reopen": Action(("resolved",), "reopened", "reporter"),
    "close": Action(("open", "in_progress", "resolved", "reopened", "accepted"), "closed", "admin"),
}

# The operation permission of each action (the route refuses without it).
ACTION_PERMISSIONS = {"assign": "feedback.handle", "resolve": "feedback.handle", "accept": "feedback.submit",
                      "reopen": "feedback.submit", "close": "feedback.manage"}


def allowed(state: str) -> list[str]:
    """The actions the lifecycle permits in ``state``, whoever asks."""
    return [name for name, a in ACTIONS.items() if state in a.sources]


def sees_all(who: UserPrincipal) -> bool:
    return who.can("feedback.read") or who.can("feedback.handle") or who.can("feedback.manage")


class Desk:
    """The customer-service desk: submit, act on, comment on, list feedback."""

    def __init__(self, hub):
        self.hub = hub

    def get(self, feedback_id: str) -> Feedback:
        row = Feedback.get_or_none(Feedback.id == feedback_id)
        if row is None:
            raise NotFound(f"feedback {feedback_id} not found")
        return row

    def visible(self, feedback_id: str, who: UserPrincipal) -> Feedback:
        """The feedback if ``who`` may see it: readers and handlers see all, others their own."""
        row = self.get(feedback_id)
        if not sees_all(who) and who.id not in (row.reporter_id, row.assignee_id):
            raise NotFound(f"feedback {feedback_id} not found")  # not even whether it exists
        return row

    # -- submitting ----------------------------------------------------------------------

    def submit(self, data, who: UserPrincipal) -> Feedback:
        app_id, run_id = self._subject(data.appId, data.runId)
        attachments = self._attachments(data.attachments, who)
        with hubdb.atomic():
            row = Feedback.create(app_id=app_id, run_id=run_id, title=data.title.strip(),
                                  description=data.description, category=data.category, severity=data.severity,
                                  attachments=json.dumps(attachments), reporter_id=who.id, reporter_name=who.name)
            self._event(row, who, kind="transition", action="submit", to_state="open", comment="")
            self.hub.publish("feedback.submitted", feedbackId=row.id, appId=app_id, severity=row.severity)
        return row

    def _subject(self, app_id: str | None, run_id: str | None) -> tuple[str | None, str | None]:
        """The app and run it is about; a run started from an app names its app."""
        from rpahub_plugins.executors.models import RunInstance
        from rpahub_plugins.share.models import App, AppRun

        if app_id and not App.select().where(App.id == app_id).exists():
            raise BadRequest(f"appId: no app {app_id}")
        if run_id:
            if not RunInstance.select().where(RunInstance.id == run_id).exists():
                raise BadRequest(f"runId: no run {run_id}")
            link = AppRun.get_or_none(AppRun.run_id == run_id)
            if app_id and link is not None and link.app_id != app_id:
                raise BadRequest(f"runId: run {run_id} was started from another app ({link.app_id})")
            if link is not None:
                app_id = link.app_id
        return app_id, run_id

    @staticmethod
    def _attachments(ids: list[str], who: UserPrincipal) -> list[str]:
        """Files the reporter uploaded themselves (/v1/file/file/upload): a file id someone
        else uploaded is refused, or attaching would be a way to read other people's files."""
        from rpahub_plugins.executors.models import StoredFile

        ids = list(dict.fromkeys(ids))
        if not ids:
            return []
        owners = dict(StoredFile.select(StoredFile.id, StoredFile.uploaded_by).where(StoredFile.id.in_(ids)).tuples())
        for i, file_id in enumerate(ids):
            if file_id not in owners:
                raise BadRequest(f"attachments.{i}: no file {file_id}; upload it first (/v1/file/file/upload)")
            if owners[file_id] != f"user:{who.id}":
                raise BadRequest(f"attachments.{i}: file {file_id} was not uploaded by you")
        return ids

    # -- acting ----------------------------------------------------------------------------

    def act(self, feedback_id: str, action: str, who: UserPrincipal, *, comment: str = "",
            assignee_id: str | None = None, version: int | None = None) -> Feedback:
        spec = ACTIONS[action]
        with hubdb.atomic():
            row = self.visible(feedback_id, who)
            if row.state not in spec.sources:
                raise Conflict(f"feedback is {row.state}: {action} is not possible; allowed actions: "
                               f"{', '.join(allowed(row.state)) or 'none'}",
                               value={"state": row.state, "allowedActions": allowed(row.state)})
            if version is not None and version != row.version:
                raise Conflict(f"version: feedback is at version {row.version}, not {version}")
            self._may(spec, row, who, action)
            changes: dict = {"state": spec.target, "version": Feedback.version + 1, "updated_at": utcnow()}
            if action == "assign":
                changes["assignee_id"], changes["assignee_name"] = self._assignee(assignee_id, who)
            elif action == "resolve":
                if not comment.strip():
                    raise BadRequest("comment: say how it was resolved")
                changes.update(resolution=comment, resolved_at=utcnow())
            elif action == "reopen":
                if not comment.strip():
                    raise BadRequest("comment: say why it is not resolved")
            elif action == "accept":
                changes["accepted_at"] = utcnow()
            elif action == "close":
                changes["closed_at"] = utcnow()
            done = Feedback.update(**changes).where((Feedback.id == row.id) & (Feedback.version == row.version)
                                                    ).execute()
            if not done:
                raise Conflict("feedback changed meanwhile; read it again")
            if action == "assign" and changes["assignee_id"] != who.id:
                comment = (f"assigned to {changes['assignee_name']}. {comment}").strip()
            self._event(row, who, kind="transition", action=action, from_state=row.state, to_state=spec.target,
                        comment=comment)
            self.hub.publish(f"feedback.{action}", feedbackId=row.id, state=spec.target,
                             reporterId=row.reporter_id, assigneeId=changes.get("assignee_id", row.assignee_id))
        return self.get(row.id)

    @staticmethod
    def _may(spec: Action, row: Feedback, who: UserPrincipal, action: str) -> None:
        if spec.who == "reporter" and who.id != row.reporter_id:
            raise Forbidden(f"only the reporter ({row.reporter_name}) may {action} this feedback")
        if spec.who == "assignee" and who.id != row.assignee_id:
            raise Forbidden(f"only the assigned handler ({row.assignee_name}) may {action} this feedback; "
                            "assign it to yourself first")

    @staticmethod
    def _assignee(assignee_id: str | None, who: UserPrincipal) -> tuple[str, str]:
        """Oneself, or a named person who holds ``feedback.handle``."""
        if not assignee_id or assignee_id == who.id:
            return who.id, who.name
        from rpahub_plugins.auth_local.models import RolePermission, User, UserRole

        user = User.get_or_none((User.id == assignee_id) | (User.username == assignee_id))
        if user is None or not user.is_active:
            raise BadRequest(f"assigneeId: no active person {assignee_id}")
        holds = (RolePermission.select().join(UserRole, on=(UserRole.role == RolePermission.role))
                 .where((UserRole.user == user.id)
                        & RolePermission.permission.in_(("feedback.handle", ANY_PERMISSION))).exists())
        if not holds:
            raise BadRequest(f"assigneeId: {user.username} does not hold feedback.handle")
        return user.id, user.username

    # -- talking ---------------------------------------------------------------------------

    def comment(self, feedback_id: str, who: UserPrincipal, text: str) -> FeedbackEvent:
        with hubdb.atomic():
            row = self.visible(feedback_id, who)
            event = self._event(row, who, kind="comment", comment=text)
            Feedback.update(updated_at=utcnow()).where(Feedback.id == row.id).execute()
            self.hub.publish("feedback.commented", feedbackId=row.id, reporterId=row.reporter_id,
                             assigneeId=row.assignee_id)
        return event

    @staticmethod
    def _event(row: Feedback, who: UserPrincipal, **fields) -> FeedbackEvent:
        return FeedbackEvent.create(feedback=row.id, actor_id=who.id, actor_name=who.name, **fields)

    def history(self, row: Feedback) -> list[FeedbackEvent]:
        return list(FeedbackEvent.select().where(FeedbackEvent.feedback == row.id).order_by(FeedbackEvent.id))

    # -- finding ---------------------------------------------------------------------------

    def search(self, who: UserPrincipal, *, state=None, app_id=None, mine=False, assigned_to_me=False,
               category=None, severity=None):
        query = Feedback.select().order_by(Feedback.updated_at.desc(), Feedback.id)
        if not sees_all(who):
            query = query.where((Feedback.reporter_id == who.id) | (Feedback.assignee_id == who.id))
        if state:
            query = query.where(Feedback.state.in_(state))
        if app_id:
            query = query.where(Feedback.app_id == app_id)
        if mine:
            query = query.where(Feedback.reporter_id == who.id)
        if assigned_to_me:
            query = query.where(Feedback.assignee_id == who.id)
        if category:
            query = query.where(Feedback.category == category)
        if severity:
            query = query.where(Feedback.severity == severity)
        return query
