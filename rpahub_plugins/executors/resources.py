"""Management API (people) and the file, package and licence endpoints robots use."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Literal

import falcon
from pydantic import Field

from rpahub_core import db as hubdb
from rpahub_core.auth import RobotPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, Forbidden, NotFound, PayloadTooLarge
from rpahub_core.web import ANY_PRINCIPAL, ApiModel, PageQuery, ok, operation, paginate

from . import wire
from .files import check_source, form_text
from .models import AllowedRobot, Executor, Licence, Package, PersonalFile, RunEvent, RunInstance, RunLog, Supplier

TAGS = ("executors",)


def file_url(hub, file_id: str) -> str:
    return f"{hub.settings.public_url}/api/v1/files/{file_id}/content"


# -- shapes --------------------------------------------------------------------


class SupplierIn(ApiModel):
    code: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    name: str = Field("", max_length=128)
    secret: str | None = Field(None, min_length=16, max_length=256, description="omit to generate one")
    adapter: str = "tces130"
    enabled: bool = True
    allowlistRequired: bool = False
    allowedRobots: list[str] = []


class SupplierPatch(ApiModel):
    name: str | None = Field(None, max_length=128)
    adapter: str | None = None
    enabled: bool | None = None
    allowlistRequired: bool | None = None
    allowedRobots: list[str] | None = None
    rotateSecret: bool = False


class ExecutorQuery(PageQuery):
    state: str | None = Field(None, pattern="^(online|offline|busy)$")
    supplier: str | None = None
    q: str | None = Field(None, max_length=128, description="part of the robot id")
    label: list[str] = Field([], max_length=16, description="repeat for several: all must be carried")
    paused: bool | None = None


class LicenceIn(ApiModel):
    supplier: str
    robotId: str | None = None
    pool: str | None = None
    features: list[str] = []
    days: int = Field(365, ge=1, le=3650)


class BindIn(ApiModel):
    robotId: str | None = None
    pool: str | None = None


class ArgumentIn(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    type: str = Field("String", max_length=32)
    value: str = Field(max_length=65536)


class RunIn(ApiModel):
    packageId: str
    executorId: str
    arguments: list[ArgumentIn] = []
    videoRecordRequired: bool = False
    videoRecordMode: int = Field(0, ge=0, le=1, description="0: keep on the executor, 1: send back to the hub")


class RunQuery(PageQuery):
    executorId: str | None = None
    state: str | None = None
    packageId: str | None = None


class LogQuery(PageQuery):
    level: int | None = Field(None, ge=0, le=2, description="only this level")
    pageSize: int = Field(100, ge=1, le=1000)


# -- serialisers ---------------------------------------------------------------


def supplier_json(s: Supplier) -> dict:
    return {"code": s.code, "name": s.name, "adapter": s.adapter, "enabled": s.enabled,
            "allowlistRequired": s.allowlist_required, "createdAt": s.created_at,
            "allowedRobots": sorted(a.robot_id for a in s.allowed)}


def executor_json(e: Executor) -> dict:
    return {"id": e.id, "supplier": e.supplier_id, "version": e.version, "labels": json.loads(e.labels),
            "slots": e.slots, "state": e.state, "transport": e.transport, "registeredAt": e.registered_at,
            "lastHeartbeat": e.last_heartbeat, "paused": e.paused, "pausedNote": e.paused_note}


def licence_json(lic: Licence) -> dict:
    return {"id": lic.id, "supplier": lic.supplier_id, "robotId": lic.robot_id, "pool": lic.pool,
            "features": json.loads(lic.features), "notBefore": lic.not_before, "expiresAt": lic.expires_at,
            "supersedes": lic.supersedes, "revokedAt": lic.revoked_at, "licenseContent": lic.content}


def package_json(p: Package) -> dict:
    return {"id": p.id, "name": p.name, "version": p.version, "kind": p.kind, "entry": p.entry,
            "sha256": p.file.sha256, "size": p.file.size, "createdBy": p.created_by, "createdAt": p.created_at}


def run_json(r: RunInstance) -> dict:
    return {"id": r.id, "packageId": r.package_id, "executorId": r.executor_id, "state": r.state,
            "arguments": json.loads(r.arguments), "userId": r.user_id, "userName": r.user_name,
            "videoRecordRequired": r.video_required, "videoRecordMode": r.video_mode, "attempt": r.attempt,
            "finishStatus": r.finish_status, "errorCode": r.error_code, "outputs": json.loads(r.outputs or "{}"),
            "checkpoint": json.loads(r.checkpoint) if r.checkpoint else None, "checkpointAt": r.checkpoint_at,
            "videoId": r.video_id, "createdAt": r.created_at, "dispatchedAt": r.dispatched_at,
            "startedAt": r.started_at, "finishedAt": r.finished_at}


def log_json(row: RunLog) -> dict:
    return {"id": row.id, "content": row.content, "screenshot": row.screenshot, "logAt": row.log_at,
            "logLevel": row.level}


# -- suppliers and executors -----------------------------------------------------


class Suppliers:
    def __init__(self, hub, adapters):
        self.hub, self.adapters = hub, adapters

    @operation(permission="executors.read", summary="Suppliers whose executors may register", query=PageQuery,
               tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, paginate(Supplier.select().order_by(Supplier.code), req.context.query, supplier_json))

    @operation(permission="executors.manage", summary="Admit a supplier (its secret is shown once)",
               body=SupplierIn, tags=TAGS, audit="supplier.create", status=201)
    def on_post(self, req, resp):
        body = req.context.body
        if body.adapter not in self.adapters:
            raise BadRequest(f"adapter: {body.adapter!r} is not installed ({', '.join(sorted(self.adapters))})")
        if Supplier.get_or_none(Supplier.code == body.code):
            raise Conflict(f"code: supplier {body.code} exists")
        secret = body.secret or secrets.token_urlsafe(32)
        supplier = Supplier.create(code=body.code, name=body.name, secret_enc=self.hub.keys.encrypt(secret),
                                   adapter=body.adapter, enabled=body.enabled,
                                   allowlist_required=body.allowlistRequired)
        for robot in sorted(set(body.allowedRobots)):
            AllowedRobot.create(supplier=supplier, robot_id=robot)
        req.context.audit_target = body.code
        self.hub.publish("supplier.created", supplier=body.code)
        ok(resp, {**supplier_json(supplier), "secret": secret}, status=201)


class SupplierItem:
    def __init__(self, hub, adapters, gateway):
        self.hub, self.adapters, self.gateway = hub, adapters, gateway

    def _get(self, code):
        supplier = Supplier.get_or_none(Supplier.code == code)
        if supplier is None:
            raise NotFound(f"supplier {code} not found")
        return supplier

    @operation(permission="executors.read", summary="One supplier", tags=TAGS)
    def on_get(self, req, resp, code):
        ok(resp, supplier_json(self._get(code)))

    @operation(permission="executors.manage", summary="Enable, disable, re-adapt a supplier or rotate its secret",
               body=SupplierPatch, tags=TAGS, audit="supplier.update")
    def on_patch(self, req, resp, code):
        supplier, body = self._get(code), req.context.body
        if body.adapter is not None:
            if body.adapter not in self.adapters:
                raise BadRequest(f"adapter: {body.adapter!r} is not installed")
            supplier.adapter = body.adapter
        for attr, value in (("name", body.name), ("enabled", body.enabled),
                            ("allowlist_required", body.allowlistRequired)):
            if value is not None:
                setattr(supplier, attr, value)
        value = supplier_json(supplier)
        if body.rotateSecret:
            secret = secrets.token_urlsafe(32)
            supplier.secret_enc = self.hub.keys.encrypt(secret)
            value["secret"] = secret
        supplier.save()
        if body.allowedRobots is not None:
            AllowedRobot.delete().where(AllowedRobot.supplier == supplier).execute()
            for robot in sorted(set(body.allowedRobots)):
                AllowedRobot.create(supplier=supplier, robot_id=robot)
        if body.enabled is False:  # a disabled supplier's robots are cut off now
            Executor.update(state="offline", connect_id=None).where(Executor.supplier == supplier).execute()
            hubdb.after_commit(lambda: self.gateway.kick(code, f"supplier {code} was disabled"))
        self.hub.publish("supplier.updated", supplier=code)  # its adapter or state may change what its robots run
        ok(resp, {**supplier_json(supplier), **({"secret": value["secret"]} if "secret" in value else {})})


class Executors:
    @operation(permission="executors.read", summary="Admitted executors with their state", query=ExecutorQuery,
               tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Executor.select().order_by(Executor.id)
        if q.state:
            query = query.where(Executor.state == q.state)
        if q.supplier:
            query = query.where(Executor.supplier == q.supplier)
        if q.q:
            query = query.where(Executor.id.contains(q.q))
        if q.paused is not None:
            query = query.where(Executor.paused == q.paused)
        for label in q.label:  # labels are a sorted JSON list: match the quoted element
            query = query.where(Executor.labels.contains(json.dumps(label, ensure_ascii=False)))
        ok(resp, paginate(query, q, executor_json))


class AdapterList:
    """What a supplier may be admitted with: the vendor adapters installed (stevedore)."""

    def __init__(self, adapters: dict):
        self.adapters = adapters

    @operation(permission="executors.read", summary="Installed vendor adapters and the package kinds each runs",
               tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, [{"name": name, "packageKinds": list(getattr(a, "package_kinds", ()) or ())}
                  for name, a in sorted(self.adapters.items())])


class ExecutorPatch(ApiModel):
    labels: list[str] | None = Field(None, max_length=32, description="used by label affinity")
    slots: int | None = Field(None, ge=1, le=64, description="runs it may hold at once")
    paused: bool | None = Field(None, description="true: no new run is placed on it (it finishes what it holds)")
    pausedNote: str | None = Field(None, max_length=200, description="why it is paused (shown beside it)")


class ExecutorItem:
    def __init__(self, hub):
        self.hub = hub

    def _get(self, robot_id):
        e = Executor.get_or_none(Executor.id == robot_id)
        if e is None:
            raise NotFound(f"executor {robot_id} not found")
        return e

    @operation(permission="executors.read", summary="One executor", tags=TAGS)
    def on_get(self, req, resp, robot_id):
        ok(resp, executor_json(self._get(robot_id)))

    @operation(permission="executors.manage", summary="Set an executor's labels and slots, or pause it from "
               "dispatch", body=ExecutorPatch, tags=TAGS, audit="executor.update")
    def on_patch(self, req, resp, robot_id):
        e, b = self._get(robot_id), req.context.body
        if b.labels is not None:
            e.labels = json.dumps(sorted(set(b.labels)), ensure_ascii=False)
        if b.slots is not None:
            e.slots = b.slots
        if b.paused is not None:
            e.paused = b.paused
            e.paused_note = (b.pausedNote or "").strip() if b.paused else ""
        elif b.pausedNote is not None and e.paused:
            e.paused_note = b.pausedNote.strip()
        e.save()
        # after the commit: whoever keeps executors in memory (the dispatcher) reads it again
        self.hub.publish("executor.updated", robotId=e.id)
        ok(resp, executor_json(e))


# -- licences ------------------------------------------------------------------------


class LicenceQuery(PageQuery):
    robotId: str | None = Field(None, max_length=128)
    pool: str | None = Field(None, max_length=64)
    supplier: str | None = Field(None, max_length=64)
    state: Literal["valid", "expired", "revoked"] | None = None
    expiringWithinDays: int | None = Field(None, ge=0, le=3650, description="valid licences ending within this many days")


class Licences:
    def __init__(self, licences):
        self.licences = licences

    @operation(permission="licences.manage", summary="Issued licences, filtered by robot, pool, supplier or state",
               query=LicenceQuery, tags=("licences",))
    def on_get(self, req, resp):
        q, now = req.context.query, utcnow()
        query = Licence.select().order_by(Licence.created_at.desc())
        for column, value in ((Licence.robot_id, q.robotId), (Licence.pool, q.pool), (Licence.supplier, q.supplier)):
            if value:
                query = query.where(column == value)
        if q.state == "revoked":
            query = query.where(Licence.revoked_at.is_null(False))
        elif q.state == "expired":
            query = query.where(Licence.revoked_at.is_null() & (Licence.expires_at <= now))
        elif q.state == "valid":
            query = query.where(Licence.revoked_at.is_null() & (Licence.expires_at > now) & (Licence.not_before <= now))
        if q.expiringWithinDays is not None:
            query = query.where(Licence.revoked_at.is_null() & (Licence.expires_at > now)
                                & (Licence.expires_at <= now + dt.timedelta(days=q.expiringWithinDays)))
        ok(resp, paginate(query, q, licence_json))

    @operation(permission="licences.manage", summary="Issue a signed licence bound to a robot or a pool",
               body=LicenceIn, tags=("licences",), audit="licence.issue", status=201)
    def on_post(self, req, resp):
        b = req.context.body
        lic = self.licences.issue(supplier=b.supplier, robot_id=b.robotId, pool=b.pool, features=b.features,
                                  days=b.days)
        req.context.audit_target = lic.id
        ok(resp, licence_json(lic), status=201)


class LicenceRevoke:
    def __init__(self, licences):
        self.licences = licences

    @operation(permission="licences.manage", summary="Revoke a licence", tags=("licences",), audit="licence.revoke")
    def on_post(self, req, resp, licence_id):
        ok(resp, licence_json(self.licences.revoke(licence_id)))


class LicenceBind:
    def __init__(self, hub, licences):
        self.hub, self.licences = hub, licences

    @operation(permission="licences.manage", summary="Bind a licence to another robot or pool (re-issued, signed); "
               "with four-eyes binding on, files a request a second person approves", body=BindIn,
               tags=("licences",), audit="licence.bind", status=202)
    def on_post(self, req, resp, licence_id):
        b = req.context.body
        if bool(b.robotId) == bool(b.pool):
            raise BadRequest("robotId or pool: name exactly one")
        old = self.licences.get(licence_id)
        if old.revoked_at:
            raise Conflict(f"licence {licence_id} is revoked")
        if not self.licences.four_eyes:
            ok(resp, licence_json(self.licences.bind(licence_id, robot_id=b.robotId, pool=b.pool)), status=201)
            return
        from rpahub_plugins.approvals import requests

        target = f"robot {b.robotId}" if b.robotId else f"pool {b.pool}"
        request = requests(self.hub).file("licence.bind", target=licence_id, maker=req.context.principal,
                                          title=f"Bind licence {licence_id} to {target}",
                                          payload={"robot_id": b.robotId, "pool": b.pool})
        ok(resp, {"approvalRequestId": request.id, "state": request.state}, status=202)


class PublicKey:
    def __init__(self, licences):
        self.licences = licences

    def on_get(self, req, resp):
        resp.content_type = "application/x-pem-file"
        resp.text = self.licences.public_key_pem()


# -- packages and runs ---------------------------------------------------------------


class Packages:
    def __init__(self, runs, max_bytes):
        self.runs, self.max_bytes = runs, max_bytes

    @operation(permission="runs.read", summary="Flow packages", query=PageQuery, tags=("runs",))
    def on_get(self, req, resp):
        ok(resp, paginate(Package.select().order_by(Package.created_at.desc()), req.context.query, package_json))

    @operation(permission="packages.manage", summary="Upload a flow package (multipart: name, version, file)",
               raw_body="multipart/form-data", tags=("runs",), audit="package.upload", status=201,
               transactional=False)
    def on_post(self, req, resp):
        fields, data = read_multipart(req, self.max_bytes)
        name, version = fields.get("name", ""), fields.get("version", "")
        if not re.fullmatch(r"[\w.-]{1,128}", name):
            raise BadRequest("name: 1-128 letters, digits, '.', '_' or '-'")
        if not re.fullmatch(r"[\w.+-]{1,64}", version):
            raise BadRequest("version: 1-64 letters, digits, '.', '+', '_' or '-'")
        if data is None:
            raise BadRequest("file: required")
        package = self.runs.add_package(name=name, version=version, data=data,
                                        created_by=req.context.principal.name)
        req.context.audit_target = f"{name}@{version}"
        ok(resp, package_json(package), status=201)


class PackageDownload:
    def __init__(self, runs):
        self.runs = runs

    def on_get(self, req, resp, package_id):
        package = self.runs.verify_download(package_id, req.get_param("token") or "")
        resp.content_type = "application/zip"
        resp.downloadable_as = f"{package.name}-{package.version}.zip"
        resp.set_header("X-Content-SHA256", package.file.sha256)
        resp.stream = self.runs.files.open(package.file)
        resp.content_length = package.file.size


class Runs:
    def __init__(self, runs):
        self.runs = runs

    @operation(permission="runs.read", summary="Run instances", query=RunQuery, tags=("runs",))
    def on_get(self, req, resp):
        q = req.context.query
        query = RunInstance.select().order_by(RunInstance.created_at.desc())
        if q.executorId:
            query = query.where(RunInstance.executor_id == q.executorId)
        if q.state:
            query = query.where(RunInstance.state == q.state)
        if q.packageId:
            query = query.where(RunInstance.package == q.packageId)
        ok(resp, paginate(query, q, run_json))

    @operation(permission="runs.start", summary="Start a package on an admitted executor", body=RunIn,
               tags=("runs",), audit="run.start", status=201)
    def on_post(self, req, resp):
        b, who = req.context.body, req.context.principal
        run = self.runs.start(package_id=b.packageId, executor_id=b.executorId,
                              arguments=[a.model_dump() for a in b.arguments], user_id=who.id, user_name=who.name,
                              video_required=b.videoRecordRequired, video_mode=b.videoRecordMode)
        req.context.audit_target = run.id
        ok(resp, run_json(run), status=201)


class RunItem:
    def __init__(self, runs):
        self.runs = runs

    @operation(permission="runs.read", summary="One run with its timeline", tags=("runs",))
    def on_get(self, req, resp, run_id):
        run = self.runs.get(run_id)
        timeline = [{"at": e.at, "state": e.state, "detail": e.detail}
                    for e in RunEvent.select().where(RunEvent.run == run.id).order_by(RunEvent.id)]
        ok(resp, {**run_json(run), "timeline": timeline,
                  "logCount": RunLog.select().where(RunLog.run == run.id).count()})


class RunStop:
    def __init__(self, runs):
        self.runs = runs

    @operation(permission="runs.stop", summary="Stop a run (sends Stop to its executor)", tags=("runs",),
               audit="run.stop")
    def on_post(self, req, resp, run_id):
        ok(resp, run_json(self.runs.stop(run_id, by=req.context.principal.name)))


class RunLogs:
    def __init__(self, runs):
        self.runs = runs

    @operation(permission="runs.read", summary="A run's logs in the order they were reported", query=LogQuery,
               tags=("runs",))
    def on_get(self, req, resp, run_id):
        run, q = self.runs.get(run_id), req.context.query
        query = RunLog.select().where(RunLog.run == run.id).order_by(RunLog.id)
        if q.level is not None:
            query = query.where(RunLog.level == q.level)
        ok(resp, paginate(query, q, log_json))


# -- files -------------------------------------------------------------------------


def read_multipart(req, max_bytes: int) -> tuple[dict[str, str], bytes | None]:
    """Text fields and the ``file`` part of a multipart/form-data body."""
    if not (req.content_type or "").startswith("multipart/form-data"):
        raise BadRequest("Content-Type: must be multipart/form-data")
    fields: dict[str, str] = {}
    data = None
    try:
        for part in req.get_media():
            if part.name == "file":
                data = part.stream.read(max_bytes + 1)
                if len(data) > max_bytes:
                    raise PayloadTooLarge(f"file: larger than {max_bytes} bytes")
                fields["__filename"] = part.secure_filename if part.filename else "file"
                fields["__content_type"] = part.content_type or "application/octet-stream"
            else:
                fields[part.name] = form_text(part, 1024)
    except falcon.MediaMalformedError as exc:
        raise BadRequest(f"body: malformed multipart ({exc.description or 'bad form'})") from None
    return fields, data


class Upload:
    """A.2.7 ``/v1/file/{source}/upload``: people, robots (robotConnectId) and runs (runToken)."""

    def __init__(self, hub, files):
        self.hub, self.files = hub, files

    @operation(permission=ANY_PRINCIPAL, summary="Upload a file (A.2.7); returns fileId, fileName, fileUrl",
               raw_body="multipart/form-data", tags=("files",), audit="file.upload", transactional=False)
    def on_post(self, req, resp, source):
        check_source(source)
        who = req.context.principal
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise BadRequest("Content-Type: must be multipart/form-data")
        stored = None
        try:
            for part in req.get_media():
                if part.name != "file" or stored is not None:
                    continue
                stored = self.files.save(part.stream, name=part.filename or "file",
                                         content_type=part.content_type or "", source=source,
                                         uploaded_by=f"{who.kind}:{who.id}",
                                         run_id=getattr(who, "run_id", None) if isinstance(who, RobotPrincipal)
                                         else None)
        except falcon.MediaMalformedError as exc:
            raise BadRequest(f"body: malformed multipart ({exc.description or 'bad form'})") from None
        if stored is None:
            raise BadRequest("file: required")
        req.context.audit_target = stored.id
        ok(resp, {"fileId": stored.id, "fileName": stored.name, "fileUrl": file_url(self.hub, stored.id)})


class PersonalFiles:
    """A.2.8 ``/design/personalfile``: put an uploaded file into a person's folder."""

    def __init__(self, hub, files):
        self.hub, self.files = hub, files

    @operation(permission=ANY_PRINCIPAL, summary="Put an uploaded file into a personal folder (A.2.8)",
               body=wire.PersonalFileBody, tags=("files",), audit="personalfile.add")
    def on_post(self, req, resp):
        b, who = req.context.body, req.context.principal
        if not b.fileId:
            raise BadRequest("fileId: required")
        stored = self.files.get(b.fileId)
        if isinstance(who, RobotPrincipal):
            if not b.runInstanceId:
                raise BadRequest("runInstanceId: a robot files into the folder of the user its run is for")
            run = RunInstance.get_or_none(RunInstance.id == b.runInstanceId)
            if run is None or run.executor_id != who.id:
                raise BadRequest("runInstanceId: not a run of this executor")
            if b.userId and b.userId != run.user_id:
                raise Forbidden("userId: a robot may only file for the user of its run")
            owner_id, owner_name = run.user_id, run.user_name
        else:
            owner_id, owner_name = who.id, who.name
        if stored.uploaded_by != f"{who.kind}:{who.id}":  # a file id is no key to someone else's file
            raise Forbidden(f"fileId: not uploaded by this {'executor' if who.kind == 'robot' else 'person'}")
        with hubdb.atomic():
            admit = self.hub.state.get("personal_folders.admit")  # the folder quota (ops plugin, 6.3.2d)
            if admit is not None:
                admit(owner_id, stored.size)
            row = PersonalFile.create(file=stored, owner_id=owner_id, owner_name=owner_name,
                                      name=b.fileName or stored.name, run_id=b.runInstanceId,
                                      added_by=f"{who.kind}:{who.id}")
        req.context.audit_target = row.id
        ok(resp, None)


