"""PostgreSQL goes away under load and comes back: the hub recovers without a restart.

A hub on a database of its own, with the reference executor connected over WebSocket,
an HTTP robot heartbeating and management calls in a loop. The cluster is stopped for
a few seconds and started again (a restart with an outage long enough to observe):

* during the outage every call is answered promptly with the envelope and 503 (with
  ``Retry-After``) — never a hung request, a dropped connection or a bare 500 —
  ``/readyz`` says 503 and ``/healthz`` still 200;
* a few seconds after PostgreSQL is back, without touching the hub: calls succeed,
  both executors' heartbeats are recorded again, a newly dispatched run reaches the
  WebSocket executor and finishes, the schedule whose occurrence fell in the outage
  fires, and the alert evaluator runs again;
* an outage longer than the offline timeout fails no run over: leases nobody could
  renew are not taken for lost executors (the run is not executed a second time).

The end-to-end tests run only in the ``-m postgres`` pass, as root with ``pg_ctlcluster``
for a local cluster, on a database of their own; whatever happens, the cluster is left
running. The in-process tests at the end (what the hub does with an outage it is told
about) run in every pass.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from urllib.parse import urlparse

import pytest
import requests

from rpahub_core import db as hubdb
from rpahub_core.testing import LiveHub, wait_for

PG_URL = os.environ.get("RPAHUB_TEST_POSTGRES", "")
SUPPLIER, SECRET = "pf", "fault-postgres-secret-0123456789"
OUTAGE_S = 4  # how long the cluster stays down
RECOVER_S = 5  # how soon after it is back every call must succeed again
PROMPT_S = 8  # no answer, in or out of the outage, may take longer than this
PACKAGE = "import os\nprint('working', os.environ.get('RPA_ARG_TAG', ''), flush=True)\nprint('RPA-OUTPUT ok=1')\n"


# -- the cluster -------------------------------------------------------------------------


def _cluster() -> tuple[str, str, str, int]:
    """(version, name, host, port) of the local cluster serving RPAHUB_TEST_POSTGRES, or skip."""
    if not PG_URL:
        pytest.skip("RPAHUB_TEST_POSTGRES is not set")
    if os.geteuid() != 0:
        pytest.skip("restarting PostgreSQL needs root")
    if not (shutil.which("pg_ctlcluster") and shutil.which("pg_lsclusters") and shutil.which("pg_isready")):
        pytest.skip("pg_ctlcluster / pg_lsclusters / pg_isready not installed")
    url = urlparse(PG_URL)
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    if host not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip(f"PostgreSQL at {host} is not a local cluster")
    try:
        lines = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, timeout=10,
                               check=True).stdout.splitlines()
    except (subprocess.SubprocessError, OSError) as exc:
        pytest.skip(f"pg_lsclusters failed: {exc}")
    for line in lines:
        fields = line.split()
        if len(fields) >= 4 and fields[2] == str(port) and fields[3].startswith("online"):
            return fields[0], fields[1], host, port
    pytest.skip(f"no online local cluster on port {port}")


def _pg_ctl(cluster, action: str) -> None:
    version, name, _, _ = cluster
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
                   check=True, capture_output=True, timeout=60)


def _pg_ready(cluster) -> bool:
    _, _, host, port = cluster
    return subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)], timeout=10).returncode == 0


def _ensure_running(cluster, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pg_ready(cluster):
            return
        try:
            _pg_ctl(cluster, "start")
        except subprocess.CalledProcessError as exc:  # already starting, or running after all
            if b"already running" not in (exc.stderr or b"") and b"is running" not in (exc.stderr or b""):
                time.sleep(0.5)
        time.sleep(0.2)
    raise AssertionError("PostgreSQL did not come back: start it by hand (pg_ctlcluster ... start)")


def _start(cluster, timeout: float = 60) -> float:
    """Start the cluster; return (monotonic) when it first accepted connections, which is
    a second or two before ``pg_ctlcluster start`` returns (it goes on in the background)."""
    version, name, _, _ = cluster
    proc = subprocess.Popen(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped when it is done
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _pg_ready(cluster):
            return time.monotonic()
        time.sleep(0.05)
    raise AssertionError("PostgreSQL did not start")


@pytest.fixture
def cluster(request):
    if "postgres" not in (request.config.option.markexpr or ""):
        pytest.skip("stops PostgreSQL: runs only in the `pytest -m postgres` pass")
    found = _cluster()
    yield found
    _ensure_running(found)


@pytest.fixture
def hub_database(cluster):
    """A database of the hub's own, so stopping the cluster mid-write touches no other test's data."""
    import psycopg

    name = "rpahub_fault_" + uuid.uuid4().hex[:10]
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlparse(PG_URL)
    yield url._replace(path="/" + name, query="").geturl()
    _ensure_running(cluster)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# -- load --------------------------------------------------------------------------------


class Sampler:
    """Calls in a loop on a thread, each sample (started, elapsed, status, envelope ok, error)."""

    def __init__(self, name, call):
        self.name, self.call = name, call
        self.samples: list[tuple[float, float, int | None, bool, str]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                r = self.call()
                try:
                    body = r.json()
                    enveloped = isinstance(body, dict) and {"successful", "resultHint", "resultValue"} <= body.keys()
                    enveloped = enveloped and body["successful"] is (r.status_code < 400)
                except ValueError:
                    enveloped = False
                if r.status_code == 503 and r.headers.get("Retry-After") is None:
                    enveloped = False
                self.samples.append((started, time.monotonic() - started, r.status_code, enveloped, ""))
            except requests.RequestException as exc:
                self.samples.append((started, time.monotonic() - started, None, False, type(exc).__name__))
            self.stop.wait(0.1)

    def between(self, start, end):
        return [s for s in self.samples if start <= s[0] < end]


def _utc(text: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@pytest.mark.e2e
@pytest.mark.postgres
def test_postgres_outage_under_load_and_the_hub_recovers_by_itself(tmp_path, cluster, hub_database):
    started = time.monotonic()
    env = {"RPAHUB_DATABASE__URL": hub_database,
           "RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "2", "RPAHUB_PLUGINS__EXECUTORS__MISSED_HEARTBEATS": "5",
           "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5", "RPAHUB_PLUGINS__SCHEDULES__TICK_S": "0.5",
           "RPAHUB_PLUGINS__OPS__EVALUATE_S": "1"}
    hub = LiveHub(tmp_path / "hub", env=env).start()
    samplers: list[Sampler] = []
    executor = None
    try:
        token = hub.admin_token()
        auth = {"Authorization": f"Bearer {token}"}

        def api(method, path, body=None, expect=200):
            status, answer = hub.call(method, path, body, token=token)
            assert status == expect, (method, path, status, answer)
            return answer["resultValue"]

        api("POST", "/api/v1/suppliers", {"code": SUPPLIER, "secret": SECRET}, expect=201)
        executor = subprocess.Popen(
            [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", hub.url, "--transport", "ws",
             "--robot-id", "pf-ws", "--supplier", SUPPLIER, "--heartbeat", "1", "--workdir", str(tmp_path / "ws")],
            env={**os.environ, "RPAHUB_EXECUTOR_SECRET": SECRET}, start_new_session=True,
            stdout=open(tmp_path / "pf-ws.log", "wb"), stderr=subprocess.STDOUT)

        # An HTTP robot, by hand: register, then heartbeat in a loop (a sampler).
        from rpahub_adapters.tces130 import proof

        r = requests.post(hub.url + "/robots/connect/register", headers={"robotId": "pf-http"}, timeout=10,
                          json={"supplierCode": SUPPLIER, "supplierSecret": proof(SECRET, "pf-http")})
        assert r.status_code == 200, r.text
        robot = {"robotId": "pf-http", "robotConnectId": r.json()["resultValue"]["robotConnectId"]}
        beat = requests.Session()
        samplers.append(Sampler("heartbeat", lambda: beat.post(hub.url + "/robots/connect/heartbeat", json={},
                                                               headers=robot, timeout=15)))
        people = requests.Session()
        samplers.append(Sampler("executors", lambda: people.get(hub.url + "/api/v1/executors?pageSize=5",
                                                                headers=auth, timeout=15)))
        samplers.append(Sampler("runs", lambda: requests.get(hub.url + "/api/v1/runs?pageSize=5", headers=auth,
                                                             timeout=15)))  # a new connection each time
        for s in samplers:
            s.thread.start()

        def online(robot_id):
            status, body = hub.call("GET", f"/api/v1/executors/{robot_id}", token=token)
            return status == 200 and body["resultValue"]["state"] in ("online", "busy") and body["resultValue"]

        wait_for(lambda: online("pf-ws") and online("pf-http"), 20, "both executors online")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", PACKAGE)
        r = requests.post(hub.url + "/api/v1/packages", headers=auth, data={"name": "pg-fault", "version": "1"},
                          files={"file": ("p.zip", buf.getvalue(), "application/zip")}, timeout=10)
        assert r.status_code == 201, r.text
        package_id = r.json()["resultValue"]["id"]

        def dispatch_and_finish(tag, timeout):
            run = api("POST", "/api/v1/dispatch", {"packageId": package_id, "executorId": "pf-ws",
                                                   "arguments": [{"name": "tag", "value": tag}]}, expect=201)
            return wait_for(lambda: (r := api("GET", f"/api/v1/runs/{run['id']}"))["state"]
                            in ("success", "failed", "cancelled") and r, timeout, f"run {tag} finishing")

        assert dispatch_and_finish("before", 20)["state"] == "success"
        rule = api("POST", "/api/v1/ops/alert-rules", {"name": "offline", "kind": "executor_offline",
                                                       "threshold": 1000, "windowMinutes": 1}, expect=201)
        # Due in the middle of the outage: the ticker must fire it once the database is back.
        anchor = (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2 + OUTAGE_S / 2)).replace(microsecond=0)
        schedule = api("POST", "/api/v1/schedules", {
            "name": "during-outage", "packageId": package_id, "executorId": "pf-ws", "unit": "hours",
            "every": 1, "anchor": anchor.replace(tzinfo=None).isoformat(), "timezone": "UTC",
            "arguments": [{"name": "tag", "value": "scheduled"}]}, expect=201)

        # -- the outage --------------------------------------------------------------------
        down_at = time.monotonic()
        _pg_ctl(cluster, "stop")
        try:
            time.sleep(1)
            r = requests.get(hub.url + "/readyz", timeout=PROMPT_S)
            assert r.status_code == 503 and r.json()["successful"] is False, r.text
            assert requests.get(hub.url + "/healthz", timeout=PROMPT_S).status_code == 200
            r = requests.post(hub.url + "/api/v1/dispatch", headers=auth, timeout=PROMPT_S,
                              json={"packageId": package_id, "executorId": "pf-ws"})
            assert r.status_code == 503 and r.json()["successful"] is False, r.text
            assert r.headers.get("Retry-After"), r.headers
            time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))
        finally:
            back_at = _start(cluster)
        back_utc = dt.datetime.now(dt.UTC)

        # -- recovery, without restarting the hub ----------------------------------------
        wait_for(lambda: requests.get(hub.url + "/readyz", timeout=PROMPT_S).status_code == 200, RECOVER_S,
                 "/readyz after PostgreSQL is back", interval=0.1)
        wait_for(lambda: all(s.between(back_at + 0.5, time.monotonic()) and
                             s.between(back_at + 0.5, time.monotonic())[-1][2] == 200 for s in samplers),
                 RECOVER_S, "every call loop succeeding again", interval=0.1)

        def heartbeats_recorded():
            ws, http = online("pf-ws"), online("pf-http")
            return ws and http and all(_utc(e["lastHeartbeat"]) > back_utc for e in (ws, http))

        wait_for(heartbeats_recorded, RECOVER_S + 3, "heartbeats recorded after the outage")
        assert dispatch_and_finish("after", 20)["state"] == "success"

        def fired():
            items = api("GET", f"/api/v1/schedules/{schedule['id']}/occurrences")["items"]
            return items and items[0]["runId"] and items[0]

        occurrence = wait_for(fired, 10, "the schedule due during the outage firing")
        assert occurrence["outcome"] == "fired", occurrence
        assert _utc(occurrence["occurrence"]) == anchor, occurrence
        ran = wait_for(lambda: (r := api("GET", f"/api/v1/runs/{occurrence['runId']}"))["state"] == "success" and r,
                       20, "the scheduled run finishing")
        assert ran["executorId"] == "pf-ws"
        wait_for(lambda: _utc(api("GET", f"/api/v1/ops/alert-rules/{rule['id']}")["evaluatedAt"]) > back_utc,
                 5, "the alert evaluator running again")

        for s in samplers:
            s.stop.set()
        for s in samplers:
            s.thread.join(PROMPT_S + 5)
        for s in samplers:
            slow = [x for x in s.samples if x[1] > PROMPT_S]
            assert not slow, f"{s.name}: answers that hung: {slow}"
            bad = [x for x in s.samples if x[2] not in (200, 503) or not x[3]]
            assert not bad, f"{s.name}: answers that are neither a success nor a clean 503 envelope: {bad}"
            assert any(x[2] == 503 for x in s.between(down_at, back_at)), f"{s.name}: the outage went unnoticed"
            late = [x for x in s.between(back_at + RECOVER_S, time.monotonic()) if x[2] != 200]
            assert not late, f"{s.name}: still failing {RECOVER_S}s after PostgreSQL came back: {late}"
        assert time.monotonic() - started < 60
    finally:
        for s in samplers:
            s.stop.set()
        if executor is not None and executor.poll() is None:
            os.killpg(executor.pid, signal.SIGKILL)
            executor.wait(5)
        hub.stop()


class HttpRobot:
    """An HTTP executor driven by hand: it heartbeats naming its run every ``period`` s and,
    as the protocol says, registers again when its connection id is refused (401)."""

    def __init__(self, url, robot_id, period):
        self.url, self.id, self.period = url, robot_id, period
        self.headers = {"robotId": robot_id}
        self.run_id = None
        self.http = requests.Session()
        self.registrations = 0
        self.quiet = threading.Event()  # set: the robot says nothing (between two heartbeats)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def register(self):
        from rpahub_adapters.tces130 import proof

        r = self.http.post(self.url + "/robots/connect/register", headers={"robotId": self.id}, timeout=PROMPT_S,
                           json={"supplierCode": SUPPLIER, "supplierSecret": proof(SECRET, self.id)})
        assert r.status_code == 200, r.text
        self.headers["robotConnectId"] = r.json()["resultValue"]["robotConnectId"]
        self.registrations += 1

    def post(self, what, body):
        r = self.http.post(f"{self.url}/robots/connect/{what}", json=body, headers=self.headers, timeout=PROMPT_S)
        if r.status_code == 401:
            self.register()
            r = self.http.post(f"{self.url}/robots/connect/{what}", json=body, headers=self.headers,
                               timeout=PROMPT_S)
        return r

    def heartbeat(self):
        return self.post("heartbeat", {"runInstanceId": self.run_id} if self.run_id else {})

    def _beat(self):
        while not self.stop.wait(self.period):
            if not self.quiet.is_set():
                try:
                    self.heartbeat()
                except requests.RequestException:
                    pass


@pytest.mark.e2e
@pytest.mark.postgres
def test_an_outage_longer_than_the_lease_fails_no_run_over(tmp_path, cluster, hub_database):
    """Leases cannot be renewed while the database is down; that is not the executor's
    fault. A run in progress across an outage longer than the offline timeout must not be
    requeued (and executed a second time) the moment the database is back, before its
    executor, heartbeating at its usual period, could be heard again: it finishes on its
    executor, in its first attempt."""
    started = time.monotonic()
    heartbeat_s, missed, outage_s = 2, 2, 6
    assert outage_s > heartbeat_s * missed
    env = {"RPAHUB_DATABASE__URL": hub_database, "RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": str(heartbeat_s),
           "RPAHUB_PLUGINS__EXECUTORS__MISSED_HEARTBEATS": str(missed), "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.2"}
    hub = LiveHub(tmp_path / "hub", env=env).start()
    robots: list[HttpRobot] = []
    try:
        token = hub.admin_token()
        auth = {"Authorization": f"Bearer {token}"}

        def api(method, path, body=None, expect=200):
            status, answer = hub.call(method, path, body, token=token)
            assert status == expect, (method, path, status, answer)
            return answer["resultValue"]

        api("POST", "/api/v1/suppliers", {"code": SUPPLIER, "secret": SECRET}, expect=201)
        # Two robots in a pool: a failover would have somewhere to go.
        robots = [HttpRobot(hub.url, f"pl-{i}", period=0.5) for i in (1, 2)]
        for robot in robots:
            robot.register()
            robot.thread.start()
        assert api("POST", "/api/v1/pools", {"name": "pl", "members": [r.id for r in robots]}, expect=201)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", PACKAGE)
        r = requests.post(hub.url + "/api/v1/packages", headers=auth, data={"name": "long", "version": "1"},
                          files={"file": ("p.zip", buf.getvalue(), "application/zip")}, timeout=10)
        assert r.status_code == 201, r.text
        run = api("POST", "/api/v1/dispatch", {"packageId": r.json()["resultValue"]["id"], "pool": "pl",
                                               "maxAttempts": 3}, expect=201)

        def executes():
            for robot in robots:
                robot.quiet.set()  # the test takes over their heartbeats for a moment
                answer = robot.heartbeat().json()["resultValue"]
                if answer["Action"] == "Execute":
                    robot.run_id = answer["Body"]["runInstanceId"]
                    return robot
            return None

        try:
            holder = wait_for(executes, 15, "an Execute")
        finally:
            for robot in robots:
                robot.quiet.clear()
        assert holder.run_id == run["id"]
        at = dt.datetime.now(dt.UTC).isoformat()
        r = holder.post("reportLogs", {"runInstanceId": run["id"], "logs": [{"content": "before", "logAt": at,
                                                                             "logLevel": 0}]})
        assert r.status_code == 200, r.text
        assert api("GET", f"/api/v1/runs/{run['id']}")["state"] == "running"
        for _ in range(2):  # the hub knows the robot names its run in heartbeats
            assert holder.heartbeat().status_code == 200

        _pg_ctl(cluster, "stop")
        try:
            time.sleep(outage_s - 1)  # the robots keep heartbeating into 503s
            for robot in robots:
                robot.quiet.set()  # and are between two heartbeats when the database comes back
            time.sleep(1)
        finally:
            back = _start(cluster)
        wait_for(lambda: requests.get(hub.url + "/readyz", timeout=PROMPT_S).status_code == 200, RECOVER_S,
                 "/readyz after PostgreSQL is back", interval=0.1)
        # Quiet for one heartbeat period after the database is back (within the protocol), while
        # the dispatcher ticks several times.
        time.sleep(max(0.0, heartbeat_s - (time.monotonic() - back)))
        for robot in robots:
            robot.quiet.clear()

        r = holder.post("reportLogs", {"runInstanceId": run["id"], "logs": [{"content": "after", "logAt": at,
                                                                             "logLevel": 0}]})
        assert r.status_code == 200, r.text
        r = holder.post("reportFinish", {"runInstanceId": run["id"], "status": 0})
        assert r.status_code == 200 and r.json()["successful"], r.text
        done = api("GET", f"/api/v1/runs/{run['id']}")
        states = [t["state"] for t in done["timeline"]]
        assert (done["state"], done["attempt"], done["executorId"]) == ("success", 1, holder.id), done
        assert "retrying" not in states and states.count("success") == 1, states
        assert not api("GET", "/api/v1/dispatch/queue")["items"], "the run was queued again"
        assert time.monotonic() - started < 60
    finally:
        for robot in robots:
            robot.stop.set()
        hub.stop()


# -- in process: what the hub does with the errors of an outage ----------------------------


def test_errors_that_mean_the_database_is_away_are_told_from_statements_that_failed():
    import peewee
    import psycopg
    from playhouse.pool import MaxConnectionsExceeded
    from psycopg import errors

    def wrapped(exc):  # as peewee raises them: once, or twice through autoconnect
        return [exc, peewee.OperationalError(exc), peewee.OperationalError(peewee.OperationalError(exc))]

    away = [psycopg.OperationalError("connection failed: Connection refused"),
            psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly"),
            errors.AdminShutdown("terminating connection due to administrator command"),
            errors.CannotConnectNow("the database system is starting up"),
            errors.ConnectionFailure("connection failure"), psycopg.InterfaceError("the connection is closed")]
    for exc in [e for a in away for e in wrapped(a)] + [MaxConnectionsExceeded("Exceeded maximum connections.")]:
        assert hubdb.unavailable(exc) and hubdb.is_database_error(exc), repr(exc)
    retry = [errors.DeadlockDetected("deadlock detected"), errors.QueryCanceled("statement timeout")]
    for exc in [e for a in retry for e in wrapped(a)]:  # 503 to the caller, but no outage
        assert not hubdb.unavailable(exc) and hubdb.is_database_error(exc), repr(exc)
    for exc in [errors.UniqueViolation("duplicate key"), peewee.IntegrityError(errors.UniqueViolation("dup")),
                peewee.ProgrammingError(errors.UndefinedTable("no table")), ValueError("x")]:
        assert not hubdb.unavailable(exc) and not hubdb.is_database_error(exc), repr(exc)


def test_an_outage_is_logged_in_a_line_now_and_then_not_a_traceback_per_call(caplog):
    import logging

    import psycopg

    seen = hubdb.Availability()
    assert not seen.recovering(60)
    exc = psycopg.OperationalError("connection failed: Connection refused\n\tIs the server running?")
    with caplog.at_level(logging.WARNING, logger="t.outage"):
        for _ in range(50):
            seen.report(logging.getLogger("t.outage"), "requests answered 503", exc)
    assert seen.failures == 50 and seen.recovering(60)
    assert [r.getMessage() for r in caplog.records] == [
        "database unavailable: requests answered 503: connection failed: Connection refused"]
    assert not caplog.records[0].exc_info
    seen.last_failure -= 61
    assert not seen.recovering(60)


def _away():
    import peewee
    import psycopg

    return peewee.OperationalError(psycopg.OperationalError("connection failed: Connection refused"))


def test_a_schedule_due_while_the_database_is_away_is_neither_backed_off_nor_marked_failed(app, monkeypatch):
    from rpahub_core.auth import UserPrincipal
    from rpahub_plugins.executors import state
    from rpahub_plugins.schedules.models import Schedule
    from rpahub_plugins.schedules.service import schedules

    planner = UserPrincipal(id="u-p", name="planner", permissions=frozenset({"*"}))
    with hubdb.connection():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print(1)")
        package = state(app.hub).runs.add_package(name="p", version="1", data=buf.getvalue(), created_by="t")
        service = schedules(app.hub)
        s = service.create({"name": "s", "package_id": package.id, "unit": "minutes", "every": 15,
                            "anchor": dt.datetime(2024, 5, 6, 8, 0), "timezone": "UTC"},
                           by=planner, now=dt.datetime(2024, 5, 6, 7, 0))
        due = dt.datetime(2024, 5, 6, 8, 0, 1)
        away = lambda *a, **k: (_ for _ in ()).throw(_away())  # noqa: E731
        for way in ("fire_many", "fire"):  # a batch, then (were it retried alone) the schedule by itself
            monkeypatch.setattr(service, way, away)
        with pytest.raises(Exception) as raised:
            service.fire_due(due)  # the tick logs it once and tries again next tick
        assert hubdb.unavailable(raised.value)
        assert service._retry_at == {} and Schedule.get_by_id(s.id).last_error is None
        monkeypatch.undo()
        rows = service.fire_due(due + dt.timedelta(seconds=1))  # the next tick, the database back
        assert [(r.outcome, r.occurrence) for r in rows] == [("fired", dt.datetime(2024, 5, 6, 8, 0))]


def test_failover_waits_a_full_lease_after_the_database_was_away(app):
    from rpahub_adapters.tces130 import proof
    from rpahub_core.db import utcnow
    from rpahub_core.sessions import ExecutorSession
    from rpahub_plugins.dispatch import dispatcher
    from rpahub_plugins.executors import state
    from rpahub_plugins.executors.models import RunInstance, Supplier

    with hubdb.connection():
        ex, d = state(app.hub), dispatcher(app.hub)
        Supplier.create(code="v", secret_enc=app.hub.keys.encrypt(SECRET))
        ex.gateway.register(ExecutorSession("r1", "http"), {"supplierCode": "v", "supplierSecret": proof(SECRET, "r1")})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print(1)")
        package = ex.runs.add_package(name="p", version="1", data=buf.getvalue(), created_by="t")
        run = d.submit(package_id=package.id, user_id="u", user_name="t", max_attempts=3)
        assert d.tick() == 1
        # The lease ran out while nobody could renew it: the database was away.
        RunInstance.update(lease_expires_at=utcnow() - dt.timedelta(seconds=1)).where(
            RunInstance.id == run.id).execute()
        hubdb.availability.failed()
        assert d.failover() == 0 and RunInstance.get_by_id(run.id).attempt == 1
        # A full offline timeout later, nobody heard from it: now it is lost.
        hubdb.availability.last_failure -= ex.gateway.offline_after_s + 1
        assert d.failover() == 1 and RunInstance.get_by_id(run.id).attempt == 2
