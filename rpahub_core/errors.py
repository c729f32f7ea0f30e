"""Errors in the terms of T/CES 130 and the HTTP envelope of its Appendix A.2.

Every HTTP answer of the hub, for robots and for people, is the envelope
``{"successful": bool, "resultHint": str, "resultValue": any}``. Code raises one of
the :class:`HubError` subclasses; one handler (``rpahub_core.app``) turns it into the
envelope with the right status, and the WebSocket transport into an ``Error`` frame
carrying the standard's error code.
"""

from __future__ import annotations

from typing import Any

# A.3.5 ErrorCode
DUPLICATE_CONNECTION = 10000
PARAMETER_ERROR = 10001
UNKNOWN_ERROR = 19999


def envelope(value: Any = None, *, successful: bool = True, hint: str = "") -> dict[str, Any]:
    return {"successful": successful, "resultHint": hint, "resultValue": value}


class HubError(Exception):
    """Base of the errors the hub reports to its callers."""

    status = 400
    code = PARAMETER_ERROR

    def __init__(self, hint: str, *, value: Any = None, headers: dict[str, str] | None = None):
        super().__init__(hint)
        self.hint = hint
        self.value = value
        self.headers = headers or {}

    def to_envelope(self) -> dict[str, Any]:
        return envelope(self.value, successful=False, hint=self.hint)


class BadRequest(HubError):
    """Parameter or business error: HTTP 400, protocol code 10001."""


class ValidationFailed(BadRequest):
    """Input that fails its declared shape; ``value`` lists ``{field, message}``."""

    def __init__(self, errors: list[dict[str, str]]):
        hint = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
        super().__init__(hint or "invalid request", value={"errors": errors})
        self.errors = errors


class Unauthorized(HubError):
    status = 401

    def __init__(self, hint: str = "authentication required", **kw):
        kw.setdefault("headers", {"WWW-Authenticate": 'Bearer realm="rpahub"'})
        super().__init__(hint, **kw)


class Forbidden(HubError):
    status = 403


class NotFound(HubError):
    status = 404


class Conflict(HubError):
    status = 409


class PayloadTooLarge(HubError):
    status = 413


class TooManyRequests(HubError):
    status = 429


class DuplicateConnection(HubError):
    """A second connection for an executor that is already connected (A.3.5)."""

    status = 409
    code = DUPLICATE_CONNECTION


class UnknownError(HubError):
    status = 500
    code = UNKNOWN_ERROR
