"""WebSocket transport limits against the real server (docs/protocol.md 6.11, section 5):
server pings, the idle close, and an unexpected failure (19999) that leaves the socket
serving. This hub runs with a 1 s heartbeat (idle close after 3 s), naive log times read
as UTC, and a plugin that injects a failure into one kind of Heartbeat."""

import io
import json
import os
import struct
import time
import zipfile

import pytest
import requests
import websocket

from rpahub_core.errors import PARAMETER_ERROR, UNKNOWN_ERROR
from rpahub_core.testing import LiveHub, bearer, wait_for

pytestmark = pytest.mark.e2e

SECRET = "limits-secret-0123456789abcdef"
IDLE_S = 3  # heartbeat_s 1 x missed_heartbeats 3

FAULT_PLUGIN = '''
from rpahub_core import hookimpl


@hookimpl
def rpahub_startup(hub):
    from rpahub_plugins.executors import state

    gateway = state(hub).gateway
    real = gateway.heartbeat

    def heartbeat(session, body):
        if isinstance(body, dict) and body.get("runInstanceId") == "inject-fault":
            raise RuntimeError("injected by the test plugin")
        return real(session, body)

    gateway.heartbeat = heartbeat
'''


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    (site / "rpahub_wsfault.py").write_text(FAULT_PLUGIN)
    dist = site / "rpahub_wsfault-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rpahub-wsfault\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[rpahub]\nwsfault = rpahub_wsfault\n")
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    live = LiveHub(tmp_path_factory.mktemp("hub"), env={
        "PYTHONPATH": path, "RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "1",
        "RPAHUB_PLUGINS__EXECUTORS__MISSED_HEARTBEATS": "3",
        "RPAHUB_PLUGINS__EXECUTORS__NAIVE_LOG_TIMEZONE": "UTC"})
    live.start()
    try:
        live.token = live.admin_token()
        status, body = live.call("POST", "/api/v1/suppliers", {"code": "vendor-l", "secret": SECRET}, live.token)
        assert status == 201, body
        yield live
    finally:
        live.stop()


def send(ws, action, body=None):
    ws.send(json.dumps({"action": action, **({"body": json.dumps(body)} if body is not None else {})}))


def recv(ws, timeout=5):
    ws.settimeout(timeout)
    msg = json.loads(ws.recv())
    return msg["action"], json.loads(msg["body"]) if msg.get("body") else None


def register(hub, robot_id):
    from rpahub_adapters.tces130 import proof

    ws = websocket.create_connection(f"{hub.ws_url}/robothub/{robot_id}", timeout=5)
    send(ws, "Register", {"supplierCode": "vendor-l", "supplierSecret": proof(SECRET, robot_id)})
    return ws


def quiet(ws, seconds):
    ws.settimeout(seconds)
    try:
        raise AssertionError(f"unexpected message {ws.recv()}")
    except websocket.WebSocketTimeoutException:
        pass


def test_the_hub_pings_every_heartbeat_period(hub):
    ws = register(hub, "lim-ping")
    ws.settimeout(4)
    pings, start = 0, time.monotonic()
    while pings < 2:
        opcode, frame = ws.recv_data_frame(control_frame=True)  # answers each ping with a pong
        assert opcode == websocket.ABNF.OPCODE_PING, (opcode, frame.data)
        pings += 1
    assert time.monotonic() - start < 4  # two pings within about two periods of 1 s
    ws.close()


def test_a_silent_socket_gets_10001_and_is_closed_after_the_idle_timeout(hub):
    ws = register(hub, "lim-idle")
    start = time.monotonic()
    ws.settimeout(IDLE_S + 4)
    pongs_only = 0
    while True:  # only pongs go back: they are not activity
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_PING:
            pongs_only += 1
            continue
        break
    assert opcode == websocket.ABNF.OPCODE_TEXT, opcode
    msg = json.loads(frame.data)
    assert msg["action"] == "Error" and json.loads(msg["body"]) == {
        "errorCode": PARAMETER_ERROR, "message": f"no message for {IDLE_S}s; closing"}
    assert IDLE_S - 0.5 <= time.monotonic() - start < IDLE_S + 3 and pongs_only >= 1
    frame = ws.frame_buffer.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE and struct.unpack("!H", frame.data[:2])[0] == 1000
    ws.shutdown()
    assert wait_for(lambda: hub.call("GET", "/api/v1/executors/lim-idle", token=hub.token)[1]
                    ["resultValue"]["state"] == "offline", 5)


