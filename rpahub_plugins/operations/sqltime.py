"""Date arithmetic in SQL that means the same on SQLite and PostgreSQL.

Timestamps are stored as naive UTC. A "day" is a calendar day in the reader's time
zone, so grouping by day shifts each timestamp by that zone's offset *at that
instant*. PostgreSQL knows the zone database (``AT TIME ZONE``); SQLite does not, so
for it the offsets in force over the queried range are computed here and handed to
``strftime`` as a ``CASE`` over the instants where the offset changes (daylight
saving), which is exact for any range.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import peewee

from rpahub_core import db as hubdb

_STEP = dt.timedelta(hours=6)  # no zone changes its offset twice within six hours


def _offset_s(tz: ZoneInfo, utc: dt.datetime) -> int:
    return int(utc.replace(tzinfo=dt.UTC).astimezone(tz).utcoffset().total_seconds())


def offset_segments(tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime | None, int]]:
    """``[(until, offset_s), ..., (None, offset_s)]``: the zone's UTC offset over [start, end),
    each in force until the (naive UTC) instant named, the last one until the end."""
    segments: list[tuple[dt.datetime | None, int]] = []
    current, t = _offset_s(tz, start), start
    while t < end:
        nxt = min(t + _STEP, end)
        if _offset_s(tz, nxt) != current:
            lo, hi = t, nxt  # the change is in (lo, hi]: find it to the second
            while hi - lo > dt.timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if _offset_s(tz, mid) == current:
                    lo = mid
                else:
                    hi = mid
            hi = hi.replace(microsecond=0)
            segments.append((hi, current))
            current = _offset_s(tz, hi)
        t = nxt
    segments.append((None, current))
    return segments


def local_day(column: peewee.Node, tz: ZoneInfo, start: dt.datetime, end: dt.datetime) -> peewee.Node:
    """``'YYYY-MM-DD'``: the calendar day in ``tz`` of the naive-UTC ``column``, for rows
    whose value lies in [start, end). Group by the expression's alias, not the
    expression: its bound parameters make two copies of it look different to PostgreSQL."""
    if hubdb.is_postgres():
        utc = peewee.NodeList((column, peewee.SQL("AT TIME ZONE 'UTC'")), parens=True)
        local = peewee.NodeList((utc, peewee.SQL("AT TIME ZONE"), peewee.Value(tz.key)), parens=True)
        return peewee.fn.to_char(local, "YYYY-MM-DD")
    segments = offset_segments(tz, start, end)
    if len(segments) == 1:
        shift: peewee.Node = peewee.Value(f"{segments[0][1]:+d} seconds")
    else:
        shift = peewee.Case(None, [(column < until, f"{offset:+d} seconds") for until, offset in segments[:-1]],
                            f"{segments[-1][1]:+d} seconds")
    return peewee.fn.strftime("%Y-%m-%d", column, shift)


def seconds_between(start: peewee.Node, end: peewee.Node) -> peewee.Node:
    """``end - start`` in seconds (a float; NULL when either is NULL)."""
    if hubdb.is_postgres():
        return peewee.fn.date_part("epoch", end - start)
    return (peewee.fn.julianday(end) - peewee.fn.julianday(start)) * 86400.0


def local_midnight(day: dt.date, tz: ZoneInfo) -> dt.datetime:
    """The naive-UTC instant at which ``day`` begins in ``tz``."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=tz)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def today_in(tz: ZoneInfo) -> dt.date:
    return dt.datetime.now(tz).date()
