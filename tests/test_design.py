"""Design center (6.2.1a–f): a requirement walks from submission through review, evaluation,
design and trial runs to acceptance into the library, with people of different roles,
and every step refuses whoever may not take it."""

import io
import json
import zipfile

import pytest

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import bearer
from rpahub_plugins.dispatch import dispatcher
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Supplier
from rpahub_plugins.share.models import App, AppVersion

SECRET = "design-secret-0123456789"
PASSWORD = "A-new-secret-42"

ROLES = {
    "requester": ["design.read", "design.submit"],
    "reviewer": ["design.read", "design.review", "design.evaluate"],
    "designer": ["design.read", "design.develop", "packages.manage"],
    "senior": ["design.read", "design.develop", "design.accept", "packages.manage"],
    "tester": ["design.read", "design.test"],
    "acceptor": ["design.read", "design.accept"],
}
PEOPLE = {"alice": "requester", "bob": "requester", "rita": "reviewer", "dave": "senior", "dan": "designer",
          "tess": "tester", "ada": "acceptor"}

PARAMETERS = [{"name": "month", "type": "date", "required": True, "label": "账期"},
              {"name": "limit", "type": "integer", "minimum": 1, "maximum": 100, "default": 10}]


def multipart(fields: dict, filename: str, data: bytes) -> tuple[bytes, dict]:
    boundary = "designBOUNDARY"
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


class Center:
    """An in-process hub with people in design roles, a robot in the test pool, and the
    dispatcher ticked by hand."""

    def __init__(self, app, client, admin_token):
        self.app, self.client, self.hub = app, client, app.hub
        self.admin = bearer(admin_token)
        self.tokens, self.ids = {}, {}
        self.events = []
        self.hub.bus.subscribe("requirement.accepted", lambda e: self.events.append(e.data))
        for role, permissions in ROLES.items():
            r = client.simulate_post("/api/v1/roles", headers=self.admin, json={"name": role, "permissions": permissions})
            assert r.status_code == 201, r.json
        for name, role in PEOPLE.items():
            r = client.simulate_post("/api/v1/users", headers=self.admin, json={"username": name, "roles": [role]})
            assert r.status_code == 201, r.json
            self.ids[name] = r.json["resultValue"]["id"]
            one_time = r.json["resultValue"]["oneTimePassword"]
            token = client.simulate_post("/api/v1/auth/login", json={"username": name, "password": one_time}
                                         ).json["resultValue"]["token"]
            r = client.simulate_post("/api/v1/me/password", headers=bearer(token),
                                     json={"currentPassword": one_time, "newPassword": PASSWORD})
            assert r.status_code == 200, r.json
            self.tokens[name] = bearer(token)
        with hubdb.connection():
            Supplier.create(code="v", secret_enc=self.hub.keys.encrypt(SECRET))
            self.session = ExecutorSession("r1", "http")
            state(self.hub).gateway.register(self.session, {"supplierCode": "v",
                                                            "supplierSecret": proof(SECRET, "r1")})
        r = client.simulate_post("/api/v1/pools", headers=self.admin, json={"name": "test", "members": ["r1"]})
        assert r.status_code == 201, r.json

    # -- calls as a person ------------------------------------------------------------

    def get(self, who, path, **params):
        return self.client.simulate_get(path, headers=self.tokens[who], params=params or None)

    def post(self, who, path, body=None):
        return self.client.simulate_post(path, headers=self.tokens[who], json=body if body is not None else {})

    def act(self, who, req_id, action, **body):
        return self.post(who, f"/api/v1/requirements/{req_id}/{action}", body)

    def submit(self, who="alice", **fields):
        body = {"title": "月度电费核算", "description": "每月从营销系统导出电费并核对", "region": "四川",
                "scenario": "电费核算", "domain": "finance", "expectedBenefit": "每月节省 40 人时", **fields}
        r = self.post(who, "/api/v1/requirements", body)
        assert r.status_code == 201, r.json
        return r.json["resultValue"]

    def upload_demand(self, who, data=b"spec", name="需求说明.docx", source="demand"):
        body, headers = multipart({}, name, data)
        r = self.client.simulate_post(f"/v1/file/{source}/upload", body=body, headers={**self.tokens[who], **headers})
        assert r.status_code == 200, r.json
        return r.json["resultValue"]["fileId"]

    def upload_package(self, who, version="1.0"):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", f"print('{version}')")
        body, headers = multipart({"name": "bill-check", "version": version}, "bill-check.zip", buf.getvalue())
        r = self.client.simulate_post("/api/v1/packages", body=body, headers={**self.tokens[who], **headers})
        assert r.status_code == 201, r.json
        return r.json["resultValue"]["id"]

    # -- moving a requirement along ------------------------------------------------------

    def to_evaluated(self, req_id, designer="dave"):
        assert self.act("rita", req_id, "approve", comment="有价值").status_code == 200
        r = self.act("rita", req_id, "evaluate", assignee=designer, effortDays=5, valueScore=8, notes="两周内")
        assert r.status_code == 200, r.json
        return r.json["resultValue"]

    def to_designed(self, req_id, designer="dave", version="1.0"):
        package_id = self.upload_package(designer, version)
        r = self.act(designer, req_id, "design", packageId=package_id, parameters=PARAMETERS, vendor="vendor-v",
                     tags=["电费", "核算"])
        assert r.status_code == 200, r.json
        return package_id

    def trial(self, req_id, who="tess", **body):
        r = self.post(who, f"/api/v1/requirements/{req_id}/trials", {"arguments": {"month": "2024-05-01"}, **body})
        assert r.status_code == 201, r.json
        return r.json["resultValue"]

    def to_tested(self, req_id, designer="dave", version="1.0"):
        self.to_evaluated(req_id, designer)
        package_id = self.to_designed(req_id, designer, version)
        self.finish(self.trial(req_id)["runId"])
        assert self.act("tess", req_id, "pass").json["resultValue"]["state"] == "tested"
        return package_id

    def finish(self, run_id, status=0, error_code=None):
        """The test-pool robot takes the run and reports it finished."""
        gateway = state(self.hub).gateway
        with hubdb.connection():
            assert dispatcher(self.hub).tick() == 1
            cmd = gateway.next_command(self.session)
            gateway.ack(cmd)
            assert cmd.action == "Execute" and json.loads(cmd.body)["runInstanceId"] == run_id
            report = {"runInstanceId": run_id, "status": status}
            if error_code is not None:
                report["errorCode"] = error_code
            gateway.report_finish(self.session, report)


