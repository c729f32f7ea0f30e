"""Designer registration (6.2.3a) and cloud designer dispatch (6.2.3b).

A designer is registered with a capacity, the number of people it serves at once.
``allocate`` gives a person a lease on the least used designer with room; the lease
ends when its owner releases it, a manager forces it, or it expires (the sweep and
every allocation recycle expired leases). Capacity is counted from live leases with
the designer's row locked (``FOR UPDATE`` on PostgreSQL, SQLite's single writer
otherwise), so concurrent allocations, from any hub process, never exceed it.

A designer proves it is registered with the secret it was given at registration
(only its SHA-256 is stored); it asks the hub whether a person's session token is a
live lease on *it*, so an unregistered or disabled designer cannot serve anyone.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable
from typing import Any

import peewee

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, Forbidden, NotFound

from .models import Designer, DesignerLease

SECRET_PREFIX = "rpdk_"  # a designer's registration secret
TOKEN_PREFIX = "rpds_"  # a person's session token on a designer
REASONS = ("released", "expired", "forced")


def digest(value: str) -> str:
    """Secrets and tokens are long random strings: a plain SHA-256 is enough to store them."""
    return hashlib.sha256(value.encode()).hexdigest()


class Designers:
    def __init__(self, hub, settings: dict[str, Any]):
        self.hub = hub
        self.default_minutes = int(settings["lease_minutes"])
        self.max_minutes = int(settings["max_lease_minutes"])

    # -- registration (6.2.3a) -----------------------------------------------------------

    def register(self, *, name: str, vendor: str, endpoint: str, capacity: int = 1, version: str = "",
                 enabled: bool = True, registered_by: str, instance_id: str | None = None) -> tuple[Designer, str]:
        """Register a designer; return it with its secret, which is never shown again."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        if capacity < 1:
            raise BadRequest("capacity: at least 1")
        with hubdb.atomic():
            if Designer.select().where(Designer.name == name).exists():
                raise Conflict(f"name: designer {name} exists")
            designer = Designer.create(name=name, vendor=vendor, version=version, endpoint=endpoint,
                                       capacity=capacity, enabled=enabled, secret_hash=digest(secret),
                                       registered_by=registered_by, instance_id=instance_id)
            self.hub.publish("designer.registered", designerId=designer.id, name=name, vendor=vendor)
        return designer, secret

    def update(self, designer_id: str, changes: dict[str, Any], *, force: bool = False,
               by: str = "hub") -> tuple[Designer, str | None]:
        """Change a designer; ``rotateSecret`` returns a new secret. Disabling one that
        people use is refused unless ``force``, which recycles their leases."""
        secret = None
        with hubdb.atomic():
            designer = self._locked(designer_id)
            name = changes.get("name")
            if name and name != designer.name and Designer.select().where(
                    (Designer.name == name) & (Designer.id != designer.id)).exists():
                raise Conflict(f"name: designer {name} exists")
            if changes.get("enabled") is False and designer.enabled:
                self._clear(designer, force=force, by=by, doing="disabling")
            for field in ("name", "vendor", "version", "endpoint", "capacity", "enabled"):
                if changes.get(field) is not None:
                    setattr(designer, field, changes[field])
            if changes.get("rotateSecret"):
                secret = SECRET_PREFIX + secrets.token_urlsafe(32)
                designer.secret_hash = digest(secret)
            designer.updated_at = utcnow()
            designer.save()
        return designer, secret

    def deregister(self, designer_id: str, *, force: bool = True, by: str = "hub") -> None:
        """Remove a designer. Its live leases are recycled (reason ``forced``), or with
        ``force=False`` the call is refused while anyone uses it. Leases stay as history."""
        with hubdb.atomic():
            designer = self._locked(designer_id)
            self._clear(designer, force=force, by=by, doing="deleting")
            designer.delete_instance()
            self.hub.publish("designer.deregistered", designerId=designer.id, name=designer.name)

    def get(self, designer_id: str) -> Designer:
        designer = Designer.get_or_none(Designer.id == designer_id)
        if designer is None:
            raise NotFound(f"designer {designer_id} not found")
        return designer

    def in_use(self, designer_ids: Iterable[str]) -> dict[str, int]:
        """Live leases per designer (expired ones not yet recycled included: they are
        recycled before a decision is made on them)."""
        ids = list(designer_ids)
        counts = dict.fromkeys(ids, 0)
        if ids:
            rows = (DesignerLease.select(DesignerLease.designer_id, peewee.fn.COUNT(DesignerLease.id))
                    .where(DesignerLease.designer_id.in_(ids) & (DesignerLease.state == "active"))
                    .group_by(DesignerLease.designer_id).tuples())
            counts.update(dict(rows))
        return counts

    def _locked(self, designer_id: str) -> Designer:
        query = Designer.select().where(Designer.id == designer_id)
        if hubdb.is_postgres():  # SQLite already serialises writers (BEGIN IMMEDIATE)
            query = query.for_update()
        designer = query.first()
        if designer is None:
            raise NotFound(f"designer {designer_id} not found")
        return designer

    def _clear(self, designer: Designer, *, force: bool, by: str, doing: str) -> None:
        self._recycle_expired(designer.id)
        live = [lease.id for lease in DesignerLease.select(DesignerLease.id).where(
            (DesignerLease.designer_id == designer.id) & (DesignerLease.state == "active"))]
        if live and not force:
            raise Conflict(f"designer {designer.name} has {len(live)} live lease(s): release them first, "
                           f"or repeat with ?force=true to recycle them before {doing} it")
        for lease_id in live:
            self._recycle(lease_id, "forced", by=by)

    # -- leases (6.2.3b) ------------------------------------------------------------------

    def minutes(self, minutes: int | None) -> int:
        if minutes is None:
            return self.default_minutes
        if minutes > self.max_minutes:
            raise BadRequest(f"minutes: at most {self.max_minutes}")
        return minutes

    def allocate(self, *, user_id: str, user_name: str, vendor: str | None = None,
                 minutes: int | None = None) -> tuple[DesignerLease, Designer, str]:
        """Lease the least used registered, enabled designer with room; return the lease,
        its designer and the session token (shown once)."""
        length = self.minutes(minutes)
        what = f"designer of vendor {vendor}" if vendor else "designer"
        with hubdb.atomic():
            query = Designer.select().where(Designer.enabled == True)  # noqa: E712 - peewee expression
            if vendor:
                query = query.where(Designer.vendor == vendor)
            candidates = list(query)
            if not candidates:
                raise Conflict(f"no registered, enabled {what}: ask an administrator to register one")
            used = self.in_use(d.id for d in candidates)
            candidates.sort(key=lambda d: (used[d.id], used[d.id] / d.capacity, d.name))
            for candidate in candidates:
                designer = self._locked(candidate.id)  # from here on, no one else allocates it
                if not designer.enabled:
                    continue
                self._recycle_expired(designer.id)
                if self.in_use([designer.id])[designer.id] >= designer.capacity:
                    continue
                token = TOKEN_PREFIX + secrets.token_urlsafe(32)
                lease = DesignerLease.create(designer_id=designer.id, designer_name=designer.name, user_id=user_id,
                                             user_name=user_name, token_hash=digest(token),
                                             expires_at=utcnow() + dt.timedelta(minutes=length))
                self.hub.publish("designer_lease.allocated", leaseId=lease.id, designerId=designer.id,
                                 userId=user_id, expiresAt=lease.expires_at.isoformat())
                return lease, designer, token
        raise Conflict(f"no idle {what}: all {len(candidates)} in use; release a lease or try again later")

    def lease(self, lease_id: str) -> DesignerLease:
        lease = DesignerLease.get_or_none(DesignerLease.id == lease_id)
        if lease is None:
            raise NotFound(f"lease {lease_id} not found")
        return lease

    def renew(self, lease_id: str, *, minutes: int | None, principal) -> DesignerLease:
        length = self.minutes(minutes)
        with hubdb.atomic():
            lease = self._own(lease_id, principal)
            if lease.state == "active" and lease.expires_at <= utcnow():
                self._recycle(lease.id, "expired", by="hub")
                lease = self.lease(lease_id)
            if lease.state != "active":
                raise Conflict(f"lease {lease_id} has ended ({lease.reason}): allocate a designer again")
            if not Designer.select().where((Designer.id == lease.designer_id) & (Designer.enabled == True)).exists():  # noqa: E712
                raise Conflict(f"designer {lease.designer_name} is disabled: the lease cannot be renewed")
            now = utcnow()
            DesignerLease.update(expires_at=now + dt.timedelta(minutes=length), renewed_at=now).where(
                (DesignerLease.id == lease.id) & (DesignerLease.state == "active")).execute()
        return self.lease(lease_id)

    def release(self, lease_id: str, *, principal) -> DesignerLease:
        with hubdb.atomic():
            lease = self._own(lease_id, principal)
            if lease.state != "active":
                raise Conflict(f"lease {lease_id} has already ended ({lease.reason})")
            reason = "released" if lease.user_id == principal.id else "forced"
            self._recycle(lease.id, reason, by=principal.name)
        return self.lease(lease_id)

    def _own(self, lease_id: str, principal) -> DesignerLease:
        lease = self.lease(lease_id)
        if lease.user_id != principal.id and not principal.can("designers.manage"):
            # Another person's lease: as if it did not exist, unless one manages designers.
            raise NotFound(f"lease {lease_id} not found")
        return lease

    def sweep(self) -> int:
        """Recycle every expired lease; return how many. The plugin's loop calls it."""
        expired = [lease.id for lease in DesignerLease.select(DesignerLease.id).where(
            (DesignerLease.state == "active") & (DesignerLease.expires_at <= utcnow())).limit(1000)]
        count = 0
        for lease_id in expired:
            with hubdb.atomic():
                count += self._recycle(lease_id, "expired", by="hub")
        return count

    def _recycle_expired(self, designer_id: str) -> None:
        for lease in DesignerLease.select(DesignerLease.id).where(
                (DesignerLease.designer_id == designer_id) & (DesignerLease.state == "active")
                & (DesignerLease.expires_at <= utcnow())):
            self._recycle(lease.id, "expired", by="hub")

    def _recycle(self, lease_id: str, reason: str, *, by: str) -> int:
        """End a live lease (conditional: a lease is recycled once, whoever gets there first)."""
        assert reason in REASONS
        changed = DesignerLease.update(state="recycled", reason=reason, recycled_by=by[:128],
                                       recycled_at=utcnow()).where(
            (DesignerLease.id == lease_id) & (DesignerLease.state == "active")).execute()
        if changed:
            lease = DesignerLease.get_by_id(lease_id)
            self.hub.publish("designer_lease.recycled", leaseId=lease.id, designerId=lease.designer_id,
                             userId=lease.user_id, reason=reason)
        return changed

    # -- sessions: only registered designers are used online (6.2.3a) ----------------------

    def verify_session(self, designer_secret: str, token: str) -> tuple[DesignerLease, Designer]:
        """The lease behind ``token`` if it is live on the designer presenting ``designer_secret``."""
        if not designer_secret:
            raise Forbidden("X-Designer-Secret: a registered designer's secret is required")
        designer = Designer.get_or_none(Designer.secret_hash == digest(designer_secret))
        if designer is None:
            raise Forbidden("X-Designer-Secret: not a registered designer")
        if not designer.enabled:
            raise Forbidden(f"designer {designer.name} is disabled")
        lease = DesignerLease.get_or_none(DesignerLease.token_hash == digest(token))
        if lease is None or lease.designer_id != designer.id:
            raise Forbidden("token: not a session on this designer")
        if lease.state != "active":
            raise Forbidden(f"token: the lease has ended ({lease.reason})")
        if lease.expires_at <= utcnow():
            raise Forbidden("token: the lease has expired")
        return lease, designer
