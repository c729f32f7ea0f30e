"""Sequencing audit entries into an RFC 6962 tree and signing checkpoints of it.

One sequencer at a time (SQLite: the write lock ``atomic`` takes; PostgreSQL: an
advisory lock) gives the entries committed since the last checkpoint the next leaf
indexes, in id order, and signs the new tree head with the hub's Ed25519 key.

Why nothing can be skipped: on PostgreSQL the sequencer first takes
``LOCK TABLE audit_log IN SHARE MODE``. That waits for every transaction that has
written an entry to commit or roll back, and holds off new writers until the
sequencer commits; an id is drawn from the sequence only after the writer holds its
table lock, so once the lock is granted every id below the next one is committed
or gone for good. On SQLite ``BEGIN IMMEDIATE`` excludes every other writer.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import peewee
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, NotFound

from . import merkle
from .models import AuditCheckpoint, AuditEntry, AuditLeaf

log = logging.getLogger("rpahub.audit_log")

# Columns of an entry, in the order rows are read; all of them are hashed.
COLUMNS = ("id", "at", "actor", "actor_name", "principal_type", "action", "target", "result", "detail", "source")
FIELDS = tuple(getattr(AuditEntry, c) for c in COLUMNS)
# Prefix of every signed checkpoint: a signature over it can never pass as a licence's.
CHECKPOINT_CONTEXT = b"rpahub audit checkpoint v1\n"
LOCK_KEY = 130202206  # pg_advisory_xact_lock key of the sequencer
BATCH = 20_000  # entries sequenced per transaction
LOCK_WAIT = "2s"  # longest a sequencer stalls audit writers while it waits for old transactions


def format_at(value: Any) -> str:
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return str(value)


def canonical_entry(row: tuple) -> bytes:
    """The bytes a leaf hashes: the row's columns as sorted, compact, UTF-8 JSON."""
    data = dict(zip(COLUMNS, row, strict=True))
    data["at"] = format_at(data["at"])
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_leaf_hash(row: tuple) -> bytes:
    return merkle.leaf_hash(canonical_entry(row))


def iter_rows(query, key_field, batch: int = 5000):
    """Rows of ``query`` as tuples in ``key_field`` order, read in keyset pages (no big cursor)."""
    last = None
    while True:
        page = query.order_by(key_field)
        if last is not None:
            page = page.where(key_field > last)
        rows = list(page.limit(batch).tuples())
        yield from rows
        time.sleep(0)  # in a gevent worker: let requests run between pages of a long verification
        if len(rows) < batch:
            return
        last = rows[-1][0]


def checkpoint_message(cp: AuditCheckpoint | dict) -> bytes:
    """The exact bytes a checkpoint's signature covers."""
    get = cp.get if isinstance(cp, dict) else lambda k: getattr(cp, k)
    body = {"keyId": get("key_id"), "origin": get("origin"), "rootHash": get("root_hash"),
            "timestamp": get("timestamp"), "treeSize": int(get("tree_size"))}
    return CHECKPOINT_CONTEXT + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                           ensure_ascii=False).encode()


def key_id(public_key) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_json(cp: AuditCheckpoint) -> dict:
    return {"id": cp.id, "treeSize": cp.tree_size, "rootHash": cp.root_hash, "timestamp": cp.timestamp,
            "origin": cp.origin, "keyId": cp.key_id, "signature": cp.signature,
            "signedMessage": checkpoint_message(cp).decode()}


@dataclass
class Sealed:
    """What one call of :meth:`Ledger.checkpoint` did."""

    checkpoint: AuditCheckpoint | None
    added: int

    def describe(self) -> str:
        cp = self.checkpoint
        if cp is None:
            return "the audit log is empty: nothing to checkpoint"
        if not self.added:
            return f"no new entries: checkpoint #{cp.id} covers {cp.tree_size} entries"
        return f"checkpoint #{cp.id}: {cp.tree_size} entries (+{self.added}), root {cp.root_hash}"


class LedgerError(Conflict):
    """The stored tree does not continue the last checkpoint: refuse to sign over it."""


