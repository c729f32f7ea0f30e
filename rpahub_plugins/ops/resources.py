"""Thin Falcon resources of the ops center: validate, call the services, answer."""

from __future__ import annotations

import datetime as dt

from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, NotFound
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import ok, operation, paginate
from rpahub_plugins.executors.models import RunInstance, StoredFile
from rpahub_plugins.executors.resources import send_file

from . import schemas
from .alerts import Alerts, event_json, notifiers_of, rule_json
from .folders import Folders, file_json
from .inventory import Inventory
from .models import AlertEvent, AlertRule
from .records import Records, log_json, logs_query, no_recording_hint, row_json
from .stats import Stats

RUNS = ("ops: task records",)
MONITOR = ("ops: monitoring",)
ALERTS = ("ops: alerts",)
FOLDERS = ("ops: personal folders",)
CLOUD = ("ops: cloud resources",)


def stream_stored(req, resp, files, stored: StoredFile) -> None:
    send_file(req, resp, files.open(stored), stored.size, stored.content_type, stored.name)


# -- task records (6.3.1a) ---------------------------------------------------------------


class RunList:
    def __init__(self, records: Records):
        self.records = records

    @operation(permission="runs.read", summary="Task records: runs with app, package, executor and durations, "
               "newest first", query=schemas.OpsRunQuery, tags=RUNS)
    def on_get(self, req, resp):
        ok(resp, paginate(self.records.query(req.context.query), req.context.query, row_json))


class RunDetail:
    def __init__(self, records: Records):
        self.records = records

    @operation(permission="runs.read", summary="One task record: timeline, executor, app, arguments, outputs, "
               "log counts, screenshots and the recording", tags=RUNS)
    def on_get(self, req, resp, run_id):
        ok(resp, self.records.detail(self.records.get(run_id)))


class RunLogs:
    @operation(permission="runs.read", summary="A run's logs, oldest first; after=<log id> tails a live run",
               query=schemas.OpsLogQuery, tags=RUNS)
    def on_get(self, req, resp, run_id):
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        q = req.context.query
        page = paginate(logs_query(run.id, q), q, log_json)
        last = page["items"][-1]["id"] if page["items"] else q.after
        # A tailing client asks again with after=lastId until finished is true and nothing new came.
        # recordingExpected: the executor uploads a recording (mode 1) that has not arrived yet.
        ok(resp, {**page, "lastId": last, "runState": run.state, "finished": run.finished_at is not None,
                  "recordingExpected": bool(run.video_required and run.video_mode == 1 and not run.video_id)})


class RunRecording:
    def __init__(self, files):
        self.files = files

    @operation(permission="runs.read", summary="Watch a run's screen recording (HTTP Range lets a player seek)",
               tags=RUNS, produces="*/*")
    def on_get(self, req, resp, run_id):
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        stored = StoredFile.get_or_none(StoredFile.id == run.video_id) if run.video_id else None
        if stored is None:
            raise NotFound(f"run {run_id} has no recording: {no_recording_hint(run)}")
        stream_stored(req, resp, self.files, stored)


class RunScreenshot:
    def __init__(self, records: Records, files):
        self.records, self.files = records, files

    @operation(permission="runs.read", summary="A screenshot one of the run's logs carries", tags=RUNS,
               produces="*/*")
    def on_get(self, req, resp, run_id, file_id):
        stream_stored(req, resp, self.files, self.records.screenshot_file(run_id, file_id))


# -- monitoring (6.3.1b) -------------------------------------------------------------------


class StatsResource:
    def __init__(self, stats: Stats):
        self.stats = stats

    @operation(permission="runs.read", summary="Run statistics by state and result, success rate, durations, "
               "queue waits; executors, queue and expiring licences now", query=schemas.StatsQuery, tags=MONITOR)
    def on_get(self, req, resp):
        q = req.context.query
        end = q.to or utcnow()
        start = q.from_ or end - dt.timedelta(hours=24)
        if start >= end:
            raise BadRequest("from: must be before to (default to: now)")
        runs = self.stats.runs(start=start, end=end, group_by=q.groupBy, app_id=q.appId, executor_id=q.executorId)
        ok(resp, {"runs": runs, "executors": self.stats.executors(), "queue": self.stats.queue(),
                  "licences": {"withinDays": q.licenceDays, "expiring": self.stats.licences(q.licenceDays)}})


