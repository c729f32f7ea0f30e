"""The dispatch center: queue, pools, policies, failover with checkpoints, retries."""

import datetime as dt
import io
import json
import zipfile

import pytest

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.dispatching import Candidate, RunRequest
from rpahub_core.errors import HubError
from rpahub_core.sessions import ExecutorSession, ProtocolError
from rpahub_plugins.dispatch import dispatcher
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Command, Executor, RunInstance, Supplier
from rpahub_plugins.sched_policies import affinity, least_loaded, round_robin

SECRET = "dispatch-secret-0123456"


class Desk:
    """An in-process hub with robots registered over HTTP, and the dispatcher ticked by hand."""

    def __init__(self, app):
        self.hub = app.hub
        self.ex = state(app.hub)
        self.d = dispatcher(app.hub)
        self.sessions = {}
        Supplier.create(code="v", secret_enc=self.hub.keys.encrypt(SECRET))
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("main.py", "print(1)")
        self.package = self.ex.runs.add_package(name="p", version="1", data=buf.getvalue(), created_by="t")

    def robot(self, robot_id, labels=(), slots=1):
        session = ExecutorSession(robot_id, "http")
        self.ex.gateway.register(session, {"supplierCode": "v", "supplierSecret": proof(SECRET, robot_id)})
        Executor.update(labels=json.dumps(list(labels)), slots=slots).where(Executor.id == robot_id).execute()
        self.sessions[robot_id] = session
        return session

    def submit(self, **kw):
        return self.d.submit(package_id=self.package.id, user_id="u", user_name="tester", **kw)

    def run(self, run_id):
        return RunInstance.get_by_id(run_id)

    def execute_for(self, robot_id):
        """What the robot's next heartbeat would fetch."""
        cmd = self.ex.gateway.next_command(self.sessions[robot_id])
        if cmd:
            self.ex.gateway.ack(cmd)
        return cmd and (cmd.action, json.loads(cmd.body) if cmd.body else None)

    def silence(self, robot_id, seconds=3600):
        """As if ``seconds`` passed without a message from the robot."""
        past = utcnow() - dt.timedelta(seconds=seconds)
        Executor.update(last_heartbeat=past).where(Executor.id == robot_id).execute()
        RunInstance.update(lease_expires_at=past).where(RunInstance.executor_id == robot_id).execute()


@pytest.fixture
def desk(app):
    with hubdb.connection():
        yield Desk(app)


def test_a_run_waits_until_an_executor_is_free_then_starts(desk):
    desk.robot("r1")
    first, second = desk.submit(), desk.submit()
    assert desk.d.tick() == 1
    assert desk.run(first.id).state == "dispatched" and desk.run(first.id).executor_id == "r1"
    assert desk.run(second.id).state == "pending"
    action, body = desk.execute_for("r1")
    assert action == "Execute" and body["runInstanceId"] == first.id and body["userName"] == "tester"
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": first.id, "status": 0})
    assert desk.d.tick() == 1 and desk.run(second.id).executor_id == "r1"


def test_pools_mix_vendors_and_follow_their_policy(desk, client, admin_token):
    Supplier.create(code="w", secret_enc=desk.hub.keys.encrypt(SECRET))
    desk.robot("a1")
    session = ExecutorSession("b1", "http")
    desk.ex.gateway.register(session, {"supplierCode": "w", "supplierSecret": proof(SECRET, "b1")})
    desk.sessions["b1"] = session
    desk.robot("c1")
    r = client.simulate_post("/api/v1/pools", headers={"Authorization": f"Bearer {admin_token}"},
                             json={"name": "finance", "policy": "round_robin", "members": ["a1", "b1"]})
    assert r.status_code == 201, r.json
    runs = [desk.submit(pool="finance") for _ in range(3)]
    desk.d.tick()
    placed = sorted(desk.run(r.id).executor_id or "-" for r in runs)
    assert placed == ["-", "a1", "b1"]  # never c1, which is not in the pool
    r = client.simulate_post("/api/v1/pools", headers={"Authorization": f"Bearer {admin_token}"},
                             json={"name": "x", "policy": "coin_toss"})
    assert r.status_code == 400 and "coin_toss" in r.json["resultHint"]


