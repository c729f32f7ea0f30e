"""Schedules (6.1.2c, 计划任务): runs of a package on a recurrence — every N minutes, hours,
days, weeks or months, within a date range, a daily window and chosen weekdays, in the
schedule's timezone — with misfire handling and at most one run per occurrence.
Runs go through the ``dispatch`` plugin."""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import DEFAULTS, schedules
from .ticker import make_ticker, run_forever


@hookimpl
def rpahub_config_defaults():
    return {"schedules": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("schedules", 1, create_tables(*MODELS), "schedules and their handled occurrences")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("schedules.read", "See schedules, their next occurrences and what they fired")
    permissions.add("schedules.manage", "Create, change, enable, disable and delete schedules")


@hookimpl
def rpahub_register_routes(routes, hub):
    service = schedules(hub)
    routes.add("/api/v1/schedules", resources.Schedules(service))
    routes.add("/api/v1/schedules/preview", resources.RulePreview(service))
    routes.add("/api/v1/schedules/{schedule_id}", resources.ScheduleItem(service))
    routes.add("/api/v1/schedules/{schedule_id}/preview", resources.SchedulePreview(service))
    routes.add("/api/v1/schedules/{schedule_id}/occurrences", resources.ScheduleOccurrences(service))


@hookimpl
def rpahub_startup(hub):
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call fire_due(now) themselves
    import gevent

    tick_s = float(hub.settings.plugin("schedules").get("tick_s", DEFAULTS["tick_s"]))
    ticker = make_ticker(schedules(hub).tick, tick_s)
    hub.state["schedules.ticker"] = gevent.spawn(run_forever, ticker, gevent.sleep)


@hookimpl
def rpahub_shutdown(hub):
    ticker = hub.state.pop("schedules.ticker", None)
    if ticker is not None:
        ticker.kill()
