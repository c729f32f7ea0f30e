"""Application sharing (6.1) and the artifact library (6.2.2a, SEC-3, SEC-5).

Apps carry their classification (region, scenario, business domain, vendor, tags) and
a parameter schema; their versions are executors packages, so there is one package
store. A version runs in production only after a second person approved it (its
``rpahub_admit_run`` refuses to queue any other version of an app outside the test
pool); an app enters the marketplace only through an approved publish request. An app
may carry its own retry and scheduling policy, which every run of its versions uses.
"""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import add_columns, create_tables

from . import resources
from .models import MODELS, App
from .service import PROMOTE, PUBLISH, Library


def library(hub) -> Library:
    if "share" not in hub.state:
        hub.state["share"] = Library(hub)
    return hub.state["share"]


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("share", 1, create_tables(*MODELS), "apps, versions, subscriptions, app runs")
    migrations.add("share", 2, add_columns(App, "max_attempts", "backoff_s", "policy"),
                   "retry and scheduling policy per app")


@hookimpl
def rpahub_admit_run(submission, hub):
    return library(hub).admit(**submission)


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("apps.read", "See the artifact library: every app, version and diff")
    permissions.add("apps.manage", "Create apps, add versions, ask for review and listing, delist one's apps")
    permissions.add("apps.review", "Approve versions into production and apps into the marketplace")
    permissions.add("apps.use", "Search the marketplace, subscribe, run and download apps")


@hookimpl
def rpahub_approval_kinds(kinds):
    kinds.add(PROMOTE, "apps.review", "Put an app version into production (peer review, SEC-5)",
              lambda request, hub: library(hub).apply_promotion(request, hub),
              on_reject=lambda request, hub: library(hub).refuse_promotion(request, hub))
    kinds.add(PUBLISH, "apps.review", "List an app in the marketplace (上架)",
              lambda request, hub: library(hub).apply_publish(request, hub))


@hookimpl
def rpahub_register_routes(routes, hub):
    from rpahub_plugins.executors import state

    lib = library(hub)
    routes.add("/api/v1/apps", resources.Apps(lib))
    routes.add("/api/v1/apps/{app_id}", resources.AppItem(lib))
    routes.add("/api/v1/apps/{app_id}/versions", resources.Versions(lib, state(hub).files.max_bytes))
    routes.add("/api/v1/apps/{app_id}/versions/{version}", resources.VersionItem(lib))
    routes.add("/api/v1/apps/{app_id}/versions/{version}/submit", resources.VersionSubmit(lib))
    routes.add("/api/v1/apps/{app_id}/diff", resources.VersionDiff(lib))
    routes.add("/api/v1/apps/{app_id}/publish", resources.Publish(lib))
    routes.add("/api/v1/apps/{app_id}/delist", resources.Delist(lib))
    routes.add("/api/v1/market", resources.Market(lib))
    routes.add("/api/v1/market/{app_id}", resources.MarketItem(lib))
    routes.add("/api/v1/market/{app_id}/subscription", resources.MySubscription(lib))
    routes.add("/api/v1/market/{app_id}/runs", resources.AppRuns(lib))
    routes.add("/api/v1/market/{app_id}/runs/{run_id}", resources.AppRunItem(lib))
    routes.add("/api/v1/market/{app_id}/package", resources.Download(lib))
    routes.add("/api/v1/subscriptions", resources.Subscriptions(lib))
