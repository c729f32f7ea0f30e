"""Embedded storage: SQLite in WAL mode, the default (``sqlite:///path``)."""

from __future__ import annotations

from pathlib import Path

from playhouse.pool import PooledSqliteDatabase

from rpahub_core import hookimpl

PRAGMAS = (
    ("journal_mode", "wal"),
    # NORMAL in WAL mode loses nothing when the process dies (kill -9); only a power
    # cut can lose the last transactions. Deployers who need more set FULL.
    ("synchronous", "normal"),
    ("foreign_keys", 1),
    ("cache_size", -16000),
    ("temp_store", "memory"),
)


@hookimpl
def rpahub_config_defaults():
    return {"storage_sqlite": {"synchronous": "normal"}}


@hookimpl
def rpahub_open_database(settings):
    url = settings.database_url
    if not url.startswith("sqlite://"):
        return None
    path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else url[len("sqlite://"):]
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    options = settings.plugin("storage_sqlite")
    pragmas = [(k, options.get("synchronous", v)) if k == "synchronous" else (k, v) for k, v in PRAGMAS]
    return PooledSqliteDatabase(
        path,
        pragmas=pragmas,
        max_connections=settings.database.max_connections,
        stale_timeout=300,
        timeout=10,  # seconds to wait for a free pooled connection
        check_same_thread=False,
    )
