"""Maker-checker as a mechanism any plugin reuses (SEC-3): a kind declared through
``rpahub_approval_kinds``, decided only by a second person holding the checker
permission, carried out in the approving transaction."""

from types import SimpleNamespace

import pytest

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.auth import UserPrincipal
from rpahub_core.errors import Conflict, Forbidden
from rpahub_core.testing import bearer as auth
from rpahub_core.testing import make_app
from rpahub_plugins.approvals import requests
from rpahub_plugins.approvals.models import ApprovalRequest

APPLIED = []


def apply_threshold(request, hub):
    if request.target == "boom":
        raise Conflict("the limit changed meanwhile")
    APPLIED.append(request.target)


LIMITS = SimpleNamespace(
    rpahub_permissions=hookimpl(lambda permissions: permissions.add("limits.check", "Approve payment limits")),
    rpahub_approval_kinds=hookimpl(lambda kinds: kinds.add(
        "limit.raise", "limits.check", "Raise a payment limit above the threshold", apply_threshold)),
)


@pytest.fixture
def limits_app(tmp_path, database_url):
    APPLIED.clear()
    app = make_app(tmp_path / "home", database_url, ("limits", LIMITS))
    yield app
    app.hub.close()


MAKER = UserPrincipal(id="u1", name="maker", permissions=frozenset({"limits.check"}))
CHECKER = UserPrincipal(id="u2", name="checker", permissions=frozenset({"limits.check"}))
BYSTANDER = UserPrincipal(id="u3", name="bystander")


def test_a_kind_declared_by_a_plugin_is_applied_only_by_a_second_person(limits_app):
    with hubdb.connection():
        approvals = requests(limits_app.hub)
        assert "limit.raise" in approvals.kinds.items
        row = approvals.file("limit.raise", target="acct-9", title="raise to 5M", maker=MAKER, payload={"to": 5e6})
        with pytest.raises(Conflict):  # one pending request per target
            approvals.file("limit.raise", target="acct-9", title="again", maker=MAKER)
        with pytest.raises(Forbidden, match="maker"):
            approvals.approve(row.id, MAKER)
        with pytest.raises(Forbidden, match="limits.check"):
            approvals.approve(row.id, BYSTANDER)
        assert APPLIED == []
        approvals.approve(row.id, CHECKER, "ok")
        assert APPLIED == ["acct-9"]
        row = ApprovalRequest.get_by_id(row.id)
        assert (row.state, row.checker_name, row.decision_comment) == ("approved", "checker", "ok")


def test_a_failing_apply_refuses_the_approval_and_keeps_the_request_pending(limits_app):
    with hubdb.connection():
        approvals = requests(limits_app.hub)
        row = approvals.file("limit.raise", target="boom", title="x", maker=MAKER)
        with pytest.raises(Conflict, match="meanwhile"):
            approvals.approve(row.id, CHECKER)
        assert ApprovalRequest.get_by_id(row.id).state == "pending"


def test_withdrawn_requests_cannot_be_decided_and_only_the_maker_withdraws(limits_app):
    with hubdb.connection():
        approvals = requests(limits_app.hub)
        row = approvals.file("limit.raise", target="acct-1", title="x", maker=MAKER)
        with pytest.raises(Forbidden):
            approvals.withdraw(row.id, CHECKER)
        approvals.withdraw(row.id, MAKER)
        with pytest.raises(Conflict, match="withdrawn"):
            approvals.approve(row.id, CHECKER)


def test_a_kind_naming_an_undeclared_permission_is_refused_at_start(tmp_path):
    bad = SimpleNamespace(rpahub_approval_kinds=hookimpl(
        lambda kinds: kinds.add("x.do", "x.chekc", "typo in the permission", apply_threshold)))
    with pytest.raises(ValueError, match="x.chekc"):
        make_app(tmp_path / "home", f"sqlite:///{tmp_path / 'hub.db'}", ("bad", bad))


def test_people_see_what_they_made_or_may_decide(client, person, admin_token):
    maker = person("maker", "apps.manage", "apps.read")
    nosy = person("nosy", "apps.use")
    r = client.simulate_post("/api/v1/apps", headers=auth(maker), json={"name": "app"})
    app_id = r.json["resultValue"]["id"]
    assert client.simulate_post(f"/api/v1/apps/{app_id}/publish", headers=auth(maker), json={}).status_code == 409

    with hubdb.connection():
        from rpahub_plugins.share.models import App

        App.update(production_version="v").where(App.id == app_id).execute()
    request_id = client.simulate_post(f"/api/v1/apps/{app_id}/publish", headers=auth(maker),
                                      json={}).json["resultValue"]["approvalRequestId"]
    assert client.simulate_get("/api/v1/approvals", headers=auth(nosy)).json["resultValue"]["total"] == 0
    r = client.simulate_get(f"/api/v1/approvals/{request_id}", headers=auth(nosy))
    assert r.status_code == 403
    assert client.simulate_get(f"/api/v1/approvals/{request_id}", headers=auth(maker)).status_code == 200
    kinds = client.simulate_get("/api/v1/approvals/kinds", headers=auth(nosy)).json["resultValue"]
    assert {"kind": "app.publish", "checkerPermission": "apps.review",
            "description": "List an app in the marketplace (上架)"} in kinds
    r = client.simulate_post(f"/api/v1/approvals/{request_id}/withdraw", headers=auth(nosy), json={})
    assert r.status_code == 403
    r = client.simulate_post(f"/api/v1/approvals/{request_id}/withdraw", headers=auth(maker), json={})
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "withdrawn"
    assert client.simulate_get("/api/v1/approvals/nope", headers=auth(admin_token)).status_code == 404


