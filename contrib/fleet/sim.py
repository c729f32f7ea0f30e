"""Simulated executors over WebSocket (A.1) and HTTP (A.2).

Import this module only after ``gevent.monkey.patch_all()`` (the command line does it):
websocket-client and requests then yield to other greenlets instead of blocking a thread.

Latencies are measured the way an executor would notice them. Over HTTP: the round trip
of each request. Over WebSocket the standard has no replies, so each Register,
Heartbeat and ReportLogs frame is followed by a ping: the hub reads frames in order and
answers the ping only after it handled the frame, so the pong's delay is the time the
hub took to take the frame in (including its database write).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass
from urllib.parse import quote

import gevent
import requests
import websocket
from gevent.event import Event

from rpahub_adapters.tces130 import proof

from .report import Recorder

PING_TIMEOUT_S = 30.0


@dataclass
class Profile:
    hub: str = "http://127.0.0.1:8080"
    transport: str = "ws"
    count: int = 10
    supplier: str = "fleet"
    secret: str = ""
    prefix: str = "fleet"
    ramp_s: float = 5.0
    duration_s: float = 30.0
    heartbeat_s: float = 15.0
    run: bool = True  # answer Execute with logs, a checkpoint and a finish
    batches: int = 3  # ReportLogs messages per run
    records: int = 20  # records per ReportLogs
    record_bytes: int = 200  # content length of a record
    batch_every_s: float = 1.0
    seed: int = 1


def _encode(action: str, body: dict | None) -> str:
    msg = {"action": action}
    if body is not None:
        msg["body"] = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(msg, separators=(",", ":"))


def log_records(n: int, size: int, first: int) -> list[dict]:
    now = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    filler = ("模拟日志 simulated log line " * (size // 20 + 1))[:size]
    return [{"content": f"#{first + i} {filler}", "screenshot": None, "logAt": now, "logLevel": 0}
            for i in range(n)]


class Robot:
    """One simulated executor; ``main`` runs until the fleet's stop event is set."""

    def __init__(self, fleet: Fleet, robot_id: str):
        self.fleet, self.p, self.rec = fleet, fleet.profile, fleet.recorder
        self.robot_id = robot_id
        self.run_id: str | None = None
        self.run_greenlet: gevent.Greenlet | None = None

    def main(self) -> None:
        try:
            if not self.connect():
                return
            self.fleet.connected(+1)
            try:
                self.serve()
            finally:
                self.fleet.connected(-1)
        except Exception as exc:  # one robot's failure is counted, never stops the fleet
            self.rec.errors[f"{type(exc).__name__}: {str(exc)[:80]}"] += 1
            self.rec.disconnects += 1
        finally:
            self.close()

    def beat_wait(self) -> bool:
        """Sleep one heartbeat period (±10 %); False once the fleet stops."""
        return not self.fleet.stop.wait(self.p.heartbeat_s * random.uniform(0.9, 1.1))

    def execute(self, body: dict) -> None:
        run_id = body.get("runInstanceId")
        self.rec.executes.append({"runInstanceId": run_id, "robotId": self.robot_id, "at": time.time()})
        if not self.p.run or not run_id:
            return
        self.rec.runs_started += 1
        self.run_id = run_id
        self.run_greenlet = gevent.spawn(self.perform, run_id)

    def perform(self, run_id: str) -> None:
        status = 0
        try:
            for batch in range(self.p.batches):
                if self.fleet.stop.wait(self.p.batch_every_s):
                    return
                logs = log_records(self.p.records, self.p.record_bytes, batch * self.p.records)
                self.report("ReportLogs", {"runInstanceId": run_id, "logs": logs}, timed="reportLogs")
                self.report("ReportCheckpoint", {"runInstanceId": run_id,
                                                 "checkpoint": json.dumps({"batch": batch + 1})})
        except gevent.GreenletExit:
            status = 1  # stopped by the hub
        finally:
            if self.run_id == run_id and not self.fleet.stop.is_set():  # a run cut off by the end: no finish
                self.run_id = None
                try:
                    self.report("ReportFinish", {"runInstanceId": run_id, "status": status})
                    self.rec.runs_finished += 1
                except Exception as exc:
                    self.rec.errors[f"ReportFinish: {type(exc).__name__}"] += 1

    def stop_run(self) -> None:
        if self.run_greenlet is not None and not self.run_greenlet.dead:
            self.run_greenlet.kill(block=False)


