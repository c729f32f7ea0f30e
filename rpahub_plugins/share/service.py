"""The artifact library and the marketplace over it. No HTTP in here.

An app's versions are executors packages: immutable and content-hashed by the package
store; this module adds their review (maker-checker) and which one is in production.
"""

from __future__ import annotations

import collections
import datetime as dt
import difflib
import io
import json
import zipfile

import peewee

from rpahub_core import db as hubdb
from rpahub_core.auth import UserPrincipal
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, Forbidden, NotFound
from rpahub_plugins.executors.gateway import Prepared

from .models import App, AppRun, AppVersion, Subscription
from .params import ParameterSpec, check_schema, to_arguments

PROMOTE = "app_version.promote"
PUBLISH = "app.publish"
# Files compared line by line in a diff; anything else is compared by hash only.
TEXT_SUFFIXES = (".py", ".robot", ".resource", ".txt", ".json", ".yaml", ".yml", ".toml", ".ini", ".cfg", ".md",
                 ".csv", ".xml", ".js", ".sql", ".ps1", ".bat", ".sh")
MAX_DIFF_BYTES = 256 * 1024
# What admit() asks about every run queued (every run a schedule fires too): built once.
VERSION_OF_PACKAGE = Prepared(lambda: AppVersion.select(AppVersion.app, AppVersion.version, AppVersion.state)
                              .where(AppVersion.package_id == ""))


def _executors(hub):
    from rpahub_plugins.executors import state

    return state(hub)


def parameters_of(app: App) -> list[ParameterSpec]:
    return [ParameterSpec.model_validate(p) for p in json.loads(app.parameters)]


# Why a version that is not approved may not run in production, by its state.
UNAPPROVED = {"draft": "not reviewed yet", "pending": "waiting for review", "rejected": "refused in review",
              "retired": "retired from production"}


