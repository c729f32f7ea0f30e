"""Starting and stopping runs on admitted executors, and the links they follow.

A run is persisted before anything is sent; its ``Execute`` is a durable command,
so a hub crash between the two loses nothing: the command is delivered when the
robot next connects or heartbeats.
"""

from __future__ import annotations

import json
import zipfile
import zlib

from rpahub_core import db as hubdb
from rpahub_core import signing
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, Forbidden, NotFound

from .gateway import ACTIVE_STATES, DONE_STATES, insert_rows
from .models import Command, Executor, Package, RunEvent, RunInstance, Supplier

DOWNLOAD_TTL_S = 3600
UPLOAD_TTL_S = 24 * 3600
ENTRY_MAX = 255  # Package.entry
RUN_COLUMNS = ("id", "package", "state", "arguments", "user_id", "user_name", "video_required", "video_mode",
               "attempt", "outputs", "created_at")
EVENT_COLUMNS = ("run", "at", "state", "detail")


class Runs:
    def __init__(self, hub, gateway, files, adapters):
        self.hub = hub
        self.gateway = gateway
        self.files = files
        self.adapters = adapters
        gateway.refreshers["Execute"] = self.fresh_execute

    # -- packages ---------------------------------------------------------------

    def add_package(self, *, name: str, version: str, data: bytes, created_by: str) -> Package:
        kind, entry = inspect_package(data)
        if Package.select().where((Package.name == name) & (Package.version == version)).exists():
            raise Conflict(f"package {name} {version} exists: versions are immutable")
        stored = self.files.save_bytes(data, name=f"{name}-{version}.zip", content_type="application/zip",
                                       source="package", uploaded_by=created_by)
        return Package.create(name=name, version=version, kind=kind, entry=entry, file=stored,
                              created_by=created_by)

    # -- runs -------------------------------------------------------------------

    def start(self, *, package_id: str, executor_id: str, arguments: list[dict], user_id: str, user_name: str,
              video_required: bool = False, video_mode: int = 0) -> RunInstance:
        """Run a package on one named executor now (refused if it cannot take it)."""
        package = self._package(package_id)
        # The same admission as a queued run (e.g. SEC-5); a direct start has no retry plan.
        self.hub.pm.hook.rpahub_admit_run(submission={"package_id": package_id, "executor_id": executor_id,
                                                      "pool": None, "labels": [], "supplier": None}, hub=self.hub)
        executor = Executor.get_or_none(Executor.id == executor_id)
        if executor is None:
            raise NotFound(f"executorId: executor {executor_id} is not admitted")
        if executor.state == "offline":
            raise Conflict(f"executorId: executor {executor_id} is offline")
        if not self.accepts(executor, package.kind):
            raise BadRequest(f"packageId: executors of {executor.supplier_id} do not run {package.kind} packages")
        if self.load(executor_id) >= executor.slots:
            raise Conflict(f"executorId: executor {executor_id} is busy")
        with hubdb.atomic():
            run = self.create(package=package, arguments=arguments, user_id=user_id, user_name=user_name,
                              video_required=video_required, video_mode=video_mode)
            self.assign(run, executor_id, detail=f"to {executor_id} by {user_name}")
        return run

    def _package(self, package_id: str) -> Package:
        package = Package.get_or_none(Package.id == package_id)
        if package is None:
            raise NotFound(f"packageId: package {package_id} not found")
        return package

    def create(self, *, package: Package | str, arguments: list[dict], user_id: str, user_name: str,
               video_required: bool = False, video_mode: int = 0) -> RunInstance:
        """A pending run: persisted before anything is sent anywhere."""
        if isinstance(package, str):
            package = self._package(package)
        with hubdb.atomic():
            run = RunInstance.create(package=package, state="pending",
                                     arguments=json.dumps(arguments, ensure_ascii=False), user_id=user_id,
                                     user_name=user_name, video_required=video_required, video_mode=video_mode)
            RunEvent.create(run=run.id, state="pending", detail=f"created by {user_name}")
            self.hub.publish("run.pending", runId=run.id)
        return run

    def create_many(self, items: list[dict]) -> list[str]:
        """Pending runs in three statements, not three per run: what :meth:`create` does for
        each of ``items`` (``id``, ``package_id``, ``arguments``, ``user_id``, ``user_name``,
        optional ``video_required`` and ``video_mode``), whose packages the caller checked.
        Runs in the caller's transaction; returns the ids."""
        now = utcnow()
        runs, events = [], []
        for item in items:
            runs.append((item["id"], item["package_id"], "pending",
                         json.dumps(item["arguments"], ensure_ascii=False), item["user_id"], item["user_name"],
                         bool(item.get("video_required", False)), int(item.get("video_mode", 0)), 1, "{}", now))
            events.append((item["id"], now, "pending", f"created by {item['user_name']}"))
        with hubdb.atomic():
            insert_rows(RunInstance, RUN_COLUMNS, runs)
            insert_rows(RunEvent, EVENT_COLUMNS, events)
            for item in items:
                self.hub.publish("run.pending", runId=item["id"])
        return [item["id"] for item in items]

    def accepts(self, executor: Executor, kind: str) -> bool:
        supplier = Supplier.get_by_id(executor.supplier_id)
        adapter = self.adapters.get(supplier.adapter)
        return adapter is None or adapter.accepts_package(kind)

    def load(self, executor_id: str) -> int:
        return RunInstance.select().where((RunInstance.executor_id == executor_id)
                                          & RunInstance.state.in_(ACTIVE_STATES)).count()

    def assign(self, run: RunInstance, executor_id: str, *, detail: str = "") -> None:
        """Give a pending run to an executor: its durable Execute goes out with the commit."""
        with hubdb.atomic():
            n = RunInstance.update(executor_id=executor_id, state="dispatched", dispatched_at=utcnow(),
                                   lease_expires_at=self.gateway.lease_until()).where(
                (RunInstance.id == run.id) & (RunInstance.state.in_(("pending", "retrying")))).execute()
            if not n:
                raise Conflict(f"run {run.id} is no longer waiting")
            run.executor_id, run.state = executor_id, "dispatched"
            RunEvent.create(run=run.id, state="dispatched", detail=detail or f"to {executor_id}")
            self.gateway.send(executor_id, "Execute", {"runInstanceId": run.id}, run_id=run.id)
            self.hub.publish("run.dispatched", runId=run.id, executorId=executor_id, attempt=run.attempt)

    def requeue(self, run: RunInstance, *, reason: str) -> bool:
        """Take a run back from its executor for another attempt; its checkpoint stays.

        The old executor's later reports are refused (the run is no longer its own) and
        its undelivered commands for the run are dropped.
        """
        with hubdb.atomic():
            old = run.executor_id
            taken = RunInstance.update(state="retrying", executor_id=None, attempt=RunInstance.attempt + 1,
                                       finish_status=None, error_code=None, finished_at=None,
                                       lease_expires_at=None).where(
                (RunInstance.id == run.id) & (RunInstance.state == run.state)
                & (RunInstance.executor_id == old if old else RunInstance.executor_id.is_null())).execute()
            if not taken:  # another process decided first
                return False
            Command.delete().where((Command.run_id == run.id) & Command.delivered_at.is_null()).execute()
            run.state, run.executor_id, run.attempt = "retrying", None, run.attempt + 1
            RunEvent.create(run=run.id, state="retrying", detail=f"attempt {run.attempt}: {reason} (was on {old})")
            self.hub.publish("run.retrying", runId=run.id, attempt=run.attempt, previousExecutor=old, reason=reason)
        return True

    def fail(self, run: RunInstance, *, reason: str, error_code: int | None = None, state: str = "failed") -> None:
        """End a run that cannot be placed or retried any more (or whose stop cannot arrive)."""
        status = 1 if state == "cancelled" else 2
        with hubdb.atomic():
            ended = RunInstance.update(state=state, finish_status=status, error_code=error_code,
                                       finished_at=utcnow(), lease_expires_at=None).where(
                (RunInstance.id == run.id) & (RunInstance.state == run.state)).execute()
            if not ended:  # another process decided first
                return
            run.state = state
            RunEvent.create(run=run.id, state=state, detail=reason)
            self.hub.publish("run.completed", runId=run.id, state=state, status=status, errorCode=error_code,
                             attempt=run.attempt)

    def execute_body(self, run: RunInstance, package: Package, adapter=None) -> dict:
        """Table A.7, every field; the extensions only when they carry something."""
        base = self.hub.settings.public_url
        download = signing.sign(self.hub.keys.hmac_key("package-download"),
                                {"run": run.id, "package": package.id, "robot": run.executor_id}, DOWNLOAD_TTL_S)
        upload = signing.sign(self.hub.keys.hmac_key("run-token"),
                              {"run": run.id, "robot": run.executor_id}, UPLOAD_TTL_S)
        body = {
            "runInstanceId": run.id,
            "packageDownloadUri": f"{base}/v1/packages/{package.id}/download?token={download}",
            "fileUploadUri": f"{base}/v1/file/file/upload?runToken={upload}",
            "arguments": json.loads(run.arguments),
            "videoRecordRequired": bool(run.video_required),
            "videoRecordMode": run.video_mode,
            "userId": run.user_id,
            "userName": run.user_name,
        }
        if run.checkpoint:  # extension: resume where the previous attempt stopped
            body["checkpoint"] = json.loads(run.checkpoint)
            body["attempt"] = run.attempt
        return adapter.execute_body(body, run) if adapter is not None else body

    def stop(self, run_id: str, *, by: str) -> RunInstance:
        run = self.get(run_id)
        if run.state in DONE_STATES:
            raise Conflict(f"run {run_id} already finished as {run.state}")
        with hubdb.atomic():
            if run.state in ("pending", "retrying") or not run.executor_id:
                RunInstance.update(state="cancelled", finished_at=utcnow(), finish_status=1).where(
                    RunInstance.id == run.id).execute()
                RunEvent.create(run=run.id, state="cancelled", detail=f"cancelled by {by} before dispatch")
                self.hub.publish("run.completed", runId=run.id, state="cancelled", status=1, errorCode=None)
            elif run.state != "stopping":
                RunInstance.update(state="stopping").where(RunInstance.id == run.id).execute()
                RunEvent.create(run=run.id, state="stopping", detail=f"stop requested by {by}")
                self.gateway.send(run.executor_id, "Stop", None, run_id=run.id)
                self.hub.publish("run.stopping", runId=run.id, executorId=run.executor_id, by=by)
        return self.get(run_id)

    def get(self, run_id: str) -> RunInstance:
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None:
            raise NotFound(f"run {run_id} not found")
        return run

    def verify_download(self, package_id: str, token: str) -> Package:
        """The package of a link from ``Execute``: signed, unexpired, and for a run that
        uses this package and is still on the executor it was sent to, before its end."""
        try:
            claims = signing.verify(self.hub.keys.hmac_key("package-download"), token)
        except signing.BadSignature as exc:
            raise Forbidden(f"download link {exc}") from None
        if claims.get("package") != package_id:
            raise Forbidden("download link is for another package")
        run = RunInstance.get_or_none(RunInstance.id == str(claims.get("run") or ""))
        if run is None or run.package_id != package_id:
            raise Forbidden("download link is for a run that does not exist or uses another package")
        if run.state not in ACTIVE_STATES:
            raise Forbidden(f"download link is for a run that is {run.state}: only a dispatched, running or "
                            "stopping run downloads its package")
        if "robot" in claims and claims["robot"] != run.executor_id:
            # A retry on another executor got a fresh link; the previous attempt's no longer works.
            raise Forbidden("download link is for an earlier attempt of the run, on another executor")
        package = Package.get_or_none(Package.id == package_id)
        if package is None:
            raise NotFound(f"package {package_id} not found")
        return package

    def fresh_execute(self, run_id: str, robot_id: str) -> dict | None:
        """The Execute body at delivery time, with links signed now; None once the run is
        no longer waiting for this executor to start it."""
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None or run.state != "dispatched" or run.executor_id != robot_id:
            return None
        supplier = Supplier.select().join(Executor).where(Executor.id == run.executor_id).first()
        adapter = self.adapters.get(supplier.adapter) if supplier else None
        return self.execute_body(run, run.package, adapter)


