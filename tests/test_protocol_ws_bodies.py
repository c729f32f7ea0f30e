"""WebSocket bodies on the hot paths: a ReportLogs body is validated straight from its JSON
text and a plain Heartbeat without a model or a connection, with the same answers as
before: 10001 naming the field for bad input, every acknowledged record committed."""

import datetime as dt
import json
import zoneinfo
from dataclasses import dataclass

import pytest
from test_dispatch import Desk

from rpahub_core import db as hubdb
from rpahub_core.errors import PARAMETER_ERROR
from rpahub_core.sessions import ExecutorSession
from rpahub_plugins.executors.models import RunLog
from rpahub_plugins.protocol_ws import RobotHub


@dataclass
class Quiet(ExecutorSession):
    push: bool = True

    def send(self, text):
        pass


@pytest.fixture
def desk(app):
    with hubdb.connection():
        yield Desk(app)


def running(desk, robot_id="ws-body"):
    """A WebSocket session registered for ``robot_id`` with a run of its own, started."""
    desk.robot(robot_id)
    run = desk.submit(executor_id=robot_id)
    desk.d.tick()
    session = Quiet(robot_id, "ws", connect_id=desk.sessions[robot_id].connect_id, registered=True,
                    extra=dict(desk.sessions[robot_id].extra))
    desk.ex.gateway.heartbeat(session, {"runInstanceId": run.id})
    return session, run


def ws(desk) -> RobotHub:
    return RobotHub(desk.ex.gateway, desk.hub, {"heartbeat_s": 15, "missed_heartbeats": 3})


def frame(action, body):
    return json.dumps({"action": action, "body": body if isinstance(body, str) else json.dumps(body)})


def error_of(reply):
    assert reply is not None, "expected an Error frame"
    msg = json.loads(reply)
    assert msg["action"] == "Error"
    body = json.loads(msg["body"])
    return body["errorCode"], body["message"]


def record(**kw):
    return {"content": "step", "logAt": "2026-03-01 08:00:00", "logLevel": 0, **kw}


@pytest.mark.parametrize("body, hint", [
    ("{oops", "body: not valid JSON text"),
    ('{"runInstanceId": "a\\ud800", "logs": []}', "body: not valid JSON text"),
    ("[1, 2]", "body must be a JSON object"),
    ({"logs": []}, "runInstanceId: Field required"),
    ({"RUN": "x", "logs": [record(), record(logLevel="0")]}, "logs.1.logLevel: Input should be a valid integer"),
    ({"RUN": "x", "logs": [record(content="a\x00")]}, "logs.0.content: Value error, must not contain NUL characters"),
    ({"RUN": "x", "logs": [record(screenshot="\x00")]},
     "logs.0.screenshot: Value error, must not contain NUL characters"),
    ({"RUN": "x", "logs": [record(logAt="yesterday")]},
     "logs.0.logAt: Value error, expected ISO 8601 or yyyy-MM-dd HH:mm:ss"),
    ({"RUN": "x", "logs": [record(), record(logAt="0001-01-01T00:00:00+08:00")]},
     "logs.1.logAt: Value error, is out of range (before year 1 or after year 9999 in UTC)"),
    # Naive, read in Beijing time: no instant in UTC either (this was a 19999).
    ({"RUN": "x", "logs": [record(), record(), record(logAt="0001-01-01 00:00:00")]},
     "logs.2.logAt: Value error, is out of range (before year 1 or after year 9999 in UTC)"),
    ({"RUN": "x", "logs": [record()] * 5001}, "logs: List should have at most 5000 items"),
])
def test_a_bad_report_logs_gets_10001_naming_the_field_and_writes_nothing(desk, body, hint):
    session, run = running(desk)
    if isinstance(body, dict) and "RUN" in body:
        body = {"runInstanceId": run.id, **{k: v for k, v in body.items() if k != "RUN"}}
    before = RunLog.select().count()
    code, message = error_of(ws(desk).handle(session, frame("ReportLogs", body)))
    assert code == PARAMETER_ERROR and message.startswith(hint), message
    assert RunLog.select().count() == before