@pytest.fixture
def center(app, client, admin_token):
    return Center(app, client, admin_token)


# -- the whole walk -------------------------------------------------------------------------


def test_a_requirement_walks_from_submission_to_an_app_in_the_library(center):
    attachment = center.upload_demand("alice")
    req = center.submit(attachments=[attachment], priority="high")
    rid = req["id"]
    assert (req["state"], req["submitterName"], req["domainLabel"], req["priority"]) == (
        "submitted", "alice", "财务", "high")
    assert req["attachments"][0]["fileId"] == attachment and req["attachments"][0]["fileName"] == "需求说明.docx"
    assert set(req["allowedActions"]) == {"approve", "reject", "withdraw"}

    evaluated = center.to_evaluated(rid)
    assert (evaluated["state"], evaluated["assigneeName"], evaluated["assigneeId"]) == (
        "evaluated", "dave", center.ids["dave"])
    assert evaluated["evaluation"]["effortDays"] == 5 and evaluated["evaluation"]["evaluatedBy"] == "rita"

    package_id = center.to_designed(rid)
    designed = center.get("tess", f"/api/v1/requirements/{rid}").json["resultValue"]
    assert designed["state"] == "designed" and designed["packageId"] == package_id
    assert [p["name"] for p in designed["parameters"]] == ["month", "limit"]

    trial = center.trial(rid, arguments={"month": "2024-05-01", "limit": 20})
    assert trial["runState"] == "pending" and trial["pool"] == "test" and trial["startedBy"] == "tess"
    run = center.client.simulate_get(f"/api/v1/runs/{trial['runId']}", headers=center.admin).json["resultValue"]
    assert {a["name"]: (a["type"], a["value"]) for a in run["arguments"]} == {
        "month": ("String", "2024-05-01"), "limit": ("Int", "20")}
    center.finish(trial["runId"])
    listed = center.get("tess", f"/api/v1/requirements/{rid}/trials").json["resultValue"]
    assert [(t["runId"], t["runState"], t["executorId"]) for t in listed["items"]] == [
        (trial["runId"], "success", "r1")]

    assert center.act("tess", rid, "pass", comment="试运行通过").json["resultValue"]["state"] == "tested"
    r = center.act("ada", rid, "accept", comment="验收通过")
    assert r.status_code == 200, r.json
    accepted = r.json["resultValue"]
    assert accepted["state"] == "accepted" and accepted["appId"] and accepted["allowedActions"] == []

    with hubdb.connection():
        app = App.get_by_id(accepted["appId"])
        version = AppVersion.get(AppVersion.package_id == package_id)
    assert (app.name, app.domain, app.region, app.state, app.requirement_id) == ("月度电费核算", "finance", "四川",
                                                                                  "draft", rid)
    assert version.state == "approved" and version.approved_by == "ada" and app.production_version == version.id
    assert center.events == [{"requirementId": rid, "appId": app.id, "packageId": package_id, "acceptedBy": "ada",
                              "designer": "dave"}]

    history = accepted["history"]
    assert [(h["kind"], h["action"], h["fromState"], h["toState"], h["actorName"]) for h in history] == [
        ("transition", "submit", None, "submitted", "alice"),
        ("transition", "approve", "submitted", "reviewed", "rita"),
        ("transition", "evaluate", "reviewed", "evaluated", "rita"),
        ("transition", "design", "evaluated", "designed", "dave"),
        ("trial", "start", None, None, "tess"),
        ("trial", "finish", None, None, "system"),
        ("transition", "pass", "designed", "tested", "tess"),
        ("transition", "accept", "tested", "accepted", "ada"),
    ]
    assert history[1]["comment"] == "有价值" and history[5]["detail"]["state"] == "success"
    assert all(h["at"] for h in history)
    board = center.get("alice", "/api/v1/requirements/board").json["resultValue"]
    assert board["counts"]["accepted"] == 1 and board["total"] == 1 and board["counts"]["submitted"] == 0


