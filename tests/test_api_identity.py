"""The identity API as people use it: sign-in, first password, tokens, users, roles."""

from rpahub_core.testing import ADMIN_PASSWORD
from rpahub_core.testing import bearer as auth


def login(client, username, password):
    return client.simulate_post("/api/v1/auth/login", json={"username": username, "password": password})


def test_first_admin_must_replace_one_time_password(app, client):
    from rpahub_core import db as hubdb
    from rpahub_plugins.auth_local.models import User
    from rpahub_plugins.auth_local.passwords import hash_password

    with hubdb.connection():
        User.update(password_hash=hash_password("one-time-pass-123")).where(User.username == "admin").execute()
    r = login(client, "admin", "one-time-pass-123")
    assert r.status_code == 200
    assert r.json["resultValue"]["mustChangePassword"] is True
    token = r.json["resultValue"]["token"]
    assert token.startswith("rpu_")
    # Everything but the password change is refused until then.
    r = client.simulate_get("/api/v1/users", headers=auth(token))
    assert r.status_code == 403 and "password change required" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/me/password", headers=auth(token),
                             json={"currentPassword": "one-time-pass-123", "newPassword": "short"})
    assert r.status_code == 400 and "at least" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/me/password", headers=auth(token),
                             json={"currentPassword": "one-time-pass-123", "newPassword": ADMIN_PASSWORD})
    assert r.status_code == 200, r.json
    assert client.simulate_get("/api/v1/users", headers=auth(token)).status_code == 200


def test_wrong_password_and_unknown_user_look_the_same(client, admin_token):
    a = login(client, "admin", "wrong-password")
    b = login(client, "nobody", "wrong-password")
    assert a.status_code == b.status_code == 401
    assert a.json["resultHint"] == b.json["resultHint"]


def test_sign_in_is_throttled_after_repeated_failures(client, admin_token):
    for _ in range(10):
        login(client, "admin", "wrong-password")
    r = login(client, "admin", ADMIN_PASSWORD)
    assert r.status_code == 429
    assert r.headers.get("Retry-After") == "60"


def test_validation_errors_name_the_field(client, admin_token):
    r = client.simulate_post("/api/v1/users", headers=auth(admin_token),
                             json={"username": "x", "roles": "admin", "colour": "red"})
    assert r.status_code == 400
    fields = {e["field"] for e in r.json["resultValue"]["errors"]}
    assert {"username", "roles", "colour"} <= fields
    assert r.json["successful"] is False and "username" in r.json["resultHint"]


def test_malformed_json_is_a_400_not_a_500(client, admin_token):
    r = client.simulate_post("/api/v1/users", headers={**auth(admin_token), "Content-Type": "application/json"},
                             body=b'{"username": ')
    assert r.status_code == 400
    assert r.json["resultHint"] == "body is not valid JSON"


def test_unknown_route_and_method_use_the_envelope(client, admin_token):
    r = client.simulate_get("/api/v1/nothing-here", headers=auth(admin_token))
    assert r.status_code == 404 and r.json["successful"] is False
    r = client.simulate_delete("/api/v1/users", headers=auth(admin_token))
    assert r.status_code == 405 and r.json["successful"] is False


