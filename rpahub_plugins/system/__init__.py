"""Health, readiness, Prometheus metrics, the OpenAPI document and the plugin list."""

from __future__ import annotations

import time

import falcon
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from rpahub_core import __version__, hookimpl
from rpahub_core import db as hubdb
from rpahub_core.errors import envelope
from rpahub_core.plugins import describe, load_adapters
from rpahub_core.web import ok, openapi_document, operation


class Health:
    def on_get(self, req, resp):
        resp.media = envelope({"status": "ok", "version": __version__})


class Ready:
    def on_get(self, req, resp):
        try:
            hubdb.database.execute_sql("SELECT 1").fetchone()
        except Exception as exc:  # any driver error means not ready
            resp.status = falcon.HTTP_503
            resp.media = envelope({"database": "unreachable"}, successful=False, hint=f"database: {type(exc).__name__}")
            return
        resp.media = envelope({"database": "ok"})


class Metrics:
    def __init__(self, hub):
        self.hub = hub

    def on_get(self, req, resp):
        resp.content_type = CONTENT_TYPE_LATEST
        resp.data = generate_latest(self.hub.metrics)


class OpenApi:
    def __init__(self, hub):
        self.hub = hub
        self._doc = None

    def on_get(self, req, resp):
        if self._doc is None:  # routes are fixed once the app is built
            self._doc = openapi_document(self.hub.routes, title="rpahub API", version=__version__)
        resp.media = self._doc


class PluginList:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="system.read", summary="Plugins, the hooks each implements, adapters and load failures",
               tags=("system",))
    def on_get(self, req, resp):
        adapters = load_adapters()
        ok(resp, {"plugins": describe(self.hub.pm), "adapters": sorted(adapters.loaded),
                  "adapterFailures": adapters.failures})


class RequestMetrics:
    """Count and time every request by route template and status class."""

    def __init__(self, hub):
        self.requests = Counter("rpahub_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=hub.metrics)
        self.latency = Histogram("rpahub_http_request_seconds", "HTTP request latency", ["route"],
                                 registry=hub.metrics,
                                 buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

    def process_request(self, req, resp):
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded):
        route = req.uri_template or "unmatched"
        self.requests.labels(req.method, route, f"{resp.status_code // 100}xx").inc()
        started = req.context.get("started")
        if started is not None:
            self.latency.labels(route).observe(time.perf_counter() - started)


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("system.read", "See plugins, adapters and the hub's configuration state")


@hookimpl
def rpahub_register_routes(routes, hub):
    routes.add("/healthz", Health())
    routes.add("/readyz", Ready())
    routes.add("/metrics", Metrics(hub))
    routes.add("/api/openapi.json", OpenApi(hub))
    routes.add("/api/v1/plugins", PluginList(hub))
    routes.add_middleware(RequestMetrics(hub))
