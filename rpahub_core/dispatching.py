"""What scheduling policies see: a run waiting for an executor, and the candidates.

Passed to ``rpahub_select_executor``; plain data, so a policy needs no database.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunRequest:
    id: str
    package_kind: str  # python | robot | ...
    policy: str = "least_loaded"  # chosen per pool or per dispatch
    pool: str | None = None
    labels: tuple[str, ...] = ()  # every label a candidate must carry
    supplier: str | None = None  # vendor affinity: only this supplier's executors
    attempt: int = 1
    previous_executor: str | None = None  # failover prefers another executor


@dataclass(frozen=True)
class Candidate:
    id: str
    supplier: str
    labels: tuple[str, ...] = ()
    active: int = 0  # runs it holds now
    slots: int = 1
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def free(self) -> int:
        return self.slots - self.active
