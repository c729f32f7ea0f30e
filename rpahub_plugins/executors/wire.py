"""The bodies of T/CES 130 Appendix A, field for field, validated strictly.

Types are checked without coercion (``"status": "2"`` is an error, as is ``true``
for an int); unknown fields are ignored so vendors may extend their messages. A body
arrives as a dict, as a model the HTTP layer validated, or as the JSON text that
travelled in a WebSocket frame, which is validated in one pass without building Python
objects first.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
)

from rpahub_core.sessions import ProtocolError
from rpahub_core.web import check_storable, validation_errors

RUN_ID = Annotated[StrictStr, Field(min_length=1, max_length=64)]


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_unstorable(cls, value):
        # NUL in runInstanceId or a log's content made PostgreSQL raise DataError (a 500 / 19999).
        return check_storable(value)


def parse_log_time(value):
    """``logAt``: ISO 8601 with or without offset, or ``yyyy-MM-dd HH:mm:ss``.

    A time with an offset comes back aware; one without stays naive, for the hub to
    read in its configured zone (``naive_log_timezone``)."""
    if not isinstance(value, str):
        raise ValueError("must be a date-time string")
    try:  # the common case, in C: both spellings, with or without offset (Python >= 3.11)
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        text = value.strip().replace("Z", "+00:00")
        if re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?", text):
            text = text.replace(" ", "T")
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError("expected ISO 8601 or yyyy-MM-dd HH:mm:ss") from None
    # Body's check of every other field, done here while the value is at hand: a batch
    # holds up to 5,000 records, and a validator call per field was most of their cost.
    return check_storable(parsed) if parsed.tzinfo is not None else parsed


class RegisterBody(Body):
    supplierCode: StrictStr = Field(min_length=1, max_length=64)
    supplierSecret: StrictStr = Field(min_length=1, max_length=512)
    version: StrictStr | None = Field(None, max_length=64)


class HeartbeatBody(Body):
    runInstanceId: RUN_ID | None = None


class RunInstanceLog(Body):
    content: StrictStr = Field(max_length=65536)
    screenshot: StrictStr | None = Field(None, max_length=64)
    logAt: Annotated[dt.datetime, BeforeValidator(parse_log_time)]  # checked as it is parsed
    logLevel: StrictInt = Field(ge=0, le=2)

    @field_validator("content", "screenshot", mode="after")
    @classmethod
    def _refuse_unstorable(cls, value):  # replaces Body's check of every field: only these can hold NUL
        return check_storable(value) if value is not None and "\x00" in value else value


class ReportLogsBody(Body):
    runInstanceId: RUN_ID
    logs: list[RunInstanceLog] = Field(max_length=5000)

    @field_validator("runInstanceId", mode="after")
    @classmethod
    def _refuse_unstorable(cls, value):  # not logs: each record checks its own fields
        return check_storable(value)


class ReportFinishBody(Body):
    runInstanceId: RUN_ID
    status: StrictInt = Field(ge=0, le=2)
    errorCode: StrictInt | None = None
    # Extension: named results a following task of a flow receives.
    outputs: dict[str, StrictStr | StrictInt | float | bool | None] | None = None


class ReportVideoBody(Body):
    runInstanceId: RUN_ID
    videoId: StrictStr = Field(min_length=1, max_length=64)


class ReportCheckpointBody(Body):
    """Extension (not in Appendix A): the state a run resumes from on another executor."""

    runInstanceId: RUN_ID
    checkpoint: dict | list | StrictStr = Field(...)


class PersonalFileBody(Body):
    fileId: StrictStr | None = Field(None, max_length=64)
    fileName: StrictStr | None = Field(None, max_length=255)
    runInstanceId: StrictStr | None = Field(None, max_length=64)
    userId: StrictStr | None = Field(None, max_length=64)
    userName: StrictStr | None = Field(None, max_length=128)


def parse(model: type[Body], data) -> Body:
    if isinstance(data, model):  # already validated by the HTTP layer
        return data
    try:
        if isinstance(data, str):  # JSON text: parsed and validated in one pass
            text = data.strip()
            return model.model_validate_json(text if text and text != "null" else "{}")  # none: an empty body
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ProtocolError("body must be a JSON object")
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        whole = next((e["type"] for e in exc.errors(include_url=False) if not e["loc"]), None)
        if whole == "model_type":
            raise ProtocolError("body must be a JSON object") from None
        if whole is not None:  # json_invalid, or string_unicode: text no JSON parser could read
            raise ProtocolError("body: not valid JSON text", value={"errors": errors}) from None
        raise ProtocolError("; ".join(f"{e['field']}: {e['message']}" for e in errors), value={"errors": errors}) from None


def heartbeat_run(data) -> str | None:
    """The run a ``Heartbeat`` names, if any. Its one field is optional, and every executor
    sends one every few seconds: a body that is plainly valid (empty, or a run id of 1 to 64
    characters without NUL) is read without building a model; anything else goes through
    :class:`HeartbeatBody` and gets its error."""
    if data is None:
        return None
    if type(data) is dict:
        run = data.get("runInstanceId")
        if run is None or (type(run) is str and 0 < len(run) <= 64 and "\x00" not in run):
            return run
    return parse(HeartbeatBody, data).runInstanceId
