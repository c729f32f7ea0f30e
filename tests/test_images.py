"""Executor and designer images (6.2.2b): immutable versions of uploaded image files,
instances started and recycled by cloud providers (``rpahub_cloud_providers``), VM
information, and the built-in ``local`` provider starting real processes."""

import hashlib
import json
import os
import time
from pathlib import Path

import pytest
from falcon import testing
from test_designers import person
from urllib3 import encode_multipart_formdata

from rpahub_core import hookimpl
from rpahub_core.testing import LiveHub, make_app, wait_for
from rpahub_core.testing import bearer as auth


def create(client, token, name="win-exec", kind="executor", **extra):
    r = client.simulate_post("/api/v1/images", headers=auth(token), json={"name": name, "kind": kind, **extra})
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def upload(client, token, image_id, version, data=b"disk image bytes", spec=None, notes="", **more):
    fields = {"version": version, "notes": notes, **more}
    if spec is not None:
        fields["spec"] = spec if isinstance(spec, str) else json.dumps(spec)
    if data is not None:
        fields["file"] = ("disk.qcow2", data, "application/octet-stream")
    body, content_type = encode_multipart_formdata(fields)
    return client.simulate_post(f"/api/v1/images/{image_id}/versions", headers={**auth(token),
                                "Content-Type": content_type}, body=body)


def test_versions_are_immutable_listed_newest_first_and_downloadable(client, admin_token):
    image = create(client, admin_token, description="Windows executor")
    assert (image["provider"], image["latestVersion"]) == ("local", None)
    r = upload(client, admin_token, image["id"], "1.0", spec={"labels": ["finance"], "slots": 2}, notes="first")
    assert r.status_code == 201, r.json
    v1 = r.json["resultValue"]
    assert v1["sha256"] == hashlib.sha256(b"disk image bytes").hexdigest() and v1["size"] == 16
    assert v1["spec"] == {"labels": ["finance"], "slots": 2, "transport": "ws"}  # defaults filled in
    assert upload(client, admin_token, image["id"], "1.1", data=b"patched", spec={"slots": 4}).status_code == 201

    r = upload(client, admin_token, image["id"], "1.0", data=b"something else")
    assert r.status_code == 409 and "1.0 exists" in r.json["resultHint"]
    r = client.simulate_get(f"/api/v1/images/{image['id']}/versions/1.0/file", headers=auth(admin_token))
    assert r.status_code == 200 and r.content == b"disk image bytes"  # unchanged by the refused upload
    assert r.headers["X-Content-SHA256"] == v1["sha256"]

    listed = client.simulate_get(f"/api/v1/images/{image['id']}/versions", headers=auth(admin_token)).json
    assert [v["version"] for v in listed["resultValue"]["items"]] == ["1.1", "1.0"]
    assert client.simulate_get(f"/api/v1/images/{image['id']}", headers=auth(admin_token)
                               ).json["resultValue"]["latestVersion"] == "1.1"
    one = client.simulate_get(f"/api/v1/images/{image['id']}/versions/1.0", headers=auth(admin_token)).json
    assert one["resultValue"]["notes"] == "first"
    assert client.simulate_get(f"/api/v1/images/{image['id']}/versions/9.9",
                               headers=auth(admin_token)).status_code == 404
    # Versions cannot be changed in place: there is no such method.
    assert client.simulate_put(f"/api/v1/images/{image['id']}/versions/1.0", headers=auth(admin_token),
                               json={}).status_code == 405

    diff = client.simulate_get(f"/api/v1/images/{image['id']}/diff", params={"base": "1.0", "other": "1.1"},
                               headers=auth(admin_token)).json["resultValue"]
    assert diff["fileChanged"] is True
    assert diff["spec"] == [{"field": "labels", "from": ["finance"], "to": []},
                            {"field": "slots", "from": 2, "to": 4}]