def test_labels_select_executors(desk):
    desk.robot("plain")
    desk.robot("ocr", labels=["ocr", "sichuan"])
    run = desk.submit(labels=["ocr"])
    desk.d.tick()
    assert desk.run(run.id).executor_id == "ocr"


def test_failover_resumes_from_the_checkpoint_on_another_executor(desk):
    desk.robot("r1")
    run = desk.submit(max_attempts=3)
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.gateway.report_checkpoint(desk.sessions["r1"], {"runInstanceId": run.id, "checkpoint": {"row": 41}})
    desk.robot("r2")
    desk.silence("r1")  # r1 stopped heartbeating past the offline timeout
    assert desk.d.failover() == 1 or desk.d.tick() >= 0
    desk.d.tick()
    moved = desk.run(run.id)
    assert (moved.executor_id, moved.attempt, moved.state) == ("r2", 2, "dispatched")
    action, body = desk.execute_for("r2")
    assert action == "Execute" and body["checkpoint"] == {"row": 41} and body["attempt"] == 2
    # The old executor's late report changes nothing.
    with pytest.raises(ProtocolError, match="another executor"):
        desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": run.id, "status": 0})
    desk.ex.gateway.report_finish(desk.sessions["r2"], {"runInstanceId": run.id, "status": 0})
    final = desk.run(run.id)
    assert (final.state, final.executor_id, final.attempt) == ("success", "r2", 2)
    timeline = [e.state for e in final.events.order_by(final.events.model.id)]
    assert timeline == ["pending", "dispatched", "retrying", "dispatched", "success"]


def test_application_errors_are_retried_with_backoff_business_errors_are_not(desk):
    desk.robot("r1")
    completed = []
    desk.hub.bus.subscribe("run.completed", lambda e: completed.append(e.data))
    app_err = desk.submit(max_attempts=2, backoff_s=30)
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": app_err.id, "status": 2, "errorCode": 500})
    waiting = desk.run(app_err.id)
    assert (waiting.state, waiting.attempt, waiting.executor_id) == ("retrying", 2, None)
    assert desk.d.tick() == 0  # backing off: 30 s
    from rpahub_plugins.dispatch.models import QueueEntry

    QueueEntry.update(not_before=utcnow()).execute()
    assert desk.d.tick() == 1
    desk.execute_for("r1")
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": app_err.id, "status": 2, "errorCode": 500})
    assert desk.run(app_err.id).state == "failed"  # no attempts left
    business = desk.submit(max_attempts=5)
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": business.id, "status": 2,
                                                        "errorCode": 20001})
    assert desk.run(business.id).state == "failed" and desk.run(business.id).attempt == 1
    assert [(c["runId"], c["state"]) for c in completed] == [(app_err.id, "failed"), (business.id, "failed")]


def test_stop_and_cancel_work_in_every_state(desk):
    desk.robot("r1")
    waiting = desk.submit()
    desk.ex.runs.stop(waiting.id, by="t")
    assert desk.run(waiting.id).state == "cancelled"
    running = desk.submit()
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.runs.stop(running.id, by="t")
    assert desk.execute_for("r1") == ("Stop", None)
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": running.id, "status": 1})
    assert desk.run(running.id).state == "cancelled"
    with pytest.raises(HubError, match="already finished"):
        desk.ex.runs.stop(running.id, by="t")
    lost = desk.submit()
    desk.d.tick()
    desk.ex.runs.stop(lost.id, by="t")
    desk.silence("r1")
    desk.d.failover()
    assert desk.run(lost.id).state == "cancelled"  # its executor vanished while stopping


def test_a_requeued_runs_undelivered_commands_are_dropped(desk):
    desk.robot("r1")
    run = desk.submit()
    desk.d.tick()  # Execute queued for r1, never fetched
    desk.silence("r1")
    desk.d.failover()
    assert not Command.select().where((Command.run_id == run.id) & Command.delivered_at.is_null()).exists()


