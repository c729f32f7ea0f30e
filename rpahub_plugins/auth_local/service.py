"""Local identity: users, roles, tokens. No HTTP in here."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import threading
import time
from collections import defaultdict, deque

import peewee

from rpahub_core import db as hubdb
from rpahub_core.auth import ANY_PERMISSION, USER_TOKEN_PREFIX, UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, NotFound, TooManyRequests, Unauthorized

from .models import Role, RolePermission, Token, User, UserRole
from .passwords import dummy_hash, hash_password, verify_password

ADMIN_ROLE = "admin"
GRANT = "role.grant"  # the approval kind of a guarded role


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def generate_password(username: str = "") -> str:
    """A one-time password that passes the policy for ``username``: a random one may
    contain a short name ("ada") by chance, and must then be drawn again."""
    while True:
        password = secrets.token_urlsafe(15)
        if not username or username.lower() not in password.lower():
            return password


class LoginThrottle:
    """At most N failed sign-ins per minute per user name and per address (ASVS 2.4.1)."""

    def __init__(self, per_minute: int):
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def check(self, *keys: str) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._failures) > 10000:  # forget keys whose failures are all older than a minute
                for key in [k for k, q in self._failures.items() if not q or now - q[-1] > 60]:
                    del self._failures[key]
            for key in keys:
                q = self._failures[key]
                while q and now - q[0] > 60:
                    q.popleft()
                if len(q) >= self.per_minute:
                    raise TooManyRequests("too many failed sign-ins; wait a minute", headers={"Retry-After": "60"})

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures[key].append(time.monotonic())


class Identity:
    def __init__(self, hub):
        self.hub = hub
        self.settings = hub.settings.security
        self.throttle = LoginThrottle(self.settings.login_attempts_per_minute)

    # -- passwords and users ---------------------------------------------------

    def check_password_policy(self, password: str, username: str = "", field: str = "password") -> None:
        """``field``: the request's field the hint names (a form shows it beside that field)."""
        if len(password) < self.settings.password_min_length:
            raise BadRequest(f"{field}: at least {self.settings.password_min_length} characters")
        if username and username.lower() in password.lower():
            raise BadRequest(f"{field}: must not contain the user name")

    def create_user(self, username: str, *, password: str | None = None, display_name: str = "",
                    email: str = "", roles: list[str] = (), must_change_password: bool = False) -> User:
        if password is not None:
            self.check_password_policy(password, username)
        self._check_roles(roles)
        with hubdb.atomic():
            if User.select().where(User.username == username).exists():
                raise Conflict(f"username: {username!r} is taken")
            user = User.create(
                username=username, display_name=display_name or username, email=email,
                password_hash=hash_password(password) if password else None,
                must_change_password=must_change_password,
            )
            for role in roles:
                UserRole.create(user=user, role=role)
        return user

    # -- guarded roles: granted only once a second person approves (SEC-3) -----------

    @property
    def guarded_roles(self) -> set[str]:
        return set(self.hub.settings.plugin("auth_local").get("guarded_roles", [ADMIN_ROLE]))

    def split_guarded(self, user: User | None, roles: list[str]) -> tuple[list[str], list[str]]:
        """Roles to set now, and guarded roles the user does not hold yet (they need approval)."""
        self._check_roles(roles)
        current = set(self.roles_of(user)) if user is not None else set()
        asked = [r for r in roles if r in self.guarded_roles and r not in current]
        return [r for r in roles if r not in asked], asked

    def request_grants(self, user: User, roles: list[str], maker) -> list[dict]:
        from rpahub_plugins.approvals import requests

        out = []
        for role in roles:
            request = requests(self.hub).file(GRANT, target=f"{user.id}:{role}", maker=maker,
                                              title=f"Grant role {role} to {user.username}",
                                              payload={"userId": user.id, "username": user.username, "role": role})
            out.append({"role": role, "approvalRequestId": request.id})
        return out

    def apply_grant(self, request) -> None:
        user_id, role = request.target.rsplit(":", 1)
        user = self.get_user(user_id)
        self._check_roles([role])
        if not UserRole.select().where((UserRole.user == user) & (UserRole.role == role)).exists():
            UserRole.create(user=user, role=role)

    def _check_roles(self, roles) -> None:
        known = {r.name for r in Role.select(Role.name)}
        unknown = sorted(set(roles) - known)
        if unknown:
            raise BadRequest(f"roles: unknown role {', '.join(unknown)}")

    def get_user(self, user_id: str) -> User:
        user = User.get_or_none(User.id == user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found")
        return user

    def update_user(self, user: User, *, display_name=None, email=None, is_active=None, roles=None,
                    password=None) -> User:
        with hubdb.atomic():
            if display_name is not None:
                user.display_name = display_name
            if email is not None:
                user.email = email
            if is_active is not None:
                user.is_active = is_active
                if not is_active:
                    self.revoke_tokens(user)
            if password is not None:
                self.check_password_policy(password, user.username)
                user.password_hash = hash_password(password)
                user.must_change_password = True  # an administrator set it: the user picks their own
                self.revoke_tokens(user)
            if roles is not None:
                self._check_roles(roles)
                UserRole.delete().where(UserRole.user == user).execute()
                for role in roles:
                    UserRole.create(user=user, role=role)
            user.updated_at = utcnow()
            user.save()
        return user

    def change_password(self, user: User, current: str, new: str) -> None:
        if not verify_password(current, user.password_hash):
            raise BadRequest("currentPassword: does not match")
        if current == new:
            raise BadRequest("newPassword: must differ from the current password")
        self.check_password_policy(new, user.username, "newPassword")
        user.password_hash = hash_password(new)
        user.must_change_password = False
        user.updated_at = utcnow()
        user.save()

    def roles_of(self, user: User) -> list[str]:
        return [link.role_id for link in UserRole.select().where(UserRole.user == user).order_by(UserRole.role)]

    def holders(self, permission: str) -> list[dict]:
        """Active people holding ``permission`` (or ``*``) through a role: who may be
        assigned work that needs it."""
        roles = RolePermission.select(RolePermission.role).where(RolePermission.permission.in_([permission, "*"]))
        users = (User.select().where(User.is_active & User.id.in_(UserRole.select(UserRole.user)
                                                                   .where(UserRole.role.in_(roles))))
                 .order_by(User.username))
        return [{"id": u.id, "username": u.username, "displayName": u.display_name} for u in users]

    def permissions_of(self, user: User) -> frozenset[str]:
        rows = (RolePermission.select(RolePermission.permission)
                .join(UserRole, on=(UserRole.role == RolePermission.role))
                .where(UserRole.user == user))
        return frozenset(r.permission for r in rows)

    # -- tokens ----------------------------------------------------------------

    def issue_token(self, principal_type: str, subject: str, *, kind: str, name: str = "",
                    ttl: dt.timedelta | None = None) -> tuple[str, Token]:
        if principal_type != "user":
            raise ValueError("local identity issues tokens to people only")
        raw = USER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = Token.create(
            principal_type=principal_type, subject=subject, kind=kind, name=name,
            token_hash=token_hash(raw), expires_at=(utcnow() + ttl) if ttl else None,
        )
        return raw, token

    def revoke_tokens(self, user: User, kind: str | None = None) -> int:
        query = Token.update(revoked_at=utcnow()).where(
            (Token.principal_type == "user") & (Token.subject == user.id) & Token.revoked_at.is_null()
        )
        if kind:
            query = query.where(Token.kind == kind)
        return query.execute()

    def login(self, username: str, password: str, source: str) -> tuple[str, Token, User]:
        self.throttle.check(f"u:{username}", f"a:{source}")
        user = User.get_or_none(User.username == username)
        if user is None or not user.is_active or not user.password_hash:
            verify_password(password, dummy_hash())
            self.throttle.failed(f"u:{username}", f"a:{source}")
            raise Unauthorized("user name or password is wrong")
        if not verify_password(password, user.password_hash):
            self.throttle.failed(f"u:{username}", f"a:{source}")
            raise Unauthorized("user name or password is wrong")
        raw, token = self.issue_token("user", user.id, kind="session",
                                      ttl=dt.timedelta(hours=self.settings.token_ttl_hours))
        return raw, token, user

    def principal_for(self, raw: str) -> UserPrincipal:
        """Resolve a presented token; raise Unauthorized when it is not valid now."""
        token = Token.get_or_none((Token.token_hash == token_hash(raw)) & (Token.principal_type == "user"))
        now = utcnow()
        if token is None or token.revoked_at is not None or (token.expires_at and token.expires_at <= now):
            raise Unauthorized("token is invalid, expired or revoked")
        if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
            # Coarse on purpose: one write a minute per token, not one per request.
            with hubdb.atomic():
                Token.update(last_used_at=now).where(Token.id == token.id).execute()
        user = User.get_or_none(User.id == token.subject)
        if user is None or not user.is_active:
            raise Unauthorized("user is disabled")
        return UserPrincipal(
            id=user.id, name=user.username, permissions=self.permissions_of(user),
            roles=tuple(self.roles_of(user)), must_change_password=user.must_change_password, token_id=token.id,
        )

    # -- roles -----------------------------------------------------------------

    def set_role(self, name: str, description: str, permissions: list[str], *, builtin: bool = False) -> Role:
        unknown = sorted(p for p in permissions if p != ANY_PERMISSION and p not in self.hub.permissions)
        if unknown:
            raise BadRequest(f"permissions: unknown permission {', '.join(unknown)}")
        with hubdb.atomic():
            role, created = Role.get_or_create(name=name, defaults={"description": description, "builtin": builtin})
            if not created:
                role.description = description
                role.save()
            RolePermission.delete().where(RolePermission.role == role).execute()
            for permission in sorted(set(permissions)):
                RolePermission.create(role=role, permission=permission)
        return role

    def role_permissions(self, role: Role) -> list[str]:
        return sorted(g.permission for g in role.grants)

    def delete_role(self, name: str) -> None:
        role = Role.get_or_none(Role.name == name)
        if role is None:
            raise NotFound(f"role {name} not found")
        if role.builtin:
            raise BadRequest(f"role {name} is built in and cannot be deleted")
        if UserRole.select().where(UserRole.role == role).exists():
            raise Conflict(f"role {name} is still held by users")
        role.delete_instance(recursive=True)

    # -- first run -------------------------------------------------------------

    def ensure_admin(self) -> list[str]:
        with hubdb.atomic():
            if not Role.select().where(Role.name == ADMIN_ROLE).exists():
                self.set_role(ADMIN_ROLE, "Everything, including user and role management", [ANY_PERMISSION],
                              builtin=True)
            if User.select().exists():
                return []
            password = generate_password("admin")
            try:
                self.create_user("admin", password=password, display_name="Administrator",
                                 roles=[ADMIN_ROLE], must_change_password=True)
            except (peewee.IntegrityError, Conflict):  # another process won the race
                return []
        self.hub.audit("user.create", target="admin", detail={"reason": "first run"})
        return [
            "=" * 66,
            "First administrator created. Sign in and choose a new password:",
            "  user name: admin",
            f"  one-time password: {password}",
            "This password is shown once and never stored in clear.",
            "=" * 66,
        ]
