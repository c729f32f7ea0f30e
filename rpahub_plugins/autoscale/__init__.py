"""Elastic scaling of executor pools (T/CES 130-2022 6.5.2c).

A policy per pool says how many executors it may have and when to add or remove
them; the autoscaler turns the pool's queue and idleness into a desired size and
lets the providers (``rpahub_scale_pool``) act. ``local`` is built in; see
:mod:`.local` for what a provider implements.
"""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from .models import MODELS

DEFAULTS = {
    "tick_s": 5.0,  # how often the greenlet evaluates every policy under the real server
    "providers": [],  # provider names other plugins implement, besides "local"
    "local_max_executors": 16,  # a policy of the local provider may not ask for more
    "local_supplier": "autoscale-local",
    "local_transport": "ws",
    "local_hub_url": "",  # default: the hub's public URL
    "local_heartbeat_s": 0,  # default: the executors plugin's heartbeat_s
    "local_folder": "autoscale",  # under hub.home: work folders and logs of the executors
    "local_env": {},  # extra environment for the executors
    "drain_s": 2.0,  # out of the pool this long before SIGTERM, so a placement in flight lands first
    "stop_grace_s": 20.0,  # then SIGKILL
    "restart_delay_s": 5.0,  # before replacing an executor that died on its own
}


def settings(hub) -> dict:
    return {**DEFAULTS, **hub.settings.plugin("autoscale")}


def autoscaler(hub):
    if "autoscale" not in hub.state:
        from .service import Autoscaler

        hub.state["autoscale"] = Autoscaler(hub, settings(hub))
    return hub.state["autoscale"]


def local_provider(hub):
    if "autoscale.local" not in hub.state:
        from .local import LocalProvider

        hub.state["autoscale.local"] = LocalProvider(hub, settings(hub))
    return hub.state["autoscale.local"]


@hookimpl
def rpahub_config_defaults():
    return {"autoscale": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("autoscale", 1, create_tables(*MODELS), "autoscale policies and events")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("autoscale.manage", "Set the autoscaling policies of executor pools")


@hookimpl
def rpahub_register_routes(routes, hub):
    from .resources import Events, Policies, Policy

    routes.add("/api/v1/autoscale", Policies())
    routes.add("/api/v1/pools/{name}/autoscale", Policy(autoscaler(hub)))
    routes.add("/api/v1/pools/{name}/autoscale/events", Events())


@hookimpl
def rpahub_scale_pool(pool, desired, hub):
    if getattr(pool, "provider", None) != "local":
        return None
    return local_provider(hub).scale(pool, desired)


@hookimpl
def rpahub_on_event(event, hub):
    if event.topic == "run.pending":  # a queue may have grown: look now, not at the next tick
        autoscaler(hub).wake()


@hookimpl
def rpahub_startup(hub):
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call evaluate() themselves
    from .ticker import spawn

    tick_s = float(settings(hub)["tick_s"])
    hub.state["autoscale.loop"] = spawn(hub, autoscaler(hub), tick_s, lambda: hub.state.get("autoscale.local"))


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("autoscale.loop", None)
    if loop is not None:
        loop.kill()
    local = hub.state.get("autoscale.local")
    if local is not None:
        local.stop_all()
