"""Licences: Ed25519 signatures over canonical JSON, verifiable offline.

``licenseContent`` = ``b64url(payload).b64url(signature)``; the payload holds the
licence id, supplier, robot id or pool, features, not-before, expiry and the id it
supersedes. The hub's public key is published at ``/v1/licence/public-key`` so an
executor can check a licence without asking the hub.
"""

from __future__ import annotations

import datetime as dt
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from rpahub_core import db as hubdb
from rpahub_core.db import new_id, utcnow
from rpahub_core.errors import BadRequest, NotFound
from rpahub_core.signing import b64url, b64url_decode

from .models import Licence, Supplier


def canonical(payload: dict) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(value: dt.datetime) -> str:
    return value.replace(microsecond=0).isoformat() + "Z"


class LicenceError(BadRequest):
    pass


class Licences:
    def __init__(self, hub, four_eyes: bool = True):
        self.hub = hub
        self.four_eyes = four_eyes  # binding waits for a second person's approval

    def issue(self, *, supplier: str, robot_id: str | None = None, pool: str | None = None,
              features: list[str] = (), days: int = 365, not_before: dt.datetime | None = None,
              supersedes: str | None = None) -> Licence:
        if not Supplier.get_or_none(Supplier.code == supplier):
            raise NotFound(f"supplier {supplier} not found")
        if robot_id and pool:
            raise BadRequest("a licence binds a robot or a pool, not both")
        start = (not_before or utcnow()).replace(microsecond=0)
        lic_id = new_id()
        payload = {
            "licenceId": lic_id, "supplier": supplier, "robotId": robot_id, "pool": pool,
            "features": sorted(features), "notBefore": _iso(start),
            "expiresAt": _iso(start + dt.timedelta(days=days)), "supersedes": supersedes,
        }
        with hubdb.atomic():
            if supersedes:
                Licence.update(revoked_at=utcnow()).where(Licence.id == supersedes).execute()
            return Licence.create(
                id=lic_id, supplier=supplier, robot_id=robot_id, pool=pool, features=json.dumps(sorted(features)),
                not_before=start, expires_at=start + dt.timedelta(days=days), supersedes=supersedes,
                content=self.sign(payload),
            )

    def sign(self, payload: dict) -> str:
        raw = canonical(payload)
        return f"{b64url(raw)}.{b64url(self.hub.keys.signing_key.sign(raw))}"

    def bind(self, licence_id: str, *, robot_id: str | None = None, pool: str | None = None) -> Licence:
        """Re-binding issues a new licence that supersedes the old one: contents are signed."""
        old = self.get(licence_id)
        if old.revoked_at:
            raise LicenceError(f"licence {licence_id} is revoked")
        days = max(1, (old.expires_at - utcnow()).days)
        return self.issue(supplier=old.supplier_id, robot_id=robot_id, pool=pool,
                          features=json.loads(old.features), days=days, supersedes=old.id)

    def revoke(self, licence_id: str) -> Licence:
        lic = self.get(licence_id)
        if lic.revoked_at is None:
            lic.revoked_at = utcnow()
            lic.save()
        return lic

    def get(self, licence_id: str) -> Licence:
        lic = Licence.get_or_none(Licence.id == licence_id)
        if lic is None:
            raise NotFound(f"licence {licence_id} not found")
        return lic

    def verify(self, content: str, *, now: dt.datetime | None = None) -> dict:
        """Check signature, validity period and revocation; return the payload."""
        payload = verify_content(content, self.hub.keys.public_key)
        lic = Licence.get_or_none(Licence.id == payload["licenceId"])
        if lic is not None and lic.revoked_at is not None:
            raise LicenceError(f"licence {lic.id} was revoked on {_iso(lic.revoked_at)}")
        check_period(payload, now or utcnow())
        return payload

    def for_robot(self, robot_id: str) -> tuple[Licence | None, str | None]:
        """The robot's valid licence, or why the one it has is not valid."""
        now = utcnow()
        bound = list(Licence.select().where(Licence.robot_id == robot_id).order_by(Licence.created_at.desc()))
        for lic in bound:
            if lic.revoked_at is None and lic.not_before <= now < lic.expires_at:
                return lic, None
        if not bound:
            return None, None
        latest = bound[0]
        if latest.revoked_at is not None:
            return None, f"licence {latest.id} was revoked"
        if latest.expires_at <= now:
            return None, f"licence {latest.id} expired at {_iso(latest.expires_at)}"
        return None, f"licence {latest.id} is not valid before {_iso(latest.not_before)}"

    def public_key_pem(self) -> str:
        return self.hub.keys.public_key_pem()


def verify_content(content: str, public_key) -> dict:
    """Offline verification, as an executor does it with the published public key."""
    try:
        raw_b64, sig_b64 = content.split(".")
        raw, sig = b64url_decode(raw_b64), b64url_decode(sig_b64)
        if isinstance(public_key, (str, bytes)):
            public_key = serialization.load_pem_public_key(public_key.encode() if isinstance(public_key, str)
                                                           else public_key)
        public_key.verify(sig, raw)
        return json.loads(raw)
    except (ValueError, InvalidSignature, TypeError):
        raise LicenceError("licence: signature is not valid") from None


def check_period(payload: dict, now: dt.datetime) -> None:
    start = dt.datetime.fromisoformat(payload["notBefore"].rstrip("Z"))
    end = dt.datetime.fromisoformat(payload["expiresAt"].rstrip("Z"))
    if now < start:
        raise LicenceError(f"licence {payload['licenceId']} is not valid before {payload['notBefore']}")
    if now >= end:
        raise LicenceError(f"licence {payload['licenceId']} expired at {payload['expiresAt']}")
