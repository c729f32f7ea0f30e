"""Reports waiting to reach the hub, kept in the order they were made.

Log records of one run are merged into ``ReportLogs`` batches while they wait, so a
chatty package costs one message per flush, not one per line. Everything survives a
dropped connection: the agent sends the head again after re-registering.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field

MAX_BATCH = 500  # records per ReportLogs (the hub accepts up to 5000)
MAX_QUEUED_RECORDS = 200_000  # bound memory while the hub is unreachable


@dataclass
class Item:
    action: str
    body: dict
    sealed: bool = False  # being sent: later records start a new batch
    records: int = field(default=0)


class Outbox:
    def __init__(self):
        self._items: deque[Item] = deque()
        self._lock = threading.Lock()
        self._queued_records = 0
        self._dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def log(self, run_id: str, record: dict) -> None:
        with self._lock:
            if self._queued_records >= MAX_QUEUED_RECORDS:
                self._dropped += 1
                return
            if self._dropped:
                note = dict(record, content=f"{self._dropped} log lines were dropped while the hub was unreachable",
                            logLevel=1)
                self._dropped = 0
                self._append_log(run_id, note)
            self._append_log(run_id, record)

    def _append_log(self, run_id: str, record: dict) -> None:
        last = self._items[-1] if self._items else None
        if (last is None or last.sealed or last.action != "ReportLogs" or last.body["runInstanceId"] != run_id
                or last.records >= MAX_BATCH):
            last = Item("ReportLogs", {"runInstanceId": run_id, "logs": []})
            self._items.append(last)
        last.body["logs"].append(record)
        last.records += 1
        self._queued_records += 1

    def put(self, action: str, body: dict) -> None:
        with self._lock:
            self._items.append(Item(action, body))

    def head(self) -> Item | None:
        """The oldest report, sealed so nothing is added to it while it is sent."""
        with self._lock:
            if not self._items:
                return None
            item = self._items[0]
            item.sealed = True
            return item

    def done(self, item: Item) -> None:
        with self._lock:
            if self._items and self._items[0] is item:
                self._items.popleft()
                self._queued_records -= item.records
