"""Automation in the console: schedules with the preview of their next occurrences in the
reader's time zone and the API's field errors beside the fields, flows drawn as their task
graph, the autoscaler's pools and decisions, permissions and CSRF."""

import io
import re
import zipfile

import pytest
from console_support import shown, speak

from rpahub_core import db as hubdb
from rpahub_core.testing import bearer
from rpahub_plugins.console.i18n import when
from rpahub_plugins.executors import state as executors

LANGUAGES = ("zh-CN", "en")
PLANNER = ("schedules.read", "schedules.manage", "runs.start", "runs.read", "executors.read")




@pytest.fixture
def package_id(app):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    with hubdb.connection():
        return executors(app.hub).runs.add_package(name="月报", version="1", data=buf.getvalue(), created_by="t").id


def schedule_form(package_id, **change):
    return {"name": "每日对账", "packageId": package_id, "unit": "days", "every": "1", "anchor": "2030-01-07T08:00",
            "timezone": "Asia/Shanghai", "misfirePolicy": "fire_once", "misfireGraceSeconds": "300",
            "priority": "0", "weekdays": ["1", "2", "3", "4", "5"], "enabled": "1", **change}


def test_a_schedule_made_in_the_console_previews_its_next_runs_in_the_readers_zone(client, console, person,
                                                                                  package_id):
    token = person("planner", *PLANNER)
    speak(client, token, "zh-CN", "Europe/London")
    c = console(token)
    page = c.post("/console/automation/schedules/new", schedule_form(package_id))
    assert page.status == 303, page.text[-2000:]
    detail = page.location.split("?")[0]
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.get(detail))
        # 08:00 in Shanghai is midnight in London (winter); Saturday and Sunday are left out.
        first, second = when("2030-01-07T00:00:00Z", language, "Europe/London", "full"), \
            when("2030-01-08T00:00:00Z", language, "Europe/London", "full")
        rows = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', text)
        assert rows[0] == ("2030-01-07T00:00:00Z", first) and rows[1][1] == second, rows[:2]
        assert [r[0][:10] for r in rows[4:6]] == ["2030-01-11", "2030-01-14"]
        assert "Europe/London" in text and "2030-01-07 08:00" in text  # and in the schedule's own zone
        assert len(rows) == 10
        text = shown(c.get("/console/automation/schedules"))
        assert "每日对账" in text and "/disable" in text

    sid = detail.rsplit("/", 1)[1]
    assert c.post(f"/console/automation/schedules/{sid}/disable").status == 303
    s = client.simulate_get(f"/api/v1/schedules/{sid}", headers=bearer(token)).json["resultValue"]
    assert s["enabled"] is False and s["nextRunAt"] is None
    assert "/enable" in shown(c.get(detail))
    # Renaming in the form changes only the name.
    page = c.post(f"/console/automation/schedules/{sid}/edit", schedule_form(package_id, name="每日对账（新）",
                                                                             enabled=""))
    assert page.status == 303, page.text[-2000:]
    assert "每日对账（新）" in shown(c.follow(page))
    text = shown(c.get(f"/console/automation/schedules/{sid}/edit"))
    assert 'value="2030-01-07T08:00"' in text and 'id="f-weekday-5" name="weekdays" value="5" checked' in text
    assert c.post(f"/console/automation/schedules/{sid}/delete").status == 303
    assert client.simulate_get(f"/api/v1/schedules/{sid}", headers=bearer(token)).status_code == 404


def test_a_bad_schedule_shows_the_apis_error_beside_its_field(client, console, person, package_id):
    token = person("planner", *PLANNER)
    c = console(token)
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post("/console/automation/schedules/new", schedule_form(package_id, every="0")), 400)
        assert re.search(r'id="f-every"[^>]*aria-invalid="true"', text) and 'id="e-every"' in text
        assert 'value="每日对账"' in text  # what was typed stays
        text = shown(c.post("/console/automation/schedules/new", schedule_form("nope")), 400)
        assert re.search(r'id="e-packageId">package nope not found', text)
        text = shown(c.post("/console/automation/schedules/new", schedule_form(package_id, windowFrom="25:00")), 400)
        assert 'id="e-windowFrom"' in text
    c.post("/console/automation/schedules/new", schedule_form(package_id))
    text = shown(c.post("/console/automation/schedules/new", schedule_form(package_id)), 409)
    assert re.search(r'id="e-name">a schedule named 每日对账 exists', text)


