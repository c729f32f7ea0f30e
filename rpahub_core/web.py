"""Web conventions shared by every API of the hub.

A responder under ``/api/v1/`` is declared with :func:`operation`: the permission it
needs, the shape of its body and query, a summary. That one declaration drives
authorisation (deny by default), validation (errors name the field), the audit row
of every call that changes something, and ``/api/openapi.json``.
"""

from __future__ import annotations

import datetime as dt
import re
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import falcon
import peewee
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import db as hubdb
from .auth import ANONYMOUS, RobotPrincipal, UserPrincipal
from .errors import BadRequest, Forbidden, PayloadTooLarge, Unauthorized, ValidationFailed, envelope
from .permissions import AUTHENTICATED

API_PREFIX = "/api/v1/"
METHODS = ("get", "post", "put", "patch", "delete")
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
ROBOT = "robot"  # operation(permission=ROBOT): only an admitted executor may call it
ANY_PRINCIPAL = "principal"  # a signed-in person or an admitted executor (file upload)


def check_storable(value):
    """Refuse (ValueError) what no column can hold: a string with NUL, an aware time outside
    years 1-9999 in UTC; in lists too. Request shapes (``ApiModel``) run it on every field."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if isinstance(value, dt.datetime) and value.utcoffset():
        try:  # 0001-01-01T00:00+01:00 is a valid ISO 8601 text, but no instant Python can hold in UTC
            value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("is out of range (before year 1 or after year 9999 in UTC)") from None
    if isinstance(value, list):
        for item in value:
            check_storable(item)
    return value


class ApiModel(BaseModel):
    """Base of request shapes: unknown fields are errors, not silently dropped, no
    string may hold NUL (PostgreSQL cannot store it; it is never meant), and a time
    with an offset must still be a time once converted to UTC."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("*", mode="after")
    @classmethod
    def _refuse_unstorable(cls, value):
        return check_storable(value)


class PageQuery(ApiModel):
    page: int = Field(1, ge=1, le=1_000_000, description="1-based page number")
    pageSize: int = Field(20, ge=1, le=200, description="items per page (at most 200)")


@dataclass(frozen=True)
class Operation:
    permission: str | tuple[str, ...] | None  # a tuple: any one of them
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    tags: tuple[str, ...] = ()
    audit: str | None = None
    public: bool = False
    transactional: bool = True
    allow_password_change: bool = False
    raw_body: str | None = None  # e.g. "multipart/form-data": documented, not parsed
    status: int = 200
    audited: bool = True  # False only for liveness traffic (heartbeats, log streams)
    produces: str | None = None  # a download: the media type of its success answer instead of the envelope


def operation(
    *,
    permission: str | tuple[str, ...] | None = None,
    summary: str,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    tags: Iterable[str] = (),
    audit: str | None = None,
    public: bool = False,
    transactional: bool = True,
    allow_password_change: bool = False,
    raw_body: str | None = None,
    status: int = 200,
    audited: bool = True,
    produces: str | None = None,
) -> Callable:
    """Declare a responder: ``@operation(permission="users.manage", summary=..., body=UserIn)``.

    ``public=True`` needs no credentials (sign-in). ``permission=AUTHENTICATED`` lets
    any signed-in person call it; ``permission=ROBOT`` only an admitted executor; a tuple of
    permissions, anyone holding one of them.
    ``audit`` names the action in the audit log (default ``"<METHOD> <route>"``).
    ``produces`` marks a download: its success answer is that media type (``"*/*"``: the
    stored file's own), not the JSON envelope; its errors still are the envelope.
    """
    if not public and not permission:
        raise ValueError(f"operation {summary!r} needs a permission or public=True")
    op = Operation(
        permission=permission, summary=summary, body=body, query=query, response=response,
        tags=tuple(tags), audit=audit, public=public, transactional=transactional,
        allow_password_change=allow_password_change, raw_body=raw_body, status=status, audited=audited,
        produces=produces,
    )

    def mark(fn):
        fn.__rpahub_operation__ = op
        return fn

    return mark


def operation_of(resource: Any, method: str) -> Operation | None:
    responder = getattr(resource, f"on_{method.lower()}", None)
    return getattr(responder, "__rpahub_operation__", None)


@dataclass(frozen=True)
class PageRule:
    """A responder outside the API that renders for a browser (the console): who may see it."""

    permission: str | tuple[str, ...] | None  # a tuple: any one of them
    summary: str
    public: bool = False


def page_of(resource: Any, method: str) -> PageRule | None:
    responder = getattr(resource, f"on_{method.lower()}", None)
    return getattr(responder, "__rpahub_page__", None)


@dataclass
class Route:
    path: str
    resource: Any
    plugin: str = ""


