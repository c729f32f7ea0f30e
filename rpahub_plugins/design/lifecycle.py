"""The requirement lifecycle of T/CES 130-2022 6.2.1a–f as one table (:data:`ACTIONS`).

::

    submitted ─approve─► reviewed ─evaluate─► evaluated ─design─► designed ─pass─► tested ─accept─► accepted
        │                   │                  ▲     ▲               │               │
        ├─reject────────────┴──► rejected      │     └────rework─────┘               │
        └─withdraw─► withdrawn                 └────────────refuse───────────────────┘

``evaluated`` means "assigned to a designer, who is designing" (``evaluate`` again
reassigns; ``design`` again replaces the delivered package); trial runs happen while
``designed``; ``accepted``, ``rejected`` and ``withdrawn`` are final.
"""

from __future__ import annotations

from dataclasses import dataclass

STATES = ("submitted", "reviewed", "rejected", "withdrawn", "evaluated", "designed", "tested", "accepted")

# Business domains of 6.4.1b, stored as codes.
DOMAINS = {"marketing": "营销", "customer_service": "客服", "equipment": "设备", "hr": "人资", "finance": "财务",
           "it_ops": "信息运维"}
PRIORITIES = ("low", "normal", "high", "urgent")


@dataclass(frozen=True)
class Action:
    sources: tuple[str, ...]  # the states it may be taken from
    target: str
    permission: str
    summary: str
    why_required: bool = False  # sends work back or ends it: the comment must say why


ACTIONS: dict[str, Action] = {
    "withdraw": Action(("submitted",), "withdrawn", "design.submit",
                       "Withdraw a requirement before it is reviewed (its submitter only)"),
    "approve": Action(("submitted",), "reviewed", "design.review", "Review: approve a submitted requirement (6.2.1b)"),
    "reject": Action(("submitted", "reviewed"), "rejected", "design.review",
                     "Review: reject a requirement, saying why (6.2.1b)", why_required=True),
    "evaluate": Action(("reviewed", "evaluated"), "evaluated", "design.evaluate",
                       "Evaluate a requirement and assign it to a designer; again to reassign (6.2.1c)"),
    "design": Action(("evaluated", "designed"), "designed", "design.develop",
                     "Deliver the designed flow: its package and parameters (6.2.1d; the assigned designer)"),
    "rework": Action(("designed",), "evaluated", "design.test",
                     "Testing found faults: back to the designer, saying why (6.2.1e)", why_required=True),
    "pass": Action(("designed",), "tested", "design.test",
                   "Testing passed: needs a successful latest trial run of the delivered package (6.2.1e)"),
    "accept": Action(("tested",), "accepted", "design.accept",
                     "Accept the result: the package becomes a version of an app in the library (6.2.1f)"),
    "refuse": Action(("tested",), "evaluated", "design.accept",
                     "Refuse acceptance: back to the designer, saying why (6.2.1f)", why_required=True),
}


def allowed(state: str) -> list[str]:
    """The actions the lifecycle permits in ``state`` (whoever asks)."""
    return [name for name, a in ACTIONS.items() if state in a.sources]


def yours(req, who, manage: str = "design.manage") -> list[str]:
    """The actions of :func:`allowed` that ``who`` may take on ``req`` now: their
    permission, and the rules of the service — only the submitter withdraws, only the
    assigned designer delivers (or ``design.manage``), and whoever designed it never
    accepts or refuses it (maker-checker)."""
    out = []
    for name in allowed(req.state):
        if not who.can(ACTIONS[name].permission):
            continue
        if name == "withdraw" and req.submitter_id != who.id and not who.can(manage):
            continue
        if name == "design" and req.assignee_id != who.id and not who.can(manage):
            continue
        if name in ("accept", "refuse") and who.id in (req.assignee_id, req.designed_by_id):
            continue
        out.append(name)
    return out
