"""The executor fleet in the console: executors and their admission, suppliers, pools, licences."""

import io
import zipfile

import pytest
from console_support import api, register_robot

from rpahub_core import db as hubdb
from rpahub_plugins.executors import state
from rpahub_plugins.executors.models import Executor

LANGUAGES = ["zh-CN", "en"]




def clean(page):
    assert not page.untranslated(), page.untranslated()
    return page


def rows(page):
    """The body of the page's first table."""
    return page.text.split("<tbody>", 1)[1].split("</tbody>", 1)[0]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_fleet_page_renders_translated(app, client, admin_token, console, language):
    register_robot(app, "robot-a")
    api(client, admin_token, "POST", "/api/v1/pools", {"name": "billing", "members": ["robot-a", "gone-1"]})
    api(client, admin_token, "POST", "/api/v1/licences", {"supplier": "vendor-a", "robotId": "robot-a"})
    admin = console(admin_token, language=language)
    for path in ("/console/executors", "/console/executors/robot-a", "/console/suppliers",
                 "/console/suppliers/vendor-a", "/console/pools", "/console/pools/billing", "/console/licences"):
        page = admin.get(path)
        assert page.status == 200, (path, page.status, page.text[:400])
        clean(page)
    home = admin.get("/console")
    for link in ("/console/executors", "/console/suppliers", "/console/pools", "/console/licences"):
        assert f'href="{link}"' in home.text, link


def test_executors_filter_by_state_and_supplier(app, client, admin_token, console):
    register_robot(app, "robot-a")
    register_robot(app, "robot-b")
    register_robot(app, "robot-c", supplier="vendor-b")
    with hubdb.connection():
        Executor.update(state="offline").where(Executor.id == "robot-b").execute()
    admin = console(admin_token, language="en")
    everyone = rows(clean(admin.get("/console/executors")))
    assert all(r in everyone for r in ("robot-a", "robot-b", "robot-c"))
    offline = rows(clean(admin.get("/console/executors", state="offline")))
    assert "robot-b" in offline and "robot-a" not in offline and "robot-c" not in offline
    theirs = rows(clean(admin.get("/console/executors", supplier="vendor-b")))
    assert "robot-c" in theirs and "robot-a" not in theirs
    bad = clean(admin.get("/console/executors", state="asleep"))
    assert bad.status == 200 and "flash-error" in bad.text


def test_executors_are_found_by_part_of_their_id_and_by_label(app, client, admin_token, console):
    for robot in ("sx-bill-01", "sx-bill-02", "hr-01"):
        register_robot(app, robot)
    api(client, admin_token, "PATCH", "/api/v1/executors/sx-bill-02", {"labels": ["ocr", "sichuan"]})
    ids = lambda **q: [e["id"] for e in api(client, admin_token, "GET", "/api/v1/executors", **q)["items"]]  # noqa: E731
    assert ids(q="bill") == ["sx-bill-01", "sx-bill-02"]
    assert ids(label="ocr") == ["sx-bill-02"] and ids(label=["ocr", "beijing"]) == []
    page = clean(console(admin_token, language="zh-CN").get("/console/executors", label="sichuan"))
    assert "sx-bill-02" in page.text and "sx-bill-01" not in page.text and 'value="sichuan"' in page.text


def test_an_executor_page_shows_details_recent_runs_and_saves_labels(app, client, admin_token, console):
    register_robot(app, "robot-a")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", "print(1)")
    with hubdb.connection():
        package = state(app.hub).runs.add_package(name="invoice-bot", version="1", data=buf.getvalue(), created_by="t")
    run = api(client, admin_token, "POST", "/api/v1/runs", {"packageId": package.id, "executorId": "robot-a"})
    api(client, admin_token, "POST", "/api/v1/pools", {"name": "billing", "members": ["robot-a"]})
    admin = console(admin_token, language="en")
    page = clean(admin.get("/console/executors/robot-a"))
    assert "vendor-a" in page.text and run["id"][:12] in page.text and "invoice-bot" in page.text
    assert 'href="/console/pools/billing"' in page.text

    bad = clean(admin.post("/console/executors/robot-a", {"labels": "gpu, office", "slots": "0"}))
    assert bad.status == 400 and 'id="e-slots"' in bad.text and 'value="gpu, office"' in bad.text
    assert admin.post("/console/executors/robot-a", {"labels": "gpu, office", "slots": "2"}).status == 303
    one = api(client, admin_token, "GET", "/api/v1/executors/robot-a")
    assert one["labels"] == ["gpu", "office"] and one["slots"] == 2


