"""Multi-task orchestration (6.5.1b): flows run in dependency order through the dispatcher,
children receive their parents' outputs, failures follow the flow's policy."""

import io
import json
import zipfile

import pytest

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.bus import Event
from rpahub_core.errors import ValidationFailed
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import bearer
from rpahub_plugins.dispatch import dispatcher
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Executor, RunInstance, Supplier
from rpahub_plugins.flows import flows
from rpahub_plugins.flows.graph import find_cycle, problems, topological_order
from rpahub_plugins.flows.models import FlowRun

SECRET = "flows-secret-0123456789"


class Desk:
    """An in-process hub with robots registered over HTTP and the dispatcher ticked by hand."""

    def __init__(self, app):
        self.hub = app.hub
        self.ex = state(app.hub)
        self.d = dispatcher(app.hub)
        self.flows = flows(app.hub)
        self.sessions = {}
        self.ended = []
        self.hub.bus.subscribe("flow_run.completed", lambda e: self.ended.append(e.data))
        Supplier.create(code="v", secret_enc=self.hub.keys.encrypt(SECRET))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print(1)")
        self.package = self.ex.runs.add_package(name="p", version="1", data=buf.getvalue(), created_by="t")
        self.robot("r1", slots=4)

    def robot(self, robot_id, labels=(), slots=1):
        session = ExecutorSession(robot_id, "http")
        self.ex.gateway.register(session, {"supplierCode": "v", "supplierSecret": proof(SECRET, robot_id)})
        Executor.update(labels=json.dumps(list(labels)), slots=slots).where(Executor.id == robot_id).execute()
        self.sessions[robot_id] = session

    def flow(self, *tasks, policy="stop_all", name="nightly"):
        tasks = [{"packageId": self.package.id, "maxAttempts": 1, **t} for t in tasks]
        return self.flows.create({"name": name, "failurePolicy": policy, "tasks": tasks}, user_name="tester")

    def start(self, flow):
        return self.flows.start(flow.id, user_id="u1", user_name="tester")

    def states(self, fr):
        return {k: t.state for k, t in self.flows.task_runs(fr).items()}

    def flow_run(self, fr):
        return FlowRun.get_by_id(fr.id)

    def run_of(self, fr, key):
        return RunInstance.get_by_id(self.flows.task_runs(fr)[key].run_id)

    def commands(self, robot_id):
        """Everything the robot's next heartbeats would fetch, as (action, body)."""
        out = []
        while cmd := self.ex.gateway.next_command(self.sessions[robot_id]):
            self.ex.gateway.ack(cmd)
            out.append((cmd.action, json.loads(cmd.body) if cmd.body else None))
        return out

    def execute(self, fr, key):
        """Place the task's run and return the Execute its robot fetches."""
        self.d.tick()
        run = self.run_of(fr, key)
        [body] = [b for action, b in self.commands(run.executor_id)
                  if action == "Execute" and b["runInstanceId"] == run.id]
        return body

    def finish(self, fr, key, status=0, outputs=None, error_code=None):
        self.d.tick()
        run = self.run_of(fr, key)
        assert run.executor_id, f"{key} was never placed"
        body = {"runInstanceId": run.id, "status": status, "outputs": outputs}
        if error_code is not None:
            body["errorCode"] = error_code
        self.ex.gateway.report_finish(self.sessions[run.executor_id], body)


@pytest.fixture
def desk(app):
    with hubdb.connection():
        yield Desk(app)


def args(execute_body):
    return {a["name"]: a["value"] for a in execute_body["arguments"]}


# -- the "done when" ------------------------------------------------------------


