"""Thin Falcon resources of the library and the marketplace."""

from __future__ import annotations

import json
import re

from pydantic import Field

from rpahub_core.errors import BadRequest, Forbidden
from rpahub_core.web import ApiModel, PageQuery, ok, operation, paginate, parse_model, read_body

from .models import DOMAINS, App, AppRun, AppVersion, Subscription
from .params import ParameterSpec
from .service import Library

LIB, MARKET = ("library",), ("marketplace",)
DOMAIN_PATTERN = "^(" + "|".join(DOMAINS) + ")$"


# -- shapes ----------------------------------------------------------------------


class AppFields(ApiModel):
    description: str = Field("", max_length=20000)
    vendor: str = Field("", max_length=128)
    region: str = Field("", max_length=64, description="e.g. a province or city company")
    scenario: str = Field("", max_length=128, description="the business scenario, e.g. 发票校验")
    domain: str = Field("other", pattern=DOMAIN_PATTERN, description="business domain: " + ", ".join(DOMAINS))
    tags: list[str] = Field([], max_length=32)
    parameters: list[ParameterSpec] = Field([], max_length=100)
    maxAttempts: int | None = Field(None, ge=1, le=20, description="retry policy of the app's runs: attempts "
                                    "in all (default: the hub's [plugins.dispatch] max_attempts)")
    backoffSeconds: int | None = Field(None, ge=0, le=3600, description="first retry delay, doubled on each "
                                       "further attempt (default: [plugins.dispatch] backoff_s)")
    policy: str | None = Field(None, max_length=32, description="scheduling policy of the app's runs "
                               "(GET /api/v1/dispatch/policies; default: the pool's)")


class AppIn(AppFields):
    name: str = Field(min_length=1, max_length=128)


class AppPatch(ApiModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=20000)
    vendor: str | None = Field(None, max_length=128)
    region: str | None = Field(None, max_length=64)
    scenario: str | None = Field(None, max_length=128)
    domain: str | None = Field(None, pattern=DOMAIN_PATTERN)
    tags: list[str] | None = Field(None, max_length=32)
    parameters: list[ParameterSpec] | None = Field(None, max_length=100)
    maxAttempts: int | None = Field(None, ge=1, le=20, description="null: back to the hub's default")
    backoffSeconds: int | None = Field(None, ge=0, le=3600, description="null: back to the hub's default")
    policy: str | None = Field(None, max_length=32, description="null: back to the pool's")


class VersionIn(ApiModel):
    packageId: str = Field(max_length=32, description="a package already uploaded (POST /api/v1/packages)")
    version: str | None = Field(None, pattern=r"^[\w.+-]{1,64}$", description="default: the package's version")
    changelog: str = Field("", max_length=20000)


class Reason(ApiModel):
    reason: str = Field("", max_length=2000)


class DelistIn(ApiModel):
    reason: str = Field(min_length=1, max_length=2000, description="why it leaves the marketplace")


class LibraryQuery(PageQuery):
    q: str | None = Field(None, max_length=128)
    state: str | None = Field(None, pattern="^(draft|listed|delisted)$")
    owner: str | None = Field(None, max_length=64, description="owner user id; 'me' for mine")


class MarketQuery(PageQuery):
    q: str = Field("", max_length=200, description="words to find in name, tags, scenario, description, vendor")
    tag: list[str] = Field([], max_length=10, description="repeat for several: all must match")
    region: str | None = Field(None, max_length=64)
    scenario: str | None = Field(None, max_length=128)
    domain: str | None = Field(None, pattern=DOMAIN_PATTERN)
    vendor: str | None = Field(None, max_length=128)


class DiffQuery(ApiModel):
    base: str = Field(alias="from", max_length=64, description="version (id or label) to compare from")
    to: str = Field(max_length=64)


class RunIn(ApiModel):
    arguments: dict[str, str | int | float | bool | None] = Field({}, description="parameter name → value")
    executorId: str | None = Field(None, max_length=128)
    pool: str | None = Field(None, max_length=64)
    labels: list[str] = Field([], max_length=16)
    priority: int = Field(0, ge=-100, le=100)
    videoRecordRequired: bool = False
    videoRecordMode: int = Field(0, ge=0, le=1)


class AppRunQuery(PageQuery):
    state: str | None = Field(None, max_length=16)
    mine: bool = False


# -- serialisers -------------------------------------------------------------------


