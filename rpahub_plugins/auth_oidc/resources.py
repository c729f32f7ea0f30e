"""What the console's sign-in page needs to know about unified identity."""

from __future__ import annotations

from rpahub_core.web import ok, operation


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
