"""The operations center in the console: the big screen (server-drawn SVG, self-refreshing,
nothing from the network), run analysis along a range and a dimension in the URL, customer
service from report to acceptance, content pages, permissions and CSRF."""

import datetime as dt
import io
import re
import zipfile

import pytest
from console_support import shown, speak

from rpahub_core import db as hubdb
from rpahub_core.testing import bearer
from rpahub_plugins.executors import state as executors
from rpahub_plugins.executors.models import Executor, RunInstance, Supplier
from rpahub_plugins.share.models import App, AppRun, AppVersion

LANGUAGES = ("zh-CN", "en")
ALLOWED_URLS = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}  # XML namespaces, never fetched




class World:
    """Apps and their runs written into the tables with the timestamps a test needs."""

    def __init__(self, hub):
        self.hub, self.n = hub, 0

    def app(self, name, *, region="江苏", scenario="发票校验", domain="finance"):
        with hubdb.connection():
            self.n += 1
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("main.py", f"print({self.n})")
            pkg = executors(self.hub).runs.add_package(name=f"p{self.n}", version="1", data=buf.getvalue(),
                                                      created_by="maker")
            app = App.create(name=name, region=region, scenario=scenario, domain=domain, vendor="A",
                             owner_id="maker", owner_name="maker", state="listed")
            version = AppVersion.create(app=app, version="1", package_id=pkg.id, sha256=pkg.file.sha256,
                                        created_by="maker", created_by_id="maker", state="approved")
            app.pkg, app.v = pkg, version
        return app

    def run(self, app, when, result="success", user="u1"):
        with hubdb.connection():
            run = RunInstance.create(package=app.pkg.id, state=result, user_id=user, user_name=user,
                                     created_at=when, started_at=when, finished_at=when + dt.timedelta(seconds=40))
            AppRun.create(run_id=run.id, app=app.id, version=app.v.id, user_id=user, created_at=when)


@pytest.fixture
def world(app):
    return World(app.hub)


def test_the_big_screen_draws_its_charts_on_the_server_and_refreshes_itself(app, client, console, person, world):
    invoice = world.app("发票校验机器人")
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    world.run(invoice, now - dt.timedelta(minutes=5))
    world.run(invoice, now - dt.timedelta(minutes=3), result="failed")
    with hubdb.connection():
        Supplier.create(code="v", secret_enc="x")
        Executor.create(id="r1", supplier="v", state="online")
    token = person("screen.viewer", "analytics.read", "runs.read")
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(console(token).get("/console/operations/screen"))
        assert re.search(r'<body class="screen" data-refresh="30"', text)
        assert text.count("<svg") >= 4 and 'class="pygal-chart"' in text
        assert "发票校验机器人" in text  # the top apps chart
        # Nothing the page loads comes from the network: scripts and stylesheets are our own,
        # and the charts carry no script and no link to pygal's site.
        loaded = re.findall(r'<(?:script|link)\b[^>]*\b(?:src|href)="([^"]*)"', text)
        assert loaded and all(u.startswith("/console/static/") for u in loaded), loaded
        assert set(re.findall(r"https?://[^\s\"'<>)]+", text)) <= ALLOWED_URLS
        assert "<script>" not in text and "<script type" not in text
    assert ">50.0 %<" in text  # one success, one failure in the last 7 days
    assert "Runs waiting for an executor" in text  # from the monitoring figures, with runs.read


