"""``rpahub``: init, serve, migrate, plugins, and the commands plugins add."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .config import CONFIG_FILE, CONFIG_TEMPLATE, ConfigError
from .errors import HubError


@dataclass
class Command:
    name: str
    handler: Callable[[Any, argparse.Namespace], int | None]
    help: str
    configure: Callable[[argparse.ArgumentParser], None] | None = None


@dataclass
class Commands:
    """What ``rpahub_register_commands`` adds to."""

    items: dict[str, Command] = field(default_factory=dict)

    def add(self, name: str, handler, *, help: str, configure=None) -> None:
        if name in self.items or name in BUILTIN:
            raise ValueError(f"command {name!r} defined twice")
        self.items[name] = Command(name, handler, help, configure)


BUILTIN = ("init", "serve", "migrate", "plugins")


def _hub(args, *, prepare: bool = True):
    from .app import build_hub

    hub = build_hub()
    hub.open()
    notices = hub.prepare() if prepare else []
    for notice in notices:
        print(notice, file=sys.stderr)
    return hub


def cmd_init(args) -> int:
    path = Path(CONFIG_FILE)
    if not path.exists():
        path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
        print(f"wrote {path.resolve()}")
    hub = _hub(args)
    print(f"hub home: {hub.settings.home}")
    print(f"database: {hub.settings.redacted()['database']['url']}")
    hub.close()
    return 0


def cmd_migrate(args) -> int:
    from .app import build_hub
    from .migrations import migrate

    hub = build_hub()
    hub.open(migrate_schema=False)
    from . import db as hubdb

    with hubdb.connection():
        applied = migrate(hub.migrations)
    print("\n".join(applied) if applied else "schema is up to date")
    for notice in hub.prepare():
        print(notice, file=sys.stderr)
    hub.close()
    return 0


def cmd_plugins(args) -> int:
    from .app import build_hub
    from .plugins import describe, load_adapters

    hub = build_hub()
    adapters = load_adapters()
    data = {
        "plugins": describe(hub.pm),
        "adapters": sorted(adapters.loaded),
        "adapter_failures": adapters.failures,
    }
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    for p in data["plugins"]:
        print(f"{p['name']:<20} {p['distribution'] or p['module']}")
        print(f"{'':<20} hooks: {', '.join(p['hooks'])}")
    print("adapters:", ", ".join(data["adapters"]) or "(none)")
    for name, error in data["adapter_failures"].items():
        print(f"adapter {name} FAILED to load: {error}")
    return 0


def cmd_serve(args) -> int:
    from .server import serve

    hub = _hub(args)  # migrate and seed once, before workers fork
    settings = hub.settings
    hub.close()
    if args.bind:
        settings.server.bind = args.bind
    return serve(
        settings,
        bind=settings.server.bind,
        workers=args.workers or settings.server.workers,
        worker_connections=args.worker_connections or settings.server.worker_connections,
    )


def build_parser(extra: Commands) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rpahub", description="RPA control plane (T/CES 130-2022)")
    parser.add_argument("--version", action="version", version=f"rpahub {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("init", help="write rpahub.toml, create keys, database and the first administrator")
    serve = sub.add_parser("serve", help="run the hub (gunicorn with the gevent-websocket worker)")
    serve.add_argument("--bind", help="host:port (default: server.bind)")
    serve.add_argument("--workers", type=int, help="worker processes (SQLite: 1)")
    serve.add_argument("--worker-connections", type=int, help="connections per worker")
    sub.add_parser("migrate", help="apply pending schema migrations")
    plugins = sub.add_parser("plugins", help="list plugins, their hooks, adapters and load failures")
    plugins.add_argument("--json", action="store_true")
    for command in extra.items.values():
        p = sub.add_parser(command.name, help=command.help)
        if command.configure:
            command.configure(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .plugins import PluginLoadError, get_plugin_manager

    try:
        pm = get_plugin_manager()
        extra = Commands()
        pm.hook.rpahub_register_commands(commands=extra)
        args = build_parser(extra).parse_args(argv)
        builtin = {"init": cmd_init, "serve": cmd_serve, "migrate": cmd_migrate, "plugins": cmd_plugins}
        if args.command in builtin:
            return builtin[args.command](args) or 0
        hub = _hub(args)
        try:
            return extra.items[args.command].handler(hub, args) or 0
        finally:
            hub.close()
    except (ConfigError, PluginLoadError) as exc:
        print(f"rpahub: {exc}", file=sys.stderr)
        return 2
    except HubError as exc:  # a refusal in the protocol's terms, not a traceback
        print(f"rpahub: {exc.hint}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
