"""The uplink every transport calls: admission, heartbeats, logs, finish, video,
checkpoints, and the durable downlink of commands (T/CES 130 clause 7, Appendix A).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import secrets
import threading
import time
import zoneinfo
from collections.abc import Callable

import peewee

from rpahub_core import db as hubdb
from rpahub_core.adapter import AdmissionRefused
from rpahub_core.auth import ROBOT_TOKEN_PREFIX, RobotPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import PARAMETER_ERROR, DuplicateConnection, Unauthorized
from rpahub_core.sessions import Command as WireCommand
from rpahub_core.sessions import ExecutorSession, ProtocolError

from . import wire
from .models import AllowedRobot, Command, Executor, RunEvent, RunInstance, RunLog, StoredFile, Supplier, UsedNonce

log = logging.getLogger("rpahub.executors")

FINISH_STATES = {0: "success", 1: "cancelled", 2: "failed"}
ACTIVE_STATES = ("dispatched", "running", "stopping")
DONE_STATES = ("success", "cancelled", "failed")
CHECKPOINT_MAX = 1 << 20
OUT_OF_RANGE = "is out of range (before year 1 or after year 9999 in UTC)"  # check_storable's words


LOG_COLUMNS = ("run", "content", "screenshot", "log_at", "level", "executor_id")


def insert_rows(model, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """``executemany`` of one prepared INSERT: what ``insert_many`` does, without building
    the SQL of every value in Python (500 log records cost 20 ms that way; docs/benchmarks.md).
    Values go to the driver as they are: str, int, None and naive UTC datetimes (or, on
    SQLite, their ``isoformat(" ")`` text, what sqlite3 stores for them), which is what
    these models' fields would have made of them."""
    db = model._meta.database
    db.cursor().executemany(_insert_sql(model, columns, db.param), rows)


@functools.cache
def _insert_sql(model, columns: tuple[str, ...], param: str) -> str:
    def quoted(name: str) -> str:  # standard SQL identifiers: SQLite and PostgreSQL alike
        return '"' + name.replace('"', '""') + '"'

    names = ", ".join(quoted(model._meta.fields[c].column_name) for c in columns)
    return f"INSERT INTO {quoted(model._meta.table_name)} ({names}) VALUES ({', '.join([param] * len(columns))})"


class Prepared:
    """A hot query whose SQL peewee builds once per kind of database; each call runs it
    with new leading parameters, in the order the built query had them, the others (a
    LIMIT) as built. Building a query's SQL costs more than SQLite takes to answer it."""

    def __init__(self, build: Callable[[], peewee.Query]):
        self.build = build
        self._sql: dict[type, tuple[str, list]] = {}

    def rows(self, *params) -> list[tuple]:
        db = hubdb.database.obj
        if type(db) not in self._sql:
            self._sql[type(db)] = self.build().sql()
        sql, built = self._sql[type(db)]
        return db.execute_sql(sql, (*params, *built[len(params):])).fetchall()


# The two statements behind every HTTP heartbeat: who is calling, and what waits for it.
CONNECTION = Prepared(lambda: Executor.select(Executor.connect_id, Executor.state, Executor.transport,
                                              Executor.supplier).where(Executor.id == ""))
NEXT_COMMAND = Prepared(lambda: Command.select(Command.id, Command.action, Command.body, Command.run_id).where(
    (Command.executor_id == "") & Command.delivered_at.is_null()).order_by(Command.id).limit(1))


def connect_hash(connect_id: str) -> str:
    return hashlib.sha256(connect_id.encode()).hexdigest()[:32]