class Library:
    def __init__(self, hub):
        self.hub = hub

    # -- apps ---------------------------------------------------------------------

    def get(self, app_id: str) -> App:
        app = App.get_or_none(App.id == app_id)
        if app is None:
            raise NotFound(f"app {app_id} not found")
        return app

    def may_edit(self, app: App, who: UserPrincipal) -> None:
        if app.owner_id != who.id and not who.can("apps.review"):
            raise Forbidden(f"only the owner of {app.name} (or a reviewer) may change it")

    def create(self, fields: dict, owner: UserPrincipal, *, requirement_id: str | None = None) -> App:
        check_schema(fields.get("parameters", []))
        self._check_policy(fields)
        with hubdb.atomic():
            if App.select().where(App.name == fields["name"]).exists():
                raise Conflict(f"name: an app named {fields['name']} exists")
            app = App.create(owner_id=owner.id, owner_name=owner.name, requirement_id=requirement_id,
                             **self._columns(fields))
        return app

    def update(self, app: App, fields: dict) -> App:
        # null leaves a field as it is, except where it means "back to the default".
        fields = {k: v for k, v in fields.items() if v is not None or k in ("maxAttempts", "backoffSeconds", "policy")}
        if "parameters" in fields:
            check_schema(fields["parameters"])
        self._check_policy(fields)
        with hubdb.atomic():
            if "name" in fields and fields["name"] != app.name and \
                    App.select().where(App.name == fields["name"]).exists():
                raise Conflict(f"name: an app named {fields['name']} exists")
            for column, value in self._columns(fields).items():
                setattr(app, column, value)
            app.updated_at = utcnow()
            app.save()
        return app

    def _check_policy(self, fields: dict) -> None:
        from rpahub_plugins.dispatch import dispatcher

        if fields.get("policy"):
            dispatcher(self.hub).check_policy(fields["policy"])

    @staticmethod
    def _columns(fields: dict) -> dict:
        out = {k: fields[k] for k in ("name", "description", "vendor", "region", "scenario", "domain", "policy")
               if k in fields}
        if "maxAttempts" in fields:
            out["max_attempts"] = fields["maxAttempts"]
        if "backoffSeconds" in fields:
            out["backoff_s"] = fields["backoffSeconds"]
        if "tags" in fields:
            out["tags"] = json.dumps(sorted(set(fields["tags"])), ensure_ascii=False)
        if "parameters" in fields:
            out["parameters"] = json.dumps([p.model_dump(exclude_none=True, exclude_defaults=True) | {"name": p.name}
                                            for p in check_schema(fields["parameters"])], ensure_ascii=False)
        return out

    # -- versions -----------------------------------------------------------------

    def version(self, app: App, version_id: str) -> AppVersion:
        row = AppVersion.get_or_none((AppVersion.app == app.id)
                                     & ((AppVersion.id == version_id) | (AppVersion.version == version_id)))
        if row is None:
            raise NotFound(f"version {version_id} of {app.name} not found")
        return row

    def add_version(self, app: App, who: UserPrincipal, *, version: str | None = None, data: bytes | None = None,
                    package_id: str | None = None, changelog: str = "") -> AppVersion:
        """Attach a new package: uploaded now (``data``) or already in the store."""
        from rpahub_plugins.executors.models import Package

        ex = _executors(self.hub)
        with hubdb.atomic():
            if data is not None:
                if AppVersion.select().where((AppVersion.app == app.id) & (AppVersion.version == version)).exists():
                    raise Conflict(f"version: {app.name} {version} exists: versions are immutable")
                package = ex.runs.add_package(name=f"app-{app.id}", version=version, data=data,
                                              created_by=who.name)
            else:
                package = Package.get_or_none(Package.id == package_id)
                if package is None:
                    raise NotFound(f"packageId: package {package_id} not found")
                version = version or package.version
                if AppVersion.select().where(AppVersion.package_id == package.id).exists():
                    raise Conflict(f"packageId: package {package.id} already is a version of an app")
                if AppVersion.select().where((AppVersion.app == app.id) & (AppVersion.version == version)).exists():
                    raise Conflict(f"version: {app.name} {version} exists: versions are immutable")
            row = AppVersion.create(app=app, version=version, package_id=package.id, sha256=package.file.sha256,
                                    changelog=changelog, created_by=who.name, created_by_id=who.id)
            app.updated_at = utcnow()
            app.save()
        return row

    def request_promotion(self, app: App, row: AppVersion, who: UserPrincipal, reason: str = ""):
        """Ask a second person to put ``row`` into production (SEC-5 peer review)."""
        from rpahub_plugins.approvals import requests

        if app.production_version == row.id:
            raise Conflict(f"version {row.version} already is in production")
        if row.state not in ("draft", "rejected", "approved"):
            raise Conflict(f"version {row.version} is {row.state}: it cannot be submitted for review")
        with hubdb.atomic():
            request = requests(self.hub).file(PROMOTE, target=row.id, maker=who, reason=reason,
                                              title=f"Put {app.name} {row.version} into production",
                                              payload={"appId": app.id, "version": row.version,
                                                       "sha256": row.sha256})
            if row.state != "approved":
                row.state = "pending"
                row.save()
        return request

    def apply_promotion(self, request, hub) -> None:
        row = AppVersion.get_or_none(AppVersion.id == request.target)
        if row is None:
            raise NotFound(f"version {request.target} no longer exists")
        if row.sha256 != json.loads(request.payload).get("sha256"):
            raise Conflict("the version changed since the request was made")
        row.state, row.approved_by, row.approved_at = "approved", request.checker_name or "", utcnow()
        row.save()
        App.update(production_version=row.id, updated_at=utcnow()).where(App.id == row.app_id).execute()

    def refuse_promotion(self, request, hub) -> None:
        AppVersion.update(state="rejected").where((AppVersion.id == request.target)
                                                  & (AppVersion.state == "pending")).execute()

    def diff(self, app: App, old: AppVersion, new: AppVersion) -> dict:
        """Files added, removed and changed between two versions, with a unified diff of
        each changed text file."""
        a, b = self._files(old), self._files(new)
        changed = []
        for name in sorted(set(a) & set(b)):
            if a[name] == b[name]:
                continue
            entry = {"path": name, "diff": None}
            if name.lower().endswith(TEXT_SUFFIXES) and max(len(a[name]), len(b[name])) <= MAX_DIFF_BYTES:
                try:
                    old_lines = a[name].decode("utf-8").splitlines(keepends=True)
                    new_lines = b[name].decode("utf-8").splitlines(keepends=True)
                    entry["diff"] = "".join(difflib.unified_diff(old_lines, new_lines, f"{old.version}/{name}",
                                                                 f"{new.version}/{name}"))
                except UnicodeDecodeError:
                    pass
            changed.append(entry)
        return {"app": app.id, "from": old.version, "to": new.version, "added": sorted(set(b) - set(a)),
                "removed": sorted(set(a) - set(b)), "changed": changed}

    def _files(self, row: AppVersion) -> dict[str, bytes]:
        from rpahub_plugins.executors.models import Package

        package = Package.get_by_id(row.package_id)
        with _executors(self.hub).files.open(package.file) as fh, zipfile.ZipFile(io.BytesIO(fh.read())) as zf:
            return {info.filename: zf.read(info) for info in zf.infolist() if not info.is_dir()}

    # -- listing ------------------------------------------------------------------

    def request_publish(self, app: App, who: UserPrincipal, reason: str = ""):
        from rpahub_plugins.approvals import requests

        if app.state == "listed":
            raise Conflict(f"{app.name} is already listed")
        if not app.production_version:
            raise Conflict(f"{app.name} has no approved version in production yet: nothing to publish")
        return requests(self.hub).file(PUBLISH, target=app.id, maker=who, reason=reason,
                                       title=f"List {app.name} in the marketplace",
                                       payload={"appId": app.id, "productionVersion": app.production_version})

    def apply_publish(self, request, hub) -> None:
        app = App.get_or_none(App.id == request.target)
        if app is None:
            raise NotFound(f"app {request.target} no longer exists")
        if not app.production_version:
            raise Conflict(f"{app.name} has no version in production")
        app.state, app.listed_at, app.delist_reason, app.updated_at = "listed", utcnow(), "", utcnow()
        app.save()
        hub.publish("app.listed", appId=app.id)

    def delist(self, app: App, who: UserPrincipal, reason: str) -> App:
        self.may_edit(app, who)
        if app.state != "listed":
            raise Conflict(f"{app.name} is not listed")
        with hubdb.atomic():
            app.state, app.delisted_at, app.delist_reason, app.updated_at = "delisted", utcnow(), reason, utcnow()
            app.save()
            self.hub.publish("app.delisted", appId=app.id)
        return app

    # -- delivery from the design center ------------------------------------------

    def accept_delivery(self, *, requirement_id: str, app_id: str | None, name: str, description: str,
                        region: str, scenario: str, domain: str, vendor: str, tags: list[str],
                        parameters: list, package_id: str, accepted_by: UserPrincipal) -> App:
        """An accepted requirement's package becomes an approved version in the library.

        Acceptance is the review: the acceptor must not be who uploaded the package."""
        from rpahub_plugins.executors.models import Package

        package = Package.get_or_none(Package.id == package_id)
        if package is None:
            raise NotFound(f"packageId: package {package_id} not found")
        if package.created_by == accepted_by.name:
            raise Forbidden("the person who uploaded a package cannot accept it (four-eyes)")
        fields = {"name": name, "description": description, "region": region, "scenario": scenario,
                  "domain": domain, "vendor": vendor, "tags": tags, "parameters": parameters}
        with hubdb.atomic():
            if app_id:
                app = self.update(self.get(app_id), {k: v for k, v in fields.items() if k != "name"})
            else:
                app = self.create(fields, accepted_by, requirement_id=requirement_id)
            maker = UserPrincipal(id="", name=package.created_by)
            row = self.add_version(app, maker, package_id=package.id, changelog=f"accepted from {requirement_id}")
            row.state, row.approved_by, row.approved_at = "approved", accepted_by.name, utcnow()
            row.created_by_id = ""
            row.save()
            app.production_version = row.id
            app.save()
        return app

    # -- the marketplace ----------------------------------------------------------

    def listed(self, app_id: str) -> App:
        app = App.get_or_none((App.id == app_id) & (App.state == "listed"))
        if app is None:
            raise NotFound(f"app {app_id} is not in the marketplace")
        return app

    def subscribers(self):
        return (Subscription.select(peewee.fn.COUNT(Subscription.id))
                .where(Subscription.app == App.id))

    def recent_runs(self, days: int = 30):
        since = utcnow() - dt.timedelta(days=days)
        return AppRun.select(peewee.fn.COUNT(AppRun.run_id)).where((AppRun.app == App.id)
                                                                   & (AppRun.created_at >= since))

    def search(self, *, q: str = "", tags=(), region=None, scenario=None, domain=None, vendor=None):
        """Listed apps matching every word of ``q`` somewhere, ranked: a word in the name
        counts most, then tags, scenario, description; ties go to the most used."""
        query = App.select(App, self.subscribers().alias("subscribers"), self.recent_runs().alias("runs30")
                           ).where(App.state == "listed")
        score = peewee.Value(0)
        for word in q.split()[:8]:
            in_name, in_tags = App.name.contains(word), App.tags.contains(word)
            in_scenario, in_text = App.scenario.contains(word), App.description.contains(word)
            query = query.where(in_name | in_tags | in_scenario | in_text | App.vendor.contains(word))
            score = (score + peewee.Case(None, [(in_name, 8)], 0) + peewee.Case(None, [(in_tags, 4)], 0)
                     + peewee.Case(None, [(in_scenario, 2)], 0) + peewee.Case(None, [(in_text, 1)], 0))
        for tag in tags:
            query = query.where(App.tags.contains(json.dumps(tag, ensure_ascii=False)))
        for column, value in ((App.region, region), (App.scenario, scenario), (App.domain, domain),
                              (App.vendor, vendor)):
            if value:
                query = query.where(column == value)
        popularity = peewee.fn.COALESCE(self.subscribers(), 0) * 3 + peewee.fn.COALESCE(self.recent_runs(), 0)
        return query.order_by(score.desc(), popularity.desc(), App.name)

    def facets(self, query) -> dict:
        ids = query.select(App.id).order_by()
        out = {}
        for key, column in (("domain", App.domain), ("region", App.region), ("scenario", App.scenario),
                            ("vendor", App.vendor)):
            rows = (App.select(column, peewee.fn.COUNT(App.id)).where(App.id.in_(ids)).group_by(column)
                    .order_by(peewee.fn.COUNT(App.id).desc(), column).limit(50).tuples())
            out[key] = [{"value": value, "count": n} for value, n in rows if value]
        # Tags are a JSON list per app: counted here (a library holds hundreds of apps, not millions).
        tags = collections.Counter(t for (raw,) in App.select(App.tags).where(App.id.in_(ids)).tuples()
                                   for t in set(json.loads(raw or "[]")))
        out["tag"] = [{"value": t, "count": n} for t, n in sorted(tags.items(), key=lambda x: (-x[1], x[0]))[:50]]
        return out

    def subscribe(self, app: App, who: UserPrincipal) -> Subscription:
        with hubdb.atomic():
            existing = Subscription.get_or_none((Subscription.app == app.id) & (Subscription.user_id == who.id))
            if existing is not None:
                return existing
            row = Subscription.create(app=app, user_id=who.id, user_name=who.name)
            self.hub.publish("app.subscribed", appId=app.id, userId=who.id)
        return row

    def unsubscribe(self, app: App, who: UserPrincipal) -> None:
        deleted = Subscription.delete().where((Subscription.app == app.id)
                                              & (Subscription.user_id == who.id)).execute()
        if not deleted:
            raise NotFound(f"you are not subscribed to {app.name}")

    def subscribed(self, app: App, who: UserPrincipal) -> bool:
        return Subscription.select().where((Subscription.app == app.id) & (Subscription.user_id == who.id)).exists()

    def usable(self, app_id: str, who: UserPrincipal) -> tuple[App, AppVersion]:
        """A listed app the person subscribed to, with its production version."""
        app = self.listed(app_id)
        if not self.subscribed(app, who):
            raise Forbidden(f"subscribe to {app.name} first")
        return app, AppVersion.get_by_id(app.production_version)

    def run(self, app_id: str, who: UserPrincipal, *, arguments: dict, executor_id: str | None = None,
            pool: str | None = None, labels=(), priority: int = 0, video_required: bool = False,
            video_mode: int = 0):
        """Run the production version with arguments checked against the app's schema."""
        from rpahub_plugins.dispatch import dispatcher

        app, row = self.usable(app_id, who)
        wire = to_arguments(parameters_of(app), arguments)
        with hubdb.atomic():
            run = dispatcher(self.hub).submit(package_id=row.package_id, user_id=who.id, user_name=who.name,
                                              arguments=wire, executor_id=executor_id, pool=pool,
                                              labels=list(labels), priority=priority,
                                              video_required=video_required, video_mode=video_mode)
            AppRun.create(run_id=run.id, app=app, version=row, user_id=who.id)
            self.hub.publish("app.run", appId=app.id, runId=run.id)
        return run

    # -- admitting runs (rpahub_admit_run) --------------------------------------------

    def test_pool(self) -> str:
        """The pool trial runs go to: the design center's ``test_pool`` setting."""
        return str(self.hub.settings.plugin("design").get("test_pool") or "test")

    def admit(self, *, package_id: str, pool: str | None = None, **target) -> dict | None:
        """Called by the dispatcher for every run it is asked to queue.

        A package that is a version of a library app runs in production only once
        approved (SEC-5); before that, only on the test pool, for trials. A package of no
        app (an operator's upload) is outside the library and not held back here. The
        app's retry and scheduling policy become the run's defaults."""
        found = VERSION_OF_PACKAGE.rows(package_id)
        if not found:
            return None
        app_id, version, version_state = found[0]
        app = App.get_by_id(app_id)
        test_pool = self.test_pool()
        if version_state != "approved" and pool != test_pool:
            raise Conflict(f"packageId: {app.name} {version} is {UNAPPROVED.get(version_state, version_state)}: a "
                           f"version of a library app runs in production only once a reviewer approved it "
                           f"(SEC-5); until then it may run on the test pool {test_pool!r} only")
        return {"max_attempts": app.max_attempts, "backoff_s": app.backoff_s, "policy": app.policy}

    def package_of(self, row: AppVersion):
        from rpahub_plugins.executors.models import Package

        package = Package.get_or_none(Package.id == row.package_id)
        if package is None:
            raise BadRequest("the version's package is missing")
        return package
