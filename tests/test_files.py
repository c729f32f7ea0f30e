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


# -- flow packages: what manifest.json may say (docs/protocol.md 6.8) -------------------


def upload_package(client, headers, files: dict[str, str | bytes], name="pkg", version="1.0"):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for path, content in files.items():
            zf.writestr(path, content)
    boundary = "rpahubBOUNDARY"
    parts = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                     for k, v in (("name", name), ("version", version)))
    body = parts + (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}.zip\"\r\n"
                    f"Content-Type: application/zip\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return client.simulate_post("/api/v1/packages", body=body,
                                headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})


@pytest.mark.parametrize("files, kind, entry", [
    ({"main.py": "print(1)"}, "python", "main.py"),
    ({"manifest.json": '{"kind": "python", "entry": "flows/run.py"}', "flows/run.py": "print(1)",
      "extra.robot": "*** Tasks ***"}, "python", "flows/run.py"),
    ({"manifest.json": '{"entry": "flows/run.py"}', "flows/run.py": "print(1)"}, "python", "flows/run.py"),
    ({"manifest.json": '{"kind": "robot"}', "tasks/b.robot": "*** Tasks ***", "tasks/a.robot": "*** Tasks ***"},
     "robot", "tasks/a.robot"),
    ({"manifest.json": '{"kind": "robot", "entry": "suites"}', "suites/a.robot": "*** Tasks ***"}, "robot", "suites"),
    ({"manifest.json": '{"kind": "robot", "entry": "t/one.robot"}', "t/one.robot": "*** Tasks ***"},
     "robot", "t/one.robot"),
])
def test_a_package_is_classified_by_its_manifest_or_its_files(admin, files, kind, entry):
    _, client, headers = admin
    r = upload_package(client, headers, files)
    assert r.status_code == 201, r.json
    assert (r.json["resultValue"]["kind"], r.json["resultValue"]["entry"]) == (kind, entry)


@pytest.mark.parametrize("manifest, hint", [
    ("{not json", "manifest.json is not valid JSON"),
    ("[" * 100_000, "manifest.json is not valid JSON"),  # nesting deeper than the parser recurses
    (b"\xff\xfe{}", "manifest.json is not valid JSON"),
    ('["main.py"]', "manifest.json must be an object"),
    ('"main.py"', "manifest.json must be an object"),
    ("null", "manifest.json must be an object"),
    ('{"entry": 5}', 'manifest.json "entry" must be a string'),
    ('{"entry": ["main.py"]}', 'manifest.json "entry" must be a string'),
    ('{"kind": 1, "entry": "main.py"}', 'manifest.json "kind" must be "robot" or "python"'),
    ('{"kind": ["robot"]}', 'manifest.json "kind" must be "robot" or "python"'),
    ('{"kind": "java", "entry": "main.py"}', 'manifest.json "kind" must be "robot" or "python"'),
    ('{"entry": "../main.py"}', 'manifest.json "entry" escapes the package folder'),
    ('{"entry": "missing.py"}', "manifest.json naming its entry"),
    ('{"kind": "robot"}', "manifest.json says \"kind\": \"robot\" but the package has no .robot suite"),
    ('{"kind": "robot", "entry": "nowhere.robot"}', "manifest.json \"entry\" 'nowhere.robot' is not in"),
])
def test_a_bad_manifest_is_a_400_naming_manifest_json(admin, manifest, hint):
    _, client, headers = admin
    r = upload_package(client, headers, {"manifest.json": manifest, "main.py": "print(1)"})
    assert r.status_code == 400, r.json
    assert r.json["successful"] is False and hint in r.json["resultHint"], r.json
    assert client.simulate_get("/api/v1/packages", headers=headers).json["resultValue"]["items"] == []


def test_a_damaged_zip_is_a_400(admin):
    _, client, headers = admin
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", '{"entry": "main.py"}' * 50)
        zf.writestr("main.py", "print(1)")
    data = bytearray(buf.getvalue())
    data[40:60] = b"\x00" * 20  # inside manifest.json's compressed bytes
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbroken\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n1\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.zip\"\r\n\r\n").encode()
    r = client.simulate_post("/api/v1/packages", body=body + bytes(data) + f"\r\n--{boundary}--\r\n".encode(),
                             headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400 and "manifest.json" in r.json["resultHint"], r.json
    r = client.simulate_post("/api/v1/packages", body=body + b"not a zip" + f"\r\n--{boundary}--\r\n".encode(),
                             headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 400 and "zip archive" in r.json["resultHint"], r.json
