"""The heartbeat hot path: no table is touched on an ordinary heartbeat, yet liveness,
leases and ownership behave as before (docs/benchmarks.md has the numbers)."""

import datetime as dt
from dataclasses import dataclass

import pytest
from test_dispatch import SECRET, Desk

from rpahub_adapters.tces130 import proof
from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.sessions import ExecutorSession, ProtocolError
from rpahub_plugins.executors.models import Executor, RunInstance


@dataclass
class PushSession(ExecutorSession):
    push: bool = True


@pytest.fixture
def desk(app):
    with hubdb.connection():
        yield Desk(app)


class Statements:
    """Counts the SQL statements the database runs while active."""

    def __init__(self, monkeypatch):
        self.sql = []
        real = hubdb.database.execute_sql

        def counting(sql, params=None, *a, **kw):
            self.sql.append(sql)
            return real(sql, params, *a, **kw)

        monkeypatch.setattr(hubdb.database.obj, "execute_sql", counting)


def running(desk, robot_id):
    desk.robot(robot_id)
    run = desk.submit(executor_id=robot_id)
    desk.d.tick()
    desk.ex.gateway.heartbeat(desk.sessions[robot_id], {"runInstanceId": run.id})
    assert desk.run(run.id).state == "running"
    return run


def test_a_heartbeat_naming_a_held_run_runs_no_statement(desk, monkeypatch):
    gw = desk.ex.gateway
    run = running(desk, "r1")
    gw.batched = True
    statements = Statements(monkeypatch)
    for _ in range(20):
        gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})
    assert statements.sql == []
    # Due for renewal (as if the lease ran down): the row is read and the lease written again.
    soon = utcnow() + dt.timedelta(seconds=1)
    RunInstance.update(lease_expires_at=soon).where(RunInstance.id == run.id).execute()
    gw._held["r1"] = (*gw._held["r1"][:2], soon, gw._held["r1"][3])
    statements.sql.clear()
    gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})
    assert any(s.startswith("UPDATE") and "lease_expires_at" in s for s in statements.sql)
    assert desk.run(run.id).lease_expires_at > utcnow() + dt.timedelta(seconds=gw.offline_after_s * 0.9)


def test_a_run_taken_away_is_refused_within_recheck_s(desk, monkeypatch):
    gw = desk.ex.gateway
    run = running(desk, "r1")
    desk.robot("r2")
    RunInstance.update(executor_id="r2").where(RunInstance.id == run.id).execute()  # another process moved it
    gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})  # still remembered as held: no read
    clock = [0.0]
    real = __import__("time").monotonic
    monkeypatch.setattr("rpahub_plugins.executors.gateway.time.monotonic", lambda: real() + clock[0])
    clock[0] = gw.recheck_s + 0.1
    with pytest.raises(ProtocolError, match="belongs to another executor"):
        gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})
    with pytest.raises(ProtocolError, match="belongs to another executor"):  # and it stays forgotten
        gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})


def test_a_finished_run_is_not_held_any_more(desk):
    gw = desk.ex.gateway
    run = running(desk, "r1")
    gw.report_finish(desk.sessions["r1"], {"runInstanceId": run.id, "status": 0})
    assert "r1" not in gw._held
    gw.heartbeat(desk.sessions["r1"], {"runInstanceId": run.id})  # a late heartbeat naming it: no error
    assert Executor.get_by_id("r1").state == "online"


def test_batched_liveness_is_written_by_flush_in_few_statements(desk, monkeypatch):
    gw = desk.ex.gateway
    for i in range(30):
        desk.robot(f"b{i}")
    past = utcnow() - dt.timedelta(minutes=5)
    Executor.update(last_heartbeat=past, state="offline").execute()
    gw.batched = True
    statements = Statements(monkeypatch)
    for i in range(30):
        gw.heartbeat(desk.sessions[f"b{i}"], {})
    assert statements.sql == []
    assert Executor.select().where(Executor.last_heartbeat > past).count() == 0  # nothing written yet
    assert gw.flush() == 30
    updates = [s for s in statements.sql if s.startswith("UPDATE")]
    assert len(updates) == 2 and '"executor"' in updates[0] and '"run_instance"' in updates[1]  # liveness, leases
    rows = list(Executor.select())
    assert {r.state for r in rows} == {"online"} and all(r.last_heartbeat > past for r in rows)
    assert gw.flush() == 0  # nothing new


