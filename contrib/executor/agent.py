"""The executor's life: register, heartbeat, take commands, run packages, report.

Threads: the main loop owns the connection (register, heartbeat, commands, sending the
outbox); a worker runs one package at a time and only ever writes to the outbox, so a
dropped connection never loses or reorders a report: it waits until the next
registration. Order on the wire is the order of the outbox: logs, checkpoints, then
``ReportFinish``, then ``ReportVideoRecord`` (A.1: a recording only after the finish).
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import random
import threading
import time
from pathlib import Path

import requests

from . import __version__, licence
from .outbox import Outbox
from .recorder import Recording
from .runner import CANCELLED, ERROR, FAILED, INFO, MAX_CONTENT, Job, Result, Runner, Sink, redact
from .transport import Command, ConnectionLost, Refused, Rejected, Transport

log = logging.getLogger("rpahub.executor")

FLUSH_S = 0.5  # logs reach the hub in batches at least this often
BACKOFF_START_S = 0.5
BACKOFF_CAP_S = 30.0
STABLE_SESSION_S = 10.0  # a session this long resets the backoff
SHUTDOWN_FLUSH_S = 5.0
UPLOAD_ATTEMPTS = 5


def log_time() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunSink(Sink):
    def __init__(self, outbox: Outbox, run_id: str, recording: Recording | None):
        self.outbox, self.run_id, self.recording = outbox, run_id, recording

    def log(self, level: int, content: str) -> None:
        self.outbox.log(self.run_id, {"content": content[:MAX_CONTENT], "logAt": log_time(), "logLevel": level})
        if self.recording is not None:
            self.recording.output(content, error=level == ERROR)

    def checkpoint(self, value) -> None:
        self.outbox.put("ReportCheckpoint", {"runInstanceId": self.run_id, "checkpoint": value})


class Agent:
    def __init__(self, transport: Transport, *, hub_url: str, supplier: str, secret: str, robot_id: str,
                 heartbeat_s: float, workdir: Path):
        self.transport = transport
        self.hub_url = hub_url.rstrip("/")
        self.supplier, self._secret, self.robot_id = supplier, secret, robot_id
        self.heartbeat_s = heartbeat_s
        self.workdir = workdir
        self.runner = Runner(workdir)
        self.outbox = Outbox()
        self.licence: str | None = None
        self._public_key: str | None = None
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._waiting: list[Job] = []  # accepted, not started yet
        self._current: Job | None = None  # started, ReportFinish not queued yet
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._worker = threading.Thread(target=self._work, name="runner", daemon=True)

    # -- main loop ---------------------------------------------------------------

    def shutdown(self) -> None:
        """Ask ``serve`` to return (signal handlers call this)."""
        self._stopping.set()

    def serve(self) -> int:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._worker.start()
        delay = BACKOFF_START_S
        connected = False
        while not self._stopping.is_set():
            try:
                licence_content = self.transport.register(self._register_body())
            except (ConnectionLost, Refused) as exc:
                log.warning("register failed: %s; retrying in %.1fs", exc, delay)
                delay = self._pause(delay)
                continue
            log.info("registered as %s (supplier %s) over %s at %s", self.robot_id, self.supplier,
                     self.transport.name, self.hub_url)
            if licence_content:
                self._on_licence(licence_content)
            since = time.monotonic()
            connected = True
            try:
                self._session()
            except ConnectionLost as exc:
                log.warning("connection lost: %s; %d reports wait for the next registration", exc, len(self.outbox))
            except Exception:  # a bug must not take the executor (and its run's reports) down
                log.exception("unexpected failure; reconnecting")
            else:
                continue  # shutting down
            connected = False
            self.transport.close()
            if time.monotonic() - since >= STABLE_SESSION_S:
                delay = BACKOFF_START_S
            delay = self._pause(delay)
        self._finish_up(connected)
        return 0

    def _pause(self, delay: float) -> float:
        """Wait ``delay`` (with jitter: a fleet must not reconnect in step after a hub restart); return the next."""
        self._stopping.wait(min(delay * random.uniform(0.8, 1.2), BACKOFF_CAP_S))
        return min(delay * 2, BACKOFF_CAP_S)

    def _register_body(self) -> dict:
        from rpahub_adapters.tces130 import proof

        # A fresh proof each time: the hub accepts a nonce only once.
        return {"supplierCode": self.supplier, "supplierSecret": proof(self._secret, self.robot_id),
                "version": f"rpahub-executor/{__version__}"}

    def _session(self) -> None:
        next_beat = 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= next_beat:
                self.transport.heartbeat(self.running_id())
                next_beat = time.monotonic() + self.heartbeat_s
            self.flush()
            command = self.transport.next_command(min(FLUSH_S, max(0.0, next_beat - time.monotonic())))
            if command is not None:
                self.handle(command)

    def flush(self) -> None:
        while (item := self.outbox.head()) is not None:
            try:
                self.transport.report(item.action, item.body)
            except Rejected as exc:  # resending the same body cannot succeed
                log.warning("hub refused %s for run %s: %s", item.action, item.body.get("runInstanceId"), exc)
            self.outbox.done(item)

    def _finish_up(self, connected: bool) -> None:
        """SIGTERM/SIGINT: end the package, tell the hub what became of the run, go."""
        with self._lock:
            job, waiting, self._waiting = self._current, self._waiting, []
        for queued in waiting:
            self.outbox.put("ReportFinish", {"runInstanceId": queued.run_id, "status": CANCELLED})
        if job is not None:
            log.info("shutting down: stopping run %s", job.run_id)
            job.stop(FAILED)  # not cancelled by a person: the run failed here and may be resumed elsewhere
        self._jobs.put(None)
        self._worker.join(15)
        if connected:
            deadline = time.monotonic() + SHUTDOWN_FLUSH_S
            while len(self.outbox) and time.monotonic() < deadline:
                try:
                    self.flush()
                except ConnectionLost:
                    break
        if len(self.outbox):
            log.warning("exiting with %d reports the hub did not get", len(self.outbox))
        self.transport.close()
        log.info("executor stopped")

    # -- commands ------------------------------------------------------------------

    def running_id(self) -> str | None:
        job = self._current
        return job.run_id if job is not None else None

    def handle(self, command: Command) -> None:
        body = command.body if isinstance(command.body, dict) else {}
        if command.action == "Execute":
            run_id = body.get("runInstanceId")
            if not run_id or not body.get("packageDownloadUri"):
                log.warning("ignoring Execute without runInstanceId or packageDownloadUri: %s", body)
                return
            with self._lock:
                known = [j.run_id for j in self._waiting] + ([self._current.run_id] if self._current else [])
                if run_id in known:
                    log.info("Execute for run %s again: already on it", run_id)
                    return
                job = Job(body)
                self._waiting.append(job)
            log.info("Execute run %s (attempt %s)", run_id, body.get("attempt", 1))
            self._jobs.put(job)
        elif command.action == "Stop":
            self._stop()
        elif command.action == "SendLicense":
            self._on_licence(body.get("licenseContent") or "")
        elif command.action == "Error":
            log.warning("hub error %s: %s", body.get("errorCode"), body.get("message"))
        else:
            log.warning("ignoring unknown command %s", command.action)

    def _stop(self) -> None:
        """Stop has no body (A.1): it means the run in progress, or else the next one waiting."""
        with self._lock:
            job = self._current
            if job is None and self._waiting:
                job = self._waiting.pop(0)
                self.outbox.put("ReportFinish", {"runInstanceId": job.run_id, "status": CANCELLED})
                log.info("Stop: run %s cancelled before it started", job.run_id)
                return
        if job is None:
            log.info("Stop received with no run in progress")
            return
        log.info("Stop: terminating run %s", job.run_id)
        job.stop(CANCELLED)

    # -- licence -------------------------------------------------------------------

    def _on_licence(self, content: str) -> None:
        self.licence = content or None
        if not content:
            return
        try:
            if self._public_key is None:
                r = requests.get(f"{self.hub_url}/v1/licence/public-key", timeout=5)
                r.raise_for_status()
                self._public_key = r.text
            payload = licence.verify(content, self._public_key)
        except requests.RequestException as exc:
            log.warning("licence received; cannot fetch the hub's public key to check it: %s", exc)
        except licence.InvalidLicence as exc:
            log.error("licence received but NOT valid: %s", exc)
        else:
            log.info("licence %s valid until %s (features: %s)", payload.get("licenceId"), payload.get("expiresAt"),
                     ", ".join(payload.get("features") or []) or "none")

    # -- runs ------------------------------------------------------------------------

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            with self._lock:
                if job not in self._waiting:  # stopped while it waited
                    continue
                self._waiting.remove(job)
                self._current = job
            try:
                self._run(job)
            except Exception:  # the worker must survive whatever one run does
                log.exception("run %s: unexpected failure", job.run_id)
                with self._lock:
                    if self._current is job:
                        self._current = None
                        self.outbox.put("ReportFinish", {"runInstanceId": job.run_id, "status": FAILED})

    def _run(self, job: Job) -> None:
        recording = None
        if job.body.get("videoRecordRequired"):
            recording = Recording(self.workdir / "recordings", job.run_id)
        sink = RunSink(self.outbox, job.run_id, recording)
        try:
            result = self.runner.run(job, sink)
        except Exception as exc:
            log.exception("run %s failed inside the executor", job.run_id)
            sink.log(ERROR, f"executor: internal error: {exc}")
            result = Result(FAILED)
        if result.status == CANCELLED:
            sink.log(INFO, "executor: stopped on request")
        recorded = recording.finish() if recording is not None else None
        finish = {"runInstanceId": job.run_id, "status": result.status}
        if result.error_code is not None:
            finish["errorCode"] = result.error_code
        if result.outputs:
            finish["outputs"] = result.outputs
        with self._lock:
            self.outbox.put("ReportFinish", finish)
            self._current = None
        log.info("run %s finished: status %s, errorCode %s", job.run_id, result.status, result.error_code)
        if recorded is not None:
            self._deliver_recording(job, *recorded)

    def _deliver_recording(self, job: Job, path: Path, content_type: str) -> None:
        # videoRecordMode 1 sends the recording back; 0 keeps it on the executor (hub's RunIn).
        if job.body.get("videoRecordMode") != 1:
            log.info("run %s: recording kept at %s (videoRecordMode %s)", job.run_id, path,
                     job.body.get("videoRecordMode"))
            return
        url = job.body.get("fileUploadUri")
        if not url:
            log.warning("run %s: recording at %s, but Execute gave no fileUploadUri", job.run_id, path)
            return
        delay = 1.0
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                with open(path, "rb") as fh:
                    r = requests.post(url, files={"file": (path.name, fh, content_type)}, timeout=(5, 300))
                if r.status_code < 300:
                    file_id = r.json()["resultValue"]["fileId"]
                    self.outbox.put("ReportVideoRecord", {"runInstanceId": job.run_id, "videoId": file_id})
                    log.info("run %s: recording %s uploaded as %s", job.run_id, path.name, file_id)
                    return
                if 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    log.error("run %s: upload of %s refused: HTTP %s %s", job.run_id, path, r.status_code,
                              r.text[:300])
                    return
                problem = f"HTTP {r.status_code}"
            except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
                problem = redact(str(exc))
            if attempt == UPLOAD_ATTEMPTS or self._stopping.is_set():
                break
            log.warning("run %s: upload failed (%s); retrying in %.0fs", job.run_id, problem, delay)
            self._stopping.wait(delay)
            delay *= 2
        log.error("run %s: recording not uploaded; it stays at %s", job.run_id, path)
