"""The ops center (6.3.1a task records, 6.3.1b monitoring, 6.3.2d personal folders, 6.3.2e cloud
resources): what an operator sees, from rows made the way the hub makes them."""

import datetime as dt
import io
import json
import zipfile

import pytest

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import bearer, make_app
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Executor, Licence, PersonalFile, RunInstance, RunLog, Supplier
from rpahub_plugins.share.models import App, AppRun, AppVersion

SECRET = "ops-secret-0123456789"


class Desk:
    """An in-process hub with an admitted supplier, robots registered over HTTP and a package."""

    def __init__(self, app):
        self.hub = app.hub
        self.ex = state(app.hub)
        self.sessions = {}
        Supplier.create(code="v", secret_enc=self.hub.keys.encrypt(SECRET))
        self.package = self.package_named("invoice-bot", "1.2")

    def package_named(self, name, version):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print(1)")
        return self.ex.runs.add_package(name=name, version=version, data=buf.getvalue(), created_by="t")

    def robot(self, robot_id, labels=()):
        session = ExecutorSession(robot_id, "http")
        self.ex.gateway.register(session, {"supplierCode": "v", "supplierSecret": proof(SECRET, robot_id)})
        if labels:
            Executor.update(labels=json.dumps(list(labels))).where(Executor.id == robot_id).execute()
        self.sessions[robot_id] = session
        return session

    def run(self, *, package=None, user=("u1", "li.qiang"), state_="success", executor="r1", created=None,
            wait_s=5, took_s=60, **extra):
        """A run that went through its life at the given times (rows as the gateway leaves them)."""
        created = created or utcnow() - dt.timedelta(minutes=30)
        run = self.ex.runs.create(package=package or self.package, arguments=[{"name": "month", "type": "String",
                                                                               "value": "2024-05"}],
                                  user_id=user[0], user_name=user[1])
        dispatched = created + dt.timedelta(seconds=wait_s) if state_ != "pending" else None
        started = dispatched + dt.timedelta(seconds=1) if dispatched else None
        done = state_ in ("success", "failed", "cancelled")
        RunInstance.update(state=state_, executor_id=executor if dispatched else None, created_at=created,
                           dispatched_at=dispatched, started_at=started,
                           finished_at=started + dt.timedelta(seconds=took_s) if done else None,
                           finish_status={"success": 0, "cancelled": 1, "failed": 2}.get(state_), **extra
                           ).where(RunInstance.id == run.id).execute()
        return RunInstance.get_by_id(run.id)

    def app_for(self, run, name="Invoices"):
        app = App.get_or_none(App.name == name) or App.create(name=name, owner_id="u1", owner_name="li.qiang")
        version = AppVersion.get_or_none(AppVersion.package_id == run.package_id) or AppVersion.create(
            app=app, version=f"v{AppVersion.select().count() + 1}", package_id=run.package_id, sha256="0" * 64,
            created_by="li.qiang", created_by_id="u1")
        AppRun.create(run_id=run.id, app=app, version=version, user_id=run.user_id)
        return app


@pytest.fixture
def desk(app):
    with hubdb.connection():
        yield Desk(app)


def get(client, token, path, **params):
    return client.simulate_get(path, headers=bearer(token), params=params or None)


# -- task records (6.3.1a) ---------------------------------------------------------------------