def test_bad_input_names_the_field(client, admin_token):
    image = create(client, admin_token)
    designer = create(client, admin_token, "studio", kind="designer")
    for kwargs, field in (({"version": "bad version"}, "version"), ({"version": ""}, "version"),
                          ({"spec": {"colour": "red"}}, "spec.colour"), ({"spec": {"slots": 0}}, "spec.slots"),
                          ({"spec": "{not json"}, "spec"), ({"spec": "[1]"}, "spec"), ({"data": None}, "file"),
                          ({"extra": "x"}, "extra")):
        kwargs = {"version": "1.0", **kwargs}
        r = upload(client, admin_token, image["id"], **kwargs)
        assert r.status_code == 400 and field in r.json["resultHint"], (kwargs, r.json)
    r = upload(client, admin_token, designer["id"], "1.0", spec={"capacity": 0})
    assert r.status_code == 400 and "spec.capacity" in r.json["resultHint"]
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions", headers=auth(admin_token), json={})
    assert r.status_code == 400 and "multipart" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/images", headers=auth(admin_token), json={"name": "x", "kind": "vm"})
    assert r.status_code == 400 and "kind" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/images", headers=auth(admin_token), json={"name": "win-exec", "kind": "executor"})
    assert r.status_code == 409
    assert upload(client, admin_token, "nope", "1.0").status_code == 404


def test_people_without_the_permission_are_refused(client, admin_token):
    image = create(client, admin_token)
    assert upload(client, admin_token, image["id"], "1.0").status_code == 201
    reader = person(client, admin_token, "sun.mei", "images.read")
    nobody = person(client, admin_token, "zhou.yu", "designers.use")
    assert client.simulate_get("/api/v1/images", headers=auth(reader)).status_code == 200
    assert client.simulate_get(f"/api/v1/images/{image['id']}/versions/1.0/file", headers=auth(reader)).content
    for method, path in (("POST", "/api/v1/images"), ("PATCH", f"/api/v1/images/{image['id']}"),
                         ("DELETE", f"/api/v1/images/{image['id']}"),
                         ("POST", f"/api/v1/images/{image['id']}/versions/1.0/start"),
                         ("POST", "/api/v1/instances/x/recycle")):
        r = client.simulate_request(method, path, headers=auth(reader), json={})
        assert r.status_code == 403 and "images.manage" in r.json["resultHint"], (method, path)
    r = upload(client, reader, image["id"], "2.0")
    assert r.status_code == 403
    for path in ("/api/v1/images", "/api/v1/instances", f"/api/v1/images/{image['id']}/versions/1.0/file"):
        r = client.simulate_get(path, headers=auth(nobody))
        assert r.status_code == 403 and "images.read" in r.json["resultHint"], path


def test_starting_an_image_whose_provider_is_missing_is_refused(client, admin_token):
    image = create(client, admin_token, provider="nimbus")
    upload(client, admin_token, image["id"], "1.0")
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions/1.0/start", headers=auth(admin_token))
    assert r.status_code == 409 and "provider nimbus is not available" in r.json["resultHint"]
    assert "local" in r.json["resultHint"]
    assert client.simulate_get("/api/v1/instances", headers=auth(admin_token)).json["resultValue"]["total"] == 0
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions/2.0/start", headers=auth(admin_token))
    assert r.status_code == 404


class FakeCloud:
    """A provider as a third-party plugin offers it through ``rpahub_cloud_providers``."""

    name = "fake"

    def __init__(self):
        self.calls = []
        self.fail = False

    def start(self, instance):
        self.calls.append(("start", instance.id, instance.image.kind, instance.image.spec["slots"],
                           instance.image.file.sha256))
        if self.fail:
            raise RuntimeError("quota exceeded")
        return {"state": "starting", "host": "vm-7.fake", "address": "10.0.0.7"}

    def stop(self, instance):
        self.calls.append(("stop", instance.id, instance.info["address"]))

    def describe(self, instance):
        self.calls.append(("describe", instance.id))
        return {"state": "running", "host": "vm-7.fake", "cpu": 12.5, "memoryMb": 2048}


@pytest.fixture
def fake(tmp_path, database_url):
    cloud = FakeCloud()

    class Plugin:
        @hookimpl
        def rpahub_cloud_providers(self, hub):
            return [cloud]

    app = make_app(tmp_path / "home", database_url, ("fakecloud", Plugin()))
    yield app, cloud
    app.hub.close()