def test_the_analysis_follows_the_range_and_dimension_in_its_address(client, console, person, world):
    js = world.app("江苏发票", region="江苏", domain="finance")
    zj = world.app("浙江入职", region="浙江", scenario="入职", domain="hr")
    may = dt.datetime(2024, 5, 10, 2, 0)
    for _ in range(3):
        world.run(js, may)
    world.run(zj, may, result="failed")
    world.run(zj, dt.datetime(2024, 7, 1, 2, 0))
    token = person("analyst", "analytics.read")
    for language in LANGUAGES:
        speak(client, token, language)
        c = console(token)
        text = shown(c.get("/console/operations/analysis", by="region", **{"from": "2024-05-01", "to": "2024-05-31"}))
        assert 'data-total="runs">4<' in text and "<svg" in text
        assert re.search(r'<tr data-key="江苏"><td>江苏</td><td>3</td>', text)
        assert re.search(r'<tr data-key="浙江"><td>浙江</td><td>1</td><td>0</td><td>1</td>', text)
        text = shown(c.get("/console/operations/analysis", by="domain", **{"from": "2024-05-01", "to": "2024-07-31"}))
        assert 'data-total="runs">5<' in text
        assert 'data-key="hr"><td>' in text and 'data-key="finance"' in text and 'data-key="江苏"' not in text
        text = shown(c.get("/console/operations/analysis", by="day", **{"from": "2024-06-01", "to": "2024-06-07"}))
        assert 'data-total="runs">0<' in text and text.count('<tr data-key="2024-06-') == 7
        # A range the API refuses: its message beside the field, the typed value kept.
        text = shown(c.get("/console/operations/analysis", **{"from": "2024-06-09", "to": "2024-06-01"}))
        assert re.search(r'id="e-from">2024-06-09 is after to', text) and 'value="2024-06-09"' in text


def test_scenarios_hot_apps_news_academy_and_the_knowledge_base(client, console, person, world, admin_token):
    world.app("江苏发票", region="江苏")
    h = bearer(admin_token)
    r = client.simulate_post("/api/v1/news", headers=h, json={"title": "国网江苏上线发票机器人", "summary": "节省人力",
                                                                "body": "第一段\n\n第二段", "published": True})
    assert r.status_code == 201, r.json
    course = client.simulate_post("/api/v1/academy/courses", headers=h, json={
        "title": "RPA 入门", "published": True, "lessons": [{"title": "认识执行器", "durationMin": 10},
                                                           {"title": "第一个流程", "durationMin": 20}]}).json["resultValue"]
    r = client.simulate_post("/api/v1/knowledge/articles", headers=h, json={
        "title": "发票校验场景说明", "kind": "scenario", "body": "适用于增值税发票校验。", "published": True})
    assert r.status_code == 201, r.json
    token = person("learner", "analytics.read", "academy.learn")
    for language in LANGUAGES:
        speak(client, token, language)
        c = console(token)
        text = shown(c.get("/console/operations/scenarios"))
        assert "江苏" in text and "发票校验" in text and "<svg" in text
        shown(c.get("/console/operations/hot-apps", days="7"))
        assert 'class="field has-error"' in shown(c.get("/console/operations/hot-apps", days="0"))
        text = shown(c.get("/console/operations/news"))
        assert "国网江苏上线发票机器人" in text
        news_id = re.search(r'/console/operations/news/(\w+)"', text).group(1)
        text = shown(c.get(f"/console/operations/news/{news_id}"))
        assert "<p>第一段</p>\n<p>第二段</p>" in text and "/publish" not in text  # no content.manage
        text = shown(c.get("/console/operations/knowledge", q="发票"))
        assert "<mark>发票</mark>" in text
        shown(c.get("/console/operations/academy"))
    c = console(token)
    page = c.post(f"/console/operations/academy/{course['id']}/enrol")
    assert page.status == 303
    lesson = course["lessons"][0]["id"]
    assert c.post(f"/console/operations/academy/{course['id']}/lessons/{lesson}/progress",
                  {"completed": "true"}).status == 303
    text = shown(c.get(f"/console/operations/academy/{course['id']}/lessons/{lesson}"))
    assert "认识执行器" in text and "/progress" in text and 'rel="next"' in text
    text = shown(c.get("/console/operations/academy/mine"))
    assert "RPA 入门" in text and 'value="1"' in text  # one of two lessons done


