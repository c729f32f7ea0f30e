"""The operations center (6.4): the big screen, run and scenario analysis, customer
service (report → handle → verify), news and cases, hot apps, the academy and the
knowledge base."""

from __future__ import annotations

import datetime as dt

from markupsafe import Markup, escape

from .. import charts
from ..i18n import N_
from ..views import View

# Values the API answers with, and their words.
DOMAINS = {"marketing": N_("Marketing"), "customer_service": N_("Customer service"), "equipment": N_("Equipment"),
           "hr": N_("Human resources"), "finance": N_("Finance"), "it_ops": N_("IT operations"),
           "other": N_("Other domain")}
DIMENSIONS = {"region": N_("Region"), "scenario": N_("Scenario"), "domain": N_("Business domain"),
              "vendor": N_("Vendor"), "app": N_("App"), "day": N_("Day")}
APP_STATES = (N_("draft"), N_("submitted"), N_("listed"), N_("delisted"), N_("rejected"), N_("approved"))
RUN_STATES = (N_("pending"), N_("dispatched"), N_("running"), N_("stopping"), N_("retrying"), N_("success"),
              N_("failed"), N_("cancelled"))
EXECUTOR_STATES = (N_("online"), N_("busy"), N_("offline"))
FEEDBACK_STATES = {"open": N_("open"), "in_progress": N_("in progress"), "resolved": N_("resolved"),
                   "accepted": N_("accepted"), "reopened": N_("reopened"), "closed": N_("closed")}
CATEGORIES = {"bug": N_("Defect"), "usage": N_("Usage question"), "data": N_("Data problem"),
              "performance": N_("Performance"), "suggestion": N_("Suggestion"), "other": N_("Other")}
SEVERITIES = {"low": N_("low"), "normal": N_("normal"), "high": N_("high"), "critical": N_("critical")}
FEEDBACK_ACTIONS = {"assign": N_("Take it"), "resolve": N_("Resolve"), "accept": N_("Accept the resolution"),
                    "reopen": N_("Reopen"), "close": N_("Close")}
# The permission of each lifecycle action's API route.
ACTION_PERMISSIONS = {"assign": "feedback.handle", "resolve": "feedback.handle", "accept": "feedback.submit",
                      "reopen": "feedback.submit", "close": "feedback.manage"}
ACTION_DONE = {"assign": N_("You handle this feedback now."), "resolve": N_("Feedback resolved."),
               "accept": N_("Resolution accepted."), "reopen": N_("Feedback reopened."),
               "close": N_("Feedback closed.")}
EVENTS = {"submit": N_("reported"), "assign": N_("taken"), "resolve": N_("resolved"), "accept": N_("accepted"),
          "reopen": N_("reopened"), "close": N_("closed"), "comment": N_("commented")}
NEWS_KINDS = {"news": N_("News"), "case": N_("Case")}
LEVELS = {"beginner": N_("beginner"), "intermediate": N_("intermediate"), "advanced": N_("advanced")}
ARTICLE_KINDS = {"feature": N_("Feature introduction"), "scenario": N_("Applicable scenario"),
                 "case": N_("Case showcase")}
SCREEN = {"width": 640, "height": 440}  # the shape of a card on a 1920×1080 screen


def paging(view: View, size: int = 20) -> dict:
    return {"page": view.arg("page", "1"), "pageSize": view.arg("pageSize", str(size))}


def listing(view: View, path: str, query: dict, fields=()) -> tuple[dict, dict]:
    return view.listing(view.api.get(path, query), fields)


def tags_of(text: str) -> list[str]:
    return [t.strip() for t in text.replace("，", ",").split(",") if t.strip()]


def percent(rate) -> str:
    return "–" if rate is None else f"{rate * 100:.1f} %"


# -- the big screen (6.4.1a) -------------------------------------------------------------------


