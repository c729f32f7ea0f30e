"""The knowledge base (6.4.3d): articles on features, scenarios and cases, and a search
that finds Chinese text on SQLite and PostgreSQL alike, ranks the right article first,
shows plain-text snippets, and follows every change at once."""

import pytest

from rpahub_core import db as hubdb
from rpahub_core.testing import bearer
from rpahub_plugins.operations.models import KnowledgeTerm
from rpahub_plugins.operations.textsearch import minimum_match, query_terms, snippet, terms

INVOICE = {"kind": "scenario", "title": "发票校验机器人", "tags": ["发票", "财务"], "published": True,
           "body": "财务共享中心每天收到上千张增值税发票。发票校验机器人用 OCR 识别发票，"
                   "再与合同金额比对，不一致的自动退回。适用于 RPA 财务场景。"}
REIMBURSE = {"kind": "case", "title": "差旅报销自动化", "tags": ["报销"], "published": True,
             "body": "员工提交报销单后，机器人核对行程与发票是否齐全，并在系统中完成审批流转。"}
PATROL = {"kind": "feature", "title": "设备巡检", "tags": ["设备"], "published": True,
          "body": "机房设备每日巡检：采集温度、告警并生成日报。"}
OCR_GUIDE = {"kind": "feature", "title": "OCR 组件使用说明", "tags": ["OCR", "rpa"], "published": True,
             "body": "The OCR component reads scanned documents. RPA designers drop it into a flow."}


@pytest.fixture
def kb(client, person):
    return {"editor": bearer(person("editor", "knowledge.manage")), "reader": bearer(person("reader"))}


def write(client, kb, article):
    r = client.simulate_post("/api/v1/knowledge/articles", headers=kb["editor"], json=article)
    assert r.status_code == 201, r.json
    return r.json["resultValue"]


def search(client, headers, q, **params):
    r = client.simulate_get("/api/v1/knowledge/search", headers=headers, params={"q": q, **params})
    assert r.status_code == 200, r.json
    return r.json["resultValue"]


def test_tokens_are_cjk_bigrams_and_lower_cased_words():
    assert terms("发票校验") == ["发票", "票校", "校验"]
    assert terms("RPA发票 ＯＣＲ v2") == ["rpa", "发票", "ocr", "v2"]
    assert terms("票") == ["票"]
    assert query_terms("发票 发票") == ["发票"]
    assert [minimum_match(n) for n in (1, 2, 3, 4, 8)] == [1, 1, 2, 3, 6]
    s = snippet("前言。" * 5 + "使用发票校验机器人。", query_terms("发票校验"), width=20)
    assert "«发票校验»" in s["marked"] and "<" not in s["marked"]
    start, end = s["highlights"][0]
    assert s["text"][start:end] == "发票校验"


def test_a_chinese_query_finds_the_right_article(client, kb):
    invoice = write(client, kb, INVOICE)
    reimburse = write(client, kb, REIMBURSE)
    patrol = write(client, kb, PATROL)

    found = search(client, kb["reader"], "发票校验")
    ids = [x["id"] for x in found["items"]]
    assert ids[0] == invoice["id"]
    assert patrol["id"] not in ids and reimburse["id"] not in ids  # sharing "发票" alone is not a match
    assert found["total"] == len(ids) == 1
    top = found["items"][0]
    assert top["titleHighlighted"] == "«发票校验»机器人"
    assert "«发票校验»" in top["snippet"]["marked"]
    assert found["terms"] == ["发票", "票校", "校验"]

    # A shorter query reaches every article that holds it, the one with it in its title first.
    ids = [x["id"] for x in search(client, kb["reader"], "发票")["items"]]
    assert ids == [invoice["id"], reimburse["id"]]
    assert [x["id"] for x in search(client, kb["reader"], "巡检")["items"]] == [patrol["id"]]


def test_mixed_and_latin_queries(client, kb):
    invoice = write(client, kb, INVOICE)
    guide = write(client, kb, OCR_GUIDE)
    write(client, kb, PATROL)
    ids = [x["id"] for x in search(client, kb["reader"], "RPA 发票 OCR")["items"]]
    assert set(ids) == {invoice["id"], guide["id"]} and ids[0] == invoice["id"]
    ids = [x["id"] for x in search(client, kb["reader"], "ocr")["items"]]
    assert ids[0] == guide["id"]  # in the title and the tags beats the body only
    hit = search(client, kb["reader"], "scanned DOCUMENTS")["items"][0]
    assert hit["id"] == guide["id"] and "«scanned» «documents»" in hit["snippet"]["marked"]
    assert search(client, kb["reader"], "blockchain")["items"] == []


