"""The operations center (6.4): the big screen and run and scenario analyses computed in
SQL with day boundaries in the reader's time zone, customer service through an explicit
lifecycle (report, handle, verify), news and cases, hot apps, and the RPA academy."""

import datetime as dt
import io
import zipfile
from zoneinfo import ZoneInfo

import pytest

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.testing import bearer
from rpahub_plugins.audit_log.models import AuditEntry
from rpahub_plugins.executors import state as executors
from rpahub_plugins.executors.models import Executor, RunInstance, Supplier
from rpahub_plugins.operations.sqltime import offset_segments
from rpahub_plugins.share.models import App, AppRun, AppVersion, Subscription

UTC = dt.UTC


def at(text):
    """A naive UTC instant from 'YYYY-MM-DD HH:MM'."""
    return dt.datetime.fromisoformat(text)


class World:
    """Apps, versions, runs and subscriptions written straight into the tables, with the
    timestamps a test needs (the APIs always stamp 'now')."""

    def __init__(self, hub):
        self.hub = hub
        self.n = 0

    def app(self, name, *, region="江苏", scenario="发票校验", domain="finance", vendor="vendor-a", state="listed"):
        with hubdb.connection():
            self.n += 1
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("main.py", f"print({self.n})")
            pkg = executors(self.hub).runs.add_package(name=f"p{self.n}", version="1", data=buf.getvalue(),
                                                      created_by="maker")
            app = App.create(name=name, region=region, scenario=scenario, domain=domain, vendor=vendor,
                             owner_id="maker", owner_name="maker", state=state)
            version = AppVersion.create(app=app, version="1", package_id=pkg.id, sha256=pkg.file.sha256,
                                        created_by="maker", created_by_id="maker", state="approved")
            app.production_version = version.id
            app.save()
            app.pkg, app.v = pkg, version
        return app

    def run(self, app, *, when=None, result="success", user="u1", seconds=60):
        when = when or utcnow()
        with hubdb.connection():
            started = when + dt.timedelta(seconds=5)
            done = result in ("success", "failed", "cancelled")
            run = RunInstance.create(package=app.pkg.id, state=result, user_id=user, user_name=user,
                                     created_at=when, started_at=started if result != "pending" else None,
                                     finished_at=started + dt.timedelta(seconds=seconds) if done else None)
            AppRun.create(run_id=run.id, app=app.id, version=app.v.id, user_id=user, created_at=when)
        return run

    def subscribe(self, app, user, when=None):
        with hubdb.connection():
            Subscription.create(app=app.id, user_id=user, user_name=user, created_at=when or utcnow())


@pytest.fixture
def world(app):
    return World(app.hub)


@pytest.fixture
def analyst(person):
    return bearer(person("analyst", "analytics.read"))


def get(client, headers, path, **params):
    r = client.simulate_get(path, headers=headers, params=params)
    assert r.status_code == 200, r.json
    return r.json["resultValue"]


# -- analytics (6.4.1) -------------------------------------------------------------------------