def test_admission_through_the_suppliers_allow_list(app, client, admin_token, console):
    register_robot(app, "robot-a")
    admin = console(admin_token, language="en")
    assert admin.post("/console/executors/robot-a/admission", {"admitted": "true"}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/suppliers/vendor-a")["allowedRobots"] == ["robot-a"]
    page = clean(admin.get("/console/executors/robot-a"))
    assert 'action="/console/executors/robot-a/admission" class="inline" data-confirm=' in page.text
    assert admin.post("/console/executors/robot-a/admission", {"admitted": "false"}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/suppliers/vendor-a")["allowedRobots"] == []


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_an_executor_is_paused_from_dispatch_with_a_reason_and_resumed(app, client, admin_token, console, language):
    register_robot(app, "robot-a")
    admin = console(admin_token, language=language)
    page = clean(admin.get("/console/executors/robot-a"))
    assert 'action="/console/executors/robot-a/pause" class="card row" data-confirm=' in page.text
    assert admin.post("/console/executors/robot-a/pause", {"paused": "true", "pausedNote": "补丁升级"}).status == 303
    one = api(client, admin_token, "GET", "/api/v1/executors/robot-a")
    assert (one["paused"], one["pausedNote"]) == (True, "补丁升级")
    page = clean(admin.get("/console/executors/robot-a"))
    assert 'id="paused"' in page.text and "补丁升级" in page.text
    assert 'class="state state-stopping"' in clean(admin.get("/console/executors")).text
    assert admin.post("/console/executors/robot-a/pause", {"paused": "false"}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/executors/robot-a")["paused"] is False


def test_suppliers_are_admitted_with_a_secret_shown_once_and_disabled(app, client, admin_token, console):
    admin = console(admin_token, language="en")
    bad = clean(admin.post("/console/suppliers", {"code": "bad code!", "name": "Vendor B", "enabled": "on"}))
    assert bad.status == 400 and 'id="e-code"' in bad.text and 'value="Vendor B"' in bad.text
    created = clean(admin.post("/console/suppliers", {"code": "vendor-b", "name": "Vendor B", "enabled": "on",
                                                      "allowedRobots": "r-1, r-2"}))
    assert created.status == 200 and "data-copy" in created.text
    supplier = api(client, admin_token, "GET", "/api/v1/suppliers/vendor-b")
    assert supplier["enabled"] and supplier["allowedRobots"] == ["r-1", "r-2"]
    page = clean(admin.get("/console/suppliers/vendor-b"))
    assert "data-copy" not in page.text
    assert 'action="/console/suppliers/vendor-b/enabled" class="inline" data-confirm=' in page.text
    assert admin.post("/console/suppliers/vendor-b/enabled", {"enabled": "false"}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/suppliers/vendor-b")["enabled"] is False
    rotated = clean(admin.post("/console/suppliers/vendor-b/secret"))
    assert rotated.status == 200 and "data-copy" in rotated.text


def test_pools_are_created_with_members_changed_and_deleted(app, client, admin_token, console):
    register_robot(app, "robot-a")
    register_robot(app, "robot-b")
    admin = console(admin_token, language="en")
    bad = clean(admin.post("/console/pools", {"name": "no spaces", "description": "Billing robots",
                                              "policy": "least_loaded", "members": ["robot-a"]}))
    assert bad.status == 400 and 'id="e-name"' in bad.text
    assert 'id="m-robot-a" name="members" value="robot-a" checked' in bad.text
    created = admin.post("/console/pools", {"name": "billing", "description": "Billing robots",
                                            "policy": "round_robin", "members": ["robot-a"], "labels": ""})
    assert created.status == 303
    page = clean(admin.follow(created))
    assert "Pool created." in page.text and "Round robin" in page.text
    assert "robot-a" in page.text.split("Members")[1]
    assert admin.post("/console/pools/billing", {"description": "Billing", "policy": "least_loaded",
                                                 "members": ["robot-a", "robot-b"]}).status == 303
    assert api(client, admin_token, "GET", "/api/v1/pools/billing")["members"] == ["robot-a", "robot-b"]
    listed = clean(admin.get("/console/pools"))
    assert "billing" in rows(listed)
    page = admin.get("/console/pools/billing")
    assert 'action="/console/pools/billing/delete" class="inline" data-confirm=' in page.text
    assert admin.post("/console/pools/billing/delete").status == 303
    assert api(client, admin_token, "GET", "/api/v1/pools")["total"] == 0


def test_licences_are_issued_and_revoked(app, client, admin_token, console):
    register_robot(app, "robot-a")
    admin = console(admin_token, language="en")
    bad = clean(admin.post("/console/licences", {"supplier": "vendor-a", "robotId": "robot-a", "days": "0"}))
    assert bad.status == 400 and 'id="e-days"' in bad.text and 'value="robot-a"' in bad.text
    issued = admin.post("/console/licences", {"supplier": "vendor-a", "robotId": "robot-a", "days": "30",
                                              "features": "ocr, excel"})
    assert issued.status == 303
    page = clean(admin.follow(issued))
    lic = api(client, admin_token, "GET", "/api/v1/licences")["items"][0]
    assert lic["features"] == ["excel", "ocr"] and lic["id"][:12] in page.text
    assert f'action="/console/licences/{lic["id"]}/revoke" class="inline" data-confirm=' in page.text
    assert admin.post(f"/console/licences/{lic['id']}/revoke").status == 303
    assert api(client, admin_token, "GET", "/api/v1/licences")["items"][0]["revokedAt"]
    assert "state-revoked" in admin.get("/console/licences").text
    # Filters in the address narrow the list: the revoked one is not valid.
    assert lic["id"][:12] not in clean(admin.get("/console/licences", state="valid")).text
    assert lic["id"][:12] in clean(admin.get("/console/licences", state="revoked", robotId="robot-a")).text
    assert 'selected>revoked' in admin.get("/console/licences", state="revoked").text


def test_fleet_pages_need_their_permission_and_are_hidden_from_the_menu(app, client, person, console):
    register_robot(app, "robot-a")
    nobody = console(person("sun.li", "runs.read"), language="en")
    home = nobody.get("/console")
    for path in ("/console/executors", "/console/suppliers", "/console/pools", "/console/licences"):
        assert f'href="{path}"' not in home.text, path
        assert clean(nobody.get(path)).status == 403, path
    reader = console(person("zhou.min", "executors.read"), language="en")
    home = reader.get("/console")
    assert 'href="/console/executors"' in home.text and 'href="/console/licences"' not in home.text
    assert reader.get("/console/licences").status == 403
    page = clean(reader.get("/console/executors/robot-a"))
    assert page.status == 200 and "/admission" not in page.text and 'name="slots"' not in page.text
    assert reader.post("/console/executors/robot-a", {"slots": "3"}).status == 403
    assert reader.post("/console/pools", {"name": "mine"}).status == 403


def test_fleet_forms_without_the_csrf_token_are_refused(app, client, admin_token, console):
    register_robot(app, "robot-a")
    admin = console(admin_token, language="en")
    assert admin.post("/console/pools", {"name": "billing"}, csrf="").status == 403
    assert admin.post("/console/suppliers/vendor-a/enabled", {"enabled": "false"}, csrf="forged").status == 403
    assert api(client, admin_token, "GET", "/api/v1/pools")["total"] == 0
    assert api(client, admin_token, "GET", "/api/v1/suppliers/vendor-a")["enabled"] is True
