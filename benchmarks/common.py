"""What every benchmark needs: a hub or a bare server on loopback, its worker's CPU and
memory from /proc, and the fleet simulator as a subprocess."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from rpahub_core.testing import LiveHub, free_port

ROOT = Path(__file__).resolve().parent.parent
SECRET = "benchmark-secret-0123456789"
TICK = os.sysconf("SC_CLK_TCK")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    mem = int(next(line.split()[1] for line in open("/proc/meminfo") if line.startswith("MemTotal"))) // 1024 // 1024
    return f"{os.cpu_count()} cores ({cpu}), {mem} GiB, Python {platform.python_version()}, {platform.system()}"


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        out += [int(x) for x in text]
    return out


def worker_of(master: int, timeout: float = 20) -> int:
    """The single gunicorn worker under ``master`` (the process that serves)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        kids = children(master)
        if kids:
            return kids[0]
        time.sleep(0.1)
    raise RuntimeError("no gunicorn worker appeared")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_kb(pid: int) -> int:
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("VmRSS")))


def wait_healthy(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


class Hub:
    """The real hub (``rpahub serve``, one worker) with a supplier for the fleet."""

    def __init__(self, env: dict | None = None, worker_connections: int = 12000):
        self.dir = tempfile.mkdtemp(prefix="rpahub-bench-")
        env = {"RPAHUB_SERVER__WORKER_CONNECTIONS": str(worker_connections), "RPAHUB_LOG__LEVEL": "WARNING",
               **(env or {})}
        self.live = LiveHub(Path(self.dir) / "hub", env=env)

    def __enter__(self):
        self.live.start(timeout=60)
        self.url = self.live.url
        self.token = self.live.admin_token()
        status, body = self.live.call("POST", "/api/v1/suppliers", {"code": "bench", "secret": SECRET},
                                      token=self.token)
        assert status == 201, body
        self.worker = worker_of(self.live.proc.pid)
        return self

    def __exit__(self, *exc):
        self.live.stop()


class Bare:
    """A bare app of ``benchmarks/bare.py`` under gunicorn with the same worker class."""

    def __init__(self, app: str, worker_connections: int = 12000):
        self.app, self.port, self.worker_connections = app, free_port(), worker_connections
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker",
             "-w", "1", "--worker-connections", str(self.worker_connections), "-b", f"127.0.0.1:{self.port}",
             "--chdir", str(ROOT / "benchmarks"), "--log-level", "warning", f"bare:{self.app}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_healthy(self.url)
        self.worker = worker_of(self.proc.pid)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(15)


def fleet(url: str, *args: str, timeout: float = 900) -> dict:
    out = subprocess.run([sys.executable, "-m", "rpahub_contrib.fleet", "--hub", url, "--supplier", "bench",
                          "--json", "-", *args], capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, "RPAHUB_FLEET_SECRET": SECRET})
    if not out.stdout.strip():
        raise RuntimeError(out.stderr[-2000:])
    report = json.loads(out.stdout)
    report["stderr"] = out.stderr
    return report


def row(*cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
