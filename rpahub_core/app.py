"""The WSGI application: ``create_app(settings)`` for tests, ``get_app()`` for gunicorn.

One Falcon app serves people (``/api/v1/``), robots (the T/CES 130 protocol paths)
and WebSocket upgrades on the same port; every plugin adds its routes through
``rpahub_register_routes``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import logging
from typing import Any

import falcon
import falcon.media

from . import __version__
from . import db as hubdb
from .config import Settings, load_settings
from .errors import HubError, UnknownError, envelope
from .hub import Hub
from .permissions import AUTHENTICATED
from .plugins import get_plugin_manager
from .web import ANY_PRINCIPAL, ROBOT, ApiGuard, RouteParams, Routes

log = logging.getLogger("rpahub.app")


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:  # stored as naive UTC
            value = value.replace(tzinfo=dt.UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


dumps = functools.partial(json.dumps, ensure_ascii=False, separators=(",", ":"), default=_json_default)


class ConnectionPerRequest:
    """Give the pooled connection a request used back to the pool.

    Connecting is left to the first query (peewee's autoconnect), so routes that
    never touch the database, like /healthz, answer while it is down.
    """

    def process_response(self, req, resp, resource, req_succeeded):
        if not hubdb.database.is_closed():
            hubdb.database.close()


def _hub_error(req, resp, exc: HubError, params) -> None:
    resp.status = exc.status
    resp.media = exc.to_envelope()
    for name, value in exc.headers.items():
        resp.set_header(name, value)


def _http_error(req, resp, exc: falcon.HTTPError, params) -> None:
    resp.status = exc.status
    hint = exc.title if not exc.description else f"{exc.title}: {exc.description}"
    resp.media = envelope(None, successful=False, hint=hint)
    for name, value in (exc.headers or {}).items():
        resp.set_header(name, value)


def _unexpected(req, resp, exc: Exception, params) -> None:
    if isinstance(exc, falcon.HTTPError):
        return _http_error(req, resp, exc, params)
    if hubdb.is_database_error(exc):
        # Down, restarting, the pool exhausted, or a statement the database gave up on
        # (deadlock, timeout): the caller retries; nothing of it was acknowledged.
        if hubdb.unavailable(exc):
            hubdb.availability.report(log, "requests answered 503", exc)
        else:
            log.warning("database error on %s %s, answered 503: %s", req.method, req.path, exc)
        resp.status = falcon.HTTP_503
        resp.set_header("Retry-After", "5")
        resp.media = envelope(None, successful=False, hint="database unavailable; retry later")
        return
    log.exception("unexpected error on %s %s", req.method, req.path)
    _hub_error(req, resp, UnknownError("unexpected error (19999); the hub logged the details"), params)


class HubApp(falcon.App):
    """The Falcon app, carrying the hub it serves."""

    hub: Hub


def build_hub(settings: Settings | None = None, *, pm=None, environ=None) -> Hub:
    """Plugins, then settings (with their defaults), then the hub — not yet opened."""
    pm = pm or get_plugin_manager(environ=environ)
    if settings is None:
        defaults: dict[str, dict[str, Any]] = {}
        for result in pm.hook.rpahub_config_defaults():
            defaults.update(result or {})
        settings = load_settings(environ=environ, plugin_defaults=defaults)
    logging.basicConfig(level=settings.log.level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # gevent-websocket logs every request at INFO: an access log nobody asked for.
    logging.getLogger("geventwebsocket.handler").setLevel(max(logging.WARNING, logging.getLogger().level))
    return Hub(settings, pm)


def create_app(settings: Settings | None = None, *, pm=None, environ=None, hub: Hub | None = None) -> HubApp:
    """Open the hub and build its WSGI app; ``app.hub`` is the :class:`Hub`."""
    hub = hub or build_hub(settings, pm=pm, environ=environ)
    if hub.db is None:
        hub.open()
    routes = Routes()
    for impl in reversed(hub.pm.hook.rpahub_register_routes.get_hookimpls()):
        routes.current_plugin = impl.plugin_name
        args = {"routes": routes, "hub": hub}
        impl.function(*[args[name] for name in impl.argnames])
    special = {AUTHENTICATED, ROBOT, ANY_PRINCIPAL}
    for route, _method, op in routes.operations():
        for permission in op.permission if isinstance(op.permission, tuple) else (op.permission,):
            if permission and permission not in special and permission not in hub.permissions:
                raise ValueError(f"{route.path} needs undeclared permission {permission!r} ({route.plugin})")

    app = HubApp(
        middleware=[ConnectionPerRequest(), RouteParams(), ApiGuard(hub), *routes.middleware],
        media_type=falcon.MEDIA_JSON,
    )
    handler = falcon.media.JSONHandler(dumps=dumps)
    app.req_options.media_handlers.update({falcon.MEDIA_JSON: handler})
    app.resp_options.media_handlers.update({falcon.MEDIA_JSON: handler})
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _unexpected)
    app.add_error_handler(falcon.HTTPError, _http_error)
    app.add_error_handler(HubError, _hub_error)
    for route in routes.items:
        app.add_route(route.path, route.resource)
    hub.routes = routes
    hub.app = app  # the console calls the public API in-process, through the same guard
    hub.start()
    app.hub = hub
    return app


def get_app() -> HubApp:
    """Entry point for a WSGI server other than ``rpahub serve`` (``gunicorn
    'rpahub_core.app:get_app()'``): settings from ``rpahub.toml`` / ``RPAHUB_*``;
    first-run seeding is idempotent, so every worker may try it."""
    import sys

    hub = build_hub()
    hub.open()
    for notice in hub.prepare():
        print(notice, file=sys.stderr)
    return create_app(hub=hub)


__all__ = ["create_app", "get_app", "build_hub", "__version__"]