# -- refusals ---------------------------------------------------------------------------------


def test_each_step_needs_its_permission(center):
    rid = center.submit()["id"]
    r = center.act("alice", rid, "approve")
    assert r.status_code == 403 and "design.review" in r.json["resultHint"]
    r = center.post("tess", "/api/v1/requirements", {"title": "x", "domain": "hr"})
    assert r.status_code == 403 and "design.submit" in r.json["resultHint"]
    center.to_evaluated(rid)
    r = center.act("rita", rid, "design", packageId="x")
    assert r.status_code == 403 and "design.develop" in r.json["resultHint"]
    r = center.act("dave", rid, "pass")
    assert r.status_code == 403 and "design.test" in r.json["resultHint"]
    r = center.post("alice", f"/api/v1/requirements/{rid}/trials", {})
    assert r.status_code == 403 and "design.test" in r.json["resultHint"]
    r = center.post("tess", f"/api/v1/requirements/{rid}/trials", {})
    assert r.status_code == 409 and "is evaluated" in r.json["resultHint"]  # nothing delivered to try yet
    r = center.client.simulate_get(f"/api/v1/requirements/{rid}")
    assert r.status_code == 401


def test_an_illegal_transition_says_where_it_stands_and_what_is_allowed(center):
    rid = center.submit()["id"]
    assert center.act("rita", rid, "approve").status_code == 200
    r = center.act("rita", rid, "approve")
    assert r.status_code == 409
    assert "is reviewed" in r.json["resultHint"] and "allowed now: reject, evaluate" in r.json["resultHint"]
    assert r.json["resultValue"] == {"state": "reviewed", "allowed": ["reject", "evaluate"]}
    r = center.act("tess", rid, "pass")
    assert r.status_code == 409 and "cannot pass" in r.json["resultHint"]


