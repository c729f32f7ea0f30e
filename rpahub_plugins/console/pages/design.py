"""The design center (6.2): the requirement board and each requirement's lifecycle,
the artifact library with versions, diffs and approvals, executor and designer images
with their instances, and cloud designers with their leases."""

from __future__ import annotations

import json
import uuid

import falcon

from ..api import Answer
from ..i18n import N_
from ..views import EMPTY_PAGE, View

STATES = (N_("submitted"), N_("reviewed"), N_("evaluated"), N_("designed"), N_("tested"), N_("accepted"),
          N_("rejected"), N_("withdrawn"))
DOMAINS = {"marketing": N_("Marketing"), "customer_service": N_("Customer service"), "equipment": N_("Equipment"),
           "hr": N_("Human resources"), "finance": N_("Finance"), "it_ops": N_("IT operations")}
PRIORITIES = (N_("low"), N_("normal"), N_("high"), N_("urgent"))
BOARD_FILTERS = ("q", "domain", "priority", "region")
COLUMN_SIZE = 10

# The lifecycle's actions and the permission the API asks of each (POST /api/v1/requirements/{id}/<action>).
ACTIONS = {
    "withdraw": ("design.submit", N_("Withdraw")),
    "approve": ("design.review", N_("Approve")),
    "reject": ("design.review", N_("Reject")),
    "evaluate": ("design.evaluate", N_("Evaluate and assign")),
    "design": ("design.develop", N_("Deliver the design")),
    "rework": ("design.test", N_("Send back for rework")),
    "pass": ("design.test", N_("Pass testing")),
    "accept": ("design.accept", N_("Accept into the library")),
    "refuse": ("design.accept", N_("Refuse acceptance")),
}
WHY_REQUIRED = ("reject", "rework", "refuse")
DONE = {
    "withdraw": N_("Requirement withdrawn."), "approve": N_("Requirement approved."),
    "reject": N_("Requirement rejected."), "evaluate": N_("Requirement evaluated and assigned."),
    "design": N_("Design delivered."), "rework": N_("Sent back to the designer."),
    "pass": N_("Testing passed."), "accept": N_("Accepted into the artifact library."),
    "refuse": N_("Acceptance refused: back to the designer."),
}
# What each entry of a requirement's history says happened.
EVENTS = {
    "submit": N_("Submitted"), "withdraw": N_("Withdrawn"), "approve": N_("Approved"), "reject": N_("Rejected"),
    "evaluate": N_("Evaluated and assigned"), "design": N_("Design delivered"), "rework": N_("Sent back for rework"),
    "pass": N_("Testing passed"), "accept": N_("Accepted"), "refuse": N_("Acceptance refused"),
    "comment": N_("Commented"), "edit": N_("Edited"), "trial.start": N_("Trial run started"),
    "trial.finish": N_("Trial run finished"),
}
RUN_STATES = (N_("pending"), N_("dispatched"), N_("running"), N_("stopping"), N_("retrying"), N_("success"),
              N_("failed"), N_("cancelled"))
APP_STATES = (N_("draft"), N_("listed"), N_("delisted"))
VERSION_STATES = (N_("draft"), N_("pending"), N_("approved"), N_("rejected"), N_("retired"))
APPROVAL_STATES = (N_("pending"), N_("approved"), N_("rejected"), N_("withdrawn"))
IMAGE_KINDS = (N_("executor"), N_("designer"))
INSTANCE_STATES = (N_("starting"), N_("running"), N_("stopped"), N_("failed"))
LEASE_STATES = (N_("active"), N_("recycled"))


def page_of(view: View, answer: Answer) -> dict:
    """A list page's answer (a bad filter: empty; its message comes from the field errors)."""
    return view.listing(answer)[0]


# -- shared helpers ---------------------------------------------------------------------



def multipart(view: View) -> tuple[dict[str, str], dict[str, tuple[str, str, bytes]]]:
    """Text fields and uploaded files of a multipart form (the View parses urlencoded ones only)."""
    fields: dict[str, str] = {}
    files: dict[str, tuple[str, str, bytes]] = {}
    if not (view.req.content_type or "").startswith("multipart/form-data"):
        return fields, files
    try:
        for part in view.req.get_media():
            if part.filename:
                data = part.stream.read()
                if data:
                    files[part.name] = (part.filename, part.content_type or "application/octet-stream", data)
            else:
                fields[part.name] = (part.get_text() or "").strip()
    except falcon.MediaMalformedError:
        pass
    return fields, files


