"""The executors a placement may choose from, kept in memory.

Reading every live executor per placement cost about 70 ms at 10,000 of them
(docs/benchmarks.md, note 4). The index keeps, per executor that is not offline, what
a placement needs (supplier, labels, slots, paused, last sign of life, the runs it
holds) and learns changes from what this process already sees: registrations and
disconnects, the gateway's liveness flush, runs dispatched and released, executor
updates. What it cannot see (another hub process, a direct write) it picks up by
re-reading the executor table a slice at a time, a full pass every ``pass_ticks``
steps.

It is a hint, never the truth: the placement transaction re-reads the executor it
commits to (``Dispatcher._still_free``), so a stale entry costs a retry, not a wrong
placement.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from rpahub_core.db import utcnow
from rpahub_core.dispatching import Candidate

# Topics after which a run no longer holds a slot of its executor.
RELEASED = frozenset({"run.finished", "run.completed", "run.retrying", "run.success", "run.failed",
                      "run.cancelled"})


@dataclass(slots=True)
class Entry:
    supplier: str
    labels: tuple[str, ...]
    slots: int
    paused: bool
    heard: dt.datetime  # last sign of life known here (naive UTC)


class ExecutorIndex:
    def __init__(self, offline_after_s: float, kinds_of: Callable[[], dict[str, tuple]], *, pass_ticks: int = 10,
                 min_slice: int = 500):
        self.offline_after_s = offline_after_s
        self.kinds_of = kinds_of  # supplier code -> package kinds its adapter runs (empty: any)
        self.pass_ticks, self.min_slice = pass_ticks, min_slice
        self.entries: dict[str, Entry] = {}
        self.holder: dict[str, str] = {}  # active run -> its executor
        self.held: dict[str, set[str]] = {}  # executor -> its active runs
        self.dirty: set[str] = set()  # re-read before the next placement
        self.kinds: dict[str, tuple] = {}
        self.loaded = False
        self._cursor = ""  # where the next reconcile slice starts (executor id order)
        self._lock = threading.RLock()
        self._labels: dict[str, tuple[str, ...]] = {}  # most executors share a few label sets
        self._free: dict[str, Candidate] = {}
        self._swept_at = 0.0

    # -- what this process sees ----------------------------------------------------------

    def on_event(self, topic: str, data: dict) -> None:
        if topic == "run.dispatched":
            self.dispatched(data.get("runId"), data.get("executorId"))
        elif topic in RELEASED:
            self.released(data.get("runId"))
        elif topic == "executor.online":
            self.changed(data.get("robotId"))
        elif topic == "executor.offline":
            with self._lock:
                self.entries.pop(data.get("robotId"), None)
                self._free.pop(data.get("robotId"), None)
                self.dirty.discard(data.get("robotId"))
        elif topic == "executor.updated":
            self.changed(data.get("robotId"))  # labels, slots or paused changed (PATCH)
        elif topic in ("supplier.updated", "supplier.created"):
            with self._lock:
                self.loaded = False  # a supplier changed (adapter, disabled): read everything again

    def changed(self, robot_id: str | None) -> None:
        if robot_id:
            with self._lock:
                self.dirty.add(robot_id)

    def heard(self, robot_ids: list[str], at: dt.datetime) -> None:
        """Liveness the gateway just wrote."""
        entries = self.entries
        for robot_id in robot_ids:
            entry = entries.get(robot_id)
            if entry is None:
                if self.loaded:
                    self.dirty.add(robot_id)  # back online through its liveness, without registering
            elif entry.heard < at:
                entry.heard = at
                if robot_id not in self._free:
                    self._update(robot_id)  # heard again after it was taken for silent

    def dispatched(self, run_id: str | None, robot_id: str | None) -> None:
        if not run_id or not robot_id:
            return
        with self._lock:
            old = self.holder.get(run_id)
            if old == robot_id:
                return
            if old is not None:
                self._drop(run_id, old)
            self.holder[run_id] = robot_id
            self.held.setdefault(robot_id, set()).add(run_id)
            self._touched(robot_id)

    def released(self, run_id: str | None) -> None:
        with self._lock:
            robot_id = self.holder.pop(run_id, None) if run_id else None
            if robot_id is not None:
                self._drop(run_id, robot_id)

    def _drop(self, run_id: str, robot_id: str) -> None:
        runs = self.held.get(robot_id)
        if runs is not None:
            runs.discard(run_id)
            if not runs:
                del self.held[robot_id]
        self._touched(robot_id)

    def _touched(self, robot_id: str) -> None:
        if robot_id in self.entries:
            self._update(robot_id)

    # -- reading the database --------------------------------------------------------------

    def refresh(self) -> None:
        """Read what changed since (everything, the first time)."""
        if not self.loaded:
            self.load()
            return
        if self.dirty:
            with self._lock:
                ids, self.dirty = sorted(self.dirty), set()
            for i in range(0, len(ids), 500):
                self._apply(self._rows_of(ids[i:i + 500]), ids[i:i + 500])

    def free(self) -> dict[str, Candidate]:
        """Executors alive, not paused, with a free slot, as far as this process knows: a
        copy the caller may change. Kept up to date change by change, not rebuilt per
        call: a loop over 10,000 entries and their objects per placement cost 10-40 ms
        under load and fed the garbage collector."""
        self.refresh()
        now = time.monotonic()
        if now - self._swept_at >= 1.0:  # liveness expires with time, not with an event
            self._swept_at = now
            alive = utcnow() - dt.timedelta(seconds=self.offline_after_s)
            with self._lock:
                for robot_id in [r for r in self._free if self.entries[r].heard < alive]:
                    del self._free[robot_id]
        return dict(self._free)

    def _update(self, robot_id: str, alive: dt.datetime | None = None) -> None:
        """Whether ``robot_id`` is a candidate now, and as which."""
        e = self.entries.get(robot_id)
        if alive is None:
            alive = utcnow() - dt.timedelta(seconds=self.offline_after_s)
        active = len(self.held.get(robot_id, ()))
        if e is None or e.paused or e.heard < alive or active >= e.slots:
            self._free.pop(robot_id, None)
            return
        kinds = self.kinds.get(e.supplier, ())
        c = self._free.get(robot_id)
        if c is None or (c.supplier, c.labels, c.active, c.slots, c.extra["kinds"]) != (
                e.supplier, e.labels, active, e.slots, kinds):
            self._free[robot_id] = Candidate(id=robot_id, supplier=e.supplier, labels=e.labels, active=active,
                                             slots=e.slots, extra={"kinds": kinds})

    def load(self) -> None:
        """Everything again, in one read (at start, and after a supplier changed)."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        kinds = self.kinds_of()
        rows = list(Executor.select(Executor.id, Executor.supplier, Executor.labels, Executor.slots,
                                    Executor.paused, Executor.last_heartbeat)
                    .where(Executor.state != "offline").tuples())
        runs = list(RunInstance.select(RunInstance.id, RunInstance.executor_id)
                    .where(RunInstance.state.in_(ACTIVE_STATES) & RunInstance.executor_id.is_null(False)).tuples())
        with self._lock:
            self.kinds, self.dirty, self.loaded = kinds, set(), True
            self.entries = {r[0]: self._entry(r) for r in rows}
            self.holder = dict(runs)
            self.held = {}
            for run_id, robot_id in runs:
                self.held.setdefault(robot_id, set()).add(run_id)
            self._free = {}
            alive = utcnow() - dt.timedelta(seconds=self.offline_after_s)
            for robot_id in self.entries:
                self._update(robot_id, alive)

    def reconcile_step(self) -> None:
        """Re-read the next slice of the executor table (all states, in id order) with the
        runs its executors hold; a full pass takes about ``pass_ticks`` steps."""
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        if not self.loaded:
            return  # the next refresh() reads everything anyway
        size = max(self.min_slice, len(self.entries) // self.pass_ticks + 1)
        start = self._cursor
        rows = list(Executor.select(Executor.id, Executor.supplier, Executor.labels, Executor.slots, Executor.paused,
                                    Executor.last_heartbeat, Executor.state)
                    .where(Executor.id > start).order_by(Executor.id).limit(size).tuples())
        end = rows[-1][0] if len(rows) == size else None  # None: the slice reached the end of the table
        where = RunInstance.state.in_(ACTIVE_STATES) & (RunInstance.executor_id > start)
        if end is not None:
            where &= RunInstance.executor_id <= end
        runs = list(RunInstance.select(RunInstance.id, RunInstance.executor_id).where(where).tuples())
        if end is None:
            self.kinds = self.kinds_of()

        def within(robot_id: str) -> bool:
            return robot_id > start and (end is None or robot_id <= end)

        with self._lock:
            # Entries of the slice the table no longer has are dropped with their runs.
            ids = {r[0] for r in rows} | {i for i in self.entries if within(i)} | {i for i in self.held if within(i)}
            self._apply((rows, runs), list(ids))
        self._cursor = end or ""

    def _rows_of(self, ids: list[str]) -> tuple[list[tuple], list[tuple]]:
        from rpahub_plugins.executors.gateway import ACTIVE_STATES
        from rpahub_plugins.executors.models import Executor, RunInstance

        rows = list(Executor.select(Executor.id, Executor.supplier, Executor.labels, Executor.slots, Executor.paused,
                                    Executor.last_heartbeat, Executor.state)
                    .where(Executor.id.in_(ids)).tuples())
        runs = list(RunInstance.select(RunInstance.id, RunInstance.executor_id)
                    .where(RunInstance.executor_id.in_(ids) & RunInstance.state.in_(ACTIVE_STATES)).tuples())
        return rows, runs

    def _apply(self, read: tuple[list[tuple], list[tuple]], ids: list[str]) -> None:
        """What the database said of ``ids`` replaces what the index believed of them."""
        rows, runs = read
        with self._lock:
            old = {}
            for robot_id in ids:
                entry = self.entries.pop(robot_id, None)
                if entry is not None:
                    old[robot_id] = entry
                for run_id in self.held.pop(robot_id, ()):
                    if self.holder.get(run_id) == robot_id:
                        del self.holder[run_id]
            for run_id, robot_id in runs:
                self.holder[run_id] = robot_id
                self.held.setdefault(robot_id, set()).add(run_id)
            for row in rows:
                if row[6] == "offline":
                    continue
                entry, before = self._entry(row), old.get(row[0])
                if before is not None and (before.supplier, before.labels, before.slots, before.paused) == (
                        entry.supplier, entry.labels, entry.slots, entry.paused):
                    # Unchanged: keep the object (no new long-lived garbage per reconcile).
                    # Liveness as written: this process tells heard() only after its writes.
                    before.heard = entry.heard
                    entry = before
                self.entries[row[0]] = entry
            alive = utcnow() - dt.timedelta(seconds=self.offline_after_s)
            for robot_id in ids:
                self._update(robot_id, alive)

    def _entry(self, row: tuple) -> Entry:
        _, supplier, labels, slots, paused, heard = row[:6]
        if supplier not in self.kinds:
            self.kinds = self.kinds_of()  # a supplier admitted since: its adapter decides what it runs
            self.kinds.setdefault(supplier, ())
        if labels not in self._labels:
            self._labels[labels] = tuple(json.loads(labels))
        if isinstance(heard, str):  # SQLite without the column's converter
            heard = dt.datetime.fromisoformat(heard)
        return Entry(supplier=supplier, labels=self._labels[labels], slots=slots, paused=bool(paused),
                     heard=heard or dt.datetime.min)