def test_a_withdrawn_requirement_cannot_be_reviewed_and_only_its_submitter_withdraws(center):
    rid = center.submit()["id"]
    r = center.act("bob", rid, "withdraw")
    assert r.status_code == 403 and "only its submitter alice" in r.json["resultHint"]
    assert center.act("alice", rid, "withdraw", comment="重复提报").json["resultValue"]["state"] == "withdrawn"
    r = center.act("rita", rid, "approve")
    assert r.status_code == 409 and "is withdrawn" in r.json["resultHint"] and "nothing" in r.json["resultHint"]


def test_rejecting_or_sending_back_needs_a_reason(center):
    rid = center.submit()["id"]
    r = center.act("rita", rid, "reject")
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "comment"
    r = center.act("rita", rid, "reject", comment="不在本年度范围")
    assert r.json["resultValue"]["state"] == "rejected"
    assert r.json["resultValue"]["history"][-1]["comment"] == "不在本年度范围"


def test_only_a_designer_may_be_assigned_and_only_the_assignee_designs(center):
    rid = center.submit()["id"]
    center.act("rita", rid, "approve")
    r = center.act("rita", rid, "evaluate", assignee="tess", effortDays=3, valueScore=5)
    assert r.status_code == 400 and "assignee" in r.json["resultHint"] and "design.develop" in r.json["resultHint"]
    r = center.act("rita", rid, "evaluate", assignee="nobody", effortDays=3, valueScore=5)
    assert r.status_code == 400 and "no user nobody" in r.json["resultHint"]
    r = center.act("rita", rid, "evaluate", assignee="dave", effortDays=0, valueScore=11)
    assert r.status_code == 400
    assert {e["field"] for e in r.json["resultValue"]["errors"]} == {"effortDays", "valueScore"}
    r = center.act("rita", rid, "evaluate", assignee=center.ids["dave"], effortDays=3, valueScore=5)
    assert r.json["resultValue"]["assigneeName"] == "dave"

    package_id = center.upload_package("dan")
    r = center.act("dan", rid, "design", packageId=package_id)
    assert r.status_code == 403 and "assigned to dave" in r.json["resultHint"]
    r = center.act("dave", rid, "design", packageId="no-such-package")
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "packageId"
    r = center.act("dave", rid, "design", packageId=package_id,
                   parameters=[{"name": "a"}, {"name": "a"}, ])
    assert r.status_code == 400 and "parameters.1.name" in r.json["resultHint"]
    r = center.act("dave", rid, "design", packageId=package_id, parameters=[{"name": "1bad"}])
    assert r.status_code == 400 and "parameters.0.name" in r.json["resultHint"]

    # Reassigning hands the work over: now dan designs, and dave may not.
    r = center.act("rita", rid, "evaluate", assignee="dan", effortDays=4, valueScore=5, comment="dave 请假")
    assert r.status_code == 200 and r.json["resultValue"]["history"][-1]["detail"]["previousAssignee"] == "dave"
    assert center.act("dave", rid, "design", packageId=package_id).status_code == 403
    assert center.act("dan", rid, "design", packageId=package_id).json["resultValue"]["state"] == "designed"


def test_testing_passes_only_on_a_successful_latest_trial_of_the_delivered_package(center):
    rid = center.submit()["id"]
    center.to_evaluated(rid)
    first = center.to_designed(rid, version="1.0")
    r = center.act("tess", rid, "pass")
    assert r.status_code == 409 and "no trial run" in r.json["resultHint"]

    failed = center.trial(rid)
    r = center.act("tess", rid, "pass")
    assert r.status_code == 409 and "is pending, not success" in r.json["resultHint"]
    center.finish(failed["runId"], status=2, error_code=20001)  # a business error: final at once
    r = center.act("tess", rid, "pass")
    assert r.status_code == 409 and f"trial run {failed['runId']} is failed" in r.json["resultHint"]
    assert r.json["resultValue"] == {"runId": failed["runId"], "runState": "failed"}

    # Sent back for rework, the designer delivers a new package, whose own trial counts.
    assert center.act("tess", rid, "rework").status_code == 400
    assert center.act("tess", rid, "rework", comment="核对结果错误").json["resultValue"]["state"] == "evaluated"
    second = center.to_designed(rid, version="1.1")
    assert second != first
    r = center.act("tess", rid, "pass")
    assert r.status_code == 409 and "earlier package" in r.json["resultHint"]
    ok = center.trial(rid)
    center.finish(ok["runId"])
    trials = center.get("alice", f"/api/v1/requirements/{rid}/trials").json["resultValue"]
    assert [(t["packageId"], t["runState"]) for t in trials["items"]] == [(second, "success"), (first, "failed")]
    assert center.act("tess", rid, "pass").json["resultValue"]["state"] == "tested"


