"""The catalogue of permissions that roles are built from.

Each plugin declares the permissions its operations check (``rpahub_permissions``);
an operation that names an undeclared permission is refused at start-up, so a typo
can never silently open or close an API.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Any signed-in person may call the operation (their own profile, their tokens).
AUTHENTICATED = "authenticated"


@dataclass
class PermissionCatalogue:
    entries: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, description: str) -> None:
        if name in self.entries and self.entries[name] != description:
            raise ValueError(f"permission {name!r} declared twice with different meanings")
        self.entries[name] = description

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def names(self) -> list[str]:
        return sorted(self.entries)
