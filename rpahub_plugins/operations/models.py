"""Tables of the operations center: feedback and its history, news and cases, the
academy's courses and each learner's progress, and the knowledge base with its
search postings."""

from __future__ import annotations

import peewee

from rpahub_core.db import BaseModel, new_id, utcnow

# -- customer service (6.4.2) --------------------------------------------------------


class Feedback(BaseModel):
    """A problem someone reported about an app (or a run of one), and how it was handled."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    app_id = peewee.CharField(max_length=32, null=True, index=True)
    run_id = peewee.CharField(max_length=32, null=True, index=True)
    title = peewee.CharField(max_length=200)
    description = peewee.TextField(default="")
    category = peewee.CharField(max_length=16, default="bug")
    severity = peewee.CharField(max_length=16, default="normal")
    attachments = peewee.TextField(default="[]")  # JSON list of StoredFile ids
    reporter_id = peewee.CharField(max_length=64, index=True)
    reporter_name = peewee.CharField(max_length=128)
    state = peewee.CharField(max_length=16, default="open", index=True)
    assignee_id = peewee.CharField(max_length=64, null=True, index=True)
    assignee_name = peewee.CharField(max_length=128, null=True)
    resolution = peewee.TextField(default="")
    version = peewee.IntegerField(default=1)  # bumped by every transition: two handlers cannot both win
    created_at = peewee.DateTimeField(default=utcnow, index=True)
    updated_at = peewee.DateTimeField(default=utcnow, index=True)
    resolved_at = peewee.DateTimeField(null=True)
    accepted_at = peewee.DateTimeField(null=True)
    closed_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "operations_feedback"


class FeedbackEvent(BaseModel):
    """One line of a feedback's history: a transition or a comment, who and when."""

    id = peewee.BigAutoField()
    feedback = peewee.ForeignKeyField(Feedback, on_delete="CASCADE", backref="events")
    kind = peewee.CharField(max_length=16)  # transition | comment
    action = peewee.CharField(max_length=16, default="")
    from_state = peewee.CharField(max_length=16, default="")
    to_state = peewee.CharField(max_length=16, default="")
    comment = peewee.TextField(default="")
    actor_id = peewee.CharField(max_length=64)
    actor_name = peewee.CharField(max_length=128)
    at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_feedback_event"


# -- content (6.4.3a) ------------------------------------------------------------------


class NewsItem(BaseModel):
    """News of the RPA field or a case story. The body is Markdown, stored and served as
    written: rendering (and escaping) is the reader's business, never the hub's."""

    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    kind = peewee.CharField(max_length=8, default="news", index=True)  # news | case
    title = peewee.CharField(max_length=200)
    summary = peewee.TextField(default="")
    body = peewee.TextField(default="")
    region = peewee.CharField(max_length=64, default="", index=True)
    tags = peewee.TextField(default="[]")
    published = peewee.BooleanField(default=False, index=True)
    published_at = peewee.DateTimeField(null=True, index=True)
    author_id = peewee.CharField(max_length=64)
    author_name = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_news"


# -- the academy (6.4.3c) ----------------------------------------------------------------


class Course(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    title = peewee.CharField(max_length=200)
    summary = peewee.TextField(default="")
    description = peewee.TextField(default="")  # Markdown
    level = peewee.CharField(max_length=16, default="beginner")
    tags = peewee.TextField(default="[]")
    published = peewee.BooleanField(default=False, index=True)
    published_at = peewee.DateTimeField(null=True)
    author_id = peewee.CharField(max_length=64)
    author_name = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_course"


class Lesson(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    course = peewee.ForeignKeyField(Course, on_delete="CASCADE", backref="lessons")
    position = peewee.IntegerField()  # lessons are taken in this order
    title = peewee.CharField(max_length=200)
    body = peewee.TextField(default="")  # Markdown
    video_file_id = peewee.CharField(max_length=32, null=True)
    duration_min = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_lesson"
        indexes = ((("course", "position"), False),)


class Enrolment(BaseModel):
    course = peewee.ForeignKeyField(Course, on_delete="CASCADE", backref="enrolments")
    user_id = peewee.CharField(max_length=64, index=True)
    user_name = peewee.CharField(max_length=128)
    enrolled_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_enrolment"
        indexes = ((("course", "user_id"), True),)


class LessonProgress(BaseModel):
    lesson = peewee.ForeignKeyField(Lesson, on_delete="CASCADE", backref="progress")
    course = peewee.ForeignKeyField(Course, on_delete="CASCADE")
    user_id = peewee.CharField(max_length=64)
    completed_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_lesson_progress"
        indexes = ((("lesson", "user_id"), True), (("course", "user_id"), False))


# -- the knowledge base (6.4.3d) -----------------------------------------------------------


class KnowledgeArticle(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=32, default=new_id)
    kind = peewee.CharField(max_length=16, default="feature", index=True)  # feature | scenario | case
    title = peewee.CharField(max_length=200)
    body = peewee.TextField(default="")  # Markdown
    tags = peewee.TextField(default="[]")
    app_ids = peewee.TextField(default="[]")  # related apps
    published = peewee.BooleanField(default=False, index=True)
    author_id = peewee.CharField(max_length=64)
    author_name = peewee.CharField(max_length=128)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "operations_knowledge_article"


class KnowledgeTerm(BaseModel):
    """The search posting list: one row per (term, article). ``weight`` sums where the
    term occurs (title, tags, body), so one index lookup both finds and ranks."""

    term = peewee.CharField(max_length=64)
    article = peewee.ForeignKeyField(KnowledgeArticle, on_delete="CASCADE", backref="terms")
    weight = peewee.IntegerField()

    class Meta:
        table_name = "operations_knowledge_term"
        primary_key = peewee.CompositeKey("term", "article")
        indexes = ((("article",), False),)


MODELS = (Feedback, FeedbackEvent, NewsItem, Course, Lesson, Enrolment, LessonProgress, KnowledgeArticle,
          KnowledgeTerm)
