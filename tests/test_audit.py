"""The tamper-evident audit log (6.3.1c, SEC-4, ASVS 16.4.2): entries written by real API
calls are sealed into an RFC 6962 tree under signed checkpoints; whoever edits the
database behind the triggers is caught by ``rpahub audit verify``, precisely."""

import base64
import datetime as dt
import hashlib
import json
import threading
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from rpahub_adapters.tces130 import proof as supplier_proof
from rpahub_core import db as hubdb
from rpahub_core.cli import main
from rpahub_core.sessions import ExecutorSession
from rpahub_core.testing import bearer
from rpahub_plugins.audit_log import ledger, merkle
from rpahub_plugins.audit_log.models import AuditCheckpoint, AuditEntry, AuditLeaf
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Supplier

# -- an independent RFC 6962 implementation, written from the RFC, not from the plugin --


def sha(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def mth(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha(b"\x01", mth(leaves[:k]), mth(leaves[k:]))


def root_from_path(index: int, size: int, leaf: bytes, path: list[bytes]) -> bytes:
    """Walk PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n]) (or the mirror) back up to the root."""
    if size == 1:
        assert not path, "path longer than the tree is deep"
        return leaf
    assert path, "path shorter than the tree is deep"
    k = 1
    while k * 2 < size:
        k *= 2
    if index < k:
        return sha(b"\x01", root_from_path(index, k, leaf, path[:-1]), path[-1])
    return sha(b"\x01", path[-1], root_from_path(index - k, size - k, leaf, path[:-1]))


# -- helpers --------------------------------------------------------------------------


def make_entries(client, token, names):
    """Real management calls: each role creation (and the refused duplicate) leaves an audit row."""
    for name in names:
        assert client.simulate_post("/api/v1/roles", headers=bearer(token),
                                    json={"name": name, "permissions": ["users.read"]}).status_code == 201
    assert client.simulate_post("/api/v1/roles", headers=bearer(token), json={"name": names[0]}).status_code == 409


def ids_of(action_prefix):
    with hubdb.connection():
        return [e.id for e in AuditEntry.select().where(AuditEntry.action.startswith(action_prefix))
                .order_by(AuditEntry.id)]


def checkpoint(app):
    with hubdb.connection():
        return ledger(app.hub).checkpoint()


def rpahub(app, monkeypatch, capsys, *args):
    """``rpahub <args>`` in this process, configured like a deployer's shell: home and database by env."""
    monkeypatch.chdir(app.hub.settings.home.parent)
    monkeypatch.delenv("RPAHUB_CONFIG", raising=False)
    monkeypatch.setenv("RPAHUB_HUB__HOME", str(app.hub.settings.home))
    monkeypatch.setenv("RPAHUB_DATABASE__URL", app.hub.settings.database_url)
    capsys.readouterr()
    try:
        code = main(list(args))
    finally:
        hubdb.bind(app.hub.db)  # the command bound the models to its own handle
    return code, capsys.readouterr().out


def unlock():
    """What a database owner can do: switch the append-only triggers off."""
    db = hubdb.database
    for table in ("audit_log", "audit_leaf", "audit_checkpoint"):
        if hubdb.is_postgres():
            db.execute_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
        else:
            db.execute_sql(f"DROP TRIGGER IF EXISTS {table}_no_update")
            db.execute_sql(f"DROP TRIGGER IF EXISTS {table}_no_delete")


def tamper(*statements):
    with hubdb.connection():
        unlock()
        for sql, params in statements:
            hubdb.database.execute_sql(sql, params)


def ph(sql):
    """Parameter placeholders of the database under test."""
    return sql.replace("?", "%s") if hubdb.is_postgres() else sql


@pytest.fixture
def sealed(app, client, admin_token):
    """A log with entries from real calls, sealed under one checkpoint."""
    make_entries(client, admin_token, ["viewer", "editor", "auditor", "operator"])
    sealed = checkpoint(app)
    assert sealed.added >= 5 and sealed.checkpoint.tree_size == sealed.added
    return ids_of("role.create")


# -- a clean log ------------------------------------------------------------------------


def test_clean_log_verifies_with_exit_0_and_counts(app, client, admin_token, monkeypatch, capsys):
    make_entries(client, admin_token, ["viewer", "editor"])
    code, out = rpahub(app, monkeypatch, capsys, "audit", "checkpoint")
    assert code == 0 and "checkpoint #1:" in out
    total = len(ids_of(""))
    code, out = rpahub(app, monkeypatch, capsys, "audit", "checkpoint")
    assert code == 0 and f"no new entries: checkpoint #1 covers {total} entries" in out
    code, out = rpahub(app, monkeypatch, capsys, "audit", "verify")
    assert code == 0, out
    assert f"OK: {total} audit entries and 1 checkpoint verified" in out
    code, out = rpahub(app, monkeypatch, capsys, "audit", "verify", "--json")
    report = json.loads(out)
    assert code == 0 and report["ok"] is True and report["entries"] == total and report["problems"] == []


def test_verify_api_needs_its_own_permission_and_is_audited(app, client, admin_token, sealed):
    r = client.simulate_post("/api/v1/users", headers=bearer(admin_token),
                             json={"username": "li.qiang", "password": "Li-Qiang-Secret-1", "roles": ["viewer"]})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/auth/login", json={"username": "li.qiang", "password": "Li-Qiang-Secret-1"})
    reader = r.json["resultValue"]["token"]
    r = client.simulate_post("/api/v1/me/password", headers=bearer(reader),
                             json={"currentPassword": "Li-Qiang-Secret-1", "newPassword": "Li-Qiang-Secret-2"})
    assert r.status_code == 200
    r = client.simulate_post("/api/v1/audit/verify", headers=bearer(reader))
    assert r.status_code == 403 and "audit.verify" in r.json["resultHint"]
    r = client.simulate_post("/api/v1/audit/verify", headers=bearer(admin_token))
    assert r.status_code == 200
    report = r.json["resultValue"]
    assert report["ok"] is True and report["checkpoints"] == 1 and report["pending"] > 0
    calls = client.simulate_get("/api/v1/audit", params={"action": "audit.verify"},
                                headers=bearer(admin_token)).json["resultValue"]["items"]
    assert [(c["actorName"], c["result"]) for c in calls] == [("admin", "ok"), ("li.qiang", "denied")]


# -- tampering behind the triggers ---------------------------------------------------------


def verify_fails(app, monkeypatch, capsys):
    code, out = rpahub(app, monkeypatch, capsys, "audit", "verify", "--json")
    assert code == 1, out
    report = json.loads(out)
    assert report["ok"] is False
    return {(p["kind"], p["entryId"]) for p in report["problems"]}, report


def test_changed_entry_is_named(app, sealed, monkeypatch, capsys):
    # The refused duplicate role.create becomes a success: the classic cover-up.
    failed = sealed[-1]
    tamper((ph("UPDATE audit_log SET result = 'ok' WHERE id = ?"), (failed,)))
    kinds, _ = verify_fails(app, monkeypatch, capsys)
    assert kinds == {("entry_changed", failed)}
    code, out = rpahub(app, monkeypatch, capsys, "audit", "verify")
    assert code == 1 and f"FAIL entry_changed: entry {failed} (leaf" in out


def test_removed_entry_is_named(app, sealed, monkeypatch, capsys):
    tamper((ph("DELETE FROM audit_log WHERE id = ?"), (sealed[1],)))
    kinds, _ = verify_fails(app, monkeypatch, capsys)
    assert kinds == {("entry_removed", sealed[1])}


def test_swapped_entries_are_reported_as_reordered(app, sealed, monkeypatch, capsys):
    a, b = sealed[0], sealed[2]
    with hubdb.connection():
        rows = {r.id: r for r in AuditEntry.select().where(AuditEntry.id.in_([a, b]))}
    cols = ("at", "target", "detail", "source")
    assignments = ", ".join(f"{c} = ?" for c in cols)
    tamper(*[(ph(f"UPDATE audit_log SET {assignments} WHERE id = ?"),
              (*[getattr(rows[src], c) for c in cols], dst)) for src, dst in ((a, b), (b, a))])
    kinds, report = verify_fails(app, monkeypatch, capsys)
    assert kinds == {("entries_swapped", a)}
    assert f"entries {a} and {b} hold each other's contents" in report["problems"][0]["message"]


def test_backdated_insert_is_reported(app, sealed, monkeypatch, capsys):
    tamper((ph("INSERT INTO audit_log (id, at, actor, actor_name, principal_type, action, target, result, detail, "
               "source) VALUES (0, ?, 'admin', 'admin', 'user', 'role.delete', 'auditor', 'ok', '{}', '')"),
            ("2020-01-01 00:00:00",)))
    kinds, _ = verify_fails(app, monkeypatch, capsys)
    assert kinds == {("entry_inserted", 0)}


def test_altered_leaf_is_told_apart_from_an_altered_entry(app, sealed, monkeypatch, capsys):
    tamper((ph("UPDATE audit_leaf SET leaf_hash = ? WHERE entry_id = ?"), ("ab" * 32, sealed[1])))
    kinds, _ = verify_fails(app, monkeypatch, capsys)
    assert kinds == {("leaf_tampered", sealed[1])}


def test_reordered_leaves_are_reported(app, sealed, monkeypatch, capsys):
    a, b = sealed[0], sealed[1]
    with hubdb.connection():
        la, lb = AuditLeaf.get(AuditLeaf.entry_id == a), AuditLeaf.get(AuditLeaf.entry_id == b)
    # Swap whole leaf rows, hashes included: each leaf still matches its entry, the order does not.
    tamper((ph("DELETE FROM audit_leaf WHERE leaf_index IN (?, ?)"), (la.leaf_index, lb.leaf_index)),
           (ph("INSERT INTO audit_leaf (leaf_index, entry_id, leaf_hash) VALUES (?, ?, ?), (?, ?, ?)"),
            (la.leaf_index, b, lb.leaf_hash, lb.leaf_index, a, la.leaf_hash)))
    kinds, _ = verify_fails(app, monkeypatch, capsys)
    assert ("leaves_reordered", a) in kinds


def test_rewriting_entry_and_leaf_together_is_still_caught(app, sealed, monkeypatch, capsys):
    from rpahub_plugins.audit_log.ledger import FIELDS, entry_leaf_hash

    target = sealed[2]
    with hubdb.connection():
        row = AuditEntry.select(*FIELDS).where(AuditEntry.id == target).tuples().get()
    forged = (*row[:6], "someone-else", *row[7:])
    tamper((ph("UPDATE audit_log SET target = 'someone-else' WHERE id = ?"), (target,)),
           (ph("UPDATE audit_leaf SET leaf_hash = ? WHERE entry_id = ?"), (entry_leaf_hash(forged).hex(), target)))
    _, report = verify_fails(app, monkeypatch, capsys)
    assert [p["kind"] for p in report["problems"]] == ["checkpoint_mismatch"]
    assert "checkpoint #1" in report["problems"][0]["message"]


def test_forged_checkpoints_are_reported(app, client, admin_token, sealed, monkeypatch, capsys):
    # An altered root under the hub's signature, and a whole checkpoint signed by another key.
    tamper(("UPDATE audit_checkpoint SET root_hash = '" + "cd" * 32 + "' WHERE id = 1", None))
    other = Ed25519PrivateKey.generate()
    fields = {"tree_size": 1, "root_hash": "ef" * 32, "timestamp": "2030-01-01T00:00:00Z", "origin": "rpahub",
              "key_id": "0123456789abcdef"}
    from rpahub_plugins.audit_log.ledger import checkpoint_message

    with hubdb.connection():
        AuditCheckpoint.create(**fields, signature=base64.b64encode(other.sign(checkpoint_message(fields))).decode())
    code, out = rpahub(app, monkeypatch, capsys, "audit", "verify")
    assert code == 1
    assert "FAIL checkpoint_signature: checkpoint #1 (tree size" in out and "does not match its contents" in out
    assert "FAIL checkpoint_signature: checkpoint #2 (tree size 1): signed by an unknown key" in out
    # The sequencer refuses to sign on top of a checkpoint it cannot verify.
    make_entries(client, admin_token, ["late"])
    code, out = rpahub(app, monkeypatch, capsys, "audit", "checkpoint")
    assert code == 2


# -- proofs and sequencing -------------------------------------------------------------------


def test_inclusion_proof_verifies_independently(app, client, admin_token, sealed):
    entry_id = sealed[1]
    r = client.simulate_get(f"/api/v1/audit/{entry_id}/proof", headers=bearer(admin_token))
    assert r.status_code == 200, r.json
    p = r.json["resultValue"]
    data = json.loads(p["leafData"])
    assert data["id"] == entry_id and data["action"] == "role.create" and data["target"] == "editor"
    leaf = sha(b"\x00", p["leafData"].encode())
    assert leaf.hex() == p["leafHash"]
    root = root_from_path(p["leafIndex"], p["treeSize"], leaf, [bytes.fromhex(h) for h in p["auditPath"]])
    assert root.hex() == p["rootHash"] == p["checkpoint"]["rootHash"]
    # The checkpoint is signed by the hub's key, over the message it shows.
    cp = p["checkpoint"]
    signed = json.loads(cp["signedMessage"].split("\n", 1)[1])
    assert signed == {"keyId": cp["keyId"], "origin": "rpahub", "rootHash": root.hex(),
                      "timestamp": cp["timestamp"], "treeSize": p["treeSize"]}
    pem = app.hub.keys.public_key_pem().encode()
    serialization.load_pem_public_key(pem).verify(base64.b64decode(cp["signature"]), cp["signedMessage"].encode())
    # A proof does not verify for another entry's content.
    other = sha(b"\x00", p["leafData"].replace('"editor"', '"admin"').encode())
    assert root_from_path(p["leafIndex"], p["treeSize"], other, [bytes.fromhex(h) for h in p["auditPath"]]) != root
    assert client.simulate_get("/api/v1/audit/999999/proof", headers=bearer(admin_token)).status_code == 404
    r = client.simulate_get("/api/v1/audit/abc/proof", headers=bearer(admin_token))
    assert r.status_code == 400 and "entry_id" in r.json["resultHint"]


def test_entries_after_the_last_checkpoint_are_sealed_by_the_next(app, client, admin_token, sealed):
    first = checkpoint(app).checkpoint
    make_entries(client, admin_token, ["night-shift"])
    newest = ids_of("role.create")[-1]
    r = client.simulate_get(f"/api/v1/audit/{newest}/proof", headers=bearer(admin_token))
    assert r.status_code == 409 and "not yet covered by a checkpoint" in r.json["resultHint"]
    second = checkpoint(app)
    assert second.added >= 2 and second.checkpoint.tree_size == first.tree_size + second.added
    r = client.simulate_get(f"/api/v1/audit/{newest}/proof", headers=bearer(admin_token))
    assert r.status_code == 200 and r.json["resultValue"]["treeSize"] == second.checkpoint.tree_size
    with hubdb.connection():
        leaves = [e for (e,) in AuditLeaf.select(AuditLeaf.entry_id).order_by(AuditLeaf.leaf_index).tuples()]
        assert leaves == sorted(leaves) == [e.id for e in AuditEntry.select().order_by(AuditEntry.id)][:len(leaves)]
    r = client.simulate_get("/api/v1/audit/checkpoints", params={"pageSize": 1}, headers=bearer(admin_token))
    page = r.json["resultValue"]
    assert page["total"] == 2 and page["items"][0]["treeSize"] == second.checkpoint.tree_size
    assert page["publicKey"].startswith("-----BEGIN PUBLIC KEY-----")
    r = client.simulate_post("/api/v1/audit/verify", headers=bearer(admin_token))
    assert r.json["resultValue"]["ok"] is True and r.json["resultValue"]["checkpoints"] == 2


@pytest.mark.postgres
def test_a_slow_transaction_is_waited_for_not_skipped(pg_url, tmp_path):
    """An entry whose id was drawn before a committed one, but commits later, still gets its place."""
    import psycopg

    from rpahub_core.testing import make_app

    app = make_app(tmp_path / "home", pg_url)
    try:
        with hubdb.connection():
            ledger(app.hub).checkpoint()
        slow = psycopg.connect(pg_url)
        slow_id = slow.execute(
            "INSERT INTO audit_log (at, actor, actor_name, principal_type, action, target, result, detail, source) "
            "VALUES (now(), 'system', 'system', 'system', 'slow.change', '', 'ok', '{}', '') RETURNING id").fetchone()[0]
        with hubdb.connection():
            app.hub.audit("quick.change")
        threading.Timer(0.5, slow.commit).start()
        started = time.monotonic()
        sealed = checkpoint(app)
        assert time.monotonic() - started >= 0.4  # it waited for the slow writer
        with hubdb.connection():
            order = [e for (e,) in AuditLeaf.select(AuditLeaf.entry_id).order_by(AuditLeaf.leaf_index).tuples()]
        assert order[-2] == slow_id and sealed.added == 2
        slow.close()
    finally:
        app.hub.close()


def test_merkle_tree_matches_the_rfc_for_every_small_size():
    leaves = [merkle.leaf_hash(str(i).encode()) for i in range(33)]
    for n in range(1, 34):
        assert merkle.root(leaves[:n]) == mth(leaves[:n])
        for m in range(n):
            path = merkle.inclusion_path(m, leaves[:n])
            assert root_from_path(m, n, leaves[m], path) == mth(leaves[:n])
            assert merkle.root_from_path(m, n, leaves[m], path) == mth(leaves[:n])


# -- search -----------------------------------------------------------------------------------


def test_search_by_user_robot_action_target_result_and_time(app, client, admin_token):
    make_entries(client, admin_token, ["viewer", "editor"])
    with hubdb.connection():
        Supplier.create(code="vendor-a", secret_enc=app.hub.keys.encrypt("vendor-a-secret-0123456789"))
        for robot in ("robot-001", "robot-002"):
            state(app.hub).gateway.register(ExecutorSession(robot_id=robot, transport="http"), {
                "supplierCode": "vendor-a", "supplierSecret": supplier_proof("vendor-a-secret-0123456789", robot)})

    def search(**params):
        r = client.simulate_get("/api/v1/audit", params=params, headers=bearer(admin_token))
        assert r.status_code == 200, r.json
        return r.json["resultValue"]

    assert {i["actor"] for i in search(robot="robot-001")["items"]} == {"robot-001"}
    assert {i["principalType"] for i in search(robot="robot-001")["items"]} == {"robot"}
    assert search(user="admin", action="role.create")["total"] == 3
    assert search(user="robot-001")["total"] == 0  # a robot is not a user
    assert [i["target"] for i in search(action="role.*", target="edit*")["items"]] == ["editor"]
    assert search(action="role.create", result="failed")["total"] == 1
    assert search(action="role.")["total"] == 0  # exact unless it ends in '*'
    everything = search(pageSize=200)["total"]
    page1, page2 = search(pageSize=2, page=1), search(pageSize=2, page=2)
    assert page1["total"] == everything and len(page1["items"]) == 2
    assert page1["items"][0]["id"] > page1["items"][1]["id"] > page2["items"][0]["id"]
    now = dt.datetime.now(dt.UTC)
    assert search(**{"from": (now - dt.timedelta(minutes=5)).isoformat()})["total"] == everything
    assert search(**{"to": (now - dt.timedelta(minutes=5)).isoformat()})["total"] == 0
    assert search(since=(now + dt.timedelta(minutes=5)).isoformat())["total"] == 0
    for bad, field in (({"result": "maybe"}, "result"), ({"from": "yesterday"}, "since"),
                       ({"from": now.isoformat(), "to": (now - dt.timedelta(hours=1)).isoformat()}, "until"),
                       ({"pageSize": "500"}, "pageSize")):
        r = client.simulate_get("/api/v1/audit", params=bad, headers=bearer(admin_token))
        assert r.status_code == 400 and field in r.json["resultHint"], (bad, r.json)


def test_checkpoint_interval_comes_from_config(tmp_path):
    from rpahub_core.config import ConfigError
    from rpahub_core.testing import make_app
    from rpahub_plugins.audit_log import checkpoint_interval, rpahub_startup

    app = make_app(tmp_path / "home", "", plugins={"audit_log": {"checkpoint_s": 5}})
    try:
        assert checkpoint_interval(app.hub) == 5.0
        rpahub_startup(app.hub)  # outside a gevent worker nothing is spawned; tests seal by hand
        assert "audit_log.loop" not in app.hub.state
        app.hub.settings.plugins["audit_log"]["checkpoint_s"] = "soon"
        with pytest.raises(ConfigError, match="plugins.audit_log.checkpoint_s"):
            checkpoint_interval(app.hub)
    finally:
        app.hub.close()
