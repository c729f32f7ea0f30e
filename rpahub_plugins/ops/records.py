"""Task records (6.3.1a): runs with their app, package, executor and durations; one run's
timeline, log counts, screenshots and recording."""

from __future__ import annotations

import json

import peewee

from rpahub_core.errors import NotFound
from rpahub_plugins.executors.models import Executor, Package, RunEvent, RunInstance, RunLog, StoredFile
from rpahub_plugins.executors.resources import executor_json

LEVELS = {0: "info", 1: "warning", 2: "error"}


def seconds(start, end) -> float | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds(), 3)


def share_models(hub):
    """The share plugin's ``App`` and ``AppRun``, or ``None`` when it is not enabled."""
    if hub.pm.get_plugin("share") is None:
        return None
    from rpahub_plugins.share.models import App, AppRun

    return App, AppRun


class Records:
    def __init__(self, hub):
        self.hub = hub

    def query(self, q) -> peewee.SelectQuery:
        """Runs matching the filters of :class:`~.schemas.OpsRunQuery`, newest first."""
        cols = [RunInstance, Package.name.alias("package_name"), Package.version.alias("package_version")]
        share = share_models(self.hub)
        if share:
            App, AppRun = share
            cols += [App.id.alias("app_id"), App.name.alias("app_name")]
        query = RunInstance.select(*cols).join(Package).switch(RunInstance)
        if share:
            query = (query.join(AppRun, peewee.JOIN.LEFT_OUTER, on=(AppRun.run_id == RunInstance.id))
                     .join(App, peewee.JOIN.LEFT_OUTER, on=(App.id == AppRun.app)).switch(RunInstance))
        if q.appId:
            # without the share plugin no run was started from an app
            query = query.where(share[1].app == q.appId) if share else query.where(peewee.SQL("1 = 0"))
        if q.executorId:
            query = query.where(RunInstance.executor_id == q.executorId)
        if q.state:
            query = query.where(RunInstance.state == q.state)
        if q.user:
            query = query.where((RunInstance.user_id == q.user) | (RunInstance.user_name == q.user))
        if q.createdFrom:
            query = query.where(RunInstance.created_at >= q.createdFrom)
        if q.createdTo:
            query = query.where(RunInstance.created_at < q.createdTo)
        if q.q:
            query = query.where(Package.name.contains(q.q))
        # objects(): the joined columns land on the run row itself (row.package_name ...)
        return query.order_by(RunInstance.created_at.desc(), RunInstance.id.desc()).objects()

    def get(self, run_id: str) -> RunInstance:
        rows = list(self.query(_NoFilter()).where(RunInstance.id == run_id))
        if not rows:
            raise NotFound(f"run {run_id} not found")
        return rows[0]

    def detail(self, run: RunInstance) -> dict:
        """Everything an operator looks at for one run."""
        out = row_json(run)
        out["arguments"] = json.loads(run.arguments or "[]")
        out["outputs"] = json.loads(run.outputs or "{}")
        out["checkpointAt"] = run.checkpoint_at
        out["timeline"] = [{"at": e.at, "state": e.state, "detail": e.detail}
                           for e in RunEvent.select().where(RunEvent.run == run.id).order_by(RunEvent.id)]
        executor = Executor.get_or_none(Executor.id == run.executor_id) if run.executor_id else None
        out["executor"] = executor_json(executor) if executor else None
        out["app"] = self.app_of(run.id)
        counts = dict(RunLog.select(RunLog.level, peewee.fn.COUNT(RunLog.id)).where(RunLog.run == run.id)
                      .group_by(RunLog.level).tuples())
        out["logCounts"] = {**{name: counts.get(level, 0) for level, name in LEVELS.items()},
                            "total": sum(counts.values())}
        out["screenshots"] = self.screenshots(run)
        out["recording"] = recording_json(run)
        return out

    def app_of(self, run_id: str) -> dict | None:
        share = share_models(self.hub)
        if not share:
            return None
        App, AppRun = share
        from rpahub_plugins.share.models import AppVersion

        link = (AppRun.select(AppRun, App.name, AppVersion.version).join(App).switch(AppRun).join(AppVersion)
                .where(AppRun.run_id == run_id).first())
        if link is None:
            return None
        return {"id": link.app_id, "name": link.app.name, "version": link.version.version}

    def screenshots(self, run: RunInstance) -> list[dict]:
        rows = list(RunLog.select().where((RunLog.run == run.id) & RunLog.screenshot.is_null(False)
                                          & (RunLog.screenshot != "")).order_by(RunLog.id))
        stored = {f.id: f for f in StoredFile.select().where(StoredFile.id.in_([r.screenshot for r in rows]))} \
            if rows else {}
        return [{"logId": r.id, "logAt": r.log_at, "level": r.level, "content": r.content, "fileId": r.screenshot,
                 "url": screenshot_url(run.id, r.screenshot) if r.screenshot in stored else None,
                 "available": r.screenshot in stored} for r in rows]

    def screenshot_file(self, run_id: str, file_id: str) -> StoredFile:
        """A file shown by one of the run's logs (and only such a file)."""
        shown = RunLog.select().where((RunLog.run == run_id) & (RunLog.screenshot == file_id)).exists()
        stored = StoredFile.get_or_none(StoredFile.id == file_id) if shown else None
        if stored is None:
            raise NotFound(f"screenshot {file_id} not found among the logs of run {run_id}")
        return stored


