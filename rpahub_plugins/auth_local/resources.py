"""Identity API: sign-in, one's own profile and tokens, users, roles, permissions."""

from __future__ import annotations

import datetime as dt

from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, NotFound
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import PageQuery, ok, operation, paginate

from . import schemas
from .models import Role, Token, User, UserRole
from .service import generate_password

TAGS = ("identity",)


def user_json(identity, user: User) -> dict:
    return {
        "id": user.id, "username": user.username, "displayName": user.display_name, "email": user.email,
        "isActive": user.is_active, "source": user.source, "mustChangePassword": user.must_change_password,
        "roles": identity.roles_of(user), "createdAt": user.created_at, "updatedAt": user.updated_at,
    }


def token_json(token: Token) -> dict:
    return {"id": token.id, "name": token.name, "kind": token.kind, "createdAt": token.created_at,
            "expiresAt": token.expires_at, "lastUsedAt": token.last_used_at, "revoked": token.revoked_at is not None}


class Login:
    def __init__(self, identity):
        self.identity = identity

    @operation(public=True, summary="Sign in with user name and password; returns a bearer token",
               body=schemas.LoginIn, tags=TAGS, audit="auth.login")
    def on_post(self, req, resp):
        body = req.context.body
        raw, token, user = self.identity.login(body.username, body.password, req.remote_addr or "")
        req.context.principal = self.identity.principal_for(raw)
        ok(resp, {"token": raw, "expiresAt": token.expires_at, "mustChangePassword": user.must_change_password})


class Logout:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission=AUTHENTICATED, summary="Revoke the token used for this call", tags=TAGS,
               allow_password_change=True, audit="auth.logout")
    def on_post(self, req, resp):
        Token.update(revoked_at=utcnow()).where(Token.id == req.context.principal.token_id).execute()
        ok(resp, None)


class Me:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission=AUTHENTICATED, summary="Who am I: profile, roles and permissions", tags=TAGS,
               allow_password_change=True)
    def on_get(self, req, resp):
        principal = req.context.principal
        user = self.identity.get_user(principal.id)
        ok(resp, {**user_json(self.identity, user), "permissions": sorted(principal.permissions)})


class MyPassword:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission=AUTHENTICATED, summary="Change my password", body=schemas.PasswordChangeIn,
               tags=TAGS, allow_password_change=True, audit="user.password.change")
    def on_post(self, req, resp):
        user = self.identity.get_user(req.context.principal.id)
        self.identity.change_password(user, req.context.body.currentPassword, req.context.body.newPassword)
        ok(resp, None)


class MyTokens:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission=AUTHENTICATED, summary="My personal API tokens", tags=TAGS, query=PageQuery)
    def on_get(self, req, resp):
        query = Token.select().where((Token.subject == req.context.principal.id) & (Token.kind == "api")
                                     & (Token.principal_type == "user")).order_by(Token.created_at.desc())
        ok(resp, paginate(query, req.context.query, token_json))

    @operation(permission=AUTHENTICATED, summary="Create a personal API token (shown once)",
               body=schemas.TokenIn, tags=TAGS, audit="token.create", status=201)
    def on_post(self, req, resp):
        body = req.context.body
        raw, token = self.identity.issue_token("user", req.context.principal.id, kind="api", name=body.name,
                                               ttl=dt.timedelta(days=body.expiresInDays))
        ok(resp, {**token_json(token), "token": raw}, status=201)


class MyToken:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission=AUTHENTICATED, summary="Revoke one of my API tokens", tags=TAGS, audit="token.revoke")
    def on_delete(self, req, resp, token_id):
        n = Token.update(revoked_at=utcnow()).where(
            (Token.id == token_id) & (Token.subject == req.context.principal.id) & (Token.principal_type == "user")
        ).execute()
        if not n:
            raise NotFound(f"token {token_id} not found")
        ok(resp, None)


