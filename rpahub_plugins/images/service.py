"""Executor and designer image management (T/CES 130-2022, 6.2.2b).

Images hold immutable versions (an uploaded file with the spec it starts with); an
instance is started from a version by the image's cloud provider and recycled by it.
Providers come from ``rpahub_cloud_providers`` — see that hook's docstring for the
contract. The hub keeps each instance's last known VM information, refreshed from its
provider whenever someone looks at it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import Conflict, HubError, NotFound, ValidationFailed
from rpahub_core.web import validation_errors

from .models import Image, ImageVersion, Instance
from .schemas import SPECS, STATES

log = logging.getLogger("rpahub.images")

LIVE = ("starting", "running")


class ProviderFailed(HubError):
    """The cloud provider could not do what was asked (HTTP 502): the hub itself is fine."""

    status = 502


@dataclass
class ImageRef:
    """What a provider is told about the image an instance starts from."""

    id: str
    name: str
    kind: str
    version: str
    spec: dict[str, Any]
    file: Any  # the version's StoredFile (sha256, size, name); open it with the executors' FileStore
    sha256: str


@dataclass
class InstanceRef:
    """What a provider's ``start``, ``stop`` and ``describe`` receive."""

    id: str
    image: ImageRef
    provider: str
    host: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def check_spec(kind: str, spec: Any) -> dict[str, Any]:
    """The spec of a ``kind`` image, with defaults filled in; errors name ``spec.<field>``."""
    from pydantic import ValidationError

    if not isinstance(spec, dict):
        raise ValidationFailed([{"field": "spec", "message": "must be a JSON object"}])
    try:
        return SPECS[kind].model_validate(spec).model_dump()
    except ValidationError as exc:
        raise ValidationFailed([{**e, "field": f"spec.{e['field']}".rstrip(".")}
                                for e in validation_errors(exc)]) from None


