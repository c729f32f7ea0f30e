"""The WebSocket executor protocol (A.1, figure B.1) against the real server."""

import json
import struct
import time

import pytest
import websocket

from rpahub_core.errors import DUPLICATE_CONNECTION, PARAMETER_ERROR
from rpahub_core.testing import wait_for

pytestmark = pytest.mark.e2e


def connect(fleet, robot_id):
    ws = websocket.create_connection(f"{fleet.hub.ws_url}/robothub/{robot_id}", timeout=5)
    return ws


def send(ws, action, body=None, raw_body=None):
    msg = {"action": action}
    if raw_body is not None:
        msg["body"] = raw_body
    elif body is not None:
        msg["body"] = json.dumps(body)
    ws.send(json.dumps(msg))


def recv(ws, timeout=5):
    ws.settimeout(timeout)
    while True:
        msg = json.loads(ws.recv())
        body = json.loads(msg["body"]) if msg.get("body") else None
        return msg["action"], body


def expect_error(ws, code=PARAMETER_ERROR, contains=""):
    action, body = recv(ws)
    assert action == "Error", (action, body)
    assert body["errorCode"] == code, body
    assert contains in body["message"], body
    return body["message"]


def register(fleet, robot_id, **extra):
    ws = connect(fleet, robot_id)
    send(ws, "Register", {"supplierCode": "vendor-a", "supplierSecret": fleet.secret(robot_id), "version": "1.2",
                          **extra})
    return ws


def no_message(ws, seconds=0.5):
    ws.settimeout(seconds)
    try:
        msg = ws.recv()
    except websocket.WebSocketTimeoutException:
        return True
    raise AssertionError(f"unexpected message {msg}")



def test_figure_b1_register_licence_heartbeat_execute_logs_finish_video(fleet):
    robot = "ws-flow-1"
    status, lic = fleet.call("POST", "/api/v1/licences", {"supplier": "vendor-a", "robotId": robot, "days": 30})
    assert status == 201
    ws = register(fleet, robot)
    action, body = recv(ws)
    assert action == "SendLicense" and body == {"licenseContent": lic["resultValue"]["licenseContent"]}
    send(ws, "Heartbeat", {})
    executor = wait_for(lambda: fleet.call("GET", f"/api/v1/executors/{robot}")[1]["resultValue"], 10)
    assert executor["state"] == "online" and executor["transport"] == "ws" and executor["version"] == "1.2"

    package = fleet.upload_package("ws-flow", {"main.py": "print('hi')"})
    run = fleet.run_on(package["id"], robot, arguments=[{"name": "region", "type": "String", "value": "四川"}],
                       videoRecordRequired=True, videoRecordMode=1)
    action, execute = recv(ws)
    assert action == "Execute"
    assert set(execute) >= {"runInstanceId", "packageDownloadUri", "fileUploadUri", "arguments",
                            "videoRecordRequired", "videoRecordMode", "userId", "userName"}
    assert execute["runInstanceId"] == run["id"] and execute["userName"] == "admin"
    assert execute["arguments"] == [{"name": "region", "type": "String", "value": "四川"}]
    assert execute["videoRecordRequired"] is True and execute["videoRecordMode"] == 1

    import requests

    pkg = requests.get(execute["packageDownloadUri"], timeout=5)
    assert pkg.status_code == 200 and pkg.headers["X-Content-SHA256"] == package["sha256"]
    assert requests.get(execute["packageDownloadUri"].replace("token=", "token=x"), timeout=5).status_code == 403

    send(ws, "Heartbeat", {"runInstanceId": run["id"]})
    logs = [{"content": f"step {i}", "logAt": f"2026-03-01 08:00:0{i}", "logLevel": i % 3, "screenshot": None}
            for i in range(3)]
    send(ws, "ReportLogs", {"runInstanceId": run["id"], "logs": logs[:2]})
    send(ws, "ReportLogs", {"runInstanceId": run["id"], "logs": logs[2:]})
    send(ws, "ReportCheckpoint", {"runInstanceId": run["id"], "checkpoint": {"row": 2}})
    send(ws, "ReportVideoRecord", {"runInstanceId": run["id"], "videoId": "x"})
    expect_error(ws, contains="only after ReportFinish")
    send(ws, "ReportFinish", {"runInstanceId": run["id"], "status": 0})
    upload = requests.post(execute["fileUploadUri"], files={"file": ("screen.cast", b"recording", "text/plain")},
                           timeout=5)
    assert upload.status_code == 200, upload.text
    video_id = upload.json()["resultValue"]["fileId"]
    send(ws, "ReportVideoRecord", {"runInstanceId": run["id"], "videoId": video_id})
    record = wait_for(lambda: (r := fleet.run(run["id"]))["videoId"] and r, 10)
    assert record["state"] == "success" and record["finishStatus"] == 0
    assert record["checkpoint"] == {"row": 2}
    assert [t["state"] for t in record["timeline"]] == ["pending", "dispatched", "running", "success"]
    got = fleet.call("GET", f"/api/v1/runs/{run['id']}/logs")[1]["resultValue"]["items"]
    assert [(g["content"], g["logLevel"], g["logAt"]) for g in got] == [  # naive times are Beijing time
        ("step 0", 0, "2026-03-01T00:00:00Z"), ("step 1", 1, "2026-03-01T00:00:01Z"),
        ("step 2", 2, "2026-03-01T00:00:02Z")]
    video = requests.get(f"{fleet.hub.url}/api/v1/files/{video_id}/content",
                         headers={"Authorization": f"Bearer {fleet.token}", "Range": "bytes=2-4"}, timeout=5)
    assert video.status_code == 206 and video.content == b"cor"
    ws.close()