def screen(view: View) -> None:
    """Operations big screen."""
    _ = view._
    o = view.value(view.api.get("/api/v1/analytics/overview", {"tz": view.timezone, "top": 8}))
    today = dt.date.fromisoformat(o["today"])
    days = view.api.get("/api/v1/analytics/runs", {"by": "day", "tz": view.timezone,
                                                   "from": (today - dt.timedelta(days=13)).isoformat(),
                                                   "to": today.isoformat()})
    domains = view.api.get("/api/v1/analytics/runs", {"by": "domain", "tz": view.timezone,
                                                      "from": (today - dt.timedelta(days=29)).isoformat(),
                                                      "to": today.isoformat()})
    none = _("No data yet")
    groups = days.value["groups"] if days.ok else []
    figures = {
        "days": charts.line([g["key"][5:] for g in groups],
                            [(_("Runs"), [g["runs"] for g in groups]),
                             (_("Successes"), [g["successes"] for g in groups]),
                             (_("Failures"), [g["failures"] for g in groups])],
                            title=_("App runs, last 14 days"), no_data=none, dark=True, **SCREEN),
        "states": charts.pie([(_(s), n) for s, n in sorted(o["runs"]["byState"].items(), key=lambda x: -x[1])],
                             title=_("Runs by state"), no_data=none, dark=True, **SCREEN),
        "executors": charts.pie([(_(s), n) for s, n in sorted(o["executors"]["byState"].items())],
                                title=_("Executors by state"), no_data=none, dark=True, **SCREEN),
        "apps": charts.bars([a["name"] for a in o["topApps"]], [(_("Runs, last 30 days"),
                                                                  [a["runs30Days"] for a in o["topApps"]])],
                            title=_("Top apps"), no_data=none, dark=True, horizontal=True, **SCREEN),
    }
    if domains.ok:
        dg = domains.value["groups"]
        figures["domains"] = charts.bars([_(DOMAINS.get(g["key"], g["key"] or "–")) for g in dg],
                                         [(_("Runs"), [g["runs"] for g in dg])],
                                         title=_("App runs by business domain, last 30 days"), no_data=none,
                                         dark=True, **SCREEN)
    if o.get("requirements"):
        figures["requirements"] = charts.pie(
            [(_(s), n) for s, n in sorted(o["requirements"]["byState"].items())], title=_("Requirements by state"),
            no_data=none, dark=True, **SCREEN)
    # The monitoring figures of now (queue, licences), for those who may see runs.
    stats = view.api.get("/api/v1/ops/stats") if view.can("runs.read") else None
    view.render("operations/screen.html", o=o, figures=figures, rate=percent(o["runs"]["successRateLast7Days"]),
                stats=stats.value if stats is not None and stats.ok else None)


# -- run and scenario analysis (6.4.1b–c) -------------------------------------------------------------


def group_label(view: View, by: str, group: dict) -> str:
    if by == "domain":
        return view._(DOMAINS.get(group["key"], group["key"])) if group["key"] else "–"
    if by == "app":
        return group.get("label") or group["key"]
    return group["key"] or "–"


def analysis(view: View) -> None:
    """Run analysis."""
    _ = view._
    by = view.arg("by") or "region"
    query = {"by": by, "from": view.arg("from"), "to": view.arg("to"), "tz": view.timezone,
             "region": view.arg("region"), "scenario": view.arg("scenario"), "domain": view.arg("domain")}
    answer = view.api.get("/api/v1/analytics/runs", query)
    errors = answer.field_errors if answer.status == 400 else {}
    if not answer.ok and not errors:
        view.fail(answer)
    result = answer.value if answer.ok else None
    chart = None
    if result:
        groups = result["groups"]
        labels = [group_label(view, by, g) for g in groups]
        series = [(_("Runs"), [g["runs"] for g in groups]), (_("Successes"), [g["successes"] for g in groups]),
                  (_("Failures"), [g["failures"] for g in groups])]
        title = view.translator.gettext("App runs by %(dimension)s", dimension=_(DIMENSIONS.get(by, by)))
        if by == "day":
            chart = charts.line(labels, series, title=title, no_data=_("No runs in this range."), width=1000)
        else:
            chart = charts.bars(labels, series, title=title, no_data=_("No runs in this range."),
                                horizontal=len(groups) > 8, width=1000, height=max(360, 28 * len(groups)))
        for g, label in zip(groups, labels, strict=True):
            g["text"] = label
    view.render("operations/analysis.html", result=result, errors=errors, by=by, chart=chart,
                dimensions=DIMENSIONS, domains=DOMAINS, percent=percent)


def scenarios(view: View) -> None:
    """Scenario analysis."""
    _ = view._
    data = view.value(view.api.get("/api/v1/analytics/scenarios", {"region": view.arg("region")}))
    regions = data["regions"]
    series = [(_("Apps"), [r["apps"] for r in regions]), (_("Listed apps"), [r["listedApps"] for r in regions])]
    if data["requirementsAvailable"]:
        series.append((_("Requirements"), [r["requirements"] for r in regions]))
    chart = charts.bars([r["region"] or "–" for r in regions], series, title=_("Scenarios collected per region"),
                        no_data=_("No apps or requirements yet."), width=1000,
                        horizontal=len(regions) > 8, height=max(360, 30 * len(regions)))
    view.render("operations/scenarios.html", data=data, chart=chart)