def test_search_pages_and_filters(client, kb):
    for i in range(5):
        write(client, kb, {**INVOICE, "title": f"发票校验 第{i}篇", "kind": "case" if i % 2 else "feature"})
    page = search(client, kb["reader"], "发票校验", pageSize=2, page=3)
    assert page["total"] == 5 and len(page["items"]) == 1
    assert search(client, kb["reader"], "发票校验", kind="case")["total"] == 2
    assert search(client, kb["reader"], "发票校验", tag="财务")["total"] == 5
    assert search(client, kb["reader"], "发票校验", tag="人事")["total"] == 0


def test_the_index_follows_every_change(app, client, kb):
    article = write(client, kb, PATROL)
    assert search(client, kb["reader"], "巡检")["total"] == 1
    r = client.simulate_patch(f"/api/v1/knowledge/articles/{article['id']}", headers=kb["editor"],
                              json={"title": "机房温度告警", "body": "温度超过阈值时发出告警。"})
    assert r.status_code == 200, r.json
    assert search(client, kb["reader"], "巡检")["total"] == 0
    assert [x["id"] for x in search(client, kb["reader"], "温度告警")["items"]] == [article["id"]]

    # Unpublished: gone for readers, still there for its editors.
    client.simulate_patch(f"/api/v1/knowledge/articles/{article['id']}", headers=kb["editor"],
                          json={"published": False})
    assert search(client, kb["reader"], "温度告警")["total"] == 0
    assert search(client, kb["reader"], "温度告警", drafts="true")["total"] == 0
    assert search(client, kb["editor"], "温度告警", drafts="true")["total"] == 1
    assert client.simulate_get(f"/api/v1/knowledge/articles/{article['id']}",
                               headers=kb["reader"]).status_code == 404

    assert client.simulate_delete(f"/api/v1/knowledge/articles/{article['id']}",
                                  headers=kb["editor"]).status_code == 200
    with hubdb.connection():
        assert KnowledgeTerm.select().where(KnowledgeTerm.article == article["id"]).count() == 0


def test_a_failed_write_leaves_no_index_behind(app, client, kb):
    r = client.simulate_post("/api/v1/knowledge/articles", headers=kb["editor"],
                             json={**INVOICE, "appIds": ["no-such-app"]})
    assert r.status_code == 400 and "appIds.0" in r.json["resultHint"]
    with hubdb.connection():
        assert KnowledgeTerm.select().count() == 0


def test_only_knowledge_managers_write_and_bad_input_names_the_field(client, kb, person):
    r = client.simulate_post("/api/v1/knowledge/articles", headers=kb["reader"], json=INVOICE)
    assert r.status_code == 403 and "knowledge.manage" in r.json["resultHint"]
    for body, field in (({**INVOICE, "kind": "rumour"}, "kind"), ({**INVOICE, "title": ""}, "title"),
                        ({**INVOICE, "tags": [" "]}, "tags")):
        r = client.simulate_post("/api/v1/knowledge/articles", headers=kb["editor"], json=body)
        assert r.status_code == 400 and field in r.json["resultHint"], r.json
    r = client.simulate_get("/api/v1/knowledge/search", headers=kb["reader"], params={"q": "，。！"})
    assert r.status_code == 400 and r.json["resultHint"].startswith("q:")
    r = client.simulate_get("/api/v1/knowledge/search", headers=kb["reader"])
    assert r.status_code == 400 and "q" in r.json["resultHint"]


def test_markdown_is_returned_as_written_never_as_html(client, kb):
    body = "# 标题\n\n<script>alert(1)</script> **发票校验**"
    article = write(client, kb, {**INVOICE, "body": body})
    r = client.simulate_get(f"/api/v1/knowledge/articles/{article['id']}", headers=kb["reader"])
    assert r.json["resultValue"]["body"] == body and r.json["resultValue"]["bodyFormat"] == "markdown"
    assert r.headers["content-type"].startswith("application/json")


def test_two_editors_never_overwrite_each_other(client, kb):
    article = write(client, kb, INVOICE)
    path = f"/api/v1/knowledge/articles/{article['id']}"
    first = client.simulate_patch(path, headers=kb["editor"], json={"title": "发票校验（修订）",
                                                                   "ifUpdatedAt": article["updatedAt"]})
    assert first.status_code == 200, first.json
    stale = client.simulate_patch(path, headers=kb["editor"], json={"title": "另一位编辑的标题",
                                                                   "ifUpdatedAt": article["updatedAt"]})
    assert stale.status_code == 409 and stale.json["resultHint"].startswith("ifUpdatedAt:")
    fresh = client.simulate_get(path, headers=kb["editor"]).json["resultValue"]
    assert fresh["title"] == "发票校验（修订）"
    again = client.simulate_patch(path, headers=kb["editor"], json={"title": "再修订", "ifUpdatedAt": fresh["updatedAt"]})
    assert again.status_code == 200