def test_task_records_filter_by_app_executor_state_user_time_and_package_newest_first(desk, client, admin_token):
    now = utcnow()
    other = desk.package_named("hr-onboarding", "3.0")
    a = desk.run(created=now - dt.timedelta(hours=3), wait_s=4, took_s=120)
    b = desk.run(created=now - dt.timedelta(hours=2), state_="failed", executor="r2", user=("u2", "wang.fang"))
    c = desk.run(created=now - dt.timedelta(hours=1), package=other, state_="running")
    desk.app_for(a)
    app = desk.app_for(b)

    r = get(client, admin_token, "/api/v1/ops/runs")
    assert r.status_code == 200, r.json
    items = r.json["resultValue"]["items"]
    assert [i["id"] for i in items] == [c.id, b.id, a.id]
    first = items[2]
    assert (first["app"]["name"], first["packageName"], first["packageVersion"], first["executorId"]) == (
        "Invoices", "invoice-bot", "1.2", "r1")
    assert (first["queueWaitS"], first["durationS"], first["totalS"]) == (4, 120, 125)
    assert items[0]["app"] is None and items[0]["durationS"] is None

    def ids(**params):
        r = get(client, admin_token, "/api/v1/ops/runs", **params)
        assert r.status_code == 200, r.json
        return [i["id"] for i in r.json["resultValue"]["items"]]

    assert ids(appId=app.id) == [b.id, a.id]
    assert ids(executorId="r2") == [b.id]
    assert ids(state="running") == [c.id]
    assert ids(user="wang.fang") == [b.id] and ids(user="u1") == [c.id, a.id]
    assert ids(createdFrom=(now - dt.timedelta(hours=2, minutes=30)).isoformat(),
               createdTo=(now - dt.timedelta(minutes=90)).isoformat()) == [b.id]
    # a time with an offset is the same instant in UTC
    local = (now - dt.timedelta(minutes=90)).replace(tzinfo=dt.UTC).astimezone(dt.timezone(dt.timedelta(hours=8)))
    assert ids(createdFrom=local.isoformat()) == [c.id]
    assert ids(q="onboard") == [c.id]
    page = get(client, admin_token, "/api/v1/ops/runs", pageSize=2, page=2).json["resultValue"]
    assert page["total"] == 3 and [i["id"] for i in page["items"]] == [a.id]


def test_bad_filters_are_400s_that_name_the_field(desk, client, admin_token):
    for params, field in (({"state": "exploded"}, "state"), ({"createdFrom": "yesterday"}, "createdFrom"),
                          ({"createdFrom": "2024-05-02", "createdTo": "2024-05-01"}, "createdFrom"),
                          ({"pageSize": "5000"}, "pageSize"), ({"colour": "red"}, "colour")):
        r = get(client, admin_token, "/api/v1/ops/runs", **params)
        assert r.status_code == 400 and field in r.json["resultHint"], (params, r.json)
    r = get(client, admin_token, "/api/v1/ops/stats", groupBy="week")
    assert r.status_code == 400 and "groupBy" in r.json["resultHint"]
    r = get(client, admin_token, "/api/v1/ops/stats", **{"from": "2024-05-02T00:00:00", "to": "2024-05-01T00:00:00"})
    assert r.status_code == 400 and "from" in r.json["resultHint"]
    r = get(client, admin_token, "/api/v1/ops/runs/x/logs", hasScreenshot="perhaps")
    assert r.status_code == 400 and "hasScreenshot" in r.json["resultHint"]