def test_duplicate_connection_gets_10000_and_the_first_keeps_working(fleet):
    first = register(fleet, "ws-dup")
    no_message(first)
    squatter = connect(fleet, "ws-dup")  # an unregistered socket on the same id locks nobody out
    send(squatter, "Heartbeat", {})
    expect_error(squatter, contains="Register first")
    second = register(fleet, "ws-dup")
    expect_error(second, DUPLICATE_CONNECTION)
    with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError, OSError)):
        second.settimeout(5)
        while True:
            second.recv()
            if not second.connected:
                raise websocket.WebSocketConnectionClosedException("closed")
    send(first, "Heartbeat", {})
    send(first, "Bogus", {})
    expect_error(first, contains="unknown action")  # the first connection still answers
    first.close()


@pytest.mark.parametrize("frame, contains", [
    ("{not json", "not valid JSON"),
    ('["Register"]', "JSON object"),
    ('{"body": "{}"}', "action"),
    ('{"action": "Heartbeat", "body": {"runInstanceId": "x"}}', "must be a string"),
    ('{"action": "Heartbeat", "body": "{oops"}', "not valid JSON"),
    ('{"action": "Explode", "body": "{}"}', "unknown action"),
    ('{"action": "ReportLogs", "body": "{\\"runInstanceId\\": 5, \\"logs\\": []}"}', "runInstanceId"),
    ('{"action": "ReportLogs", "body": "{\\"logs\\": []}"}', "runInstanceId"),
    ('{"action": "ReportFinish", "body": "{\\"runInstanceId\\": \\"r\\", \\"status\\": \\"0\\"}"}', "status"),
    ('{"action": "ReportFinish", "body": "{\\"runInstanceId\\": \\"r\\", \\"status\\": 7}"}', "status"),
    ('{"action": "ReportLogs", "body": "{\\"runInstanceId\\": \\"r\\", \\"logs\\": [{\\"content\\": \\"c\\", '
     '\\"logAt\\": \\"yesterday\\", \\"logLevel\\": 0}]}"}', "logAt"),
    ('{"action": "ReportFinish", "body": "{\\"runInstanceId\\": \\"no-such-run\\", \\"status\\": 0}"}', "unknown run"),
    ('{"action": "Register", "body": "{}"}', "already registered"),
])
def test_malformed_frames_get_10001_and_the_connection_stays_open(fleet, frame, contains):
    ws = register(fleet, "ws-bad")
    try:
        no_message(ws, 0.3)
        ws.send(frame)
        expect_error(ws, contains=contains)
        send(ws, "Bogus")
        expect_error(ws, contains="unknown action")
    finally:
        ws.close()
        time.sleep(0.2)  # let the hub see the close before the next test reuses the id


