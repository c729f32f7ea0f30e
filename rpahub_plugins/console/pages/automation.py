"""Automation around the executors: schedules (6.1.2c) with a preview of their next
occurrences, flows (6.5.1b) drawn as their task graph, and the autoscaler of executor
pools (6.5.2c)."""

from __future__ import annotations

import datetime as dt
import json

from .. import charts
from ..i18n import N_, zone
from ..views import EMPTY_PAGE, View

UNITS = {"minutes": N_("minutes"), "hours": N_("hours"), "days": N_("days"), "weeks": N_("weeks"),
         "months": N_("months")}
EVERY = {"minutes": N_("every %(n)s minute(s)"), "hours": N_("every %(n)s hour(s)"),
         "days": N_("every %(n)s day(s)"), "weeks": N_("every %(n)s week(s)"), "months": N_("every %(n)s month(s)")}
WEEKDAYS = {1: N_("Mon"), 2: N_("Tue"), 3: N_("Wed"), 4: N_("Thu"), 5: N_("Fri"), 6: N_("Sat"), 7: N_("Sun")}
POLICIES = {"fire_once": N_("Make one catch-up run"), "skip": N_("Skip missed occurrences")}
OUTCOMES = (N_("fired"), N_("skipped"), N_("failed"), N_("coalesced"))
FLOW_STATES = (N_("pending"), N_("running"), N_("success"), N_("failed"), N_("cancelled"))
TASK_STATES = (N_("waiting"), N_("queued"), N_("running"), N_("success"), N_("failed"), N_("skipped"),
               N_("cancelled"))
FAILURE_POLICIES = {"stop_all": N_("A failure stops the whole flow"),
                    "continue_independent": N_("Independent branches go on after a failure")}
SCHEDULE_FIELDS = ("name", "packageId", "executorId", "pool", "labels", "arguments", "priority", "maxAttempts",
                   "unit", "every", "anchor", "timezone", "startDate", "endDate", "windowFrom", "windowTo",
                   "weekdays", "misfirePolicy", "misfireGraceSeconds", "enabled")
RULE_FIELDS = ("unit", "every", "anchor", "timezone", "startDate", "endDate", "windowFrom", "windowTo", "weekdays")
OPTIONAL = ("executorId", "pool", "maxAttempts", "startDate", "endDate", "windowFrom", "windowTo")


def paging(view: View, size: int = 20) -> dict:
    return {"page": view.arg("page", "1"), "pageSize": view.arg("pageSize", str(size))}



# -- schedules -----------------------------------------------------------------------------


def schedule_list(view: View) -> None:
    """Schedules."""
    query = {"q": view.arg("q"), "enabled": view.arg("enabled"), **paging(view)}
    answer = view.api.get("/api/v1/schedules", query)
    if not answer.ok and answer.status != 400:
        view.fail(answer)
    page = answer.value if answer.ok else dict(EMPTY_PAGE)
    view.render("automation/schedules.html", page=page, errors=answer.form_errors(SCHEDULE_FIELDS) if not answer.ok else {},
                every=EVERY, weekdays=WEEKDAYS)


def form_values(view: View) -> dict:
    """What the person typed, as the form shows it again."""
    values = {k: view.field(k) for k in SCHEDULE_FIELDS if k not in ("weekdays", "enabled")}
    values["weekdays"] = [int(d) for d in view.fields("weekdays") if d.isdigit()]
    values["enabled"] = bool(view.field("enabled"))
    return values


def body_of(values: dict) -> dict:
    """The API's shape of the form: lists split, blanks left out (or cleared)."""
    body = dict(values)
    body["labels"] = [x.strip() for x in values["labels"].replace("，", ",").split(",") if x.strip()]
    arguments = []
    for line in values["arguments"].splitlines():
        if line.strip():
            name, _sep, value = line.partition("=")
            arguments.append({"name": name.strip(), "value": value.strip()})
    body["arguments"] = arguments
    for key in OPTIONAL:
        body[key] = values[key] or None
    if not body["priority"]:
        body["priority"] = 0
    if not body["misfireGraceSeconds"]:
        body["misfireGraceSeconds"] = 300
    return body