def app_json(app: App, **extra) -> dict:
    return {"id": app.id, "name": app.name, "description": app.description, "vendor": app.vendor,
            "region": app.region, "scenario": app.scenario, "domain": app.domain, "tags": json.loads(app.tags),
            "parameters": json.loads(app.parameters), "maxAttempts": app.max_attempts,
            "backoffSeconds": app.backoff_s, "policy": app.policy, "owner": {"id": app.owner_id, "name": app.owner_name},
            "state": app.state, "productionVersion": app.production_version, "requirementId": app.requirement_id,
            "listedAt": app.listed_at, "delistedAt": app.delisted_at, "delistReason": app.delist_reason,
            "createdAt": app.created_at, "updatedAt": app.updated_at, **extra}


def version_json(v: AppVersion) -> dict:
    return {"id": v.id, "appId": v.app_id, "version": v.version, "packageId": v.package_id, "sha256": v.sha256,
            "changelog": v.changelog, "state": v.state, "createdBy": v.created_by, "approvedBy": v.approved_by,
            "approvedAt": v.approved_at, "createdAt": v.created_at}


def market_json(app: App, production: AppVersion | None = None, **extra) -> dict:
    # extra wins: the page of one app counts its subscribers itself
    out = app_json(app, **{"subscribers": getattr(app, "subscribers", None), "runs30": getattr(app, "runs30", None),
                           **extra})
    if production is not None:
        out["production"] = version_json(production)
    return out


def run_trace(run_id: str) -> dict:
    """A run as its trace: state, executor, timeline, log count, recording (6.1.2d)."""
    from rpahub_plugins.executors.models import RunEvent, RunInstance, RunLog

    run = RunInstance.get_or_none(RunInstance.id == run_id)
    if run is None:
        return {"id": run_id, "state": "unknown"}
    return {"id": run.id, "state": run.state, "executorId": run.executor_id, "attempt": run.attempt,
            "arguments": json.loads(run.arguments), "outputs": json.loads(run.outputs or "{}"),
            "finishStatus": run.finish_status, "errorCode": run.error_code, "createdAt": run.created_at,
            "startedAt": run.started_at, "finishedAt": run.finished_at, "userName": run.user_name,
            "recording": {"videoId": run.video_id} if run.video_id else None,
            "timeline": [{"at": e.at, "state": e.state, "detail": e.detail}
                         for e in RunEvent.select().where(RunEvent.run == run.id).order_by(RunEvent.id)],
            "logCount": RunLog.select().where(RunLog.run == run.id).count(),
            "logs": f"/api/v1/runs/{run.id}/logs"}


# -- the library ---------------------------------------------------------------------


class Apps:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.read", summary="Apps in the library (all states)", query=LibraryQuery, tags=LIB)
    def on_get(self, req, resp):
        q, who = req.context.query, req.context.principal
        query = App.select().order_by(App.updated_at.desc(), App.id)
        if q.q:
            query = query.where(App.name.contains(q.q) | App.description.contains(q.q))
        if q.state:
            query = query.where(App.state == q.state)
        if q.owner:
            query = query.where(App.owner_id == (who.id if q.owner == "me" else q.owner))
        ok(resp, paginate(query, q, app_json))

    @operation(permission="apps.manage", summary="Create an app (a draft in the library; 6.2.2a)", body=AppIn,
               tags=LIB, audit="app.create", status=201)
    def on_post(self, req, resp):
        app = self.library.create(req.context.body.model_dump(), req.context.principal)
        req.context.audit_target = app.id
        ok(resp, app_json(app), status=201)


class AppItem:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.read", summary="An app with its versions and subscriber count", tags=LIB)
    def on_get(self, req, resp, app_id):
        app = self.library.get(app_id)
        versions = [version_json(v) for v in AppVersion.select().where(AppVersion.app == app.id)
                    .order_by(AppVersion.created_at.desc(), AppVersion.id)]
        ok(resp, app_json(app, versions=versions,
                          subscribers=Subscription.select().where(Subscription.app == app.id).count(),
                          runs=AppRun.select().where(AppRun.app == app.id).count()))

    @operation(permission="apps.manage", summary="Change an app's description, classification, parameters, or "
               "the retry and scheduling policy of its runs",
               body=AppPatch, tags=LIB, audit="app.update")
    def on_patch(self, req, resp, app_id):
        app = self.library.get(app_id)
        self.library.may_edit(app, req.context.principal)
        ok(resp, app_json(self.library.update(app, req.context.body.model_dump(exclude_unset=True))))


