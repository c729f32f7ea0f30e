"""The audit API: search, inclusion proofs, checkpoints and on-demand verification."""

from __future__ import annotations

import datetime as dt
import json

from pydantic import Field, model_validator

from rpahub_core.errors import BadRequest
from rpahub_core.web import PageQuery, ok, operation, paginate

from .ledger import Ledger, checkpoint_json
from .models import AuditCheckpoint, AuditEntry
from .verify import verify

TAGS = ("audit",)


class AuditQuery(PageQuery):
    actor: str | None = Field(None, max_length=128, description="user or robot id, or name")
    user: str | None = Field(None, max_length=128, description="a person: user id or username")
    robot: str | None = Field(None, max_length=128, description="a robot (executor) id")
    principalType: str | None = Field(None, pattern="^(user|robot|system|anonymous)$")
    action: str | None = Field(None, max_length=128, description="exact action, or a prefix ending in '*'")
    target: str | None = Field(None, max_length=256, description="exact target, or a prefix ending in '*'")
    result: str | None = Field(None, pattern="^(ok|denied|failed)$")
    since: dt.datetime | None = Field(None, description="from this time on (inclusive); also accepted as 'from'")
    until: dt.datetime | None = Field(None, description="before this time (exclusive); also accepted as 'to'")

    @model_validator(mode="before")
    @classmethod
    def _from_to(cls, data):
        # 'from' is a Python keyword: accept from/to as the names of since/until.
        if isinstance(data, dict):
            data = dict(data)
            for alias, name in (("from", "since"), ("to", "until")):
                if alias in data:
                    if name in data:
                        raise ValueError(f"give {alias} or {name}, not both")
                    data[name] = data.pop(alias)
        return data

    @model_validator(mode="after")
    def _ordered(self):
        if self.since and self.until and _utc(self.since) >= _utc(self.until):
            raise ValueError("until (to) must be later than since (from)")
        return self


class CheckpointQuery(PageQuery):
    pass


def entry_json(row: AuditEntry) -> dict:
    return {
        "id": row.id, "at": row.at, "actor": row.actor, "actorName": row.actor_name,
        "principalType": row.principal_type, "action": row.action, "target": row.target,
        "result": row.result, "detail": _detail(row.detail), "source": row.source,
    }


def _detail(text: str):
    try:
        return json.loads(text or "{}")
    except ValueError:  # shown as stored rather than failing the whole page
        return text


def _utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _prefix(field, value: str):
    return field.startswith(value[:-1]) if value.endswith("*") else field == value


def search(q: AuditQuery):
    query = AuditEntry.select().order_by(AuditEntry.id.desc())
    if q.actor:
        query = query.where((AuditEntry.actor == q.actor) | (AuditEntry.actor_name == q.actor))
    if q.user:
        query = query.where((AuditEntry.principal_type == "user")
                            & ((AuditEntry.actor == q.user) | (AuditEntry.actor_name == q.user)))
    if q.robot:
        query = query.where((AuditEntry.principal_type == "robot") & (AuditEntry.actor == q.robot))
    if q.principalType:
        query = query.where(AuditEntry.principal_type == q.principalType)
    if q.action:
        query = query.where(_prefix(AuditEntry.action, q.action))
    if q.target:
        query = query.where(_prefix(AuditEntry.target, q.target))
    if q.result:
        query = query.where(AuditEntry.result == q.result)
    if q.since:
        query = query.where(AuditEntry.at >= _utc(q.since))
    if q.until:
        query = query.where(AuditEntry.at < _utc(q.until))
    return query


class AuditResource:
    @operation(permission="audit.read", summary="Search the audit log, newest first", query=AuditQuery, tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, paginate(search(req.context.query), req.context.query, entry_json))


class AuditProof:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    @operation(permission="audit.read", summary="Inclusion proof of one entry in the latest signed checkpoint "
               "(RFC 6962); 409 until a checkpoint covers it", tags=TAGS)
    def on_get(self, req, resp, entry_id):
        if not entry_id.isdigit() or not 0 < int(entry_id) < 2**63:
            raise BadRequest("entry_id: must be a positive integer")
        ok(resp, self.ledger.proof(int(entry_id)))


class AuditCheckpoints:
    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    @operation(permission="audit.read", summary="Signed checkpoints of the audit log, newest first",
               query=CheckpointQuery, tags=TAGS)
    def on_get(self, req, resp):
        page = paginate(AuditCheckpoint.select().order_by(AuditCheckpoint.id.desc()), req.context.query,
                        checkpoint_json)
        ok(resp, {**page, "publicKey": self.ledger.hub.keys.public_key_pem()})


class AuditVerify:
    def __init__(self, hub):
        self.hub = hub

    # Not one transaction: a long read must not hold SQLite's write lock; the audit row commits alone.
    @operation(permission="audit.verify", summary="Verify the whole audit log against its signed checkpoints",
               tags=TAGS, audit="audit.verify", transactional=False)
    def on_post(self, req, resp):
        ok(resp, verify(self.hub).to_json())
