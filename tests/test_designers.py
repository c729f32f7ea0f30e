"""Cloud designers (6.2.3): registration, leases that never exceed a designer's capacity,
recycling on release, force and expiry, and sessions only a registered designer can check."""

import datetime as dt
import threading

import pytest

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict
from rpahub_core.testing import bearer as auth
from rpahub_plugins.designers import designers
from rpahub_plugins.designers.models import DesignerLease

PASSWORD = "Designer-test-pass-1"


def person(client, admin_token, username, *permissions):
    """A signed-in person holding a role with exactly ``permissions``."""
    role = f"role-{username}"
    r = client.simulate_post("/api/v1/roles", headers=auth(admin_token),
                             json={"name": role, "permissions": list(permissions)})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/users", headers=auth(admin_token),
                             json={"username": username, "password": "Initial-pass-123", "roles": [role]})
    assert r.status_code == 201, r.json
    token = client.simulate_post("/api/v1/auth/login", json={"username": username, "password": "Initial-pass-123"}
                                 ).json["resultValue"]["token"]
    r = client.simulate_post("/api/v1/me/password", headers=auth(token),
                             json={"currentPassword": "Initial-pass-123", "newPassword": PASSWORD})
    assert r.status_code == 200, r.json
    return token


def register(client, token, name="studio-1", **extra):
    body = {"name": name, "vendor": "rpahub", "version": "1.0", "endpoint": f"http://designers.example/{name}",
            **extra}
    r = client.simulate_post("/api/v1/designers", headers=auth(token), json=body)
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def allocate(client, token, **body):
    return client.simulate_post("/api/v1/designers/allocate", headers=auth(token), json=body)


def check(client, secret, token):
    return client.simulate_get("/api/v1/designer-session", params={"token": token},
                               headers={"X-Designer-Secret": secret} if secret else {})


def test_registration_shows_the_secret_once_and_validates_input(client, admin_token):
    d = register(client, admin_token, capacity=2)
    assert d["secret"].startswith("rpdk_") and d["capacity"] == 2 and d["enabled"] is True
    assert d["registeredBy"] == "admin" and d["inUse"] == 0 and d["instanceId"] is None

    listed = client.simulate_get("/api/v1/designers", headers=auth(admin_token)).json["resultValue"]
    assert [i["name"] for i in listed["items"]] == ["studio-1"]
    assert "secret" not in listed["items"][0]
    one = client.simulate_get(f"/api/v1/designers/{d['id']}", headers=auth(admin_token)).json["resultValue"]
    assert "secret" not in one and one["idle"] == 2

    r = client.simulate_post("/api/v1/designers", headers=auth(admin_token),
                             json={"name": "studio-1", "vendor": "rpahub", "endpoint": "http://x.example"})
    assert r.status_code == 409 and "studio-1" in r.json["resultHint"]
    for bad, field in (({"endpoint": "ftp://x.example"}, "endpoint"), ({"endpoint": "http://u:p@x.example"}, "endpoint"),
                       ({"capacity": 0}, "capacity"), ({"vendor": "a b"}, "vendor"), ({"colour": "red"}, "colour")):
        r = client.simulate_post("/api/v1/designers", headers=auth(admin_token),
                                 json={"name": "studio-2", "vendor": "rpahub", "endpoint": "http://x.example", **bad})
        assert r.status_code == 400 and field in r.json["resultHint"], (bad, r.json)

    r = client.simulate_put(f"/api/v1/designers/{d['id']}", headers=auth(admin_token),
                            json={"version": "1.1", "rotateSecret": True})
    assert r.status_code == 200 and r.json["resultValue"]["version"] == "1.1"
    assert r.json["resultValue"]["secret"] not in ("", d["secret"])
    assert client.simulate_get("/api/v1/designers/nope", headers=auth(admin_token)).status_code == 404


def test_people_without_the_permission_are_refused(client, admin_token):
    d = register(client, admin_token)
    user = person(client, admin_token, "zhao.lei", "designers.use")
    nobody = person(client, admin_token, "qian.li", "audit.read")
    for method, path in (("GET", "/api/v1/designers"), ("POST", "/api/v1/designers"),
                         ("GET", f"/api/v1/designers/{d['id']}"), ("PUT", f"/api/v1/designers/{d['id']}"),
                         ("DELETE", f"/api/v1/designers/{d['id']}")):
        r = client.simulate_request(method, path, headers=auth(user), json={} if method != "GET" else None)
        assert r.status_code == 403 and "designers.manage" in r.json["resultHint"], (method, path)
    r = allocate(client, nobody)
    assert r.status_code == 403 and "designers.use" in r.json["resultHint"]
    assert client.simulate_get("/api/v1/designer-leases", headers=auth(nobody)).status_code == 403
    assert allocate(client, user).status_code == 201