def encode_multipart(fields: dict[str, str], files: dict[str, tuple[str, str, bytes]]) -> tuple[bytes, str]:
    boundary = "rpahub" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields.items():
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n').encode() + \
            value.encode() + b"\r\n"
    for name, (filename, content_type, data) in files.items():
        safe = "".join(c for c in filename if c not in '"\r\n\\') or "file"
        out += (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{safe}"\r\n'
                f"Content-Type: {content_type}\r\n\r\n").encode() + data + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


def upload(view: View, path: str, fields: dict[str, str], files: dict) -> Answer:
    body, content_type = encode_multipart(fields, files)
    return view.api.call("POST", path, body=body, content_type=content_type)


def outcome(view: View, answer: Answer, success: str, location: str) -> None:
    """Back to ``location`` with the outcome (multipart forms carry no ``next``)."""
    if answer.ok:
        view.redirect(location, view._(success))
    view.redirect(location, answer.hint or view._("The request failed."), "error")


def version_of(view: View, value: str) -> int | None:
    """The requirement version the form showed: the API refuses (409) if it moved since."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# -- the requirement board ----------------------------------------------------------------


def board(view: View) -> None:
    """Requirements by lifecycle state."""
    filters = {name: view.arg(name) for name in BOARD_FILTERS}
    mine = view.arg("mine")
    if mine == "submitted":
        filters["submitter"] = "me"
    elif mine == "assigned":
        filters["assignee"] = "me"
    counts_answer = view.api.get("/api/v1/requirements/board", filters)
    errors = counts_answer.field_errors if counts_answer.status == 400 else {}
    if not counts_answer.ok and not errors:
        view.fail(counts_answer)
    counts = counts_answer.value["counts"] if counts_answer.ok else {}
    only = view.arg("state")
    if only and only not in STATES:
        only = ""
    columns = []
    page = None
    for state in ([only] if only else STATES):
        query = {**filters, "state": state, "page": view.arg("page", "1") if only else 1,
                 "pageSize": 50 if only else COLUMN_SIZE}
        answer = view.api.get("/api/v1/requirements", query) if not errors else Answer(400, False)
        found = answer.value if answer.ok else dict(EMPTY_PAGE)
        if only:
            page = found
        columns.append({"state": state, "items": found["items"], "total": counts.get(state, found["total"])})
    view.render("design/board.html", columns=columns, page=page, only=only, errors=errors, states=STATES,
                domains=DOMAINS, priorities=PRIORITIES, total=counts_answer.value["total"] if counts_answer.ok else 0)


def new_requirement(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """Submit a requirement."""
    view.render("design/new.html", status=status, values=values or {"priority": "normal"}, errors=errors or {},
                domains=DOMAINS, priorities=PRIORITIES)


def create_requirement(view: View) -> None:
    body = {name: view.field(name) for name in ("title", "description", "region", "scenario", "domain",
                                                "expectedBenefit", "priority")}
    if view.field("appId"):
        body["appId"] = view.field("appId")
    answer = view.api.post("/api/v1/requirements", body)
    if not answer.ok:
        new_requirement(view, {**body, "appId": view.field("appId")}, answer.form_errors(),
                        400 if answer.status == 400 else answer.status)
    view.redirect(view.url(f"/design/requirements/{answer.value['id']}"), view._("Requirement submitted."))


# -- one requirement ---------------------------------------------------------------------


def requirement(view: View, req_id: str, errors: dict | None = None, values: dict | None = None,
                status: int = 200) -> None:
    """A requirement: its facts, history, attachments, trial runs and next steps."""
    item = view.value(view.api.get(f"/api/v1/requirements/{req_id}"))
    me = (view.me or {}).get("id")
    manage = view.can("design.manage")
    # The API says which next steps this person may take (permission, submitter, designer, maker-checker).
    actions = [{"name": name, "label": ACTIONS[name][1], "why": name in WHY_REQUIRED} for name in item["yourActions"]]
    trials = {"items": [], "total": 0}
    answer = view.api.get(f"/api/v1/requirements/{req_id}/trials", {"pageSize": 10})
    if answer.ok:
        trials = answer.value
    may_trial = item["state"] == "designed" and (view.can("design.test") or item["assigneeId"] == me or manage)
    running = any(t["runState"] in ("pending", "dispatched", "running", "stopping", "retrying")
                  for t in trials["items"])
    may_attach = item["state"] == "submitted" and view.can("design.submit") and (item["submitterId"] == me or manage)
    designers = []
    if "evaluate" in item["yourActions"]:
        designers = view.api.get("/api/v1/requirements/assignees").items()
    view.render("design/requirement.html", status=status, r=item, actions=actions, trials=trials, designers=designers,
                may_trial=may_trial, may_attach=may_attach, running=running, errors=errors or {},
                values=values or {}, events=EVENTS, domains=DOMAINS, actions_table=ACTIONS)


def act(action: str):
    """The handler of one lifecycle action."""

    def handler(view: View, req_id: str) -> None:
        if action == "design":
            fields, files = multipart(view)
            body, package_errors = delivery(view, fields, files)
            if package_errors:
                requirement(view, req_id, {action: package_errors}, {action: fields}, 400)
        else:
            fields = {k: view.field(k) for k in ("comment", "version", "assignee", "effortDays", "valueScore",
                                                 "notes", "appName")}
            body = {"comment": fields["comment"]}
            if action == "evaluate":
                body.update(assignee=fields["assignee"], effortDays=fields["effortDays"] or None,
                            valueScore=fields["valueScore"] or None, notes=fields["notes"])
            if action == "accept" and fields["appName"]:
                body["appName"] = fields["appName"]
        version = version_of(view, fields.get("version"))
        if version is not None:
            body["version"] = version
        answer = view.api.post(f"/api/v1/requirements/{req_id}/{action}", body)
        if answer.status == 400:
            requirement(view, req_id, {action: answer.form_errors()}, {action: fields}, 400)
        outcome(view, answer, DONE[action], view.url(f"/design/requirements/{req_id}"))

    handler.__name__ = f"requirement_{action}"
    handler.__doc__ = f"Requirement: {action}."
    return handler


def delivery(view: View, fields: dict[str, str], files: dict) -> tuple[dict, dict[str, str]]:
    """The design action's body; an uploaded package goes to the package store first."""
    body: dict = {"comment": fields.get("comment", ""), "vendor": fields.get("vendor", ""),
                  "tags": [t.strip() for t in fields.get("tags", "").replace("，", ",").split(",") if t.strip()]}
    raw = fields.get("parameters", "")
    if raw:
        try:
            body["parameters"] = json.loads(raw)
        except ValueError:
            return body, {"parameters": view._("Not valid JSON: a list of parameters is expected.")}
    package_id = fields.get("packageId", "")
    if "file" in files:
        answer = upload(view, "/api/v1/packages",
                        {"name": fields.get("packageName", ""), "version": fields.get("packageVersion", "")},
                        {"file": files["file"]})
        if not answer.ok:
            errors = answer.form_errors()
            hint = answer.hint or ""
            for name, field in (("name", "packageName"), ("version", "packageVersion"), ("file", "file")):
                if hint.startswith(name + ":"):
                    errors = {field: hint.split(":", 1)[1].strip()}
            return body, errors
        package_id = answer.value["id"]
    if not package_id:
        return body, {"file": view._("Upload the package or give the id of one already uploaded.")}
    body["packageId"] = package_id
    return body, {}


