"""The ops center in the console: monitoring, alert rules and alerts, the audit log and its
verification, users, roles and permissions, the personal folder and the cloud resources."""

import datetime as dt
import re

import pytest
from console_support import api, register_robot

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.testing import bearer
from rpahub_plugins.executors.models import Executor

LANGUAGES = ["zh-CN", "en"]




def upload(client, token, data, name="report.xlsx"):
    boundary = "consoleBOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    r = client.simulate_post("/api/v1/me/files", body=body, headers={
        **bearer(token), "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def rule(client, token, name="Robots silent", **extra):
    body = {"name": name, "kind": "executor_offline", "threshold": 1, "windowMinutes": 5, **extra}
    return api(client, token, "POST", "/api/v1/ops/alert-rules", body)


def clean(page):
    assert not page.untranslated(), page.untranslated()
    return page


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_ops_page_renders_translated(app, client, admin_token, console, language):
    register_robot(app, "robot-a")
    r = rule(client, admin_token, severity="critical")
    user = api(client, admin_token, "POST", "/api/v1/users", {"username": "wang.fang", "displayName": "Wang Fang"})
    mine = upload(client, admin_token, b"quarterly figures")
    admin = console(admin_token, language=language)
    for path in ("/console/ops/monitoring", "/console/ops/alerts", "/console/ops/alert-rules",
                 "/console/ops/alert-rules/new", f"/console/ops/alert-rules/{r['id']}", "/console/ops/audit",
                 "/console/ops/users", f"/console/ops/users/{user['id']}", "/console/ops/roles",
                 "/console/ops/roles/new", "/console/ops/roles/admin", "/console/ops/permissions",
                 "/console/ops/folders", "/console/ops/resources", "/console/ops/plugins", "/console/me/folder"):
        page = admin.get(path)
        assert page.status == 200, (path, page.status, page.text[:500])
        clean(page)
    assert mine["name"] in admin.get("/console/me/folder").text
    verified = clean(admin.post("/console/ops/audit/verify"))
    assert verified.status == 200
    home = admin.get("/console")
    for link in ("/console/ops/monitoring", "/console/ops/audit", "/console/ops/users", "/console/ops/roles",
                 "/console/me/folder", "/console/ops/resources", "/console/ops/alert-rules"):
        assert f'href="{link}"' in home.text, link


def test_the_monitoring_board_shows_executors_queue_and_runs(app, client, admin_token, console):
    register_robot(app, "robot-a")
    register_robot(app, "robot-b")
    with hubdb.connection():
        Executor.update(state="offline").where(Executor.id == "robot-b").execute()
    page = clean(console(admin_token, language="en").get("/console/ops/monitoring", hours="168"))
    assert page.status == 200
    assert "data-refresh" in page.text
    figures = dict(re.findall(r'<span class="figure">([^<]*)</span><span>([^<]*)</span>', page.text))
    assert figures["1 / 2"] == "Executors online" and figures["1"] in ("Executors offline", "Executors busy")
    assert "Last 7 days" in page.text


