"""Schemathesis against the hub's own /api/openapi.json, in-process on the WSGI app.

Every operation of the document, as the administrator and without credentials, with
valid and invalid input: no answer is a server error (5xx), and every answer the
document does not declare a download is ``application/json`` in the standard's
envelope ``{"successful", "resultHint", "resultValue"}`` (T/CES 130 A.2), with a
``resultHint`` on every failure.

Bounded so that it runs in every ``pytest`` (CI): a fixed number of examples per
operation, derandomized (the same inputs on every run), no shrinking, a deadline per
case and a timeout for the whole test. A failure names the operation and the request
(as ``curl``); all failing operations are reported together.

Identifiers the hub hands out (``resultValue.id`` of what a POST created, the
``items`` of a list) are fed back into the path parameters of the operations after
it, so ``/apps/{app_id}/...`` meets real apps and not only 404s.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time

import pytest
import schemathesis  # the `test` extra: not skipped when missing, this test is part of CI
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from rpahub_core import db as hubdb
from rpahub_core.testing import ADMIN_PASSWORD, bearer

# Deeper, still reproducible runs by hand: RPAHUB_FUZZ_EXAMPLES=100 RPAHUB_FUZZ_SEED=7 pytest tests/test_api_fuzz.py
SCALE = int(os.environ.get("RPAHUB_FUZZ_EXAMPLES", "0") or 0)
SEED = os.environ.get("RPAHUB_FUZZ_SEED", "")
ADMIN_EXAMPLES = SCALE or 8  # per operation: valid and invalid input, some on identifiers the hub handed out
ANONYMOUS_EXAMPLES = max(1, SCALE // 3) if SCALE else 3
DEADLINE = dt.timedelta(seconds=10)  # per case, i.e. one in-process request: generous for a busy CI box
ENVELOPE = {"successful", "resultHint", "resultValue"}
ID_KEYS = ("id", "robotId", "code", "name", "version")  # what a created thing is addressed by, in order

pytestmark = pytest.mark.timeout(180 if not SCALE else 3600)


def load(app, *, credentials: bool):
    # An explicit configuration: a schemathesis.toml somewhere up the tree must not change the run.
    config = schemathesis.Config.from_dict({"generation": {
        # As the administrator every request carries the bearer token; without credentials
        # schemathesis invents (and omits) the Authorization and robotConnectId headers.
        "with-security-parameters": not credentials,
    }})
    return schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=config)


def operations(schema):
    out = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"schemathesis cannot read an operation of /api/openapi.json: {result}"
        out.append(result.ok())
    return out


# -- the checks ----------------------------------------------------------------


def documented_content_types(case, status: int) -> list[str] | None:
    """The media types the document gives ``status`` of this operation (None: undocumented)."""
    responses = case.operation.definition.raw.get("responses", {})
    answer = responses.get(str(status)) or responses.get(f"{str(status)[0]}XX") or responses.get("default")
    return None if answer is None else list(answer.get("content", {}))


def standard_envelope(ctx, response, case):
    """Every answer the document does not declare a download is the A.2 envelope, as JSON."""
    documented = documented_content_types(case, response.status_code)
    if documented and "application/json" not in documented:
        return None  # a download (``produces`` in its declaration): the file, not the envelope
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/json", (
        f"{response.status_code} answered Content-Type {content_type!r}, not application/json")
    try:
        body = json.loads(response.content)
    except ValueError:
        raise AssertionError(f"{response.status_code} answered a body that is not JSON: {response.content[:200]!r}"
                             ) from None
    assert isinstance(body, dict) and set(body) == ENVELOPE, f"not the standard's envelope: {str(body)[:300]}"
    assert isinstance(body["successful"], bool), f"successful is not a boolean: {body}"
    assert isinstance(body["resultHint"], str), f"resultHint is not a string: {body}"
    assert body["successful"] is (response.status_code < 400), (
        f"successful={body['successful']} on HTTP {response.status_code}")
    if not body["successful"]:
        assert body["resultHint"].strip(), f"HTTP {response.status_code} without a resultHint"
    return None


CHECKS = [not_a_server_error, standard_envelope]


# -- identifiers the hub handed out ---------------------------------------------------


class Known:
    """Identifiers seen in answers, by the collection template they belong to.

    ``POST /api/v1/apps`` answering ``{"id": "a1"}`` and ``GET /api/v1/apps`` listing items
    both file ``("a1", {})`` under ``/api/v1/apps``; an operation on
    ``/api/v1/apps/{app_id}/versions`` then draws ``app_id`` from there (with the path
    parameters of the parent, for nested collections).
    """

    LIMIT = 16

    def __init__(self):
        self.ids: dict[str, list[tuple[str, dict[str, str]]]] = {}

    def harvest(self, case, response) -> None:
        if not 200 <= response.status_code < 300 or case.method.upper() == "DELETE":
            return
        try:
            value = json.loads(response.content).get("resultValue")
        except (ValueError, AttributeError):
            return
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            items = value["items"]
        elif isinstance(value, list):
            items = value
        elif isinstance(value, dict) and case.method.upper() in ("POST", "PUT"):
            items = [value]
        else:
            return
        parent = {k: str(v) for k, v in (case.path_parameters or {}).items()}
        bucket = self.ids.setdefault(case.operation.path, [])
        for item in items:
            ident = next((item[k] for k in ID_KEYS if isinstance(item, dict) and isinstance(item.get(k), (str, int))
                          and not isinstance(item.get(k), bool)), None)
            entry = (str(ident), parent)
            if ident is not None and entry not in bucket:
                bucket.append(entry)
        del bucket[:-self.LIMIT]

    def path_parameters(self, operation) -> list[dict[str, str]]:
        """Known values for all path parameters of ``operation`` (may be empty)."""
        path = operation.path
        names = re.findall(r"{(\w+)}", path)
        if not names:
            return []
        last = names[-1]
        collection = path[:path.index("{" + last + "}")].rstrip("/")
        return [{**parent, last: ident} for ident, parent in self.ids.get(collection, [])
                if set(parent) == set(names[:-1])]


# -- the administrator ---------------------------------------------------------------


class Admin:
    """The administrator's bearer token, repaired when a fuzzed call took it away.

    Some operations are destructive for their caller: ``POST /auth/logout`` revokes the
    token used, ``PATCH /users/{id}`` (the administrator's id is listed by ``GET /users``)
    may deactivate them, reset their password (revoking their tokens) or strip their
    roles. Rather than leaving those out, after every change under the identity paths
    the administrator is restored and, when their token no longer works, given a new one
    (issued directly: the fuzzed sign-ins may have used up the login throttle).
    """

    IDENTITY = ("/api/v1/auth/", "/api/v1/me", "/api/v1/users", "/api/v1/roles", "/api/v1/approvals")

    def __init__(self, app, token):
        from rpahub_plugins.auth_local import identity

        self.identity = identity(app.hub)
        self.token = token
        self.repairs = 0

    def headers(self):
        return bearer(self.token)

    def after(self, case) -> None:
        if case.method.upper() == "GET" or not case.operation.path.startswith(self.IDENTITY):
            return
        from rpahub_core.errors import Unauthorized
        from rpahub_plugins.auth_local.models import User, UserRole
        from rpahub_plugins.auth_local.passwords import hash_password, verify_password
        from rpahub_plugins.auth_local.service import ADMIN_ROLE

        with hubdb.connection():
            admin = User.get(User.username == "admin")
            healthy = (admin.is_active and not admin.must_change_password
                       and ADMIN_ROLE in self.identity.roles_of(admin)
                       and verify_password(ADMIN_PASSWORD, admin.password_hash))
            try:
                self.identity.principal_for(self.token)
            except Unauthorized:
                healthy = False
            if healthy:
                return
            self.repairs += 1
            with hubdb.atomic():
                User.update(is_active=True, must_change_password=False,
                            password_hash=hash_password(ADMIN_PASSWORD)).where(User.id == admin.id).execute()
                UserRole.get_or_create(user=admin.id, role=ADMIN_ROLE)
                self.token, _ = self.identity.issue_token("user", admin.id, kind="session", ttl=dt.timedelta(hours=1))


# -- the run -------------------------------------------------------------------------


class Run:
    def __init__(self, schema, *, examples: int, headers=dict, before=lambda case: None, after=lambda case: None):
        self.schema, self.examples, self.headers, self.before, self.after = schema, examples, headers, before, after
        self.known = Known()
        self.failures: list[tuple[str, str]] = []
        self.cases = 0
        self.statuses: dict[str, set[int]] = {}

    def strategy(self, operation):
        generated = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        known = self.known.path_parameters(operation)
        if not known:
            return st.one_of(generated)
        on_known = st.sampled_from(known).flatmap(lambda params: st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=params),
            operation.as_strategy(GenerationMode.NEGATIVE, path_parameters=params)))
        return st.one_of(on_known, *generated)

    def operation(self, operation) -> None:
        @settings(max_examples=self.examples, derandomize=not SEED, database=None, deadline=DEADLINE,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                  report_multiple_bugs=False, print_blob=False)
        @given(case=self.strategy(operation))
        def call(case):
            self.cases += 1
            self.before(case)
            response = case.call(headers=self.headers())
            self.statuses.setdefault(operation.label, set()).add(response.status_code)
            try:
                case.validate_response(response, checks=CHECKS)
                self.known.harvest(case, response)
            finally:
                self.after(case)

        if SEED:
            call = seed(int(SEED))(call)
        try:
            call()
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            self.failures.append((operation.label, f"{type(exc).__name__}: {exc}"))

    def all(self) -> Run:
        for operation in operations(self.schema):
            self.operation(operation)
        return self

    def report(self) -> str:
        return f"{len(self.failures)} operations failed:\n\n" + "\n\n".join(
            f"== {label}\n{text[:4000]}" for label, text in self.failures)


def test_every_operation_as_administrator(app, admin_token):
    schema = load(app, credentials=True)
    admin = Admin(app, admin_token)
    started = time.monotonic()
    run = Run(schema, examples=ADMIN_EXAMPLES, headers=admin.headers, after=admin.after).all()
    reached = sum(1 for codes in run.statuses.values() if any(200 <= c < 300 for c in codes))
    print(f"\nadministrator: {len(run.statuses)} operations, {run.cases} cases, {reached} operations answered 2xx, "
          f"{admin.repairs} token repairs, {time.monotonic() - started:.1f}s")
    assert not run.failures, run.report()
    # The credentials held: most operations got past authentication to their own logic.
    past_auth = sum(1 for codes in run.statuses.values() if codes - {401, 403})
    assert past_auth >= 0.9 * len(run.statuses), run.statuses


def test_every_operation_without_credentials(app):
    schema = load(app, credentials=False)
    started = time.monotonic()
    run = Run(schema, examples=ANONYMOUS_EXAMPLES).all()
    print(f"\nwithout credentials: {len(run.statuses)} operations, {run.cases} cases, "
          f"{time.monotonic() - started:.1f}s")
    assert not run.failures, run.report()


# -- what the fuzzer found: each cause fixed, each pinned here -------------------------------


def multipart(boundary: str, *parts: tuple[str, str, str | None]) -> bytes:
    """``(name, value, content_type)`` parts; content_type None: the part has no header."""
    out = []
    for name, value, content_type in parts:
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n')
        if content_type:
            out.append(f"Content-Type: {content_type}\r\n")
        out.append(f"\r\n{value}\r\n")
    out.append(f"--{boundary}--\r\n")
    return "".join(out).encode()


@pytest.mark.parametrize("path", ["/api/v1/packages", "/api/v1/me/files", "/api/v1/images/{image_id}/versions"])
def test_a_form_field_that_is_not_text_is_a_400_naming_it(client, admin_token, path):
    """A multipart field declared e.g. application/json made falcon's get_text() None:
    ``TypeError: 'NoneType' object is not subscriptable``, a 500."""
    if "{image_id}" in path:
        r = client.simulate_post("/api/v1/images", headers=bearer(admin_token), json={"name": "win-base", "kind": "executor"})
        assert r.status_code == 201, r.json
        path = path.format(image_id=r.json["resultValue"]["id"])
    field = "version" if "images" in path else "name"
    body = multipart("b0undary", (field, "5.154215160597224e+254", "application/json"))
    r = client.simulate_post(path, body=body, headers={
        **bearer(admin_token), "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.json == {"successful": False, "resultValue": None,
                      "resultHint": f"{field}: a form field must be text/plain, not application/json"}


def test_patching_an_app_with_null_leaves_those_fields_as_they_are(client, admin_token):
    """``"tags": null`` made ``sorted(set(None))`` raise TypeError (a 500); ``"name": null``
    broke the NOT NULL column. Null leaves a field unchanged, except where the document
    says it means "back to the default" (maxAttempts, backoffSeconds, policy)."""
    r = client.simulate_post("/api/v1/apps", headers=bearer(admin_token),
                             json={"name": "invoices", "tags": ["finance"], "maxAttempts": 3})
    assert r.status_code == 201, r.json
    app = r.json["resultValue"]
    r = client.simulate_patch(f"/api/v1/apps/{app['id']}", headers=bearer(admin_token), json={
        "name": None, "description": None, "tags": None, "parameters": None, "domain": "marketing",
        "maxAttempts": None, "backoffSeconds": 1})
    assert r.status_code == 200, r.json
    value = r.json["resultValue"]
    assert (value["name"], value["tags"], value["parameters"], value["domain"]) == (
        "invoices", ["finance"], [], "marketing")
    assert (value["maxAttempts"], value["backoffSeconds"]) == (None, 1)


def test_downloads_are_documented_as_files_and_everything_else_as_the_envelope(client):
    """The document says which answers are not the envelope, so the fuzzer (and any
    client generated from it) knows a download from a JSON answer."""
    doc = client.simulate_get("/api/openapi.json").json
    downloads = {}
    for path, item in doc["paths"].items():
        for method, spec in item.items():
            for status, answer in spec["responses"].items():
                types = set(answer.get("content", {}))
                if types != {"application/json"}:
                    downloads[(method, path, status)] = types
    assert downloads == {
        ("get", "/api/v1/academy/courses/{course_id}/lessons/{lesson_id}/video", "200"): {"*/*"},
        ("get", "/api/v1/files/{file_id}/content", "200"): {"*/*"},
        ("get", "/api/v1/images/{image_id}/versions/{version}/file", "200"): {"*/*"},
        ("get", "/api/v1/market/{app_id}/package", "200"): {"application/zip"},
        ("get", "/api/v1/me/files/{file_id}/content", "200"): {"*/*"},
        ("get", "/api/v1/ops/folders/{file_id}/content", "200"): {"*/*"},
        ("get", "/api/v1/ops/runs/{run_id}/recording", "200"): {"*/*"},
        ("get", "/api/v1/ops/runs/{run_id}/screenshots/{file_id}", "200"): {"*/*"},
        ("get", "/api/v1/requirements/{req_id}/attachments/{file_id}", "200"): {"*/*"},
    }


@pytest.mark.parametrize("field", ["since", "until"])
def test_a_time_outside_utc_years_1_to_9999_is_a_400_naming_the_field(client, admin_token, field):
    """``until=0001-01-01T00:29:01+20:48`` is valid ISO 8601, but converting it to UTC
    raised OverflowError in the audit query's validator: a 500. Every request shape
    (rpahub_core.web.ApiModel) now refuses such a time, naming the field."""
    r = client.simulate_get("/api/v1/audit", headers=bearer(admin_token),
                            params={field: "0001-01-01T00:29:01+20:48"})
    assert r.status_code == 400, r.text
    assert r.json["successful"] is False
    assert r.json["resultHint"] == f"{field}: Value error, is out of range (before year 1 or after year 9999 in UTC)"
    assert r.json["resultValue"] == {"errors": [
        {"field": field, "message": "Value error, is out of range (before year 1 or after year 9999 in UTC)"}]}


ROBOT_EXAMPLES = SCALE or 10


def test_every_executor_operation_as_an_admitted_executor(app, client, admin_token):
    """The calls an executor makes (``security: robot``), with the headers of one that
    registered; half of the bodies that name a run name the one it was given."""
    import io
    import zipfile

    from rpahub_adapters.tces130 import proof

    secret, robot_id = "vendor-secret-0123456789abcdef", "fuzz-robot-1"
    admin = bearer(admin_token)
    assert client.simulate_post("/api/v1/suppliers", headers=admin,
                                json={"code": "vendor-a", "secret": secret}).status_code == 201
    assert client.simulate_post("/api/v1/licences", headers=admin,
                                json={"supplier": "vendor-a", "robotId": robot_id}).status_code == 201
    r = client.simulate_post("/robots/connect/register", headers={"robotId": robot_id}, json={
        "supplierCode": "vendor-a", "supplierSecret": proof(secret, robot_id), "version": "2.0"})
    assert r.status_code == 200, r.json
    robot = {"robotId": robot_id, "robotConnectId": r.json["resultValue"]["robotConnectId"]}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("flow.robot", "*** Tasks ***\nT\n    Log    hi\n")
    body = multipart("b0undary", ("name", "fuzz", None), ("version", "1.0", None)).replace(
        b"--b0undary--\r\n", b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="f.zip"\r\n'
        b"Content-Type: application/zip\r\n\r\n" + buf.getvalue() + b"\r\n--b0undary--\r\n")
    r = client.simulate_post("/api/v1/packages", body=body,
                             headers={**admin, "Content-Type": "multipart/form-data; boundary=b0undary"})
    assert r.status_code == 201, r.json
    r = client.simulate_post("/api/v1/runs", headers=admin,
                             json={"packageId": r.json["resultValue"]["id"], "executorId": robot_id})
    assert r.status_code == 201, r.json
    run_id = r.json["resultValue"]["id"]

    def on_the_run(case):
        if isinstance(case.body, dict) and "runInstanceId" in case.body and run.cases % 2:
            case.body["runInstanceId"] = run_id

    schema = load(app, credentials=True)
    schema = schema.include(func=lambda ctx: {"robot": []} in ctx.operation.definition.raw.get("security", []))
    started = time.monotonic()
    run = Run(schema, examples=ROBOT_EXAMPLES, headers=lambda: robot, before=on_the_run)
    run.all()
    print(f"\nas an executor: {len(run.statuses)} operations, {run.cases} cases, {time.monotonic() - started:.1f}s")
    assert len(run.statuses) >= 7, run.statuses
    assert not run.failures, run.report()
    assert all(codes - {401, 403} for codes in run.statuses.values()), run.statuses


def test_an_executor_body_with_nul_or_an_unconvertible_time_is_a_400_naming_the_field(client, admin_token):
    """``"runInstanceId": "\\u00f0v\\u0000"`` reached a query and PostgreSQL raised DataError
    (a 500 on HTTP, 19999 on WebSocket); a log's ``logAt`` far outside UTC's range would
    overflow when converted. The protocol bodies (executors.wire) refuse both, as 10001."""
    from rpahub_adapters.tces130 import proof

    secret, robot_id = "vendor-secret-0123456789abcdef", "fuzz-robot-2"
    assert client.simulate_post("/api/v1/suppliers", headers=bearer(admin_token),
                                json={"code": "vendor-b", "secret": secret}).status_code == 201
    assert client.simulate_post("/api/v1/licences", headers=bearer(admin_token),
                                json={"supplier": "vendor-b", "robotId": robot_id}).status_code == 201
    r = client.simulate_post("/robots/connect/register", headers={"robotId": robot_id}, json={
        "supplierCode": "vendor-b", "supplierSecret": proof(secret, robot_id), "version": "2.0"})
    assert r.status_code == 200, r.json
    robot = {"robotId": robot_id, "robotConnectId": r.json["resultValue"]["robotConnectId"]}
    for path, body, hint in (
        ("reportCheckpoint", {"runInstanceId": "r\x00", "checkpoint": []},
         "runInstanceId: Value error, must not contain NUL characters"),
        ("reportLogs", {"runInstanceId": "r1", "logs": [{"content": "a\x00", "logAt": "2026-03-01T08:00:00Z",
                                                          "logLevel": 0}]},
         "logs.0.content: Value error, must not contain NUL characters"),
        ("reportLogs", {"runInstanceId": "r1", "logs": [{"content": "a", "logAt": "0001-01-01T00:00:00+08:00",
                                                          "logLevel": 0}]},
         "logs.0.logAt: Value error, is out of range (before year 1 or after year 9999 in UTC)"),
    ):
        r = client.simulate_post(f"/robots/connect/{path}", headers=robot, json=body)
        assert r.status_code == 400, r.text
        assert (r.json["successful"], r.json["resultHint"]) == (False, hint)
