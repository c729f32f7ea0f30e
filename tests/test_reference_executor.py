"""The reference executor (contrib/executor) against the real server, over both transports.

Each test starts ``rpahub-executor`` as a subprocess, runs a package through the
management API and checks what the hub recorded: status, logs in order, checkpoint,
outputs, the uploaded recording, and Stop.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import requests

from rpahub_core.testing import LiveHub

pytestmark = pytest.mark.e2e

SUPPLIER = "ref-exec"
SECRET = "reference-executor-secret-0123456789"
WAIT_S = 30


def wait_for(predicate, timeout=WAIT_S, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s")


class Hub:
    def __init__(self, live, token):
        self.live, self.token = live, token

    def call(self, method, path, body=None):
        return self.live.call(method, path, body, token=self.token)

    def ok(self, method, path, body=None, status=200):
        got, answer = self.call(method, path, body)
        assert got == status, (method, path, got, answer)
        return answer["resultValue"]

    def upload_package(self, name, files):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for path, text in files.items():
                zf.writestr(path, text)
        r = requests.post(self.live.url + "/api/v1/packages", headers={"Authorization": f"Bearer {self.token}"},
                          data={"name": name, "version": "1.0"},
                          files={"file": (f"{name}.zip", buf.getvalue(), "application/zip")}, timeout=10)
        assert r.status_code == 201, r.text
        return r.json()["resultValue"]

    def start_run(self, package, robot_id, arguments=(), **extra):
        return self.ok("POST", "/api/v1/runs", {"packageId": package["id"], "executorId": robot_id,
                                                "arguments": list(arguments), **extra}, status=201)

    def run(self, run_id):
        return self.ok("GET", f"/api/v1/runs/{run_id}")

    def wait_done(self, run_id, timeout=WAIT_S):
        return wait_for(lambda: (r := self.run(run_id))["state"] in ("success", "failed", "cancelled") and r,
                        timeout, what=f"end of run {run_id}")

    def logs(self, run_id):
        return self.ok("GET", f"/api/v1/runs/{run_id}/logs?pageSize=1000")["items"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    # A short hub heartbeat: it pings the sockets often, as a busy deployment would.
    with LiveHub(tmp_path_factory.mktemp("hub"), env={"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "2"}) as live:
        h = Hub(live, live.admin_token())
        h.ok("POST", "/api/v1/suppliers", {"code": SUPPLIER, "secret": SECRET}, status=201)
        yield h


class Executor:
    def __init__(self, proc, log_path, robot_id):
        self.proc, self.log_path, self.robot_id = proc, log_path, robot_id

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stop(self):
        """SIGTERM, as a service manager would; the executor must exit cleanly with 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError(f"executor ignored SIGTERM:\n{self.log()}") from None
        return self.proc.returncode


@pytest.fixture
def start_executor(hub, tmp_path):
    started = []

    def start(transport, robot_id):
        log_path = tmp_path / f"{robot_id}.log"
        env = {**os.environ, "RPAHUB_EXECUTOR_SECRET": SECRET}
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", hub.live.url, "--transport", transport,
                 "--robot-id", robot_id, "--supplier", SUPPLIER, "--heartbeat", "1", "--workdir",
                 str(tmp_path / "work"), "--log-level", "DEBUG"],
                env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        ex = Executor(proc, log_path, robot_id)
        started.append(ex)

        def online():
            assert proc.poll() is None, f"executor exited with {proc.returncode}:\n{ex.log()}"
            status, body = hub.call("GET", f"/api/v1/executors/{robot_id}")
            return status == 200 and body["resultValue"]["state"] in ("online", "busy")

        wait_for(online, 20, what=f"executor {robot_id} online")
        return ex

    yield start
    for ex in started:
        try:
            assert ex.stop() == 0, ex.log()
        finally:
            if ex.proc.poll() is None:
                os.killpg(ex.proc.pid, signal.SIGKILL)


TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "http"])

ROBOT_SUITE = """\
*** Variables ***
${customer}    nobody

*** Test Cases ***
Greet The Customer
    Log    first step
    Log    Hello ${customer}
    Log To Console    RPA-OUTPUT greeted=${customer}
    Log    last step
"""