def test_policies_choose_as_documented():
    cs = [Candidate("a", "v", ("ocr",), active=1, slots=2), Candidate("b", "v", (), active=0, slots=1),
          Candidate("c", "v", ("ocr", "nlp"), active=0, slots=1)]
    # One free slot each: the idle ones first, then by id.
    assert least_loaded(RunRequest("r", "python"), cs).id == "b"
    assert least_loaded(RunRequest("r", "python"), cs[:1] + [Candidate("d", "v", active=0, slots=3)]).id == "d"
    assert affinity(RunRequest("r", "python", labels=("ocr", "nlp")), cs).id == "c"
    turns = [round_robin(RunRequest("r", "python", pool="rr-test"), cs).id for _ in range(4)]
    assert len(set(turns[:3])) == 3 and turns[3] == turns[0]


def test_a_stopped_run_that_ends_failed_is_not_retried(desk):
    desk.robot("r1")
    run = desk.submit(max_attempts=3, backoff_s=0)
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.runs.stop(run.id, by="t")
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": run.id, "status": 2, "errorCode": 137})
    assert desk.run(run.id).state == "failed" and desk.run(run.id).attempt == 1
    assert desk.d.tick() == 0


def test_the_policies_are_listed_for_pools_and_dispatches(client, admin_token):
    r = client.simulate_get("/api/v1/dispatch/policies", headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 200
    assert {p["name"]: p["description"] for p in r.json["resultValue"]} == {
        "affinity": "The most labels shared with the request, then the least loaded.",
        "least_loaded": "The most free slots, then the fewest runs.",
        "round_robin": "Each candidate in turn, per pool."}


def test_a_restarted_executor_that_heartbeats_idle_loses_its_run(desk):
    """The lease is the run's, not the executor's: alive but no longer naming the run is lost."""
    desk.robot("r1")
    run = desk.submit(max_attempts=2)
    desk.d.tick()
    desk.execute_for("r1")
    desk.ex.gateway.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})  # it names its runs
    RunInstance.update(lease_expires_at=utcnow() - dt.timedelta(seconds=1)).where(RunInstance.id == run.id).execute()
    desk.ex.gateway._seen.clear()
    desk.ex.gateway.heartbeat(desk.sessions["r1"], {})  # restarted: alive, idle
    desk.d.tick()
    again = desk.run(run.id)
    assert again.attempt == 2 and again.state == "dispatched" and again.executor_id == "r1"


def test_a_dead_executor_is_not_a_candidate_so_failover_does_not_burn_attempts(desk):
    desk.robot("r1")
    run = desk.submit(executor_id="r1", max_attempts=3)
    desk.d.tick()
    desk.silence("r1")
    for _ in range(3):
        desk.d.tick()
    waiting = desk.run(run.id)
    assert (waiting.state, waiting.attempt) == ("retrying", 2)  # waits for r1 to come back


def test_unplaceable_entries_do_not_block_the_queue(desk):
    desk.robot("r1")
    for _ in range(210):
        desk.submit(supplier="nobody")  # can never be placed
    run = desk.submit()
    assert desk.d.tick() == 1 and desk.run(run.id).executor_id == "r1"


def test_a_failing_policy_plugin_falls_back_instead_of_stopping_dispatch(desk, monkeypatch):
    desk.robot("r1")
    monkeypatch.setattr(desk.hub, "select_executor", lambda *a: 1 / 0)
    run = desk.submit()
    assert desk.d.tick() == 1 and desk.run(run.id).executor_id == "r1"


def test_a_lost_retry_decision_is_taken_by_the_sweep(desk):
    desk.robot("r1")
    run = desk.submit(max_attempts=2, backoff_s=0)
    desk.d.tick()
    desk.execute_for("r1")
    desk.hub.bus.close()  # the run.finished event is lost, as in a crash after the commit
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": run.id, "status": 2, "errorCode": 1})
    assert desk.run(run.id).state == "failed"
    RunInstance.update(finished_at=utcnow() - dt.timedelta(seconds=30)).where(RunInstance.id == run.id).execute()
    assert desk.d.sweep_decisions() == 1
    assert (desk.run(run.id).state, desk.run(run.id).attempt) == ("retrying", 2)
    assert desk.d.sweep_decisions() == 0  # decided once


