"""Schedules (6.1.2c): occurrence arithmetic, firing on a controllable clock, misfires across
a restart, at most one run per occurrence, and the API."""

import datetime as dt
import io
import logging
import threading
import zipfile
from zoneinfo import ZoneInfo

import pytest

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.testing import bearer, make_app
from rpahub_plugins.audit_log.models import AuditEntry
from rpahub_plugins.auth_local.models import User
from rpahub_plugins.dispatch import dispatcher
from rpahub_plugins.dispatch.models import Pool
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import RunInstance
from rpahub_plugins.schedules.models import Schedule, ScheduleOccurrence
from rpahub_plugins.schedules.occurrences import Rule, RuleError
from rpahub_plugins.schedules.service import DEFAULTS, Schedules, schedules, settle
from rpahub_plugins.schedules.ticker import make_ticker, run_forever

SHANGHAI = ZoneInfo("Asia/Shanghai")
WORKING_DAYS = [1, 2, 3, 4, 5]
PLANNER = UserPrincipal(id="u-planner", name="planner", permissions=frozenset({"*"}))


def bj(*parts) -> dt.datetime:
    """Beijing wall-clock time as the naive UTC the hub stores."""
    return dt.datetime(*parts, tzinfo=SHANGHAI).astimezone(dt.UTC).replace(tzinfo=None)


def local(instant: dt.datetime, zone: str = "Asia/Shanghai") -> dt.datetime:
    return instant.replace(tzinfo=dt.UTC).astimezone(ZoneInfo(zone)).replace(tzinfo=None)


def add_package(hub):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    return state(hub).runs.add_package(name="report", version="1", data=buf.getvalue(), created_by="t")


class Planner:
    """A hub's schedule service, with a package to schedule."""

    def __init__(self, hub):
        self.hub = hub
        self.service = schedules(hub)
        self.package = add_package(hub)

    def create(self, name, now=dt.datetime(2024, 1, 1), **values):
        values = {"name": name, "package_id": self.package.id, "unit": "minutes", "every": 15,
                  "anchor": dt.datetime(2024, 5, 6, 8, 0), **values}
        return self.service.create(values, by=PLANNER, now=now)


@pytest.fixture
def planner(app):
    with hubdb.connection():
        yield Planner(app.hub)


def walk(service, start, end, step):
    """Tick from ``start`` to ``end``; return (tick, row) for every occurrence handled."""
    out, now = [], start
    while now <= end:
        out.extend((now, row) for row in service.fire_due(now))
        now += step
    return out


# -- occurrence arithmetic ------------------------------------------------------------------


def test_monthly_on_the_31st_clamps_to_short_months_and_never_drifts():
    rule = Rule("months", 1, dt.datetime(2024, 1, 31, 9, 0))
    days = [local(t).date().isoformat() for t in rule.upcoming(dt.datetime(2024, 1, 1), 14)]
    assert days == ["2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30",
                    "2024-07-31", "2024-08-31", "2024-09-30", "2024-10-31", "2024-11-30", "2024-12-31",
                    "2025-01-31", "2025-02-28"]
    assert all(local(t).time() == dt.time(9, 0) for t in rule.upcoming(dt.datetime(2024, 1, 1), 14))
    # Searching from anywhere gives the same days: each is computed from the anchor.
    assert local(rule.next_after(bj(2025, 2, 28, 9, 0))) == dt.datetime(2025, 3, 31, 9, 0)
    assert local(rule.last_at_or_before(bj(2025, 3, 30, 23, 0))) == dt.datetime(2025, 2, 28, 9, 0)
    every_other = Rule("months", 2, dt.datetime(2023, 12, 31, 18, 30))
    assert [local(t).date().isoformat() for t in every_other.upcoming(dt.datetime(2023, 12, 1), 4)] == [
        "2023-12-31", "2024-02-29", "2024-04-30", "2024-06-30"]


