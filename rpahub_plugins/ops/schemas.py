"""Request shapes of the ops center API; they validate input and feed the OpenAPI document."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from rpahub_core.web import ApiModel, PageQuery

RUN_STATES = ("pending", "dispatched", "running", "stopping", "retrying", "success", "failed", "cancelled")
RESULTS = ("success", "failed", "cancelled")
KINDS = ("failure_rate", "executor_offline", "queue_wait", "licence_expiry")
SEVERITIES = ("info", "warning", "critical")
GROUPS = ("state", "app", "executor", "day", "hour")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """Every stored time is naive UTC; a time with an offset is converted, one without is UTC."""
    if value is not None and value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


UtcTime = Annotated[dt.datetime, AfterValidator(_utc)]
Id = Annotated[str, Field(min_length=1, max_length=128)]


def _ordered(model, low: str, high: str):
    a, b = getattr(model, low), getattr(model, high)
    if a is not None and b is not None and a > b:
        raise ValueError(f"{low} must not be after {high}")
    return model


class OpsRunQuery(PageQuery):
    appId: Id | None = Field(None, description="runs started from this app")
    executorId: Id | None = None
    state: Literal[RUN_STATES] | None = None
    user: Id | None = Field(None, description="user id or user name of who started it")
    createdFrom: UtcTime | None = Field(None, description="created at or after (ISO 8601; UTC unless an offset)")
    createdTo: UtcTime | None = Field(None, description="created before")
    q: str | None = Field(None, max_length=128, description="part of the package name")

    @model_validator(mode="after")
    def _range(self):
        return _ordered(self, "createdFrom", "createdTo")


class OpsLogQuery(PageQuery):
    pageSize: int = Field(100, ge=1, le=1000)
    level: int | None = Field(None, ge=0, le=2, description="only this level (0 info, 1 warning, 2 error)")
    minLevel: int | None = Field(None, ge=0, le=2, description="this level and above")
    hasScreenshot: bool | None = Field(None, description="only rows that carry (true) or lack (false) a screenshot")
    after: int | None = Field(None, ge=0, description="only rows after this log id (live tailing)")


class StatsQuery(ApiModel):
    from_: UtcTime | None = Field(None, alias="from", description="runs created at or after (default: 24 h ago)")
    to: UtcTime | None = Field(None, description="runs created before (default: now)")
    groupBy: Literal[GROUPS] | None = None
    appId: Id | None = None
    executorId: Id | None = None
    licenceDays: int = Field(30, ge=0, le=3650, description="licences expiring within this many days")

    @model_validator(mode="after")
    def _range(self):
        if self.from_ is not None and self.to is not None and self.from_ >= self.to:
            raise ValueError("from must be before to")
        return self


class ChannelIn(ApiModel):
    notifier: str = Field(min_length=1, max_length=64, description="a notifier's name: webhook, email, ...")
    target: str = Field(min_length=1, max_length=1024, description="its address: a URL, e-mail addresses ...")


class RuleFilters(ApiModel):
    appId: Id | None = None
    executorId: Id | None = None
    pool: Id | None = None
    supplier: Id | None = None
    robotId: Id | None = None
    minRuns: int | None = Field(None, ge=1, le=100000, description="failure_rate: fewer finished runs never fire")


class RuleIn(ApiModel):
    name: str = Field(min_length=1, max_length=128)
    kind: Literal[KINDS]
    threshold: float = Field(description="failure_rate: percent; executor_offline: executors; "
                                         "queue_wait: minutes; licence_expiry: days ahead")
    windowMinutes: int = Field(15, ge=1, le=43200, description="failure_rate: runs finished in this window; "
                                                               "executor_offline: silent at least this long")
    filters: RuleFilters = RuleFilters()
    severity: Literal[SEVERITIES] = "warning"
    channels: list[ChannelIn] = Field([], max_length=20)
    enabled: bool = True
    cooldownMinutes: int = Field(60, ge=0, le=43200, description="a firing rule notifies again at most this "
                                                                 "often; 0: only when it starts and clears")


class RulePatch(ApiModel):
    name: str | None = Field(None, min_length=1, max_length=128)
    threshold: float | None = None
    windowMinutes: int | None = Field(None, ge=1, le=43200)
    filters: RuleFilters | None = None
    severity: Literal[SEVERITIES] | None = None
    channels: list[ChannelIn] | None = Field(None, max_length=20)
    enabled: bool | None = None
    cooldownMinutes: int | None = Field(None, ge=0, le=43200)


class RuleQuery(PageQuery):
    kind: Literal[KINDS] | None = None
    q: str | None = Field(None, max_length=128, description="part of the name")


class AlertQuery(PageQuery):
    ruleId: Id | None = None
    state: Literal["firing", "resolved"] | None = None
    since: UtcTime | None = None
    acknowledged: bool | None = Field(None, description="true: alerts someone acknowledged; false: alerts "
                                                        "(opening events) nobody did; narrows firing and history")


class AcknowledgeIn(ApiModel):
    note: str = Field("", max_length=500, description="what one is doing about it, for colleagues")


class FileQuery(PageQuery):
    q: str | None = Field(None, max_length=255, description="part of the file name")


class FolderQuery(FileQuery):
    userId: Id | None = Field(None, description="one person's folder")


class ResourceQuery(ApiModel):
    refresh: bool = Field(False, description="ask each provider for its instances' state now")
    includeStopped: bool = Field(False, description="list recycled and failed instances too")
