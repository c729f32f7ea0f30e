"""The real server (gunicorn + gevent-websocket worker) on a loopback port."""

import sqlite3

import pytest

from rpahub_core.testing import LiveHub, bearer

pytestmark = pytest.mark.e2e


def test_serve_in_an_empty_folder_initialises_itself(tmp_path):
    with LiveHub(tmp_path) as hub:
        status, body = hub.call("GET", "/healthz")
        assert status == 200 and body["resultValue"]["status"] == "ok"
        assert hub.admin_password, "the first administrator's one-time password is printed"
        assert (tmp_path / "var" / "rpahub.db").exists()
        keys = tmp_path / "var" / "keys"
        for name in ("secrets.fernet", "licence_ed25519.pem"):
            assert (keys / name).stat().st_mode & 0o777 == 0o600
        assert hub.admin_password not in (tmp_path / "var" / "rpahub.db").read_bytes().decode("latin-1")
        assert "Using worker: geventwebsocket.gunicorn.workers.GeventWebSocketWorker" in hub.log()
        token = hub.admin_token()
        assert hub.call("GET", "/api/v1/me", token=token)[1]["resultValue"]["username"] == "admin"
    # A second start finds everything in place and prints no new password.
    with LiveHub(tmp_path) as again:
        assert "one-time password" not in again.log()
        assert again.call("GET", "/api/v1/me", token=again.admin_token())[0] == 200


def test_acknowledged_writes_survive_kill_minus_9(tmp_path):
    hub = LiveHub(tmp_path).start()
    try:
        token = hub.admin_token()
        created = []
        for i in range(20):
            status, body = hub.call("POST", "/api/v1/users", {"username": f"durable{i}", "password": "Durable-pass-123"},
                                    token=token)
            assert status == 201, body
            created.append(body["resultValue"]["id"])
        hub.kill()  # no shutdown, no checkpoint: SIGKILL to master and worker
    finally:
        hub.kill()
    with LiveHub(tmp_path) as restarted:
        token = restarted.admin_token()
        status, body = restarted.call("GET", "/api/v1/users?q=durable&pageSize=50", token=token)
        assert status == 200
        assert sorted(u["id"] for u in body["resultValue"]["items"]) == sorted(created)
        status, body = restarted.call("GET", "/api/v1/audit?action=user.create&pageSize=50", token=token)
        assert {i["target"] for i in body["resultValue"]["items"]} >= {f"durable{i}" for i in range(20)}
    # And the file itself holds them, read by plain sqlite3.
    con = sqlite3.connect(tmp_path / "var" / "rpahub.db")
    assert con.execute("SELECT count(*) FROM user WHERE username LIKE 'durable%'").fetchone()[0] == 20


def test_metrics_and_openapi_on_the_real_server(tmp_path):
    with LiveHub(tmp_path) as hub:
        hub.call("GET", "/api/v1/users")
        import urllib.request

        text = urllib.request.urlopen(hub.url + "/metrics", timeout=5).read().decode()
        assert 'rpahub_http_requests_total{method="GET",route="/api/v1/users",status="4xx"} 1.0' in text
        status, doc = hub.call("GET", "/api/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.")
        assert bearer("x") == {"Authorization": "Bearer x"}