def shown(schedule: dict) -> dict:
    """A schedule as the form shows it."""
    values = {k: schedule.get(k) for k in SCHEDULE_FIELDS}
    values["labels"] = ", ".join(schedule.get("labels") or [])
    values["arguments"] = "\n".join(f"{a['name']}={a['value']}" for a in schedule.get("arguments") or [])
    values["anchor"] = (schedule.get("anchor") or "")[:16]
    for key in OPTIONAL + ("priority", "misfireGraceSeconds"):
        values[key] = "" if values[key] is None else str(values[key])
    values["every"] = str(values["every"])
    return values


def schedule_form(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200,
                  schedule: dict | None = None, preview: dict | None = None) -> None:
    packages = view.api.get("/api/v1/packages", {"pageSize": 100}).items() if view.can("runs.read") else []
    pools = view.api.get("/api/v1/pools", {"pageSize": 100}).items() if view.can("executors.read") else []
    view.render("automation/schedule_form.html", status=status, values=values, errors=errors or {},
                schedule=schedule, packages=packages, pools=pools, units=UNITS, weekdays=WEEKDAYS,
                policies=POLICIES, preview=preview,
                other_zone=bool(preview) and preview["timezone"] != view.timezone)


def schedule_new(view: View) -> None:
    """New schedule."""
    start = (dt.datetime.now(zone(view.timezone)) + dt.timedelta(hours=1)).replace(minute=0, second=0)
    schedule_form(view, {"name": "", "packageId": view.arg("packageId"), "executorId": "", "pool": "", "labels": "",
                         "arguments": "", "priority": "0", "maxAttempts": "", "unit": "days", "every": "1",
                         "anchor": start.strftime("%Y-%m-%dT%H:%M"), "timezone": view.timezone, "startDate": "",
                         "endDate": "", "windowFrom": "", "windowTo": "", "weekdays": [],
                         "misfirePolicy": "fire_once", "misfireGraceSeconds": "300", "enabled": True})


def schedule_create(view: View) -> None:
    values = form_values(view)
    body = {k: v for k, v in body_of(values).items() if v not in (None, "")}
    answer = view.api.post("/api/v1/schedules", body)
    if not answer.ok:
        schedule_form(view, values, answer.form_errors(SCHEDULE_FIELDS), status=answer.status)
    view.redirect(view.url(f"/automation/schedules/{answer.value['id']}"), view._("Schedule created."))


def schedule_preview(view: View, schedule_id: str | None = None) -> None:
    """The form again, as typed, with when its rule would fire: nothing is saved."""
    s = view.value(view.api.get(f"/api/v1/schedules/{schedule_id}")) if schedule_id else None
    values = form_values(view)
    body = {k: v for k, v in body_of(values).items() if k in RULE_FIELDS and v not in (None, "")}
    answer = view.api.post("/api/v1/schedules/preview", body)
    if not answer.ok:
        schedule_form(view, values, answer.form_errors(SCHEDULE_FIELDS), status=answer.status, schedule=s)
    schedule_form(view, values, schedule=s, preview=answer.value)


def schedule_edit(view: View, schedule_id: str) -> None:
    """Change a schedule."""
    s = view.value(view.api.get(f"/api/v1/schedules/{schedule_id}"))
    schedule_form(view, shown(s), schedule=s)


def schedule_update(view: View, schedule_id: str) -> None:
    s = view.value(view.api.get(f"/api/v1/schedules/{schedule_id}"))
    values = form_values(view)
    before, after = body_of(shown(s)), body_of(values)
    # Only what changed: renaming needs no right to start runs, redefining does.
    changes = {k: v for k, v in after.items() if str(v) != str(before.get(k))}
    answer = view.api.patch(f"/api/v1/schedules/{schedule_id}", changes) if changes else None
    if answer is not None and not answer.ok:
        schedule_form(view, values, answer.form_errors(SCHEDULE_FIELDS), status=answer.status, schedule=s)
    view.redirect(view.url(f"/automation/schedules/{schedule_id}"), view._("Schedule saved."))


