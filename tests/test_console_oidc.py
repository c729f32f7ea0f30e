"""Signing in to the console at the identity platform (6.3.2a): authorization code with
PKCE, a public client; the platform's access token becomes the console session."""

import base64
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from console_support import Page
from cryptography.hazmat.primitives.asymmetric import rsa
from falcon import testing
from jwt.algorithms import RSAAlgorithm

from rpahub_core import db as hubdb
from rpahub_core.config import ConfigError
from rpahub_core.testing import make_app
from rpahub_plugins.auth_local import identity
from rpahub_plugins.auth_oidc import settings as oidc_settings

ISSUER = "https://idp.example.sgcc.com.cn/realms/grid"
AUDIENCE = "rpahub"
CLIENT_ID = "rpahub-console"
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
JWKS = {"keys": [{**RSAAlgorithm.to_jwk(RSA_KEY.public_key(), as_dict=True), "kid": "rsa-1", "use": "sig"}]}
CALLBACK = "http://falconframework.org/console/signin/oidc/callback"  # the TestClient's host
LANGUAGES = ("zh-CN", "en")


def mint(**claims):
    now = int(time.time())
    payload = {"iss": ISSUER, "aud": AUDIENCE, "sub": "f3c1-li-lei", "preferred_username": "li.lei",
               "name": "Li Lei", "iat": now, "exp": now + 300, "realm_access": {"roles": ["rpa-operator"]}, **claims}
    return jwt.encode(payload, RSA_KEY, algorithm="RS256", headers={"kid": "rsa-1"})


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class Platform:
    """A tiny identity platform: /authorize remembers the request and hands out a code;
    /token checks code, redirect_uri, client and PKCE verifier before answering tokens."""

    def __init__(self):
        self.grants: dict[str, dict] = {}
        self.exchanges: list[dict] = []
        self.id_token_nonce: str | None = None  # set: answer an ID token with this nonce instead
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                        .items()}
                platform.exchanges.append({"form": form, "type": self.headers["Content-Type"]})
                status, body = platform.token(form)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def authorize(self, location: str, **claims) -> dict:
        """The person signs in at the platform: the callback query it sends the browser back with."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == self.url + "/authorize"
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        code = f"code-{len(self.grants)}"
        self.grants[code] = {"query": query, "claims": claims}
        return {"code": code, "state": query["state"]}

    def token(self, form: dict) -> tuple[int, dict]:
        grant = self.grants.pop(form.get("code", ""), None)  # a code works once
        if form.get("grant_type") != "authorization_code" or grant is None:
            return 400, {"error": "invalid_grant", "error_description": "Code not valid"}
        query = grant["query"]
        if form.get("redirect_uri") != query["redirect_uri"] or form.get("client_id") != query["client_id"]:
            return 400, {"error": "invalid_grant", "error_description": "Incorrect redirect_uri"}
        if query["code_challenge_method"] != "S256" or s256(form.get("code_verifier", "")) != query["code_challenge"]:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed"}
        nonce = self.id_token_nonce or query["nonce"]
        id_token = jwt.encode({"iss": ISSUER, "aud": CLIENT_ID, "sub": "f3c1-li-lei", "nonce": nonce,
                               "iat": int(time.time()), "exp": int(time.time()) + 300}, RSA_KEY, algorithm="RS256")
        return 200, {"access_token": mint(**grant["claims"]), "token_type": "Bearer", "expires_in": 300,
                     "id_token": id_token}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def platform():
    p = Platform()
    yield p
    p.close()


def oidc_section(platform_url, **extra):
    return {"enabled": True, "issuer": ISSUER, "audience": AUDIENCE, "jwks": JWKS, "client_id": CLIENT_ID,
            "authorization_endpoint": platform_url + "/authorize", "token_endpoint": platform_url + "/token",
            "role_map": {"rpa-operator": "operator"}, **extra}


def build(tmp_path, database_url, section):
    app = make_app(tmp_path / "home", database_url, plugins={"auth_oidc": section})
    with hubdb.connection():
        identity(app.hub).set_role("operator", "runs things", ["runs.read", "runs.start"])
    app.hub.state["console"].strict_i18n = True  # a string missing from a catalogue shows as ⟦it⟧
    return app


@pytest.fixture
def oidc_app(tmp_path, database_url, platform):
    app = build(tmp_path, database_url, oidc_section(platform.url))
    yield app
    app.hub.close()


@pytest.fixture
def web(oidc_app):
    return testing.TestClient(oidc_app)


class Browser:
    """Cookies kept across requests, like a browser on the hub's host."""

    def __init__(self, web, language="zh-CN"):
        self.web = web
        self.cookies = {"rpahub_lang": language}
        self.set: dict = {}

    def get(self, path, **params) -> Page:
        r = self.web.simulate_get(path, params=params or None, cookies=self.cookies)
        for name, cookie in r.cookies.items():
            self.set[name] = cookie
            if cookie.value and (cookie.max_age is None or cookie.max_age > 0):
                self.cookies[name] = cookie.value
            else:
                self.cookies.pop(name, None)
        return Page(r)

    def start(self, **params) -> Page:
        page = self.get("/console/signin/oidc", **params)
        assert page.status == 303, page.text
        return page


