"""HTTP executor protocol under ``/robots/connect/`` (T/CES 130 7.2.2, A.2, figure C.1).

Every call is a POST answered with the envelope. ``register`` (header ``robotId``)
returns ``robotConnectId``; every other call carries ``robotId`` and ``robotConnectId``.
The heartbeat answers the next pending command as ``Action``/``Body`` with the same
bodies the WebSocket downlink sends.
"""

from __future__ import annotations

import json

from rpahub_core import hookimpl
from rpahub_core.errors import BadRequest, Unauthorized
from rpahub_core.sessions import ExecutorSession
from rpahub_core.web import ROBOT, ok, operation
from rpahub_plugins.executors import wire

TAGS = ("executor protocol (HTTP)",)


def session_of(req) -> ExecutorSession:
    who = req.context.principal
    if who.connect_id is None:
        raise Unauthorized("robotConnectId: required (from register)")
    return ExecutorSession(robot_id=who.id, transport="http", remote=req.remote_addr or "",
                           connect_id=who.connect_id, registered=True, extra={"supplier": who.supplier})


class Register:
    def __init__(self, uplink):
        self.uplink = uplink

    # Not one transaction: the gateway commits its own audit row of a refused registration,
    # which the request's rollback on 400 would otherwise take with it.
    @operation(public=True, summary="Register an executor (A.2.2); header robotId", body=wire.RegisterBody,
               tags=TAGS, audited=False, transactional=False)
    def on_post(self, req, resp):
        robot_id = (req.get_header("robotId") or "").strip()
        if not robot_id or len(robot_id) > 128:
            raise BadRequest("robotId: header required (1 to 128 characters)")
        session = ExecutorSession(robot_id=robot_id, transport="http", remote=req.remote_addr or "")
        result = self.uplink.register(session, req.context.body)
        # Extension: the period the hub expects heartbeats at (unknown fields are ignored by clients).
        ok(resp, {**result, "heartbeatSeconds": self.uplink.heartbeat_s})


class Heartbeat:
    def __init__(self, uplink):
        self.uplink = uplink

    @operation(permission=ROBOT, summary="Heartbeat (A.2.3); answers the next command as Action/Body",
               body=wire.HeartbeatBody, tags=TAGS, audited=False)
    def on_post(self, req, resp):
        session = session_of(req)
        self.uplink.heartbeat(session, req.context.body)
        command = self.uplink.next_command(session)
        if command is None:
            ok(resp, {"Action": "None", "Body": None})
        else:
            # Handed out in this answer: if the answer is lost, the run's lease expiry recovers it.
            self.uplink.ack(command)
            ok(resp, {"Action": command.action, "Body": json.loads(command.body) if command.body else None})


def report(method: str, model, summary: str, audited: bool = False):
    class Report:
        def __init__(self, uplink):
            self.uplink = uplink

        @operation(permission=ROBOT, summary=summary, body=model, tags=TAGS, audited=audited)
        def on_post(self, req, resp):
            getattr(self.uplink, method)(session_of(req), req.context.body)
            ok(resp, None)

    Report.__name__ = Report.__qualname__ = method.title().replace("_", "")
    return Report


ReportLogs = report("report_logs", wire.ReportLogsBody, "Report a batch of logs (A.2.4)")
ReportFinish = report("report_finish", wire.ReportFinishBody, "Report the end of a run (A.2.5)")
ReportVideo = report("report_video", wire.ReportVideoBody, "Report the run's recording (A.2.6)")
ReportCheckpoint = report("report_checkpoint", wire.ReportCheckpointBody,
                          "Extension: store the state a run resumes from on another executor")


class HttpTransport:
    name = "http"

    def routes(self, uplink, hub):
        return [
            ("/robots/connect/register", Register(uplink)),
            ("/robots/connect/heartbeat", Heartbeat(uplink)),
            ("/robots/connect/reportLogs", ReportLogs(uplink)),
            ("/robots/connect/reportFinish", ReportFinish(uplink)),
            ("/robots/connect/reportVideoRecord", ReportVideo(uplink)),
            ("/robots/connect/reportCheckpoint", ReportCheckpoint(uplink)),
        ]


@hookimpl
def rpahub_executor_protocols(hub):
    return [HttpTransport()]
