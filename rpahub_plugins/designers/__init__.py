"""Cloud designers (T/CES 130-2022, 6.2.3): registration of designers (only registered,
enabled ones are used online) and their dispatch: idle designers are leased to people
and recycled when released, forced or expired.

Other plugins call :func:`designers` — ``designers(hub).register(...)`` returns the
designer and its one-time secret, ``designers(hub).deregister(designer_id)`` removes it.
"""

from __future__ import annotations

import logging

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import Designers

log = logging.getLogger("rpahub.designers")

# lease_minutes: a lease's length when the caller names none; max_lease_minutes: the longest one
# may ask for (allocate or renew); sweep_s: how often expired leases are recycled.
DEFAULTS = {"lease_minutes": 60, "max_lease_minutes": 480, "sweep_s": 30}


def settings(hub) -> dict:
    return {**DEFAULTS, **hub.settings.plugin("designers")}


def designers(hub) -> Designers:
    if "designers" not in hub.state:
        hub.state["designers"] = Designers(hub, settings(hub))
    return hub.state["designers"]


@hookimpl
def rpahub_config_defaults():
    return {"designers": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("designers", 1, create_tables(*MODELS), "registered designers and their leases")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("designers.manage", "Register, change and deregister designers; see and end anyone's lease")
    permissions.add("designers.use", "Lease a cloud designer, renew and release one's leases")


@hookimpl
def rpahub_register_routes(routes, hub):
    d = designers(hub)
    routes.add("/api/v1/designers", resources.DesignerList(d))
    routes.add("/api/v1/designers/allocate", resources.Allocate(d))
    routes.add("/api/v1/designers/{designer_id}", resources.DesignerItem(d))
    routes.add("/api/v1/designer-leases", resources.LeaseList())
    routes.add("/api/v1/designer-leases/{lease_id}/renew", resources.LeaseRenew(d))
    routes.add("/api/v1/designer-leases/{lease_id}/release", resources.LeaseRelease(d))
    routes.add("/api/v1/designer-session", resources.SessionCheck(d))


@hookimpl
def rpahub_startup(hub):
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call sweep() themselves
    import gevent

    every = float(settings(hub)["sweep_s"])
    d = designers(hub)

    def loop():
        while True:
            gevent.sleep(every)
            try:
                with hubdb.connection():
                    d.sweep()
            except Exception as exc:  # one bad sweep never stops the next
                hubdb.log_failure(log, "designer lease sweep", exc)

    hub.state["designers.loop"] = gevent.spawn(loop)


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("designers.loop", None)
    if loop is not None:
        loop.kill()