def test_a_flow_page_draws_one_box_per_task_and_colours_a_run(client, console, person, admin_token, package_id):
    body = {"name": "月末结账", "tasks": [
        {"key": "fetch", "packageId": package_id},
        {"key": "check", "packageId": package_id, "parents": ["fetch"]},
        {"key": "book", "packageId": package_id, "parents": ["fetch"]},
        {"key": "report", "packageId": package_id, "parents": ["check", "book"]}]}
    r = client.simulate_post("/api/v1/flows", headers=bearer(admin_token), json=body)
    assert r.status_code == 201, r.json
    flow_id = r.json["resultValue"]["id"]
    token = person("operator", "flows.read", "flows.run", "runs.start", "runs.read")
    c = console(token)
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.get("/console/automation/flows"))
        assert "月末结账" in text
        text = shown(c.get(f"/console/automation/flows/{flow_id}"))
        svg = re.search(r'<svg class="dag".*?</svg>', text, re.S).group(0)
        assert svg.count('<rect class="node"') == 4 and svg.count('class="edge"') == 4
        assert re.findall(r'data-key="(\w+)"', svg) == ["fetch", "check", "book", "report"]
        # columns left to right by depth
        xs = {k: int(x) for k, x in re.findall(r'data-key="(\w+)"[^<]*<title>[^<]*</title><rect class="node" x="(\d+)"',
                                               svg)}
        assert xs["fetch"] < xs["check"] == xs["book"] < xs["report"]
        assert "data-state" not in svg
    page = c.post(f"/console/automation/flows/{flow_id}/start")
    assert page.status == 303, page.text[-1500:]
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.follow(page))
        svg = re.search(r'<svg class="dag".*?</svg>', text, re.S).group(0)
        assert svg.count('<rect class="node"') == 4
        assert re.search(r'data-key="fetch" data-state="queued"', svg)
        assert re.search(r'data-key="report" data-state="waiting"', svg)
        assert "/cancel" in text and 'data-refresh="5"' in text
        text = shown(c.get(f"/console/automation/flows/{flow_id}"))
        assert 'data-key="fetch" data-state="queued"' in text  # the latest run colours the flow's graph


def test_the_autoscaler_page_shows_pools_policies_and_refuses_a_bad_policy(client, console, person, admin_token):
    r = client.simulate_post("/api/v1/pools", headers=bearer(admin_token), json={"name": "burst"})
    assert r.status_code == 201, r.json
    client.simulate_post("/api/v1/pools", headers=bearer(admin_token), json={"name": "night"})
    token = person("scaler", "executors.read", "autoscale.manage")
    c = console(token)
    page = c.post("/console/automation/autoscale/burst", {"provider": "local", "min": "3", "max": "1",
                                                          "queuePerExecutor": "1", "maxWaitSeconds": "60",
                                                          "idleSeconds": "300", "cooldownSeconds": "60",
                                                          "enabled": "1"})
    text = shown(page, 400)
    assert re.search(r'id="e-min">must not exceed max', text) and 'id="f-min" name="min" type="number" value="3"' in text
    page = c.post("/console/automation/autoscale/burst", {"provider": "local", "min": "0", "max": "2",
                                                          "queuePerExecutor": "2", "maxWaitSeconds": "30",
                                                          "idleSeconds": "120", "cooldownSeconds": "10",
                                                          "enabled": "1"})
    assert page.status == 303, page.text[-1500:]
    policy = client.simulate_get("/api/v1/pools/burst/autoscale", headers=bearer(token)).json["resultValue"]
    assert (policy["max"], policy["queuePerExecutor"], policy["enabled"]) == (2, 2, True)
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.get("/console/automation/autoscale"))
        assert "/console/automation/autoscale/burst" in text and "/console/automation/autoscale/night" in text
        assert "0 – 2" in text
        shown(c.get("/console/automation/autoscale/burst"))
    reader = person("watcher", "executors.read")
    text = shown(console(reader).get("/console/automation/autoscale/burst"))
    assert 'name="queuePerExecutor"' not in text  # no form without autoscale.manage
    assert console(reader).post("/console/automation/autoscale/burst", {"max": "9"}).status == 403


