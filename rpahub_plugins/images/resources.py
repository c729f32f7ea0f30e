"""Thin Falcon resources of the images API: validate, call the service, answer."""

from __future__ import annotations

import json
import re

import falcon

from rpahub_core.errors import BadRequest, ValidationFailed
from rpahub_core.web import PageQuery, ok, operation, paginate
from rpahub_plugins.executors.files import form_text
from rpahub_plugins.executors.resources import send_file

from .models import Image, ImageVersion, Instance
from .schemas import VERSION, DiffQuery, ImageIn, ImagePatch, ImageQuery, InstanceQuery
from .service import Images

TAGS = ("images",)


def image_json(image: Image) -> dict:
    latest = (ImageVersion.select(ImageVersion.version).where(ImageVersion.image == image.id)
              .order_by(ImageVersion.created_at.desc(), ImageVersion.id.desc()).first())
    return {"id": image.id, "name": image.name, "kind": image.kind, "provider": image.provider,
            "description": image.description, "createdBy": image.created_by, "createdAt": image.created_at,
            "latestVersion": latest.version if latest else None}


def version_json(v: ImageVersion) -> dict:
    return {"id": v.id, "imageId": v.image_id, "version": v.version, "fileId": v.file_id, "fileName": v.file.name,
            "sha256": v.sha256, "size": v.size, "spec": json.loads(v.spec), "notes": v.notes,
            "createdBy": v.created_by, "createdAt": v.created_at}


def instance_json(i: Instance, provider_available: bool | None = None) -> dict:
    out = {"id": i.id, "imageId": i.image_id, "imageName": i.image_name, "versionId": i.version_id,
           "version": i.version, "kind": i.kind, "provider": i.provider, "state": i.state, "host": i.host,
           "info": json.loads(i.info or "{}"), "startedBy": i.started_by, "startedAt": i.started_at,
           "stoppedAt": i.stopped_at, "updatedAt": i.updated_at}
    if provider_available is not None:
        out["providerAvailable"] = provider_available
    return out


class ImageList:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.read", summary="Executor and designer images (6.2.2b)", query=ImageQuery,
               tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Image.select().order_by(Image.name)
        if q.kind:
            query = query.where(Image.kind == q.kind)
        if q.q:
            query = query.where(Image.name.contains(q.q))
        ok(resp, paginate(query, q, image_json))

    @operation(permission="images.manage", summary="Create an image; upload its versions next", body=ImageIn,
               tags=TAGS, audit="image.create", status=201)
    def on_post(self, req, resp):
        b = req.context.body
        image = self.images.create(name=b.name, kind=b.kind, provider=b.provider, description=b.description,
                                   created_by=req.context.principal.name)
        req.context.audit_target = image.id
        ok(resp, image_json(image), status=201)


class ImageItem:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.read", summary="An image", tags=TAGS)
    def on_get(self, req, resp, image_id):
        ok(resp, image_json(self.images.get(image_id)))

    @operation(permission="images.manage", summary="Change an image's provider or description", body=ImagePatch,
               tags=TAGS, audit="image.update")
    def on_patch(self, req, resp, image_id):
        ok(resp, image_json(self.images.update(image_id, req.context.body.model_dump(exclude_none=True))))

    @operation(permission="images.manage", summary="Delete an image and its versions (409 while instances run)",
               tags=TAGS, audit="image.delete")
    def on_delete(self, req, resp, image_id):
        self.images.delete(image_id)
        ok(resp, None)


