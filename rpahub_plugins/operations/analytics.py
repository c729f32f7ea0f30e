"""The figures behind the operations big screen (6.4.1a), run analysis along region,
scenario, business domain, vendor, app and day (6.4.1b), and the scenarios collected
per region (6.4.1c). Every figure is one grouped SQL query; nothing counts in Python.

Runs are attributed to apps through ``AppRun`` (a run started from the marketplace);
the overview also counts every run of the hub, whatever started it.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import peewee
from peewee import fn

from rpahub_core.db import utcnow

from .sqltime import local_day, local_midnight, seconds_between, today_in

GROUPINGS = ("region", "scenario", "domain", "vendor", "app", "day")
MAX_SPAN_DAYS = 366


def _count_if(condition) -> peewee.Node:
    return fn.COALESCE(fn.SUM(peewee.Case(None, [(condition, 1)], 0)), 0)


def _rate(successes: int, failures: int) -> float | None:
    finished = successes + failures
    return round(successes / finished, 4) if finished else None


class Analytics:
    def __init__(self, hub):
        self.hub = hub

    def has(self, component: str) -> bool:
        """Whether a plugin whose tables we read is installed (its migrations are registered)."""
        return component in self.hub.migrations.steps

    # -- 6.4.1a the big screen --------------------------------------------------------

    def overview(self, tz: ZoneInfo, top: int = 5) -> dict:
        from rpahub_plugins.executors.models import Executor, RunInstance
        from rpahub_plugins.share.models import App, Subscription

        today = today_in(tz)
        day_start = local_midnight(today, tz)
        week_start = local_midnight(today - dt.timedelta(days=6), tz)
        month_start = utcnow() - dt.timedelta(days=30)

        apps = dict(App.select(App.state, fn.COUNT(App.id)).group_by(App.state).tuples())
        subs_total, subs_week = Subscription.select(
            fn.COUNT(Subscription.id), _count_if(Subscription.created_at >= week_start)).tuples().get()
        R = RunInstance
        total, run_today, run_week, ok_week, failed_week = R.select(
            fn.COUNT(R.id), _count_if(R.created_at >= day_start), _count_if(R.created_at >= week_start),
            _count_if((R.created_at >= week_start) & (R.state == "success")),
            _count_if((R.created_at >= week_start) & (R.state == "failed"))).tuples().get()
        runs_by_state = dict(R.select(R.state, fn.COUNT(R.id)).group_by(R.state).tuples())
        executors = dict(Executor.select(Executor.state, fn.COUNT(Executor.id)).group_by(Executor.state).tuples())
        return {
            "generatedAt": utcnow(), "timeZone": tz.key, "today": today.isoformat(),
            "apps": {"total": sum(apps.values()), "byState": apps, "listed": apps.get("listed", 0)},
            "subscriptions": {"total": subs_total, "last7Days": subs_week},
            "runs": {"total": total, "today": run_today, "last7Days": run_week, "successesLast7Days": ok_week,
                     "failuresLast7Days": failed_week, "successRateLast7Days": _rate(ok_week, failed_week),
                     "byState": runs_by_state},
            "requirements": self._requirements(),
            "executors": {"total": sum(executors.values()), "byState": executors},
            "designers": self._designers(),
            "topApps": self.top_apps(month_start, top),
        }

    def _requirements(self) -> dict | None:
        if not self.has("design"):
            return None
        try:
            from rpahub_plugins.design.models import Requirement
        except ImportError:
            return None
        states = dict(Requirement.select(Requirement.state, fn.COUNT(Requirement.id))
                      .group_by(Requirement.state).tuples())
        return {"total": sum(states.values()), "byState": states}

    def _designers(self) -> dict | None:
        if not self.has("designers"):
            return None
        try:
            from rpahub_plugins.designers.models import Designer, DesignerLease
        except ImportError:
            return None
        registered, enabled = Designer.select(fn.COUNT(Designer.id), _count_if(Designer.enabled == True)  # noqa: E712
                                              ).tuples().get()
        L = DesignerLease
        in_use, leases = L.select(fn.COUNT(fn.DISTINCT(L.designer_id)), fn.COUNT(L.id)).where(
            (L.state == "active") & (L.expires_at > utcnow())).tuples().get()
        return {"registered": registered, "enabled": enabled, "inUse": in_use, "activeLeases": leases}

    def top_apps(self, since: dt.datetime, limit: int) -> list[dict]:
        from rpahub_plugins.share.models import App, AppRun

        runs = fn.COUNT(AppRun.run_id)
        rows = (App.select(App.id, App.name, App.region, App.scenario, App.domain, runs.alias("runs"))
                .join(AppRun, on=(AppRun.app == App.id))
                .where(AppRun.created_at >= since)
                .group_by(App.id, App.name, App.region, App.scenario, App.domain)
                .order_by(runs.desc(), App.name).limit(limit).dicts())
        return [{"appId": r["id"], "name": r["name"], "region": r["region"], "scenario": r["scenario"],
                 "domain": r["domain"], "runs30Days": r["runs"]} for r in rows]

    # -- 6.4.1b run analysis ----------------------------------------------------------

    def runs(self, *, start: dt.datetime, end: dt.datetime, by: str, tz: ZoneInfo,
             filters: dict[str, str | None]) -> dict:
        """Runs of apps created in [start, end), grouped ``by``: runs, successes, failures,
        cancelled, distinct users, mean duration (started → finished, in seconds)."""
        from rpahub_plugins.executors.models import RunInstance as R
        from rpahub_plugins.share.models import App, AppRun

        metrics = [fn.COUNT(R.id).alias("runs"), _count_if(R.state == "success").alias("successes"),
                   _count_if(R.state == "failed").alias("failures"),
                   _count_if(R.state == "cancelled").alias("cancelled"),
                   fn.COUNT(fn.DISTINCT(R.user_id)).alias("users"),
                   fn.AVG(seconds_between(R.started_at, R.finished_at)).alias("mean")]
        where = (R.created_at >= start) & (R.created_at < end)
        for key, column in (("region", App.region), ("scenario", App.scenario), ("domain", App.domain),
                            ("vendor", App.vendor), ("appId", App.id)):
            if filters.get(key):
                where &= column == filters[key]

        def base(*columns):
            return (R.select(*columns, *metrics).join(AppRun, on=(AppRun.run_id == R.id))
                    .join(App, on=(AppRun.app == App.id)).where(where))

        if by == "day":
            bucket = local_day(R.created_at, tz, start, end).alias("bucket")
            query = base(bucket).group_by(peewee.SQL("bucket")).order_by(peewee.SQL("bucket"))
        elif by == "app":
            query = (base(App.id.alias("bucket"), App.name.alias("label")).group_by(App.id, App.name)
                     .order_by(fn.COUNT(R.id).desc(), App.name))
        else:
            column = getattr(App, by)
            query = base(column.alias("bucket")).group_by(column).order_by(fn.COUNT(R.id).desc(), column)
        groups = [self._figures(row, key=row["bucket"], label=row.get("label")) for row in query.dicts()]
        if by == "day":
            groups = self._every_day(groups, start, end, tz)
        totals = self._figures(base().dicts().get())
        return {"by": by, "from": start, "to": end, "timeZone": tz.key, "groups": groups, "totals": totals}

    @staticmethod
    def _figures(row: dict, **head) -> dict:
        out = {k: v for k, v in head.items() if v is not None or k == "key"}
        successes, failures = int(row["successes"]), int(row["failures"])
        mean = row["mean"]
        out.update(runs=int(row["runs"]), successes=successes, failures=failures, cancelled=int(row["cancelled"]),
                   successRate=_rate(successes, failures), users=int(row["users"]),
                   meanDurationS=round(float(mean), 3) if mean is not None else None)
        return out

    @staticmethod
    def _every_day(groups: list[dict], start: dt.datetime, end: dt.datetime, tz: ZoneInfo) -> list[dict]:
        """A day without runs is a zero on the chart, not a gap."""
        have = {g["key"]: g for g in groups}
        day = start.replace(tzinfo=dt.UTC).astimezone(tz).date()
        last = (end - dt.timedelta(microseconds=1)).replace(tzinfo=dt.UTC).astimezone(tz).date()
        out = []
        while day <= last:
            key = day.isoformat()
            out.append(have.get(key) or {"key": key, "runs": 0, "successes": 0, "failures": 0, "cancelled": 0,
                                         "successRate": None, "users": 0, "meanDurationS": None})
            day += dt.timedelta(days=1)
        return out

    # -- 6.4.1c scenarios per region -----------------------------------------------------

    def scenarios(self, region: str | None = None) -> dict:
        """Per region, each scenario with its apps (all, listed) and requirements."""
        from rpahub_plugins.share.models import App

        apps = App.select(App.region, App.scenario, fn.COUNT(App.id), _count_if(App.state == "listed"))
        if region is not None:
            apps = apps.where(App.region == region)
        cells: dict[tuple[str, str], dict] = {}

        def cell(r: str, s: str) -> dict:
            return cells.setdefault((r, s), {"scenario": s, "apps": 0, "listedApps": 0, "requirements": 0})

        for r, s, n, listed in apps.group_by(App.region, App.scenario).tuples():
            cell(r, s).update(apps=n, listedApps=int(listed))
        requirements_known = False
        if self.has("design"):
            try:
                from rpahub_plugins.design.models import Requirement
            except ImportError:
                Requirement = None
            if Requirement is not None:
                requirements_known = True
                reqs = Requirement.select(Requirement.region, Requirement.scenario, fn.COUNT(Requirement.id))
                if region is not None:
                    reqs = reqs.where(Requirement.region == region)
                for r, s, n in reqs.group_by(Requirement.region, Requirement.scenario).tuples():
                    cell(r, s)["requirements"] = n
        regions: dict[str, dict] = {}
        for (r, _), c in sorted(cells.items(), key=lambda kv: (kv[0][0], -kv[1]["apps"] - kv[1]["requirements"],
                                                              kv[0][1])):
            entry = regions.setdefault(r, {"region": r, "apps": 0, "listedApps": 0, "requirements": 0,
                                           "scenarios": []})
            entry["scenarios"].append(c)
            for k in ("apps", "listedApps", "requirements"):
                entry[k] += c[k]
        ordered = sorted(regions.values(), key=lambda e: (-(e["apps"] + e["requirements"]), e["region"]))
        return {"regions": ordered, "requirementsAvailable": requirements_known}
