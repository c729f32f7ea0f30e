"""The web console (T/CES 130-2022's management platform): every center in the browser.

Server-rendered pages (Jinja2) with small scripts of our own and charts drawn on the
server (pygal SVG), so it works offline inside a utility's network. Pages use the same
public API as integrators, with the signed-in person's own token. zh-CN by default and
English, chosen per person. Pages come from ``rpahub_console_pages``; the built-in ones
register through it like any plugin's.
"""

from __future__ import annotations

from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from .console import HERE, Console, Home, Static
from .models import MODELS
from .resources import Preferences
from .views import PREFIX, Pages


def console(hub) -> Console | None:
    return hub.state.get("console")


@hookimpl
def rpahub_config_defaults():
    # timezone: shown to people who chose none; strict_i18n: mark untranslated strings (tests)
    return {"console": {"timezone": "Asia/Shanghai", "strict_i18n": False}}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("console", 1, create_tables(*MODELS), "console preferences per person")


@hookimpl
def rpahub_register_routes(routes, hub):
    settings = hub.settings.plugin("console")
    routes.add("/api/v1/me/preferences", Preferences(settings.get("timezone", "Asia/Shanghai")))
    pages = Pages()
    list(hub.each("rpahub_console_pages", pages=pages, hub=hub))
    hub.state["console"] = con = Console(hub, pages, settings)
    routes.add("/", Home())
    routes.add(PREFIX + "/static/{name}", Static(HERE / "static"))
    for path, resource in con.resources().items():
        routes.add(path, resource)


@hookimpl
def rpahub_console_pages(pages, hub):
    from . import pages as builtin

    pages.templates(HERE / "templates")
    pages.catalogues(HERE / "locale")
    builtin.register(pages)


