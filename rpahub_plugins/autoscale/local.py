"""The built-in ``local`` provider: reference executors as processes on this machine.

The provider interface
----------------------
A provider is any plugin implementing ``rpahub_scale_pool(pool, desired, hub)``; a
cloud provider (VM images, containers, a vendor's robot farm) implements the same:

* ``pool`` has ``name``, ``provider``, ``min`` and ``max``. Answer ``None`` unless
  ``pool.provider`` is your name, so every provider is asked and only one acts.
* Bring the executors *you* run for the pool towards ``desired`` and return how many
  exist now (starting ones included). The autoscaler calls you on every tick with the
  pool's size even when it does not change: reconcile (replace what died), be
  idempotent, never block long (start and stop asynchronously; report what you have).
* Make each new executor a member of the pool (``PoolMember``) so dispatch can use it
  once it registers, admitted through a supplier whose secret you hold.
* When shrinking, stop only executors that hold no run (no ``RunInstance`` in an
  active state), and take them out of the pool before stopping them.
* Name the provider in ``[plugins.autoscale] providers`` so policies may choose it.

This provider starts ``python -m rpahub_contrib.executor.cli`` per executor, with
robot ids ``<pool>-auto-<n>``, admitted through a supplier it creates with a generated
secret (stored encrypted; the child gets it in its environment, never its argv).
Shrinking is a drain: the executor leaves the pool first, and is sent SIGTERM only
``drain_s`` later and only if it still holds no run, so a placement made just before
it left cannot be cut short. Its executors live and die with the hub process.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from rpahub_contrib.executor.cli import SECRET_ENV
from rpahub_core import db as hubdb
from rpahub_plugins.dispatch.models import PoolMember
from rpahub_plugins.executors.gateway import ACTIVE_STATES
from rpahub_plugins.executors.models import RunInstance, Supplier

log = logging.getLogger("rpahub.autoscale.local")

# What a child inherits: enough to run Python, nothing of the hub's configuration
# (RPAHUB_* may hold the database password, and packages see the executor's environment).
ENV_KEEP = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "TEMP", "TMP", "SYSTEMROOT",
            "PYTHONPATH", "VIRTUAL_ENV")


@dataclass
class Child:
    robot_id: str
    pool: str
    proc: subprocess.Popen
    draining_since: float | None = None  # left the pool at (monotonic)
    terminated_at: float | None = None  # SIGTERM sent at (monotonic)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    @property
    def serving(self) -> bool:
        return self.draining_since is None and self.alive


class LocalProvider:
    name = "local"

    def __init__(self, hub, settings: dict):
        self.hub = hub
        self.supplier = settings.get("local_supplier", "autoscale-local")
        self.python = settings.get("local_python") or sys.executable
        self.transport = settings.get("local_transport", "ws")
        self.hub_url = (settings.get("local_hub_url") or hub.settings.public_url).rstrip("/")
        # The period the hub advertises, so the hub notices a lost local executor as soon as any other.
        self.heartbeat_s = float(settings.get("local_heartbeat_s")
                                 or hub.settings.plugin("executors").get("heartbeat_s", 15))
        self.folder = hub.settings.path(settings.get("local_folder", "autoscale"))
        self.drain_s = float(settings.get("drain_s", 2.0))
        self.stop_grace_s = float(settings.get("stop_grace_s", 20.0))
        self.restart_delay_s = float(settings.get("restart_delay_s", 5.0))
        self.extra_env = {str(k): str(v) for k, v in (settings.get("local_env") or {}).items()}
        self.children: dict[str, Child] = {}
        self._crashed_at: dict[str, float] = {}  # pool -> when one of its executors last died on its own
        self._lock = threading.RLock()  # the ticker and shutdown may meet

    # -- the hook -------------------------------------------------------------------

    def scale(self, pool, desired: int) -> int:
        with self._lock:
            self._reap()
            self._forget_strays(pool.name)
            serving = self._serving(pool.name)
            if len(serving) < desired:
                self._grow(pool.name, desired - len(serving))
            elif len(serving) > desired:
                self._drain(serving, len(serving) - desired)
            self._stop_drained()
            return len(self._serving(pool.name))

    def housekeep(self) -> None:
        """Reap exited children and stop drained ones, whatever pool they served.

        ``scale`` does this too, but only for pools that still have a policy: a child
        draining out of a deleted pool (or one whose policy was disabled) is only ever
        stopped here, which the autoscaler calls on every evaluation.
        """
        with self._lock:
            self._reap()
            self._stop_drained()

    def _serving(self, pool: str) -> list[Child]:
        return [c for c in self.children.values() if c.pool == pool and c.serving]

    # -- growing ----------------------------------------------------------------------

    def _grow(self, pool: str, count: int) -> None:
        # An executor still draining is cheaper to keep than a new one to start.
        for child in [c for c in self.children.values() if c.pool == pool and c.alive
                      and c.draining_since is not None and c.terminated_at is None][:count]:
            with hubdb.atomic():
                PoolMember.insert(pool=pool, executor_id=child.robot_id).on_conflict_ignore().execute()
            child.draining_since = None
            count -= 1
        # Not straight after a death: an executor that cannot start must not be respawned every
        # tick, and one killed by a signal to the hub's process group is going down with the hub.
        crashed = self._crashed_at.get(pool)
        if count <= 0 or (crashed is not None and time.monotonic() - crashed < self.restart_delay_s):
            return
        secret = self._supplier_secret()
        for _ in range(count):
            robot_id = self._free_id(pool)
            with hubdb.atomic():
                PoolMember.insert(pool=pool, executor_id=robot_id).on_conflict_ignore().execute()
            try:
                proc = self._spawn(robot_id, secret)
            except OSError as exc:
                log.error("cannot start executor %s: %s", robot_id, exc)
                with hubdb.atomic():
                    PoolMember.delete().where((PoolMember.pool == pool) & (PoolMember.executor_id == robot_id)).execute()
                return
            self.children[robot_id] = Child(robot_id, pool, proc)
            log.info("started executor %s (pid %d) for pool %s", robot_id, proc.pid, pool)

    def _free_id(self, pool: str) -> str:
        taken = {c.robot_id for c in self.children.values()}  # alive ones, draining or not
        n = 1
        while f"{pool}-auto-{n}" in taken:
            n += 1
        return f"{pool}-auto-{n}"

    def _spawn(self, robot_id: str, secret: str) -> subprocess.Popen:
        workdir = self.folder / robot_id
        logs = self.folder / "logs"
        workdir.mkdir(parents=True, exist_ok=True)
        logs.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in ENV_KEEP if k in os.environ}
        env.update(self.extra_env)
        env[SECRET_ENV] = secret
        command = [self.python, "-m", "rpahub_contrib.executor.cli", "--hub", self.hub_url,
                   "--transport", self.transport, "--robot-id", robot_id, "--supplier", self.supplier,
                   "--heartbeat", f"{self.heartbeat_s:g}", "--workdir", str(workdir)]
        with open(logs / f"{robot_id}.log", "ab") as out:
            return subprocess.Popen(command, env=env, cwd=self.folder, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT)

    def _supplier_secret(self) -> str:
        """The clear secret of this provider's supplier, admitting the supplier on first use."""
        with hubdb.atomic():
            supplier = Supplier.get_or_none(Supplier.code == self.supplier)
            if supplier is not None:
                return self.hub.keys.decrypt(supplier.secret_enc)
            secret = secrets.token_urlsafe(32)
            Supplier.create(code=self.supplier, name="Autoscaled local executors", adapter="tces130",
                            secret_enc=self.hub.keys.encrypt(secret))
            self.hub.audit("supplier.create", target=self.supplier, detail={"via": "autoscale", "adapter": "tces130"},
                           source="autoscale")
            return secret

    # -- shrinking --------------------------------------------------------------------

    def _drain(self, serving: list[Child], count: int) -> None:
        """Take ``count`` executors without a run out of the pool, newest first."""
        busy = self._busy([c.robot_id for c in serving])
        idle = sorted((c for c in serving if c.robot_id not in busy), key=lambda c: self._number(c.robot_id),
                      reverse=True)
        for child in idle[:count]:
            with hubdb.atomic():
                if self._busy([child.robot_id]):  # placed meanwhile: keep it
                    continue
                PoolMember.delete().where((PoolMember.pool == child.pool)
                                          & (PoolMember.executor_id == child.robot_id)).execute()
            child.draining_since = time.monotonic()
            log.info("executor %s leaves pool %s", child.robot_id, child.pool)

    def _stop_drained(self) -> None:
        now = time.monotonic()
        for child in list(self.children.values()):
            if child.terminated_at is not None:
                if child.alive and now - child.terminated_at > self.stop_grace_s:
                    log.warning("executor %s ignored SIGTERM for %.0fs: killing it", child.robot_id, self.stop_grace_s)
                    child.proc.kill()
                continue
            if child.draining_since is None or now - child.draining_since < self.drain_s:
                continue
            if self._busy([child.robot_id]):
                continue  # a run reached it before it left the pool: stop it once that run ends
            child.proc.send_signal(signal.SIGTERM)
            child.terminated_at = now
            log.info("stopping idle executor %s (pid %d)", child.robot_id, child.proc.pid)

    def _busy(self, robot_ids: list[str]) -> set[str]:
        if not robot_ids:
            return set()
        return {r.executor_id for r in RunInstance.select(RunInstance.executor_id).where(
            RunInstance.executor_id.in_(robot_ids) & RunInstance.state.in_(ACTIVE_STATES))}

    @staticmethod
    def _number(robot_id: str) -> int:
        return int(robot_id.rsplit("-", 1)[1])

    # -- bookkeeping ------------------------------------------------------------------

    def _reap(self) -> None:
        for robot_id, child in list(self.children.items()):
            code = child.proc.poll()
            if code is None:
                continue
            del self.children[robot_id]
            if child.terminated_at is None:
                log.warning("executor %s exited unexpectedly with status %s", robot_id, code)
                self._crashed_at[child.pool] = time.monotonic()
                with hubdb.atomic():  # it is replaced under a fresh membership
                    PoolMember.delete().where((PoolMember.pool == child.pool)
                                              & (PoolMember.executor_id == robot_id)).execute()

    def _forget_strays(self, pool: str) -> None:
        """Members named like ours that no child of this process answers to (a previous run of the hub)."""
        pattern = re.compile(rf"{re.escape(pool)}-auto-\d+")
        strays = [m.executor_id for m in PoolMember.select(PoolMember.executor_id).where(PoolMember.pool == pool)
                  if pattern.fullmatch(m.executor_id) and m.executor_id not in self.children]
        if strays:
            with hubdb.atomic():
                PoolMember.delete().where((PoolMember.pool == pool) & PoolMember.executor_id.in_(strays)).execute()

    def stop_all(self, wait_s: float = 5.0) -> None:
        """Stop every child (the hub is going away or another process now scales)."""
        with self._lock:
            for child in self.children.values():
                if child.alive:
                    child.proc.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + wait_s
            while any(c.alive for c in self.children.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
            for child in self.children.values():
                if child.alive:
                    child.proc.kill()
                    child.proc.wait(5)
            self.children.clear()
