"""Thin Falcon resources of the operations center: validate, call the service, answer."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

from rpahub_core.errors import Forbidden
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import PageQuery, ok, operation, paginate

from . import schemas as s
from .academy import Academy, percent
from .analytics import Analytics
from .content import Newsroom, hot_apps
from .feedback import ACTION_PERMISSIONS, ACTIONS, Desk, allowed
from .knowledge import KnowledgeBase
from .models import Course, Feedback, FeedbackEvent, KnowledgeArticle, Lesson, NewsItem
from .sqltime import local_midnight
from .textsearch import snippet

ANALYTICS, SERVICE, CONTENT, ACADEMY, KNOWLEDGE = (("analytics",), ("customer service",), ("content",),
                                                   ("academy",), ("knowledge",))


# -- analytics (6.4.1) ---------------------------------------------------------------------


class Overview:
    def __init__(self, analytics: Analytics):
        self.analytics = analytics

    @operation(permission="analytics.read", summary="The operations big screen: apps, subscriptions, runs, "
               "requirements, executors, designers, top apps (6.4.1a)", query=s.OverviewQuery, tags=ANALYTICS)
    def on_get(self, req, resp):
        q = req.context.query
        ok(resp, self.analytics.overview(ZoneInfo(q.tz), q.top))


class RunAnalysis:
    def __init__(self, analytics: Analytics):
        self.analytics = analytics

    @operation(permission="analytics.read", summary="App runs over a range of days by region, scenario, domain, "
               "vendor, app or day: runs, successes, failures, users, mean duration (6.4.1b)",
               query=s.RunsQuery, tags=ANALYTICS)
    def on_get(self, req, resp):
        q = req.context.query
        tz = ZoneInfo(q.tz)
        first, last = q.days()
        start, end = local_midnight(first, tz), local_midnight(last + dt.timedelta(days=1), tz)
        result = self.analytics.runs(start=start, end=end, by=q.by, tz=tz, filters={
            "region": q.region, "scenario": q.scenario, "domain": q.domain, "vendor": q.vendor, "appId": q.appId})
        result.update(firstDay=first.isoformat(), lastDay=last.isoformat())
        ok(resp, result)


class ScenarioAnalysis:
    def __init__(self, analytics: Analytics):
        self.analytics = analytics

    @operation(permission="analytics.read", summary="Scenarios collected per region: apps and requirements per "
               "scenario (6.4.1c)", query=s.ScenarioQuery, tags=ANALYTICS)
    def on_get(self, req, resp):
        ok(resp, self.analytics.scenarios(req.context.query.region))


# -- customer service (6.4.2) ------------------------------------------------------------------


def feedback_json(row: Feedback, **extra) -> dict:
    return {"id": row.id, "appId": row.app_id, "runId": row.run_id, "title": row.title,
            "description": row.description, "category": row.category, "severity": row.severity,
            "attachments": json.loads(row.attachments),
            "reporter": {"id": row.reporter_id, "name": row.reporter_name}, "state": row.state,
            "assignee": {"id": row.assignee_id, "name": row.assignee_name} if row.assignee_id else None,
            "resolution": row.resolution, "version": row.version, "allowedActions": allowed(row.state),
            "createdAt": row.created_at, "updatedAt": row.updated_at, "resolvedAt": row.resolved_at,
            "acceptedAt": row.accepted_at, "closedAt": row.closed_at, **extra}


def event_json(e: FeedbackEvent) -> dict:
    return {"id": e.id, "kind": e.kind, "action": e.action, "fromState": e.from_state, "toState": e.to_state,
            "comment": e.comment, "actor": {"id": e.actor_id, "name": e.actor_name}, "at": e.at}


def may_use_feedback(who) -> None:
    if not any(who.can(p) for p in ("feedback.submit", "feedback.handle", "feedback.read", "feedback.manage")):
        raise Forbidden("permission feedback.submit, feedback.handle or feedback.read required")


class FeedbackHandlers:
    def __init__(self, desk: Desk):
        self.desk = desk

    @operation(permission="feedback.handle", summary="Who feedback may be assigned to: active people holding "
               "feedback.handle", tags=SERVICE)
    def on_get(self, req, resp):
        from rpahub_plugins.auth_local import identity

        ok(resp, {"items": identity(self.desk.hub).holders("feedback.handle")})


class FeedbackList:
    def __init__(self, desk: Desk):
        self.desk = desk

    @operation(permission=AUTHENTICATED, summary="Feedback: everyone's with feedback.read or feedback.handle, "
               "otherwise what I reported or handle; filters state, app, mine, assigned to me",
               query=s.FeedbackQuery, tags=SERVICE)
    def on_get(self, req, resp):
        q, who = req.context.query, req.context.principal
        may_use_feedback(who)
        query = self.desk.search(who, state=q.state, app_id=q.appId, mine=q.mine, assigned_to_me=q.assignedToMe,
                                 category=q.category, severity=q.severity)
        ok(resp, paginate(query, q, feedback_json))

    @operation(permission="feedback.submit", summary="Report a problem with an app or a run (问题反馈, 6.4.2a)",
               body=s.FeedbackIn, tags=SERVICE, audit="feedback.submit", status=201)
    def on_post(self, req, resp):
        row = self.desk.submit(req.context.body, req.context.principal)
        req.context.audit_target = row.id
        ok(resp, feedback_json(row, history=[event_json(e) for e in self.desk.history(row)]), status=201)


class FeedbackItem:
    def __init__(self, desk: Desk):
        self.desk = desk

    @operation(permission=AUTHENTICATED, summary="One feedback with its history and comments", tags=SERVICE)
    def on_get(self, req, resp, feedback_id):
        who = req.context.principal
        may_use_feedback(who)
        row = self.desk.visible(feedback_id, who)
        ok(resp, feedback_json(row, history=[event_json(e) for e in self.desk.history(row)]))


class FeedbackComments:
    def __init__(self, desk: Desk):
        self.desk = desk

    @operation(permission=AUTHENTICATED, summary="Comment on a feedback (its reporter, handlers, readers)",
               body=s.CommentIn, tags=SERVICE, audit="feedback.comment", status=201)
    def on_post(self, req, resp, feedback_id):
        who = req.context.principal
        may_use_feedback(who)
        ok(resp, event_json(self.desk.comment(feedback_id, who, req.context.body.text)), status=201)


SUMMARIES = {
    "assign": "Take a feedback, or assign it to a handler (问题处理, 6.4.2b): → in_progress",
    "resolve": "Resolve a feedback assigned to you, saying how (comment): → resolved",
    "accept": "As its reporter, accept the resolution (问题验收, 6.4.2c): → accepted",
    "reopen": "As its reporter, refuse the resolution, saying why (comment): → reopened",
    "close": "Close a feedback (administrators)",
}


def feedback_transition(desk: Desk, action: str):
    """The resource of one lifecycle action, with the permission and audit name of its own."""
    body = s.AssignIn if action == "assign" else s.FeedbackAction

    class Transition:
        @operation(permission=ACTION_PERMISSIONS[action], summary=SUMMARIES[action], body=body, tags=SERVICE,
                   audit=f"feedback.{action}")
        def on_post(self, req, resp, feedback_id):
            b, who = req.context.body, req.context.principal
            row = desk.act(feedback_id, action, who, comment=b.comment, version=b.version,
                           assignee_id=getattr(b, "assigneeId", None))
            ok(resp, feedback_json(row, history=[event_json(e) for e in desk.history(row)]))

    Transition.__name__ = f"Feedback{action.capitalize()}"
    return Transition()


assert set(SUMMARIES) == set(ACTIONS)


# -- news and cases, hot apps (6.4.3a–b) ------------------------------------------------------------


def news_json(row: NewsItem, full: bool = True) -> dict:
    out = {"id": row.id, "kind": row.kind, "title": row.title, "summary": row.summary, "region": row.region,
           "tags": json.loads(row.tags), "published": row.published, "publishedAt": row.published_at,
           "author": {"id": row.author_id, "name": row.author_name}, "createdAt": row.created_at,
           "updatedAt": row.updated_at}
    if full:
        out["body"] = row.body
        out["bodyFormat"] = "markdown"
    return out


class NewsList:
    def __init__(self, news: Newsroom):
        self.news = news

    @operation(permission=AUTHENTICATED, summary="Published news and cases, newest first (6.4.3a)",
               query=s.NewsQuery, tags=CONTENT)
    def on_get(self, req, resp):
        q = req.context.query
        query = self.news.search(req.context.principal, kind=q.kind, region=q.region, tag=q.tag, q=q.q,
                                 drafts=q.drafts)
        ok(resp, paginate(query, q, lambda r: news_json(r, full=False)))

    @operation(permission="content.manage", summary="Write a news item or case (Markdown body)", body=s.NewsIn,
               tags=CONTENT, audit="news.create", status=201)
    def on_post(self, req, resp):
        row = self.news.create(req.context.body, req.context.principal)
        req.context.audit_target = row.id
        ok(resp, news_json(row), status=201)


class NewsEntry:
    def __init__(self, news: Newsroom):
        self.news = news

    @operation(permission=AUTHENTICATED, summary="A news item or case with its Markdown body", tags=CONTENT)
    def on_get(self, req, resp, news_id):
        ok(resp, news_json(self.news.get(news_id, req.context.principal)))

    @operation(permission="content.manage", summary="Change or (un)publish a news item", body=s.NewsPatch,
               tags=CONTENT, audit="news.update")
    def on_patch(self, req, resp, news_id):
        row = self.news.get(news_id, req.context.principal)
        ok(resp, news_json(self.news.update(row, req.context.body.model_dump(exclude_unset=True))))

    @operation(permission="content.manage", summary="Delete a news item", tags=CONTENT, audit="news.delete")
    def on_delete(self, req, resp, news_id):
        self.news.delete(self.news.get(news_id, req.context.principal))
        ok(resp, None)


class HotApps:
    @operation(permission=AUTHENTICATED, summary="Hot apps: listed apps ranked by runs + 3 × new subscriptions "
               "over a window, with the figures (6.4.3b)", query=s.HotAppsQuery, tags=CONTENT)
    def on_get(self, req, resp):
        q = req.context.query
        ok(resp, {"days": q.days, "formula": "runs + 3 × newSubscriptions",
                  "items": hot_apps(days=q.days, limit=q.limit, region=q.region, domain=q.domain)})


# -- the academy (6.4.3c) ------------------------------------------------------------------------


def course_json(row: Course, **extra) -> dict:
    return {"id": row.id, "title": row.title, "summary": row.summary, "level": row.level,
            "tags": json.loads(row.tags), "published": row.published, "publishedAt": row.published_at,
            "author": {"id": row.author_id, "name": row.author_name}, "createdAt": row.created_at,
            "updatedAt": row.updated_at, **extra}


def lesson_json(row: Lesson, completed_at=None, body: bool = False) -> dict:
    video = f"/api/v1/academy/courses/{row.course_id}/lessons/{row.id}/video" if row.video_file_id else None
    out = {"id": row.id, "position": row.position, "title": row.title, "videoFileId": row.video_file_id,
           "videoUrl": video, "durationMin": row.duration_min, "completedAt": completed_at}
    if body:
        out.update(body=row.body, bodyFormat="markdown")
    return out


def course_detail(academy: Academy, row: Course, who) -> dict:
    lessons = academy.lessons(row)
    progress = academy.progress(row, who, lessons)
    done = progress.pop("lessons")
    return course_json(row, description=row.description, descriptionFormat="markdown",
                       lessons=[lesson_json(x, done.get(x.id)) for x in lessons],
                       durationMin=sum(x.duration_min for x in lessons), myProgress=progress)


class Courses:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission=AUTHENTICATED, summary="Published courses with lesson count and duration (6.4.3c)",
               query=s.CourseQuery, tags=ACADEMY)
    def on_get(self, req, resp):
        q = req.context.query
        query = self.academy.search(req.context.principal, q=q.q, tag=q.tag, level=q.level, drafts=q.drafts)
        ok(resp, paginate(query, q, lambda r: course_json(r, lessonCount=r.lesson_count,
                                                          durationMin=int(r.duration))))

    @operation(permission="content.manage", summary="Create a course, optionally with its lessons",
               body=s.CourseIn, tags=ACADEMY, audit="course.create", status=201)
    def on_post(self, req, resp):
        who = req.context.principal
        row = self.academy.create(req.context.body, who)
        req.context.audit_target = row.id
        ok(resp, course_detail(self.academy, row, who), status=201)


class CourseItem:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission=AUTHENTICATED, summary="A course, its lessons in order and my progress", tags=ACADEMY)
    def on_get(self, req, resp, course_id):
        who = req.context.principal
        ok(resp, course_detail(self.academy, self.academy.course(course_id, who), who))

    @operation(permission="content.manage", summary="Change or (un)publish a course", body=s.CoursePatch,
               tags=ACADEMY, audit="course.update")
    def on_patch(self, req, resp, course_id):
        who = req.context.principal
        row = self.academy.update(self.academy.course(course_id, who),
                                  req.context.body.model_dump(exclude_unset=True))
        ok(resp, course_detail(self.academy, row, who))

    @operation(permission="content.manage", summary="Delete a course with its lessons and everyone's progress",
               tags=ACADEMY, audit="course.delete")
    def on_delete(self, req, resp, course_id):
        self.academy.delete(self.academy.course(course_id, req.context.principal))
        ok(resp, None)


class Lessons:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission="content.manage", summary="Add a lesson (at a position; default last)", body=s.LessonIn,
               tags=ACADEMY, audit="lesson.create", status=201)
    def on_post(self, req, resp, course_id):
        course = self.academy.course(course_id, req.context.principal)
        row = self.academy.add_lesson(course, req.context.body)
        req.context.audit_target = f"{course.id}/{row.id}"
        ok(resp, lesson_json(Lesson.get_by_id(row.id), body=True), status=201)


class LessonVideo:
    """Whoever may open a lesson may watch its video (no files.read needed)."""

    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission=AUTHENTICATED, summary="A lesson's video (HTTP Range supported, so players seek)",
               tags=ACADEMY, produces="*/*")
    def on_get(self, req, resp, course_id, lesson_id):
        from rpahub_core.errors import NotFound
        from rpahub_plugins.executors import state
        from rpahub_plugins.executors.resources import send_file

        row = self.academy.lesson(self.academy.course(course_id, req.context.principal), lesson_id)
        if not row.video_file_id:
            raise NotFound(f"lesson {lesson_id} has no video")
        files = state(self.academy.hub).files
        stored = files.get(row.video_file_id)
        send_file(req, resp, files.open(stored), stored.size, stored.content_type, stored.name)


class LessonItem:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission=AUTHENTICATED, summary="A lesson's text (Markdown) and video, with my completion",
               tags=ACADEMY)
    def on_get(self, req, resp, course_id, lesson_id):
        who = req.context.principal
        course = self.academy.course(course_id, who)
        row = self.academy.lesson(course, lesson_id)
        done = self.academy.progress(course, who)["lessons"].get(row.id)
        ok(resp, lesson_json(row, done, body=True))

    @operation(permission="content.manage", summary="Change a lesson or move it", body=s.LessonPatch, tags=ACADEMY,
               audit="lesson.update")
    def on_patch(self, req, resp, course_id, lesson_id):
        course = self.academy.course(course_id, req.context.principal)
        row = self.academy.update_lesson(course, self.academy.lesson(course, lesson_id),
                                         req.context.body.model_dump(exclude_unset=True))
        ok(resp, lesson_json(row, body=True))

    @operation(permission="content.manage", summary="Delete a lesson", tags=ACADEMY, audit="lesson.delete")
    def on_delete(self, req, resp, course_id, lesson_id):
        course = self.academy.course(course_id, req.context.principal)
        self.academy.delete_lesson(course, self.academy.lesson(course, lesson_id))
        ok(resp, None)


class MyEnrolment:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission="academy.learn", summary="Enrol in a published course", tags=ACADEMY,
               audit="course.enrol")
    def on_put(self, req, resp, course_id):
        who = req.context.principal
        course = self.academy.course(course_id, who)
        self.academy.enrol(course, who)
        ok(resp, course_detail(self.academy, course, who))

    @operation(permission="academy.learn", summary="Leave a course (forgets my progress)", tags=ACADEMY,
               audit="course.leave")
    def on_delete(self, req, resp, course_id):
        who = req.context.principal
        self.academy.leave(self.academy.course(course_id, who), who)
        ok(resp, None)


class MyLessonProgress:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission="academy.learn", summary="Mark a lesson completed (or not: completed=false)",
               body=s.ProgressIn, tags=ACADEMY, audit="lesson.progress")
    def on_put(self, req, resp, course_id, lesson_id):
        who = req.context.principal
        course = self.academy.course(course_id, who)
        self.academy.complete(course, self.academy.lesson(course, lesson_id), who, req.context.body.completed)
        ok(resp, course_detail(self.academy, course, who))


class MyCourses:
    def __init__(self, academy: Academy):
        self.academy = academy

    @operation(permission="academy.learn", summary="The courses I enrolled in, with my completion", query=PageQuery,
               tags=ACADEMY)
    def on_get(self, req, resp):
        def item(r):
            total, done = int(r.lesson_count or 0), int(r.done_count or 0)
            return course_json(r, enrolledAt=r.enrolled_at, totalLessons=total, completedLessons=done,
                               percent=percent(done, total), completed=bool(total) and done == total)

        ok(resp, paginate(self.academy.my_courses(req.context.principal), req.context.query, item))


# -- the knowledge base (6.4.3d) ---------------------------------------------------------------------


def article_json(row: KnowledgeArticle, full: bool = True, **extra) -> dict:
    out = {"id": row.id, "kind": row.kind, "title": row.title, "tags": json.loads(row.tags),
           "appIds": json.loads(row.app_ids), "published": row.published,
           "author": {"id": row.author_id, "name": row.author_name}, "createdAt": row.created_at,
           "updatedAt": row.updated_at, **extra}
    if full:
        out.update(body=row.body, bodyFormat="markdown")
    return out


class Articles:
    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    @operation(permission=AUTHENTICATED, summary="Knowledge articles: features, scenarios, cases (6.4.3d)",
               query=s.ArticleQuery, tags=KNOWLEDGE)
    def on_get(self, req, resp):
        q = req.context.query
        query = self.kb.articles(req.context.principal, kind=q.kind, tag=q.tag, app_id=q.appId, drafts=q.drafts)
        ok(resp, paginate(query, q, lambda r: article_json(r, full=False)))

    @operation(permission="knowledge.manage", summary="Write a knowledge article (indexed for search at once)",
               body=s.ArticleIn, tags=KNOWLEDGE, audit="knowledge.create", status=201)
    def on_post(self, req, resp):
        row = self.kb.create(req.context.body, req.context.principal)
        req.context.audit_target = row.id
        ok(resp, article_json(row), status=201)


class ArticleItem:
    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    @operation(permission=AUTHENTICATED, summary="A knowledge article with its Markdown body", tags=KNOWLEDGE)
    def on_get(self, req, resp, article_id):
        ok(resp, article_json(self.kb.get(article_id, req.context.principal)))

    @operation(permission="knowledge.manage", summary="Change a knowledge article (reindexed in the same "
               "transaction)", body=s.ArticlePatch, tags=KNOWLEDGE, audit="knowledge.update")
    def on_patch(self, req, resp, article_id):
        row = self.kb.get(article_id, req.context.principal)
        ok(resp, article_json(self.kb.update(row, req.context.body.model_dump(exclude_unset=True))))

    @operation(permission="knowledge.manage", summary="Delete a knowledge article and its index entries",
               tags=KNOWLEDGE, audit="knowledge.delete")
    def on_delete(self, req, resp, article_id):
        self.kb.delete(self.kb.get(article_id, req.context.principal))
        ok(resp, None)


class KnowledgeSearch:
    def __init__(self, kb: KnowledgeBase):
        self.kb = kb

    @operation(permission=AUTHENTICATED, summary="Search the knowledge base (Chinese, English or mixed), best "
               "first, with highlighted plain-text snippets («» around matches)", query=s.SearchQuery,
               tags=KNOWLEDGE)
    def on_get(self, req, resp):
        q = req.context.query
        query, terms = self.kb.search(req.context.principal, q.q, kind=q.kind, tag=q.tag, drafts=q.drafts)

        def hit(row):
            title = snippet(row.title, terms, width=200)
            return article_json(row, full=False, score=int(row.score), matchedTerms=int(row.matched),
                                titleHighlighted=title["marked"], titleHighlights=title["highlights"],
                                snippet=snippet(row.body, terms))

        page = paginate(query, q, hit)
        page["terms"] = terms
        ok(resp, page)