def test_feedback_from_report_to_acceptance(client, console, person):
    reporter = person("li.na", "feedback.submit")
    handler = person("wang.gang", "feedback.handle")
    r = console(reporter)
    # A report without a title: the API's message beside the field, the text kept.
    page = r.post("/console/operations/feedback/new", {"title": "  ", "description": "每天早上失败"})
    text = shown(page, 400)
    assert 'id="e-title"' in text and "每天早上失败" in text
    page = r.post("/console/operations/feedback/new", {"title": "发票机器人报错", "severity": "high",
                                                       "category": "bug", "description": "每天早上失败"})
    assert page.status == 303, page.text[-1500:]
    detail = page.location.split("?")[0]
    text = shown(r.follow(page))
    assert "发票机器人报错" in text and "/accept" not in text

    h = console(handler)
    for language in LANGUAGES:
        speak(client, handler, language)
        text = shown(h.get("/console/operations/feedback/desk"))
        assert "发票机器人报错" in text
    feedback_id = detail.rsplit("/", 1)[1]
    offered = shown(h.get(detail)).split('<datalist id="handlers">', 1)[1].split("</datalist>", 1)[0]
    assert 'value="wang.gang"' in offered and 'value="li.na"' not in offered  # who holds feedback.handle
    assert h.post(f"/console/operations/feedback/{feedback_id}/assign").status == 303
    text = shown(h.get(detail))
    assert "/resolve" in text
    assert h.post(f"/console/operations/feedback/{feedback_id}/resolve", {"comment": "已修复证书"}).status == 303

    for language in LANGUAGES:
        speak(client, reporter, language)
        text = shown(r.get(detail))
        assert "已修复证书" in text and f"/operations/feedback/{feedback_id}/accept" in text
    assert r.post(f"/console/operations/feedback/{feedback_id}/accept").status == 303
    text = shown(r.get(detail))
    assert 'class="state state-accepted"' in text
    # The reporter may not take feedback: the action is refused, not merely hidden.
    assert r.post(f"/console/operations/feedback/{feedback_id}/assign").status == 403
    # A reader (feedback.read only) has the desk in the menu too, and sees everyone's feedback there.
    reader = console(person("zhou.yan", "feedback.read"))
    assert "/console/operations/feedback/desk" in shown(reader.get("/console"))
    assert "发票机器人报错" in shown(reader.get("/console/operations/feedback/desk"))


def test_pages_need_their_permission_and_forms_their_csrf_token(client, console, person):
    token = person("zhao.min", "feedback.submit")
    c = console(token)
    home = shown(c.get("/console"))
    assert "/console/operations/screen" not in home and "/console/operations/feedback/desk" not in home
    assert "/console/operations/feedback\"" in home  # what the person may use is listed
    for path in ("/console/operations/screen", "/console/operations/analysis", "/console/operations/feedback/desk",
                 "/console/operations/news/new"):
        page = c.get(path)
        assert page.status == 403, path
    page = c.post("/console/operations/feedback/new", {"title": "x"}, csrf="forged")
    assert page.status == 403
    assert client.simulate_get("/api/v1/feedback", headers=bearer(token)).json["resultValue"]["total"] == 0


def test_an_editor_writes_publishes_and_deletes_news(client, console, person):
    editor = person("editor", "content.manage")
    c = console(editor)
    for language in LANGUAGES:
        speak(client, editor, language)
        text = shown(c.post("/console/operations/news/new", {"kind": "case", "title": "", "body": "正文"}), 400)
        assert 'id="e-title"' in text and "正文" in text
    page = c.post("/console/operations/news/new", {"kind": "case", "title": "配网抢修案例", "tags": "配网, 抢修"})
    assert page.status == 303, page.text[-1500:]
    item = page.location.split("?")[0]
    news_id = item.rsplit("/", 1)[1]
    text = shown(c.follow(page))
    assert "<code>配网</code><code>抢修</code>" in text and 'value="true"' in text  # a draft: publish offered
    reader = console(person("reader", "analytics.read"))
    assert "配网抢修案例" not in shown(reader.get("/console/operations/news"))
    assert c.post(f"/console/operations/news/{news_id}/publish", {"published": "true"}).status == 303
    assert "配网抢修案例" in shown(reader.get("/console/operations/news"))
    assert reader.post(f"/console/operations/news/{news_id}/delete").status == 403
    text = shown(c.get(item))
    assert 'data-confirm="' in text
    assert c.post(f"/console/operations/news/{news_id}/delete").status == 303
    assert reader.get(item).status == 404


