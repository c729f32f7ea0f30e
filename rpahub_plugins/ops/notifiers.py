"""The built-in notification channels of the ``rpahub_notifiers`` hook: ``webhook`` and
``email`` (SMTP). Each raises on a failed delivery; the evaluator records and retries it."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage

from rpahub_core.errors import BadRequest

SIGNATURE_HEADER = "X-Rpahub-Signature"
EMAIL = re.compile(r"^[^@\s,;]+@[^@\s,;]+\.[^@\s,;]+$")


class DeliveryFailed(RuntimeError):
    pass


def _json_default(value):
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


class Webhook:
    """POST the notification as JSON. With a ``webhook_secret`` the body is signed:
    ``X-Rpahub-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>``."""

    name = "webhook"

    def __init__(self, settings: dict):
        self.timeout = float(settings.get("webhook_timeout_s") or 5)
        secret = settings.get("webhook_secret") or ""
        self._secret = secret.get_secret_value() if hasattr(secret, "get_secret_value") else str(secret)

    def check_target(self, target: str) -> None:
        if not re.match(r"^https?://[^\s/]+", target):
            raise BadRequest("target: a webhook needs an http:// or https:// URL")

    def send(self, notification: dict, target: str) -> None:
        body = json.dumps(notification, ensure_ascii=False, sort_keys=True, default=_json_default).encode()
        req = urllib.request.Request(target, data=body, method="POST")
        req.add_header("Content-Type", "application/json; charset=utf-8")
        req.add_header("User-Agent", "rpahub-alerts")
        if self._secret:
            digest = hmac.new(self._secret.encode(), body, hashlib.sha256).hexdigest()
            req.add_header(SIGNATURE_HEADER, f"sha256={digest}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                resp.read(65536)
        except urllib.error.HTTPError as exc:
            raise DeliveryFailed(f"webhook answered HTTP {exc.code}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise DeliveryFailed(f"webhook unreachable: {reason}") from None


class Email:
    """Send through the configured SMTP server; ``target`` is one address or several,
    separated by commas. The password is used to sign in and never logged or stored."""

    name = "email"

    def __init__(self, settings: dict):
        self.host = settings.get("smtp_host") or ""
        self.port = int(settings.get("smtp_port") or 25)
        self.user = settings.get("smtp_user") or ""
        password = settings.get("smtp_password") or ""
        self._password = password.get_secret_value() if hasattr(password, "get_secret_value") else str(password)
        self.sender = settings.get("smtp_from") or "rpahub@localhost"
        self.starttls = _truthy(settings.get("starttls", False))
        self.timeout = float(settings.get("smtp_timeout_s") or 10)

    def __repr__(self) -> str:  # never the password
        return f"Email(host={self.host!r}, port={self.port}, user={self.user!r})"

    def check_target(self, target: str) -> None:
        for address in addresses(target):
            if not EMAIL.match(address):
                raise BadRequest(f"target: {address!r} is not an e-mail address")
        if not addresses(target):
            raise BadRequest("target: name at least one e-mail address")

    def send(self, notification: dict, target: str) -> None:
        if not self.host:
            raise DeliveryFailed("email: smtp_host is not configured in [plugins.ops]")
        msg = EmailMessage()
        msg["Subject"] = notification["title"]
        msg["From"] = self.sender
        msg["To"] = ", ".join(addresses(target))
        labels = "\n".join(f"  {k}: {v}" for k, v in sorted((notification.get("labels") or {}).items()))
        msg.set_content(f"{notification['text']}\n\nseverity: {notification['severity']}\n"
                        f"state: {notification['state']}\nat: {_json_default(notification['at'])}\n"
                        f"rule: {notification['rule']}\n{labels}\n")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self._password)
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryFailed(f"email: the SMTP server refused the sign-in of {self.user} ({exc.smtp_code})") \
                from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"email: {type(exc).__name__}: {exc}") from None


def addresses(target: str) -> list[str]:
    return [a.strip() for a in re.split(r"[,;]", target or "") if a.strip()]


def _truthy(value) -> bool:
    return value is True or str(value).strip().lower() in ("1", "true", "yes", "on")
