"""Personal folders (6.3.2d): the files a person uploaded or a run filed for them
(``/design/personalfile``), with a per-person quota.

Bytes live in the executors plugin's content-addressed :class:`FileStore`; a folder
entry is a :class:`PersonalFile` row naming a stored file. Another person's entry
answers 404, never 403, so ids do not reveal that it exists.
"""

from __future__ import annotations

import zlib

import falcon
import peewee

from rpahub_core import db as hubdb
from rpahub_core.errors import BadRequest, NotFound, PayloadTooLarge
from rpahub_plugins.executors.files import FileStore, form_text
from rpahub_plugins.executors.models import PersonalFile, StoredFile

SOURCE = "personal"  # StoredFile.source of what was uploaded straight into a folder


def file_json(pf: PersonalFile, *, owner: bool = False) -> dict:
    out = {"id": pf.id, "name": pf.name, "size": pf.file.size, "contentType": pf.file.content_type,
           "sha256": pf.file.sha256, "runId": pf.run_id, "addedBy": pf.added_by, "createdAt": pf.created_at,
           "url": f"/api/v1/me/files/{pf.id}/content"}
    if owner:
        out.update(ownerId=pf.owner_id, ownerName=pf.owner_name, url=f"/api/v1/ops/folders/{pf.id}/content")
    return out


class Folders:
    def __init__(self, hub, store: FileStore, quota_mb: float):
        self.hub = hub
        self.store = store
        self.quota = int(float(quota_mb) * (1 << 20))

    def query(self, owner_id: str | None = None, q: str | None = None) -> peewee.SelectQuery:
        query = PersonalFile.select(PersonalFile, StoredFile).join(StoredFile)
        if owner_id is not None:
            query = query.where(PersonalFile.owner_id == owner_id)
        if q:
            query = query.where(PersonalFile.name.contains(q))
        return query.order_by(PersonalFile.created_at.desc(), PersonalFile.id)

    def get(self, file_id: str, owner_id: str | None = None) -> PersonalFile:
        """An entry; with ``owner_id``, only if it is in that person's folder."""
        query = self.query(owner_id).where(PersonalFile.id == file_id)
        row = query.first()
        if row is None:
            raise NotFound(f"file {file_id} not found in {'your folder' if owner_id else 'any folder'}")
        return row

    def used(self, owner_id: str) -> tuple[int, int]:
        """Bytes and files in a folder (a file filed twice counts twice: the person sees it twice)."""
        size, count = (PersonalFile.select(peewee.fn.COALESCE(peewee.fn.SUM(StoredFile.size), 0),
                                           peewee.fn.COUNT(PersonalFile.id))
                       .join(StoredFile).where(PersonalFile.owner_id == owner_id).tuples().get())
        return int(size or 0), int(count or 0)

    def usage(self, owner_id: str) -> dict:
        size, count = self.used(owner_id)
        return {"usedBytes": size, "files": count, "quotaBytes": self.quota,
                "remainingBytes": max(0, self.quota - size),
                "usedPercent": round(100.0 * size / self.quota, 2) if self.quota else None}

    def usage_by_owner(self) -> list[dict]:
        rows = (PersonalFile.select(PersonalFile.owner_id, peewee.fn.MAX(PersonalFile.owner_name),
                                    peewee.fn.SUM(StoredFile.size), peewee.fn.COUNT(PersonalFile.id))
                .join(StoredFile).group_by(PersonalFile.owner_id).tuples())
        return sorted(({"userId": uid, "userName": name, "usedBytes": int(size or 0), "files": int(n),
                        "quotaBytes": self.quota} for uid, name, size, n in rows),
                      key=lambda r: -r["usedBytes"])

    def upload(self, req, *, owner_id: str, owner_name: str, added_by: str) -> PersonalFile:
        """Stream the ``file`` part of a multipart body into the person's folder, within quota."""
        if not (req.content_type or "").startswith("multipart/form-data"):
            raise BadRequest("Content-Type: must be multipart/form-data with a file part")
        used, _ = self.used(owner_id)
        remaining = self.quota - used
        if remaining <= 0 or (req.content_length or 0) > remaining + 65536:  # a part's headers add a little
            raise self._over(used, req.content_length)
        # The store's own limit, or what is left of the quota, whichever is smaller.
        limit = min(self.store.max_bytes, remaining)
        store = FileStore(self.store.root, limit)
        stored, name = None, None
        try:
            for part in req.get_media():
                if part.name == "name":
                    name = form_text(part, 255).strip() or None
                elif part.name == "file" and stored is None:
                    try:
                        stored = store.save(part.stream, name=part.filename or "file",
                                            content_type=part.content_type or "", source=SOURCE,
                                            uploaded_by=added_by)
                    except PayloadTooLarge:
                        if limit < self.store.max_bytes:
                            raise self._over(used, None) from None
                        raise
        except falcon.MediaMalformedError as exc:
            raise BadRequest(f"body: malformed multipart ({exc.description or 'bad form'})") from None
        if stored is None:
            raise BadRequest("file: required (a multipart part named file)")
        from rpahub_plugins.executors.files import clean_name

        with hubdb.atomic():
            lock_owner(owner_id)
            now_used, _ = self.used(owner_id)
            if now_used + stored.size > self.quota:  # another upload of theirs got there first
                StoredFile.delete().where(StoredFile.id == stored.id).execute()
                raise self._over(now_used, stored.size)
            row = PersonalFile.create(file=stored, owner_id=owner_id, owner_name=owner_name,
                                      name=clean_name(name) if name else stored.name, run_id=None,
                                      added_by=added_by)
        return self.get(row.id)

    def _over(self, used: int, size: int | None) -> PayloadTooLarge:
        mb = self.quota / (1 << 20)
        what = f"this upload ({size} bytes) " if size else "this upload "
        return PayloadTooLarge(
            f"file: {what}would exceed your personal folder quota of {mb:g} MB ({used} bytes used, "
            f"{max(0, self.quota - used)} left); delete files you no longer need "
            f"(DELETE /api/v1/me/files/{{id}}) or ask an administrator to raise personal_quota_mb",
            value={"usedBytes": used, "quotaBytes": self.quota})

    def admit(self, owner_id: str, size: int) -> None:
        """Inside the caller's transaction: refuse (413) a file that would take the folder
        past its quota. The executors plugin asks it before filing through A.2.8."""
        lock_owner(owner_id)
        used, _ = self.used(owner_id)
        if used + size > self.quota:
            raise self._over(used, size)

    def delete(self, row: PersonalFile) -> None:
        """Remove the entry. A file uploaded straight into the folder and listed nowhere else
        loses its stored row too; its bytes stay (content-addressed, they may be shared)."""
        with hubdb.atomic():
            PersonalFile.delete().where(PersonalFile.id == row.id).execute()
            stored = row.file
            if stored.source == SOURCE and not PersonalFile.select().where(PersonalFile.file == stored.id).exists():
                StoredFile.delete().where(StoredFile.id == stored.id).execute()


def lock_owner(owner_id: str) -> None:
    """Serialise quota checks of one person's uploads across processes (PostgreSQL; a
    SQLite write transaction is exclusive already)."""
    if hubdb.is_postgres():
        hubdb.database.execute_sql("SELECT pg_advisory_xact_lock(%s, %s)",
                                   (130202206, zlib.crc32(owner_id.encode()) - (1 << 31)))
