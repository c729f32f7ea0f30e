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
        ok(resp, {"enabled": s.enabled, "issuer": s.issuer if s.enabled else "",
                  "clientId": s.client_id if s.enabled else ""})
