"""``/api/v1/pools/{name}/autoscale``: a pool's policy and what the autoscaler did."""

from __future__ import annotations

import peewee
from pydantic import Field

from rpahub_core.errors import NotFound
from rpahub_core.web import ApiModel, PageQuery, ok, operation, paginate

from .models import AutoscaleEvent, AutoscalePolicy

DAY_S = 86400


class PolicyIn(ApiModel):
    provider: str = Field("local", min_length=1, max_length=64, description="who starts the executors")
    min: int = Field(0, ge=0, le=1000, description="executors kept however idle")
    max: int = Field(1, ge=0, le=1000, description="executors at most")
    queuePerExecutor: int = Field(1, ge=1, le=10000,
                                  description="scale up when more runs than this wait per executor")
    maxWaitSeconds: int = Field(60, ge=0, le=DAY_S,
                                description="scale up when the oldest waiting run waited longer (0: never)")
    idleSeconds: int = Field(300, ge=0, le=DAY_S, description="stop executors without a run for this long")
    cooldownSeconds: int = Field(60, ge=0, le=DAY_S, description="at least this long between two actions")
    enabled: bool = True


def policy_json(p: AutoscalePolicy) -> dict:
    return {"pool": p.pool, "provider": p.provider, "min": p.min_size, "max": p.max_size,
            "queuePerExecutor": p.queue_per_executor, "maxWaitSeconds": p.max_wait_s, "idleSeconds": p.idle_s,
            "cooldownSeconds": p.cooldown_s, "enabled": p.enabled, "size": p.size,
            "lastActionAt": p.last_action_at, "updatedAt": p.updated_at}


def event_json(e: AutoscaleEvent) -> dict:
    return {"at": e.at, "pool": e.pool, "provider": e.provider, "from": e.from_size, "to": e.to_size,
            "reason": e.reason}


class Policies:
    @operation(permission="executors.read", summary="Every pool's autoscaling policy, its size and last decision",
               query=PageQuery, tags=("autoscale",))
    def on_get(self, req, resp):
        page = paginate(AutoscalePolicy.select().order_by(AutoscalePolicy.pool), req.context.query, policy_json)
        pools = [p["pool"] for p in page["items"]]
        latest = (AutoscaleEvent.select(AutoscaleEvent.pool, peewee.fn.MAX(AutoscaleEvent.id))
                  .where(AutoscaleEvent.pool.in_(pools)).group_by(AutoscaleEvent.pool))
        last = {e.pool: event_json(e) for e in AutoscaleEvent.select().where(
            AutoscaleEvent.id.in_([i for _, i in latest.tuples()]))} if pools else {}
        for item in page["items"]:
            item["lastEvent"] = last.get(item["pool"])
        ok(resp, page)


class Policy:
    def __init__(self, autoscaler):
        self.autoscaler = autoscaler

    @operation(permission="executors.read", summary="A pool's autoscaling policy and current size",
               tags=("autoscale",))
    def on_get(self, req, resp, name):
        policy = AutoscalePolicy.get_or_none(AutoscalePolicy.pool == name)
        if policy is None:
            raise NotFound(f"pool {name} has no autoscaling policy")
        ok(resp, policy_json(policy))

    @operation(permission="autoscale.manage", summary="Set a pool's autoscaling policy (6.5.2c)", body=PolicyIn,
               tags=("autoscale",), audit="pool.autoscale")
    def on_put(self, req, resp, name):
        b = req.context.body
        policy = self.autoscaler.set_policy(
            name, provider=b.provider, min_size=b.min, max_size=b.max, queue_per_executor=b.queuePerExecutor,
            max_wait_s=b.maxWaitSeconds, idle_s=b.idleSeconds, cooldown_s=b.cooldownSeconds, enabled=b.enabled)
        ok(resp, policy_json(policy))


class Events:
    @operation(permission="executors.read", summary="What the autoscaler did to a pool, newest first",
               query=PageQuery, tags=("autoscale",))
    def on_get(self, req, resp, name):
        query = AutoscaleEvent.select().where(AutoscaleEvent.pool == name).order_by(AutoscaleEvent.id.desc())
        ok(resp, paginate(query, req.context.query, event_json))
