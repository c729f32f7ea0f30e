"""A plugin distribution installed in the test run adds a route and a table through
its own entry point, without any change to the hub's core."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rpahub_core.testing import LiveHub

DIST = Path(__file__).parent / "plugin_dist"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    source = tmp_path_factory.mktemp("src") / "plugin_dist"
    shutil.copytree(DIST, source)  # building writes beside the sources: keep the checkout clean
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    assert list(target.glob("rpahub_hello-1.0.dist-info"))
    return target


def env_with(site, **extra):
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def rpahub(args, cwd, env):
    return subprocess.run([sys.executable, "-m", "rpahub_core.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_rpahub_plugins_lists_it_with_its_hooks_and_reports_the_broken_adapter(site, tmp_path):
    out = rpahub(["plugins", "--json"], tmp_path, env_with(site))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    hello = next(p for p in data["plugins"] if p["name"] == "hello")
    assert hello["distribution"] == "rpahub-hello 1.0"
    assert hello["hooks"] == ["rpahub_migrations", "rpahub_permissions", "rpahub_register_routes"]
    assert "broken_vendor" in data["adapter_failures"]
    assert "vendor SDK" in data["adapter_failures"]["broken_vendor"]
    text = rpahub(["plugins"], tmp_path, env_with(site)).stdout
    assert "adapter broken_vendor FAILED to load" in text


@pytest.mark.e2e
def test_its_route_and_table_work_in_the_real_server(site, tmp_path):
    with LiveHub(tmp_path, env=env_with(site)) as hub:
        token = hub.admin_token()
        status, body = hub.call("POST", "/api/v1/hello", {"text": "你好"}, token=token)
        assert status == 201, body
        status, body = hub.call("GET", "/api/v1/hello", token=token)
        assert body["resultValue"] == ["你好"]
        assert hub.call("GET", "/api/v1/hello")[0] == 401
        status, doc = hub.call("GET", "/api/openapi.json")
        assert "/api/v1/hello" in doc["paths"]
        status, audit = hub.call("GET", "/api/v1/audit?action=hello.greet", token=token)
        assert audit["resultValue"]["total"] == 1
    con = sqlite3.connect(tmp_path / "var" / "rpahub.db")
    assert con.execute("SELECT text FROM greeting").fetchall() == [("你好",)]
    assert con.execute("SELECT version FROM schema_version WHERE component='hello'").fetchone() == (1,)


@pytest.mark.e2e
def test_disabling_it_removes_its_route(site, tmp_path):
    with LiveHub(tmp_path, env=env_with(site, RPAHUB_DISABLE_PLUGINS="hello")) as hub:
        token = hub.admin_token()
        assert hub.call("GET", "/api/v1/hello", token=token)[0] == 404
        status, doc = hub.call("GET", "/api/openapi.json")
        assert "/api/v1/hello" not in doc["paths"]
