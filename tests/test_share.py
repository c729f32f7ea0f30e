"""The artifact library and the marketplace as their users meet them: a maker builds an
app and its versions, a reviewer approves (never the maker), people find, subscribe,
run, download and trace it; delisting hides it but keeps its runs traceable."""

import datetime as dt
import hashlib
import io
import zipfile

import pytest

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.testing import bearer as auth
from rpahub_plugins.audit_log.models import AuditEntry

INVOICE_PARAMS = [
    {"name": "month", "type": "date", "label": "结算月份", "required": True},
    {"name": "limit", "type": "integer", "minimum": 1, "maximum": 500, "default": 50},
    {"name": "mode", "type": "string", "choices": ["fast", "full"], "default": "fast"},
]


def package(files=None):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in (files or {"main.py": "print('hello')\n"}).items():
            zf.writestr(name, text)
    return buf.getvalue()


@pytest.fixture
def crew(client, person):
    return {"maker": person("maker", "apps.manage", "apps.read", "packages.manage"),
            "reviewer": person("reviewer", "apps.review", "apps.read", "apps.manage"),
            "user": person("user", "apps.use"),
            "outsider": person("outsider", "apps.read")}


class Shop:
    def __init__(self, client, crew):
        self.client, self.crew = client, crew

    def call(self, who, method, path, body=None, **kw):
        return self.client.simulate_request(method, path, headers=auth(self.crew[who]), json=body, **kw)

    def app(self, name="发票校验机器人", **fields):
        body = {"name": name, "description": "核对增值税发票与合同金额", "vendor": "vendor-a", "region": "江苏",
                "scenario": "发票校验", "domain": "finance", "tags": ["发票", "财务"],
                "parameters": INVOICE_PARAMS, **fields}
        r = self.call("maker", "POST", "/api/v1/apps", body)
        assert r.status_code == 201, r.json
        return r.json["resultValue"]

    def upload(self, app_id, version, data=None, who="maker"):
        """POST a version as multipart/form-data: version, changelog, file."""
        data = data or package()
        boundary = "b0undary"
        parts = []
        for name, value in (("version", version), ("changelog", f"release {version}")):
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n'
                     f"Content-Type: application/zip\r\n\r\n".encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        return self.client.simulate_post(
            f"/api/v1/apps/{app_id}/versions", body=b"".join(parts),
            headers={**auth(self.crew[who]), "Content-Type": f"multipart/form-data; boundary={boundary}"})

    def approve(self, request_id, who="reviewer", comment="looks right"):
        return self.call(who, "POST", f"/api/v1/approvals/{request_id}/approve", {"comment": comment})

    def released(self, name="发票校验机器人", **fields):
        """An app with an approved version, listed in the marketplace."""
        app = self.app(name, **fields)
        v = self.upload(app["id"], "1.0").json["resultValue"]
        req = self.call("maker", "POST", f"/api/v1/apps/{app['id']}/versions/{v['id']}/submit", {})
        assert self.approve(req.json["resultValue"]["approvalRequestId"]).status_code == 200
        req = self.call("maker", "POST", f"/api/v1/apps/{app['id']}/publish", {"reason": "ready"})
        assert req.status_code == 201, req.json
        assert self.approve(req.json["resultValue"]["approvalRequestId"]).status_code == 200
        return app


@pytest.fixture
def shop(client, crew):
    return Shop(client, crew)


def test_an_app_carries_its_classification_and_parameter_schema(shop):
    app = shop.app()
    assert app["state"] == "draft" and app["domain"] == "finance" and app["tags"] == ["发票", "财务"]
    assert [p["name"] for p in app["parameters"]] == ["month", "limit", "mode"]
    r = shop.call("maker", "POST", "/api/v1/apps", {"name": "发票校验机器人"})
    assert r.status_code == 409 and "name" in r.json["resultHint"]


