"""Request shapes of the operations center; they validate input (errors name the field)
and feed the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, field_validator

from rpahub_core.errors import ValidationFailed
from rpahub_core.web import ApiModel, PageQuery
from rpahub_plugins.share.models import DOMAINS

from .analytics import MAX_SPAN_DAYS
from .feedback import CATEGORIES, SEVERITIES, STATES

DEFAULT_TZ = "Asia/Shanghai"
Tag = Field(min_length=1, max_length=64)
FileId = Field(min_length=1, max_length=32)


def clean_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    for tag in tags:
        if not tag.strip() or len(tag) > 64:
            raise ValueError("each tag: 1-64 characters, not blank")
    return [t.strip() for t in tags]


# Each tag trimmed, 1-64 characters, not blank.
Tags = Annotated[list[str], AfterValidator(clean_tags)]


def zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Asia/Shanghai)") from None
    return name


# -- analytics ---------------------------------------------------------------------------


class OverviewQuery(ApiModel):
    tz: str = Field(DEFAULT_TZ, max_length=64, description="IANA time zone deciding 'today' and the last 7 days")
    top: int = Field(5, ge=1, le=50, description="how many top apps")

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        return zone(v)


class RunsQuery(ApiModel):
    start: dt.date | None = Field(None, alias="from", description="first day (inclusive, in tz); default: 29 "
                                                                  "days before 'to'")
    end: dt.date | None = Field(None, alias="to", description="last day (inclusive, in tz); default: today")
    by: Literal["region", "scenario", "domain", "vendor", "app", "day"] = "domain"
    tz: str = Field(DEFAULT_TZ, max_length=64, description="IANA time zone deciding day boundaries")
    region: str | None = Field(None, max_length=64)
    scenario: str | None = Field(None, max_length=128)
    domain: str | None = Field(None, pattern="^(" + "|".join(DOMAINS) + ")$")
    vendor: str | None = Field(None, max_length=128)
    appId: str | None = Field(None, max_length=32)

    @field_validator("tz")
    @classmethod
    def _zone(cls, v: str) -> str:
        return zone(v)

    def days(self) -> tuple[dt.date, dt.date]:
        """The inclusive range of days asked for, defaults filled, checked (400 naming the field)."""
        today = dt.datetime.now(ZoneInfo(self.tz)).date()
        end = self.end or (today if self.start is None else min(self.start + dt.timedelta(days=29), today))
        start = self.start or end - dt.timedelta(days=29)
        if start > end:
            raise ValidationFailed([{"field": "from", "message": f"{start} is after to ({end})"}])
        if (end - start).days + 1 > MAX_SPAN_DAYS:
            raise ValidationFailed([{"field": "to", "message": f"the range spans more than {MAX_SPAN_DAYS} days"}])
        return start, end


class ScenarioQuery(ApiModel):
    region: str | None = Field(None, max_length=64, description="one region only")


# -- feedback ----------------------------------------------------------------------------


class FeedbackIn(ApiModel):
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=20000)
    category: Literal[CATEGORIES] = "bug"  # type: ignore[valid-type]
    severity: Literal[SEVERITIES] = "normal"  # type: ignore[valid-type]
    appId: str | None = Field(None, max_length=32, description="the app it is about")
    runId: str | None = Field(None, max_length=32, description="the run that went wrong (names its app)")
    attachments: list[str] = Field([], max_length=10, description="file ids from POST /v1/file/file/upload")

    @field_validator("title")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be blank")
        return v


class FeedbackAction(ApiModel):
    comment: str = Field("", max_length=5000, description="resolve: the resolution; reopen: why")
    version: int | None = Field(None, description="the version you saw: refused (409) if it changed since")


class AssignIn(FeedbackAction):
    assigneeId: str | None = Field(None, max_length=64, description="a person holding feedback.handle "
                                                                    "(id or user name); default: yourself")


class CommentIn(ApiModel):
    text: str = Field(min_length=1, max_length=5000)


class FeedbackQuery(PageQuery):
    state: list[Literal[STATES]] = Field([], description="repeat for several")  # type: ignore[valid-type]
    appId: str | None = Field(None, max_length=32)
    mine: bool = Field(False, description="only what I reported")
    assignedToMe: bool = Field(False, description="only what is assigned to me")
    category: Literal[CATEGORIES] | None = None  # type: ignore[valid-type]
    severity: Literal[SEVERITIES] | None = None  # type: ignore[valid-type]


# -- news and cases --------------------------------------------------------------------------


class NewsIn(ApiModel):
    kind: Literal["news", "case"] = "news"
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field("", max_length=2000)
    body: str = Field("", max_length=200_000, description="Markdown, stored and returned as written")
    region: str = Field("", max_length=64)
    tags: Tags = Field([], max_length=20)
    published: bool = False


class NewsPatch(ApiModel):
    kind: Literal["news", "case"] | None = None
    title: str | None = Field(None, min_length=1, max_length=200)
    summary: str | None = Field(None, max_length=2000)
    body: str | None = Field(None, max_length=200_000)
    region: str | None = Field(None, max_length=64)
    tags: Tags | None = Field(None, max_length=20)
    published: bool | None = None


class NewsQuery(PageQuery):
    kind: Literal["news", "case"] | None = None
    region: str | None = Field(None, max_length=64)
    tag: str | None = Field(None, max_length=64)
    q: str | None = Field(None, max_length=128, description="part of the title or summary")
    drafts: bool = Field(False, description="include unpublished items (content.manage)")


class HotAppsQuery(ApiModel):
    days: int = Field(30, ge=1, le=365, description="the window: runs and new subscriptions in the last N days")
    limit: int = Field(10, ge=1, le=100)
    region: str | None = Field(None, max_length=64)
    domain: str | None = Field(None, pattern="^(" + "|".join(DOMAINS) + ")$")


# -- the academy -------------------------------------------------------------------------------


class LessonIn(ApiModel):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=200_000, description="Markdown")
    videoFileId: str | None = Field(None, max_length=32, description="an uploaded video's file id")
    durationMin: int = Field(0, ge=0, le=10_000, description="minutes")
    position: int | None = Field(None, ge=1, le=10_000, description="1-based place in the course; default: last")


class LessonPatch(ApiModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, max_length=200_000)
    videoFileId: str | None = Field(None, max_length=32)
    durationMin: int | None = Field(None, ge=0, le=10_000)
    position: int | None = Field(None, ge=1, le=10_000)


class CourseIn(ApiModel):
    title: str = Field(min_length=1, max_length=200)
    summary: str = Field("", max_length=2000)
    description: str = Field("", max_length=200_000, description="Markdown")
    level: Literal["beginner", "intermediate", "advanced"] = "beginner"
    tags: Tags = Field([], max_length=20)
    published: bool = False
    lessons: list[LessonIn] = Field([], max_length=200, description="in order")


class CoursePatch(ApiModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    summary: str | None = Field(None, max_length=2000)
    description: str | None = Field(None, max_length=200_000)
    level: Literal["beginner", "intermediate", "advanced"] | None = None
    tags: Tags | None = Field(None, max_length=20)
    published: bool | None = None


class CourseQuery(PageQuery):
    q: str | None = Field(None, max_length=128)
    tag: str | None = Field(None, max_length=64)
    level: Literal["beginner", "intermediate", "advanced"] | None = None
    drafts: bool = Field(False, description="include unpublished courses (content.manage)")


class ProgressIn(ApiModel):
    completed: bool = Field(True, description="false takes the mark back")


# -- the knowledge base ------------------------------------------------------------------------


class ArticleIn(ApiModel):
    kind: Literal["feature", "scenario", "case"] = "feature"
    title: str = Field(min_length=1, max_length=200)
    body: str = Field("", max_length=200_000, description="Markdown")
    tags: Tags = Field([], max_length=20)
    appIds: list[str] = Field([], max_length=50, description="related apps")
    published: bool = False


class ArticlePatch(ApiModel):
    kind: Literal["feature", "scenario", "case"] | None = None
    title: str | None = Field(None, min_length=1, max_length=200)
    body: str | None = Field(None, max_length=200_000)
    tags: Tags | None = Field(None, max_length=20)
    appIds: list[str] | None = Field(None, max_length=50)
    published: bool | None = None
    ifUpdatedAt: dt.datetime | None = Field(None, description="the article's updatedAt as read: refused (409) if "
                                            "someone changed it since, so two editors never overwrite each other")


class ArticleQuery(PageQuery):
    kind: Literal["feature", "scenario", "case"] | None = None
    tag: str | None = Field(None, max_length=64)
    appId: str | None = Field(None, max_length=32)
    drafts: bool = Field(False, description="include unpublished articles (knowledge.manage)")


class SearchQuery(PageQuery):
    q: str = Field(min_length=1, max_length=200, description="words or Chinese text; mixed is fine")
    kind: Literal["feature", "scenario", "case"] | None = None
    tag: str | None = Field(None, max_length=64)
    drafts: bool = Field(False, description="include unpublished articles (knowledge.manage)")
