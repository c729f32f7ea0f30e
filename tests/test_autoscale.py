"""Elastic scaling of executor pools (6.5.2c): the decision rules, the policy API, the
autoscaler against a stand-in provider, and the local provider with real processes."""

import datetime as dt
import io
import os
import signal
import time
import uuid
import zipfile

import pytest

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.db import utcnow
from rpahub_core.testing import ADMIN_PASSWORD, LiveHub, make_app
from rpahub_plugins.autoscale import autoscaler
from rpahub_plugins.autoscale.decide import ExecutorState, Limits, decide
from rpahub_plugins.autoscale.models import AutoscaleEvent, AutoscalePolicy
from rpahub_plugins.dispatch import dispatcher
from rpahub_plugins.dispatch.models import PoolMember, QueueEntry
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import RunInstance, Supplier

NOW = dt.datetime(2024, 5, 1, 12, 0, 0)
LIMITS = Limits(min=1, max=4, queue_per_executor=2, max_wait_s=30, idle_s=60, cooldown_s=120)


def idle(robot_id, seconds):
    return ExecutorState(robot_id, busy=False, idle_s=seconds)


def busy(robot_id):
    return ExecutorState(robot_id, busy=True)


# -- the decision -----------------------------------------------------------------------


def test_the_minimum_and_maximum_apply_even_in_cooldown():
    just_now = NOW - dt.timedelta(seconds=1)
    assert decide(LIMITS, 0, [], 0, None, just_now, NOW).desired == 1
    too_many = decide(LIMITS, 6, [busy(f"e{i}") for i in range(6)], 0, None, just_now, NOW)
    assert too_many.desired == 4 and "maximum" in too_many.reason


def test_a_growing_queue_scales_up_to_the_target_depth_but_not_past_the_maximum():
    up = decide(LIMITS, 1, [busy("e1")], 5, 1.0, None, NOW)
    assert up.desired == 3 and "5 runs waiting" in up.reason  # ceil(5 / 2)
    assert decide(LIMITS, 1, [busy("e1")], 20, 1.0, None, NOW).desired == 4
    capped = decide(LIMITS, 4, [busy(f"e{i}") for i in range(4)], 20, 1.0, None, NOW)
    assert capped.desired == 4 and "at the maximum" in capped.reason
    assert decide(LIMITS, 2, [busy("e1"), busy("e2")], 4, 1.0, None, NOW).desired == 2  # exactly the target


def test_an_empty_pool_with_work_waiting_starts_an_executor():
    limits = Limits(min=0, max=2, queue_per_executor=5)
    assert decide(limits, 0, [], 1, 0.0, None, NOW).desired == 1


def test_a_long_wait_adds_one_executor_even_when_the_queue_is_short():
    slow = decide(LIMITS, 2, [busy("e1"), busy("e2")], 1, 45.0, None, NOW)
    assert slow.desired == 3 and "waited 45s" in slow.reason
    assert decide(LIMITS, 2, [busy("e1"), busy("e2")], 1, 10.0, None, NOW).desired == 2
    off = Limits(min=1, max=4, queue_per_executor=2, max_wait_s=0)
    assert decide(off, 2, [busy("e1"), busy("e2")], 1, 9999.0, None, NOW).desired == 2


def test_cooldown_holds_load_driven_changes():
    recent = NOW - dt.timedelta(seconds=LIMITS.cooldown_s - 1)
    held = decide(LIMITS, 1, [busy("e1")], 10, 100.0, recent, NOW)
    assert held.desired == 1 and held.reason == "cooling down"
    assert decide(LIMITS, 3, [idle("e1", 999), idle("e2", 999), idle("e3", 999)], 0, None, recent, NOW).desired == 3
    over = NOW - dt.timedelta(seconds=LIMITS.cooldown_s)
    assert decide(LIMITS, 1, [busy("e1")], 10, 100.0, over, NOW).desired == 4


