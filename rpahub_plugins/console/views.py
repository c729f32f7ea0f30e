"""Pages and form actions of the console, and the ``View`` each handler receives.

A page is a function ``handler(view, **route_params)`` returning nothing: it calls
``view.render(...)`` or ``view.redirect(...)``. The console signs the person in from
the session cookie, checks the page's permission (a page the person may not use is
neither listed nor served), checks the CSRF token of every form, and gives the handler
an API client holding the person's own token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import falcon

from rpahub_core.web import PageRule

from .api import Answer, Api, ChunkStream
from .i18n import LANGUAGE_NAMES, LANGUAGES, language_of, negotiate

PREFIX = "/console"
SESSION_COOKIE = "rpahub_session"
LANGUAGE_COOKIE = "rpahub_lang"
FLASH_COOKIE = "rpahub_flash"
FORM_LIMIT = 1 << 20
EMPTY_PAGE = {"items": [], "total": 0, "page": 1, "pageSize": 20}


@dataclass
class Entry:
    path: str
    handler: Callable
    permission: str | tuple[str, ...] | None
    public: bool
    method: str


@dataclass
class NavItem:
    section: str
    label: str
    path: str
    permission: str | tuple[str, ...] | None


@dataclass
class Pages:
    """What ``rpahub_console_pages`` adds to."""

    entries: list[Entry] = field(default_factory=list)
    nav_items: list[NavItem] = field(default_factory=list)
    template_folders: list[Any] = field(default_factory=list)
    catalogue_folders: list[Any] = field(default_factory=list)

    def view(self, path: str, handler: Callable, *, permission: str | tuple[str, ...] | None = None,
             nav: tuple[str, str] | None = None, public: bool = False) -> None:
        """A page (GET) at ``/console<path>``; ``nav=(section, label)`` lists it in the menu.
        ``permission``: the one its API needs, or a tuple of which any one will do."""
        self.entries.append(Entry(path, handler, permission, public, "GET"))
        if nav:
            self.nav_items.append(NavItem(nav[0], nav[1], PREFIX + path if path != "/" else PREFIX, permission))

    def action(self, path: str, handler: Callable, *, permission: str | tuple[str, ...] | None = None, public: bool = False) -> None:
        """A form submission (POST) at ``/console<path>``."""
        self.entries.append(Entry(path, handler, permission, public, "POST"))

    def templates(self, folder) -> None:
        self.template_folders.append(folder)

    def catalogues(self, folder) -> None:
        self.catalogue_folders.append(folder)


class Done(Exception):
    """Raised by ``View.render``/``redirect`` in a helper to end the handler early."""


class View:
    """One request to one page."""

    def __init__(self, console, req: falcon.Request, resp: falcon.Response, entry: Entry):
        self.console = console
        self.req = req
        self.resp = resp
        self.entry = entry
        self.token: str | None = req.cookies.get(SESSION_COOKIE) or None
        self.api = Api(console.hub.app, self.token, req.remote_addr or "127.0.0.1",
                       {"User-Agent": req.user_agent or "rpahub-console"})
        self.me: dict | None = None
        self.preferences: dict = {}
        self.language = language_of(req.cookies.get(LANGUAGE_COOKIE)) or negotiate(req.get_header("Accept-Language"))
        self.timezone = console.default_timezone
        self._form: dict[str, Any] | None = None
        self.rendered = False

    # -- who -------------------------------------------------------------------

    def sign_in_from_cookie(self) -> bool:
        if not self.token:
            return False
        me = self.api.get("/api/v1/me")
        if not me.ok:
            return False
        self.me = me.value
        prefs = self.api.get("/api/v1/me/preferences")
        if prefs.ok:
            self.preferences = prefs.value or {}
            self.language = language_of(self.preferences.get("language")) or self.language
            self.timezone = self.preferences.get("timezone") or self.timezone
        return True

    @property
    def permissions(self) -> set[str]:
        return set((self.me or {}).get("permissions") or [])

    def can(self, permission: str | tuple[str, ...] | None) -> bool:
        """Whether the person holds ``permission`` (a tuple: any one of them)."""
        if permission is None:
            return True
        if self.me is None:
            return False
        wanted = (permission,) if isinstance(permission, str) else permission
        return "*" in self.permissions or any(p in self.permissions for p in wanted)

    # -- input -----------------------------------------------------------------

    @property
    def args(self) -> dict[str, Any]:
        """The query string; a repeated parameter is a list."""
        return dict(self.req.params)

    def arg(self, name: str, default: str = "") -> str:
        value = self.req.params.get(name, default)
        return value[-1] if isinstance(value, list) else value

    @property
    def form(self) -> dict[str, Any]:
        """An urlencoded form: one value a field, a list where the field repeats."""
        if self._form is None:
            self._form = {}
            if (self.req.content_type or "").startswith("application/x-www-form-urlencoded"):
                raw = self.req.bounded_stream.read(FORM_LIMIT).decode("utf-8", "replace")
                for key, values in parse_qs(raw, keep_blank_values=True).items():
                    self._form[key] = values if len(values) > 1 else values[0]
        return self._form

    def field(self, name: str, default: str = "") -> str:
        value = self.form.get(name, default)
        return (value[-1] if isinstance(value, list) else value).strip()

    def fields(self, name: str) -> list[str]:
        value = self.form.get(name, [])
        return [v for v in (value if isinstance(value, list) else [value]) if v != ""]

    # -- output ----------------------------------------------------------------

    def _(self, message: str) -> str:
        return self.translator.gettext(message)

    @property
    def translator(self):
        return self.console.catalogues.translator(self.language, strict=self.console.strict_i18n)

    def url(self, path: str, **query) -> str:
        clean = {k: v for k, v in query.items() if v not in (None, "", [])}
        return PREFIX + path + (("?" + urlencode(clean, doseq=True)) if clean else "")

    @property
    def here(self) -> str:
        """Where a form on this page comes back to: this page, or, for a page re-rendered
        after a POST (a form with errors), the page the form was on."""
        if self.req.method == "GET":
            return self.req.relative_uri
        referer = urlsplit(self.req.referer or "")
        came_from = referer.path + (f"?{referer.query}" if referer.query else "") if referer.netloc == self.req.netloc else ""
        return self.safe_next(self.field("next")) or self.safe_next(came_from) or PREFIX

    def url_with(self, **changes) -> str:
        """This page with some query parameters changed (pagination, filters)."""
        query = {**self.args, **changes}
        clean = {k: v for k, v in query.items() if v not in (None, "", [])}
        return self.req.path + (("?" + urlencode(clean, doseq=True)) if clean else "")

    def render(self, template: str, status: int = 200, **context) -> None:
        self.resp.status = status
        self.resp.content_type = falcon.MEDIA_HTML
        self.resp.text = self.console.render(self, template, context)
        self.rendered = True
        raise Done

    def redirect(self, location: str, flash: str | None = None, kind: str = "ok") -> None:
        if flash:
            self.flash(flash, kind)
        self.resp.status = falcon.HTTP_303
        self.resp.set_header("Location", location)
        self.rendered = True
        raise Done

    def back(self, answer: Answer, success: str, location: str | None = None) -> None:
        """Redirect after an action: to ``location`` (or where the form came from) with its outcome."""
        target = location or self.safe_next(self.field("next")) or self.req.path
        if answer.ok:
            self.redirect(target, self._(success))
        self.redirect(self.safe_next(self.field("next")) or self.req.path, answer.hint or self._("The request failed."),
                      "error")

    def json(self, value: Any, status: int = 200) -> None:
        self.resp.status = status
        self.resp.content_type = falcon.MEDIA_JSON
        self.resp.text = json.dumps(value, ensure_ascii=False, default=str)
        self.rendered = True
        raise Done

    def proxy(self, path: str, query: dict | None = None) -> None:
        """Pass a download of the API through as is (a player seeks with Range)."""
        from .api import PASSED_HEADERS

        headers = {h: self.req.get_header(h) for h in PASSED_HEADERS if self.req.get_header(h)}
        raw = self.api.raw("GET", path, query, headers=headers)
        self.resp.status = raw.status
        for name, value in raw.headers:
            if name.lower() not in ("content-length", "connection"):
                self.resp.append_header(name, value)
        length = next((v for k, v in raw.headers if k.lower() == "content-length"), None)
        self.resp.set_stream(ChunkStream(raw.body), int(length) if length else None)
        self.rendered = True
        raise Done

    def fail(self, answer: Answer) -> None:
        """Show why an API call failed: not found, forbidden, or its hint."""
        status = answer.status if answer.status >= 400 else 502
        self.render("error.html", status=status, message=answer.hint, status_code=status)

    def listing(self, answer: Answer, fields=()) -> tuple[dict, dict]:
        """A list page's answer and the errors of its filters: a bad filter (400) keeps the
        page, empty, with the message beside the filter in ``fields`` it names or above the
        list; any other failure is the error page."""
        if answer.ok:
            return answer.value, {}
        if answer.status != 400:
            self.fail(answer)
        return dict(EMPTY_PAGE), answer.form_errors(fields)

    def value(self, answer: Answer) -> Any:
        """The answer's value, or the error page."""
        if not answer.ok:
            self.fail(answer)
        return answer.value

    # -- flash messages and CSRF -----------------------------------------------

    def flash(self, text: str, kind: str = "ok") -> None:
        payload = base64.urlsafe_b64encode(json.dumps({"t": text[:500], "k": kind}).encode()).decode()
        mac = self.console.sign("flash", payload)
        self.resp.set_cookie(FLASH_COOKIE, f"{payload}.{mac}", path=PREFIX, http_only=True, same_site="Strict",
                             secure=self.req.scheme == "https", max_age=60)

    def take_flash(self) -> dict | None:
        raw = self.req.cookies.get(FLASH_COOKIE)
        if not raw:
            return None
        self.resp.unset_cookie(FLASH_COOKIE, path=PREFIX)
        payload, _, mac = raw.rpartition(".")
        if not hmac.compare_digest(mac, self.console.sign("flash", payload)):
            return None
        try:
            data = json.loads(base64.urlsafe_b64decode(payload))
        except ValueError:
            return None
        return {"text": data.get("t", ""), "kind": data.get("k", "ok")}

    @property
    def csrf(self) -> str:
        return self.console.sign("csrf", self.token or "anonymous")

    def csrf_ok(self) -> bool:
        sent = self.form.get("csrf") or self.req.get_header("X-CSRF-Token") or self.req.params.get("csrf") or ""
        return isinstance(sent, str) and hmac.compare_digest(sent, self.csrf)

    @staticmethod
    def safe_next(value: str | None) -> str | None:
        """Only a console path: never an open redirect."""
        if value and value.startswith(PREFIX) and not value.startswith("//") and "\\" not in value:
            return value
        return None

    def nav(self) -> list[tuple[str, list[NavItem]]]:
        sections: dict[str, list[NavItem]] = {}
        for item in self.console.pages.nav_items:
            if self.can(item.permission):
                sections.setdefault(item.section, []).append(item)
        order = [s for s in self.console.sections if s in sections] + [s for s in sections if s not in self.console.sections]
        return [(s, sections[s]) for s in order]

    def context(self) -> dict[str, Any]:
        t = self.translator
        return {
            "v": self, "me": self.me, "lang": self.language, "tz": self.timezone, "csrf": self.csrf,
            "languages": LANGUAGE_NAMES, "html_lang": self.language, "path": self.req.path,
            "flash": self.take_flash(), "can": self.can, "url": self.url, "url_with": self.url_with,
            "gettext": t.gettext, "ngettext": t.ngettext, "_": t.gettext, "known": t.known, "quote": quote,
        }