def test_alert_rules_are_created_edited_and_deleted_with_field_errors(app, client, admin_token, console):
    admin = console(admin_token, language="en")
    form = {"name": "Too many failures", "kind": "failure_rate", "threshold": "500", "windowMinutes": "30",
            "severity": "critical", "cooldownMinutes": "60", "enabled": "on", "filters.pool": "",
            "channels": ""}
    bad = clean(admin.post("/console/ops/alert-rules", form))
    assert bad.status == 400
    assert re.search(r'id="e-threshold">[^<]*percentage', bad.text), bad.text
    assert 'value="Too many failures"' in bad.text  # what was typed stays
    bad = admin.post("/console/ops/alert-rules", {**form, "threshold": "20", "channels": "pager someone"})
    assert bad.status == 400 and 'id="e-channels"' in bad.text

    created = admin.post("/console/ops/alert-rules", {**form, "threshold": "20"})
    assert created.status == 303
    page = clean(admin.follow(created))
    assert "Too many failures" in page.text and "Alert rule created." in page.text
    rules = api(client, admin_token, "GET", "/api/v1/ops/alert-rules")["items"]
    assert [(r["name"], r["threshold"], r["severity"]) for r in rules] == [("Too many failures", 20.0, "critical")]
    rule_id = rules[0]["id"]

    saved = admin.post(f"/console/ops/alert-rules/{rule_id}", {**form, "threshold": "35", "filters.minRuns": "5"})
    assert saved.status == 303, saved.text[:400]
    one = api(client, admin_token, "GET", f"/api/v1/ops/alert-rules/{rule_id}")
    assert one["threshold"] == 35.0 and one["filters"] == {"minRuns": 5}

    listed = clean(admin.get("/console/ops/alert-rules", kind="failure_rate"))
    assert "Too many failures" in listed.text
    assert f'action="/console/ops/alert-rules/{rule_id}/delete" class="inline" data-confirm=' in listed.text
    assert "Too many failures" not in admin.get("/console/ops/alert-rules", kind="queue_wait").text
    assert admin.post(f"/console/ops/alert-rules/{rule_id}/delete").status == 303
    assert api(client, admin_token, "GET", "/api/v1/ops/alert-rules")["total"] == 0


def test_a_firing_alert_shows_and_switching_its_rule_off_resolves_it(app, client, admin_token, console):
    from rpahub_plugins.ops import alerts

    register_robot(app, "robot-a")
    with hubdb.connection():
        Executor.update(state="offline", last_heartbeat=utcnow() - dt.timedelta(hours=2)).where(
            Executor.id == "robot-a").execute()
    r = rule(client, admin_token, name="Robots silent")
    with hubdb.connection():
        alerts(app.hub).evaluate()
    admin = console(admin_token, language="en")
    page = clean(admin.get("/console/ops/alerts"))
    firing = page.text.split("Firing now")[1].split("History")[0]
    assert "Robots silent" in firing and "data-confirm" in firing
    assert admin.post(f"/console/ops/alert-rules/{r['id']}/enabled", {"enabled": "false"}).status == 303
    with hubdb.connection():
        alerts(app.hub).evaluate()
    page = clean(admin.get("/console/ops/alerts"))
    assert "No alert is firing." in page.text
    assert page.text.count("state-resolved") >= 1
    resolved = clean(admin.get("/console/ops/alerts", state="resolved"))
    assert "Robots silent" in resolved.text.split("History")[1]
    assert "Robots silent" not in admin.get("/console/ops/alerts", state="firing", ruleId="nope").text.split(
        "History")[1]


