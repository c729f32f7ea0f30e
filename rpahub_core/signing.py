"""Short-lived signed tokens: ``b64url(json payload).b64url(HMAC-SHA256)``.

Used for links an executor follows without a person's credentials: the package
download of one run, the upload address of one run. Each purpose has its own key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class BadSignature(ValueError):
    pass


def sign(key: bytes, payload: dict[str, Any], ttl_s: int) -> str:
    body = {**payload, "exp": int(time.time()) + ttl_s}
    raw = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(key, raw, hashlib.sha256).digest()
    return f"{b64url(raw)}.{b64url(mac)}"


def verify(key: bytes, token: str, *, now: float | None = None) -> dict[str, Any]:
    try:
        raw_b64, mac_b64 = token.split(".")
        raw = b64url_decode(raw_b64)
        mac = b64url_decode(mac_b64)
    except (ValueError, TypeError):
        raise BadSignature("malformed token") from None
    if not hmac.compare_digest(mac, hmac.new(key, raw, hashlib.sha256).digest()):
        raise BadSignature("bad signature")
    payload = json.loads(raw)
    if payload.get("exp", 0) < (time.time() if now is None else now):
        raise BadSignature("expired")
    return payload