def test_news_bodies_show_their_markdown_and_never_the_authors_html(client, console, person):
    editor = person("editor", "content.manage")
    c = console(editor)
    body = ("## 抢修经过\n\n**凌晨 3 点**完成隔离。\n\n| 步骤 | 用时 |\n|---|---|\n| 隔离 | 20 分钟 |\n\n"
            "<script>alert(1)</script>\n\n[点我](javascript:alert(1))")
    page = c.post("/console/operations/news/new", {"kind": "case", "title": "配网抢修", "body": body})
    assert page.status == 303, page.text[-1500:]
    text = shown(c.follow(page))
    assert "<h2>抢修经过</h2>" in text and "<strong>凌晨 3 点</strong>" in text and "<td>隔离</td>" in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert 'href="javascript:' not in text


def test_an_editor_writes_changes_publishes_and_deletes_a_knowledge_article(client, console, person, admin_token):
    editor = person("kb.editor", "knowledge.manage")
    c = console(editor)
    for language in LANGUAGES:
        speak(client, editor, language)
        text = shown(c.get("/console/operations/knowledge"))
        assert "/console/operations/knowledge/new" in text and 'id="f-drafts"' in text
        text = shown(c.get("/console/operations/knowledge/new"))
        assert 'id="f-body"' in text and "**" in text  # the Markdown hint
        # Bad input: the API's message beside the field, what was typed kept.
        text = shown(c.post("/console/operations/knowledge/new", {"kind": "scenario", "title": " ",
                                                                  "body": "## 适用范围\n\n增值税发票"}), 400)
        assert re.search(r'id="f-title"[^>]*aria-invalid="true"', text) and 'id="e-title"' in text
        assert "## 适用范围\n\n增值税发票</textarea>" in text and '<option value="scenario" selected>' in text
        text = shown(c.post("/console/operations/knowledge/new", {"kind": "case", "title": "关联应用",
                                                                  "appIds": "nope"}), 400)
        assert re.search(r'id="e-appIds">no app nope<', text) and 'value="关联应用"' in text
        # A preview renders the Markdown and saves nothing.
        text = shown(c.post("/console/operations/knowledge/new", {"kind": "feature", "title": "预览",
                                                                  "body": "## 步骤\n\n**先**登录", "preview": "1"}))
        assert 'id="preview"' in text and "<h2>步骤</h2>" in text and "<strong>先</strong>" in text
    assert client.simulate_get("/api/v1/knowledge/articles", headers=bearer(editor),
                               params={"drafts": "true"}).json["resultValue"]["total"] == 0
    page = c.post("/console/operations/knowledge/new", {"kind": "scenario", "title": "发票校验场景",
                                                        "body": "## 适用范围\n\n增值税**专用**发票", "tags": "发票, 财务"})
    assert page.status == 303, page.text[-1500:]
    item = page.location.split("?")[0]
    article_id = item.rsplit("/", 1)[1]
    for language in LANGUAGES:
        speak(client, editor, language)
        text = shown(c.follow(page) if language == "zh-CN" else c.get(item))
        assert "<h2>适用范围</h2>" in text and "<strong>专用</strong>" in text
        assert "<code>发票</code><code>财务</code>" in text and 'value="true"' in text  # a draft: publish offered
        assert f"/operations/knowledge/{article_id}/edit" in text and 'data-confirm="' in text
    reader_token = person("kb.reader", "analytics.read")
    reader = console(reader_token)
    assert "发票校验场景" not in shown(reader.get("/console/operations/knowledge"))
    assert reader.get(item).status == 404  # a draft does not exist for readers
    assert c.post(f"/console/operations/knowledge/{article_id}/publish", {"published": "true"}).status == 303
    for language in LANGUAGES:
        speak(client, reader_token, language)
        assert "发票校验场景" in shown(reader.get("/console/operations/knowledge"))
        assert "<mark>发票</mark>" in shown(reader.get("/console/operations/knowledge", q="发票"))
        text = shown(reader.get(item))
        assert "/publish" not in text and "/edit" not in text and "/delete" not in text
    # The edit form shows the article; a change is saved and read at once.
    for language in LANGUAGES:
        speak(client, editor, language)
        text = shown(c.get(f"{item}/edit"))
        assert 'value="发票校验场景"' in text and 'value="发票, 财务"' in text and "增值税**专用**发票</textarea>" in text
        text = shown(c.post(f"{item}/edit", {"kind": "scenario", "title": "", "body": "改过的正文"}), 400)
        assert 'id="e-title"' in text and "改过的正文</textarea>" in text
    page = c.post(f"{item}/edit", {"kind": "case", "title": "发票校验案例", "body": "新的正文", "tags": "发票"})
    assert page.status == 303, page.text[-1500:]
    text = shown(reader.get(item))
    assert "发票校验案例" in text and "新的正文" in text
    row = client.simulate_get(f"/api/v1/knowledge/articles/{article_id}", headers=bearer(editor)).json["resultValue"]
    assert row["kind"] == "case" and row["tags"] == ["发票"] and row["published"] is True  # still published
    # A form loaded before someone else saved is refused, and nothing is overwritten.
    loaded = re.search(r'name="ifUpdatedAt" value="([^"]+)"', c.get(f"{item}/edit").text).group(1)
    client.simulate_patch(f"/api/v1/knowledge/articles/{article_id}", headers=bearer(editor), json={"body": "同事的修改"})
    stale = shown(c.post(f"{item}/edit", {"kind": "case", "title": "覆盖", "body": "x", "ifUpdatedAt": loaded}), 409)
    assert 'role="alert"' in stale and "同事的修改" in client.simulate_get(
        f"/api/v1/knowledge/articles/{article_id}", headers=bearer(editor)).json["resultValue"]["body"]
    assert c.post(f"/console/operations/knowledge/{article_id}/publish", {"published": "false"}).status == 303
    assert reader.get(item).status == 404
    assert c.post(f"/console/operations/knowledge/{article_id}/delete").status == 303
    assert c.get(item).status == 404


