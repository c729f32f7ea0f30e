"""The console of one hub: its pages, templates, catalogues and the request flow."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import falcon
import jinja2
from markdown_it import MarkdownIt
from markupsafe import Markup

from rpahub_core.web import PageRule

from . import i18n
from .views import PREFIX, Done, Entry, PageResource, Pages, View, hmac_hex

log = logging.getLogger("rpahub.console")
HERE = Path(__file__).parent

# Menu sections in the order the menu shows them.
SECTIONS = [i18n.N_("Overview"), i18n.N_("Marketplace"), i18n.N_("Runs"), i18n.N_("Design"),
            i18n.N_("Executors"), i18n.N_("Maintenance"), i18n.N_("Operations"), i18n.N_("Administration"),
            i18n.N_("Me")]

SECURITY_HEADERS = {
    # Our own scripts only; pygal's SVG charts carry inline styles, nothing inline runs.
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; media-src 'self'; frame-ancestors 'none'; "
                               "form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


class Console:
    def __init__(self, hub, pages: Pages, settings: dict[str, Any]):
        self.hub = hub
        self.pages = pages
        self.sections = SECTIONS
        self.default_timezone = settings.get("timezone", "Asia/Shanghai")
        self.strict_i18n = bool(settings.get("strict_i18n", False))
        self._key = hub.keys.hmac_key("console")
        self.catalogues = i18n.Catalogues()
        for folder in pages.catalogue_folders:
            self.catalogues.add(folder)
        self.env = jinja2.Environment(
            loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(f)) for f in pages.template_folders]),
            autoescape=True, extensions=["jinja2.ext.i18n"], trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.ChainableUndefined,
        )
        self.env.newstyle_gettext = True  # _("%(n)s runs", n=3): the catalogue's text, then the values
        self.env.filters["when"] = _when
        self.env.filters["duration"] = _duration
        self.env.filters["number"] = _number
        self.env.filters["markdown"] = _markdown
        self.env.globals["PREFIX"] = PREFIX

    def sign(self, purpose: str, value: str) -> str:
        return hmac_hex(self._key, purpose, value)

    def resources(self) -> dict[str, PageResource]:
        out: dict[str, PageResource] = {}
        for entry in self.pages.entries:
            path = PREFIX + entry.path if entry.path != "/" else PREFIX
            out.setdefault(path, PageResource(self, path)).add(entry)
        return out

    def render(self, view: View, template: str, context: dict[str, Any]) -> str:
        ctx = view.context()
        ctx.update(context)
        return self.env.get_template(template).render(ctx)

    def serve(self, entry: Entry, req: falcon.Request, resp: falcon.Response, params: dict[str, Any]) -> None:
        for name, value in SECURITY_HEADERS.items():
            resp.set_header(name, value)
        resp.set_header("Cache-Control", "no-store")
        view = View(self, req, resp, entry)
        signed_in = view.sign_in_from_cookie()
        try:
            if not entry.public:
                if not signed_in:
                    target = req.relative_uri if req.method == "GET" else PREFIX + "/"
                    view.redirect(view.url("/signin", next=target))
                if view.me.get("mustChangePassword") and entry.path not in ("/me/password", "/signout", "/language"):
                    view.redirect(view.url("/me/password"), view._("Choose a new password before you go on."))
                if not view.can(entry.permission):
                    view.render("error.html", status=403, status_code=403,
                                message=view._("You do not have the permission this page needs."))
            if entry.method == "POST" and not view.csrf_ok():
                view.render("error.html", status=403, status_code=403,
                            message=view._("The form has expired. Go back, reload the page and try again."))
            entry.handler(view, **params)
            raise RuntimeError(f"console handler {entry.handler.__name__} rendered nothing")
        except Done:
            pass


@jinja2.pass_context
def _when(ctx, value, fmt: str = "medium") -> str:
    return i18n.when(value, ctx.get("lang") or i18n.DEFAULT_LANGUAGE, ctx.get("tz") or "Asia/Shanghai", fmt)


@jinja2.pass_context
def _duration(ctx, value) -> str:
    return i18n.duration(value, ctx.get("lang") or i18n.DEFAULT_LANGUAGE)


@jinja2.pass_context
def _number(ctx, value) -> str:
    return i18n.number(value, ctx.get("lang") or i18n.DEFAULT_LANGUAGE)


# CommonMark with tables; raw HTML is not passed through (authors write text, never markup),
# and the parser refuses javascript: and data: links.
_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def _markdown(text: str | None) -> Markup:
    return Markup(_MARKDOWN.render(text or ""))


class Static:
    """The console's own stylesheet and scripts (no CDN: the big screen works offline)."""

    TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
             ".png": "image/png", ".ico": "image/x-icon"}

    def __init__(self, folder: Path):
        self.folder = folder.resolve()

    def on_get(self, req, resp, name):
        path = (self.folder / name).resolve()
        if path.parent != self.folder or not path.is_file() or path.suffix not in self.TYPES:
            raise falcon.HTTPNotFound()
        resp.content_type = self.TYPES[path.suffix]
        resp.set_header("Cache-Control", "public, max-age=300")
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = path.read_bytes()

    on_get.__rpahub_page__ = PageRule(None, "the console's stylesheet and scripts", public=True)


class Home:
    """``/`` is the console."""

    def on_get(self, req, resp):
        resp.status = falcon.HTTP_303
        resp.set_header("Location", PREFIX)

    on_get.__rpahub_page__ = PageRule(None, "the console's address", public=True)
