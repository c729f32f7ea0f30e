"""Forward-only schema migrations, one version counter per component.

Plugins register numbered steps through the ``rpahub_migrations`` hook. Each step
runs once, in order, inside a transaction, and bumps its component's row in
``schema_version``; a database newer than the code refuses to start rather than
guessing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import peewee
from playhouse.migrate import SchemaMigrator

from . import db as hubdb
from .db import BaseModel, utcnow

Step = Callable[["MigrationContext"], None]


class SchemaVersion(BaseModel):
    component = peewee.CharField(primary_key=True, max_length=64)
    version = peewee.IntegerField()
    applied_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_version"


@dataclass
class MigrationContext:
    db: peewee.Database
    migrator: SchemaMigrator

    def sql(self, statement: str, *params) -> None:
        self.db.execute_sql(statement, params or None)


@dataclass
class MigrationRegistry:
    steps: dict[str, dict[int, tuple[str, Step]]] = field(default_factory=dict)

    def add(self, component: str, version: int, step: Step, description: str = "") -> None:
        versions = self.steps.setdefault(component, {})
        if version in versions:
            raise ValueError(f"migration {component} #{version} registered twice")
        versions[version] = (description, step)

    def latest(self, component: str) -> int:
        return max(self.steps.get(component, {0: None}))


def create_tables(*models: type[BaseModel]) -> Step:
    def step(ctx: MigrationContext) -> None:
        ctx.db.create_tables(models)

    step.__doc__ = "create " + ", ".join(m._meta.table_name for m in models)
    return step


def add_columns(model: type[BaseModel], *names: str) -> Step:
    """Add the model's fields ``names`` where the table lacks them.

    ``create_tables`` builds a table from the model as it is *now*, so on a new
    database step 1 already has every column; later steps must therefore skip what
    exists. This helper does, for the common case of a new column.
    """

    def step(ctx: MigrationContext) -> None:
        table = model._meta.table_name
        have = {c.name for c in ctx.db.get_columns(table)}
        ops = []
        for name in names:
            fld = model._meta.fields[name]
            if fld.column_name not in have:
                ops.append(ctx.migrator.add_column(table, fld.column_name, fld))
        if ops:
            from playhouse.migrate import migrate as run

            run(*ops)

    step.__doc__ = f"add {', '.join(names)} to {model._meta.table_name}"
    return step


class SchemaTooNew(RuntimeError):
    pass


def current_versions() -> dict[str, int]:
    hubdb.database.create_tables([SchemaVersion])
    return {row.component: row.version for row in SchemaVersion.select()}


def migrate(registry: MigrationRegistry) -> list[str]:
    """Apply pending steps; return what was applied (``component #n: description``)."""
    applied: list[str] = []
    db = hubdb.database.obj
    with hubdb.atomic():
        if hubdb.is_postgres(db):
            # Two workers starting together must not both run the same step.
            db.execute_sql("SELECT pg_advisory_xact_lock(130202201)")
        versions = current_versions()
        ctx = MigrationContext(db, SchemaMigrator.from_database(db))
        for component in sorted(registry.steps):
            steps = registry.steps[component]
            have = versions.get(component, 0)
            if have > max(steps):
                raise SchemaTooNew(f"database has {component} schema #{have}, this code knows #{max(steps)}")
            for number in sorted(n for n in steps if n > have):
                description, step = steps[number]
                step(ctx)
                SchemaVersion.insert(component=component, version=number, applied_at=utcnow()).on_conflict(
                    conflict_target=[SchemaVersion.component],
                    update={SchemaVersion.version: number, SchemaVersion.applied_at: utcnow()},
                ).execute()
                applied.append(f"{component} #{number}: {description or step.__doc__ or ''}".rstrip(": "))
    return applied
