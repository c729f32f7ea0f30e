"""HTTP transport under ``/robots/connect/`` (A.2): the heartbeat also fetches commands."""

from __future__ import annotations

import logging

import requests

from .transport import Command, ConnectionLost, Refused, Rejected, Transport

log = logging.getLogger("rpahub.executor.http")

PATHS = {
    "ReportLogs": "reportLogs",
    "ReportFinish": "reportFinish",
    "ReportVideoRecord": "reportVideoRecord",
    "ReportCheckpoint": "reportCheckpoint",  # extension, see the hub's docs/protocol.md
}
TIMEOUT = (5, 30)
# The hub hands out one command per heartbeat; ask again at once while it has more.
MAX_COMMANDS_PER_BEAT = 10


class HttpTransport(Transport):
    name = "http"

    def __init__(self, hub_url: str, robot_id: str, heartbeat_s: float = 15):
        super().__init__(hub_url, robot_id)
        self.session = requests.Session()
        self.connect_id: str | None = None

    def _post(self, path: str, body: dict, *, registering: bool = False):
        headers = {"robotId": self.robot_id}
        if not registering:
            if self.connect_id is None:
                raise ConnectionLost("not registered")
            headers["robotConnectId"] = self.connect_id
        try:
            r = self.session.post(f"{self.hub_url}/robots/connect/{path}", json=body, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise ConnectionLost(f"{path}: {exc}") from None
        try:
            envelope = r.json()
        except ValueError:
            envelope = {}
        if not isinstance(envelope, dict):
            envelope = {}
        hint = envelope.get("resultHint") or r.reason
        if r.status_code >= 500 or r.status_code in (408, 429):
            raise ConnectionLost(f"{path}: HTTP {r.status_code} {hint}")
        if registering and r.status_code >= 400:
            raise Refused(f"HTTP {r.status_code}: {hint}")
        if r.status_code == 401:  # robotConnectId expired (missed heartbeats) or replaced
            self.connect_id = None
            raise ConnectionLost(f"{path}: {hint}")
        if r.status_code >= 400 or envelope.get("successful") is False:
            raise Rejected(f"{path}: HTTP {r.status_code} {hint}")
        return envelope.get("resultValue")

    def register(self, body: dict) -> str | None:
        self.connect_id = None
        value = self._post("register", body, registering=True) or {}
        self.connect_id = value.get("robotConnectId")
        if not self.connect_id:
            raise Refused("register answered without robotConnectId")
        return value.get("licenseContent") or None

    def heartbeat(self, run_id: str | None) -> None:
        for _ in range(MAX_COMMANDS_PER_BEAT):
            try:
                value = self._post("heartbeat", {"runInstanceId": run_id} if run_id else {}) or {}
            except Rejected as exc:  # e.g. a run id the hub no longer knows: still alive
                log.warning("heartbeat refused: %s", exc)
                return
            action = value.get("Action") or "None"
            if action == "None":
                return
            self._commands.put(Command(action, value.get("Body")))

    def report(self, action: str, body: dict) -> None:
        self._post(PATHS[action], body)

    def close(self) -> None:
        self.connect_id = None
