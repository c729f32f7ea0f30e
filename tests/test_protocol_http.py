"""The HTTP executor protocol (A.2, figure C.1) against the real server."""

import time

import pytest
import requests

pytestmark = pytest.mark.e2e


class Robot:
    def __init__(self, fleet, robot_id):
        self.fleet, self.robot_id, self.connect_id = fleet, robot_id, None

    def post(self, path, body=None, headers=None, raw=None):
        h = {"robotId": self.robot_id, **({"robotConnectId": self.connect_id} if self.connect_id else {}),
             **(headers or {})}
        r = requests.post(self.fleet.hub.url + "/robots/connect/" + path, json=body if raw is None else None,
                          data=raw, headers=h, timeout=10)
        assert r.headers["Content-Type"].startswith("application/json"), r.text
        return r.status_code, r.json()

    def register(self, secret=None):
        status, body = self.post("register", {"supplierCode": "vendor-a",
                                              "supplierSecret": secret or self.fleet.secret(self.robot_id),
                                              "version": "2.0"})
        if status == 200:
            self.connect_id = body["resultValue"]["robotConnectId"]
        return status, body


def test_figure_c1_register_heartbeat_commands_logs_finish_video(fleet):
    robot = Robot(fleet, "http-flow-1")
    status, lic = fleet.call("POST", "/api/v1/licences", {"supplier": "vendor-a", "robotId": robot.robot_id})
    status, body = robot.register()
    assert status == 200 and body["successful"] is True and body["resultHint"] == ""
    assert body["resultValue"]["licenseContent"] == lic["resultValue"]["licenseContent"]
    assert body["resultValue"]["robotConnectId"].startswith("rpr_")

    assert robot.post("heartbeat", {}) == (200, {"successful": True, "resultHint": "",
                                                 "resultValue": {"Action": "None", "Body": None}})
    package = fleet.upload_package("http-flow", {"flow.robot": "*** Tasks ***\nT\n    Log    hi\n"})
    run = fleet.run_on(package["id"], robot.robot_id, arguments=[{"name": "n", "type": "Int", "value": "3"}])
    status, body = robot.post("heartbeat", {})
    action, execute = body["resultValue"]["Action"], body["resultValue"]["Body"]
    assert action == "Execute" and execute["runInstanceId"] == run["id"]
    assert execute["arguments"] == [{"name": "n", "type": "Int", "value": "3"}]
    assert robot.post("heartbeat", {"runInstanceId": run["id"]})[1]["resultValue"]["Action"] == "None"
    assert fleet.run(run["id"])["state"] == "running"

    logs = [{"content": "开始", "logAt": "2026-03-01T08:00:00+08:00", "logLevel": 0},
            {"content": "done", "logAt": "2026-03-01T00:00:01Z", "logLevel": 1, "screenshot": None}]
    assert robot.post("reportLogs", {"runInstanceId": run["id"], "logs": logs})[0] == 200
    assert robot.post("reportCheckpoint", {"runInstanceId": run["id"], "checkpoint": "page-4"})[0] == 200
    status, body = robot.post("reportVideoRecord", {"runInstanceId": run["id"], "videoId": "v"})
    assert status == 400 and "only after ReportFinish" in body["resultHint"]
    assert robot.post("reportFinish", {"runInstanceId": run["id"], "status": 2, "errorCode": 42})[0] == 200
    assert robot.post("reportFinish", {"runInstanceId": run["id"], "status": 2, "errorCode": 42})[0] == 200
    status, body = robot.post("reportFinish", {"runInstanceId": run["id"], "status": 0})
    assert status == 400 and "already finished" in body["resultHint"]

    up = requests.post(fleet.hub.url + "/v1/file/file/upload", files={"file": ("rec.webm", b"\x1aE\xdf\xa3", "video/webm")},
                       headers={"robotId": robot.robot_id, "robotConnectId": robot.connect_id}, timeout=10)
    assert up.status_code == 200
    video = up.json()["resultValue"]
    assert video["fileName"] == "rec.webm" and video["fileUrl"].endswith(f"/api/v1/files/{video['fileId']}/content")
    assert robot.post("reportVideoRecord", {"runInstanceId": run["id"], "videoId": video["fileId"]})[0] == 200
    assert robot.post("personalfile", raw=None, body=None)[0] == 404  # personalfile lives at /design/
    r = requests.post(fleet.hub.url + "/design/personalfile", json={"fileId": video["fileId"], "runInstanceId": run["id"]},
                      headers={"robotId": robot.robot_id, "robotConnectId": robot.connect_id}, timeout=10)
    assert r.status_code == 200, r.text

    record = fleet.run(run["id"])
    assert (record["state"], record["finishStatus"], record["errorCode"]) == ("failed", 2, 42)
    assert record["checkpoint"] == "page-4" and record["videoId"] == video["fileId"]
    items = fleet.call("GET", f"/api/v1/runs/{run['id']}/logs")[1]["resultValue"]["items"]
    assert [(i["content"], i["logAt"]) for i in items] == [("开始", "2026-03-01T00:00:00Z"),
                                                          ("done", "2026-03-01T00:00:01Z")]