def test_window_weekdays_and_date_range_skip_occurrences():
    rule = Rule("minutes", 15, dt.datetime(2024, 5, 6, 8, 0), window_from=dt.time(8), window_to=dt.time(18),
                weekdays=frozenset(WORKING_DAYS), end_date=dt.date(2024, 5, 20))
    friday = [local(t) for t in rule.upcoming(bj(2024, 5, 10, 17, 20), 4)]
    assert friday == [dt.datetime(2024, 5, 10, 17, 30), dt.datetime(2024, 5, 10, 17, 45),
                      dt.datetime(2024, 5, 13, 8, 0), dt.datetime(2024, 5, 13, 8, 15)]  # 18:00 is outside
    assert local(rule.last_at_or_before(bj(2024, 5, 12, 12, 0))) == dt.datetime(2024, 5, 10, 17, 45)
    assert rule.first() == bj(2024, 5, 6, 8, 0)
    assert len(rule.upcoming(bj(2024, 5, 6), 10_000)) == 11 * 40  # 11 working days, 40 a day
    assert rule.next_after(bj(2024, 5, 20, 17, 45)) is None  # the range ended (inclusive)
    later = Rule("days", 1, dt.datetime(2024, 5, 1, 7, 0), start_date=dt.date(2024, 5, 4))
    assert local(later.first()) == dt.datetime(2024, 5, 4, 7, 0)


def test_occurrences_are_dst_safe():
    days = Rule("days", 1, dt.datetime(2024, 3, 29, 9, 0), timezone="Europe/Berlin")
    assert [local(t, "Europe/Berlin").hour for t in days.upcoming(bj(2024, 3, 1), 4)] == [9, 9, 9, 9]
    hours = Rule("hours", 1, dt.datetime(2024, 3, 31, 0, 0), timezone="Europe/Berlin")
    seen = [local(t, "Europe/Berlin").hour for t in hours.upcoming(dt.datetime(2024, 3, 30), 4)]
    assert seen == [0, 1, 3, 4]  # 02:00 does not exist that night; real hours stay an hour apart
    skipped_hour = Rule("days", 1, dt.datetime(2024, 3, 30, 2, 30), timezone="Europe/Berlin")
    assert [local(t, "Europe/Berlin").strftime("%d %H:%M") for t in skipped_hour.upcoming(dt.datetime(2024, 3, 1), 3)] \
        == ["30 02:30", "31 03:30", "01 02:30"]


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"window_from": dt.time(18), "window_to": dt.time(8)}, "window_to"),
    ({"window_from": dt.time(8), "window_to": dt.time(8)}, "window_to"),
    ({"window_from": dt.time(8)}, "window_to"),
    ({"start_date": dt.date(2024, 6, 1), "end_date": dt.date(2024, 5, 1)}, "end_date"),
    ({"every": 0}, "every"),
    ({"unit": "fortnights"}, "unit"),
    ({"weekdays": frozenset({0})}, "weekdays"),
])
def test_invalid_rules_name_the_field(kwargs, field):
    with pytest.raises(RuleError) as caught:
        Rule(**{"unit": "minutes", "every": 15, "anchor": dt.datetime(2024, 5, 6, 8, 0), **kwargs})
    assert caught.value.field == field


def test_the_misfire_policy_settles_due_occurrences():
    rule = Rule("minutes", 15, dt.datetime(2024, 5, 6, 8, 0))
    minute = dt.timedelta(minutes=1)

    def due(policy, grace_min, now):
        return settle(rule, bj(2024, 5, 6, 8, 30), now, policy=policy, grace=grace_min * minute, on_time=minute)

    assert due("fire_once", 30, bj(2024, 5, 6, 8, 29)) is None  # nothing due yet
    on_time = due("skip", 0, bj(2024, 5, 6, 8, 30, 5))
    assert (on_time.fire, on_time.coalesced, on_time.skipped) == (True, 0, 0)
    # down from 08:20 to 09:05: 08:30, 08:45 and 09:00 were missed
    caught_up = due("fire_once", 30, bj(2024, 5, 6, 9, 5))
    assert (caught_up.occurrence, caught_up.earliest) == (bj(2024, 5, 6, 9, 0), bj(2024, 5, 6, 8, 30))
    assert (caught_up.fire, caught_up.coalesced, caught_up.skipped) == (True, 1, 1)  # 08:45 + 09:00; not 08:30
    assert caught_up.next_run_at == bj(2024, 5, 6, 9, 15)
    too_old = due("fire_once", 2, bj(2024, 5, 6, 9, 5))
    assert (too_old.fire, too_old.skipped) == (False, 3)
    skipped = due("skip", 30, bj(2024, 5, 6, 9, 5))
    assert (skipped.fire, skipped.skipped) == (False, 3)
    back_quickly = due("skip", 30, bj(2024, 5, 6, 9, 0, 40))
    assert (back_quickly.fire, back_quickly.coalesced, back_quickly.skipped) == (True, 0, 2)


# -- firing ----------------------------------------------------------------------------------


