"""Unified identity (6.3.2a, SEC-1): people sign in with their identity platform's signed
token; they become local users with mapped roles; bad tokens and robots are refused."""

import base64
import hashlib
import hmac
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.config import ConfigError
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import bearer, make_app
from rpahub_plugins.audit_log.models import AuditEntry
from rpahub_plugins.auth_local import identity
from rpahub_plugins.auth_local.models import User
from rpahub_plugins.auth_oidc import settings as oidc_settings
from rpahub_plugins.auth_oidc.keys import KeySet, KeysUnavailable
from rpahub_plugins.auth_oidc.models import OidcLink
from rpahub_plugins.executors import state as executors
from rpahub_plugins.executors.models import Supplier

ISSUER = "https://idp.example.sgcc.com.cn/realms/grid"
AUDIENCE = "rpahub"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid):
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig"}


JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-1"), public_jwk(EC_KEY, "ec-1")]}

OIDC = {
    "enabled": True, "issuer": ISSUER, "audience": AUDIENCE, "jwks_file": "",
    "roles_claim": ["realm_access.roles", "groups"],
    "role_map": {"rpa-operator": "operator", "rpa-user-admin": ["user-admin", "operator"],
                 "/grid/auditors": "auditor", "rpa-ghost": "no-such-role"},
    "default_roles": [],
}


def mint(key=RSA_KEY, kid="rsa-1", alg="RS256", **claims):
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "f3c1-li-lei", "preferred_username": "li.lei",
               "name": "Li Lei", "email": "li.lei@example.cn", "iat": now, "exp": now + 300,
               "realm_access": {"roles": ["rpa-operator"]}}
    payload.update(claims)
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else None)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, claims: dict, sign=lambda signing_input: b"") -> str:
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def valid_claims(**extra):
    now = int(time.time())
    return {"iss": ISSUER, "aud": AUDIENCE, "sub": "f3c1-li-lei", "preferred_username": "li.lei",
            "iat": now, "exp": now + 300, "realm_access": {"roles": ["rpa-user-admin"]}, **extra}


@pytest.fixture
def oidc_app(tmp_path, database_url):
    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(JWKS))
    app = make_app(tmp_path / "home", database_url, plugins={"auth_oidc": {**OIDC, "jwks_file": str(jwks_file)}})
    with hubdb.connection():
        ident = identity(app.hub)
        ident.set_role("operator", "runs things", ["runs.read", "runs.start"])
        ident.set_role("user-admin", "manages people", ["users.read", "users.manage"])
        ident.set_role("auditor", "reads the audit log", ["audit.read"])
    yield app
    app.hub.close()


@pytest.fixture
def client(oidc_app):
    from falcon import testing

    return testing.TestClient(oidc_app)


def me(client, token):
    return client.simulate_get("/api/v1/me", headers=bearer(token))


def audit_rows(action):
    with hubdb.connection():
        return [(r.target, json.loads(r.detail)) for r in AuditEntry.select().where(AuditEntry.action == action)
                .order_by(AuditEntry.id)]


def test_first_sign_in_provisions_a_local_user_with_mapped_roles(client):
    r = me(client, mint())
    assert r.status_code == 200, r.json
    value = r.json["resultValue"]
    assert (value["username"], value["displayName"], value["email"]) == ("li.lei", "Li Lei", "li.lei@example.cn")
    assert value["source"] == "oidc" and value["roles"] == ["operator"]
    assert {"runs.read", "runs.start"} <= set(value["permissions"]) and "users.manage" not in value["permissions"]
    assert value["mustChangePassword"] is False
    with hubdb.connection():
        user = User.get(User.username == "li.lei")
        assert user.password_hash is None  # no usable password: only the platform signs them in
        assert OidcLink.get(OidcLink.user_id == user.id).subject == "f3c1-li-lei"
    assert audit_rows("user.provisioned") == [("li.lei", {"issuer": ISSUER, "subject": "f3c1-li-lei",
                                                          "roles": ["operator"], "unknownRoles": []})]
    # The next call is the same person: no second user, nothing more to audit.
    assert me(client, mint()).json["resultValue"]["id"] == value["id"]
    with hubdb.connection():
        assert User.select().where(User.source == "oidc").count() == 1
    assert len(audit_rows("user.provisioned")) == 1
    # A password sign-in is impossible for them.
    r = client.simulate_post("/api/v1/auth/login", json={"username": "li.lei", "password": "anything-at-all"})
    assert r.status_code == 401