def test_pages_need_their_permission_and_forms_their_csrf_token(client, console, person, package_id):
    token = person("runner", "runs.read")
    c = console(token)
    home = shown(c.get("/console"))
    assert "/console/automation/schedules" not in home and "/console/automation/flows" not in home
    for path in ("/console/automation/schedules", "/console/automation/schedules/new", "/console/automation/flows",
                 "/console/automation/autoscale"):
        assert c.get(path).status == 403, path
    planner = person("planner", *PLANNER)
    p = console(planner)
    assert "/console/automation/schedules" in shown(p.get("/console"))
    page = p.post("/console/automation/schedules/new", schedule_form(package_id), csrf="forged")
    assert page.status == 403
    assert client.simulate_get("/api/v1/schedules", headers=bearer(planner)).json["resultValue"]["total"] == 0


def test_the_schedule_form_previews_the_rule_before_it_is_saved(client, console, person, package_id):
    token = person("planner", *PLANNER)
    speak(client, token, "zh-CN", "Europe/London")
    c = console(token)
    typed = schedule_form(package_id, name="", arguments="region=四川", anchor="2030-01-10T08:00")  # a Thursday
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post("/console/automation/schedules/preview", typed))
        rows = re.findall(r'<time datetime="([^"]+)">([^<]+)</time>', text)
        # 08:00 in Shanghai is midnight in London; the weekend is left out.
        assert [r[0] for r in rows[:3]] == ["2030-01-10T00:00:00Z", "2030-01-11T00:00:00Z", "2030-01-14T00:00:00Z"]
        assert rows[0][1] == when("2030-01-10T00:00:00Z", language, "Europe/London", "full") and len(rows) == 10
        assert "Europe/London" in text and "2030-01-10 08:00" in text  # and in the schedule's own zone
        # What was typed stays, and saving still goes to the new schedule's action.
        assert 'value="2030-01-10T08:00"' in text and "region=四川" in text
        assert 'id="f-weekday-5" name="weekdays" value="5" checked' in text
        assert 'id="f-weekday-6" name="weekdays" value="6" checked' not in text
        assert 'action="/console/automation/schedules/new"' in text
        assert 'formaction="/console/automation/schedules/preview"' in text
    speak(client, token, "en", "Asia/Shanghai")
    text = shown(c.post("/console/automation/schedules/preview", typed))
    assert "In the schedule's time zone" not in text  # one zone: one column
    assert client.simulate_get("/api/v1/schedules", headers=bearer(token)).json["resultValue"]["total"] == 0


def test_a_bad_rule_previewed_shows_the_error_beside_its_field(client, console, person, package_id):
    token = person("planner", *PLANNER)
    c = console(token)
    for language in LANGUAGES:
        speak(client, token, language)
        page = c.post("/console/automation/schedules/preview",
                      schedule_form(package_id, windowFrom="18:00", windowTo="08:00"))
        text = shown(page, 400)
        assert re.search(r'id="f-windowTo"[^>]*aria-invalid="true"', text)
        assert re.search(r'id="e-windowTo">must be later than', text)
        assert 'value="每日对账"' in text and 'value="18:00"' in text  # what was typed stays
        assert "<time datetime=" not in text
        text = shown(c.post("/console/automation/schedules/preview", schedule_form(package_id, timezone="Mars/Olympus")),
                     400)
        assert re.search(r'id="e-timezone">unknown timezone', text) and 'value="Mars/Olympus"' in text