def test_a_task_record_shows_timeline_logs_screenshots_and_the_recording(desk, client, admin_token):
    session = desk.robot("r1")
    run = desk.ex.runs.start(package_id=desk.package.id, executor_id="r1", arguments=[
        {"name": "month", "type": "String", "value": "2024-05"}], user_id="u1", user_name="li.qiang",
        video_required=True, video_mode=1)
    desk.app_for(run)
    shot = desk.ex.files.save_bytes(b"\x89PNG fake", name="s.png", content_type="image/png", source="file",
                                    uploaded_by="robot:r1", run_id=run.id)
    desk.ex.gateway.report_logs(session, {"runInstanceId": run.id, "logs": [
        {"content": "opened the ledger", "logAt": "2024-05-01T08:00:00Z", "logLevel": 0},
        {"content": "slow page", "logAt": "2024-05-01T08:00:01Z", "logLevel": 1, "screenshot": shot.id},
        {"content": "total mismatch", "logAt": "2024-05-01T08:00:02Z", "logLevel": 2, "screenshot": shot.id},
        {"content": "closing", "logAt": "2024-05-01T08:00:03Z", "logLevel": 0}]})
    r = get(client, admin_token, f"/api/v1/ops/runs/{run.id}/recording")
    assert r.status_code == 404 and "recording" in r.json["resultHint"] and "when the run ends" in r.json["resultHint"]
    desk.ex.gateway.report_finish(session, {"runInstanceId": run.id, "status": 2, "errorCode": 7,
                                            "outputs": {"rows": 41}})
    r = get(client, admin_token, f"/api/v1/ops/runs/{run.id}/recording")
    assert r.status_code == 404 and "has not reported a recording" in r.json["resultHint"]
    video = desk.ex.files.save_bytes(bytes(range(200)), name="run.mp4", content_type="video/mp4", source="file",
                                     uploaded_by="robot:r1", run_id=run.id)
    desk.ex.gateway.report_video(session, {"runInstanceId": run.id, "videoId": video.id})

    d = get(client, admin_token, f"/api/v1/ops/runs/{run.id}").json["resultValue"]
    assert [e["state"] for e in d["timeline"]] == ["pending", "dispatched", "running", "failed"]
    assert d["executor"]["id"] == "r1" and d["app"]["name"] == "Invoices" and d["app"]["version"] == "v1"
    assert d["arguments"] == [{"name": "month", "type": "String", "value": "2024-05"}]
    assert d["outputs"] == {"rows": 41} and d["errorCode"] == 7
    assert d["logCounts"] == {"info": 2, "warning": 1, "error": 1, "total": 4}
    assert [s["content"] for s in d["screenshots"]] == ["slow page", "total mismatch"]
    assert d["recording"]["available"] is True

    shot_url = d["screenshots"][0]["url"]
    r = get(client, admin_token, shot_url)
    assert r.status_code == 200 and r.content == b"\x89PNG fake" and r.headers["Content-Type"] == "image/png"
    # Only files the run's logs show: the recording is not a screenshot
    assert get(client, admin_token, f"/api/v1/ops/runs/{run.id}/screenshots/{video.id}").status_code == 404

    url = d["recording"]["url"]
    r = client.simulate_get(url, headers={**bearer(admin_token), "Range": "bytes=100-149"})
    assert r.status_code == 206 and r.content == bytes(range(100, 150))
    assert r.headers["Content-Range"] == "bytes 100-149/200" and r.headers["Content-Type"] == "video/mp4"
    r = client.simulate_get(url, headers={**bearer(admin_token), "Range": "bytes=500-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */200"
    assert get(client, admin_token, url).content == bytes(range(200))


def test_log_tailing_filters_by_level_and_screenshot_and_continues_after_an_id(desk, client, admin_token):
    run = desk.run(state_="running")
    for i in range(5):
        RunLog.create(run=run.id, content=f"line {i}", level=i % 3, log_at=utcnow(), executor_id="r1",
                      screenshot="f1" if i == 3 else None)
    path = f"/api/v1/ops/runs/{run.id}/logs"
    page = get(client, admin_token, path).json["resultValue"]
    assert [i["content"] for i in page["items"]] == [f"line {i}" for i in range(5)]
    assert page["finished"] is False and page["runState"] == "running"
    last = page["lastId"]
    assert [i["content"] for i in get(client, admin_token, path, level=2).json["resultValue"]["items"]] == ["line 2"]
    assert [i["content"] for i in get(client, admin_token, path, minLevel=1).json["resultValue"]["items"]] == [
        "line 1", "line 2", "line 4"]
    shots = get(client, admin_token, path, hasScreenshot="true").json["resultValue"]["items"]
    assert [i["content"] for i in shots] == ["line 3"] and shots[0]["screenshotUrl"].endswith("/screenshots/f1")
    assert len(get(client, admin_token, path, hasScreenshot="false").json["resultValue"]["items"]) == 4
    # live tailing: nothing new, then exactly what came since
    quiet = get(client, admin_token, path, after=last).json["resultValue"]
    assert quiet["items"] == [] and quiet["lastId"] == last
    RunLog.create(run=run.id, content="line 5", level=0, log_at=utcnow(), executor_id="r1")
    more = get(client, admin_token, path, after=last).json["resultValue"]
    assert [i["content"] for i in more["items"]] == ["line 5"] and more["lastId"] > last
    assert get(client, admin_token, "/api/v1/ops/runs/nope/logs").status_code == 404
    assert get(client, admin_token, "/api/v1/ops/runs/nope").status_code == 404


def test_a_run_without_recording_explains_why(desk, client, admin_token):
    plain = desk.run()
    kept = desk.run(video_required=True, video_mode=0)
    r = get(client, admin_token, f"/api/v1/ops/runs/{plain.id}/recording")
    assert r.status_code == 404 and "without videoRecordRequired" in r.json["resultHint"]
    r = get(client, admin_token, f"/api/v1/ops/runs/{kept.id}/recording")
    assert r.status_code == 404 and "stays on the executor" in r.json["resultHint"]
    d = get(client, admin_token, f"/api/v1/ops/runs/{kept.id}").json["resultValue"]
    assert d["recording"] == {"available": False, "videoId": None, "url": None,
                              "hint": "the recording stays on the executor (videoRecordMode 0); ask its supplier "
                                      "for it"}


def test_task_records_need_runs_read(desk, client, person):
    run = desk.run(video_required=True, video_mode=1)
    nobody = person("zhao.lei")
    reader = person("qian.ying", "runs.read")
    for path in ("/api/v1/ops/runs", f"/api/v1/ops/runs/{run.id}", f"/api/v1/ops/runs/{run.id}/logs",
                 f"/api/v1/ops/runs/{run.id}/recording", "/api/v1/ops/stats"):
        r = get(client, nobody, path)
        assert r.status_code == 403 and "runs.read" in r.json["resultHint"], path
    assert get(client, reader, "/api/v1/ops/runs").status_code == 200


# -- monitoring (6.3.1b) --------------------------------------------------------------------------


def test_stats_count_states_results_rates_durations_and_queue_waits(desk, client, admin_token):
    now = utcnow()
    day1 = now - dt.timedelta(hours=30)
    runs = [desk.run(wait_s=w, took_s=t, state_=s, executor=e, created=now - dt.timedelta(hours=h))
            for w, t, s, e, h in ((2, 10, "success", "r1", 1), (4, 20, "success", "r1", 2),
                                  (6, 30, "failed", "r2", 3), (8, 40, "cancelled", "r2", 4))]
    desk.app_for(runs[0])
    desk.run(state_="pending", created=now - dt.timedelta(minutes=5))
    desk.run(created=day1)  # outside the default last 24 h
    desk.robot("r1")
    desk.robot("r2")
    Executor.update(state="busy").where(Executor.id == "r2").execute()
    Executor.create(id="r3", supplier="v", state="offline")

    s = get(client, admin_token, "/api/v1/ops/stats").json["resultValue"]
    runs_ = s["runs"]
    assert runs_["total"] == 5
    assert runs_["states"] == {"pending": 1, "success": 2, "failed": 1, "cancelled": 1}
    assert runs_["results"] == {"success": 2, "failed": 1, "cancelled": 1}
    assert runs_["successRate"] == round(2 / 3, 4)  # a cancelled run is a person's decision, not a failure
    assert runs_["duration"]["mean"] == 25 and runs_["duration"]["p95"] == 40 and runs_["duration"]["count"] == 4
    assert runs_["queueWait"]["mean"] == 5 and runs_["queueWait"]["p95"] == 8
    assert s["executors"] == {"online": 1, "busy": 1, "offline": 1, "total": 3}

    by_exec = get(client, admin_token, "/api/v1/ops/stats", groupBy="executor").json["resultValue"]["runs"]["groups"]
    assert {g["label"]: g["total"] for g in by_exec} == {"(not placed)": 1, "r1": 2, "r2": 2}
    r2 = next(g for g in by_exec if g["key"] == "r2")
    assert r2["successRate"] == 0.0 and r2["results"] == {"success": 0, "failed": 1, "cancelled": 1}
    by_app = get(client, admin_token, "/api/v1/ops/stats", groupBy="app").json["resultValue"]["runs"]["groups"]
    assert {g["label"]: g["total"] for g in by_app} == {"(no app)": 4, "Invoices": 1}
    by_state = get(client, admin_token, "/api/v1/ops/stats", groupBy="state").json["resultValue"]["runs"]["groups"]
    assert {g["key"]: g["total"] for g in by_state} == {"pending": 1, "success": 2, "failed": 1, "cancelled": 1}
    two_days = get(client, admin_token, "/api/v1/ops/stats", groupBy="day",
                   **{"from": (now - dt.timedelta(days=2)).isoformat()}).json["resultValue"]["runs"]
    assert two_days["total"] == 6 and sum(g["total"] for g in two_days["groups"]) == 6
    assert day1.strftime("%Y-%m-%d") in [g["key"] for g in two_days["groups"]]
    hours = get(client, admin_token, "/api/v1/ops/stats", groupBy="hour").json["resultValue"]["runs"]["groups"]
    assert all(len(g["key"]) == 16 for g in hours) and sum(g["total"] for g in hours) == 5
    only_r1 = get(client, admin_token, "/api/v1/ops/stats", executorId="r1").json["resultValue"]["runs"]
    assert only_r1["total"] == 2 and only_r1["successRate"] == 1.0
    # Prometheus shows the last 24 h the way the stats API does.
    day = get(client, admin_token, "/api/v1/ops/stats",
              **{"from": (utcnow() - dt.timedelta(hours=24)).isoformat()}).json["resultValue"]["runs"]
    text = client.simulate_get("/metrics").text
    assert f"rpahub_ops_run_success_ratio {float(day['successRate'])}" in text
    assert f'rpahub_ops_run_seconds{{measure="duration",stat="p95"}} {float(day["duration"]["p95"])}' in text
    assert f'rpahub_ops_run_seconds{{measure="queue_wait",stat="max"}} {float(day["queueWait"]["max"])}' in text


def test_stats_and_metrics_show_the_queue_and_expiring_licences(desk, app, client, admin_token):
    from rpahub_plugins.dispatch import dispatcher

    old = dispatcher(app.hub).submit(package_id=desk.package.id, user_id="u1", user_name="li.qiang")
    dispatcher(app.hub).submit(package_id=desk.package.id, user_id="u1", user_name="li.qiang")
    from rpahub_plugins.dispatch.models import QueueEntry

    QueueEntry.update(enqueued_at=utcnow() - dt.timedelta(minutes=10), not_before=utcnow() - dt.timedelta(minutes=10)
                      ).where(QueueEntry.run_id == old.id).execute()
    soon = desk.ex.licences.issue(supplier="v", robot_id="r1", days=5)
    desk.ex.licences.issue(supplier="v", robot_id="r2", days=3)
    desk.ex.licences.issue(supplier="v", robot_id="r2", days=300)  # renewed: r2 is covered
    desk.ex.licences.issue(supplier="v", pool="night", days=400)

    s = get(client, admin_token, "/api/v1/ops/stats", licenceDays=10).json["resultValue"]
    assert s["queue"]["length"] == 2 and 590 < s["queue"]["oldestWaitS"] < 700
    assert [lic["id"] for lic in s["licences"]["expiring"]] == [soon.id]
    assert 4.9 < s["licences"]["expiring"][0]["daysLeft"] <= 5
    text = client.simulate_get("/metrics").text
    assert "rpahub_ops_queue_length 2.0" in text
    wait = float(next(line for line in text.splitlines() if line.startswith("rpahub_ops_queue_oldest_wait_seconds ")
                      ).split()[1])
    assert 590 < wait < 700
    assert 'rpahub_ops_licences_expiring{within_days="30"} 1.0' in text
    assert 'rpahub_ops_runs{state="pending"} 2.0' in text
    desk.robot("r1")
    assert 'rpahub_ops_executors{state="online"} 1.0' in client.simulate_get("/metrics").text


# -- personal folders (6.3.2d) ---------------------------------------------------------------------


def upload(client, token, data, name="report.xlsx", display=None):
    boundary = "opsBOUNDARY"
    body = b""
    if display:
        body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n{display}\r\n").encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return client.simulate_post("/api/v1/me/files", body=body, headers={
        **bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})


