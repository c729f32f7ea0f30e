"""The in-process ticker: the ``schedule`` library calls ``Schedules.tick`` every ``tick_s``.

It only keeps time. What is due and what already fired lives in the database, so a
ticker may stop, restart or run in several processes at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import schedule

log = logging.getLogger("rpahub.schedules")


def make_ticker(tick: Callable[[], None], tick_s: float) -> schedule.Scheduler:
    ticker = schedule.Scheduler()  # not the library's global one: a process may hold several hubs
    ticker.every(tick_s).seconds.do(tick)
    return ticker


def run_forever(ticker: schedule.Scheduler, sleep: Callable[[float], None]) -> None:
    """Run due jobs and sleep until the next; nothing a job raises ends the loop."""
    while True:
        try:
            ticker.run_pending()
        except Exception:
            log.exception("schedules: ticker job failed; ticking on")
        sleep(min(1.0, max(0.05, ticker.idle_seconds or 0.0)))
