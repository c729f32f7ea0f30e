"""When a schedule fires: occurrence arithmetic in the schedule's timezone, no database.

Instants are naive UTC, like every timestamp the hub stores. The anchor, the date
range, the daily window and the weekdays are wall-clock values in the schedule's
timezone, because that is how people state them ("08:00 on working days").

* ``minutes`` and ``hours`` step in real time from the anchor: every 15 minutes stays
  15 minutes apart across a DST change.
* ``days`` and ``weeks`` step on the calendar: 09:00 stays 09:00 across a DST change.
* ``months`` step by calendar month from the anchor, keeping its day and clamping to
  the month's last day: an anchor on 31 January gives 28/29 February, 31 March,
  30 April, 31 May... Every occurrence is computed from the anchor, never from the
  previous one, so the day never drifts.

Occurrences outside the date range (inclusive), the daily window (from inclusive, to
exclusive) or the weekdays are skipped, not moved. A wall-clock time that does not
exist (the hour skipped when DST starts) is read with the offset before the change,
i.e. an hour later; a time that happens twice (DST ends) is the first.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

UNITS = ("minutes", "hours", "days", "weeks", "months")
DEFAULT_TIMEZONE = "Asia/Shanghai"
TICK = dt.timedelta(microseconds=1)
# How many candidates a search examines before it concludes that the rule has no
# further occurrence. Each refused candidate skips at least to the next day's window,
# so this looks years ahead (centuries for monthly rules) while a rule that can never
# match is found out in a fraction of a second.
MAX_STEPS = 2_000


class RuleError(ValueError):
    """An invalid rule; ``field`` is the offending attribute of :class:`Rule`."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, LookupError, OSError):
        raise RuleError("timezone", f"unknown timezone {name!r} (use an IANA name such as Asia/Shanghai)") from None