def test_a_three_task_dag_runs_in_dependency_order_and_a_child_sees_its_parents_output(desk):
    flow = desk.flow({"key": "extract", "arguments": [{"name": "region", "value": "sichuan"}]},
                     {"key": "transform", "parents": ["extract"]},
                     {"key": "load", "parents": ["transform"]})
    fr = desk.start(flow)
    assert desk.states(fr) == {"extract": "queued", "transform": "waiting", "load": "waiting"}
    assert desk.flow_run(fr).state == "pending"

    assert args(desk.execute(fr, "extract")) == {"region": "sichuan"}
    assert desk.states(fr)["extract"] == "running" and desk.flow_run(fr).state == "running"
    extract = desk.run_of(fr, "extract")
    report = desk.ex.files.save_bytes(b"rows", name="rows.csv", content_type="text/csv", source="file",
                                      uploaded_by="robot:r1", run_id=extract.id)
    desk.finish(fr, "extract", outputs={"total": 42, "month": "2024-05"})
    assert desk.states(fr) == {"extract": "success", "transform": "queued", "load": "waiting"}

    seen = args(desk.execute(fr, "transform"))
    assert seen == {"extract.total": "42", "extract.month": "2024-05", "extract.files": report.id}
    desk.finish(fr, "transform", outputs={"clean": True})
    assert args(desk.execute(fr, "load")) == {"transform.clean": "true", "transform.files": ""}
    assert desk.flow_run(fr).state == "running"
    desk.finish(fr, "load")

    done = desk.flow_run(fr)
    assert (done.state, done.reason) == ("success", "") and done.finished_at is not None
    runs = [desk.run_of(fr, k) for k in ("extract", "transform", "load")]
    assert runs[0].finished_at <= runs[1].created_at and runs[1].finished_at <= runs[2].created_at
    assert all(a["type"] == "String" for a in json.loads(runs[1].arguments))
    assert desk.ended == [{"flowRunId": fr.id, "flowId": flow.id, "state": "success", "reason": ""}]


def test_a_cyclic_flow_is_refused_with_an_error_naming_the_cycle(desk, client, admin_token):
    tasks = [{"key": "a", "packageId": desk.package.id, "parents": ["c"]},
             {"key": "b", "packageId": desk.package.id, "parents": ["a"]},
             {"key": "c", "packageId": desk.package.id, "parents": ["b"]},
             {"key": "d", "packageId": desk.package.id}]
    r = client.simulate_post("/api/v1/flows", headers=bearer(admin_token), json={"name": "loop", "tasks": tasks})
    assert r.status_code == 400
    assert r.json["resultValue"]["errors"] == [{"field": "tasks.0.parents", "message": "cycle: a → b → c → a"}]
    assert "cycle: a → b → c → a" in r.json["resultHint"]
    assert client.simulate_get("/api/v1/flows", headers=bearer(admin_token)).json["resultValue"]["total"] == 0
    with pytest.raises(ValidationFailed, match="cycle: x → x"):
        desk.flow({"key": "x", "parents": ["x"]})


# -- shapes of graphs -------------------------------------------------------------------


def test_a_diamond_child_waits_for_both_parents_and_receives_both_outputs(desk):
    fr = desk.start(desk.flow({"key": "a"}, {"key": "b", "parents": ["a"]}, {"key": "c", "parents": ["a"]},
                              {"key": "d", "parents": ["b", "c"]}))
    desk.finish(fr, "a", outputs={"n": 1})
    assert desk.states(fr) == {"a": "success", "b": "queued", "c": "queued", "d": "waiting"}
    desk.finish(fr, "c", outputs={"side": "right"})
    assert desk.states(fr)["d"] == "waiting"  # b has not finished
    desk.finish(fr, "b", outputs={"side": "left"})
    seen = args(desk.execute(fr, "d"))
    assert seen == {"b.side": "left", "b.files": "", "c.side": "right", "c.files": ""}  # parents, not ancestors
    desk.finish(fr, "d")
    assert desk.flow_run(fr).state == "success"


def test_graph_order_checks_and_cycles():
    tasks = [("load", ["b", "c"]), ("c", ["a"]), ("b", ["a"]), ("a", [])]
    assert topological_order(tasks) == ["a", "c", "b", "load"]  # ties: declaration order
    assert topological_order(tasks, {"b": 5}) == ["a", "b", "c", "load"]  # then priority first
    assert find_cycle(tasks) is None
    assert find_cycle([("a", ["b"]), ("b", ["a"])]) == ["a", "b", "a"]
    assert problems([("a", []), ("a", []), ("x.y", []), ("c", ["nope", "a", "a"])]) == [
        ("tasks.1.key", "duplicate key 'a' (also tasks.0)"),
        ("tasks.2.key", "1-64 letters, digits, '_' or '-', starting with a letter"),
        ("tasks.3.parents", "unknown task key 'nope'"),
        ("tasks.3.parents", "'a' listed twice"),
    ]


# -- failures ---------------------------------------------------------------------------


