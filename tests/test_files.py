"""Uploads (A.2.7): size limit, generated storage names, content addressing, Range reads."""

import hashlib

import pytest
from falcon import testing

from rpahub_core import db as hubdb
from rpahub_core.testing import ADMIN_PASSWORD, bearer, make_app
from rpahub_plugins.auth_local.models import User
from rpahub_plugins.auth_local.passwords import hash_password


@pytest.fixture
def admin(tmp_path):
    app = make_app(tmp_path / "home", "", plugins={"executors": {"max_upload_mb": 1}})
    with hubdb.connection():
        User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).execute()
    client = testing.TestClient(app)
    token = client.simulate_post("/api/v1/auth/login",
                                 json={"username": "admin", "password": ADMIN_PASSWORD}).json["resultValue"]["token"]
    yield app, client, bearer(token)
    app.hub.close()


def upload(client, headers, data, name="a.txt", source="demand"):
    boundary = "rpahubBOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: text/plain\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return client.simulate_post(f"/v1/file/{source}/upload", body=body,
                                headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})


def test_files_are_stored_once_under_their_hash_with_a_clean_name(admin):
    app, client, headers = admin
    first = upload(client, headers, b"same bytes", name="../../etc/passwd")
    second = upload(client, headers, b"same bytes", name="report.txt")
    assert first.status_code == second.status_code == 200, first.json
    a, b = first.json["resultValue"], second.json["resultValue"]
    assert a["fileName"] == "passwd" and b["fileName"] == "report.txt" and a["fileId"] != b["fileId"]
    digest = hashlib.sha256(b"same bytes").hexdigest()
    stored = [p for p in (app.hub.settings.home / "files").rglob("*") if p.is_file()]
    assert [p.name for p in stored] == [digest]


def test_the_size_limit_is_a_413_and_nothing_is_kept(admin):
    app, client, headers = admin
    r = upload(client, headers, b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413 and "larger than" in r.json["resultHint"]
    assert not [p for p in (app.hub.settings.home / "files").rglob("*") if p.is_file()]


def test_unknown_source_and_missing_file_are_400(admin):
    _, client, headers = admin
    assert upload(client, headers, b"x", source="video").status_code == 400
    r = client.simulate_post("/v1/file/file/upload", body=b"--b--\r\n",
                             headers={**headers, "Content-Type": "multipart/form-data; boundary=b"})
    assert r.status_code == 400


def test_range_requests_let_a_player_seek(admin):
    _, client, headers = admin
    file_id = upload(client, headers, bytes(range(100))).json["resultValue"]["fileId"]
    r = client.simulate_get(f"/api/v1/files/{file_id}/content", headers={**headers, "Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == bytes(range(10, 20))
    assert r.headers["Content-Range"] == "bytes 10-19/100"
    r = client.simulate_get(f"/api/v1/files/{file_id}/content", headers={**headers, "Range": "bytes=-5"})
    assert r.status_code == 206 and r.content == bytes(range(95, 100))
    r = client.simulate_get(f"/api/v1/files/{file_id}/content", headers={**headers, "Range": "bytes=200-"})
    assert r.status_code == 416
    assert client.simulate_get(f"/api/v1/files/{file_id}/content", headers=headers).content == bytes(range(100))
