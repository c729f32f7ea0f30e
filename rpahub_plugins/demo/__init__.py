"""``rpahub demo``: the hub, a reference executor and a sample Robot Framework app, run once.

It admits a ``demo`` supplier, uploads the bundled 发票校验 (invoice check) app,
starts the hub and a reference executor on WebSocket, runs the app with a recording,
and prints where to see the run, its logs and the recording. It drives the
executor-integration plugin's services directly, as an operator's script would.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request

from rpahub_core import db as hubdb
from rpahub_core import hookimpl

ROBOT_ID = "demo-robot-1"


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"rpahub demo: {what} did not happen within {timeout:.0f}s")


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _demo(hub, args) -> int:
    from rpahub_contrib.demo import sample_package
    from rpahub_plugins.executors import state
    from rpahub_plugins.executors.models import Executor, Package, RunInstance, Supplier

    ex = state(hub)
    bind = args.bind or hub.settings.server.bind
    hub.settings.server.bind = bind
    url = hub.settings.public_url
    secret = secrets.token_urlsafe(24)
    with hubdb.connection(), hubdb.atomic():
        supplier = Supplier.get_or_none(Supplier.code == "demo")
        if supplier is None:
            Supplier.create(code="demo", name="rpahub demo", secret_enc=hub.keys.encrypt(secret),
                            adapter="robotframework")
        else:  # a new secret each time: the demo keeps no secret on disk
            supplier.secret_enc = hub.keys.encrypt(secret)
            supplier.save()
        hub.audit("supplier.create", target="demo", detail={"via": "demo"})
    with hubdb.connection():
        package = Package.get_or_none((Package.name == "invoice-check") & (Package.version == "1.0"))
        if package is None:
            package = ex.runs.add_package(name="invoice-check", version="1.0", data=sample_package(),
                                          created_by="demo")

    env = {**os.environ, "RPAHUB_EXECUTOR_SECRET": secret}
    procs = []
    try:
        if not _up(url):
            procs.append(subprocess.Popen([sys.executable, "-m", "rpahub_core.cli", "serve", "--bind", bind],
                                          start_new_session=True))
            _wait(lambda: _up(url), 30, f"the hub answering at {url}")
        workdir = hub.settings.home / "demo-executor"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", url, "--transport", "ws",
             "--robot-id", ROBOT_ID, "--supplier", "demo", "--heartbeat", "5", "--workdir", str(workdir)],
            env=env, start_new_session=True))

        def online():
            with hubdb.connection():
                e = Executor.get_or_none(Executor.id == ROBOT_ID)
                return e is not None and e.state != "offline" and e.registered_at is not None

        _wait(online, 30, "the reference executor registering")
        with hubdb.connection():
            run = ex.runs.start(package_id=package.id, executor_id=ROBOT_ID,
                                arguments=[{"name": "region", "type": "String", "value": args.region}],
                                user_id="demo", user_name="demo", video_required=True, video_mode=1)

        def finished():
            with hubdb.connection():
                r = RunInstance.get_by_id(run.id)
                return r if r.state in ("success", "failed", "cancelled") and (r.video_id or r.state != "success") \
                    else None

        done = _wait(finished, 90, "the run finishing")
        time.sleep(0.5)
        with hubdb.connection():
            done = RunInstance.get_by_id(run.id)
            logs = done.logs.count()
        print(f"run {done.id}: {done.state} on {ROBOT_ID}, {logs} log records, recording {done.video_id or '-'}")
        print("See it (sign in as an administrator; every call takes 'Authorization: Bearer <token>'):")
        print(f"  run and timeline: {url}/api/v1/runs/{done.id}")
        print(f"  logs:             {url}/api/v1/runs/{done.id}/logs")
        if done.video_id:
            print(f"  recording:        {url}/api/v1/files/{done.video_id}/content")
        print(f"  audit log:        {url}/api/v1/audit")
        if args.keep and procs:
            print("The hub and the executor keep running; Ctrl-C stops them.")
            try:
                while all(p.poll() is None for p in procs):
                    time.sleep(1)
            except KeyboardInterrupt:
                pass
        return 0 if done.state == "success" else 1
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)


def _configure(parser) -> None:
    parser.add_argument("--bind", help="host:port for the hub (default: server.bind)")
    parser.add_argument("--region", default="四川", help="the sample app's region argument")
    parser.add_argument("--keep", action="store_true", help="leave the hub and executor running")


@hookimpl
def rpahub_register_commands(commands):
    commands.add("demo", _demo, help="run a sample app once on a bundled reference executor", configure=_configure)
