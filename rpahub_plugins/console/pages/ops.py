"""The ops center (6.3): monitoring board, alert rules and alerts, the audit log and its
verification, users, roles and permissions, one's personal folder and the cloud resources."""

from __future__ import annotations

import datetime as dt

from ..i18n import N_, number
from ..views import EMPTY_PAGE, View

# Values the API answers with, shown as words.
EXECUTOR_STATES = (N_("online"), N_("busy"), N_("offline"))
RULE_KINDS = (N_("failure_rate"), N_("executor_offline"), N_("queue_wait"), N_("licence_expiry"))
SEVERITIES = (N_("info"), N_("warning"), N_("critical"))
ALERT_STATES = (N_("firing"), N_("resolved"))
# The `acknowledged` filter of GET /api/v1/ops/alerts.
ACK_FILTERS = {"false": N_("Not acknowledged"), "true": N_("Acknowledged")}
# Either lets one acknowledge (POST /api/v1/ops/alerts/{id}/acknowledge checks the same).
ACKNOWLEDGE = ("alerts.acknowledge", "alerts.manage")
AUDIT_RESULTS = (N_("ok"), N_("denied"), N_("failed"))
PRINCIPAL_TYPES = (N_("user"), N_("robot"), N_("system"), N_("anonymous"))
HOST_STATES = (N_("up"), N_("degraded"), N_("down"), N_("idle"))
INSTANCE_STATES = (N_("starting"), N_("running"), N_("stopped"), N_("failed"))
PROBLEM_KINDS = (N_("checkpoint_signature"), N_("checkpoint_order"), N_("leaf_tampered"), N_("leaves_reordered"),
                 N_("entry_removed"), N_("entry_changed"), N_("entry_inserted"), N_("checkpoint_mismatch"),
                 N_("entries_swapped"))
UNITS = {"failure_rate": N_("percent of finished runs"), "executor_offline": N_("offline executors"),
         "queue_wait": N_("minutes waited"), "licence_expiry": N_("days ahead")}
# Which filters each kind of rule understands (the API refuses others).
RULE_FILTERS = {"failure_rate": ("appId", "executorId", "pool", "minRuns"), "executor_offline": ("executorId", "pool"),
                "queue_wait": ("executorId", "pool"), "licence_expiry": ("supplier", "robotId", "pool")}
FILTER_NAMES = ("appId", "executorId", "pool", "supplier", "robotId", "minRuns")
PERIODS = {"1": N_("Last hour"), "24": N_("Last 24 hours"), "168": N_("Last 7 days"), "720": N_("Last 30 days")}


# -- shared helpers -------------------------------------------------------------------------




def page_query(view: View, *names: str, size: str = "20") -> dict:
    query = {name: view.arg(name) for name in names}
    query.update(page=view.arg("page", "1"), pageSize=view.arg("pageSize", size))
    return query




def _day_start(view: View, value: str) -> str | None:
    """A day picked in the person's zone as the instant it starts."""
    from ..i18n import zone

    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return dt.datetime.combine(day, dt.time(), zone(view.timezone)).isoformat()


def human_size(size, language: str) -> str:
    """Bytes as a person reads them (B, KB, MB, GB; powers of 1024)."""
    value, unit = float(size or 0), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1024:
            break
        value, unit = value / 1024, bigger
    return f"{number(round(value, 1) if unit != 'B' else int(value), language)} {unit}"


def every(view: View, path: str, query: dict | None = None) -> list:
    """All items of a small list (at most a few pages of 200)."""
    out: list = []
    for page in range(1, 6):
        answer = view.api.get(path, {**(query or {}), "page": page, "pageSize": 200})
        if not answer.ok:
            break
        out.extend(answer.value["items"])
        if len(out) >= answer.value["total"]:
            break
    return out


# -- monitoring (6.3.1b) ----------------------------------------------------------------------


