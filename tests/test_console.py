"""The console's own behaviour: sign-in, languages, catalogues, permissions, CSRF, and
the ``rpahub_console_pages`` hook a third party adds pages through."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest
from falcon import testing

from rpahub_core import hookimpl
from rpahub_core.testing import ADMIN_PASSWORD, bearer, make_app
from rpahub_plugins.console.catalogue import problems

NEW_PASSWORD = "Zq-7-unguessable-Passw0rd!"


def nav_paths(page) -> set[str]:
    return set(re.findall(r'<li><a href="(/console[^"]*)"', page.text))


# -- catalogues -----------------------------------------------------------------------


def test_every_string_of_every_page_is_in_the_english_and_the_chinese_catalogue():
    assert problems() == []


def test_a_string_missing_from_a_catalogue_is_caught(tmp_path):
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "x.html").write_text('{{ _("A string nobody translated") }}', encoding="utf-8")
    for locale in ("en", "zh_CN"):
        folder = tmp_path / "locale" / locale / "LC_MESSAGES"
        folder.mkdir(parents=True)
        (folder / "x.po").write_text('msgid ""\nmsgstr ""\n', encoding="utf-8")
    found = problems(tmp_path)
    assert any(line.startswith("zh_CN: missing 'A string nobody translated'") for line in found)
    assert any(line.startswith("en: missing 'A string nobody translated'") for line in found)


# -- every page, both languages ---------------------------------------------------------


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_every_page_of_the_menu_renders_fully_translated(console, admin_token, language):
    admin = console(admin_token, language)
    home = admin.get("/console")
    assert home.status == 200, home.text[:500]
    assert f'<html lang="{language}">' in home.text
    paths = nav_paths(home)
    assert {"/console", "/console/runs", "/console/me"} <= paths
    forms = ("/console/operations/feedback/new", "/console/operations/news/new", "/console/operations/knowledge/new",
             "/console/automation/flows/new", "/console/automation/schedules/new", "/console/design/requirements/new",
             "/console/ops/roles/new", "/console/ops/alert-rules/new")
    for path in sorted(paths) + list(forms):
        page = admin.get(path)
        assert page.status == 200, (path, page.status, page.text[:300])
        assert page.untranslated() == set(), (path, page.untranslated())
        assert page.unlabelled() == [], (path, page.unlabelled())  # every control has an accessible name
    assert ("运行记录" in admin.get("/console/runs").text) == (language == "zh-CN")


def test_the_language_follows_the_browser_then_the_persons_choice(app, client, console, admin_token):
    anonymous = console(None)
    english = client.simulate_get("/console/signin", headers={"Accept-Language": "en-GB,en;q=0.9"})
    assert '<html lang="en">' in english.text and "Sign in" in english.text
    assert '<html lang="zh-CN">' in anonymous.get("/console/signin").text  # zh-CN by default

    admin = console(admin_token, "zh-CN")
    switched = admin.post("/console/language", {"language": "en", "next": "/console/runs"})
    assert (switched.status, switched.location) == (303, "/console/runs")
    assert admin.cookies["rpahub_lang"] == "en"
    # remembered in the person's preferences: another browser (no cookie) shows English too
    assert client.simulate_get("/api/v1/me/preferences", headers=bearer(admin_token)).json["resultValue"][
        "language"] == "en"
    assert '<html lang="en">' in console(admin_token).get("/console/runs").text


# -- signing in and out ------------------------------------------------------------------


def test_sign_in_through_the_page_then_sign_out(app, client, console, admin_token):
    anonymous = console(None, "en")
    sent = anonymous.get("/console/runs", state="failed")
    assert sent.status == 303 and sent.location.startswith("/console/signin?next=")

    wrong = anonymous.post("/console/signin", {"username": "admin", "password": "not-it", "next": "/console/runs"})
    assert wrong.status in (400, 401) and 'role="alert"' in wrong.text
    assert "rpahub_session" not in anonymous.cookies

    signed = anonymous.post("/console/signin", {"username": "admin", "password": ADMIN_PASSWORD,
                                                "next": "/console/runs?state=failed"})
    assert (signed.status, signed.location) == (303, "/console/runs?state=failed")
    assert anonymous.cookies["rpahub_session"].startswith("rpu_")
    anonymous.token = anonymous.cookies["rpahub_session"]
    assert anonymous.get("/console/runs").status == 200

    out = anonymous.post("/console/signout")
    assert out.status == 303 and out.location == "/console/signin"
    after = client.simulate_get("/api/v1/me", headers=bearer(anonymous.token))
    assert after.status_code == 401  # signing out ends the session's token, not just the cookie


def test_sign_in_never_redirects_off_the_console(console, admin_token):
    anonymous = console(None, "en")
    for target in ("https://evil.example/", "//evil.example/", "/api/v1/users", "/console\\@evil.example"):
        r = anonymous.post("/console/signin", {"username": "admin", "password": ADMIN_PASSWORD, "next": target})
        assert (r.status, r.location) == (303, "/console"), target
        anonymous.cookies.pop("rpahub_session", None)


def test_a_temporary_password_must_be_changed_before_anything_else(client, console, admin_token):
    r = client.simulate_post("/api/v1/users", headers=bearer(admin_token), json={"username": "wang.fang"})
    one_time = r.json["resultValue"]["oneTimePassword"]
    person = console(None, "en")
    signed = person.post("/console/signin", {"username": "wang.fang", "password": one_time})
    assert (signed.status, signed.location) == (303, "/console/me/password")
    person.token = person.cookies["rpahub_session"]
    assert person.get("/console/runs").location == "/console/me/password"

    differ = person.post("/console/me/password", {"currentPassword": one_time, "newPassword": NEW_PASSWORD,
                                                  "repeat": NEW_PASSWORD + "x"})
    assert differ.status == 400 and 'id="e-repeat"' in differ.text
    weak = person.post("/console/me/password", {"currentPassword": one_time, "newPassword": "short",
                                                "repeat": "short"})
    assert weak.status == 400 and 'id="e-newPassword"' in weak.text  # the API's field error, by the field
    done = person.post("/console/me/password", {"currentPassword": one_time, "newPassword": NEW_PASSWORD,
                                                "repeat": NEW_PASSWORD})
    assert (done.status, done.location) == (303, "/console/me")
    assert person.get("/console").status == 200


# -- permissions and forms ---------------------------------------------------------------


def test_pages_a_person_may_not_use_are_hidden_and_refused(console, person):
    reader = console(person("zhao.lei", "runs.read"), "en")
    home = reader.get("/console")
    assert "/console/runs" in nav_paths(home)
    nobody = console(person("qian.yu"), "en")
    home = nobody.get("/console")
    assert home.status == 200
    assert "/console/runs" not in nav_paths(home)
    refused = nobody.get("/console/runs")
    assert refused.status == 403 and "permission" in refused.text
    assert refused.untranslated() == set()


def test_a_form_without_its_csrf_token_is_refused(console, admin_token, client):
    admin = console(admin_token, "en")
    refused = admin.post("/console/me/tokens", {"name": "ci"}, csrf="forged")
    assert refused.status == 403
    assert client.simulate_get("/api/v1/me/tokens", headers=bearer(admin_token)).json["resultValue"]["total"] == 0
    made = admin.post("/console/me/tokens", {"name": "ci"})
    assert made.status == 200 and "rpu_" in made.text  # shown once
    assert client.simulate_get("/api/v1/me/tokens", headers=bearer(admin_token)).json["resultValue"]["total"] == 1


def test_the_token_form_shows_the_apis_field_error_next_to_the_field(console, admin_token):
    bad = console(admin_token, "en").post("/console/me/tokens", {"name": "ci", "expiresInDays": "-3"})
    assert bad.status == 400
    assert re.search(r'id="f-expiresInDays"[^>]*aria-invalid="true"', bad.text)
    assert 'id="e-expiresInDays"' in bad.text


def test_pages_carry_security_headers_and_reference_nothing_outside_the_hub(console, admin_token):
    page = console(admin_token, "en").get("/console/runs")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r'(src|href)="(https?:)?//', page.text)


def test_times_are_shown_in_the_persons_time_zone(console, admin_token, client):
    admin = console(admin_token, "en")
    bad = admin.post("/console/me", {"language": "en", "timezone": "Mars/Olympus"})
    assert bad.status == 400 and 'id="e-timezone"' in bad.text
    assert admin.post("/console/me", {"language": "en", "timezone": "UTC"}).status == 303
    assert "Times in UTC" in admin.get("/console/runs").text
    assert client.simulate_get("/api/v1/me/preferences", headers=bearer(admin_token)).json["resultValue"] == {
        "language": "en", "timezone": "UTC"}


# -- a third party's pages ----------------------------------------------------------------


def write_po(folder, locale, pairs):
    path = folder / locale / "LC_MESSAGES"
    path.mkdir(parents=True)
    body = 'msgid ""\nmsgstr ""\n"Content-Type: text/plain; charset=UTF-8\\n"\n\n'
    body += "".join(f'msgid "{k}"\nmsgstr "{v}"\n\n' for k, v in pairs.items())
    (path / "meters.po").write_text(body, encoding="utf-8")


def test_a_plugin_adds_pages_through_rpahub_console_pages(tmp_path):
    from rpahub_plugins.console.i18n import N_

    templates, locale = tmp_path / "templates", tmp_path / "locale"
    templates.mkdir()
    (templates / "meters.html").write_text(
        '{% extends "base.html" %}{% block main %}<h1>{{ _("Meter readings") }}</h1>'
        '<p id="who">{{ me.username }}</p>{% endblock %}', encoding="utf-8")
    write_po(locale, "zh_CN", {"Meter readings": "电表读数"})
    write_po(locale, "en", {"Meter readings": "Meter readings"})

    def meters(view):
        """Meter readings."""
        view.render("meters.html")

    def rpahub_console_pages(pages, hub):
        pages.templates(templates)
        pages.catalogues(locale)
        pages.view("/meters", meters, permission="meters.read", nav=(N_("Operations"), N_("Meter readings")))

    def rpahub_permissions(permissions):
        permissions.add("meters.read", "Read the meters")

    plugin = SimpleNamespace(rpahub_console_pages=hookimpl(rpahub_console_pages),
                             rpahub_permissions=hookimpl(rpahub_permissions))
    app = make_app(tmp_path / "home", "", ("meters", plugin))
    try:
        client = testing.TestClient(app)
        from rpahub_core import db as hubdb
        from rpahub_plugins.auth_local.models import User
        from rpahub_plugins.auth_local.passwords import hash_password

        with hubdb.connection():
            User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).where(
                User.username == "admin").execute()
        token = client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                                     ).json["resultValue"]["token"]
        page = client.simulate_get("/console/meters", cookies={"rpahub_session": token})
        assert page.status_code == 200 and "<h1>电表读数</h1>" in page.text and '<p id="who">admin</p>' in page.text
        home = client.simulate_get("/console", cookies={"rpahub_session": token, "rpahub_lang": "en"})
        assert '<a href="/console/meters"' in home.text
        signed_out = client.simulate_get("/console/meters")
        assert signed_out.status_code == 303
    finally:
        app.hub.close()


# -- every page, every person ---------------------------------------------------------------


def test_every_page_sends_the_signed_out_to_sign_in_and_refuses_who_lacks_its_permission(app, console, person):
    entries = app.hub.state["console"].pages.entries
    anonymous, nobody = console(None, "en"), console(person("nobody.at.all"), "en")
    checked = 0
    for entry in entries:
        path = "/console" + re.sub(r"\{[^}]+\}", "x0", entry.path if entry.path != "/" else "")
        if entry.public:
            continue
        page = anonymous.get(path) if entry.method == "GET" else anonymous.post(path)
        assert page.status == 303 and page.location.startswith("/console/signin"), (entry.method, path, page)
        if entry.permission:
            page = nobody.get(path) if entry.method == "GET" else nobody.post(path)
            assert page.status == 403, (entry.method, path, page.status)
            checked += 1
    assert checked > 60  # every center's pages, not a handful


def test_every_built_in_permission_is_described_in_chinese(app, console, admin_token):
    translator = app.hub.state["console"].catalogues.translator("zh-CN")
    untranslated = {name: text for name, text in app.hub.permissions.entries.items()
                    if translator.known(text) == text}
    assert untranslated == {}, "add them to locale/*/LC_MESSAGES/permissions.po"
    page = console(admin_token, "zh-CN").get("/console/ops/permissions")
    assert "检索审计日志" in page.text and "Search the audit log" not in page.text
    assert "检索审计日志" in console(admin_token, "zh-CN").get("/console/ops/permissions", q="审计").text
