"""Dispatch center (6.5.1a, 6.5.1c, 6.5.2b): the run queue, pools, policies, failover with
checkpoint resume and retries. Needs the ``executors`` plugin, whose services it drives."""

from __future__ import annotations

import logging

from pydantic import Field

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.errors import NotFound
from rpahub_core.migrations import add_columns, create_tables
from rpahub_core.web import ApiModel, PageQuery, ok, operation, paginate
from rpahub_plugins.executors.resources import ArgumentIn

from .models import MODELS, Pool, PoolMember, QueueEntry, RunPlan
from .service import Dispatcher

log = logging.getLogger("rpahub.dispatch")

DEFAULTS = {"tick_s": 1.0, "max_attempts": 3, "backoff_s": 10, "max_backoff_s": 600,
            "business_error_codes": [20000, 29999]}


def dispatcher(hub) -> Dispatcher:
    if "dispatch" not in hub.state:
        from rpahub_plugins.executors import state

        settings = {**DEFAULTS, **hub.settings.plugin("dispatch")}
        hub.state["dispatch"] = Dispatcher(hub, state(hub), settings)
    return hub.state["dispatch"]


# -- API --------------------------------------------------------------------------------


class DispatchIn(ApiModel):
    packageId: str
    executorId: str | None = Field(None, description="one executor, or")
    pool: str | None = Field(None, description="any member of a pool, or")
    labels: list[str] = Field([], description="any executor carrying all these labels (none: any executor)")
    supplier: str | None = Field(None, description="only this vendor's executors")
    policy: str | None = Field(None, description="least_loaded, round_robin, affinity (default: the pool's)")
    priority: int = Field(0, ge=-100, le=100)
    maxAttempts: int | None = Field(None, ge=1, le=20)
    backoffSeconds: int | None = Field(None, ge=0, le=3600)
    arguments: list[ArgumentIn] = []
    videoRecordRequired: bool = False
    videoRecordMode: int = Field(0, ge=0, le=1)


class PoolIn(ApiModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = Field("", max_length=256)
    policy: str = "least_loaded"
    members: list[str] = []
    labels: list[str] = Field([], description="executors carrying all these labels are members too")


class PoolPut(ApiModel):
    description: str = Field("", max_length=256)
    policy: str = "least_loaded"
    members: list[str] = []
    labels: list[str] = []


def pool_json(p: Pool) -> dict:
    import json

    return {"name": p.name, "description": p.description, "policy": p.policy, "labels": json.loads(p.labels),
            "members": sorted(m.executor_id for m in p.members), "createdAt": p.created_at}


def entry_json(e: QueueEntry) -> dict:
    import json

    return {"runId": e.run_id, "executorId": e.executor_id, "pool": e.pool, "labels": json.loads(e.labels),
            "supplier": e.supplier, "policy": e.policy, "priority": e.priority, "notBefore": e.not_before,
            "enqueuedAt": e.enqueued_at, "previousExecutor": e.previous_executor}


class Dispatch:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="runs.start", summary="Queue a run for an executor, a pool or a label set (6.5.1a)",
               body=DispatchIn, tags=("dispatch",), audit="run.dispatch", status=201)
    def on_post(self, req, resp):
        from rpahub_plugins.executors.resources import run_json

        b, who = req.context.body, req.context.principal
        run = dispatcher(self.hub).submit(
            package_id=b.packageId, user_id=who.id, user_name=who.name,
            arguments=[a.model_dump() for a in b.arguments], executor_id=b.executorId, pool=b.pool,
            labels=b.labels, supplier=b.supplier, policy=b.policy, priority=b.priority,
            max_attempts=b.maxAttempts, backoff_s=b.backoffSeconds, video_required=b.videoRecordRequired,
            video_mode=b.videoRecordMode)
        req.context.audit_target = run.id
        ok(resp, run_json(run), status=201)


class Queue:
    @operation(permission="runs.read", summary="Runs waiting for an executor, in the order they will be placed",
               query=PageQuery, tags=("dispatch",))
    def on_get(self, req, resp):
        query = QueueEntry.select().order_by(QueueEntry.priority.desc(), QueueEntry.enqueued_at)
        ok(resp, paginate(query, req.context.query, entry_json))