def add_months(moment: dt.datetime, months: int) -> dt.datetime:
    """``moment`` moved by calendar months, its day clamped to the month's length."""
    years, month0 = divmod(moment.month - 1 + months, 12)
    year, month = moment.year + years, month0 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Rule:
    unit: str
    every: int
    anchor: dt.datetime  # the first occurrence; wall-clock time (an offset is converted)
    timezone: str = DEFAULT_TIMEZONE
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    window_from: dt.time | None = None
    window_to: dt.time | None = None
    weekdays: frozenset[int] = frozenset()  # ISO: 1 = Monday ... 7 = Sunday; empty: every day

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise RuleError("unit", f"must be one of {', '.join(UNITS)}")
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise RuleError("every", "must be a whole number of at least 1")
        tz = zone(self.timezone)
        if self.anchor.tzinfo is not None:
            try:
                local = self.anchor.astimezone(tz).replace(tzinfo=None)
            except (OverflowError, ValueError):  # e.g. 0001-01-01T00:00+14:00 is before year 1 in UTC
                raise RuleError("anchor", "is out of range") from None
            object.__setattr__(self, "anchor", local)
        if (self.window_from is None) != (self.window_to is None):
            missing = "window_to" if self.window_to is None else "window_from"
            raise RuleError(missing, "a daily window needs both its start and its end")
        if self.window_from is not None and self.window_from >= self.window_to:
            raise RuleError("window_to", "must be later than the window's start (windows cannot cross midnight)")
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise RuleError("end_date", "is before the start date")
        weekdays = frozenset(self.weekdays)
        if not weekdays <= set(range(1, 8)):
            raise RuleError("weekdays", "use ISO weekday numbers: 1 = Monday ... 7 = Sunday")
        object.__setattr__(self, "weekdays", weekdays)
        object.__setattr__(self, "_tz", tz)
        if self.unit in ("minutes", "hours", "days", "weeks"):
            factor = {"minutes": 60, "hours": 3600, "days": 86400, "weeks": 7 * 86400}[self.unit]
            object.__setattr__(self, "_step", dt.timedelta(seconds=factor * self.every))
        try:
            object.__setattr__(self, "_anchor_utc", self.to_utc(self.anchor))
        except (OverflowError, ValueError):
            raise RuleError("anchor", "is out of range") from None

    # -- wall clock ------------------------------------------------------------------------

    def to_utc(self, local: dt.datetime) -> dt.datetime:
        return local.replace(tzinfo=self._tz, fold=0).astimezone(dt.UTC).replace(tzinfo=None)

    def to_local(self, instant: dt.datetime) -> dt.datetime:
        return instant.replace(tzinfo=dt.UTC).astimezone(self._tz).replace(tzinfo=None)

    def allows(self, local: dt.datetime) -> bool:
        """Whether a wall-clock time lies in the date range, the window and the weekdays."""
        day = local.date()
        if (self.start_date and day < self.start_date) or (self.end_date and day > self.end_date):
            return False
        if self.weekdays and local.isoweekday() not in self.weekdays:
            return False
        return self.window_from is None or self.window_from <= local.time() < self.window_to

    # -- searching -------------------------------------------------------------------------

    def first(self) -> dt.datetime | None:
        """The first occurrence of all (``None``: the filters exclude every one)."""
        return self.first_at_or_after(self._anchor_utc)

    def next_after(self, instant: dt.datetime) -> dt.datetime | None:
        try:
            return self.first_at_or_after(instant + TICK)
        except OverflowError:  # the last instant of year 9999: nothing comes after it
            return None

    def first_at_or_after(self, instant: dt.datetime) -> dt.datetime | None:
        t = max(instant, self._anchor_utc)
        try:
            for _ in range(MAX_STEPS):
                candidate = self._raw(self._ceil(t))
                local = self.to_local(candidate)
                if self.allows(local):
                    return candidate
                reopen = self._reopens_after(local)
                if reopen is None:
                    return None
                t = max(self.to_utc(reopen), candidate + TICK)
        except (OverflowError, ValueError):  # past year 9999
            return None
        return None

    def last_at_or_before(self, instant: dt.datetime) -> dt.datetime | None:
        t = instant
        try:
            for _ in range(MAX_STEPS):
                k = self._floor(t)
                if k is None:
                    return None
                candidate = self._raw(k)
                local = self.to_local(candidate)
                if self.allows(local):
                    return candidate
                reopen = self._reopens_before(local)
                if reopen is None:
                    return None
                t = min(self.to_utc(reopen), candidate - TICK)
        except (OverflowError, ValueError):
            return None
        return None

    def upcoming(self, after: dt.datetime, count: int) -> list[dt.datetime]:
        """The next ``count`` occurrences at or after ``after``."""
        out: list[dt.datetime] = []
        found = self.first_at_or_after(after)
        while found is not None and len(out) < count:
            out.append(found)
            found = self.next_after(found)
        return out

    def count_between(self, first: dt.datetime, last: dt.datetime, limit: int) -> int:
        """How many occurrences lie in ``[first, last]``, counting no further than ``limit``."""
        n, found = 0, self.first_at_or_after(first)
        while found is not None and found <= last and n < limit:
            n += 1
            found = self.next_after(found)
        return n

    # -- the sequence before filtering: raw(0) is the anchor, raw(k) increases with k ----------

    def _raw(self, k: int) -> dt.datetime:
        if self.unit in ("minutes", "hours"):
            return self._anchor_utc + k * self._step
        if self.unit == "months":
            return self.to_utc(add_months(self.anchor, k * self.every))
        return self.to_utc(self.anchor + k * self._step)

    def _approx(self, t: dt.datetime) -> int:
        """An index near the first raw occurrence at ``t``; exact for real-time steps."""
        if self.unit in ("minutes", "hours"):
            return (t - self._anchor_utc) // self._step
        local = self.to_local(t)
        if self.unit == "months":
            return ((local.year - self.anchor.year) * 12 + local.month - self.anchor.month) // self.every
        return (local - self.anchor) // self._step

    def _ceil(self, t: dt.datetime) -> int:
        """The smallest k with raw(k) >= t."""
        k = max(0, self._approx(t))
        while k > 0 and self._raw(k - 1) >= t:
            k -= 1
        while self._raw(k) < t:
            k += 1
        return k

    def _floor(self, t: dt.datetime) -> int | None:
        """The largest k with raw(k) <= t, or None before the anchor."""
        k = max(0, self._approx(t))
        while self._raw(k) > t:
            if k == 0:
                return None
            k -= 1
        while self._raw(k + 1) <= t:
            k += 1
        return k

    # -- where the filters next let an occurrence through --------------------------------------

    def _opening(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, self.window_from or dt.time())

    def _closing(self, day: dt.date) -> dt.datetime:
        if self.window_to is not None:
            return dt.datetime.combine(day, self.window_to) - TICK
        return dt.datetime.combine(day + dt.timedelta(days=1), dt.time()) - TICK

    def _reopens_after(self, local: dt.datetime) -> dt.datetime | None:
        """The earliest wall-clock time after a refused ``local`` that may be allowed."""
        day = local.date()
        if self.end_date and day > self.end_date:
            return None
        if self.start_date and day < self.start_date:
            return self._opening(self.start_date)
        if self.window_from is not None and local.time() < self.window_from and (
                not self.weekdays or local.isoweekday() in self.weekdays):
            return self._opening(day)
        return self._opening(day + dt.timedelta(days=1))

    def _reopens_before(self, local: dt.datetime) -> dt.datetime | None:
        """The latest wall-clock time before a refused ``local`` that may be allowed."""
        day = local.date()
        if self.start_date and day < self.start_date:
            return None
        if self.end_date and day > self.end_date:
            return self._closing(self.end_date)
        if self.window_to is not None and local.time() >= self.window_to and (
                not self.weekdays or local.isoweekday() in self.weekdays):
            return self._closing(day)
        return self._closing(day - dt.timedelta(days=1))

    def without_filters(self, *names: str) -> Rule:
        """This rule with some filters lifted (to tell which one excludes every occurrence)."""
        cleared = {"dates": {"start_date": None, "end_date": None},
                   "window": {"window_from": None, "window_to": None},
                   "weekdays": {"weekdays": frozenset()}}
        changes: dict = {}
        for name in names:
            changes.update(cleared[name])
        return dataclasses.replace(self, **changes)