def test_stop_all_cancels_what_has_not_started_and_stops_what_runs(desk):
    fr = desk.start(desk.flow({"key": "x"}, {"key": "y"}, {"key": "w", "labels": ["gpu"]},
                              {"key": "z", "parents": ["x"]}))
    desk.d.tick()
    assert desk.states(fr) == {"x": "running", "y": "running", "w": "queued", "z": "waiting"}  # no gpu robot
    desk.finish(fr, "x", status=2, error_code=500)

    failed = desk.flow_run(fr)
    assert (failed.state, failed.reason) == ("failed", "task x failed")
    assert desk.states(fr) == {"x": "failed", "y": "running", "w": "cancelled", "z": "cancelled"}
    assert desk.run_of(fr, "w").state == "cancelled" and desk.run_of(fr, "y").state == "stopping"
    assert [action for action, _ in desk.commands("r1")].count("Stop") == 1
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": desk.run_of(fr, "y").id, "status": 1})
    assert desk.states(fr)["y"] == "cancelled"
    assert desk.flow_run(fr).state == "failed" and [e["state"] for e in desk.ended] == ["failed"]


def test_continue_independent_lets_other_branches_finish_and_skips_descendants(desk):
    fr = desk.start(desk.flow({"key": "x"}, {"key": "z", "parents": ["x"]}, {"key": "zz", "parents": ["z"]},
                              {"key": "y"}, {"key": "v", "parents": ["y"]}, policy="continue_independent"))
    desk.finish(fr, "x", status=2, error_code=20001)
    assert desk.states(fr) == {"x": "failed", "z": "skipped", "zz": "skipped", "y": "running", "v": "waiting"}
    assert desk.flow_run(fr).state in ("pending", "running")
    desk.finish(fr, "y", outputs={"ok": "yes"})
    assert args(desk.execute(fr, "v"))["y.ok"] == "yes"  # the independent branch goes on
    desk.finish(fr, "v")
    done = desk.flow_run(fr)
    assert (done.state, done.reason) == ("failed", "task x failed")
    assert desk.flows.task_runs(fr)["z"].detail == "task x failed"
    assert len(desk.ended) == 1


def test_a_refused_submission_fails_its_task(desk):
    fr = desk.start(desk.flow({"key": "a", "pool": "nowhere"}, {"key": "b"}))
    rows = desk.flows.task_runs(fr)
    assert rows["a"].state == "failed" and rows["a"].detail == "not submitted: pool: nowhere not found"
    assert rows["b"].state == "cancelled" and rows["b"].run_id is None  # stop_all: never started
    assert desk.flow_run(fr).state == "failed"


def test_a_repeated_completion_event_does_not_submit_the_child_twice(desk):
    fr = desk.start(desk.flow({"key": "a"}, {"key": "b", "parents": ["a"]}))
    desk.finish(fr, "a")
    a, b_run = desk.run_of(fr, "a"), desk.flows.task_runs(fr)["b"].run_id
    repeat = Event(topic="run.completed", data={"runId": a.id, "state": "success", "status": 0, "errorCode": None,
                                                "attempt": 1})
    for _ in range(3):
        desk.hub.bus.publish(repeat)
    desk.flows.on_run_completed(a.id, "success")
    assert desk.flows.task_runs(fr)["b"].run_id == b_run
    assert RunInstance.select().count() == 2
    desk.finish(fr, "b")
    desk.hub.bus.publish(repeat)  # after the end too
    assert desk.flow_run(fr).state == "success" and len(desk.ended) == 1


def test_concurrent_completion_events_submit_the_child_once(desk):
    import threading

    fr = desk.start(desk.flow({"key": "a"}, {"key": "b", "parents": ["a"]}, {"key": "c", "parents": ["a"]}))
    desk.d.tick()
    a = desk.run_of(fr, "a")
    # The run ended without its event; several hub processes now see one at the same moment.
    RunInstance.update(state="success", finish_status=0, finished_at=hubdb.utcnow()).where(
        RunInstance.id == a.id).execute()
    barrier, errors = threading.Barrier(4), []

    def deliver():
        try:
            with hubdb.connection():
                barrier.wait(5)
                desk.flows.on_run_completed(a.id, "success")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors
    assert desk.states(fr) == {"a": "success", "b": "queued", "c": "queued"}
    assert RunInstance.select().count() == 3


