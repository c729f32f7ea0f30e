"""6.5.1c end to end: kill -9 of an executor mid-run; the run continues on another
executor from its checkpoint within the heartbeat timeout plus 5 s, and its final
result is reported once."""

import os
import signal
import subprocess
import sys
import time

import pytest

from rpahub_core.testing import LiveHub, wait_for

pytestmark = pytest.mark.e2e

SECRET = "failover-secret-0123456789"
HEARTBEAT_S, MISSED = 2, 3

# Counts rows 1..12, a checkpoint after each; on a resumed attempt it starts after the checkpoint.
PACKAGE = r'''
import json, os, time
start = json.loads(os.environ.get("RPA_CHECKPOINT") or '{"row": 0}')["row"]
print(f"attempt {os.environ.get('RPA_ATTEMPT', '1')} starts after row {start}", flush=True)
for row in range(start + 1, 13):
    time.sleep(0.4)
    print(f"row {row}", flush=True)
    print("RPA-CHECKPOINT " + json.dumps({"row": row}), flush=True)
print("RPA-OUTPUT rows=12", flush=True)
'''



@pytest.fixture
def hub(tmp_path):
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": str(HEARTBEAT_S),
           "RPAHUB_PLUGINS__EXECUTORS__MISSED_HEARTBEATS": str(MISSED),
           "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5"}
    with LiveHub(tmp_path / "hub", env=env) as live:
        token = live.admin_token()
        assert live.call("POST", "/api/v1/suppliers", {"code": "fo", "secret": SECRET}, token=token)[0] == 201
        yield live, token


@pytest.fixture
def executors(hub, tmp_path):
    live, _ = hub
    procs = {}

    def start(robot_id):
        log = open(tmp_path / f"{robot_id}.log", "wb")
        procs[robot_id] = subprocess.Popen(
            [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", live.url, "--transport", "ws",
             "--robot-id", robot_id, "--supplier", "fo", "--heartbeat", "1", "--workdir", str(tmp_path / robot_id)],
            env={**os.environ, "RPAHUB_EXECUTOR_SECRET": SECRET}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        return procs[robot_id]

    start.kill = lambda robot_id: os.killpg(procs[robot_id].pid, signal.SIGKILL)  # kill -9, no goodbye
    yield start
    for proc in procs.values():
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_kill_9_of_an_executor_mid_run_resumes_from_the_checkpoint_elsewhere(hub, executors, tmp_path):
    import io
    import zipfile

    import requests

    live, token = hub
    auth = {"Authorization": f"Bearer {token}"}
    for robot in ("fo-1", "fo-2"):
        executors(robot)
    def online(robot):
        value = live.call("GET", f"/api/v1/executors/{robot}", token=token)[1]["resultValue"]
        return value is not None and value["state"] == "online"

    wait_for(lambda: online("fo-1") and online("fo-2"), 20, "both executors online")
    assert live.call("POST", "/api/v1/pools", {"name": "fo", "members": ["fo-1", "fo-2"]}, token=token)[0] == 201
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", PACKAGE)
    package = requests.post(live.url + "/api/v1/packages", headers=auth, data={"name": "rows", "version": "1"},
                            files={"file": ("rows.zip", buf.getvalue())}, timeout=10).json()["resultValue"]
    status, body = live.call("POST", "/api/v1/dispatch", {"packageId": package["id"], "pool": "fo"}, token=token)
    assert status == 201, body
    run_id = body["resultValue"]["id"]

    def run():
        return live.call("GET", f"/api/v1/runs/{run_id}", token=token)[1]["resultValue"]

    first = wait_for(lambda: (r := run())["checkpoint"] and r["checkpoint"]["row"] >= 3 and r, 30, "checkpoint 3")
    victim = first["executorId"]
    survivor = {"fo-1": "fo-2", "fo-2": "fo-1"}[victim]
    killed_at = time.monotonic()
    executors.kill(victim)
    moved = wait_for(lambda: (r := run())["executorId"] == survivor and r["attempt"] == 2 and r,
                     HEARTBEAT_S * MISSED + 5 + 3, "the run moving to the other executor")
    assert time.monotonic() - killed_at <= HEARTBEAT_S * MISSED + 5 + 3
    done = wait_for(lambda: (r := run())["state"] in ("success", "failed") and r, 30, "the run finishing")
    assert done["state"] == "success" and done["executorId"] == survivor and done["attempt"] == 2
    assert done["outputs"] == {"rows": "12"}
    logs = [i["content"] for i in live.call("GET", f"/api/v1/runs/{run_id}/logs?pageSize=1000",
                                           token=token)[1]["resultValue"]["items"]]
    resumed_at = next(int(line.rsplit(" ", 1)[1]) for line in logs if line.startswith("attempt 2 starts after row"))
    assert resumed_at >= first["checkpoint"]["row"]
    assert f"row {resumed_at + 1}" in logs and "row 12" in logs
    # The final result is reported once: one terminal state on the timeline.
    states = [t["state"] for t in done["timeline"]]
    assert states.count("success") == 1 and states[-1] == "success" and "retrying" in states
    assert moved["checkpoint"]["row"] >= resumed_at

