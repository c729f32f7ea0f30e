"""Alerts (6.3.1b): rules fire once when their condition starts, remind no more often than their
cooldown, resolve when it clears, and reach people through the notifiers of ``rpahub_notifiers``
(built in: a signed webhook and SMTP e-mail), retrying failed deliveries."""

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import io
import json
import logging
import socketserver
import threading
import zipfile
from types import SimpleNamespace

import pytest
from falcon import testing

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.db import utcnow
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import ADMIN_PASSWORD, bearer, make_app, plugin_manager, wait_for
from rpahub_plugins.auth_local.models import User
from rpahub_plugins.auth_local.passwords import hash_password
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Executor, RunInstance, Supplier
from rpahub_plugins.ops import alerts
from rpahub_plugins.ops.models import AlertEvent, AlertRule

SECRET = "alerts-secret-0123456789"
HOOK_SECRET = "hook-signing-key"
SMTP_PASSWORD = "smtp-Pa55-never-logged"


# -- a webhook receiver and an SMTP sink, both real servers on loopback -------------------


class Receiver:
    """An HTTP server in a thread recording each POST; ``fail`` answers the next ones with 500."""

    def __init__(self):
        self.received, self.fail = [], 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail:
                    outer.fail -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                outer.received.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def notes(self):
        return [json.loads(r["body"]) for r in self.received]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """Just enough SMTP (EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT) to receive what the hub sends."""

    def __init__(self):
        self.messages, self.logins = [], []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, text):
                self.wfile.write(text.encode() + b"\r\n")

            def handle(self):
                self.reply("220 sink ready")
                sender, rcpts = None, []
                while True:
                    line = self.rfile.readline().decode().rstrip("\r\n")
                    verb = line.split(" ", 1)[0].upper()
                    if not line or verb == "QUIT":
                        self.reply("221 bye")
                        return
                    if verb in ("EHLO", "HELO"):
                        self.reply("250-sink")
                        self.reply("250 AUTH PLAIN")
                    elif verb == "AUTH":
                        # AUTH PLAIN <base64 of "\0user\0password">
                        _, user, password = base64.b64decode(line.split()[2]).decode().split("\0")
                        outer.logins.append((user, password))
                        self.reply("235 ok")
                    elif verb == "MAIL":
                        sender = line.split(":", 1)[1].strip()
                        self.reply("250 ok")
                    elif verb == "RCPT":
                        rcpts.append(line.split(":", 1)[1].strip())
                        self.reply("250 ok")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = []
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data.append(chunk)
                        outer.messages.append({"from": sender, "to": rcpts, "data": b"".join(data).decode()})
                        rcpts = []
                        self.reply("250 queued")
                    else:
                        self.reply("250 ok")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def smtp():
    s = SmtpSink()
    yield s
    s.close()


class Desk:
    """A hub whose alerts are evaluated by hand, with rows made through the executors services."""

    def __init__(self, app):
        self.app, self.hub = app, app.hub
        self.ex = state(app.hub)
        self.alerts = alerts(app.hub)
        self.client = testing.TestClient(app)
        with hubdb.connection():
            User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).execute()
            Supplier.create(code="v", secret_enc=self.hub.keys.encrypt(SECRET))
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("main.py", "print(1)")
            self.package = self.ex.runs.add_package(name="p", version="1", data=buf.getvalue(), created_by="t")
        self.token = self.client.simulate_post("/api/v1/auth/login", json={
            "username": "admin", "password": ADMIN_PASSWORD}).json["resultValue"]["token"]

    def call(self, method, path, body=None, token=None, **params):
        return self.client.simulate_request(method, path, json=body, params=params or None,
                                            headers=bearer(token or self.token))

    def rule(self, **body):
        r = self.call("POST", "/api/v1/ops/alert-rules", {"name": body.pop("name", body["kind"]), **body})
        assert r.status_code == 201, r.json
        return r.json["resultValue"]

    def evaluate(self):
        with hubdb.connection():
            return [(e.rule_name, e.state, e.repeat) for e in self.alerts.evaluate()]

    def finished_runs(self, states, minutes_ago=1):
        with hubdb.connection():
            for s in states:
                run = self.ex.runs.create(package=self.package, arguments=[], user_id="u", user_name="t")
                RunInstance.update(state=s, executor_id="r1", finished_at=utcnow() - dt.timedelta(minutes=minutes_ago)
                                   ).where(RunInstance.id == run.id).execute()


