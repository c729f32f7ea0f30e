"""A requirement walks the whole design lifecycle in a real browser on the real server:
a MAKER submits and designs it, a CHECKER reviews, evaluates, trial-runs (on a real
executor), passes and accepts it; each sees the state on the page after each step."""

import io
import time
import zipfile

import pytest
from console_support import screenshot, sign_in

from rpahub_core.testing import LiveHub, stop_process, wait_for

pytestmark = pytest.mark.e2e

PASSWORD = "Zq-7-unguessable-Passw0rd!"
SECRET = "design-browser-secret-0123456789"
ROBOT = "design-tester-1"
PEOPLE = {
    "maker": ["design.read", "design.submit", "design.develop", "packages.manage", "runs.read"],
    "checker": ["design.read", "design.review", "design.evaluate", "design.test", "design.accept", "runs.read"],
}
VIEWPORT = {"width": 1366, "height": 768}


def package() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print('checking invoices', flush=True)\n")
    return buf.getvalue()


@pytest.fixture
def hub(tmp_path):
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "1", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.3"}
    with LiveHub(tmp_path / "hub", env=env) as live:
        yield live


@pytest.fixture
def executor(hub, tmp_path):
    """The reference executor, admitted and the only member of the test pool."""
    admin = hub.admin_token()
    assert hub.call("POST", "/api/v1/suppliers", {"code": "dsg", "secret": SECRET}, admin)[0] == 201
    proc = hub.executor(ROBOT, "dsg", SECRET, tmp_path)
    try:
        wait_for(lambda: (hub.call("GET", f"/api/v1/executors/{ROBOT}", token=admin)[1].get("resultValue")
                          or {}).get("state") == "online", 20, "the executor to come online")
        assert hub.call("POST", "/api/v1/pools", {"name": "test", "members": [ROBOT]}, admin)[0] == 201
        yield proc
    finally:
        stop_process(proc)


def state_of(page) -> str:
    return page.locator("#requirement-state .state").get_attribute("class").split("state-", 1)[1]


def expect_state(page, state: str) -> None:
    page.locator(f"#requirement-state .state-{state}").wait_for()
    assert state_of(page) == state


def act(page, form: str, **fields) -> None:
    for name, value in fields.items():
        page.locator(f"#f-{form}-{name}").fill(value)
    with page.expect_navigation():
        page.locator(f"#form-{form} button[type=submit]").click()


def test_maker_and_checker_walk_a_requirement_to_the_library(browser, hub, executor):
    started = time.monotonic()
    admin = hub.admin_token()
    for name, permissions in PEOPLE.items():
        hub.join(name, permissions, PASSWORD, admin)
    pages = {}
    for name in PEOPLE:
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        page.set_default_timeout(15000)
        sign_in(page, hub.url, name, PASSWORD)
        pages[name] = page
    maker, checker = pages["maker"], pages["checker"]
    try:
        # MAKER submits the requirement from the board.
        maker.goto(hub.url + "/console/design")
        maker.locator("a[href='/console/design/requirements/new']").click()
        maker.locator("#f-title").fill("发票校验机器人")
        maker.locator("#f-domain").select_option("finance")
        maker.locator("#f-region").fill("江苏")
        maker.locator("#f-description").fill("每月核对增值税发票")
        maker.locator("form.card button[type=submit]").click()
        maker.wait_for_url("**/console/design/requirements/*")
        expect_state(maker, "submitted")
        url = maker.url
        assert maker.locator("#form-approve").count() == 0  # a maker does not review

        # CHECKER finds it on the board, approves it, evaluates it and assigns it to MAKER.
        checker.goto(hub.url + "/console/design")
        checker.locator("#col-submitted a", has_text="发票校验机器人").click()
        expect_state(checker, "submitted")
        screenshot(checker, "design-review")
        act(checker, "approve", comment="有价值")
        expect_state(checker, "reviewed")
        act(checker, "evaluate", assignee="maker", effortDays="3", valueScore="8", notes="两周内")
        expect_state(checker, "evaluated")

        # MAKER delivers the design: the package uploaded through the page.
        maker.goto(url)
        expect_state(maker, "evaluated")
        maker.locator("#f-design-file").set_input_files(
            files=[{"name": "invoice-check.zip", "mimeType": "application/zip", "buffer": package()}])
        act(maker, "design", packageName="invoice-check", tags="发票")
        expect_state(maker, "designed")

        # CHECKER trial-runs it on the test pool; the page follows the run until it succeeds.
        checker.goto(url)
        expect_state(checker, "designed")
        with checker.expect_navigation():
            checker.locator("#form-trial button[type=submit]").click()
        checker.locator("table.trials .state-success").wait_for(timeout=30000)
        checker.reload()
        act(checker, "pass", comment="试运行通过")
        expect_state(checker, "tested")
        act(checker, "accept", comment="验收通过")
        expect_state(checker, "accepted")
        assert checker.locator("form[id^='form-']").count() == 0  # a final state: no next step

        # Both see the whole history; MAKER's board shows it accepted.
        history = checker.locator("ol.history li")
        assert history.count() >= 8
        text = checker.locator("ol.history").inner_text()
        assert "maker" in text and "checker" in text and "验收通过" in text
        maker.goto(hub.url + "/console/design")
        assert maker.locator("#col-accepted a", has_text="发票校验机器人").count() == 1
        screenshot(maker, "design-board")
        maker.goto(url)
        expect_state(maker, "accepted")
        screenshot(checker, "design-lifecycle")
    finally:
        for page in pages.values():
            page.context.close()
    assert time.monotonic() - started < 60
