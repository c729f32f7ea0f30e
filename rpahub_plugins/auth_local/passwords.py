"""Password hashing with scrypt (RFC 7914) from ``cryptography``: memory-hard, salted,
verified in constant time; the parameters travel with the hash so they can grow."""

from __future__ import annotations

import base64
import functools
import os

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

N, R, P = 2**14, 8, 1


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str) -> str:
    salt = os.urandom(16)
    digest = Scrypt(salt=salt, length=32, n=N, r=R, p=P).derive(password.encode())
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        Scrypt(salt=base64.b64decode(salt), length=32, n=int(n), r=int(r), p=int(p)).verify(
            password.encode(), base64.b64decode(digest)
        )
        return True
    except (InvalidKey, ValueError):
        return False


@functools.cache
def dummy_hash() -> str:
    """Verified against when the user does not exist, so timing does not tell."""
    return hash_password(os.urandom(8).hex())
