"""Thin Falcon resources of the designers API: validate, call the service, answer."""

from __future__ import annotations

from rpahub_core.web import ok, operation, paginate

from .models import Designer, DesignerLease
from .schemas import AllocateIn, DesignerIn, DesignerPut, DesignerQuery, ForceQuery, LeaseQuery, RenewIn, SessionQuery
from .service import Designers

TAGS = ("designers",)


def designer_json(d: Designer, in_use: int | None = None) -> dict:
    out = {"id": d.id, "name": d.name, "vendor": d.vendor, "version": d.version, "endpoint": d.endpoint,
           "capacity": d.capacity, "enabled": d.enabled, "registeredBy": d.registered_by,
           "instanceId": d.instance_id, "createdAt": d.created_at, "updatedAt": d.updated_at}
    if in_use is not None:
        out.update(inUse=in_use, idle=max(0, d.capacity - in_use) if d.enabled else 0)
    return out


def lease_json(lease: DesignerLease) -> dict:
    return {"id": lease.id, "designerId": lease.designer_id, "designerName": lease.designer_name,
            "userId": lease.user_id, "userName": lease.user_name, "state": lease.state, "reason": lease.reason,
            "recycledBy": lease.recycled_by, "createdAt": lease.created_at, "renewedAt": lease.renewed_at,
            "expiresAt": lease.expires_at, "recycledAt": lease.recycled_at}


class DesignerList:
    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(permission="designers.manage", summary="Registered designers with their use (6.2.3a)",
               query=DesignerQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = Designer.select().order_by(Designer.name)
        if q.vendor:
            query = query.where(Designer.vendor == q.vendor)
        if q.enabled is not None:
            query = query.where(Designer.enabled == q.enabled)
        page = paginate(query, q, lambda d: d)
        used = self.designers.in_use(d.id for d in page["items"])
        page["items"] = [designer_json(d, used[d.id]) for d in page["items"]]
        ok(resp, page)

    @operation(permission="designers.manage", summary="Register a designer; its secret is shown once (6.2.3a)",
               body=DesignerIn, tags=TAGS, audit="designer.register", status=201)
    def on_post(self, req, resp):
        b = req.context.body
        designer, secret = self.designers.register(
            name=b.name, vendor=b.vendor, version=b.version, endpoint=b.endpoint, capacity=b.capacity,
            enabled=b.enabled, registered_by=req.context.principal.name)
        req.context.audit_target = designer.id
        ok(resp, {**designer_json(designer, 0), "secret": secret}, status=201)


class DesignerItem:
    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(permission="designers.manage", summary="A registered designer", tags=TAGS)
    def on_get(self, req, resp, designer_id):
        d = self.designers.get(designer_id)
        ok(resp, designer_json(d, self.designers.in_use([d.id])[d.id]))

    @operation(permission="designers.manage", summary="Change a designer; disabling stops new allocations",
               body=DesignerPut, query=ForceQuery, tags=TAGS, audit="designer.update")
    def on_put(self, req, resp, designer_id):
        changes = req.context.body.model_dump(exclude_none=True)
        d, secret = self.designers.update(designer_id, changes, force=req.context.query.force,
                                          by=req.context.principal.name)
        out = designer_json(d, self.designers.in_use([d.id])[d.id])
        ok(resp, {**out, "secret": secret} if secret else out)

    @operation(permission="designers.manage", summary="Deregister a designer (409 while leased unless ?force)",
               query=ForceQuery, tags=TAGS, audit="designer.deregister")
    def on_delete(self, req, resp, designer_id):
        self.designers.deregister(designer_id, force=req.context.query.force, by=req.context.principal.name)
        ok(resp, None)


class Allocate:
    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(permission="designers.use", summary="Lease an idle cloud designer (6.2.3b)", body=AllocateIn,
               tags=TAGS, audit="designer_lease.allocate", status=201)
    def on_post(self, req, resp):
        b, who = req.context.body, req.context.principal
        lease, designer, token = self.designers.allocate(user_id=who.id, user_name=who.name, vendor=b.vendor,
                                                         minutes=b.minutes)
        req.context.audit_target = lease.id
        ok(resp, {"leaseId": lease.id, "designerId": designer.id, "designerName": designer.name,
                  "vendor": designer.vendor, "endpoint": designer.endpoint, "expiresAt": lease.expires_at,
                  "sessionToken": token}, status=201)


class LeaseList:
    @operation(permission="designers.use", summary="Designer leases: your own; everyone's with designers.manage",
               query=LeaseQuery, tags=TAGS)
    def on_get(self, req, resp):
        q, who = req.context.query, req.context.principal
        query = DesignerLease.select().order_by(DesignerLease.created_at.desc(), DesignerLease.id)
        if not who.can("designers.manage"):
            query = query.where(DesignerLease.user_id == who.id)
        elif q.userId:
            query = query.where(DesignerLease.user_id == q.userId)
        if q.state:
            query = query.where(DesignerLease.state == q.state)
        if q.designerId:
            query = query.where(DesignerLease.designer_id == q.designerId)
        ok(resp, paginate(query, q, lease_json))


class LeaseRenew:
    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(permission="designers.use", summary="Extend a live lease from now", body=RenewIn, tags=TAGS,
               audit="designer_lease.renew")
    def on_post(self, req, resp, lease_id):
        lease = self.designers.renew(lease_id, minutes=req.context.body.minutes, principal=req.context.principal)
        ok(resp, lease_json(lease))


class LeaseRelease:
    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(permission="designers.use", summary="Give a designer back (a manager may end anyone's lease)",
               tags=TAGS, audit="designer_lease.release")
    def on_post(self, req, resp, lease_id):
        ok(resp, lease_json(self.designers.release(lease_id, principal=req.context.principal)))


class SessionCheck:
    """Called by a designer, not a person: it proves its registration with the secret it was given."""

    def __init__(self, designers: Designers):
        self.designers = designers

    @operation(public=True, summary="A designer checks a person's session token (header X-Designer-Secret)",
               query=SessionQuery, tags=TAGS)
    def on_get(self, req, resp):
        lease, designer = self.designers.verify_session(req.get_header("X-Designer-Secret") or "",
                                                        req.context.query.token)
        ok(resp, {"leaseId": lease.id, "designerId": designer.id, "userId": lease.user_id,
                  "userName": lease.user_name, "expiresAt": lease.expires_at})
