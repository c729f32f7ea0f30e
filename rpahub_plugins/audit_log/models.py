"""The append-only audit table (SEC-4): triggers refuse UPDATE and DELETE."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, is_postgres, utcnow


class AuditEntry(BaseModel):
    id = peewee.BigAutoField()
    at = peewee.DateTimeField(default=utcnow, index=True)
    actor = peewee.CharField(max_length=64, index=True)
    actor_name = peewee.CharField(max_length=128, default="")
    principal_type = peewee.CharField(max_length=16)  # user | robot | system | anonymous
    action = peewee.CharField(max_length=128, index=True)
    target = peewee.CharField(max_length=256, default="")
    result = peewee.CharField(max_length=16)  # ok | denied | failed
    detail = peewee.TextField(default="{}")
    source = peewee.CharField(max_length=64, default="")

    class Meta:
        table_name = "audit_log"


def make_append_only(ctx) -> None:
    """Refuse UPDATE and DELETE in the database itself, whoever connects."""
    if is_postgres(ctx.db):
        ctx.sql(
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$ LANGUAGE plpgsql"
        )
        ctx.sql(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for op in ("UPDATE", "DELETE"):
            ctx.sql(
                f"CREATE TRIGGER audit_log_no_{op.lower()} BEFORE {op} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END"
            )
