"""The executor fleet: executors and their admission, suppliers, pools (6.5.1c) and licences."""

from __future__ import annotations

import datetime as dt

from ..i18n import N_, parse_time
from ..views import EMPTY_PAGE, View
from .ops import every, page_query

EXECUTOR_STATES = (N_("online"), N_("busy"), N_("offline"))
LICENCE_STATES = (N_("valid"), N_("expired"), N_("revoked"))
POLICY_NAMES = (N_("least_loaded"), N_("round_robin"), N_("affinity"))


def words(value: str) -> list[str]:
    """A list typed as text: commas, spaces or one a line."""
    return [w for w in value.replace(",", " ").split() if w]


# -- executors ------------------------------------------------------------------------------------


def executor_list(view: View) -> None:
    """Executors."""
    page, errors = view.listing(view.api.get("/api/v1/executors", page_query(view, "state", "supplier", "q", "label")))
    suppliers = [s["code"] for s in every(view, "/api/v1/suppliers")]
    view.render("fleet/executors.html", page=page, errors=errors, states=EXECUTOR_STATES, suppliers=suppliers)


def executor_detail(view: View, robot_id: str, values: dict | None = None, errors: dict | None = None,
                    status: int = 200) -> None:
    """One executor."""
    executor = view.value(view.api.get(f"/api/v1/executors/{robot_id}"))
    runs = view.api.get("/api/v1/ops/runs", {"executorId": robot_id, "pageSize": 10}) if view.can("runs.read") else None
    supplier = view.api.get(f"/api/v1/suppliers/{executor['supplier']}")
    labels = set(executor["labels"])
    pools = [p for p in every(view, "/api/v1/pools")
             if robot_id in p["members"] or (p["labels"] and labels.issuperset(p["labels"]))]
    licences = [dated(lic) for lic in every(view, "/api/v1/licences", {"robotId": robot_id})] \
        if view.can("licences.manage") else None
    if values is None:
        values = {"labels": ", ".join(executor["labels"]), "slots": executor["slots"]}
    view.render("fleet/executor.html", status=status, executor=executor, runs=runs.items() if runs else None,
                supplier=supplier.value if supplier.ok else None, pools=pools, licences=licences, values=values,
                errors=errors or {})


def update_executor(view: View, robot_id: str) -> None:
    values = {"labels": view.field("labels"), "slots": view.field("slots")}
    body: dict = {"labels": words(values["labels"])}
    if values["slots"]:
        body["slots"] = values["slots"]
    answer = view.api.patch(f"/api/v1/executors/{robot_id}", body)
    if not answer.ok:
        executor_detail(view, robot_id, values, answer.form_errors(("labels", "slots")), answer.form_status)
    view.redirect(view.url(f"/executors/{robot_id}"), view._("Executor saved."))


def pause_executor(view: View, robot_id: str) -> None:
    """Pause an executor from dispatch (it finishes what it holds), or resume it."""
    paused = view.field("paused") == "true"
    answer = view.api.patch(f"/api/v1/executors/{robot_id}", {"paused": paused, "pausedNote": view.field("pausedNote")})
    if answer.status == 400:
        executor_detail(view, robot_id, None, answer.form_errors(("pausedNote",)), 400)
    view.back(answer, N_("Executor paused: no new run is placed on it.") if paused else N_("Executor resumed."),
              view.url(f"/executors/{robot_id}"))


def admit_executor(view: View, robot_id: str) -> None:
    """Put the robot on its supplier's allow-list, or take it off (it may no longer register
    when the supplier admits only listed robots)."""
    executor = view.value(view.api.get(f"/api/v1/executors/{robot_id}"))
    code = executor["supplier"]
    supplier = view.value(view.api.get(f"/api/v1/suppliers/{code}"))
    admitted = view.field("admitted") == "true"
    robots = set(supplier["allowedRobots"])
    robots = robots | {robot_id} if admitted else robots - {robot_id}
    answer = view.api.patch(f"/api/v1/suppliers/{code}", {"allowedRobots": sorted(robots)})
    view.back(answer, N_("Executor admitted on its supplier's allow-list.") if admitted else
              N_("Executor taken off its supplier's allow-list."), view.url(f"/executors/{robot_id}"))


# -- suppliers --------------------------------------------------------------------------------------

SUPPLIER_FIELDS = ("code", "name", "secret", "adapter", "allowlistRequired", "allowedRobots", "enabled")


def adapters(view: View) -> list[str]:
    return [a["name"] for a in view.api.get("/api/v1/adapters").value or []] if view.can("executors.read") else []


def supplier_list(view: View, created: dict | None = None, values: dict | None = None, errors: dict | None = None,
                  status: int = 200) -> None:
    """Suppliers."""
    page, filter_errors = view.listing(view.api.get("/api/v1/suppliers", page_query(view)))
    view.render("fleet/suppliers.html", status=status, page=page, filter_errors=filter_errors, created=created,
                values=values or {"adapter": "tces130", "enabled": True}, errors=errors or {},
                adapters=adapters(view))


