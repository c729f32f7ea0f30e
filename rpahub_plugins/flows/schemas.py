"""Request shapes of the flows API; they validate input and feed the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rpahub_core.web import ApiModel, PageQuery
from rpahub_plugins.executors.resources import ArgumentIn

FAILURE_POLICIES = ("stop_all", "continue_independent")


class TaskIn(ApiModel):
    key: str = Field(min_length=1, max_length=64, description="unique in the flow; letters, digits, '_', '-'")
    packageId: str = Field(min_length=1, max_length=32)
    parents: list[str] = Field([], description="keys of the tasks that must succeed first")
    executorId: str | None = Field(None, max_length=128, description="one executor, or")
    pool: str | None = Field(None, max_length=64, description="any member of a pool, or")
    labels: list[str] = Field([], description="any executor carrying all these labels (none: any executor)")
    arguments: list[ArgumentIn] = Field([], description="the parents' outputs are added as <parentKey>.<name>")
    priority: int = Field(0, ge=-100, le=100, description="also orders tasks that are ready together")
    maxAttempts: int | None = Field(None, ge=1, le=20)


class FlowIn(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=2048)
    failurePolicy: Literal["stop_all", "continue_independent"] = Field(
        "stop_all", description="stop_all: a failure cancels the rest; continue_independent: branches that do "
                                "not depend on the failed task finish, its descendants are skipped")
    tasks: list[TaskIn] = Field(min_length=1, max_length=200)


class FlowPut(FlowIn):
    version: int | None = Field(None, description="the version you edited: refused (409) if the flow changed since")


class FlowQuery(PageQuery):
    q: str | None = Field(None, max_length=128, description="part of the name")


class FlowRunQuery(PageQuery):
    flowId: str | None = Field(None, max_length=32)
    state: Literal["pending", "running", "success", "failed", "cancelled"] | None = None