def test_a_missed_completion_is_caught_up_by_the_sweep(desk):
    import datetime as dt

    fr = desk.start(desk.flow({"key": "a"}, {"key": "b", "parents": ["a"]}))
    desk.d.tick()
    # The run ended but its run.completed never arrived (the process died in between).
    RunInstance.update(state="success", finish_status=0, finished_at=hubdb.utcnow() - dt.timedelta(minutes=5)).where(
        RunInstance.id == desk.run_of(fr, "a").id).execute()
    assert desk.flows.sweep(grace_s=30) == 1
    assert desk.states(fr) == {"a": "success", "b": "queued"}
    assert desk.flows.sweep(grace_s=30) == 0


# -- the API ----------------------------------------------------------------------------


def test_flow_api_create_read_start_cancel(desk, client, admin_token):
    h = bearer(admin_token)
    body = {"name": "month-end", "failurePolicy": "stop_all", "tasks": [
        {"key": "fetch", "packageId": desk.package.id, "arguments": [{"name": "m", "value": "5"}]},
        {"key": "book", "packageId": desk.package.id, "parents": ["fetch"], "pool": None}]}
    r = client.simulate_post("/api/v1/flows", headers=h, json=body)
    assert r.status_code == 201, r.json
    flow = r.json["resultValue"]
    assert flow["order"] == ["fetch", "book"] and flow["edges"] == [{"parent": "fetch", "child": "book"}]
    assert flow["tasks"][1]["parents"] == ["fetch"] and flow["version"] == 1
    assert client.simulate_post("/api/v1/flows", headers=h, json=body).status_code == 409

    r = client.simulate_get(f"/api/v1/flows/{flow['id']}", headers=h)
    assert r.json["resultValue"]["tasks"][0]["arguments"] == [{"name": "m", "type": "String", "value": "5"}]
    r = client.simulate_put(f"/api/v1/flows/{flow['id']}", headers=h, json={**body, "version": 7})
    assert r.status_code == 409 and r.json["resultHint"].startswith("version:")

    r = client.simulate_post(f"/api/v1/flows/{flow['id']}/runs", headers=h)
    assert r.status_code == 201, r.json
    fr = r.json["resultValue"]
    assert [(t["key"], t["state"], bool(t["runId"])) for t in fr["tasks"]] == [("fetch", "queued", True),
                                                                               ("book", "waiting", False)]
    # Editing the flow does not touch the run in progress.
    r = client.simulate_put(f"/api/v1/flows/{flow['id']}", headers=h, json={**body, "version": 1, "tasks": [
        {"key": "only", "packageId": desk.package.id}]})
    assert r.status_code == 200 and r.json["resultValue"]["version"] == 2
    desk.d.tick()

    r = client.simulate_post(f"/api/v1/flow-runs/{fr['id']}/cancel", headers=h)
    assert r.status_code == 200, r.json
    cancelled = r.json["resultValue"]
    assert (cancelled["state"], cancelled["reason"]) == ("cancelled", "cancelled by admin")
    assert [(t["key"], t["state"], t["runState"]) for t in cancelled["tasks"]] == [
        ("fetch", "running", "stopping"), ("book", "cancelled", None)]
    assert client.simulate_post(f"/api/v1/flow-runs/{fr['id']}/cancel", headers=h).status_code == 409
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": fr["tasks"][0]["runId"], "status": 1})
    r = client.simulate_get(f"/api/v1/flow-runs/{fr['id']}", headers=h)
    assert r.json["resultValue"]["tasks"][0]["state"] == "cancelled"
    assert r.json["resultValue"]["order"] == ["fetch", "book"]

    assert client.simulate_delete(f"/api/v1/flows/{flow['id']}", headers=h).status_code == 200
    r = client.simulate_get("/api/v1/flow-runs", headers=h, params={"flowId": flow["id"], "state": "cancelled"})
    assert [i["id"] for i in r.json["resultValue"]["items"]] == [fr["id"]]  # history outlives the flow
    assert client.simulate_get(f"/api/v1/flows/{flow['id']}", headers=h).status_code == 404


