"""kill -9 of the hub under load, then a restart on the same folder and port: every
acknowledged log record, finish and upload is still there, and no run is lost.

HTTP robots (A.2) are driven directly with ``requests``, each remembering exactly
which of its requests the hub acknowledged (a 2xx with ``successful: true``). A
request in flight at the kill may or may not have been stored; it must be stored
whole or not at all (a log batch is one transaction), and nothing after it exists.
"""

from __future__ import annotations

import datetime as dt
import io
import os
import threading
import time
import zipfile

import pytest
import requests

from rpahub_core.testing import LiveHub, wait_for

pytestmark = pytest.mark.e2e

SUPPLIER, SECRET = "fc", "fault-crash-secret-0123456789"
LOADERS = 3  # robots streaming logs and uploads when the hub dies (plus one that finished before)
BATCH = 25  # log records per reportLogs
LOAD_S = 12  # the most the load may take to reach its marks before the kill
MARK_BATCHES, MARK_UPLOADS = 15, 3  # per robot, acknowledged before the kill
FULL_LOAD_S = 1.5  # then this long under full load


def _ok(r: requests.Response) -> bool:
    try:
        return 200 <= r.status_code < 300 and r.json().get("successful") is True
    except ValueError:
        return False


class Robot:
    """One HTTP executor; ``acked_*`` hold what the hub acknowledged, ``maybe_*`` the one
    request of each kind in flight when the connection broke."""

    def __init__(self, url: str, robot_id: str):
        self.url, self.id = url, robot_id
        self.http = requests.Session()  # the log stream's connection
        self.headers = {"robotId": robot_id}
        self.run_id: str | None = None
        self.seq = 0
        self.acked_logs: list[str] = []
        self.maybe_logs: list[str] = []
        self.acked_uploads: dict[str, bytes] = {}  # fileId -> content
        self.acked_finish = False
        self.error: BaseException | None = None

    def post(self, path: str, body: dict, session: requests.Session | None = None) -> requests.Response:
        return (session or self.http).post(self.url + path, json=body, headers=self.headers, timeout=10)

    def register(self) -> None:
        from rpahub_adapters.tces130 import proof

        r = self.post("/robots/connect/register", {"supplierCode": SUPPLIER, "supplierSecret": proof(SECRET, self.id),
                                                   "version": "fault-1"})
        assert _ok(r), r.text
        self.headers["robotConnectId"] = r.json()["resultValue"]["robotConnectId"]

    def heartbeat(self, session: requests.Session | None = None) -> dict:
        r = self.post("/robots/connect/heartbeat", {"runInstanceId": self.run_id} if self.run_id else {}, session)
        assert _ok(r), r.text
        return r.json()["resultValue"]

    def wait_for_run(self) -> str:
        def execute():
            answer = self.heartbeat()
            return answer["Action"] == "Execute" and answer["Body"]["runInstanceId"]

        self.run_id = wait_for(execute, 15, f"{self.id} receiving its Execute", interval=0.1)
        return self.run_id

    def next_batch(self) -> list[str]:
        lines = [f"{self.id}#{self.seq + i:06d}" for i in range(BATCH)]
        self.seq += BATCH
        return lines

    def report_logs(self, lines: list[str]) -> requests.Response:
        at = dt.datetime.now(dt.UTC).isoformat()
        return self.post("/robots/connect/reportLogs", {
            "runInstanceId": self.run_id, "logs": [{"content": c, "logAt": at, "logLevel": 0} for c in lines]})

    def upload(self, session: requests.Session, data: bytes) -> requests.Response:
        return session.post(self.url + "/v1/file/file/upload", headers=self.headers, timeout=10,
                            files={"file": (f"{self.id}-{len(self.acked_uploads)}.bin", data,
                                            "application/octet-stream")})

    def finish(self) -> None:
        r = self.post("/robots/connect/reportFinish", {"runInstanceId": self.run_id, "status": 0})
        assert _ok(r), r.text
        self.acked_finish = True

    # -- the load: as fast as the hub answers, until it stops answering -----------------

    def stream_logs(self, stop: threading.Event) -> None:
        while not stop.is_set():
            lines = self.next_batch()
            try:
                r = self.report_logs(lines)
            except requests.RequestException:
                self.maybe_logs = lines
                return
            if not _ok(r):  # an answer, but not an acknowledgement: nothing may be assumed stored
                self.maybe_logs = lines
                return
            self.acked_logs.extend(lines)

    def stream_uploads(self, stop: threading.Event) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set():
            n += 1
            data = f"{self.id} upload {n} ".encode() + os.urandom(512 + 97 * n)
            try:
                r = self.upload(session, data)
            except requests.RequestException:
                return
            if not _ok(r):
                return
            self.acked_uploads[r.json()["resultValue"]["fileId"]] = data
            time.sleep(0.02)

    def stream_heartbeats(self, stop: threading.Event) -> None:
        session = requests.Session()
        while not stop.wait(0.5):
            try:
                self.heartbeat(session)
            except (requests.RequestException, AssertionError):
                return


