"""Filing and deciding approval requests. No HTTP in here."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, Forbidden, NotFound

from .models import ApprovalRequest


@dataclass(frozen=True)
class ApprovalKind:
    name: str
    checker_permission: str
    description: str
    apply: Callable[[ApprovalRequest, Any], None]
    on_reject: Callable[[ApprovalRequest, Any], None] | None = None


@dataclass
class ApprovalKinds:
    """What ``rpahub_approval_kinds`` adds to."""

    items: dict[str, ApprovalKind] = field(default_factory=dict)

    def add(self, name: str, checker_permission: str, description: str,
            apply: Callable[[ApprovalRequest, Any], None],
            on_reject: Callable[[ApprovalRequest, Any], None] | None = None) -> None:
        if name in self.items:
            raise ValueError(f"approval kind {name!r} declared twice")
        self.items[name] = ApprovalKind(name, checker_permission, description, apply, on_reject)


class Approvals:
    def __init__(self, hub):
        self.hub = hub
        self.kinds = ApprovalKinds()
        hub.pm.hook.rpahub_approval_kinds(kinds=self.kinds)
        for kind in self.kinds.items.values():
            if kind.checker_permission not in hub.permissions:
                raise ValueError(f"approval kind {kind.name!r} names undeclared permission "
                                 f"{kind.checker_permission!r}")

    def kind(self, name: str) -> ApprovalKind:
        if name not in self.kinds.items:
            raise NotFound(f"kind: no approval kind {name}")
        return self.kinds.items[name]

    def get(self, request_id: str) -> ApprovalRequest:
        row = ApprovalRequest.get_or_none(ApprovalRequest.id == request_id)
        if row is None:
            raise NotFound(f"approval request {request_id} not found")
        return row

    def pending(self, kind: str, target: str) -> ApprovalRequest | None:
        return ApprovalRequest.get_or_none((ApprovalRequest.kind == kind) & (ApprovalRequest.target == target)
                                           & (ApprovalRequest.state == "pending"))

    def file(self, kind: str, *, target: str, title: str, maker: UserPrincipal, payload: dict | None = None,
             reason: str = "") -> ApprovalRequest:
        """File a request; one pending request per kind and target at a time."""
        self.kind(kind)
        with hubdb.atomic():
            if self.pending(kind, target) is not None:
                raise Conflict(f"a {kind} request for {target} is already waiting for approval")
            row = ApprovalRequest.create(kind=kind, target=target, title=title[:256], maker_id=maker.id,
                                         maker_name=maker.name, reason=reason,
                                         payload=json.dumps(payload or {}, ensure_ascii=False, sort_keys=True))
            self.hub.publish("approval.filed", requestId=row.id, kind=kind, target=target)
        return row

    def may_check(self, row: ApprovalRequest, who: UserPrincipal) -> bool:
        kind = self.kinds.items.get(row.kind)
        return kind is not None and who.id != row.maker_id and who.can(kind.checker_permission)

    def _decide(self, request_id: str, who: UserPrincipal, verb: str) -> tuple[ApprovalRequest, ApprovalKind]:
        query = ApprovalRequest.select().where(ApprovalRequest.id == request_id)
        if hubdb.is_postgres():  # SQLite already serialises writers (BEGIN IMMEDIATE)
            query = query.for_update()
        row = query.first()
        if row is None:
            raise NotFound(f"approval request {request_id} not found")
        if row.state != "pending":
            raise Conflict(f"request {row.id} is already {row.state}")
        kind = self.kind(row.kind)
        if who.id == row.maker_id:
            raise Forbidden(f"the maker of a request cannot {verb} it: a second person must (four-eyes)")
        if not who.can(kind.checker_permission):
            raise Forbidden(f"permission {kind.checker_permission} required to {verb} {row.kind} requests")
        return row, kind

    def approve(self, request_id: str, who: UserPrincipal, comment: str = "") -> ApprovalRequest:
        """Approve and carry out the request in one transaction: both happen or neither."""
        with hubdb.atomic():
            row, kind = self._decide(request_id, who, "approve")
            # Who decided is known to the kind while it applies (an app version records its approver).
            row.checker_id, row.checker_name = who.id, who.name
            row.decision_comment, row.decided_at = comment, utcnow()
            kind.apply(row, self.hub)
            row.state = "approved"
            row.save()
            self.hub.publish("approval.approved", requestId=row.id, kind=row.kind, target=row.target)
        return row

    def reject(self, request_id: str, who: UserPrincipal, comment: str) -> ApprovalRequest:
        with hubdb.atomic():
            row, kind = self._decide(request_id, who, "reject")
            if kind.on_reject is not None:
                kind.on_reject(row, self.hub)
            row.state, row.checker_id, row.checker_name = "rejected", who.id, who.name
            row.decision_comment, row.decided_at = comment, utcnow()
            row.save()
            self.hub.publish("approval.rejected", requestId=row.id, kind=row.kind, target=row.target)
        return row

    def withdraw(self, request_id: str, who: UserPrincipal) -> ApprovalRequest:
        with hubdb.atomic():
            row = self.get(request_id)
            if row.maker_id != who.id:
                raise Forbidden("only the maker can withdraw a request")
            if row.state != "pending":
                raise Conflict(f"request {row.id} is already {row.state}")
            row.state, row.decided_at = "withdrawn", utcnow()
            row.save()
            kind = self.kinds.items.get(row.kind)
            if kind is not None and kind.on_reject is not None:
                kind.on_reject(row, self.hub)
        return row