def test_working_day_schedule_fires_exactly_at_its_occurrences_and_a_restart_never_fires_twice(
        tmp_path, database_url, app):
    """Every 15 minutes between 08:00 and 18:00 on working days, with a controllable clock."""
    step = dt.timedelta(seconds=20)
    with hubdb.connection():
        p = Planner(app.hub)
        rule = {"window_from": "08:00", "window_to": "18:00", "weekdays": WORKING_DAYS,
                "now": bj(2024, 5, 10, 17, 20)}
        catch_up = p.create("catch-up", misfire_policy="fire_once", misfire_grace_s=1800, **rule)
        strict = p.create("strict", misfire_policy="skip", **rule)
        assert catch_up.next_run_at == bj(2024, 5, 10, 17, 30)
        ticks = (walk(p.service, bj(2024, 5, 10, 17, 20), bj(2024, 5, 10, 18, 30), step)  # Friday evening
                 + walk(p.service, bj(2024, 5, 10, 18, 30), bj(2024, 5, 13, 7, 50), dt.timedelta(hours=1))
                 + walk(p.service, bj(2024, 5, 13, 7, 50), bj(2024, 5, 13, 8, 20), step))  # Monday morning
        expected = [bj(2024, 5, 10, 17, 30), bj(2024, 5, 10, 17, 45), bj(2024, 5, 13, 8, 0), bj(2024, 5, 13, 8, 15)]
        for schedule in (catch_up, strict):
            mine = [(tick, row) for tick, row in ticks if row.schedule_id == schedule.id]
            assert [row.occurrence for _, row in mine] == expected
            # each fired on the first tick at or after its occurrence, as one plain run
            assert all(dt.timedelta(0) <= tick - row.occurrence < step for tick, row in mine)
            assert all((row.outcome, row.coalesced, row.skipped) == ("fired", 0, 0) and row.run_id
                       for _, row in mine)
        assert RunInstance.select().count() == 8
    app.hub.close()  # the hub goes down after 08:20 on Monday ...

    again = make_app(tmp_path / "home", database_url)  # ... and comes back at 09:05 on the same database
    try:
        with hubdb.connection():
            service = schedules(again.hub)
            rows = {row.schedule_id: row for row in service.fire_due(bj(2024, 5, 13, 9, 5))}
            # fire_once: 08:45 and 09:00 are within the 30-minute grace and make one run; 08:30 is too old
            coalesced = rows[catch_up.id]
            assert (coalesced.occurrence, coalesced.earliest) == (bj(2024, 5, 13, 9, 0), bj(2024, 5, 13, 8, 30))
            assert (coalesced.outcome, coalesced.coalesced, coalesced.skipped) == ("fired", 1, 1)
            assert coalesced.run_id
            # skip: 08:30, 08:45 and 09:00 were all missed; no run
            skipped = rows[strict.id]
            assert (skipped.outcome, skipped.run_id, skipped.skipped) == ("skipped", None, 3)
            assert service.fire_due(bj(2024, 5, 13, 9, 5)) == []
            assert service.fire_due(bj(2024, 5, 13, 9, 14, 59)) == []
            assert {r.schedule_id for r in service.fire_due(bj(2024, 5, 13, 9, 15))} == {catch_up.id, strict.id}

            fired = ScheduleOccurrence.select().where(ScheduleOccurrence.outcome == "fired")
            assert RunInstance.select().count() == fired.count() == 8 + 1 + 2
            assert len({(o.schedule_id, o.occurrence) for o in ScheduleOccurrence.select()}) \
                == ScheduleOccurrence.select().count()
            current = Schedule.get_by_id(catch_up.id)
            assert (current.next_run_at, current.last_occurrence_at) == (bj(2024, 5, 13, 9, 30), bj(2024, 5, 13, 9, 15))
    finally:
        again.hub.close()


def test_monthly_schedule_on_the_31st_fires_on_the_last_day_of_short_months(planner):
    month_end = planner.create("month-end", unit="months", every=1, anchor=dt.datetime(2024, 1, 31, 9, 0))
    fired = walk(planner.service, bj(2024, 1, 28, 9, 0, 30), bj(2024, 7, 1, 9, 0, 30), dt.timedelta(days=1))
    assert [local(tick).date().isoformat() for tick, _ in fired] == [
        "2024-01-31", "2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31", "2024-06-30"]
    assert all(row.schedule_id == month_end.id and row.outcome == "fired" for _, row in fired)
    assert Schedule.get_by_id(month_end.id).next_run_at == bj(2024, 7, 31, 9, 0)