def comment(view: View, req_id: str) -> None:
    answer = view.api.post(f"/api/v1/requirements/{req_id}/comments", {"comment": view.field("comment")})
    if answer.status == 400:
        requirement(view, req_id, {"comment": answer.form_errors()}, {"comment": {"comment": view.field("comment")}}, 400)
    outcome(view, answer, N_("Comment added."), view.url(f"/design/requirements/{req_id}"))


def start_trial(view: View, req_id: str) -> None:
    prefix = "arg."
    arguments = {k[len(prefix):]: v for k, v in view.form.items() if k.startswith(prefix) and isinstance(v, str)
                 and v.strip() != ""}
    body = {"arguments": arguments}
    if view.field("pool"):
        body["pool"] = view.field("pool")
    answer = view.api.post(f"/api/v1/requirements/{req_id}/trials", body)
    if answer.status == 400:
        values = {"pool": view.field("pool"), **{f"arg.{k}": v for k, v in arguments.items()}}
        requirement(view, req_id, {"trial": answer.form_errors()}, {"trial": values}, 400)
    outcome(view, answer, N_("Trial run started on the test pool."), view.url(f"/design/requirements/{req_id}"))


def add_attachment(view: View, req_id: str) -> None:
    """Upload a file and attach it to the requirement (only while it waits for review)."""
    fields, files = multipart(view)
    target = view.url(f"/design/requirements/{req_id}")
    if "file" not in files:
        requirement(view, req_id, {"attach": {"file": view._("Choose a file.")}}, {}, 400)
    item = view.value(view.api.get(f"/api/v1/requirements/{req_id}"))
    stored = upload(view, "/v1/file/demand/upload", {}, {"file": files["file"]})
    if not stored.ok:
        view.redirect(target, stored.hint or view._("The request failed."), "error")
    ids = [a["fileId"] for a in item["attachments"]] + [stored.value["fileId"]]
    answer = view.api.patch(f"/api/v1/requirements/{req_id}", {"attachments": ids, "version": item["version"]})
    outcome(view, answer, N_("Attachment added."), target)


