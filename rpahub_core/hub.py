"""The hub: settings, plugins, database, bus and keys of one process.

Core code never calls ``pm.hook.x`` with loose arguments; it calls the typed methods
here, which also decide what happens when no plugin answers.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import uuid
from typing import Any

import pluggy
from prometheus_client import CollectorRegistry

from . import db as hubdb
from .auth import SYSTEM, Principal
from .bus import Bus, Event, InProcessBus
from .config import Settings
from .keys import Keys, ensure_keys
from .migrations import MigrationRegistry, migrate
from .permissions import PermissionCatalogue

log = logging.getLogger("rpahub")


class HubNotConfigured(RuntimeError):
    pass


class PluginFailed(RuntimeError):
    """A plugin's hook raised; the message names the plugin and the hook."""


class Hub:
    def __init__(self, settings: Settings, pm: pluggy.PluginManager):
        self.settings = settings
        self.pm = pm
        self.node_id = uuid.uuid4().hex[:12]
        self.keys = Keys(settings)
        self.permissions = PermissionCatalogue()
        self.migrations = MigrationRegistry()
        self.bus: Bus = InProcessBus()
        self.db = None
        self.routes = None
        self.app = None  # the WSGI app once built
        self.started = False
        # Per-plugin objects bound to this hub (a process may hold several in tests).
        self.state: dict[str, Any] = {}
        # Prometheus metrics of this process; plugins add their own collectors.
        self.metrics = CollectorRegistry(auto_describe=True)

    # -- life ----------------------------------------------------------------

    def open(self, *, migrate_schema: bool = True) -> Hub:
        """Open the database and collect the plugins' declarations (no background work)."""
        self.settings.home.mkdir(parents=True, exist_ok=True)
        ensure_keys(self.settings)
        database = self.pm.hook.rpahub_open_database(settings=self.settings)
        if database is None:
            raise HubNotConfigured(f"no storage plugin accepts {self.settings.redacted()['database']['url']}")
        hubdb.bind(database)
        self.db = database
        self.pm.hook.rpahub_migrations(migrations=self.migrations)
        self.pm.hook.rpahub_permissions(permissions=self.permissions)
        if migrate_schema:
            with hubdb.connection():
                for line in migrate(self.migrations):
                    log.info("migrated %s", line)
        return self

    def prepare(self) -> list[str]:
        """Seed first-run data (``rpahub_prepare``); return notices for the operator."""
        notices: list[str] = []
        with hubdb.connection():
            for result in reversed(self.pm.hook.rpahub_prepare(hub=self)):
                notices.extend(result or [])
        return notices

    def start(self) -> Hub:
        """Start this process's background work and event delivery."""
        self.bus = self.pm.hook.rpahub_make_bus(hub=self) or InProcessBus()
        self.bus.subscribe("", self._deliver_event)
        self.started = True
        try:
            list(self.each("rpahub_startup", hub=self))
        except BaseException:
            self.close()  # stop what the plugins before the failing one started
            raise
        return self

    def each(self, hook: str, *, isolate: bool = False, **kwargs: Any):
        """Call each implementation of ``hook`` (newest first), passing only the
        arguments it asks for; yield ``(impl, result)``. A failure names the plugin,
        or with ``isolate`` is logged and skipped."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                result = impl.function(*[kwargs[name] for name in impl.argnames])
            except Exception as exc:
                if isolate:
                    log.exception("plugin %s failed in %s", impl.plugin_name, hook)
                    continue
                raise PluginFailed(f"plugin {impl.plugin_name!r} failed in {hook}: {exc!r}") from exc
            yield impl, result

    def close(self) -> None:
        if self.started:
            self.started = False
            list(self.each("rpahub_shutdown", isolate=True, hub=self))
            self.bus.close()
        if self.db is not None and not self.db.is_closed():
            self.db.close()

    # -- events and audit ------------------------------------------------------

    def publish(self, topic: str, **data: Any) -> Event:
        """Publish an event once the current transaction (if any) commits."""
        event = Event(topic=topic, data=data, origin=self.node_id)
        hubdb.after_commit(lambda: self.bus.publish(event))
        return event

    def _deliver_event(self, event: Event) -> None:
        list(self.each("rpahub_on_event", isolate=True, event=event, hub=self))

    def audit(
        self,
        action: str,
        *,
        principal: Principal | None = None,
        target: str = "",
        result: str = "ok",
        detail: dict[str, Any] | None = None,
        source: str = "",
    ) -> dict[str, Any]:
        """The one audit path: every management call and robot action comes through here."""
        principal = principal or SYSTEM
        entry = {
            "actor": principal.id,  # with actor_name: who, in the audit table's terms
            "actor_name": principal.name,
            "principal_type": principal.kind,
            "action": action,
            "target": target,
            "result": result,
            "detail": json.dumps(detail or {}, ensure_ascii=False, sort_keys=True, default=str),
            "source": source,
            "at": dt.datetime.now(dt.UTC).replace(tzinfo=None),
        }
        self.pm.hook.rpahub_audit(entry=entry, hub=self)
        self.publish("audit.recorded", **{k: v for k, v in entry.items() if k != "at"})
        return entry

    # -- auth ------------------------------------------------------------------

    def authenticate(self, req) -> Principal | None:
        return self.pm.hook.rpahub_authenticate(req=req, hub=self)

    # -- facades for the dispatch, video and tier families ---------------------

    def select_executor(self, run: Any, candidates: list[Any]) -> Any | None:
        """Ask the scheduling policies; ``None`` when no candidate or no policy answers."""
        if not candidates:
            return None
        choice = self.pm.hook.rpahub_select_executor(run=run, candidates=list(candidates), hub=self)
        if choice is not None and choice not in candidates:
            raise ValueError(f"scheduling policy chose {choice!r}, which is not a candidate")
        return choice

    def scale_pool(self, pool: Any, desired: int) -> int | None:
        """Let every scaling provider act; the largest count reported is the pool's size."""
        counts = [n for n in self.pm.hook.rpahub_scale_pool(pool=pool, desired=desired, hub=self) if n is not None]
        return max(counts) if counts else None

    def store_video(self, video_id: str, stream: Any) -> dict[str, Any]:
        stored = self.pm.hook.rpahub_store_video(video_id=video_id, stream=stream, hub=self)
        if stored is None:
            raise HubNotConfigured("no video storage plugin is enabled")
        return stored

    def open_video(self, video_id: str) -> Any | None:
        return self.pm.hook.rpahub_open_video(video_id=video_id, hub=self)

    def executor_protocols(self) -> list[Any]:
        return [p for group in self.pm.hook.rpahub_executor_protocols(hub=self) if group for p in group]

    def tier_outbox(self) -> list[dict[str, Any]]:
        return [r for batch in self.pm.hook.rpahub_tier_outbox(hub=self) if batch for r in batch]

    def tier_receive(self, records: list[dict[str, Any]], origin: str) -> None:
        self.pm.hook.rpahub_tier_receive(records=records, origin=origin, hub=self)