class Policies:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="executors.read", summary="Scheduling policies a pool or a dispatch may name",
               tags=("dispatch",))
    def on_get(self, req, resp):
        from rpahub_plugins.sched_policies import POLICIES

        d = dispatcher(self.hub)
        extra = [p for p in self.hub.settings.plugin("dispatch").get("policies", []) if d._known_policy(p)]
        ok(resp, [{"name": name, "description": (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""}
                  for name, fn in sorted(POLICIES.items())] + [{"name": p, "description": "plugin"} for p in extra])


class Pools:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="executors.read", summary="Executor pools", query=PageQuery, tags=("dispatch",))
    def on_get(self, req, resp):
        ok(resp, paginate(Pool.select().order_by(Pool.name), req.context.query, pool_json))

    @operation(permission="pools.manage", summary="Create a pool (members may mix vendors)", body=PoolIn,
               tags=("dispatch",), audit="pool.create", status=201)
    def on_post(self, req, resp):
        b = req.context.body
        pool = dispatcher(self.hub).set_pool(b.name, description=b.description, policy=b.policy,
                                             members=b.members, labels=b.labels, create=True)
        req.context.audit_target = pool.name
        ok(resp, pool_json(pool), status=201)


class PoolItem:
    def __init__(self, hub):
        self.hub = hub

    def _get(self, name):
        pool = Pool.get_or_none(Pool.name == name)
        if pool is None:
            raise NotFound(f"pool {name} not found")
        return pool

    @operation(permission="executors.read", summary="One pool", tags=("dispatch",))
    def on_get(self, req, resp, name):
        ok(resp, pool_json(self._get(name)))

    @operation(permission="pools.manage", summary="Replace a pool's policy, members and labels", body=PoolPut,
               tags=("dispatch",), audit="pool.update")
    def on_put(self, req, resp, name):
        b = req.context.body
        ok(resp, pool_json(dispatcher(self.hub).set_pool(name, description=b.description, policy=b.policy,
                                                         members=b.members, labels=b.labels, create=False)))

    @operation(permission="pools.manage", summary="Delete a pool (queued runs for it keep waiting)",
               tags=("dispatch",), audit="pool.delete")
    def on_delete(self, req, resp, name):
        pool = self._get(name)
        PoolMember.delete().where(PoolMember.pool == pool).execute()
        pool.delete_instance()
        ok(resp, None)


# -- hooks ---------------------------------------------------------------------------------


@hookimpl
def rpahub_config_defaults():
    return {"dispatch": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("dispatch", 1, create_tables(*MODELS), "pools, members, queue, run plans")
    migrations.add("dispatch", 2, add_columns(RunPlan, "decided_attempt"), "retry decisions recorded per attempt")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("pools.manage", "Create and change executor pools")


@hookimpl
def rpahub_register_routes(routes, hub):
    routes.add("/api/v1/dispatch", Dispatch(hub))
    routes.add("/api/v1/dispatch/queue", Queue())
    routes.add("/api/v1/dispatch/policies", Policies(hub))
    routes.add("/api/v1/pools", Pools(hub))
    routes.add("/api/v1/pools/{name}", PoolItem(hub))


@hookimpl
def rpahub_on_event(event, hub):
    d = dispatcher(hub)
    d.index.on_event(event.topic, event.data)
    if event.topic == "run.finished":
        with hubdb.connection():
            d.on_finished(event.data["runId"], event.data["status"], event.data.get("errorCode"),
                          stop_requested=event.data.get("stopRequested", False))
    elif event.topic in ("run.pending", "executor.online", "run.retrying", "run.completed"):
        d.wake()


@hookimpl
def rpahub_startup(hub):
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call tick() themselves
    import gevent
    import gevent.event

    d = dispatcher(hub)
    d.wake_event = gevent.event.Event()
    tick_s = float(hub.settings.plugin("dispatch").get("tick_s", DEFAULTS["tick_s"]))

    def loop():
        while True:
            d.wake_event.wait(timeout=tick_s)
            d.wake_event.clear()
            try:
                with hubdb.connection():
                    d.tick()
            except Exception as exc:  # one bad tick never stops dispatching
                hubdb.log_failure(log, "dispatch tick", exc)
                gevent.sleep(1)

    hub.state["dispatch.loop"] = gevent.spawn(loop)


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("dispatch.loop", None)
    if loop is not None:
        loop.kill()