def test_idle_executors_are_stopped_down_to_the_minimum_and_busy_ones_never_count():
    members = [idle("e1", 61), idle("e2", 120), busy("e3"), idle("e4", 10)]
    down = decide(LIMITS, 4, members, 0, None, None, NOW)
    assert down.desired == 2 and "2 executors idle" in down.reason
    all_idle = [idle(f"e{i}", 600) for i in range(4)]
    assert decide(LIMITS, 4, all_idle, 0, None, None, NOW).desired == 1  # the minimum stays
    assert decide(LIMITS, 2, [busy("e1"), busy("e2")], 0, None, None, NOW).reason == "steady"


def test_nothing_shrinks_while_runs_wait():
    members = [idle("e1", 600), idle("e2", 600)]
    assert decide(LIMITS, 2, members, 1, 1.0, None, NOW).desired == 2


# -- the policy API and the autoscaler (in process, a stand-in provider) ---------------


class FakeProvider:
    """Answers for pools of provider "fake": reports what it was asked for, capped at ``limit``."""

    def __init__(self):
        self.calls, self.limit = [], None

    @hookimpl
    def rpahub_scale_pool(self, pool, desired, hub):
        if getattr(pool, "provider", None) != "fake":
            return None
        self.calls.append((pool.name, desired))
        return desired if self.limit is None else min(desired, self.limit)


@pytest.fixture
def fake():
    return FakeProvider()


@pytest.fixture
def desk(tmp_path, fake):
    app = make_app(tmp_path / "home", "", ("fake_provider", fake), plugins={"autoscale": {"providers": ["fake"]}})
    from falcon import testing

    from rpahub_plugins.auth_local.models import User
    from rpahub_plugins.auth_local.passwords import hash_password

    client = testing.TestClient(app)
    with hubdb.connection():
        User.update(password_hash=hash_password(ADMIN_PASSWORD), must_change_password=False).where(
            User.username == "admin").execute()
    token = client.simulate_post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                                 ).json["resultValue"]["token"]

    def call(method, path, body=None):
        r = client.simulate_request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        return r.status_code, r.json

    call.hub = app.hub
    assert call("POST", "/api/v1/pools", {"name": "burst"})[0] == 201
    with hubdb.connection():
        yield call
    app.hub.close()


POLICY = {"provider": "fake", "min": 0, "max": 3, "queuePerExecutor": 1, "maxWaitSeconds": 0, "idleSeconds": 60,
          "cooldownSeconds": 30}


def test_the_policy_is_read_and_replaced_through_the_api(desk):
    assert desk("GET", "/api/v1/pools/burst/autoscale")[0] == 404
    status, body = desk("PUT", "/api/v1/pools/burst/autoscale", POLICY)
    assert status == 200, body
    value = desk("GET", "/api/v1/pools/burst/autoscale")[1]["resultValue"]
    assert value["provider"] == "fake" and (value["min"], value["max"]) == (0, 3) and value["enabled"] is True
    assert value["size"] == 0 and value["lastActionAt"] is None
    assert desk("PUT", "/api/v1/pools/nope/autoscale", POLICY)[0] == 404
    assert desk("GET", "/api/v1/pools/burst/autoscale/events")[1]["resultValue"]["total"] == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"min": 3, "max": 2}, "min"),
    ({"provider": "nimbus"}, "provider"),
    ({"provider": "local", "max": 500}, "max"),
    ({"idleSeconds": -1}, "idleSeconds"),
    ({"colour": "blue"}, "colour"),
])
def test_invalid_policies_are_refused_naming_the_field(desk, change, field):
    status, body = desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, **change})
    assert status == 400
    assert field in {e["field"] for e in body["resultValue"]["errors"]}
    assert body["resultHint"].startswith(f"{field}: ")


def queue_runs(hub, count, pool="burst"):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    package = state(hub).runs.add_package(name=f"p{uuid.uuid4().hex[:6]}", version="1", data=buf.getvalue(),
                                          created_by="t")
    return [dispatcher(hub).submit(package_id=package.id, user_id="u", user_name="t", pool=pool)
            for _ in range(count)]