def test_two_processes_racing_on_one_occurrence_fire_one_run(app):
    with hubdb.connection():
        p = Planner(app.hub)
        made = [p.create(f"race-{i}", unit="hours", every=1) for i in range(4)]
    one, other = schedules(app.hub), Schedules(app.hub, DEFAULTS)  # two hub processes' services
    at, barrier, results, errors = bj(2024, 5, 6, 8, 0, 1), threading.Barrier(2), {}, []

    def tick(name, service):
        try:
            with hubdb.connection():
                barrier.wait(10)
                results[name] = service.fire_due(at)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=tick, args=item) for item in (("one", one), ("other", other))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sorted(row.schedule_id for row in results["one"] + results["other"]) == sorted(s.id for s in made)
    with hubdb.connection():
        assert RunInstance.select().count() == ScheduleOccurrence.select().count() == 4
        # A process that read the schedules before the other committed still reaches the unique key.
        Schedule.update(next_run_at=bj(2024, 5, 6, 8, 0)).execute()
        assert other.fire_due(at) == []
        assert RunInstance.select().count() == ScheduleOccurrence.select().count() == 4
        assert {s.next_run_at for s in Schedule.select()} == {bj(2024, 5, 6, 9, 0)}


def test_a_failing_schedule_is_logged_and_never_stops_the_others(planner, caplog):
    dispatcher(planner.hub).set_pool("night-shift", description="", policy="least_loaded", members=[], labels=[],
                                     create=True)
    hourly = {"unit": "hours", "every": 1}
    broken = planner.create("broken", **hourly)
    orphan = planner.create("orphan", pool="night-shift", **hourly)
    healthy = planner.create("healthy", **hourly)
    Schedule.update(timezone="Mars/Olympus").where(Schedule.id == broken.id).execute()  # a row no release writes
    Pool.delete().where(Pool.name == "night-shift").execute()
    at = bj(2024, 5, 6, 8, 0, 1)
    with caplog.at_level(logging.ERROR, logger="rpahub.schedules"):
        rows = {row.schedule_id: row for row in planner.service.fire_due(at)}
    assert rows[healthy.id].outcome == "fired" and rows[healthy.id].run_id
    # the orphan's occurrence failed and is recorded; it tries again at its next occurrence, not every tick
    assert rows[orphan.id].outcome == "failed" and rows[orphan.id].run_id is None
    assert "night-shift" in rows[orphan.id].detail and "night-shift" in Schedule.get_by_id(orphan.id).last_error
    assert Schedule.get_by_id(orphan.id).next_run_at == bj(2024, 5, 6, 9, 0)
    # the broken one is logged, its error kept, and it is left due
    assert broken.id not in rows
    assert any(broken.id in r.getMessage() for r in caplog.records)
    assert "Mars/Olympus" in Schedule.get_by_id(broken.id).last_error
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="rpahub.schedules"):
        assert planner.service.fire_due(at + dt.timedelta(seconds=1)) == []  # backing off: no log every tick
    assert not caplog.records
    # repaired, it catches up: 61 s late is within its 300 s grace
    Schedule.update(timezone="Asia/Shanghai").where(Schedule.id == broken.id).execute()
    rows = planner.service.fire_due(at + dt.timedelta(seconds=61))
    assert [(r.schedule_id, r.outcome) for r in rows] == [(broken.id, "fired")]
    assert Schedule.get_by_id(broken.id).last_error is None


def test_a_deleted_schedule_leaves_no_backoff_behind(planner):
    broken = planner.create("broken", unit="hours", every=1)
    other = planner.create("other", unit="hours", every=1)
    Schedule.update(timezone="Mars/Olympus").where(Schedule.id.in_([broken.id, other.id])).execute()
    at = bj(2024, 5, 6, 8, 0, 1)
    assert planner.service.fire_due(at) == []
    assert set(planner.service._retry_at) == {broken.id, other.id}
    planner.service.delete(broken.id)  # deleted here
    assert set(planner.service._retry_at) == {other.id}
    Schedule.delete().where(Schedule.id == other.id).execute()  # deleted by another hub process
    planner.service.fire_due(at + dt.timedelta(seconds=1))
    assert planner.service._retry_at == {}


class Enough(Exception):
    pass