class WsRobot(Robot):
    def __init__(self, fleet, robot_id):
        super().__init__(fleet, robot_id)
        base = self.p.hub.rstrip("/").replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        self.url = f"{base}/robothub/{quote(robot_id, safe='')}"
        self.ws: websocket.WebSocket | None = None
        self.pings: dict[bytes, tuple[float, str | None, Event]] = {}
        self.seq = 0
        self.registering = True
        self.refusal: str | None = None

    def connect(self) -> bool:
        self.ws = websocket.create_connection(self.url, timeout=PING_TIMEOUT_S, enable_multithread=True)
        self.reader = gevent.spawn(self.read)
        body = {"supplierCode": self.p.supplier, "supplierSecret": proof(self.p.secret, self.robot_id),
                "version": "fleet-1"}
        self.send("Register", body, timed="register", wait=True)
        self.registering = False
        if self.refusal:
            self.rec.refused += 1
            return False
        self.rec.registered += 1
        return True

    def serve(self) -> None:
        while self.beat_wait() and not self.reader.dead:
            self.send("Heartbeat", {"runInstanceId": self.run_id} if self.run_id else {}, timed="heartbeat")
        if self.reader.dead and not self.fleet.stop.is_set():
            self.rec.disconnects += 1

    def report(self, action, body, timed=None):
        self.send(action, body, timed=timed)

    def send(self, action: str, body: dict | None, timed: str | None = None, wait: bool = False) -> None:
        self.ws.send(_encode(action, body))
        self.rec.sent[action] += 1
        if timed:
            self.seq += 1
            key = str(self.seq).encode()
            done = Event()
            self.pings[key] = (time.perf_counter(), timed, done)
            self.ws.ping(key)
            if wait and not done.wait(PING_TIMEOUT_S):
                raise TimeoutError(f"no pong for {action} in {PING_TIMEOUT_S}s")

    def read(self) -> None:
        try:
            while True:
                opcode, frame = self.ws.recv_data_frame(control_frame=True)
                if opcode == websocket.ABNF.OPCODE_PONG:
                    sent = self.pings.pop(frame.data, None)
                    if sent:
                        self.rec.latency(sent[1], time.perf_counter() - sent[0])
                        sent[2].set()
                elif opcode == websocket.ABNF.OPCODE_TEXT:
                    self.on_command(json.loads(frame.data.decode("utf-8")))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    return
        except (OSError, websocket.WebSocketException):
            return
        finally:
            for _, _, done in self.pings.values():
                done.set()

    def on_command(self, msg: dict) -> None:
        action = msg.get("action")
        body = json.loads(msg["body"]) if isinstance(msg.get("body"), str) and msg["body"] else {}
        if action == "Execute":
            self.execute(body)
        elif action == "Stop":
            self.stop_run()
        elif action == "Error":
            code = body.get("errorCode")
            self.rec.hub_errors[str(code)] += 1
            if self.registering or code == 10000:
                self.refusal = f"{code}: {body.get('message')}"

    def close(self) -> None:
        ws, self.ws = self.ws, None
        if ws is not None:
            try:
                ws.send_close()
            except Exception:
                pass
            ws.shutdown()


class HttpRobot(Robot):
    def __init__(self, fleet, robot_id):
        super().__init__(fleet, robot_id)
        self.session = requests.Session()
        self.connect_id: str | None = None
        self.base = self.p.hub.rstrip("/") + "/robots/connect/"

    def post(self, path: str, body: dict, timed: str | None = None) -> dict:
        headers = {"robotId": self.robot_id}
        if self.connect_id:
            headers["robotConnectId"] = self.connect_id
        t0 = time.perf_counter()
        r = self.session.post(self.base + path, json=body, headers=headers, timeout=(10, 60))
        if timed:
            self.rec.latency(timed, time.perf_counter() - t0)
        self.rec.sent[path] += 1
        envelope = r.json() if r.headers.get("Content-Type", "").startswith("application/json") else {}
        if r.status_code >= 400:
            self.rec.hub_errors[f"HTTP {r.status_code} {path}"] += 1
            raise RuntimeError(f"{path}: HTTP {r.status_code} {envelope.get('resultHint', '')}"[:120])
        return envelope.get("resultValue") or {}

    def connect(self) -> bool:
        body = {"supplierCode": self.p.supplier, "supplierSecret": proof(self.p.secret, self.robot_id),
                "version": "fleet-1"}
        try:
            value = self.post("register", body, timed="register")
        except RuntimeError:
            self.rec.refused += 1
            return False
        self.connect_id = value.get("robotConnectId")
        self.rec.registered += 1
        return True

    def serve(self) -> None:
        while self.beat_wait():
            value = self.post("heartbeat", {"runInstanceId": self.run_id} if self.run_id else {}, timed="heartbeat")
            action = value.get("Action") or "None"
            if action == "Execute":
                self.execute(value.get("Body") or {})
            elif action == "Stop":
                self.stop_run()

    PATHS = {"ReportLogs": "reportLogs", "ReportFinish": "reportFinish", "ReportCheckpoint": "reportCheckpoint"}

    def report(self, action, body, timed=None):
        self.post(self.PATHS[action], body, timed=timed)

    def close(self) -> None:
        self.session.close()


class Fleet:
    def __init__(self, profile: Profile):
        self.profile = profile
        self.recorder = Recorder()
        self.stop = Event()
        self.now_connected = 0
        self.peak = 0

    def connected(self, delta: int) -> None:
        self.now_connected += delta
        self.peak = max(self.peak, self.now_connected)

    def run(self) -> dict:
        p = self.profile
        random.seed(p.seed)
        kind = WsRobot if p.transport == "ws" else HttpRobot
        started = time.perf_counter()
        robots = []
        for i in range(p.count):
            robots.append(gevent.spawn(kind(self, f"{p.prefix}-{i:05d}").main))
            if p.ramp_s > 0 and p.count > 1:
                gevent.sleep(p.ramp_s / p.count)
        gevent.sleep(max(0.0, p.ramp_s + p.duration_s - (time.perf_counter() - started)))
        self.stop.set()
        gevent.joinall(robots, timeout=30)
        gevent.killall([g for g in robots if not g.dead], block=False)
        config = {k: v for k, v in asdict(p).items() if k != "secret"}
        return self.recorder.report(config=config, elapsed_s=time.perf_counter() - started, peak_connected=self.peak)