def test_the_big_screen_counts_everything_it_shows(app, client, world, analyst):
    invoice = world.app("发票校验机器人")
    onboard = world.app("入职办理", domain="hr", scenario="入职")
    world.app("草稿应用", state="draft")
    world.run(invoice)
    world.run(invoice, result="failed", user="u2")
    world.run(onboard)
    world.run(invoice, when=utcnow() - dt.timedelta(days=20))  # before the last 7 days
    world.subscribe(invoice, "u1")
    world.subscribe(onboard, "u2", when=utcnow() - dt.timedelta(days=40))
    with hubdb.connection():
        Supplier.create(code="v", secret_enc="x")
        Executor.create(id="r1", supplier="v", state="online")
        Executor.create(id="r2", supplier="v", state="busy")
        Executor.create(id="r3", supplier="v", state="offline")
        from rpahub_plugins.design.models import Requirement
        from rpahub_plugins.designers.models import Designer, DesignerLease

        for s in ("submitted", "submitted", "accepted"):
            Requirement.create(title="需求", domain="finance", submitter_id="u", submitter_name="u", state=s)
        d1 = Designer.create(name="d1", vendor="v", endpoint="https://d1", secret_hash="a" * 64, registered_by="x")
        Designer.create(name="d2", vendor="v", endpoint="https://d2", secret_hash="b" * 64, registered_by="x",
                        enabled=False)
        DesignerLease.create(designer_id=d1.id, designer_name="d1", user_id="u", user_name="u",
                             token_hash="c" * 64, expires_at=utcnow() + dt.timedelta(hours=1))
        DesignerLease.create(designer_id=d1.id, designer_name="d1", user_id="w", user_name="w",
                             token_hash="d" * 64, expires_at=utcnow() - dt.timedelta(hours=1))

    o = get(client, analyst, "/api/v1/analytics/overview")
    assert o["apps"] == {"total": 3, "byState": {"listed": 2, "draft": 1}, "listed": 2}
    assert o["subscriptions"] == {"total": 2, "last7Days": 1}
    runs = o["runs"]
    assert (runs["total"], runs["today"], runs["last7Days"]) == (4, 3, 3)
    assert runs["successRateLast7Days"] == pytest.approx(2 / 3, abs=1e-4)
    assert runs["byState"] == {"success": 3, "failed": 1}
    assert o["requirements"] == {"total": 3, "byState": {"submitted": 2, "accepted": 1}}
    assert o["executors"] == {"total": 3, "byState": {"online": 1, "busy": 1, "offline": 1}}
    assert o["designers"] == {"registered": 2, "enabled": 1, "inUse": 1, "activeLeases": 1}
    assert [(a["name"], a["runs30Days"]) for a in o["topApps"]] == [("发票校验机器人", 3), ("入职办理", 1)]
    assert o["timeZone"] == "Asia/Shanghai"


def test_runs_are_analysed_by_region_scenario_domain_and_app(client, world, analyst):
    js_invoice = world.app("江苏发票", region="江苏", scenario="发票校验", domain="finance", vendor="A")
    js_hr = world.app("江苏入职", region="江苏", scenario="入职", domain="hr", vendor="B")
    zj_invoice = world.app("浙江发票", region="浙江", scenario="发票校验", domain="finance", vendor="A")
    day = at("2024-05-10 02:00")
    world.run(js_invoice, when=day, user="a", seconds=30)
    world.run(js_invoice, when=day, user="b", seconds=90, result="failed")
    world.run(js_hr, when=day, user="a", seconds=10)
    world.run(zj_invoice, when=day, user="c", seconds=20)
    world.run(zj_invoice, when=day, user="c", result="cancelled", seconds=0)
    world.run(zj_invoice, when=at("2024-06-01 02:00"), user="z")  # outside the range
    span = {"from": "2024-05-01", "to": "2024-05-31"}

    r = get(client, analyst, "/api/v1/analytics/runs", by="region", **span)
    assert [(g["key"], g["runs"], g["successes"], g["failures"], g["cancelled"], g["users"])
            for g in r["groups"]] == [("江苏", 3, 2, 1, 0, 2), ("浙江", 2, 1, 0, 1, 1)]
    js = r["groups"][0]
    assert js["meanDurationS"] == pytest.approx(130 / 3, abs=0.01)
    assert js["successRate"] == pytest.approx(2 / 3, abs=1e-4)
    assert r["totals"]["runs"] == 5 and r["totals"]["users"] == 3  # distinct over all, not a sum

    r = get(client, analyst, "/api/v1/analytics/runs", by="scenario", **span)
    assert [(g["key"], g["runs"]) for g in r["groups"]] == [("发票校验", 4), ("入职", 1)]
    r = get(client, analyst, "/api/v1/analytics/runs", by="domain", **span)
    assert [(g["key"], g["runs"]) for g in r["groups"]] == [("finance", 4), ("hr", 1)]
    r = get(client, analyst, "/api/v1/analytics/runs", by="vendor", region="江苏", **span)
    assert [(g["key"], g["runs"]) for g in r["groups"]] == [("A", 2), ("B", 1)]
    r = get(client, analyst, "/api/v1/analytics/runs", by="app", domain="finance", **span)
    assert [(g["label"], g["runs"]) for g in r["groups"]] == [("江苏发票", 2), ("浙江发票", 2)]
    assert {g["key"] for g in r["groups"]} == {js_invoice.id, zj_invoice.id}


