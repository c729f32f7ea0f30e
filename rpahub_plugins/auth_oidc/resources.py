"""What the console's sign-in page needs to know about unified identity."""

from __future__ import annotations

from rpahub_core.errors import BadRequest
from rpahub_core.permissions import AUTHENTICATED
from rpahub_core.web import ok, operation

from .tokens import looks_like_jwt


class OidcInfo:
    def __init__(self, settings):
        self.settings = settings

    @operation(public=True, summary="Whether people can sign in through the identity platform, and which",
               tags=("identity",))
    def on_get(self, req, resp):
        s = self.settings
        info = {"enabled": s.enabled, "issuer": s.issuer if s.enabled else "",
                "clientId": s.client_id if s.enabled else ""}
        if s.sign_in:
            # Everything here is public: the platform publishes it in its discovery document.
            info.update({"signIn": True, "authorizationEndpoint": s.authorization_endpoint,
                         "tokenEndpoint": s.token_endpoint, "scopes": list(s.scopes)})
        ok(resp, info)


class OidcSignIn:
    """The console signs a person in with the platform's token: this call is the audit
    log's record of it (a bearer token is otherwise presented call by call, unrecorded)."""

    @operation(permission=AUTHENTICATED, summary="Record a sign-in through the identity platform; returns who it is",
               tags=("identity",), audit="auth.oidc_signin")
    def on_post(self, req, resp):
        header = req.get_header("Authorization") or ""
        if not looks_like_jwt(header.partition(" ")[2].strip()):
            raise BadRequest("Authorization: a token of the identity platform is needed here, not a hub token")
        who = req.context.principal
        req.context.audit_target = who.name
        ok(resp, {"id": who.id, "username": who.name, "roles": list(who.roles)})