def fail(desk, robot_id, run_id, error_code=500):
    """The robot takes its next Execute for ``run_id`` and reports it failed."""
    action, body = desk.execute_for(robot_id)
    assert action == "Execute" and body["runInstanceId"] == run_id
    desk.ex.gateway.report_finish(desk.sessions[robot_id], {"runInstanceId": run_id, "status": 2,
                                                            "errorCode": error_code})


def test_retry_delays_double_with_each_attempt_up_to_the_cap(desk):
    from rpahub_plugins.dispatch.models import QueueEntry

    desk.robot("r1")
    assert desk.d.max_backoff_s == 600  # [plugins.dispatch] max_backoff_s, by default
    run = desk.submit(max_attempts=6, backoff_s=100)
    delays = []
    for attempt in range(1, 7):
        assert desk.d.tick() == 1 and desk.run(run.id).attempt == attempt
        before = utcnow()
        fail(desk, "r1", run.id)
        entry = QueueEntry.get_or_none(QueueEntry.run_id == run.id)
        if entry is None:
            break
        delays.append(round((entry.not_before - before).total_seconds()))
        assert desk.d.tick() == 0  # backing off: nothing is placed before its time
        QueueEntry.update(not_before=utcnow()).execute()
    # Before attempt 2, 3, 4: b, 2b, 4b; then 8b and 16b are capped at 600 s.
    assert delays == [100, 200, 400, 600, 600]
    assert (desk.run(run.id).state, desk.run(run.id).attempt) == ("failed", 6)
    assert [e.state for e in desk.run(run.id).events].count("retrying") == 5


@pytest.mark.parametrize("code, retried", [(20000, False), (24500, False), (29999, False),
                                           (19999, True), (30000, True)])
def test_business_error_codes_are_never_retried_even_with_attempts_left(desk, code, retried):
    from rpahub_plugins.dispatch.models import QueueEntry

    desk.robot("r1")
    completed = []
    desk.hub.bus.subscribe("run.completed", lambda e: completed.append(e.data["runId"]))
    run = desk.submit(max_attempts=5, backoff_s=0)
    desk.d.tick()
    fail(desk, "r1", run.id, error_code=500)  # an application error first: retried
    assert desk.d.tick() == 1 and desk.run(run.id).attempt == 2
    fail(desk, "r1", run.id, error_code=code)
    after = desk.run(run.id)
    if retried:  # outside 20000–29999: an application error
        assert (after.state, after.attempt) == ("retrying", 3) and completed == []
    else:  # three attempts left, yet the answer is final
        assert (after.state, after.attempt, after.error_code) == ("failed", 2, code)
        assert completed == [run.id] and QueueEntry.get_or_none(QueueEntry.run_id == run.id) is None
        assert desk.d.tick() == 0


