"""People who sign in through the identity platform become local users of auth_local.

There is one user store: the first sign-in creates a user (``source = "oidc"``, no
password, so only the platform can sign them in) and links it to the token's issuer
and subject; every sign-in brings the user's roles, name and e-mail in line with the
token's claims. Each change is audited. The common case — nothing changed — only
reads, so it takes no write lock.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import peewee

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import Unauthorized
from rpahub_plugins.auth_local.models import Role, User
from rpahub_plugins.auth_local.schemas import USERNAME

from .models import OidcLink
from .settings import OidcSettings
from .tokens import claim, refused

log = logging.getLogger("rpahub.auth_oidc")

SOURCE = "oidc"
SEEN_EVERY_S = 60  # last_seen_at is coarse: one write a minute per person, not one per request
_USERNAME = re.compile(USERNAME)


class _WriteNeeded(Exception):
    """The read-only pass found something to change: redo it in a transaction."""


class Provisioner:
    def __init__(self, hub, settings: OidcSettings, identity):
        self.hub = hub
        self.settings = settings
        self.identity = identity

    # -- claims -> who and which roles ------------------------------------------

    def username_of(self, claims: dict[str, Any]) -> str:
        s = self.settings
        name = claim(claims, s.username_claim)
        used = s.username_claim
        if name in (None, ""):
            name, used = claims.get("sub"), "sub"
        if not isinstance(name, str) or not _USERNAME.match(name):
            raise refused(f"its {used} claim is not a usable user name (letters, digits, '.', '_', '@', '-'; "
                          "2 to 64 characters); choose another username_claim")
        return name

    def roles_of(self, claims: dict[str, Any]) -> tuple[list[str], list[str]]:
        """(hub roles to hold, mapped role names the hub does not have)."""
        values: list[str] = []
        for path in self.settings.roles_claim:
            found = claim(claims, path)
            if isinstance(found, str):
                values.append(found)
            elif isinstance(found, list):
                values.extend(v for v in found if isinstance(v, str))
        wanted = set(self.settings.default_roles)
        for value in values:
            wanted.update(self.settings.role_map.get(value, ()))
        known = {r.name for r in Role.select(Role.name).where(Role.name.in_(sorted(wanted)))} if wanted else set()
        unknown = sorted(wanted - known)
        if unknown:
            log.warning("auth_oidc.role_map names roles this hub does not have: %s", ", ".join(unknown))
        return sorted(known), unknown

    def refuse_robots(self, *names: str) -> None:
        """A token naming one of this hub's robots is refused: robots never act as people (SEC-1)."""
        if self.hub.pm.get_plugin("executors") is None:
            return
        from rpahub_plugins.executors.models import AllowedRobot, Executor

        names = tuple(set(names))
        if (Executor.select().where(Executor.id.in_(names)).exists()
                or AllowedRobot.select().where(AllowedRobot.robot_id.in_(names)).exists()):
            raise refused("its subject is a robot of this hub; robots are admitted with their supplier "
                          "credentials, never as people")

    # -- the local user ------------------------------------------------------------

    def principal(self, claims: dict[str, Any], source: str = "") -> UserPrincipal:
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise refused("it has no usable subject (sub)")
        issuer = str(claims.get("iss", ""))
        username = self.username_of(claims)
        self.refuse_robots(username, subject)
        roles, unknown = self.roles_of(claims)
        args = (issuer, subject, username, claims, roles, unknown, source)
        try:
            user = self._resolve(*args, write=False)
        except _WriteNeeded:
            try:
                with hubdb.atomic():
                    user = self._resolve(*args, write=True)
            except peewee.IntegrityError:
                # Another request provisioned the same person a moment ago: use what it made.
                with hubdb.atomic():
                    user = self._resolve(*args, write=True)
        return UserPrincipal(
            id=user.id, name=user.username, permissions=self.identity.permissions_of(user),
            roles=tuple(self.identity.roles_of(user)), must_change_password=False, token_id=None,
        )

    def _resolve(self, issuer, subject, username, claims, roles, unknown, source, *, write: bool) -> User:
        def change():
            if not write:
                raise _WriteNeeded

        def audit(action, **detail):
            self.hub.audit(action, target=user.username, source=source,
                           detail={"issuer": issuer, "subject": subject, **detail})

        link = OidcLink.get_or_none((OidcLink.issuer == issuer) & (OidcLink.subject == subject))
        user = User.get_or_none(User.id == link.user_id) if link else None
        created = False
        if user is None:
            user = User.get_or_none(User.username == username)
            if user is not None:
                self._check_linkable(user, username)
                change()
                if link:
                    link.delete_instance()
                OidcLink.create(issuer=issuer, subject=subject, user_id=user.id)
                audit("user.linked", previousSource=user.source)
            else:
                change()
                if link:
                    link.delete_instance()
                user = self.identity.create_user(username, display_name=self._text(claims, "name") or username,
                                                 email=self._text(claims, "email"), roles=roles)
                User.update(source=SOURCE).where(User.id == user.id).execute()
                user.source = SOURCE
                OidcLink.create(issuer=issuer, subject=subject, user_id=user.id)
                created = True
                audit("user.provisioned", roles=roles, unknownRoles=unknown)
        if not user.is_active:
            raise Unauthorized("user is disabled")
        if created:
            return user
        self._sync_profile(user, claims, change, audit)
        if self.settings.sync_roles:
            held = self.identity.roles_of(user)
            if held != roles:
                change()
                self.identity.update_user(user, roles=roles)
                audit("user.roles_synced", added=sorted(set(roles) - set(held)),
                      removed=sorted(set(held) - set(roles)), unknownRoles=unknown)
        if link is not None and (utcnow() - link.last_seen_at).total_seconds() > SEEN_EVERY_S:
            change()
            OidcLink.update(last_seen_at=utcnow()).where(OidcLink.id == link.id).execute()
        return user

    def _check_linkable(self, user: User, username: str) -> None:
        if OidcLink.select().where(OidcLink.user_id == user.id).exists():
            raise refused(f"user name {username} already belongs to another identity-platform account; "
                          "an administrator must resolve the clash")
        if user.source != SOURCE and not self.settings.link_local_users:
            raise refused(f"user name {username} belongs to a local account of this hub; an administrator "
                          "must rename that account, or allow linking with link_local_users")

    def _text(self, claims: dict[str, Any], which: str) -> str:
        path = self.settings.name_claim if which == "name" else self.settings.email_claim
        value = claim(claims, path) if path else None
        limit = 128 if which == "name" else 254
        return value.replace("\x00", "")[:limit] if isinstance(value, str) else ""

    def _sync_profile(self, user: User, claims, change, audit) -> None:
        fields = {}
        for which, column in (("name", "display_name"), ("email", "email")):
            value = self._text(claims, which)
            if value and value != getattr(user, column):
                fields[column] = value
        if fields:
            change()
            self.identity.update_user(user, display_name=fields.get("display_name"), email=fields.get("email"))
            audit("user.profile_synced", fields=sorted(fields))

