"""Executor integration: admission of multi-vendor robots (6.5.2a), their sessions over
every transport (clause 7), licences, runs with logs, checkpoints and recordings,
stored files, and the management API that drives them."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from rpahub_core import db as hubdb
from rpahub_core import hookimpl, signing
from rpahub_core.auth import ROBOT_TOKEN_PREFIX, RobotPrincipal
from rpahub_core.errors import Unauthorized
from rpahub_core.migrations import add_columns, create_tables
from rpahub_core.plugins import load_adapters

from . import resources
from .files import FileStore
from .gateway import Gateway
from .licences import LicenceError, Licences
from .models import MODELS, Executor
from .runs import Runs

log = logging.getLogger("rpahub.executors")

DEFAULTS = {
    "heartbeat_s": 15,  # advertised period; offline after missed_heartbeats of them
    "missed_heartbeats": 3,
    "duplicate_policy": "existing",  # or "newest": a reconnect replaces a silent old socket
    "max_upload_mb": 512,
    "max_ws_frame_kb": 1024,
    # A worker writes the liveness of its robots this often, in a few statements, instead
    # of on every heartbeat (docs/benchmarks.md).
    "liveness_flush_s": 1.0,
    # logAt without an offset is local time of this zone (the standard's examples omit it)
    "naive_log_timezone": "Asia/Shanghai",
    # Re-binding a licence to another robot or pool waits for a second person (SEC-3).
    "four_eyes_licence_bind": True,
}


class Executors:
    """This plugin's objects for one hub."""

    def __init__(self, hub):
        settings = {**DEFAULTS, **hub.settings.plugin("executors")}
        self.settings = settings
        report = load_adapters()
        for name, error in report.failures.items():
            log.error("vendor adapter %s failed to load: %s", name, error)
        self.adapter_failures = dict(report.failures)
        self.adapters = {}
        for name, cls in report.loaded.items():
            try:
                self.adapters[name] = cls()
            except Exception as exc:  # a broken adapter costs its suppliers, not the hub
                self.adapter_failures[name] = f"{type(exc).__name__}: {exc}"
                log.error("vendor adapter %s failed to start: %s", name, exc)
        self.licences = Licences(hub, four_eyes=bool(settings["four_eyes_licence_bind"]))
        self.files = FileStore(hub.settings.home / "files", int(settings["max_upload_mb"]) << 20)
        self.gateway = Gateway(hub, self.adapters, self.licences, settings)
        self.runs = Runs(hub, self.gateway, self.files, self.adapters)
        self._reaper = self._flusher = None


def state(hub) -> Executors:
    if "executors" not in hub.state:
        hub.state["executors"] = Executors(hub)
    return hub.state["executors"]


@hookimpl
def rpahub_config_defaults():
    return {"executors": dict(DEFAULTS)}


@hookimpl
def rpahub_approval_kinds(kinds):
    kinds.add("licence.bind", "licences.approve", "Bind a licence to another robot or pool",
              lambda request, hub: state(hub).licences.bind(request.target, **json.loads(request.payload)))


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("executors", 1, create_tables(*MODELS),
                   "suppliers, executors, licences, files, packages, runs, logs, commands")
    migrations.add("executors", 2, _leases_and_command_indexes, "run leases; command indexes")
    migrations.add("executors", 3, add_columns(Executor, "paused", "paused_note"), "executors paused from dispatch")


def _leases_and_command_indexes(ctx) -> None:
    from .models import RunInstance

    add_columns(RunInstance, "lease_expires_at")(ctx)
    for name, columns in (("run_instance_lease_expires_at", "run_instance (lease_expires_at)"),
                          ("command_run_id", "command (run_id)"),
                          ("command_executor_id_delivered_at", "command (executor_id, delivered_at)")):
        ctx.sql(f"CREATE INDEX IF NOT EXISTS {name} ON {columns}")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("executors.read", "See suppliers and executors")
    permissions.add("executors.manage", "Admit suppliers, change their secrets and allow-lists")
    permissions.add("licences.manage", "Issue, bind and revoke executor licences")
    permissions.add("licences.approve", "Approve binding a licence to another robot or pool (four eyes)")
    permissions.add("packages.manage", "Upload flow packages")
    permissions.add("runs.read", "See runs, their logs and recordings")
    permissions.add("runs.start", "Start a run on an executor")
    permissions.add("runs.stop", "Stop a run")
    permissions.add("files.read", "Download stored files")