def test_flow_api_refusals(desk, client, admin_token):
    h = bearer(admin_token)
    r = client.simulate_post("/api/v1/roles", headers=h, json={"name": "flow-viewer", "permissions": ["flows.read"]})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/users", headers=h, json={"username": "zhao.lei", "roles": ["flow-viewer"]})
    one_time = r.json["resultValue"]["oneTimePassword"]
    token = client.simulate_post("/api/v1/auth/login", json={"username": "zhao.lei", "password": one_time}
                                 ).json["resultValue"]["token"]
    client.simulate_post("/api/v1/me/password", headers=bearer(token),
                         json={"currentPassword": one_time, "newPassword": "A-new-secret-42"})
    viewer = bearer(token)

    good = {"name": "ok", "tasks": [{"key": "a", "packageId": desk.package.id}]}
    flow_id = client.simulate_post("/api/v1/flows", headers=h, json=good).json["resultValue"]["id"]
    assert client.simulate_get("/api/v1/flows", headers=viewer).status_code == 200
    r = client.simulate_post("/api/v1/flows", headers=viewer, json={**good, "name": "mine"})
    assert r.status_code == 403 and "flows.manage" in r.json["resultHint"]
    r = client.simulate_post(f"/api/v1/flows/{flow_id}/runs", headers=viewer)
    assert r.status_code == 403 and "flows.run" in r.json["resultHint"]
    assert client.simulate_post("/api/v1/flows/nope/runs", headers=h).status_code == 404

    # A flow's tasks are runs started as a person: defining or starting them takes runs.start too.
    r = client.simulate_post("/api/v1/roles", headers=h, json={
        "name": "flow-runner", "permissions": ["flows.read", "flows.manage", "flows.run"]})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/users", headers=h, json={"username": "qian.yu", "roles": ["flow-runner"]})
    one_time = r.json["resultValue"]["oneTimePassword"]
    token = client.simulate_post("/api/v1/auth/login", json={"username": "qian.yu", "password": one_time}
                                 ).json["resultValue"]["token"]
    client.simulate_post("/api/v1/me/password", headers=bearer(token),
                         json={"currentPassword": one_time, "newPassword": "A-new-secret-42"})
    runner = bearer(token)
    r = client.simulate_post(f"/api/v1/flows/{flow_id}/runs", headers=runner)
    assert r.status_code == 403 and "runs.start" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/flows", headers=runner, json={**good, "name": "mine"})
    assert r.status_code == 403 and "runs.start" in r.json["resultHint"]
    r = client.simulate_put(f"/api/v1/flows/{flow_id}", headers=runner, json=good)
    assert r.status_code == 403 and "runs.start" in r.json["resultHint"]
    assert FlowRun.select().count() == 0
    assert client.simulate_get("/api/v1/flows", headers=h).json["resultValue"]["total"] == 1
    r = client.simulate_put("/api/v1/roles/flow-runner", headers=h, json={
        "permissions": ["flows.read", "flows.manage", "flows.run", "runs.start"]})
    assert r.status_code == 200, r.json
    assert client.simulate_post(f"/api/v1/flows/{flow_id}/runs", headers=runner).status_code == 201
    assert client.simulate_put(f"/api/v1/flows/{flow_id}", headers=runner, json=good).status_code == 200

    r = client.simulate_post("/api/v1/flows", headers=h, json={"name": "bad", "tasks": [
        {"key": "a", "packageId": "no-such-package"}, {"key": "b", "packageId": desk.package.id, "parents": ["zz"]},
        {"key": "c", "packageId": desk.package.id, "pool": "p1", "executorId": "r1"}]})
    assert r.status_code == 400
    assert r.json["resultValue"]["errors"] == [
        {"field": "tasks.1.parents", "message": "unknown task key 'zz'"},
        {"field": "tasks.0.packageId", "message": "package no-such-package not found"},
        {"field": "tasks.2", "message": "name one executor, one pool, or a label set"}]
    r = client.simulate_post("/api/v1/flows", headers=h, json={"name": "nul\x00", "tasks": [
        {"key": "a", "packageId": desk.package.id, "labels": ["x\x00"]}]})
    assert r.status_code == 400  # PostgreSQL cannot store NUL: refused up front, naming the fields
    assert {e["field"] for e in r.json["resultValue"]["errors"]} == {"name", "tasks.0.labels"}
    r = client.simulate_get("/api/v1/flows", headers=h, params={"q": "\x00"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("q")
    r = client.simulate_post("/api/v1/flows", headers=h, json={"name": "empty", "tasks": [],
                                                                "failurePolicy": "sometimes"})
    assert r.status_code == 400
    assert {e["field"] for e in r.json["resultValue"]["errors"]} == {"tasks", "failurePolicy"}