def test_a_report_logs_is_committed_before_the_frame_is_answered(desk):
    session, run = running(desk)
    logs = [record(content=f"#{i}", logAt=f"2026-03-01 08:00:{i:02d}", logLevel=i % 3) for i in range(30)]
    logs.append(record(content="aware", logAt="2026-03-01T00:00:30Z"))
    assert ws(desk).handle(session, frame("ReportLogs", {"runInstanceId": run.id, "logs": logs})) is None
    assert not hubdb.database.in_transaction()
    got = list(RunLog.select().where(RunLog.run == run.id).order_by(RunLog.id))
    assert [(g.content, g.level, g.log_at) for g in got] == [
        *((f"#{i}", i % 3, dt.datetime(2026, 3, 1, 0, 0, i)) for i in range(30)),
        ("aware", 0, dt.datetime(2026, 3, 1, 0, 0, 30))]


@pytest.mark.parametrize("zone, first, step_s, count", [
    ("America/New_York", dt.datetime(2026, 3, 8, 1, 30), 60, 61),  # across the gap at 02:00
    ("America/New_York", dt.datetime(2026, 11, 1, 0, 50), 60, 40),  # into the repeated hour
    ("America/New_York", dt.datetime(2026, 11, 1, 1, 5), 60, 30),  # inside the repeated hour
    ("America/New_York", dt.datetime(2026, 11, 1, 1, 40), 60, 30),  # out of it
    ("America/New_York", dt.datetime(2026, 3, 7, 20, 0), 3600, 12),  # over an hour: record by record
    ("Australia/Lord_Howe", dt.datetime(2026, 4, 5, 1, 20), 60, 40),  # a half-hour change
    ("Asia/Shanghai", dt.datetime(2026, 3, 1, 8, 0), 1, 500),
])
def test_naive_times_of_a_batch_are_converted_as_record_by_record(desk, zone, first, step_s, count):
    gw = desk.ex.gateway
    gw.naive_zone = zoneinfo.ZoneInfo(zone)
    values = [first + dt.timedelta(seconds=step_s * i) for i in range(count)]
    values.insert(count // 2, dt.datetime(2026, 3, 1, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=8))))
    expected = [v.replace(tzinfo=v.tzinfo or gw.naive_zone).astimezone(dt.UTC).replace(tzinfo=None)
                for v in values]
    if hubdb.is_sqlite():
        expected = [v.isoformat(" ") for v in expected]
    assert gw._log_times(values) == expected


def test_a_plain_heartbeat_frame_takes_no_connection(desk, monkeypatch):
    session, run = running(desk)
    gw, hub_ws = desk.ex.gateway, ws(desk)
    gw.batched = True
    db = hubdb.database.obj
    db.close()  # what a socket's greenlet holds between frames: nothing

    def no_connection(*a, **kw):
        raise AssertionError("a connection was taken")

    monkeypatch.setattr(db, "connect", no_connection)
    for body in ({"runInstanceId": run.id}, {}, None, {"runInstanceId": None, "vendorField": [1]}):
        assert hub_ws.handle(session, frame("Heartbeat", body) if body is not None
                             else '{"action": "Heartbeat"}') is None
    assert gw._alive[session.robot_id][1] is False  # the last one said it is idle
    monkeypatch.undo()
    # One that needs the database takes a connection, and gives it back.
    assert error_of(hub_ws.handle(session, frame("Heartbeat", {"runInstanceId": "no-such-run"}))) == (
        PARAMETER_ERROR, "runInstanceId: unknown run")
    for body, hint in (({"runInstanceId": ""}, "runInstanceId: String should have at least 1 character"),
                       ({"runInstanceId": 5}, "runInstanceId: Input should be a valid string"),
                       ({"runInstanceId": "a\x00"}, "runInstanceId: Value error, must not contain NUL characters"),
                       ("[]", "body must be a JSON object"), ("{oops", "body: not valid JSON text")):
        assert error_of(hub_ws.handle(session, frame("Heartbeat", body))) == (PARAMETER_ERROR, hint)
    assert db.is_closed()
