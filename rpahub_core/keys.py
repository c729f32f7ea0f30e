"""The hub's own keys: Fernet for secrets at rest, Ed25519 for licences and audit checkpoints.

Created once (``rpahub init`` or the first ``rpahub serve``) with mode 0600 and
never printed. Losing the Fernet key makes stored supplier secrets unreadable, so
deployers back it up with the database.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet, MultiFernet
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .config import Settings


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def ensure_keys(settings: Settings) -> list[Path]:
    """Create missing key files; return the ones created."""
    created = []
    fernet = settings.path(settings.security.fernet_key_file)
    if not fernet.exists():
        _write_private(fernet, Fernet.generate_key() + b"\n")
        created.append(fernet)
    licence = settings.path(settings.security.licence_key_file)
    if not licence.exists():
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write_private(licence, pem)
        created.append(licence)
    return created


class Keys:
    """Loaded lazily so commands that need no key never read one."""

    def __init__(self, settings: Settings):
        self._settings = settings
        self._fernet: MultiFernet | None = None
        self._signing: Ed25519PrivateKey | None = None
        self._derived: dict[str, bytes] = {}

    @property
    def fernet(self) -> MultiFernet:
        # One key per line, newest first: rotation adds a line, old secrets still decrypt.
        if self._fernet is None:
            path = self._settings.path(self._settings.security.fernet_key_file)
            lines = [line.strip() for line in path.read_bytes().splitlines() if line.strip()]
            self._fernet = MultiFernet([Fernet(line) for line in lines])
        return self._fernet

    def encrypt(self, plaintext: str) -> str:
        return self.fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        return self.fernet.decrypt(token.encode()).decode()

    def hmac_key(self, purpose: str) -> bytes:
        """A key for one purpose (signed URLs, run tokens), derived from the Fernet key."""
        if purpose not in self._derived:
            path = self._settings.path(self._settings.security.fernet_key_file)
            master = path.read_bytes().splitlines()[0].strip()
            self._derived[purpose] = HKDF(
                algorithm=hashes.SHA256(), length=32, salt=b"rpahub", info=purpose.encode()
            ).derive(master)
        return self._derived[purpose]

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        if self._signing is None:
            path = self._settings.path(self._settings.security.licence_key_file)
            self._signing = serialization.load_pem_private_key(path.read_bytes(), password=None)
        return self._signing

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key.public_key()

    def public_key_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
