"""Alert rules and their evaluator.

A rule fires once when its condition starts to hold, reminds no more often than its
cooldown while it holds (until someone acknowledges the alert), and resolves when it
clears. Each of these moments is an :class:`~.models.AlertEvent` delivered to the rule's
channels through the notifiers of the ``rpahub_notifiers`` hook.

Several hub processes may evaluate at once: a transition is recorded only by the process
whose conditional update of the rule succeeds, and an event is delivered only by the
process that claimed it, so nobody is notified twice. Deliveries happen outside any
transaction; a failed channel is recorded on the event and retried on the next
evaluation, up to ``delivery_attempts`` times.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

from rpahub_core import db as hubdb
from rpahub_core.db import utcnow
from rpahub_core.errors import BadRequest, Conflict, NotFound

from .conditions import FILTERS, UNITS, Measurement, measure
from .models import AlertEvent, AlertRule

log = logging.getLogger("rpahub.ops.alerts")

CLAIM_S = 120  # an event being delivered is left alone by other processes this long


class _Lost(Exception):
    """Another process recorded this transition first."""


def notifiers_of(hub) -> dict:
    """Every notifier the enabled plugins offer, by name."""
    found = {}
    for group in hub.pm.hook.rpahub_notifiers(hub=hub):
        for notifier in group or ():
            found.setdefault(notifier.name, notifier)
    return found


def rule_json(rule: AlertRule) -> dict:
    return {"id": rule.id, "name": rule.name, "kind": rule.kind, "threshold": rule.threshold,
            "unit": UNITS[rule.kind].strip(), "windowMinutes": rule.window_min,
            "filters": json.loads(rule.filters or "{}"), "severity": rule.severity,
            "channels": json.loads(rule.channels or "[]"), "enabled": rule.enabled,
            "cooldownMinutes": rule.cooldown_min, "createdBy": rule.created_by, "createdAt": rule.created_at,
            "updatedAt": rule.updated_at, "firing": rule.firing_event_id is not None,
            "firingSince": rule.firing_since, "lastValue": rule.last_value, "evaluatedAt": rule.evaluated_at}


def event_json(e: AlertEvent) -> dict:
    return {"id": e.id, "ruleId": e.rule_id, "ruleName": e.rule_name, "kind": e.kind, "severity": e.severity,
            "state": e.state, "repeat": e.repeat, "value": e.value, "threshold": e.threshold, "text": e.text,
            "labels": json.loads(e.labels or "{}"), "at": e.at, "deliveries": json.loads(e.deliveries or "[]"),
            "pending": e.pending, "acknowledged": {"by": e.acknowledged_by, "at": e.acknowledged_at,
                                                   "note": e.acknowledged_note or ""}
            if e.acknowledged_at is not None else None}


class Alerts:
    def __init__(self, hub, settings: dict):
        self.hub = hub
        self.attempts = max(1, int(settings.get("delivery_attempts") or 5))

    # -- rules ------------------------------------------------------------------------

    def get(self, rule_id: str) -> AlertRule:
        rule = AlertRule.get_or_none(AlertRule.id == rule_id)
        if rule is None:
            raise NotFound(f"alert rule {rule_id} not found")
        return rule

    def create(self, body, *, by: str) -> AlertRule:
        values = self._checked(body.kind, body.model_dump())
        if AlertRule.get_or_none(AlertRule.name == body.name):
            raise Conflict(f"name: an alert rule named {body.name} exists")
        return AlertRule.create(name=body.name, kind=body.kind, created_by=by, **values)

    def update(self, rule_id: str, patch) -> AlertRule:
        rule = self.get(rule_id)
        given = patch.model_dump(exclude_unset=True)
        if given.get("name") and given["name"] != rule.name and AlertRule.get_or_none(AlertRule.name == given["name"]):
            raise Conflict(f"name: an alert rule named {given['name']} exists")
        current = rule_json(rule)
        merged = {**current, **{k: v for k, v in given.items() if v is not None}}
        values = self._checked(rule.kind, merged)
        if given.get("name"):
            values["name"] = given["name"]
        AlertRule.update(**values, updated_at=utcnow()).where(AlertRule.id == rule.id).execute()
        return self.get(rule.id)

    def delete(self, rule_id: str) -> None:
        """The rule goes; its events stay as history (they name it by value)."""
        AlertRule.delete().where(AlertRule.id == self.get(rule_id).id).execute()

    def _checked(self, kind: str, b: dict) -> dict:
        threshold = float(b["threshold"])
        if kind == "failure_rate" and not 0 < threshold <= 100:
            raise BadRequest("threshold: a failure rate is a percentage above 0 and at most 100")
        if kind == "executor_offline" and (threshold < 1 or threshold != int(threshold)):
            raise BadRequest("threshold: a number of offline executors, at least 1")
        if kind == "queue_wait" and threshold <= 0:
            raise BadRequest("threshold: minutes a run may wait, above 0")
        if kind == "licence_expiry" and not 0 <= threshold <= 3650:
            raise BadRequest("threshold: days ahead, 0 to 3650")
        filters = {k: v for k, v in dict(b.get("filters") or {}).items() if v is not None}
        for key in filters:
            if key not in FILTERS[kind]:
                raise BadRequest(f"filters.{key}: not a filter of {kind} (it has {', '.join(FILTERS[kind])})")
        available = notifiers_of(self.hub)
        channels = []
        for i, ch in enumerate(b.get("channels") or []):
            notifier = available.get(ch["notifier"])
            if notifier is None:
                raise BadRequest(f"channels[{i}].notifier: no notifier {ch['notifier']!r} "
                                 f"(available: {', '.join(sorted(available)) or 'none'})")
            check = getattr(notifier, "check_target", None)
            if check is not None:
                try:
                    check(ch["target"])
                except BadRequest as exc:
                    raise BadRequest(f"channels[{i}].{exc.hint}") from None
            channels.append({"notifier": ch["notifier"], "target": ch["target"]})
        return {"threshold": threshold, "window_min": int(b["windowMinutes"]),
                "filters": json.dumps(filters, sort_keys=True), "severity": b["severity"],
                "channels": json.dumps(channels, ensure_ascii=False), "enabled": bool(b["enabled"]),
                "cooldown_min": int(b["cooldownMinutes"])}

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(self) -> list[AlertEvent]:
        """One round: retry failed deliveries, then check every rule. Returns the events it
        recorded. Never raises for one rule or one channel: it logs and goes on."""
        self.retry_pending()
        recorded = []
        for rule in list(AlertRule.select().order_by(AlertRule.name)):
            if not rule.enabled and rule.firing_event_id is None:
                continue
            try:
                event = self._evaluate_rule(rule)
            except Exception:
                log.exception("alert rule %s (%s) could not be evaluated", rule.name, rule.id)
                continue
            if event is not None:
                recorded.append(event)
                self.deliver(event)
        return recorded

    def _evaluate_rule(self, rule: AlertRule) -> AlertEvent | None:
        if rule.enabled:
            m = measure(rule, self.hub)
        else:
            m = Measurement(rule.last_value, False, "the rule was disabled")
        now = utcnow()
        try:
            with hubdb.atomic():
                event = self._transition(rule, m, now)
        except _Lost:
            return None
        if event is not None:
            self.hub.publish(f"alert.{event.state}", ruleId=rule.id, rule=rule.name, eventId=event.id,
                             severity=rule.severity, value=event.value, repeat=event.repeat)
        return event

    def _transition(self, rule: AlertRule, m: Measurement, now: dt.datetime) -> AlertEvent | None:
        same = (AlertRule.id == rule.id) & (
            AlertRule.firing_event_id.is_null() if rule.firing_event_id is None
            else AlertRule.firing_event_id == rule.firing_event_id)
        AlertRule.update(last_value=m.value, evaluated_at=now).where(AlertRule.id == rule.id).execute()
        if m.breached and rule.firing_event_id is None:
            event = self._record(rule, m, "firing", now)
            changed = AlertRule.update(firing_event_id=event.id, firing_since=now, notified_at=now).where(same)
        elif m.breached and rule.cooldown_min and rule.notified_at is not None \
                and now - rule.notified_at >= dt.timedelta(minutes=rule.cooldown_min) \
                and not acknowledged(rule.firing_event_id):
            event = self._record(rule, m, "firing", now, repeat=True)
            changed = AlertRule.update(notified_at=now).where(same & (AlertRule.notified_at == rule.notified_at))
        elif not m.breached and rule.firing_event_id is not None:
            event = self._record(rule, m, "resolved", now)
            changed = AlertRule.update(firing_event_id=None, firing_since=None, notified_at=None).where(same)
        else:
            return None
        if not changed.execute():
            raise _Lost()
        return event

    def _record(self, rule: AlertRule, m: Measurement, state: str, now: dt.datetime, repeat: bool = False):
        channels = json.loads(rule.channels or "[]")
        deliveries = [{"notifier": c["notifier"], "target": c["target"], "ok": False, "attempts": 0, "error": "",
                       "at": None} for c in channels]
        text = m.text if state == "firing" else f"resolved: {m.text}"
        labels = {"ruleId": rule.id, "kind": rule.kind, "threshold": rule.threshold,
                  "filters": json.loads(rule.filters or "{}"), **m.labels}
        return AlertEvent.create(rule_id=rule.id, rule_name=rule.name, kind=rule.kind, severity=rule.severity,
                                 state=state, repeat=repeat, value=m.value, threshold=rule.threshold, text=text,
                                 labels=json.dumps(labels, ensure_ascii=False, default=str), at=now,
                                 deliveries=json.dumps(deliveries), pending=bool(deliveries),
                                 claimed_until=now + dt.timedelta(seconds=CLAIM_S) if deliveries else None)

    # -- delivery -----------------------------------------------------------------------

    def notification(self, event: AlertEvent, *, state: str | None = None) -> dict:
        state = state or event.state
        word = {"firing": "FIRING", "resolved": "RESOLVED", "test": "TEST"}[state]
        return {"title": f"[{event.severity}] {word}: {event.rule_name}", "text": event.text,
                "severity": event.severity, "rule": event.rule_name, "state": state,
                "at": event.at.replace(microsecond=0).isoformat() + "Z",
                "labels": {**json.loads(event.labels or "{}"), "eventId": event.id, "repeat": event.repeat,
                           "value": event.value}}

    def deliver(self, event: AlertEvent) -> list[dict]:
        """Send the event to each channel that has not received it yet; record the outcome."""
        deliveries = json.loads(event.deliveries or "[]")
        available = notifiers_of(self.hub)
        note = self.notification(event)
        for d in deliveries:
            if d["ok"] or d["attempts"] >= self.attempts:
                continue
            d["attempts"] += 1
            d["at"] = utcnow().isoformat() + "Z"
            d["ok"], d["error"] = send(available, d["notifier"], note, d["target"])
        pending = any(not d["ok"] and d["attempts"] < self.attempts for d in deliveries)
        with hubdb.atomic():
            AlertEvent.update(deliveries=json.dumps(deliveries, ensure_ascii=False), pending=pending,
                              claimed_until=None).where(AlertEvent.id == event.id).execute()
        event.deliveries, event.pending = json.dumps(deliveries, ensure_ascii=False), pending
        return deliveries

    def retry_pending(self) -> int:
        now = utcnow()
        retried = 0
        for event in list(AlertEvent.select().where(AlertEvent.pending & (
                AlertEvent.claimed_until.is_null() | (AlertEvent.claimed_until < now))).order_by(AlertEvent.id)):
            with hubdb.atomic():
                claimed = AlertEvent.update(claimed_until=now + dt.timedelta(seconds=CLAIM_S)).where(
                    (AlertEvent.id == event.id) & AlertEvent.pending & (
                        AlertEvent.claimed_until.is_null() | (AlertEvent.claimed_until < now))).execute()
            if claimed:
                try:
                    self.deliver(event)
                    retried += 1
                except Exception:
                    log.exception("alert event %s could not be delivered", event.id)
        return retried

    def test(self, rule_id: str, *, by: str) -> list[dict]:
        """Send a test notification to each of the rule's channels now; nothing is recorded."""
        rule = self.get(rule_id)
        channels = json.loads(rule.channels or "[]")
        if not channels:
            raise BadRequest("channels: the rule has no channel to test")
        probe = AlertEvent(id=None, rule_id=rule.id, rule_name=rule.name, kind=rule.kind, severity=rule.severity,
                           state="firing", value=None, threshold=rule.threshold,
                           text=f"test notification of alert rule {rule.name}, sent by {by}",
                           labels=json.dumps({"ruleId": rule.id, "kind": rule.kind, "test": True}), at=utcnow())
        note = self.notification(probe, state="test")
        available = notifiers_of(self.hub)
        results = []
        for ch in channels:
            ok, error = send(available, ch["notifier"], note, ch["target"])
            results.append({"notifier": ch["notifier"], "target": ch["target"], "ok": ok, "error": error})
        return results

    # -- acknowledgement ------------------------------------------------------------------

    def acknowledge(self, alert_id: str, note: str, *, by: str) -> AlertEvent:
        """Someone is on the alert: record who, when and their note; its reminders stop.

        The alert is the event that opened the firing (``firing[].event.id``). It stays
        firing until its condition clears."""
        # Ids are bigints: a longer number is no alert (and must not overflow the database's).
        event = AlertEvent.get_or_none(AlertEvent.id == int(alert_id)) \
            if alert_id.isascii() and alert_id.isdigit() and len(alert_id) <= 18 else None
        if event is None:
            raise NotFound(f"alert {alert_id} not found")
        rule = AlertRule.get_or_none(AlertRule.id == event.rule_id)
        open_id = rule.firing_event_id if rule is not None else None
        if open_id is not None and event.id != open_id and event.state == "firing" and event.repeat \
                and event.at >= rule.firing_since:
            raise Conflict(f"event {event.id} is a reminder: acknowledge the alert it reminds of, {open_id}")
        if event.id != open_id:
            raise Conflict(f"alert {event.id} is not firing (it resolved); only a firing alert is acknowledged")
        if event.acknowledged_at is not None:
            raise Conflict(f"alert {event.id} was acknowledged by {event.acknowledged_by} already")
        now = utcnow()
        # Conditional: of two people acknowledging at once, the second is told it is taken.
        done = AlertEvent.update(acknowledged_by=by, acknowledged_at=now, acknowledged_note=note).where(
            (AlertEvent.id == event.id) & AlertEvent.acknowledged_at.is_null()).execute()
        if not done:
            raise Conflict(f"alert {event.id} was acknowledged already")
        self.hub.publish("alert.acknowledged", ruleId=rule.id, rule=rule.name, eventId=event.id, by=by)
        return AlertEvent.get(AlertEvent.id == event.id)

    # -- what is happening ----------------------------------------------------------------

    def firing(self) -> list[dict]:
        rules = list(AlertRule.select().where(AlertRule.firing_event_id.is_null(False)).order_by(AlertRule.firing_since))
        events = {e.id: e for e in AlertEvent.select().where(AlertEvent.id.in_([r.firing_event_id for r in rules]))} \
            if rules else {}
        return [{"rule": rule_json(r), "since": r.firing_since, "value": r.last_value,
                 "event": event_json(events[r.firing_event_id]) if r.firing_event_id in events else None}
                for r in rules]


def acknowledged(event_id: int | None) -> bool:
    return event_id is not None and AlertEvent.select().where(
        (AlertEvent.id == event_id) & AlertEvent.acknowledged_at.is_null(False)).exists()


def send(available: dict, name: str, notification: dict, target: str) -> tuple[bool, str]:
    notifier = available.get(name)
    if notifier is None:
        return False, f"notifier {name} is not available (its plugin is not enabled)"
    try:
        notifier.send(notification, target)
    except Exception as exc:  # any failure of a channel is recorded, never propagated
        log.warning("alert delivery through %s failed: %s", name, exc)
        return False, (str(exc) or type(exc).__name__)[:500]
    return True, ""