def test_stop_is_fetched_by_the_next_heartbeat(fleet):
    robot = Robot(fleet, "http-stop")
    robot.register()
    package = fleet.upload_package("http-stop", {"main.py": "import time; time.sleep(30)"})
    run = fleet.run_on(package["id"], robot.robot_id)
    assert robot.post("heartbeat", {})[1]["resultValue"]["Action"] == "Execute"
    fleet.call("POST", f"/api/v1/runs/{run['id']}/stop")
    assert robot.post("heartbeat", {"runInstanceId": run["id"]})[1]["resultValue"] == {"Action": "Stop", "Body": None}


@pytest.mark.parametrize("path, body, headers, status, hint", [
    ("register", {"supplierCode": "vendor-a", "supplierSecret": "v1.1.2.3"}, {"robotId": ""}, 400, "robotId"),
    ("register", {"supplierCode": "vendor-a"}, {}, 400, "supplierSecret"),
    ("register", {"supplierCode": 5, "supplierSecret": "x"}, {}, 400, "supplierCode"),
    ("heartbeat", {}, {"robotConnectId": "rpr_forged"}, 401, "register again"),
    ("heartbeat", {}, {"robotConnectId": ""}, 401, "authentication required"),
])
def test_http_refusals_use_the_envelope_and_4xx(fleet, path, body, headers, status, hint):
    h = {"robotId": "http-bad", **headers}
    r = requests.post(fleet.hub.url + "/robots/connect/" + path, json=body, headers=h, timeout=10)
    assert r.status_code == status, r.text
    assert r.json()["successful"] is False and hint in r.json()["resultHint"]


def test_malformed_json_and_wrong_types_are_400_never_500(fleet):
    robot = Robot(fleet, "http-types")
    robot.register()
    for raw in (b"{", b"[1,2]", b'"text"', b"\xff\xfe"):
        status, body = robot.post("reportLogs", raw=raw, headers={"Content-Type": "application/json"})
        assert status == 400, (raw, body)
    status, body = robot.post("reportLogs", {"runInstanceId": "r", "logs": [{"content": "c", "logAt": "2026-01-01",
                                                                              "logLevel": "0"}]})
    assert status == 400 and "logLevel" in body["resultHint"]
    status, body = robot.post("reportFinish", {"runInstanceId": "r", "status": True})
    assert status == 400 and "status" in body["resultHint"]


def test_replayed_register_and_disabled_supplier_are_refused(fleet):
    robot = Robot(fleet, "http-replay")
    proof = fleet.secret(robot.robot_id)
    assert robot.register(proof)[0] == 200
    status, body = robot.register(proof)
    assert status == 400 and "replay" in body["resultHint"]
    fleet.call("POST", "/api/v1/suppliers", {"code": "vendor-h", "secret": "h" * 20})
    from rpahub_adapters.tces130 import proof as make

    r = requests.post(fleet.hub.url + "/robots/connect/register", headers={"robotId": "http-h"}, timeout=10,
                      json={"supplierCode": "vendor-h", "supplierSecret": make("h" * 20, "http-h")})
    connect_id = r.json()["resultValue"]["robotConnectId"]
    fleet.call("PATCH", "/api/v1/suppliers/vendor-h", {"enabled": False})
    r = requests.post(fleet.hub.url + "/robots/connect/heartbeat", json={}, timeout=10,
                      headers={"robotId": "http-h", "robotConnectId": connect_id})
    assert r.status_code == 401  # its connection was cut when the supplier was disabled
    r = requests.post(fleet.hub.url + "/robots/connect/register", headers={"robotId": "http-h"}, timeout=10,
                      json={"supplierCode": "vendor-h", "supplierSecret": make("h" * 20, "http-h")})
    assert r.status_code == 400 and "disabled" in r.json()["resultHint"]