@pytest.mark.parametrize("body, field", [
    ({"name": "x", "domain": "astrology"}, "domain"),
    ({"name": "x", "parameters": [{"name": "a"}, {"name": "a"}]}, "parameters.1.name"),
    ({"name": "x", "parameters": [{"name": "n", "type": "integer", "default": "many"}]}, "parameters.0"),
    ({"name": "x", "parameters": [{"name": "bad name"}]}, "parameters.0.name"),
    ({"name": "x", "parameters": [{"name": "p", "pattern": "(["}]}, "parameters.0"),
])
def test_bad_app_definitions_are_refused_naming_the_field(shop, body, field):
    r = shop.call("maker", "POST", "/api/v1/apps", body)
    assert r.status_code == 400, r.json
    assert field in r.json["resultHint"]


def test_versions_are_immutable_content_hashed_and_comparable(shop):
    app = shop.app()
    v1_data = package({"main.py": "print('v1')\nprint('same')\n", "README.md": "old"})
    r = shop.upload(app["id"], "1.0", v1_data)
    assert r.status_code == 201, r.json
    v1 = r.json["resultValue"]
    assert v1["sha256"] == hashlib.sha256(v1_data).hexdigest() and v1["state"] == "draft"
    assert shop.upload(app["id"], "1.0", package({"main.py": "print('sneaky')"})).status_code == 409
    bad = shop.upload(app["id"], "1.1", b"not a zip")
    assert bad.status_code == 400 and "zip" in bad.json["resultHint"]
    evil = shop.upload(app["id"], "1.1", package({"../evil.py": "x", "main.py": "x"}))
    assert evil.status_code == 400

    v2 = shop.upload(app["id"], "2.0", package({"main.py": "print('v2')\nprint('same')\n",
                                                "lib/helpers.py": "X = 1\n"})).json["resultValue"]
    r = shop.call("outsider", "GET", f"/api/v1/apps/{app['id']}/diff", params={"from": "1.0", "to": v2["id"]})
    assert r.status_code == 200, r.json
    diff = r.json["resultValue"]
    assert diff["added"] == ["lib/helpers.py"] and diff["removed"] == ["README.md"]
    [changed] = diff["changed"]
    assert changed["path"] == "main.py"
    assert "-print('v1')" in changed["diff"] and "+print('v2')" in changed["diff"]

    # A package from the store can be attached once, and only once.
    other = shop.app("其他应用")
    r = shop.call("maker", "POST", f"/api/v1/apps/{other['id']}/versions", {"packageId": v1["packageId"]})
    assert r.status_code == 409