def test_the_edit_form_previews_a_changed_rule_without_saving_it(client, console, person, package_id):
    token = person("planner", *PLANNER)
    c = console(token)
    page = c.post("/console/automation/schedules/new", schedule_form(package_id))
    sid = page.location.split("?")[0].rsplit("/", 1)[1]
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post(f"/console/automation/schedules/{sid}/preview",
                            schedule_form(package_id, weekdays=["6"], enabled="")))
        assert [d[:10] for d in re.findall(r'<time datetime="([^"]+)">', text)[:2]] == ["2030-01-12", "2030-01-19"]
        assert f'action="/console/automation/schedules/{sid}/edit"' in text
        assert 'class="notice"' in text  # previewed while disabled: these would make no run
    s = client.simulate_get(f"/api/v1/schedules/{sid}", headers=bearer(token)).json["resultValue"]
    assert s["weekdays"] == [1, 2, 3, 4, 5] and s["enabled"] is True


def test_a_preview_needs_schedules_read_and_its_csrf_token(client, console, person, package_id):
    c = console(person("runner", "runs.read"))
    assert c.post("/console/automation/schedules/preview", schedule_form(package_id)).status == 403
    planner = console(person("planner", *PLANNER))
    assert planner.post("/console/automation/schedules/preview", schedule_form(package_id), csrf="forged").status == 403


# -- writing flows ----------------------------------------------------------------------------------

FLOW_EDITOR = ("flows.read", "flows.manage", "runs.start", "runs.read")


def flow_form(name, rows, **extra):
    """The flow form as a browser posts it: one group of cells a task row."""
    form = {"name": name, "description": "", "failurePolicy": "stop_all", "rows": str(len(rows)), **extra}
    for i, row in enumerate(rows):
        for column in ("key", "packageId", "parents", "arguments", "executorId", "pool", "labels", "priority",
                       "maxAttempts"):
            form[f"tasks.{i}.{column}"] = row.get(column, "")
    return form


def test_a_flow_made_in_the_form_is_drawn_with_its_tasks_and_dependencies(client, console, person, package_id):
    token = person("designer", *FLOW_EDITOR)
    c = console(token)
    for language in LANGUAGES:
        speak(client, token, language)
        assert "/console/automation/flows/new" in shown(c.get("/console/automation/flows"))
        text = shown(c.get("/console/automation/flows/new"))
        assert text.count('name="tasks.') == 3 * 9 and 'name="rows" value="3"' in text
        assert f'<option value="{package_id}">月报 1</option>' in text  # the package list helps fill a row
    rows = [{"key": "fetch", "packageId": package_id, "arguments": "month=2024-06\nregion=江苏"},
            {"key": "check", "packageId": package_id, "parents": "fetch", "priority": "5", "maxAttempts": "2"},
            {"key": "report", "packageId": package_id, "parents": "fetch， check",
             "arguments": '{"format": "xlsx", "pages": 3}'}]
    page = c.post("/console/automation/flows/new", flow_form("月度对账", rows, description="每月一号"))
    assert page.status == 303, page.text[-2000:]
    flow_id = page.location.split("?")[0].rsplit("/", 1)[1]
    flow = client.simulate_get(f"/api/v1/flows/{flow_id}", headers=bearer(token)).json["resultValue"]
    tasks = {t["key"]: t for t in flow["tasks"]}
    assert flow["description"] == "每月一号" and tasks["report"]["parents"] == ["fetch", "check"]
    assert tasks["fetch"]["arguments"] == [{"name": "month", "type": "String", "value": "2024-06"},
                                           {"name": "region", "type": "String", "value": "江苏"}]
    assert {a["name"]: a["value"] for a in tasks["report"]["arguments"]} == {"format": "xlsx", "pages": "3"}
    assert tasks["check"]["priority"] == 5 and tasks["check"]["maxAttempts"] == 2
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.get(f"/console/automation/flows/{flow_id}"))
        svg = re.search(r'<svg class="dag".*?</svg>', text, re.S).group(0)
        assert svg.count('<rect class="node"') == 3 and svg.count('class="edge"') == 3
        assert f"/automation/flows/{flow_id}/edit" in text


