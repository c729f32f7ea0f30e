"""The RPA academy (6.4.3c): courses of ordered lessons, enrolment, and each learner's
progress. Completion is computed from the progress rows when read, so adding a lesson
to a course a learner finished makes it unfinished again, as it should."""

from __future__ import annotations

import json

from peewee import JOIN, fn

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, NotFound

from .content import published_or_404, publishing, tags_json
from .models import Course, Enrolment, Lesson, LessonProgress


def percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 1) if total else 0.0


class Academy:
    def __init__(self, hub):
        self.hub = hub

    # -- courses -----------------------------------------------------------------------

    def course(self, course_id: str, who: UserPrincipal) -> Course:
        return published_or_404(Course, course_id, who.can("content.manage"), "course")

    def create(self, data, who: UserPrincipal) -> Course:
        row = Course(title=data.title.strip(), summary=data.summary, description=data.description, level=data.level,
                     tags=tags_json(data.tags), author_id=who.id,
                     author_name=who.name)
        publishing(row, data.published)
        with hubdb.atomic():
            row.save(force_insert=True)
            for lesson in data.lessons:
                self._insert_lesson(row, lesson, None)
        return row

    def update(self, row: Course, changes: dict) -> Course:
        for field in ("summary", "description", "level"):
            if changes.get(field) is not None:
                setattr(row, field, changes[field])
        if changes.get("title") is not None:
            row.title = changes["title"].strip()
        if changes.get("tags") is not None:
            row.tags = tags_json(changes["tags"])
        publishing(row, changes.get("published"))
        row.updated_at = utcnow()
        row.save()
        return row

    def delete(self, row: Course) -> None:
        with hubdb.atomic():
            LessonProgress.delete().where(LessonProgress.course == row.id).execute()
            Enrolment.delete().where(Enrolment.course == row.id).execute()
            Lesson.delete().where(Lesson.course == row.id).execute()
            row.delete_instance()

    def search(self, who: UserPrincipal, *, q=None, tag=None, level=None, drafts=False):
        """Courses with their lesson count and total duration (one grouped query)."""
        query = (Course.select(Course, fn.COUNT(Lesson.id).alias("lesson_count"),
                               fn.COALESCE(fn.SUM(Lesson.duration_min), 0).alias("duration"))
                 .join(Lesson, join_type=JOIN.LEFT_OUTER, on=(Lesson.course == Course.id))
                 .group_by(Course.id))
        if not (drafts and who.can("content.manage")):
            query = query.where(Course.published == True)  # noqa: E712
        if q:
            query = query.where(Course.title.contains(q) | Course.summary.contains(q))
        if tag:
            query = query.where(Course.tags.contains(json.dumps(tag, ensure_ascii=False)))
        if level:
            query = query.where(Course.level == level)
        return query.order_by(Course.published_at.desc(nulls="LAST"), Course.title, Course.id)

    # -- lessons -------------------------------------------------------------------------

    def lessons(self, course: Course) -> list[Lesson]:
        return list(Lesson.select().where(Lesson.course == course.id).order_by(Lesson.position, Lesson.id))

    def lesson(self, course: Course, lesson_id: str) -> Lesson:
        row = Lesson.get_or_none((Lesson.id == lesson_id) & (Lesson.course == course.id))
        if row is None:
            raise NotFound(f"lesson {lesson_id} not found in course {course.id}")
        return row

    def add_lesson(self, course: Course, data) -> Lesson:
        with hubdb.atomic():
            row = self._insert_lesson(course, data, data.position)
            Course.update(updated_at=utcnow()).where(Course.id == course.id).execute()
        return row

    def _insert_lesson(self, course: Course, data, position: int | None) -> Lesson:
        self._check_video(data.videoFileId)
        row = Lesson.create(course=course.id, position=10**6, title=data.title.strip(), body=data.body,
                            video_file_id=data.videoFileId, duration_min=data.durationMin)
        self._place(course, row, position)
        return row

    def update_lesson(self, course: Course, row: Lesson, changes: dict) -> Lesson:
        with hubdb.atomic():
            if "videoFileId" in changes:
                self._check_video(changes["videoFileId"])
                row.video_file_id = changes["videoFileId"]
            if changes.get("title") is not None:
                row.title = changes["title"].strip()
            if changes.get("body") is not None:
                row.body = changes["body"]
            if changes.get("durationMin") is not None:
                row.duration_min = changes["durationMin"]
            row.updated_at = utcnow()
            row.save()
            if changes.get("position") is not None:
                self._place(course, row, changes["position"])
        return Lesson.get_by_id(row.id)

    def delete_lesson(self, course: Course, row: Lesson) -> None:
        with hubdb.atomic():
            LessonProgress.delete().where(LessonProgress.lesson == row.id).execute()
            row.delete_instance()
            self._place(course, None, None)

    def _place(self, course: Course, row: Lesson | None, position: int | None) -> None:
        """Renumber the course's lessons 1..n, putting ``row`` at ``position`` (1-based;
        None or past the end: last)."""
        others = [x.id for x in self.lessons(course) if row is None or x.id != row.id]
        if row is not None:
            at = len(others) if position is None else min(max(position, 1) - 1, len(others))
            others.insert(at, row.id)
        for i, lesson_id in enumerate(others, 1):
            Lesson.update(position=i).where(Lesson.id == lesson_id).execute()

    @staticmethod
    def _check_video(file_id: str | None) -> None:
        from rpahub_plugins.executors.models import StoredFile

        if file_id and not StoredFile.select().where(StoredFile.id == file_id).exists():
            raise BadRequest(f"videoFileId: no file {file_id}; upload it first")

    # -- learning -------------------------------------------------------------------------

    def enrolment(self, course: Course, who: UserPrincipal) -> Enrolment | None:
        return Enrolment.get_or_none((Enrolment.course == course.id) & (Enrolment.user_id == who.id))

    def enrol(self, course: Course, who: UserPrincipal) -> Enrolment:
        with hubdb.atomic():
            row = self.enrolment(course, who)
            if row is None:
                row = Enrolment.create(course=course.id, user_id=who.id, user_name=who.name)
                self.hub.publish("course.enrolled", courseId=course.id, userId=who.id)
        return row

    def leave(self, course: Course, who: UserPrincipal) -> None:
        with hubdb.atomic():
            if not Enrolment.delete().where((Enrolment.course == course.id) & (Enrolment.user_id == who.id)
                                            ).execute():
                raise NotFound(f"you are not enrolled in {course.title}")
            LessonProgress.delete().where((LessonProgress.course == course.id)
                                          & (LessonProgress.user_id == who.id)).execute()

    def complete(self, course: Course, lesson: Lesson, who: UserPrincipal, done: bool = True) -> None:
        with hubdb.atomic():
            if self.enrolment(course, who) is None:
                raise Conflict(f"enrol in {course.title} first (PUT /api/v1/academy/courses/{course.id}/enrolment)")
            mark = (LessonProgress.lesson == lesson.id) & (LessonProgress.user_id == who.id)
            if not done:
                LessonProgress.delete().where(mark).execute()
            elif not LessonProgress.select().where(mark).exists():
                LessonProgress.create(lesson=lesson.id, course=course.id, user_id=who.id)
                total = Lesson.select().where(Lesson.course == course.id).count()
                finished = LessonProgress.select().where((LessonProgress.course == course.id)
                                                         & (LessonProgress.user_id == who.id)).count()
                if finished == total:
                    self.hub.publish("course.completed", courseId=course.id, userId=who.id)

    def progress(self, course: Course, who: UserPrincipal, lessons: list[Lesson] | None = None) -> dict:
        lessons = self.lessons(course) if lessons is None else lessons
        enrolment = self.enrolment(course, who)
        done = dict(LessonProgress.select(LessonProgress.lesson, LessonProgress.completed_at).where(
            (LessonProgress.course == course.id) & (LessonProgress.user_id == who.id)).tuples())
        finished = sum(1 for x in lessons if x.id in done)
        complete = bool(lessons) and finished == len(lessons)
        return {"enrolled": enrolment is not None, "enrolledAt": enrolment.enrolled_at if enrolment else None,
                "completedLessons": finished, "totalLessons": len(lessons),
                "percent": percent(finished, len(lessons)), "completed": complete,
                "completedAt": max(done.values()) if complete else None,
                "lessons": {x.id: done.get(x.id) for x in lessons}}

    def my_courses(self, who: UserPrincipal):
        """My enrolments with each course's lesson count and my completed lessons."""
        total = Lesson.select(fn.COUNT(Lesson.id)).where(Lesson.course == Course.id)
        done = LessonProgress.select(fn.COUNT(LessonProgress.id)).where(
            (LessonProgress.course == Course.id) & (LessonProgress.user_id == who.id))
        return (Course.select(Course, Enrolment.enrolled_at.alias("enrolled_at"), total.alias("lesson_count"),
                              done.alias("done_count"))
                .join(Enrolment, on=(Enrolment.course == Course.id))
                .where(Enrolment.user_id == who.id).order_by(Enrolment.enrolled_at.desc(), Course.id).objects())