def test_a_version_reaches_production_only_through_a_second_person(shop, person, client):
    app_ = shop.app()
    v = shop.upload(app_["id"], "1.0").json["resultValue"]
    r = shop.call("maker", "POST", f"/api/v1/apps/{app_['id']}/versions/{v['version']}/submit", {"reason": "ok"})
    assert r.status_code == 201, r.json
    request_id = r.json["resultValue"]["approvalRequestId"]
    assert shop.call("maker", "POST", f"/api/v1/apps/{app_['id']}/versions/1.0/submit", {}).status_code == 409

    # The maker cannot approve their own request, even holding the checker permission.
    r = shop.call("maker", "GET", "/api/v1/approvals", params={"mine": "true"})
    assert [x["id"] for x in r.json["resultValue"]["items"]] == [request_id]
    assert r.json["resultValue"]["items"][0]["youMayDecide"] is False
    r = shop.call("reviewer", "GET", "/api/v1/approvals", params={"actionable": "true"})
    assert [x["id"] for x in r.json["resultValue"]["items"]] == [request_id]
    r = shop.call("user", "POST", f"/api/v1/approvals/{request_id}/approve", {})
    assert r.status_code == 403 and "apps.review" in r.json["resultHint"]

    # A reviewer who made a request cannot approve it either.
    v2 = shop.upload(app_["id"], "2.0", who="reviewer").json["resultValue"]
    own = shop.call("reviewer", "POST", f"/api/v1/apps/{app_['id']}/versions/{v2['id']}/submit", {})
    own_id = own.json["resultValue"]["approvalRequestId"]
    r = shop.approve(own_id)
    assert r.status_code == 403 and "maker" in r.json["resultHint"]

    assert shop.approve(request_id).status_code == 200
    detail = shop.call("outsider", "GET", f"/api/v1/apps/{app_['id']}").json["resultValue"]
    assert detail["productionVersion"] == v["id"]
    assert {x["version"]: x["state"] for x in detail["versions"]} == {"1.0": "approved", "2.0": "pending"}
    assert {x["version"]: x["approvedBy"] for x in detail["versions"]}["1.0"] == "reviewer"  # the checker, named
    assert shop.approve(request_id).status_code == 409  # decided once

    # A refusal needs a reason and sends the version back.
    second = auth(person("second.reviewer", "apps.review"))
    assert client.simulate_post(f"/api/v1/approvals/{own_id}/reject", headers=second, json={}).status_code == 400
    r = client.simulate_post(f"/api/v1/approvals/{own_id}/reject", headers=second, json={"comment": "tests missing"})
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "rejected"
    assert shop.call("outsider", "GET", f"/api/v1/apps/{app_['id']}/versions/2.0").json["resultValue"]["state"] \
        == "rejected"

    with hubdb.connection():
        actions = [(row.action, row.actor_name, row.result) for row in AuditEntry.select().where(
            AuditEntry.action.startswith("approval.")).order_by(AuditEntry.id)]
    assert ("approval.approve", "user", "denied") in actions
    assert ("approval.approve", "reviewer", "denied") in actions
    assert ("approval.approve", "reviewer", "ok") in actions
    assert ("approval.reject", "second.reviewer", "ok") in actions


def test_only_the_owner_or_a_reviewer_changes_an_app(shop, person, client):
    app = shop.app()
    other = person("other.maker", "apps.manage", "apps.read")
    r = client.simulate_patch(f"/api/v1/apps/{app['id']}", headers=auth(other), json={"description": "mine now"})
    assert r.status_code == 403
    r = shop.call("reviewer", "PATCH", f"/api/v1/apps/{app['id']}", {"description": "修订说明"})
    assert r.status_code == 200 and r.json["resultValue"]["description"] == "修订说明"
    assert shop.call("outsider", "POST", "/api/v1/apps", {"name": "nope"}).status_code == 403


def test_publishing_needs_an_approved_version_and_a_reviewer(shop):
    app = shop.app()
    r = shop.call("maker", "POST", f"/api/v1/apps/{app['id']}/publish", {})
    assert r.status_code == 409 and "approved version" in r.json["resultHint"]
    listed = shop.released("配网工单机器人", domain="equipment", scenario="工单派发", tags=["配网"])
    assert shop.call("outsider", "GET", f"/api/v1/apps/{listed['id']}").json["resultValue"]["state"] == "listed"
    r = shop.call("maker", "POST", f"/api/v1/apps/{listed['id']}/publish", {})
    assert r.status_code == 409