def upload_file(client, token, data, name="scan.pdf"):
    """A.2.7 ``/v1/file/file/upload``: a stored file, not yet in anyone's folder."""
    boundary = "a27BOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = client.simulate_post("/v1/file/file/upload", body=body, headers={
        **bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code in (200, 201), r.json
    return r.json["resultValue"]["fileId"]


def file_into_folder(client, token, file_id, **extra):
    return client.simulate_post("/design/personalfile", headers=bearer(token), json={"fileId": file_id, **extra})


def test_a_file_id_is_no_key_to_someone_elses_file(desk, client, person):
    """File ids travel in run logs, recordings and feedback: knowing one must not let a
    person file another's upload into their own folder and read it from there (A.2.8)."""
    owner, stranger = person("li.qiang"), person("wang.fang")
    file_id = upload_file(client, owner, b"salary list")
    r = file_into_folder(client, stranger, file_id)
    assert r.status_code == 403 and r.json["resultHint"] == "fileId: not uploaded by this person", r.json
    assert get(client, stranger, "/api/v1/me/files").json["resultValue"]["total"] == 0
    assert file_into_folder(client, owner, file_id, fileName="工资表.xlsx").status_code == 200
    [mine] = get(client, owner, "/api/v1/me/files").json["resultValue"]["items"]
    assert mine["name"] == "工资表.xlsx" and get(client, owner, mine["url"]).content == b"salary list"