class VersionList:
    def __init__(self, images: Images, files):
        self.images, self.files = images, files

    @operation(permission="images.read", summary="An image's versions, newest first", query=PageQuery, tags=TAGS)
    def on_get(self, req, resp, image_id):
        image = self.images.get(image_id)
        query = (ImageVersion.select().where(ImageVersion.image == image.id)
                 .order_by(ImageVersion.created_at.desc(), ImageVersion.id.desc()))
        ok(resp, paginate(query, req.context.query, version_json))

    @operation(permission="images.manage",
               summary="Upload an image file as a new, immutable version (multipart: version, spec, notes, file)",
               raw_body="multipart/form-data", tags=TAGS, audit="image_version.upload", status=201,
               transactional=False)
    def on_post(self, req, resp, image_id):
        image = self.images.get(image_id)
        who = req.context.principal
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise BadRequest("Content-Type: must be multipart/form-data")
        fields: dict[str, str] = {}
        stored = None
        try:
            for part in req.get_media():
                if part.name == "file" and stored is None:
                    # Streamed to the file store: an image may be far larger than memory.
                    stored = self.files.save(part.stream, name=part.filename or "image", source="image",
                                             content_type=part.content_type or "", uploaded_by=f"{who.kind}:{who.id}")
                elif part.name != "file":
                    fields[part.name] = form_text(part, 65536)
        except falcon.MediaMalformedError as exc:
            self._discard(stored)
            raise BadRequest(f"body: malformed multipart ({exc.description or 'bad form'})") from None
        except BadRequest:
            self._discard(stored)
            raise
        try:
            version = fields.get("version", "")
            if not re.fullmatch(VERSION, version):
                raise BadRequest("version: 1-64 letters, digits, '.', '+', '_' or '-'")
            unknown = sorted(set(fields) - {"version", "spec", "notes"})
            if unknown:
                raise ValidationFailed([{"field": f, "message": "unknown field"} for f in unknown])
            try:
                spec = json.loads(fields.get("spec") or "{}")
            except ValueError:
                raise BadRequest("spec: not valid JSON") from None
            if stored is None:
                raise BadRequest("file: required")
            row = self.images.add_version(image, version=version, spec=spec, notes=fields.get("notes", "")[:4096],
                                          stored=stored, created_by=who.name)
        except BaseException:
            self._discard(stored)
            raise
        req.context.audit_target = f"{image.name}@{version}"
        ok(resp, version_json(row), status=201)

    @staticmethod
    def _discard(stored) -> None:
        """Forget the row of a file whose version was refused (identical content may be shared: keep the bytes)."""
        if stored is not None:
            from rpahub_core import db as hubdb

            with hubdb.atomic():
                stored.delete_instance()


class VersionItem:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.read", summary="One version of an image", tags=TAGS)
    def on_get(self, req, resp, image_id, version):
        ok(resp, version_json(self.images.version(image_id, version)))


class VersionFile:
    def __init__(self, images: Images, files):
        self.images, self.files = images, files

    @operation(permission="images.read", summary="Download a version's image file (HTTP Range supported)",
               tags=TAGS, produces="*/*")
    def on_get(self, req, resp, image_id, version):
        row = self.images.version(image_id, version)
        resp.set_header("X-Content-SHA256", row.sha256)
        send_file(req, resp, self.files.open(row.file), row.size, row.file.content_type, row.file.name)


class VersionDiff:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.read", summary="What changed in the spec between two versions", query=DiffQuery,
               tags=TAGS)
    def on_get(self, req, resp, image_id):
        q = req.context.query
        a, b = self.images.version(image_id, q.base), self.images.version(image_id, q.other)
        old, new = json.loads(a.spec), json.loads(b.spec)
        changes = [{"field": k, "from": old.get(k), "to": new.get(k)} for k in sorted({*old, *new})
                   if old.get(k) != new.get(k)]
        ok(resp, {"base": a.version, "other": b.version, "fileChanged": a.sha256 != b.sha256, "spec": changes})


class VersionStart:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.manage", summary="Start an instance of an image version with its provider",
               tags=TAGS, audit="instance.start", status=201, transactional=False)
    def on_post(self, req, resp, image_id, version):
        instance = self.images.start(image_id, version, started_by=req.context.principal.name)
        req.context.audit_target = instance.id
        ok(resp, instance_json(instance), status=201)


class InstanceList:
    @operation(permission="images.read", summary="Instances started from images, newest first",
               query=InstanceQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Instance.select().order_by(Instance.started_at.desc(), Instance.id)
        if q.imageId:
            query = query.where(Instance.image_id == q.imageId)
        if q.state:
            query = query.where(Instance.state == q.state)
        ok(resp, paginate(query, q, instance_json))


class InstanceItem:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.read", summary="An instance with its current VM information from its provider",
               tags=TAGS)
    def on_get(self, req, resp, instance_id):
        instance, available = self.images.describe(instance_id)
        ok(resp, instance_json(instance, available))


class InstanceRecycle:
    def __init__(self, images: Images):
        self.images = images

    @operation(permission="images.manage", summary="Recycle an instance: its provider stops it", tags=TAGS,
               audit="instance.recycle", transactional=False)
    def on_post(self, req, resp, instance_id):
        ok(resp, instance_json(self.images.recycle(instance_id, by=req.context.principal.name)))