def test_the_marketplace_finds_ranks_and_facets_listed_apps_only(shop):
    shop.app("草稿应用", description="发票 draft")  # never listed
    a = shop.released("发票校验机器人")
    b = shop.released("合同归档", description="归档时顺便校验发票", domain="finance", region="浙江",
                      scenario="合同管理", tags=["合同"])
    c = shop.released("员工考勤", description="HR attendance", domain="hr", region="江苏", scenario="考勤",
                      tags=["人资"], vendor="vendor-b")

    def search(**params):
        r = shop.call("user", "GET", "/api/v1/market", params=params)
        assert r.status_code == 200, r.json
        return r.json["resultValue"]

    found = search(q="发票")
    # The name match ranks above the description match; the draft is not there.
    assert [x["id"] for x in found["items"]] == [a["id"], b["id"]]
    # Every word must match somewhere.
    assert [x["id"] for x in search(q="合同 发票")["items"]] == [a["id"], b["id"]]
    assert [x["id"] for x in search(q="合同 归档")["items"]] == [b["id"]]
    assert [x["id"] for x in search(tag="人资")["items"]] == [c["id"]]
    assert [x["id"] for x in search(region="江苏", domain="finance")["items"]] == [a["id"]]
    assert [x["id"] for x in search(vendor="vendor-b")["items"]] == [c["id"]]
    assert {f["value"]: f["count"] for f in search()["facets"]["domain"]} == {"finance": 2, "hr": 1}
    assert {f["value"]: f["count"] for f in search()["facets"]["tag"]} == {"发票": 1, "财务": 1, "合同": 1, "人资": 1}
    assert {f["value"]: f["count"] for f in search(domain="hr")["facets"]["tag"]} == {"人资": 1}
    page = search(pageSize=2, page=2)
    assert page["total"] == 3 and len(page["items"]) == 1
    assert shop.call("user", "GET", "/api/v1/market", params={"domain": "astrology"}).status_code == 400
    assert shop.call("outsider", "GET", "/api/v1/market").status_code == 403


def test_subscribe_run_with_checked_arguments_download_and_trace(shop, client):
    app = shop.released()
    run_path = f"/api/v1/market/{app['id']}/runs"
    r = shop.call("user", "POST", run_path, {"arguments": {"month": "2026-11-01"}})
    assert r.status_code == 403 and "subscribe" in r.json["resultHint"]
    assert shop.call("user", "PUT", f"/api/v1/market/{app['id']}/subscription").status_code == 200
    mine = shop.call("user", "GET", "/api/v1/subscriptions").json["resultValue"]["items"]
    assert [x["id"] for x in mine] == [app["id"]]
    listed = shop.call("user", "GET", f"/api/v1/market/{app['id']}")
    assert listed.status_code == 200, listed.json
    listed = listed.json["resultValue"]
    assert listed["subscribed"] is True and listed["subscribers"] == 1 and listed["production"]["version"] == "1.0"

    r = shop.call("user", "POST", run_path, {"arguments": {"limit": 9999, "mode": "slow", "colour": "red"}})
    assert r.status_code == 400
    fields = {e["field"] for e in r.json["resultValue"]["errors"]}
    assert fields == {"arguments.month", "arguments.limit", "arguments.mode", "arguments.colour"}

    r = shop.call("user", "POST", run_path, {"arguments": {"month": "2026-11-01", "limit": 20}})
    assert r.status_code == 201, r.json
    run = r.json["resultValue"]
    assert run["state"] == "pending" and run["timeline"][0]["state"] == "pending"
    assert run["arguments"] == [{"name": "month", "type": "String", "value": "2026-11-01"},
                                {"name": "limit", "type": "Int", "value": "20"},
                                {"name": "mode", "type": "String", "value": "fast"}]
    traced = shop.call("user", "GET", run_path).json["resultValue"]["items"]
    assert [x["id"] for x in traced] == [run["id"]]
    assert shop.call("user", "GET", f"{run_path}/{run['id']}").json["resultValue"]["state"] == "pending"

    r = shop.call("user", "GET", f"/api/v1/market/{app['id']}/package")
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert hashlib.sha256(r.content).hexdigest() == r.headers["x-content-sha256"]
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == ["main.py"]

    assert shop.call("user", "DELETE", f"/api/v1/market/{app['id']}/subscription").status_code == 200
    assert shop.call("user", "GET", f"/api/v1/market/{app['id']}/package").status_code == 403