class Versions:
    def __init__(self, library: Library, max_bytes: int):
        self.library, self.max_bytes = library, max_bytes

    @operation(permission="apps.read", summary="An app's versions, newest first", query=PageQuery, tags=LIB)
    def on_get(self, req, resp, app_id):
        app = self.library.get(app_id)
        query = AppVersion.select().where(AppVersion.app == app.id).order_by(AppVersion.created_at.desc(),
                                                                             AppVersion.id)
        ok(resp, paginate(query, req.context.query, version_json))

    @operation(permission="apps.manage", summary="Add a version: upload a package (multipart: version, changelog, "
               "file) or name one already uploaded (JSON: packageId)", raw_body="multipart/form-data", tags=LIB,
               audit="app_version.add", status=201, transactional=False)
    def on_post(self, req, resp, app_id):
        from rpahub_plugins.executors.resources import read_multipart

        app, who = self.library.get(app_id), req.context.principal
        self.library.may_edit(app, who)
        if (req.content_type or "").startswith("application/json"):
            body = parse_model(VersionIn, read_body(req, 64 * 1024))
            row = self.library.add_version(app, who, package_id=body.packageId, version=body.version,
                                           changelog=body.changelog)
        else:
            fields, data = read_multipart(req, self.max_bytes)
            version = fields.get("version", "")
            if not re.fullmatch(r"[\w.+-]{1,64}", version):
                raise BadRequest("version: 1-64 letters, digits, '.', '+', '_' or '-'")
            if data is None:
                raise BadRequest("file: required")
            row = self.library.add_version(app, who, version=version, data=data,
                                           changelog=fields.get("changelog", "")[:20000])
        req.context.audit_target = f"{app.id}@{row.version}"
        ok(resp, version_json(row), status=201)


class VersionItem:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.read", summary="One version of an app", tags=LIB)
    def on_get(self, req, resp, app_id, version):
        app = self.library.get(app_id)
        ok(resp, version_json(self.library.version(app, version)))


class VersionSubmit:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.manage", summary="Ask a reviewer to put this version into production (SEC-5)",
               body=Reason, tags=LIB, audit="app_version.submit", status=201)
    def on_post(self, req, resp, app_id, version):
        app, who = self.library.get(app_id), req.context.principal
        self.library.may_edit(app, who)
        request = self.library.request_promotion(app, self.library.version(app, version), who,
                                                 req.context.body.reason)
        ok(resp, {"approvalRequestId": request.id, "state": request.state}, status=201)


class VersionDiff:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.read", summary="Compare two versions: files added, removed, changed, text diffs",
               query=DiffQuery, tags=LIB)
    def on_get(self, req, resp, app_id):
        app, q = self.library.get(app_id), req.context.query
        ok(resp, self.library.diff(app, self.library.version(app, q.base), self.library.version(app, q.to)))


class Publish:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.manage", summary="Ask a reviewer to list the app in the marketplace (上架)",
               body=Reason, tags=LIB, audit="app.publish_request", status=201)
    def on_post(self, req, resp, app_id):
        app, who = self.library.get(app_id), req.context.principal
        self.library.may_edit(app, who)
        request = self.library.request_publish(app, who, req.context.body.reason)
        ok(resp, {"approvalRequestId": request.id, "state": request.state}, status=201)


class Delist:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.manage", summary="Take the app out of the marketplace (下架); its runs stay "
               "traceable", body=DelistIn, tags=LIB, audit="app.delist")
    def on_post(self, req, resp, app_id):
        app = self.library.delist(self.library.get(app_id), req.context.principal, req.context.body.reason)
        ok(resp, app_json(app))


# -- the marketplace -------------------------------------------------------------------


class Market:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="Search the marketplace: text, tags, region, scenario, domain, "
               "vendor; ranked, with facets (6.1.1b)", query=MarketQuery, tags=MARKET)
    def on_get(self, req, resp):
        q, who = req.context.query, req.context.principal
        query = self.library.search(q=q.q, tags=q.tag, region=q.region, scenario=q.scenario, domain=q.domain,
                                    vendor=q.vendor)
        mine = set(Subscription.select(Subscription.app).where(Subscription.user_id == who.id).tuples())
        page = paginate(query, q, lambda app: market_json(app, subscribed=(app.id,) in mine))
        page["facets"] = self.library.facets(query)
        ok(resp, page)