def test_days_follow_the_readers_time_zone(client, world, analyst):
    app = world.app("日报")
    world.run(app, when=at("2024-03-09 17:30"))  # 01:30 on the 10th in Shanghai
    world.run(app, when=at("2024-03-10 04:30"))  # New York: 23:30 on the 9th (EST)
    world.run(app, when=at("2024-03-11 04:30"))  # New York: 00:30 on the 11th (EDT since the 10th)
    span = {"from": "2024-03-09", "to": "2024-03-11"}

    def days(tz):
        r = get(client, analyst, "/api/v1/analytics/runs", by="day", tz=tz, **span)
        return {g["key"]: g["runs"] for g in r["groups"]}

    assert days("Asia/Shanghai") == {"2024-03-09": 0, "2024-03-10": 2, "2024-03-11": 1}
    assert days("UTC") == {"2024-03-09": 1, "2024-03-10": 1, "2024-03-11": 1}
    assert days("America/New_York") == {"2024-03-09": 2, "2024-03-10": 0, "2024-03-11": 1}


def test_offset_segments_find_the_daylight_saving_change():
    ny = ZoneInfo("America/New_York")
    assert offset_segments(ny, at("2024-03-01 00:00"), at("2024-03-31 00:00")) == [
        (at("2024-03-10 07:00"), -5 * 3600), (None, -4 * 3600)]
    assert offset_segments(ZoneInfo("Asia/Shanghai"), at("2024-01-01 00:00"), at("2025-01-01 00:00")) == [
        (None, 8 * 3600)]


def test_without_the_design_plugins_the_screen_says_so_rather_than_failing(app, world):
    from types import SimpleNamespace

    from rpahub_plugins.operations.analytics import Analytics

    world.app("发票校验机器人")
    bare = Analytics(SimpleNamespace(migrations=SimpleNamespace(steps={"share": {}, "executors": {}})))
    with hubdb.connection():
        overview = bare.overview(ZoneInfo("Asia/Shanghai"))
        scenarios = bare.scenarios()
    assert overview["requirements"] is None and overview["designers"] is None
    assert overview["apps"]["listed"] == 1
    assert scenarios["requirementsAvailable"] is False
    assert scenarios["regions"][0]["scenarios"] == [{"scenario": "发票校验", "apps": 1, "listedApps": 1,
                                                    "requirements": 0}]


@pytest.mark.parametrize("params, field", [
    ({"from": "2024-05-10", "to": "2024-05-01"}, "from"),
    ({"from": "2023-01-01", "to": "2024-12-31"}, "to"),
    ({"from": "2024-13-01"}, "from"),
    ({"by": "colour"}, "by"),
    ({"tz": "Mars/Olympus"}, "tz"),
    ({"domain": "astrology"}, "domain"),
])
def test_bad_ranges_and_groupings_are_refused_naming_the_field(client, analyst, params, field):
    r = client.simulate_get("/api/v1/analytics/runs", headers=analyst, params=params)
    assert r.status_code == 400, r.json
    assert r.json["resultHint"].startswith(field), r.json["resultHint"]


def test_analytics_needs_its_permission(client, person):
    nosy = bearer(person("nosy", "apps.use"))
    for path in ("/api/v1/analytics/overview", "/api/v1/analytics/runs", "/api/v1/analytics/scenarios"):
        r = client.simulate_get(path, headers=nosy)
        assert r.status_code == 403 and "analytics.read" in r.json["resultHint"]


def test_scenarios_are_collected_per_region(client, world, analyst):
    world.app("江苏发票", region="江苏", scenario="发票校验")
    world.app("江苏发票二", region="江苏", scenario="发票校验", state="draft")
    world.app("江苏入职", region="江苏", scenario="入职")
    world.app("浙江发票", region="浙江", scenario="发票校验")
    with hubdb.connection():
        from rpahub_plugins.design.models import Requirement

        for region, scenario in (("江苏", "对账"), ("江苏", "发票校验"), ("广东", "巡检")):
            Requirement.create(title="需求", region=region, scenario=scenario, domain="finance", submitter_id="u",
                               submitter_name="u")
    r = get(client, analyst, "/api/v1/analytics/scenarios")
    assert r["requirementsAvailable"] is True
    regions = {x["region"]: x for x in r["regions"]}
    assert [x["region"] for x in r["regions"]] == ["江苏", "广东", "浙江"]
    assert [(s["scenario"], s["apps"], s["listedApps"], s["requirements"]) for s in regions["江苏"]["scenarios"]] \
        == [("发票校验", 2, 1, 1), ("入职", 1, 1, 0), ("对账", 0, 0, 1)]
    assert (regions["江苏"]["apps"], regions["江苏"]["requirements"]) == (3, 2)
    only = get(client, analyst, "/api/v1/analytics/scenarios", region="浙江")["regions"]
    assert [(x["region"], x["scenarios"][0]["scenario"]) for x in only] == [("浙江", "发票校验")]