def schedule_detail(view: View, schedule_id: str) -> None:
    """One schedule."""
    s = view.value(view.api.get(f"/api/v1/schedules/{schedule_id}"))
    count = view.arg("count") or "10"
    preview = view.api.get(f"/api/v1/schedules/{schedule_id}/preview", {"count": count})
    history = view.api.get(f"/api/v1/schedules/{schedule_id}/occurrences", paging(view, 10))
    view.render("automation/schedule.html", s=s, preview=preview.value if preview.ok else None,
                preview_error=None if preview.ok else preview.hint, history=history.value if history.ok else None,
                every=EVERY, weekdays=WEEKDAYS, policies=POLICIES, other_zone=s["timezone"] != view.timezone)


def schedule_switch(enabled: bool):
    def switch(view: View, schedule_id: str) -> None:
        answer = view.api.patch(f"/api/v1/schedules/{schedule_id}", {"enabled": enabled})
        view.back(answer, N_("Schedule enabled.") if enabled else N_("Schedule disabled."))

    switch.__name__ = "schedule_enable" if enabled else "schedule_disable"
    switch.__doc__ = "Enable a schedule." if enabled else "Disable a schedule."
    return switch


def schedule_delete(view: View, schedule_id: str) -> None:
    answer = view.api.delete(f"/api/v1/schedules/{schedule_id}")
    view.back(answer, N_("Schedule deleted."), view.url("/automation/schedules"))


# -- flows --------------------------------------------------------------------------------------


def flow_list(view: View) -> None:
    """Flows."""
    answer = view.api.get("/api/v1/flows", {"q": view.arg("q"), **paging(view)})
    page = view.value(answer)
    view.render("automation/flows.html", page=page)


def state_words(view: View) -> dict:
    return {s: view._(s) for s in TASK_STATES}


def flow_detail(view: View, flow_id: str) -> None:
    """One flow."""
    flow = view.value(view.api.get(f"/api/v1/flows/{flow_id}"))
    runs = view.api.get("/api/v1/flow-runs", {"flowId": flow_id, **paging(view, 10)})
    runs_page = runs.value if runs.ok else dict(EMPTY_PAGE)
    shown_run = None
    chosen = view.arg("run") or (runs_page["items"][0]["id"] if runs_page["items"] else "")
    if chosen:
        answer = view.api.get(f"/api/v1/flow-runs/{chosen}")
        shown_run = answer.value if answer.ok and answer.value["flowId"] == flow_id else None
    states = {t["key"]: t["state"] for t in shown_run["tasks"]} if shown_run else {}
    drawing = charts.dag(flow["tasks"], states, label=view._("Task graph of %(name)s") % {"name": flow["name"]},
                         state_names=state_words(view))
    view.render("automation/flow.html", flow=flow, runs=runs_page, shown_run=shown_run, drawing=drawing,
                policies=FAILURE_POLICIES)


def flow_start(view: View, flow_id: str) -> None:
    answer = view.api.post(f"/api/v1/flows/{flow_id}/runs")
    if answer.ok:
        view.redirect(view.url(f"/automation/flow-runs/{answer.value['id']}"), view._("Flow run started."))
    view.back(answer, N_("Flow run started."), view.url(f"/automation/flows/{flow_id}"))


def flow_delete(view: View, flow_id: str) -> None:
    answer = view.api.delete(f"/api/v1/flows/{flow_id}")
    view.back(answer, N_("Flow deleted."), view.url("/automation/flows"))


TASK_COLUMNS = ("key", "packageId", "parents", "arguments", "executorId", "pool", "labels", "priority",
                "maxAttempts")
FLOW_FIELDS = ("name", "description", "failurePolicy", "tasks")
NEW_ROWS = 3  # empty task rows of a new flow's form


def split_list(text: str) -> list[str]:
    return [x.strip() for x in text.replace("，", ",").split(",") if x.strip()]


def arguments_text(arguments: list[dict]) -> str:
    """A task's arguments as the form shows them: ``name=value`` lines, or JSON where a
    value spans lines or an argument has a type other than String (lines would lose it)."""
    if any(a.get("type", "String") != "String" or "\n" in a["value"] for a in arguments):
        return json.dumps(arguments, ensure_ascii=False, indent=1)
    return "\n".join(f"{a['name']}={a['value']}" for a in arguments)


