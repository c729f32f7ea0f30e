"""Run records (6.3.1a): filters, a run's timeline, live logs, screenshots and its recording."""

from __future__ import annotations

import datetime as dt

from ..i18n import N_, zone
from ..views import View

STATES = (N_("pending"), N_("dispatched"), N_("running"), N_("stopping"), N_("retrying"), N_("success"),
          N_("failed"), N_("cancelled"))
LEVELS = (N_("info"), N_("warning"), N_("error"))
FILTERS = ("state", "q", "executorId", "appId", "user")


def day_start(view: View, value: str) -> str | None:
    """A date picked in the person's zone as the instant it starts (what the API filters on)."""
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        return None
    return dt.datetime.combine(day, dt.time(), zone(view.timezone)).isoformat()


def run_list(view: View) -> None:
    """Run records."""
    query = {name: view.arg(name) for name in FILTERS}
    query.update(page=view.arg("page", "1"), pageSize=view.arg("pageSize", "20"))
    if view.arg("from"):
        query["createdFrom"] = day_start(view, view.arg("from"))
    if view.arg("to"):
        end = day_start(view, view.arg("to"))
        query["createdTo"] = end and (dt.datetime.fromisoformat(end) + dt.timedelta(days=1)).isoformat()
    page, errors = view.listing(view.api.get("/api/v1/ops/runs", query))
    view.render("runs/list.html", page=page, states=STATES, errors=errors)


def run_detail(view: View, run_id: str) -> None:
    """One run."""
    run = view.value(view.api.get(f"/api/v1/ops/runs/{run_id}"))
    logs = view.value(view.api.get(f"/api/v1/ops/runs/{run_id}/logs", {"pageSize": 500}))
    recording_type = ""
    if run["recording"]["available"]:
        probe = view.api.raw("GET", f"/api/v1/ops/runs/{run_id}/recording", headers={"Range": "bytes=0-0"})
        recording_type = next((v for k, v in probe.headers if k.lower() == "content-type"), "")
        if hasattr(probe.body, "close"):
            probe.body.close()
    view.render("runs/detail.html", run=run, logs=logs, recording_type=recording_type.split(";")[0])


def run_tail(view: View, run_id: str) -> None:
    """New log rows of a live run (the run page polls it)."""
    after = view.arg("after") or None
    answer = view.api.get(f"/api/v1/ops/runs/{run_id}/logs", {"after": after, "pageSize": 500})
    if not answer.ok:
        view.json({"error": answer.hint}, status=answer.status)
    value = answer.value
    rows = [{"id": r["id"], "content": r["content"], "level": r["levelName"], "at": r["logAt"],
             "screenshot": f"{view.url('/runs/' + run_id + '/screenshots/' + r['screenshot'])}" if r["screenshot"] else None}
            for r in value["items"]]
    view.json({"logs": rows, "lastId": value["lastId"], "state": value["runState"], "finished": value["finished"],
               "recordingExpected": value.get("recordingExpected", False)})


def recording(view: View, run_id: str) -> None:
    """The run's recording, seekable (Range passes through)."""
    view.proxy(f"/api/v1/ops/runs/{run_id}/recording")


def screenshot(view: View, run_id: str, file_id: str) -> None:
    view.proxy(f"/api/v1/ops/runs/{run_id}/screenshots/{file_id}")


def stop(view: View, run_id: str) -> None:
    answer = view.api.post(f"/api/v1/runs/{run_id}/stop")
    view.back(answer, N_("Stop sent to the executor."), view.url(f"/runs/{run_id}"))


def register(pages) -> None:
    pages.view("/runs", run_list, permission="runs.read", nav=(N_("Runs"), N_("Run records")))
    pages.view("/runs/{run_id}", run_detail, permission="runs.read")
    pages.view("/runs/{run_id}/tail", run_tail, permission="runs.read")
    pages.view("/runs/{run_id}/recording", recording, permission="runs.read")
    pages.view("/runs/{run_id}/screenshots/{file_id}", screenshot, permission="runs.read")
    pages.action("/runs/{run_id}/stop", stop, permission="runs.stop")