@pytest.fixture
def desk(tmp_path, database_url, smtp):
    app = make_app(tmp_path / "home", database_url, plugins={"ops": {
        "webhook_secret": HOOK_SECRET, "webhook_timeout_s": 2, "smtp_host": "127.0.0.1", "smtp_port": smtp.port,
        "smtp_user": "alerts@example.com", "smtp_password": SMTP_PASSWORD, "smtp_from": "hub@example.com"}})
    yield Desk(app)
    app.hub.close()


# -- the four kinds, each from real rows ---------------------------------------------------


def test_failure_rate_fires_once_signs_the_webhook_and_resolves(desk, receiver):
    rule = desk.rule(kind="failure_rate", threshold=50, windowMinutes=15, severity="critical",
                     filters={"minRuns": 3}, channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed", "success"])
    assert desk.evaluate() == []  # two runs: too few to judge
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    assert desk.evaluate() == []  # still failing: no second notification inside the cooldown

    [hit] = receiver.received
    expected = hmac.new(HOOK_SECRET.encode(), hit["body"], hashlib.sha256).hexdigest()
    assert hit["headers"]["X-Rpahub-Signature"] == f"sha256={expected}"
    note = json.loads(hit["body"])
    assert note["state"] == "firing" and note["severity"] == "critical" and note["rule"] == "failure_rate"
    assert "66.67%" in note["text"] and "2 of 3 runs failed" in note["text"]
    assert note["labels"]["ruleId"] == rule["id"] and note["labels"]["value"] == 66.67

    alerts_now = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]
    assert [f["rule"]["name"] for f in alerts_now["firing"]] == ["failure_rate"]
    assert alerts_now["firing"][0]["event"]["deliveries"][0]["ok"] is True

    with hubdb.connection():  # the failures age out of the window
        RunInstance.update(finished_at=utcnow() - dt.timedelta(hours=1)).execute()
    assert desk.evaluate() == [("failure_rate", "resolved", False)]
    assert receiver.notes()[-1]["state"] == "resolved"
    history = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]
    assert history["firing"] == [] and [e["state"] for e in history["history"]["items"]] == ["resolved", "firing"]
    assert desk.evaluate() == []


def test_executor_offline_fires_by_email_and_resolves_when_it_returns(desk, smtp, caplog):
    caplog.set_level(logging.DEBUG)
    desk.rule(kind="executor_offline", threshold=1, windowMinutes=5, name="robots down",
              channels=[{"notifier": "email", "target": "ops@example.com, lead@example.com"}])
    session = ExecutorSession("r-7", "http")
    with hubdb.connection():
        desk.ex.gateway.register(session, {"supplierCode": "v", "supplierSecret": proof(SECRET, "r-7")})
    assert desk.evaluate() == []
    with hubdb.connection():  # silent for ten minutes: the reaper marked it offline
        Executor.update(state="offline", last_heartbeat=utcnow() - dt.timedelta(minutes=10)).execute()
    assert desk.evaluate() == [("robots down", "firing", False)]
    [mail] = smtp.messages
    assert mail["to"] == ["<ops@example.com>", "<lead@example.com>"] and mail["from"] == "<hub@example.com>"
    assert "Subject: [warning] FIRING: robots down" in mail["data"] and "r-7" in mail["data"]
    assert smtp.logins == [("alerts@example.com", SMTP_PASSWORD)]
    with hubdb.connection():
        desk.ex.gateway.register(ExecutorSession("r-7", "http"),
                                 {"supplierCode": "v", "supplierSecret": proof(SECRET, "r-7")})
    assert desk.evaluate() == [("robots down", "resolved", False)]
    assert "RESOLVED: robots down" in smtp.messages[-1]["data"]
    assert SMTP_PASSWORD not in caplog.text
    r = desk.call("GET", "/api/v1/plugins")  # nor anywhere the hub shows its settings
    assert SMTP_PASSWORD not in json.dumps(r.json)


