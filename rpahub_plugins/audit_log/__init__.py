"""Audit log: the one place every management call and robot action is written (SEC-4, 6.3.1c)."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import Field

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables
from rpahub_core.web import PageQuery, ok, operation, paginate

from .models import AuditEntry, make_append_only


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("audit_log", 1, create_tables(AuditEntry), "audit table")
    migrations.add("audit_log", 2, make_append_only, "refuse UPDATE and DELETE on audit_log")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("audit.read", "Search the audit log")


@hookimpl
def rpahub_audit(entry, hub):
    AuditEntry.create(**entry)


class AuditQuery(PageQuery):
    actor: str | None = Field(None, description="user or robot id, or name")
    principalType: str | None = Field(None, pattern="^(user|robot|system|anonymous)$")
    action: str | None = Field(None, description="exact action, or a prefix ending in '*'")
    result: str | None = Field(None, pattern="^(ok|denied|failed)$")
    since: dt.datetime | None = None
    until: dt.datetime | None = None


def entry_json(row: AuditEntry) -> dict:
    return {
        "id": row.id, "at": row.at, "actor": row.actor, "actorName": row.actor_name,
        "principalType": row.principal_type, "action": row.action, "target": row.target,
        "result": row.result, "detail": json.loads(row.detail or "{}"), "source": row.source,
    }


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


class AuditResource:
    @operation(permission="audit.read", summary="Search the audit log, newest first", query=AuditQuery,
               tags=("audit",))
    def on_get(self, req, resp):
        q = req.context.query
        query = AuditEntry.select().order_by(AuditEntry.id.desc())
        if q.actor:
            query = query.where((AuditEntry.actor == q.actor) | (AuditEntry.actor_name == q.actor))
        if q.principalType:
            query = query.where(AuditEntry.principal_type == q.principalType)
        if q.action:
            query = query.where(AuditEntry.action.startswith(q.action[:-1]) if q.action.endswith("*")
                                else AuditEntry.action == q.action)
        if q.result:
            query = query.where(AuditEntry.result == q.result)
        if q.since:
            query = query.where(AuditEntry.at >= _utc(q.since))
        if q.until:
            query = query.where(AuditEntry.at < _utc(q.until))
        ok(resp, paginate(query, q, entry_json))


@hookimpl
def rpahub_register_routes(routes, hub):
    routes.add("/api/v1/audit", AuditResource())