def ticks_until(ticker, calls, n):
    """A ``sleep`` for ``run_forever``: the clock jumps to the next tick, until ``n`` calls."""
    def sleep(_seconds):
        if len(calls) >= n:
            raise Enough
        ticker.jobs[0].next_run = dt.datetime.now() - dt.timedelta(seconds=1)

    sleep(0)
    return sleep


def test_the_ticker_survives_failing_ticks(planner, monkeypatch):
    calls = []

    def boom(now=None):
        calls.append(now)
        raise RuntimeError("database on fire")

    monkeypatch.setattr(planner.service, "fire_due", boom)
    planner.service.tick()  # logged, not raised
    ticker = make_ticker(planner.service.tick, 1)
    with pytest.raises(Enough):
        run_forever(ticker, ticks_until(ticker, calls, 4))
    assert len(calls) == 4

    raised = []

    def careless_job():
        raised.append(1)
        raise RuntimeError("a job that does not catch")

    ticker = make_ticker(careless_job, 1)
    with pytest.raises(Enough):
        run_forever(ticker, ticks_until(ticker, raised, 3))  # the loop catches too
    assert len(raised) == 3


def test_disabled_schedules_do_not_fire_and_do_not_catch_up_when_enabled(planner):
    s = planner.create("pause", unit="hours", every=1)
    planner.service.update(s.id, {"enabled": False}, now=bj(2024, 5, 6, 7, 0))
    assert Schedule.get_by_id(s.id).next_run_at is None
    assert planner.service.fire_due(bj(2024, 5, 6, 12, 0, 1)) == []
    s = planner.service.update(s.id, {"enabled": True}, now=bj(2024, 5, 6, 12, 30))
    assert s.next_run_at == bj(2024, 5, 6, 13, 0)
    assert [r.occurrence for r in planner.service.fire_due(bj(2024, 5, 6, 13, 0))] == [bj(2024, 5, 6, 13, 0)]


# -- the API -----------------------------------------------------------------------------------


def person(client, admin_token, username, permissions):
    """A signed-in person holding exactly ``permissions``."""
    role = f"r-{username}"
    r = client.simulate_post("/api/v1/roles", headers=bearer(admin_token),
                             json={"name": role, "permissions": permissions})
    assert r.status_code == 201, r.json
    password = "Long-enough-pass-1"
    r = client.simulate_post("/api/v1/users", headers=bearer(admin_token),
                             json={"username": username, "password": password, "roles": [role]})
    assert r.status_code == 201, r.json
    with hubdb.connection():
        User.update(must_change_password=False).where(User.username == username).execute()
    r = client.simulate_post("/api/v1/auth/login", json={"username": username, "password": password})
    return r.json["resultValue"]["token"]


@pytest.fixture
def package_id(app):
    with hubdb.connection():
        return add_package(app.hub).id


def working_days_body(package_id, **extra):
    return {"name": "daily report", "packageId": package_id, "unit": "minutes", "every": 15,
            "anchor": "2030-05-06T08:00:00", "windowFrom": "08:00", "windowTo": "18:00", "weekdays": WORKING_DAYS,
            "arguments": [{"name": "region", "value": "四川"}], **extra}