def test_the_autoscaler_follows_the_queue_and_records_each_change(desk, fake):
    hub, scaler = desk.hub, autoscaler(desk.hub)
    desk("PUT", "/api/v1/pools/burst/autoscale", POLICY)
    assert [(o.before, o.after) for o in scaler.evaluate(utcnow())] == [(0, 0)]
    assert fake.calls == [("burst", 0)]  # asked every tick: providers reconcile

    queue_runs(hub, 2)
    (up,) = scaler.evaluate(utcnow())
    assert (up.before, up.after) == (0, 2) and "2 runs waiting for 0 executors" in up.reason
    queue_runs(hub, 5)
    (held,) = scaler.evaluate(utcnow())  # cooldown
    assert (held.after, held.reason) == (2, "cooling down")
    (up,) = scaler.evaluate(utcnow() + dt.timedelta(seconds=31))
    assert (up.before, up.after) == (2, 3)  # the maximum

    events = desk("GET", "/api/v1/pools/burst/autoscale/events")[1]["resultValue"]["items"]
    assert [(e["from"], e["to"]) for e in events] == [(2, 3), (0, 2)]  # newest first
    assert events[1]["provider"] == "fake" and "waiting" in events[1]["reason"]
    # Every pool's policy at once, with its size and last decision (the autoscaler's overview).
    [listed] = desk("GET", "/api/v1/autoscale")[1]["resultValue"]["items"]
    assert (listed["pool"], listed["size"], listed["lastEvent"]["to"]) == ("burst", 3, 3)
    from rpahub_plugins.audit_log.models import AuditEntry

    assert AuditEntry.select().where((AuditEntry.action == "pool.scale") & (AuditEntry.target == "burst")).count() == 2


def test_idle_members_are_scaled_away_and_busy_ones_kept(desk, fake):
    from rpahub_adapters.tces130 import proof
    from rpahub_core.sessions import ExecutorSession

    hub, scaler = desk.hub, autoscaler(desk.hub)
    desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, "min": 0, "idleSeconds": 60})
    AutoscalePolicy.update(size=3).where(AutoscalePolicy.pool == "burst").execute()
    Supplier.create(code="v", secret_enc=hub.keys.encrypt("autoscale-secret-0123456"))
    for robot in ("b-1", "b-2", "b-3"):
        state(hub).gateway.register(ExecutorSession(robot, "http"),
                                    {"supplierCode": "v", "supplierSecret": proof("autoscale-secret-0123456", robot)})
        PoolMember.create(pool="burst", executor_id=robot)
    (run,) = queue_runs(hub, 1)
    assert dispatcher(hub).tick() == 1  # one member now holds a run
    holder = RunInstance.get_by_id(run.id).executor_id

    members = {e.id: e for e in scaler.members("burst", utcnow() + dt.timedelta(seconds=90))}
    assert members[holder].busy and all(not e.busy and e.idle_s >= 89 for k, e in members.items() if k != holder)
    assert scaler.members("burst", utcnow())[0].idle_s < 5  # registered just now
    (down,) = scaler.evaluate(utcnow() + dt.timedelta(seconds=90))
    assert (down.before, down.after) == (3, 1) and "2 executors idle" in down.reason


def test_waiting_runs_and_the_oldest_wait_come_from_the_queue(desk):
    hub, scaler = desk.hub, autoscaler(desk.hub)
    assert scaler.queue("burst", utcnow()) == (0, None)
    first, _ = queue_runs(hub, 2)
    QueueEntry.update(enqueued_at=utcnow() - dt.timedelta(seconds=40), not_before=utcnow() - dt.timedelta(
        seconds=40)).where(QueueEntry.run_id == first.id).execute()
    depth, oldest = scaler.queue("burst", utcnow())
    assert depth == 2 and 39 <= oldest <= 45
    # A run in retry backoff is not waiting for capacity yet.
    QueueEntry.update(not_before=utcnow() + dt.timedelta(seconds=60)).where(QueueEntry.run_id == first.id).execute()
    assert scaler.queue("burst", utcnow())[0] == 1