def test_commands_before_register_are_refused(fleet):
    ws = connect(fleet, "ws-early")
    send(ws, "Heartbeat", {})
    expect_error(ws, contains="Register first")
    send(ws, "Register", {"supplierCode": "vendor-a"})
    expect_error(ws, contains="supplierSecret")
    ws.close()


def test_admission_refusals(fleet):
    ws = connect(fleet, "ws-adm")
    send(ws, "Register", {"supplierCode": "vendor-a", "supplierSecret": fleet.secret("ws-adm", "wrong-secret")})
    expect_error(ws, contains="does not match")
    proof = fleet.secret("ws-adm")
    send(ws, "Register", {"supplierCode": "vendor-a", "supplierSecret": proof})
    no_message(ws)
    ws.close()
    time.sleep(0.3)
    ws = connect(fleet, "ws-adm")
    send(ws, "Register", {"supplierCode": "vendor-a", "supplierSecret": proof})  # replayed
    expect_error(ws, contains="replay")
    send(ws, "Register", {"supplierCode": "nobody", "supplierSecret": fleet.secret("ws-adm")})
    expect_error(ws, contains="unknown supplier")
    fleet.call("POST", "/api/v1/suppliers", {"code": "vendor-off", "secret": "x" * 20, "enabled": False})
    from rpahub_adapters.tces130 import proof as make_proof

    send(ws, "Register", {"supplierCode": "vendor-off", "supplierSecret": make_proof("x" * 20, "ws-adm")})
    expect_error(ws, contains="disabled")
    stale = make_proof("vendor-secret-0123456789abcdef", "ws-adm", ts=int(time.time()) - 3600)
    send(ws, "Register", {"supplierCode": "vendor-a", "supplierSecret": stale})
    expect_error(ws, contains="timestamp")
    ws.close()
    status, audit = fleet.call("GET", "/api/v1/audit?action=executor.register&result=denied&pageSize=50")
    assert any(a["target"] == "ws-adm" and "does not match" in a["detail"]["hint"]
               for a in audit["resultValue"]["items"])


def test_a_foreign_run_is_refused(fleet):
    owner, other = register(fleet, "ws-own"), register(fleet, "ws-other")
    no_message(owner, 0.3)
    package = fleet.upload_package("foreign", {"main.py": "print(1)"})
    run = fleet.run_on(package["id"], "ws-own")
    assert recv(owner)[0] == "Execute"
    send(other, "ReportFinish", {"runInstanceId": run["id"], "status": 0})
    expect_error(other, contains="another executor")
    assert fleet.run(run["id"])["state"] == "dispatched"
    owner.close()
    other.close()


def test_stop_reaches_the_executor(fleet):
    ws = register(fleet, "ws-stop")
    no_message(ws, 0.3)
    package = fleet.upload_package("stoppable", {"main.py": "import time; time.sleep(60)"})
    run = fleet.run_on(package["id"], "ws-stop")
    assert recv(ws)[0] == "Execute"
    status, _ = fleet.call("POST", f"/api/v1/runs/{run['id']}/stop")
    assert status == 200
    action, body = recv(ws)
    assert action == "Stop" and body is None
    send(ws, "ReportFinish", {"runInstanceId": run["id"], "status": 1})
    assert wait_for(lambda: fleet.run(run["id"])["state"] == "cancelled", 10)
    ws.close()


