"""Prometheus collectors for the ops figures, computed from the database at scrape time,
so every worker of the hub reports the same numbers whichever one is scraped."""

from __future__ import annotations

import datetime as dt
import logging

import peewee
from prometheus_client.core import GaugeMetricFamily

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_plugins.executors.models import RunInstance

from .models import AlertRule
from .schemas import RUN_STATES
from .stats import EXECUTOR_STATES, Stats

log = logging.getLogger("rpahub.ops")


class OpsCollector:
    def __init__(self, hub, licence_days: int):
        self.stats = Stats(hub)
        self.licence_days = licence_days

    def describe(self):
        # Names only: registering must not query the database.
        return list(self._families())

    def _families(self):
        return (
            GaugeMetricFamily("rpahub_ops_runs", "Run instances by state", labels=["state"]),
            GaugeMetricFamily("rpahub_ops_executors", "Admitted executors by state", labels=["state"]),
            GaugeMetricFamily("rpahub_ops_queue_length", "Runs waiting in the dispatch queue"),
            GaugeMetricFamily("rpahub_ops_queue_oldest_wait_seconds",
                              "How long the longest-waiting eligible queued run has waited"),
            GaugeMetricFamily("rpahub_ops_licences_expiring", "Robots or pools whose licence ends within the window",
                              labels=["within_days"]),
            GaugeMetricFamily("rpahub_ops_alerts_firing", "Alert rules firing now", labels=["severity"]),
            GaugeMetricFamily("rpahub_ops_run_success_ratio",
                              "Successes among runs created in the last 24 h that ended on their own"),
            GaugeMetricFamily("rpahub_ops_run_seconds", "Runs created in the last 24 h: duration (started to "
                              "finished) and queue wait (created to dispatched)", labels=["measure", "stat"]),
        )

    def collect(self):
        runs, executors, qlen, qwait, licences, alerts, success, seconds = self._families()
        try:
            with hubdb.connection():
                counts = dict(RunInstance.select(RunInstance.state, peewee.fn.COUNT(RunInstance.id))
                              .group_by(RunInstance.state).tuples())
                fleet = self.stats.executors()
                queue = self.stats.queue()
                expiring = len(self.stats.licences(self.licence_days))
                firing = dict(AlertRule.select(AlertRule.severity, peewee.fn.COUNT(AlertRule.id))
                              .where(AlertRule.firing_event_id.is_null(False)).group_by(AlertRule.severity).tuples())
                now = utcnow()
                day = self.stats.runs(start=now - dt.timedelta(hours=24), end=now)  # what GET /ops/stats says
        except Exception:  # a scrape during a database outage reports nothing rather than failing
            log.exception("ops metrics could not be read")
            return
        for state in sorted({*RUN_STATES, *counts}):
            runs.add_metric([state], counts.get(state, 0))
        for state in EXECUTOR_STATES:
            executors.add_metric([state], fleet[state])
        qlen.add_metric([], queue["length"])
        qwait.add_metric([], queue["oldestWaitS"] or 0)
        licences.add_metric([str(self.licence_days)], expiring)
        for severity in ("info", "warning", "critical"):
            alerts.add_metric([severity], firing.get(severity, 0))
        if day["successRate"] is not None:
            success.add_metric([], day["successRate"])
        for measure, figures in (("duration", day["duration"]), ("queue_wait", day["queueWait"])):
            for stat in ("mean", "p95", "max"):
                if figures[stat] is not None:
                    seconds.add_metric([measure, stat], figures[stat])
        yield from (runs, executors, qlen, qwait, licences, alerts, success, seconds)