def test_my_folder_lists_searches_downloads_and_deletes_my_files(desk, client, person):
    me = person("li.qiang")
    r = upload(client, me, b"month end figures", name="may.xlsx")
    assert r.status_code == 201, r.json
    mine = r.json["resultValue"]
    assert (mine["name"], mine["size"], mine["runId"]) == ("may.xlsx", 17, None)
    assert mine["addedBy"].startswith("user:")
    upload(client, me, bytes(range(100)), name="scan.pdf", display="Scanned contract.pdf")
    # a run files its output into the folder of the person it ran for (A.2.8)
    me_id = client.simulate_get("/api/v1/me", headers=bearer(me)).json["resultValue"]["id"]
    stored = desk.ex.files.save_bytes(b"robot output", name="out.csv", content_type="text/csv", source="file",
                                      uploaded_by="robot:r1")
    PersonalFile.create(file=stored, owner_id=me_id, owner_name="li.qiang", name="out.csv", run_id="run-7",
                        added_by="robot:r1")

    listing = get(client, me, "/api/v1/me/files").json["resultValue"]
    assert [f["name"] for f in listing["items"]] == ["out.csv", "Scanned contract.pdf", "may.xlsx"]
    assert listing["items"][0]["runId"] == "run-7" and listing["items"][0]["addedBy"] == "robot:r1"
    assert [f["name"] for f in get(client, me, "/api/v1/me/files", q="contract").json["resultValue"]["items"]] == [
        "Scanned contract.pdf"]
    scan = listing["items"][1]
    r = client.simulate_get(scan["url"], headers={**bearer(me), "Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == bytes(range(10, 20))
    r = client.simulate_get(scan["url"], headers={**bearer(me), "Range": "bytes=100-"})
    assert r.status_code == 416
    usage = get(client, me, "/api/v1/me/files/usage").json["resultValue"]
    assert usage["usedBytes"] == 17 + 100 + 12 and usage["files"] == 3 and usage["quotaBytes"] == 1024 << 20

    r = client.simulate_delete(f"/api/v1/me/files/{mine['id']}", headers=bearer(me))
    assert r.status_code == 200
    assert get(client, me, f"/api/v1/me/files/{mine['id']}").status_code == 404
    assert get(client, me, "/api/v1/me/files/usage").json["resultValue"]["files"] == 2


def test_someone_elses_file_is_not_found_and_managers_see_every_folder(desk, client, person):
    owner, stranger = person("li.qiang"), person("wang.fang")
    manager = person("zhou.min", "folders.manage")
    file_id = upload(client, owner, b"salary list").json["resultValue"]["id"]
    for method, path in (("GET", f"/api/v1/me/files/{file_id}"), ("GET", f"/api/v1/me/files/{file_id}/content"),
                         ("DELETE", f"/api/v1/me/files/{file_id}")):
        r = client.simulate_request(method, path, headers=bearer(stranger))
        assert r.status_code == 404 and "your folder" in r.json["resultHint"], (method, path)
    assert get(client, stranger, "/api/v1/me/files").json["resultValue"]["items"] == []
    assert get(client, stranger, "/api/v1/ops/folders").status_code == 403
    assert client.simulate_delete(f"/api/v1/ops/folders/{file_id}", headers=bearer(stranger)).status_code == 403

    owner_id = client.simulate_get("/api/v1/me", headers=bearer(owner)).json["resultValue"]["id"]
    seen = get(client, manager, "/api/v1/ops/folders", userId=owner_id).json["resultValue"]["items"]
    assert [(f["id"], f["ownerName"]) for f in seen] == [(file_id, "li.qiang")]
    assert get(client, manager, "/api/v1/ops/folders", userId="someone-else").json["resultValue"]["items"] == []
    assert get(client, manager, seen[0]["url"]).content == b"salary list"
    usage = get(client, manager, "/api/v1/ops/folders/usage").json["resultValue"]
    assert usage == [{"userId": owner_id, "userName": "li.qiang", "usedBytes": 11, "files": 1,
                      "quotaBytes": 1024 << 20}]
    assert client.simulate_delete(f"/api/v1/ops/folders/{file_id}", headers=bearer(manager)).status_code == 200
    assert get(client, owner, "/api/v1/me/files").json["resultValue"]["total"] == 0


def test_the_quota_refuses_an_upload_that_would_exceed_it(tmp_path, database_url):
    from falcon import testing

    app = make_app(tmp_path / "home", database_url, plugins={"ops": {"personal_quota_mb": 0.001}})  # 1048 bytes
    try:
        from rpahub_core.testing import ADMIN_PASSWORD
        from rpahub_plugins.auth_local.models import User
        from rpahub_plugins.auth_local.passwords import hash_password

        with hubdb.connection():
            User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).execute()
        client = testing.TestClient(app)
        token = client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                                     ).json["resultValue"]["token"]
        assert upload(client, token, b"x" * 1000).status_code == 201
        r = upload(client, token, b"y" * 100)
        assert r.status_code == 413, r.json
        assert "quota" in r.json["resultHint"] and "personal_quota_mb" in r.json["resultHint"]
        usage = get(client, token, "/api/v1/me/files/usage").json["resultValue"]
        assert usage["files"] == 1 and usage["usedBytes"] == 1000
        assert upload(client, token, b"z" * 40).status_code == 201  # what still fits is accepted
        # Filing an uploaded file through A.2.8 counts against the same quota, however often.
        file_id = upload_file(client, token, b"w" * 5)
        assert file_into_folder(client, token, file_id).status_code == 200
        r = file_into_folder(client, token, upload_file(client, token, b"v" * 100))
        assert r.status_code == 413 and "quota" in r.json["resultHint"], r.json
        # 1045 bytes used: the same 5 bytes filed again would make 1050 of 1048.
        assert [file_into_folder(client, token, file_id).status_code for _ in range(3)] == [413] * 3
        assert get(client, token, "/api/v1/me/files/usage").json["resultValue"]["usedBytes"] == 1045
        r = client.simulate_post("/api/v1/me/files", json={}, headers=bearer(token))
        assert r.status_code == 400 and "Content-Type" in r.json["resultHint"]
    finally:
        app.hub.close()


