"""Signing in to the console at the identity platform (6.3.2a): OpenID Connect
authorization code with PKCE, as a public client — the hub holds no client secret.

The flow's state, nonce and PKCE verifier live in a short-lived signed cookie. The hub
exchanges the code itself and signs the person in with the platform's access token —
the JWT auth_oidc verifies on every call — once ``/api/v1/auth/oidc/signin`` accepts it
(which provisions the person and records the sign-in in the audit log).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import logging
import re
import secrets
import time
import urllib.error
import urllib.request
from typing import NoReturn
from urllib.parse import urlencode, urlsplit

from ..api import Api
from ..views import PREFIX, SESSION_COOKIE, View

log = logging.getLogger("rpahub.console")

FLOW_COOKIE = "rpahub_oidc"
FLOW_PATH = PREFIX + "/signin/oidc"  # also covers the callback, and nothing else
FLOW_TTL_S = 600
CALLBACK = "/signin/oidc/callback"
TOKEN_TIMEOUT_S = 10
MAX_ANSWER_BYTES = 1 << 20
# Browsers silently drop a cookie over 4 KiB (name, value and attributes together).
MAX_SESSION_TOKEN = 3900
ERROR_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
JWT_SHAPE = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")


class Failure(Exception):
    """The sign-in stops here: the error page with this status and message."""

    def __init__(self, status: int, message: str, detail: str = "", retry: bool = True):
        super().__init__(message)
        self.status, self.message, self.detail, self.retry = status, message, detail, retry


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _code(value) -> str:
    """A protocol error code fit to show (anything else from outside is not repeated)."""
    return value if isinstance(value, str) and ERROR_CODE.match(value) else "unknown_error"


def sign_in_info(view: View) -> dict | None:
    """The platform's client and endpoints, when the hub offers signing in there."""
    info = view.api.get("/api/v1/auth/oidc")
    return info.value if info.ok and isinstance(info.value, dict) and info.value.get("signIn") else None


def redirect_uri(view: View) -> str:
    """This hub's callback, at the address the browser used.

    ``hub.base_url`` gives the scheme when it names the same host (a proxy in front of
    the hub ends TLS, so the request itself says http).
    """
    netloc = view.req.netloc
    base = view.console.hub.settings.hub.base_url.rstrip("/")
    if base and urlsplit(base).netloc.lower() == netloc.lower():
        return base + PREFIX + CALLBACK
    return f"{view.req.scheme}://{netloc}{PREFIX}{CALLBACK}"


# -- the flow cookie -----------------------------------------------------------------


def keep_flow(view: View, flow: dict) -> None:
    payload = _b64(json.dumps(flow, separators=(",", ":")).encode())
    view.resp.set_cookie(FLOW_COOKIE, f"{payload}.{view.console.sign('oidc', payload)}", path=FLOW_PATH,
                         http_only=True, same_site="Lax", secure=view.req.scheme == "https", max_age=FLOW_TTL_S)


def take_flow(view: View) -> dict | None:
    """The flow this browser started, if it is intact and recent; the cookie is spent either way."""
    raw = view.req.cookies.get(FLOW_COOKIE)
    view.resp.unset_cookie(FLOW_COOKIE, path=FLOW_PATH)
    if not raw:
        return None
    payload, _, mac = raw.rpartition(".")
    if not payload or not hmac.compare_digest(mac, view.console.sign("oidc", payload)):
        return None
    try:
        flow = json.loads(_unb64(payload))
    except ValueError:
        return None
    if not isinstance(flow, dict) or not isinstance(flow.get("t"), int):
        return None
    if not 0 <= time.time() - flow["t"] <= FLOW_TTL_S:
        return None
    return flow


# -- the token endpoint ------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None  # a token endpoint answers; it does not send the code elsewhere


_OPENER = urllib.request.build_opener(_NoRedirects)