def test_the_designer_never_accepts_their_own_work(center):
    rid = center.submit()["id"]
    center.to_evaluated(rid)
    center.to_designed(rid)
    trial = center.trial(rid)
    center.finish(trial["runId"])
    center.act("tess", rid, "pass")
    r = center.act("dave", rid, "accept")
    assert r.status_code == 403 and "you designed" in r.json["resultHint"] and "someone else" in r.json["resultHint"]
    # Refused acceptance goes back to the designer; the trial must then be redone.
    r = center.act("ada", rid, "refuse", comment="缺少操作手册")
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "evaluated"
    assert r.json["resultValue"]["appId"] is None
    with hubdb.connection():
        assert App.select().count() == 0


def test_a_requirement_may_change_an_existing_app_and_a_taken_name_is_explained(center):
    first = center.submit()["id"]
    center.to_tested(first)
    app_id = center.act("ada", first, "accept").json["resultValue"]["appId"]

    # The same title again: the library already has an app of that name.
    twin = center.submit()["id"]
    center.to_tested(twin, designer="dan", version="2.0")
    r = center.act("ada", twin, "accept")
    assert r.status_code == 409 and "appName" in r.json["resultHint"] and "exists" in r.json["resultHint"]
    assert center.get("ada", f"/api/v1/requirements/{twin}").json["resultValue"]["state"] == "tested"
    r = center.act("ada", twin, "accept", appName="月度电费核算（重庆）")
    assert r.status_code == 200 and r.json["resultValue"]["appId"] not in (None, app_id)

    # A change request names the app: its delivery becomes that app's next version.
    r = center.post("bob", "/api/v1/requirements", {"title": "电费核算支持分时电价", "domain": "finance",
                                                    "appId": "no-such-app"})
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "appId"
    change = center.submit("bob", title="电费核算支持分时电价", appId=app_id)["id"]
    package_id = center.to_tested(change, version="1.1")
    r = center.act("ada", change, "accept", appName="改名")
    assert r.status_code == 400 and "appName" in r.json["resultHint"]
    r = center.act("ada", change, "accept")
    assert r.status_code == 200 and r.json["resultValue"]["appId"] == app_id
    with hubdb.connection():
        versions = [v.version for v in AppVersion.select().where(AppVersion.app == app_id).order_by(AppVersion.version)]
        assert versions == ["1.0", "1.1"]
        assert App.get_by_id(app_id).production_version == AppVersion.get(AppVersion.package_id == package_id).id


def test_trial_arguments_and_pool_are_checked(center):
    rid = center.submit()["id"]
    center.to_evaluated(rid)
    center.to_designed(rid)
    path = f"/api/v1/requirements/{rid}/trials"
    r = center.post("tess", path, {"arguments": {"limit": 500, "colour": "red"}})
    assert r.status_code == 400
    assert {e["field"] for e in r.json["resultValue"]["errors"]} == {
        "arguments.colour", "arguments.month", "arguments.limit"}
    r = center.post("tess", path, {"arguments": {"month": "2024-05-01"}, "pool": "nowhere"})
    assert r.status_code == 400 and "pool: no pool named nowhere" in r.json["resultHint"]
    r = center.post("alice", path, {"arguments": {"month": "2024-05-01"}})
    assert r.status_code == 403 and "design.test" in r.json["resultHint"]
    # The assigned designer may try their own delivery; the default pool applies.
    trial = center.trial(rid, who="dave")
    assert trial["pool"] == "test" and trial["arguments"] == {"month": "2024-05-01"}
    center.client.simulate_delete("/api/v1/pools/test", headers=center.admin)
    r = center.post("tess", path, {"arguments": {"month": "2024-05-01"}})
    assert r.status_code == 400 and "test pool test does not exist" in r.json["resultHint"]