def test_missed_heartbeats_take_the_executor_offline(fleet):
    robot = Robot(fleet, "http-silent")
    robot.register()
    deadline = time.monotonic() + 20  # heartbeat 2 s in this hub: offline after 6 s, reaped every 1 s
    while time.monotonic() < deadline:
        state = fleet.call("GET", f"/api/v1/executors/{robot.robot_id}")[1]["resultValue"]["state"]
        if state == "offline":
            break
        time.sleep(0.5)
    assert state == "offline"
    status, body = robot.post("heartbeat", {})
    assert status == 401 and "register again" in body["resultHint"]


def test_robots_cannot_read_others_files_or_call_people_apis(fleet):
    robot = Robot(fleet, "http-nosy")
    robot.register()
    h = {"robotId": robot.robot_id, "robotConnectId": robot.connect_id}
    up = requests.post(fleet.hub.url + "/v1/file/demand/upload", files={"file": ("a.txt", b"a")}, headers=h,
                       timeout=10).json()["resultValue"]
    r = requests.get(f"{fleet.hub.url}/api/v1/files/{up['fileId']}/content", headers=h, timeout=10)
    assert r.status_code == 403
    r = requests.post(fleet.hub.url + "/v1/file/secret/upload", files={"file": ("a.txt", b"a")}, headers=h, timeout=10)
    assert r.status_code == 400 and "source" in r.json()["resultHint"]


def test_a_bad_supplier_secret_is_a_400_and_audited(fleet):
    robot = Robot(fleet, "http-wrong")
    status, body = robot.register(fleet.secret(robot.robot_id, "wrong-secret"))
    assert status == 400 and body["successful"] is False
    assert "supplierSecret: does not match" in body["resultHint"] and body["resultValue"] is None
    assert robot.connect_id is None and fleet.call("GET", "/api/v1/executors/http-wrong")[0] == 404
    audit = fleet.call("GET", "/api/v1/audit?action=executor.register&result=denied&pageSize=50")[1]
    assert any(a["target"] == "http-wrong" and "does not match" in a["detail"]["hint"]
               for a in audit["resultValue"]["items"])
    assert robot.register()[0] == 200  # the right proof still gets in


def test_reports_on_a_run_of_another_executor_are_a_400(fleet):
    owner, other = Robot(fleet, "http-own"), Robot(fleet, "http-other")
    assert owner.register()[0] == other.register()[0] == 200
    package = fleet.upload_package("http-foreign", {"main.py": "print(1)"})
    run = fleet.run_on(package["id"], owner.robot_id)
    for path, body in (("reportFinish", {"runInstanceId": run["id"], "status": 0}),
                       ("reportLogs", {"runInstanceId": run["id"], "logs": []}),
                       ("reportCheckpoint", {"runInstanceId": run["id"], "checkpoint": {"row": 1}}),
                       ("heartbeat", {"runInstanceId": run["id"]})):
        status, answer = other.post(path, body)
        assert status == 400 and "the run belongs to another executor" in answer["resultHint"], (path, answer)
    assert fleet.run(run["id"])["state"] == "dispatched"
    assert owner.post("heartbeat", {})[1]["resultValue"]["Action"] == "Execute"  # the owner still gets it


def test_a_supplier_allow_list_admits_only_its_robots(fleet):
    from rpahub_adapters.tces130 import proof

    secret = "gated-secret-0123456789"
    status, body = fleet.call("POST", "/api/v1/suppliers", {"code": "vendor-gated", "secret": secret,
                                                            "allowlistRequired": True,
                                                            "allowedRobots": ["http-gate-ok"]})
    assert status == 201, body
    for robot_id, expected in (("http-gate-no", 400), ("http-gate-ok", 200)):
        r = requests.post(fleet.hub.url + "/robots/connect/register", headers={"robotId": robot_id}, timeout=10,
                          json={"supplierCode": "vendor-gated", "supplierSecret": proof(secret, robot_id)})
        assert r.status_code == expected, r.text
    assert r.json()["resultValue"]["robotConnectId"].startswith("rpr_")
    r = requests.post(fleet.hub.url + "/robots/connect/register", headers={"robotId": "http-gate-no"}, timeout=10,
                      json={"supplierCode": "vendor-gated", "supplierSecret": proof(secret, "http-gate-no")})
    assert r.json()["resultHint"] == "robotId: not on the supplier's allow-list"
    assert fleet.call("GET", "/api/v1/executors/http-gate-no")[0] == 404
