"""The scaling decision: plain data in, a desired size and its reason out.

No database, no clock, no provider: the service gathers the inputs, so every rule
here is tested with numbers alone.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    """One pool's policy, as the decision needs it."""

    min: int = 0
    max: int = 1
    queue_per_executor: int = 1  # scale up when more runs than this wait per executor
    max_wait_s: float = 60  # scale up when the oldest due run waited longer (0: off)
    idle_s: float = 300  # stop executors without a run for this long
    cooldown_s: float = 60  # between two load-driven actions


@dataclass(frozen=True)
class ExecutorState:
    id: str
    busy: bool  # holds an active run
    idle_s: float = 0.0  # since its last run ended (or it registered); 0 when busy


@dataclass(frozen=True)
class Decision:
    desired: int
    reason: str


def decide(limits: Limits, current: int, executors: list[ExecutorState], queue_depth: int,
           oldest_wait_s: float | None, last_action_at: dt.datetime | None, now: dt.datetime) -> Decision:
    """The size the pool should have now.

    ``current`` is the pool's size as the providers last reported it (executors
    still starting included); ``executors`` are its registered members.
    """
    # The limits are configuration, not a reaction to load: they apply even in cooldown.
    if current < limits.min:
        return Decision(limits.min, f"below the minimum of {limits.min}")
    if current > limits.max:
        return Decision(limits.max, f"above the maximum of {limits.max}")
    if last_action_at is not None and (now - last_action_at).total_seconds() < limits.cooldown_s:
        return Decision(current, "cooling down")

    want, reasons = current, []
    if queue_depth > limits.queue_per_executor * current:
        want = max(want, math.ceil(queue_depth / limits.queue_per_executor))
        reasons.append(f"{_n(queue_depth, 'run')} waiting for {_n(current, 'executor')}")
    if queue_depth and limits.max_wait_s and oldest_wait_s is not None and oldest_wait_s > limits.max_wait_s:
        want = max(want, current + 1)
        reasons.append(f"oldest run waited {oldest_wait_s:.0f}s (limit {limits.max_wait_s:g}s)")
    if want > current:
        if current >= limits.max:
            return Decision(current, f"at the maximum of {limits.max}; " + "; ".join(reasons))
        return Decision(min(want, limits.max), "; ".join(reasons))

    # Shrink only when nothing waits: an idle executor with runs queued is about to get one.
    if queue_depth == 0:
        idle = [e for e in executors if not e.busy and e.idle_s >= limits.idle_s]
        desired = max(limits.min, current - len(idle))
        if desired < current:
            return Decision(desired, f"{_n(current - desired, 'executor')} idle for {limits.idle_s:g}s or more")
    return Decision(current, "steady")


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"
