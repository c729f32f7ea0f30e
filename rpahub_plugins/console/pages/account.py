"""Sign-in (local and the identity platform), sign-out, one's profile, password and API tokens."""

from __future__ import annotations

from ..i18n import N_, language_of
from ..views import PREFIX, SESSION_COOKIE, View, language_switch


def signin_form(view: View) -> None:
    """Sign in."""
    if view.me is not None:
        view.redirect(view.safe_next(view.arg("next")) or PREFIX)
    oidc = view.api.get("/api/v1/auth/oidc")
    view.render("account/signin.html", next=view.safe_next(view.arg("next")) or "", values={}, errors={},
                oidc=oidc.value if oidc.ok else {"enabled": False})


def signin(view: View) -> None:
    values = {"username": view.field("username")}
    answer = view.api.post("/api/v1/auth/login", {"username": view.field("username"), "password": view.field("password")})
    if not answer.ok:
        errors = answer.field_errors or {"": answer.hint}
        oidc = view.api.get("/api/v1/auth/oidc")
        view.render("account/signin.html", status=400 if answer.status == 400 else answer.status,
                    next=view.safe_next(view.field("next")) or "", values=values, errors=errors,
                    oidc=oidc.value if oidc.ok else {"enabled": False})
    token = answer.value["token"]
    view.resp.set_cookie(SESSION_COOKIE, token, path="/", http_only=True, same_site="Strict",
                         secure=view.req.scheme == "https")
    view.token = token
    if answer.value.get("mustChangePassword"):
        view.redirect(view.url("/me/password"), view._("Choose a new password before you go on."))
    view.redirect(view.safe_next(view.field("next")) or PREFIX)


def signout(view: View) -> None:
    view.api.post("/api/v1/auth/logout")
    view.resp.unset_cookie(SESSION_COOKIE, path="/")
    view.redirect(view.url("/signin"), view._("You are signed out."))


def profile(view: View) -> None:
    """My profile."""
    view.render("account/me.html", errors={}, zones=common_zones(view.timezone))


def save_preferences(view: View) -> None:
    body = {"language": language_of(view.field("language")) or view.language, "timezone": view.field("timezone")}
    answer = view.api.patch("/api/v1/me/preferences", body)
    if not answer.ok:
        view.render("account/me.html", status=400, errors=answer.field_errors or {"": answer.hint},
                    zones=common_zones(view.timezone))
    view.language = answer.value["language"]
    view.redirect(view.url("/me"), view._("Preferences saved."))


def password_form(view: View) -> None:
    """Change my password."""
    view.render("account/password.html", errors={})


def change_password(view: View) -> None:
    new = view.field("newPassword")
    if new != view.field("repeat"):
        view.render("account/password.html", status=400, errors={"repeat": view._("The two new passwords differ.")})
    answer = view.api.post("/api/v1/me/password", {"currentPassword": view.field("currentPassword"), "newPassword": new})
    if not answer.ok:
        view.render("account/password.html", status=400, errors=answer.field_errors or {"": answer.hint})
    view.redirect(view.url("/me"), view._("Password changed."))


def tokens(view: View, created: dict | None = None, errors: dict | None = None, status: int = 200) -> None:
    """My API tokens."""
    page = view.value(view.api.get("/api/v1/me/tokens", {"page": view.arg("page", "1"), "pageSize": 20}))
    view.render("account/tokens.html", status=status, page=page, created=created, errors=errors or {})


def create_token(view: View) -> None:
    body = {"name": view.field("name")}
    if view.field("expiresInDays"):
        body["expiresInDays"] = view.field("expiresInDays")
    answer = view.api.post("/api/v1/me/tokens", body)
    if not answer.ok:
        tokens(view, errors=answer.field_errors or {"": answer.hint}, status=400)
    tokens(view, created=answer.value)


def revoke_token(view: View, token_id: str) -> None:
    answer = view.api.delete(f"/api/v1/me/tokens/{token_id}")
    view.back(answer, N_("Token revoked."), view.url("/me/tokens"))


def common_zones(current: str) -> list[str]:
    zones = ["Asia/Shanghai", "Asia/Urumqi", "Asia/Hong_Kong", "UTC", "Europe/London", "Europe/Berlin",
             "America/New_York"]
    return zones if current in zones else [current, *zones]


def register(pages) -> None:
    pages.view("/signin", signin_form, public=True)
    pages.action("/signin", signin, public=True)
    pages.action("/signout", signout)
    pages.action("/language", language_switch, public=True)
    pages.view("/me", profile, nav=(N_("Me"), N_("Profile and preferences")))
    pages.action("/me", save_preferences)
    pages.view("/me/password", password_form, nav=(N_("Me"), N_("Password")))
    pages.action("/me/password", change_password)
    pages.view("/me/tokens", tokens, nav=(N_("Me"), N_("API tokens")))
    pages.action("/me/tokens", create_token)
    pages.action("/me/tokens/{token_id}/revoke", revoke_token)