def monitoring(view: View) -> None:
    """Monitoring."""
    hours = view.arg("hours", "24")
    hours = hours if hours in PERIODS else "24"
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    query = {"from": (end - dt.timedelta(hours=int(hours))).isoformat(), "to": end.isoformat(),
             "groupBy": "executor", "licenceDays": 30}
    stats = view.value(view.api.get("/api/v1/ops/stats", query))
    queue = view.api.get("/api/v1/dispatch/queue", {"pageSize": 10})
    alerts = view.api.get("/api/v1/ops/alerts", {"pageSize": 1}) if view.can("alerts.read") else None
    view.render("ops/monitoring.html", stats=stats, hours=hours, periods=PERIODS,
                queue=queue.value if queue.ok else None,
                firing=alerts.value["firing"] if alerts is not None and alerts.ok else None)


# -- alerts -------------------------------------------------------------------------------------


def alert_list(view: View) -> None:
    """Alerts."""
    query = page_query(view, "state", "ruleId", "acknowledged")
    answer = view.api.get("/api/v1/ops/alerts", query)
    if answer.ok:
        firing, history, errors = answer.value["firing"], answer.value["history"], {}
    elif answer.status == 400:
        firing, history, errors = [], EMPTY_PAGE, answer.form_errors(())
    else:
        view.fail(answer)
    view.render("ops/alerts.html", firing=firing, page=history, errors=errors, states=ALERT_STATES,
                ack_filters=ACK_FILTERS, acknowledge=ACKNOWLEDGE)


def acknowledge_alert(view: View, alert_id: str) -> None:
    """Say one is on a firing alert: its reminders stop, colleagues see who and the note."""
    answer = view.api.post(f"/api/v1/ops/alerts/{alert_id}/acknowledge", {"note": view.field("note")})
    view.back(answer, N_("Alert acknowledged: its reminders stop; it resolves when its condition clears."))


def rule_list(view: View) -> None:
    """Alert rules."""
    page, errors = view.listing(view.api.get("/api/v1/ops/alert-rules", page_query(view, "kind", "q")))
    view.render("ops/rules.html", page=page, errors=errors, kinds=RULE_KINDS, units=UNITS)


RULE_FIELDS = ("name", "kind", "threshold", "windowMinutes", "severity", "cooldownMinutes", "enabled", "channels",
               *(f"filters.{f}" for f in FILTER_NAMES))


def rule_form(view: View, rule: dict | None = None, values: dict | None = None, errors: dict | None = None,
              status: int = 200) -> None:
    notifiers = view.api.get("/api/v1/ops/notifiers")
    if values is None:
        values = rule_values(rule) if rule else {"kind": view.arg("kind") or "failure_rate", "severity": "warning",
                                                 "windowMinutes": "15", "cooldownMinutes": "60", "enabled": True}
    view.render("ops/rule_form.html", status=status, rule=rule, values=values, errors=errors or {},
                kinds=RULE_KINDS, severities=SEVERITIES, units=UNITS, rule_filters=RULE_FILTERS,
                filter_names=FILTER_NAMES, notifiers=[n["name"] for n in notifiers.items()])


def rule_values(rule: dict) -> dict:
    values = {k: rule.get(k) for k in ("name", "kind", "threshold", "windowMinutes", "severity", "cooldownMinutes",
                                       "enabled")}
    values["channels"] = "\n".join(f"{c['notifier']} {c['target']}" for c in rule.get("channels") or [])
    for key, value in (rule.get("filters") or {}).items():
        values[f"filters.{key}"] = value
    return values


def submitted_rule(view: View) -> tuple[dict, dict]:
    """The form's values as typed, and the API body they make."""
    values = {k: view.field(k) for k in RULE_FIELDS if k != "enabled"}
    values["enabled"] = view.field("enabled") == "on"
    body: dict = {"name": values["name"], "severity": values["severity"] or "warning", "enabled": values["enabled"]}
    for key in ("threshold", "windowMinutes", "cooldownMinutes"):
        if values[key] != "":
            body[key] = values[key]
    kind = values["kind"]
    filters = {}
    for name in FILTER_NAMES:
        value = values[f"filters.{name}"]
        if value != "" and name in RULE_FILTERS.get(kind, FILTER_NAMES):
            filters[name] = value
    body["filters"] = filters
    channels = []
    for line in values["channels"].splitlines():
        notifier, _, target = line.strip().partition(" ")
        if notifier:
            channels.append({"notifier": notifier, "target": target.strip()})
    body["channels"] = channels
    return values, body


