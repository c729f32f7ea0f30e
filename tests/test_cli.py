"""The rpahub command as a deployer uses it."""

import sqlite3
import subprocess
import sys

from rpahub_core.testing import LiveHub


def rpahub(*args, cwd, env=None, input=None):
    import os

    return subprocess.run([sys.executable, "-m", "rpahub_core.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})}, input=input)


def test_init_writes_config_keys_database_and_first_admin(tmp_path):
    out = rpahub("init", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "rpahub.toml").read_text().startswith("# rpahub configuration")
    assert "one-time password:" in out.stderr
    for key in ("secrets.fernet", "licence_ed25519.pem"):
        assert (tmp_path / "var" / "keys" / key).stat().st_mode & 0o777 == 0o600
    again = rpahub("init", cwd=tmp_path)
    assert again.returncode == 0 and "one-time password" not in again.stderr


def test_migrate_reports_an_up_to_date_schema(tmp_path):
    rpahub("init", cwd=tmp_path)
    out = rpahub("migrate", cwd=tmp_path)
    assert out.returncode == 0 and "schema is up to date" in out.stdout


def test_migrate_on_an_empty_folder_applies_every_step(tmp_path):
    out = rpahub("migrate", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "auth_local #1" in out.stdout and "audit_log #2" in out.stdout


def test_user_create_admin_can_sign_in(tmp_path):
    rpahub("init", cwd=tmp_path)
    out = rpahub("user", "create", "zhang.wei", "--admin", "--password", "Zhang-Secret-2026", "--permanent",
                 cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "created user zhang.wei" in out.stdout
    with LiveHub(tmp_path) as hub:
        status, body = hub.call("POST", "/api/v1/auth/login", {"username": "zhang.wei", "password": "Zhang-Secret-2026"})
        assert status == 200 and body["resultValue"]["mustChangePassword"] is False
        token = body["resultValue"]["token"]
        assert hub.call("GET", "/api/v1/users", token=token)[0] == 200
    con = sqlite3.connect(tmp_path / "var" / "rpahub.db")
    assert con.execute("SELECT actor, action, target FROM audit_log WHERE target='zhang.wei'").fetchone() == (
        "system", "user.create", "zhang.wei")


def test_user_create_refuses_a_weak_password(tmp_path):
    out = rpahub("user", "create", "li", "--password", "short", cwd=tmp_path)
    assert out.returncode == 2 and "at least" in out.stderr


def test_invalid_configuration_exits_with_the_key_named(tmp_path):
    (tmp_path / "rpahub.toml").write_text("[server]\nworkers = 0\n")
    out = rpahub("serve", cwd=tmp_path)
    assert out.returncode == 2
    assert "server.workers" in out.stderr


def test_sqlite_refuses_several_workers(tmp_path):
    out = rpahub("serve", "--workers", "3", cwd=tmp_path)
    assert out.returncode != 0 and "PostgreSQL" in out.stderr


def test_plugins_lists_every_built_in_from_the_entry_point_group_with_its_hooks(tmp_path):
    import json

    from rpahub_plugins import DEFAULT_PLUGINS

    out = rpahub("plugins", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    listed = {p["name"]: p for p in data["plugins"]}
    for name, module in DEFAULT_PLUGINS:
        assert listed[name]["distribution"].startswith("rpahub "), listed[name]
        assert listed[name]["module"] == module and listed[name]["hooks"], listed[name]
    assert {"tces130", "robotframework"} <= set(data["adapters"]) and data["adapter_failures"] == {}
    disabled = rpahub("plugins", "--json", cwd=tmp_path, env={"RPAHUB_DISABLE_PLUGINS": "ops,flows"})
    assert {"ops", "flows"}.isdisjoint(p["name"] for p in json.loads(disabled.stdout)["plugins"])