def inspect_package(data: bytes) -> tuple[str, str]:
    """A package is a zip: ``.robot`` suites make it a Robot Framework package,
    otherwise ``main.py`` (or ``manifest.json``'s ``entry``) a Python one."""
    import io

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = zf.namelist()
            for name in names:
                if name.startswith("/") or ".." in name.split("/"):
                    raise BadRequest(f"file: package entry {name!r} escapes the package folder")
            manifest = {}
            if "manifest.json" in names:
                try:
                    manifest = json.loads(zf.read("manifest.json"))
                except (ValueError, RecursionError):
                    raise BadRequest("file: manifest.json is not valid JSON") from None
                except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError):
                    raise BadRequest("file: manifest.json cannot be read from the zip (damaged, encrypted "
                                     "or an unsupported compression)") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError):
        raise BadRequest("file: a package must be a zip archive") from None
    if not isinstance(manifest, dict):
        raise BadRequest('file: manifest.json must be an object such as {"kind": "python", "entry": "main.py"}')
    kind, entry = manifest.get("kind"), manifest.get("entry")
    if kind is not None and kind not in ("robot", "python"):
        raise BadRequest('file: manifest.json "kind" must be "robot" or "python"')
    if entry is not None and not isinstance(entry, str):
        raise BadRequest('file: manifest.json "entry" must be a string naming a file of the package')
    if entry and (entry.startswith("/") or ".." in entry.split("/")):
        raise BadRequest('file: manifest.json "entry" escapes the package folder')
    robots = sorted(n for n in names if n.endswith(".robot"))
    if kind == "robot" or (robots and kind != "python"):
        if entry:
            folder = entry.rstrip("/") + "/"
            if entry not in names and not any(n.startswith(folder) for n in names):
                raise BadRequest(f'file: manifest.json "entry" {entry!r} is not in the package')
        elif not robots:
            raise BadRequest('file: manifest.json says "kind": "robot" but the package has no .robot suite')
        kind, entry = "robot", entry or robots[0]
    else:
        kind, entry = "python", entry or ("main.py" if "main.py" in names else "")
        if not entry or entry not in names:
            raise BadRequest("file: a package needs .robot suites, main.py, or manifest.json naming its entry")
    if len(entry) > ENTRY_MAX:
        raise BadRequest(f"file: the entry path {entry[:40]!r}... is longer than {ENTRY_MAX} characters")
    return kind, entry