def test_allocation_picks_the_least_used_and_never_exceeds_capacity(client, admin_token):
    a = register(client, admin_token, "studio-a", capacity=2)
    b = register(client, admin_token, "studio-b", capacity=1)
    register(client, admin_token, "other-vendor", vendor="uibot", capacity=5)
    got = [allocate(client, admin_token, vendor="rpahub") for _ in range(3)]
    assert [r.status_code for r in got] == [201, 201, 201]
    first, second, third = (r.json["resultValue"] for r in got)
    # One lease each before anyone gets a second one.
    assert {first["designerId"], second["designerId"]} == {a["id"], b["id"]}
    assert third["designerId"] == a["id"] and third["endpoint"] == "http://designers.example/studio-a"
    assert first["sessionToken"].startswith("rpds_") and first["expiresAt"]

    r = allocate(client, admin_token, vendor="rpahub")
    assert r.status_code == 409 and "no idle designer of vendor rpahub" in r.json["resultHint"]
    r = allocate(client, admin_token, vendor="yingdao")
    assert r.status_code == 409 and "no registered, enabled designer of vendor yingdao" in r.json["resultHint"]
    used = {i["name"]: i["inUse"] for i in
            client.simulate_get("/api/v1/designers", headers=auth(admin_token)).json["resultValue"]["items"]}
    assert used == {"studio-a": 2, "studio-b": 1, "other-vendor": 0}

    # Releasing gives the place back.
    r = client.simulate_post(f"/api/v1/designer-leases/{first['leaseId']}/release", headers=auth(admin_token))
    assert r.status_code == 200 and r.json["resultValue"]["reason"] == "released"
    assert allocate(client, admin_token, vendor="rpahub").json["resultValue"]["designerId"] == first["designerId"]


def test_concurrent_allocations_stay_within_capacity(app, client, admin_token):
    register(client, admin_token, capacity=3)
    service = designers(app.hub)
    won, refused, errors = [], [], []

    def grab(i):
        try:
            with hubdb.connection():
                won.append(service.allocate(user_id=f"u{i}", user_name=f"user{i}")[0].id)
        except Conflict:
            refused.append(i)
        except Exception as exc:  # pragma: no cover - shown in the assertion
            errors.append(exc)

    threads = [threading.Thread(target=grab, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(won) == 3 and len(refused) == 7
    with hubdb.connection():
        assert DesignerLease.select().where(DesignerLease.state == "active").count() == 3


def test_leases_are_renewed_released_and_private_to_their_owner(client, admin_token):
    register(client, admin_token, capacity=2)
    alice = person(client, admin_token, "alice", "designers.use")
    bob = person(client, admin_token, "bob", "designers.use")
    lease = allocate(client, alice, minutes=10).json["resultValue"]
    allocate(client, bob)

    mine = client.simulate_get("/api/v1/designer-leases", headers=auth(alice)).json["resultValue"]["items"]
    assert [i["userName"] for i in mine] == ["alice"]
    everyone = client.simulate_get("/api/v1/designer-leases", headers=auth(admin_token)).json["resultValue"]
    assert everyone["total"] == 2

    # Another person's lease does not exist for bob.
    assert client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/release",
                                headers=auth(bob)).status_code == 404
    assert client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/renew", headers=auth(bob),
                                json={}).status_code == 404

    r = client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/renew", headers=auth(alice),
                             json={"minutes": 120})
    assert r.status_code == 200 and r.json["resultValue"]["renewedAt"]
    assert r.json["resultValue"]["expiresAt"] > lease["expiresAt"]
    r = client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/renew", headers=auth(alice),
                             json={"minutes": 100000})
    assert r.status_code == 400 and "minutes: at most 480" in r.json["resultHint"]
    assert allocate(client, alice, minutes=0).status_code == 400

    assert client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/release",
                                headers=auth(alice)).status_code == 200
    r = client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/release", headers=auth(alice))
    assert r.status_code == 409 and "released" in r.json["resultHint"]
    r = client.simulate_post(f"/api/v1/designer-leases/{lease['leaseId']}/renew", headers=auth(alice), json={})
    assert r.status_code == 409

    # A manager may end anyone's lease: that is a forced recycle.
    bobs = client.simulate_get("/api/v1/designer-leases", headers=auth(bob)).json["resultValue"]["items"][0]
    r = client.simulate_post(f"/api/v1/designer-leases/{bobs['id']}/release", headers=auth(admin_token))
    assert r.json["resultValue"]["reason"] == "forced" and r.json["resultValue"]["recycledBy"] == "admin"