def create_supplier(view: View) -> None:
    values = {k: view.field(k) for k in ("code", "name", "adapter", "allowedRobots")}
    values.update(allowlistRequired=view.field("allowlistRequired") == "on", enabled=view.field("enabled") == "on")
    body = {"code": values["code"], "name": values["name"], "adapter": values["adapter"] or "tces130",
            "allowlistRequired": values["allowlistRequired"], "enabled": values["enabled"],
            "allowedRobots": words(values["allowedRobots"])}
    if view.field("secret"):
        body["secret"] = view.field("secret")
    answer = view.api.post("/api/v1/suppliers", body)
    if not answer.ok:
        supplier_list(view, values=values, errors=answer.form_errors(SUPPLIER_FIELDS), status=answer.form_status)
    supplier_list(view, created=answer.value)


def supplier_detail(view: View, code: str, values: dict | None = None, errors: dict | None = None,
                    secret: str | None = None, status: int = 200) -> None:
    """One supplier."""
    supplier = view.value(view.api.get(f"/api/v1/suppliers/{code}"))
    executors = view.api.get("/api/v1/executors", {"supplier": code, "pageSize": 50})
    if values is None:
        values = {**supplier, "allowedRobots": "\n".join(supplier["allowedRobots"])}
    view.render("fleet/supplier.html", status=status, supplier=supplier, executors=executors.value if executors.ok
                else EMPTY_PAGE, values=values, errors=errors or {}, secret=secret, adapters=adapters(view))


def update_supplier(view: View, code: str) -> None:
    values = {"name": view.field("name"), "adapter": view.field("adapter"), "allowedRobots": view.field("allowedRobots"),
              "allowlistRequired": view.field("allowlistRequired") == "on"}
    body = {"name": values["name"], "allowlistRequired": values["allowlistRequired"],
            "allowedRobots": words(values["allowedRobots"])}
    if values["adapter"]:
        body["adapter"] = values["adapter"]
    answer = view.api.patch(f"/api/v1/suppliers/{code}", body)
    if not answer.ok:
        supplier_detail(view, code, values, answer.form_errors(SUPPLIER_FIELDS), status=answer.form_status)
    view.redirect(view.url(f"/suppliers/{code}"), view._("Supplier saved."))


def enable_supplier(view: View, code: str) -> None:
    enabled = view.field("enabled") == "true"
    answer = view.api.patch(f"/api/v1/suppliers/{code}", {"enabled": enabled})
    view.back(answer, N_("Supplier enabled.") if enabled else
              N_("Supplier disabled: its executors are disconnected and cannot register."),
              view.url(f"/suppliers/{code}"))


def rotate_secret(view: View, code: str) -> None:
    answer = view.api.patch(f"/api/v1/suppliers/{code}", {"rotateSecret": True})
    if not answer.ok:
        view.redirect(view.url(f"/suppliers/{code}"), answer.hint or view._("The request failed."), "error")
    supplier_detail(view, code, secret=answer.value.get("secret"))


# -- pools -------------------------------------------------------------------------------------------

POOL_FIELDS = ("name", "description", "policy", "members", "labels")


def policies(view: View) -> list[dict]:
    """The policies a pool may name, with a label: ours translated, a plugin's as it calls itself."""
    answer = view.api.get("/api/v1/dispatch/policies")
    found = answer.value if answer.ok else [{"name": "least_loaded", "description": ""}]
    return [{**p, "label": policy_label(view, p["name"])} for p in found]


def policy_label(view: View, name: str) -> str:
    return view._(name) if name in POLICY_NAMES else name