def attachment(view: View, req_id: str, file_id: str) -> None:
    view.proxy(f"/api/v1/requirements/{req_id}/attachments/{file_id}")


# -- the artifact library ---------------------------------------------------------------


def library(view: View) -> None:
    """Apps in the artifact library."""
    query = {"q": view.arg("q"), "state": view.arg("state"), "owner": view.arg("owner"),
             "page": view.arg("page", "1"), "pageSize": view.arg("pageSize", "20")}
    answer = view.api.get("/api/v1/apps", query)
    view.render("design/library.html", page=page_of(view, answer), app_states=APP_STATES,
                errors=answer.field_errors if answer.status == 400 else {})


def approvals_of(view: View, targets: list[str]) -> list[dict]:
    """The approvals asked for any of ``targets``, newest first."""
    return view.api.get("/api/v1/approvals", {"target": targets, "pageSize": 100}).items()


def app_page(view: View, app_id: str) -> None:
    """An app of the library: versions, a diff between two, and the approvals asked for it."""
    app = view.value(view.api.get(f"/api/v1/apps/{app_id}"))
    versions = app.get("versions") or []
    approvals = approvals_of(view, [app["id"], *[v["id"] for v in versions[:20]]])
    diff = None
    base, other = view.arg("from"), view.arg("to")
    diff_errors: dict = {}
    if base and other:
        answer = view.api.get(f"/api/v1/apps/{app_id}/diff", {"from": base, "to": other})
        if answer.ok:
            diff = answer.value
        else:
            diff_errors = answer.form_errors()
    elif len(versions) >= 2:
        base, other = versions[1]["version"], versions[0]["version"]
    view.render("design/app.html", app=app, versions=versions, approvals=approvals, diff=diff, base=base,
                other=other, diff_errors=diff_errors, domains=DOMAINS)


def submit_version(view: View, app_id: str, version: str) -> None:
    answer = view.api.post(f"/api/v1/apps/{app_id}/versions/{version}/submit", {"reason": view.field("reason")})
    outcome(view, answer, N_("Version sent for review."), view.url(f"/design/library/{app_id}"))


def publish(view: View, app_id: str) -> None:
    answer = view.api.post(f"/api/v1/apps/{app_id}/publish", {"reason": view.field("reason")})
    outcome(view, answer, N_("Listing requested: a reviewer decides."), view.url(f"/design/library/{app_id}"))


def decide(decision: str):
    def handler(view: View, request_id: str) -> None:
        answer = view.api.post(f"/api/v1/approvals/{request_id}/{decision}", {"comment": view.field("comment")})
        outcome(view, answer, N_("Request approved.") if decision == "approve" else N_("Request rejected."),
                view.safe_next(view.field("next")) or view.url("/design/library"))

    handler.__name__ = f"approval_{decision}"
    return handler


# -- images and instances -------------------------------------------------------------------


def images(view: View, errors: dict | None = None, values: dict | None = None, status: int = 200) -> None:
    """Executor and designer images, and the instances started from them."""
    query = {"kind": view.arg("kind"), "q": view.arg("q"), "page": view.arg("page", "1"), "pageSize": 20}
    answer = view.api.get("/api/v1/images", query)
    page = page_of(view, answer)
    instances = view.api.get("/api/v1/instances", {"state": view.arg("instanceState"), "pageSize": 20})
    view.render("design/images.html", status=status, page=page,
                instances=instances.value if instances.ok else dict(EMPTY_PAGE), kinds=IMAGE_KINDS,
                instance_states=INSTANCE_STATES, errors=errors or {}, values=values or {"provider": "local"})


def create_image(view: View) -> None:
    body = {k: view.field(k) for k in ("name", "kind", "provider", "description")}
    answer = view.api.post("/api/v1/images", body)
    if not answer.ok:
        images(view, answer.form_errors(), body, 400 if answer.status == 400 else answer.status)
    view.redirect(view.url(f"/design/images/{answer.value['id']}"), view._("Image created."))