def test_the_full_flow_signs_the_person_in(web, platform):
    browser = Browser(web)
    page = browser.start(next="/console/me")
    flow = browser.set["rpahub_oidc"]
    assert flow.http_only and flow.same_site.lower() == "lax" and flow.path == "/console/signin/oidc"
    assert 0 < flow.max_age <= 600
    query = parse_qs(urlsplit(page.location).query)
    assert {k: v[0] for k, v in query.items() if k in ("response_type", "client_id", "redirect_uri", "scope",
                                                         "code_challenge_method")} == {
        "response_type": "code", "client_id": CLIENT_ID, "redirect_uri": CALLBACK, "scope": "openid profile",
        "code_challenge_method": "S256"}
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32 and len(query["code_challenge"][0]) == 43
    assert query["code_challenge"][0] not in flow.value  # the verifier travels, never what the platform saw

    back = browser.get("/console/signin/oidc/callback", **platform.authorize(page.location))
    assert back.status == 200, back.text
    exchange = platform.exchanges[-1]
    assert exchange["type"] == "application/x-www-form-urlencoded" and "client_secret" not in exchange["form"]
    assert not back.untranslated()
    assert 'http-equiv="refresh" content="0; url=/console/me"' in back.text and "Li Lei" in back.text
    session = browser.set["rpahub_session"]
    assert session.http_only and session.same_site.lower() == "strict" and session.path == "/"
    assert "rpahub_oidc" not in browser.cookies  # the flow is spent

    home = browser.get("/console")
    assert home.status == 200 and "Li Lei" in home.text and not home.untranslated()
    me = web.simulate_get("/api/v1/me", headers={"Authorization": f"Bearer {browser.cookies['rpahub_session']}"})
    assert me.json["resultValue"]["source"] == "oidc" and me.json["resultValue"]["roles"] == ["operator"]
    # The sign-in is in the audit log, named; the endpoint recording it takes platform tokens only.
    from rpahub_core import db as hubdb
    from rpahub_plugins.audit_log.models import AuditEntry

    with hubdb.connection():
        [entry] = AuditEntry.select().where(AuditEntry.action == "auth.oidc_signin")
        assert (entry.actor_name, entry.target, entry.result) == ("li.lei", "li.lei", "ok")
    # Signing out ends the console session.
    token = browser.cookies["rpahub_session"]
    out = web.simulate_post("/console/signout", cookies=browser.cookies,
                            body=f"csrf={web.app.hub.state['console'].sign('csrf', token)}",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert out.status_code == 303 and out.cookies["rpahub_session"].value == ""
    # A code works once: replayed into another sign-in, the platform refuses it.
    other = Browser(web)
    state = parse_qs(urlsplit(other.start().location).query)["state"][0]
    replay = other.get("/console/signin/oidc/callback", code="code-0", state=state)
    assert replay.status == 400 and "invalid_grant" in replay.text and "rpahub_session" not in other.cookies


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_forged_missing_or_foreign_state_is_refused(web, platform, language):
    browser = Browser(web, language)
    answer = platform.authorize(browser.start().location)
    forged = browser.get("/console/signin/oidc/callback", code=answer["code"], state="x" * 43)
    assert forged.status == 400 and not forged.untranslated()
    assert ("could not be confirmed" if language == "en" else "无法确认本次登录") in forged.text
    assert "rpahub_session" not in browser.cookies and not platform.exchanges
    # The flow is spent by the refusal: the right state afterwards does not help either.
    assert browser.get("/console/signin/oidc/callback", **answer).status == 400
    # No flow cookie at all (another browser).
    assert Browser(web, language).get("/console/signin/oidc/callback", **answer).status == 400
    # A flow cookie whose signature does not match, or whose content was changed.
    answer = platform.authorize(browser.start().location)
    browser.cookies["rpahub_oidc"] = browser.cookies["rpahub_oidc"][:-4] + "0000"
    assert browser.get("/console/signin/oidc/callback", **answer).status == 400
    answer = platform.authorize(browser.start().location)
    payload, _, mac = browser.cookies["rpahub_oidc"].rpartition(".")
    flow = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    changed = base64.urlsafe_b64encode(json.dumps({**flow, "x": "/console/me"}).encode()).decode().rstrip("=")
    browser.cookies["rpahub_oidc"] = f"{changed}.{mac}"
    assert browser.get("/console/signin/oidc/callback", **answer).status == 400
    assert "rpahub_session" not in browser.cookies and not platform.exchanges


def test_an_expired_flow_is_refused(web, platform, monkeypatch):
    from rpahub_plugins.console.pages import oidc as pages_oidc

    browser = Browser(web, "en")
    answer = platform.authorize(browser.start().location)
    later = time.time() + 601
    monkeypatch.setattr(pages_oidc.time, "time", lambda: later)
    page = browser.get("/console/signin/oidc/callback", **answer)
    assert page.status == 400 and "10 minutes" in page.text and not page.untranslated()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_platform_refusing_the_person_shows_why(web, platform, language):
    browser = Browser(web, language)
    state = parse_qs(urlsplit(browser.start().location).query)["state"][0]
    page = browser.get("/console/signin/oidc/callback", error="access_denied", state=state,
                       error_description="<script>alert(1)</script>")
    assert page.status == 403 and not page.untranslated()
    assert ("you declined" if language == "en" else "您拒绝了授权") in page.text
    assert "<script>alert" not in page.text and "alert(1)" not in page.text  # its description is not repeated
    assert "/console/signin/oidc" in page.text  # start again
    state = parse_qs(urlsplit(browser.start().location).query)["state"][0]
    other = browser.get("/console/signin/oidc/callback", error="temporarily_unavailable", state=state)
    assert other.status == 400 and "temporarily_unavailable" in other.text and not other.untranslated()
    assert "rpahub_session" not in browser.cookies and not platform.exchanges


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_an_unreachable_token_endpoint_is_a_502_page(tmp_path, database_url, platform, language):
    section = oidc_section(platform.url, token_endpoint=f"http://127.0.0.1:{unused_port()}/token")
    app = build(tmp_path, database_url, section)
    try:
        browser = Browser(testing.TestClient(app), language)
        page = browser.get("/console/signin/oidc/callback", **platform.authorize(browser.start().location))
        assert page.status == 502 and not page.untranslated()
        assert ("cannot be reached" if language == "en" else "暂时无法连接统一身份认证平台") in page.text
        assert "rpahub_session" not in browser.cookies
    finally:
        app.hub.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_code_the_platform_refuses_or_a_token_the_hub_refuses_signs_no_one_in(web, platform, language):
    browser = Browser(web, language)
    answer = platform.authorize(browser.start().location)
    page = browser.get("/console/signin/oidc/callback", code="code-unknown", state=answer["state"])
    assert page.status == 400 and "invalid_grant" in page.text and not page.untranslated()
    # A token for another audience: the platform answered, the hub does not accept it.
    page = browser.get("/console/signin/oidc/callback", **platform.authorize(browser.start().location, aud="other"))
    assert page.status == 403 and "aud must name rpahub" in page.text and not page.untranslated()
    # An ID token minted for another sign-in (its nonce differs).
    platform.id_token_nonce = "someone-elses-nonce"
    page = browser.get("/console/signin/oidc/callback", **platform.authorize(browser.start().location))
    assert page.status == 400 and not page.untranslated()
    assert "rpahub_session" not in browser.cookies


def test_next_off_the_console_is_ignored(web, platform):
    for target in ("https://evil.example/", "//evil.example/console", "/api/v1/me", "/console\\@evil"):
        browser = Browser(web)
        page = browser.get("/console/signin/oidc/callback",
                           **platform.authorize(browser.start(next=target).location))
        assert page.status == 200, target
        assert 'url=/console">' in page.text and "evil" not in page.text, target


def test_the_sign_in_page_offers_the_platform_when_configured(web, platform):
    for language in LANGUAGES:
        offered = Browser(web, language).get("/console/signin", next="/console/runs")
        assert offered.status == 200 and not offered.untranslated()
        assert "/console/signin/oidc?next=%2Fconsole%2Fruns" in offered.text
    info = web.simulate_get("/api/v1/auth/oidc").json["resultValue"]
    assert info == {"enabled": True, "issuer": ISSUER, "clientId": CLIENT_ID, "signIn": True,
                    "authorizationEndpoint": platform.url + "/authorize", "tokenEndpoint": platform.url + "/token",
                    "scopes": ["openid", "profile"]}


def test_without_the_platform_the_sign_in_page_offers_only_hub_accounts(client):
    for language in LANGUAGES:
        plain = Browser(client, language).get("/console/signin")
        assert plain.status == 200 and "/console/signin/oidc" not in plain.text and not plain.untranslated()
        missing = Browser(client, language).get("/console/signin/oidc")
        assert missing.status == 404 and not missing.untranslated()
        assert ("not set up" if language == "en" else "尚未配置") in missing.text
    assert "signIn" not in client.simulate_get("/api/v1/auth/oidc").json["resultValue"]


def test_verifying_tokens_only_offers_no_console_sign_in(tmp_path, database_url, platform):
    app = build(tmp_path, database_url, {**oidc_section(platform.url), "authorization_endpoint": "",
                                         "token_endpoint": ""})
    try:
        web = testing.TestClient(app)
        assert web.simulate_get("/api/v1/auth/oidc").json["resultValue"] == {
            "enabled": True, "issuer": ISSUER, "clientId": CLIENT_ID}
        page = Browser(web).get("/console/signin/oidc")
        assert page.status == 404 and not page.untranslated()
    finally:
        app.hub.close()


def test_already_signed_in_goes_straight_on(web, platform):
    browser = Browser(web)
    browser.get("/console/signin/oidc/callback", **platform.authorize(browser.start().location))
    page = browser.get("/console/signin/oidc", next="/console/me")
    assert page.status == 303 and page.location == "/console/me"


@pytest.mark.parametrize("section, words", [
    ({"token_endpoint": "http://idp.example/token"}, "plugins.auth_oidc.token_endpoint: must be an https:// URL"),
    ({"authorization_endpoint": "ftp://idp.example/auth"}, "plugins.auth_oidc.authorization_endpoint: must be an"),
    ({"authorization_endpoint": "https://idp.example/auth#x"}, "must not have a #fragment"),
    ({"scopes": ["openid", "a b"]}, "plugins.auth_oidc.scopes: 'a b' is not a scope name"),
    ({**oidc_section("https://idp.example"), "token_endpoint": ""}, "token_endpoint must be set too"),
    ({**oidc_section("https://idp.example"), "client_id": ""}, "client_id must be set too"),
])
def test_sign_in_settings_are_checked(section, words):
    with pytest.raises(ConfigError, match=words):
        oidc_settings.load(section)


def test_sign_in_settings_accept_loopback_and_one_scope():
    s = oidc_settings.load({"token_endpoint": "http://127.0.0.1:8180/token", "scopes": "openid"})
    assert s.token_endpoint and s.scopes == ["openid"] and s.sign_in is False


def test_recording_a_platform_sign_in_refuses_a_hub_token(web, admin_token):
    r = web.simulate_post("/api/v1/auth/oidc/signin", headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 400 and "identity platform" in r.json["resultHint"]