def test_attachments_must_be_the_submitters_requirement_files(center):
    r = center.post("alice", "/api/v1/requirements", {"title": "x", "domain": "hr", "attachments": ["nope"]})
    assert r.status_code == 400 and r.json["resultValue"]["errors"] == [
        {"field": "attachments.0", "message": "file nope not found"}]
    plain = center.upload_demand("alice", source="file")
    others = center.upload_demand("bob")
    r = center.post("alice", "/api/v1/requirements", {"title": "x", "domain": "hr", "attachments": [plain, others]})
    fields = {e["field"]: e["message"] for e in r.json["resultValue"]["errors"]}
    assert r.status_code == 400 and "not a requirement attachment" in fields["attachments.0"]
    assert "someone else" in fields["attachments.1"]
    r = center.post("alice", "/api/v1/requirements", {"title": "x", "domain": "weather"})
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "domain"
    with hubdb.connection():
        from rpahub_plugins.design.models import Requirement

        assert Requirement.select().count() == 0


def test_the_submitter_corrects_a_waiting_requirement_and_stale_versions_are_refused(center):
    req = center.submit()
    rid, path = req["id"], f"/api/v1/requirements/{req['id']}"
    r = center.client.simulate_patch(path, headers=center.tokens["bob"], json={"title": "改"})
    assert r.status_code == 403
    r = center.client.simulate_patch(path, headers=center.tokens["alice"],
                                     json={"title": "月度电费与线损核算", "version": req["version"]})
    assert r.status_code == 200 and r.json["resultValue"]["title"] == "月度电费与线损核算"
    assert r.json["resultValue"]["version"] == req["version"] + 1
    r = center.act("rita", rid, "approve", version=req["version"])
    assert r.status_code == 409 and "version" in r.json["resultHint"]
    assert center.act("rita", rid, "approve", version=req["version"] + 1).status_code == 200
    r = center.client.simulate_patch(path, headers=center.tokens["alice"], json={"title": "再改"})
    assert r.status_code == 409 and "only a submitted requirement" in r.json["resultHint"]
    r = center.post("bob", f"{path}/comments", {"comment": "我们区县也需要"})
    assert r.status_code == 201
    history = center.get("alice", path).json["resultValue"]["history"]
    assert [(h["kind"], h["actorName"]) for h in history] == [
        ("transition", "alice"), ("edit", "alice"), ("transition", "rita"), ("comment", "bob")]
    assert history[-1]["comment"] == "我们区县也需要"
    assert center.post("bob", f"{path}/comments", {"comment": ""}).status_code == 400
    assert center.get("alice", "/api/v1/requirements/nope").status_code == 404


def test_the_list_filters_and_pages_and_the_board_counts_per_state(center):
    a = center.submit("alice", title="电费核算", region="四川", domain="finance")["id"]
    b = center.submit("alice", title="工单派发", region="重庆", domain="customer_service",
                      description="客服工单自动派发")["id"]
    c = center.submit("bob", title="设备巡检报告", region="四川", domain="equipment")["id"]
    center.to_evaluated(b, designer="dan")
    center.act("rita", c, "reject", comment="已有同类应用")

    def ids(who="alice", **params):
        r = center.get(who, "/api/v1/requirements", **params)
        assert r.status_code == 200, r.json
        return [i["id"] for i in r.json["resultValue"]["items"]]

    assert ids() == [c, b, a]  # newest first
    assert ids(submitter="me") == [b, a] and ids("bob", submitter="me") == [c]
    assert ids("dan", assignee="me") == [b]
    assert ids(state="submitted") == [a] and ids(state=["submitted", "rejected"]) == [c, a]
    assert ids(region="四川") == [c, a] and ids(domain="customer_service") == [b]
    assert ids(q="派发") == [b] and ids(q="巡检") == [c]
    page = center.get("alice", "/api/v1/requirements", page=2, pageSize=2).json["resultValue"]
    assert page["total"] == 3 and [i["id"] for i in page["items"]] == [a]
    r = center.get("alice", "/api/v1/requirements", state="lost")
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"].startswith("state")
    board = center.get("alice", "/api/v1/requirements/board").json["resultValue"]
    assert board["total"] == 3
    assert {k: v for k, v in board["counts"].items() if v} == {"submitted": 1, "evaluated": 1, "rejected": 1}
    assert set(board["counts"]) >= {"submitted", "reviewed", "evaluated", "designed", "tested", "accepted"}
    four = center.get("alice", "/api/v1/requirements/board", region="四川").json["resultValue"]
    assert four["total"] == 2