def test_a_refused_flow_shows_each_error_beside_its_row_and_keeps_what_was_typed(client, console, person,
                                                                                package_id):
    token = person("designer", *FLOW_EDITOR)
    c = console(token)
    cycle = [{"key": "a", "packageId": package_id, "parents": "c"}, {"key": "b", "packageId": package_id,
                                                                      "parents": "a"},
             {"key": "c", "packageId": package_id, "parents": "b", "arguments": "x=1"}]
    unknown = [{"key": "fetch", "packageId": package_id}, {"key": "book", "packageId": "nope", "parents": "fetch"},
               {"key": "report", "packageId": package_id, "parents": "fetch, zz", "pool": "p", "labels": "win"}]
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post("/console/automation/flows/new", flow_form("环", cycle)), 400)
        assert re.search(r'id="f-tasks\.0\.parents"[^>]*aria-invalid="true"', text)
        assert 'id="e-tasks.0.parents">cycle: a → b → c → a<' in text
        assert 'value="环"' in text and '>x=1</textarea>' in text and 'name="tasks.2.parents" type="text" value="b"' in text
        # The graph as typed is drawn on the refused form.
        assert re.search(r'id="sketch".*<svg class="dag"', text, re.S)
        text = shown(c.post("/console/automation/flows/new", flow_form("未知", unknown)), 400)
        assert re.search(r'id="e-tasks\.2\.parents">unknown task key (&#39;|\')zz', text)
        assert 'id="e-tasks.1.packageId">package nope not found<' in text
        assert "name one executor, one pool, or a label set" in text  # the row's own error, under row 3
        assert '<tbody id="task-2" class="has-error">' in text and '<tbody id="task-0">' in text
        # A task's arguments the console cannot read: said beside the cell, nothing sent.
        bad = [{"key": "a", "packageId": package_id, "arguments": "{oops"}]
        text = shown(c.post("/console/automation/flows/new", flow_form("坏参数", bad)), 400)
        assert 'id="e-tasks.0.arguments"' in text and ">{oops</textarea>" in text
    assert client.simulate_get("/api/v1/flows", headers=bearer(token)).json["resultValue"]["total"] == 0


def test_adding_a_row_keeps_the_values_and_a_cleared_row_is_removed(client, console, person, package_id):
    token = person("designer", *FLOW_EDITOR)
    c = console(token)
    rows = [{"key": "fetch", "packageId": package_id, "arguments": "m=5"},
            {"key": "check", "packageId": package_id, "parents": "fetch", "labels": "win, office"}]
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post("/console/automation/flows/new", flow_form("加一行", rows, add="1")))
        assert 'name="rows" value="3"' in text and 'name="tasks.2.key" type="text" value=""' in text
        assert 'name="tasks.1.parents" type="text" value="fetch"' in text and ">m=5</textarea>" in text
        assert 'value="win, office"' in text and 'value="加一行"' in text
        assert re.search(r'<svg class="dag".*data-key="check"', text, re.S)  # the sketch of the rows so far
    assert client.simulate_get("/api/v1/flows", headers=bearer(token)).json["resultValue"]["total"] == 0
    # A cleared middle row is no task: the others are saved, in order.
    three = [rows[0], {}, {"key": "report", "packageId": package_id, "parents": "fetch"}]
    page = c.post("/console/automation/flows/new", flow_form("删一行", three))
    assert page.status == 303, page.text[-2000:]
    flow_id = page.location.split("?")[0].rsplit("/", 1)[1]
    flow = client.simulate_get(f"/api/v1/flows/{flow_id}", headers=bearer(token)).json["resultValue"]
    assert [t["key"] for t in flow["tasks"]] == ["fetch", "report"]