def test_queue_wait_fires_for_a_run_waiting_too_long_and_resolves_once_placed(desk, receiver):
    from rpahub_plugins.dispatch import dispatcher
    from rpahub_plugins.dispatch.models import QueueEntry

    desk.rule(kind="queue_wait", threshold=10, channels=[{"notifier": "webhook", "target": receiver.url}])
    with hubdb.connection():
        run = dispatcher(desk.hub).submit(package_id=desk.package.id, user_id="u", user_name="t")
    assert desk.evaluate() == []
    with hubdb.connection():
        QueueEntry.update(enqueued_at=utcnow() - dt.timedelta(minutes=25),
                          not_before=utcnow() - dt.timedelta(minutes=25)).execute()
    assert desk.evaluate() == [("queue_wait", "firing", False)]
    assert run.id in receiver.notes()[0]["text"] and receiver.notes()[0]["labels"]["oldestRunId"] == run.id
    with hubdb.connection():
        desk.ex.gateway.register(ExecutorSession("r1", "http"),
                                 {"supplierCode": "v", "supplierSecret": proof(SECRET, "r1")})
        assert dispatcher(desk.hub).tick() == 1
    assert desk.evaluate() == [("queue_wait", "resolved", False)]


def test_licence_expiry_fires_until_the_licence_is_renewed(desk, receiver):
    desk.rule(kind="licence_expiry", threshold=7, channels=[{"notifier": "webhook", "target": receiver.url}],
              filters={"supplier": "v"})
    with hubdb.connection():
        desk.ex.licences.issue(supplier="v", robot_id="r1", days=3)
        desk.ex.licences.issue(supplier="v", robot_id="r2", days=90)
    assert desk.evaluate() == [("licence_expiry", "firing", False)]
    assert "r1" in receiver.notes()[0]["text"] and "r2" not in receiver.notes()[0]["text"]
    with hubdb.connection():
        desk.ex.licences.issue(supplier="v", robot_id="r1", days=365)
    assert desk.evaluate() == [("licence_expiry", "resolved", False)]


# -- cooldown, retries, disabled rules ---------------------------------------------------------