@dataclass
class Routes:
    """What ``rpahub_register_routes`` adds to; the app installs it after all plugins ran."""

    items: list[Route] = field(default_factory=list)
    middleware: list[Any] = field(default_factory=list)
    current_plugin: str = ""

    def add_middleware(self, component: Any) -> None:
        """A Falcon middleware component, run after the core's guard."""
        self.middleware.append(component)

    def add(self, path: str, resource: Any) -> None:
        if any(r.path == path for r in self.items):
            raise ValueError(f"route {path} added twice")
        if path.startswith(API_PREFIX):
            for method in METHODS:
                if hasattr(resource, f"on_{method}") and operation_of(resource, method) is None:
                    raise ValueError(
                        f"{type(resource).__name__}.on_{method} for {path} has no @operation declaration"
                    )
        self.items.append(Route(path, resource, self.current_plugin))

    def operations(self) -> Iterable[tuple[Route, str, Operation]]:
        for route in self.items:
            for method in METHODS:
                op = operation_of(route.resource, method)
                if op is not None:
                    yield route, method, op


# -- responses and input -----------------------------------------------------


def ok(resp: falcon.Response, value: Any = None, status: int = 200) -> None:
    resp.status = status
    resp.media = envelope(value)


def validation_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"] if p != "__root__"]
        message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        if err["type"] == "json_invalid":
            message = "body is not valid JSON"
        out.append({"field": ".".join(loc), "message": message})
    return out


def parse_model(model: type[BaseModel], raw: bytes | str | dict) -> BaseModel:
    try:
        if isinstance(raw, dict):
            return model.model_validate(raw)
        if not raw:
            raw = b"{}"
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from None


def read_body(req: falcon.Request, limit: int) -> bytes:
    length = req.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    data = req.bounded_stream.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    return data


def parse_query(model: type[BaseModel], req: falcon.Request) -> BaseModel:
    params: dict[str, Any] = {}
    for key, value in req.params.items():
        annotation = model.model_fields.get(key)
        is_list = annotation is not None and _is_list(annotation.annotation)
        if isinstance(value, list) and not is_list:
            value = value[-1]
        params[key] = value if not is_list or isinstance(value, list) else [value]
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        raise ValidationFailed(validation_errors(exc)) from None


def _is_list(annotation) -> bool:
    """``list[str]`` or ``list[str] | None``: repeated query parameters."""
    if typing.get_origin(annotation) is list:
        return True
    return any(typing.get_origin(arg) is list for arg in typing.get_args(annotation))


def paginate(query: peewee.SelectQuery, page: PageQuery, serialize: Callable[[Any], Any]) -> dict[str, Any]:
    total = query.count()
    items = [serialize(row) for row in query.paginate(page.page, page.pageSize)]
    return {"items": items, "total": total, "page": page.page, "pageSize": page.pageSize}


# -- the guard -----------------------------------------------------------------


class ApiGuard:
    """Falcon middleware: authenticate, authorise, validate, transact and audit."""

    def __init__(self, hub):
        self.hub = hub
        self.limit = hub.settings.server.max_body_bytes

    def process_resource(self, req, resp, resource, params):
        template = req.uri_template or ""
        if resource is None or not hasattr(resource, f"on_{req.method.lower()}"):
            return  # falcon answers 404 / 405
        op = operation_of(resource, req.method)
        req.context.operation = op
        req.context.principal = None
        if op is None:
            if template.startswith(API_PREFIX):
                raise Forbidden("operation not declared")  # deny by default
            return
        if op.public:
            try:  # who it is, if it says; a stale credential does not block a public call
                principal = self.hub.authenticate(req)
            except Unauthorized:
                principal = None
        else:
            principal = req.context.principal = self.hub.authenticate(req)
            check_access(op, principal, template)
        req.context.principal = principal
        if op.query is not None:
            req.context.query = parse_query(op.query, req)
        if op.body is not None:
            req.context.body = parse_model(op.body, read_body(req, self.limit))
        if req.method in MUTATING and op.transactional:
            # The change and its audit row commit together, or not at all.
            req.context.transaction = hubdb.Transaction()

    def process_response(self, req, resp, resource, req_succeeded):
        txn: hubdb.Transaction | None = req.context.get("transaction")
        op: Operation | None = req.context.get("operation")
        if txn is not None:
            req.context.transaction = None
            if req_succeeded and resp.status_code < 400:
                try:
                    if op.audited:
                        self._audit(req, resp, op)
                except BaseException:
                    txn.rollback()
                    raise
                txn.commit()
                return
            txn.rollback()
        if req.method in MUTATING and op is not None and (op.audited or resp.status_code in (401, 403)):
            with hubdb.atomic():
                self._audit(req, resp, op)

    def _audit(self, req, resp, op: Operation | None) -> None:
        status = resp.status_code
        result = "ok" if status < 400 else ("denied" if status in (401, 403) else "failed")
        hint = (resp.media or {}).get("resultHint", "") if isinstance(resp.media, dict) else ""
        target = "/".join(str(v) for v in (req.context.get("audit_target"), *_params(req)) if v)[:256]
        self.hub.audit(
            (op.audit if op and op.audit else f"{req.method} {req.uri_template}"),
            principal=req.context.get("principal") or ANONYMOUS,
            target=target,
            result=result,
            detail={"status": status, "hint": hint} if hint else {"status": status},
            source=req.remote_addr or "",
        )


