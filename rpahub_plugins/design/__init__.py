"""Design center (T/CES 130-2022 6.2.1a–f): requirements from submission through review,
evaluation and assignment, design, trial runs, to acceptance into the artifact library.
Needs the ``executors``, ``dispatch`` and ``share`` plugins."""

from __future__ import annotations

from rpahub_core import db as hubdb
from rpahub_core import hookimpl
from rpahub_core.migrations import create_tables

from . import resources
from .lifecycle import ACTIONS
from .models import MODELS
from .service import Requirements

# test_pool: the pool trial runs go to unless the caller names another.
DEFAULTS = {"test_pool": "test"}


def requirements(hub) -> Requirements:
    if "design" not in hub.state:
        hub.state["design"] = Requirements(hub)
    return hub.state["design"]


@hookimpl
def rpahub_config_defaults():
    return {"design": dict(DEFAULTS)}


@hookimpl
def rpahub_migrations(migrations):
    migrations.add("design", 1, create_tables(*MODELS), "requirements, their history and trial runs")


@hookimpl
def rpahub_permissions(permissions):
    permissions.add("design.read", "See requirements, their history and trial runs; comment on them")
    permissions.add("design.submit", "Submit requirements; edit or withdraw one's own before review")
    permissions.add("design.review", "Review submitted requirements: approve or reject")
    permissions.add("design.evaluate", "Evaluate reviewed requirements and assign them to a designer")
    permissions.add("design.develop", "Design requirements assigned to oneself and deliver their package")
    permissions.add("design.test", "Trial-run delivered designs; pass them or send them back")
    permissions.add("design.accept", "Accept tested designs into the artifact library, or refuse them")
    permissions.add("design.manage", "Act on any requirement as its submitter or its designer")


@hookimpl
def rpahub_register_routes(routes, hub):
    service = requirements(hub)
    routes.add("/api/v1/requirements", resources.RequirementList(service))
    routes.add("/api/v1/requirements/board", resources.RequirementBoard())
    routes.add("/api/v1/requirements/assignees", resources.Assignees(service))
    routes.add("/api/v1/requirements/{req_id}", resources.RequirementItem(service))
    routes.add("/api/v1/requirements/{req_id}/comments", resources.RequirementComments(service))
    routes.add("/api/v1/requirements/{req_id}/attachments/{file_id}", resources.RequirementAttachment(service))
    routes.add("/api/v1/requirements/{req_id}/trials", resources.RequirementTrials(service))
    for action in ACTIONS:
        routes.add(f"/api/v1/requirements/{{req_id}}/{action}", resources.transition(service, action))


@hookimpl
def rpahub_on_event(event, hub):
    if event.topic == "run.completed":
        with hubdb.connection():
            requirements(hub).on_run_completed(event.data["runId"], event.data.get("state", ""))
