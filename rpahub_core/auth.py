"""Who is calling: people and robots are different kinds of principal (SEC-1/2).

A person signs in with a password or an OIDC token and holds roles; a robot
(executor) is admitted through its supplier's credentials. The two never share a
credential type, and nothing a robot holds opens a people's API, or the reverse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

# Token prefixes make a leaked credential recognisable at a glance (SEC-2 naming).
USER_TOKEN_PREFIX = "rpu_"
ROBOT_TOKEN_PREFIX = "rpr_"

ANY_PERMISSION = "*"


@dataclass(frozen=True)
class Principal:
    id: str
    name: str
    kind: ClassVar[str] = "unknown"

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class UserPrincipal(Principal):
    kind: ClassVar[str] = "user"
    permissions: frozenset[str] = field(default_factory=frozenset)
    roles: tuple[str, ...] = ()
    must_change_password: bool = False
    token_id: str | None = None

    def can(self, permission: str) -> bool:
        return ANY_PERMISSION in self.permissions or permission in self.permissions


@dataclass(frozen=True)
class RobotPrincipal(Principal):
    kind: ClassVar[str] = "robot"
    supplier: str = ""
    connect_id: str | None = None
    run_id: str | None = None  # set when the robot presents a run's signed token


@dataclass(frozen=True)
class SystemPrincipal(Principal):
    """The hub itself: the CLI, the scheduler, migrations."""

    kind: ClassVar[str] = "system"


class AnonymousPrincipal(Principal):
    """A caller who presented no credentials (audited as such, never as the hub)."""

    kind: ClassVar[str] = "anonymous"


SYSTEM = SystemPrincipal(id="system", name="system")
ANONYMOUS = AnonymousPrincipal(id="anonymous", name="anonymous")
