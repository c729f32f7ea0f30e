"""The executor session: one abstraction under every transport (T/CES 130 clause 7).

A transport plugin (WebSocket, HTTP, ...) turns frames or requests into calls on an
:class:`Uplink`, which the hub provides, and represents each connected robot with an
:class:`ExecutorSession`. Commands for a robot are durable rows the uplink hands out
through :meth:`Uplink.next_command` — pushed at once over WebSocket, fetched by the
next heartbeat over HTTP — so dispatch never knows, or cares, how a robot is connected,
and a robot may switch transport between runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import BadRequest


class ProtocolError(BadRequest):
    """Invalid input from an executor: ``Error`` frame 10001 / HTTP 400."""


@dataclass
class ExecutorSession:
    robot_id: str
    transport: str  # "ws" | "http" | ...
    remote: str = ""
    connect_id: str | None = None  # set by a successful Register
    registered: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    #: True for transports that hold a connection and push commands (WebSocket)
    push: bool = False

    def wake(self) -> None:
        """New commands are waiting. Push transports deliver now; poll transports ignore it."""

    def close(self, code: int, message: str) -> None:
        """End the connection after telling the executor ``code`` (push transports)."""


@dataclass
class Command:
    action: str  # Execute | Stop | SendLicense | Error
    body: str | None  # JSON text, exactly what travels in "body"
    id: int | None = None


class Uplink(Protocol):
    """What the hub does with each executor message; every transport calls the same methods."""

    def register(self, session: ExecutorSession, body: Any) -> dict[str, Any]:
        """Admit the robot; returns ``{"robotConnectId", "licenseContent"}``."""

    def heartbeat(self, session: ExecutorSession, body: Any) -> None: ...

    def report_logs(self, session: ExecutorSession, body: Any) -> None: ...

    def report_finish(self, session: ExecutorSession, body: Any) -> None: ...

    def report_video(self, session: ExecutorSession, body: Any) -> None: ...

    def report_checkpoint(self, session: ExecutorSession, body: Any) -> None: ...

    def next_command(self, session: ExecutorSession) -> Command | None:
        """The oldest undelivered command, left pending until :meth:`ack`."""

    def ack(self, command: Command) -> None:
        """The command reached the executor (sent on its socket, or in a heartbeat answer)."""

    def wake_waiting(self) -> int:
        """Wake the push sessions of this process that have undelivered commands (queued by
        another process); push transports call it every few seconds, once per process."""

    def resume(self, robot_id: str, connect_id: str) -> ExecutorSession:
        """The session of a registered robot presenting its connection id (HTTP)."""

    def disconnected(self, session: ExecutorSession) -> None: ...


class Transport(Protocol):
    name: str

    def routes(self, uplink: Uplink, hub: Any) -> list[tuple[str, Any]]:
        """Falcon resources serving this transport, bound to ``uplink``."""