def test_a_provider_that_falls_short_reports_the_real_size(desk, fake):
    scaler = autoscaler(desk.hub)
    desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, "min": 2})
    fake.limit = 1
    (o,) = scaler.evaluate(utcnow())
    assert (o.desired, o.after) == (2, 1)
    assert desk("GET", "/api/v1/pools/burst/autoscale")[1]["resultValue"]["size"] == 1


def test_a_deleted_pool_is_scaled_to_zero_and_its_policy_dropped(desk, fake):
    scaler = autoscaler(desk.hub)
    desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, "min": 1})
    scaler.evaluate(utcnow())
    assert desk("DELETE", "/api/v1/pools/burst")[0] == 200
    (o,) = scaler.evaluate(utcnow())
    assert (o.after, o.reason) == (0, "pool deleted") and fake.calls[-1] == ("burst", 0)
    assert AutoscalePolicy.get_or_none(AutoscalePolicy.pool == "burst") is None
    assert AutoscaleEvent.select().where(AutoscaleEvent.pool == "burst").count() == 2


def test_the_provider_cannot_change_while_it_runs_executors(desk, fake):
    desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, "min": 1})
    autoscaler(desk.hub).evaluate(utcnow())
    status, body = desk("PUT", "/api/v1/pools/burst/autoscale", {**POLICY, "provider": "local"})
    assert status == 409 and body["resultHint"].startswith("provider: ")


def test_pools_of_other_providers_and_plain_names_are_not_the_local_providers(desk):
    from rpahub_plugins.autoscale.service import ScalingPool

    assert desk.hub.scale_pool("burst", 3) is None
    assert desk.hub.scale_pool(ScalingPool("burst", "nimbus", 0, 3), 3) is None
    assert "autoscale.local" not in desk.hub.state  # nothing was started


# -- the local provider, in process: real children, no run reaches them ---------------


@pytest.fixture
def local(tmp_path):
    from rpahub_plugins.autoscale import local_provider

    # Nothing listens at hub_url: the children keep trying to register, which is all this needs.
    app = make_app(tmp_path / "home", "", plugins={"autoscale": {
        "local_hub_url": "http://127.0.0.1:9", "drain_s": 0, "stop_grace_s": 5, "restart_delay_s": 60}})
    with hubdb.connection():
        provider = local_provider(app.hub)
        try:
            yield app.hub, provider
        finally:
            provider.stop_all()
            app.hub.close()


def test_the_local_provider_starts_children_once_and_spares_those_holding_a_run(local):
    from rpahub_plugins.autoscale.service import ScalingPool

    hub, provider = local
    assert hub.scale_pool(ScalingPool("burst", "local", 0, 2), 0) == 0  # a pool the dispatch plugin does not know
    dispatcher(hub).set_pool("burst", description="", policy="least_loaded", members=[], labels=[], create=True)
    pool = ScalingPool("burst", "local", 0, 2)
    assert hub.scale_pool(pool, 2) == 2
    children = dict(provider.children)
    assert set(children) == {"burst-auto-1", "burst-auto-2"} and all(c.alive for c in children.values())
    assert {m.executor_id for m in PoolMember.select()} == set(children)
    supplier = Supplier.get_by_id("autoscale-local")
    secret = hub.keys.decrypt(supplier.secret_enc)
    assert len(secret) >= 32 and secret not in supplier.secret_enc
    for child in children.values():
        assert secret not in " ".join(child.proc.args)
        assert child.proc.args[child.proc.args.index("--robot-id") + 1] == child.robot_id
    assert hub.scale_pool(pool, 2) == 2 and provider.children == children  # tracked across ticks

    (run,) = queue_runs(hub, 1)
    RunInstance.update(executor_id="burst-auto-2", state="running").where(RunInstance.id == run.id).execute()
    assert hub.scale_pool(pool, 0) == 1  # auto-1 went, auto-2 holds a run
    wait_for(lambda: not children["burst-auto-1"].alive, 10, "the idle child exiting")
    assert children["burst-auto-2"].alive and [m.executor_id for m in PoolMember.select()] == ["burst-auto-2"]

    RunInstance.update(state="success").where(RunInstance.id == run.id).execute()
    assert hub.scale_pool(pool, 0) == 0
    wait_for(lambda: not children["burst-auto-2"].alive, 10, "the second child exiting")
    assert hub.scale_pool(pool, 0) == 0 and provider.children == {} and PoolMember.select().count() == 0