def test_ec_and_rsa_keys_both_verify(client):
    assert me(client, mint(key=EC_KEY, kid="ec-1", alg="ES256")).status_code == 200
    assert me(client, mint()).status_code == 200


def test_roles_follow_the_identity_platform_on_every_sign_in(client):
    assert me(client, mint()).json["resultValue"]["roles"] == ["operator"]
    token = mint(realm_access={"roles": ["rpa-user-admin", "rpa-ghost"]}, groups=["/grid/auditors"])
    value = me(client, token).json["resultValue"]
    assert value["roles"] == ["auditor", "operator", "user-admin"]
    assert "users.manage" in value["permissions"]
    target, detail = audit_rows("user.roles_synced")[-1]
    assert target == "li.lei"
    assert detail["added"] == ["auditor", "user-admin"] and detail["removed"] == []
    assert detail["unknownRoles"] == ["no-such-role"]
    # Taken away in the platform: gone from the hub at the next call.
    value = me(client, mint(realm_access={"roles": []})).json["resultValue"]
    assert value["roles"] == [] and value["permissions"] == []
    assert audit_rows("user.roles_synced")[-1][1]["removed"] == ["auditor", "operator", "user-admin"]


def test_profile_changes_in_the_platform_are_applied_and_audited(client):
    me(client, mint())
    value = me(client, mint(name="Li Lei (Grid Ops)", email="lei.li@example.cn")).json["resultValue"]
    assert (value["displayName"], value["email"]) == ("Li Lei (Grid Ops)", "lei.li@example.cn")
    assert audit_rows("user.profile_synced")[-1][1]["fields"] == ["display_name", "email"]


def test_permissions_of_mapped_roles_apply(client):
    operator = mint()
    r = client.simulate_post("/api/v1/users", headers=bearer(operator), json={"username": "wang.fang"})
    assert r.status_code == 403 and "users.manage" in r.json["resultHint"]
    admin = mint(realm_access={"roles": ["rpa-user-admin"]})
    r = client.simulate_post("/api/v1/users", headers=bearer(admin), json={"username": "wang.fang"})
    assert r.status_code == 201, r.json