def test_a_firing_alert_is_acknowledged_with_a_note_and_shows_who_is_on_it(app, client, admin_token, person,
                                                                           console):
    from rpahub_plugins.ops import alerts

    register_robot(app, "robot-a")
    with hubdb.connection():
        Executor.update(state="offline", last_heartbeat=utcnow() - dt.timedelta(hours=2)).where(
            Executor.id == "robot-a").execute()
    rule(client, admin_token, name="Robots silent")
    with hubdb.connection():
        alerts(app.hub).evaluate()
    [firing] = api(client, admin_token, "GET", "/api/v1/ops/alerts")["firing"]
    alert_id = firing["event"]["id"]
    form_action = f'action="/console/ops/alerts/{alert_id}/acknowledge"'

    reader = console(person("qian.ying", "alerts.read"), language="en")
    page = clean(reader.get("/console/ops/alerts"))
    assert form_action not in page.text and "Not acknowledged" in page.text  # seen, not acknowledgeable
    assert reader.post(f"/console/ops/alerts/{alert_id}/acknowledge", {"note": "x"}).status == 403

    zh = clean(console(admin_token).get("/console/ops/alerts"))  # alerts.manage acknowledges too
    assert form_action in zh.text and "确认处理</button>" in zh.text

    on_call = console(person("sun.li", "alerts.read", "alerts.acknowledge"), language="en")
    page = clean(on_call.get("/console/ops/alerts"))
    firing_part = page.text.split("Firing now")[1].split("History")[0]
    assert form_action in firing_part and f'<label for="ack-note-{alert_id}"' in firing_part
    assert on_call.post(f"/console/ops/alerts/{alert_id}/acknowledge", {"note": "x"}, csrf="forged").status == 403
    done = on_call.post(f"/console/ops/alerts/{alert_id}/acknowledge",
                        {"note": "rebooting the host", "next": "/console/ops/alerts"})
    assert done.status == 303 and done.location.endswith("/console/ops/alerts")
    page = clean(on_call.follow(done))
    assert "Alert acknowledged" in page.text
    firing_part = page.text.split("Firing now")[1].split("History")[0]
    assert form_action not in firing_part
    assert "Acknowledged by sun.li" in firing_part and "rebooting the host" in firing_part
    assert "Acknowledged by sun.li" in page.text.split("History")[1]  # the history keeps it
    acknowledged = api(client, admin_token, "GET", "/api/v1/ops/alerts")["firing"][0]["event"]["acknowledged"]
    assert (acknowledged["by"], acknowledged["note"]) == ("sun.li", "rebooting the host")

    again = on_call.post(f"/console/ops/alerts/{alert_id}/acknowledge", {"note": "", "next": "/console/ops/alerts"})
    assert again.status == 303
    assert "acknowledged by sun.li already" in on_call.follow(again).text

    only_open = clean(on_call.get("/console/ops/alerts", acknowledged="false"))
    assert "No alert is firing." in only_open.text and "Robots silent" not in only_open.text
    assert 'href="/console/ops/alerts">Show every firing alert' in only_open.text
    assert "Robots silent" in clean(on_call.get("/console/ops/alerts", acknowledged="true")).text
    zh = clean(console(admin_token).get("/console/ops/alerts"))
    assert "sun.li 已确认处理" in zh.text and "rebooting the host" in zh.text
    zh = clean(console(admin_token).get("/console/ops/alerts", acknowledged="false"))
    assert "显示全部正在触发的告警" in zh.text


def test_the_audit_log_searches_by_url_and_verifies_intact(app, client, admin_token, console):
    from rpahub_plugins.audit_log import ledger

    api(client, admin_token, "POST", "/api/v1/users", {"username": "zhao.lei"})
    api(client, admin_token, "POST", "/api/v1/roles", {"name": "auditors", "permissions": ["audit.read"]})
    admin = console(admin_token, language="en")
    page = clean(admin.get("/console/ops/audit", action="user.*"))
    assert "zhao.lei" in page.text and "role.create" not in page.text
    assert 'value="user.*"' in page.text
    page = clean(admin.get("/console/ops/audit", action="role.create", pageSize="1"))
    assert "auditors" in page.text and "zhao.lei" not in page.text
    bad = clean(admin.get("/console/ops/audit", result="maybe"))
    assert "flash-error" in bad.text and "result" in bad.text
    with hubdb.connection():
        ledger(app.hub).checkpoint()
    verified = clean(admin.post("/console/ops/audit/verify?action=user.*", {}))
    assert verified.status == 200
    assert "The audit log is intact" in verified.text
    assert "zhao.lei" in verified.text  # the search stays as it was
    zh = clean(console(admin_token).post("/console/ops/audit/verify"))
    assert "审计日志完整" in zh.text


