"""PostgreSQL storage for several workers and nodes (``postgresql://...``).

psycopg 3 cooperates with gevent once the worker has patched the standard library,
so no psycogreen shim is needed.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlparse

from playhouse.pool import PooledPostgresqlDatabase

from rpahub_core import hookimpl


def parse_url(url: str) -> dict:
    parts = urlparse(url)
    params = {
        "database": (parts.path or "/").lstrip("/") or None,
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
    }
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    # libpq parameters in the query: ?sslmode=require&options=-csearch_path%3Dhub
    params.update(parse_qsl(parts.query))
    return params


@hookimpl
def rpahub_open_database(settings):
    url = settings.database_url
    if not url.startswith(("postgresql://", "postgres://")):
        return None
    params = parse_url(url)
    database = params.pop("database")
    if not database:
        from rpahub_core.config import ConfigError

        raise ConfigError("database.url: name the database (postgresql://user@host:5432/<database>)")
    return PooledPostgresqlDatabase(
        database,
        max_connections=settings.database.max_connections,
        stale_timeout=300,
        timeout=10,
        prefer_psycopg3=True,
        **params,
    )
