"""The identity platform's public signing keys (a JSON Web Key Set).

Keys come from the configuration (``jwks``), a file (``jwks_file``) and/or the
platform's own endpoint (``jwks_url``). The endpoint is read lazily, on the first
token, never at import; it is re-read when the cache is older than ``jwks_ttl_s``,
and when a token names a key the cache does not hold (a rotation) — at most once a
minute, so tokens with made-up ``kid`` values cannot make the hub hammer the platform.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("rpahub.auth_oidc")

REFETCH_INTERVAL_S = 60.0
RETRY_AFTER_FAILURE_S = 5.0  # while nothing is cached: one attempt per 5 s, not one per request
FETCH_TIMEOUT_S = 5.0
MAX_JWKS_BYTES = 1 << 20
SIGNING_KEY_TYPES = ("RSA", "EC", "OKP")  # never "oct": no shared secrets


class KeysUnavailable(Exception):
    """No key set could be read (the endpoint is down and nothing is cached)."""


def fetch_url(url: str) -> dict[str, Any]:
    req = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(req, timeout=FETCH_TIMEOUT_S) as resp:  # noqa: S310 - https enforced in settings
        return json.loads(resp.read(MAX_JWKS_BYTES + 1)[:MAX_JWKS_BYTES])


def signing_keys(jwks: dict[str, Any], origin: str) -> list[dict[str, Any]]:
    """The usable signature keys of a key set; others are skipped with a warning."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise ValueError(f'{origin}: not a JSON Web Key Set (no "keys" list)')
    usable = []
    for jwk in keys:
        if not isinstance(jwk, dict):
            continue
        if jwk.get("kty") not in SIGNING_KEY_TYPES or jwk.get("use", "sig") != "sig":
            log.warning("%s: skipping key %s (kty %s, use %s): not a signature key",
                        origin, jwk.get("kid"), jwk.get("kty"), jwk.get("use"))
            continue
        usable.append(jwk)
    return usable


class KeySet:
    """Thread- and greenlet-safe cache of the configured keys."""

    def __init__(self, *, inline: dict[str, Any] | None = None, file: Path | None = None, url: str = "",
                 ttl_s: float = 3600, fetch: Callable[[str], dict[str, Any]] = fetch_url,
                 clock: Callable[[], float] = time.monotonic):
        self.inline = signing_keys(inline, "jwks") if inline else []
        self.file = file
        self.url = url
        self.ttl_s = ttl_s
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: list[dict[str, Any]] | None = None
        self._refreshed_at = float("-inf")  # last attempt to read every source
        self._fetched_at = float("-inf")  # last successful fetch of jwks_url
        self._file_checked_at = float("-inf")
        self._file_mtime: float | None = None
        self._file_keys: list[dict[str, Any]] = []
        self._url_keys: list[dict[str, Any]] = []
        self._failure: str | None = None

    def find(self, kid: str | None) -> dict[str, Any] | None:
        """The key a token names (or the only key, when the token names none)."""
        with self._lock:
            now = self._clock()
            if self._keys is None:
                if self._failure and now - self._refreshed_at < RETRY_AFTER_FAILURE_S:
                    raise KeysUnavailable(self._failure)
                self._load(now, fetch=True)
            elif (self.url and now - self._fetched_at > self.ttl_s
                  and now - self._refreshed_at >= REFETCH_INTERVAL_S):  # while down: once a minute
                self._load(now, fetch=True)
            elif self.file is not None and now - self._file_checked_at >= REFETCH_INTERVAL_S:
                self._load(now, fetch=False)  # a key removed from the file stops working within a minute
            key = self._pick(kid)
            if key is None and now - self._refreshed_at >= REFETCH_INTERVAL_S:
                self._load(now, fetch=True)
                key = self._pick(kid)
            return key

    def _pick(self, kid: str | None) -> dict[str, Any] | None:
        keys = self._keys or []
        if kid is None:
            return keys[0] if len(keys) == 1 else None
        return next((k for k in keys if k.get("kid") == kid), None)

    def _load(self, now: float, *, fetch: bool) -> None:
        errors = []
        if self.file is not None:
            self._file_checked_at = now
            try:
                mtime = self.file.stat().st_mtime
                if mtime != self._file_mtime:
                    self._file_keys = signing_keys(json.loads(self.file.read_text(encoding="utf-8")),
                                                   str(self.file))
                    self._file_mtime = mtime
            except (OSError, ValueError) as exc:
                errors.append(f"jwks_file: {exc}")
                log.error("cannot read the OIDC key set file %s: %s", self.file, exc)
        if fetch:
            self._refreshed_at = now
            if self.url:
                try:
                    self._url_keys = signing_keys(self._fetch(self.url), self.url)
                    self._fetched_at = now
                except Exception as exc:  # any failure of the platform keeps what is cached
                    errors.append(f"jwks_url: {type(exc).__name__}")
                    log.error("cannot fetch the OIDC key set from %s: %s", self.url, exc)
        keys = [*self.inline, *self._file_keys, *self._url_keys]
        if not keys and errors:
            self._keys = None
            self._failure = "; ".join(errors)
            raise KeysUnavailable(self._failure)
        self._keys, self._failure = keys, None