def test_runs_on_an_offline_executor_are_refused(fleet):
    ws = register(fleet, "ws-later")
    no_message(ws, 0.3)
    ws.close()
    package = fleet.upload_package("later", {"main.py": "print(1)"})
    time.sleep(0.3)
    status, body = fleet.call("POST", "/api/v1/runs", {"packageId": package["id"], "executorId": "ws-later"})
    assert status == 409 and "offline" in body["resultHint"]


def test_a_command_queued_for_an_http_robot_reaches_it_when_it_switches_to_websocket(fleet):
    import requests

    robot = "switcher"
    r = requests.post(fleet.hub.url + "/robots/connect/register", headers={"robotId": robot}, timeout=5,
                      json={"supplierCode": "vendor-a", "supplierSecret": fleet.secret(robot)})
    assert r.status_code == 200 and r.json()["resultValue"]["heartbeatSeconds"] == 2
    package = fleet.upload_package("switch", {"main.py": "print(1)"})
    run = fleet.run_on(package["id"], robot)  # queued: an HTTP robot fetches it with its next heartbeat
    ws = register(fleet, robot)  # ... but it comes back over WebSocket instead
    action, body = recv(ws)
    assert action == "Execute" and body["runInstanceId"] == run["id"]
    assert "token=" in body["packageDownloadUri"]
    ws.close()


@pytest.mark.parametrize("payload, code", [
    (b"x" * (1024 * 1024 + 10), 1009),  # over the frame cap: refused before it is read
    (b'{"action": "\xff\xfe"}', 1007),  # text that is not UTF-8
])
def test_oversized_frames_close_with_1009_and_bad_utf8_with_1007(fleet, payload, code):
    ws = connect(fleet, f"ws-close-{code}")
    ws.send_frame(websocket.ABNF.create_frame(payload, websocket.ABNF.OPCODE_TEXT))
    ws.settimeout(10)
    while True:
        frame = ws.frame_buffer.recv_frame()  # raw frames: no automatic close reply
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert struct.unpack("!H", frame.data[:2])[0] == code
    ws.shutdown()


def test_gevent_websocket_repairs_hold():
    from geventwebsocket import websocket as gws

    from rpahub_plugins.protocol_ws import wsfix

    wsfix.apply(1024)
    header = gws.Header()
    header.mask = b"\x01\x02\x03\x04"
    header.length = 6
    assert gws.Header.unmask_payload is wsfix.unmask
    assert header.unmask_payload(b"\x01\x02\x03\x04\x01\x02") == b"\x00" * 6
    assert gws.WebSocket.read_message is wsfix.read_message and gws.WebSocket.max_message_bytes == 1024


def test_plain_http_get_on_the_websocket_path_is_a_clear_400(fleet):
    status, body = fleet.hub.call("GET", "/robothub/whoever")
    assert status == 400 and "WebSocket upgrade required" in body["resultHint"]


def test_the_package_link_is_bound_to_its_run(fleet):
    import requests

    from rpahub_core import signing
    from rpahub_core.keys import Keys
    from rpahub_core.testing import make_settings

    ws = register(fleet, "ws-link")
    no_message(ws, 0.3)
    mine = fleet.upload_package("link-mine", {"main.py": "print(1)"})
    other = fleet.upload_package("link-other", {"main.py": "print(2)"})
    run = fleet.run_on(mine["id"], "ws-link")
    action, execute = recv(ws)
    assert action == "Execute"
    link = execute["packageDownloadUri"]

    def refused(url, hint):
        r = requests.get(url, timeout=5)
        assert r.status_code == 403, r.text
        assert r.json()["successful"] is False and hint in r.json()["resultHint"], r.json()

    assert requests.get(link, timeout=5).headers["X-Content-SHA256"] == mine["sha256"]  # the normal path
    refused(link.replace(mine["id"], other["id"]), "for another package")
    # Links the hub itself signed: one that expired, one naming a run that does not use the package.
    key = Keys(make_settings(fleet.hub.folder / "var")).hmac_key("package-download")
    base = link.split("?")[0]
    expired = signing.sign(key, {"run": run["id"], "package": mine["id"], "robot": "ws-link"}, -60)
    refused(f"{base}?token={expired}", "download link expired")
    crossed = signing.sign(key, {"run": run["id"], "package": other["id"], "robot": "ws-link"}, 60)
    refused(f"{fleet.hub.url}/v1/packages/{other['id']}/download?token={crossed}", "uses another package")
    nowhere = signing.sign(key, {"run": "no-such-run", "package": mine["id"]}, 60)
    refused(f"{base}?token={nowhere}", "does not exist")

    send(ws, "ReportFinish", {"runInstanceId": run["id"], "status": 0})
    wait_for(lambda: fleet.run(run["id"])["state"] == "success", 10)
    refused(link, "run that is success")  # a finished run's link is dead, though not expired
    ws.close()