# -- alerts ----------------------------------------------------------------------------------


class RuleList:
    def __init__(self, alerts: Alerts):
        self.alerts = alerts

    @operation(permission="alerts.read", summary="Alert rules", query=schemas.RuleQuery, tags=ALERTS)
    def on_get(self, req, resp):
        q = req.context.query
        query = AlertRule.select().order_by(AlertRule.name)
        if q.kind:
            query = query.where(AlertRule.kind == q.kind)
        if q.q:
            query = query.where(AlertRule.name.contains(q.q))
        ok(resp, paginate(query, q, rule_json))

    @operation(permission="alerts.manage", summary="Create an alert rule", body=schemas.RuleIn, tags=ALERTS,
               audit="alert_rule.create", status=201)
    def on_post(self, req, resp):
        rule = self.alerts.create(req.context.body, by=req.context.principal.name)
        req.context.audit_target = rule.id
        ok(resp, rule_json(rule), status=201)


class RuleItem:
    def __init__(self, alerts: Alerts):
        self.alerts = alerts

    @operation(permission="alerts.read", summary="One alert rule", tags=ALERTS)
    def on_get(self, req, resp, rule_id):
        ok(resp, rule_json(self.alerts.get(rule_id)))

    @operation(permission="alerts.manage", summary="Change an alert rule (its kind stays)", body=schemas.RulePatch,
               tags=ALERTS, audit="alert_rule.update")
    def on_patch(self, req, resp, rule_id):
        ok(resp, rule_json(self.alerts.update(rule_id, req.context.body)))

    @operation(permission="alerts.manage", summary="Delete an alert rule (its history stays)", tags=ALERTS,
               audit="alert_rule.delete")
    def on_delete(self, req, resp, rule_id):
        self.alerts.delete(rule_id)
        ok(resp, None)


class RuleTest:
    def __init__(self, alerts: Alerts):
        self.alerts = alerts

    # Not transactional: a slow channel must not hold a database transaction open.
    @operation(permission="alerts.manage", summary="Send a test notification to each of the rule's channels",
               tags=ALERTS, audit="alert_rule.test", transactional=False)
    def on_post(self, req, resp, rule_id):
        results = self.alerts.test(rule_id, by=req.context.principal.name)
        ok(resp, {"delivered": all(r["ok"] for r in results), "channels": results})


class AlertList:
    def __init__(self, alerts: Alerts):
        self.alerts = alerts

    @operation(permission="alerts.read", summary="Alerts firing now, and the history of alert events (newest first)",
               query=schemas.AlertQuery, tags=ALERTS)
    def on_get(self, req, resp):
        q = req.context.query
        query = AlertEvent.select().order_by(AlertEvent.at.desc(), AlertEvent.id.desc())
        if q.ruleId:
            query = query.where(AlertEvent.rule_id == q.ruleId)
        if q.state:
            query = query.where(AlertEvent.state == q.state)
        if q.since:
            query = query.where(AlertEvent.at >= q.since)
        firing = self.alerts.firing()
        if q.acknowledged is not None:
            # Only an alert's opening event can carry an acknowledgement; reminders and
            # resolutions are neither acknowledged nor waiting for it.
            query = query.where(AlertEvent.acknowledged_at.is_null(False)) if q.acknowledged else query.where(
                (AlertEvent.state == "firing") & ~AlertEvent.repeat & AlertEvent.acknowledged_at.is_null())
            firing = [f for f in firing if f["event"] is not None and (f["event"]["acknowledged"] is not None)
                      == q.acknowledged]
        ok(resp, {"firing": firing, "history": paginate(query, q, event_json)})


class AlertAcknowledge:
    def __init__(self, alerts: Alerts):
        self.alerts = alerts

    @operation(permission=("alerts.acknowledge", "alerts.manage"), summary="Acknowledge a firing alert: who and "
               "when are recorded with the note, its reminders stop; it stays firing until its condition clears",
               body=schemas.AcknowledgeIn, tags=ALERTS, audit="alert.acknowledge")
    def on_post(self, req, resp, alert_id):
        ok(resp, event_json(self.alerts.acknowledge(alert_id, req.context.body.note.strip(),
                                                    by=req.context.principal.name)))