def _params(req) -> list[str]:
    names = re.findall(r"{(\w+)", req.uri_template or "")
    values = getattr(req.context, "route_params", {}) or {}
    return [values.get(n, "") for n in names]


def check_access(op: Operation, principal, template: str) -> None:
    if principal is None:
        raise Unauthorized()
    if op.permission == ROBOT:
        if not isinstance(principal, RobotPrincipal):
            raise Forbidden("only executors can call this interface")
        return
    if op.permission == ANY_PRINCIPAL and isinstance(principal, RobotPrincipal):
        return
    if not isinstance(principal, UserPrincipal):
        raise Forbidden("robot credentials cannot call people's APIs")
    if principal.must_change_password and not op.allow_password_change:
        raise Forbidden("password change required: POST /api/v1/me/password")
    if isinstance(op.permission, tuple):
        if not any(principal.can(p) for p in op.permission):
            raise Forbidden(f"permission {' or '.join(op.permission)} required")
    elif op.permission not in (AUTHENTICATED, ANY_PRINCIPAL) and not principal.can(op.permission):
        raise Forbidden(f"permission {op.permission} required")


class RouteParams:
    """Keep the matched route parameters for the audit target."""

    def process_resource(self, req, resp, resource, params):
        req.context.route_params = dict(params)
        for name, value in params.items():
            if isinstance(value, str) and ("\x00" in value or len(value) > 256):
                raise BadRequest(f"{name}: not a valid identifier")


# -- OpenAPI -----------------------------------------------------------------

ENVELOPE_SCHEMA = {
    "type": "object",
    "required": ["successful", "resultHint", "resultValue"],
    "properties": {
        "successful": {"type": "boolean"},
        "resultHint": {"type": "string", "description": "error text; empty on success"},
        "resultValue": {"description": "the operation's result"},
    },
}


def _schema_ref(model: Any, components: dict[str, Any]) -> dict[str, Any]:
    if isinstance(model, dict):
        return model
    if isinstance(model, type) and issubclass(model, BaseModel):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, sub in schema.pop("$defs", {}).items():
            components.setdefault(name, sub)
        components.setdefault(model.__name__, schema)
        return {"$ref": f"#/components/schemas/{model.__name__}"}
    return {}


def openapi_document(routes: Routes, *, title: str, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {"Envelope": ENVELOPE_SCHEMA}
    paths: dict[str, Any] = {}
    for route, method, op in routes.operations():
        path = re.sub(r"{(\w+)(:[^}]*)?}", r"{\1}", route.path)
        item = paths.setdefault(path, {})
        spec: dict[str, Any] = {
            "operationId": f"{method}_{re.sub(r'[^A-Za-z0-9]+', '_', path).strip('_')}",
            "summary": op.summary,
            "tags": list(op.tags) or [route.plugin or "hub"],
            "responses": {},
        }
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{(\w+)}", path)
        ]
        if op.query is not None:
            for name, fld in op.query.model_fields.items():
                schema = op.query.model_json_schema()["properties"].get(name, {})
                params.append({"name": name, "in": "query", "required": fld.is_required(), "schema": schema})
        if params:
            spec["parameters"] = params
        if op.body is not None:
            spec["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(op.body, components)}},
            }
        elif op.raw_body:
            spec["requestBody"] = {"required": True, "content": {op.raw_body: {"schema": {}}}}
        if op.produces:
            spec["responses"][str(op.status)] = {
                "description": "the file",
                "content": {op.produces: {"schema": {"type": "string", "format": "binary"}}},
            }
        else:
            value_schema = _schema_ref(op.response, components) if op.response is not None else {}
            spec["responses"][str(op.status)] = {
                "description": "success",
                "content": {"application/json": {"schema": {
                    "allOf": [{"$ref": "#/components/schemas/Envelope"},
                              {"type": "object", "properties": {"resultValue": value_schema}}]
                }}},
            }
        failure = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Envelope"}}}}
        spec["responses"]["400"] = failure
        if not op.public:
            spec["security"] = {ROBOT: [{"robot": []}], ANY_PRINCIPAL: [{"bearer": []}, {"robot": []}]}.get(
                op.permission if isinstance(op.permission, str) else None, [{"bearer": []}])
            spec["responses"]["401"] = failure
            spec["responses"]["403"] = failure
            if isinstance(op.permission, tuple):
                spec["x-rpahub-permission"] = list(op.permission)  # any one of them
            elif op.permission not in (None, AUTHENTICATED, ROBOT, ANY_PRINCIPAL):
                spec["x-rpahub-permission"] = op.permission
        item[method] = spec
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "a person's session or API token (rpu_...)"},
                "robot": {"type": "apiKey", "in": "header", "name": "robotConnectId",
                          "description": "with the robotId header: an executor's connection from register"},
            },
        },
    }