class Ledger:
    def __init__(self, hub):
        self.hub = hub

    # -- keys ---------------------------------------------------------------

    @property
    def key_id(self) -> str:
        return key_id(self.hub.keys.public_key)

    def signature_valid(self, cp: AuditCheckpoint) -> bool:
        if cp.key_id != self.key_id:
            return False
        try:
            self.hub.keys.public_key.verify(base64.b64decode(cp.signature, validate=True), checkpoint_message(cp))
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False

    # -- sequencing -----------------------------------------------------------

    @staticmethod
    def latest() -> AuditCheckpoint | None:
        return AuditCheckpoint.select().order_by(AuditCheckpoint.id.desc()).first()

    def checkpoint(self, *, wait: bool = True) -> Sealed:
        """Sequence what was committed since the last checkpoint and sign the new tree.

        Signs nothing when nothing is new. ``wait=False`` (the periodic loop) returns
        at once when another process is sequencing.
        """
        added = 0
        while True:
            try:
                sealed = self._seal_batch(wait=wait)
            except peewee.OperationalError as exc:
                if "lock timeout" not in str(exc):
                    raise
                raise Conflict(f"an audit writer's transaction has been open longer than {LOCK_WAIT}; "
                               "the entries are sealed by the next checkpoint") from None
            if sealed is None:  # another process holds the sequencer
                return Sealed(self.latest(), added)
            added += sealed.added
            if sealed.added < BATCH:
                return Sealed(sealed.checkpoint, added)

    def _seal_batch(self, *, wait: bool) -> Sealed | None:
        with hubdb.atomic():
            if hubdb.is_postgres():
                db = hubdb.database
                if wait:
                    db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
                elif not db.execute_sql("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
                    return None
                last = self.latest()
                newest = AuditEntry.select(peewee.fn.MAX(AuditEntry.id)).scalar() or 0
                if newest <= self._sealed_through(last):
                    return Sealed(last, 0)  # cheap exit: no writer is stalled for nothing
                db.execute_sql(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                db.execute_sql("LOCK TABLE audit_log IN SHARE MODE")
            last = self.latest()
            frontier = self._frontier(last)
            rows = list(AuditEntry.select(*FIELDS).where(AuditEntry.id > self._sealed_through(last))
                        .order_by(AuditEntry.id).limit(BATCH).tuples())
            if not rows:
                return Sealed(last, 0)
            leaves = []
            for row in rows:
                value = entry_leaf_hash(row)
                leaves.append({"leaf_index": frontier.size, "entry_id": row[0], "leaf_hash": value.hex()})
                frontier.append(value)
            for start in range(0, len(leaves), 500):
                AuditLeaf.insert_many(leaves[start:start + 500]).execute()
            cp = self._sign(frontier)
            log.info("audit checkpoint #%s: %s entries", cp.id, cp.tree_size)
            return Sealed(cp, len(rows))

    @staticmethod
    def _sealed_through(last: AuditCheckpoint | None) -> int:
        """The id of the last entry the tree holds (leaf order is id order)."""
        if last is None:
            return 0
        leaf = AuditLeaf.get_or_none(AuditLeaf.leaf_index == last.tree_size - 1)
        return leaf.entry_id if leaf else 0

    def _frontier(self, last: AuditCheckpoint | None) -> merkle.Frontier:
        """The tree as the last checkpoint left it, checked against what it signed."""
        size = last.tree_size if last else 0
        highest = AuditLeaf.select(peewee.fn.MAX(AuditLeaf.leaf_index)).scalar()
        stored = 0 if highest is None else highest + 1
        if stored != size:
            raise LedgerError(f"the audit leaf table ends at leaf {stored} but checkpoint "
                              f"#{last.id if last else 0} covers {size}: run 'rpahub audit verify'")
        if last is None:
            return merkle.Frontier()
        try:
            frontier = merkle.Frontier(size, [bytes.fromhex(h) for h in last.frontier.split(",") if h])
        except ValueError:
            frontier = None
        if frontier is None or frontier.root().hex() != last.root_hash or not self.signature_valid(last):
            raise LedgerError(f"checkpoint #{last.id} does not verify: run 'rpahub audit verify'")
        return frontier

    def _sign(self, frontier: merkle.Frontier) -> AuditCheckpoint:
        fields = {
            "tree_size": frontier.size, "root_hash": frontier.root().hex(),
            "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), "origin": self.hub.settings.hub.name,
            "key_id": self.key_id,
        }
        signature = self.hub.keys.signing_key.sign(checkpoint_message(fields))
        return AuditCheckpoint.create(
            **fields, signature=base64.b64encode(signature).decode(),
            frontier=",".join(h.hex() for h in frontier.hashes),
        )

    # -- proofs -----------------------------------------------------------------

    def proof(self, entry_id: int) -> dict:
        """Inclusion proof of one entry in the latest checkpoint (409 if it is not covered yet)."""
        row = AuditEntry.select(*FIELDS).where(AuditEntry.id == entry_id).tuples().first()
        if row is None:
            raise NotFound(f"audit entry {entry_id} not found")
        cp = self.latest()
        leaf = AuditLeaf.get_or_none(AuditLeaf.entry_id == entry_id)
        if cp is None or leaf is None or leaf.leaf_index >= cp.tree_size:
            raise Conflict(f"audit entry {entry_id} is not yet covered by a checkpoint; "
                           "checkpoints are signed periodically (or by 'rpahub audit checkpoint')")
        hashes = [bytes.fromhex(h) for (h,) in AuditLeaf.select(AuditLeaf.leaf_hash)
                  .where(AuditLeaf.leaf_index < cp.tree_size).order_by(AuditLeaf.leaf_index).tuples()]
        return {
            "entryId": entry_id,
            "leafIndex": leaf.leaf_index,
            "treeSize": cp.tree_size,
            "leafData": canonical_entry(row).decode(),
            "leafHash": leaf.leaf_hash,
            "auditPath": [h.hex() for h in merkle.inclusion_path(leaf.leaf_index, hashes)],
            "rootHash": cp.root_hash,
            "checkpoint": checkpoint_json(cp),
            "publicKey": self.hub.keys.public_key_pem(),
        }

