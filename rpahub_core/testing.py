"""Helpers for testing rpahub and its plugins.

* :func:`plugin_manager` builds a manager from the built-ins (and your plugin) without
  reading entry points, so whatever else is installed on the machine stays out.
* :func:`make_app` opens a hub on a throw-away folder and returns the Falcon app.
* :class:`LiveHub` runs the real server (``rpahub serve``: gunicorn with the
  gevent-websocket worker) on a free loopback port, for end-to-end tests.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .config import Settings, load_settings
from .plugins import get_plugin_manager

ADMIN_PASSWORD = "Hub-Passw0rd-for-tests"


def plugin_manager(*extra: tuple[str, Any], environ: dict[str, str] | None = None):
    return get_plugin_manager(entry_points=False, extra=extra, environ=environ or {})


def make_settings(home: Path, database_url: str = "", **sections: dict[str, Any]) -> Settings:
    overrides: dict[str, Any] = {"hub": {"home": str(home)}, "database": {"url": database_url}}
    for name, values in sections.items():
        overrides.setdefault(name, {}).update(values)
    return load_settings(environ={}, overrides=overrides)


def make_app(home: Path, database_url: str = "", *extra: tuple[str, Any], pm=None, **sections):
    from .app import build_hub, create_app

    pm = pm or plugin_manager(*extra)
    defaults: dict[str, Any] = {}
    for result in pm.hook.rpahub_config_defaults():
        defaults.update(result or {})
    plugins = sections.pop("plugins", {})
    settings = make_settings(home, database_url, **sections)
    settings.plugins = {name: {**defaults.get(name, {}), **plugins.get(name, {})}
                        for name in {*defaults, *plugins}}
    hub = build_hub(settings, pm=pm)
    hub.open()
    hub.prepare()
    return create_app(hub=hub)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveHub:
    """``rpahub serve`` in ``folder`` on a free port; ``kill()`` is ``kill -9``."""

    def __init__(self, folder: Path, *, env: dict[str, str] | None = None, port: int | None = None):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.log_path = self.folder / f"serve-{self.port}.log"
        self.admin_password: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> LiveHub:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rpahub_core.cli", "serve", "--bind", f"127.0.0.1:{self.port}"],
            cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"hub did not answer /healthz in {timeout}s:\n{self.log()}")
        match = re.search(r"one-time password: (\S+)", self.log())
        if match and self.admin_password is None:
            self.admin_password = match.group(1)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """``kill -9`` of the whole server: master and workers."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LiveHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- a tiny JSON client (tests use requests; this keeps the helper dependency-free)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    def admin_token(self) -> str:
        """Sign in as the first administrator, replacing the one-time password once."""
        status, body = self.call("POST", "/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD})
        if status == 200:
            return body["resultValue"]["token"]
        assert self.admin_password, "no one-time password printed and the test password does not work"
        status, body = self.call("POST", "/api/v1/auth/login",
                                 {"username": "admin", "password": self.admin_password})
        assert status == 200, body
        token = body["resultValue"]["token"]
        status, body = self.call("POST", "/api/v1/me/password",
                                 {"currentPassword": self.admin_password, "newPassword": ADMIN_PASSWORD}, token)
        assert status == 200, body
        return token


    def join(self, name: str, permissions: list[str], password: str, admin_token: str) -> str:
        """A person with a role of their own holding ``permissions``, made by the
        administrator; they replace the one-time password with ``password``. Returns their token."""
        status, body = self.call("POST", "/api/v1/roles", {"name": f"r-{name}", "permissions": permissions},
                                 admin_token)
        assert status == 201, body
        status, body = self.call("POST", "/api/v1/users", {"username": name, "roles": [f"r-{name}"]}, admin_token)
        assert status == 201, body
        one_time = body["resultValue"]["oneTimePassword"]
        status, body = self.call("POST", "/api/v1/auth/login", {"username": name, "password": one_time})
        assert status == 200, body
        token = body["resultValue"]["token"]
        status, body = self.call("POST", "/api/v1/me/password", {"currentPassword": one_time, "newPassword": password},
                                 token)
        assert status == 200, body
        return token

    def executor(self, robot_id: str, supplier: str, secret: str, folder: Path, *, transport: str = "ws",
                 extra_env: dict[str, str] | None = None) -> subprocess.Popen:
        """The reference executor as its own process group (stop it with :func:`stop_process`);
        its output goes to ``folder/executor-<robot_id>.log``."""
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / f"executor-{robot_id}.log", "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", self.url, "--transport", transport,
                 "--robot-id", robot_id, "--supplier", supplier, "--heartbeat", "1",
                 "--workdir", str(folder / f"work-{robot_id}")],
                env={**os.environ, "RPAHUB_EXECUTOR_SECRET": secret, **(extra_env or {})}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)


def stop_process(proc: subprocess.Popen) -> None:
    """``kill -9`` of a process started in its own group, and wait for it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def wait_for(predicate, timeout: float, what: str = "condition", interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout}s")
