"""The marketplace (6.1.1, 6.1.2): find apps, subscribe, run them with a form made from
their parameter schema, download them; and the reviews that let app versions into
production and apps into the marketplace."""

from __future__ import annotations

import re

from ..i18n import N_
from ..views import View

# Business domains as the API stores them (6.4.1b).
DOMAINS = (N_("marketing"), N_("customer_service"), N_("equipment"), N_("hr"), N_("finance"), N_("it_ops"),
           N_("other"))
PARAM_TYPES = (N_("string"), N_("integer"), N_("number"), N_("boolean"), N_("date"), N_("secret"))
EXECUTOR_STATES = (N_("online"), N_("offline"), N_("busy"))
APP_STATES = (N_("draft"), N_("listed"), N_("delisted"))
# States as words where the shared word would mislead ("pending" of a run is not of a review).
VERSION_STATES = {"draft": N_("draft"), "pending": N_("in review"), "approved": N_("approved"),
                  "rejected": N_("rejected"), "retired": N_("retired")}
RUN_STATES = (N_("pending"), N_("dispatched"), N_("running"), N_("stopping"), N_("retrying"), N_("success"),
              N_("failed"), N_("cancelled"))
APPROVAL_STATES = {"pending": N_("awaiting a decision"), "approved": N_("approved"), "rejected": N_("rejected"),
                   "withdrawn": N_("withdrawn")}
# The approval kinds of the library, and what a reviewer decides in each.
KINDS = {"app_version.promote": N_("Versions into production"), "app.publish": N_("Apps into the marketplace")}
FACETS = (("domain", N_("Business domain")), ("region", N_("Region")), ("scenario", N_("Scenario")),
          ("vendor", N_("Supplier")), ("tag", N_("Tags")))
SEARCH_FIELDS = ("q", "region", "scenario", "domain", "vendor")
TARGETS = (("any", N_("Any executor")), ("pool", N_("A pool")), ("executor", N_("One executor")),
           ("labels", N_("Executors with labels")))
HINT_FIELD = re.compile(r"^([A-Za-z][\w.]*): (.+)$", re.S)


def tags_of(view: View) -> list[str]:
    value = view.args.get("tag", [])
    values = value if isinstance(value, list) else [value]
    return [t.strip() for t in values if t and t.strip()]



# -- the marketplace ---------------------------------------------------------------------


def market(view: View) -> None:
    """Marketplace."""
    query = {name: view.arg(name) for name in SEARCH_FIELDS}
    query.update(tag=tags_of(view), page=view.arg("page", "1"), pageSize=view.arg("pageSize", "20"))
    page, errors = view.listing(view.api.get("/api/v1/market", query), SEARCH_FIELDS + ("tag",))
    active = [(name, view.arg(name)) for name in SEARCH_FIELDS[1:] if view.arg(name)]
    view.render("marketplace/list.html", status=400 if errors else 200, page=page, errors=errors,
                facets=[(key, label, page.get("facets", {}).get(key, [])) for key, label in FACETS],
                facet_labels=dict(FACETS), active=active, tags=tags_of(view), domains=DOMAINS,
                without=lambda name, value=None: without(view, name, value))


def without(view: View, name: str, value: str | None = None) -> str:
    """This search without one filter (or one of its tags)."""
    if name == "tag":
        return view.url_with(tag=[t for t in tags_of(view) if t != value], page=None)
    return view.url_with(**{name: None, "page": None})


# -- one app ---------------------------------------------------------------------------


def controls(parameters: list[dict], values: dict[str, str] | None) -> list[dict]:
    """One form control for each parameter of the schema (``params.ParameterSpec``)."""
    out = []
    for p in parameters:
        name, kind = "arguments." + p["name"], p.get("type", "string")
        default = p.get("default")
        given = values.get(name) if values is not None else None
        c = {"name": name, "param": p["name"], "label": p.get("label") or p["name"], "required": p.get("required",
             False), "description": p.get("description", ""), "choices": p.get("choices") or [], "hints": [],
             "type": kind, "attrs": {}, "has_default": default is not None}
        if c["choices"]:
            c["control"] = "select"
        elif kind == "boolean":
            c["control"] = "checkbox"
        elif kind in ("integer", "number"):
            c["control"] = "number"
            c["attrs"]["step"] = "1" if kind == "integer" else "any"
        elif kind == "date":
            c["control"] = "date"
        elif kind == "secret":
            c["control"] = "password"
        elif (p.get("maxLength") or 0) > 255:
            c["control"] = "textarea"
        else:
            c["control"] = "text"
        if kind in ("integer", "number"):
            low, high = p.get("minimum"), p.get("maximum")
            if low is not None:
                c["attrs"]["min"] = f"{low:g}"
            if high is not None:
                c["attrs"]["max"] = f"{high:g}"
            if low is not None and high is not None:
                c["hints"].append((N_("Between %(low)s and %(high)s"), {"low": f"{low:g}", "high": f"{high:g}"}))
            elif low is not None:
                c["hints"].append((N_("At least %(low)s"), {"low": f"{low:g}"}))
            elif high is not None:
                c["hints"].append((N_("At most %(high)s"), {"high": f"{high:g}"}))
            if kind == "integer":
                c["hints"].append((N_("A whole number"), {}))
        if p.get("maxLength"):
            c["attrs"]["maxlength"] = str(p["maxLength"])
            c["hints"].append((N_("At most %(n)s characters"), {"n": p["maxLength"]}))
        if p.get("pattern"):
            c["hints"].append((N_("Must match %(pattern)s"), {"pattern": p["pattern"]}))
        if default is not None and kind != "secret":
            shown = ("true" if default else "false") if isinstance(default, bool) else str(default)
            c["hints"].append((N_("Default: %(value)s"), {"value": shown}))
        # What the control shows: what was sent (never a secret), else the default.
        if kind == "secret":
            c["value"] = ""
        elif given is not None:
            c["value"] = given
        elif default is None:
            c["value"] = ""
        else:
            c["value"] = ("true" if default else "false") if isinstance(default, bool) else str(default)
        out.append(c)
    return out