def test_expired_leases_are_recycled_by_the_sweep_and_free_capacity(app, client, admin_token):
    d = register(client, admin_token, capacity=1)
    lease = allocate(client, admin_token).json["resultValue"]
    assert allocate(client, admin_token).status_code == 409
    events = []
    app.hub.bus.subscribe("designer_lease.recycled", lambda e: events.append(e.data))
    with hubdb.connection():
        DesignerLease.update(expires_at=utcnow() - dt.timedelta(minutes=1)).execute()
        assert check(client, d["secret"], lease["sessionToken"]).status_code == 403  # expired, not yet swept
        assert designers(app.hub).sweep() == 1
        assert designers(app.hub).sweep() == 0
    assert events == [{"leaseId": lease["leaseId"], "designerId": d["id"], "userId": events[0]["userId"],
                       "reason": "expired"}]
    row = client.simulate_get("/api/v1/designer-leases", headers=auth(admin_token)).json["resultValue"]["items"][0]
    assert (row["state"], row["reason"], row["recycledAt"] is not None) == ("recycled", "expired", True)
    assert allocate(client, admin_token).status_code == 201


def test_allocation_recycles_expired_leases_before_the_sweep(app, client, admin_token):
    register(client, admin_token, capacity=1)
    allocate(client, admin_token)
    with hubdb.connection():
        DesignerLease.update(expires_at=utcnow() - dt.timedelta(minutes=1)).execute()
    assert allocate(client, admin_token).status_code == 201
    with hubdb.connection():
        assert [lease.reason for lease in DesignerLease.select().order_by(DesignerLease.created_at)] == ["expired", ""]


def test_only_a_registered_enabled_designer_confirms_a_live_session(client, admin_token):
    d = register(client, admin_token, "studio-a")
    other = register(client, admin_token, "studio-b", vendor="uibot")
    lease = allocate(client, admin_token, vendor="rpahub").json["resultValue"]

    r = check(client, d["secret"], lease["sessionToken"])
    assert r.status_code == 200, r.json
    assert r.json["resultValue"]["leaseId"] == lease["leaseId"] and r.json["resultValue"]["userName"] == "admin"
    r = check(client, other["secret"], lease["sessionToken"])
    assert r.status_code == 403 and "not a session on this designer" in r.json["resultHint"]
    r = check(client, "rpdk_made-up", lease["sessionToken"])
    assert r.status_code == 403 and "not a registered designer" in r.json["resultHint"]
    assert check(client, "", lease["sessionToken"]).status_code == 403
    assert check(client, d["secret"], "rpds_made-up").status_code == 403
    assert client.simulate_get("/api/v1/designer-session", headers={"X-Designer-Secret": d["secret"]}
                               ).status_code == 400

    r = client.simulate_put(f"/api/v1/designers/{d['id']}", headers=auth(admin_token), json={"enabled": False})
    assert r.status_code == 409 and "force" in r.json["resultHint"]
    r = client.simulate_put(f"/api/v1/designers/{d['id']}", headers=auth(admin_token), json={"enabled": False},
                            params={"force": "true"})
    assert r.status_code == 200 and r.json["resultValue"]["enabled"] is False
    r = check(client, d["secret"], lease["sessionToken"])
    assert r.status_code == 403 and "disabled" in r.json["resultHint"]
    # A disabled designer is never allocated.
    assert allocate(client, admin_token, vendor="rpahub").status_code == 409
    row = client.simulate_get("/api/v1/designer-leases", headers=auth(admin_token)).json["resultValue"]["items"][0]
    assert (row["state"], row["reason"]) == ("recycled", "forced")


def test_deregistering_a_leased_designer_needs_force(client, admin_token):
    d = register(client, admin_token)
    lease = allocate(client, admin_token).json["resultValue"]
    r = client.simulate_delete(f"/api/v1/designers/{d['id']}", headers=auth(admin_token))
    assert r.status_code == 409 and "1 live lease" in r.json["resultHint"]
    r = client.simulate_delete(f"/api/v1/designers/{d['id']}", headers=auth(admin_token), params={"force": "true"})
    assert r.status_code == 200
    assert client.simulate_get(f"/api/v1/designers/{d['id']}", headers=auth(admin_token)).status_code == 404
    assert check(client, d["secret"], lease["sessionToken"]).status_code == 403
    # The lease stays as history, naming the designer it was on.
    row = client.simulate_get("/api/v1/designer-leases", headers=auth(admin_token)).json["resultValue"]["items"][0]
    assert (row["designerName"], row["reason"]) == ("studio-1", "forced")
    audit = client.simulate_get("/api/v1/audit", params={"action": "designer.*"},
                                headers=auth(admin_token)).json["resultValue"]["items"]
    assert [(a["action"], a["result"]) for a in audit[:2]] == [("designer.deregister", "ok"),
                                                                ("designer.deregister", "failed")]


def test_the_service_api_registers_and_deregisters(app):
    service = designers(app.hub)
    with hubdb.connection():
        d, secret = service.register(name="from-image", vendor="rpahub", endpoint="http://127.0.0.1:1",
                                     capacity=2, registered_by="images", instance_id="i-1")
        lease, _, token = service.allocate(user_id="u1", user_name="u")
        assert service.verify_session(secret, token)[0].id == lease.id
        service.deregister(d.id)
        assert DesignerLease.get_by_id(lease.id).reason == "forced"
        with pytest.raises(Conflict):
            service.allocate(user_id="u1", user_name="u")
