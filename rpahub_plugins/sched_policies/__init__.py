"""Built-in scheduling policies (``rpahub_select_executor``).

``least_loaded`` (default): the candidate with the most free slots, then the fewest
runs. ``round_robin``: candidates in turn, per pool. ``affinity``: candidates sharing
the most labels with the request, then least loaded. Every policy avoids the
executor a failed-over run just left when another one can take it.

A third-party policy implements the same hook with ``tryfirst=True`` and answers only
for its own name (``run.policy``), returning ``None`` otherwise.
"""

from __future__ import annotations

import itertools
import threading

from rpahub_core import hookimpl
from rpahub_core.dispatching import Candidate, RunRequest

_turns: dict[str, itertools.count] = {}
_lock = threading.Lock()


def least_loaded(run: RunRequest, candidates: list[Candidate]) -> Candidate:
    """The most free slots, then the fewest runs."""
    return min(candidates, key=lambda c: (-c.free, c.active, c.id))


def round_robin(run: RunRequest, candidates: list[Candidate]) -> Candidate:
    """Each candidate in turn, per pool."""
    ordered = sorted(candidates, key=lambda c: c.id)
    with _lock:
        turn = next(_turns.setdefault(run.pool or "", itertools.count()))
    return ordered[turn % len(ordered)]


def affinity(run: RunRequest, candidates: list[Candidate]) -> Candidate:
    """The most labels shared with the request, then the least loaded."""
    wanted = set(run.labels)
    return min(candidates, key=lambda c: (-len(wanted & set(c.labels)), -c.free, c.active, c.id))


POLICIES = {"least_loaded": least_loaded, "round_robin": round_robin, "affinity": affinity}


@hookimpl
def rpahub_select_executor(run, candidates, hub):
    policy = POLICIES.get(getattr(run, "policy", "least_loaded"))
    if policy is None:
        return None  # someone else's policy
    fresh = [c for c in candidates if c.id != getattr(run, "previous_executor", None)] or candidates
    return policy(run, fresh)