def test_writing_the_knowledge_base_needs_knowledge_manage_and_the_csrf_token(client, console, person, admin_token):
    r = client.simulate_post("/api/v1/knowledge/articles", headers=bearer(admin_token), json={
        "title": "执行器介绍", "body": "正文", "published": True})
    article_id = r.json["resultValue"]["id"]
    reader = console(person("kb.reader", "analytics.read"))
    text = shown(reader.get("/console/operations/knowledge"))
    assert "/console/operations/knowledge/new" not in text and 'id="f-drafts"' not in text
    assert reader.get("/console/operations/knowledge/new").status == 403
    assert reader.get(f"/console/operations/knowledge/{article_id}/edit").status == 403
    assert reader.post("/console/operations/knowledge/new", {"title": "越权"}).status == 403
    for action in ("edit", "publish", "delete"):
        assert reader.post(f"/console/operations/knowledge/{article_id}/{action}",
                           {"title": "越权", "published": "false"}).status == 403, action
    editor = console(person("kb.editor", "knowledge.manage"))
    assert editor.post("/console/operations/knowledge/new", {"title": "伪造"}, csrf="forged").status == 403
    assert editor.post(f"/console/operations/knowledge/{article_id}/delete", csrf="forged").status == 403
    page = client.simulate_get("/api/v1/knowledge/articles", headers=bearer(admin_token), params={"drafts": "true"})
    assert [a["title"] for a in page.json["resultValue"]["items"]] == ["执行器介绍"]
