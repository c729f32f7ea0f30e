"""The bare stack the hub is compared with, under the same gunicorn worker and settings.

``ws_echo``: a gevent-websocket echo of every frame on ``/robothub/{id}`` (no parsing).
``http_robot``: a falcon app answering ``register`` and ``heartbeat`` of A.2 with
constant envelopes (no database, no authentication).
"""

import json

import falcon


def ws_echo(environ, start_response):
    ws = environ.get("wsgi.websocket")
    if ws is None:
        start_response("200 OK", [("Content-Type", "application/json")])
        return [b'{"successful":true}']
    while True:
        message = ws.receive()
        if message is None:
            return []
        ws.send(message)


class _Register:
    def on_post(self, req, resp):
        req.get_media()
        resp.text = json.dumps({"successful": True, "resultHint": "",
                                "resultValue": {"robotConnectId": "bare", "licenseContent": ""}})


class _Heartbeat:
    def on_post(self, req, resp):
        req.get_media()
        resp.text = json.dumps({"successful": True, "resultHint": "", "resultValue": {"Action": "None", "Body": None}})


class _Health:
    def on_get(self, req, resp):
        resp.text = '{"successful":true}'


http_robot = falcon.App()
http_robot.add_route("/robots/connect/register", _Register())
http_robot.add_route("/robots/connect/heartbeat", _Heartbeat())
http_robot.add_route("/healthz", _Health())
