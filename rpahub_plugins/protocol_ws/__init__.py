"""WebSocket executor protocol at ``/robothub/{id}`` (T/CES 130 7.2.1, A.1, figure B.1).

Every frame is ``{"action": "...", "body": "<JSON text>"}``. Nothing but ``Register`` is
accepted before registration; a malformed or invalid frame is answered with ``Error``
10001 and the connection stays open; a second connection for a connected robot gets
``Error`` 10000 and is closed. The hub pings, closes idle sockets, and caps frame size.
"""

from __future__ import annotations

import json
import logging
import time

import pydantic_core

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.errors import DUPLICATE_CONNECTION, PARAMETER_ERROR, UNKNOWN_ERROR, BadRequest, HubError
from rpahub_core.sessions import ExecutorSession

from . import wsfix

log = logging.getLogger("rpahub.protocol_ws")

UPLINK = {
    "Heartbeat": "heartbeat",
    "ReportLogs": "report_logs",
    "ReportFinish": "report_finish",
    "ReportVideoRecord": "report_video",
    "ReportCheckpoint": "report_checkpoint",  # extension, see docs/protocol.md
}


def frame(action: str, body: dict | str | None = None) -> str:
    msg = {"action": action}
    if body is not None:
        msg["body"] = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(msg, ensure_ascii=False, separators=(",", ":"))


def error_frame(code: int, message: str) -> str:
    return frame("Error", {"errorCode": code, "message": message})


class WsSession(ExecutorSession):
    def __init__(self, robot_id: str, ws, remote: str, on_wake=None):
        super().__init__(robot_id=robot_id, transport="ws", remote=remote, push=True)
        self.ws = ws
        self.on_wake = on_wake  # the transport delivers what waits (RobotHub._wake)
        self.sender = None  # the greenlet delivering commands, while there are some
        self.again = False  # woken while the sender was busy: it looks once more
        self.extra["last_seen"] = time.monotonic()

    def send(self, text: str) -> None:
        if self.ws.closed:
            raise ConnectionError("socket closed")
        self.ws.send(text)

    def wake(self) -> None:
        if self.on_wake is not None:
            self.on_wake(self)

    def close(self, code: int | None, message: str) -> None:
        try:
            if code is not None:
                self.send(error_frame(code, message))
            self.ws.close(1000 if code is not None else 1001, message.encode()[:120])
        except Exception:  # already gone
            pass


# Bodies handed to the uplink as the text that travelled, for it to validate in one pass
# (executors.wire.parse takes text as well as parsed JSON): a ReportLogs carries up to
# 5,000 records, and building Python objects of them first would double the work.
TEXT_BODIES = frozenset({"ReportLogs"})


def parse_frame(text) -> tuple[str, object]:
    """The action of a frame and its body: parsed JSON, or the text for :data:`TEXT_BODIES`.
    Frame and bodies are read by the JSON parser pydantic validates with."""
    if not isinstance(text, str):
        raise BadRequest("frames must be text (JSON)")
    try:
        msg = pydantic_core.from_json(text)
    except (ValueError, TypeError):  # TypeError: a str UTF-8 cannot encode (lone surrogates)
        raise BadRequest("frame is not valid JSON") from None
    if not isinstance(msg, dict):
        raise BadRequest("frame must be a JSON object with action and body")
    action = msg.get("action")
    if not isinstance(action, str) or not action:
        raise BadRequest("action: required string")
    raw = msg.get("body")
    if raw is None:
        return action, None
    if not isinstance(raw, str):
        raise BadRequest("body: must be a string holding JSON (Appendix A.1)")
    if not raw or raw.isspace():
        return action, None
    if action in TEXT_BODIES:
        return action, raw
    try:
        return action, pydantic_core.from_json(raw)
    except (ValueError, TypeError):
        raise BadRequest("body: not valid JSON text") from None


