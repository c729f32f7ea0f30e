"""WebSocket transport: ``/robothub/{robotId}``, frames ``{"action", "body": "<JSON text>"}`` (A.1)."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from urllib.parse import quote

import websocket

from .transport import Command, ConnectionLost, Refused, Transport

log = logging.getLogger("rpahub.executor.ws")

DUPLICATE_CONNECTION = 10000
# The hub acknowledges a good Register with silence (or SendLicense): wait this long for an Error.
REGISTER_GRACE_S = 2.0
SOCKET_TIMEOUT_S = 10.0


def ws_url(hub_url: str, robot_id: str) -> str:
    base = hub_url.rstrip("/")
    if base.startswith("https://"):
        base = "wss://" + base[len("https://"):]
    elif base.startswith("http://"):
        base = "ws://" + base[len("http://"):]
    return f"{base}/robothub/{quote(robot_id, safe='')}"


def encode(action: str, body: dict | None) -> str:
    msg = {"action": action}
    if body is not None:
        msg["body"] = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def decode(text) -> Command:
    msg = json.loads(text)
    raw = msg.get("body")
    body = json.loads(raw) if isinstance(raw, str) and raw.strip() else raw
    return Command(str(msg.get("action", "")), body)


class WsTransport(Transport):
    name = "ws"

    def __init__(self, hub_url: str, robot_id: str, heartbeat_s: float = 15):
        super().__init__(hub_url, robot_id)
        self.url = ws_url(hub_url, robot_id)
        self.heartbeat_s = heartbeat_s
        self._ws: websocket.WebSocket | None = None
        self._reader: threading.Thread | None = None
        self._last_rx = 0.0

    # -- connection ------------------------------------------------------------

    def register(self, body: dict) -> str | None:
        self.close()
        self._commands = queue.Queue()  # nothing from an old connection leaks into this one
        try:
            ws = websocket.create_connection(self.url, timeout=SOCKET_TIMEOUT_S, enable_multithread=True)
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionLost(f"cannot connect to {self.url}: {exc}") from None
        self._ws = ws
        self._last_rx = time.monotonic()
        licence = None
        try:
            ws.send(encode("Register", body))
            deadline = time.monotonic() + REGISTER_GRACE_S
            while (left := deadline - time.monotonic()) > 0:
                ws.settimeout(left)
                try:
                    command = self._receive(ws)
                except websocket.WebSocketTimeoutException:
                    break
                if command is None:
                    continue
                if command.action == "Error":
                    error = command.body or {}
                    raise Refused(f"{error.get('errorCode')}: {error.get('message')}")
                if command.action == "SendLicense":
                    licence = (command.body or {}).get("licenseContent") or None
                else:  # a command queued while we were away: registration worked
                    self._commands.put(command)
                break
        except (OSError, websocket.WebSocketException) as exc:
            self.close()
            raise ConnectionLost(f"connection dropped while registering: {exc}") from None
        except (Refused, ConnectionLost):
            self.close()
            raise
        ws.settimeout(SOCKET_TIMEOUT_S)
        self._reader = threading.Thread(target=self._read_forever, args=(ws,), name="ws-reader", daemon=True)
        self._reader.start()
        return licence

    def close(self) -> None:
        ws, self._ws = self._ws, None
        if ws is not None:
            # send_close + shutdown, not close(): close() would read replies the reader thread is reading.
            try:
                ws.send_close()
            except Exception:  # already broken: nothing to tell the hub
                pass
            ws.shutdown()

    # -- uplink ----------------------------------------------------------------

    def _send(self, action: str, body: dict | None) -> None:
        ws = self._ws
        if ws is None or not ws.connected:
            raise ConnectionLost("not connected")
        try:
            ws.send(encode(action, body))
        except (OSError, websocket.WebSocketException) as exc:
            raise ConnectionLost(f"send failed: {exc}") from None

    def heartbeat(self, run_id: str | None) -> None:
        # The hub answers our pings; silence for several periods means a half-open socket.
        if time.monotonic() - self._last_rx > 3 * self.heartbeat_s + SOCKET_TIMEOUT_S:
            raise ConnectionLost("no frame from the hub for too long")
        self._send("Heartbeat", {"runInstanceId": run_id} if run_id else {})
        try:
            self._ws.ping()
        except (OSError, websocket.WebSocketException, AttributeError) as exc:
            raise ConnectionLost(f"ping failed: {exc}") from None

    def report(self, action: str, body: dict) -> None:
        # Refusals come back later as Error frames (logged by the reader): A.1 has no replies.
        self._send(action, body)

    # -- downlink --------------------------------------------------------------

    def _receive(self, ws) -> Command | None:
        """One frame: a command, or None for control frames; raises when the socket is gone."""
        opcode, frame = ws.recv_data_frame(control_frame=True)
        self._last_rx = time.monotonic()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise ConnectionLost("the hub closed the connection")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return None
        try:
            return decode(frame.data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, AttributeError):
            log.warning("ignoring a malformed frame from the hub: %r", frame.data[:200])
            return None

    def _read_forever(self, ws) -> None:
        reason = "connection closed"
        try:
            while self._ws is ws:
                try:
                    command = self._receive(ws)
                except websocket.WebSocketTimeoutException:
                    continue
                if command is None:
                    continue
                if command.action == "Error":
                    body = command.body or {}
                    code, message = body.get("errorCode"), body.get("message", "")
                    if code == DUPLICATE_CONNECTION or "send Register first" in message:
                        reason = f"hub error {code}: {message}"
                        break
                    log.warning("hub reported error %s: %s", code, message)
                    continue
                self._commands.put(command)
        except ConnectionLost as exc:
            reason = str(exc)
        except (OSError, websocket.WebSocketException) as exc:
            reason = f"receive failed: {exc}"
        if self._ws is ws:  # not a close we asked for
            self._commands.put(Command("__lost__", reason))