def test_robots_that_never_name_their_run_keep_it_through_the_flush(desk):
    """The run id in Heartbeat is optional: such a robot holds its runs while it is alive,
    and the flush renews their leases in one statement."""
    gw = desk.ex.gateway
    desk.robot("quiet")
    run = desk.submit(executor_id="quiet")
    desk.d.tick()
    soon = utcnow() + dt.timedelta(seconds=1)
    RunInstance.update(lease_expires_at=soon).where(RunInstance.id == run.id).execute()
    gw.batched = True
    gw.heartbeat(desk.sessions["quiet"], {})
    assert desk.run(run.id).lease_expires_at == soon  # not yet
    gw.flush()
    assert desk.run(run.id).lease_expires_at > utcnow() + dt.timedelta(seconds=gw.offline_after_s * 0.9)


def test_a_closed_or_replaced_socket_is_not_brought_back_online_by_a_late_flush(desk):
    gw = desk.ex.gateway
    gw.batched = True
    sessions = {}
    for robot_id in ("gone", "replaced", "live"):
        session = PushSession(robot_id, "ws")
        gw.register(session, {"supplierCode": "v", "supplierSecret": proof(SECRET, robot_id)})
        gw.heartbeat(session, {})
        sessions[robot_id] = session
    gw.disconnected(sessions["gone"])  # its pending liveness goes with it
    sessions["replaced"].registered = False  # a newer connection took over ("newest" policy)
    Executor.update(state="offline").where(Executor.id == "replaced").execute()
    assert gw.flush() == 1
    assert {e.id: e.state for e in Executor.select()} == {"gone": "offline", "replaced": "offline", "live": "online"}


def test_liveness_heard_before_an_outage_is_not_written_as_fresh(desk):
    """The flush could not run while the database was away: what it holds is written with
    when it was heard, and news older than the offline timeout is dropped, not passed off
    as a sign of life (nor used to renew leases)."""
    gw = desk.ex.gateway
    desk.robot("early")
    desk.robot("late")
    run = desk.submit(executor_id="early")
    desk.d.tick()
    lease = utcnow() + dt.timedelta(seconds=1)
    RunInstance.update(lease_expires_at=lease).where(RunInstance.id == run.id).execute()
    past = utcnow() - dt.timedelta(minutes=10)
    Executor.update(last_heartbeat=past).execute()
    gw.batched = True
    gw.heartbeat(desk.sessions["early"], {})
    gw.heartbeat(desk.sessions["late"], {})
    key, busy, push, _ = gw._alive["early"]
    gw._alive["early"] = (key, busy, push, utcnow() - dt.timedelta(seconds=gw.offline_after_s + 1))
    heard = gw._alive["late"][3]
    assert gw.flush() == 1
    assert Executor.get_by_id("early").last_heartbeat == past
    assert desk.run(run.id).lease_expires_at == lease
    assert Executor.get_by_id("late").last_heartbeat == heard.replace(microsecond=0)


def test_nobody_is_reaped_while_the_database_recovers(desk):
    gw = desk.ex.gateway
    desk.robot("r1")
    Executor.update(last_heartbeat=utcnow() - dt.timedelta(hours=1)).execute()
    hubdb.availability.failed()  # the database was away a moment ago
    try:
        assert gw.reap() == [] and Executor.get_by_id("r1").state == "online"
    finally:
        hubdb.availability.reset()
    assert gw.reap() == ["r1"] and Executor.get_by_id("r1").state == "offline"