def test_a_run_placed_while_draining_keeps_the_child_until_it_ends(local):
    from rpahub_plugins.autoscale.service import ScalingPool

    hub, provider = local
    dispatcher(hub).set_pool("burst", description="", policy="least_loaded", members=[], labels=[], create=True)
    pool = ScalingPool("burst", "local", 0, 1)
    provider.drain_s = 60
    assert hub.scale_pool(pool, 1) == 1 and hub.scale_pool(pool, 0) == 0
    child = provider.children["burst-auto-1"]
    assert child.draining_since is not None and PoolMember.select().count() == 0
    (run,) = queue_runs(hub, 1)  # placed on it just before it left the pool
    RunInstance.update(executor_id="burst-auto-1", state="dispatched").where(RunInstance.id == run.id).execute()
    provider.drain_s = 0
    assert hub.scale_pool(pool, 0) == 0
    time.sleep(0.5)
    assert child.alive and child.terminated_at is None
    # Wanted again before it stopped: it rejoins instead of a new process starting.
    assert hub.scale_pool(pool, 1) == 1 and provider.children == {"burst-auto-1": child}
    assert [m.executor_id for m in PoolMember.select()] == ["burst-auto-1"]
    RunInstance.update(state="failed").where(RunInstance.id == run.id).execute()
    assert hub.scale_pool(pool, 0) == 0
    wait_for(lambda: not child.alive, 10, "the child exiting")


def test_a_child_draining_out_of_a_deleted_pool_is_still_stopped(local):
    from rpahub_plugins.dispatch.models import Pool

    hub, provider = local
    dispatcher(hub).set_pool("burst", description="", policy="least_loaded", members=[], labels=[], create=True)
    scaler = autoscaler(hub)
    scaler.set_policy("burst", provider="local", min_size=1, max_size=2, queue_per_executor=1, max_wait_s=60,
                      idle_s=300, cooldown_s=0, enabled=True)
    scaler.evaluate()
    child = provider.children["burst-auto-1"]
    assert child.alive
    provider.drain_s = 60  # still draining when the policy goes
    with hubdb.atomic():  # what DELETE /api/v1/pools/burst does
        PoolMember.delete().execute()
        Pool.delete().execute()
    scaler.evaluate()
    assert AutoscalePolicy.select().count() == 0  # nothing serves the pool any more
    assert child.draining_since is not None and child.terminated_at is None
    provider.drain_s = 0
    scaler.evaluate()  # no policy left, yet the drained child gets its SIGTERM
    assert child.terminated_at is not None
    wait_for(lambda: not child.alive, 10, "the child exiting")
    scaler.evaluate()
    assert provider.children == {}


# -- end to end: the local provider starts and stops real executor processes -----------

PACKAGE = "import time\nprint('working', flush=True)\ntime.sleep(1.5)\nprint('RPA-OUTPUT done=yes', flush=True)\n"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout}s")