def parse_arguments(view: View, text: str) -> tuple[list, str | None]:
    """``name=value`` lines, or JSON: a list of ``{name, value, type}`` or an object of
    name → value. The second item is why the text could not be read."""
    text = text.strip()
    if not text:
        return [], None
    if text[0] in "[{":
        try:
            data = json.loads(text)
        except ValueError as exc:
            return [], view.translator.gettext("Not valid JSON: %(error)s", error=str(exc))
        if isinstance(data, dict):
            return [{"name": str(k), "value": v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}
                    for k, v in data.items()], None
        return data, None  # the API checks each item's shape and names the bad one
    arguments = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            return [], view.translator.gettext("Line %(n)s: write name=value.", n=n)
        arguments.append({"name": name.strip(), "value": value.strip()})
    return arguments, None


def number_or_text(text: str):
    """A number as a number; anything else as typed, for the API to name the field."""
    return int(text) if text.lstrip("-").isdigit() else text


def task_rows(view: View) -> list[dict]:
    """The task rows as typed; a row whose every cell was cleared is left out."""
    count = view.field("rows")
    rows = []
    for i in range(min(int(count) if count.isdigit() else 0, 200)):
        row = {c: view.field(f"tasks.{i}.{c}") for c in TASK_COLUMNS}
        if any(row.values()):
            rows.append(row)
    return rows


def flow_values(view: View) -> dict:
    return {"name": view.field("name"), "description": view.field("description"),
            "failurePolicy": view.field("failurePolicy") or "stop_all", "version": view.field("version"),
            "tasks": task_rows(view)}


def flow_body(view: View, values: dict) -> tuple[dict, dict]:
    """The API's body of the form, and what the console itself could not read (by field)."""
    tasks, errors = [], {}
    for i, row in enumerate(values["tasks"]):
        arguments, problem = parse_arguments(view, row["arguments"])
        if problem:
            errors[f"tasks.{i}.arguments"] = problem
        task = {"key": row["key"], "packageId": row["packageId"], "parents": split_list(row["parents"]),
                "labels": split_list(row["labels"]), "arguments": arguments,
                "executorId": row["executorId"] or None, "pool": row["pool"] or None,
                "priority": number_or_text(row["priority"]) if row["priority"] else 0,
                "maxAttempts": number_or_text(row["maxAttempts"]) if row["maxAttempts"] else None}
        tasks.append(task)
    body = {"name": values["name"], "description": values["description"], "failurePolicy": values["failurePolicy"],
            "tasks": tasks}
    if values.get("version", "").isdigit():
        body["version"] = int(values["version"])
    return body, errors


def flow_shown(flow: dict) -> dict:
    """A flow as its form shows it."""
    rows = [{"key": t["key"], "packageId": t["packageId"], "parents": ", ".join(t["parents"]),
             "arguments": arguments_text(t.get("arguments") or []), "executorId": t.get("executorId") or "",
             "pool": t.get("pool") or "", "labels": ", ".join(t.get("labels") or []),
             "priority": str(t.get("priority") or 0), "maxAttempts": str(t.get("maxAttempts") or "")}
            for t in flow["tasks"]]
    return {"name": flow["name"], "description": flow.get("description") or "",
            "failurePolicy": flow["failurePolicy"], "version": str(flow["version"]), "tasks": rows}


def flow_errors(answer, count: int) -> dict:
    """The API's messages by form field: ``tasks.3.parents`` beside row 4's depends-on cell,
    ``tasks.3`` (executor, pool and labels together) under the row, the rest above the form."""
    fields = set(FLOW_FIELDS) | {f"tasks.{i}" for i in range(count)} | \
        {f"tasks.{i}.{c}" for i in range(count) for c in TASK_COLUMNS}
    return answer.form_errors(fields)


