"""An app's parameter schema, and checking a run's arguments against it (6.1.2a).

The schema is a list of parameters rather than full JSON Schema: it maps one to one
onto the standard's run arguments (``[{name, type, value}]``) and onto a form field
each, which is what the people starting runs see.
"""

from __future__ import annotations

import math
import re
from typing import Literal

from pydantic import Field, model_validator

from rpahub_core.errors import ValidationFailed
from rpahub_core.web import ApiModel

# Our parameter types and the standard's argument ``type`` each one travels as.
WIRE_TYPES = {"string": "String", "integer": "Int", "number": "Double", "boolean": "Boolean", "date": "String",
              "secret": "String"}
NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"


class ParameterSpec(ApiModel):
    name: str = Field(pattern=f"^{NAME}$", description="argument name the package reads")
    type: Literal["string", "integer", "number", "boolean", "date", "secret"] = "string"
    label: str = Field("", max_length=128, description="what the run form shows")
    description: str = Field("", max_length=1000)
    required: bool = False
    default: str | int | float | bool | None = None
    choices: list[str] = Field([], max_length=200, description="allowed values (strings as sent)")
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = Field(None, max_length=256, description="regular expression a string must match")
    maxLength: int | None = Field(None, ge=1, le=65536)

    @model_validator(mode="after")
    def _coherent(self):
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern: not a regular expression ({exc})") from None
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is greater than maximum")
        if self.default is not None:
            error = check_value(self, self.default)
            if error:
                raise ValueError(f"default: {error}")
        return self


def check_schema(params: list[ParameterSpec | dict]) -> list[ParameterSpec]:
    """The schema's parameters, refused with a 400 if a name appears twice."""
    params = [p if isinstance(p, ParameterSpec) else ParameterSpec.model_validate(p) for p in params]
    seen = set()
    for i, p in enumerate(params):
        if p.name in seen:
            raise ValidationFailed([{"field": f"parameters.{i}.name", "message": f"{p.name} appears twice"}])
        seen.add(p.name)
    return params


def _as_number(spec: ParameterSpec, value) -> float | int:
    if isinstance(value, bool):
        raise ValueError
    if spec.type == "integer":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError
        return int(value) if not isinstance(value, str) else int(value.strip())
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def check_value(spec: ParameterSpec, value) -> str | None:
    """Why ``value`` is not acceptable for ``spec``, or ``None``."""
    if spec.type in ("integer", "number"):
        try:
            number = _as_number(spec, value)
        except (TypeError, ValueError):
            return f"must be {'an integer' if spec.type == 'integer' else 'a number'}"
        if spec.minimum is not None and number < spec.minimum:
            return f"must be at least {spec.minimum:g}"
        if spec.maximum is not None and number > spec.maximum:
            return f"must be at most {spec.maximum:g}"
    elif spec.type == "boolean":
        if not isinstance(value, bool) and str(value).lower() not in ("true", "false"):
            return "must be true or false"
    elif spec.type == "date":
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(value)):
            return "must be a date YYYY-MM-DD"
    else:
        text = str(value)
        if spec.maxLength is not None and len(text) > spec.maxLength:
            return f"must be at most {spec.maxLength} characters"
        if spec.pattern is not None and not re.fullmatch(spec.pattern, text):
            return f"must match {spec.pattern}"
    if spec.choices and _wire_value(spec, value) not in spec.choices:
        return f"must be one of {', '.join(spec.choices)}"
    return None


def _wire_value(spec: ParameterSpec, value) -> str:
    if spec.type == "boolean":
        return "true" if value is True or str(value).lower() == "true" else "false"
    if spec.type in ("integer", "number") and not isinstance(value, str):
        return str(_as_number(spec, value))
    return str(value)


def to_arguments(params: list[ParameterSpec], given: dict) -> list[dict]:
    """The standard's argument list for ``given`` (name → value), or a 400 naming each
    bad field: unknown names, missing required values, values of the wrong shape."""
    errors = []
    by_name = {p.name: p for p in params}
    for name in given:
        if name not in by_name:
            errors.append({"field": f"arguments.{name}", "message": "not a parameter of this app"})
    out = []
    for p in params:
        value = given.get(p.name)
        if value is None or value == "":
            if p.default is not None:
                value = p.default
            elif p.required:
                errors.append({"field": f"arguments.{p.name}", "message": "required"})
                continue
            else:
                continue
        error = check_value(p, value)
        if error:
            errors.append({"field": f"arguments.{p.name}", "message": error})
            continue
        out.append({"name": p.name, "type": WIRE_TYPES[p.type], "value": _wire_value(p, value)})
    if errors:
        raise ValidationFailed(errors)
    return out