def test_an_apps_retry_and_scheduling_policy_apply_to_its_runs_and_a_request_overrides_them(desk):
    from rpahub_core.auth import UserPrincipal
    from rpahub_plugins.dispatch.models import QueueEntry
    from rpahub_plugins.share import library

    desk.robot("r1", slots=9)
    desk.robot("r2", slots=9)
    desk.d.set_pool("fin", description="", policy="affinity", members=["r1", "r2"], labels=[], create=True)
    lib = library(desk.hub)
    app = lib.accept_delivery(requirement_id="req", app_id=None, name="对账", description="", region="", scenario="",
                              domain="finance", vendor="", tags=[], parameters=[], package_id=desk.package.id,
                              accepted_by=UserPrincipal(id="c", name="checker"))
    lib.update(app, {"maxAttempts": 2, "backoffSeconds": 7, "policy": "round_robin"})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(2)")
    raw = desk.ex.runs.add_package(name="raw", version="1", data=buf.getvalue(), created_by="t")

    def placed_by(run):
        desk.d.tick()
        [detail] = [e.detail for e in desk.run(run.id).events if e.state == "dispatched"][-1:]
        return detail.split("by policy ")[1].split(",")[0]

    # Scheduling policy: request > app > pool.
    assert placed_by(desk.submit(pool="fin")) == "round_robin"  # the app's, over the pool's
    assert placed_by(desk.submit(pool="fin", policy="least_loaded")) == "least_loaded"  # the request's
    other = desk.d.submit(package_id=raw.id, user_id="u", user_name="tester", pool="fin")
    assert placed_by(other) == "affinity"  # a package of no app: the pool's

    # Retry policy: the app's 2 attempts, 7 s apart, instead of the hub's 3 and 10 s.
    run = desk.submit()
    desk.d.tick()
    executor = desk.run(run.id).executor_id
    before = utcnow()
    desk.ex.gateway.report_finish(desk.sessions[executor], {"runInstanceId": run.id, "status": 2, "errorCode": 1})
    entry = QueueEntry.get(QueueEntry.run_id == run.id)
    assert round((entry.not_before - before).total_seconds()) == 7
    QueueEntry.update(not_before=utcnow()).execute()
    desk.d.tick()
    again = desk.run(run.id)
    desk.ex.gateway.report_finish(desk.sessions[again.executor_id], {"runInstanceId": run.id, "status": 2,
                                                                     "errorCode": 1})
    assert (desk.run(run.id).state, desk.run(run.id).attempt) == ("failed", 2)

    # A request that names its own retry policy keeps it.
    explicit = desk.submit(max_attempts=3, backoff_s=0)
    desk.d.tick()
    holder = desk.run(explicit.id).executor_id
    for attempt in (1, 2):
        desk.ex.gateway.report_finish(desk.sessions[holder], {"runInstanceId": explicit.id, "status": 2,
                                                              "errorCode": 1})
        assert (desk.run(explicit.id).state, desk.run(explicit.id).attempt) == ("retrying", attempt + 1)
        desk.d.tick()
        holder = desk.run(explicit.id).executor_id


def test_a_plugin_refuses_or_plans_runs_through_rpahub_admit_run(desk, client, admin_token):
    """A third-party rule (here: a change freeze on one pool) sees every submission before
    anything is stored; its refusal is the caller's resultHint, its proposal the run's plan."""
    from rpahub_core import hookimpl
    from rpahub_core.errors import Conflict
    from rpahub_core.testing import bearer
    from rpahub_plugins.dispatch.models import RunPlan

    seen = []

    class Freeze:
        @hookimpl
        def rpahub_admit_run(self, submission, hub):
            seen.append(submission)
            if submission["pool"] == "frozen":
                raise Conflict("pool: change freeze until Monday")
            return {"max_attempts": 1, "policy": None}

    desk.d.set_pool("frozen", description="", policy="least_loaded", members=[], labels=[], create=True)
    desk.hub.pm.register(Freeze(), name="freeze")
    try:
        runs_before = RunInstance.select().count()
        with pytest.raises(Conflict, match="change freeze"):
            desk.submit(pool="frozen")
        r = client.simulate_post("/api/v1/dispatch", headers=bearer(admin_token),
                                 json={"packageId": desk.package.id, "pool": "frozen"})
        assert (r.status_code, r.json["resultHint"]) == (409, "pool: change freeze until Monday")
        assert RunInstance.select().count() == runs_before  # nothing was queued
        assert seen[-1] == {"package_id": desk.package.id, "executor_id": None, "pool": "frozen", "labels": [],
                            "supplier": None}
        run = desk.submit(labels=["x"])
        plan = RunPlan.get(RunPlan.run_id == run.id)
        assert plan.max_attempts == 1 and plan.policy is None  # proposed; None proposes nothing
        assert RunPlan.get(RunPlan.run_id == desk.submit(max_attempts=4).id).max_attempts == 4  # the request wins
    finally:
        desk.hub.pm.unregister(name="freeze")
    assert RunPlan.get(RunPlan.run_id == desk.submit().id).max_attempts == desk.d.default_attempts