def flow_form(view: View, values: dict, errors: dict | None = None, status: int = 200, flow: dict | None = None,
              extra_rows: int = 0) -> None:
    rows = list(values["tasks"]) + [dict.fromkeys(TASK_COLUMNS, "") for _ in range(extra_rows)]
    if not rows:
        rows = [dict.fromkeys(TASK_COLUMNS, "")]
    packages = view.api.get("/api/v1/packages", {"pageSize": 100}).items() if view.can("runs.read") else []
    names = {p["id"]: f"{p['name']} {p['version']}" for p in packages}
    # The graph as typed, drawn before it is saved: each key once (the drawing leaves out
    # parents that are no task).
    sketch = [{"key": r["key"], "packageId": names.get(r["packageId"], r["packageId"]),
               "parents": split_list(r["parents"])} for r in values["tasks"] if r["key"]]
    keys = [t["key"] for t in sketch]
    sketch = [t for i, t in enumerate(sketch) if t["key"] not in keys[:i]]
    drawing = charts.dag(sketch, label=view._("Task graph as typed")) if sketch else None
    pools = view.api.get("/api/v1/pools", {"pageSize": 100}).items() if view.can("executors.read") else []
    view.render("automation/flow_form.html", status=status, values=values, rows=rows, errors=errors or {},
                flow=flow, drawing=drawing, policies=FAILURE_POLICIES, packages=packages, pools=pools,
                bad_rows={int(k.split(".")[1]) for k in (errors or {})
                          if k.startswith("tasks.") and k.split(".")[1].isdigit()})


def flow_new(view: View) -> None:
    """New flow."""
    flow_form(view, {"name": "", "description": "", "failurePolicy": "stop_all", "version": "", "tasks": []},
              extra_rows=NEW_ROWS)


def flow_save(view: View, flow: dict | None) -> None:
    values = flow_values(view)
    if view.field("add"):
        flow_form(view, values, flow=flow, extra_rows=1)
    body, errors = flow_body(view, values)
    if errors:
        flow_form(view, values, errors, status=400, flow=flow)
    if flow is None:
        answer = view.api.post("/api/v1/flows", body)
    else:
        answer = view.api.put(f"/api/v1/flows/{flow['id']}", body)
    if not answer.ok:
        flow_form(view, values, flow_errors(answer, len(values["tasks"])), status=answer.form_status, flow=flow)
    view.redirect(view.url(f"/automation/flows/{answer.value['id']}"),
                  view._("Flow saved.") if flow else view._("Flow created."))


def flow_create(view: View) -> None:
    flow_save(view, None)


def flow_edit(view: View, flow_id: str) -> None:
    """Change a flow."""
    flow = view.value(view.api.get(f"/api/v1/flows/{flow_id}"))
    flow_form(view, flow_shown(flow), flow=flow, extra_rows=1)


def flow_update(view: View, flow_id: str) -> None:
    flow_save(view, view.value(view.api.get(f"/api/v1/flows/{flow_id}")))


def flow_run(view: View, flow_run_id: str) -> None:
    """One flow run."""
    fr = view.value(view.api.get(f"/api/v1/flow-runs/{flow_run_id}"))
    tasks = [{"key": t["key"], "parents": t["parents"], "packageId": t["packageId"]} for t in fr["tasks"]]
    links = {t["key"]: view.url(f"/runs/{t['runId']}") for t in fr["tasks"] if t["runId"]} \
        if view.can("runs.read") else {}
    drawing = charts.dag(tasks, {t["key"]: t["state"] for t in fr["tasks"]}, links=links,
                         label=view._("Task graph of %(name)s") % {"name": fr["flowName"]},
                         state_names=state_words(view))
    live = fr["state"] in ("pending", "running")
    view.render("automation/flow_run.html", fr=fr, drawing=drawing, live=live, policies=FAILURE_POLICIES)


def flow_run_cancel(view: View, flow_run_id: str) -> None:
    answer = view.api.post(f"/api/v1/flow-runs/{flow_run_id}/cancel")
    view.back(answer, N_("Flow run cancelled."), view.url(f"/automation/flow-runs/{flow_run_id}"))


# -- the autoscaler ---------------------------------------------------------------------------------


def autoscale_list(view: View) -> None:
    """Autoscaling."""
    pools = view.value(view.api.get("/api/v1/pools", paging(view, 50)))
    policies = {p["pool"]: p for p in view.api.get("/api/v1/autoscale", {"pageSize": 200}).items()}
    rows = [{"pool": pool, "policy": policies.get(pool["name"]),
             "last": (policies.get(pool["name"]) or {}).get("lastEvent")} for pool in pools["items"]]
    view.render("automation/autoscale.html", pools=pools, rows=rows)


