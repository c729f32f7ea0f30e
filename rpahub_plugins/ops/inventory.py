"""Cloud resources (6.3.2e): the hosts executors and designers run on, with their state.

Sources, each optional:

* the instances of the ``images`` plugin, started by the providers of the
  ``rpahub_cloud_providers`` hook (their host, state and last VM information);
* executors: on the host of the instance they were started from (robot id
  ``img-<instance id>``), else on the host a ``host:<name>`` label names, else under
  ``(unknown host)``;
* designers: on the host of their instance, else the host of their endpoint URL.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from urllib.parse import urlparse

from rpahub_plugins.executors.models import Executor

log = logging.getLogger("rpahub.ops.inventory")

UNKNOWN = "(unknown host)"
LIVE = ("starting", "running")


def providers_of(hub) -> list:
    found = []
    for group in hub.pm.hook.rpahub_cloud_providers(hub=hub):
        found.extend(group or ())
    return found


def _label_host(labels: str) -> str | None:
    for label in json.loads(labels or "[]"):
        if isinstance(label, str) and label.startswith("host:") and label[5:]:
            return label[5:]
    return None


class Inventory:
    def __init__(self, hub):
        self.hub = hub

    def instances(self, *, refresh: bool, include_stopped: bool) -> tuple[list, list[str]]:
        """Instance rows (refreshed through their providers when asked) and any problems."""
        if self.hub.pm.get_plugin("images") is None:
            return [], []
        from rpahub_plugins.images import images
        from rpahub_plugins.images.models import Instance

        problems = []
        if refresh:
            service = images(self.hub)
            for (instance_id,) in Instance.select(Instance.id).where(Instance.state.in_(LIVE)).tuples():
                try:
                    service.describe(instance_id)
                except Exception as exc:  # one provider's trouble must not hide the others' hosts
                    problems.append(f"instance {instance_id}: {getattr(exc, 'hint', None) or exc}")
        query = Instance.select().order_by(Instance.started_at.desc())
        if not include_stopped:
            query = query.where(Instance.state.in_(LIVE))
        return list(query), problems

    def designers(self) -> list:
        if self.hub.pm.get_plugin("designers") is None:
            return []
        from rpahub_plugins.designers.models import Designer

        return list(Designer.select().order_by(Designer.name))

    def snapshot(self, *, refresh: bool = False, include_stopped: bool = False) -> dict:
        instances, problems = self.instances(refresh=refresh, include_stopped=include_stopped)
        host_of_instance = {i.id: i.host or UNKNOWN for i in instances}
        if self.hub.pm.get_plugin("images") is not None:  # stopped instances still place their executors
            from rpahub_plugins.images.models import Instance

            host_of_instance.update({i: h or UNKNOWN for i, h in Instance.select(Instance.id, Instance.host).tuples()
                                     if i not in host_of_instance})
        hosts: dict[str, dict] = defaultdict(lambda: {"instances": [], "executors": [], "designers": []})
        for i in instances:
            info = json.loads(i.info or "{}")
            hosts[i.host or UNKNOWN]["instances"].append({
                "id": i.id, "image": i.image_name, "version": i.version, "kind": i.kind, "provider": i.provider,
                "state": i.state, "startedAt": i.started_at, "stoppedAt": i.stopped_at, "updatedAt": i.updated_at,
                "address": info.get("address") or info.get("endpoint"), "cpu": info.get("cpu"),
                "memoryMb": info.get("memoryMb"), "pid": info.get("pid")})
        for e in Executor.select().order_by(Executor.id):
            instance_id = e.id[4:] if e.id.startswith("img-") else None
            host = host_of_instance.get(instance_id) if instance_id else None
            host = host or _label_host(e.labels) or UNKNOWN
            hosts[host]["executors"].append({"id": e.id, "supplier": e.supplier_id, "state": e.state,
                                             "version": e.version, "lastHeartbeat": e.last_heartbeat,
                                             "instanceId": instance_id if instance_id in host_of_instance else None})
        for d in self.designers():
            host = host_of_instance.get(d.instance_id) if d.instance_id else None
            host = host or urlparse(d.endpoint).hostname or UNKNOWN
            hosts[host]["designers"].append({"id": d.id, "name": d.name, "vendor": d.vendor, "enabled": d.enabled,
                                             "endpoint": d.endpoint, "instanceId": d.instance_id})
        out = [host_json(name, h) for name, h in hosts.items()]
        out.sort(key=lambda h: (h["host"] == UNKNOWN, h["host"]))
        totals = {"hosts": len([h for h in out if h["host"] != UNKNOWN]),
                  "instances": _count(i["state"] for h in out for i in h["instances"]),
                  "executors": _count(e["state"] for h in out for e in h["executors"]),
                  "designers": sum(len(h["designers"]) for h in out)}
        return {"providers": sorted({p.name for p in providers_of(self.hub)}), "hosts": out, "totals": totals,
                "problems": problems}


def _count(states) -> dict:
    counts: dict[str, int] = defaultdict(int)
    for s in states:
        counts[s] += 1
    return dict(sorted(counts.items()))


def host_json(name: str, h: dict) -> dict:
    instances, executors = _count(i["state"] for i in h["instances"]), _count(e["state"] for e in h["executors"])
    return {"host": name, "state": host_state(h), "counts": {"instances": instances, "executors": executors,
                                                              "designers": len(h["designers"])}, **h}


def host_state(h: dict) -> str:
    """``up``: everything on it answers; ``degraded``: some of it does not; ``down``: nothing
    does; ``idle``: it carries only designers, or stopped instances."""
    alive = [i["state"] in LIVE for i in h["instances"]] + [e["state"] != "offline" for e in h["executors"]]
    if not alive:
        return "idle"
    if all(alive):
        return "up"
    return "degraded" if any(alive) else "down"