# -- customer service (6.4.2) ---------------------------------------------------------------------


def feedback_list(view: View, desk: bool = False) -> None:
    """Feedback."""
    query = {"state": view.args.get("state") or None, "category": view.arg("category"),
             "severity": view.arg("severity"), "appId": view.arg("appId"), **paging(view)}
    if view.arg("mine"):
        query["mine"] = "true"
    if view.arg("assignedToMe"):
        query["assignedToMe"] = "true"
    page, errors = listing(view, "/api/v1/feedback", query)
    states = view.args.get("state") or []
    view.render("operations/feedback_list.html", page=page, errors=errors, desk=desk,
                chosen=states if isinstance(states, list) else [states], states=FEEDBACK_STATES,
                categories=CATEGORIES, severities=SEVERITIES)


def feedback_desk(view: View) -> None:
    """Feedback desk."""
    feedback_list(view, desk=True)


def feedback_form(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """Report a problem."""
    values = values or {"appId": view.arg("appId"), "runId": view.arg("runId"), "category": "bug",
                        "severity": "normal"}
    view.render("operations/feedback_form.html", status=status, values=values, errors=errors or {},
                categories=CATEGORIES, severities=SEVERITIES)


def feedback_submit(view: View) -> None:
    values = {k: view.field(k) for k in ("title", "description", "category", "severity", "appId", "runId")}
    body = {k: v for k, v in values.items() if v or k in ("title",)}
    answer = view.api.post("/api/v1/feedback", body)
    if not answer.ok:
        feedback_form(view, values, answer.field_errors or {"": answer.hint}, status=answer.status)
    view.redirect(view.url(f"/operations/feedback/{answer.value['id']}"), view._("Thank you: your report is filed."))


def feedback_detail(view: View, feedback_id: str) -> None:
    """One feedback."""
    row = view.value(view.api.get(f"/api/v1/feedback/{feedback_id}"))
    me = (view.me or {}).get("id")
    actions = [a for a in row["allowedActions"] if view.can(ACTION_PERMISSIONS[a])
               and (a not in ("accept", "reopen") or row["reporter"]["id"] == me)
               and (a != "resolve" or (row["assignee"] or {}).get("id") == me)]
    handlers = view.api.get("/api/v1/feedback/handlers").items() if "assign" in actions else []
    view.render("operations/feedback_detail.html", row=row, actions=actions, action_names=FEEDBACK_ACTIONS,
                handlers=handlers,
                states=FEEDBACK_STATES, categories=CATEGORIES, severities=SEVERITIES, events=EVENTS)


def feedback_comment(view: View, feedback_id: str) -> None:
    answer = view.api.post(f"/api/v1/feedback/{feedback_id}/comments", {"text": view.field("text")})
    view.back(answer, N_("Comment added."), view.url(f"/operations/feedback/{feedback_id}"))


def feedback_action(name: str):
    def act(view: View, feedback_id: str) -> None:
        body: dict = {"comment": view.field("comment")}
        if view.field("version").isdigit():
            body["version"] = int(view.field("version"))
        if name == "assign" and view.field("assigneeId"):
            body["assigneeId"] = view.field("assigneeId")
        answer = view.api.post(f"/api/v1/feedback/{feedback_id}/{name}", body)
        view.back(answer, ACTION_DONE[name], view.url(f"/operations/feedback/{feedback_id}"))

    act.__name__ = f"feedback_{name}"
    act.__doc__ = f"Feedback: {name}."
    return act


# -- news and cases, hot apps (6.4.3a–b) ----------------------------------------------------------


def news_list(view: View) -> None:
    """News and cases."""
    query = {"kind": view.arg("kind"), "q": view.arg("q"), "region": view.arg("region"), "tag": view.arg("tag"),
             **paging(view)}
    if view.arg("drafts") and view.can("content.manage"):
        query["drafts"] = "true"
    page, errors = listing(view, "/api/v1/news", query)
    view.render("operations/news_list.html", page=page, errors=errors, kinds=NEWS_KINDS)


def news_read(view: View, news_id: str) -> None:
    """A news item or case."""
    item = view.value(view.api.get(f"/api/v1/news/{news_id}"))
    view.render("operations/news_read.html", item=item, kinds=NEWS_KINDS, body=item.get("body") or "")


def news_form(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """Write a news item or case."""
    view.render("operations/news_form.html", status=status, values=values or {"kind": "news"}, errors=errors or {},
                kinds=NEWS_KINDS)


def news_create(view: View) -> None:
    values = {k: view.field(k) for k in ("kind", "title", "summary", "body", "region", "tags")}
    values["published"] = bool(view.field("published"))
    body = {**values, "tags": tags_of(values["tags"])}
    answer = view.api.post("/api/v1/news", body)
    if not answer.ok:
        news_form(view, values, answer.field_errors or {"": answer.hint}, status=answer.status)
    view.redirect(view.url(f"/operations/news/{answer.value['id']}"), view._("Saved."))


def news_publish(view: View, news_id: str) -> None:
    publish = view.field("published") == "true"
    answer = view.api.patch(f"/api/v1/news/{news_id}", {"published": publish})
    view.back(answer, N_("Published.") if publish else N_("Withdrawn."), view.url(f"/operations/news/{news_id}"))


def news_delete(view: View, news_id: str) -> None:
    answer = view.api.delete(f"/api/v1/news/{news_id}")
    if answer.ok:
        view.redirect(view.url("/operations/news"), view._("Deleted."))
    view.back(answer, N_("Deleted."), view.url(f"/operations/news/{news_id}"))


def hot_apps(view: View) -> None:
    """Hot apps."""
    _ = view._
    query = {"days": view.arg("days") or "30", "limit": view.arg("limit") or "10", "region": view.arg("region"),
             "domain": view.arg("domain")}
    answer = view.api.get("/api/v1/hot-apps", query)
    errors = answer.field_errors if answer.status == 400 else {}
    if not answer.ok and not errors:
        view.fail(answer)
    items = answer.value["items"] if answer.ok else []
    chart = charts.bars([a["name"] for a in items], [(_("Runs"), [a["runs"] for a in items]),
                                                     (_("New subscriptions"), [a["newSubscriptions"] for a in items])],
                        title=_("Hot apps"), no_data=_("No app was used in this window."), horizontal=True,
                        stacked=True, width=1000, height=max(320, 34 * len(items)))
    view.render("operations/hot_apps.html", items=items, errors=errors, chart=chart, domains=DOMAINS)


# -- the academy (6.4.3c) --------------------------------------------------------------------------


def courses(view: View) -> None:
    """Academy."""
    query = {"q": view.arg("q"), "level": view.arg("level"), "tag": view.arg("tag"), **paging(view)}
    if view.arg("drafts") and view.can("content.manage"):
        query["drafts"] = "true"
    page, errors = listing(view, "/api/v1/academy/courses", query)
    view.render("operations/courses.html", page=page, errors=errors, levels=LEVELS)


def my_courses(view: View) -> None:
    """My courses."""
    page, errors = listing(view, "/api/v1/academy/enrolments", paging(view))
    view.render("operations/my_courses.html", page=page, levels=LEVELS)


def course(view: View, course_id: str) -> None:
    """A course."""
    row = view.value(view.api.get(f"/api/v1/academy/courses/{course_id}"))
    view.render("operations/course.html", course=row, levels=LEVELS, description=row.get("description") or "")


def course_enrol(view: View, course_id: str) -> None:
    answer = view.api.put(f"/api/v1/academy/courses/{course_id}/enrolment")
    view.back(answer, N_("You are enrolled."), view.url(f"/operations/academy/{course_id}"))


def course_leave(view: View, course_id: str) -> None:
    answer = view.api.delete(f"/api/v1/academy/courses/{course_id}/enrolment")
    view.back(answer, N_("You left the course."), view.url(f"/operations/academy/{course_id}"))


def lesson(view: View, course_id: str, lesson_id: str) -> None:
    """A lesson."""
    row = view.value(view.api.get(f"/api/v1/academy/courses/{course_id}"))
    item = view.value(view.api.get(f"/api/v1/academy/courses/{course_id}/lessons/{lesson_id}"))
    lessons = row["lessons"]
    index = next((i for i, x in enumerate(lessons) if x["id"] == item["id"]), 0)
    view.render("operations/lesson.html", course=row, lesson=item, body=item.get("body") or "",
                previous=lessons[index - 1] if index > 0 else None,
                following=lessons[index + 1] if index + 1 < len(lessons) else None)


def lesson_video(view: View, course_id: str, lesson_id: str) -> None:
    """A lesson's video, seekable."""
    view.proxy(f"/api/v1/academy/courses/{course_id}/lessons/{lesson_id}/video")


def lesson_progress(view: View, course_id: str, lesson_id: str) -> None:
    completed = view.field("completed") != "false"
    answer = view.api.put(f"/api/v1/academy/courses/{course_id}/lessons/{lesson_id}/progress",
                          {"completed": completed})
    view.back(answer, N_("Lesson marked as done.") if completed else N_("Mark taken back."),
              view.url(f"/operations/academy/{course_id}/lessons/{lesson_id}"))


# -- the knowledge base (6.4.3d) ---------------------------------------------------------------------


def highlighted(text: str, spans) -> Markup:
    """Text with its matched spans in ``<mark>``, everything escaped."""
    out, at = [], 0
    for start, end in sorted(spans or []):
        if start < at:
            continue
        out.append(escape(text[at:start]))
        out.append(Markup("<mark>") + escape(text[start:end]) + Markup("</mark>"))
        at = end
    out.append(escape(text[at:]))
    return Markup("").join(out)


def knowledge(view: View) -> None:
    """Knowledge base."""
    q = view.arg("q").strip()
    query = {"kind": view.arg("kind"), "tag": view.arg("tag"), **paging(view)}
    if view.arg("drafts") and view.can("knowledge.manage"):
        query["drafts"] = "true"
    if q:
        page, errors = listing(view, "/api/v1/knowledge/search", {**query, "q": q}, ("q",))
        for hit in page["items"]:
            hit["titleHtml"] = highlighted(hit["title"], hit.get("titleHighlights"))
            snip = hit.get("snippet") or {}
            hit["snippetHtml"] = highlighted(snip.get("text", ""), snip.get("highlights"))
    else:
        page, errors = listing(view, "/api/v1/knowledge/articles", query, ("q",))
    view.render("operations/knowledge.html", page=page, errors=errors, q=q, kinds=ARTICLE_KINDS)


def article(view: View, article_id: str) -> None:
    """A knowledge article."""
    row = view.value(view.api.get(f"/api/v1/knowledge/articles/{article_id}"))
    view.render("operations/article.html", article=row, kinds=ARTICLE_KINDS, body=row.get("body") or "")


ARTICLE_FIELDS = ("kind", "title", "body", "tags", "appIds", "published")


def article_form(view: View, values: dict | None = None, errors: dict | None = None, status: int = 200,
                 row: dict | None = None, preview: bool = False) -> None:
    """Write a knowledge article."""
    values = values or {"kind": view.arg("kind") or "feature", "title": "", "body": "", "tags": "",
                        "appIds": view.arg("appId"), "published": False}
    view.render("operations/article_form.html", status=status, values=values, errors=errors or {}, row=row,
                kinds=ARTICLE_KINDS, preview=preview)


def article_values(view: View) -> dict:
    """What the person typed, as the form shows it again."""
    values = {k: view.field(k) for k in ARTICLE_FIELDS if k != "published"}
    values["kind"] = values["kind"] or "feature"
    values["published"] = bool(view.field("published"))
    return values


def article_body(values: dict) -> dict:
    return {**values, "tags": tags_of(values["tags"]), "appIds": tags_of(values["appIds"])}


def article_create(view: View) -> None:
    values = article_values(view)
    if view.field("preview"):
        article_form(view, values, preview=True)
    answer = view.api.post("/api/v1/knowledge/articles", article_body(values))
    if not answer.ok:
        article_form(view, values, answer.form_errors(ARTICLE_FIELDS), status=answer.form_status)
    view.redirect(view.url(f"/operations/knowledge/{answer.value['id']}"), view._("Article saved."))


def article_edit(view: View, article_id: str) -> None:
    """Change a knowledge article."""
    row = view.value(view.api.get(f"/api/v1/knowledge/articles/{article_id}"))
    values = {"kind": row["kind"], "title": row["title"], "body": row.get("body") or "",
              "tags": ", ".join(row["tags"]), "appIds": ", ".join(row["appIds"]), "published": row["published"]}
    article_form(view, values, row=row)


def article_update(view: View, article_id: str) -> None:
    row = view.value(view.api.get(f"/api/v1/knowledge/articles/{article_id}"))
    values = article_values(view)
    values["published"] = row["published"]  # publishing is its own action, on the article
    if view.field("preview"):
        article_form(view, values, row=row, preview=True)
    body = article_body(values)
    del body["published"]
    # What the form was loaded from: someone else's save meanwhile is a 409, not lost.
    body["ifUpdatedAt"] = view.field("ifUpdatedAt") or None
    answer = view.api.patch(f"/api/v1/knowledge/articles/{article_id}", body)
    if not answer.ok:
        article_form(view, values, answer.form_errors(ARTICLE_FIELDS), status=answer.form_status, row=row)
    view.redirect(view.url(f"/operations/knowledge/{article_id}"), view._("Article saved."))


def article_publish(view: View, article_id: str) -> None:
    publish = view.field("published") == "true"
    answer = view.api.patch(f"/api/v1/knowledge/articles/{article_id}", {"published": publish})
    view.back(answer, N_("Published.") if publish else N_("Withdrawn."),
              view.url(f"/operations/knowledge/{article_id}"))


def article_delete(view: View, article_id: str) -> None:
    answer = view.api.delete(f"/api/v1/knowledge/articles/{article_id}")
    if answer.ok:
        view.redirect(view.url("/operations/knowledge"), view._("Deleted."))
    view.back(answer, N_("Deleted."), view.url(f"/operations/knowledge/{article_id}"))


def register(pages) -> None:
    ops = N_("Operations")
    pages.view("/operations/screen", screen, permission="analytics.read", nav=(ops, N_("Operations big screen")))
    pages.view("/operations/analysis", analysis, permission="analytics.read", nav=(ops, N_("Run analysis")))
    pages.view("/operations/scenarios", scenarios, permission="analytics.read", nav=(ops, N_("Scenario analysis")))
    pages.view("/operations/feedback", feedback_list, permission="feedback.submit", nav=(ops, N_("My feedback")))
    pages.view("/operations/feedback/desk", feedback_desk, permission=("feedback.handle", "feedback.read",
                                                                       "feedback.manage"),
               nav=(ops, N_("Feedback desk")))
    pages.view("/operations/feedback/new", feedback_form, permission="feedback.submit")
    pages.action("/operations/feedback/new", feedback_submit, permission="feedback.submit")
    # Who may see one feedback is the API's decision (its reporter, assignee, readers, handlers).
    pages.view("/operations/feedback/{feedback_id}", feedback_detail)
    pages.action("/operations/feedback/{feedback_id}/comment", feedback_comment)
    for name, permission in ACTION_PERMISSIONS.items():
        pages.action(f"/operations/feedback/{{feedback_id}}/{name}", feedback_action(name), permission=permission)
    pages.view("/operations/news", news_list, nav=(ops, N_("News and cases")))
    pages.view("/operations/news/new", news_form, permission="content.manage")
    pages.action("/operations/news/new", news_create, permission="content.manage")
    pages.view("/operations/news/{news_id}", news_read)
    pages.action("/operations/news/{news_id}/publish", news_publish, permission="content.manage")
    pages.action("/operations/news/{news_id}/delete", news_delete, permission="content.manage")
    pages.view("/operations/hot-apps", hot_apps, nav=(ops, N_("Hot apps")))
    pages.view("/operations/academy", courses, nav=(ops, N_("RPA academy")))
    pages.view("/operations/academy/mine", my_courses, permission="academy.learn", nav=(N_("Me"), N_("My courses")))
    pages.view("/operations/academy/{course_id}", course)
    pages.action("/operations/academy/{course_id}/enrol", course_enrol, permission="academy.learn")
    pages.action("/operations/academy/{course_id}/leave", course_leave, permission="academy.learn")
    pages.view("/operations/academy/{course_id}/lessons/{lesson_id}", lesson)
    pages.view("/operations/academy/{course_id}/lessons/{lesson_id}/video", lesson_video)
    pages.action("/operations/academy/{course_id}/lessons/{lesson_id}/progress", lesson_progress,
                 permission="academy.learn")
    pages.view("/operations/knowledge", knowledge, nav=(ops, N_("Knowledge base")))
    pages.view("/operations/knowledge/new", article_form, permission="knowledge.manage")
    pages.action("/operations/knowledge/new", article_create, permission="knowledge.manage")
    pages.view("/operations/knowledge/{article_id}", article)
    pages.view("/operations/knowledge/{article_id}/edit", article_edit, permission="knowledge.manage")
    pages.action("/operations/knowledge/{article_id}/edit", article_update, permission="knowledge.manage")
    pages.action("/operations/knowledge/{article_id}/publish", article_publish, permission="knowledge.manage")
    pages.action("/operations/knowledge/{article_id}/delete", article_delete, permission="knowledge.manage")