@hookimpl
def rpahub_register_routes(routes, hub):
    ex = state(hub)
    routes.add("/api/v1/suppliers", resources.Suppliers(hub, ex.adapters))
    routes.add("/api/v1/adapters", resources.AdapterList(ex.adapters))
    routes.add("/api/v1/suppliers/{code}", resources.SupplierItem(hub, ex.adapters, ex.gateway))
    routes.add("/api/v1/executors", resources.Executors())
    routes.add("/api/v1/executors/{robot_id}", resources.ExecutorItem(hub))
    routes.add("/api/v1/licences", resources.Licences(ex.licences))
    routes.add("/api/v1/licences/{licence_id}/revoke", resources.LicenceRevoke(ex.licences))
    routes.add("/api/v1/licences/{licence_id}/bind", resources.LicenceBind(hub, ex.licences))
    routes.add("/api/v1/packages", resources.Packages(ex.runs, ex.files.max_bytes))
    routes.add("/api/v1/runs", resources.Runs(ex.runs))
    routes.add("/api/v1/runs/{run_id}", resources.RunItem(ex.runs))
    routes.add("/api/v1/runs/{run_id}/stop", resources.RunStop(ex.runs))
    routes.add("/api/v1/runs/{run_id}/logs", resources.RunLogs(ex.runs))
    routes.add("/api/v1/files/{file_id}/content", resources.FileContent(ex.files))
    routes.add("/v1/file/{source}/upload", resources.Upload(hub, ex.files))
    routes.add("/design/personalfile", resources.PersonalFiles(hub, ex.files))
    routes.add("/v1/packages/{package_id}/download", resources.PackageDownload(ex.runs))
    routes.add("/v1/licence/public-key", resources.PublicKey(ex.licences))
    for transport in hub.executor_protocols():
        for path, resource in transport.routes(ex.gateway, hub):
            routes.add(path, resource)


@hookimpl
def rpahub_authenticate(req, hub):
    """Robots: ``robotId`` + ``robotConnectId`` (HTTP executors) or a run's signed ``runToken``."""
    connect_id = req.get_header("robotConnectId")
    robot_id = req.get_header("robotId") or ""
    bearer = (req.get_header("Authorization") or "").partition(" ")[2].strip()
    if not connect_id and bearer.startswith(ROBOT_TOKEN_PREFIX):
        connect_id, robot_id = bearer, state(hub).gateway.robot_of(bearer)
    if connect_id:
        session = state(hub).gateway.resume(robot_id, connect_id)
        return RobotPrincipal(id=robot_id, name=robot_id, supplier=session.extra.get("supplier", ""),
                              connect_id=connect_id)
    token = req.get_param("runToken")
    if token:
        try:
            claims = signing.verify(hub.keys.hmac_key("run-token"), token)
        except signing.BadSignature as exc:
            raise Unauthorized(f"runToken: {exc}") from None
        return RobotPrincipal(id=claims["robot"], name=claims["robot"], run_id=claims["run"])
    return None


