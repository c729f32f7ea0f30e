"""The operations center (T/CES 130-2022, 6.4): analytics behind the big screen
(6.4.1), customer service for app problems (6.4.2), and content: news and cases, hot
apps, the RPA academy and the knowledge base with a search that works for Chinese
(6.4.3). It reads the tables of share and executors, and of design and designers when
those plugins are installed."""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .academy import Academy
from .analytics import Analytics
from .content import Newsroom
from .feedback import ACTIONS, Desk
from .knowledge import KnowledgeBase
from .models import MODELS

SERVICES = {"analytics": Analytics, "desk": Desk, "news": Newsroom, "academy": Academy, "knowledge": KnowledgeBase}


def service(hub, name: str):
    """The hub's instance of one of the operations services (``SERVICES``)."""
    key = f"operations.{name}"
    if key not in hub.state:
        hub.state[key] = SERVICES[name](hub)
    return hub.state[key]


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("operations", 1, create_tables(*MODELS),
                   "feedback and its history, news, courses and progress, knowledge articles and search terms")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("analytics.read", "See the operations big screen and the run and scenario analyses")
    permissions.add("feedback.submit", "Report problems with apps; accept or reopen what one reported")
    permissions.add("feedback.handle", "Take and resolve reported problems; see all feedback")
    permissions.add("feedback.read", "See all feedback and its history")
    permissions.add("feedback.manage", "Close any feedback (administrators)")
    permissions.add("content.manage", "Write and publish news, cases and academy courses")
    permissions.add("academy.learn", "Enrol in academy courses and record one's progress")
    permissions.add("knowledge.manage", "Write, publish and delete knowledge-base articles")


@hookimpl
def rpahub_register_routes(routes, hub):
    analytics, desk = service(hub, "analytics"), service(hub, "desk")
    news, academy, kb = service(hub, "news"), service(hub, "academy"), service(hub, "knowledge")
    routes.add("/api/v1/analytics/overview", resources.Overview(analytics))
    routes.add("/api/v1/analytics/runs", resources.RunAnalysis(analytics))
    routes.add("/api/v1/analytics/scenarios", resources.ScenarioAnalysis(analytics))

    routes.add("/api/v1/feedback", resources.FeedbackList(desk))
    routes.add("/api/v1/feedback/handlers", resources.FeedbackHandlers(desk))
    routes.add("/api/v1/feedback/{feedback_id}", resources.FeedbackItem(desk))
    routes.add("/api/v1/feedback/{feedback_id}/comments", resources.FeedbackComments(desk))
    for action in ACTIONS:
        routes.add(f"/api/v1/feedback/{{feedback_id}}/{action}", resources.feedback_transition(desk, action))

    routes.add("/api/v1/news", resources.NewsList(news))
    routes.add("/api/v1/news/{news_id}", resources.NewsEntry(news))
    routes.add("/api/v1/hot-apps", resources.HotApps())

    routes.add("/api/v1/academy/courses", resources.Courses(academy))
    routes.add("/api/v1/academy/courses/{course_id}", resources.CourseItem(academy))
    routes.add("/api/v1/academy/courses/{course_id}/lessons", resources.Lessons(academy))
    routes.add("/api/v1/academy/courses/{course_id}/lessons/{lesson_id}", resources.LessonItem(academy))
    routes.add("/api/v1/academy/courses/{course_id}/lessons/{lesson_id}/video", resources.LessonVideo(academy))
    routes.add("/api/v1/academy/courses/{course_id}/lessons/{lesson_id}/progress",
               resources.MyLessonProgress(academy))
    routes.add("/api/v1/academy/courses/{course_id}/enrolment", resources.MyEnrolment(academy))
    routes.add("/api/v1/academy/enrolments", resources.MyCourses(academy))

    routes.add("/api/v1/knowledge/articles", resources.Articles(kb))
    routes.add("/api/v1/knowledge/articles/{article_id}", resources.ArticleItem(kb))
    routes.add("/api/v1/knowledge/search", resources.KnowledgeSearch(kb))