@TRANSPORTS
def test_robot_framework_package_runs_with_its_arguments(hub, start_executor, transport):
    robot_id = f"ref-rf-{transport}"
    # A bound licence reaches the executor on register, and it checks it offline.
    hub.ok("POST", "/api/v1/licences", {"supplier": SUPPLIER, "robotId": robot_id, "days": 30}, status=201)
    ex = start_executor(transport, robot_id)
    package = hub.upload_package(f"rf-{transport}", {"tasks/greet.robot": ROBOT_SUITE})
    assert package["kind"] == "robot"
    run = hub.start_run(package, robot_id, [{"name": "customer", "type": "String", "value": "ACME Ltd"}])

    done = hub.wait_done(run["id"])
    assert (done["state"], done["finishStatus"], done["errorCode"]) == ("success", 0, None), ex.log()
    assert done["outputs"] == {"greeted": "ACME Ltd"}
    contents = [item["content"] for item in hub.logs(run["id"])]
    ordered = [contents.index("first step"), contents.index("Hello ACME Ltd"), contents.index("last step")]
    assert ordered == sorted(ordered), contents
    assert any(c.startswith("Test 'Greet The Customer' PASS") for c in contents), contents
    assert "licence" in ex.log() and "valid until" in ex.log(), ex.log()


PYTHON_MAIN = """\
import json, os, sys, time

args = json.load(open(os.environ["RPA_ARGS_FILE"], encoding="utf-8"))
print("working for", os.environ["RPA_ARG_CUSTOMER"])
print("RPA-CHECKPOINT " + json.dumps({"step": 1, "customer": args["customer"]}))
print("a warning on stderr", file=sys.stderr)
for i in range(5):
    print(f"line {i}")
    time.sleep(0.05)
print("RPA-OUTPUT invoice=INV-42")
"""


@TRANSPORTS
def test_python_package_reports_checkpoint_outputs_and_recording(hub, start_executor, transport):
    robot_id = f"ref-py-{transport}"
    start_executor(transport, robot_id)
    package = hub.upload_package(f"py-{transport}", {"main.py": PYTHON_MAIN})
    run = hub.start_run(package, robot_id, [{"name": "customer", "type": "String", "value": "ACME"}],
                        videoRecordRequired=True, videoRecordMode=1)

    hub.wait_done(run["id"])
    done = wait_for(lambda: (r := hub.run(run["id"]))["videoId"] and r, what="ReportVideoRecord")
    assert (done["state"], done["finishStatus"]) == ("success", 0)
    assert done["checkpoint"] == {"step": 1, "customer": "ACME"}
    assert done["outputs"] == {"invoice": "INV-42"}

    logs = hub.logs(run["id"])
    contents = [item["content"] for item in logs]
    lines = [c for c in contents if c.startswith("line ")]
    assert lines == [f"line {i}" for i in range(5)]
    assert "working for ACME" in contents
    assert {item["logLevel"] for item in logs if item["content"] == "a warning on stderr"} == {2}

    r = requests.get(f"{hub.live.url}/api/v1/files/{done['videoId']}/content",
                     headers={"Authorization": f"Bearer {hub.token}"}, timeout=10)
    assert r.status_code == 200
    header, *events = r.text.splitlines()
    assert json.loads(header)["version"] == 2  # asciicast v2: no display to grab here
    assert any("line 4" in json.loads(e)[2] for e in events)
    assert "console-recording" in r.headers.get("Content-Disposition", "")


LONG_MAIN = """\
import os, time

print(f"pid={os.getpid()}", flush=True)
for i in range(300):
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
"""


@TRANSPORTS
def test_stop_terminates_the_package_and_finishes_cancelled(hub, start_executor, transport):
    robot_id = f"ref-stop-{transport}"
    start_executor(transport, robot_id)
    package = hub.upload_package(f"long-{transport}", {"main.py": LONG_MAIN})
    run = hub.start_run(package, robot_id)

    first = wait_for(lambda: [c["content"] for c in hub.logs(run["id"]) if c["content"].startswith("pid=")],
                     what="the package running")
    pid = int(first[0].split("=")[1])
    stopped = hub.ok("POST", f"/api/v1/runs/{run['id']}/stop")
    assert stopped["state"] == "stopping"

    done = hub.wait_done(run["id"])
    assert (done["state"], done["finishStatus"]) == ("cancelled", 1)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_sigterm_ends_the_package_and_reports_the_run_failed(hub, start_executor):
    robot_id = "ref-sigterm"
    ex = start_executor("ws", robot_id)
    package = hub.upload_package("long-sigterm", {"main.py": LONG_MAIN})
    run = hub.start_run(package, robot_id)
    first = wait_for(lambda: [c["content"] for c in hub.logs(run["id"]) if c["content"].startswith("pid=")],
                     what="the package running")

    assert ex.stop() == 0, ex.log()
    done = hub.wait_done(run["id"], timeout=5)  # reported before the executor exited
    assert (done["state"], done["finishStatus"], done["errorCode"]) == ("failed", 2, -signal.SIGTERM)
    with pytest.raises(ProcessLookupError):
        os.kill(int(first[0].split("=")[1]), 0)