def test_editing_a_flow_replaces_its_definition_and_a_stale_form_is_refused(client, console, person, package_id):
    token = person("designer", *FLOW_EDITOR)
    body = {"name": "巡检", "tasks": [
        {"key": "scan", "packageId": package_id, "arguments": [{"name": "area", "value": "东区"}]},
        {"key": "notify", "packageId": package_id, "parents": ["scan"],
         "arguments": [{"name": "n", "type": "Int", "value": "3"}]}]}
    flow = client.simulate_post("/api/v1/flows", headers=bearer(token), json=body).json["resultValue"]
    c = console(token)
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.get(f"/console/automation/flows/{flow['id']}/edit"))
        assert 'value="巡检"' in text and 'name="version" value="1"' in text and 'name="rows" value="3"' in text
        assert ">area=东区</textarea>" in text
        assert "&#34;type&#34;: &#34;Int&#34;" in text  # a typed argument is shown as JSON, its type kept
    rows = [{"key": "scan", "packageId": package_id, "arguments": "area=西区"},
            {"key": "notify", "packageId": package_id, "parents": "scan, archive",
             "arguments": '[{"name": "n", "type": "Int", "value": "4"}]'},
            {"key": "archive", "packageId": package_id, "parents": "scan"}]
    page = c.post(f"/console/automation/flows/{flow['id']}/edit", flow_form("巡检（新）", rows, version="1"))
    assert page.status == 303, page.text[-2000:]
    after = client.simulate_get(f"/api/v1/flows/{flow['id']}", headers=bearer(token)).json["resultValue"]
    assert after["name"] == "巡检（新）" and after["version"] == 2
    tasks = {t["key"]: t for t in after["tasks"]}
    assert tasks["notify"]["parents"] == ["scan", "archive"]
    assert tasks["notify"]["arguments"] == [{"name": "n", "type": "Int", "value": "4"}]
    text = shown(c.follow(page))
    assert re.search(r'<svg class="dag".*?</svg>', text, re.S).group(0).count('<rect class="node"') == 3
    # A form of version 1 sent again: the flow changed meanwhile, said above the form, the rows kept.
    for language in LANGUAGES:
        speak(client, token, language)
        text = shown(c.post(f"/console/automation/flows/{flow['id']}/edit", flow_form("巡检", rows, version="1")), 409)
        assert "is at version 2, not 1" in text and 'value="archive"' in text


def test_writing_flows_needs_flows_manage_and_the_csrf_token(client, console, person, package_id, admin_token):
    flow = client.simulate_post("/api/v1/flows", headers=bearer(admin_token), json={
        "name": "只读", "tasks": [{"key": "a", "packageId": package_id}]}).json["resultValue"]
    reader = console(person("viewer", "flows.read", "runs.read"))
    text = shown(reader.get("/console/automation/flows"))
    assert "/console/automation/flows/new" not in text
    assert "/edit" not in shown(reader.get(f"/console/automation/flows/{flow['id']}"))
    rows = [{"key": "a", "packageId": package_id}]
    for path in ("/console/automation/flows/new", f"/console/automation/flows/{flow['id']}/edit"):
        assert reader.get(path).status == 403, path
        assert reader.post(path, flow_form("越权", rows, version="1")).status == 403, path
    editor = console(person("designer", *FLOW_EDITOR))
    assert editor.post("/console/automation/flows/new", flow_form("伪造", rows), csrf="forged").status == 403
    assert client.simulate_get("/api/v1/flows", headers=bearer(admin_token)).json["resultValue"]["total"] == 1
    # flows.manage alone: the API also wants runs.start (a flow's tasks are runs); its refusal shows on the form.
    manager = console(person("manager", "flows.read", "flows.manage"))
    text = shown(manager.post("/console/automation/flows/new", flow_form("无权运行", rows)), 403)
    assert "runs.start" in text and 'value="无权运行"' in text