class RobotHub:
    def __init__(self, uplink, hub, settings: dict):
        self.uplink = uplink
        self.hub = hub
        self.idle_s = int(settings["heartbeat_s"]) * int(settings["missed_heartbeats"])
        self.ping_s = max(1, int(settings["heartbeat_s"]))
        # Commands queued by another process arrive at the latest after this: one query per
        # process, however many sockets it holds (the bus wakes sessions at once where it can).
        self.poll_s = 2.0
        # A socket costs its reading greenlet only: one pinger and one poller per process,
        # and a sender greenlet just while commands are being delivered (RSS per executor).
        self.sockets: dict[int, WsSession] = {}  # by id(): sessions compare by value
        self._background = None

    def on_get(self, req, resp, robot_id):
        ws = req.env.get("wsgi.websocket")
        if ws is None:
            raise BadRequest("WebSocket upgrade required (GET with Upgrade: websocket)")
        if not robot_id or len(robot_id) > 128:
            ws.send(error_frame(PARAMETER_ERROR, "id: 1 to 128 characters"))
            ws.close()
            return
        session = WsSession(robot_id, ws, req.remote_addr or "", on_wake=self._wake)
        import gevent

        if self._background is None:
            self._background = [gevent.spawn(self._poll_forever), gevent.spawn(self._ping_forever)]
        self.sockets[id(session)] = session
        try:
            self._uplink_loop(session)
        finally:
            self.sockets.pop(id(session), None)
            if session.sender is not None:
                session.sender.kill()
            with hubdb.connection():
                self.uplink.disconnected(session)
            if not ws.closed:
                ws.close()

    def _uplink_loop(self, session: WsSession) -> None:
        import gevent

        ws = session.ws
        while not ws.closed:
            try:
                with gevent.Timeout(self.idle_s):
                    text = ws.receive()
            except gevent.Timeout:
                # docs/protocol.md 6.11: Error 10001, then close 1000 (pings and pongs are no activity)
                session.close(PARAMETER_ERROR, f"no message for {self.idle_s}s; closing")
                return
            if text is None:
                return
            session.extra["last_seen"] = time.monotonic()
            reply = self.handle(session, text)
            if reply:
                session.send(reply)
                if json.loads(json.loads(reply)["body"])["errorCode"] == DUPLICATE_CONNECTION:
                    ws.close(1008, b"duplicate connection")  # A.3.5: the hub closes this connection
                    return

    def handle(self, session: WsSession, text) -> str | None:
        """Process one frame; return an ``Error`` frame to send back, if any."""
        try:
            action, body = parse_frame(text)
            if action == "Heartbeat" and session.registered:
                # Most heartbeats touch no table: the uplink takes a connection when one does.
                self.uplink.heartbeat(session, body)
                return None
            with hubdb.connection():
                if action == "Register":
                    if session.registered:
                        raise BadRequest("Register: already registered on this connection")
                    result = self.uplink.register(session, body)
                    if result.get("licenseContent"):
                        session.send(frame("SendLicense", {"licenseContent": result["licenseContent"]}))
                    session.wake()  # commands queued while it was away
                    return None
                method = UPLINK.get(action)
                if method is None:
                    raise BadRequest(f"action: unknown action {action!r}")
                if not session.registered:
                    raise BadRequest(f"{action}: send Register first")
                getattr(self.uplink, method)(session, body)
                return None
        except HubError as exc:
            code = exc.code if exc.code in (DUPLICATE_CONNECTION, UNKNOWN_ERROR) else PARAMETER_ERROR
            return error_frame(code, exc.hint)
        except Exception as exc:
            if hubdb.is_database_error(exc):  # nothing of the frame was kept: the executor sends it again
                hubdb.log_failure(log, "frames from executors", exc)
                return error_frame(UNKNOWN_ERROR, "the hub's database is unavailable; send it again later")
            log.exception("unexpected failure on a frame from %s", session.robot_id)
            return error_frame(UNKNOWN_ERROR, "unexpected error (19999); the hub logged the details")

    def _poll_forever(self) -> None:
        import gevent

        while True:
            gevent.sleep(self.poll_s)
            try:
                with hubdb.connection():
                    self.uplink.wake_waiting()
            except Exception as exc:
                hubdb.log_failure(log, "looking for commands queued elsewhere", exc)

    def _ping_forever(self) -> None:
        """Ping every socket once per period, spread over it in small batches: 10,000
        pings sent in one go would stall the worker for a good part of a second."""
        import gevent

        batch = 50
        while True:
            sessions = list(self.sockets.values())
            if not sessions:
                gevent.sleep(self.ping_s)
                continue
            pause = self.ping_s * batch / len(sessions)
            for i in range(0, len(sessions), batch):
                for session in sessions[i:i + batch]:
                    try:
                        session.ws.send_frame(b"", session.ws.OPCODE_PING)
                    except Exception:  # a dead socket: its reading greenlet ends it
                        pass
                gevent.sleep(min(pause, self.ping_s))

    def _wake(self, session: WsSession) -> None:
        import gevent

        if session.sender is None or session.sender.dead:
            session.sender = gevent.spawn(self._deliver, session)
        else:
            session.again = True

    def _deliver(self, session: WsSession) -> None:
        """Send what waits for the robot, in order; end when nothing does (a wake during
        the round makes it look again: there is no yield between that check and the end)."""
        import gevent

        while not session.ws.closed:
            session.again = False
            try:
                if session.registered:
                    with hubdb.connection():
                        while session.registered:
                            command = self.uplink.next_command(session)
                            if command is None:
                                break
                            session.send(frame(command.action, command.body))  # raises if the socket died
                            self.uplink.ack(command)
            except Exception as exc:
                if session.ws.closed:
                    return
                hubdb.log_failure(log, f"downlink to {session.robot_id}", exc)
                gevent.sleep(1)
                session.again = True
            if not session.again:
                return


class WebSocketTransport:
    name = "ws"

    def routes(self, uplink, hub):
        settings = {"heartbeat_s": 15, "missed_heartbeats": 3, "max_ws_frame_kb": 1024,
                    **hub.settings.plugin("executors")}
        wsfix.apply(int(settings["max_ws_frame_kb"]) * 1024)
        return [("/robothub/{robot_id}", RobotHub(uplink, hub, settings))]


@hookimpl
def rpahub_executor_protocols(hub):
    return [WebSocketTransport()]
