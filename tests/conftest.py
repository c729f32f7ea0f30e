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