def listed_app(view: View, app_id: str) -> dict:
    """The app as the marketplace shows it, or the error page."""
    return view.value(view.api.get(f"/api/v1/market/{app_id}"))


def app_page(view: View, app_id: str, *, values: dict | None = None, errors: dict | None = None,
             status: int = 200) -> None:
    """An app of the marketplace."""
    app = listed_app(view, app_id)
    versions = None
    if view.can("apps.read"):
        answer = view.api.get(f"/api/v1/apps/{app_id}/versions", {"pageSize": 50})
        versions = answer.items() if answer.ok else None
    runs = view.api.get(f"/api/v1/market/{app_id}/runs", {"mine": "true", "pageSize": 10}).items()
    pools = executors = None
    if view.can("executors.read"):
        answer = view.api.get("/api/v1/pools", {"pageSize": 200})
        pools = [p["name"] for p in answer.items()] if answer.ok else None
        answer = view.api.get("/api/v1/executors", {"pageSize": 200})
        executors = answer.items() if answer.ok else None
    values = values or {}
    view.render("marketplace/app.html", status=status, app=app, versions=versions, runs=runs,
                controls=controls(app.get("parameters") or [], values if values else None), values=values,
                errors=errors or {}, pools=pools, executors=executors, targets=TARGETS, version_states=VERSION_STATES)


def subscribe(view: View, app_id: str) -> None:
    answer = view.api.put(f"/api/v1/market/{app_id}/subscription")
    view.back(answer, N_("Subscribed: you can run and download the app now."), view.url(f"/marketplace/{app_id}"))


def unsubscribe(view: View, app_id: str) -> None:
    answer = view.api.delete(f"/api/v1/market/{app_id}/subscription")
    back = view.safe_next(view.field("next"))
    if not back or back.endswith("/run"):  # a run form shown again after an error: back to the app
        back = view.url(f"/marketplace/{app_id}")
    view.back(answer, N_("Unsubscribed."), back)


def run(view: View, app_id: str) -> None:
    """Start the app with the arguments of the run form."""
    values = {k: view.field(k) for k in view.form if k not in ("csrf", "next")}
    arguments = {k[len("arguments."):]: v for k, v in values.items() if k.startswith("arguments.")}
    body: dict = {"arguments": arguments, "videoRecordRequired": view.field("videoRecordRequired") == "true"}
    if body["videoRecordRequired"]:
        body["videoRecordMode"] = 1  # uploaded to the hub, so the run page can play it
    target = view.field("target") or "any"
    if target == "pool":
        body["pool"] = view.field("pool") or None
    elif target == "executor":
        body["executorId"] = view.field("executorId") or None
    elif target == "labels":
        body["labels"] = [x.strip() for x in re.split(r"[,，\s]+", view.field("labels")) if x.strip()]
    if view.field("priority"):
        body["priority"] = view.field("priority")
    answer = view.api.post(f"/api/v1/market/{app_id}/runs", body)
    if not answer.ok:
        known = {k for k in values if k.startswith("arguments.")} | {"target", "pool", "executorId", "labels",
                                                                      "priority", "videoRecordRequired"}
        # An argument's error names the argument as the form's field does ("arguments.<name>").
        app_page(view, app_id, values=values, errors=answer.form_errors(known),
                 status=answer.status if answer.status in (400, 403) else 400)
    run_id = answer.value["id"]
    if view.can("runs.read"):
        view.redirect(view.url(f"/runs/{run_id}"), view._("The run is queued."))
    view.redirect(view.url(f"/marketplace/{app_id}"), view._("The run is queued."))


