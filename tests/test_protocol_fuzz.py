"""Generated input never makes the executor interfaces fail: every answer is the
standard's error (HTTP 4xx with resultHint / Error 10001), never a 500 or 19999."""

import json

import pytest
from falcon import testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.sessions import ExecutorSession
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Supplier

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
field_names = st.sampled_from(["runInstanceId", "logs", "status", "errorCode", "videoId", "checkpoint",
                               "supplierCode", "supplierSecret", "version", "content", "logAt", "logLevel",
                               "fileId", "outputs"])
bodies = json_values | st.dictionaries(field_names, json_values, max_size=5)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

PATHS = ["register", "heartbeat", "reportLogs", "reportFinish", "reportVideoRecord", "reportCheckpoint"]


@pytest.fixture(scope="module")
def robot(tmp_path_factory):
    from rpahub_core.testing import make_app

    app = make_app(tmp_path_factory.mktemp("fuzz"))
    with hubdb.connection():
        Supplier.create(code="fz", secret_enc=app.hub.keys.encrypt("fuzz-secret-0123456"))
        session = ExecutorSession("fuzz-1", "http")
        connect_id = state(app.hub).gateway.register(
            session, {"supplierCode": "fz", "supplierSecret": proof("fuzz-secret-0123456", "fuzz-1")})["robotConnectId"]
    yield app, testing.TestClient(app), connect_id
    app.hub.close()


@FUZZ
@given(path=st.sampled_from(PATHS), body=bodies)
def test_http_executor_endpoints_answer_4xx_for_any_json(robot, path, body):
    app, client, connect_id = robot
    r = client.simulate_post(f"/robots/connect/{path}", json=body,
                             headers={"robotId": "fuzz-1", "robotConnectId": connect_id})
    assert r.status_code < 500, (path, body, r.json)
    assert r.json["successful"] is (r.status_code < 300)
    if r.status_code >= 400:
        assert r.json["resultHint"]


@FUZZ
@given(path=st.sampled_from(PATHS + ["../x", "register/"]), raw=st.binary(max_size=64),
       robot_id=st.text(max_size=10), connect=st.text(max_size=10))
def test_http_executor_endpoints_answer_4xx_for_any_bytes_and_headers(robot, path, raw, robot_id, connect):
    app, client, _ = robot
    headers = {"Content-Type": "application/json"}
    for name, value in (("robotId", robot_id), ("robotConnectId", connect)):
        if value and value.isprintable() and value.isascii():
            headers[name] = value
    r = client.simulate_post(f"/robots/connect/{path}", body=raw, headers=headers)
    assert r.status_code < 500, (path, raw, headers, r.text)


@FUZZ
@given(action=st.sampled_from(["Register", "Heartbeat", "ReportLogs", "ReportFinish", "ReportVideoRecord",
                               "ReportCheckpoint", "Nope", ""]) | st.text(max_size=8),
       body=bodies, as_string=st.booleans(), registered=st.booleans())
def test_websocket_frames_get_10001_never_19999(robot, action, body, as_string, registered):
    from rpahub_plugins.protocol_ws import RobotHub

    app, _, _ = robot
    hub_ws = RobotHub(state(app.hub).gateway, app.hub, {"heartbeat_s": 15, "missed_heartbeats": 3})

    class Quiet(ExecutorSession):
        def send(self, text):
            pass

    session = Quiet("fuzz-1", "ws", registered=registered)
    frame = {"action": action, "body": json.dumps(body) if as_string else body}
    reply = hub_ws.handle(session, json.dumps(frame))
    if reply is not None:
        msg = json.loads(reply)
        assert msg["action"] == "Error"
        assert json.loads(msg["body"])["errorCode"] in (10000, 10001), (frame, reply)
