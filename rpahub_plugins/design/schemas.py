"""Request shapes of the design-center API; they validate input and feed the OpenAPI document."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rpahub_core.web import ApiModel, PageQuery
from rpahub_plugins.share.params import ParameterSpec

Domain = Literal["marketing", "customer_service", "equipment", "hr", "finance", "it_ops"]
Priority = Literal["low", "normal", "high", "urgent"]
State = Literal["submitted", "reviewed", "rejected", "withdrawn", "evaluated", "designed", "tested", "accepted"]

DOMAIN_HELP = ("marketing 营销, customer_service 客服, equipment 设备, hr 人资, finance 财务, "
               "it_ops 信息运维")


class RequirementIn(ApiModel):
    title: str = Field(min_length=1, max_length=128)
    description: str = Field("", max_length=10000)
    region: str = Field("", max_length=64, description="where it applies, e.g. a province or city")
    scenario: str = Field("", max_length=128, description="the business scenario (场景)")
    domain: Domain = Field(description=DOMAIN_HELP)
    expectedBenefit: str = Field("", max_length=2000, description="what it saves or improves (预期效益)")
    priority: Priority = "normal"
    attachments: list[str] = Field([], max_length=20,
                                   description="fileIds from POST /v1/file/demand/upload, uploaded by you")
    appId: str | None = Field(None, max_length=32, description="an existing app this requirement changes")


class RequirementPatch(ApiModel):
    """Corrections by the submitter while the requirement waits for review."""

    title: str | None = Field(None, min_length=1, max_length=128)
    description: str | None = Field(None, max_length=10000)
    region: str | None = Field(None, max_length=64)
    scenario: str | None = Field(None, max_length=128)
    domain: Domain | None = None
    expectedBenefit: str | None = Field(None, max_length=2000)
    priority: Priority | None = None
    attachments: list[str] | None = Field(None, max_length=20)
    version: int | None = Field(None, description="the version you edited: refused (409) if it changed since")


class RequirementActionIn(ApiModel):
    comment: str = Field("", max_length=2000)
    version: int | None = Field(None, description="the version you acted on: refused (409) if it changed since")


class RequirementEvaluateIn(RequirementActionIn):
    assignee: str = Field(min_length=1, max_length=64,
                          description="the designer: a user id or username holding design.develop")
    effortDays: float = Field(gt=0, le=1000, description="estimated effort in person-days")
    valueScore: int = Field(ge=1, le=10, description="business value, 1 (low) to 10 (high)")
    notes: str = Field("", max_length=4000)


class RequirementDesignIn(RequirementActionIn):
    packageId: str = Field(min_length=1, max_length=32, description="a package uploaded via POST /api/v1/packages")
    parameters: list[ParameterSpec] = Field([], max_length=100, description="the app's run parameters")
    vendor: str = Field("", max_length=64, description="the RPA vendor the package is built for")
    tags: list[str] = Field([], max_length=20)


class RequirementAcceptIn(RequirementActionIn):
    appName: str | None = Field(None, min_length=1, max_length=128,
                                description="the new app's name in the library (default: the requirement's title)")


class RequirementCommentIn(ApiModel):
    comment: str = Field(min_length=1, max_length=2000)


class RequirementTrialIn(ApiModel):
    arguments: dict[str, str | int | float | bool | None] = Field(
        {}, description="name → value, checked against the delivered parameters")
    pool: str | None = Field(None, max_length=64, description="default: [plugins.design] test_pool")


class RequirementFilter(ApiModel):
    assignee: str | None = Field(None, max_length=64, description="a user id, or 'me'")
    submitter: str | None = Field(None, max_length=64, description="a user id, or 'me'")
    region: str | None = Field(None, max_length=64)
    domain: Domain | None = None
    priority: Priority | None = None
    q: str | None = Field(None, max_length=128, description="part of the title or description")


class RequirementQuery(PageQuery, RequirementFilter):
    state: list[State] | None = Field(None, description="one or more states (repeat the parameter)")


class RequirementBoardQuery(RequirementFilter):
    pass