def image(view: View, image_id: str, errors: dict | None = None, values: dict | None = None,
          status: int = 200) -> None:
    """An image: its versions, what changed between two, its instances."""
    item = view.value(view.api.get(f"/api/v1/images/{image_id}"))
    versions = view.value(view.api.get(f"/api/v1/images/{image_id}/versions", {"pageSize": 50}))
    instances = view.api.get("/api/v1/instances", {"imageId": image_id, "pageSize": 50})
    base, other = view.arg("base"), view.arg("other")
    diff, diff_errors = None, {}
    if base and other:
        answer = view.api.get(f"/api/v1/images/{image_id}/diff", {"base": base, "other": other})
        if answer.ok:
            diff = answer.value
        else:
            diff_errors = answer.form_errors()
    elif len(versions["items"]) >= 2:
        base, other = versions["items"][1]["version"], versions["items"][0]["version"]
    view.render("design/image.html", status=status, image=item, versions=versions,
                instances=instances.value if instances.ok else dict(EMPTY_PAGE), diff=diff, base=base, other=other,
                diff_errors=diff_errors, errors=errors or {}, values=values or {})


def upload_image_version(view: View, image_id: str) -> None:
    fields, files = multipart(view)
    values = {k: fields.get(k, "") for k in ("version", "spec", "notes")}
    if "file" not in files:
        image(view, image_id, {"file": view._("Choose a file.")}, values, 400)
    answer = upload(view, f"/api/v1/images/{image_id}/versions", {k: v for k, v in values.items() if v},
                    {"file": files["file"]})
    if not answer.ok:
        errors = answer.form_errors()
        for name in ("version", "spec", "file"):
            if (answer.hint or "").startswith(name + ":"):
                errors = {name: answer.hint.split(":", 1)[1].strip()}
        image(view, image_id, errors, values, 400 if answer.status < 500 else answer.status)
    view.redirect(view.url(f"/design/images/{image_id}"), view._("Version uploaded."))


def start_instance(view: View, image_id: str, version: str) -> None:
    answer = view.api.post(f"/api/v1/images/{image_id}/versions/{version}/start")
    outcome(view, answer, N_("Instance starting."), view.url(f"/design/images/{image_id}"))


def delete_image(view: View, image_id: str) -> None:
    answer = view.api.delete(f"/api/v1/images/{image_id}")
    if answer.ok:
        view.redirect(view.url("/design/images"), view._("Image deleted."))
    outcome(view, answer, N_("Image deleted."), view.url(f"/design/images/{image_id}"))


def recycle(view: View, instance_id: str) -> None:
    answer = view.api.post(f"/api/v1/instances/{instance_id}/recycle")
    outcome(view, answer, N_("Instance recycled."), view.safe_next(view.field("next")) or view.url("/design/images"))


# -- designers and leases ---------------------------------------------------------------------


def designers(view: View, errors: dict | None = None, values: dict | None = None, created: dict | None = None,
              status: int = 200) -> None:
    """Registered cloud designers and everyone's leases."""
    query = {"vendor": view.arg("vendor"), "page": view.arg("page", "1"), "pageSize": 20}
    page = page_of(view, view.api.get("/api/v1/designers", query))
    leases = view.api.get("/api/v1/designer-leases", {"state": view.arg("leaseState") or "active", "pageSize": 50})
    view.render("design/designers.html", status=status, page=page,
                leases=leases.value if leases.ok else dict(EMPTY_PAGE), lease_states=LEASE_STATES,
                errors=errors or {}, values=values or {"capacity": "1"}, created=created)


def register_designer(view: View) -> None:
    body = {k: view.field(k) for k in ("name", "vendor", "version", "endpoint", "capacity")}
    body["capacity"] = body["capacity"] or 1
    answer = view.api.post("/api/v1/designers", body)
    if not answer.ok:
        designers(view, answer.form_errors(), body, status=400 if answer.status == 400 else answer.status)
    designers(view, created=answer.value, status=201)


def toggle_designer(view: View, designer_id: str) -> None:
    enable = view.field("enabled") == "true"
    # Disabling recycles live leases (the button asks first) rather than refusing.
    answer = view.api.call("PUT", f"/api/v1/designers/{designer_id}", None if enable else {"force": "true"},
                           {"enabled": enable})
    outcome(view, answer, N_("Designer enabled.") if enable else N_("Designer disabled."),
            view.url("/design/designers"))


