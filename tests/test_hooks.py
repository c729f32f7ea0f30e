"""Every hook of ``rpahub_core.hookspecs``: a small plugin next to the built-ins, checked
against the hook's contract through the app or the :class:`rpahub_core.hub.Hub` facade."""

import io
import os
from types import SimpleNamespace

import peewee
import pytest
from falcon import testing

import rpahub_core.app
import rpahub_core.plugins
from rpahub_core import cli, hookimpl
from rpahub_core import db as hubdb
from rpahub_core.app import build_hub, create_app
from rpahub_core.auth import RobotPrincipal, UserPrincipal
from rpahub_core.bus import Event, InProcessBus
from rpahub_core.config import load_settings
from rpahub_core.errors import BadRequest, Unauthorized
from rpahub_core.hub import HubNotConfigured
from rpahub_core.migrations import SchemaTooNew, SchemaVersion, create_tables, migrate
from rpahub_core.testing import make_app, make_settings, plugin_manager
from rpahub_core.web import ok, operation
from rpahub_plugins.audit_log.models import AuditEntry
from rpahub_plugins.auth_local.models import User

ALICE = UserPrincipal(id="u-alice", name="alice", permissions=frozenset({"memos.write"}))
PRINCIPALS = {
    "Bearer alice": ALICE,
    "Bearer bob": UserPrincipal(id="u-bob", name="bob"),
    "Bearer root": UserPrincipal(id="u-root", name="root", permissions=frozenset({"*"})),
    "Bearer robot": RobotPrincipal(id="r-1", name="robot-1", supplier="acme"),
}


def as_(who):
    return {"Authorization": f"Bearer {who}"}


def plugin(**hooks):
    """A plugin from plain functions: ``plugin(rpahub_prepare=lambda hub: [...])``."""
    return SimpleNamespace(**{name: hookimpl(fn) for name, fn in hooks.items()})


def named(plugins):
    return [(f"plugin{i}", p) for i, p in enumerate(plugins)]


class Memo(hubdb.BaseModel):
    text = peewee.CharField()

    class Meta:
        table_name = "hooks_memo"


class Memos:
    def __init__(self, hub):
        self.hub = hub

    @operation(permission="memos.write", summary="List memos")
    def on_get(self, req, resp):
        ok(resp, [m.text for m in Memo.select().order_by(Memo.id)])

    @operation(permission="memos.write", summary="Add a memo", audit="memo.add", status=201)
    def on_post(self, req, resp):
        text = req.get_param("text") or ""
        Memo.create(text=text)
        self.hub.publish("memo.added", text=text)
        if text == "bad":  # after the write: the guard must roll it back
            raise BadRequest("bad memo")
        ok(resp, {"text": text}, status=201)


class Hello:
    def on_get(self, req, resp):
        ok(resp, "hi")


class Ghost:
    @operation(permission="ghost.read", summary="needs a permission nobody declared")
    def on_get(self, req, resp):
        ok(resp, None)


def token_auth():
    """``Bearer alice|bob|root|robot``; anything else is left to the other plugins."""
    return plugin(rpahub_authenticate=lambda req, hub: PRINCIPALS.get(req.get_header("Authorization") or ""))


class MemoPlugin:
    """A feature plugin: a table, a permission, a route; it also observes events and audits."""

    def __init__(self):
        self.events, self.audits = [], []

    @hookimpl
    def rpahub_migrations(self, migrations):
        migrations.add("memos", 1, create_tables(Memo), "memo table")

    @hookimpl
    def rpahub_permissions(self, permissions):
        permissions.add("memos.write", "Write memos")

    @hookimpl
    def rpahub_register_routes(self, routes, hub):
        routes.add("/api/v1/memos", Memos(hub))

    @hookimpl
    def rpahub_on_event(self, event, hub):
        self.events.append(event)

    @hookimpl
    def rpahub_audit(self, entry, hub):
        self.audits.append(entry)

    def topics(self):
        return [e.topic for e in self.events]


@pytest.fixture
def open_hub(tmp_path):
    """``open_hub(*plugins, url="")``: an opened (not started) hub, closed afterwards."""
    hubs = []

    def open_(*plugins, url=""):
        hubs.append(build_hub(make_settings(tmp_path / "home", url), pm=plugin_manager(*named(plugins))))
        return hubs[-1].open()

    yield open_
    for hub in hubs:
        hub.close()