def test_openapi_documents_each_action_with_its_permission(client):
    doc = client.simulate_get("/api/openapi.json").json
    expected = {"approve": "design.review", "evaluate": "design.evaluate", "design": "design.develop",
                "pass": "design.test", "accept": "design.accept", "withdraw": "design.submit"}
    for action, permission in expected.items():
        op = doc["paths"][f"/api/v1/requirements/{{req_id}}/{action}"]["post"]
        assert op["x-rpahub-permission"] == permission
    design = doc["paths"]["/api/v1/requirements/{req_id}/design"]["post"]
    ref = design["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "packageId" in doc["components"]["schemas"][ref]["required"]


def test_each_person_is_told_the_next_steps_they_may_take(center):
    req = center.submit()
    yours = {who: center.get(who, f"/api/v1/requirements/{req['id']}").json["resultValue"]["yourActions"]
             for who in ("alice", "bob", "rita", "tess")}
    assert yours == {"alice": ["withdraw"], "bob": [], "rita": ["approve", "reject"], "tess": []}
    center.to_evaluated(req["id"], designer="dave")
    mine = lambda who: center.get(who, f"/api/v1/requirements/{req['id']}").json["resultValue"]["yourActions"]  # noqa: E731
    assert (mine("dan"), mine("dave")) == ([], ["design"])  # only the assigned designer delivers
    center.to_designed(req["id"], designer="dave")
    center.finish(center.trial(req["id"])["runId"])
    assert center.act("tess", req["id"], "pass").status_code == 200
    assert (mine("dave"), mine("ada")) == ([], ["accept", "refuse"])  # who designed it never accepts it


def test_whoever_reads_a_requirement_downloads_its_attachments_without_files_read(center):
    attachment = center.upload_demand("alice", data=b"the specification")
    req = center.submit(attachments=[attachment])
    url = req["attachments"][0]["url"]
    for who in ("alice", "rita"):  # design.* only: neither holds files.read
        r = center.get(who, url)
        assert r.status_code == 200 and r.content == b"the specification"
        assert center.get(who, f"/api/v1/files/{attachment}/content").status_code == 403
    part = center.client.simulate_get(url, headers={**center.tokens["rita"], "Range": "bytes=4-16"})
    assert part.status_code == 206 and part.content == b"specification"
    other = center.upload_demand("bob")
    assert center.get("rita", f"/api/v1/requirements/{req['id']}/attachments/{other}").status_code == 404


def test_evaluators_are_offered_the_people_who_may_design(center, client):
    r = center.get("rita", "/api/v1/requirements/assignees")
    assert r.status_code == 200
    assert [p["username"] for p in r.json["resultValue"]["items"]] == ["admin", "dan", "dave"]  # "*" designs too
    assert center.get("alice", "/api/v1/requirements/assignees").status_code == 403
    r = client.simulate_patch(f"/api/v1/users/{center.ids['dan']}", headers=center.admin, json={"isActive": False})
    assert r.status_code == 200, r.json
    assert [p["username"] for p in center.get("rita", "/api/v1/requirements/assignees").json["resultValue"][
        "items"]] == ["admin", "dave"]