def test_a_tampered_audit_log_shows_where_it_is_broken(app, client, admin_token, person, console):
    from rpahub_plugins.audit_log import ledger
    from rpahub_plugins.audit_log.models import AuditEntry

    api(client, admin_token, "POST", "/api/v1/users", {"username": "zhao.lei"})
    with hubdb.connection():
        ledger(app.hub).checkpoint()
        entry = AuditEntry.get(AuditEntry.action == "user.create", AuditEntry.target == "zhao.lei").id
        db = hubdb.database
        if hubdb.is_postgres():
            db.execute_sql("ALTER TABLE audit_log DISABLE TRIGGER USER")
            db.execute_sql("UPDATE audit_log SET target = 'nobody' WHERE id = %s", (entry,))
        else:  # what a database owner can do behind the append-only triggers
            db.execute_sql("DROP TRIGGER IF EXISTS audit_log_no_update")
            db.execute_sql("UPDATE audit_log SET target = 'nobody' WHERE id = ?", (entry,))
    for language, broken, where in (("en", "The audit log is broken. Problems found: 1.", f"entry {entry}"),
                                    ("zh-CN", "审计日志已被破坏", f"记录 {entry}")):
        page = clean(console(admin_token, language=language).post("/console/ops/audit/verify"))
        assert broken in page.text and where in page.text
    verifier = console(person("verifier", "audit.verify"), language="en")
    assert "The audit log is broken" in clean(verifier.post("/console/ops/audit/verify")).text


def test_users_are_created_with_a_one_time_password_disabled_and_given_roles(app, client, admin_token, console):
    api(client, admin_token, "POST", "/api/v1/roles", {"name": "operators", "permissions": ["runs.read"]})
    admin = console(admin_token, language="en")
    bad = clean(admin.post("/console/ops/users", {"username": "x", "displayName": "Short"}))
    assert bad.status == 400 and 'id="e-username"' in bad.text and 'value="Short"' in bad.text

    created = clean(admin.post("/console/ops/users", {"username": "chen.jing", "displayName": "Chen Jing",
                                                      "roles": ["operators"]}))
    assert created.status == 200
    secret = re.search(r'<code class="secret" data-copy>([^<]+)</code>', created.text).group(1)
    login = client.simulate_post("/api/v1/auth/login", json={"username": "chen.jing", "password": secret})
    assert login.status_code == 200
    assert secret not in admin.get("/console/ops/users").text  # shown once

    user = api(client, admin_token, "GET", "/api/v1/users", q="chen")["items"][0]
    assert user["roles"] == ["operators"]
    page = clean(admin.get(f"/console/ops/users/{user['id']}"))
    assert f'action="/console/ops/users/{user["id"]}/active" class="inline" data-confirm=' in page.text
    bad = clean(admin.post(f"/console/ops/users/{user['id']}", {"displayName": "Chen J.", "email": "",
                                                                "roles": ["operators", "auditor"]}))
    assert bad.status == 400 and "unknown role auditor" in bad.text and 'value="Chen J."' in bad.text
    saved = admin.post(f"/console/ops/users/{user['id']}", {"displayName": "Chen J.", "email": "", "roles": []})
    assert saved.status == 303
    assert api(client, admin_token, "GET", f"/api/v1/users/{user['id']}")["roles"] == []
    assert admin.post(f"/console/ops/users/{user['id']}/active", {"isActive": "false"}).status == 303
    assert api(client, admin_token, "GET", f"/api/v1/users/{user['id']}")["isActive"] is False
    listed = clean(admin.get("/console/ops/users", active="false"))
    assert "chen.jing" in listed.text and "admin" not in listed.text.split("<tbody>")[1]


