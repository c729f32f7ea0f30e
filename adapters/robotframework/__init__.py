"""Adapter for executors that run Robot Framework task packages.

Admission is the same time-boxed HMAC as ``tces130``; what differs is the work:
its executors run only ``robot`` packages (a zip holding ``.robot`` suites), so
dispatch never hands them a Python package, and ``Execute`` carries the suite's
arguments as Robot Framework variables (``name:value``) beside the standard list.
"""

from __future__ import annotations

from rpahub_adapters.tces130 import Tces130Adapter


class RobotFrameworkAdapter(Tces130Adapter):
    name = "robotframework"
    package_kinds = ("robot",)

    def execute_body(self, body, run):
        body = dict(body)
        # Ignored by executors that do not know it: the standard's fields stay untouched.
        body["robotVariables"] = [f"{a['name']}:{a['value']}" for a in body.get("arguments") or []]
        return body


Adapter = RobotFrameworkAdapter