def new_rule(view: View) -> None:
    """New alert rule."""
    rule_form(view)


def create_rule(view: View) -> None:
    values, body = submitted_rule(view)
    body["kind"] = values["kind"]
    answer = view.api.post("/api/v1/ops/alert-rules", body)
    if not answer.ok:
        rule_form(view, None, values, answer.form_errors(RULE_FIELDS), answer.form_status)
    view.redirect(view.url(f"/ops/alert-rules/{answer.value['id']}"), view._("Alert rule created."))


def rule_detail(view: View, rule_id: str) -> None:
    """One alert rule."""
    rule = view.value(view.api.get(f"/api/v1/ops/alert-rules/{rule_id}"))
    rule_form(view, rule)


def update_rule(view: View, rule_id: str) -> None:
    rule = view.value(view.api.get(f"/api/v1/ops/alert-rules/{rule_id}"))
    values, body = submitted_rule(view)
    values["kind"] = rule["kind"]
    answer = view.api.patch(f"/api/v1/ops/alert-rules/{rule_id}", body)
    if not answer.ok:
        rule_form(view, rule, values, answer.form_errors(RULE_FIELDS), answer.form_status)
    view.redirect(view.url(f"/ops/alert-rules/{rule_id}"), view._("Alert rule saved."))


def delete_rule(view: View, rule_id: str) -> None:
    answer = view.api.delete(f"/api/v1/ops/alert-rules/{rule_id}")
    view.back(answer, N_("Alert rule deleted; its alerts stay in the history."), view.url("/ops/alert-rules"))


def enable_rule(view: View, rule_id: str) -> None:
    """Switch a rule off (a firing alert resolves at the next evaluation) or on again."""
    enabled = view.field("enabled") == "true"
    answer = view.api.patch(f"/api/v1/ops/alert-rules/{rule_id}", {"enabled": enabled})
    view.back(answer, N_("Alert rule switched on.") if enabled else
              N_("Alert rule switched off: its alert resolves at the next evaluation."))


def test_rule(view: View, rule_id: str) -> None:
    answer = view.api.post(f"/api/v1/ops/alert-rules/{rule_id}/test")
    target = view.url(f"/ops/alert-rules/{rule_id}")
    if not answer.ok:
        view.redirect(target, answer.hint or view._("The request failed."), "error")
    if answer.value["delivered"]:
        view.redirect(target, view._("Test notification delivered to every channel."))
    failed = "; ".join(f"{c['notifier']} {c['target']}: {c['error']}" for c in answer.value["channels"] if not c["ok"])
    view.redirect(target, view._("Some channels did not receive the test notification:") + " " + failed, "error")


# -- audit log (6.3.1c) -------------------------------------------------------------------------

AUDIT_FILTERS = ("actor", "principalType", "action", "target", "result")


def audit(view: View, verification: dict | None = None) -> None:
    """Audit log."""
    query = page_query(view, *AUDIT_FILTERS, size="50")
    if view.arg("from"):
        query["from"] = _day_start(view, view.arg("from")) or view.arg("from")
    if view.arg("to"):
        end = _day_start(view, view.arg("to"))
        query["to"] = (dt.datetime.fromisoformat(end) + dt.timedelta(days=1)).isoformat() if end else view.arg("to")
    answer = view.api.get("/api/v1/audit", query)
    if verification is not None and not answer.ok and answer.status != 400:
        page, errors = EMPTY_PAGE, {}  # one may verify without reading: the outcome still shows
    else:
        page, errors = view.listing(answer)
    view.render("ops/audit.html", page=page, errors=errors, results=AUDIT_RESULTS, types=PRINCIPAL_TYPES,
                verification=verification)