class Users:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission="users.read", summary="List users", query=schemas.UserQuery, tags=TAGS)
    def on_get(self, req, resp):
        q = req.context.query
        query = User.select().order_by(User.username)
        if q.q:
            query = query.where(User.username.contains(q.q) | User.display_name.contains(q.q))
        if q.role:
            query = query.where(User.id.in_(UserRole.select(UserRole.user).where(UserRole.role == q.role)))
        if q.active is not None:
            query = query.where(User.is_active == q.active)
        ok(resp, paginate(query, q, lambda u: user_json(self.identity, u)))

    @operation(permission="users.manage", summary="Create a user (guarded roles wait for a second person)",
               body=schemas.UserIn, tags=TAGS, audit="user.create", status=201)
    def on_post(self, req, resp):
        body = req.context.body
        password = body.password or generate_password(body.username)
        held, asked = self.identity.split_guarded(None, body.roles)
        user = self.identity.create_user(
            body.username, password=password, display_name=body.displayName, email=body.email,
            roles=held, must_change_password=True,
        )
        req.context.audit_target = user.username
        value = user_json(self.identity, user)
        value["pendingRoleGrants"] = self.identity.request_grants(user, asked, req.context.principal)
        if not body.password:
            value["oneTimePassword"] = password
        ok(resp, value, status=201)


class UserItem:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission="users.read", summary="One user", tags=TAGS)
    def on_get(self, req, resp, user_id):
        ok(resp, user_json(self.identity, self.identity.get_user(user_id)))

    @operation(permission="users.manage", summary="Change a user (profile, active, roles, password reset)",
               body=schemas.UserPatch, tags=TAGS, audit="user.update")
    def on_patch(self, req, resp, user_id):
        body = req.context.body
        user = self.identity.get_user(user_id)
        held, asked = self.identity.split_guarded(user, body.roles) if body.roles is not None else (None, [])
        user = self.identity.update_user(
            user, display_name=body.displayName, email=body.email,
            is_active=body.isActive, roles=held, password=body.password,
        )
        ok(resp, {**user_json(self.identity, user),
                  "pendingRoleGrants": self.identity.request_grants(user, asked, req.context.principal)})


def role_json(identity, role: Role) -> dict:
    return {"name": role.name, "description": role.description, "builtin": role.builtin,
            "permissions": identity.role_permissions(role)}


class Roles:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission="roles.read", summary="List roles with their permissions", tags=TAGS, query=PageQuery)
    def on_get(self, req, resp):
        ok(resp, paginate(Role.select().order_by(Role.name), req.context.query, lambda r: role_json(self.identity, r)))

    @operation(permission="roles.manage", summary="Create a role", body=schemas.RoleIn, tags=TAGS,
               audit="role.create", status=201)
    def on_post(self, req, resp):
        body = req.context.body
        if Role.get_or_none(Role.name == body.name):
            raise Conflict(f"name: role {body.name} exists")
        role = self.identity.set_role(body.name, body.description, body.permissions)
        req.context.audit_target = role.name
        ok(resp, role_json(self.identity, role), status=201)


class RoleItem:
    def __init__(self, identity):
        self.identity = identity

    @operation(permission="roles.read", summary="One role", tags=TAGS)
    def on_get(self, req, resp, name):
        role = Role.get_or_none(Role.name == name)
        if role is None:
            raise NotFound(f"role {name} not found")
        ok(resp, role_json(self.identity, role))

    @operation(permission="roles.manage", summary="Replace a role's description and permissions",
               body=schemas.RolePut, tags=TAGS, audit="role.update")
    def on_put(self, req, resp, name):
        role = Role.get_or_none(Role.name == name)
        if role is None:
            raise NotFound(f"role {name} not found")
        if role.builtin:
            raise BadRequest(f"role {name} is built in and cannot be changed")
        body = req.context.body
        ok(resp, role_json(self.identity, self.identity.set_role(name, body.description, body.permissions)))

    @operation(permission="roles.manage", summary="Delete a role no user holds", tags=TAGS, audit="role.delete")
    def on_delete(self, req, resp, name):
        self.identity.delete_role(name)
        ok(resp, None)


class Permissions:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="roles.read", summary="The permission catalogue roles are built from", tags=TAGS)
    def on_get(self, req, resp):
        ok(resp, [{"name": n, "description": self.hub.permissions.entries[n]} for n in self.hub.permissions.names()])
