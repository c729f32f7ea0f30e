"""The ops center (T/CES 130-2022, 6.3): task records with logs, screenshots and
recordings (6.3.1a), monitoring figures, Prometheus collectors and alerts (6.3.1b),
personal folders (6.3.2d) and the cloud resources executors and designers run on (6.3.2e).

Alerts are delivered through the ``rpahub_notifiers`` hook; this plugin offers the
``webhook`` and ``email`` notifiers and consumes every plugin's.
"""

from __future__ import annotations

import logging

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.migrations import add_columns, create_tables

from . import resources
from .alerts import Alerts
from .folders import Folders
from .inventory import Inventory
from .models import MODELS, AlertEvent
from .notifiers import Email, Webhook
from .records import Records
from .stats import Stats

log = logging.getLogger("rpahub.ops")

DEFAULTS = {
    "evaluate_s": 30,  # how often a hub process evaluates the alert rules
    "delivery_attempts": 5,  # tries per channel and event before a delivery is given up
    "licence_warn_days": 30,  # the window of the rpahub_licences_expiring metric
    "personal_quota_mb": 1024,
    "webhook_timeout_s": 5,
    "webhook_secret": "",  # set: webhook bodies carry X-Rpahub-Signature: sha256=<HMAC>
    "smtp_host": "",
    "smtp_port": 25,
    "smtp_user": "",
    "smtp_password": "",
    "smtp_from": "rpahub@localhost",
    "starttls": False,
    "smtp_timeout_s": 10,
}


def settings(hub) -> dict:
    return {**DEFAULTS, **hub.settings.plugin("ops")}


def alerts(hub) -> Alerts:
    if "ops.alerts" not in hub.state:
        hub.state["ops.alerts"] = Alerts(hub, settings(hub))
    return hub.state["ops.alerts"]


def folders(hub) -> Folders:
    if "ops.folders" not in hub.state:
        from rpahub_plugins.executors import state

        hub.state["ops.folders"] = Folders(hub, state(hub).files, settings(hub)["personal_quota_mb"])
        # What /design/personalfile (executors plugin) asks before filing into a folder.
        hub.state["personal_folders.admit"] = hub.state["ops.folders"].admit
    return hub.state["ops.folders"]


@hookimpl
def rpahub_config_defaults():
    return {"ops": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("ops", 1, create_tables(*MODELS), "alert rules and alert events")
    migrations.add("ops", 2, add_columns(AlertEvent, "acknowledged_by", "acknowledged_at", "acknowledged_note"),
                   "acknowledging a firing alert")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("alerts.read", "See alert rules, firing alerts and their history")
    permissions.add("alerts.manage", "Create, change, test and delete alert rules (and acknowledge alerts)")
    permissions.add("alerts.acknowledge", "Acknowledge a firing alert: say one is on it and stop its reminders")
    permissions.add("folders.manage", "See and delete the files in anyone's personal folder")
    permissions.add("resources.read", "See the hosts, instances, executors and designers of the cloud resources")


@hookimpl
def rpahub_notifiers(hub):
    if "ops.notifiers" not in hub.state:
        s = settings(hub)
        hub.state["ops.notifiers"] = [Webhook(s), Email(s)]
    return hub.state["ops.notifiers"]


@hookimpl
def rpahub_register_routes(routes, hub):
    from rpahub_plugins.executors import state

    files = state(hub).files
    records, a, f = Records(hub), alerts(hub), folders(hub)
    routes.add("/api/v1/ops/runs", resources.RunList(records))
    routes.add("/api/v1/ops/runs/{run_id}", resources.RunDetail(records))
    routes.add("/api/v1/ops/runs/{run_id}/logs", resources.RunLogs())
    routes.add("/api/v1/ops/runs/{run_id}/recording", resources.RunRecording(files))
    routes.add("/api/v1/ops/runs/{run_id}/screenshots/{file_id}", resources.RunScreenshot(records, files))
    routes.add("/api/v1/ops/stats", resources.StatsResource(Stats(hub)))
    routes.add("/api/v1/ops/alert-rules", resources.RuleList(a))
    routes.add("/api/v1/ops/alert-rules/{rule_id}", resources.RuleItem(a))
    routes.add("/api/v1/ops/alert-rules/{rule_id}/test", resources.RuleTest(a))
    routes.add("/api/v1/ops/alerts", resources.AlertList(a))
    routes.add("/api/v1/ops/alerts/{alert_id}/acknowledge", resources.AlertAcknowledge(a))
    routes.add("/api/v1/ops/notifiers", resources.NotifierList(hub))
    routes.add("/api/v1/me/files", resources.MyFiles(f))
    routes.add("/api/v1/me/files/usage", resources.MyUsage(f))
    routes.add("/api/v1/me/files/{file_id}", resources.MyFile(f))
    routes.add("/api/v1/me/files/{file_id}/content", resources.MyFileContent(f))
    routes.add("/api/v1/ops/folders", resources.Folder(f))
    routes.add("/api/v1/ops/folders/usage", resources.FolderUsage(f))
    routes.add("/api/v1/ops/folders/{file_id}", resources.FolderFile(f))
    routes.add("/api/v1/ops/folders/{file_id}/content", resources.FolderFileContent(f))
    routes.add("/api/v1/ops/resources", resources.Resources(Inventory(hub)))


@hookimpl
def rpahub_startup(hub):
    _register_metrics(hub)
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests call alerts(hub).evaluate() themselves
    import gevent

    every = max(1.0, float(settings(hub)["evaluate_s"]))
    evaluator = alerts(hub)

    def loop():
        while True:
            gevent.sleep(every)
            try:
                with hubdb.connection():
                    evaluator.evaluate()
            except Exception as exc:  # one bad round never stops the next
                hubdb.log_failure(log, "alert evaluation", exc)

    hub.state["ops.loop"] = gevent.spawn(loop)


def _register_metrics(hub) -> None:
    if hub.state.get("ops.metrics") is None:
        from .metrics import OpsCollector

        collector = OpsCollector(hub, int(settings(hub)["licence_warn_days"]))
        hub.metrics.register(collector)
        hub.state["ops.metrics"] = collector


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("ops.loop", None)
    if loop is not None:
        loop.kill()
