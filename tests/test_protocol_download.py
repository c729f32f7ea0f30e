"""packageDownloadUri (docs/protocol.md 6.8) across the life of a run: retries on another
executor get a fresh link and the previous attempt's stops working; a stopping run still
downloads; an ended one does not."""

import io
import zipfile
from urllib.parse import urlsplit

import pytest

from rpahub_core import db as hubdb
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Executor, Supplier


@pytest.fixture
def ex(app):
    with hubdb.connection():
        Supplier.create(code="acme", secret_enc=app.hub.keys.encrypt("acme-secret-123456"))
        for robot in ("rob-a", "rob-b"):
            Executor.create(id=robot, supplier="acme", state="online", transport="http")
        yield state(app.hub)


def package_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    return buf.getvalue()


def get(client, link):
    parts = urlsplit(link)
    return client.simulate_get(parts.path, query_string=parts.query)


def test_a_retry_gets_a_fresh_link_and_the_previous_attempts_link_dies(ex, client):
    package = ex.runs.add_package(name="retry", version="1", data=package_zip(), created_by="admin")
    run = ex.runs.create(package=package, arguments=[], user_id="u1", user_name="admin")
    ex.runs.assign(run, "rob-a")
    first = ex.runs.fresh_execute(run.id, "rob-a")["packageDownloadUri"]
    r = get(client, first)
    assert r.status_code == 200 and r.headers["X-Content-SHA256"] == package.file.sha256

    assert ex.runs.requeue(run, reason="rob-a went silent")
    assert ex.runs.fresh_execute(run.id, "rob-a") is None  # its Execute is not sent again
    ex.runs.assign(run, "rob-b")
    second = ex.runs.fresh_execute(run.id, "rob-b")["packageDownloadUri"]
    assert get(client, second).status_code == 200
    r = get(client, first)
    assert r.status_code == 403 and "earlier attempt" in r.json["resultHint"]

    ex.runs.stop(run.id, by="admin")  # stopping: the executor may still be fetching it
    assert ex.runs.get(run.id).state == "stopping" and get(client, second).status_code == 200
    ex.runs.fail(ex.runs.get(run.id), reason="gave up", state="cancelled")
    r = get(client, second)
    assert r.status_code == 403 and "run that is cancelled" in r.json["resultHint"]


def test_a_pending_run_has_no_usable_link(ex, client):
    package = ex.runs.add_package(name="waiting", version="1", data=package_zip(), created_by="admin")
    run = ex.runs.create(package=package, arguments=[], user_id="u1", user_name="admin")
    ex.runs.assign(run, "rob-a")
    link = ex.runs.fresh_execute(run.id, "rob-a")["packageDownloadUri"]
    assert ex.runs.requeue(run, reason="placed elsewhere")  # now retrying, on nobody
    r = get(client, link)
    assert r.status_code == 403 and "run that is retrying" in r.json["resultHint"]
