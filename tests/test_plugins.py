"""Plugins arrive through the entry-point group; they can be disabled and named on failure."""

import importlib.metadata
import types

import pytest

from rpahub_core import hookimpl
from rpahub_core.plugins import PluginLoadError, _load, get_plugin_manager, load_adapters, plugin_names
from rpahub_core.testing import make_app, plugin_manager
from rpahub_plugins import DEFAULT_PLUGINS


def test_every_built_in_plugin_is_declared_as_an_entry_point():
    declared = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="rpahub")
                if ep.dist and ep.dist.metadata["Name"] == "rpahub"}
    assert declared == dict(DEFAULT_PLUGINS)


def test_entry_point_manager_loads_the_built_ins():
    pm = get_plugin_manager(environ={})
    assert {name for name, _ in DEFAULT_PLUGINS} <= set(plugin_names(pm))


def test_test_manager_ignores_installed_third_party_plugins(monkeypatch):
    fake = importlib.metadata.EntryPoint("intruder", "os", "rpahub")
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        found = real(**kw)
        return [*found, fake] if kw.get("group") == "rpahub" else found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    assert "intruder" in plugin_names(get_plugin_manager(environ={}))
    assert "intruder" not in plugin_names(plugin_manager())


def test_disabled_plugin_is_blocked_before_import(monkeypatch):
    broken = importlib.metadata.EntryPoint("broken", "no_such_module_anywhere", "rpahub")
    real = importlib.metadata.entry_points
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **kw: [*real(**kw), broken] if kw.get("group") == "rpahub" else real(**kw))
    with pytest.raises(PluginLoadError, match="plugin 'broken' .*no_such_module_anywhere"):
        get_plugin_manager(environ={})
    pm = get_plugin_manager(environ={"RPAHUB_DISABLE_PLUGINS": "broken, audit_log"})
    assert "broken" not in plugin_names(pm) and "audit_log" not in plugin_names(pm)


def test_import_error_names_the_plugin():
    with pytest.raises(PluginLoadError) as err:
        _load("vendorx", "vendorx.plugin", lambda: (_ for _ in ()).throw(ImportError("no sdk")))
    assert "'vendorx'" in str(err.value) and "no sdk" in str(err.value)


def test_disabling_a_plugin_removes_its_routes(tmp_path):
    from falcon import testing

    app = make_app(tmp_path / "a", "", pm=plugin_manager(environ={"RPAHUB_DISABLE_PLUGINS": "audit_log"}))
    try:
        paths = {r.path for r in app.hub.routes.items}
        assert "/api/v1/audit" not in paths and "/api/v1/users" in paths
        assert testing.TestClient(app).simulate_get("/api/v1/audit").status_code == 404
    finally:
        app.hub.close()


def test_adapter_load_failures_are_collected(monkeypatch):
    import stevedore

    class FakeManager:
        def __init__(self, namespace, invoke_on_load, on_load_failure_callback):
            assert namespace == "rpahub.adapters"
            ep = types.SimpleNamespace(name="vendor_a")
            on_load_failure_callback(self, ep, ImportError("sdk missing"))
            self.exts = [types.SimpleNamespace(name="tces_ok", plugin=object)]

        def __iter__(self):
            return iter(self.exts)

    monkeypatch.setattr(stevedore, "ExtensionManager", FakeManager)
    report = load_adapters()
    assert report.failures == {"vendor_a": "ImportError: sdk missing"}
    assert list(report.loaded) == ["tces_ok"]


def test_a_plugin_object_registers_like_a_module(tmp_path):
    calls = []
    plugin = types.SimpleNamespace(rpahub_startup=hookimpl(lambda hub: calls.append(hub)))
    app = make_app(tmp_path / "b", "", ("objplugin", plugin))
    try:
        assert calls == [app.hub]
    finally:
        app.hub.close()
