"""Approvals of every kind (SEC-3): what one asked for and what one may decide — role
grants, licence bindings, app versions and listings alike. The API decides who sees
and who decides; the page only shows it."""

from __future__ import annotations

from ..i18n import N_
from ..views import View

STATES = (N_("pending"), N_("approved"), N_("rejected"), N_("withdrawn"))
SHOWS = (("actionable", N_("Waiting for me")), ("mine", N_("Asked by me")), ("all", N_("Everything I may see")))


def inbox(view: View) -> None:
    """Approvals."""
    show = view.arg("show", "actionable")
    query = {"state": view.arg("state") or None, "kind": view.arg("kind") or None,
             "page": view.arg("page", "1"), "pageSize": view.arg("pageSize", "20"),
             "actionable": "true" if show == "actionable" else None, "mine": "true" if show == "mine" else None}
    page, errors = view.listing(view.api.get("/api/v1/approvals", query))
    kinds = view.api.get("/api/v1/approvals/kinds")
    view.render("approvals/list.html", page=page, show=show, shows=SHOWS, states=STATES, errors=errors,
                kinds=kinds.value if kinds.ok else [])


def one(view: View, request_id: str, errors: dict | None = None, status: int = 200) -> None:
    """One approval request."""
    row = view.value(view.api.get(f"/api/v1/approvals/{request_id}"))
    view.render("approvals/detail.html", status=status, row=row, errors=errors or {})


def decide(verb: str, done: str):
    def handler(view: View, request_id: str) -> None:
        answer = view.api.post(f"/api/v1/approvals/{request_id}/{verb}", {"comment": view.field("comment")})
        if answer.status == 400:
            one(view, request_id, errors=answer.field_errors, status=400)
        view.back(answer, done, view.url(f"/approvals/{request_id}"))

    handler.__name__ = verb
    return handler


def register(pages) -> None:
    pages.view("/approvals", inbox, nav=(N_("Overview"), N_("Approvals")))
    pages.view("/approvals/{request_id}", one)
    pages.action("/approvals/{request_id}/approve", decide("approve", N_("Approved.")))
    pages.action("/approvals/{request_id}/reject", decide("reject", N_("Rejected.")))
    pages.action("/approvals/{request_id}/withdraw", decide("withdraw", N_("Withdrawn.")))