def exchange(view: View, endpoint: str, form: dict[str, str]) -> dict:
    """The platform's answer to the code (server to server, form-encoded)."""
    request = urllib.request.Request(endpoint, data=urlencode(form).encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"})
    try:
        with _OPENER.open(request, timeout=TOKEN_TIMEOUT_S) as resp:
            body = resp.read(MAX_ANSWER_BYTES + 1)
    except urllib.error.HTTPError as exc:
        try:
            answer = json.loads(exc.read(MAX_ANSWER_BYTES))
        except (ValueError, OSError, http.client.HTTPException):
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        log.warning("the identity platform's token endpoint %s answered %s: %s", endpoint, exc.code,
                    _code(answer.get("error")))
        if 400 <= exc.code < 500:
            description = answer.get("error_description")
            raise Failure(400, view._("The identity platform did not accept this sign-in (%(error)s): it may have "
                                      "taken too long. Start again.") % {"error": _code(answer.get("error"))},
                          detail=description[:300] if isinstance(description, str) else "") from None
        raise Failure(502, view._("The identity platform cannot be reached right now. Try again in a moment; if it "
                                  "keeps happening, tell the hub's administrator.")) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:  # refused, timed out, TLS, cut off
        log.warning("cannot reach the identity platform's token endpoint %s: %s", endpoint, exc)
        raise Failure(502, view._("The identity platform cannot be reached right now. Try again in a moment; if it "
                                  "keeps happening, tell the hub's administrator.")) from None
    try:
        answer = json.loads(body[:MAX_ANSWER_BYTES])
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        log.warning("the identity platform's token endpoint %s answered something other than JSON", endpoint)
        raise Failure(502, _bad_answer(view))
    return answer


def _bad_answer(view: View) -> str:
    return view._("The identity platform's answer held no token the hub can verify (a signed JWT access token). "
                  "Tell the hub's administrator.")


def _not_set_up(view: View) -> Failure:
    return Failure(404, view._("Signing in through the identity platform is not set up on this hub. Sign in with "
                               "your hub account, or ask the hub's administrator."), retry=False)


def _unverified_claims(token: str) -> dict | None:
    """An ID token's claims. It came straight from the token endpoint over TLS, which
    vouches for it (OpenID Connect Core 3.1.3.7); only its nonce and audience are checked."""
    try:
        claims = json.loads(_unb64(token.split(".")[1]))
    except (IndexError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


# -- the pages ---------------------------------------------------------------------------


def start(view: View) -> None:
    """Sign in through the identity platform."""
    target = view.safe_next(view.arg("next")) or ""
    if view.me is not None:
        view.redirect(target or PREFIX)
    info = sign_in_info(view)
    if info is None:
        fail(view, _not_set_up(view))
    verifier = secrets.token_urlsafe(64)
    flow = {"s": secrets.token_urlsafe(32), "n": secrets.token_urlsafe(32), "v": verifier, "x": target,
            "t": int(time.time())}
    keep_flow(view, flow)
    query = {
        "response_type": "code", "client_id": info["clientId"], "redirect_uri": redirect_uri(view),
        "scope": " ".join(info.get("scopes") or ["openid"]), "state": flow["s"], "nonce": flow["n"],
        "code_challenge": _b64(hashlib.sha256(verifier.encode("ascii")).digest()),
        "code_challenge_method": "S256", "ui_locales": view.language,
    }
    endpoint = info["authorizationEndpoint"]
    view.redirect(endpoint + ("&" if "?" in endpoint else "?") + urlencode(query))


def callback(view: View) -> None:
    """Back from the identity platform."""
    flow = take_flow(view)
    try:
        state = view.arg("state")
        if flow is None or not state or not hmac.compare_digest(state.encode(), str(flow.get("s", "")).encode()):
            raise Failure(400, view._("This sign-in could not be confirmed: it was started more than 10 minutes ago, "
                                      "in another browser, or the address was changed. Start again."))
        error = view.arg("error")
        if error:
            if error == "access_denied":
                raise Failure(403, view._("The identity platform did not let you sign in: you declined, or your "
                                          "account may not use this hub. Ask the administrator of the identity "
                                          "platform if you should have access."))
            raise Failure(400, view._("The identity platform reported a problem (%(error)s). Start again; if it keeps "
                                      "happening, tell the administrator of the identity platform.")
                          % {"error": _code(error)})
        code = view.arg("code")
        if not code:
            raise Failure(400, view._("The identity platform sent no authorisation code. Start again."))
        info = sign_in_info(view)
        if info is None:
            raise _not_set_up(view)
        answer = exchange(view, info["tokenEndpoint"], {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri(view),
            "client_id": info["clientId"], "code_verifier": flow["v"]})
        token = answer.get("access_token")
        if not isinstance(token, str) or not JWT_SHAPE.match(token) or \
                str(answer.get("token_type", "Bearer")).lower() != "bearer":
            raise Failure(502, _bad_answer(view))
        id_token = answer.get("id_token")
        if id_token is not None:
            claims = _unverified_claims(id_token) if isinstance(id_token, str) else None
            audience = (claims or {}).get("aud")
            audience = audience if isinstance(audience, list) else [audience]
            if claims is None or claims.get("nonce") != flow["n"] or info["clientId"] not in audience:
                raise Failure(400, view._("The identity platform's answer does not belong to this sign-in. "
                                          "Start again."))
        if len(token) > MAX_SESSION_TOKEN:
            raise Failure(502, view._("The identity platform's token is too large to keep in the browser. Ask the "
                                      "administrator of the identity platform to put fewer claims (such as groups) "
                                      "in it."), retry=False)
        api = Api(view.console.hub.app, token, view.req.remote_addr or "127.0.0.1",
                  {"User-Agent": view.req.user_agent or "rpahub-console"})
        me = api.post("/api/v1/auth/oidc/signin")  # provisions the person and audits the sign-in
        if me.ok:
            me = api.get("/api/v1/me")
        if not me.ok:
            status = 403 if me.status in (401, 403) else (me.status if me.status >= 500 else 502)
            raise Failure(status, view._("The hub did not accept your identity platform account."),
                          detail=me.hint, retry=status >= 500)
    except Failure as failure:
        fail(view, failure, (flow or {}).get("x", ""))
    view.resp.set_cookie(SESSION_COOKIE, token, path="/", http_only=True, same_site="Strict",
                         secure=view.req.scheme == "https")
    view.token = token
    # A page, not a redirect: after the platform's cross-site redirect, a browser would not
    # send the SameSite=Strict session cookie on a further redirect; a navigation this page
    # starts is the console's own.
    view.render("oidc/continue.html", target=view.safe_next(flow.get("x")) or PREFIX, person=me.value)


def fail(view: View, failure: Failure, target: str = "") -> NoReturn:
    view.render("oidc/error.html", status=failure.status, message=failure.message, detail=failure.detail,
                retry=failure.retry, next=view.safe_next(target) or "")


def register(pages) -> None:
    pages.view("/signin/oidc", start, public=True)
    pages.view(CALLBACK, callback, public=True)