def test_schedules_api_creates_previews_fires_and_keeps_history(app, client, admin_token, package_id):
    auth = bearer(admin_token)
    r = client.simulate_post("/api/v1/schedules", headers=auth, json=working_days_body(package_id))
    assert r.status_code == 201, r.json
    made = r.json["resultValue"]
    assert made["anchor"] == "2030-05-06T08:00:00+08:00" and made["timezone"] == "Asia/Shanghai"
    assert made["nextRunAt"] == "2030-05-06T00:00:00Z" and made["nextRunAtLocal"] == "2030-05-06T08:00:00+08:00"
    assert (made["weekdays"], made["misfirePolicy"], made["createdBy"]) == (WORKING_DAYS, "fire_once", "admin")
    sid = made["id"]
    with hubdb.connection():
        assert AuditEntry.select().where((AuditEntry.action == "schedule.create") & (AuditEntry.target == sid)).exists()

    r = client.simulate_get(f"/api/v1/schedules/{sid}/preview", params={"count": 3}, headers=auth)
    assert r.status_code == 200
    assert [i["local"] for i in r.json["resultValue"]["items"]] == [
        "2030-05-06T08:00:00+08:00", "2030-05-06T08:15:00+08:00", "2030-05-06T08:30:00+08:00"]
    r = client.simulate_get(f"/api/v1/schedules/{sid}/preview", headers=auth,
                            params={"count": 2, "after": "2030-05-10T09:50:00Z"})  # Friday 17:50 in Beijing
    assert [i["at"] for i in r.json["resultValue"]["items"]] == ["2030-05-13T00:00:00Z", "2030-05-13T00:15:00Z"]

    with hubdb.connection():
        (row,) = schedules(app.hub).fire_due(bj(2030, 5, 6, 8, 0, 1))
    history = client.simulate_get(f"/api/v1/schedules/{sid}/occurrences", headers=auth).json["resultValue"]
    assert history["total"] == 1
    item = history["items"][0]
    assert (item["occurrence"], item["local"], item["outcome"]) == (
        "2030-05-06T00:00:00Z", "2030-05-06T08:00:00+08:00", "fired")
    run = client.simulate_get(f"/api/v1/runs/{item['runId']}", headers=auth).json["resultValue"]
    assert (run["packageId"], run["userName"], run["state"]) == (package_id, "admin", "pending")
    assert run["arguments"] == [{"name": "region", "type": "String", "value": "四川"}]

    listed = client.simulate_get("/api/v1/schedules", params={"q": "daily"}, headers=auth).json["resultValue"]
    assert listed["total"] == 1 and listed["items"][0]["lastRunId"] == row.run_id

    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"enabled": False})
    assert r.status_code == 200 and r.json["resultValue"]["nextRunAt"] is None
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"enabled": True, "every": 30})
    assert r.json["resultValue"]["nextRunAt"] == "2030-05-06T00:30:00Z"  # never again the one that fired
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"windowFrom": None, "windowTo": None})
    assert r.status_code == 200 and r.json["resultValue"]["windowFrom"] is None
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"anchor": "2030-05-06T01:00:00Z"})
    assert r.json["resultValue"]["anchor"] == "2030-05-06T09:00:00+08:00"  # an offset becomes wall-clock time

    assert client.simulate_delete(f"/api/v1/schedules/{sid}", headers=auth).status_code == 200
    assert client.simulate_get(f"/api/v1/schedules/{sid}", headers=auth).status_code == 404
    with hubdb.connection():
        assert ScheduleOccurrence.select().count() == 0 and RunInstance.get_or_none(RunInstance.id == row.run_id)


def test_schedules_api_refuses_without_permission(app, client, admin_token, package_id):
    body = working_days_body(package_id)
    outsider = person(client, admin_token, "outsider", ["runs.read"])
    reader = person(client, admin_token, "reader", ["schedules.read"])
    planner = person(client, admin_token, "planner", ["schedules.read", "schedules.manage"])
    r = client.simulate_get("/api/v1/schedules", headers=bearer(outsider))
    assert r.status_code == 403 and "schedules.read" in r.json["resultHint"]
    assert client.simulate_get("/api/v1/schedules", headers=bearer(reader)).status_code == 200
    r = client.simulate_post("/api/v1/schedules", headers=bearer(reader), json=body)
    assert r.status_code == 403 and "schedules.manage" in r.json["resultHint"]
    # scheduled runs start as their creator: defining one takes the right to start runs
    r = client.simulate_post("/api/v1/schedules", headers=bearer(planner), json=body)
    assert r.status_code == 403 and "runs.start" in r.json["resultHint"]
    sid = client.simulate_post("/api/v1/schedules", headers=bearer(admin_token), json=body).json["resultValue"]["id"]
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=bearer(planner), json={"packageId": package_id})
    assert r.status_code == 403
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=bearer(planner), json={"enabled": False})
    assert r.status_code == 200  # stopping a schedule needs no more than managing schedules
    r = client.simulate_delete(f"/api/v1/schedules/{sid}", headers=bearer(reader))
    assert r.status_code == 403
    with hubdb.connection():
        assert AuditEntry.select().where((AuditEntry.action == "schedule.delete")
                                         & (AuditEntry.result == "denied")).exists()


BAD_INPUT = [
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"windowFrom": "18:00", "windowTo": "08:00"}, "windowTo"),
    ({"windowFrom": "08:00", "windowTo": None}, "windowTo"),
    ({"windowFrom": "8am"}, "windowFrom"),
    ({"startDate": "2030-06-01", "endDate": "2030-05-01"}, "endDate"),
    ({"every": 0}, "every"),
    ({"unit": "fortnights"}, "unit"),
    ({"weekdays": [0]}, "weekdays"),
    ({"misfirePolicy": "twice"}, "misfirePolicy"),
    ({"misfireGraceSeconds": -1}, "misfireGraceSeconds"),
    ({"packageId": "nope"}, "packageId"),
    ({"pool": "missing"}, "pool"),
    ({"executorId": "robot-1", "pool": "p"}, "executorId"),
    ({"anchor": None}, "anchor"),
    ({"colour": "red"}, "colour"),
    # every 7 days from a Sunday never lands on a working day
    ({"unit": "days", "every": 7, "anchor": "2030-05-05T09:00:00", "windowFrom": None, "windowTo": None}, "weekdays"),
    ({"endDate": "2030-05-01"}, "endDate"),
]