def test_rpahub_cloud_providers_start_describe_and_recycle_instances(fake):
    app, cloud = fake
    client = testing.TestClient(app)
    token = _admin(app, client)
    image = create(client, token, "farm", provider="fake")
    upload(client, token, image["id"], "3.2", spec={"slots": 3})
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions/3.2/start", headers=auth(token))
    assert r.status_code == 201, r.json
    instance = r.json["resultValue"]
    assert (instance["state"], instance["host"], instance["info"]["address"]) == ("starting", "vm-7.fake", "10.0.0.7")
    assert cloud.calls[0] == ("start", instance["id"], "executor", 3, hashlib.sha256(b"disk image bytes").hexdigest())

    r = client.simulate_get(f"/api/v1/instances/{instance['id']}", headers=auth(token))
    described = r.json["resultValue"]
    assert described["state"] == "running" and described["info"]["memoryMb"] == 2048
    assert described["providerAvailable"] is True
    listed = client.simulate_get("/api/v1/instances", params={"state": "running", "imageId": image["id"]},
                                 headers=auth(token)).json["resultValue"]
    assert [i["id"] for i in listed["items"]] == [instance["id"]]  # what describe saw was stored
    assert client.simulate_get("/api/v1/instances", params={"state": "stopped"},
                               headers=auth(token)).json["resultValue"]["total"] == 0

    r = client.simulate_delete(f"/api/v1/images/{image['id']}", headers=auth(token))
    assert r.status_code == 409 and "recycle them first" in r.json["resultHint"]
    r = client.simulate_post(f"/api/v1/instances/{instance['id']}/recycle", headers=auth(token))
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "stopped"
    assert r.json["resultValue"]["stoppedAt"] and cloud.calls[-1] == ("stop", instance["id"], "10.0.0.7")
    r = client.simulate_post(f"/api/v1/instances/{instance['id']}/recycle", headers=auth(token))
    assert r.status_code == 409 and "already recycled" in r.json["resultHint"]

    cloud.fail = True
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions/3.2/start", headers=auth(token))
    assert r.status_code == 502 and "quota exceeded" in r.json["resultHint"]
    failed = client.simulate_get(f"/api/v1/instances/{r.json['resultValue']['instanceId']}",
                                 headers=auth(token)).json["resultValue"]
    assert failed["state"] == "failed" and "quota exceeded" in failed["info"]["error"]
    audit = client.simulate_get("/api/v1/audit", params={"action": "instance.*"}, headers=auth(token)).json
    assert [(a["action"], a["result"]) for a in audit["resultValue"]["items"][:4]] == [
        ("instance.start", "failed"), ("instance.recycle", "failed"), ("instance.recycle", "ok"),
        ("instance.start", "ok")]
    assert client.simulate_delete(f"/api/v1/images/{image['id']}", headers=auth(token)).status_code == 200
    # Instances stay as history after their image is gone.
    assert client.simulate_get("/api/v1/instances", headers=auth(token)).json["resultValue"]["total"] == 2


def _admin(app, client):
    from rpahub_core import db as hubdb
    from rpahub_core.testing import ADMIN_PASSWORD
    from rpahub_plugins.auth_local.models import User
    from rpahub_plugins.auth_local.passwords import hash_password

    with hubdb.connection():
        User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).where(
            User.username == "admin").execute()
    return client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                                ).json["resultValue"]["token"]


def _alive(pid):
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
def test_a_local_designer_image_runs_registered_and_is_deregistered_on_recycle(client, admin_token):
    import urllib.request

    image = create(client, admin_token, "studio", kind="designer")
    upload(client, admin_token, image["id"], "1.0", spec={"vendor": "rpahub", "capacity": 2})
    r = client.simulate_post(f"/api/v1/images/{image['id']}/versions/1.0/start", headers=auth(admin_token))
    assert r.status_code == 201, r.json
    instance = r.json["resultValue"]
    endpoint, pid = instance["info"]["endpoint"], instance["info"]["pid"]
    try:
        # The child may not have finished exec yet: its command line is empty until then.
        cmdline = wait_for(lambda: "--instance-id" in (c := Path(f"/proc/{pid}/cmdline").read_text()) and c,
                           10, "the designer's command line")
        assert endpoint.startswith("http://127.0.0.1:")
        assert "RPAHUB_DESIGNER_SECRET" not in cmdline
        [designer] = client.simulate_get("/api/v1/designers", headers=auth(admin_token)).json["resultValue"]["items"]
        assert (designer["endpoint"], designer["instanceId"], designer["capacity"]) == (endpoint, instance["id"], 2)

        def running():
            got = client.simulate_get(f"/api/v1/instances/{instance['id']}", headers=auth(admin_token))
            return got.json["resultValue"]["state"] == "running" and got.json["resultValue"]
        now = wait_for(running, 15, "the designer answering its health URL")
        assert now["info"]["pid"] == pid and now["host"] and now["info"]["memoryMb"] > 0 and "cpu" in now["info"]
        with urllib.request.urlopen(endpoint + "/healthz", timeout=5) as health:
            assert json.loads(health.read())["status"] == "ok"
        lease = client.simulate_post("/api/v1/designers/allocate", headers=auth(admin_token), json={}).json
        assert lease["resultValue"]["endpoint"] == endpoint

        r = client.simulate_post(f"/api/v1/instances/{instance['id']}/recycle", headers=auth(admin_token))
        assert r.status_code == 200 and r.json["resultValue"]["state"] == "stopped"
        wait_for(lambda: not _alive(pid), 15, "the designer process exiting")
        assert client.simulate_get("/api/v1/designers", headers=auth(admin_token)
                                   ).json["resultValue"]["total"] == 0
        row = client.simulate_get("/api/v1/designer-leases", headers=auth(admin_token)).json["resultValue"]["items"][0]
        assert row["reason"] == "forced"
    finally:
        if _alive(pid):
            os.kill(pid, 9)


