"""The marketplace in the console: search with facets, an app's page with a run form made
from its parameter schema, subscriptions, downloads and the reviews of app versions."""

import io
import re
import zipfile

import pytest
from console_support import UNTRANSLATED

from rpahub_core.testing import bearer

PARAMS = [
    {"name": "month", "type": "date", "label": "结算月份", "required": True},
    {"name": "limit", "type": "integer", "minimum": 1, "maximum": 500, "default": 50, "description": "最多处理的张数"},
    {"name": "mode", "type": "string", "choices": ["fast", "full"], "default": "fast"},
    {"name": "notify", "type": "boolean", "default": False},
    {"name": "note", "type": "string", "maxLength": 2000},
    {"name": "ratio", "type": "number", "minimum": 0, "maximum": 1},
    {"name": "password", "type": "secret"},
]
LANGUAGES = ("zh-CN", "en")


def package():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print('hello')\n")
    return buf.getvalue()


class Shop:
    """Apps made, reviewed and listed through the API, as their makers and reviewers do."""

    def __init__(self, client, person):
        self.client = client
        self.maker = person("maker", "apps.manage", "apps.read")
        self.reviewer = person("reviewer", "apps.review", "apps.read", "apps.use")

    def call(self, token, method, path, body=None):
        r = self.client.simulate_request(method, path, headers=bearer(token), json=body)
        assert r.status_code < 300, r.json
        return r.json["resultValue"]

    def app(self, name, **fields):
        body = {"name": name, "description": "核对增值税发票与合同金额", "vendor": "国网信通", "region": "江苏",
                "scenario": "发票校验", "domain": "finance", "tags": ["发票"], "parameters": PARAMS, **fields}
        return self.call(self.maker, "POST", "/api/v1/apps", body)

    def version(self, app_id, version):
        boundary = "b0undary"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n{version}\r\n'.encode(),
                 f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="p.zip"\r\n'
                 f"Content-Type: application/zip\r\n\r\n".encode() + package() + b"\r\n",
                 f"--{boundary}--\r\n".encode()]
        r = self.client.simulate_post(f"/api/v1/apps/{app_id}/versions", body=b"".join(parts), headers={
            **bearer(self.maker), "Content-Type": f"multipart/form-data; boundary={boundary}"})
        assert r.status_code == 201, r.json
        return r.json["resultValue"]

    def submit(self, app_id, version):
        v = self.version(app_id, version)
        return self.call(self.maker, "POST", f"/api/v1/apps/{app_id}/versions/{v['id']}/submit",
                         {"reason": "新版本"})["approvalRequestId"]

    def approve(self, request_id):
        self.call(self.reviewer, "POST", f"/api/v1/approvals/{request_id}/approve", {"comment": "ok"})

    def released(self, name, **fields):
        app = self.app(name, **fields)
        self.approve(self.submit(app["id"], "1.0"))
        self.approve(self.call(self.maker, "POST", f"/api/v1/apps/{app['id']}/publish", {})["approvalRequestId"])
        return app


@pytest.fixture
def shop(client, person):
    return Shop(client, person)


def translated(page):
    """Every string of the page's content, and of this center's menu entries, is translated
    (the menu also lists other centers', whose own tests check them)."""
    main = re.search(r"<main id=\"main\">.*</main>", page.text, re.S)
    body = main.group(0) if main else page.text
    assert not UNTRANSLATED.findall(body), UNTRANSLATED.findall(body)
    assert not page.untranslated() & {"Marketplace", "My subscriptions", "Approvals"}
    return page


def field_of(text, name):
    """The HTML of the form field holding the control ``name``."""
    match = re.search(r'<div class="field[^"]*"[^>]*>(?:(?!<div class="field).)*?id="f-' + re.escape(name)
                      + r'".*?</div>', text, re.S)
    assert match, name
    return match.group(0)


def test_search_narrows_the_list_with_facets_and_filters_in_the_url(shop, person, console):
    a = shop.released("发票校验机器人")
    b = shop.released("员工考勤", description="HR attendance", domain="hr", region="浙江", scenario="考勤",
                      tags=["人资"], vendor="供应商乙")
    shop.app("草稿应用")  # never listed
    user = person("li.qiang", "apps.use")
    for language in LANGUAGES:
        c = console(user, language)
        page = translated(c.get("/console/marketplace"))
        assert page.status == 200
        assert a["name"] in page.text and b["name"] in page.text and "草稿应用" not in page.text
        # Facet counts: one app in each domain, linked as a filter.
        assert re.search(r'href="/console/marketplace\?domain=hr"[^>]*>[^<]+</a>\s*<span class="count">\(1\)',
                         page.text)
        tag_facet = re.search(r'id="facet-tag".*?</div>', page.text, re.S).group(0)
        assert re.search(r'href="/console/marketplace\?tag=%E4%BA%BA%E8%B5%84">人资</a>\s*<span class="count">\(1\)',
                         tag_facet)
        for query, shown, hidden in (({"domain": "hr"}, b, a), ({"q": "发票"}, a, b), ({"region": "浙江"}, b, a),
                                     ({"vendor": "国网信通"}, a, b), ({"tag": "人资"}, b, a),
                                     ({"scenario": "发票校验", "domain": "finance"}, a, b)):
            page = translated(c.get("/console/marketplace", **query))
            assert page.status == 200, query
            assert shown["name"] in page.text and hidden["name"] not in page.text, query
            if "q" in query:
                assert 'value="发票"' in page.text
            if "domain" in query:
                assert f'<option value="{query["domain"]}" selected>' in page.text
                assert 'href="/console/marketplace' in page.text and "×</a>" in page.text
        page = translated(c.get("/console/marketplace", q="不存在的应用"))
        assert a["name"] not in page.text and ("没有" in page.text or "No app" in page.text)
        page = translated(c.get("/console/marketplace", domain="astrology"))
        assert page.status == 400 and 'id="f-domain"' in page.text and 'class="error"' in page.text
    page = translated(console(user).get("/console/marketplace", pageSize="1", page="2"))
    assert page.status == 200 and 'rel="prev"' in page.text


