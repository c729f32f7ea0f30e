"""Unified identity (T/CES 130-2022 6.3.2a, SEC-1): people sign in at the utility's
identity platform and present its signed token (an OIDC JWT) as their bearer credential.

The token is verified against the platform's published keys; the person is then a
local user of auth_local — created on first sign-in, roles kept in line with the
token's claims — so permissions, audit and administration work as for anyone else.
Robots never come through here: their credentials are not JWTs, and a token whose
subject is one of this hub's robots is refused.
"""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .keys import KeySet
from .models import MODELS
from .provisioning import Provisioner
from .settings import DEFAULTS, OidcSettings, load
from .tokens import Verifier, looks_like_jwt


class Oidc:
    """This plugin's objects for one hub."""

    def __init__(self, hub):
        from rpahub_plugins.auth_local import identity

        self.settings: OidcSettings = load(hub.settings.plugin("auth_oidc"))
        s = self.settings
        self.keys = KeySet(inline=s.jwks or None, file=hub.settings.path(s.jwks_file) if s.jwks_file else None,
                           url=s.jwks_url, ttl_s=s.jwks_ttl_s)
        self.verifier = Verifier(s, self.keys)
        self.provisioner = Provisioner(hub, s, identity(hub))


def oidc(hub) -> Oidc:
    if "auth_oidc" not in hub.state:
        hub.state["auth_oidc"] = Oidc(hub)
    return hub.state["auth_oidc"]


@hookimpl
def rpahub_config_defaults():
    return {"auth_oidc": {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULTS.items()}}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("auth_oidc", 1, create_tables(*MODELS), "links from identity-platform subjects to users")


@hookimpl
def rpahub_register_routes(routes, hub):
    # Validates the configuration now, so a mistake stops the hub at start, naming the key.
    routes.add("/api/v1/auth/oidc", resources.OidcInfo(oidc(hub).settings))
    routes.add("/api/v1/auth/oidc/signin", resources.OidcSignIn())


@hookimpl
def rpahub_authenticate(req, hub):
    """A bearer JWT from the identity platform → the person's UserPrincipal.

    Anything else (the hub's own ``rpu_`` tokens, robots' credentials) is left to the
    plugins that issue it: this answers ``None``. So does everything while disabled.
    """
    header = req.get_header("Authorization") or ""
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not looks_like_jwt(raw):
        return None
    state = oidc(hub)
    if not state.settings.enabled:
        return None
    claims = state.verifier.verify(raw)
    return state.provisioner.principal(claims, source=req.remote_addr or "")


__all__ = ["oidc"]