@pytest.mark.e2e
@pytest.mark.timeout(60)
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
def test_an_executor_image_comes_online_and_goes_offline_when_recycled(tmp_path):
    import requests

    started = time.monotonic()
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "1"}
    with LiveHub(tmp_path / "hub", env=env) as live:
        token = live.admin_token()
        status, body = live.call("POST", "/api/v1/images", {"name": "exec", "kind": "executor"}, token)
        assert status == 201, body
        image = body["resultValue"]
        r = requests.post(f"{live.url}/api/v1/images/{image['id']}/versions", headers=auth(token), timeout=10,
                          data={"version": "1.0", "spec": json.dumps({"labels": ["ocr"], "slots": 2})},
                          files={"file": ("exec.img", b"image")})
        assert r.status_code == 201, r.text
        status, body = live.call("POST", f"/api/v1/images/{image['id']}/versions/1.0/start", None, token)
        assert status == 201, body
        instance = body["resultValue"]
        robot, pid = instance["info"]["robotId"], instance["info"]["pid"]

        def online():
            items = live.call("GET", "/api/v1/executors", None, token)[1]["resultValue"]["items"]
            return next((e for e in items if e["id"] == robot and e["state"] == "online"), None)

        executor = wait_for(online, 20, "the executor registering")
        assert executor["labels"] == ["ocr"] and executor["slots"] == 2
        described = live.call("GET", f"/api/v1/instances/{instance['id']}", None, token)[1]["resultValue"]
        assert described["state"] == "running" and described["info"]["pid"] == pid
        assert described["info"]["executorState"] == "online"

        status, body = live.call("POST", f"/api/v1/instances/{instance['id']}/recycle", None, token)
        assert status == 200 and body["resultValue"]["state"] == "stopped", body
        wait_for(lambda: not _alive(pid), 15, "the executor process exiting")
        wait_for(lambda: live.call("GET", f"/api/v1/executors/{robot}", None, token)[1]["resultValue"]["state"]
                 == "offline", 15, "the executor going offline")
    assert time.monotonic() - started < 60


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads processes from /proc")
def test_a_restarted_hub_settles_local_instances_its_previous_run_left(tmp_path, database_url):
    first = make_app(tmp_path / "home", database_url)
    client = testing.TestClient(first)
    token = _admin(first, client)
    image = create(client, token, "studio", kind="designer")
    upload(client, token, image["id"], "1.0")
    instance = client.simulate_post(f"/api/v1/images/{image['id']}/versions/1.0/start",
                                    headers=auth(token)).json["resultValue"]
    first.hub.close()  # its children go with it
    assert not _alive(instance["info"]["pid"])

    second = make_app(tmp_path / "home", database_url)
    try:
        client = testing.TestClient(second)
        token = _admin(second, client)
        now = client.simulate_get("/api/v1/instances", headers=auth(token)).json["resultValue"]["items"][0]
        assert now["state"] == "stopped" and now["stoppedAt"]
        # The designer it ran is no longer registered, so no one is sent to a dead endpoint.
        assert client.simulate_get("/api/v1/designers", headers=auth(token)).json["resultValue"]["total"] == 0
        assert client.simulate_post("/api/v1/designers/allocate", headers=auth(token), json={}).status_code == 409
    finally:
        second.hub.close()
