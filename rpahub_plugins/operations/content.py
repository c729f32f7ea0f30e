"""News and cases of the RPA field (6.4.3a) and the hot apps of the marketplace (6.4.3b)."""

from __future__ import annotations

import datetime as dt
import json

import peewee
from peewee import fn

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import NotFound

from .models import NewsItem

HOT_SUBSCRIPTION_WEIGHT = 3  # a new subscriber says more about interest than one more run


def tags_json(tags) -> str:
    """Tags as stored: each once, in the order given."""
    return json.dumps(list(dict.fromkeys(tags)), ensure_ascii=False)


def published_or_404(model, row_id: str, can_see_drafts: bool, what: str):
    """The row, if it is published or the reader may see drafts; a draft does not exist for readers."""
    row = model.get_or_none(model.id == row_id)
    if row is None or (not row.published and not can_see_drafts):
        raise NotFound(f"{what} {row_id} not found")
    return row


def publishing(row, published: bool | None) -> None:
    """Set the published flag; the first publication stamps ``published_at`` and keeps it."""
    if published is None:
        return
    row.published = published
    if published and row.published_at is None:
        row.published_at = utcnow()


class Newsroom:
    def __init__(self, hub):
        self.hub = hub

    def get(self, news_id: str, who: UserPrincipal) -> NewsItem:
        return published_or_404(NewsItem, news_id, who.can("content.manage"), "news item")

    def create(self, data, who: UserPrincipal) -> NewsItem:
        row = NewsItem(kind=data.kind, title=data.title.strip(), summary=data.summary, body=data.body,
                       region=data.region, tags=tags_json(data.tags),
                       author_id=who.id, author_name=who.name)
        publishing(row, data.published)
        with hubdb.atomic():
            row.save(force_insert=True)
            if row.published:
                self.hub.publish("news.published", newsId=row.id, kind=row.kind)
        return row

    def update(self, row: NewsItem, changes: dict) -> NewsItem:
        was = row.published
        for field in ("kind", "summary", "body", "region"):
            if changes.get(field) is not None:
                setattr(row, field, changes[field])
        if changes.get("title") is not None:
            row.title = changes["title"].strip()
        if changes.get("tags") is not None:
            row.tags = tags_json(changes["tags"])
        publishing(row, changes.get("published"))
        row.updated_at = utcnow()
        with hubdb.atomic():
            row.save()
            if row.published and not was:
                self.hub.publish("news.published", newsId=row.id, kind=row.kind)
        return row

    def delete(self, row: NewsItem) -> None:
        row.delete_instance()

    def search(self, who: UserPrincipal, *, kind=None, region=None, tag=None, q=None, drafts=False):
        query = NewsItem.select()
        if not (drafts and who.can("content.manage")):
            query = query.where(NewsItem.published == True)  # noqa: E712
        if kind:
            query = query.where(NewsItem.kind == kind)
        if region:
            query = query.where(NewsItem.region == region)
        if tag:
            query = query.where(NewsItem.tags.contains(json.dumps(tag, ensure_ascii=False)))
        if q:
            query = query.where(NewsItem.title.contains(q) | NewsItem.summary.contains(q))
        # Published first by publication date; drafts (no date) after, newest edit first.
        return query.order_by(NewsItem.published_at.desc(nulls="LAST"), NewsItem.updated_at.desc(), NewsItem.id)


def hot_apps(*, days: int, limit: int, region: str | None = None, domain: str | None = None) -> list[dict]:
    """Listed apps ranked by use over the last ``days``: score = runs + 3 × new subscriptions,
    with the figures that make it, so the ranking explains itself."""
    from rpahub_plugins.share.models import App, AppRun, Subscription

    since = utcnow() - dt.timedelta(days=days)
    runs = fn.COALESCE(AppRun.select(fn.COUNT(AppRun.run_id)).where(
        (AppRun.app == App.id) & (AppRun.created_at >= since)), 0)
    new_subs = fn.COALESCE(Subscription.select(fn.COUNT(Subscription.id)).where(
        (Subscription.app == App.id) & (Subscription.created_at >= since)), 0)
    subscribers = Subscription.select(fn.COUNT(Subscription.id)).where(Subscription.app == App.id)
    score = runs + new_subs * HOT_SUBSCRIPTION_WEIGHT
    query = (App.select(App.id, App.name, App.description, App.region, App.scenario, App.domain, App.vendor,
                        App.tags, runs.alias("runs"), new_subs.alias("new_subs"), subscribers.alias("subscribers"),
                        score.alias("score"))
             .where((App.state == "listed") & (score > 0)))
    if region:
        query = query.where(App.region == region)
    if domain:
        query = query.where(App.domain == domain)
    rows = query.order_by(peewee.SQL("score").desc(), App.name).limit(limit).dicts()
    return [{"rank": i, "appId": r["id"], "name": r["name"], "description": r["description"],
             "region": r["region"], "scenario": r["scenario"], "domain": r["domain"], "vendor": r["vendor"],
             "tags": json.loads(r["tags"]), "score": int(r["score"]), "runs": int(r["runs"]),
             "newSubscriptions": int(r["new_subs"]), "subscribers": int(r["subscribers"] or 0)}
            for i, r in enumerate(rows, 1)]