# -- cloud resources (6.3.2e) ---------------------------------------------------------------------


def test_resources_group_instances_executors_and_designers_by_host(desk, client, admin_token, person):
    from rpahub_plugins.designers.models import Designer
    from rpahub_plugins.images.models import Instance

    Instance.create(id="i1", image_id="img", image_name="win-executor", version_id="v", version="1.0",
                    kind="executor", provider="local", state="running", host="node-a",
                    info=json.dumps({"pid": 42, "cpu": 3.5}), started_by="admin")
    Instance.create(id="i2", image_id="img", image_name="win-executor", version_id="v", version="1.0",
                    kind="executor", provider="local", state="stopped", host="node-b", started_by="admin",
                    stopped_at=utcnow())
    desk.robot("img-i1")
    Executor.create(id="img-i2", supplier="v", state="offline")
    desk.robot("lab-7", labels=["host:node-c", "ocr"])
    Executor.create(id="lost", supplier="v", state="offline")
    Designer.create(name="studio", vendor="acme", endpoint="http://node-c:8800/", secret_hash="h" * 64,
                    registered_by="admin")

    r = get(client, admin_token, "/api/v1/ops/resources")
    assert r.status_code == 200, r.json
    v = r.json["resultValue"]
    assert "local" in v["providers"]
    hosts = {h["host"]: h for h in v["hosts"]}
    assert set(hosts) == {"node-a", "node-b", "node-c", "(unknown host)"}
    a = hosts["node-a"]
    assert a["state"] == "up" and [i["id"] for i in a["instances"]] == ["i1"] and a["instances"][0]["pid"] == 42
    assert [e["id"] for e in a["executors"]] == ["img-i1"] and a["counts"]["executors"] == {"online": 1}
    assert hosts["node-b"]["instances"] == [] and hosts["node-b"]["state"] == "down"  # stopped: hidden by default
    c = hosts["node-c"]
    assert [e["id"] for e in c["executors"]] == ["lab-7"] and [d["name"] for d in c["designers"]] == ["studio"]
    assert [e["id"] for e in hosts["(unknown host)"]["executors"]] == ["lost"]
    assert v["totals"]["executors"] == {"offline": 2, "online": 2} and v["totals"]["hosts"] == 3
    everything = get(client, admin_token, "/api/v1/ops/resources", includeStopped="true").json["resultValue"]
    assert [i["id"] for h in everything["hosts"] if h["host"] == "node-b" for i in h["instances"]] == ["i2"]
    assert get(client, person("zhao.lei"), "/api/v1/ops/resources").status_code == 403
    assert get(client, admin_token, "/api/v1/ops/resources", refresh="maybe").status_code == 400


