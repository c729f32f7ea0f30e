"""The fleet simulator against the real server: what a deployer sizing a hub relies on."""

import io
import json
import os
import subprocess
import sys
import zipfile

import pytest
import requests

from rpahub_contrib.fleet.report import percentile, summary
from rpahub_core.testing import LiveHub, wait_for

SECRET = "fleet-secret-0123456789"


def fleet(hub, *args, timeout=90):
    out = subprocess.run(
        [sys.executable, "-m", "rpahub_contrib.fleet", "--hub", hub.url, "--supplier", "fl", "--json", "-", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, "RPAHUB_FLEET_SECRET": SECRET})
    return out.returncode, (json.loads(out.stdout) if out.stdout.strip() else None), out.stderr


def test_percentiles_are_nearest_rank():
    values = sorted(float(i) for i in range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50.0, 99.0, 100.0)
    assert summary([0.001, 0.002, 0.003]) == {"count": 3, "p50Ms": 2.0, "p95Ms": 3.0, "p99Ms": 3.0, "maxMs": 3.0}
    assert summary([])["p50Ms"] is None


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    env = {"RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.3"}
    with LiveHub(tmp_path_factory.mktemp("fleet") / "hub", env=env) as h:
        h.token = h.admin_token()
        assert h.call("POST", "/api/v1/suppliers", {"code": "fl", "secret": SECRET}, token=h.token)[0] == 201
        yield h


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_fleet_registers_heartbeats_and_reports_latencies(hub, transport):
    rc, report, err = fleet(hub, "--transport", transport, "--count", "25", "--prefix", f"hb-{transport}",
                            "--ramp", "1", "--duration", "3", "--heartbeat", "1", "--no-run")
    assert rc == 0, err
    assert (report["registered"], report["refused"], report["peakConnected"], report["errors"]) == (25, 0, 25, {})
    assert report["latency"]["register"]["count"] == 25
    assert report["latency"]["heartbeat"]["count"] >= 25 * 2
    assert 0 < report["latency"]["heartbeat"]["p50Ms"] <= report["latency"]["heartbeat"]["p99Ms"]
    assert "secret" not in report["config"] and SECRET not in err
    status, body = hub.call("GET", "/api/v1/executors?pageSize=200&supplier=fl", token=hub.token)
    ids = {e["id"] for e in body["resultValue"]["items"] if e["id"].startswith(f"hb-{transport}-")}
    assert len(ids) == 25, body


def test_refused_executors_are_counted_and_fail_the_run(hub):
    out = subprocess.run(
        [sys.executable, "-m", "rpahub_contrib.fleet", "--hub", hub.url, "--supplier", "fl", "--count", "3",
         "--ramp", "0", "--duration", "1", "--json", "-"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "RPAHUB_FLEET_SECRET": "wrong-secret-xyz"})
    report = json.loads(out.stdout)
    assert out.returncode == 1 and (report["registered"], report["refused"]) == (0, 3)
    assert report["hubErrors"] == {"10001": 3}


def test_simulated_executors_run_what_the_hub_dispatches(hub, tmp_path):
    # A supplier of its own: the other tests' HTTP robots look online until they miss heartbeats.
    assert hub.call("POST", "/api/v1/suppliers", {"code": "fj", "secret": SECRET}, token=hub.token)[0] == 201
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print('simulated')\n")
    auth = {"Authorization": f"Bearer {hub.token}"}
    package = requests.post(hub.url + "/api/v1/packages", headers=auth, data={"name": "fleet-job", "version": "1"},
                            files={"file": ("f.zip", buf.getvalue())}, timeout=10).json()["resultValue"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpahub_contrib.fleet", "--hub", hub.url, "--supplier", "fj", "--transport", "ws",
         "--count", "4", "--prefix", "job", "--ramp", "0.5", "--duration", "8", "--heartbeat", "1",
         "--batches", "2", "--records", "5", "--batch-every", "0.2", "--json", str(tmp_path / "r.json")],
        env={**os.environ, "RPAHUB_FLEET_SECRET": SECRET}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: hub.call("GET", "/api/v1/executors?state=online&supplier=fj", token=hub.token)[1]
                 ["resultValue"]["total"] >= 4, 20, "simulated executors online")
        runs = []
        for _ in range(6):
            status, body = hub.call("POST", "/api/v1/dispatch", {"packageId": package["id"], "supplier": "fj"},
                                    token=hub.token)
            assert status == 201, body
            runs.append(body["resultValue"]["id"])

        def finished():
            got = [hub.call("GET", f"/api/v1/runs/{r}", token=hub.token)[1]["resultValue"] for r in runs]
            return all(r["state"] == "success" for r in got) and got

        done = wait_for(finished, 30, "every dispatched run finishing on the fleet")
        assert {r["executorId"].split("-")[0] for r in done} == {"job"}
        logs = hub.call("GET", f"/api/v1/runs/{runs[0]}/logs?pageSize=50", token=hub.token)[1]["resultValue"]
        assert [x["content"].split()[0] for x in logs["items"]] == [f"#{i}" for i in range(10)]
    finally:
        _, err = proc.communicate(timeout=60)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["runsFinished"] == 6 and {e["runInstanceId"] for e in report["executes"]} == set(runs), err
    assert report["latency"]["reportLogs"]["count"] == 12