class Images:
    def __init__(self, hub, settings: dict[str, Any]):
        self.hub = hub
        self.settings = settings

    # -- images and versions ---------------------------------------------------------------

    def create(self, *, name: str, kind: str, provider: str, description: str, created_by: str) -> Image:
        with hubdb.atomic():
            if Image.select().where(Image.name == name).exists():
                raise Conflict(f"name: image {name} exists")
            return Image.create(name=name, kind=kind, provider=provider, description=description,
                                created_by=created_by)

    def get(self, image_id: str) -> Image:
        image = Image.get_or_none(Image.id == image_id)
        if image is None:
            raise NotFound(f"image {image_id} not found")
        return image

    def update(self, image_id: str, changes: dict[str, Any]) -> Image:
        with hubdb.atomic():
            image = self.get(image_id)
            for key in ("provider", "description"):
                if changes.get(key) is not None:
                    setattr(image, key, changes[key])
            image.save()
        return image

    def delete(self, image_id: str) -> None:
        """Its versions go with it (their files stay in the file store); its instances stay as history."""
        with hubdb.atomic():
            image = self.get(image_id)
            live = Instance.select().where((Instance.image_id == image.id) & Instance.state.in_(LIVE)).count()
            if live:
                raise Conflict(f"image {image.name} has {live} instance(s) starting or running: recycle them first")
            ImageVersion.delete().where(ImageVersion.image == image.id).execute()
            image.delete_instance()

    def add_version(self, image: Image, *, version: str, spec: dict[str, Any], notes: str, stored,
                    created_by: str) -> ImageVersion:
        """Store a version; the same version twice is a conflict, never an overwrite."""
        spec = check_spec(image.kind, spec)
        with hubdb.atomic():
            if ImageVersion.select().where((ImageVersion.image == image.id)
                                           & (ImageVersion.version == version)).exists():
                raise Conflict(f"version: {image.name} {version} exists; versions never change, upload a new one")
            return ImageVersion.create(image=image.id, version=version, file=stored.id, sha256=stored.sha256,
                                       size=stored.size, spec=json.dumps(spec, ensure_ascii=False, sort_keys=True),
                                       notes=notes, created_by=created_by)

    def version(self, image_id: str, version: str) -> ImageVersion:
        image = self.get(image_id)
        row = ImageVersion.get_or_none((ImageVersion.image == image.id) & (ImageVersion.version == version))
        if row is None:
            raise NotFound(f"version {version} of image {image.name} not found")
        return row

    # -- instances ---------------------------------------------------------------------------

    def providers(self) -> dict[str, Any]:
        return {p.name: p for group in self.hub.pm.hook.rpahub_cloud_providers(hub=self.hub) if group for p in group}

    def _provider(self, name: str):
        provider = self.providers().get(name)
        if provider is None:
            raise Conflict(f"provider {name} is not available: enable the plugin that offers it "
                           f"(available: {', '.join(sorted(self.providers())) or 'none'})")
        return provider

    def ref(self, instance: Instance, version: ImageVersion | None = None) -> InstanceRef:
        version = version or ImageVersion.get_or_none(ImageVersion.id == instance.version_id)
        spec = json.loads(version.spec) if version else {}
        image = ImageRef(id=instance.image_id, name=instance.image_name, kind=instance.kind, version=instance.version,
                         spec=spec, file=version.file if version else None, sha256=version.sha256 if version else "")
        return InstanceRef(id=instance.id, image=image, provider=instance.provider, host=instance.host,
                           info=json.loads(instance.info or "{}"), settings=dict(self.settings))

    def start(self, image_id: str, version: str, *, started_by: str) -> Instance:
        """Create the instance, then ask its provider to start it (outside any transaction:
        a provider may take a moment, and the instance must exist while it does)."""
        row = self.version(image_id, version)
        image = row.image
        provider = self._provider(image.provider)
        with hubdb.atomic():
            instance = Instance.create(image_id=image.id, image_name=image.name, version_id=row.id,
                                       version=row.version, kind=image.kind, provider=image.provider,
                                       started_by=started_by)
        try:
            known = provider.start(self.ref(instance, row)) or {}
        except Exception as exc:
            log.exception("provider %s failed to start instance %s", image.provider, instance.id)
            self._store(instance, {"state": "failed", "error": f"{type(exc).__name__}: {exc}"}, stopped=True)
            raise ProviderFailed(f"provider {image.provider} could not start {image.name} {version}: {exc}",
                                 value={"instanceId": instance.id}) from None
        self._store(instance, {"state": "starting", **known})
        self.hub.publish("instance.started", instanceId=instance.id, imageId=image.id, version=row.version,
                         kind=image.kind, provider=image.provider)
        return self.instance(instance.id)

    def instance(self, instance_id: str) -> Instance:
        instance = Instance.get_or_none(Instance.id == instance_id)
        if instance is None:
            raise NotFound(f"instance {instance_id} not found")
        return instance

    def describe(self, instance_id: str) -> tuple[Instance, bool]:
        """The instance with its provider's current VM information (stored too); the flag
        says whether the provider could be asked."""
        instance = self.instance(instance_id)
        provider = self.providers().get(instance.provider)
        if provider is None or instance.stopped_at is not None:  # ended: what it was last is what it is
            return instance, provider is not None
        try:
            now = provider.describe(self.ref(instance)) or {}
        except Exception as exc:
            log.exception("provider %s failed to describe instance %s", instance.provider, instance.id)
            raise ProviderFailed(f"provider {instance.provider} could not describe instance {instance.id}: "
                                 f"{exc}") from None
        if now.get("state") not in STATES:
            now["state"] = instance.state
        gone = now["state"] in ("stopped", "failed")
        if gone and instance.kind == "designer":
            provider.stop(self.ref(instance))  # a designer that died must not be leased any more
        self._store(instance, now, stopped=gone)
        return self.instance(instance_id), True

    def recycle(self, instance_id: str, *, by: str) -> Instance:
        instance = self.instance(instance_id)
        if instance.state == "stopped":
            raise Conflict(f"instance {instance_id} is already recycled")
        provider = self._provider(instance.provider)
        try:
            provider.stop(self.ref(instance))
        except Exception as exc:
            log.exception("provider %s failed to stop instance %s", instance.provider, instance.id)
            raise ProviderFailed(f"provider {instance.provider} could not recycle instance {instance.id}: "
                                 f"{exc}") from None
        self._store(instance, {"state": "stopped", "recycledBy": by}, stopped=True)
        self.hub.publish("instance.recycled", instanceId=instance.id, imageId=instance.image_id, by=by)
        return self.instance(instance_id)

    def _store(self, instance: Instance, info: dict[str, Any], *, stopped: bool = False) -> None:
        merged = {**json.loads(instance.info or "{}"), **info}
        state = merged.pop("state")
        values = {"state": state, "info": json.dumps(merged, ensure_ascii=False, default=str),
                  "host": str(merged.get("host") or instance.host)[:255], "updated_at": utcnow()}
        if stopped and instance.stopped_at is None:
            values["stopped_at"] = utcnow()
        with hubdb.atomic():
            Instance.update(**values).where(Instance.id == instance.id).execute()
