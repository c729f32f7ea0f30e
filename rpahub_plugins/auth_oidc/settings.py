"""The ``[plugins.auth_oidc]`` section, validated once when the hub builds its routes.

A mistake names its key (``plugins.auth_oidc.algorithms: HS256 is not accepted``), so
the hub refuses to start rather than accepting tokens it should not.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from rpahub_core.config import ConfigError

SECTION = "plugins.auth_oidc"

# Asymmetric signatures only: the hub holds no secret shared with the identity
# platform, so "none" and HS* (which would let anyone holding the public key sign)
# are never accepted.
ACCEPTABLE_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
                         "ES256", "ES384", "ES512", "EdDSA")

DEFAULTS: dict[str, Any] = {
    "enabled": False,
    "issuer": "",
    "audience": [],
    "jwks_file": "",
    "jwks_url": "",
    "jwks": {},
    "jwks_ttl_s": 3600,
    "algorithms": ["RS256", "ES256", "EdDSA"],
    "leeway_s": 60,
    "username_claim": "preferred_username",
    "name_claim": "name",
    "email_claim": "email",
    "roles_claim": ["roles", "realm_access.roles"],
    "role_map": {},
    "default_roles": [],
    "sync_roles": True,
    "link_local_users": False,
    "require_claims": ["exp", "iat", "sub"],
    "claim_values": {},
    "client_id": "",
    "authorization_endpoint": "",
    "token_endpoint": "",
    "scopes": ["openid", "profile"],
}

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class OidcSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    issuer: str = ""
    audience: list[str] = []
    jwks_file: str = ""
    jwks_url: str = ""
    jwks: dict[str, Any] = {}
    jwks_ttl_s: int = Field(3600, ge=60, le=7 * 24 * 3600)
    algorithms: list[str] = Field(["RS256", "ES256", "EdDSA"], min_length=1)
    leeway_s: int = Field(60, ge=0, le=600)
    username_claim: str = Field("preferred_username", min_length=1)
    name_claim: str = "name"
    email_claim: str = "email"
    roles_claim: list[str] = ["roles", "realm_access.roles"]
    role_map: dict[str, list[str]] = {}
    default_roles: list[str] = []
    sync_roles: bool = True
    link_local_users: bool = False
    require_claims: list[str] = ["exp", "iat", "sub"]
    # claim -> accepted value or values (e.g. azp = "rpahub-console"); implies presence
    claim_values: dict[str, Any] = {}
    client_id: str = ""
    # The console's sign-in (authorization code + PKCE, public client): where to send the
    # person, and where the hub exchanges the code for their token.
    authorization_endpoint: str = ""
    token_endpoint: str = ""
    scopes: list[str] = ["openid", "profile"]

    @property
    def sign_in(self) -> bool:
        """Whether the console offers signing in at the platform."""
        return bool(self.enabled and self.client_id and self.authorization_endpoint and self.token_endpoint)

    @field_validator("audience", "roles_claim", "default_roles", "scopes", mode="before")
    @classmethod
    def _one_or_many(cls, value):
        return _as_list(value)

    @field_validator("role_map", mode="before")
    @classmethod
    def _map_values(cls, value):
        if isinstance(value, dict):
            return {k: _as_list(v) for k, v in value.items()}
        return value

    @field_validator("jwks", mode="before")
    @classmethod
    def _jwks_text(cls, value):
        # An environment override carries the key set as JSON text.
        if isinstance(value, str):
            if not value.strip():
                return {}
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("not a JSON Web Key Set") from None
        return value

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value):
        for alg in value:
            if alg not in ACCEPTABLE_ALGORITHMS:
                raise ValueError(f"{alg} is not accepted; use asymmetric algorithms only "
                                 f"({', '.join(ACCEPTABLE_ALGORITHMS)})")
        return value

    @field_validator("jwks_url")
    @classmethod
    def _https(cls, value):
        # Keys fetched over plain HTTP could be swapped on the way: anyone could then sign.
        _require_https(value, "use jwks_file for a key set copied by hand")
        return value

    @field_validator("authorization_endpoint", "token_endpoint")
    @classmethod
    def _https_endpoint(cls, value):
        # Over plain HTTP the code, the PKCE verifier and the person's token could be read on the way.
        _require_https(value, "the identity platform's endpoints carry the person's credentials")
        if value and urlsplit(value).fragment:
            raise ValueError("must not have a #fragment")
        return value

    @field_validator("scopes")
    @classmethod
    def _scope_tokens(cls, value):
        for scope in value:
            if not scope or any(ch.isspace() or ch in '"\\' for ch in scope):
                raise ValueError(f"{scope!r} is not a scope name (no spaces, quotes or backslashes)")
        return value

    @field_validator("jwks")
    @classmethod
    def _key_set(cls, value):
        if value and not isinstance(value.get("keys"), list):
            raise ValueError('a JSON Web Key Set needs a "keys" list')
        return value

    @model_validator(mode="after")
    def _complete_when_enabled(self):
        if self.enabled:
            missing = [name for name in ("issuer", "audience") if not getattr(self, name)]
            if missing:
                raise ValueError(f"{' and '.join(missing)} must be set when enabled")
            if not (self.jwks_file or self.jwks_url or self.jwks):
                raise ValueError("one of jwks_file, jwks_url or jwks must be set when enabled")
            sign_in = ("client_id", "authorization_endpoint", "token_endpoint")
            if self.authorization_endpoint or self.token_endpoint:
                missing = [name for name in sign_in if not getattr(self, name)]
                if missing:
                    raise ValueError(f"{' and '.join(missing)} must be set too, for the console's sign-in")
        return self


def _require_https(value: str, why: str) -> None:
    if value:
        parts = urlsplit(value)
        if not parts.hostname or (parts.scheme != "https"
                                  and not (parts.scheme == "http" and parts.hostname in _LOOPBACK)):
            raise ValueError(f"must be an https:// URL ({why}); plain http:// only on loopback")


def load(raw: dict[str, Any]) -> OidcSettings:
    """Validate the section; ``ConfigError`` names each offending key."""
    try:
        return OidcSettings.model_validate({**DEFAULTS, **(raw or {})})
    except ValidationError as exc:
        lines = []
        for err in exc.errors(include_url=False):
            key = ".".join(str(p) for p in err["loc"])
            where = f"{SECTION}.{key}" if key else SECTION
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"].removeprefix("Value error, ")
            lines.append(f"  {where}: {msg}")
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None