def test_the_app_page_has_a_control_per_parameter_and_runs_the_app(shop, person, console, client):
    app = shop.released("发票校验机器人")
    user = person("li.qiang", "apps.use", "runs.read")
    for language in LANGUAGES:
        page = translated(console(user, language).get(f"/console/marketplace/{app['id']}"))
        assert page.status == 200 and "核对增值税发票与合同金额" in page.text
        assert 'action="/console/marketplace/' + app["id"] + '/subscribe"' in page.text
        # Who may read the library sees every version with its state.
        page = translated(console(shop.reviewer, language).get(f"/console/marketplace/{app['id']}"))
        assert re.search(r"<td>1\.0 <strong>[^<]+</strong></td>\s*<td><span class=\"state state-approved\">",
                         page.text)
    c = console(user)
    done = c.post(f"/console/marketplace/{app['id']}/subscribe")
    assert done.status == 303
    page = translated(c.follow(done))
    assert "/run" in page.text

    controls = {"month": 'type="date"', "limit": 'type="number"', "ratio": 'type="number"',
                "notify": 'type="checkbox"', "password": 'type="password"'}
    for name, kind in controls.items():
        html = field_of(page.text, f"arguments.{name}")
        assert kind in html, (name, html)
        assert f'<label for="f-arguments.{name}"' in html
    assert 'required' in field_of(page.text, "arguments.month") and "结算月份" in page.text
    limit = field_of(page.text, "arguments.limit")
    assert 'value="50"' in limit and 'min="1"' in limit and 'max="500"' in limit and "最多处理的张数" in limit
    mode = field_of(page.text, "arguments.mode")
    assert "<select" in mode and '<option value="fast" selected>' in mode and '<option value="full">' in mode
    assert "<textarea" in field_of(page.text, "arguments.note")

    # A bad value: the API's error shows beside its own control, the values are kept.
    form = {"arguments.month": "2026-11-01", "arguments.limit": "9999", "arguments.mode": "fast",
            "arguments.notify": ["false", "true"], "target": "any"}
    for language in LANGUAGES:
        bad = translated(console(user, language).post(f"/console/marketplace/{app['id']}/run", form))
        assert bad.status == 400
        limit = field_of(bad.text, "arguments.limit")
        assert "has-error" in limit and 'id="e-arguments.limit"' in limit and "at most 500" in limit
        assert 'value="9999"' in limit
        assert "checked" in field_of(bad.text, "arguments.notify")
        assert "has-error" not in field_of(bad.text, "arguments.month")
    missing = c.post(f"/console/marketplace/{app['id']}/run", {"arguments.limit": "5"})
    assert missing.status == 400 and "required" in field_of(missing.text, "arguments.month")
    # A pool that does not exist: the error is the pool field's.
    nowhere = c.post(f"/console/marketplace/{app['id']}/run", {**form, "arguments.limit": "5", "target": "pool",
                                                                "pool": "nowhere"})
    assert nowhere.status == 400 and "nowhere" in field_of(nowhere.text, "pool")

    good = c.post(f"/console/marketplace/{app['id']}/run", {**form, "arguments.limit": "20"})
    assert good.status == 303 and good.location.startswith("/console/runs/"), good
    run_id = good.location.rsplit("/", 1)[1]
    traced = client.simulate_get(f"/api/v1/market/{app['id']}/runs", headers=bearer(user)).json["resultValue"]
    [row] = traced["items"]
    assert row["id"] == run_id
    assert {a["name"]: a["value"] for a in row["arguments"]} == {"month": "2026-11-01", "limit": "20",
                                                                 "mode": "fast", "notify": "true"}
    page = translated(c.get(f"/console/marketplace/{app['id']}"))
    assert f'href="/console/runs/{run_id}"' in page.text

    # The package of the version in production, through the console.
    r = client.simulate_get(f"/console/marketplace/{app['id']}/package", cookies={"rpahub_session": user})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(r.content)).namelist() == ["main.py"]


