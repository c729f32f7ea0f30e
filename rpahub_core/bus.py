"""Publish/subscribe between the plugins of a hub.

Events are published *after* the transaction that caused them commits, so nobody
is told about a change that was rolled back. The default bus is in-process; a
plugin may replace it (``rpahub_make_bus``) with one that crosses processes, as
long as it keeps the same three methods.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger("rpahub.bus")

Subscriber = Callable[["Event"], None]


@dataclass(frozen=True)
class Event:
    topic: str  # "run.finished", "executor.online", "audit.recorded" ...
    data: dict[str, Any] = field(default_factory=dict)
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    origin: str = ""  # node id of the publishing hub process


class Bus(Protocol):
    def publish(self, event: Event) -> None: ...

    def subscribe(self, prefix: str, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` for every event whose topic starts with ``prefix``; return an unsubscribe."""

    def close(self) -> None: ...


class InProcessBus:
    def __init__(self) -> None:
        self._subscribers: list[tuple[str, Subscriber]] = []

    def publish(self, event: Event) -> None:
        for prefix, callback in list(self._subscribers):
            if event.topic.startswith(prefix):
                try:
                    callback(event)
                except Exception:  # one observer never breaks the others
                    log.exception("subscriber %r failed on %s", callback, event.topic)

    def subscribe(self, prefix: str, callback: Subscriber) -> Callable[[], None]:
        entry = (prefix, callback)
        self._subscribers.append(entry)
        return lambda: self._subscribers.remove(entry) if entry in self._subscribers else None

    def close(self) -> None:
        self._subscribers.clear()