def test_refresh_asks_each_instances_provider_and_reports_the_one_that_failed(desk, client, admin_token):
    """6.3.2e fed by rpahub_cloud_providers: a refresh reads every live instance's VM from
    its provider, moves it to the host it reports, and a failing provider is named, not fatal."""
    from rpahub_core import hookimpl
    from rpahub_plugins.images.models import Instance

    class Farm:
        name = "farm"
        asked = []

        def start(self, instance):
            return {"state": "starting"}

        def stop(self, instance):
            pass

        def describe(self, instance):
            self.asked.append(instance.id)
            if instance.id == "i-bad":
                raise RuntimeError("farm API timed out")
            return {"state": "running", "host": "farm-9", "cpu": 2, "memoryMb": 4096}

    class FarmPlugin:
        @hookimpl
        def rpahub_cloud_providers(self, hub):
            return [Farm()]

    for instance_id in ("i-ok", "i-bad"):
        Instance.create(id=instance_id, image_id="img", image_name="win-executor", version_id="v", version="1.0",
                        kind="executor", provider="farm", state="starting", host="pending", started_by="admin")
    desk.hub.pm.register(FarmPlugin(), name="farm")
    try:
        plain = get(client, admin_token, "/api/v1/ops/resources").json["resultValue"]
        assert Farm.asked == [] and {h["host"] for h in plain["hosts"]} >= {"pending"}
        r = get(client, admin_token, "/api/v1/ops/resources", refresh="true")
        assert r.status_code == 200, r.json
        v = r.json["resultValue"]
        assert sorted(Farm.asked) == ["i-bad", "i-ok"] and "farm" in v["providers"]
        hosts = {h["host"]: h for h in v["hosts"]}
        [ok] = hosts["farm-9"]["instances"]
        assert (ok["id"], ok["state"]) == ("i-ok", "running")
        assert [i["id"] for i in hosts["pending"]["instances"]] == ["i-bad"]
        assert len(v["problems"]) == 1 and "i-bad" in v["problems"][0] and "timed out" in v["problems"][0]
    finally:
        desk.hub.pm.unregister(name="farm")