@pytest.fixture
def client_for(tmp_path):
    """``client_for(*plugins)``: a test client of a started app (``client.app.hub``)."""
    apps = []

    def make(*plugins):
        apps.append(make_app(tmp_path / "home", "", *named(plugins)))
        return testing.TestClient(apps[-1])

    yield make
    for app in apps:
        app.hub.close()


def bare_hub(tmp_path, *plugins):
    """A hub that is never opened: enough for the facades that need no database."""
    return build_hub(make_settings(tmp_path / "home"), pm=plugin_manager(*named(plugins)))


def test_rpahub_startup_and_rpahub_shutdown_run_once_in_order(client_for):
    calls = []
    hub = client_for(plugin(
        rpahub_startup=lambda hub: calls.append(("startup", hub, hub.db is not None)),
        rpahub_shutdown=lambda hub: calls.append(("shutdown", hub)),
    )).app.hub
    assert calls == [("startup", hub, True)]  # after the database was opened
    hub.close()
    hub.close()
    assert calls == [("startup", hub, True), ("shutdown", hub)]


def test_rpahub_startup_failure_aborts_and_names_the_plugin(open_hub):
    hub = open_hub(plugin(rpahub_startup=lambda hub: 1 / 0))
    with pytest.raises(Exception, match="plugin0"):
        create_app(hub=hub)


def test_rpahub_prepare_returns_notices_and_seeds_the_first_admin_once(open_hub):
    hub = open_hub(plugin(rpahub_prepare=lambda hub: ["licence expires in 7 days"]),
                   plugin(rpahub_prepare=lambda hub: None))
    first = hub.prepare()
    assert any("one-time password" in line for line in first)
    assert first[-1] == "licence expires in 7 days"  # built-ins first, then plugins in order
    assert hub.prepare() == ["licence expires in 7 days"]  # no second administrator
    with hubdb.connection():
        assert [u.username for u in User.select()] == ["admin"]


