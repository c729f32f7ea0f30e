"""The built-in ``local`` cloud provider: image instances as processes on this machine.

* An **executor** image starts the reference executor (``python -m
  rpahub_contrib.executor.cli``) with robot id ``img-<instance id>``, admitted through a
  supplier whose generated secret is stored encrypted; the spec's labels and slots are
  set on its executor row before it registers. Spawning and admission are the autoscale
  plugin's local provider's, reused as they are (secrets in the environment, never argv;
  only the ``ENV_KEEP`` variables inherited).
* A **designer** image starts :mod:`rpahub_contrib.designer` on a free loopback port and,
  when the ``designers`` plugin is loaded, registers it as a designer with that endpoint
  (its registration secret goes to the child's environment) and deregisters it on recycle.

The image file itself is kept by the hub for download and version control; a local
process does not boot it (a VM provider would). Children live and die with the hub
process. ``describe`` reads ``/proc``, so any worker of the hub on this host answers for
an instance another worker started (the pid is checked against the instance id in its
command line, so a reused pid is never mistaken for it).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rpahub_core import db as hubdb
from rpahub_plugins.autoscale.local import ENV_KEEP, LocalProvider
from rpahub_plugins.executors.models import Executor

log = logging.getLogger("rpahub.images.local")

DESIGNER_SECRET_ENV = "RPAHUB_DESIGNER_SECRET"


@dataclass
class Child:
    instance_id: str
    kind: str
    proc: subprocess.Popen
    terminated: bool = False


def robot_id_of(instance_id: str) -> str:
    return f"img-{instance_id}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCloud:
    name = "local"

    def __init__(self, hub, settings: dict):
        self.hub = hub
        self.settings = settings
        self.python = settings.get("local_python") or sys.executable
        self.hub_url = (settings.get("local_hub_url") or hub.settings.public_url).rstrip("/")
        self.folder = hub.settings.path(settings.get("local_folder", "images"))
        self.stop_grace_s = float(settings.get("stop_grace_s", 10))
        self.host = socket.gethostname()
        self.children: dict[str, Child] = {}
        self._lock = threading.RLock()

    # -- the provider contract ---------------------------------------------------------

    def start(self, instance) -> dict:
        with self._lock:
            if instance.image.kind == "executor":
                return self._start_executor(instance)
            return self._start_designer(instance)

    def stop(self, instance) -> None:
        with self._lock:
            child = self.children.get(instance.id)
            if child is not None:
                if child.proc.poll() is None and not child.terminated:
                    child.proc.send_signal(signal.SIGTERM)
                    threading.Thread(target=self._kill_later, args=(child,), daemon=True).start()
                child.terminated = True
            else:
                pid = self._pid_of(instance)
                if pid:  # started by another worker of this hub on this host
                    os.kill(pid, signal.SIGTERM)
        designer_id = (instance.info or {}).get("designerId")
        if designer_id:
            self._deregister(designer_id)

    def describe(self, instance) -> dict:
        info = {"host": self.host, "provider": self.name}
        child = self.children.get(instance.id)
        if child is not None:
            code = child.proc.poll()
            pid = child.proc.pid
            if code is not None:
                return {**info, "pid": pid, "exitCode": code,
                        "state": "stopped" if child.terminated or code == 0 else "failed"}
        else:
            pid = self._pid_of(instance)
            if not pid:
                return {"state": "stopped"}
        out = {**info, "pid": pid, **proc_usage(pid), "state": "running"}
        if instance.image.kind == "executor":
            executor = Executor.get_or_none(Executor.id == robot_id_of(instance.id))
            out["executorState"] = executor.state if executor else "unknown"
            out["robotId"] = robot_id_of(instance.id)
            if out["executorState"] == "offline":
                out["state"] = "starting"  # the process runs; the executor has not registered yet
        else:
            endpoint = (instance.info or {}).get("endpoint")
            out["endpoint"] = endpoint
            if endpoint and not healthy(endpoint):
                out["state"] = "starting"
        return out

    def stop_all(self, wait_s: float = 5.0) -> None:
        """Stop every child (the hub process is going away)."""
        with self._lock:
            for child in self.children.values():
                if child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + wait_s
            while any(c.proc.poll() is None for c in self.children.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
            for child in self.children.values():
                if child.proc.poll() is None:
                    child.proc.kill()
                    child.proc.wait(5)
            self.children.clear()

    # -- executors ------------------------------------------------------------------------

    def _launcher(self, spec: dict) -> LocalProvider:
        return LocalProvider(self.hub, {
            "local_supplier": self.settings.get("local_supplier", "images-local"),
            "local_python": self.python, "local_transport": spec.get("transport", "ws"),
            "local_hub_url": self.hub_url, "local_heartbeat_s": self.settings.get("local_heartbeat_s"),
            "local_folder": str(self.folder), "local_env": self.settings.get("local_env") or {}})

    def _start_executor(self, instance) -> dict:
        spec = instance.image.spec
        launcher = self._launcher(spec)
        robot_id = robot_id_of(instance.id)
        secret = launcher._supplier_secret()
        labels = json.dumps(sorted(set(spec.get("labels", []))), ensure_ascii=False)
        with hubdb.atomic():  # registration keeps what is set here
            if not Executor.update(labels=labels, slots=spec.get("slots", 1)).where(
                    Executor.id == robot_id).execute():
                Executor.create(id=robot_id, supplier=launcher.supplier, labels=labels, slots=spec.get("slots", 1))
        proc = launcher._spawn(robot_id, secret)
        self.children[instance.id] = Child(instance.id, "executor", proc)
        log.info("started executor %s (pid %d) from image %s", robot_id, proc.pid, instance.image.name)
        return {"state": "starting", "host": self.host, "pid": proc.pid, "robotId": robot_id,
                "supplier": launcher.supplier, "log": str(self.folder / "logs" / f"{robot_id}.log")}

    # -- designers ------------------------------------------------------------------------

    def _start_designer(self, instance) -> dict:
        spec = instance.image.spec
        port = free_port()
        endpoint = f"http://127.0.0.1:{port}"
        name = f"{instance.image.name}-{instance.id[:8]}"
        designer_id, secret = self._register(instance, name, endpoint, spec)
        env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
        env.update({str(k): str(v) for k, v in (self.settings.get("local_env") or {}).items()})
        if secret:
            env[DESIGNER_SECRET_ENV] = secret
        logs = self.folder / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        command = [self.python, "-m", "rpahub_contrib.designer", "--hub", self.hub_url, "--port", str(port),
                   "--name", name, "--instance-id", instance.id]
        try:
            with open(logs / f"designer-{instance.id}.log", "ab") as out:
                proc = subprocess.Popen(command, env=env, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT)
        except OSError:
            if designer_id:
                self._deregister(designer_id)
            raise
        self.children[instance.id] = Child(instance.id, "designer", proc)
        log.info("started designer %s (pid %d) at %s", name, proc.pid, endpoint)
        return {"state": "starting", "host": self.host, "pid": proc.pid, "endpoint": endpoint,
                "designerId": designer_id, "designerName": name}

    def _register(self, instance, name: str, endpoint: str, spec: dict) -> tuple[str | None, str | None]:
        if self.hub.pm.get_plugin("designers") is None:
            return None, None  # it runs, but no one can lease it: only registered designers are used
        from rpahub_plugins.designers import designers

        designer, secret = designers(self.hub).register(
            name=name, vendor=spec.get("vendor", "rpahub"), version=spec.get("version", ""), endpoint=endpoint,
            capacity=int(spec.get("capacity", 1)), registered_by=f"image:{instance.image.name}",
            instance_id=instance.id)
        return designer.id, secret

    def _deregister(self, designer_id: str) -> None:
        if self.hub.pm.get_plugin("designers") is None:
            return
        from rpahub_core.errors import NotFound
        from rpahub_plugins.designers import designers

        try:
            designers(self.hub).deregister(designer_id, force=True, by="images")
        except NotFound:
            pass  # deregistered by hand already

    # -- processes --------------------------------------------------------------------------

    def _kill_later(self, child: Child) -> None:
        try:
            child.proc.wait(self.stop_grace_s)
        except subprocess.TimeoutExpired:
            log.warning("instance %s ignored SIGTERM for %.0fs: killing it", child.instance_id, self.stop_grace_s)
            child.proc.kill()

    def _pid_of(self, instance) -> int | None:
        """The instance's process on this host, if it still runs (not one that reused its pid)."""
        info = instance.info or {}
        pid = info.get("pid")
        if not pid or info.get("host", self.host) != self.host:
            return None
        try:
            cmdline = Path(f"/proc/{int(pid)}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return None
        marker = robot_id_of(instance.id) if instance.image.kind == "executor" else instance.id
        return int(pid) if marker.encode() in cmdline else None


def healthy(endpoint: str) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(endpoint + "/healthz", timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def proc_usage(pid: int) -> dict:
    """CPU and memory of a process from ``/proc`` (empty where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        status = Path(f"/proc/{pid}/status").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return {}
    ticks = os.sysconf("SC_CLK_TCK")
    cpu_s = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    age_s = max(uptime - int(fields[19]) / ticks, 1e-3)  # starttime
    rss_kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    return {"cpu": round(100 * cpu_s / age_s, 1), "cpuSeconds": round(cpu_s, 2), "memoryMb": round(rss_kb / 1024, 1),
            "uptimeS": round(age_s, 1)}