def test_a_delisted_app_leaves_the_marketplace_but_its_runs_stay_traceable(shop):
    app = shop.released()
    shop.call("user", "PUT", f"/api/v1/market/{app['id']}/subscription")
    run = shop.call("user", "POST", f"/api/v1/market/{app['id']}/runs",
                    {"arguments": {"month": "2026-11-01"}}).json["resultValue"]
    assert shop.call("maker", "POST", f"/api/v1/apps/{app['id']}/delist", {}).status_code == 400  # needs a reason
    r = shop.call("maker", "POST", f"/api/v1/apps/{app['id']}/delist", {"reason": "规则变更"})
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "delisted"

    assert shop.call("user", "GET", "/api/v1/market", params={"q": "发票"}).json["resultValue"]["total"] == 0
    assert shop.call("user", "GET", f"/api/v1/market/{app['id']}").status_code == 404
    r = shop.call("user", "POST", f"/api/v1/market/{app['id']}/runs", {"arguments": {"month": "2026-11-01"}})
    assert r.status_code == 404
    traced = shop.call("user", "GET", f"/api/v1/market/{app['id']}/runs").json["resultValue"]["items"]
    assert [x["id"] for x in traced] == [run["id"]]
    assert shop.call("user", "GET", f"/api/v1/market/{app['id']}/runs/{run['id']}").status_code == 200


def test_acceptance_from_the_design_center_needs_a_second_person(app, shop):
    from rpahub_core.errors import Forbidden
    from rpahub_plugins.executors import state
    from rpahub_plugins.share import library

    with hubdb.connection():
        pkg = state(app.hub).runs.add_package(name="delivery", version="0.9", data=package(), created_by="designer")
        lib = library(app.hub)
        fields = dict(requirement_id="req1", app_id=None, name="交付应用", description="", region="江苏",
                      scenario="对账", domain="finance", vendor="", tags=["交付"], parameters=[], package_id=pkg.id)
        with pytest.raises(Forbidden):
            lib.accept_delivery(**fields, accepted_by=UserPrincipal(id="d", name="designer"))
        accepted = lib.accept_delivery(**fields, accepted_by=UserPrincipal(id="c", name="checker"))
    detail = shop.call("outsider", "GET", f"/api/v1/apps/{accepted.id}").json["resultValue"]
    assert detail["state"] == "draft" and detail["requirementId"] == "req1"
    [version] = detail["versions"]
    assert version["state"] == "approved" and version["approvedBy"] == "checker"
    assert detail["productionVersion"] == version["id"]