class PageResource:
    """The Falcon resource of one console path (GET page and/or POST action)."""

    def __init__(self, console, path: str):
        self.console = console
        self.path = path
        self.entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        if entry.method in self.entries:
            raise ValueError(f"console {entry.method} {entry.path} added twice")
        self.entries[entry.method] = entry
        responder = self._responder(entry)
        responder.__rpahub_page__ = PageRule(entry.permission, entry.handler.__doc__ or entry.path, entry.public)
        setattr(self, f"on_{entry.method.lower()}", responder)

    def _responder(self, entry: Entry):
        def respond(req, resp, **params):
            self.console.serve(entry, req, resp, params)

        return respond


def language_switch(view: View) -> None:
    """Change the language: remembered in a cookie, and in one's preferences when signed in."""
    language = language_of(view.field("language")) or language_of(view.arg("language"))
    if language is None or language not in LANGUAGES:
        view.redirect(view.safe_next(view.field("next")) or PREFIX + "/", view._("Unknown language."), "error")
    view.resp.set_cookie(LANGUAGE_COOKIE, language, path="/", same_site="Lax", http_only=True,
                         secure=view.req.scheme == "https", max_age=365 * 86400)
    view.language = language
    if view.me is not None:
        view.api.patch("/api/v1/me/preferences", {"language": language})
    view.redirect(view.safe_next(view.field("next")) or PREFIX + "/")


def hmac_hex(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:40]
