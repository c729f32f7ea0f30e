"""Languages of the console: zh-CN by default, English; times in the person's zone.

Message catalogues are gettext ``.po`` files, one or more per plugin and locale
(``<folder>/<locale>/LC_MESSAGES/*.po``), read with Babel when the hub starts and merged:
nothing generated is kept in the source tree. ``python -m rpahub_plugins.console.catalogue``
extracts the strings of the templates and code and updates the catalogues.
"""

from __future__ import annotations

import datetime as dt
import gettext
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale
from babel.dates import format_datetime, format_timedelta
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

#: What a person can choose, in the order the switcher shows them; the first is the default.
LANGUAGES = {"zh-CN": "zh_CN", "en": "en"}
DEFAULT_LANGUAGE = "zh-CN"
LANGUAGE_NAMES = {"zh-CN": "中文", "en": "English"}


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


def language_of(value: str | None) -> str | None:
    """``zh-CN``/``zh_cn``/``zh``/``en-US`` → a supported language, or ``None``."""
    if not value:
        return None
    value = value.strip().replace("_", "-").lower()
    for code in LANGUAGES:
        if value == code.lower() or value.split("-")[0] == code.split("-")[0].lower():
            return code
    return None


def negotiate(accept_language: str | None) -> str:
    """The best supported language of an ``Accept-Language`` header (zh-CN when none fits)."""
    weighted = []
    for part in (accept_language or "").split(","):
        tag, _, q = part.strip().partition(";q=")
        try:
            weighted.append((float(q or 1), tag))
        except ValueError:
            continue
    for _q, tag in sorted(weighted, key=lambda x: -x[0]):
        found = language_of(tag)
        if found:
            return found
    return DEFAULT_LANGUAGE


class Catalogues:
    """Every plugin's translations, merged per locale."""

    def __init__(self):
        self.folders: list[Path] = []
        self.messages: dict[str, dict] = {loc: {} for loc in LANGUAGES.values()}
        self.plurals = {loc: gettext.c2py("(n != 1)") for loc in LANGUAGES.values()}

    def add(self, folder: Path) -> None:
        folder = Path(folder)
        self.folders.append(folder)
        for locale in LANGUAGES.values():
            for po in sorted((folder / locale / "LC_MESSAGES").glob("*.po")):
                with open(po, "rb") as fh:
                    catalog = read_po(fh, locale=locale)
                self.plurals[locale] = gettext.c2py(catalog.plural_expr)
                for message in catalog:
                    if message.id and message.string and not message.fuzzy:
                        self.messages[locale][message.id] = message.string

    def translator(self, language: str, *, strict: bool = False) -> Translator:
        locale = LANGUAGES[language]
        return Translator(language, self.messages[locale], self.plurals[locale], strict=strict)


class Translator:
    """gettext for one request. ``strict`` (tests) marks an untranslated string ⟦so⟧."""

    def __init__(self, language: str, messages: dict, plural=None, *, strict: bool = False):
        self.language = language
        self.locale = Locale.parse(LANGUAGES[language])
        self.messages = messages
        self.plural = plural or (lambda n: int(n != 1))
        self.strict = strict

    def gettext(self, message: str, **variables) -> str:
        text = self.messages.get(message) or (f"⟦{message}⟧" if self.strict else message)
        return text % variables if variables else text

    def known(self, text: str | None) -> str:
        """Text that comes from the API (a permission's description): its translation when a
        catalogue has one, else as it is — a third party's text is never marked missing."""
        return self.messages.get(text, text) if text else ""

    def ngettext(self, singular: str, plural: str, n: int, **variables) -> str:
        forms = self.messages.get((singular, plural))
        if forms and all(forms):
            text = forms[min(self.plural(n), len(forms) - 1)]
        else:
            text = singular if n == 1 else plural
            text = f"⟦{text}⟧" if self.strict else text
        return text % {"num": n, **variables}


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "Asia/Shanghai")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("Asia/Shanghai")


def parse_time(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def when(value, language: str, tz: str, fmt: str = "medium") -> str:
    """An API time (ISO 8601, UTC) in the person's zone and language; ``""`` for none."""
    parsed = parse_time(value)
    if parsed is None:
        return "" if value in (None, "") else str(value)
    return format_datetime(parsed, fmt, tzinfo=zone(tz), locale=LANGUAGES[language])


def duration(seconds, language: str) -> str:
    if seconds in (None, ""):
        return ""
    seconds = float(seconds)
    if seconds < 60:
        return format_decimal(round(seconds, 1), locale=LANGUAGES[language]) + " s"
    return format_timedelta(dt.timedelta(seconds=seconds), threshold=1.5, locale=LANGUAGES[language])


def number(value, language: str) -> str:
    if value in (None, ""):
        return ""
    return format_decimal(value, locale=LANGUAGES[language])