def test_a_firing_rule_reminds_no_more_often_than_its_cooldown(desk, receiver):
    rule = desk.rule(kind="failure_rate", threshold=50, cooldownMinutes=30,
                     channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    with hubdb.connection():
        AlertRule.update(notified_at=utcnow() - dt.timedelta(minutes=29)).execute()
    assert desk.evaluate() == []
    with hubdb.connection():
        AlertRule.update(notified_at=utcnow() - dt.timedelta(minutes=31)).execute()
    assert desk.evaluate() == [("failure_rate", "firing", True)]
    assert desk.evaluate() == []
    assert [n["labels"]["repeat"] for n in receiver.notes()] == [False, True]
    # cooldown 0: only the start and the end
    desk.call("PATCH", f"/api/v1/ops/alert-rules/{rule['id']}", {"cooldownMinutes": 0})
    with hubdb.connection():
        AlertRule.update(notified_at=utcnow() - dt.timedelta(days=1)).execute()
    assert desk.evaluate() == []


def test_a_failed_delivery_is_recorded_and_retried_on_the_next_evaluation(desk, receiver, smtp):
    desk.rule(kind="failure_rate", threshold=10, channels=[
        {"notifier": "webhook", "target": receiver.url}, {"notifier": "email", "target": "ops@example.com"}])
    receiver.fail = 1
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    event = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["history"]["items"][0]
    hook, mail = event["deliveries"]
    assert (hook["ok"], hook["attempts"], mail["ok"]) == (False, 1, True)
    assert "HTTP 500" in hook["error"] and event["pending"] is True
    assert desk.evaluate() == []  # nothing new, but the webhook is tried again
    event = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["history"]["items"][0]
    assert [(d["ok"], d["attempts"]) for d in event["deliveries"]] == [(True, 2), (True, 1)]
    assert event["pending"] is False and len(receiver.received) == 1 and len(smtp.messages) == 1


def test_an_unreachable_channel_never_stops_the_evaluation(desk, receiver):
    desk.rule(kind="failure_rate", threshold=10, name="a-dead",
              channels=[{"notifier": "webhook", "target": "http://127.0.0.1:9/nobody"}])
    desk.rule(kind="failure_rate", threshold=10, name="b-alive",
              channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("a-dead", "firing", False), ("b-alive", "firing", False)]
    assert len(receiver.received) == 1
    with hubdb.connection():
        dead = AlertEvent.get(AlertEvent.rule_name == "a-dead")
    assert dead.pending and "unreachable" in json.loads(dead.deliveries)[0]["error"]
    with hubdb.connection():  # attempts run out: recorded, no longer retried
        for _ in range(6):
            desk.alerts.retry_pending()
        dead = AlertEvent.get(AlertEvent.rule_name == "a-dead")
    assert not dead.pending and json.loads(dead.deliveries)[0]["attempts"] == 5


def test_disabling_a_firing_rule_resolves_it(desk, receiver):
    rule = desk.rule(kind="failure_rate", threshold=10, channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    desk.evaluate()
    desk.call("PATCH", f"/api/v1/ops/alert-rules/{rule['id']}", {"enabled": False})
    assert desk.evaluate() == [("failure_rate", "resolved", False)]
    assert "disabled" in receiver.notes()[-1]["text"]
    assert desk.evaluate() == []


# -- the API ---------------------------------------------------------------------------------


def test_rules_api_validates_naming_the_field_and_needs_its_permissions(desk, receiver):
    good = {"name": "slow queue", "kind": "queue_wait", "threshold": 5,
            "channels": [{"notifier": "webhook", "target": receiver.url}]}
    for change, field in (({"kind": "weather"}, "kind"), ({"threshold": 150, "kind": "failure_rate"}, "threshold"),
                          ({"channels": [{"notifier": "pager", "target": "x"}]}, "channels[0].notifier"),
                          ({"channels": [{"notifier": "webhook", "target": "ftp://x"}]}, "channels[0].target"),
                          ({"channels": [{"notifier": "email", "target": "not-an-address"}]}, "channels[0].target"),
                          ({"filters": {"appId": "a1"}}, "filters.appId"), ({"severity": "meh"}, "severity"),
                          ({"windowMinutes": 0}, "windowMinutes"), ({"colour": "red"}, "colour")):
        r = desk.call("POST", "/api/v1/ops/alert-rules", {**good, **change})
        assert r.status_code == 400 and field in r.json["resultHint"], (change, r.json)
    created = desk.rule(**good)
    assert desk.call("POST", "/api/v1/ops/alert-rules", good).status_code == 409

    reader = make_person(desk, "qian.ying", "alerts.read")
    nobody = make_person(desk, "zhao.lei")
    assert desk.call("GET", "/api/v1/ops/alert-rules", token=nobody).status_code == 403
    assert desk.call("GET", "/api/v1/ops/alerts", token=nobody).status_code == 403
    assert [x["name"] for x in desk.call("GET", "/api/v1/ops/alert-rules", token=reader
                                         ).json["resultValue"]["items"]] == ["slow queue"]
    r = desk.call("POST", "/api/v1/ops/alert-rules", {**good, "name": "x"}, token=reader)
    assert r.status_code == 403 and "alerts.manage" in r.json["resultHint"]
    assert desk.call("DELETE", f"/api/v1/ops/alert-rules/{created['id']}", token=reader).status_code == 403
    assert desk.call("POST", f"/api/v1/ops/alert-rules/{created['id']}/test", token=reader).status_code == 403

    r = desk.call("PATCH", f"/api/v1/ops/alert-rules/{created['id']}", {"threshold": 20, "severity": "critical"})
    assert r.status_code == 200 and (r.json["resultValue"]["threshold"], r.json["resultValue"]["severity"]) == (
        20, "critical")
    r = desk.call("PATCH", f"/api/v1/ops/alert-rules/{created['id']}", {"filters": {"minRuns": 3}})
    assert r.status_code == 400 and "filters.minRuns" in r.json["resultHint"]
    assert [n["name"] for n in desk.call("GET", "/api/v1/ops/notifiers").json["resultValue"]] == ["email", "webhook"]
    assert desk.call("DELETE", f"/api/v1/ops/alert-rules/{created['id']}").status_code == 200
    assert desk.call("GET", f"/api/v1/ops/alert-rules/{created['id']}").status_code == 404
    assert desk.call("POST", "/api/v1/ops/alert-rules/nope/test").status_code == 404


def make_person(desk, username, *permissions):
    r = desk.call("POST", "/api/v1/roles", {"name": f"r-{username}", "permissions": list(permissions)})
    assert r.status_code == 201, r.json
    r = desk.call("POST", "/api/v1/users", {"username": username, "roles": [f"r-{username}"]})
    one_time = r.json["resultValue"]["oneTimePassword"]
    token = desk.client.simulate_post("/api/v1/auth/login", json={"username": username, "password": one_time}
                                      ).json["resultValue"]["token"]
    desk.call("POST", "/api/v1/me/password", {"currentPassword": one_time, "newPassword": "Zq-7-unguessable-Pw!"},
              token=token)
    return token


def test_a_test_notification_reaches_every_channel_and_reports_each(desk, receiver, smtp):
    rule = desk.rule(kind="licence_expiry", threshold=30, channels=[
        {"notifier": "webhook", "target": receiver.url}, {"notifier": "email", "target": "ops@example.com"},
        {"notifier": "webhook", "target": "http://127.0.0.1:9/closed"}])
    r = desk.call("POST", f"/api/v1/ops/alert-rules/{rule['id']}/test")
    assert r.status_code == 200, r.json
    value = r.json["resultValue"]
    assert value["delivered"] is False and [c["ok"] for c in value["channels"]] == [True, True, False]
    assert receiver.notes()[0]["state"] == "test" and "test notification" in receiver.notes()[0]["text"]
    assert "TEST: licence_expiry" in smtp.messages[0]["data"]
    with hubdb.connection():
        assert AlertEvent.select().count() == 0  # a test is not history
    bare = desk.rule(kind="queue_wait", threshold=5, name="silent")
    r = desk.call("POST", f"/api/v1/ops/alert-rules/{bare['id']}/test")
    assert r.status_code == 400 and "channels" in r.json["resultHint"]


def test_email_without_an_smtp_host_is_a_recorded_failure(tmp_path, database_url):
    app = make_app(tmp_path / "home", database_url)
    try:
        d = Desk(app)
        rule = d.rule(kind="licence_expiry", threshold=30, channels=[{"notifier": "email", "target": "a@b.cn"}])
        r = d.call("POST", f"/api/v1/ops/alert-rules/{rule['id']}/test")
        assert r.json["resultValue"]["channels"][0]["error"] == "email: smtp_host is not configured in [plugins.ops]"
    finally:
        app.hub.close()


def test_rpahub_notifiers_of_another_plugin_are_offered_and_used(tmp_path, database_url):
    """A third-party notifier (here: a chat bot) arrives through the rpahub_notifiers hook."""
    sent = []

    class Chat:
        name = "chat"

        def send(self, notification, target):
            if target == "#broken":
                raise ConnectionError("chat service down")
            sent.append((target, notification))

    chat = SimpleNamespace(rpahub_notifiers=hookimpl(lambda hub: [Chat()]))
    app = make_app(tmp_path / "home", database_url, pm=plugin_manager(("chat", chat)))
    try:
        d = Desk(app)
        assert [n["name"] for n in d.call("GET", "/api/v1/ops/notifiers").json["resultValue"]] == [
            "chat", "email", "webhook"]
        d.rule(kind="failure_rate", threshold=10, channels=[{"notifier": "chat", "target": "#ops"},
                                                            {"notifier": "chat", "target": "#broken"}])
        d.finished_runs(["failed", "failed"])
        assert d.evaluate() == [("failure_rate", "firing", False)]
        [(target, note)] = sent
        assert target == "#ops"
        assert set(note) == {"title", "text", "severity", "rule", "state", "at", "labels"}
        assert note["state"] == "firing" and note["labels"]["kind"] == "failure_rate"
        dt.datetime.fromisoformat(note["at"].replace("Z", "+00:00"))
        with hubdb.connection():
            broken = json.loads(AlertEvent.get().deliveries)[1]
        assert broken["ok"] is False and broken["error"] == "chat service down"
    finally:
        app.hub.close()


def test_metrics_count_firing_alerts_and_the_evaluator_waits_for_a_gevent_worker(desk, receiver):
    desk.rule(kind="failure_rate", threshold=10, severity="critical",
              channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    desk.evaluate()
    text = desk.client.simulate_get("/metrics").text
    assert 'rpahub_ops_alerts_firing{severity="critical"} 1.0' in text
    assert "ops.loop" not in desk.hub.state  # tests evaluate by hand; `rpahub serve` workers run the loop
    wait_for(lambda: receiver.received, 1, "the webhook")


# -- acknowledging a firing alert ------------------------------------------------------------


def test_acknowledging_a_firing_alert_records_who_stops_reminders_and_is_audited(desk, receiver):
    rule = desk.rule(kind="failure_rate", threshold=50, cooldownMinutes=30,
                     channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    [firing] = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["firing"]
    alert_id = firing["event"]["id"]
    assert firing["event"]["acknowledged"] is None
    assert [e["id"] for e in desk.call("GET", "/api/v1/ops/alerts", acknowledged="false"
                                       ).json["resultValue"]["history"]["items"]] == [alert_id]

    r = desk.call("POST", f"/api/v1/ops/alerts/{alert_id}/acknowledge", {"note": "  restarting robot r1  "})
    assert r.status_code == 200, r.json
    ack = r.json["resultValue"]["acknowledged"]
    assert (ack["by"], ack["note"], r.json["resultValue"]["state"]) == ("admin", "restarting robot r1", "firing")
    dt.datetime.fromisoformat(ack["at"].replace("Z", "+00:00"))

    now = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]
    assert now["firing"][0]["event"]["acknowledged"]["by"] == "admin"  # still firing, and whose it is
    assert now["history"]["items"][0]["acknowledged"]["note"] == "restarting robot r1"
    assert desk.call("GET", "/api/v1/ops/alerts", acknowledged="false").json["resultValue"]["firing"] == []
    assert [e["id"] for e in desk.call("GET", "/api/v1/ops/alerts", acknowledged="true"
                                       ).json["resultValue"]["history"]["items"]] == [alert_id]

    audit = desk.call("GET", "/api/v1/audit", action="alert.acknowledge").json["resultValue"]["items"]
    assert [(a["result"], a["actorName"], a["target"]) for a in audit] == [("ok", "admin", str(alert_id))]

    # Past the cooldown the condition still holds, but nobody is reminded of an alert someone is on.
    with hubdb.connection():
        AlertRule.update(notified_at=utcnow() - dt.timedelta(hours=2)).execute()
    assert desk.evaluate() == []
    assert len(receiver.received) == 1

    r = desk.call("POST", f"/api/v1/ops/alerts/{alert_id}/acknowledge", {"note": "me too"})
    assert r.status_code == 409 and "acknowledged by admin" in r.json["resultHint"]

    # It resolves (and says so); a later firing is a new alert nobody has acknowledged.
    with hubdb.connection():
        RunInstance.update(finished_at=utcnow() - dt.timedelta(hours=1)).execute()
    assert desk.evaluate() == [("failure_rate", "resolved", False)]
    assert receiver.notes()[-1]["state"] == "resolved"
    r = desk.call("POST", f"/api/v1/ops/alerts/{alert_id}/acknowledge", {"note": ""})
    assert r.status_code == 409 and "not firing" in r.json["resultHint"]
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    [again] = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["firing"]
    assert again["event"]["id"] != alert_id and again["event"]["acknowledged"] is None
    history = desk.call("GET", "/api/v1/ops/alerts", ruleId=rule["id"]).json["resultValue"]["history"]["items"]
    assert [(e["state"], e["acknowledged"] is not None) for e in history] == [
        ("firing", False), ("resolved", False), ("firing", True)]  # the history keeps who was on the first


def test_an_unacknowledged_alert_keeps_reminding_and_a_reminder_names_its_alert(desk, receiver):
    desk.rule(kind="failure_rate", threshold=50, cooldownMinutes=30,
              channels=[{"notifier": "webhook", "target": receiver.url}])
    desk.finished_runs(["failed"])
    desk.evaluate()
    with hubdb.connection():
        AlertRule.update(notified_at=utcnow() - dt.timedelta(hours=1)).execute()
    assert desk.evaluate() == [("failure_rate", "firing", True)]
    reminder, opening = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["history"]["items"]
    r = desk.call("POST", f"/api/v1/ops/alerts/{reminder['id']}/acknowledge", {})
    assert r.status_code == 409 and f"reminds of, {opening['id']}" in r.json["resultHint"]
    assert desk.call("POST", "/api/v1/ops/alerts/99999/acknowledge", {}).status_code == 404
    assert desk.call("POST", "/api/v1/ops/alerts/nope/acknowledge", {}).status_code == 404
    r = desk.call("POST", f"/api/v1/ops/alerts/{opening['id']}/acknowledge", {"note": "x" * 501})
    assert r.status_code == 400 and "note" in r.json["resultHint"]


def test_acknowledging_takes_alerts_acknowledge_or_alerts_manage(desk):
    desk.rule(kind="failure_rate", threshold=10, name="a")
    desk.rule(kind="failure_rate", threshold=10, name="b")
    desk.finished_runs(["failed"])
    desk.evaluate()
    first, second = (f["event"]["id"] for f in desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["firing"])
    reader = make_person(desk, "qian.ying", "alerts.read")
    on_call = make_person(desk, "sun.li", "alerts.read", "alerts.acknowledge")
    manager = make_person(desk, "zhou.min", "alerts.manage")

    r = desk.call("POST", f"/api/v1/ops/alerts/{first}/acknowledge", {"note": "mine"}, token=reader)
    assert r.status_code == 403 and "alerts.acknowledge" in r.json["resultHint"]
    denied = desk.call("GET", "/api/v1/audit", action="alert.acknowledge").json["resultValue"]["items"]
    assert [(a["result"], a["actorName"]) for a in denied] == [("denied", "qian.ying")]
    assert desk.call("GET", "/api/v1/ops/alerts", token=reader).json["resultValue"]["firing"][0]["event"][
        "acknowledged"] is None

    r = desk.call("POST", f"/api/v1/ops/alerts/{first}/acknowledge", {"note": "on it"}, token=on_call)
    assert r.status_code == 200 and r.json["resultValue"]["acknowledged"]["by"] == "sun.li"
    r = desk.call("POST", f"/api/v1/ops/alerts/{second}/acknowledge", {}, token=manager)
    assert r.status_code == 200 and r.json["resultValue"]["acknowledged"] == {
        "by": "zhou.min", "at": r.json["resultValue"]["acknowledged"]["at"], "note": ""}
    # The document names both: a client knows either will do.
    spec = desk.call("GET", "/api/openapi.json").json["paths"]["/api/v1/ops/alerts/{alert_id}/acknowledge"]["post"]
    assert spec["x-rpahub-permission"] == ["alerts.acknowledge", "alerts.manage"]


def test_alert_events_of_an_older_schema_gain_the_acknowledgement_columns(desk):
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as alter

    from rpahub_core.migrations import MigrationRegistry, SchemaVersion, migrate
    from rpahub_plugins.ops import rpahub_migrations

    columns = ("acknowledged_by", "acknowledged_at", "acknowledged_note")
    with hubdb.connection():
        db = hubdb.database.obj
        # A database as ops schema #1 left it: no acknowledgement columns.
        alter(*(SchemaMigrator.from_database(db).drop_column("alert_event", c) for c in columns))
        SchemaVersion.update(version=1).where(SchemaVersion.component == "ops").execute()
        registry = MigrationRegistry()
        rpahub_migrations(migrations=registry)
        assert migrate(registry) == ["ops #2: acknowledging a firing alert"]
        assert set(columns) <= {c.name for c in db.get_columns("alert_event")}
    desk.rule(kind="failure_rate", threshold=10)
    desk.finished_runs(["failed"])
    assert desk.evaluate() == [("failure_rate", "firing", False)]
    alert_id = desk.call("GET", "/api/v1/ops/alerts").json["resultValue"]["firing"][0]["event"]["id"]
    assert desk.call("POST", f"/api/v1/ops/alerts/{alert_id}/acknowledge", {}).status_code == 200
