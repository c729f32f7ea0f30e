"""``rpahub audit verify``: recompute every leaf, rebuild the tree, check every checkpoint.

The signed checkpoints are the authority. Two trees are rebuilt in one pass: one
from the stored leaf hashes, one from the entries as they are now. Where an entry
and its stored leaf disagree, the checkpoint covering that leaf tells which side was
altered. Memory is one frontier per tree plus the rows found wrong, so 100k entries
verify in seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import peewee

from . import merkle
from .ledger import FIELDS, Ledger, canonical_entry, entry_leaf_hash, iter_rows
from .models import AuditCheckpoint, AuditEntry, AuditLeaf

SWAP_SEARCH_LIMIT = 300  # changed entries compared pairwise to recognise swapped rows


@dataclass
class Problem:
    kind: str
    message: str
    entryId: int | None = None
    leafIndex: int | None = None
    checkpointId: int | None = None


@dataclass
class Report:
    entries: int = 0  # entries covered by a checkpoint and checked
    checkpoints: int = 0
    pending: int = 0  # entries written after the latest checkpoint
    treeSize: int = 0
    rootHash: str = ""
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, kind: str, message: str, **where) -> None:
        self.problems.append(Problem(kind, message, **where))

    def to_json(self) -> dict:
        return {"ok": self.ok, **asdict(self)}

    def lines(self) -> list[str]:
        out = [f"FAIL {p.kind}: {p.message}" for p in self.problems]
        counted = f"{_n(self.entries, 'audit entry', 'audit entries')} and {_n(self.checkpoints, 'checkpoint')}"
        if self.ok:
            out.append(f"OK: {counted} verified"
                       + (f" (tree size {self.treeSize}, root {self.rootHash})" if self.checkpoints else ""))
        else:
            out.append(f"{_n(len(self.problems), 'problem')} found in {counted}")
        if self.pending:
            out.append(f"{_n(self.pending, 'newer entry', 'newer entries')} not yet covered by a checkpoint")
        return out


def _n(count: int, one: str, many: str = "") -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


@dataclass
class _Mismatch:
    index: int
    entry_id: int
    stored: bytes
    row: tuple | None


def verify(hub) -> Report:
    report = Report()
    ledger = Ledger(hub)

    # 1. Checkpoints: signatures and order. Only validly signed ones are evidence.
    valid: list[AuditCheckpoint] = []
    previous = None
    for cp in AuditCheckpoint.select().order_by(AuditCheckpoint.id):
        report.checkpoints += 1
        if not ledger.signature_valid(cp):
            why = "signed by an unknown key" if cp.key_id != ledger.key_id else "signature does not match its contents"
            report.add("checkpoint_signature", f"checkpoint #{cp.id} (tree size {cp.tree_size}): {why}",
                       checkpointId=cp.id)
            continue
        if previous is not None and (cp.tree_size < previous.tree_size or cp.timestamp < previous.timestamp):
            report.add("checkpoint_order", f"checkpoint #{cp.id} (tree size {cp.tree_size}, {cp.timestamp}) "
                       f"goes back from #{previous.id} (tree size {previous.tree_size}, {previous.timestamp})",
                       checkpointId=cp.id)
        valid.append(cp)
        previous = cp
    wanted = {cp.tree_size for cp in valid}
    covered = max(wanted, default=0)

    # 2. One pass over leaves (by index) merged with entries (by id).
    stored_tree, entry_tree = merkle.Frontier(), merkle.Frontier()
    stored_roots: dict[int, bytes] = {}
    entry_roots: dict[int, bytes] = {}
    mismatches: list[_Mismatch] = []
    structural: list[int] = []  # leaf indexes where the leaf table itself is out of shape
    skipped: dict[int, tuple] = {}  # entries passed over with no leaf (yet)
    entries = iter_rows(AuditEntry.select(*FIELDS), AuditEntry.id)
    current = next(entries, None)
    expected, highest = 0, 0
    leaves = iter_rows(AuditLeaf.select(AuditLeaf.leaf_index, AuditLeaf.entry_id, AuditLeaf.leaf_hash),
                       AuditLeaf.leaf_index)
    for index, entry_id, stored_hex in leaves:
        if index != expected:
            report.add("leaf_tampered", f"leaf table jumps from leaf {expected - 1} to leaf {index}: "
                       "leaf rows were deleted or inserted", leafIndex=index)
            structural.append(expected)
        expected = index + 1
        try:
            stored = bytes.fromhex(stored_hex)
        except ValueError:
            stored = b""
        if len(stored) != 32:
            report.add("leaf_tampered", f"leaf {index} (entry {entry_id}) holds no valid hash",
                       leafIndex=index, entryId=entry_id)
            structural.append(index)
            stored = bytes(32)
        while current is not None and current[0] < entry_id:
            skipped[current[0]] = current
            current = next(entries, None)
        if current is not None and current[0] == entry_id:
            row, current = current, next(entries, None)
        else:
            row = skipped.pop(entry_id, None)
        if entry_id <= highest:
            report.add("leaves_reordered", f"leaf {index} refers to entry {entry_id} after a leaf for entry "
                       f"{highest}: leaf rows were reordered", leafIndex=index, entryId=entry_id)
            structural.append(index)
        highest = max(highest, entry_id)
        recomputed = entry_leaf_hash(row) if row is not None else None
        stored_tree.append(stored)
        # A missing entry is reported by itself; the stored hash stands in so the tree stays comparable.
        entry_tree.append(recomputed if recomputed is not None else stored)
        if recomputed != stored:
            mismatches.append(_Mismatch(index, entry_id, stored, row))
        if stored_tree.size in wanted:
            stored_roots[stored_tree.size] = stored_tree.root()
            entry_roots[entry_tree.size] = entry_tree.root()
    leaf_count = stored_tree.size

    # 3. Every checkpoint's root must be the root of the first tree_size leaves.
    stored_ok: dict[int, bool] = {}
    entries_ok: dict[int, bool] = {}
    for cp in valid:
        if cp.tree_size > leaf_count:
            report.add("leaf_tampered", f"checkpoint #{cp.id} covers {cp.tree_size} entries but the leaf table "
                       f"holds {leaf_count}: leaves (and their entries) were removed", checkpointId=cp.id)
            stored_ok[cp.id] = entries_ok[cp.id] = False
            continue
        root = bytes.fromhex(cp.root_hash) if len(cp.root_hash) == 64 else b""
        stored_ok[cp.id] = stored_roots.get(cp.tree_size, merkle.EMPTY_ROOT) == root
        entries_ok[cp.id] = entry_roots.get(cp.tree_size, merkle.EMPTY_ROOT) == root

    def covering(index: int) -> AuditCheckpoint | None:
        return next((cp for cp in valid if cp.tree_size > index), None)

    # 4. Say what each disagreement between an entry and its leaf is.
    swapped = _swaps(mismatches, report)
    for m in mismatches:
        if m.entry_id in swapped:
            continue
        if m.row is None:
            report.add("entry_removed", f"entry {m.entry_id} (leaf {m.index}) was deleted",
                       entryId=m.entry_id, leafIndex=m.index)
            continue
        cp = covering(m.index)
        if cp is not None and entries_ok[cp.id] and not stored_ok[cp.id]:
            report.add("leaf_tampered", f"leaf {m.index}: its stored hash was altered; entry {m.entry_id} still "
                       f"matches checkpoint #{cp.id}", leafIndex=m.index, entryId=m.entry_id, checkpointId=cp.id)
        else:
            report.add("entry_changed", f"entry {m.entry_id} (leaf {m.index}) differs from what was sealed"
                       + (f" in checkpoint #{cp.id}" if cp else ""), entryId=m.entry_id, leafIndex=m.index)

    for entry_id, row in sorted(skipped.items()):
        report.add("entry_inserted", f"entry {entry_id} (at {row[1]}, action {row[5]}) is older than sealed "
                   "entries but in no checkpoint: it was inserted afterwards", entryId=entry_id)

    # 5. A checkpoint that neither the entries nor the leaves reproduce, with nothing above to explain it.
    explained = sorted([m.index for m in mismatches] + structural)
    good_size = 0
    for cp in valid:
        if cp.tree_size > leaf_count:
            continue
        if stored_ok[cp.id] or entries_ok[cp.id]:
            good_size = max(good_size, cp.tree_size)
            continue
        if not any(i < cp.tree_size for i in explained):
            report.add("checkpoint_mismatch", f"checkpoint #{cp.id}: the root of the first {cp.tree_size} leaves is "
                       f"not the signed root; entries and leaves {good_size}..{cp.tree_size - 1} were rewritten",
                       checkpointId=cp.id)
        break

    # 6. Leaves no checkpoint covers: a sequencer racing this run, or rows added by hand.
    if leaf_count > covered:
        now_covered = AuditCheckpoint.select(peewee.fn.MAX(AuditCheckpoint.tree_size)).scalar() or 0
        if now_covered < leaf_count:
            report.add("leaf_tampered", f"leaves {covered}..{leaf_count - 1} are covered by no signed checkpoint",
                       leafIndex=covered)
    report.entries = min(leaf_count, covered)
    report.pending = AuditEntry.select().where(AuditEntry.id > highest).count()
    if valid:
        report.treeSize, report.rootHash = valid[-1].tree_size, valid[-1].root_hash
    return report


def _swaps(mismatches: list[_Mismatch], report: Report) -> set[int]:
    """Entries whose content is another sealed entry's: rows swapped or moved. Returns their ids."""
    changed = [m for m in mismatches if m.row is not None][:SWAP_SEARCH_LIMIT]
    by_stored = {m.stored: m for m in mismatches}
    holds: dict[int, int] = {}  # entry id -> id of the entry whose sealed content it now holds
    for m in changed:
        for other in mismatches:
            if other.entry_id == m.entry_id:
                continue
            moved = (other.entry_id, *m.row[1:])
            if by_stored.get(entry_leaf_hash(moved)) is other:
                holds[m.entry_id] = other.entry_id
                break
    reported: set[int] = set()
    for a, b in sorted(holds.items()):
        if a in reported:
            continue
        if holds.get(b) == a:
            report.add("entries_swapped", f"entries {a} and {b} hold each other's contents: rows were reordered",
                       entryId=a)
            reported |= {a, b}
        else:
            report.add("entry_changed", f"entry {a} now holds the content sealed for entry {b}", entryId=a)
            reported.add(a)
    return reported


__all__ = ["Problem", "Report", "canonical_entry", "verify"]
