"""Licences (Ed25519, offline-verifiable) and vendor adapters (stevedore)."""

import datetime as dt
import subprocess
import sys
import time

import pytest

from rpahub_adapters.robotframework import RobotFrameworkAdapter
from rpahub_adapters.tces130 import Tces130Adapter, proof
from rpahub_core import db as hubdb
from rpahub_core.adapter import AdmissionRefused
from rpahub_core.db import utcnow
from rpahub_core.plugins import load_adapters
from rpahub_plugins.executors import state
from rpahub_plugins.executors.licences import LicenceError, verify_content
from rpahub_plugins.executors.models import Licence, Supplier


@pytest.fixture
def ex(app):
    with hubdb.connection():
        Supplier.create(code="acme", secret_enc=app.hub.keys.encrypt("acme-secret-123456"))
        yield state(app.hub)


def test_both_adapters_load_through_stevedore():
    report = load_adapters()
    assert {"tces130", "robotframework"} <= set(report.loaded)
    assert report.loaded["tces130"] is Tces130Adapter


def test_tces130_proof_window_and_nonce():
    adapter, seen = Tces130Adapter(), set()

    def remember(nonce):
        if nonce in seen:
            return False
        seen.add(nonce)
        return True

    now = time.time()
    good = proof("s3cret", "r1", ts=int(now))
    adapter.verify_secret(secret="s3cret", robot_id="r1", presented=good, now=now, remember_nonce=remember)
    cases = {
        "replay": good,
        "does not match": proof("s3cret", "r2", ts=int(now)),  # bound to the robot id
        "timestamp": proof("s3cret", "r1", ts=int(now) - 301),
        "expected v1": "s3cret",  # the secret itself is never accepted
    }
    for reason, presented in cases.items():
        with pytest.raises(AdmissionRefused, match=reason):
            adapter.verify_secret(secret="s3cret", robot_id="r1", presented=presented, now=now,
                                  remember_nonce=remember)


def test_robotframework_adapter_runs_only_robot_packages():
    adapter = RobotFrameworkAdapter()
    assert adapter.accepts_package("robot") and not adapter.accepts_package("python")
    body = adapter.execute_body({"arguments": [{"name": "city", "type": "String", "value": "成都"}]}, None)
    assert body["robotVariables"] == ["city:成都"] and body["arguments"][0]["value"] == "成都"


def test_licence_verifies_offline_and_refuses_tampering(ex):
    with hubdb.connection():
        lic = ex.licences.issue(supplier="acme", robot_id="r1", features=["ocr"], days=30)
        payload = verify_content(lic.content, ex.licences.public_key_pem())
        assert payload["robotId"] == "r1" and payload["features"] == ["ocr"]
        head, sig = lic.content.split(".")
        forged = head[:-2] + ("AA" if head[-2:] != "AA" else "BB") + "." + sig
        with pytest.raises(LicenceError, match="signature"):
            ex.licences.verify(forged)


def test_expired_or_revoked_licence_is_refused_with_a_clear_error(ex):
    with hubdb.connection():
        lic = ex.licences.issue(supplier="acme", robot_id="r2", days=1)
        with pytest.raises(LicenceError, match="expired"):
            ex.licences.verify(lic.content, now=utcnow() + dt.timedelta(days=2))
        ex.licences.revoke(lic.id)
        with pytest.raises(LicenceError, match="revoked"):
            ex.licences.verify(lic.content)
        assert ex.licences.for_robot("r2") == (None, f"licence {lic.id} was revoked")


def test_register_is_refused_when_the_bound_licence_expired(ex):
    from rpahub_core.sessions import ExecutorSession, ProtocolError

    with hubdb.connection():
        lic = ex.licences.issue(supplier="acme", robot_id="r3", days=1)
        Licence.update(expires_at=utcnow() - dt.timedelta(minutes=1)).where(Licence.id == lic.id).execute()
        with pytest.raises(ProtocolError, match="expired"):
            ex.gateway.register(ExecutorSession("r3", "http"),
                                {"supplierCode": "acme", "supplierSecret": proof("acme-secret-123456", "r3")})


def test_rebinding_supersedes_the_old_licence(ex):
    with hubdb.connection():
        old = ex.licences.issue(supplier="acme", robot_id="r4", days=10)
        new = ex.licences.bind(old.id, pool="finance")
        assert verify_content(new.content, ex.licences.public_key_pem())["pool"] == "finance"
        assert verify_content(new.content, ex.licences.public_key_pem())["supersedes"] == old.id
        with pytest.raises(LicenceError, match="revoked"):
            ex.licences.verify(old.content)


def test_licence_cli_issue_verify_revoke(tmp_path):
    def rpahub(*args):
        return subprocess.run([sys.executable, "-m", "rpahub_core.cli", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)

    assert rpahub("supplier", "add", "vendor-z").returncode == 0
    out = rpahub("licence", "issue", "--supplier", "vendor-z", "--robot", "z1", "--days", "5")
    assert out.returncode == 0, out.stderr
    lic_id, content = out.stdout.split()
    verified = rpahub("licence", "verify", content)
    assert verified.returncode == 0 and "VALID" in verified.stdout and "z1" in verified.stdout
    assert rpahub("licence", "revoke", lic_id).returncode == 0
    refused = rpahub("licence", "verify", content)
    assert refused.returncode == 1 and "revoked" in refused.stdout
    assert rpahub("licence", "public-key").stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_licences_are_listed_by_robot_pool_supplier_and_state(client, admin_token):
    from rpahub_core.testing import bearer

    client.simulate_post("/api/v1/suppliers", headers=bearer(admin_token),
                         json={"code": "acme", "secret": "acme-secret-0123456789abcdef"})
    ids = {}
    for key, body in (("r1", {"robotId": "r1", "days": 30}), ("r2", {"robotId": "r2", "days": 400}),
                      ("pool", {"pool": "finance", "days": 10})):
        r = client.simulate_post("/api/v1/licences", headers=bearer(admin_token), json={"supplier": "acme", **body})
        assert r.status_code == 201, r.json
        ids[key] = r.json["resultValue"]["id"]
    client.simulate_post(f"/api/v1/licences/{ids['r2']}/revoke", headers=bearer(admin_token))

    def listed(**params):
        r = client.simulate_get("/api/v1/licences", headers=bearer(admin_token), params=params)
        assert r.status_code == 200, r.json
        return sorted(x["id"] for x in r.json["resultValue"]["items"])

    assert listed(robotId="r1") == [ids["r1"]]
    assert listed(pool="finance") == [ids["pool"]]
    assert listed(supplier="acme") == sorted(ids.values())
    assert listed(state="revoked") == [ids["r2"]]
    assert listed(state="valid") == sorted([ids["r1"], ids["pool"]])
    assert listed(expiringWithinDays=15) == [ids["pool"]]
    bad = client.simulate_get("/api/v1/licences", headers=bearer(admin_token), params={"state": "lost"})
    assert bad.status_code == 400 and "state" in bad.json["resultHint"]


def test_the_installed_adapters_are_listed_for_whoever_admits_suppliers(client, admin_token, person, console):
    from rpahub_core.testing import bearer

    r = client.simulate_get("/api/v1/adapters", headers=bearer(admin_token))
    kinds = {a["name"]: a["packageKinds"] for a in r.json["resultValue"]}
    assert kinds["robotframework"] == ["robot"] and "tces130" in kinds
    keeper = person("fleet.keeper", "executors.read", "executors.manage")  # no system.read
    page = console(keeper, "en").get("/console/suppliers")
    assert '<option value="robotframework"' in page.text