def test_regular_heartbeats_keep_a_socket_open_past_the_idle_timeout(hub):
    ws = register(hub, "lim-alive")
    deadline = time.monotonic() + IDLE_S + 1.5
    while time.monotonic() < deadline:
        send(ws, "Heartbeat", {})
        quiet(ws, 0.5)  # recv() answers pings; any Error would fail here
    send(ws, "Bogus")
    assert recv(ws) == ("Error", {"errorCode": PARAMETER_ERROR, "message": "action: unknown action 'Bogus'"})
    ws.close()


def test_an_unexpected_failure_answers_19999_and_the_socket_keeps_serving(hub):
    ws = register(hub, "lim-fault")
    quiet(ws, 0.3)
    send(ws, "Heartbeat", {"runInstanceId": "inject-fault"})
    assert recv(ws) == ("Error", {"errorCode": UNKNOWN_ERROR,
                                  "message": "unexpected error (19999); the hub logged the details"})
    send(ws, "Heartbeat", {})  # the same socket goes on: a good frame is accepted ...
    quiet(ws, 0.3)
    send(ws, "Heartbeat", {"runInstanceId": "no-such-run"})  # ... and a bad one gets its usual 10001
    assert recv(ws) == ("Error", {"errorCode": PARAMETER_ERROR, "message": "runInstanceId: unknown run"})
    assert hub.call("GET", "/api/v1/executors/lim-fault", token=hub.token)[1]["resultValue"]["state"] != "offline"
    ws.close()
    assert "injected by the test plugin" in hub.log()  # the details are in the hub's log, not on the wire


def test_naive_log_times_follow_naive_log_timezone(hub):
    ws = register(hub, "lim-utc")
    quiet(ws, 0.3)
    send(ws, "Heartbeat", {})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    r = requests.post(hub.url + "/api/v1/packages", headers=bearer(hub.token), data={"name": "utc", "version": "1"},
                      files={"file": ("utc.zip", buf.getvalue(), "application/zip")}, timeout=10)
    assert r.status_code == 201, r.text
    status, run = hub.call("POST", "/api/v1/runs", {"packageId": r.json()["resultValue"]["id"],
                                                    "executorId": "lim-utc"}, hub.token)
    assert status == 201, run
    run_id = run["resultValue"]["id"]
    assert recv(ws)[0] == "Execute"
    forms = ["2024-05-01T08:00:00", "2024-05-01 08:00:01", "2024-05-01T08:00:02+08:00"]
    send(ws, "ReportLogs", {"runInstanceId": run_id, "logs": [{"content": f, "logAt": f, "logLevel": 0}
                                                              for f in forms]})
    logs = wait_for(lambda: (items := hub.call("GET", f"/api/v1/runs/{run_id}/logs", token=hub.token)[1]
                             ["resultValue"]["items"]) and len(items) == 3 and items, 5)
    assert [i["logAt"] for i in logs] == ["2024-05-01T08:00:00Z", "2024-05-01T08:00:01Z", "2024-05-01T00:00:02Z"]
    ws.close()


def test_a_command_queued_by_another_process_reaches_the_socket_within_the_poll(hub):
    """Another hub process queues the command in the database and cannot wake this one's
    socket; one query per process every couple of seconds finds it for every socket."""
    import sqlite3

    target = register(hub, "wl-target")
    try:
        db = sqlite3.connect(hub.folder / "var" / "rpahub.db")
        with db:
            db.execute("INSERT INTO command (executor_id, action, body, created_at) VALUES (?, ?, ?, ?)",
                       ("wl-target", "Error", json.dumps({"errorCode": PARAMETER_ERROR, "message": "from afar"}),
                        time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())))
        db.close()
        deadline = time.monotonic() + 5
        while True:
            assert time.monotonic() < deadline, "the command never arrived"
            send(target, "Heartbeat", {})  # keeps the socket from idling out meanwhile
            try:
                action, body = recv(target, timeout=0.5)
            except websocket.WebSocketTimeoutException:
                continue
            if action == "Error" and body["message"] == "from afar":
                break
    finally:
        target.close()