def test_an_apps_owner_sets_the_retry_and_scheduling_policy_its_runs_use(shop, client, person):
    from rpahub_plugins.dispatch.models import RunPlan

    for bad, field in (({"maxAttempts": 0}, "maxAttempts"), ({"maxAttempts": 21}, "maxAttempts"),
                       ({"backoffSeconds": -1}, "backoffSeconds"), ({"backoffSeconds": 3601}, "backoffSeconds"),
                       ({"policy": "coin_toss"}, "policy")):
        r = shop.call("maker", "POST", "/api/v1/apps", {"name": "坏策略", **bad})
        assert r.status_code == 400 and field in r.json["resultHint"], (bad, r.json)
    app = shop.released(maxAttempts=5, backoffSeconds=30, policy="round_robin")
    detail = shop.call("outsider", "GET", f"/api/v1/apps/{app['id']}").json["resultValue"]
    assert (detail["maxAttempts"], detail["backoffSeconds"], detail["policy"]) == (5, 30, "round_robin")

    r = shop.call("maker", "PATCH", f"/api/v1/apps/{app['id']}", {"policy": "coin_toss"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("policy: unknown policy 'coin_toss'")
    other = person("other.maker", "apps.manage", "apps.read")
    r = client.simulate_patch(f"/api/v1/apps/{app['id']}", headers=auth(other), json={"maxAttempts": 20})
    assert r.status_code == 403
    r = shop.call("reviewer", "PATCH", f"/api/v1/apps/{app['id']}", {"maxAttempts": 4, "policy": "affinity"})
    assert r.status_code == 200, r.json
    assert (r.json["resultValue"]["maxAttempts"], r.json["resultValue"]["policy"]) == (4, "affinity")

    # A marketplace run carries the app's policies (the run API takes none of its own).
    shop.call("user", "PUT", f"/api/v1/market/{app['id']}/subscription")
    run = shop.call("user", "POST", f"/api/v1/market/{app['id']}/runs",
                    {"arguments": {"month": "2026-11-01"}}).json["resultValue"]
    with hubdb.connection():
        plan = RunPlan.get_by_id(run["id"])
        assert (plan.max_attempts, plan.backoff_s, plan.policy) == (4, 30, "affinity")

    # Back to the hub's defaults with null.
    r = shop.call("maker", "PATCH", f"/api/v1/apps/{app['id']}", {"maxAttempts": None, "backoffSeconds": None,
                                                                 "policy": None})
    assert (r.json["resultValue"]["maxAttempts"], r.json["resultValue"]["policy"]) == (None, None)
    run = shop.call("user", "POST", f"/api/v1/market/{app['id']}/runs",
                    {"arguments": {"month": "2026-11-01"}}).json["resultValue"]
    with hubdb.connection():
        plan = RunPlan.get_by_id(run["id"])
        assert (plan.max_attempts, plan.backoff_s, plan.policy) == (3, 10, None)
        changes = [(row.action, row.actor_name, row.result) for row in AuditEntry.select().where(
            AuditEntry.action.startswith("app.") & (AuditEntry.target == app["id"])).order_by(AuditEntry.id)]
    assert ("app.update", "reviewer", "ok") in changes and ("app.update", "maker", "failed") in changes
    assert ("app.update", "other.maker", "denied") in changes


def test_only_an_approved_version_of_an_app_is_dispatched_outside_the_test_pool(shop, client, admin_token):
    """SEC-5 for every way a run is queued, not only the marketplace: the generic dispatch
    API, flows (and schedules, which queue the same way) refuse a version nobody approved,
    except on the test pool where trials run."""
    admin = auth(admin_token)
    for pool in ("test", "prod"):
        assert client.simulate_post("/api/v1/pools", headers=admin, json={"name": pool}).status_code == 201

    def dispatch(package_id, **target):
        return client.simulate_post("/api/v1/dispatch", headers=admin, json={"packageId": package_id, **target})

    app = shop.app()
    draft = shop.upload(app["id"], "1.0").json["resultValue"]
    for target in ({"pool": "prod"}, {}, {"labels": ["finance"]}):
        r = dispatch(draft["packageId"], **target)
        assert r.status_code == 409, (target, r.json)
        assert r.json["resultHint"] == (
            "packageId: 发票校验机器人 1.0 is not reviewed yet: a version of a library app runs in production only "
            "once a reviewer approved it (SEC-5); until then it may run on the test pool 'test' only")
    assert dispatch(draft["packageId"], pool="test").status_code == 201  # a trial

    request_id = shop.call("maker", "POST", f"/api/v1/apps/{app['id']}/versions/1.0/submit", {}
                           ).json["resultValue"]["approvalRequestId"]
    r = dispatch(draft["packageId"], pool="prod")
    assert r.status_code == 409 and "is waiting for review" in r.json["resultHint"]
    assert dispatch(draft["packageId"], pool="test").status_code == 201  # the reviewer tries it out
    r = shop.call("reviewer", "POST", f"/api/v1/approvals/{request_id}/reject", {"comment": "缺少测试"})
    assert r.status_code == 200
    r = dispatch(draft["packageId"], pool="prod")
    assert r.status_code == 409 and "is refused in review" in r.json["resultHint"]
    # Starting it directly on one executor is production too.
    r = client.simulate_post("/api/v1/runs", headers=admin, json={"packageId": draft["packageId"],
                                                                  "executorId": "any-robot"})
    assert r.status_code == 409 and "is refused in review" in r.json["resultHint"]

    # A flow task naming the refused version fails, saying why; nothing was queued for it.
    flow = client.simulate_post("/api/v1/flows", headers=admin, json={"name": "月结", "tasks": [
        {"key": "check", "packageId": draft["packageId"], "pool": "prod"}]}).json["resultValue"]
    fr = client.simulate_post(f"/api/v1/flows/{flow['id']}/runs", headers=admin).json["resultValue"]
    [task] = fr["tasks"]
    assert (task["state"], task["runId"]) == ("failed", None) and "refused in review" in task["detail"]
    # So does a schedule's occurrence; the schedule goes on.
    from rpahub_plugins.schedules.service import schedules

    with hubdb.connection():
        planner = schedules(client.app.hub)
        s = planner.create({"name": "月结", "package_id": draft["packageId"], "pool": "prod", "unit": "days",
                            "every": 1, "anchor": dt.datetime(2024, 5, 6, 8, 0)},
                           by=UserPrincipal(id="p", name="planner", permissions=frozenset({"*"})),
                           now=dt.datetime(2024, 5, 5))
        [row] = planner.fire_due(s.next_run_at + dt.timedelta(seconds=1))
        assert (row.outcome, row.run_id) == ("failed", None) and "refused in review" in row.detail
        assert "SEC-5" in planner.get(s.id).last_error and planner.get(s.id).next_run_at > row.occurrence

    # Approved, the next version runs anywhere; a raw upload outside the library runs as before.
    v2 = shop.upload(app["id"], "2.0").json["resultValue"]
    request_id = shop.call("maker", "POST", f"/api/v1/apps/{app['id']}/versions/2.0/submit", {}
                           ).json["resultValue"]["approvalRequestId"]
    assert shop.approve(request_id).status_code == 200
    assert dispatch(v2["packageId"], pool="prod").status_code == 201
    assert dispatch(v2["packageId"]).status_code == 201
    with hubdb.connection():
        from rpahub_plugins.executors import state

        raw = state(client.app.hub).runs.add_package(name="ops-script", version="1", data=package(), created_by="op")
    assert dispatch(raw.id, pool="prod").status_code == 201
    with hubdb.connection():
        refused = AuditEntry.select().where((AuditEntry.action == "run.dispatch")
                                            & (AuditEntry.result == "failed")).count()
    assert refused == 5


def test_design_trials_still_run_on_the_test_pool(app, client, admin_token):
    """Trials of the design center (6.2.1e) go through the same gate: a delivery is a raw
    package until accepted, and an unapproved library version may be tried on the test pool."""
    from test_design import Center

    from rpahub_plugins.executors.models import RunInstance
    from rpahub_plugins.share import library

    center = Center(app, client, admin_token)
    first = center.submit()["id"]
    center.to_tested(first)
    app_id = center.act("ada", first, "accept").json["resultValue"]["appId"]

    # A change request for that app: its delivery is tried on the test pool and succeeds.
    change = center.submit("bob", title="电费核算支持分时电价", appId=app_id)["id"]
    center.to_evaluated(change)
    center.to_designed(change, version="1.1")
    trial = center.trial(change)
    center.finish(trial["runId"])
    with hubdb.connection():
        assert RunInstance.get_by_id(trial["runId"]).state == "success"

    # A version added in the library but not yet approved: tried on the test pool, not in production.
    with hubdb.connection():
        lib = library(app.hub)
        row = lib.add_version(lib.get(app_id), UserPrincipal(id="m", name="maker"), version="1.2", data=package())
    admin = auth(admin_token)
    r = client.simulate_post("/api/v1/dispatch", headers=admin, json={"packageId": row.package_id, "pool": "test"})
    assert r.status_code == 201, r.json
    center.finish(r.json["resultValue"]["id"])
    r = client.simulate_post("/api/v1/dispatch", headers=admin, json={"packageId": row.package_id,
                                                                      "executorId": "r1"})
    assert r.status_code == 409 and "test pool 'test'" in r.json["resultHint"]