def verify_audit(view: View) -> None:
    answer = view.api.post("/api/v1/audit/verify")
    if not answer.ok:
        view.fail(answer)
    audit(view, answer.value)


# -- users, roles, permissions (6.3.2a–c) ---------------------------------------------------------

USER_FIELDS = ("username", "displayName", "email", "password", "roles")


def role_names(view: View) -> list[str] | None:
    """Every role's name, or None when the person may not list roles."""
    if not view.can("roles.read"):
        return None
    return [r["name"] for r in every(view, "/api/v1/roles")]


def user_list(view: View, created: dict | None = None, values: dict | None = None, errors: dict | None = None,
              status: int = 200) -> None:
    """Users."""
    query = page_query(view, "q", "role", "active")
    page, filter_errors = view.listing(view.api.get("/api/v1/users", query))
    view.render("ops/users.html", status=status, page=page, filter_errors=filter_errors, created=created,
                values=values or {}, errors=errors or {}, roles=role_names(view))


def chosen_roles(view: View) -> list[str]:
    roles = view.fields("roles")
    if len(roles) == 1 and "," in roles[0]:  # typed by someone who may not list roles
        roles = [r.strip() for r in roles[0].split(",") if r.strip()]
    return roles


def create_user(view: View) -> None:
    values = {k: view.field(k) for k in USER_FIELDS if k != "roles"}
    values["roles"] = chosen_roles(view)
    body = {"username": values["username"], "displayName": values["displayName"], "email": values["email"],
            "roles": values["roles"]}
    if values["password"]:
        body["password"] = values["password"]
    answer = view.api.post("/api/v1/users", body)
    values.pop("password")
    if not answer.ok:
        user_list(view, values=values, errors=answer.form_errors(USER_FIELDS), status=answer.form_status)
    user_list(view, created=answer.value)


def user_detail(view: View, user_id: str, values: dict | None = None, errors: dict | None = None,
                status: int = 200) -> None:
    """One user."""
    user = view.value(view.api.get(f"/api/v1/users/{user_id}"))
    view.render("ops/user.html", status=status, user=user, values=values or user, errors=errors or {},
                roles=role_names(view))


def update_user(view: View, user_id: str) -> None:
    values = {"displayName": view.field("displayName"), "email": view.field("email"), "roles": chosen_roles(view)}
    answer = view.api.patch(f"/api/v1/users/{user_id}", values)
    if not answer.ok:
        user_detail(view, user_id, values, answer.form_errors(("displayName", "email", "roles")), answer.form_status)
    pending = [g["role"] for g in answer.value.get("pendingRoleGrants") or []]
    if pending:
        view.redirect(view.url(f"/ops/users/{user_id}"),
                      view._("User saved. Granting %(roles)s waits for a second person's approval.")
                      % {"roles": ", ".join(pending)})
    view.redirect(view.url(f"/ops/users/{user_id}"), view._("User saved."))


def activate_user(view: View, user_id: str) -> None:
    active = view.field("isActive") == "true"
    answer = view.api.patch(f"/api/v1/users/{user_id}", {"isActive": active})
    view.back(answer, N_("User enabled.") if active else N_("User disabled; their tokens are revoked."),
              view.url(f"/ops/users/{user_id}"))


def reset_password(view: View, user_id: str) -> None:
    answer = view.api.patch(f"/api/v1/users/{user_id}", {"password": view.field("password")})
    if not answer.ok:
        user_detail(view, user_id, None, answer.form_errors(("password",)), answer.form_status)
    view.redirect(view.url(f"/ops/users/{user_id}"),
                  view._("Password reset: the user must choose a new one at the next sign-in."))


def permission_catalogue(view: View) -> list[dict]:
    answer = view.api.get("/api/v1/permissions")
    return answer.value if answer.ok else []


def role_list(view: View) -> None:
    """Roles."""
    page, errors = view.listing(view.api.get("/api/v1/roles", page_query(view)))
    view.render("ops/roles.html", page=page, errors=errors)