class Gateway:
    """Implements :class:`rpahub_core.sessions.Uplink` for every transport."""

    def __init__(self, hub, adapters, licences, settings: dict):
        self.hub = hub
        self.adapters = adapters  # name -> adapter instance
        self.licences = licences
        self.heartbeat_s = int(settings.get("heartbeat_s", 15))
        self.offline_after_s = self.heartbeat_s * int(settings.get("missed_heartbeats", 3))
        self.duplicate_policy = settings.get("duplicate_policy", "existing")
        self.naive_zone = zoneinfo.ZoneInfo(settings.get("naive_log_timezone", "Asia/Shanghai"))
        self.sessions: dict[str, ExecutorSession] = {}  # registered push sessions of this process
        self._seen: dict[str, float] = {}  # robot id -> last heartbeat written (monotonic)
        self._names_runs: set[str] = set()  # robots whose heartbeats carry runInstanceId
        # Hot path (docs/benchmarks.md): a heartbeat normally touches no table. Liveness
        # waits here for flush() when a flusher runs (the gevent worker; else it is written
        # at once), and the run a robot last named is remembered with its lease, so the row
        # is read again only to renew the lease or after recheck_s.
        self.batched = False
        # robot -> (connect hash, busy, push, heard at): liveness not yet written
        self._alive: dict[str, tuple[str, bool | None, bool, dt.datetime]] = {}
        self._held: dict[str, tuple[str, str, dt.datetime, float]] = {}  # robot -> (run, state, lease, checked)
        self.recheck_s = min(10.0, self.offline_after_s / 4)
        self._lock = threading.RLock()
        # fn(robot ids, heard at) after their liveness was written (the dispatcher's index)
        self.liveness_listeners: list[Callable[[list[str], dt.datetime], None]] = []
        # action -> fn(run_id, robot_id) giving a fresh body at delivery (signed links must not expire
        # in the queue), or None when the command no longer applies
        self.refreshers: dict[str, Callable[[str, str], dict | None]] = {}

    # -- connections -----------------------------------------------------------

    def _claim(self, session: ExecutorSession) -> None:
        """One live connection per robot: a second one gets 10000 (A.3.5).

        Checked after the robot proved its identity, so nobody can lock a robot out
        by opening its address first.
        """
        with self._lock:
            existing = self.sessions.get(session.robot_id)
            if existing is not None and existing is not session:
                idle = time.monotonic() - existing.extra.get("last_seen", 0)
                if self.duplicate_policy == "newest" and idle > self.heartbeat_s:
                    # The old socket is half-open: the robot reconnected before we noticed.
                    existing.close(DuplicateConnection.code, "replaced by a newer connection")
                    existing.registered = False
                else:
                    raise DuplicateConnection(f"robot {session.robot_id} is already connected")
            if session.push:
                self.sessions[session.robot_id] = session

    def kick(self, supplier: str, reason: str) -> None:
        """Close the live connections of a supplier's robots (it was disabled)."""
        with self._lock:
            victims = [s for s in self.sessions.values() if s.extra.get("supplier") == supplier]
        for session in victims:
            session.close(PARAMETER_ERROR, reason)

    def disconnected(self, session: ExecutorSession) -> None:
        with self._lock:
            if self.sessions.get(session.robot_id) is session:
                del self.sessions[session.robot_id]
                self._alive.pop(session.robot_id, None)  # a pending flush must not bring it back online
        if session.registered and session.connect_id:
            with hubdb.atomic():
                n = Executor.update(state="offline").where(
                    (Executor.id == session.robot_id) & (Executor.connect_id == connect_hash(session.connect_id))
                ).execute()
                if n:
                    self.hub.publish("executor.offline", robotId=session.robot_id, reason="disconnected")

    def principal(self, session: ExecutorSession) -> RobotPrincipal:
        return RobotPrincipal(id=session.robot_id, name=session.robot_id,
                              supplier=session.extra.get("supplier", ""), connect_id=session.connect_id)

    def robot_of(self, connect_id: str) -> str:
        executor = Executor.get_or_none(Executor.connect_id == connect_hash(connect_id))
        return executor.id if executor else ""

    def resume(self, robot_id: str, connect_id: str) -> ExecutorSession:
        found = CONNECTION.rows(robot_id)
        if not found or not connect_id or found[0][0] != connect_hash(connect_id):
            raise Unauthorized("robotConnectId is not the current connection of robotId; register again")
        _, state, transport, supplier = found[0]
        if state == "offline":
            raise Unauthorized("connection expired after missed heartbeats; register again")
        return ExecutorSession(robot_id=robot_id, transport=transport, connect_id=connect_id,
                               registered=True, extra={"supplier": supplier})

    # -- admission (6.5.2a) ----------------------------------------------------

    def register(self, session: ExecutorSession, body) -> dict:
        body = wire.parse(wire.RegisterBody, body)
        robot_id = session.robot_id
        try:
            supplier = self._admit(robot_id, body)
            licence, problem = self.licences.for_robot(robot_id)
            if problem:
                raise ProtocolError(f"licence: {problem}")
            session.extra["supplier"] = supplier.code
            self._claim(session)
        except (ProtocolError, DuplicateConnection) as err:
            with hubdb.atomic():
                self.hub.audit("executor.register", principal=RobotPrincipal(id=robot_id, name=robot_id),
                               target=robot_id, result="denied", detail={"hint": err.hint}, source=session.remote)
            raise
        connect_id = ROBOT_TOKEN_PREFIX + secrets.token_urlsafe(24)
        now = utcnow()
        with hubdb.atomic():
            values = dict(supplier=supplier.code, version=body.version or "", state="online",
                          transport=session.transport, connect_id=connect_hash(connect_id), node=self.hub.node_id,
                          registered_at=now, last_heartbeat=now)
            updated = Executor.update(**values).where(Executor.id == robot_id).execute()
            if not updated:
                Executor.create(id=robot_id, **values)
            session.connect_id = connect_id
            session.registered = True
            session.extra["supplier"] = supplier.code
            self.hub.audit("executor.register", principal=self.principal(session), target=robot_id,
                           detail={"transport": session.transport, "version": body.version or "",
                                   "licence": licence.id if licence else None}, source=session.remote)
            self.hub.publish("executor.online", robotId=robot_id, transport=session.transport)
        self._seen[robot_id] = time.monotonic()
        return {"robotConnectId": connect_id, "licenseContent": licence.content if licence else ""}

    def _admit(self, robot_id: str, body) -> Supplier:
        supplier = Supplier.get_or_none(Supplier.code == body.supplierCode)
        if supplier is None:
            raise ProtocolError("supplierCode: unknown supplier")
        if not supplier.enabled:
            raise ProtocolError("supplierCode: supplier is disabled")
        if supplier.allowlist_required and not AllowedRobot.select().where(
                (AllowedRobot.supplier == supplier) & (AllowedRobot.robot_id == robot_id)).exists():
            raise ProtocolError("robotId: not on the supplier's allow-list")
        adapter = self.adapters.get(supplier.adapter)
        if adapter is None:
            raise ProtocolError(f"supplierCode: adapter {supplier.adapter!r} is not installed")
        try:
            adapter.verify_secret(secret=self.hub.keys.decrypt(supplier.secret_enc), robot_id=robot_id,
                                  presented=body.supplierSecret, now=time.time(),
                                  remember_nonce=lambda nonce: self._remember(supplier.code, nonce))
        except AdmissionRefused as exc:
            raise ProtocolError(str(exc)) from None
        return supplier

    def _remember(self, supplier: str, nonce: str) -> bool:
        # Kept longer than any adapter's window on either side of the hub's clock.
        window = max(getattr(a, "replay_window_s", 300) for a in self.adapters.values()) if self.adapters else 300
        cutoff = utcnow() - dt.timedelta(seconds=2 * window + 60)
        try:
            with hubdb.atomic():
                UsedNonce.delete().where(UsedNonce.seen_at < cutoff).execute()
                UsedNonce.create(supplier=supplier, nonce=nonce)
            return True
        except peewee.IntegrityError:
            return False

    # -- liveness --------------------------------------------------------------

    def heartbeat(self, session: ExecutorSession, body) -> None:
        """Callable without a connection: most heartbeats touch no table, and those that
        do take one for themselves."""
        run_id = wire.heartbeat_run(body)
        if run_id:
            self._names_runs.add(session.robot_id)
        if self.batched and (not run_id or self._still_held(session.robot_id, run_id)):
            self._touch(session, bool(run_id))  # liveness waits in memory for flush()
            return
        with hubdb.connection():
            self._heartbeat(session, run_id)

    def _heartbeat(self, session: ExecutorSession, run_id: str | None) -> None:
        run = None
        if run_id:
            if self._still_held(session.robot_id, run_id):
                self._touch(session, True)
                return
            run = RunInstance.get_or_none(RunInstance.id == run_id)
        busy = run is not None and run.executor_id == session.robot_id and run.state in ACTIVE_STATES
        self._touch(session, busy)  # alive, whatever the run id says
        if run_id:
            if run is None or run.executor_id != session.robot_id:
                self._held.pop(session.robot_id, None)
                self._own_run(session, run_id)  # raises the protocol's error
            self.renew(run)
            if run.state == "dispatched":
                self._transition(run, "running", "heartbeat reports it running")
            self._hold(session.robot_id, run)
        elif session.robot_id not in self._names_runs and not self.batched:
            # An executor that never names its run in heartbeats (the field is optional) holds
            # its runs for as long as it is alive; one that does, and now says it is idle, does
            # not. Batched, flush() renews them for every such robot at once.
            self._renew_all([session.robot_id])

    def _still_held(self, robot_id: str, run_id: str) -> bool:
        """Whether the run this robot names was seen running with a lease far from expiry
        less than recheck_s ago: then a heartbeat has nothing to write."""
        held = self._held.get(robot_id)
        return (held is not None and held[0] == run_id and held[1] != "dispatched"
                and time.monotonic() - held[3] < self.recheck_s
                and held[2] >= utcnow() + dt.timedelta(seconds=self.offline_after_s / 2))

    def _hold(self, robot_id: str, run: RunInstance) -> None:
        if run.state in ACTIVE_STATES and run.lease_expires_at is not None:
            self._held[robot_id] = (run.id, run.state, run.lease_expires_at, time.monotonic())
        else:
            self._held.pop(robot_id, None)

    def lease_until(self) -> dt.datetime:
        return utcnow() + dt.timedelta(seconds=self.offline_after_s)

    def renew(self, run: RunInstance) -> None:
        """Extend the executor's hold on ``run``; written about twice per offline timeout."""
        if run.state not in ACTIVE_STATES:
            return
        due = utcnow() + dt.timedelta(seconds=self.offline_after_s / 2)
        if run.lease_expires_at is None or run.lease_expires_at < due:
            until = self.lease_until()
            with hubdb.atomic():
                RunInstance.update(lease_expires_at=until).where(
                    (RunInstance.id == run.id) & (RunInstance.executor_id == run.executor_id)).execute()
            run.lease_expires_at = until

    def _renew_all(self, robot_ids: list[str]) -> None:
        due = utcnow() + dt.timedelta(seconds=self.offline_after_s / 2)
        with hubdb.atomic():
            RunInstance.update(lease_expires_at=self.lease_until()).where(
                RunInstance.executor_id.in_(robot_ids) & RunInstance.state.in_(ACTIVE_STATES)
                & (RunInstance.lease_expires_at.is_null() | (RunInstance.lease_expires_at < due))).execute()

    def _touch(self, session: ExecutorSession, busy: bool | None = None) -> None:
        """Record that the robot is alive. Hot path: one write per robot every few
        seconds, not one per message; a live connection comes back online."""
        now_m = time.monotonic()
        session.extra["last_seen"] = now_m
        if self.batched:
            key = session.extra.get("connect_hash") or connect_hash(session.connect_id or "")
            session.extra["connect_hash"] = key
            if busy is None and session.robot_id in self._alive:
                busy = self._alive[session.robot_id][1]
            self._alive[session.robot_id] = (key, busy, session.push, utcnow())
            return
        if now_m - self._seen.get(session.robot_id, 0) < min(5, self.heartbeat_s / 3):
            return
        self._seen[session.robot_id] = now_m
        values = {"last_heartbeat": utcnow()}
        if busy is not None:
            values["state"] = "busy" if busy else "online"
        with hubdb.atomic():
            n = Executor.update(**values).where(
                (Executor.id == session.robot_id) & (Executor.connect_id == connect_hash(session.connect_id or ""))
            ).execute()
        if n:
            self._heard([session.robot_id], values["last_heartbeat"])

    def flush(self) -> int:
        """Write the liveness that heartbeats left in memory, and renew the leases of the
        robots that never name their run: a statement or two per state and 500 robots,
        whatever the number of heartbeats. Returns how many robots."""
        pending, self._alive = self._alive, {}
        # Each robot is written with when it was heard (to the second), not when the flush
        # runs: after the database was away, old news must not pass for a sign of life.
        now = utcnow()
        stale = now - dt.timedelta(seconds=self.offline_after_s)
        groups: dict[tuple[bool | None, dt.datetime], list[tuple[str, str, bool]]] = {}
        for robot_id, (key, busy, push, heard) in pending.items():
            if heard > stale:
                groups.setdefault((busy, heard.replace(microsecond=0)), []).append((robot_id, key, push))
        renew_after = now - dt.timedelta(seconds=self.offline_after_s / 2)
        written = 0
        heard_of: list[tuple[list[str], dt.datetime]] = []
        with hubdb.atomic():
            for (busy, heard), rows in groups.items():
                values = {"last_heartbeat": heard} if busy is None else {
                    "last_heartbeat": heard, "state": "busy" if busy else "online"}
                for i in range(0, len(rows), 500):
                    # Checked right before the write: a socket that closed since said its last word.
                    pairs = [(r, key) for r, key, push in rows[i:i + 500] if not push or self._connected(r, key)]
                    if pairs:
                        Executor.update(**values).where(
                            peewee.Tuple(Executor.id, Executor.connect_id).in_(pairs)).execute()
                        written += len(pairs)
                        heard_of.append(([r for r, _ in pairs], heard))
                        quiet = [r for r, _ in pairs if r not in self._names_runs]
                        if quiet and heard > renew_after:
                            self._renew_all(quiet)
        for robot_ids, heard in heard_of:  # told once committed
            self._heard(robot_ids, heard)
        return written

    def _heard(self, robot_ids: list[str], at: dt.datetime) -> None:
        for listener in self.liveness_listeners:
            try:
                listener(robot_ids, at)
            except Exception:  # a listener's failure never loses liveness
                log.exception("liveness listener %r failed", listener)

    def _connected(self, robot_id: str, key: str) -> bool:
        session = self.sessions.get(robot_id)
        return session is not None and session.registered and session.extra.get("connect_hash") == key

    def reap(self) -> list[str]:
        """Mark executors offline after missed heartbeats; returns their ids. Not while
        the database recovers: nobody could write a heartbeat while it was away."""
        if hubdb.availability.recovering(self.offline_after_s):
            return []
        cutoff = utcnow() - dt.timedelta(seconds=self.offline_after_s)
        with hubdb.atomic():
            stale = [e.id for e in Executor.select(Executor.id).where(
                (Executor.state != "offline") & (Executor.last_heartbeat < cutoff))]
            # Delivered commands are history the run timeline already tells.
            Command.delete().where(Command.delivered_at < utcnow() - dt.timedelta(days=1)).execute()
            if stale:
                Executor.update(state="offline").where(Executor.id.in_(stale)).execute()
                for robot_id in stale:
                    self.hub.publish("executor.offline", robotId=robot_id, reason="heartbeat timeout")
        return stale

    # -- reports ---------------------------------------------------------------

    def _own_run(self, session: ExecutorSession, run_id: str) -> RunInstance:
        run = RunInstance.get_or_none(RunInstance.id == run_id)
        if run is None:
            raise ProtocolError("runInstanceId: unknown run")
        if run.executor_id != session.robot_id:
            raise ProtocolError("runInstanceId: the run belongs to another executor")
        return run

    def _transition(self, run: RunInstance, state: str, detail: str = "") -> None:
        now = utcnow()
        with hubdb.atomic():
            changes = {"state": state}
            if state == "running" and run.started_at is None:
                changes["started_at"] = now
            if state in DONE_STATES:
                changes["finished_at"] = now
            RunInstance.update(**changes).where(RunInstance.id == run.id).execute()
            RunEvent.create(run=run.id, state=state, detail=detail, at=now)
            for key, value in changes.items():
                setattr(run, key, value)
            self.hub.publish(f"run.{state}", runId=run.id, executorId=run.executor_id)

    def report_logs(self, session: ExecutorSession, body) -> int:
        body = wire.parse(wire.ReportLogsBody, body)
        # A run this robot was just seen holding, with a lease far from expiry, is not read again.
        run = None if self._still_held(session.robot_id, body.runInstanceId) else \
            self._own_run(session, body.runInstanceId)
        logs = body.logs
        times = self._log_times([item.logAt for item in logs])
        rows = [(body.runInstanceId, item.content, item.screenshot, at, item.logLevel, session.robot_id)
                for item, at in zip(logs, times, strict=True)]
        with hubdb.atomic():
            if rows:
                insert_rows(RunLog, LOG_COLUMNS, rows)
            if run is not None and run.state == "dispatched":
                self._transition(run, "running", "first logs")
        if run is not None:
            self.renew(run)
            self._hold(session.robot_id, run)
        self._touch(session)
        return len(rows)

    def _log_times(self, values: list[dt.datetime]) -> list:
        """``logAt`` of a batch as stored: naive UTC, and on SQLite already the text sqlite3
        would make of it (in C instead of its Python adapter, row by row).

        Naive times are read in ``naive_log_timezone``. A batch that spans at most an hour
        and has the same offset at both ends has it throughout (the closest two offset
        changes of any zone in tzdata are four days apart), so one subtraction per record
        does what a zone lookup per record would; other batches take the lookup."""
        naive = [v for v in values if v.tzinfo is None]
        shift = None
        if naive:
            first, last = min(naive), max(naive)
            if last - first <= dt.timedelta(hours=1):
                offset = first.replace(tzinfo=self.naive_zone).utcoffset()
                if offset == last.replace(tzinfo=self.naive_zone).utcoffset():
                    shift = offset
        try:
            if shift is None:
                out = [self._utc(v) for v in values]
            else:
                out = [v - shift if v.tzinfo is None else self._utc(v) for v in values]
        except OverflowError:  # a naive time within hours of year 1 or 9999 has no instant in UTC
            for i, value in enumerate(values):
                try:
                    self._utc(value)
                except OverflowError:
                    field, message = f"logs.{i}.logAt", f"Value error, {OUT_OF_RANGE}"
                    raise ProtocolError(f"{field}: {message}",
                                        value={"errors": [{"field": field, "message": message}]}) from None
            raise
        if hubdb.is_sqlite():
            return [v.isoformat(" ") for v in out]
        return out

    def _utc(self, value: dt.datetime) -> dt.datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.naive_zone)
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def report_finish(self, session: ExecutorSession, body) -> None:
        body = wire.parse(wire.ReportFinishBody, body)
        run = self._own_run(session, body.runInstanceId)
        state = FINISH_STATES[body.status]
        stop_requested = run.state == "stopping"
        if run.state in DONE_STATES:
            if run.finish_status == body.status:
                return  # a retried report: already recorded
            raise ProtocolError(f"runInstanceId: run already finished as {run.state}")
        with hubdb.atomic():
            claimed = RunInstance.update(finish_status=body.status, error_code=body.errorCode,
                                         outputs=json.dumps(body.outputs or {}, ensure_ascii=False)).where(
                (RunInstance.id == run.id) & (RunInstance.executor_id == session.robot_id)
                & RunInstance.state.not_in(DONE_STATES)).execute()
            if not claimed:  # taken back or finished by another process meanwhile
                raise ProtocolError("runInstanceId: the run is no longer this executor's to finish")
            run.finish_status, run.error_code = body.status, body.errorCode
            self._transition(run, state, f"reported by {session.robot_id}"
                             + (f", errorCode {body.errorCode}" if body.errorCode is not None else ""))
            Executor.update(state="online").where(
                (Executor.id == session.robot_id) & (Executor.state == "busy")).execute()
            self.hub.audit("run.finish", principal=self.principal(session), target=run.id,
                           detail={"status": body.status, "errorCode": body.errorCode}, source=session.remote)
            self.hub.publish("run.finished", runId=run.id, status=body.status, errorCode=body.errorCode,
                             executorId=session.robot_id, stopRequested=stop_requested)
        self._held.pop(session.robot_id, None)

    def report_video(self, session: ExecutorSession, body) -> None:
        body = wire.parse(wire.ReportVideoBody, body)
        run = self._own_run(session, body.runInstanceId)
        if run.state not in DONE_STATES:
            raise ProtocolError("ReportVideoRecord: only after ReportFinish")
        video = StoredFile.get_or_none(StoredFile.id == body.videoId)
        if video is None or video.uploaded_by != f"robot:{session.robot_id}" or video.run_id not in (None, run.id):
            raise ProtocolError("videoId: no such file uploaded by this executor for this run")
        with hubdb.atomic():
            RunInstance.update(video_id=video.id).where(RunInstance.id == run.id).execute()
            StoredFile.update(run_id=run.id).where(StoredFile.id == video.id).execute()
            self.hub.audit("run.video", principal=self.principal(session), target=run.id,
                           detail={"videoId": video.id, "size": video.size}, source=session.remote)
            self.hub.publish("run.video", runId=run.id, videoId=video.id)

    def report_checkpoint(self, session: ExecutorSession, body) -> None:
        body = wire.parse(wire.ReportCheckpointBody, body)
        run = self._own_run(session, body.runInstanceId)
        if run.state in DONE_STATES:
            raise ProtocolError("runInstanceId: run already finished")
        text = json.dumps(body.checkpoint, ensure_ascii=False)
        if len(text.encode()) > CHECKPOINT_MAX:
            raise ProtocolError(f"checkpoint: larger than {CHECKPOINT_MAX} bytes")
        with hubdb.atomic():
            RunInstance.update(checkpoint=text, checkpoint_at=utcnow()).where(RunInstance.id == run.id).execute()
        self.renew(run)

    # -- downlink ---------------------------------------------------------------

    def send(self, robot_id: str, action: str, body: dict | None, run_id: str | None = None) -> None:
        """Queue a command durably; it reaches the robot however it is connected."""
        text = None if body is None else json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        Command.create(executor_id=robot_id, action=action, body=text, run_id=run_id)
        hubdb.after_commit(lambda: self.wake(robot_id))

    def wake(self, robot_id: str) -> None:
        session = self.sessions.get(robot_id)
        if session is not None:
            session.wake()
        else:
            self.hub.publish("executor.command", robotId=robot_id)

    def wake_waiting(self) -> int:
        """Wake this process's push sessions whose robots have commands not yet delivered
        (queued by another process, whose wake-up did not reach this one). One query."""
        if not self.sessions:
            return 0
        woken = 0
        for row in Command.select(Command.executor_id).where(Command.delivered_at.is_null()).distinct():
            session = self.sessions.get(row.executor_id)
            if session is not None:
                session.wake()
                woken += 1
        return woken

    def next_command(self, session: ExecutorSession) -> WireCommand | None:
        """The oldest command not yet delivered; :meth:`ack` it once it was sent."""
        while True:
            found = NEXT_COMMAND.rows(session.robot_id)
            if not found:
                return None
            command_id, action, body, run_id = found[0]
            refresh = self.refreshers.get(action)
            if refresh is None or not run_id:
                return WireCommand(action=action, body=body, id=command_id)
            fresh = refresh(run_id, session.robot_id)
            if fresh is not None:
                return WireCommand(action=action, id=command_id,
                                   body=json.dumps(fresh, ensure_ascii=False, separators=(",", ":")))
            # The run moved on (started, finished, reassigned): sending it again could run it twice.
            self.ack(WireCommand(action=action, body=None, id=command_id))

    def ack(self, command: WireCommand) -> None:
        with hubdb.atomic():
            Command.update(delivered_at=utcnow()).where(Command.id == command.id).execute()
