"""Extract the console's strings and keep its catalogues complete.

``python -m rpahub_plugins.console.catalogue`` extracts every string of the templates
(``_()``, ``{% trans %}``) and the code (``_()``, ``N_()``), adds the new ones to
``locale/<locale>/LC_MESSAGES/console.po`` (English: the string itself; Chinese: empty,
to be translated) and lists strings no longer used. ``--check`` only reports, and exits
1 when a string lacks a translation: the test suite runs the same check.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po, write_po

from .i18n import LANGUAGES

HERE = Path(__file__).parent
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _method_map() -> tuple[list, dict]:
    methods = [("**.py", "python"), ("**/templates/**.html", "jinja2")]
    options = {"**/templates/**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "true",
                                        "lstrip_blocks": "true"}}
    return methods, options


def extract(folder: Path = HERE) -> dict[str, list[str]]:
    """msgid → where it is used (``file:line``)."""
    methods, options = _method_map()
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
            str(folder), methods, options, keywords=KEYWORDS, strip_comment_tags=True):
        if isinstance(message, tuple):
            message = message[0]
        if message:
            found.setdefault(message, []).append(f"{filename}:{lineno}")
    return found


def translations(folder: Path = HERE) -> dict[str, dict[str, str]]:
    """locale → msgid → msgstr, merged over every ``.po`` of the locale."""
    out: dict[str, dict[str, str]] = {}
    for locale in LANGUAGES.values():
        merged: dict[str, str] = {}
        for po in sorted((folder / "locale" / locale / "LC_MESSAGES").glob("*.po")):
            with open(po, "rb") as fh:
                for message in read_po(fh, locale=locale):
                    if message.id and not message.fuzzy and isinstance(message.id, str):
                        # as the console merges them: an empty msgstr never hides another file's
                        if message.string or message.id not in merged:
                            merged[message.id] = message.string or ""
        out[locale] = merged
    return out


#: Catalogues of texts the API returns (permission descriptions), not found in the pages.
API_TEXTS = ("permissions",)


def api_texts(folder: Path, locale: str) -> set[str]:
    out: set[str] = set()
    for domain in API_TEXTS:
        po = folder / "locale" / locale / "LC_MESSAGES" / f"{domain}.po"
        if po.exists():
            with open(po, "rb") as fh:
                out |= {m.id for m in read_po(fh, locale=locale) if m.id}
    return out


def problems(folder: Path = HERE) -> list[str]:
    """Every string a page shows that a catalogue lacks, or whose placeholders differ."""
    used = extract(folder)
    catalogues = translations(folder)
    out = []
    for locale, messages in catalogues.items():
        for msgid, places in sorted(used.items()):
            text = messages.get(msgid)
            if not text:
                out.append(f"{locale}: missing {msgid!r} (used at {places[0]})")
            elif set(PLACEHOLDER.findall(text)) != set(PLACEHOLDER.findall(msgid)):
                out.append(f"{locale}: {msgid!r} → {text!r} has other placeholders")
    return out


def update(folder: Path = HERE, domain: str = "console") -> list[str]:
    """Add the strings no catalogue has to ``<domain>.po``: with a domain other than
    ``console``, only those of ``pages/<domain>.py`` and ``templates/<domain>/``."""
    everything = used = extract(folder)
    if domain != "console":
        mine = (f"pages/{domain}.py:", f"templates/{domain}/")
        used = {m: places for m, places in used.items() if any(p.startswith(mine) for p in places)}
    notes = []
    for locale, messages in translations(folder).items():
        path = folder / "locale" / locale / "LC_MESSAGES" / f"{domain}.po"
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with open(path, "rb") as fh:
                catalog = read_po(fh, locale=locale)
        else:
            catalog = Catalog(locale=locale, project="rpahub console", fuzzy=False)
        added = 0
        for msgid in sorted(used):
            if msgid not in messages:
                catalog.add(msgid, msgid if locale == "en" else "")
                added += 1
        unused = sorted(set(messages) - set(everything) - api_texts(folder, locale))
        with open(path, "wb") as fh:
            write_po(fh, catalog, width=120, omit_header=False, sort_output=True)
        notes.append(f"{locale}: {added} new, {len(unused)} unused" + (f": {unused}" if unused else ""))
    return notes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpahub_plugins.console.catalogue", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report missing translations")
    parser.add_argument("--domain", default="console",
                        help="the catalogue new strings go to (a center's pages and templates only)")
    args = parser.parse_args(argv)
    if not args.check:
        for note in update(domain=args.domain):
            print(note)
    missing = problems()
    for line in missing:
        print(line)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
