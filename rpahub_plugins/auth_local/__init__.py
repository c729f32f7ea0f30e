"""Local identity: people with passwords and tokens, and roles. Robots are never users here."""

from __future__ import annotations

import getpass

from rpahub_core import hookimpl
from rpahub_core.auth import USER_TOKEN_PREFIX
from rpahub_core.errors import Unauthorized
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import ADMIN_ROLE, GRANT, Identity


def identity(hub) -> Identity:
    if "auth_local" not in hub.state:
        hub.state["auth_local"] = Identity(hub)
    return hub.state["auth_local"]


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("auth_local", 1, create_tables(*MODELS), "users, roles, grants, tokens")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("users.read", "See users and their roles")
    permissions.add("users.manage", "Create, change, disable users and reset passwords")
    permissions.add("roles.read", "See roles and the permission catalogue")
    permissions.add("roles.manage", "Create, change and delete roles")
    permissions.add("users.approve", "Approve granting a guarded role, e.g. admin (four eyes)")


@hookimpl
def rpahub_config_defaults():
    # Granting one of these roles through the API waits for a second person's approval.
    return {"auth_local": {"guarded_roles": [ADMIN_ROLE]}}


@hookimpl
def rpahub_approval_kinds(kinds):
    kinds.add(GRANT, "users.approve", "Grant a guarded role to a user",
              lambda request, hub: identity(hub).apply_grant(request))


@hookimpl
def rpahub_register_routes(routes, hub):
    ident = identity(hub)
    routes.add("/api/v1/auth/login", resources.Login(ident))
    routes.add("/api/v1/auth/logout", resources.Logout(ident))
    routes.add("/api/v1/me", resources.Me(ident))
    routes.add("/api/v1/me/password", resources.MyPassword(ident))
    routes.add("/api/v1/me/tokens", resources.MyTokens(ident))
    routes.add("/api/v1/me/tokens/{token_id}", resources.MyToken(ident))
    routes.add("/api/v1/users", resources.Users(ident))
    routes.add("/api/v1/users/{user_id}", resources.UserItem(ident))
    routes.add("/api/v1/roles", resources.Roles(ident))
    routes.add("/api/v1/roles/{name}", resources.RoleItem(ident))
    routes.add("/api/v1/permissions", resources.Permissions(hub))


@hookimpl
def rpahub_authenticate(req, hub):
    ident = identity(hub)
    header = req.get_header("Authorization")
    if not header:
        return None
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized("Authorization must be 'Bearer <token>'")
    if not raw.startswith(USER_TOKEN_PREFIX):
        return None  # not a person's token: robots are admitted elsewhere
    return ident.principal_for(raw)


@hookimpl
def rpahub_prepare(hub):
    return identity(hub).ensure_admin()


def _user_create(hub, args) -> int:
    password = args.password or getpass.getpass(f"password for {args.username}: ")
    user = identity(hub).create_user(
        args.username, password=password, display_name=args.display_name or args.username,
        roles=[ADMIN_ROLE] if args.admin else [], must_change_password=not args.permanent,
    )
    hub.audit("user.create", target=user.username, detail={"via": "cli", "admin": args.admin})
    print(f"created user {user.username} ({user.id})")
    return 0


def _configure_user(parser) -> None:
    sub = parser.add_subparsers(dest="user_command", required=True)
    create = sub.add_parser("create", help="create a local user")
    create.add_argument("username")
    create.add_argument("--admin", action="store_true", help="grant the built-in admin role")
    create.add_argument("--display-name")
    create.add_argument("--password", help="default: asked for on the terminal")
    create.add_argument("--permanent", action="store_true", help="do not ask for a change at first sign-in")


@hookimpl
def rpahub_register_commands(commands):
    commands.add("user", _user_create, help="manage local users", configure=_configure_user)


__all__ = ["identity"]
