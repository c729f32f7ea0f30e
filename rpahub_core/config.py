"""Configuration: one TOML file plus ``RPAHUB_<SECTION>__<KEY>`` overrides.

``rpahub.toml`` in the working folder (or the file named by ``RPAHUB_CONFIG``) is
read, environment overrides are applied on top, and the result is validated; an
error names the offending key (``server.workers: Input should be a valid integer``).
Plugins own ``[plugins.<name>]``. Secret values are wrapped so that printing the
settings, or logging them, never shows them.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

CONFIG_FILE = "rpahub.toml"
ENV_PREFIX = "RPAHUB_"


class ConfigError(ValueError):
    """The configuration is invalid; the message names each offending key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HubSection(_Section):
    name: str = "rpahub"
    home: str = "var"
    # Empty: http://<server.bind>. Set it when executors reach the hub by another name.
    base_url: str = ""
    tier: Literal["standalone", "headquarters", "province"] = "standalone"


class ServerSection(_Section):
    bind: str = "127.0.0.1:8080"
    workers: int = Field(1, ge=1, le=64)
    # gunicorn's default of 1000 would cap the robots one worker can hold.
    worker_connections: int = Field(10000, ge=10, le=100000)
    timeout: int = Field(30, ge=1)
    max_body_bytes: int = Field(64 * 1024 * 1024, ge=1024)


class DatabaseSection(_Section):
    # Empty means SQLite under hub.home; see Settings.database_url.
    url: SecretStr = SecretStr("")
    max_connections: int = Field(20, ge=1)


class SecuritySection(_Section):
    fernet_key_file: str = "keys/secrets.fernet"
    licence_key_file: str = "keys/licence_ed25519.pem"
    token_ttl_hours: int = Field(12, ge=1)
    password_min_length: int = Field(10, ge=8)
    login_attempts_per_minute: int = Field(10, ge=1)


class LogSection(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Section):
    hub: HubSection = HubSection()
    server: ServerSection = ServerSection()
    database: DatabaseSection = DatabaseSection()
    security: SecuritySection = SecuritySection()
    log: LogSection = LogSection()
    plugins: dict[str, dict[str, Any]] = {}
    # Where the file came from; the folder relative paths are resolved against.
    source: str | None = None

    @property
    def base_dir(self) -> Path:
        return Path(self.source).resolve().parent if self.source else Path.cwd()

    @property
    def home(self) -> Path:
        return (self.base_dir / self.hub.home).resolve()

    def path(self, relative: str) -> Path:
        """A path from the configuration, relative to ``hub.home``."""
        return (self.home / relative).resolve()

    @property
    def public_url(self) -> str:
        """Where executors and browsers reach this hub (signed links point here)."""
        if self.hub.base_url:
            return self.hub.base_url.rstrip("/")
        host, _, port = self.server.bind.rpartition(":")
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '', '[::]') else host}:{port}"

    @property
    def database_url(self) -> str:
        url = self.database.url.get_secret_value()
        return url or f"sqlite:///{self.home / 'rpahub.db'}"

    def plugin(self, name: str) -> dict[str, Any]:
        return self.plugins.get(name, {})

    def __repr__(self) -> str:
        return f"Settings({self.redacted()!r})"

    __str__ = __repr__

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict that is safe to print or log."""
        data = self.model_dump(mode="json")
        data["database"]["url"] = redact_url(self.database_url)
        return _redact(data)


_SECRET_KEY = re.compile(r"(secret|password|passwd|token|api_key)$", re.I)


def _redact(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if _SECRET_KEY.search(key) and value:
        return "**********"
    return value


def redact_url(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1****@", url)


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """``RPAHUB_SERVER__WORKERS=4`` sets ``server.workers``; ``__`` separates levels."""
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        keys = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{name}: {'.'.join(keys[:-1])} is not a section")
        node[keys[-1]] = _parse_env_value(raw)
    return data


def _merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_settings(
    path: str | os.PathLike | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
    plugin_defaults: dict[str, dict[str, Any]] | None = None,
) -> Settings:
    """Read the file (if any), apply the environment and ``overrides``, validate."""
    environ = dict(os.environ if environ is None else environ)
    path = path or environ.get("RPAHUB_CONFIG") or (CONFIG_FILE if Path(CONFIG_FILE).exists() else None)
    data: dict[str, Any] = {}
    if path:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"configuration file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    data = apply_env(data, environ)
    if overrides:
        data = _merge(data, overrides)
    if plugin_defaults:
        data["plugins"] = _merge(plugin_defaults, data.get("plugins", {}))
    if path:
        data["source"] = str(Path(path).resolve())
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, where=str(path or "environment"))) from None


def describe_errors(exc: ValidationError, where: str) -> str:
    lines = [f"invalid configuration ({where}):"]
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"])
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"  {key}: {msg}")
    return "\n".join(lines)


CONFIG_TEMPLATE = """\
# rpahub configuration. Every key can be overridden by an environment variable:
# RPAHUB_<SECTION>__<KEY>, e.g. RPAHUB_SERVER__BIND=0.0.0.0:8080.

[hub]
# Name shown in the console and reported to headquarters.
name = "rpahub"
# Folder for the database, keys, uploads and recordings (relative to this file).
home = "var"
# The address executors and browsers use to reach this hub (signed download links).
# Empty: http://<server.bind>. Set it behind a proxy or when binding 0.0.0.0:
# base_url = "https://rpa.example.sgcc.com.cn"
base_url = ""
# standalone | headquarters | province
tier = "standalone"

[server]
bind = "127.0.0.1:8080"
# SQLite supports one worker; use PostgreSQL for more.
workers = 1
# Connections one worker holds (robots on WebSocket count one each).
worker_connections = 10000
timeout = 30
max_body_bytes = 67108864

[database]
# Empty: SQLite in <home>/rpahub.db. For several workers or nodes:
# url = "postgresql://rpahub@127.0.0.1:5432/rpahub"
url = ""
max_connections = 20

[security]
# Key files, relative to hub.home, created by `rpahub init` with mode 0600.
fernet_key_file = "keys/secrets.fernet"
licence_key_file = "keys/licence_ed25519.pem"
token_ttl_hours = 12
password_min_length = 10
login_attempts_per_minute = 10

[log]
level = "INFO"

# Plugins read their own section:
# [plugins.<name>]
"""
