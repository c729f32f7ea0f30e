"""The console in the machine's Chromium, on the real server with a real reference executor:
a person signs in, finds an app in the marketplace, runs it with the form made from its
parameters, watches the logs arrive while it runs, plays its recording; the language
switches; the big screen opens at 1920×1080. Each test saves screenshots
(tests/artifacts/console/; ``RPAHUB_CONSOLE_TOUR=docs`` also refreshes the README's)."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
import requests
from console_support import screenshot, sign_in

from rpahub_core.testing import ADMIN_PASSWORD, LiveHub, stop_process, wait_for

pytestmark = pytest.mark.e2e

SECRET = "console-secret-0123456789"
PASSWORD = "Zq-7-unguessable-Passw0rd!"
# Reads its arguments as the reference executor passes them, and takes a few seconds, so
# its logs arrive while the run page is open.
PACKAGE = r'''
import os, time
station, days = os.environ["RPA_ARG_STATION"], int(os.environ["RPA_ARG_DAYS"])
for day in range(1, days + 1):
    print(f"reading meters of {station}: day {day} of {days}", flush=True)
    time.sleep(0.8)
print(f"RPA-OUTPUT meters={days * 96}", flush=True)
'''
PARAMETERS = [{"name": "station", "type": "string", "label": "变电站", "required": True},
              {"name": "days", "type": "integer", "label": "天数", "minimum": 1, "maximum": 31, "default": 3}]


class Hub:
    def __init__(self, live):
        self.live, self.tokens = live, {"admin": live.admin_token()}

    def join(self, name, permissions):
        self.tokens[name] = self.live.join(name, permissions, PASSWORD, self.tokens["admin"])

    def __call__(self, who, method, path, body=None, expect=200):
        status, answer = self.live.call(method, path, body, self.tokens[who])
        assert status == expect, (method, path, status, answer)
        return answer["resultValue"] if answer else None


def release(hub: Hub) -> dict:
    """An app with an approved version, listed: made by a maker, approved by a reviewer."""
    app = hub("maker", "POST", "/api/v1/apps", {
        "name": "电能表数据采集", "description": "按变电站采集电能表日冻结数据", "vendor": "vendor-a",
        "region": "江苏", "scenario": "抄表", "domain": "marketing", "tags": ["抄表"],
        "parameters": PARAMETERS}, expect=201)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", PACKAGE)
    r = requests.post(f"{hub.live.url}/api/v1/apps/{app['id']}/versions",
                      headers={"Authorization": f"Bearer {hub.tokens['maker']}"},
                      data={"version": "1.0.0", "changelog": "first release"},
                      files={"file": ("meters.zip", buf.getvalue(), "application/zip")}, timeout=10)
    assert r.status_code == 201, r.text
    version = r.json()["resultValue"]
    ask = hub("maker", "POST", f"/api/v1/apps/{app['id']}/versions/{version['id']}/submit", {}, expect=201)
    hub("reviewer", "POST", f"/api/v1/approvals/{ask['approvalRequestId']}/approve", {"comment": "可以"})
    ask = hub("maker", "POST", f"/api/v1/apps/{app['id']}/publish", {"reason": "上架"}, expect=201)
    hub("reviewer", "POST", f"/api/v1/approvals/{ask['approvalRequestId']}/approve", {"comment": "同意上架"})
    return app


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("console-hub")
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "2", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5"}
    with LiveHub(folder / "hub", env=env) as live:
        hub = Hub(live)
        hub("admin", "POST", "/api/v1/suppliers", {"code": "web", "secret": SECRET}, expect=201)
        executor = live.executor("meter-bot-1", "web", SECRET, folder, extra_env={"DISPLAY": ""})
        try:
            wait_for(lambda: (live.call("GET", "/api/v1/executors/meter-bot-1", token=hub.tokens["admin"])[1][
                "resultValue"] or {}).get("state") == "online", 30, "the executor to come online")
            hub.join("maker", ["apps.manage", "apps.read", "packages.manage"])
            hub.join("reviewer", ["apps.review", "apps.read", "apps.manage"])
            hub.join("bob", ["apps.use", "runs.read"])
            hub.app = release(hub)
            yield hub
        finally:
            stop_process(executor)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1366, "height": 768}, locale="zh-CN")
    tab = context.new_page()
    tab.set_default_timeout(15_000)
    yield tab
    context.close()


def test_a_person_finds_an_app_runs_it_watches_its_logs_and_replays_its_recording(shop, page):
    base = shop.live.url
    sign_in(page, base, "bob", PASSWORD)
    page.goto(base + "/console/marketplace")
    page.get_by_role("searchbox").fill("抄表")
    with page.expect_navigation():
        page.get_by_role("searchbox").press("Enter")
    assert "q=" in page.url  # the search is in the address: a link one can share
    page.get_by_role("link", name="电能表数据采集").first.click()
    page.wait_for_url(re.compile(r"/console/marketplace/"))
    run_form = page.locator("form[action$='/run']")
    assert run_form.count() == 0  # one subscribes first
    with page.expect_navigation():
        page.get_by_role("button", name="订阅").click()
    screenshot(page, "app", tour=True)

    run_form.get_by_label("变电站").fill("城东 220kV 变电站")
    run_form.get_by_label("天数").fill("4")
    run_form.get_by_label("录制屏幕").check()
    run_form.locator("button[type=submit]").click()
    page.wait_for_url(re.compile(r"/console/runs/[0-9a-z]+$"))

    # While it runs, the rows arrive on the open page without reloading it.
    live_logs = page.locator("ol#logs[data-tail] li .content")
    live_logs.filter(has_text="day 1 of 4").wait_for()
    screenshot(page, "run-live")
    page.locator("h1 .state-success").wait_for(timeout=60_000)  # the page reloads when the run ends
    contents = page.locator("ol#logs li .content").all_inner_texts()
    assert [c for c in contents if c.startswith("reading meters")] == [
        f"reading meters of 城东 220kV 变电站: day {d} of 4" for d in range(1, 5)]

    player = page.locator(".cast-player")
    player.and_(page.locator("[data-state=ready]")).wait_for()
    assert float(player.get_attribute("data-duration")) > 2
    page.locator(".cast-play").click()
    player.and_(page.locator("[data-state=ended]")).wait_for(timeout=30_000)
    assert "day 4 of 4" in page.locator(".cast-screen").inner_text()
    page.locator(".cast-seek").evaluate("e => { e.value = 250; e.dispatchEvent(new Event('input')); }")
    position = float(player.get_attribute("data-position"))
    assert 0 < position < float(player.get_attribute("data-duration"))
    assert "day 4 of 4" not in page.locator(".cast-screen").inner_text()  # a quarter in: not yet printed
    screenshot(page, "run", tour=True)

    # the recording downloads with a range, as a player seeking asks for it
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    part = requests.get(page.url + "/recording", cookies=cookies, headers={"Range": "bytes=0-9"}, timeout=10)
    assert part.status_code == 206 and len(part.content) == 10


def test_the_language_switches_and_the_big_screen_opens(shop, page):
    base = shop.live.url
    sign_in(page, base, "admin", ADMIN_PASSWORD)
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    page.goto(base + "/console/runs")
    assert page.get_by_role("heading", level=1).inner_text() == "运行记录"
    with page.expect_navigation():  # the switch submits itself
        page.locator("#language-switch").select_option("en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.url.endswith("/console/runs")  # back where one was
    assert page.get_by_role("heading", level=1).inner_text() == "Run records"
    screenshot(page, "runs", tour=True)

    page.set_viewport_size({"width": 1920, "height": 1080})
    page.goto(base + "/console/operations/screen")
    assert page.locator("body.screen").count() == 1
    page.locator("svg").first.wait_for()
    assert page.locator("body").get_attribute("data-refresh")
    screenshot(page, "screen", tour=True)
