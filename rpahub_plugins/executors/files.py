"""Uploaded files, stored content-addressed under ``<home>/files`` (A.2.7).

Storage names are the SHA-256 of the content, never the uploader's file name, so
names cannot traverse folders or collide; identical content is stored once. A file
is fsynced and renamed into place before its row is written, so an acknowledged
upload survives a crash.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path

from rpahub_core import db as hubdb
from rpahub_core.errors import BadRequest, NotFound, PayloadTooLarge

from .models import StoredFile

SOURCES = ("file", "demand", "icon")
CHUNK = 1 << 16


def clean_name(name: str) -> str:
    name = os.path.basename((name or "").replace("\\", "/")).strip()
    name = re.sub(r"[\x00-\x1f]", "", name)
    return name[:255] or "file"


def form_text(part, limit: int) -> str:
    """A multipart form field as text, at most ``limit`` characters.

    Falcon gives text only for ``text/plain`` parts (the default when a part has no
    Content-Type); any other part is refused with a hint naming it, not a TypeError.
    """
    text = part.get_text()
    if text is None:
        raise BadRequest(f"{(part.name or '')[:64]}: a form field must be text/plain, not {part.content_type[:64]}")
    return text[:limit]


class FileStore:
    def __init__(self, root: Path, max_bytes: int):
        self.root = root
        self.max_bytes = max_bytes
        (root / "tmp").mkdir(parents=True, exist_ok=True)

    def path_of(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def save(self, stream, *, name: str, content_type: str, source: str, uploaded_by: str,
             run_id: str | None = None) -> StoredFile:
        digest = hashlib.sha256()
        size = 0
        fd, tmp = tempfile.mkstemp(dir=self.root / "tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                while True:
                    chunk = stream.read(CHUNK)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise PayloadTooLarge(f"file: larger than {self.max_bytes} bytes")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            sha = digest.hexdigest()
            final = self.path_of(sha)
            final.parent.mkdir(exist_ok=True)
            if final.exists():
                os.unlink(tmp)
            else:
                os.replace(tmp, final)
                dir_fd = os.open(final.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        with hubdb.atomic():
            return StoredFile.create(sha256=sha, size=size, name=clean_name(name),
                                     content_type=(content_type or "application/octet-stream")[:128],
                                     source=source, uploaded_by=uploaded_by, run_id=run_id)

    def save_bytes(self, data: bytes, **kw) -> StoredFile:
        import io

        return self.save(io.BytesIO(data), **kw)

    def get(self, file_id: str) -> StoredFile:
        row = StoredFile.get_or_none(StoredFile.id == file_id)
        if row is None:
            raise NotFound(f"file {file_id} not found")
        return row

    def open(self, row: StoredFile):
        path = self.path_of(row.sha256)
        if not path.exists():
            raise NotFound(f"file {row.id}: content missing")
        return open(path, "rb")


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise BadRequest(f"source: must be one of {', '.join(SOURCES)}")
    return source
