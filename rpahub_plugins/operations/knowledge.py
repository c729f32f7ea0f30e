"""The knowledge base (6.4.3d): feature introductions, applicable scenarios and case
showcases, and a search that works for Chinese on SQLite and PostgreSQL alike.

Each article's title, tags and body are tokenised (:mod:`.textsearch`) into a posting
table, rewritten in the same transaction as the article, so the index never lags.
A query is tokenised the same way; articles are found with one indexed lookup and
ranked in SQL by the weight of the terms they contain (a term in the title counts
most, then tags, then the body), plus a bonus when the whole query appears as written,
times how many of the query's terms they contain.
"""

from __future__ import annotations

import datetime as dt
import json

import peewee
from peewee import fn

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict

from . import textsearch
from .content import published_or_404, tags_json
from .models import KnowledgeArticle, KnowledgeTerm

KINDS = ("feature", "scenario", "case")
TITLE, TAGS, BODY = 8, 4, 1
BODY_REPEATS = 3  # a term's body weight grows with repetition, up to this many
PHRASE_IN_TITLE, PHRASE_IN_BODY = 20, 6


def weights(title: str, tags: list[str], body: str) -> dict[str, int]:
    """Term → weight of one article."""
    out: dict[str, int] = {}
    for text, weight, cap in ((title, TITLE, 1), (" ".join(tags), TAGS, 1), (body, BODY, BODY_REPEATS)):
        for term, count in textsearch.index_terms(text).items():
            out[term] = out.get(term, 0) + weight * min(count, cap)
    return out


def manages(who: UserPrincipal) -> bool:
    return who.can("knowledge.manage")


class KnowledgeBase:
    def __init__(self, hub):
        self.hub = hub

    def get(self, article_id: str, who: UserPrincipal) -> KnowledgeArticle:
        return published_or_404(KnowledgeArticle, article_id, manages(who), "article")

    def create(self, data, who: UserPrincipal) -> KnowledgeArticle:
        app_ids = self._apps(data.appIds)
        with hubdb.atomic():
            row = KnowledgeArticle.create(kind=data.kind, title=data.title.strip(), body=data.body,
                                          tags=tags_json(data.tags),
                                          app_ids=json.dumps(app_ids), published=data.published,
                                          author_id=who.id, author_name=who.name)
            self._reindex(row)
        return row

    def update(self, row: KnowledgeArticle, changes: dict) -> KnowledgeArticle:
        with hubdb.atomic():
            seen = changes.get("ifUpdatedAt")
            if seen is not None:
                current = KnowledgeArticle.select(KnowledgeArticle.updated_at).where(
                    KnowledgeArticle.id == row.id).for_update().scalar() if hubdb.is_postgres() else row.updated_at
                if (seen.astimezone(dt.UTC).replace(tzinfo=None) if seen.tzinfo else seen) != current:
                    raise Conflict(f"ifUpdatedAt: the article was changed at {current.isoformat()}Z since you read it; "
                                   f"reload it and edit again")
            for field in ("kind", "body", "published"):
                if changes.get(field) is not None:
                    setattr(row, field, changes[field])
            if changes.get("title") is not None:
                row.title = changes["title"].strip()
            if changes.get("tags") is not None:
                row.tags = tags_json(changes["tags"])
            if changes.get("appIds") is not None:
                row.app_ids = json.dumps(self._apps(changes["appIds"]))
            row.updated_at = utcnow()
            row.save()
            self._reindex(row)
        return row

    def delete(self, row: KnowledgeArticle) -> None:
        with hubdb.atomic():
            KnowledgeTerm.delete().where(KnowledgeTerm.article == row.id).execute()
            row.delete_instance()

    @staticmethod
    def _apps(app_ids: list[str]) -> list[str]:
        from rpahub_plugins.share.models import App

        app_ids = list(dict.fromkeys(app_ids))
        known = {a for (a,) in App.select(App.id).where(App.id.in_(app_ids)).tuples()} if app_ids else set()
        for i, app_id in enumerate(app_ids):
            if app_id not in known:
                raise BadRequest(f"appIds.{i}: no app {app_id}")
        return app_ids

    @staticmethod
    def _reindex(row: KnowledgeArticle) -> None:
        KnowledgeTerm.delete().where(KnowledgeTerm.article == row.id).execute()
        postings = [{"term": term, "article": row.id, "weight": w}
                    for term, w in weights(row.title, json.loads(row.tags), row.body).items()]
        for start in range(0, len(postings), 500):  # bounded statements, whatever the body's size
            KnowledgeTerm.insert_many(postings[start:start + 500]).execute()

    # -- listing and searching ---------------------------------------------------------------

    def articles(self, who: UserPrincipal, *, kind=None, tag=None, app_id=None, drafts=False):
        query = KnowledgeArticle.select()
        if not (drafts and manages(who)):
            query = query.where(KnowledgeArticle.published == True)  # noqa: E712
        if kind:
            query = query.where(KnowledgeArticle.kind == kind)
        if tag:
            query = query.where(KnowledgeArticle.tags.contains(json.dumps(tag, ensure_ascii=False)))
        if app_id:
            query = query.where(KnowledgeArticle.app_ids.contains(json.dumps(app_id)))
        return query.order_by(KnowledgeArticle.updated_at.desc(), KnowledgeArticle.id)

    def search(self, who: UserPrincipal, q: str, *, kind=None, tag=None, drafts=False) -> tuple[peewee.Query, list]:
        """A query of (article, score, matched) best first, and the query's terms. Raises a
        400 when the text holds nothing searchable (only punctuation, say)."""
        terms = textsearch.query_terms(q)
        if not terms:
            raise BadRequest("q: nothing to search for (letters, digits or CJK characters)")
        phrase = " ".join(textsearch.normalise(q).split())
        A, T = KnowledgeArticle, KnowledgeTerm
        matched = fn.COUNT(T.term)
        # The phrase bonus is the same on each of an article's posting rows: counted once (MAX).
        bonus = (peewee.Case(None, [(A.title.contains(phrase), PHRASE_IN_TITLE)], 0)
                 + peewee.Case(None, [(A.body.contains(phrase), PHRASE_IN_BODY)], 0))
        # Times the number of query terms matched: an article holding every term of
        # "RPA 发票 OCR" outranks one holding two of them often.
        score = (fn.SUM(T.weight) + fn.MAX(bonus)) * matched
        query = (A.select(A, score.alias("score"), matched.alias("matched"))
                 .join(T, on=(T.article == A.id))
                 .where(T.term.in_(terms))
                 .group_by(A.id)
                 .having(matched >= textsearch.minimum_match(len(terms))))
        if not (drafts and manages(who)):
            query = query.where(A.published == True)  # noqa: E712
        if kind:
            query = query.where(A.kind == kind)
        if tag:
            query = query.where(A.tags.contains(json.dumps(tag, ensure_ascii=False)))
        return query.order_by(peewee.SQL("score").desc(), A.updated_at.desc(), A.id), terms
