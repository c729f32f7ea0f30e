"""The overview a person lands on: what needs attention, within their permissions."""

from __future__ import annotations

from ..i18n import N_
from ..views import View


def overview(view: View) -> None:
    """Overview."""
    stats = view.api.get("/api/v1/ops/stats") if view.can("runs.read") else None
    runs = view.api.get("/api/v1/ops/runs", {"pageSize": 8}) if view.can("runs.read") else None
    approvals = view.api.get("/api/v1/approvals", {"pageSize": 5, "state": "pending"})
    view.render("home.html", stats=stats.value if stats and stats.ok else None,
                runs=runs.items() if runs else [], approvals=approvals.items())


def register(pages) -> None:
    pages.view("/", overview, nav=(N_("Overview"), N_("Overview")))
