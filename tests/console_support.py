"""Helpers of the console tests: an in-process client that signs in through the pages,
and the machine's Chromium driven by Playwright for the browser tests."""

from __future__ import annotations

import os
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urlparse

import pytest

ARTIFACTS = Path(__file__).parent / "artifacts" / "console"  # git-ignored
CHROMIUM = os.environ.get("RPAHUB_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
UNTRANSLATED = re.compile(r"⟦([^⟧]*)⟧")


def speak(client, token, language, timezone=None):
    """The person's console language (and zone), as they would choose it on their profile."""
    from rpahub_core.testing import bearer

    body = {"language": language, **({"timezone": timezone} if timezone else {})}
    r = client.simulate_patch("/api/v1/me/preferences", headers=bearer(token), json=body)
    assert r.status_code == 200, r.json


def shown(page, status=200):
    """The page's text, once it answered ``status`` with every string translated."""
    assert page.status == status, (page.status, page.text[-2000:])
    assert not page.untranslated(), page.untranslated()
    return page.text


def api(client, token, method, path, body=None, **params):
    """Set up through the API, as an integrator would; the value of a successful answer."""
    from rpahub_core.testing import bearer

    r = client.simulate_request(method, path, headers=bearer(token), json=body, params=params or None)
    assert r.status_code < 300, (path, r.status_code, r.json)
    return r.json["resultValue"]


ROBOT_SECRET = "console-robot-secret-0123456789"


def register_robot(app, robot_id, supplier="vendor-a"):
    """A robot admitted the way executors are: its supplier's secret over the gateway."""
    from rpahub_adapters.tces130 import proof
    from rpahub_core import db as hubdb
    from rpahub_core.sessions import ExecutorSession
    from rpahub_plugins.executors import state
    from rpahub_plugins.executors.models import Supplier

    with hubdb.connection():
        if not Supplier.get_or_none(Supplier.code == supplier):
            Supplier.create(code=supplier, secret_enc=app.hub.keys.encrypt(ROBOT_SECRET))
        state(app.hub).gateway.register(ExecutorSession(robot_id, "http"),
                                        {"supplierCode": supplier, "supplierSecret": proof(ROBOT_SECRET, robot_id)})


class _Controls(HTMLParser):
    def __init__(self):
        super().__init__()
        self.controls, self.labels, self.in_label = [], set(), 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "label":
            self.in_label += 1
            if a.get("for"):
                self.labels.add(a["for"])
        elif tag in ("input", "select", "textarea") and a.get("type") not in ("hidden", "submit", "button", "reset"):
            self.controls.append((tag, a, self.in_label > 0))

    def handle_endtag(self, tag):
        if tag == "label":
            self.in_label -= 1


def unlabelled(html: str) -> list[tuple]:
    """Form controls a screen reader cannot name: no <label for>, not inside a label, no aria-label."""
    parser = _Controls()
    parser.feed(html)
    return [(tag, a.get("name"), a.get("id")) for tag, a, wrapped in parser.controls
            if not wrapped and not a.get("aria-label") and not a.get("aria-labelledby") and a.get("id") not in parser.labels]


class Page:
    def __init__(self, result):
        self.status = result.status_code
        self.text = result.text
        self.location = result.headers.get("location")
        self.headers = result.headers

    def untranslated(self) -> set[str]:
        return set(UNTRANSLATED.findall(self.text))

    def unlabelled(self) -> list[tuple]:
        return unlabelled(self.text)

    def __repr__(self) -> str:
        return f"<Page {self.status} {self.location or ''}>"


class ConsoleClient:
    """The console in-process, as one signed-in person (the session cookie is their token)."""

    def __init__(self, client, app, token: str | None, language: str | None = None):
        self.client, self.app, self.token = client, app, token
        self.cookies = {}
        if token:
            self.cookies["rpahub_session"] = token
        if language:
            self.cookies["rpahub_lang"] = language
        self.console = app.hub.state["console"]
        self.console.strict_i18n = True  # a string missing from a catalogue shows as ⟦it⟧

    @property
    def csrf(self) -> str:
        return self.console.sign("csrf", self.token or "anonymous")

    def get(self, path: str, **params) -> Page:
        r = self.client.simulate_get(path, params=params or None, cookies=self.cookies)
        return Page(r)

    def post(self, path: str, data: dict | None = None, *, csrf: str | None = None) -> Page:
        form = {"csrf": self.csrf if csrf is None else csrf, **(data or {})}
        r = self.client.simulate_post(path, body=urlencode(form, doseq=True), cookies=self.cookies,
                                      headers={"Content-Type": "application/x-www-form-urlencoded"})
        for name, cookie in r.cookies.items():
            self.cookies[name] = cookie.value
        return Page(r)

    def follow(self, page: Page) -> Page:
        assert page.status in (302, 303), page
        url = urlparse(page.location)
        return self.get(url.path, **dict(p.split("=", 1) for p in url.query.split("&") if p))


# -- the browser --------------------------------------------------------------------


def chromium_or_skip():
    """Playwright and Chromium; in CI their absence is a failure, elsewhere a skip."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed")
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            raise AssertionError(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return sync_playwright


def screenshot(page, name: str, *, tour: bool = False) -> Path:
    """Save the page under tests/artifacts/console/. ``tour``: one of the README's pictures,
    also written to ``$RPAHUB_CONSOLE_TOUR`` (``docs/``) when that is set."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if tour and os.environ.get("RPAHUB_CONSOLE_TOUR"):
        shutil.copyfile(path, Path(os.environ["RPAHUB_CONSOLE_TOUR"]) / f"console-{name}.png")
    return path


def sign_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/console/signin")
    page.get_by_label(re.compile("User name|用户名")).fill(username)
    page.get_by_label(re.compile("^(Password|密码)")).fill(password)
    with page.expect_navigation():
        page.locator("form.card button[type=submit]").click()