class NotifierList:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="alerts.read", summary="Notification channels a rule may name", tags=ALERTS)
    def on_get(self, req, resp):
        ok(resp, [{"name": name} for name in sorted(notifiers_of(self.hub))])


# -- personal folders (6.3.2d) -----------------------------------------------------------------


class MyFiles:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission=AUTHENTICATED, summary="My folder: files I uploaded and files runs filed for me",
               query=schemas.FileQuery, tags=FOLDERS)
    def on_get(self, req, resp):
        q = req.context.query
        ok(resp, paginate(self.folders.query(req.context.principal.id, q.q), q, file_json))

    @operation(permission=AUTHENTICATED, summary="Upload a file into my folder (multipart: file, optional name)",
               raw_body="multipart/form-data", tags=FOLDERS, audit="personal_file.upload", status=201,
               transactional=False)
    def on_post(self, req, resp):
        who = req.context.principal
        row = self.folders.upload(req, owner_id=who.id, owner_name=who.name, added_by=f"{who.kind}:{who.id}")
        req.context.audit_target = row.id
        ok(resp, file_json(row), status=201)


class MyUsage:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission=AUTHENTICATED, summary="How much of my folder's quota I use", tags=FOLDERS)
    def on_get(self, req, resp):
        ok(resp, self.folders.usage(req.context.principal.id))


class MyFile:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission=AUTHENTICATED, summary="One file of my folder", tags=FOLDERS)
    def on_get(self, req, resp, file_id):
        ok(resp, file_json(self.folders.get(file_id, req.context.principal.id)))

    @operation(permission=AUTHENTICATED, summary="Delete a file from my folder", tags=FOLDERS,
               audit="personal_file.delete")
    def on_delete(self, req, resp, file_id):
        self.folders.delete(self.folders.get(file_id, req.context.principal.id))
        ok(resp, None)


class MyFileContent:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission=AUTHENTICATED, summary="Download a file of my folder (HTTP Range supported)",
               tags=FOLDERS, produces="*/*")
    def on_get(self, req, resp, file_id):
        row = self.folders.get(file_id, req.context.principal.id)
        send_file(req, resp, self.folders.store.open(row.file), row.file.size, row.file.content_type, row.name)


class Folder:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission="folders.manage", summary="Anyone's personal files (userId: one person's folder)",
               query=schemas.FolderQuery, tags=FOLDERS)
    def on_get(self, req, resp):
        q = req.context.query
        ok(resp, paginate(self.folders.query(q.userId, q.q), q, lambda r: file_json(r, owner=True)))


class FolderUsage:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission="folders.manage", summary="Each person's folder use against the quota, largest first",
               tags=FOLDERS)
    def on_get(self, req, resp):
        ok(resp, self.folders.usage_by_owner())


class FolderFile:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission="folders.manage", summary="Delete a file from anyone's folder", tags=FOLDERS,
               audit="personal_file.delete_any")
    def on_delete(self, req, resp, file_id):
        row = self.folders.get(file_id)
        req.context.audit_target = f"{row.owner_name}"
        self.folders.delete(row)
        ok(resp, None)


class FolderFileContent:
    def __init__(self, folders: Folders):
        self.folders = folders

    @operation(permission="folders.manage", summary="Download a file from anyone's folder (HTTP Range supported)",
               tags=FOLDERS, produces="*/*")
    def on_get(self, req, resp, file_id):
        row = self.folders.get(file_id)
        send_file(req, resp, self.folders.store.open(row.file), row.file.size, row.file.content_type, row.name)


# -- cloud resources (6.3.2e) ---------------------------------------------------------------


class Resources:
    def __init__(self, inventory: Inventory):
        self.inventory = inventory

    @operation(permission="resources.read", summary="Hosts executors and designers run on: instances, executors "
               "and designers per host, with their state", query=schemas.ResourceQuery, tags=CLOUD)
    def on_get(self, req, resp):
        q = req.context.query
        ok(resp, self.inventory.snapshot(refresh=q.refresh, include_stopped=q.includeStopped))
