import os
import uuid
from urllib.parse import quote

import pytest

from rpahub_core import db as hubdb
from rpahub_core.testing import ADMIN_PASSWORD, make_app

PG_URL = os.environ.get("RPAHUB_TEST_POSTGRES", "")


def pytest_configure(config):
    config.addinivalue_line("markers", "postgres: runs against PostgreSQL (RPAHUB_TEST_POSTGRES)")
    config.addinivalue_line("markers", "e2e: starts the real server")


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards."""
    if not PG_URL:
        pytest.skip("RPAHUB_TEST_POSTGRES is not set")
    import psycopg

    schema = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote('-csearch_path=' + schema)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'hub.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def app(tmp_path, database_url):
    app = make_app(tmp_path / "home", database_url)
    yield app
    app.hub.close()


@pytest.fixture
def client(app):
    from falcon import testing

    return testing.TestClient(app)


@pytest.fixture
def admin_token(app, client):
    """Sign in as the first administrator and set a permanent password."""
    from rpahub_plugins.auth_local.models import User
    from rpahub_plugins.auth_local.passwords import hash_password

    with hubdb.connection():
        User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).where(
            User.username == "admin").execute()
    r = client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.json
    return r.json["resultValue"]["token"]


# -- the real server, shared by the protocol tests of one module ----------------------

SUPPLIER_SECRET = "vendor-secret-0123456789abcdef"


class Fleet:
    """A running hub with an administrator and an admitted supplier."""

    def __init__(self, hub, token):
        self.hub, self.token = hub, token
        self.call("POST", "/api/v1/suppliers", {"code": "vendor-a", "secret": SUPPLIER_SECRET})

    def call(self, method, path, body=None, **kw):
        status, answer = self.hub.call(method, path, body, token=self.token, **kw)
        return status, answer

    def secret(self, robot_id, secret=SUPPLIER_SECRET):
        from rpahub_adapters.tces130 import proof

        return proof(secret, robot_id)

    def upload_package(self, name, files: dict[str, str], version="1.0"):
        import io
        import zipfile

        import requests

        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for path, text in files.items():
                zf.writestr(path, text)
        r = requests.post(self.hub.url + "/api/v1/packages", headers={"Authorization": f"Bearer {self.token}"},
                          data={"name": name, "version": version},
                          files={"file": (f"{name}.zip", buf.getvalue(), "application/zip")}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["resultValue"]

    def run_on(self, package_id, robot_id, **extra):
        status, body = self.call("POST", "/api/v1/runs", {"packageId": package_id, "executorId": robot_id, **extra})
        assert status == 201, body
        return body["resultValue"]

    def run(self, run_id):
        return self.call("GET", f"/api/v1/runs/{run_id}")[1]["resultValue"]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    from rpahub_core.testing import LiveHub

    hub = LiveHub(tmp_path_factory.mktemp("hub"), env={"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "2"})
    hub.start()
    try:
        yield Fleet(hub, hub.admin_token())
    finally:
        hub.stop()


@pytest.fixture
def person(client, admin_token):
    """``person("li.qiang", "apps.use", ...)``: a signed-in person holding exactly these
    permissions (through a role of their own), made the way an administrator would."""
    from rpahub_core.testing import bearer

    def make(username, *permissions):
        r = client.simulate_post("/api/v1/roles", headers=bearer(admin_token),
                                 json={"name": f"r-{username}", "permissions": list(permissions)})
        assert r.status_code == 201, r.json
        r = client.simulate_post("/api/v1/users", headers=bearer(admin_token),
                                 json={"username": username, "roles": [f"r-{username}"]})
        assert r.status_code == 201, r.json
        one_time = r.json["resultValue"]["oneTimePassword"]
        token = client.simulate_post("/api/v1/auth/login", json={"username": username, "password": one_time}
                                     ).json["resultValue"]["token"]
        r = client.simulate_post("/api/v1/me/password", headers=bearer(token),
                                 json={"currentPassword": one_time, "newPassword": "Zq-7-unguessable-Passw0rd!"})
        assert r.status_code == 200, r.json
        return token

    return make


# -- the console ----------------------------------------------------------------------


@pytest.fixture
def console(app, client):
    """``console(token)``: the console in-process as that person (``None``: signed out)."""
    from console_support import ConsoleClient

    def make(token=None, language=None):
        return ConsoleClient(client, app, token, language)

    return make


@pytest.fixture(scope="session")
def browser():
    """The machine's Chromium, headless, driven by Playwright."""
    from console_support import CHROMIUM, CHROMIUM_ARGS, chromium_or_skip

    sync_playwright = chromium_or_skip()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()