def _all_logs(hub: LiveHub, token: str, run_id: str) -> list[str]:
    out, page = [], 1
    while True:
        status, body = hub.call("GET", f"/api/v1/runs/{run_id}/logs?page={page}&pageSize=1000", token=token)
        assert status == 200, body
        items = body["resultValue"]["items"]
        out.extend(i["content"] for i in items)
        if len(out) >= body["resultValue"]["total"] or not items:
            return out
        page += 1


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_env(request):
    """The hub's database: SQLite in its folder, or a fresh schema of RPAHUB_TEST_POSTGRES."""
    if request.param == "sqlite":
        return {}
    return {"RPAHUB_DATABASE__URL": request.getfixturevalue("pg_url")}


def test_kill_9_under_load_loses_nothing_acknowledged(tmp_path, database_env):
    started = time.monotonic()
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "5", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.2",
           **database_env}
    hub = LiveHub(tmp_path / "hub", env=env).start()
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        token = hub.admin_token()
        auth = {"Authorization": f"Bearer {token}"}
        assert hub.call("POST", "/api/v1/suppliers", {"code": SUPPLIER, "secret": SECRET}, token=token)[0] == 201
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print('never run: these robots are simulated')\n")
        r = requests.post(hub.url + "/api/v1/packages", headers=auth, data={"name": "crash-load", "version": "1"},
                          files={"file": ("p.zip", buf.getvalue(), "application/zip")}, timeout=10)
        assert r.status_code == 201, r.text
        package_id = r.json()["resultValue"]["id"]

        robots = [Robot(hub.url, f"fc-{i}") for i in range(LOADERS + 1)]
        run_ids = []
        for robot in robots:
            robot.register()
            status, body = hub.call("POST", "/api/v1/dispatch", {"packageId": package_id, "executorId": robot.id},
                                    token=token)
            assert status == 201, body
            run_ids.append(body["resultValue"]["id"])
        for robot, run_id in zip(robots, run_ids, strict=True):
            assert robot.wait_for_run() == run_id

        # One robot reports, uploads and finishes before the crash: all acknowledged.
        done, *loaders = robots
        for _ in range(3):
            lines = done.next_batch()
            assert _ok(done.report_logs(lines))
            done.acked_logs.extend(lines)
        data = b"finished-run artefact " + os.urandom(2048)
        r = done.upload(requests.Session(), data)
        assert _ok(r), r.text
        done.acked_uploads[r.json()["resultValue"]["fileId"]] = data
        done.finish()

        for robot in loaders:
            for target in (robot.stream_logs, robot.stream_uploads, robot.stream_heartbeats):
                threads.append(threading.Thread(target=target, args=(stop,), daemon=True))
        for t in threads:
            t.start()
        wait_for(lambda: all(len(r.acked_logs) >= MARK_BATCHES * BATCH and len(r.acked_uploads) >= MARK_UPLOADS
                             for r in loaders), LOAD_S, "load reaching its marks", interval=0.05)
        time.sleep(FULL_LOAD_S)  # and the hub dies in the middle of it, not at a quiet moment

        hub.kill()  # SIGKILL to master and worker, with requests in flight
        for t in threads:
            t.join(15)
        assert not any(t.is_alive() for t in threads), "a robot thread hung on a dead hub"
        stop.set()

        hub = LiveHub(tmp_path / "hub", env=env, port=hub.port).start()
        token = hub.admin_token()

        # No run disappeared; the finished one is still a success, reported once.
        status, body = hub.call("GET", "/api/v1/runs?pageSize=100", token=token)
        assert status == 200, body
        assert {r["id"] for r in body["resultValue"]["items"]} >= set(run_ids)
        for robot, run_id in zip(robots, run_ids, strict=True):
            status, body = hub.call("GET", f"/api/v1/runs/{run_id}", token=token)
            assert status == 200, body
            run = body["resultValue"]
            assert run["executorId"] == robot.id, run
            if robot is done:
                assert run["state"] == "success" and run["finishStatus"] == 0, run
                assert [t["state"] for t in run["timeline"]].count("success") == 1, run
            else:
                assert run["state"] in ("dispatched", "running"), run

        # Every acknowledged record is there, in order; the batch in flight is all or nothing.
        for robot in robots:
            stored = _all_logs(hub, token, robot.run_id)
            assert len(stored) == len(set(stored)), f"{robot.id}: duplicated log records"
            acked = robot.acked_logs
            assert stored[:len(acked)] == acked, f"{robot.id}: acknowledged log records lost or out of order"
            assert stored[len(acked):] in ([], robot.maybe_logs), f"{robot.id}: a partial or unknown batch"
            assert len(acked) >= (3 * BATCH if robot is done else MARK_BATCHES * BATCH)

        # Every acknowledged upload comes back byte for byte.
        auth = {"Authorization": f"Bearer {token}"}
        for robot in robots:
            for file_id, data in robot.acked_uploads.items():
                r = requests.get(f"{hub.url}/api/v1/files/{file_id}/content", headers=auth, timeout=10)
                assert r.status_code == 200, (robot.id, file_id, r.status_code, r.text[:200])
                assert r.content == data, f"{robot.id}: upload {file_id} changed"

        # The survivors carry on with the same connection and finish.
        for robot in loaders:
            robot.http = requests.Session()
            robot.heartbeat()
            lines = robot.next_batch()
            assert _ok(robot.report_logs(lines)), robot.id
            robot.finish()
        for run_id in run_ids[1:]:
            run = hub.call("GET", f"/api/v1/runs/{run_id}", token=token)[1]["resultValue"]
            assert run["state"] == "success" and run["attempt"] == 1, run
        assert time.monotonic() - started < 60
    finally:
        stop.set()
        hub.kill()
