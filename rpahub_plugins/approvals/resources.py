"""The approvals API: what waits for me, and deciding it."""

from __future__ import annotations

import json

from pydantic import Field

from rpahub_core.errors import Forbidden
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import ApiModel, PageQuery, ok, operation, paginate

from .models import ApprovalRequest
from .service import Approvals

TAGS = ("approvals",)


class ApprovalQuery(PageQuery):
    state: str | None = Field(None, pattern="^(pending|approved|rejected|withdrawn)$")
    kind: list[str] = Field([], max_length=20, description="repeat for several kinds")
    target: list[str] = Field([], max_length=100, description="repeat for several targets (an app and its versions)")
    mine: bool = Field(False, description="only requests I made")
    actionable: bool = Field(False, description="only pending requests I may decide")


class Decision(ApiModel):
    comment: str = Field("", max_length=2000)


class Refusal(ApiModel):
    comment: str = Field(min_length=1, max_length=2000, description="why (the maker reads it)")


def request_json(row: ApprovalRequest, approvals: Approvals, who) -> dict:
    kind = approvals.kinds.items.get(row.kind)
    return {"id": row.id, "kind": row.kind, "kindDescription": kind.description if kind else "",
            "checkerPermission": kind.checker_permission if kind else None, "target": row.target,
            "title": row.title, "payload": json.loads(row.payload), "state": row.state, "reason": row.reason,
            "maker": {"id": row.maker_id, "name": row.maker_name},
            "checker": {"id": row.checker_id, "name": row.checker_name} if row.checker_id else None,
            "decisionComment": row.decision_comment, "createdAt": row.created_at, "decidedAt": row.decided_at,
            "youMayDecide": row.state == "pending" and approvals.may_check(row, who)}


def visible(approvals: Approvals, who):
    """People see the requests they made and those of kinds they may check; the
    approvals.read permission sees all."""
    query = ApprovalRequest.select()
    if who.can("approvals.read"):
        return query
    kinds = [k.name for k in approvals.kinds.items.values() if who.can(k.checker_permission)]
    condition = ApprovalRequest.maker_id == who.id
    if kinds:
        condition |= ApprovalRequest.kind.in_(kinds)
    return query.where(condition)


class ApprovalList:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="Approval requests I made or may decide (SEC-3)",
               query=ApprovalQuery, tags=TAGS)
    def on_get(self, req, resp):
        q, who = req.context.query, req.context.principal
        query = visible(self.approvals, who).order_by(ApprovalRequest.created_at.desc(), ApprovalRequest.id)
        if q.state:
            query = query.where(ApprovalRequest.state == q.state)
        if q.kind:
            query = query.where(ApprovalRequest.kind.in_(q.kind))
        if q.target:
            query = query.where(ApprovalRequest.target.in_(q.target))
        if q.mine:
            query = query.where(ApprovalRequest.maker_id == who.id)
        if q.actionable:
            kinds = [k.name for k in self.approvals.kinds.items.values() if who.can(k.checker_permission)]
            query = query.where((ApprovalRequest.state == "pending") & (ApprovalRequest.maker_id != who.id)
                                & ApprovalRequest.kind.in_(kinds or [""]))
        ok(resp, paginate(query, q, lambda row: request_json(row, self.approvals, who)))


class ApprovalKindsList:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="What needs a second person's approval", tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, [{"kind": k.name, "checkerPermission": k.checker_permission, "description": k.description}
                  for k in sorted(self.approvals.kinds.items.values(), key=lambda k: k.name)])


class ApprovalItem:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="One approval request", tags=TAGS)
    def on_get(self, req, resp, request_id):
        who = req.context.principal
        row = visible(self.approvals, who).where(ApprovalRequest.id == request_id).first()
        if row is None:
            row = self.approvals.get(request_id)  # 404 if it does not exist at all
            raise Forbidden("you neither made this request nor may decide it")
        ok(resp, request_json(row, self.approvals, who))


class ApprovalApprove:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="Approve a request and carry it out (never your own)",
               body=Decision, tags=TAGS, audit="approval.approve")
    def on_post(self, req, resp, request_id):
        who = req.context.principal
        row = self.approvals.approve(request_id, who, req.context.body.comment)
        req.context.audit_target = f"{row.kind}:{row.target}"
        ok(resp, request_json(row, self.approvals, who))


class ApprovalReject:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="Refuse a request, saying why (never your own)", body=Refusal,
               tags=TAGS, audit="approval.reject")
    def on_post(self, req, resp, request_id):
        who = req.context.principal
        row = self.approvals.reject(request_id, who, req.context.body.comment)
        req.context.audit_target = f"{row.kind}:{row.target}"
        ok(resp, request_json(row, self.approvals, who))


class ApprovalWithdraw:
    def __init__(self, approvals: Approvals):
        self.approvals = approvals

    @operation(permission=AUTHENTICATED, summary="Withdraw a request of yours that is still pending", tags=TAGS,
               audit="approval.withdraw")
    def on_post(self, req, resp, request_id):
        who = req.context.principal
        row = self.approvals.withdraw(request_id, who)
        req.context.audit_target = f"{row.kind}:{row.target}"
        ok(resp, request_json(row, self.approvals, who))