def test_subscriptions_show_what_one_subscribed_to(shop, person, console):
    a = shop.released("发票校验机器人")
    b = shop.released("员工考勤", domain="hr")
    user = person("li.qiang", "apps.use")
    c = console(user)
    page = translated(c.get("/console/marketplace/subscriptions"))
    assert page.status == 200 and a["name"] not in page.text
    c.post(f"/console/marketplace/{a['id']}/subscribe")
    for language in LANGUAGES:
        page = translated(console(user, language).get("/console/marketplace/subscriptions"))
        assert a["name"] in page.text and b["name"] not in page.text
        assert f'action="/console/marketplace/{a["id"]}/unsubscribe"' in page.text and "data-confirm" in page.text
    listing = translated(c.get("/console/marketplace"))
    assert re.search(re.escape(a["name"]) + r'</a>\s*<span class="state state-approved">', listing.text)
    done = c.post(f"/console/marketplace/{a['id']}/unsubscribe", {"next": "/console/marketplace/subscriptions"})
    assert done.status == 303 and done.location == "/console/marketplace/subscriptions"
    assert a["name"] not in c.follow(done).text


def test_reviewers_approve_and_reject_app_versions(shop, console, client):
    app = shop.released("发票校验机器人")
    first = shop.submit(app["id"], "2.0")
    for language in LANGUAGES:
        page = translated(console(shop.reviewer, language).get("/console/marketplace/approvals"))
        assert page.status == 200 and "发票校验机器人 2.0" in page.text
        assert f'action="/console/marketplace/approvals/{first}/reject"' in page.text and "data-confirm" in page.text
        detail = translated(console(shop.reviewer, language).get(f"/console/marketplace/approvals/{first}"))
        assert detail.status == 200 and "新版本" in detail.text
    # The maker (no apps.review) cannot decide it, nor open the page.
    assert console(shop.maker).get("/console/marketplace/approvals").status == 403

    c = console(shop.reviewer)
    for language in LANGUAGES:
        refused = translated(console(shop.reviewer, language).post(
            f"/console/marketplace/approvals/{first}/reject", {"comment": ""}))
        assert refused.status == 400 and 'id="e-comment"' in refused.text
    done = c.post(f"/console/marketplace/approvals/{first}/reject",
                  {"comment": "缺少测试", "next": "/console/marketplace/approvals"})
    assert done.status == 303 and done.location == "/console/marketplace/approvals"
    assert "发票校验机器人 2.0" not in translated(c.follow(done)).text
    version = client.simulate_get(f"/api/v1/apps/{app['id']}/versions/2.0", headers=bearer(shop.maker))
    assert version.json["resultValue"]["state"] == "rejected"
    history = translated(c.get("/console/marketplace/approvals", state="rejected"))
    assert "缺少测试" in history.text

    second = shop.submit(app["id"], "3.0")
    assert c.post(f"/console/marketplace/approvals/{second}/approve", {"comment": "好"}).status == 303
    detail = client.simulate_get(f"/api/v1/apps/{app['id']}", headers=bearer(shop.maker)).json["resultValue"]
    assert {v["version"]: v["state"] for v in detail["versions"]}["3.0"] == "approved"
    page = translated(c.get(f"/console/marketplace/{app['id']}"))
    assert re.search(r"3\.0 <strong>[^<]+</strong></td>\s*<td><span class=\"state state-approved\">", page.text)


def test_without_the_permission_no_page_and_no_menu_entry(shop, person, console):
    app = shop.released("发票校验机器人")
    nobody = console(person("zhao.min", "runs.read"))
    for path in ("/console/marketplace", f"/console/marketplace/{app['id']}", "/console/marketplace/subscriptions",
                 "/console/marketplace/approvals"):
        assert translated(nobody.get(path)).status == 403, path
    assert nobody.post(f"/console/marketplace/{app['id']}/subscribe").status == 403
    home = translated(nobody.get("/console"))
    assert "/console/marketplace" not in home.text

    user = console(person("li.qiang", "apps.use"))
    home = translated(user.get("/console"))
    assert 'href="/console/marketplace"' in home.text and 'href="/console/marketplace/subscriptions"' in home.text
    assert "/console/marketplace/approvals" not in home.text
    assert user.get("/console/marketplace/approvals").status == 403
    reviewer = translated(console(shop.reviewer).get("/console"))
    assert 'href="/console/marketplace/approvals"' in reviewer.text


def test_a_form_without_its_csrf_token_is_refused(shop, person, console, client):
    app = shop.released("发票校验机器人")
    user = person("li.qiang", "apps.use")
    c = console(user)
    assert c.post(f"/console/marketplace/{app['id']}/subscribe", csrf="forged").status == 403
    assert client.simulate_get("/api/v1/subscriptions", headers=bearer(user)).json["resultValue"]["total"] == 0
    c.post(f"/console/marketplace/{app['id']}/subscribe")
    r = c.post(f"/console/marketplace/{app['id']}/run", {"arguments.month": "2026-11-01"}, csrf="")
    assert r.status == 403
    request_id = shop.submit(app["id"], "2.0")
    assert console(shop.reviewer).post(f"/console/marketplace/approvals/{request_id}/approve", csrf="x").status == 403