class MarketItem:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="A listed app: description, parameters, version in production",
               tags=MARKET)
    def on_get(self, req, resp, app_id):
        app = self.library.listed(app_id)
        ok(resp, market_json(app, AppVersion.get_by_id(app.production_version),
                             subscribed=self.library.subscribed(app, req.context.principal),
                             subscribers=Subscription.select().where(Subscription.app == app.id).count()))


class MySubscription:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="Subscribe to a listed app (6.1.1c)", tags=MARKET,
               audit="app.subscribe")
    def on_put(self, req, resp, app_id):
        app = self.library.listed(app_id)
        row = self.library.subscribe(app, req.context.principal)
        ok(resp, {"appId": app.id, "subscribedAt": row.created_at})

    @operation(permission="apps.use", summary="Unsubscribe", tags=MARKET, audit="app.unsubscribe")
    def on_delete(self, req, resp, app_id):
        self.library.unsubscribe(self.library.get(app_id), req.context.principal)
        ok(resp, None)


class Subscriptions:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="The apps I subscribed to", query=PageQuery, tags=MARKET)
    def on_get(self, req, resp):
        who = req.context.principal
        query = (App.select(App, Subscription.created_at.alias("subscribed_at")).join(Subscription)
                 .where(Subscription.user_id == who.id).order_by(Subscription.created_at.desc()))
        ok(resp, paginate(query, req.context.query,
                          lambda app: app_json(app, subscribedAt=app.subscription.created_at)))


class AppRuns:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="Run the app online with arguments checked against its parameters "
               "(6.1.2a)", body=RunIn, tags=MARKET, audit="app.run", status=201)
    def on_post(self, req, resp, app_id):
        b = req.context.body
        run = self.library.run(app_id, req.context.principal, arguments=b.arguments, executor_id=b.executorId,
                               pool=b.pool, labels=b.labels, priority=b.priority,
                               video_required=b.videoRecordRequired, video_mode=b.videoRecordMode)
        req.context.audit_target = run.id
        ok(resp, run_trace(run.id), status=201)

    @operation(permission="apps.use", summary="Trace the app's runs: mine, or everyone's with runs.read (6.1.2d)",
               query=AppRunQuery, tags=MARKET)
    def on_get(self, req, resp, app_id):
        from rpahub_plugins.executors.models import RunInstance

        app, q, who = self.library.get(app_id), req.context.query, req.context.principal
        query = (AppRun.select(AppRun, RunInstance.state).join(RunInstance, on=(AppRun.run_id == RunInstance.id))
                 .where(AppRun.app == app.id).order_by(AppRun.created_at.desc(), AppRun.run_id))
        if q.mine or not who.can("runs.read"):
            query = query.where(AppRun.user_id == who.id)
        if q.state:
            query = query.where(RunInstance.state == q.state)
        ok(resp, paginate(query, q, lambda r: {"appId": app.id, "versionId": r.version_id,
                                                 **run_trace(r.run_id)}))


class AppRunItem:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="One run of the app: timeline, executor, logs, recording (6.1.2d)",
               tags=MARKET)
    def on_get(self, req, resp, app_id, run_id):
        who = req.context.principal
        row = AppRun.get_or_none((AppRun.run_id == run_id) & (AppRun.app == app_id))
        if row is None:
            self.library.get(app_id)
            raise BadRequest(f"run {run_id} was not started from app {app_id}")
        if row.user_id != who.id and not who.can("runs.read"):
            raise Forbidden("only your own runs (or permission runs.read)")
        ok(resp, {"appId": app_id, "versionId": row.version_id, **run_trace(run_id)})


class Download:
    def __init__(self, library: Library):
        self.library = library

    @operation(permission="apps.use", summary="Download the production package for a local executor (6.1.2b)",
               tags=MARKET, transactional=False, produces="application/zip")
    def on_get(self, req, resp, app_id):
        from rpahub_plugins.executors import state

        app, row = self.library.usable(app_id, req.context.principal)
        package = self.library.package_of(row)
        resp.content_type = "application/zip"
        resp.downloadable_as = f"{app.name}-{row.version}.zip"
        resp.set_header("X-Content-SHA256", package.file.sha256)
        resp.stream = state(self.library.hub).files.open(package.file)
        resp.content_length = package.file.size
