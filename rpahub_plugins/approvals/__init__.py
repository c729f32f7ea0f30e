"""Maker-checker (SEC-3): changes that take effect only once a second person approves.

Other plugins declare kinds of request with ``rpahub_approval_kinds`` and file
requests with :func:`requests`; this plugin stores them, lets checkers decide, and
runs the kind's ``apply`` inside the approving transaction. The maker can never
decide their own request; every decision is audited.
"""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import ApprovalKinds, Approvals

__all__ = ["ApprovalKinds", "Approvals", "requests"]


def requests(hub) -> Approvals:
    """This hub's approvals service (kinds are collected on first use)."""
    if "approvals" not in hub.state:
        hub.state["approvals"] = Approvals(hub)
    return hub.state["approvals"]


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("approvals", 1, create_tables(*MODELS), "approval requests")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("approvals.read", "See every approval request, not only one's own and those one may decide")


@hookimpl
def rpahub_register_routes(routes, hub):
    a = requests(hub)
    routes.add("/api/v1/approvals", resources.ApprovalList(a))
    routes.add("/api/v1/approvals/kinds", resources.ApprovalKindsList(a))
    routes.add("/api/v1/approvals/{request_id}", resources.ApprovalItem(a))
    routes.add("/api/v1/approvals/{request_id}/approve", resources.ApprovalApprove(a))
    routes.add("/api/v1/approvals/{request_id}/reject", resources.ApprovalReject(a))
    routes.add("/api/v1/approvals/{request_id}/withdraw", resources.ApprovalWithdraw(a))