def test_log_times_without_an_offset_are_read_in_the_configured_zone(fleet):
    ws = register(fleet, "ws-clock")
    no_message(ws, 0.3)
    package = fleet.upload_package("clock", {"main.py": "print(1)"})
    run = fleet.run_on(package["id"], "ws-clock")
    assert recv(ws)[0] == "Execute"
    forms = ["2024-05-01T08:00:00", "2024-05-01 08:00:01", "2024-05-01 08:00:02.250", "2024-05-01",
             "2024-05-01T08:00:03+08:00", "2024-05-01T00:00:04Z"]
    send(ws, "ReportLogs", {"runInstanceId": run["id"],
                            "logs": [{"content": f, "logAt": f, "logLevel": 0} for f in forms]})
    items = wait_for(lambda: (got := fleet.call("GET", f"/api/v1/runs/{run['id']}/logs")[1]["resultValue"]["items"])
                     and len(got) == len(forms) and got, 10)
    # naive_log_timezone defaults to Asia/Shanghai: naive times are Beijing time, stored in UTC
    assert [(i["content"], i["logAt"]) for i in items] == [
        ("2024-05-01T08:00:00", "2024-05-01T00:00:00Z"), ("2024-05-01 08:00:01", "2024-05-01T00:00:01Z"),
        ("2024-05-01 08:00:02.250", "2024-05-01T00:00:02.250000Z"), ("2024-05-01", "2024-04-30T16:00:00Z"),
        ("2024-05-01T08:00:03+08:00", "2024-05-01T00:00:03Z"), ("2024-05-01T00:00:04Z", "2024-05-01T00:00:04Z")]
    ws.close()


def test_a_supplier_allow_list_admits_only_its_robots(fleet):
    from rpahub_adapters.tces130 import proof

    secret = "gated-secret-0123456789"
    status, body = fleet.call("POST", "/api/v1/suppliers", {"code": "vendor-gated", "secret": secret,
                                                            "allowlistRequired": True, "allowedRobots": ["ws-gate-ok"]})
    assert status == 201, body
    ws = connect(fleet, "ws-gate-no")
    send(ws, "Register", {"supplierCode": "vendor-gated", "supplierSecret": proof(secret, "ws-gate-no")})
    expect_error(ws, PARAMETER_ERROR, "robotId: not on the supplier's allow-list")
    send(ws, "Heartbeat", {})
    expect_error(ws, contains="Register first")  # still not admitted, the socket still answers
    ws.close()
    assert fleet.call("GET", "/api/v1/executors/ws-gate-no")[0] == 404
    ws = connect(fleet, "ws-gate-ok")
    send(ws, "Register", {"supplierCode": "vendor-gated", "supplierSecret": proof(secret, "ws-gate-ok")})
    no_message(ws)
    send(ws, "Heartbeat", {})
    no_message(ws, 0.3)
    executor = fleet.call("GET", "/api/v1/executors/ws-gate-ok")[1]["resultValue"]
    assert executor["state"] == "online" and executor["supplier"] == "vendor-gated"
    ws.close()
