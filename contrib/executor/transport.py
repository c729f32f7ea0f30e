"""What the agent needs from a connection to the hub, whatever the protocol.

A transport registers, heartbeats, sends reports and hands over the commands the hub
sent (``Execute``, ``Stop``, ``SendLicense``, ``Error``). Failures are reduced to three
cases the agent treats differently: the connection is gone (reconnect and resend),
registration was refused (back off and retry), a report was refused (drop it: resending
the same body cannot succeed).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from typing import Any


class ConnectionLost(Exception):
    """The connection or the registration is gone: register again, then resend."""


class Refused(Exception):
    """The hub refused Register (bad secret, unknown supplier, licence problem...)."""


class Rejected(Exception):
    """The hub refused one report for good (HTTP 400)."""


@dataclass
class Command:
    action: str
    body: Any = None


class Transport:
    name = "base"

    def __init__(self, hub_url: str, robot_id: str):
        self.hub_url = hub_url.rstrip("/")
        self.robot_id = robot_id
        self._commands: queue.Queue[Command] = queue.Queue()

    def register(self, body: dict) -> str | None:
        """Connect and register; return the licence content the hub sent, if any."""
        raise NotImplementedError

    def heartbeat(self, run_id: str | None) -> None:
        raise NotImplementedError

    def report(self, action: str, body: dict) -> None:
        """Send one report (``ReportLogs``, ``ReportFinish``, ...)."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def next_command(self, timeout: float) -> Command | None:
        """The next command from the hub, waiting up to ``timeout`` seconds."""
        try:
            command = self._commands.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None
        if command.action == "__lost__":
            raise ConnectionLost(command.body or "connection closed")
        return command
