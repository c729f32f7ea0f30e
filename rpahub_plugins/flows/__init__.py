"""Multi-task orchestration (T/CES 130-2022, 6.5.1b): flows whose tasks run through the
dispatcher in dependency order, each child receiving its parents' outputs."""

from __future__ import annotations

import logging

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import Flows

log = logging.getLogger("rpahub.flows")

# sweep_s: how often a hub process looks for runs whose completion it missed;
# grace_s: how long a finished run may wait for its run.completed before the sweep applies it.
DEFAULTS = {"sweep_s": 30, "grace_s": 30}


def flows(hub) -> Flows:
    if "flows" not in hub.state:
        hub.state["flows"] = Flows(hub)
    return hub.state["flows"]


@hookimpl
def rpahub_config_defaults():
    return {"flows": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("flows", 1, create_tables(*MODELS), "flows, tasks, edges, flow runs, task runs")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("flows.read", "See flows and their runs")
    permissions.add("flows.manage", "Create, change and delete flows")
    permissions.add("flows.run", "Start and cancel flow runs")


@hookimpl
def rpahub_register_routes(routes, hub):
    f = flows(hub)
    routes.add("/api/v1/flows", resources.FlowList(f))
    routes.add("/api/v1/flows/{flow_id}", resources.FlowItem(f))
    routes.add("/api/v1/flows/{flow_id}/runs", resources.FlowStart(f))
    routes.add("/api/v1/flow-runs", resources.FlowRunList())
    routes.add("/api/v1/flow-runs/{flow_run_id}", resources.FlowRunItem(f))
    routes.add("/api/v1/flow-runs/{flow_run_id}/cancel", resources.FlowRunCancel(f))


@hookimpl
def rpahub_on_event(event, hub):
    if event.topic == "run.completed":
        with hubdb.connection():
            flows(hub).on_run_completed(event.data["runId"], event.data.get("state", ""))
    elif event.topic in ("run.dispatched", "run.running", "run.retrying"):
        with hubdb.connection():
            flows(hub).on_run_progress(event.data["runId"])


@hookimpl
def rpahub_startup(hub):
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call sweep() themselves
    import gevent

    settings = {**DEFAULTS, **hub.settings.plugin("flows")}
    f = flows(hub)

    def loop():
        while True:
            gevent.sleep(float(settings["sweep_s"]))
            try:
                with hubdb.connection():
                    f.sweep(int(settings["grace_s"]))
            except Exception as exc:  # one bad sweep never stops the next
                hubdb.log_failure(log, "flow sweep", exc)

    hub.state["flows.loop"] = gevent.spawn(loop)


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("flows.loop", None)
    if loop is not None:
        loop.kill()
