"""Local identity: people with passwords and tokens, roles, and robot connection tokens."""

from __future__ import annotations

import getpass

from rpahub_core import hookimpl
from rpahub_core.errors import Unauthorized
from rpahub_core.migrations import create_tables

from . import resources
from .models import MODELS
from .service import ADMIN_ROLE, Identity


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
    if header:
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise Unauthorized("Authorization must be 'Bearer <token>'")
        return ident.principal_for(raw.strip())
    connect_id = req.get_header("robotConnectId")
    if connect_id:
        principal = ident.principal_for(connect_id)
        if principal.kind != "robot" or principal.id != (req.get_header("robotId") or ""):
            raise Unauthorized("robotConnectId does not belong to robotId")
        return principal
    return None


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