# -- customer service (6.4.2) ---------------------------------------------------------------------


@pytest.fixture
def desk(client, person, admin_token):
    return {"reporter": bearer(person("reporter", "feedback.submit")),
            "other": bearer(person("other.reporter", "feedback.submit")),
            "handler": bearer(person("handler", "feedback.handle")),
            "handler2": bearer(person("handler2", "feedback.handle")),
            "reader": bearer(person("reader", "feedback.read")),
            "outsider": bearer(person("outsider", "apps.use")),
            "admin": bearer(admin_token)}


def upload(client, headers, name="screen.png", data=b"\x89PNG fake"):
    boundary = "b0undary"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = client.simulate_post("/v1/file/file/upload", body=body,
                             headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 200, r.json
    return r.json["resultValue"]["fileId"]


def act(client, headers, feedback_id, action, **body):
    return client.simulate_post(f"/api/v1/feedback/{feedback_id}/{action}", headers=headers, json=body)


def test_a_problem_is_reported_handled_and_verified_by_its_reporter(app, client, world, desk):
    robot = world.app("发票校验机器人")
    run = world.run(robot, result="failed")
    screenshot = upload(client, desk["reporter"])
    r = client.simulate_post("/api/v1/feedback", headers=desk["reporter"], json={
        "title": "发票金额识别错误", "description": "第 3 张发票金额多了一个 0", "category": "bug",
        "severity": "high", "runId": run.id, "attachments": [screenshot]})
    assert r.status_code == 201, r.json
    fb = r.json["resultValue"]
    assert fb["state"] == "open" and fb["appId"] == robot.id  # the run names its app
    assert fb["attachments"] == [screenshot] and fb["allowedActions"] == ["assign", "close"]
    fid = fb["id"]

    # Resolving what nobody took is refused, naming the state and what is possible.
    r = act(client, desk["handler"], fid, "resolve", comment="fixed")
    assert r.status_code == 409
    assert "open" in r.json["resultHint"] and "assign, close" in r.json["resultHint"]
    assert r.json["resultValue"] == {"state": "open", "allowedActions": ["assign", "close"]}
    assert act(client, desk["reporter"], fid, "assign").status_code == 403  # not a handler

    r = act(client, desk["handler"], fid, "assign", comment="我来看")
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "in_progress"
    assert r.json["resultValue"]["assignee"]["name"] == "handler"
    r = act(client, desk["handler2"], fid, "resolve", comment="me too")
    assert r.status_code == 403 and "handler" in r.json["resultHint"]
    r = act(client, desk["handler"], fid, "resolve")
    assert r.status_code == 400 and r.json["resultHint"].startswith("comment")
    r = act(client, desk["handler"], fid, "resolve", comment="修正了金额字段的小数点识别")
    assert r.json["resultValue"]["state"] == "resolved"
    assert r.json["resultValue"]["resolution"] == "修正了金额字段的小数点识别"

    # Only the reporter verifies: handlers lack the permission, other reporters are not them.
    assert act(client, desk["handler"], fid, "accept").status_code == 403
    r = act(client, desk["other"], fid, "accept")
    assert r.status_code in (403, 404)  # another reporter does not even see it
    r = act(client, desk["reporter"], fid, "reopen")
    assert r.status_code == 400 and r.json["resultHint"].startswith("comment")
    r = act(client, desk["reporter"], fid, "reopen", comment="第 5 张还是错的")
    assert r.json["resultValue"]["state"] == "reopened"

    # Reassigned to a named handler; a person without feedback.handle cannot be one.
    r = act(client, desk["handler"], fid, "assign", assigneeId="reporter")
    assert r.status_code == 400 and r.json["resultHint"].startswith("assigneeId")
    r = act(client, desk["handler"], fid, "assign", assigneeId="handler2")
    assert r.json["resultValue"]["assignee"]["name"] == "handler2"
    act(client, desk["handler2"], fid, "resolve", comment="两处都修了")
    r = act(client, desk["reporter"], fid, "accept", comment="验收通过")
    assert r.status_code == 200 and r.json["resultValue"]["state"] == "accepted"
    r = act(client, desk["reporter"], fid, "accept")
    assert r.status_code == 409 and r.json["resultValue"]["allowedActions"] == ["close"]

    # Closing is for administrators.
    assert act(client, desk["handler"], fid, "close").status_code == 403
    r = act(client, desk["admin"], fid, "close", comment="归档")
    assert r.json["resultValue"]["state"] == "closed" and r.json["resultValue"]["allowedActions"] == []

    history = r.json["resultValue"]["history"]
    assert [(h["action"], h["fromState"], h["toState"], h["actor"]["name"]) for h in history] == [
        ("submit", "", "open", "reporter"),
        ("assign", "open", "in_progress", "handler"),
        ("resolve", "in_progress", "resolved", "handler"),
        ("reopen", "resolved", "reopened", "reporter"),
        ("assign", "reopened", "in_progress", "handler"),
        ("resolve", "in_progress", "resolved", "handler2"),
        ("accept", "resolved", "accepted", "reporter"),
        ("close", "accepted", "closed", "admin"),
    ]
    assert history[3]["comment"] == "第 5 张还是错的" and all(h["at"] for h in history)
    assert "handler2" in history[4]["comment"]
    with hubdb.connection():
        audit = [(a.action, a.actor_name, a.result) for a in
                 AuditEntry.select().where(AuditEntry.action.startswith("feedback.")).order_by(AuditEntry.id)]
    assert ("feedback.accept", "reporter", "ok") in audit
    assert ("feedback.resolve", "handler", "failed") in audit
    assert ("feedback.assign", "reporter", "denied") in audit


def test_feedback_is_seen_by_its_people_and_listed_with_filters(client, world, desk):
    robot = world.app("发票校验机器人")

    def report(who, title, **extra):
        r = client.simulate_post("/api/v1/feedback", headers=desk[who], json={"title": title, **extra})
        assert r.status_code == 201, r.json
        return r.json["resultValue"]["id"]

    mine = report("reporter", "识别错误", appId=robot.id)
    theirs = report("other", "太慢了", category="performance")
    act(client, desk["handler"], theirs, "assign")

    def listed(who, **params):
        return [x["id"] for x in get(client, desk[who], "/api/v1/feedback", **params)["items"]]

    assert listed("reporter") == [mine]
    assert set(listed("reader")) == set(listed("handler")) == {mine, theirs}
    assert listed("handler", assignedToMe="true") == [theirs]
    assert listed("reader", state="open") == [mine]
    assert set(listed("reader", state=["open", "in_progress"])) == {mine, theirs}
    assert listed("reader", appId=robot.id) == [mine]
    assert listed("reader", category="performance") == [theirs]
    assert listed("other", mine="true") == [theirs]
    page = get(client, desk["reader"], "/api/v1/feedback", pageSize=1)
    assert page["total"] == 2 and len(page["items"]) == 1

    assert client.simulate_get(f"/api/v1/feedback/{theirs}", headers=desk["reporter"]).status_code == 404
    assert client.simulate_get(f"/api/v1/feedback/{theirs}", headers=desk["reader"]).status_code == 200
    assert client.simulate_get("/api/v1/feedback", headers=desk["outsider"]).status_code == 403
    r = client.simulate_post("/api/v1/feedback", headers=desk["reader"], json={"title": "x"})
    assert r.status_code == 403 and "feedback.submit" in r.json["resultHint"]

    # Comments: the reporter and the handlers talk on the record.
    r = client.simulate_post(f"/api/v1/feedback/{theirs}/comments", headers=desk["other"],
                             json={"text": "每次都要 5 分钟"})
    assert r.status_code == 201
    assert client.simulate_post(f"/api/v1/feedback/{theirs}/comments", headers=desk["reporter"],
                                json={"text": "+1"}).status_code == 404
    detail = get(client, desk["handler"], f"/api/v1/feedback/{theirs}")
    assert [(h["kind"], h["comment"]) for h in detail["history"]][-1] == ("comment", "每次都要 5 分钟")


@pytest.mark.parametrize("body, field", [
    ({"title": " "}, "title"),
    ({"title": "x", "severity": "apocalyptic"}, "severity"),
    ({"title": "x", "appId": "nope"}, "appId"),
    ({"title": "x", "runId": "nope"}, "runId"),
    ({"title": "x", "attachments": ["nope"]}, "attachments.0"),
    ({"title": "x", "surprise": 1}, "surprise"),
])
def test_bad_feedback_is_refused_naming_the_field(client, desk, body, field):
    r = client.simulate_post("/api/v1/feedback", headers=desk["reporter"], json=body)
    assert r.status_code == 400, r.json
    assert r.json["resultHint"].startswith(field), r.json["resultHint"]


def test_feedback_cannot_attach_someone_elses_file_or_a_run_of_another_app(client, world, desk):
    theirs = upload(client, desk["other"])
    r = client.simulate_post("/api/v1/feedback", headers=desk["reporter"], json={"title": "x",
                                                                               "attachments": [theirs]})
    assert r.status_code == 400 and "attachments.0" in r.json["resultHint"]
    a, b = world.app("甲"), world.app("乙")
    run = world.run(a)
    r = client.simulate_post("/api/v1/feedback", headers=desk["reporter"],
                             json={"title": "x", "appId": b.id, "runId": run.id})
    assert r.status_code == 400 and r.json["resultHint"].startswith("runId")


def test_a_stale_version_is_refused(client, desk):
    fid = client.simulate_post("/api/v1/feedback", headers=desk["reporter"],
                               json={"title": "x"}).json["resultValue"]["id"]
    assert act(client, desk["handler"], fid, "assign", version=1).status_code == 200
    r = act(client, desk["handler2"], fid, "assign", version=1)
    assert r.status_code == 409 and r.json["resultHint"].startswith("version")


# -- news, cases and hot apps (6.4.3a–b) ---------------------------------------------------------


@pytest.fixture
def editor(person):
    return bearer(person("editor", "content.manage"))


@pytest.fixture
def reader(person):
    return bearer(person("reader"))


def test_news_are_written_by_editors_and_read_by_everyone_once_published(client, editor, reader):
    body = "## 成效\n\n<img src=x onerror=alert(1)> 节省 **3000** 工时"
    r = client.simulate_post("/api/v1/news", headers=editor, json={
        "kind": "case", "title": "江苏公司财务机器人案例", "summary": "一年节省 3000 工时", "body": body,
        "region": "江苏", "tags": ["财务"]})
    assert r.status_code == 201, r.json
    case = r.json["resultValue"]
    assert case["published"] is False and case["publishedAt"] is None
    assert client.simulate_get(f"/api/v1/news/{case['id']}", headers=reader).status_code == 404
    assert get(client, reader, "/api/v1/news")["items"] == []
    assert get(client, reader, "/api/v1/news", drafts="true")["items"] == []  # drafts are for editors
    assert get(client, editor, "/api/v1/news", drafts="true")["total"] == 1

    r = client.simulate_patch(f"/api/v1/news/{case['id']}", headers=editor, json={"published": True})
    published_at = r.json["resultValue"]["publishedAt"]
    assert published_at
    news = client.simulate_post("/api/v1/news", headers=editor, json={"title": "行业动态", "published": True})
    assert news.status_code == 201
    item = get(client, reader, f"/api/v1/news/{case['id']}")
    assert item["body"] == body and item["bodyFormat"] == "markdown"  # as written; rendering is the reader's
    assert [x["kind"] for x in get(client, reader, "/api/v1/news", kind="case")["items"]] == ["case"]
    assert get(client, reader, "/api/v1/news", region="江苏", tag="财务")["total"] == 1
    assert "body" not in get(client, reader, "/api/v1/news")["items"][0]

    # Unpublishing and republishing keeps the first publication date.
    client.simulate_patch(f"/api/v1/news/{case['id']}", headers=editor, json={"published": False})
    r = client.simulate_patch(f"/api/v1/news/{case['id']}", headers=editor, json={"published": True})
    assert r.json["resultValue"]["publishedAt"] == published_at

    assert client.simulate_post("/api/v1/news", headers=reader, json={"title": "x"}).status_code == 403
    assert client.simulate_delete(f"/api/v1/news/{case['id']}", headers=reader).status_code == 403
    r = client.simulate_post("/api/v1/news", headers=editor, json={"title": "x", "kind": "gossip"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("kind")
    assert client.simulate_delete(f"/api/v1/news/{case['id']}", headers=editor).status_code == 200
    assert client.simulate_get(f"/api/v1/news/{case['id']}", headers=editor).status_code == 404


def test_hot_apps_rank_recent_runs_and_subscriptions(client, world, reader):
    busy = world.app("跑得多")
    loved = world.app("订阅多")
    old = world.app("过气应用")
    gone = world.app("已下架", state="delisted")
    world.app("无人问津")
    for _ in range(5):
        world.run(busy)
    for user in ("a", "b"):
        world.subscribe(loved, user)
    world.run(loved)
    for _ in range(9):
        world.run(old, when=utcnow() - dt.timedelta(days=45))
    world.subscribe(old, "a", when=utcnow() - dt.timedelta(days=45))
    for _ in range(20):
        world.run(gone)

    hot = get(client, reader, "/api/v1/hot-apps")
    assert [(x["name"], x["score"], x["runs"], x["newSubscriptions"]) for x in hot["items"]] == [
        ("订阅多", 7, 1, 2), ("跑得多", 5, 5, 0)]
    assert hot["items"][0]["rank"] == 1 and hot["items"][0]["subscribers"] == 2
    wide = get(client, reader, "/api/v1/hot-apps", days=60)["items"]
    assert [x["name"] for x in wide] == ["过气应用", "订阅多", "跑得多"]
    assert wide[0]["score"] == 9 + 3
    r = client.simulate_get("/api/v1/hot-apps", headers=reader, params={"days": 0})
    assert r.status_code == 400 and r.json["resultHint"].startswith("days")


# -- the academy (6.4.3c) --------------------------------------------------------------------------


@pytest.fixture
def course(client, editor):
    r = client.simulate_post("/api/v1/academy/courses", headers=editor, json={
        "title": "RPA 入门", "summary": "从零开始", "published": True, "tags": ["入门"], "lessons": [
            {"title": "什么是 RPA", "body": "# RPA\n机器人流程自动化", "durationMin": 10},
            {"title": "第一个流程", "body": "打开设计器……", "durationMin": 20},
            {"title": "发布到应用市场", "durationMin": 15}]})
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def test_learners_enrol_and_their_progress_is_shown(client, person, editor, course):
    learner = bearer(person("learner", "academy.learn"))
    cid = course["id"]
    lessons = [x["id"] for x in course["lessons"]]
    assert [x["position"] for x in course["lessons"]] == [1, 2, 3] and course["durationMin"] == 45

    r = client.simulate_put(f"/api/v1/academy/courses/{cid}/lessons/{lessons[0]}/progress", headers=learner,
                            json={})
    assert r.status_code == 409 and "enrol" in r.json["resultHint"]
    r = client.simulate_put(f"/api/v1/academy/courses/{cid}/enrolment", headers=learner)
    assert r.status_code == 200 and r.json["resultValue"]["myProgress"]["enrolled"] is True
    r = client.simulate_put(f"/api/v1/academy/courses/{cid}/lessons/{lessons[0]}/progress", headers=learner,
                            json={})
    mine = r.json["resultValue"]["myProgress"]
    assert (mine["completedLessons"], mine["totalLessons"], mine["percent"]) == (1, 3, 33.3)

    detail = get(client, learner, f"/api/v1/academy/courses/{cid}")
    assert detail["lessons"][0]["completedAt"] and detail["lessons"][1]["completedAt"] is None
    assert detail["myProgress"]["percent"] == 33.3 and detail["myProgress"]["completed"] is False
    for lesson in lessons[1:]:
        client.simulate_put(f"/api/v1/academy/courses/{cid}/lessons/{lesson}/progress", headers=learner, json={})
    done = get(client, learner, f"/api/v1/academy/courses/{cid}")["myProgress"]
    assert done["percent"] == 100.0 and done["completed"] is True and done["completedAt"]
    [enrolled] = get(client, learner, "/api/v1/academy/enrolments")["items"]
    assert (enrolled["id"], enrolled["percent"], enrolled["completed"]) == (cid, 100.0, True)

    # A new lesson, placed first, makes the course unfinished again.
    r = client.simulate_post(f"/api/v1/academy/courses/{cid}/lessons", headers=editor,
                             json={"title": "课前准备", "position": 1, "videoFileId": None})
    assert r.status_code == 201 and r.json["resultValue"]["position"] == 1
    detail = get(client, learner, f"/api/v1/academy/courses/{cid}")
    assert [x["title"] for x in detail["lessons"]][:2] == ["课前准备", "什么是 RPA"]
    assert (detail["myProgress"]["percent"], detail["myProgress"]["completed"]) == (75.0, False)
    lesson = get(client, learner, f"/api/v1/academy/courses/{cid}/lessons/{lessons[0]}")
    assert lesson["body"] == "# RPA\n机器人流程自动化" and lesson["completedAt"]

    # Someone else's progress is their own.
    other = bearer(person("other.learner", "academy.learn"))
    assert get(client, other, f"/api/v1/academy/courses/{cid}")["myProgress"]["enrolled"] is False


def test_the_academy_refuses_what_it_should(client, person, editor, course):
    reader = bearer(person("reader"))
    cid = course["id"]
    assert get(client, reader, "/api/v1/academy/courses")["total"] == 1
    r = client.simulate_put(f"/api/v1/academy/courses/{cid}/enrolment", headers=reader)
    assert r.status_code == 403 and "academy.learn" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/academy/courses", headers=reader, json={"title": "x"})
    assert r.status_code == 403
    r = client.simulate_post(f"/api/v1/academy/courses/{cid}/lessons", headers=editor,
                             json={"title": "x", "durationMin": -1})
    assert r.status_code == 400 and r.json["resultHint"].startswith("durationMin")
    r = client.simulate_post(f"/api/v1/academy/courses/{cid}/lessons", headers=editor,
                             json={"title": "x", "videoFileId": "nope"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("videoFileId")

    draft = client.simulate_post("/api/v1/academy/courses", headers=editor,
                                 json={"title": "草稿课程"}).json["resultValue"]
    assert client.simulate_get(f"/api/v1/academy/courses/{draft['id']}", headers=reader).status_code == 404
    learner = bearer(person("learner", "academy.learn"))
    assert client.simulate_put(f"/api/v1/academy/courses/{draft['id']}/enrolment",
                               headers=learner).status_code == 404
    assert [c["title"] for c in get(client, reader, "/api/v1/academy/courses")["items"]] == ["RPA 入门"]
    listed = get(client, reader, "/api/v1/academy/courses")["items"][0]
    assert (listed["lessonCount"], listed["durationMin"]) == (3, 45)


def test_a_learner_watches_a_lessons_video_without_files_read(client, person, editor, course, admin_token):
    video = upload(client, bearer(admin_token), name="intro.mp4", data=b"\x00\x00\x00\x18ftypmp42 the lesson")
    cid = course["id"]
    r = client.simulate_post(f"/api/v1/academy/courses/{cid}/lessons", headers=editor,
                             json={"title": "视频课", "videoFileId": video})
    assert r.status_code == 201, r.json
    url = r.json["resultValue"]["videoUrl"]
    learner = bearer(person("viewer", "academy.learn"))
    whole = client.simulate_get(url, headers=learner)
    assert whole.status_code == 200 and whole.content.endswith(b"the lesson")
    assert client.simulate_get(f"/api/v1/files/{video}/content", headers=learner).status_code == 403
    part = client.simulate_get(url, headers={**learner, "Range": "bytes=0-3"})
    assert part.status_code == 206 and part.content == b"\x00\x00\x00\x18"
    plain = course["lessons"][0]
    assert plain["videoUrl"] is None
    assert client.simulate_get(f"/api/v1/academy/courses/{cid}/lessons/{plain['id']}/video",
                               headers=learner).status_code == 404


def test_handlers_are_offered_to_whoever_assigns_feedback(client, desk):
    r = client.simulate_get("/api/v1/feedback/handlers", headers=desk["handler"])
    names = [p["username"] for p in r.json["resultValue"]["items"]]
    assert {"handler", "handler2"} <= set(names) and "reporter" not in names
    assert client.simulate_get("/api/v1/feedback/handlers", headers=desk["reporter"]).status_code == 403
