"""The append-only audit tables (SEC-4): entries, their Merkle leaves, signed checkpoints.

Triggers refuse UPDATE and DELETE on all three, whoever connects; what a database
owner can still do by dropping the triggers is what ``rpahub audit verify`` detects.
"""

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


class AuditLeaf(BaseModel):
    """Position of one entry in the Merkle tree, assigned once by the sequencer."""

    leaf_index = peewee.BigIntegerField(primary_key=True)
    entry_id = peewee.BigIntegerField(unique=True)
    leaf_hash = peewee.CharField(max_length=64)  # hex SHA-256(0x00 || canonical entry)

    class Meta:
        table_name = "audit_leaf"


class AuditCheckpoint(BaseModel):
    """A signed tree head: the root of the first ``tree_size`` leaves at ``timestamp``."""

    id = peewee.BigAutoField()
    tree_size = peewee.BigIntegerField(index=True)
    root_hash = peewee.CharField(max_length=64)
    timestamp = peewee.CharField(max_length=32)  # as signed: 2026-05-01T08:00:00Z
    origin = peewee.CharField(max_length=128)
    key_id = peewee.CharField(max_length=32)
    signature = peewee.CharField(max_length=128)  # base64 Ed25519 signature
    # Hashes of the tree's perfect subtrees, so the next checkpoint needs only new leaves.
    # Not signed: a wrong frontier yields a root that verification refuses.
    frontier = peewee.TextField(default="")

    class Meta:
        table_name = "audit_checkpoint"


MODELS = (AuditEntry, AuditLeaf, AuditCheckpoint)


def _append_only(ctx, table: str) -> None:
    if is_postgres(ctx.db):
        ctx.sql(
            "CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'audit log is append-only'; END $$ LANGUAGE plpgsql"
        )
        ctx.sql(
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"
        )
    else:
        for op in ("UPDATE", "DELETE"):
            ctx.sql(
                f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END"
            )


def make_append_only(ctx) -> None:
    """Refuse UPDATE and DELETE on the entries in the database itself."""
    _append_only(ctx, "audit_log")


def add_ledger(ctx) -> None:
    """The Merkle leaves and signed checkpoints, append-only like the entries."""
    ctx.db.create_tables([AuditLeaf, AuditCheckpoint])
    _append_only(ctx, "audit_leaf")
    _append_only(ctx, "audit_checkpoint")
