"""One executor connection that sends frames one after another and waits, after each,
for the pong of a ping: so the server has taken in every frame before the next goes."""

from __future__ import annotations

import io
import json
import time
import urllib.request
import zipfile

import websocket

from rpahub_adapters.tces130 import proof

from .common import SECRET


def frame(action: str, body: dict | None) -> str:
    msg = {"action": action}
    if body is not None:
        msg["body"] = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return json.dumps(msg, separators=(",", ":"))


class Client:
    def __init__(self, url: str, robot_id: str):
        base = url.replace("http://", "ws://", 1)
        self.ws = websocket.create_connection(f"{base}/robothub/{robot_id}", timeout=30)
        self.robot_id = robot_id
        self.commands: list[dict] = []

    def register(self) -> None:
        self.send("Register", {"supplierCode": "bench", "supplierSecret": proof(SECRET, self.robot_id)})

    def send(self, action: str, body: dict | None) -> float:
        """Send one frame and a ping; return seconds until the pong."""
        t0 = time.perf_counter()
        self.ws.send(frame(action, body))
        self.ws.ping(b"p")
        while True:
            opcode, data = self.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_PONG:
                return time.perf_counter() - t0
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self.commands.append(json.loads(data.data))

    def wait_command(self, action: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for c in self.commands:
                if c.get("action") == action:
                    self.commands.remove(c)
                    return json.loads(c["body"]) if c.get("body") else {}
            self.ws.settimeout(max(0.1, deadline - time.monotonic()))
            opcode, data = self.ws.recv_data_frame(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_TEXT:
                self.commands.append(json.loads(data.data))
        raise TimeoutError(f"no {action} within {timeout}s")

    def close(self) -> None:
        self.ws.close()


def upload_package(url: str, token: str) -> str:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print('benchmark')\n")
    boundary = "benchBOUNDARY"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nbench\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"version\"\r\n\r\n{time.time_ns()}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"b.zip\"\r\n"
            f"Content-Type: application/zip\r\n\r\n").encode() + buf.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "/api/v1/packages", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())["resultValue"]["id"]


def running_client(hub, robot_id: str) -> tuple[Client, str]:
    """A registered connection with a run of its own, started."""
    c = Client(hub.url, robot_id)
    c.register()
    package = upload_package(hub.url, hub.token)
    status, body = hub.live.call("POST", "/api/v1/dispatch", {"packageId": package, "executorId": robot_id},
                                 token=hub.token)
    assert status == 201, body
    run_id = c.wait_command("Execute")["runInstanceId"]
    c.send("Heartbeat", {"runInstanceId": run_id})
    return c, run_id