def refusals():
    """(what, token, words the hint must contain)."""
    now = int(time.time())
    rsa_pem = RSA_KEY.public_key().public_bytes(serialization.Encoding.PEM,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
    return [
        ("expired", mint(iat=now - 900, exp=now - 600), "expired"),
        ("wrong audience", mint(aud="another-app"), "aud"),
        ("wrong issuer", mint(iss="https://evil.example/realms/grid"), "iss"),
        ("unknown kid", mint(key=OTHER_RSA_KEY, kid="rsa-rotated"), "unknown kid"),
        ("signed by another key", mint(key=OTHER_RSA_KEY), "signature"),
        ("tampered payload", _tampered(), "signature"),
        ("alg none", forge({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, valid_claims()), "none"),
        ("HS256 with the public key as secret",
         forge({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, valid_claims(),
               lambda data: hmac.new(rsa_pem, data, hashlib.sha256).digest()), "HS256"),
        ("not yet valid", mint(nbf=now + 900), "not valid yet"),
        ("issued in the future", mint(iat=now + 900), "not valid yet"),
        ("no expiry", mint(exp=None), "exp"),
        ("no subject", mint(sub=None), "sub"),
        ("key of the wrong type", mint(key=RSA_KEY, kid="ec-1"), "does not match"),
        ("garbage in JWT shape", "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "well-formed"),
    ]


def _tampered():
    header, payload, signature = mint().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["realm_access"]["roles"] = ["rpa-user-admin"]
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"


def test_bad_tokens_are_401_with_a_hint_and_never_a_user(client):
    for what, token, words in refusals():
        r = me(client, token)
        assert r.status_code == 401, (what, r.status_code, r.json)
        hint = r.json["resultHint"]
        assert words in hint and hint.startswith("OIDC token refused"), (what, hint)
        assert token not in hint and token.split(".")[1] not in hint, what
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        # Refused on changing calls too, and audited as denied without the token.
        r = client.simulate_post("/api/v1/users", headers=bearer(token), json={"username": "x.y"})
        assert r.status_code == 401, what
    with hubdb.connection():
        assert not User.select().where(User.source == "oidc").exists()
        denied = list(AuditEntry.select().where(AuditEntry.result == "denied"))
    assert denied and all("eyJ" not in row.detail for row in denied)


def test_a_disabled_user_stays_refused_with_a_valid_token(client):
    user_id = me(client, mint()).json["resultValue"]["id"]
    admin = mint(sub="f3c1-han-mei", preferred_username="han.mei", realm_access={"roles": ["rpa-user-admin"]})
    r = client.simulate_patch(f"/api/v1/users/{user_id}", headers=bearer(admin), json={"isActive": False})
    assert r.status_code == 200, r.json
    r = me(client, mint())
    assert r.status_code == 401 and "disabled" in r.json["resultHint"]
    # Not even a role change in the platform brings them back, and their roles stay as they were.
    r = me(client, mint(realm_access={"roles": ["rpa-user-admin"]}))
    assert r.status_code == 401
    with hubdb.connection():
        assert identity(client.app.hub).roles_of(User.get_by_id(user_id)) == ["operator"]


def test_local_tokens_work_alongside(client, admin_token):
    assert me(client, admin_token).json["resultValue"]["username"] == "admin"
    assert me(client, mint()).json["resultValue"]["username"] == "li.lei"
    r = me(client, "rpu_not-a-real-token")
    assert r.status_code == 401 and "OIDC" not in r.json["resultHint"]
    # An OIDC user may hold personal API tokens of the hub, like anyone.
    r = client.simulate_post("/api/v1/me/tokens", headers=bearer(mint()), json={"name": "ci"})
    assert r.status_code == 201
    assert me(client, r.json["resultValue"]["token"]).json["resultValue"]["username"] == "li.lei"


def test_a_platform_user_name_never_takes_over_a_local_account(client, admin_token):
    r = me(client, mint(sub="f3c1-intruder", preferred_username="admin"))
    assert r.status_code == 401 and "local account" in r.json["resultHint"]
    li = me(client, mint()).json["resultValue"]["id"]
    # Someone else in the platform later given the same user name is not li.lei either.
    r = me(client, mint(sub="f3c1-someone-else"))
    assert r.status_code == 401 and "another identity-platform account" in r.json["resultHint"]
    # The subject is who counts: li.lei renamed in the platform is still the same user.
    assert me(client, mint(preferred_username="lei.li")).json["resultValue"]["id"] == li


def test_username_falls_back_to_sub_and_must_be_usable(client):
    value = me(client, mint(sub="e1024", preferred_username=None)).json["resultValue"]
    assert value["username"] == "e1024"
    r = me(client, mint(sub="e1025", preferred_username="李 雷"))
    assert r.status_code == 401 and "preferred_username" in r.json["resultHint"]


def test_robots_never_authenticate_as_people(client, oidc_app):
    with hubdb.connection():
        Supplier.create(code="vendor-a", secret_enc=oidc_app.hub.keys.encrypt("vendor-a-secret-0123456789"))
        session = ExecutorSession(robot_id="robot-001", transport="http")
        connect_id = executors(oidc_app.hub).gateway.register(session, {
            "supplierCode": "vendor-a", "supplierSecret": proof("vendor-a-secret-0123456789", "robot-001"),
        })["robotConnectId"]
    # A platform token naming the robot is refused, however it is named.
    for claims in ({"sub": "robot-001", "preferred_username": None}, {"preferred_username": "robot-001"}):
        r = me(client, mint(**claims))
        assert r.status_code == 401 and "robot" in r.json["resultHint"], claims
    # The robot's own credentials stay robot credentials: never a person.
    for headers in ({"Authorization": f"Bearer {connect_id}"}, {"robotId": "robot-001", "robotConnectId": connect_id}):
        r = client.simulate_get("/api/v1/me", headers=headers)
        assert r.status_code == 403 and "robot" in r.json["resultHint"]
    with hubdb.connection():
        assert not User.select().where(User.username == "robot-001").exists()


def test_sign_in_page_learns_whether_oidc_is_on(client):
    r = client.simulate_get("/api/v1/auth/oidc")
    assert r.status_code == 200
    assert r.json["resultValue"] == {"enabled": True, "issuer": ISSUER, "clientId": ""}


def test_disabled_plugin_refuses_jwts_as_unknown_tokens(tmp_path, database_url):
    from falcon import testing

    jwks_file = tmp_path / "jwks.json"
    jwks_file.write_text(json.dumps(JWKS))
    app = make_app(tmp_path / "home", database_url,
                   plugins={"auth_oidc": {**OIDC, "enabled": False, "jwks_file": str(jwks_file)}})
    try:
        c = testing.TestClient(app)
        r = me(c, mint())
        assert r.status_code == 401 and "OIDC" not in r.json["resultHint"]
        assert c.simulate_get("/api/v1/auth/oidc").json["resultValue"] == {"enabled": False, "issuer": "",
                                                                         "clientId": ""}
        with hubdb.connection():
            assert not User.select().where(User.username == "li.lei").exists()
    finally:
        app.hub.close()


def test_the_plugin_is_off_unless_configured(app):
    from falcon import testing

    c = testing.TestClient(app)
    assert me(c, mint()).status_code == 401
    assert c.simulate_get("/api/v1/auth/oidc").json["resultValue"]["enabled"] is False


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize("section, words", [
    ({"algorithms": ["RS256", "HS256"]}, "plugins.auth_oidc.algorithms: HS256 is not accepted"),
    ({"algorithms": ["none"]}, "plugins.auth_oidc.algorithms: none is not accepted"),
    ({"enabled": True, "jwks_file": "k.json"}, "issuer and audience must be set"),
    ({"enabled": True, "issuer": ISSUER, "audience": "a"}, "one of jwks_file, jwks_url or jwks"),
    ({"jwks_url": "http://idp.example/certs"}, "plugins.auth_oidc.jwks_url: must be an https:// URL"),
    ({"jwks": {"kid": "x"}}, "plugins.auth_oidc.jwks"),
    ({"leeway_s": -1}, "plugins.auth_oidc.leeway_s"),
    ({"colour": "red"}, "plugins.auth_oidc.colour: unknown key"),
])
def test_configuration_mistakes_name_the_key(section, words):
    with pytest.raises(ConfigError) as err:
        oidc_settings.load(section)
    assert words in str(err.value)


def test_a_bad_section_stops_the_hub_at_start(tmp_path):
    with pytest.raises(ConfigError, match="algorithms"):
        make_app(tmp_path / "home", "", plugins={"auth_oidc": {"algorithms": ["HS256"]}})


def test_inline_key_set_and_env_style_json(tmp_path):
    s = oidc_settings.load({**OIDC, "jwks": json.dumps(JWKS)})
    assert [k["kid"] for k in s.jwks["keys"]] == ["rsa-1", "ec-1"]
    assert oidc_settings.load({"jwks_url": "http://127.0.0.1:8180/certs"}).jwks_url  # loopback may be plain


# -- the key set cache -------------------------------------------------------------


class FakePlatform:
    def __init__(self, *keys):
        self.jwks = {"keys": list(keys)}
        self.calls = 0
        self.down = False

    def __call__(self, url):
        self.calls += 1
        if self.down:
            raise OSError("connection refused")
        return json.loads(json.dumps(self.jwks))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_key_set_is_fetched_lazily_cached_and_refetched_at_most_once_a_minute():
    platform, clock = FakePlatform(public_jwk(RSA_KEY, "rsa-1")), Clock()
    keys = KeySet(url="https://idp.example/certs", ttl_s=3600, fetch=platform, clock=clock)
    assert platform.calls == 0  # nothing at construction
    assert keys.find("rsa-1")["kid"] == "rsa-1" and platform.calls == 1
    keys.find("rsa-1")
    assert platform.calls == 1  # cached
    # A made-up kid costs at most one fetch a minute.
    clock.now += 61
    assert keys.find("made-up") is None and platform.calls == 2
    for _ in range(5):
        assert keys.find("made-up-too") is None
    assert platform.calls == 2
    # The platform rotates its key: the new kid is found once the minute has passed.
    platform.jwks["keys"].append(public_jwk(EC_KEY, "ec-2"))
    clock.now += 61
    assert keys.find("ec-2")["kid"] == "ec-2" and platform.calls == 3
    # After the TTL the set is read again; while the platform is down the cache still serves.
    platform.down = True
    clock.now += 3601
    assert keys.find("rsa-1")["kid"] == "rsa-1" and platform.calls == 4
    clock.now += 30
    assert keys.find("rsa-1") is not None and platform.calls == 4  # no retry storm while it is down
    platform.down = False
    clock.now += 31
    assert keys.find("rsa-1") is not None and platform.calls == 5


def test_a_key_removed_from_the_file_stops_working_within_a_minute(tmp_path):
    import os

    path, clock = tmp_path / "jwks.json", Clock()
    path.write_text(json.dumps(JWKS))
    keys = KeySet(file=path, clock=clock)
    assert keys.find("ec-1") is not None
    path.write_text(json.dumps({"keys": [public_jwk(RSA_KEY, "rsa-1")]}))
    os.utime(path, (time.time() + 5, time.time() + 5))
    clock.now += 61
    assert keys.find("ec-1") is None and keys.find("rsa-1") is not None


def test_key_set_unavailable_without_a_cache_is_reported_and_not_hammered():
    platform, clock = FakePlatform(), Clock()
    platform.down = True
    keys = KeySet(url="https://idp.example/certs", fetch=platform, clock=clock)
    for _ in range(3):
        with pytest.raises(KeysUnavailable):
            keys.find("rsa-1")
    assert platform.calls == 1
    platform.down = False
    platform.jwks["keys"].append(public_jwk(RSA_KEY, "rsa-1"))
    clock.now += 6
    assert keys.find("rsa-1") is not None


def test_symmetric_and_encryption_keys_are_never_used():
    keys = KeySet(inline={"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"},
                                   {**public_jwk(RSA_KEY, "enc"), "use": "enc"}]})
    assert keys.find("hs") is None and keys.find("enc") is None


def test_unreadable_platform_keys_are_a_503_not_a_500(tmp_path, database_url):
    from falcon import testing

    app = make_app(tmp_path / "home", database_url,
                   plugins={"auth_oidc": {**OIDC, "jwks_file": str(tmp_path / "missing.json")}})
    try:
        c = testing.TestClient(app)
        r = me(c, mint())
        assert r.status_code == 503 and "retry later" in r.json["resultHint"]
        # Public calls (the sign-in page, password sign-in) are not held up by it.
        assert c.simulate_get("/api/v1/auth/oidc", headers=bearer(mint())).status_code == 200
    finally:
        app.hub.close()


def test_a_local_account_is_linked_only_when_allowed(client, oidc_app, admin_token, monkeypatch):
    from rpahub_plugins.auth_oidc import oidc

    r = client.simulate_post("/api/v1/users", headers=bearer(admin_token), json={"username": "zhang.wei"})
    local_id = r.json["resultValue"]["id"]
    token = mint(sub="f3c1-zhang-wei", preferred_username="zhang.wei")
    assert me(client, token).status_code == 401
    monkeypatch.setattr(oidc(oidc_app.hub).settings, "link_local_users", True)
    value = me(client, token).json["resultValue"]
    assert (value["id"], value["source"], value["roles"]) == (local_id, "local", ["operator"])
    assert audit_rows("user.linked") == [("zhang.wei", {"issuer": ISSUER, "subject": "f3c1-zhang-wei",
                                                        "previousSource": "local"})]


def test_required_claim_values():
    from rpahub_core.errors import Unauthorized
    from rpahub_plugins.auth_oidc.tokens import Verifier

    s = oidc_settings.load({**OIDC, "jwks": JWKS, "claim_values": {"azp": ["rpahub-console", "rpahub-cli"]}})
    verifier = Verifier(s, KeySet(inline=s.jwks))
    assert verifier.verify(mint(azp="rpahub-cli"))["azp"] == "rpahub-cli"
    for token, words in ((mint(), "lacks the azp claim"), (mint(azp="account"), "azp claim does not have")):
        with pytest.raises(Unauthorized, match=words):
            verifier.verify(token)