def test_a_paused_executor_finishes_what_it_holds_and_gets_nothing_new_until_resumed(desk, client, admin_token):
    desk.robot("r1", slots=2)
    held = desk.submit()
    assert desk.d.tick() == 1 and desk.run(held.id).executor_id == "r1"
    r = client.simulate_patch("/api/v1/executors/r1", headers={"Authorization": f"Bearer {admin_token}"},
                              json={"paused": True, "pausedNote": "补丁升级"})
    assert r.status_code == 200 and (r.json["resultValue"]["paused"], r.json["resultValue"]["pausedNote"]) == (
        True, "补丁升级")
    waiting = desk.submit()
    assert desk.d.tick() == 0 and desk.run(waiting.id).state == "pending"  # a free slot, but paused
    desk.execute_for("r1")
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": held.id, "status": 0})
    assert desk.run(held.id).state == "success"  # what it held ran to its end
    r = client.simulate_patch("/api/v1/executors/r1", headers={"Authorization": f"Bearer {admin_token}"},
                              json={"paused": False})
    assert (r.json["resultValue"]["paused"], r.json["resultValue"]["pausedNote"]) == (False, "")
    assert desk.d.tick() == 1 and desk.run(waiting.id).executor_id == "r1"


# -- the in-memory index of candidates ----------------------------------------------------


def other_process(desk):
    """A second hub process on the same database: its own dispatcher and index, deaf to
    this process's events (only the database tells it what happened here)."""
    from rpahub_plugins.dispatch import DEFAULTS
    from rpahub_plugins.dispatch.service import Dispatcher

    return Dispatcher(desk.hub, desk.ex, dict(DEFAULTS))


def test_the_index_follows_registration_runs_patches_and_disconnects(desk, client, admin_token):
    desk.robot("r1", labels=["ocr"], slots=2)
    free = desk.d.index.free()
    assert free["r1"].labels == ("ocr",) and (free["r1"].active, free["r1"].slots) == (0, 2)
    run = desk.submit()
    assert desk.d.tick() == 1 and desk.d.index.free()["r1"].active == 1  # run.dispatched
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": run.id, "status": 0})
    assert desk.d.index.free()["r1"].active == 0  # run.finished
    r = client.simulate_patch("/api/v1/executors/r1", headers={"Authorization": f"Bearer {admin_token}"},
                              json={"paused": True})
    assert r.status_code == 200 and "r1" not in desk.d.index.free()
    client.simulate_patch("/api/v1/executors/r1", headers={"Authorization": f"Bearer {admin_token}"},
                          json={"paused": False, "slots": 1, "labels": ["nlp"]})
    assert desk.d.index.free()["r1"].labels == ("nlp",) and desk.d.index.free()["r1"].slots == 1
    push = ExecutorSession("w1", "ws", push=True)
    desk.ex.gateway.register(push, {"supplierCode": "v", "supplierSecret": proof(SECRET, "w1")})
    assert "w1" in desk.d.index.free()
    desk.ex.gateway.disconnected(push)  # executor.offline
    assert "w1" not in desk.d.index.free()


@pytest.mark.parametrize("change", ["paused", "offline", "silent", "full", "relabelled"])
def test_a_stale_index_never_places_on_an_executor_that_cannot_take_the_run(desk, change):
    """What the index believes is only a hint: the placement re-reads the executor."""
    desk.robot("r1", labels=["ocr"])
    desk.robot("r2", labels=["ocr"])
    assert set(desk.d.index.free()) == {"r1", "r2"}
    # Behind the index's back (another process, a direct write): no event reaches it.
    if change == "paused":
        Executor.update(paused=True).where(Executor.id == "r1").execute()
    elif change == "offline":
        Executor.update(state="offline").where(Executor.id == "r1").execute()
    elif change == "silent":
        Executor.update(last_heartbeat=utcnow() - dt.timedelta(hours=1)).where(Executor.id == "r1").execute()
    elif change == "full":
        taken = desk.ex.runs.create(package=desk.package, arguments=[], user_id="u", user_name="elsewhere")
        RunInstance.update(executor_id="r1", state="running").where(RunInstance.id == taken.id).execute()
    else:
        Executor.update(labels=json.dumps(["nlp"])).where(Executor.id == "r1").execute()
    assert "r1" in desk.d.index.free()  # stale
    labelled = desk.submit(labels=["ocr"])  # the policy prefers r1 (the same load, then by id)
    named = None if change == "relabelled" else desk.submit(executor_id="r1")
    assert desk.d.tick() == 1
    assert desk.run(labelled.id).executor_id == "r2"  # the stale choice cost a retry, not a wrong placement
    if named is not None:
        assert desk.run(named.id).state == "pending"  # it names r1: it waits
        assert "r1" not in desk.d.index.free()  # read again after the refusal
    else:
        assert desk.d.index.free()["r1"].labels == ("nlp",)
    assert RunInstance.select().where((RunInstance.executor_id == "r1")
                                      & RunInstance.state.in_(("dispatched", "running"))).count() == (
        1 if change == "full" else 0)