def policy_values(policy: dict | None) -> dict:
    p = policy or {"provider": "local", "min": 0, "max": 1, "queuePerExecutor": 1, "maxWaitSeconds": 60,
                   "idleSeconds": 300, "cooldownSeconds": 60, "enabled": True}
    return {k: p[k] for k in ("provider", "min", "max", "queuePerExecutor", "maxWaitSeconds", "idleSeconds",
                              "cooldownSeconds", "enabled")}


def autoscale_pool(view: View, name: str, values: dict | None = None, errors: dict | None = None,
                   status: int = 200) -> None:
    """A pool's autoscaling."""
    pool = view.value(view.api.get(f"/api/v1/pools/{name}"))
    policy = view.api.get(f"/api/v1/pools/{name}/autoscale")
    events = view.api.get(f"/api/v1/pools/{name}/autoscale/events", paging(view, 20))
    view.render("automation/autoscale_pool.html", status=status, pool=pool,
                policy=policy.value if policy.ok else None, events=events.value if events.ok else dict(EMPTY_PAGE),
                values=values or policy_values(policy.value if policy.ok else None), errors=errors or {})


def autoscale_save(view: View, name: str) -> None:
    values = {k: view.field(k) for k in ("provider", "min", "max", "queuePerExecutor", "maxWaitSeconds",
                                         "idleSeconds", "cooldownSeconds")}
    values["enabled"] = bool(view.field("enabled"))
    body = {k: v for k, v in values.items() if v != ""}
    answer = view.api.put(f"/api/v1/pools/{name}/autoscale", body)
    if not answer.ok:
        errors = answer.field_errors if answer.status == 400 else {}
        autoscale_pool(view, name, values, errors or {"": answer.hint}, status=answer.status)
    view.redirect(view.url(f"/automation/autoscale/{name}"), view._("Autoscaling policy saved."))


def register(pages) -> None:
    ex = N_("Executors")
    pages.view("/automation/schedules", schedule_list, permission="schedules.read", nav=(ex, N_("Schedules")))
    pages.view("/automation/schedules/new", schedule_new, permission="schedules.manage")
    pages.action("/automation/schedules/new", schedule_create, permission="schedules.manage")
    pages.action("/automation/schedules/preview", schedule_preview, permission="schedules.read")
    pages.action("/automation/schedules/{schedule_id}/preview", schedule_preview, permission="schedules.read")
    pages.view("/automation/schedules/{schedule_id}", schedule_detail, permission="schedules.read")
    pages.view("/automation/schedules/{schedule_id}/edit", schedule_edit, permission="schedules.manage")
    pages.action("/automation/schedules/{schedule_id}/edit", schedule_update, permission="schedules.manage")
    pages.action("/automation/schedules/{schedule_id}/enable", schedule_switch(True), permission="schedules.manage")
    pages.action("/automation/schedules/{schedule_id}/disable", schedule_switch(False),
                 permission="schedules.manage")
    pages.action("/automation/schedules/{schedule_id}/delete", schedule_delete, permission="schedules.manage")
    pages.view("/automation/flows", flow_list, permission="flows.read", nav=(ex, N_("Flows")))
    pages.view("/automation/flows/new", flow_new, permission="flows.manage")
    pages.action("/automation/flows/new", flow_create, permission="flows.manage")
    pages.view("/automation/flows/{flow_id}", flow_detail, permission="flows.read")
    pages.view("/automation/flows/{flow_id}/edit", flow_edit, permission="flows.manage")
    pages.action("/automation/flows/{flow_id}/edit", flow_update, permission="flows.manage")
    pages.action("/automation/flows/{flow_id}/start", flow_start, permission="flows.run")
    pages.action("/automation/flows/{flow_id}/delete", flow_delete, permission="flows.manage")
    pages.view("/automation/flow-runs/{flow_run_id}", flow_run, permission="flows.read")
    pages.action("/automation/flow-runs/{flow_run_id}/cancel", flow_run_cancel, permission="flows.run")
    pages.view("/automation/autoscale", autoscale_list, permission="executors.read", nav=(ex, N_("Autoscaling")))
    pages.view("/automation/autoscale/{name}", autoscale_pool, permission="executors.read")
    pages.action("/automation/autoscale/{name}", autoscale_save, permission="autoscale.manage")
