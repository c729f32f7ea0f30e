"""The default adapter: a time-boxed HMAC proves the executor knows its supplier's secret.

``supplierSecret`` = ``v1.<unix-ts>.<nonce>.<b64url(HMAC-SHA256(secret, "v1|robotId|ts|nonce"))>``.
The hub accepts it within ±300 s of its clock and only once (nonces are remembered for
the window), so a captured Register cannot be replayed, and the secret itself never
crosses the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time

from rpahub_core.adapter import AdmissionRefused, VendorAdapter
from rpahub_core.signing import b64url

WINDOW_S = 300


def proof(secret: str, robot_id: str, *, ts: int | None = None, nonce: str | None = None) -> str:
    """What an executor sends as ``supplierSecret`` (used by the reference executor)."""
    ts = int(time.time()) if ts is None else ts
    nonce = nonce or secrets.token_hex(12)
    mac = hmac.new(secret.encode(), f"v1|{robot_id}|{ts}|{nonce}".encode(), hashlib.sha256).digest()
    return f"v1.{ts}.{nonce}.{b64url(mac)}"


class Tces130Adapter(VendorAdapter):
    name = "tces130"
    replay_window_s = WINDOW_S
    package_kinds = ()  # any package

    def verify_secret(self, *, secret, robot_id, presented, now, remember_nonce):
        parts = presented.split(".")
        if len(parts) != 4 or parts[0] != "v1":
            raise AdmissionRefused("supplierSecret: expected v1.<ts>.<nonce>.<mac>")
        _, ts_text, nonce, mac = parts
        if not ts_text.isdigit() or not 8 <= len(nonce) <= 64:
            raise AdmissionRefused("supplierSecret: malformed timestamp or nonce")
        if abs(now - int(ts_text)) > WINDOW_S:
            raise AdmissionRefused(f"supplierSecret: timestamp outside ±{WINDOW_S}s of the hub's clock")
        expected = proof(secret, robot_id, ts=int(ts_text), nonce=nonce).rsplit(".", 1)[1]
        if not hmac.compare_digest(expected, mac):
            raise AdmissionRefused("supplierSecret: does not match the supplier's secret")
        if not remember_nonce(nonce):
            raise AdmissionRefused("supplierSecret: already used (replay)")


Adapter = Tces130Adapter
