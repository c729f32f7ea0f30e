"""Fetching, unpacking and running one package in a subprocess.

A package is a zip (the hub's rules, rpahub_plugins/executors/runs.py): ``.robot``
suites make it a Robot Framework package, otherwise ``main.py`` or ``manifest.json``'s
``entry`` is a Python script. The package talks back through its output:

* ``RPA-CHECKPOINT <json>``: state to resume from if the run moves to another executor;
* ``RPA-OUTPUT name=value``: a named result of the run;
* ``RPA-LOG {"level": 0|1|2, "content": "..."}``: a log record with a chosen level;
* any other line: a log record (Info from stdout, Error from stderr).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import requests

log = logging.getLogger("rpahub.executor.runner")

INFO, WARNING, ERROR = 0, 1, 2
SUCCESS, CANCELLED, FAILED = 0, 1, 2
MAX_CONTENT = 65536  # the hub's limit for one record
KEEP_RUN_FOLDERS = 20
LISTENER = Path(__file__).with_name("rf_listener.py")
TERMINATE_GRACE_S = 5.0


def redact(text: str) -> str:
    """Signed links are credentials for their lifetime: never log their tokens."""
    return re.sub(r"((?:run)?[Tt]oken=)[^&\s'\")]+", r"\1***", text)


class PackageError(Exception):
    """The package could not be fetched or understood; the run fails before it starts."""


@dataclass
class Result:
    status: int
    error_code: int | None = None
    outputs: dict[str, str] = field(default_factory=dict)


class Job:
    """One ``Execute``: its body and whether someone asked it to stop."""

    def __init__(self, body: dict):
        self.body = body
        self.run_id: str = body["runInstanceId"]
        self.stop_requested = threading.Event()
        self.stop_status = CANCELLED

    def stop(self, status: int = CANCELLED) -> None:
        if not self.stop_requested.is_set():
            self.stop_status = status
            self.stop_requested.set()


class Sink:
    """Where a run's traces go (the agent's outbox and the recording)."""

    def log(self, level: int, content: str) -> None: ...

    def checkpoint(self, value) -> None: ...


def env_name(name: str) -> str:
    return "RPA_ARG_" + re.sub(r"\W", "_", name, flags=re.ASCII).upper()


def detect(folder: Path) -> tuple[str, Path]:
    """(kind, what to run) of an unpacked package, by the rules the hub checked on upload."""
    manifest = {}
    if (folder / "manifest.json").is_file():
        try:
            manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        except ValueError:
            raise PackageError("manifest.json is not valid JSON") from None
    named = folder / str(manifest.get("entry") or "")
    if not named.resolve().is_relative_to(folder.resolve()):
        raise PackageError("manifest.json entry points outside the package")
    robots = sorted(p for p in folder.rglob("*.robot") if p.is_file())
    if manifest.get("kind") == "robot" or (robots and manifest.get("kind") != "python"):
        if manifest.get("entry"):
            return "robot", named
        # One suite file runs alone; several run as one suite named after the package folder.
        return "robot", robots[0] if len(robots) == 1 else folder
    entry = named if manifest.get("entry") else folder / "main.py"
    if not entry.is_file():
        raise PackageError("no .robot suite, no main.py, and no manifest.json entry")
    return "python", entry


class Runner:
    def __init__(self, workdir: Path, python: str = sys.executable):
        self.workdir = workdir
        self.python = python
        self.http = requests.Session()

    # -- preparation -------------------------------------------------------------

    def _fresh_folder(self, job: Job) -> Path:
        runs = self.workdir / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        old = sorted((p for p in runs.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
        for stale in old[:max(0, len(old) - KEEP_RUN_FOLDERS + 1)]:
            shutil.rmtree(stale, ignore_errors=True)
        safe = re.sub(r"[^\w.-]", "_", job.run_id)[:64]
        folder = runs / f"{safe}-{job.body.get('attempt', 1)}-{time.strftime('%Y%m%dT%H%M%S')}"
        n = 0
        while folder.exists():  # the same run delivered twice gets a second folder, never a shared one
            n += 1
            folder = folder.with_name(folder.name.split("~")[0] + f"~{n}")
        folder.mkdir()
        return folder

    def _download(self, job: Job, target: Path) -> None:
        url = job.body.get("packageDownloadUri")
        if not url:
            raise PackageError("Execute carries no packageDownloadUri")
        delay = 1.0
        for attempt in range(1, 5):
            if job.stop_requested.is_set():
                return
            try:
                with self.http.get(url, stream=True, timeout=(5, 60)) as r:
                    if 400 <= r.status_code < 500:  # expired or forged link: retrying cannot help
                        raise PackageError(f"download refused: HTTP {r.status_code} {redact(r.text[:200])}")
                    r.raise_for_status()
                    digest = hashlib.sha256()
                    with open(target, "wb") as fh:
                        for chunk in r.iter_content(1 << 16):
                            digest.update(chunk)
                            fh.write(chunk)
                    expected = r.headers.get("X-Content-SHA256")
                    if expected and expected != digest.hexdigest():
                        raise requests.RequestException("content does not match X-Content-SHA256")
                    return
            except requests.RequestException as exc:
                if attempt == 4:
                    raise PackageError(f"download failed: {redact(str(exc))}") from None
                log.warning("package download failed (%s); retrying in %.0fs", redact(str(exc)), delay)
                job.stop_requested.wait(delay)
                delay *= 2

    @staticmethod
    def _unpack(archive: Path, target: Path) -> None:
        try:
            with zipfile.ZipFile(archive) as zf:
                root = target.resolve()
                for name in zf.namelist():
                    if not (target / name).resolve().is_relative_to(root):
                        raise PackageError(f"package entry {name!r} escapes the package folder")
                zf.extractall(target)
        except zipfile.BadZipFile:
            raise PackageError("package is not a zip archive") from None

    def _command(self, job: Job, folder: Path, package: Path) -> tuple[list[str], dict[str, str]]:
        arguments = [a for a in job.body.get("arguments") or [] if isinstance(a, dict) and a.get("name")]
        values = {a["name"]: str(a.get("value", "")) for a in arguments}
        args_file = folder / "arguments.json"
        args_file.write_text(json.dumps(values, ensure_ascii=False, indent=1), encoding="utf-8")
        output_dir = folder / "output"
        output_dir.mkdir(exist_ok=True)
        env = dict(os.environ)
        env.update({
            "PYTHONUNBUFFERED": "1",  # lines must arrive while the package runs, not at exit
            "PYTHONIOENCODING": "utf-8",
            "RPA_RUN_ID": job.run_id,
            "RPA_USER_ID": str(job.body.get("userId", "")),
            "RPA_USER_NAME": str(job.body.get("userName", "")),
            "RPA_ARGS_FILE": str(args_file),
            "RPA_OUTPUT_DIR": str(output_dir),
        })
        env.update({env_name(name): value for name, value in values.items()})
        if job.body.get("checkpoint") is not None:
            env["RPA_CHECKPOINT"] = json.dumps(job.body["checkpoint"], ensure_ascii=False)
        if job.body.get("attempt") is not None:
            env["RPA_ATTEMPT"] = str(job.body["attempt"])
        kind, entry = detect(package)
        if kind == "python":
            return [self.python, "-u", str(entry)], env
        cmd = [self.python, "-m", "robot", "--outputdir", str(output_dir), "--console", "none",
               "--listener", str(LISTENER)]
        for name, value in values.items():
            cmd += ["--variable", f"{name}:{value}"]
        return cmd + [str(entry)], env

    # -- execution -----------------------------------------------------------------

    def run(self, job: Job, sink: Sink) -> Result:
        folder = self._fresh_folder(job)
        package = folder / "package"
        try:
            archive = folder / "package.zip"
            self._download(job, archive)
            if job.stop_requested.is_set():
                return Result(job.stop_status)
            self._unpack(archive, package)
            cmd, env = self._command(job, folder, package)
        except PackageError as exc:
            sink.log(ERROR, f"executor: {exc}")
            return Result(FAILED)
        if job.stop_requested.is_set():
            return Result(job.stop_status)
        return self._execute(job, cmd, env, package, sink)

    def _execute(self, job: Job, cmd: list[str], env: dict, cwd: Path, sink: Sink) -> Result:
        outputs: dict[str, str] = {}
        try:
            # Its own session (process group), so Stop reaches whatever the package started.
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, start_new_session=True)
        except OSError as exc:
            sink.log(ERROR, f"executor: cannot start {cmd[0]}: {exc}")
            return Result(FAILED)
        readers = [threading.Thread(target=self._read, args=(stream, level, sink, outputs), daemon=True)
                   for stream, level in ((proc.stdout, INFO), (proc.stderr, ERROR))]
        for reader in readers:
            reader.start()
        while proc.poll() is None:
            if job.stop_requested.wait(0.2):
                self._terminate(proc)
                break
        rc = proc.wait()
        # Whatever the package left running in its group goes with it.
        self._signal_group(proc, signal.SIGKILL)
        for reader in readers:
            reader.join(5)
        if job.stop_requested.is_set():
            return Result(job.stop_status, rc if job.stop_status == FAILED else None, outputs)
        if rc == 0:
            return Result(SUCCESS, None, outputs)
        return Result(FAILED, rc, outputs)

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def _terminate(self, proc: subprocess.Popen) -> None:
        self._signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(TERMINATE_GRACE_S)
        except subprocess.TimeoutExpired:
            self._signal_group(proc, signal.SIGKILL)

    def _read(self, stream, level: int, sink: Sink, outputs: dict[str, str]) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            self._line(line, level, sink, outputs)
        stream.close()

    @staticmethod
    def _line(line: str, level: int, sink: Sink, outputs: dict[str, str]) -> None:
        if line.startswith("RPA-CHECKPOINT "):
            text = line[len("RPA-CHECKPOINT "):]
            try:
                value = json.loads(text)
            except ValueError:
                sink.log(WARNING, f"executor: ignored a checkpoint that is not JSON: {text[:200]}")
                return
            if not isinstance(value, dict | list | str):
                value = {"value": value}  # the hub takes an object, a list or a string
            sink.checkpoint(value)
            return
        if line.startswith("RPA-OUTPUT "):
            name, sep, value = line[len("RPA-OUTPUT "):].partition("=")
            if sep and name.strip():
                outputs[name.strip()] = value
                return
        if line.startswith("RPA-LOG "):
            try:
                record = json.loads(line[len("RPA-LOG "):])
                level, line = int(record.get("level", level)), str(record["content"])
                level = min(max(level, INFO), ERROR)
            except (ValueError, KeyError, TypeError, AttributeError):
                pass  # not ours after all: log the line as it is
        sink.log(level, line[:MAX_CONTENT])
