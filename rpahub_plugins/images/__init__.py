"""Executor and designer images (T/CES 130-2022, 6.2.2b; 6.3.2e): versioned image files,
and instances started, described and recycled by cloud providers.

Providers come from the ``rpahub_cloud_providers`` hook; ``local`` is built in
(:mod:`.local`): it starts executor images as reference executors and designer images as
local designers, on this machine.
"""

from __future__ import annotations

import logging

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import Images

log = logging.getLogger("rpahub.images")

DEFAULTS = {
    "local_supplier": "images-local",  # the supplier admitting executors started from images
    "local_python": "",  # default: the hub's own interpreter
    "local_hub_url": "",  # where local instances reach the hub; default: its public URL
    "local_heartbeat_s": 0,  # default: the executors plugin's heartbeat_s
    "local_folder": "images",  # under hub.home: work folders and logs of local instances
    "local_env": {},  # extra environment for local instances
    "stop_grace_s": 10.0,  # after SIGTERM, before SIGKILL
}


def settings(hub) -> dict:
    return {**DEFAULTS, **hub.settings.plugin("images")}


def images(hub) -> Images:
    if "images" not in hub.state:
        hub.state["images"] = Images(hub, settings(hub))
    return hub.state["images"]


def local_cloud(hub):
    if "images.local" not in hub.state:
        from .local import LocalCloud

        hub.state["images.local"] = LocalCloud(hub, settings(hub))
    return hub.state["images.local"]


@hookimpl
def rpahub_config_defaults():
    return {"images": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("images", 1, create_tables(*MODELS), "images, image versions, instances")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("images.read", "See images, their versions and instances; download image files")
    permissions.add("images.manage", "Create images, upload versions, start and recycle instances")


@hookimpl
def rpahub_cloud_providers(hub):
    return [local_cloud(hub)]


@hookimpl
def rpahub_register_routes(routes, hub):
    from rpahub_plugins.executors import state

    i, files = images(hub), state(hub).files
    routes.add("/api/v1/images", resources.ImageList(i))
    routes.add("/api/v1/images/{image_id}", resources.ImageItem(i))
    routes.add("/api/v1/images/{image_id}/versions", resources.VersionList(i, files))
    routes.add("/api/v1/images/{image_id}/diff", resources.VersionDiff(i))
    routes.add("/api/v1/images/{image_id}/versions/{version}", resources.VersionItem(i))
    routes.add("/api/v1/images/{image_id}/versions/{version}/file", resources.VersionFile(i, files))
    routes.add("/api/v1/images/{image_id}/versions/{version}/start", resources.VersionStart(i))
    routes.add("/api/v1/instances", resources.InstanceList())
    routes.add("/api/v1/instances/{instance_id}", resources.InstanceItem(i))
    routes.add("/api/v1/instances/{instance_id}/recycle", resources.InstanceRecycle(i))


@hookimpl
def rpahub_startup(hub):
    """Settle local instances a previous run of the hub left behind: their processes died
    with it, and a designer among them must not stay registered (and leasable)."""
    import socket

    from rpahub_core import db as hubdb

    from .models import Instance
    from .service import LIVE

    try:
        with hubdb.connection():
            stale = [i.id for i in Instance.select(Instance.id).where(
                Instance.state.in_(LIVE) & (Instance.provider == "local") & (Instance.host == socket.gethostname()))]
            for instance_id in stale:
                images(hub).describe(instance_id)
    except Exception:  # never keep the hub from starting
        log.exception("could not settle the local instances of a previous run")


@hookimpl
def rpahub_shutdown(hub):
    local = hub.state.get("images.local")
    if local is not None:
        local.stop_all()