ROLE_FIELDS = ("name", "description", "permissions")


def role_form(view: View, role: dict | None = None, values: dict | None = None, errors: dict | None = None,
              status: int = 200) -> None:
    values = values or role or {"name": "", "description": "", "permissions": []}
    view.render("ops/role_form.html", status=status, role=role, values=values, errors=errors or {},
                catalogue=permission_catalogue(view))


def new_role(view: View) -> None:
    """New role."""
    role_form(view)


def create_role(view: View) -> None:
    values = {"name": view.field("name"), "description": view.field("description"),
              "permissions": view.fields("permissions")}
    answer = view.api.post("/api/v1/roles", values)
    if not answer.ok:
        role_form(view, None, values, answer.form_errors(ROLE_FIELDS), answer.form_status)
    view.redirect(view.url(f"/ops/roles/{answer.value['name']}"), view._("Role created."))


def role_detail(view: View, name: str) -> None:
    """One role."""
    role = view.value(view.api.get(f"/api/v1/roles/{name}"))
    role_form(view, role)


def update_role(view: View, name: str) -> None:
    role = view.value(view.api.get(f"/api/v1/roles/{name}"))
    values = {"description": view.field("description"), "permissions": view.fields("permissions")}
    answer = view.api.put(f"/api/v1/roles/{name}", values)
    if not answer.ok:
        role_form(view, role, {**role, **values}, answer.form_errors(ROLE_FIELDS), answer.form_status)
    view.redirect(view.url(f"/ops/roles/{name}"), view._("Role saved."))


def delete_role(view: View, name: str) -> None:
    answer = view.api.delete(f"/api/v1/roles/{name}")
    view.back(answer, N_("Role deleted."), view.url("/ops/roles"))


def permissions(view: View) -> None:
    """Permissions."""
    catalogue = view.value(view.api.get("/api/v1/permissions"))
    held: dict[str, list[str]] = {}
    for role in every(view, "/api/v1/roles"):
        for p in role["permissions"]:
            held.setdefault(p, []).append(role["name"])
    view.render("ops/permissions.html", catalogue=catalogue, held=held, q=view.arg("q").strip().lower())


# -- personal folder (6.3.2d, A.2.8) --------------------------------------------------------------


def my_folder(view: View) -> None:
    """Personal folder."""
    page, errors = view.listing(view.api.get("/api/v1/me/files", page_query(view, "q")))
    usage = view.api.get("/api/v1/me/files/usage")
    view.render("ops/folder.html", page=page, errors=errors, usage=usage.value if usage.ok else None,
                size=lambda n: human_size(n, view.language))


def upload_my_file(view: View) -> None:
    """Pass the multipart form on as is (the CSRF token travels in the query string)."""
    length = view.req.content_length or 0
    body = view.req.bounded_stream.read(length) if length else b""
    answer = view.api.call("POST", "/api/v1/me/files", body=body, content_type=view.req.content_type)
    view.back(answer, N_("File added to your folder."), view.url("/me/folder"))


def download_my_file(view: View, file_id: str) -> None:
    view.proxy(f"/api/v1/me/files/{file_id}/content")


def delete_my_file(view: View, file_id: str) -> None:
    answer = view.api.delete(f"/api/v1/me/files/{file_id}")
    view.back(answer, N_("File deleted from your folder."), view.url("/me/folder"))


def all_folders(view: View) -> None:
    """Personal folders."""
    page, errors = view.listing(view.api.get("/api/v1/ops/folders", page_query(view, "q", "userId")))
    usage = view.api.get("/api/v1/ops/folders/usage")
    view.render("ops/folders.html", page=page, errors=errors, usage=usage.value if usage.ok else [],
                size=lambda n: human_size(n, view.language))


def download_any_file(view: View, file_id: str) -> None:
    view.proxy(f"/api/v1/ops/folders/{file_id}/content")


def delete_any_file(view: View, file_id: str) -> None:
    answer = view.api.delete(f"/api/v1/ops/folders/{file_id}")
    view.back(answer, N_("File deleted."), view.url("/ops/folders"))


