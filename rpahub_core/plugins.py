"""The plugin manager: built-in and third-party plugins arrive the same way.

Every plugin, including those shipped in ``rpahub_plugins``, is declared in the
``rpahub`` entry-point group, so a deployer sees one list (``rpahub plugins``) and
can switch any of them off with ``RPAHUB_DISABLE_PLUGINS=name,other`` — blocked
before it is imported. Vendor adapters are loaded separately with stevedore from
``rpahub.adapters``; their load failures are collected, never swallowed.
"""

from __future__ import annotations

import importlib.metadata
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from . import hookspecs

ENTRY_POINT_GROUP = "rpahub"
ADAPTER_NAMESPACE = "rpahub.adapters"

hookimpl = pluggy.HookimplMarker("rpahub")


class PluginLoadError(RuntimeError):
    """A plugin named in the ``rpahub`` entry-point group could not be imported."""


@dataclass
class AdapterReport:
    """What stevedore found in ``rpahub.adapters``: loaded drivers and failures."""

    loaded: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def disabled_plugins(environ: dict[str, str] | None = None) -> set[str]:
    raw = (environ if environ is not None else os.environ).get("RPAHUB_DISABLE_PLUGINS", "")
    return {name.strip() for name in raw.split(",") if name.strip()}


def new_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("rpahub")
    pm.add_hookspecs(hookspecs)
    return pm


def get_plugin_manager(
    *,
    entry_points: bool = True,
    extra: Iterable[tuple[str, Any]] = (),
    environ: dict[str, str] | None = None,
) -> pluggy.PluginManager:
    """Build the process's plugin manager.

    ``entry_points=False`` (what :mod:`rpahub_core.testing` uses) registers only the
    built-ins and ``extra``, so third-party plugins installed on the machine never
    leak into a test run.
    """
    pm = new_manager()
    pm.rpahub_distributions = {}  # plugin name -> "dist version", for `rpahub plugins`
    blocked = disabled_plugins(environ)
    for name in blocked:
        pm.set_blocked(name)
    if entry_points:
        for ep in _entry_points():
            if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
                continue
            pm.register(_load(ep.name, ep.value, ep.load), name=ep.name)
            if ep.dist is not None:
                pm.rpahub_distributions[ep.name] = f"{ep.dist.metadata['Name']} {ep.dist.version}"
    else:
        from rpahub_plugins import DEFAULT_PLUGINS

        for name, module_path in sorted(DEFAULT_PLUGINS):  # the order entry points load in
            if pm.is_blocked(name):
                continue
            pm.register(_load(name, module_path, lambda m=module_path: importlib.import_module(m)), name=name)
    for name, plugin in extra:
        if not pm.is_blocked(name):
            pm.register(plugin, name=name)
    return pm


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    seen: dict[str, importlib.metadata.EntryPoint] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        seen.setdefault(ep.name, ep)  # first on sys.path wins, like imports
    return sorted(seen.values(), key=lambda ep: ep.name)


def _load(name: str, where: str, load) -> Any:
    try:
        return load()
    except Exception as exc:  # re-raise naming the plugin, as pytest does
        raise PluginLoadError(f"plugin {name!r} ({where}) failed to load: {exc!r}") from exc


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    return sorted(name for name, plugin in pm.list_name_plugin() if plugin is not None)


def describe(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """Each registered plugin with the hooks it implements (for ``rpahub plugins``)."""
    dists = getattr(pm, "rpahub_distributions", {})
    out = []
    for name, plugin in sorted(pm.list_name_plugin()):
        if plugin is None:
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        out.append({
            "name": name,
            "module": getattr(plugin, "__name__", type(plugin).__name__),
            "distribution": dists.get(name),
            "hooks": hooks,
        })
    return out


def load_adapters(names: Iterable[str] | None = None) -> AdapterReport:
    """Load vendor adapters from ``rpahub.adapters`` with stevedore."""
    from stevedore import ExtensionManager

    report = AdapterReport()

    def failed(_manager, entrypoint, exc):
        report.failures[entrypoint.name] = f"{type(exc).__name__}: {exc}"

    manager = ExtensionManager(
        ADAPTER_NAMESPACE,
        invoke_on_load=False,
        on_load_failure_callback=failed,
    )
    wanted = set(names) if names is not None else None
    for ext in manager:
        if wanted is None or ext.name in wanted:
            report.loaded[ext.name] = ext.plugin
    return report
