"""Verifying an identity platform's signed token (a JWT): signature, issuer, audience, times.

Every refusal is an ``Unauthorized`` whose hint says what is wrong with the token and
what to do, without repeating the token or anything taken from it.
"""

from __future__ import annotations

import re
from typing import Any

import jwt

from rpahub_core.errors import Unauthorized

from .keys import KeySet, KeysUnavailable
from .settings import OidcSettings

# header.payload.signature, base64url; the hub's own tokens (rpu_, rpr_) hold no dots.
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
# Algorithm names safe to repeat in a hint (anything else in the header is not shown).
_NAMED_ALGORITHMS = {"none", "HS256", "HS384", "HS512", "ES256K", "RS256", "RS384", "RS512", "PS256", "PS384",
                     "PS512", "ES256", "ES384", "ES512", "EdDSA"}


def looks_like_jwt(raw: str) -> bool:
    return len(raw) <= 16384 and JWT_SHAPE.match(raw) is not None


class IdentityPlatformUnavailable(Unauthorized):
    """The platform's keys cannot be read: the caller may be fine, the hub cannot tell (503).

    An ``Unauthorized`` so that public calls (password sign-in) ignore it, as they do
    any other credential the hub cannot accept.
    """

    status = 503


def refused(reason: str) -> Unauthorized:
    return Unauthorized(f"OIDC token refused: {reason}")


class Verifier:
    def __init__(self, settings: OidcSettings, keys: KeySet):
        self.settings = settings
        self.keys = keys

    def verify(self, raw: str) -> dict[str, Any]:
        """The token's claims once everything checks out; ``Unauthorized`` otherwise."""
        s = self.settings
        try:
            header = jwt.get_unverified_header(raw)
        except jwt.PyJWTError:
            raise refused("it is not a well-formed JWT") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in s.algorithms:
            shown = alg if alg in _NAMED_ALGORITHMS else "of the header"
            raise refused(f"algorithm {shown} is not accepted (accepted: {', '.join(s.algorithms)})")
        if kid is not None and not isinstance(kid, str):
            raise refused("its key id (kid) is not a string")
        try:
            jwk = self.keys.find(kid)
        except KeysUnavailable:
            raise IdentityPlatformUnavailable("the identity platform's signing keys cannot be read; retry later",
                                              headers={"Retry-After": "5"}) from None
        if jwk is None:
            raise refused("it is signed with a key the identity platform does not publish (unknown kid)")
        if jwk.get("alg") not in (None, alg):
            raise refused(f"its key is for {jwk['alg']}, not {alg}")
        try:
            key = jwt.PyJWK(jwk, algorithm=alg)
            claims = jwt.decode(
                raw, key, algorithms=[alg], audience=s.audience, issuer=s.issuer, leeway=s.leeway_s,
                options={"require": sorted({*s.require_claims, *s.claim_values}), "verify_signature": True, "verify_exp": True,
                         "verify_nbf": True, "verify_iat": True, "verify_aud": True, "verify_iss": True},
            )
        except jwt.ExpiredSignatureError:
            raise refused("it has expired; sign in again") from None
        except jwt.ImmatureSignatureError:
            raise refused("it is not valid yet (nbf/iat in the future); check the clocks of the hub and the "
                          "identity platform") from None
        except jwt.InvalidAudienceError:
            raise refused(f"it is not meant for this hub (aud must name {' or '.join(s.audience)})") from None
        except jwt.InvalidIssuerError:
            raise refused(f"it was not issued by {s.issuer} (iss)") from None
        except jwt.MissingRequiredClaimError as exc:
            raise refused(f"it lacks the {exc.claim} claim") from None
        except jwt.InvalidSignatureError:
            raise refused("its signature does not verify") from None
        except jwt.PyJWTError:
            raise refused("it is malformed or does not match its key") from None
        except (TypeError, ValueError):  # a key or claim of an unexpected type
            raise refused("it is malformed or does not match its key") from None
        for name, wanted in s.claim_values.items():
            if not _claim_matches(claims.get(name), wanted):
                raise refused(f"its {name} claim does not have the required value")
        return claims


def _claim_matches(actual: Any, wanted: Any) -> bool:
    wanted = wanted if isinstance(wanted, list) else [wanted]
    have = actual if isinstance(actual, list) else [actual]
    return any(w in have for w in wanted)


def claim(claims: dict[str, Any], path: str) -> Any:
    """A claim by dotted path (``realm_access.roles``); ``None`` when absent."""
    node: Any = claims
    if path in claims:  # a claim whose name holds dots (URIs are common)
        return claims[path]
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node