def test_user_lifecycle_with_roles_and_permissions(client, admin_token):
    r = client.simulate_post("/api/v1/roles", headers=auth(admin_token),
                             json={"name": "auditor", "description": "reads the audit log",
                                   "permissions": ["audit.read"]})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/roles", headers=auth(admin_token),
                             json={"name": "bogus", "permissions": ["no.such.permission"]})
    assert r.status_code == 400 and "no.such.permission" in r.json["resultHint"]

    r = client.simulate_post("/api/v1/users", headers=auth(admin_token),
                             json={"username": "li.qiang", "displayName": "李强", "roles": ["auditor"]})
    assert r.status_code == 201, r.json
    user = r.json["resultValue"]
    one_time = user["oneTimePassword"]
    assert user["displayName"] == "李强" and user["roles"] == ["auditor"]

    token = login(client, "li.qiang", one_time).json["resultValue"]["token"]
    client.simulate_post("/api/v1/me/password", headers=auth(token),
                         json={"currentPassword": one_time, "newPassword": "A-new-secret-42"})
    assert client.simulate_get("/api/v1/audit", headers=auth(token)).status_code == 200
    r = client.simulate_get("/api/v1/users", headers=auth(token))
    assert r.status_code == 403 and "users.read" in r.json["resultHint"]

    # Disabling the user revokes their sessions at once.
    r = client.simulate_patch(f"/api/v1/users/{user['id']}", headers=auth(admin_token), json={"isActive": False})
    assert r.status_code == 200 and r.json["resultValue"]["isActive"] is False
    assert client.simulate_get("/api/v1/me", headers=auth(token)).status_code == 401
    assert login(client, "li.qiang", "A-new-secret-42").status_code == 401

    # A role still held cannot be deleted; the built-in admin role never.
    assert client.simulate_delete("/api/v1/roles/auditor", headers=auth(admin_token)).status_code == 409
    assert client.simulate_delete("/api/v1/roles/admin", headers=auth(admin_token)).status_code == 400


def test_duplicate_username_is_a_conflict(client, admin_token):
    body = {"username": "wang.fang", "password": "Long-enough-pass-1"}
    assert client.simulate_post("/api/v1/users", headers=auth(admin_token), json=body).status_code == 201
    r = client.simulate_post("/api/v1/users", headers=auth(admin_token), json=body)
    assert r.status_code == 409 and "taken" in r.json["resultHint"]


def test_personal_api_tokens_work_until_revoked(client, admin_token):
    r = client.simulate_post("/api/v1/me/tokens", headers=auth(admin_token), json={"name": "ci", "expiresInDays": 7})
    assert r.status_code == 201
    api_token, token_id = r.json["resultValue"]["token"], r.json["resultValue"]["id"]
    assert client.simulate_get("/api/v1/me", headers=auth(api_token)).json["resultValue"]["username"] == "admin"
    listed = client.simulate_get("/api/v1/me/tokens", headers=auth(admin_token)).json["resultValue"]
    assert listed["total"] == 1 and "token" not in listed["items"][0]
    assert client.simulate_delete(f"/api/v1/me/tokens/{token_id}", headers=auth(admin_token)).status_code == 200
    assert client.simulate_get("/api/v1/me", headers=auth(api_token)).status_code == 401


def test_logout_revokes_the_session(client, admin_token):
    assert client.simulate_post("/api/v1/auth/logout", headers=auth(admin_token)).status_code == 200
    assert client.simulate_get("/api/v1/me", headers=auth(admin_token)).status_code == 401


def test_user_list_paginates_and_filters(client, admin_token):
    for i in range(5):
        client.simulate_post("/api/v1/users", headers=auth(admin_token),
                             json={"username": f"op{i}", "password": "Long-enough-pass-1"})
    r = client.simulate_get("/api/v1/users", params={"q": "op", "page": 2, "pageSize": 2}, headers=auth(admin_token))
    page = r.json["resultValue"]
    assert page["total"] == 5 and page["page"] == 2 and [u["username"] for u in page["items"]] == ["op2", "op3"]
    r = client.simulate_get("/api/v1/users", params={"pageSize": 1000}, headers=auth(admin_token))
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "pageSize"


def test_a_generated_one_time_password_never_contains_the_user_name(client, admin_token, monkeypatch):
    """A short name ("ada") can turn up inside a random password; the hub draws again
    rather than refusing to create the user."""
    import secrets

    draws, real = iter(["xxAdAxx-unlucky", "fine-random-draw"]), secrets.token_urlsafe
    monkeypatch.setattr(secrets, "token_urlsafe", lambda n: next(draws, None) or real(n))
    r = client.simulate_post("/api/v1/users", headers=auth(admin_token), json={"username": "ada"})
    assert r.status_code == 201, r.json
    assert r.json["resultValue"]["oneTimePassword"] == "fine-random-draw"
    assert login(client, "ada", "fine-random-draw").status_code == 200