def test_a_second_process_placing_on_the_same_executor_is_refused_its_stale_choice(desk):
    desk.robot("r1")
    other = other_process(desk)
    assert set(other.index.free()) == {"r1"}  # both indexes see r1 free
    mine = desk.submit()
    assert desk.d.tick() == 1 and desk.run(mine.id).executor_id == "r1"
    theirs = desk.submit()
    assert other.tick() == 0  # its index still thought r1 free; the database said otherwise
    assert desk.run(theirs.id).state == "pending"
    desk.ex.gateway.report_finish(desk.sessions["r1"], {"runInstanceId": mine.id, "status": 0})
    other.index.reconcile_step()  # the finish reached it through the database only
    assert other.tick() == 1 and desk.run(theirs.id).executor_id == "r1"


def test_two_processes_placing_on_the_last_slot_at_once_place_one_run(desk):
    """The placement transaction holds the executor (its row on PostgreSQL, the write lock on
    SQLite) from the re-check to the commit: the other process counts the run once it waits."""
    import threading

    from rpahub_plugins.dispatch.models import QueueEntry

    desk.robot("r1")
    other = other_process(desk)
    assert set(other.index.free()) == {"r1"}
    first, second = desk.submit(), desk.submit()
    entry = QueueEntry.get(QueueEntry.run_id == first.id)
    checked, done = threading.Event(), threading.Event()

    def place_first():  # what _place does, held open between the re-check and the commit
        with hubdb.connection(), hubdb.atomic():
            claim = QueueEntry.select().where(QueueEntry.run_id == first.id)
            assert (claim.for_update() if hubdb.is_postgres() else claim).first() is not None
            assert desk.d._still_free(entry, desk.package.kind, "r1", {}, {})
            checked.set()
            done.wait(0.5)  # the other process tries meanwhile
            desk.ex.runs.assign(desk.run(first.id), "r1")
            QueueEntry.delete().where(QueueEntry.run_id == first.id).execute()

    thread = threading.Thread(target=place_first)
    thread.start()
    assert checked.wait(10)
    try:
        placed = other.tick()
    finally:
        done.set()
        thread.join(10)
    assert placed == 0 and desk.run(first.id).executor_id == "r1" and desk.run(second.id).state == "pending"


def test_the_index_reconciles_with_what_other_processes_wrote(desk):
    desk.robot("r1")
    index = desk.d.index
    index.free()
    # Written by another process: a new executor, new labels, a paused one, a removed one.
    Executor.create(id="elsewhere", supplier="v", state="online", last_heartbeat=utcnow(), connect_id="x")
    Executor.update(labels=json.dumps(["ocr"])).where(Executor.id == "r1").execute()
    desk.robot("r2")
    Executor.update(paused=True).where(Executor.id == "r2").execute()
    desk.robot("r3")
    index.free()
    Executor.delete().where(Executor.id == "r3").execute()
    for _ in range(index.pass_ticks + 1):
        index.reconcile_step()
    free = index.free()
    assert set(free) == {"r1", "elsewhere"} and free["r1"].labels == ("ocr",)
    assert free == desk.d.candidates()  # converged to what the database says
