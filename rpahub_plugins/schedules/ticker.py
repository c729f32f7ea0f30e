"""The in-process ticker: the ``schedule`` library calls ``Schedules.tick`` every ``tick_s``.

It only keeps time. What is due and what already fired lives in the database, so a
ticker may stop, restart or run in several processes at once.

Ticks fall on whole multiples of ``tick_s`` of the clock (every second on the second, by
default), just after them: occurrences fall on whole minutes, so a tick at 08:00:00.002
fires the 08:00 ones, where a tick drifting with the time each tick took could come
almost ``tick_s`` later.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

import schedule

log = logging.getLogger("rpahub.schedules")

AFTER_S = 0.002  # how long after the boundary a tick comes, so the clock it reads is past it


def make_ticker(tick: Callable[[], None], tick_s: float) -> schedule.Scheduler:
    ticker = schedule.Scheduler()  # not the library's global one: a process may hold several hubs
    job = ticker.every(tick_s).seconds.do(tick)
    job.next_run = _boundary_after(dt.datetime.now(), _period_s(job))
    return ticker


def align(ticker: schedule.Scheduler) -> None:
    """Move each job that ran to the first boundary after its run (the library counts
    ``tick_s`` from when the run ended)."""
    for job in ticker.jobs:
        period = _period_s(job)
        if job.last_run is not None and period > 0:
            job.next_run = _boundary_after(job.last_run, period)


def _period_s(job: schedule.Job) -> float:
    if job.unit not in ("seconds", "minutes", "hours", "days", "weeks") or not job.interval:
        return 0.0
    return dt.timedelta(**{job.unit: job.interval}).total_seconds()


def _boundary_after(moment: dt.datetime, period_s: float) -> dt.datetime:
    """The first whole multiple of ``period_s`` of the (naive, local) clock after ``moment``."""
    t = moment.timestamp()
    return dt.datetime.fromtimestamp((t // period_s + 1) * period_s + AFTER_S)


def run_forever(ticker: schedule.Scheduler, sleep: Callable[[float], None]) -> None:
    """Run due jobs and sleep until the next; nothing a job raises ends the loop."""
    while True:
        try:
            ticker.run_pending()
            align(ticker)
        except Exception:
            log.exception("schedules: ticker job failed; ticking on")
        sleep(min(1.0, max(0.05, ticker.idle_seconds or 0.0)))