def test_roles_are_made_from_the_permission_catalogue(app, client, admin_token, console):
    admin = console(admin_token, language="en")
    new = clean(admin.get("/console/ops/roles/new"))
    assert "Search the audit log" in new.text  # each permission's description
    assert '<label for="p-audit.read">' in new.text
    bad = clean(admin.post("/console/ops/roles", {"name": "Bad Name", "permissions": ["audit.read"]}))
    assert bad.status == 400 and 'id="e-name"' in bad.text
    assert 'id="p-audit.read" name="permissions" value="audit.read" checked' in bad.text
    created = admin.post("/console/ops/roles", {"name": "auditors", "description": "Read the log",
                                                "permissions": ["audit.read", "audit.verify"]})
    assert created.status == 303
    role = api(client, admin_token, "GET", "/api/v1/roles/auditors")
    assert sorted(role["permissions"]) == ["audit.read", "audit.verify"]
    assert admin.post("/console/ops/roles/auditors", {"description": "Only read",
                                                      "permissions": ["audit.read"]}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/roles/auditors")["permissions"] == ["audit.read"]
    perms = clean(admin.get("/console/ops/permissions", q="audit"))
    assert "auditors" in perms.text and "users.manage" not in perms.text
    roles = clean(admin.get("/console/ops/roles"))
    assert 'action="/console/ops/roles/auditors/delete" class="inline" data-confirm=' in roles.text
    assert admin.post("/console/ops/roles/auditors/delete").status == 303
    assert client.simulate_get("/api/v1/roles/auditors", headers=bearer(admin_token)).status_code == 404


def test_my_personal_folder_lists_downloads_uploads_and_deletes(app, client, person, console):
    token = person("li.qiang", "runs.read")
    first = upload(client, token, b"first file", name="invoice-2024-05.pdf")
    me = console(token, language="en")
    page = clean(me.get("/console/me/folder"))
    assert "invoice-2024-05.pdf" in page.text
    download = me.get(f"/console/me/folder/{first['id']}/content")
    assert download.status == 200 and download.text == "first file"
    assert f'action="/console/me/folder/{first["id"]}/delete" class="inline" data-confirm=' in page.text
    assert "invoice" not in me.get("/console/me/folder", q="payroll").text.split("<tbody>")[1]

    boundary = "pageBOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"notes.txt\"\r\n"
            f"Content-Type: text/plain\r\n\r\nnotes\r\n--{boundary}--\r\n").encode()
    r = client.simulate_post(f"/console/me/folder?csrf={me.csrf}", body=body, cookies=me.cookies,
                             headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code == 303, r.text
    assert "notes.txt" in me.get("/console/me/folder").text

    assert me.post(f"/console/me/folder/{first['id']}/delete").status == 303
    assert "invoice-2024-05.pdf" not in me.get("/console/me/folder").text


def test_cloud_resources_list_hosts_and_their_executors(app, client, admin_token, console):
    register_robot(app, "robot-a")
    page = clean(console(admin_token, language="en").get("/console/ops/resources", includeStopped="1"))
    assert page.status == 200 and "robot-a" in page.text and "(unknown host)" in page.text


def test_pages_need_their_permission_and_are_hidden_from_the_menu(app, client, person, console):
    token = person("sun.li", "runs.read")
    someone = console(token, language="en")
    home = someone.get("/console")
    assert 'href="/console/ops/monitoring"' in home.text
    assert 'href="/console/me/folder"' in home.text
    for path in ("/console/ops/audit", "/console/ops/users", "/console/ops/roles", "/console/ops/alert-rules",
                 "/console/ops/resources", "/console/ops/folders"):
        assert f'href="{path}"' not in home.text, path
        page = someone.get(path)
        assert page.status == 403, path
        clean(page)
    assert someone.post("/console/ops/audit/verify").status == 403
    auditor = console(person("qian.yu", "audit.read"), language="en")
    page = auditor.get("/console/ops/audit")
    assert page.status == 200 and "/console/ops/audit/verify" not in page.text  # no verify button without the right


def test_forms_without_the_csrf_token_are_refused(app, client, admin_token, console):
    admin = console(admin_token, language="en")
    for path, data in (("/console/ops/alert-rules", {"name": "x", "kind": "queue_wait", "threshold": "5"}),
                       ("/console/ops/users", {"username": "eve.x"}), ("/console/ops/audit/verify", {})):
        page = admin.post(path, data, csrf="forged")
        assert page.status == 403, path
    assert api(client, admin_token, "GET", "/api/v1/ops/alert-rules")["total"] == 0
    assert api(client, admin_token, "GET", "/api/v1/users", q="eve")["total"] == 0