def test_schedules_api_refuses_bad_input_naming_the_field(client, admin_token, package_id):
    for change, field in BAD_INPUT:
        body = {k: v for k, v in {**working_days_body(package_id), **change}.items() if v is not None}
        r = client.simulate_post("/api/v1/schedules", headers=bearer(admin_token), json=body)
        assert r.status_code == 400, (change, r.json)
        assert field in {e["field"].split(".")[0] for e in r.json["resultValue"]["errors"]}, (change, r.json)
        assert r.json["resultHint"].startswith(field), (change, r.json)


def test_instants_beyond_the_calendar_are_refused_naming_the_field(client, admin_token, package_id):
    auth = bearer(admin_token)
    sid = client.simulate_post("/api/v1/schedules", headers=auth, json=working_days_body(package_id)).json[
        "resultValue"]["id"]
    # in UTC these are before year 1 and after year 9999
    for after in ("0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00"):
        r = client.simulate_get(f"/api/v1/schedules/{sid}/preview", headers=auth, params={"after": after})
        assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "after", (after, r.json)
    r = client.simulate_get(f"/api/v1/schedules/{sid}/preview", headers=auth,
                            params={"after": "9999-12-31T23:59:59Z"})
    assert r.status_code == 200 and r.json["resultValue"]["items"] == []
    for anchor, zone in (("0001-01-01T00:00:00+14:00", "Asia/Shanghai"), ("9999-12-31T23:59:59Z", "Pacific/Kiritimati"),
                         ("0001-01-01T00:00:00", "Asia/Shanghai")):
        body = {**working_days_body(package_id), "name": "edge", "anchor": anchor, "timezone": zone}
        r = client.simulate_post("/api/v1/schedules", headers=auth, json=body)
        assert r.status_code == 400 and r.json["resultHint"].startswith("anchor"), (anchor, r.json)
        r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"anchor": anchor, "timezone": zone})
        assert r.status_code == 400 and r.json["resultHint"].startswith("anchor"), (anchor, r.json)
    # the last instant there is: nothing comes after it
    rule = Rule(unit="minutes", every=1, anchor=dt.datetime(9999, 12, 31, 23, 59), timezone="UTC")
    assert rule.upcoming(dt.datetime(9999, 12, 31, 23, 59), 3) == [dt.datetime(9999, 12, 31, 23, 59)]
    assert rule.next_after(dt.datetime.max) is None


def test_nul_characters_are_refused_naming_the_field(client, admin_token, package_id):
    auth = bearer(admin_token)
    for change, field in (({"name": "a\x00b"}, "name"), ({"labels": ["x\x00"]}, "labels"),
                          ({"arguments": [{"name": "n", "value": "\x00"}]}, "arguments")):
        r = client.simulate_post("/api/v1/schedules", headers=auth, json={**working_days_body(package_id), **change})
        assert r.status_code == 400 and r.json["resultHint"].startswith(field), (change, r.json)
    r = client.simulate_get("/api/v1/schedules", headers=auth, params={"q": "a\x00"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("q")


def test_schedule_patch_validates_the_merged_schedule(client, admin_token, package_id):
    auth = bearer(admin_token)
    sid = client.simulate_post("/api/v1/schedules", headers=auth, json=working_days_body(package_id)).json[
        "resultValue"]["id"]
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"windowFrom": "19:00"})
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "windowTo"
    r = client.simulate_patch(f"/api/v1/schedules/{sid}", headers=auth, json={"name": None})
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "name"
    r = client.simulate_post("/api/v1/schedules", headers=auth, json=working_days_body(package_id))
    assert r.status_code == 409 and r.json["resultHint"].startswith("name")
    r = client.simulate_get(f"/api/v1/schedules/{sid}/preview", headers=auth, params={"count": 0})
    assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == "count"
    assert client.simulate_get("/api/v1/schedules/nope/occurrences", headers=auth).status_code == 404


# -- previewing a rule before it is saved -----------------------------------------------------

