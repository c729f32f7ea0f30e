"""The console's client of the public API, called in-process.

Every page reads and writes through ``/api/v1`` with the signed-in person's own bearer
token, so the console passes the same guard, validation and audit as an integrator,
and a page can never show or do more than the API allows that person.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from falcon.testing import create_environ

# Request headers a proxied download passes on (a player seeking sends Range).
PASSED_HEADERS = ("Range", "If-None-Match", "If-Modified-Since", "If-Range")


FIELD_HINT = re.compile(r"^(?P<field>[A-Za-z_][\w.\[\]]*): (?P<message>.+)$", re.S)


@dataclass
class Answer:
    status: int
    successful: bool
    value: Any = None
    hint: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.successful and self.status < 400

    @property
    def field_errors(self) -> dict[str, str]:
        """``{"field": "message"}`` of a 400 naming its fields (a form shows them beside each field)."""
        errors = (self.value or {}).get("errors") if isinstance(self.value, dict) else None
        out: dict[str, str] = {}
        for err in errors or []:
            out.setdefault(err.get("field") or "", err.get("message", ""))
        if not out and self.status == 400 and self.hint:
            # A business rule's 400 names its field the same way: "field: message".
            found = FIELD_HINT.match(self.hint)
            out = {found["field"]: found["message"]} if found else {"": self.hint}
        return out

    def form_errors(self, fields=None) -> dict[str, str]:
        """A refused form's messages by the form's field names, ``""`` for the rest (shown
        above the form). ``weekdays.0`` or ``channels.1.target`` go beside the field they
        start with; a 409 or 404 whose hint names a field of the form goes beside it too."""
        errors = self.field_errors if self.status == 400 else {}
        if not errors and self.hint:
            found = FIELD_HINT.match(self.hint)
            errors = {found["field"]: found["message"]} if found and fields is not None else {"": self.hint}
        if fields is None:
            return errors or {"": self.hint or "?"}
        out: dict[str, str] = {}
        rest = []
        for key, message in errors.items():
            parts = re.split(r"(?=[.\[])", key)  # channels[0].target → channels, [0], .target
            name = next((p for p in ("".join(parts[:n]) for n in range(len(parts), 0, -1))
                         if p in fields), None)
            if name is None:
                rest.append(f"{key}: {message}" if key else message)
            else:
                out.setdefault(name, message)
        if rest or not out:
            out[""] = "; ".join(m for m in rest if m) or self.hint or "?"
        return out

    @property
    def form_status(self) -> int:
        """The status a page re-rendering the refused form answers: the API's 4xx, else 400."""
        return self.status if 400 <= self.status < 500 else 400

    def items(self) -> list[Any]:
        value = self.value if self.ok else None
        if isinstance(value, dict):
            return value.get("items") or []
        return value if isinstance(value, list) else []


@dataclass
class Raw:
    """A download answered as is: status line, headers and the body's chunks."""

    status: str
    headers: list[tuple[str, str]]
    body: Any

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])


class Api:
    def __init__(self, app, token: str | None, remote_addr: str = "127.0.0.1", headers: dict[str, str] | None = None):
        self.app = app
        self.token = token
        self.remote_addr = remote_addr
        self.extra_headers = headers or {}

    def _environ(self, method: str, path: str, query: dict | None, body: bytes | None, content_type: str | None,
                 headers: dict[str, str] | None = None) -> dict:
        hdrs = {**self.extra_headers, **(headers or {})}
        if self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        if content_type:
            hdrs["Content-Type"] = content_type
        clean = {k: v for k, v in (query or {}).items() if v not in (None, "", [])}
        return create_environ(path=path, query_string=urlencode(clean, doseq=True), method=method,
                              headers=hdrs, body=body or b"", remote_addr=self.remote_addr)

    def raw(self, method: str, path: str, query: dict | None = None, body: bytes | None = None,
            content_type: str | None = None, headers: dict[str, str] | None = None) -> Raw:
        captured: dict[str, Any] = {}

        def start_response(status, response_headers, exc_info=None):
            captured["status"], captured["headers"] = status, response_headers

        chunks = self.app(self._environ(method, path, query, body, content_type, headers), start_response)
        return Raw(captured["status"], captured["headers"], chunks)

    def call(self, method: str, path: str, query: dict | None = None, json_body: Any = None, *,
             body: bytes | None = None, content_type: str | None = None) -> Answer:
        if json_body is not None:
            body, content_type = json.dumps(json_body, ensure_ascii=False).encode(), "application/json"
        raw = self.raw(method, path, query, body, content_type)
        data = b"".join(raw.body)
        if hasattr(raw.body, "close"):
            raw.body.close()
        headers = {k.lower(): v for k, v in raw.headers}
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        if not isinstance(parsed, dict) or "successful" not in parsed:
            return Answer(raw.status_code, raw.status_code < 400, parsed, "", headers)
        return Answer(raw.status_code, bool(parsed.get("successful")), parsed.get("resultValue"),
                      parsed.get("resultHint") or "", headers)

    def get(self, path: str, query: dict | None = None) -> Answer:
        return self.call("GET", path, query)

    def post(self, path: str, body: Any = None, query: dict | None = None) -> Answer:
        return self.call("POST", path, query, {} if body is None else body)

    def put(self, path: str, body: Any = None) -> Answer:
        return self.call("PUT", path, None, {} if body is None else body)

    def patch(self, path: str, body: Any = None) -> Answer:
        return self.call("PATCH", path, None, {} if body is None else body)

    def delete(self, path: str, query: dict | None = None) -> Answer:
        return self.call("DELETE", path, query)


class ChunkStream(io.RawIOBase):
    """A WSGI body as a file object, so a Falcon response streams a proxied download."""

    def __init__(self, chunks):
        self._iter = iter(chunks)
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        while not self._buffer:
            try:
                self._buffer = next(self._iter)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buffer))
        b[:n], self._buffer = self._buffer[:n], self._buffer[n:]
        return n

    def close(self) -> None:
        if hasattr(self._chunks, "close"):
            self._chunks.close()
        super().close()
