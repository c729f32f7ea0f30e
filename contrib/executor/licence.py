"""Offline check of the licence the hub sends (``SendLicense`` / register's ``licenseContent``).

Format (rpahub_plugins/executors/licences.py): ``b64url(payload).b64url(Ed25519 signature)``
over canonical JSON; the hub's public key is published at ``/v1/licence/public-key``.
Kept self-contained so the executor needs none of the hub's server code.
"""

from __future__ import annotations

import base64
import datetime as dt
import json


class InvalidLicence(ValueError):
    pass


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(content: str, public_key_pem: str | bytes, *, now: dt.datetime | None = None) -> dict:
    """Return the licence payload if signature and validity period hold; raise InvalidLicence otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization

    try:
        raw_b64, sig_b64 = content.split(".")
        raw, sig = _b64url_decode(raw_b64), _b64url_decode(sig_b64)
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        serialization.load_pem_public_key(pem).verify(sig, raw)
        payload = json.loads(raw)
    except (ValueError, InvalidSignature, TypeError, AttributeError):
        raise InvalidLicence("signature is not valid") from None
    now = now or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    try:
        start = dt.datetime.fromisoformat(payload["notBefore"].rstrip("Z"))
        end = dt.datetime.fromisoformat(payload["expiresAt"].rstrip("Z"))
    except (KeyError, AttributeError, ValueError):
        raise InvalidLicence("validity period missing or malformed") from None
    if now < start:
        raise InvalidLicence(f"not valid before {payload['notBefore']}")
    if now >= end:
        raise InvalidLicence(f"expired at {payload['expiresAt']}")
    return payload