def deregister_designer(view: View, designer_id: str) -> None:
    answer = view.api.call("DELETE", f"/api/v1/designers/{designer_id}", {"force": "true"})
    outcome(view, answer, N_("Designer deregistered."), view.url("/design/designers"))


def my_leases(view: View, allocated: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """My cloud designers: lease one, renew, give it back."""
    page = page_of(view, view.api.get("/api/v1/designer-leases", {"page": view.arg("page", "1"), "pageSize": 20,
                                                                  "userId": (view.me or {}).get("id")}))
    view.render("design/leases.html", status=status, page=page, allocated=allocated, errors=errors or {})


def allocate(view: View) -> None:
    body = {}
    if view.field("vendor"):
        body["vendor"] = view.field("vendor")
    if view.field("minutes"):
        body["minutes"] = view.field("minutes")
    answer = view.api.post("/api/v1/designers/allocate", body)
    if not answer.ok:
        my_leases(view, errors=answer.form_errors(), status=answer.status if answer.status < 500 else 502)
    my_leases(view, allocated=answer.value, status=201)


def renew(view: View, lease_id: str) -> None:
    body = {"minutes": view.field("minutes")} if view.field("minutes") else {}
    answer = view.api.post(f"/api/v1/designer-leases/{lease_id}/renew", body)
    outcome(view, answer, N_("Lease renewed."), view.safe_next(view.field("next")) or view.url("/design/leases"))


def release(view: View, lease_id: str) -> None:
    answer = view.api.post(f"/api/v1/designer-leases/{lease_id}/release")
    outcome(view, answer, N_("Designer given back."),
            view.safe_next(view.field("next")) or view.url("/design/leases"))


def register(pages) -> None:
    pages.view("/design", board, permission="design.read", nav=(N_("Design"), N_("Requirements")))
    pages.view("/design/requirements/new", new_requirement, permission="design.submit")
    pages.action("/design/requirements", create_requirement, permission="design.submit")
    pages.view("/design/requirements/{req_id}", requirement, permission="design.read")
    for name, (permission, _label) in ACTIONS.items():
        pages.action(f"/design/requirements/{{req_id}}/{name}", act(name), permission=permission)
    pages.action("/design/requirements/{req_id}/comments", comment, permission="design.read")
    pages.action("/design/requirements/{req_id}/trials", start_trial, permission="design.read")
    pages.action("/design/requirements/{req_id}/attachments", add_attachment, permission="design.submit")
    pages.view("/design/requirements/{req_id}/attachments/{file_id}", attachment, permission="design.read")

    pages.view("/design/library", library, permission="apps.read", nav=(N_("Design"), N_("Artifact library")))
    pages.view("/design/library/{app_id}", app_page, permission="apps.read")
    pages.action("/design/library/{app_id}/versions/{version}/submit", submit_version, permission="apps.manage")
    pages.action("/design/library/{app_id}/publish", publish, permission="apps.manage")
    # Anyone signed in may decide what the API lets them decide (it checks the kind's checker permission).
    pages.action("/design/approvals/{request_id}/approve", decide("approve"))
    pages.action("/design/approvals/{request_id}/reject", decide("reject"))

    pages.view("/design/images", images, permission="images.read", nav=(N_("Design"), N_("Images")))
    pages.action("/design/images", create_image, permission="images.manage")
    pages.view("/design/images/{image_id}", image, permission="images.read")
    pages.action("/design/images/{image_id}/versions", upload_image_version, permission="images.manage")
    pages.action("/design/images/{image_id}/versions/{version}/start", start_instance, permission="images.manage")
    pages.action("/design/images/{image_id}/delete", delete_image, permission="images.manage")
    pages.action("/design/instances/{instance_id}/recycle", recycle, permission="images.manage")

    pages.view("/design/designers", designers, permission="designers.manage", nav=(N_("Design"), N_("Designers")))
    pages.action("/design/designers", register_designer, permission="designers.manage")
    pages.action("/design/designers/{designer_id}/enabled", toggle_designer, permission="designers.manage")
    pages.action("/design/designers/{designer_id}/deregister", deregister_designer, permission="designers.manage")
    pages.view("/design/leases", my_leases, permission="designers.use", nav=(N_("Design"), N_("My cloud designers")))
    pages.action("/design/leases", allocate, permission="designers.use")
    pages.action("/design/leases/{lease_id}/renew", renew, permission="designers.use")
    pages.action("/design/leases/{lease_id}/release", release, permission="designers.use")
