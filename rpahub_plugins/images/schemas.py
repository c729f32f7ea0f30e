"""Request shapes of the images API, and the spec each kind of image starts with."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rpahub_core.web import ApiModel, PageQuery

KINDS = ("executor", "designer")
STATES = ("starting", "running", "stopped", "failed")
VERSION = r"^[\w][\w.+-]{0,63}$"


class ImageIn(ApiModel):
    name: str = Field(min_length=1, max_length=128, pattern=r"^[\w][\w.-]*$")
    kind: Literal["executor", "designer"]
    provider: str = Field("local", min_length=1, max_length=64, pattern=r"^[\w][\w.-]*$",
                          description="the cloud provider that starts it (rpahub_cloud_providers)")
    description: str = Field("", max_length=2048)


class ImagePatch(ApiModel):
    provider: str | None = Field(None, min_length=1, max_length=64, pattern=r"^[\w][\w.-]*$")
    description: str | None = Field(None, max_length=2048)


class ImageQuery(PageQuery):
    kind: Literal["executor", "designer"] | None = None
    q: str | None = Field(None, max_length=128, description="part of the name")


class InstanceQuery(PageQuery):
    imageId: str | None = Field(None, max_length=32)
    state: Literal["starting", "running", "stopped", "failed"] | None = None


class DiffQuery(ApiModel):
    base: str = Field(pattern=VERSION, description="the older version")
    other: str = Field(pattern=VERSION, description="the version compared with it")


class ExecutorSpec(ApiModel):
    """What an executor started from the image is."""

    labels: list[str] = Field([], max_length=32, description="its labels, for label affinity")
    slots: int = Field(1, ge=1, le=64, description="runs it may hold at once")
    transport: Literal["ws", "http"] = "ws"


class DesignerSpec(ApiModel):
    """What a designer started from the image is registered as."""

    vendor: str = Field("rpahub", min_length=1, max_length=64, pattern=r"^[\w][\w.-]*$")
    version: str = Field("", max_length=64)
    capacity: int = Field(1, ge=1, le=1000, description="people it serves at once")


SPECS = {"executor": ExecutorSpec, "designer": DesignerSpec}