RULE_FIELDS = ("unit", "every", "anchor", "timezone", "startDate", "endDate", "windowFrom", "windowTo", "weekdays")


def rule_of(body):
    return {k: v for k, v in body.items() if k in RULE_FIELDS}


def test_a_rule_is_previewed_before_it_is_saved_and_nothing_is_stored(client, admin_token, package_id):
    auth = bearer(admin_token)
    working_days_at_8 = {"unit": "days", "anchor": "2030-05-06T08:00:00", "timezone": "Asia/Shanghai",
                         "weekdays": WORKING_DAYS}
    # From Thursday noon in Beijing: Friday, then the weekend is left out.
    r = client.simulate_post("/api/v1/schedules/preview", headers=auth,
                             json={**working_days_at_8, "count": 4, "after": "2030-05-09T12:00:00+08:00"})
    assert r.status_code == 200, r.json
    preview = r.json["resultValue"]
    assert preview["timezone"] == "Asia/Shanghai"
    assert [i["at"] for i in preview["items"]] == [
        "2030-05-10T00:00:00Z", "2030-05-13T00:00:00Z", "2030-05-14T00:00:00Z", "2030-05-15T00:00:00Z"]
    assert preview["items"][0]["local"] == "2030-05-10T08:00:00+08:00"
    r = client.simulate_post("/api/v1/schedules/preview", headers=auth, json=working_days_at_8)
    items = r.json["resultValue"]["items"]
    assert len(items) == 10 and items[0]["at"] == "2030-05-06T00:00:00Z"  # from the anchor, 10 by default
    # The same answer as the saved schedule's preview.
    body = working_days_body(package_id, name="saved", every=1, **working_days_at_8, windowFrom=None, windowTo=None)
    sid = client.simulate_post("/api/v1/schedules", headers=auth, json=body).json["resultValue"]["id"]
    saved = client.simulate_get(f"/api/v1/schedules/{sid}/preview", headers=auth).json["resultValue"]
    assert saved["items"] == items
    client.simulate_delete(f"/api/v1/schedules/{sid}", headers=auth)
    with hubdb.connection():
        assert Schedule.select().count() == 0 and ScheduleOccurrence.select().count() == 0
        assert RunInstance.select().count() == 0


def test_a_rule_preview_refuses_what_create_refuses_naming_the_same_field(client, admin_token, package_id):
    auth = bearer(admin_token)
    for change, field in BAD_INPUT:
        if field not in (*RULE_FIELDS, "colour"):
            continue  # what runs and the misfire policy are no part of a rule
        body = {k: v for k, v in {**working_days_body(package_id), **change}.items() if v is not None}
        created = client.simulate_post("/api/v1/schedules", headers=auth, json=body)
        previewed = client.simulate_post("/api/v1/schedules/preview", headers=auth,
                                         json={**rule_of(body), **({"colour": "red"} if "colour" in change else {})})
        assert previewed.status_code == 400, (change, previewed.json)
        assert previewed.json["resultHint"].startswith(field), (change, previewed.json)
        assert previewed.json["resultValue"]["errors"] == created.json["resultValue"]["errors"], change
    rule = rule_of(working_days_body(package_id))
    for change, field in (({"count": 0}, "count"), ({"count": 51}, "count"), ({"name": "x"}, "name"),
                          ({"after": "0001-01-01T00:00:00+14:00"}, "after")):
        r = client.simulate_post("/api/v1/schedules/preview", headers=auth, json={**rule, **change})
        assert r.status_code == 400 and r.json["resultValue"]["errors"][0]["field"] == field, (change, r.json)
    with hubdb.connection():
        assert Schedule.select().count() == 0


def test_a_rule_preview_needs_schedules_read_only(client, admin_token, package_id):
    rule = rule_of(working_days_body(package_id))
    outsider = person(client, admin_token, "outsider", ["runs.read"])
    r = client.simulate_post("/api/v1/schedules/preview", headers=bearer(outsider), json=rule)
    assert r.status_code == 403 and "schedules.read" in r.json["resultHint"]
    reader = person(client, admin_token, "reader", ["schedules.read"])  # neither manage nor runs.start
    r = client.simulate_post("/api/v1/schedules/preview", headers=bearer(reader), json={**rule, "count": 2})
    assert r.status_code == 200 and [i["local"] for i in r.json["resultValue"]["items"]] == [
        "2030-05-06T08:00:00+08:00", "2030-05-06T08:15:00+08:00"]