def test_granting_the_admin_role_waits_for_a_second_administrator(client, admin_token, person):
    r = client.simulate_post("/api/v1/users", headers=auth(admin_token),
                             json={"username": "wang.fang", "roles": ["admin"], "password": "Long-enough-pw-1"})
    assert r.status_code == 201, r.json
    user = r.json["resultValue"]
    assert user["roles"] == []
    [grant] = user["pendingRoleGrants"]
    assert grant["role"] == "admin"
    # The administrator who asked cannot approve it; a second one can.
    r = client.simulate_post(f"/api/v1/approvals/{grant['approvalRequestId']}/approve", headers=auth(admin_token),
                             json={})
    assert r.status_code == 403 and "maker" in r.json["resultHint"]
    checker = person("security.officer", "users.approve")
    r = client.simulate_post(f"/api/v1/approvals/{grant['approvalRequestId']}/approve", headers=auth(checker),
                             json={"comment": "per ticket 42"})
    assert r.status_code == 200, r.json
    r = client.simulate_get(f"/api/v1/users/{user['id']}", headers=auth(admin_token))
    assert r.json["resultValue"]["roles"] == ["admin"]

    # Taking a guarded role away, or keeping it, needs nobody else; other roles are immediate.
    client.simulate_post("/api/v1/roles", headers=auth(admin_token), json={"name": "viewer", "permissions": []})
    r = client.simulate_patch(f"/api/v1/users/{user['id']}", headers=auth(admin_token),
                              json={"roles": ["admin", "viewer"]})
    assert r.json["resultValue"]["roles"] == ["admin", "viewer"] and r.json["resultValue"]["pendingRoleGrants"] == []
    r = client.simulate_patch(f"/api/v1/users/{user['id']}", headers=auth(admin_token), json={"roles": []})
    assert r.json["resultValue"]["roles"] == []
    r = client.simulate_patch(f"/api/v1/users/{user['id']}", headers=auth(admin_token), json={"roles": ["nobody"]})
    assert r.status_code == 400 and "nobody" in r.json["resultHint"]


def test_binding_a_licence_to_another_robot_waits_for_a_second_person(client, admin_token, person):
    client.simulate_post("/api/v1/suppliers", headers=auth(admin_token),
                         json={"code": "acme", "secret": "acme-secret-0123456789abcdef"})
    r = client.simulate_post("/api/v1/licences", headers=auth(admin_token),
                             json={"supplier": "acme", "robotId": "r1", "features": ["ocr"], "days": 30})
    assert r.status_code == 201, r.json
    licence = r.json["resultValue"]
    path = f"/api/v1/licences/{licence['id']}/bind"
    r = client.simulate_post(path, headers=auth(admin_token), json={"robotId": "r2", "pool": "p"})
    assert r.status_code == 400 and "exactly one" in r.json["resultHint"]
    r = client.simulate_post(path, headers=auth(admin_token), json={"robotId": "r2"})
    assert r.status_code == 202, r.json
    request_id = r.json["resultValue"]["approvalRequestId"]
    listed = client.simulate_get("/api/v1/licences", headers=auth(admin_token)).json["resultValue"]["items"]
    assert [x["robotId"] for x in listed] == ["r1"]  # nothing changed yet

    checker = person("licence.officer", "licences.approve")
    r = client.simulate_post(f"/api/v1/approvals/{request_id}/approve", headers=auth(checker), json={})
    assert r.status_code == 200, r.json
    listed = client.simulate_get("/api/v1/licences", headers=auth(admin_token)).json["resultValue"]["items"]
    rebound = [x for x in listed if x["supersedes"] == licence["id"]]
    assert [x["robotId"] for x in rebound] == ["r2"] and rebound[0]["features"] == ["ocr"]


def test_requests_filter_by_several_targets_and_kinds_at_once(limits_app):
    from falcon import testing

    from rpahub_plugins.auth_local import identity

    with hubdb.connection():
        approvals = requests(limits_app.hub)
        for target in ("acct-1", "acct-2", "acct-3"):
            approvals.file("limit.raise", target=target, title=f"raise {target}", maker=MAKER)
        admin = identity(limits_app.hub).create_user("auditor", password="Zq-7-unguessable-Passw0rd!", roles=["admin"])
        token, _, _ = identity(limits_app.hub).login(admin.username, "Zq-7-unguessable-Passw0rd!", "test")
    client = testing.TestClient(limits_app)

    def targets(**params):
        r = client.simulate_get("/api/v1/approvals", headers=auth(token), params=params)
        assert r.status_code == 200, r.json
        return sorted(a["target"] for a in r.json["resultValue"]["items"])

    assert targets(target=["acct-1", "acct-3"]) == ["acct-1", "acct-3"]
    assert targets(target="acct-2") == ["acct-2"]
    assert targets(kind=["limit.raise", "role.grant"]) == ["acct-1", "acct-2", "acct-3"]
    assert targets(kind="role.grant") == []
