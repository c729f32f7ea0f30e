"""Audit log: the one place every management call and robot action is written (SEC-4, 6.3.1c).

Entries are append-only and tamper-evident: a sequencer places them as leaves of an
RFC 6962 Merkle tree and signs checkpoints of it with the hub's Ed25519 key, every
``checkpoint_s`` seconds; ``rpahub audit verify`` proves nothing was changed, removed,
reordered or inserted since (ASVS 16.4.2). See docs/audit.md.
"""

from __future__ import annotations

import functools
import json
import logging

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.errors import HubError
from rpahub_core.migrations import create_tables

from . import resources
from .ledger import Ledger
from .models import AuditEntry, add_ledger, make_append_only
from .verify import verify

log = logging.getLogger("rpahub.audit_log")

# checkpoint_s: how often a hub process seals new entries into a signed checkpoint (0: never).
DEFAULTS = {"checkpoint_s": 60}


def ledger(hub) -> Ledger:
    if "audit_log" not in hub.state:
        hub.state["audit_log"] = Ledger(hub)
    return hub.state["audit_log"]


@hookimpl
def rpahub_config_defaults():
    return {"audit_log": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("audit_log", 1, create_tables(AuditEntry), "audit table")
    migrations.add("audit_log", 2, make_append_only, "refuse UPDATE and DELETE on audit_log")
    migrations.add("audit_log", 3, add_ledger, "Merkle leaves and signed checkpoints of the audit log")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("audit.read", "Search the audit log")
    permissions.add("audit.verify", "Verify the audit log against its signed checkpoints")


@hookimpl
def rpahub_audit(entry, hub):
    # One prepared INSERT, not a model peewee builds the SQL of: every call, robot action
    # and fired schedule comes through here (docs/benchmarks.md).
    db = AuditEntry._meta.database
    columns = tuple(entry)
    db.execute_sql(_insert_sql(columns, db.param), [entry[c] for c in columns])


@functools.cache
def _insert_sql(columns: tuple[str, ...], param: str) -> str:
    fields = AuditEntry._meta.fields
    unknown = [c for c in columns if c not in fields]
    if unknown:
        raise TypeError(f"audit entry: unknown fields {unknown}")
    names = ", ".join('"' + fields[c].column_name + '"' for c in columns)
    return f'INSERT INTO "{AuditEntry._meta.table_name}" ({names}) VALUES ({", ".join([param] * len(columns))})'


@hookimpl
def rpahub_register_routes(routes, hub):
    led = ledger(hub)
    routes.add("/api/v1/audit", resources.AuditResource())
    routes.add("/api/v1/audit/checkpoints", resources.AuditCheckpoints(led))
    routes.add("/api/v1/audit/verify", resources.AuditVerify(hub))
    routes.add("/api/v1/audit/{entry_id}/proof", resources.AuditProof(led))


def checkpoint_interval(hub) -> float:
    value = {**DEFAULTS, **hub.settings.plugin("audit_log")}["checkpoint_s"]
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        from rpahub_core.config import ConfigError

        raise ConfigError(f"plugins.audit_log.checkpoint_s: expected seconds, got {value!r}") from None


@hookimpl
def rpahub_startup(hub):
    interval = checkpoint_interval(hub)
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover
        return
    if not interval or not monkey.is_module_patched("socket"):
        return  # not in a gevent worker: tests and the CLI call checkpoint() themselves
    import gevent

    led = ledger(hub)

    def loop():
        while True:
            gevent.sleep(interval)
            try:
                with hubdb.connection():
                    led.checkpoint(wait=False)  # another worker sequencing now does this round's work
            except HubError as exc:  # a busy writer or a ledger that no longer verifies: say so, retry
                log.warning("audit checkpoint not signed: %s", exc.hint)
            except Exception as exc:  # one failed round never stops the next
                hubdb.log_failure(log, "audit checkpoint", exc)

    hub.state["audit_log.loop"] = gevent.spawn(loop)


@hookimpl
def rpahub_shutdown(hub):
    loop = hub.state.pop("audit_log.loop", None)
    if loop is not None:
        loop.kill()


# -- rpahub audit ... --------------------------------------------------------------


def _audit_command(hub, args) -> int:
    with hubdb.connection():
        if args.audit_command == "checkpoint":
            print(ledger(hub).checkpoint().describe())
            return 0
        report = verify(hub)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def _configure_audit(parser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    verify_cmd = sub.add_parser("verify", help="recompute every entry's leaf and check every signed checkpoint "
                                "(exit status 1 on any problem)")
    verify_cmd.add_argument("--json", action="store_true", help="print the report as JSON")
    sub.add_parser("checkpoint", help="sequence new entries and sign a checkpoint now")


@hookimpl
def rpahub_register_commands(commands):
    commands.add("audit", _audit_command, help="verify the audit log or sign a checkpoint now",
                 configure=_configure_audit)


__all__ = ["ledger", "verify"]
