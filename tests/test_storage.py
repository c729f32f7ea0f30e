"""The storage suite: the same behaviour on SQLite (embedded default) and PostgreSQL."""

import datetime as dt

import peewee
import pytest

from rpahub_core import db as hubdb
from rpahub_core.db import BaseModel, utcnow
from rpahub_core.migrations import (
    MigrationRegistry,
    SchemaTooNew,
    SchemaVersion,
    add_columns,
    create_tables,
    migrate,
)
from rpahub_core.testing import make_app


class Note(BaseModel):
    title = peewee.CharField(unique=True)
    body = peewee.TextField(default="")
    at = peewee.DateTimeField(default=utcnow)


def test_built_in_components_are_migrated_and_recorded(app):
    with hubdb.connection():
        versions = {row.component: row.version for row in SchemaVersion.select()}
    assert versions == {"approvals": 1, "audit_log": 3, "auth_local": 1, "auth_oidc": 1, "autoscale": 1, "console": 1,
                        "design": 1, "designers": 1, "dispatch": 2, "executors": 3, "flows": 1, "images": 1,
                        "operations": 1, "ops": 2, "schedules": 1, "share": 2}


def test_migrations_run_forward_once_and_refuse_a_newer_database(app):
    calls = []
    registry = MigrationRegistry()
    registry.add("notes", 1, create_tables(Note), "notes table")

    def add_column(ctx):
        calls.append(2)
        from playhouse.migrate import migrate as pw_migrate

        pw_migrate(ctx.migrator.add_column("note", "tag", peewee.CharField(default="")))

    registry.add("notes", 2, add_column, "tag column")
    with hubdb.connection():
        assert migrate(registry) == ["notes #1: notes table", "notes #2: tag column"]
        assert migrate(registry) == []
        assert calls == [2]
        columns = {c.name for c in hubdb.database.get_columns("note")}
        assert {"title", "tag"} <= columns
        older = MigrationRegistry()
        older.add("notes", 1, create_tables(Note))
        with pytest.raises(SchemaTooNew):
            migrate(older)


def test_a_failing_step_leaves_no_trace(app):
    registry = MigrationRegistry()
    registry.add("notes", 1, create_tables(Note))

    def broken(ctx):
        ctx.sql("INSERT INTO note (title, body, at) VALUES ('x', '', '2024-01-01 00:00:00')")
        raise RuntimeError("step failed")

    registry.add("notes", 2, broken)
    with hubdb.connection():
        with pytest.raises(RuntimeError):
            migrate(registry)
        assert "note" not in hubdb.database.get_tables() or Note.select().count() == 0
        assert not SchemaVersion.select().where(SchemaVersion.component == "notes").exists()


@pytest.fixture
def notes(app):
    with hubdb.connection():
        hubdb.database.create_tables([Note])
        yield Note


def test_rollback_discards_and_after_commit_waits_for_commit(notes):
    seen = []
    with pytest.raises(ZeroDivisionError), hubdb.atomic():
        Note.create(title="lost")
        hubdb.after_commit(lambda: seen.append("lost"))
        raise ZeroDivisionError("abort")
    assert not Note.select().where(Note.title == "lost").exists()
    with hubdb.atomic():
        Note.create(title="kept")
        hubdb.after_commit(lambda: seen.append("kept"))
        assert seen == []
    assert seen == ["kept"]


def test_nested_transactions_are_savepoints(notes):
    with hubdb.atomic():
        Note.create(title="outer")
        with pytest.raises(peewee.IntegrityError), hubdb.atomic():
            Note.create(title="outer")  # unique violation inside the savepoint only
        Note.create(title="second")
    assert sorted(n.title for n in Note.select()) == ["outer", "second"]


def test_text_and_time_round_trip(notes):
    at = dt.datetime(2026, 3, 1, 8, 30, 15, 123000)
    Note.create(title="发票校验", body="营销系统智能客户归档 — ✓", at=at)
    row = Note.get(Note.title == "发票校验")
    assert row.body == "营销系统智能客户归档 — ✓"
    assert row.at == at


def test_readyz_reports_the_database(client):
    r = client.simulate_get("/readyz")
    assert r.status_code == 200 and r.json["resultValue"] == {"database": "ok"}


@pytest.mark.postgres
def test_readyz_fails_when_postgres_is_unreachable(tmp_path, pg_url):
    app = make_app(tmp_path / "home", pg_url)
    try:
        from falcon import testing

        client = testing.TestClient(app)
        assert client.simulate_get("/readyz").status_code == 200
        hubdb.database.close_all()
        hubdb.database.init(hubdb.database.database, host="127.0.0.1", port=1, connect_timeout=1)
        r = client.simulate_get("/readyz")
        assert r.status_code == 503 and r.json["successful"] is False
    finally:
        app.hub.close()


class Tagged(BaseModel):
    title = peewee.CharField()
    tag = peewee.CharField(default="")  # arrived in step 2


def test_a_new_column_step_works_on_new_and_old_databases(app):
    with hubdb.connection():
        # An old database: the table as step 1 made it, before the column existed.
        hubdb.database.execute_sql("CREATE TABLE tagged (id INTEGER PRIMARY KEY, title VARCHAR(255) NOT NULL)"
                                   if hubdb.is_sqlite() else
                                   "CREATE TABLE tagged (id SERIAL PRIMARY KEY, title VARCHAR(255) NOT NULL)")
        registry = MigrationRegistry()
        registry.add("tagged", 1, create_tables(Tagged))
        registry.add("tagged", 2, add_columns(Tagged, "tag"))
        assert migrate(registry) == ["tagged #1: create tagged", "tagged #2: add tag to tagged"]
        assert "tag" in {c.name for c in hubdb.database.get_columns("tagged")}
        # A new database: step 1 already has the column, step 2 must not fail.
        hubdb.database.execute_sql("DROP TABLE tagged")
        SchemaVersion.delete().where(SchemaVersion.component == "tagged").execute()
        assert len(migrate(registry)) == 2
