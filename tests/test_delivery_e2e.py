"""6.2.1 → 6.2.2a → 6.1 end to end, on the real server with a real executor: a
requirement goes from submission to an accepted app; a reviewer lists it; a second
user finds it in the marketplace, subscribes, runs it with arguments, and traces the
run to its result and logs."""

import io
import zipfile

import pytest
import requests

from rpahub_core.testing import LiveHub, stop_process, wait_for

pytestmark = pytest.mark.e2e

SECRET = "delivery-secret-0123456789"
PASSWORD = "Zq-7-unguessable-Passw0rd!"
# Reads its arguments as the reference executor passes them (RPA_ARG_<NAME>).
PACKAGE = r'''
import os
month, limit = os.environ["RPA_ARG_MONTH"], int(os.environ["RPA_ARG_LIMIT"])
print(f"checking invoices of {month}, at most {limit}", flush=True)
print(f"RPA-OUTPUT checked={min(limit, 7)}", flush=True)
'''
ROLES = {
    "alice": ["design.submit", "design.read"],
    "rita": ["design.review", "design.evaluate", "design.read"],
    "dave": ["design.develop", "design.read", "packages.manage"],
    "tess": ["design.test", "design.read"],
    "ada": ["design.accept", "design.read", "apps.review", "apps.manage", "apps.read"],
    "bob": ["apps.use"],
}


class Team:
    def __init__(self, live, admin):
        self.live, self.tokens = live, {"admin": admin}

    def join(self, name, permissions):
        self.tokens[name] = self.live.join(name, permissions, PASSWORD, self.tokens["admin"])
        return self.live.call("GET", "/api/v1/me", token=self.tokens[name])[1]["resultValue"]["id"]

    def __call__(self, who, method, path, body=None, expect=200):
        status, answer = self.live.call(method, path, body, self.tokens[who])
        assert status == expect, (method, path, status, answer)
        return answer["resultValue"] if answer else None


@pytest.fixture
def hub(tmp_path):
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "2", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5"}
    with LiveHub(tmp_path / "hub", env=env) as live:
        yield live


@pytest.fixture
def executor(hub, tmp_path):
    proc = hub.executor("tester-1", "dl", SECRET, tmp_path)
    yield proc
    stop_process(proc)


def test_a_requirement_becomes_an_app_that_a_second_user_finds_subscribes_and_runs(hub, executor):
    team = Team(hub, hub.admin_token())
    ids = {name: team.join(name, permissions) for name, permissions in ROLES.items()}
    team("admin", "POST", "/api/v1/suppliers", {"code": "dl", "secret": SECRET}, expect=201)
    wait_for(lambda: (hub.call("GET", "/api/v1/executors/tester-1", token=team.tokens["admin"])[1]["resultValue"]
                      or {}).get("state") == "online", 30, "the executor to come online")
    team("admin", "POST", "/api/v1/pools", {"name": "test", "members": ["tester-1"]}, expect=201)

    # 6.2.1a-c: submitted, reviewed, evaluated and assigned to dave.
    req = team("alice", "POST", "/api/v1/requirements",
               {"title": "发票校验机器人", "description": "每月核对增值税发票", "region": "江苏",
                "scenario": "发票校验", "domain": "finance"}, expect=201)
    rid = req["id"]
    team("rita", "POST", f"/api/v1/requirements/{rid}/approve", {"comment": "有价值"})
    team("rita", "POST", f"/api/v1/requirements/{rid}/evaluate",
         {"assignee": ids["dave"], "effortDays": 3, "valueScore": 8})

    # 6.2.1d: dave uploads the package and delivers it with its parameters.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", PACKAGE)
    r = requests.post(hub.url + "/api/v1/packages", headers={"Authorization": f"Bearer {team.tokens['dave']}"},
                      data={"name": "invoice-check", "version": "1.0.0"},
                      files={"file": ("p.zip", buf.getvalue(), "application/zip")}, timeout=10)
    assert r.status_code == 201, r.text
    package_id = r.json()["resultValue"]["id"]
    params = [{"name": "month", "type": "date", "required": True},
              {"name": "limit", "type": "integer", "minimum": 1, "default": 100}]
    team("dave", "POST", f"/api/v1/requirements/{rid}/design",
         {"packageId": package_id, "parameters": params, "tags": ["发票"]})

    # 6.2.1e: a trial run on the test pool, on the real executor, must succeed before "pass".
    team("tess", "POST", f"/api/v1/requirements/{rid}/trials",
         {"arguments": {"month": "2026-11-01", "limit": 3}}, expect=201)
    wait_for(lambda: team("tess", "GET", f"/api/v1/requirements/{rid}/trials")["items"][0]["runState"] == "success",
             60, "the trial run to succeed")
    team("tess", "POST", f"/api/v1/requirements/{rid}/pass", {"comment": "试运行通过"})

    # 6.2.1f: accepted by someone other than the designer; the app is in the library.
    app_id = team("ada", "POST", f"/api/v1/requirements/{rid}/accept", {"comment": "验收通过"})["appId"]
    # 6.2.2a: listing needs an approved publish request; ada asks, rita may not decide, admin does.
    ask = team("ada", "POST", f"/api/v1/apps/{app_id}/publish", {"reason": "上架"}, expect=201)
    team("ada", "POST", f"/api/v1/approvals/{ask['approvalRequestId']}/approve", {}, expect=403)
    team("admin", "POST", f"/api/v1/approvals/{ask['approvalRequestId']}/approve", {"comment": "同意上架"})

    # 6.1.1b/c, 6.1.2a/d: bob finds it, subscribes, runs it and traces the run.
    found = team("bob", "GET", "/api/v1/market?q=%E5%8F%91%E7%A5%A8&domain=finance")
    assert [a["id"] for a in found["items"]] == [app_id]
    team("bob", "PUT", f"/api/v1/market/{app_id}/subscription")
    bad = hub.call("POST", f"/api/v1/market/{app_id}/runs", {"arguments": {"limit": 0}}, team.tokens["bob"])
    assert bad[0] == 400 and "arguments.month" in bad[1]["resultHint"]
    run = team("bob", "POST", f"/api/v1/market/{app_id}/runs",
               {"arguments": {"month": "2026-11-01", "limit": 5}, "executorId": "tester-1"}, expect=201)
    wait_for(lambda: team("bob", "GET", f"/api/v1/market/{app_id}/runs/{run['id']}")["state"] == "success", 60,
             "bob's run to succeed")
    trace = team("bob", "GET", f"/api/v1/market/{app_id}/runs/{run['id']}")
    assert trace["executorId"] == "tester-1" and trace["outputs"] == {"checked": "5"}
    assert [e["state"] for e in trace["timeline"]][:1] == ["pending"] and trace["timeline"][-1]["state"] == "success"
    logs = team("admin", "GET", f"/api/v1/runs/{run['id']}/logs")["items"]
    assert any("checking invoices of 2026-11-01, at most 5" in entry["content"] for entry in logs)
    assert team("alice", "GET", f"/api/v1/requirements/{rid}")["state"] == "accepted"