# -- cloud resources (6.3.2e) and the hub's plugins -----------------------------------------------


def resources(view: View) -> None:
    """Cloud resources."""
    query = {"refresh": "true" if view.arg("refresh") else None,
             "includeStopped": "true" if view.arg("includeStopped") else None}
    snapshot = view.value(view.api.get("/api/v1/ops/resources", query))
    view.render("ops/resources.html", snapshot=snapshot)


def plugins(view: View) -> None:
    """Plugins."""
    view.render("ops/plugins.html", system=view.value(view.api.get("/api/v1/plugins")))


def register(pages) -> None:
    ops, admin = N_("Maintenance"), N_("Administration")  # 6.3 运维, apart from 6.4 运营
    pages.view("/ops/monitoring", monitoring, permission="runs.read", nav=(ops, N_("Monitoring")))
    pages.view("/ops/alerts", alert_list, permission="alerts.read", nav=(ops, N_("Alerts")))
    pages.action("/ops/alerts/{alert_id}/acknowledge", acknowledge_alert, permission=ACKNOWLEDGE)
    pages.view("/ops/alert-rules", rule_list, permission="alerts.read", nav=(ops, N_("Alert rules")))
    pages.action("/ops/alert-rules", create_rule, permission="alerts.manage")
    pages.view("/ops/alert-rules/new", new_rule, permission="alerts.manage")
    pages.view("/ops/alert-rules/{rule_id}", rule_detail, permission="alerts.read")
    pages.action("/ops/alert-rules/{rule_id}", update_rule, permission="alerts.manage")
    pages.action("/ops/alert-rules/{rule_id}/delete", delete_rule, permission="alerts.manage")
    pages.action("/ops/alert-rules/{rule_id}/enabled", enable_rule, permission="alerts.manage")
    pages.action("/ops/alert-rules/{rule_id}/test", test_rule, permission="alerts.manage")
    pages.view("/ops/resources", resources, permission="resources.read", nav=(ops, N_("Cloud resources")))
    pages.view("/ops/audit", audit, permission="audit.read", nav=(admin, N_("Audit log")))
    pages.action("/ops/audit/verify", verify_audit, permission="audit.verify")
    pages.view("/ops/users", user_list, permission="users.read", nav=(admin, N_("User management")))
    pages.action("/ops/users", create_user, permission="users.manage")
    pages.view("/ops/users/{user_id}", user_detail, permission="users.read")
    pages.action("/ops/users/{user_id}", update_user, permission="users.manage")
    pages.action("/ops/users/{user_id}/active", activate_user, permission="users.manage")
    pages.action("/ops/users/{user_id}/password", reset_password, permission="users.manage")
    pages.view("/ops/roles", role_list, permission="roles.read", nav=(admin, N_("Roles")))
    pages.action("/ops/roles", create_role, permission="roles.manage")
    pages.view("/ops/roles/new", new_role, permission="roles.manage")
    pages.view("/ops/roles/{name}", role_detail, permission="roles.read")
    pages.action("/ops/roles/{name}", update_role, permission="roles.manage")
    pages.action("/ops/roles/{name}/delete", delete_role, permission="roles.manage")
    pages.view("/ops/permissions", permissions, permission="roles.read", nav=(admin, N_("Permissions")))
    pages.view("/ops/folders", all_folders, permission="folders.manage", nav=(admin, N_("Personal folders")))
    pages.view("/ops/folders/{file_id}/content", download_any_file, permission="folders.manage")
    pages.action("/ops/folders/{file_id}/delete", delete_any_file, permission="folders.manage")
    pages.view("/ops/plugins", plugins, permission="system.read", nav=(admin, N_("Plugins")))
    pages.view("/me/folder", my_folder, nav=(N_("Me"), N_("Personal folder")))
    pages.action("/me/folder", upload_my_file)
    pages.view("/me/folder/{file_id}/content", download_my_file)
    pages.action("/me/folder/{file_id}/delete", delete_my_file)