def package(view: View, app_id: str) -> None:
    """The package of the version in production."""
    view.proxy(f"/api/v1/market/{app_id}/package")


# -- my subscriptions --------------------------------------------------------------------


def subscriptions(view: View) -> None:
    """My subscriptions."""
    page = view.value(view.api.get("/api/v1/subscriptions", {"page": view.arg("page", "1"),
                                                              "pageSize": view.arg("pageSize", "20")}))
    view.render("marketplace/subscriptions.html", page=page)


# -- reviews --------------------------------------------------------------------------


def app_names(view: View, requests: list[dict]) -> dict[str, str]:
    """The names of the apps the requests are about (the requests carry only their ids)."""
    names: dict[str, str] = {}
    if not view.can("apps.read"):
        return names
    for r in requests:
        app_id = (r.get("payload") or {}).get("appId")
        if app_id and app_id not in names:
            answer = view.api.get(f"/api/v1/apps/{app_id}")
            names[app_id] = answer.value["name"] if answer.ok else ""
    return names


def approvals(view: View) -> None:
    """Reviews of app versions and listings."""
    kind = view.arg("kind") if view.arg("kind") in KINDS else next(iter(KINDS))
    state = view.arg("state") or "pending"
    query = {"kind": kind, "state": state if state in APPROVAL_STATES else None, "page": view.arg("page", "1"),
             "pageSize": view.arg("pageSize", "20"), "actionable": "true" if view.arg("actionable") else None}
    page = view.value(view.api.get("/api/v1/approvals", query))
    counts = {}
    for name in KINDS:
        answer = view.api.get("/api/v1/approvals", {"kind": name, "state": "pending", "pageSize": 1})
        counts[name] = answer.value["total"] if answer.ok else 0
    view.render("marketplace/approvals.html", page=page, kind=kind, kinds=KINDS, counts=counts,
                current_state=state, states=APPROVAL_STATES, names=app_names(view, page["items"]))


def approval(view: View, request_id: str, *, errors: dict | None = None, values: dict | None = None,
             status: int = 200) -> None:
    """One review."""
    row = view.value(view.api.get(f"/api/v1/approvals/{request_id}"))
    if row["kind"] not in KINDS:
        view.render("error.html", status=404, status_code=404,
                    message=view._("This request is not about an app of the marketplace."))
    app = None
    app_id = (row.get("payload") or {}).get("appId")
    if app_id and view.can("apps.read"):
        answer = view.api.get(f"/api/v1/apps/{app_id}")
        app = answer.value if answer.ok else None
    view.render("marketplace/approval.html", status=status, row=row, app=app, kinds=KINDS, errors=errors or {},
                values=values or {}, states=APPROVAL_STATES, version_states=VERSION_STATES)


def decide(view: View, request_id: str, verb: str) -> None:
    answer = view.api.post(f"/api/v1/approvals/{request_id}/{verb}", {"comment": view.field("comment")})
    if not answer.ok and answer.status == 400:
        # The page has a comment field in each of its two forms.
        name = "comment" if verb == "reject" else "approveComment"
        errors = {name if k == "comment" else k: m for k, m in answer.form_errors({"comment"}).items()}
        approval(view, request_id, errors=errors, values={name: view.field("comment")}, status=400)
    done = N_("Approved and carried out.") if verb == "approve" else N_("Rejected: the maker sees your reason.")
    view.back(answer, done, view.safe_next(view.field("next")) or view.url("/marketplace/approvals"))


def approve(view: View, request_id: str) -> None:
    decide(view, request_id, "approve")


def reject(view: View, request_id: str) -> None:
    decide(view, request_id, "reject")


def register(pages) -> None:
    pages.view("/marketplace", market, permission="apps.use", nav=(N_("Marketplace"), N_("Marketplace")))
    pages.view("/marketplace/subscriptions", subscriptions, permission="apps.use",
               nav=(N_("Marketplace"), N_("My subscriptions")))
    pages.view("/marketplace/approvals", approvals, permission="apps.review",
               nav=(N_("Marketplace"), N_("Approvals")))
    pages.view("/marketplace/approvals/{request_id}", approval, permission="apps.review")
    pages.action("/marketplace/approvals/{request_id}/approve", approve, permission="apps.review")
    pages.action("/marketplace/approvals/{request_id}/reject", reject, permission="apps.review")
    pages.view("/marketplace/{app_id}", app_page, permission="apps.use")
    pages.action("/marketplace/{app_id}/subscribe", subscribe, permission="apps.use")
    pages.action("/marketplace/{app_id}/unsubscribe", unsubscribe, permission="apps.use")
    pages.action("/marketplace/{app_id}/run", run, permission="apps.use")
    pages.view("/marketplace/{app_id}/package", package, permission="apps.use")