def pool_list(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """Pools."""
    page, filter_errors = view.listing(view.api.get("/api/v1/pools", page_query(view)))
    executors = every(view, "/api/v1/executors") if view.can("pools.manage") else []
    page = {**page, "items": [{**p, "policyLabel": policy_label(view, p["policy"])} for p in page["items"]]}
    view.render("fleet/pools.html", status=status, page=page, filter_errors=filter_errors,
                values=values or {"policy": "least_loaded", "members": []}, errors=errors or {},
                policies=policies(view), executors=executors)


def submitted_pool(view: View) -> tuple[dict, dict]:
    values = {"name": view.field("name"), "description": view.field("description"), "policy": view.field("policy"),
              "members": view.fields("members"), "labels": view.field("labels")}
    body = {"description": values["description"], "policy": values["policy"] or "least_loaded",
            "members": values["members"], "labels": words(values["labels"])}
    return values, body


def create_pool(view: View) -> None:
    values, body = submitted_pool(view)
    answer = view.api.post("/api/v1/pools", {"name": values["name"], **body})
    if not answer.ok:
        pool_list(view, values, answer.form_errors(POOL_FIELDS), answer.form_status)
    view.redirect(view.url(f"/pools/{answer.value['name']}"), view._("Pool created."))


def pool_detail(view: View, name: str, values: dict | None = None, errors: dict | None = None,
                status: int = 200) -> None:
    """One pool."""
    pool = view.value(view.api.get(f"/api/v1/pools/{name}"))
    executors = every(view, "/api/v1/executors")
    wanted = set(pool["labels"])
    members = [e for e in executors if e["id"] in pool["members"] or (wanted and wanted.issubset(e["labels"]))]
    known = {e["id"] for e in executors}
    missing = [m for m in pool["members"] if m not in known]  # named but never registered
    if values is None:
        values = {**pool, "labels": ", ".join(pool["labels"])}
    view.render("fleet/pool.html", status=status, pool=pool, members=members, missing=missing, executors=executors,
                values=values, errors=errors or {}, policies=policies(view), policy=policy_label(view, pool["policy"]))


def update_pool(view: View, name: str) -> None:
    values, body = submitted_pool(view)
    answer = view.api.put(f"/api/v1/pools/{name}", body)
    if not answer.ok:
        pool_detail(view, name, {**values, "name": name}, answer.form_errors(POOL_FIELDS), answer.form_status)
    view.redirect(view.url(f"/pools/{name}"), view._("Pool saved."))


def delete_pool(view: View, name: str) -> None:
    answer = view.api.delete(f"/api/v1/pools/{name}")
    view.back(answer, N_("Pool deleted; runs queued for it keep waiting."), view.url("/pools"))


# -- licences ----------------------------------------------------------------------------------------

LICENCE_FIELDS = ("supplier", "robotId", "pool", "features", "days")
LICENCE_STATES = (N_("valid"), N_("expired"), N_("revoked"))


def dated(lic: dict) -> dict:
    expires = parse_time(lic.get("expiresAt"))
    if lic.get("revokedAt"):
        status = "revoked"
    elif expires is not None and expires <= dt.datetime.now(dt.UTC):
        status = "expired"
    else:
        status = "valid"
    return {**lic, "status": status}


def licence_list(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """Licences."""
    query = page_query(view, "robotId", "pool", "supplier", "state", "expiringWithinDays")
    page, filter_errors = view.listing(view.api.get("/api/v1/licences", query))
    page = {**page, "items": [dated(lic) for lic in page["items"]]}
    suppliers = [s["code"] for s in every(view, "/api/v1/suppliers")] if view.can("executors.read") else []
    view.render("fleet/licences.html", status=status, page=page, filter_errors=filter_errors, suppliers=suppliers,
                licence_states=LICENCE_STATES,
                values=values or {"days": "365"}, errors=errors or {})


def issue_licence(view: View) -> None:
    values = {k: view.field(k) for k in LICENCE_FIELDS}
    body: dict = {"supplier": values["supplier"], "features": words(values["features"])}
    for key in ("robotId", "pool", "days"):
        if values[key]:
            body[key] = values[key]
    answer = view.api.post("/api/v1/licences", body)
    if not answer.ok:
        licence_list(view, values, answer.form_errors(LICENCE_FIELDS), answer.form_status)
    view.redirect(view.url("/licences"), view._("Licence issued."))


def revoke_licence(view: View, licence_id: str) -> None:
    answer = view.api.post(f"/api/v1/licences/{licence_id}/revoke")
    view.back(answer, N_("Licence revoked."), view.url("/licences"))


def bind_licence(view: View, licence_id: str) -> None:
    body = {k: view.field(k) for k in ("robotId", "pool") if view.field(k)}
    answer = view.api.post(f"/api/v1/licences/{licence_id}/bind", body)
    if answer.ok and answer.status == 202:
        view.redirect(view.url("/licences"), view._("Binding filed: it takes effect once a second person approves."))
    view.back(answer, N_("Licence re-issued for its new binding."), view.url("/licences"))


def register(pages) -> None:
    section = N_("Executors")
    pages.view("/executors", executor_list, permission="executors.read", nav=(section, N_("Executors")))
    pages.view("/executors/{robot_id}", executor_detail, permission="executors.read")
    pages.action("/executors/{robot_id}", update_executor, permission="executors.manage")
    pages.action("/executors/{robot_id}/admission", admit_executor, permission="executors.manage")
    pages.action("/executors/{robot_id}/pause", pause_executor, permission="executors.manage")
    pages.view("/suppliers", supplier_list, permission="executors.read", nav=(section, N_("Suppliers")))
    pages.action("/suppliers", create_supplier, permission="executors.manage")
    pages.view("/suppliers/{code}", supplier_detail, permission="executors.read")
    pages.action("/suppliers/{code}", update_supplier, permission="executors.manage")
    pages.action("/suppliers/{code}/enabled", enable_supplier, permission="executors.manage")
    pages.action("/suppliers/{code}/secret", rotate_secret, permission="executors.manage")
    pages.view("/pools", pool_list, permission="executors.read", nav=(section, N_("Pools")))
    pages.action("/pools", create_pool, permission="pools.manage")
    pages.view("/pools/{name}", pool_detail, permission="executors.read")
    pages.action("/pools/{name}", update_pool, permission="pools.manage")
    pages.action("/pools/{name}/delete", delete_pool, permission="pools.manage")
    pages.view("/licences", licence_list, permission="licences.manage", nav=(section, N_("Licences")))
    pages.action("/licences", issue_licence, permission="licences.manage")
    pages.action("/licences/{licence_id}/revoke", revoke_licence, permission="licences.manage")
    pages.action("/licences/{licence_id}/bind", bind_licence, permission="licences.manage")