class _NoFilter:
    appId = executorId = state = user = createdFrom = createdTo = q = None


def screenshot_url(run_id: str, file_id: str) -> str:
    return f"/api/v1/ops/runs/{run_id}/screenshots/{file_id}"


def recording_json(run: RunInstance) -> dict:
    """Where to watch the recording, or why there is none."""
    if run.video_id:
        return {"available": True, "videoId": run.video_id, "url": f"/api/v1/ops/runs/{run.id}/recording",
                "hint": ""}
    return {"available": False, "videoId": None, "url": None, "hint": no_recording_hint(run)}


def no_recording_hint(run: RunInstance) -> str:
    if not run.video_required:
        return "the run was started without videoRecordRequired"
    if run.video_mode == 0:
        return "the recording stays on the executor (videoRecordMode 0); ask its supplier for it"
    if run.finished_at is None:
        return "the executor sends the recording when the run ends"
    return "the executor has not reported a recording for this run"


def row_json(r: RunInstance) -> dict:
    """One row of the task record list."""
    app_id = getattr(r, "app_id", None)
    return {
        "id": r.id, "state": r.state,
        "app": {"id": app_id, "name": getattr(r, "app_name", None)} if app_id else None,
        "packageId": r.package_id, "packageName": getattr(r, "package_name", None),
        "packageVersion": getattr(r, "package_version", None),
        "executorId": r.executor_id, "userId": r.user_id, "userName": r.user_name, "attempt": r.attempt,
        "finishStatus": r.finish_status, "errorCode": r.error_code,
        "createdAt": r.created_at, "dispatchedAt": r.dispatched_at, "startedAt": r.started_at,
        "finishedAt": r.finished_at,
        # queueWait: created → given to an executor; duration: started (or dispatched) → finished
        "queueWaitS": seconds(r.created_at, r.dispatched_at),
        "durationS": seconds(r.started_at or r.dispatched_at, r.finished_at),
        "totalS": seconds(r.created_at, r.finished_at),
        "hasRecording": bool(r.video_id),
    }


def log_json(row: RunLog) -> dict:
    return {"id": row.id, "content": row.content, "logAt": row.log_at, "level": row.level,
            "levelName": LEVELS.get(row.level, str(row.level)), "screenshot": row.screenshot,
            "screenshotUrl": screenshot_url(row.run_id, row.screenshot) if row.screenshot else None}


def logs_query(run_id: str, q) -> peewee.SelectQuery:
    query = RunLog.select().where(RunLog.run == run_id)
    if q.level is not None:
        query = query.where(RunLog.level == q.level)
    if q.minLevel is not None:
        query = query.where(RunLog.level >= q.minLevel)
    if q.hasScreenshot is True:
        query = query.where(RunLog.screenshot.is_null(False) & (RunLog.screenshot != ""))
    elif q.hasScreenshot is False:
        query = query.where(RunLog.screenshot.is_null(True) | (RunLog.screenshot == ""))
    if q.after is not None:
        query = query.where(RunLog.id > q.after)
    return query.order_by(RunLog.id)