class FileContent:
    def __init__(self, files):
        self.files = files

    @operation(permission="files.read", summary="Download a stored file (HTTP Range supported)", tags=("files",),
               produces="*/*")
    def on_get(self, req, resp, file_id):
        row = self.files.get(file_id)
        send_file(req, resp, self.files.open(row), row.size, row.content_type, row.name)


def send_file(req, resp, fh, size: int, content_type: str, name: str) -> None:
    """Stream a file, honouring a single ``Range: bytes=a-b`` so players can seek."""
    resp.content_type = content_type
    resp.set_header("Accept-Ranges", "bytes")
    resp.downloadable_as = name
    rng = req.range
    if rng and req.range_unit == "bytes":
        start, end = rng
        if start < 0:
            start, end = max(0, size + start), size - 1
        end = size - 1 if end == -1 else min(end, size - 1)
        if start >= size or start > end:
            fh.close()
            resp.status = falcon.HTTP_416
            resp.set_header("Content-Range", f"bytes */{size}")
            resp.media = None
            resp.text = ""
            return
        fh.seek(start)
        resp.status = falcon.HTTP_206
        resp.content_range = (start, end, size)
        resp.stream = _limited(fh, end - start + 1)
        resp.content_length = end - start + 1
        return
    resp.stream = fh
    resp.content_length = size


def _limited(fh, remaining: int):
    try:
        while remaining > 0:
            chunk = fh.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        fh.close()