@hookimpl
def rpahub_startup(hub):
    ex = state(hub)
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return
    if not monkey.is_module_patched("socket"):
        return  # not in a gevent worker (tests drive reap() themselves)
    import gevent

    gateway = ex.gateway
    flush_s = max(0.1, float({**DEFAULTS, **hub.settings.plugin("executors")}["liveness_flush_s"]))

    def reap_forever():
        while True:
            gevent.sleep(max(1, gateway.heartbeat_s // 3))
            try:
                with hubdb.connection():
                    gateway.reap()
            except Exception as exc:
                hubdb.log_failure(log, "executor reaper", exc)

    def flush_forever():
        while True:
            gevent.sleep(flush_s)
            try:
                with hubdb.connection():
                    gateway.flush()
            except Exception as exc:  # what it held is lost; the next heartbeats write it again
                hubdb.log_failure(log, "writing executor liveness", exc)

    gateway.batched = True
    ex._reaper = gevent.spawn(reap_forever)
    ex._flusher = gevent.spawn(flush_forever)


@hookimpl
def rpahub_shutdown(hub):
    ex = hub.state.get("executors")
    if ex is not None and ex._reaper is not None:
        ex._reaper.kill()
        ex._flusher.kill()
        try:
            with hubdb.connection():
                ex.gateway.flush()  # the last heartbeats of a worker that stops
        except Exception:
            log.exception("writing executor liveness at shutdown failed")


# -- CLI -------------------------------------------------------------------------------


def _licence(hub, args) -> int:
    lic = state(hub).licences
    with hubdb.connection():
        if args.action == "issue":
            row = lic.issue(supplier=args.supplier, robot_id=args.robot, pool=args.pool,
                            features=[f for f in (args.features or "").split(",") if f], days=args.days)
            hub.audit("licence.issue", target=row.id, detail={"via": "cli"})
            print(row.id)
            print(row.content)
        elif args.action == "bind":
            row = lic.bind(args.licence, robot_id=args.robot, pool=args.pool)
            hub.audit("licence.bind", target=row.id, detail={"via": "cli", "supersedes": args.licence})
            print(row.id)
            print(row.content)
        elif args.action == "revoke":
            lic.revoke(args.licence)
            hub.audit("licence.revoke", target=args.licence, detail={"via": "cli"})
            print(f"revoked {args.licence}")
        elif args.action == "verify":
            content = args.content if args.content != "-" else sys.stdin.read().strip()
            try:
                payload = lic.verify(content)
            except LicenceError as exc:
                print(f"INVALID: {exc.hint}")
                return 1
            print(f"VALID: licence {payload['licenceId']} for {payload['robotId'] or 'pool ' + str(payload['pool'])}"
                  f" until {payload['expiresAt']}")
        elif args.action == "public-key":
            print(lic.public_key_pem(), end="")
    return 0


def _configure_licence(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    issue = sub.add_parser("issue", help="issue a signed licence")
    issue.add_argument("--supplier", required=True)
    issue.add_argument("--robot")
    issue.add_argument("--pool")
    issue.add_argument("--features", help="comma-separated")
    issue.add_argument("--days", type=int, default=365)
    bind = sub.add_parser("bind", help="re-bind a licence to a robot or pool")
    bind.add_argument("licence")
    bind.add_argument("--robot")
    bind.add_argument("--pool")
    revoke = sub.add_parser("revoke", help="revoke a licence")
    revoke.add_argument("licence")
    verify = sub.add_parser("verify", help="verify licence content (- reads it from stdin)")
    verify.add_argument("content")
    sub.add_parser("public-key", help="print the public key executors verify licences with")


def _supplier(hub, args) -> int:
    import secrets as _secrets

    from .models import Supplier

    secret = args.secret or _secrets.token_urlsafe(32)
    if args.adapter not in state(hub).adapters:
        print(f"rpahub: adapter {args.adapter!r} is not installed ({', '.join(sorted(state(hub).adapters))})",
              file=sys.stderr)
        return 2
    if len(secret) < 16:
        print("rpahub: --secret needs at least 16 characters", file=sys.stderr)
        return 2
    with hubdb.connection(), hubdb.atomic():
        Supplier.create(code=args.code, name=args.name or args.code, secret_enc=hub.keys.encrypt(secret),
                        adapter=args.adapter)
        hub.audit("supplier.create", target=args.code, detail={"via": "cli", "adapter": args.adapter})
    print(f"supplier {args.code} admitted (adapter {args.adapter}); its secret, shown once:")
    print(secret)
    return 0


def _configure_supplier(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    add = sub.add_parser("add", help="admit a supplier")
    add.add_argument("code")
    add.add_argument("--name")
    add.add_argument("--adapter", default="tces130")
    add.add_argument("--secret", help="default: generated")


@hookimpl
def rpahub_register_commands(commands):
    commands.add("licence", _licence, help="issue, bind, verify and revoke executor licences",
                 configure=_configure_licence)
    commands.add("supplier", _supplier, help="admit executor suppliers", configure=_configure_supplier)
