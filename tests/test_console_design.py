"""The design center's console pages: the requirement board, a requirement's lifecycle
and history, the artifact library, images and designers, in both languages."""

import io
import zipfile

import pytest
from console_support import UNTRANSLATED, Page

from rpahub_core.testing import bearer

LANGUAGES = ("zh-CN", "en")
SUBMITTER = ("design.read", "design.submit", "files.read")
REVIEWER = ("design.read", "design.review", "design.evaluate")


def submit(client, token, **fields):
    body = {"title": "月度电费核算", "description": "每月核对电费", "region": "四川", "domain": "finance", **fields}
    r = client.simulate_post("/api/v1/requirements", headers=bearer(token), json=body)
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def translated(page):
    """The page, with every string of it translated (the menu's entries belong to every center's catalogue
    and are checked by each, so only the page itself counts here)."""
    assert page.status < 500, page.text[:2000]
    head, _, rest = page.text.partition('<nav class="menu"')
    own = head + rest.partition("</nav>")[2]
    assert set(UNTRANSLATED.findall(own)) == set(), set(UNTRANSLATED.findall(own))
    return page


def multipart(fields: dict, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = "consoleBOUNDARY"
    body = b""
    for name, value in fields.items():
        body += f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n".encode()
    body += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
             f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def post_multipart(con, path, fields, filename, data, csrf=None):
    body, content_type = multipart(fields, filename, data)
    r = con.client.simulate_post(path, body=body, cookies=con.cookies, params={"csrf": csrf or con.csrf},
                                 headers={"Content-Type": content_type})
    return Page(r)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_board_shows_a_requirement_under_its_state_and_filters_narrow_it(client, person, console, language):
    alice = person("alice", *SUBMITTER)
    submit(client, alice, title="发票校验机器人")
    submit(client, alice, title="设备巡检报表", domain="equipment")
    con = console(alice, language)
    page = translated(con.get("/console/design"))
    assert page.status == 200
    column = page.text.split('id="col-submitted"', 1)[1].split("</section>", 1)[0]
    assert "发票校验机器人" in column and "设备巡检报表" in column
    assert "发票校验机器人" not in page.text.split('id="col-reviewed"', 1)[1].split("</section>", 1)[0]
    narrowed = translated(con.get("/console/design", domain="equipment"))
    assert "设备巡检报表" in narrowed.text and "发票校验机器人" not in narrowed.text
    one_state = translated(con.get("/console/design", state="submitted", q="发票"))
    assert "发票校验机器人" in one_state.text and "设备巡检报表" not in one_state.text
    assert 'href="/console/design"' in page.text  # the menu entry


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_bad_requirement_shows_the_field_error_and_keeps_what_was_typed(person, console, language):
    con = console(person("alice", *SUBMITTER), language)
    form = translated(con.get("/console/design/requirements/new"))
    assert 'name="title"' in form.text and 'for="f-domain"' in form.text
    page = translated(con.post("/console/design/requirements", {"title": "", "domain": "", "region": "江苏",
                                                                 "priority": "high"}))
    assert page.status == 400
    assert 'id="e-title"' in page.text and 'id="e-domain"' in page.text
    assert 'value="江苏"' in page.text
    good = con.post("/console/design/requirements", {"title": "台账核对", "domain": "finance", "priority": "high"})
    assert good.status == 303 and "/console/design/requirements/" in good.location
    shown = translated(con.follow(good))
    assert "台账核对" in shown.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_lifecycle_action_moves_the_requirement_and_the_history_shows_it(client, person, console, language):
    alice, rita = person("alice", *SUBMITTER), person("rita", *REVIEWER)
    req = submit(client, alice)
    path = f"/console/design/requirements/{req['id']}"
    mine = translated(console(alice, language).get(path))
    assert 'id="form-withdraw"' in mine.text and 'id="form-approve"' not in mine.text
    con = console(rita, language)
    page = translated(con.get(path))
    assert 'id="form-approve"' in page.text and 'id="form-reject"' in page.text
    assert 'id="form-withdraw"' not in page.text

    refused = translated(con.post(f"{path}/reject", {"comment": "", "version": str(req["version"])}))
    assert refused.status == 400 and 'id="e-f-reject-comment"' in refused.text

    moved = con.post(f"{path}/approve", {"comment": "有价值", "version": str(req["version"])})
    assert moved.status == 303 and moved.location.endswith(path)
    after = translated(con.follow(moved))
    assert 'class="state state-reviewed"' in after.text.split('id="requirement-state"', 1)[1][:200]
    history = after.text.split('id="h-history"', 1)[1]
    assert "rita" in history and "有价值" in history and "state-reviewed" in history
    assert 'id="form-evaluate"' in after.text

    stale = con.post(f"{path}/reject", {"comment": "重复", "version": str(req["version"])})
    assert stale.status == 303
    assert client.simulate_get(f"/api/v1/requirements/{req['id']}", headers=bearer(rita)).json[
        "resultValue"]["state"] == "reviewed"

    board = translated(con.get("/console/design"))
    assert req["title"] in board.text.split('id="col-reviewed"', 1)[1].split("</section>", 1)[0]


def test_comments_and_attachments_on_a_requirement(client, person, console):
    alice = person("alice", *SUBMITTER)
    req = submit(client, alice)
    con = console(alice, "en")
    path = f"/console/design/requirements/{req['id']}"
    r = con.post(f"{path}/comments", {"comment": "补充说明"})
    assert r.status == 303
    attached = post_multipart(con, f"{path}/attachments", {}, "需求说明.txt", b"spec text")
    assert attached.status == 303, attached.text[:500]
    page = translated(con.get(path))
    assert "补充说明" in page.text and "需求说明.txt" in page.text
    item = client.simulate_get(f"/api/v1/requirements/{req['id']}", headers=bearer(alice)).json["resultValue"]
    file_id = item["attachments"][0]["fileId"]
    download = con.get(f"{path}/attachments/{file_id}")
    assert download.status == 200 and download.text == "spec text"
    refused = post_multipart(con, f"{path}/attachments", {}, "x.txt", b"x", csrf="forged")
    assert refused.status == 403


def test_without_the_permission_the_page_is_refused_and_not_in_the_menu(client, person, console):
    alice = person("alice", *SUBMITTER)
    req = submit(client, alice)
    outsider = console(person("olga", "runs.read"), "en")
    for path in ("/console/design", f"/console/design/requirements/{req['id']}", "/console/design/library",
                 "/console/design/images", "/console/design/designers"):
        assert outsider.get(path).status == 403, path
    home = outsider.get("/console/runs")
    assert 'href="/console/design"' not in home.text
    # Allowed to read but not to review: the action is refused.
    reader = console(alice, "en")
    assert reader.post(f"/console/design/requirements/{req['id']}/approve", {"comment": "x"}).status == 403


def test_a_form_without_its_csrf_token_is_refused(client, person, console):
    alice = person("alice", *SUBMITTER)
    con = console(alice, "en")
    r = con.post("/console/design/requirements", {"title": "t", "domain": "finance"}, csrf="")
    assert r.status == 403
    r = con.post("/console/design/requirements", {"title": "t", "domain": "finance"}, csrf="forged")
    assert r.status == 403
    assert client.simulate_get("/api/v1/requirements", headers=bearer(alice)).json["resultValue"]["total"] == 0


def package_zip(text: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("main.py", text)
    return buf.getvalue()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_library_shows_versions_a_diff_and_approvals(client, admin_token, person, console, language):
    dave = person("dave", "apps.read", "apps.manage")
    r = client.simulate_post("/api/v1/apps", headers=bearer(dave), json={"name": "电费核对", "domain": "finance"})
    assert r.status_code == 201, r.json
    app_id = r.json["resultValue"]["id"]
    for version, text in (("1.0", "print('a')\n"), ("1.1", "print('b')\n")):
        body, content_type = multipart({"version": version, "changelog": f"v{version}"}, "p.zip", package_zip(text))
        r = client.simulate_post(f"/api/v1/apps/{app_id}/versions", body=body,
                                 headers={**bearer(dave), "Content-Type": content_type})
        assert r.status_code == 201, r.json
    con = console(dave, language)
    listing = translated(con.get("/console/design/library"))
    assert "电费核对" in listing.text
    page = translated(con.get(f"/console/design/library/{app_id}"))
    assert "1.0" in page.text and "1.1" in page.text
    diff = translated(con.get(f"/console/design/library/{app_id}", **{"from": "1.0", "to": "1.1"}))
    assert "main.py" in diff.text and "+print(&#39;b&#39;)" in diff.text
    asked = con.post(f"/console/design/library/{app_id}/versions/1.1/submit", {"reason": "上线"})
    assert asked.status == 303
    page = translated(con.get(f"/console/design/library/{app_id}"))
    assert "state-pending" in page.text.split("approvals", 1)[1]
    # The admin (a second person) approves it from the page.
    admin = console(admin_token, language)
    page = translated(admin.get(f"/console/design/library/{app_id}"))
    request_id = page.text.split("/console/design/approvals/", 1)[1].split("/", 1)[0]
    done = admin.post(f"/console/design/approvals/{request_id}/approve", {"next": f"/console/design/library/{app_id}"})
    assert done.status == 303
    page = translated(admin.follow(done))
    assert "state-approved" in page.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_images_instances_designers_and_leases(client, admin_token, console, language):
    con = console(admin_token, language)
    assert translated(con.get("/console/design/images")).status == 200
    bad = translated(con.post("/console/design/images", {"name": "bad name!", "kind": "executor", "provider": "local"}))
    assert bad.status == 400 and 'id="e-name"' in bad.text
    made = con.post("/console/design/images", {"name": "exec-win", "kind": "executor", "provider": "local"})
    assert made.status == 303
    page = translated(con.follow(made))
    assert "exec-win" in page.text
    image_id = made.location.rsplit("/", 1)[1]
    for version, spec in (("1", '{"slots": 1}'), ("2", '{"slots": 2}')):
        r = post_multipart(con, f"/console/design/images/{image_id}/versions", {"version": version, "spec": spec},
                           "img.bin", version.encode())
        assert r.status == 303, r.text[:800]
    page = translated(con.get(f"/console/design/images/{image_id}", base="1", other="2"))
    diff = page.text.split('class="card diff"', 1)[1].split("</section>", 1)[0]
    assert "<code>slots</code></td><td>1</td><td>2</td>" in diff

    designers = translated(con.get("/console/design/designers"))
    assert designers.status == 200
    bad = translated(con.post("/console/design/designers", {"name": "d1", "vendor": "rpahub", "endpoint": "ftp://x"}))
    assert bad.status == 400 and 'id="e-endpoint"' in bad.text
    made = translated(con.post("/console/design/designers", {"name": "d1", "vendor": "rpahub",
                                                              "endpoint": "http://10.0.0.5:8080", "capacity": "2"}))
    assert made.status == 201 and "data-copy" in made.text and "d1" in made.text
    leases = translated(con.get("/console/design/leases"))
    assert leases.status == 200
    got = translated(con.post("/console/design/leases", {"vendor": "rpahub"}))
    assert got.status == 201 and "http://10.0.0.5:8080" in got.text
    listed = translated(con.get("/console/design/designers"))
    assert "1 / 2" in listed.text


@pytest.mark.parametrize("language", LANGUAGES)
def test_evaluation_delivery_and_trial_forms_show_the_apis_field_errors(client, person, console, language):
    alice, rita = person("alice", *SUBMITTER), person("rita", *REVIEWER)
    dave = person("dave", "design.read", "design.develop", "packages.manage")
    req = submit(client, alice)
    path = f"/console/design/requirements/{req['id']}"
    checker = console(rita, language)
    assert checker.post(f"{path}/approve", {}).status == 303
    # The evaluate form offers who may be assigned: dave designs, alice does not.
    offered = translated(checker.get(path)).text.split('<datalist id="designers">', 1)[1].split("</datalist>", 1)[0]
    assert 'value="dave"' in offered and 'value="alice"' not in offered
    bad = translated(checker.post(f"{path}/evaluate", {"assignee": "nobody", "effortDays": "2", "valueScore": "7"}))
    assert bad.status == 400 and 'id="e-f-evaluate-assignee"' in bad.text and 'value="nobody"' in bad.text
    good = checker.post(f"{path}/evaluate", {"assignee": "dave", "effortDays": "2", "valueScore": "7"})
    assert good.status == 303
    maker = console(dave, language)
    page = translated(maker.get(path))
    assert 'id="form-design"' in page.text and 'enctype="multipart/form-data"' in page.text
    assert 'id="form-design"' not in translated(checker.get(path)).text  # only the assigned designer delivers
    empty = translated(post_multipart(maker, f"{path}/design", {"packageName": "x"}, "", b""))
    assert empty.status == 400 and 'id="e-f-design-file"' in empty.text
    badjson = translated(post_multipart(maker, f"{path}/design", {"packageName": "bill", "packageVersion": "1.0",
                                                                   "parameters": "[oops"}, "p.zip", package_zip("")))
    assert badjson.status == 400 and 'id="e-f-design-parameters"' in badjson.text
    delivered = post_multipart(maker, f"{path}/design", {"packageName": "bill", "packageVersion": "1.0",
                                                         "parameters": '[{"name": "month", "type": "date"}]'},
                               "p.zip", package_zip("print(1)"))
    assert delivered.status == 303, delivered.text[:1000]
    page = translated(maker.get(path))
    assert "state-designed" in page.text.split('id="requirement-state"', 1)[1][:200]
    assert 'id="f-trial-arg-month"' in page.text
    trial = translated(maker.post(f"{path}/trials", {"arg.month": "2026-05-01"}))
    assert trial.status == 400 and 'id="e-f-trial-pool"' in trial.text  # no test pool on this hub