def test_resources_degrade_without_the_images_and_designers_plugins(tmp_path, database_url):
    from falcon import testing

    from rpahub_core.testing import ADMIN_PASSWORD, plugin_manager
    from rpahub_plugins.auth_local.models import User
    from rpahub_plugins.auth_local.passwords import hash_password

    pm = plugin_manager(environ={"RPAHUB_DISABLE_PLUGINS": "images,designers,share"})
    app = make_app(tmp_path / "home", database_url, pm=pm)
    try:
        with hubdb.connection():
            User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).execute()
            Desk(app).robot("lab-1", labels=["host:node-z"])
        client = testing.TestClient(app)
        token = client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                                     ).json["resultValue"]["token"]
        v = get(client, token, "/api/v1/ops/resources").json["resultValue"]
        assert v["providers"] == [] and [h["host"] for h in v["hosts"]] == ["node-z"]
        r = get(client, token, "/api/v1/ops/runs", appId="any")  # no share plugin: no run has an app
        assert r.status_code == 200 and r.json["resultValue"]["total"] == 0
    finally:
        app.hub.close()


def test_licences_revoked_are_not_counted(desk):
    from rpahub_plugins.ops.stats import Stats

    lic = desk.ex.licences.issue(supplier="v", robot_id="r9", days=2)
    assert [x["id"] for x in Stats(desk.hub).licences(7)] == [lic.id]
    desk.ex.licences.revoke(lic.id)
    assert Stats(desk.hub).licences(7) == [] and Licence.select().count() == 1
