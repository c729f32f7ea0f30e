"""kill -9 of the hub under load: no run is lost and none is executed twice."""

import io
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import requests

from rpahub_core.testing import LiveHub, wait_for

pytestmark = pytest.mark.e2e

SECRET = "crash-secret-0123456789ab"
RUNS = 8

# Each run appends its tag to a ledger once, then works a little.
PACKAGE = """
import os, time
with open(os.environ["RPA_ARG_LEDGER"], "a") as ledger:
    ledger.write(os.environ["RPA_ARG_TAG"] + "\\n")
time.sleep(1.5)
print("done", os.environ["RPA_ARG_TAG"], flush=True)
"""



def test_no_run_is_lost_or_run_twice_across_a_hub_crash(tmp_path):
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "5", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5"}
    hub = LiveHub(tmp_path / "hub", env=env).start()
    procs = []
    try:
        token = hub.admin_token()
        auth = {"Authorization": f"Bearer {token}"}
        hub.call("POST", "/api/v1/suppliers", {"code": "cr", "secret": SECRET}, token=token)
        for robot, transport in (("cr-ws", "ws"), ("cr-http", "http")):
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", hub.url, "--transport", transport,
                 "--robot-id", robot, "--supplier", "cr", "--heartbeat", "1", "--workdir", str(tmp_path / robot)],
                env={**os.environ, "RPAHUB_EXECUTOR_SECRET": SECRET}, start_new_session=True,
                stdout=open(tmp_path / f"{robot}.log", "wb"), stderr=subprocess.STDOUT))
        wait_for(lambda: hub.call("GET", "/api/v1/executors?state=online", token=token)[1]["resultValue"]["total"] == 2,
                 20, "executors online")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", PACKAGE)
        package = requests.post(hub.url + "/api/v1/packages", headers=auth, data={"name": "ledger", "version": "1"},
                                files={"file": ("l.zip", buf.getvalue())}, timeout=10).json()["resultValue"]
        ledger = tmp_path / "ledger.txt"
        run_ids = []
        for i in range(RUNS):
            status, body = hub.call("POST", "/api/v1/dispatch", {
                "packageId": package["id"], "arguments": [{"name": "tag", "value": f"t{i}"},
                                                          {"name": "ledger", "value": str(ledger)}]}, token=token)
            assert status == 201, body
            run_ids.append(body["resultValue"]["id"])
        wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= 3, 30, "work under way")
        hub.kill()  # SIGKILL to master and worker, mid-run, with runs queued
        time.sleep(1)
        hub = LiveHub(tmp_path / "hub", env=env, port=hub.port).start()
        token = hub.admin_token()

        def states():
            return [hub.call("GET", f"/api/v1/runs/{r}", token=token)[1]["resultValue"] for r in run_ids]

        finished = wait_for(lambda: (s := states()) and all(r["state"] == "success" for r in s) and s, 90,
                            "every run finishing")
        tags = ledger.read_text().split()
        assert sorted(tags) == sorted(f"t{i}" for i in range(RUNS)), "each run executed exactly once"
        for run in finished:
            terminal = [t["state"] for t in run["timeline"] if t["state"] in ("success", "failed", "cancelled")]
            assert terminal == ["success"] and run["attempt"] == 1, run
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        hub.kill()