RECONNECT_MAIN = """\
import time

for i in range(20):
    print(f"line {i}", flush=True)
    time.sleep(0.1)
print('RPA-CHECKPOINT {"i": 20}')
print("RPA-OUTPUT n=20")
"""


@TRANSPORTS
def test_reports_made_while_the_hub_is_down_arrive_after_reconnecting(tmp_path, transport):
    live = LiveHub(tmp_path / "hub").start()
    proc = None
    try:
        h = Hub(live, live.admin_token())
        h.ok("POST", "/api/v1/suppliers", {"code": SUPPLIER, "secret": SECRET}, status=201)
        log_path = tmp_path / "executor.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "rpahub_contrib.executor.cli", "--hub", live.url, "--transport", transport,
                 "--robot-id", "ref-reconnect", "--supplier", SUPPLIER, "--heartbeat", "1",
                 "--workdir", str(tmp_path / "work")],
                env={**os.environ, "RPAHUB_EXECUTOR_SECRET": SECRET}, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        wait_for(lambda: h.call("GET", "/api/v1/executors/ref-reconnect")[0] == 200, 20, what="registration")
        package = h.upload_package("reconnect", {"main.py": RECONNECT_MAIN})
        run = h.start_run(package, "ref-reconnect", videoRecordRequired=True, videoRecordMode=1)
        wait_for(lambda: any(item["content"] == "line 2" for item in h.logs(run["id"])), what="first logs")

        live.kill()  # the package goes on and ends while the hub is away
        time.sleep(2.5)
        live = LiveHub(tmp_path / "hub", port=live.port).start()
        h = Hub(live, live.admin_token())

        done = wait_for(lambda: (r := h.run(run["id"]))["videoId"] and r, what="reports after reconnecting")
        assert (done["state"], done["finishStatus"]) == ("success", 0), log_path.read_text()
        assert done["checkpoint"] == {"i": 20} and done["outputs"] == {"n": "20"}
        assert [item["content"] for item in h.logs(run["id"])] == [f"line {i}" for i in range(20)]
        assert "connection lost" in log_path.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        live.stop()


def test_a_resumed_run_gets_its_checkpoint_attempt_and_arguments(tmp_path):
    """No hub needed: the Execute of a resumed run carries ``checkpoint`` and ``attempt`` (extension)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from rpahub_contrib.executor.runner import Job, Runner

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "import json, os\n"
                               "print('RPA-OUTPUT checkpoint=' + os.environ['RPA_CHECKPOINT'])\n"
                               "print('RPA-OUTPUT attempt=' + os.environ['RPA_ATTEMPT'])\n"
                               "print('RPA-OUTPUT arg=' + os.environ['RPA_ARG_MY_ARG'])\n"
                               "print('RPA-OUTPUT file=' + json.load(open(os.environ['RPA_ARGS_FILE']))['my-arg'])\n")
    data = buf.getvalue()

    class Package(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    class Sink:
        logs = []

        def log(self, level, content):
            self.logs.append((level, content))

        def checkpoint(self, value):
            raise AssertionError("no checkpoint expected")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Package)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        job = Job({"runInstanceId": "run-1", "packageDownloadUri": f"http://127.0.0.1:{server.server_port}/p.zip",
                   "arguments": [{"name": "my-arg", "type": "String", "value": "v 1"}],
                   "checkpoint": {"page": 7}, "attempt": 2})
        result = Runner(tmp_path).run(job, Sink())
    finally:
        server.shutdown()
    assert result.status == 0, Sink.logs
    assert result.outputs == {"checkpoint": '{"page": 7}', "attempt": "2", "arg": "v 1", "file": "v 1"}