def test_rpahub_register_commands_adds_a_command_run_by_cli_main(tmp_path, monkeypatch, capsys):
    seen = {}

    def licence(hub, args):
        seen.update(hub=hub, opened=hub.db is not None, days=args.days)
        return 3

    def register(commands):
        commands.add("quota", licence, help="show the quota",
                     configure=lambda p: p.add_argument("--days", type=int, default=30))
        commands.add("noop", lambda hub, args: None, help="does nothing")
        with pytest.raises(ValueError, match="defined twice"):
            commands.add("serve", licence, help="clashes with a built-in")

    pm = lambda **kw: plugin_manager(("myplugin", plugin(rpahub_register_commands=register)))  # noqa: E731
    monkeypatch.setattr(rpahub_core.plugins, "get_plugin_manager", pm)
    monkeypatch.setattr(rpahub_core.app, "get_plugin_manager", pm)
    for name in [n for n in os.environ if n.startswith("RPAHUB_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RPAHUB_HUB__HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["quota", "--days", "7"]) == 3
    assert seen["opened"] and seen["days"] == 7
    assert seen["hub"].db.is_closed()  # main closes the hub after the handler
    assert (tmp_path / "home" / "rpahub.db").exists()
    assert "one-time password" in capsys.readouterr().err  # prepared before the handler
    assert cli.main(["noop"]) == 0


def test_rpahub_config_defaults_sit_under_the_file_and_the_environment(tmp_path, monkeypatch):
    pm = plugin_manager(("myplugin", plugin(rpahub_config_defaults=lambda: {
        "myplugin": {"retries": 3, "colour": "blue", "region": "north"}})))
    config = tmp_path / "conf.toml"
    config.write_text('[plugins.myplugin]\ncolour = "red"\nextra = true\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    defaults = build_hub(pm=pm, environ={}).settings
    assert defaults.plugin("myplugin") == {"retries": 3, "colour": "blue", "region": "north"}
    assert defaults.plugin("storage_sqlite") == {"synchronous": "normal"}  # built-ins use it too
    hub = build_hub(pm=pm, environ={"RPAHUB_CONFIG": str(config), "RPAHUB_PLUGINS__MYPLUGIN__RETRIES": "7"})
    assert hub.settings.plugin("myplugin") == {"retries": 7, "colour": "red", "region": "north", "extra": True}
    settings = load_settings(environ={"RPAHUB_PLUGINS__MYPLUGIN__REGION": "south"},
                             plugin_defaults={"myplugin": {"region": "north", "retries": 3}})
    assert settings.plugin("myplugin") == {"region": "south", "retries": 3}


def test_rpahub_register_routes_serves_routes_and_middleware_after_the_guard(client_for):
    principals = []

    class SeePrincipal:
        def process_resource(self, req, resp, resource, params):
            principals.append(req.context.get("principal"))

    def register(routes, hub):
        routes.add("/hello", Hello())
        routes.add_middleware(SeePrincipal())

    client = client_for(token_auth(), MemoPlugin(), plugin(rpahub_register_routes=register))
    r = client.simulate_post("/api/v1/memos", params={"text": "first"}, headers=as_("alice"))
    assert r.status_code == 201, r.json
    assert client.simulate_get("/api/v1/memos", headers=as_("alice")).json["resultValue"] == ["first"]
    assert ALICE in principals  # authenticated before the plugin's middleware ran
    assert client.simulate_get("/hello").json["resultValue"] == "hi"  # outside /api/v1: no guard


@pytest.mark.parametrize("resource, message", [
    (Hello(), "has no @operation declaration"),
    (Ghost(), "undeclared permission 'ghost.read'"),
])
def test_rpahub_register_routes_refuses_what_is_not_declared(open_hub, resource, message):
    hub = open_hub(plugin(rpahub_register_routes=lambda routes, hub: routes.add("/api/v1/thing", resource)))
    with pytest.raises(ValueError, match=message):
        create_app(hub=hub)


# pluggy lets an implementation accept a subset of the hook's arguments; these two call sites do not.
def test_rpahub_register_routes_may_take_only_routes(client_for):
    client = client_for(plugin(rpahub_register_routes=lambda routes: routes.add("/hello", Hello())))
    assert client.simulate_get("/hello").status_code == 200


def test_rpahub_on_event_observer_may_take_only_the_event(client_for):
    topics = []
    client_for(plugin(rpahub_on_event=lambda event: topics.append(event.topic))).app.hub.publish("memo.ping")
    assert topics == ["memo.ping"]


def test_rpahub_open_database_first_answer_wins(open_hub, tmp_path):
    mine = peewee.SqliteDatabase(str(tmp_path / "memo.db"))
    storage = plugin(rpahub_open_database=lambda settings: mine if "memo:" in settings.database_url else None)
    hub = open_hub(storage, MemoPlugin(), url="memo://notes")
    assert hub.db is mine and hubdb.database.obj is mine
    with hubdb.connection():
        assert "hooks_memo" in mine.get_tables()  # migrated on the plugin's database
    hub.close()
    hub = open_hub(storage)  # passing (None) leaves the URL to the built-in SQLite plugin
    assert hub.db is not mine and isinstance(hub.db, peewee.SqliteDatabase)
    hub.close()
    with pytest.raises(HubNotConfigured, match="no storage plugin accepts") as err:
        open_hub(url="mysql://root:s3cret@db/hub")
    assert "s3cret" not in str(err.value)  # the URL is redacted


def test_rpahub_migrations_run_once_in_order_and_refuse_a_newer_database(open_hub):
    ran = []

    def steps(*numbers):
        def register(migrations):
            for n in numbers:
                migrations.add("myplugin", n, lambda ctx, n=n: ran.append(n), f"step {n}")
        return plugin(rpahub_migrations=register)

    hub = open_hub(steps(2, 1, 3))
    assert ran == [1, 2, 3]
    with hubdb.connection():
        assert SchemaVersion.get(SchemaVersion.component == "myplugin").version == 3
    hub.close()
    hub = open_hub(steps(2, 1, 3))
    assert ran == [1, 2, 3]  # nothing applied twice
    with hubdb.connection():
        assert migrate(hub.migrations) == []
    hub.close()
    with pytest.raises(SchemaTooNew, match="myplugin schema #3"):
        open_hub(steps(1))


def test_rpahub_on_event_only_after_commit_never_after_rollback(client_for):
    memos = MemoPlugin()
    hub = client_for(memos).app.hub
    with hubdb.connection():
        with hubdb.atomic():
            event = hub.publish("memo.kept", n=1)
            assert "memo.kept" not in memos.topics()
        assert memos.events[-1] is event and event.data == {"n": 1} and event.origin == hub.node_id
        with pytest.raises(RuntimeError), hubdb.atomic():
            hub.publish("memo.lost")
            raise RuntimeError("rolled back")
    assert "memo.lost" not in memos.topics()


def test_rpahub_on_event_not_told_of_a_rolled_back_savepoint(client_for):
    memos = MemoPlugin()
    hub = client_for(memos).app.hub
    with hubdb.connection(), hubdb.atomic():
        with pytest.raises(RuntimeError), hubdb.atomic():
            hub.publish("memo.undone")
            raise RuntimeError("inner change rolled back")
    assert "memo.undone" not in memos.topics()


def test_rpahub_on_event_a_failing_observer_does_not_stop_the_others(client_for):
    first, last = [], []
    observers = [plugin(rpahub_on_event=lambda event, hub, seen=seen: seen.append(event.topic))
                 for seen in (first, last)]
    hub = client_for(observers[0], plugin(rpahub_on_event=lambda event, hub: 1 / 0), observers[1]).app.hub
    hub.publish("memo.ping")  # the publisher is not affected either
    assert "memo.ping" in first and "memo.ping" in last


def test_rpahub_make_bus_plugin_bus_carries_the_events(client_for):
    class ClosingBus(InProcessBus):
        closed = False

        def close(self):
            self.closed = True
            super().close()

    bus, memos = ClosingBus(), MemoPlugin()
    hub = client_for(plugin(rpahub_make_bus=lambda hub: bus), memos).app.hub
    assert hub.bus is bus
    bus.publish(Event("memo.ping"))  # the core delivers to observers from the plugin's bus
    assert memos.topics()[-1] == "memo.ping"
    hub.close()
    assert bus.closed


def test_rpahub_authenticate_principal_is_honoured_and_robots_kept_out(client_for):
    def revoked(req, hub):  # registered last, so asked before token_auth
        if req.get_header("X-Revoked"):
            raise Unauthorized("revoked credentials")

    client = client_for(token_auth(), MemoPlugin(), plugin(rpahub_authenticate=revoked))
    assert client.simulate_get("/api/v1/memos", headers=as_("alice")).status_code == 200
    assert client.simulate_get("/api/v1/memos").status_code == 401
    r = client.simulate_get("/api/v1/memos", headers=as_("bob"))
    assert r.status_code == 403 and "memos.write" in r.json["resultHint"]
    for path in ("/api/v1/memos", "/api/v1/me"):
        r = client.simulate_get(path, headers=as_("robot"))
        assert r.status_code == 403 and "robot credentials" in r.json["resultHint"]
    r = client.simulate_get("/api/v1/memos", headers={**as_("alice"), "X-Revoked": "1"})
    assert r.status_code == 401 and r.json["resultHint"] == "revoked credentials"  # no later plugin accepts


def test_rpahub_permissions_are_listed_and_must_not_conflict(client_for, open_hub):
    client = client_for(token_auth(), MemoPlugin())
    listed = client.simulate_get("/api/v1/permissions", headers=as_("root")).json["resultValue"]
    assert {"name": "memos.write", "description": "Write memos"} in listed
    assert {"audit.read", "users.manage"} <= {p["name"] for p in listed}
    client.app.hub.close()
    with pytest.raises(ValueError, match="declared twice"):
        open_hub(MemoPlugin(), plugin(rpahub_permissions=lambda permissions: permissions.add("memos.write", "x")))


def test_rpahub_audit_every_implementation_gets_each_mutating_call(client_for):
    memos, others = MemoPlugin(), []
    client = client_for(token_auth(), memos, plugin(rpahub_audit=lambda entry, hub: others.append(entry)))
    client.simulate_post("/api/v1/memos", params={"text": "kept"}, headers=as_("alice"))
    client.simulate_post("/api/v1/memos", params={"text": "bad"}, headers=as_("alice"))
    client.simulate_post("/api/v1/memos", params={"text": "x"}, headers=as_("robot"))
    client.simulate_get("/api/v1/memos", headers=as_("alice"))  # reads are not audited
    expected = [("u-alice", "user", "ok"), ("u-alice", "user", "failed"), ("r-1", "robot", "denied")]
    for entries in (memos.audits, others):
        assert [(e["actor"], e["principal_type"], e["result"])
                for e in entries if e["action"] == "memo.add"] == expected
    assert {"target", "detail", "source", "at"} <= set(memos.audits[-1])
    with hubdb.connection():
        rows = AuditEntry.select().where(AuditEntry.action == "memo.add").order_by(AuditEntry.id)
        assert [(r.actor, r.result) for r in rows] == [(a, res) for a, _, res in expected]
        assert [m.text for m in Memo.select()] == ["kept"]  # the failed change was rolled back
    assert [e.data["text"] for e in memos.events if e.topic == "memo.added"] == ["kept"]
    assert "audit.recorded" in memos.topics()


def test_rpahub_select_executor_edge_cases(tmp_path):
    asked = []

    def by_label(run, candidates, hub):
        asked.append(candidates)
        return run.label if run.policy == "label" and run.label in candidates else None

    def rogue(run, candidates, hub):
        return "intruder" if run.policy == "rogue" else None

    hub = bare_hub(tmp_path, plugin(rpahub_select_executor=lambda run, candidates, hub: candidates[0]),
                   plugin(rpahub_select_executor=by_label), plugin(rpahub_select_executor=rogue))
    assert hub.select_executor(SimpleNamespace(policy="label", label="b"), ("a", "b")) == "b"
    assert asked == [["a", "b"]]  # candidates arrive as a list
    assert hub.select_executor(SimpleNamespace(policy="any", label=""), ["a", "b"]) == "a"  # next policy answers
    assert hub.select_executor(SimpleNamespace(policy="label", label="b"), []) is None
    assert len(asked) == 2  # no candidates: no policy is asked
    with pytest.raises(ValueError, match="not a candidate"):
        hub.select_executor(SimpleNamespace(policy="rogue"), ["a"])
    assert bare_hub(tmp_path).select_executor(SimpleNamespace(policy=""), ["a"]) is None


def test_rpahub_scale_pool_reports_the_largest_count(tmp_path):
    calls = []

    def provider(count):
        return plugin(rpahub_scale_pool=lambda pool, desired, hub: calls.append((pool, desired)) or count)

    assert bare_hub(tmp_path, provider(2), provider(None), provider(5)).scale_pool("pool-a", 5) == 5
    assert calls == [("pool-a", 5)] * 3  # every provider acts
    assert bare_hub(tmp_path, provider(None)).scale_pool("pool-a", 1) is None
    assert bare_hub(tmp_path).scale_pool("pool-a", 1) is None


def test_rpahub_store_video_and_rpahub_open_video(tmp_path):
    stored = {}

    def store(video_id, stream, hub):
        stored[video_id] = stream.read()
        return {"size": len(stored[video_id]), "sha256": "x"}

    hub = bare_hub(tmp_path, plugin(rpahub_store_video=store, rpahub_open_video=lambda video_id, hub: (
        io.BytesIO(stored[video_id]) if video_id in stored else None)))
    assert hub.store_video("v1", io.BytesIO(b"frames")) == {"size": 6, "sha256": "x"}
    assert hub.open_video("v1").read() == b"frames"
    assert hub.open_video("missing") is None
    plain = bare_hub(tmp_path)
    with pytest.raises(HubNotConfigured, match="no video storage plugin"):
        plain.store_video("v1", io.BytesIO(b"frames"))
    assert plain.open_video("v1") is None


def test_rpahub_executor_protocols_rpahub_tier_outbox_and_rpahub_tier_receive(tmp_path):
    received = []
    hub = bare_hub(
        tmp_path,
        plugin(rpahub_executor_protocols=lambda hub: ["ws", "http"]),
        plugin(rpahub_executor_protocols=lambda hub: None),
        plugin(rpahub_tier_outbox=lambda hub: [{"run": 1}, {"run": 2}]),
        plugin(rpahub_tier_outbox=lambda hub: None),
        plugin(rpahub_tier_outbox=lambda hub: [{"alert": 3}],
               rpahub_tier_receive=lambda records, origin, hub: received.append((origin, records))),
        plugin(rpahub_tier_receive=lambda records, origin, hub: received.append((origin, "second"))),
    )
    outbox = hub.tier_outbox()  # batches are flattened
    assert len(outbox) == 3 and all(r in outbox for r in ({"run": 1}, {"run": 2}, {"alert": 3}))
    hub.tier_receive([{"run": 9}], origin="guangdong")
    assert sorted(received, key=str) == sorted([("guangdong", [{"run": 9}]), ("guangdong", "second")], key=str)
    names = sorted(p if isinstance(p, str) else p.name for p in hub.executor_protocols())
    assert names == ["http", "http", "ws", "ws"]  # flattened: the built-in transports and the plugin's
    assert bare_hub(tmp_path).tier_outbox() == []