def executor_processes(pool):
    """pid -> argv of the reference executors serving ``pool`` (robot ids <pool>-auto-<n>)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode() for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if "rpahub_contrib.executor.cli" in argv and any(a.startswith(f"{pool}-auto-") for a in argv):
            found[int(entry)] = argv
    return found


@pytest.mark.e2e
@pytest.mark.skipif(not os.path.isdir("/proc"), reason="finds the executor processes in /proc")
def test_the_autoscaler_starts_executors_when_the_queue_grows_and_stops_idle_ones(tmp_path):
    import requests

    pool = f"burst{uuid.uuid4().hex[:6]}"
    env = {"RPAHUB_PLUGINS__EXECUTORS__HEARTBEAT_S": "1", "RPAHUB_PLUGINS__DISPATCH__TICK_S": "0.5",
           "RPAHUB_PLUGINS__AUTOSCALE__TICK_S": "0.5", "RPAHUB_PLUGINS__AUTOSCALE__DRAIN_S": "0.5"}
    started = time.monotonic()
    try:
        with LiveHub(tmp_path / "hub", env=env) as live:
            token = live.admin_token()

            def call(method, path, body=None):
                status, answer = live.call(method, path, body, token=token)
                return status, answer

            assert call("POST", "/api/v1/pools", {"name": pool})[0] == 201
            status, body = call("PUT", f"/api/v1/pools/{pool}/autoscale", {
                "min": 0, "max": 2, "queuePerExecutor": 1, "maxWaitSeconds": 5, "idleSeconds": 3,
                "cooldownSeconds": 1})
            assert status == 200, body
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("main.py", PACKAGE)
            package = requests.post(live.url + "/api/v1/packages", headers={"Authorization": f"Bearer {token}"},
                                    data={"name": "nap", "version": "1"}, files={"file": ("nap.zip", buf.getvalue())},
                                    timeout=10).json()["resultValue"]
            time.sleep(1.5)  # a few ticks with an empty queue start nothing
            assert executor_processes(pool) == {}

            runs = []
            for _ in range(3):
                status, body = call("POST", "/api/v1/dispatch", {"packageId": package["id"], "pool": pool})
                assert status == 201, body
                runs.append(body["resultValue"]["id"])

            procs = wait_for(lambda: len(p := executor_processes(pool)) == 2 and p, 10, "two executor processes")
            for argv in procs.values():  # the secret travels in the environment only
                assert "--secret" not in argv and "--supplier" in argv
            robots = {f"{pool}-auto-1", f"{pool}-auto-2"}
            assert {argv[argv.index("--robot-id") + 1] for argv in procs.values()} == robots
            pid = next(iter(procs))
            with open(f"/proc/{pid}/environ", "rb") as fh:
                child_env = dict(v.split(b"=", 1) for v in fh.read().split(b"\0") if b"=" in v)
            assert b"RPAHUB_EXECUTOR_SECRET" in child_env
            assert not any(k.startswith(b"RPAHUB_PLUGINS") for k in child_env)  # the hub's settings stay home

            def registered():
                states = [call("GET", f"/api/v1/executors/{r}")[1]["resultValue"] for r in robots]
                return all(s and s["state"] in ("online", "busy") for s in states)

            wait_for(registered, 10, "the executors registering")

            def finished():
                found = [call("GET", f"/api/v1/runs/{r}")[1]["resultValue"] for r in runs]
                return all(f["state"] in ("success", "failed", "cancelled") for f in found) and found

            done = wait_for(finished, 20, "the queued runs finishing")
            assert [d["state"] for d in done] == ["success"] * 3, done
            assert {d["executorId"] for d in done} <= robots and all(d["outputs"] == {"done": "yes"} for d in done)

            # Idle for 3 s: both leave the pool and their processes exit.
            wait_for(lambda: not executor_processes(pool), 15, "the idle executors stopping")
            policy = call("GET", f"/api/v1/pools/{pool}/autoscale")[1]["resultValue"]
            assert policy["size"] == 0
            assert call("GET", f"/api/v1/pools/{pool}")[1]["resultValue"]["members"] == []
            wait_for(lambda: all(call("GET", f"/api/v1/executors/{r}")[1]["resultValue"]["state"] == "offline"
                                 for r in robots), 5, "the executors going offline")
            events = call("GET", f"/api/v1/pools/{pool}/autoscale/events")[1]["resultValue"]["items"]
            print("\n".join(f"{e['from']} -> {e['to']}: {e['reason']}" for e in reversed(events)))
            ups = [e for e in events if e["to"] > e["from"]]
            downs = [e for e in events if e["to"] < e["from"]]
            assert ups and all("waiting" in e["reason"] for e in ups) and max(e["to"] for e in ups) == 2
            assert downs and all("idle" in e["reason"] for e in downs) and events[0]["to"] == 0
        assert time.monotonic() - started < 60
    finally:
        for pid in executor_processes(pool):  # whatever a failure left behind
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
