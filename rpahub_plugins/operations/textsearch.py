"""Tokenising for the knowledge-base search, the same for indexing and for queries.

Chinese is written without spaces, so a word tokenizer sees a whole sentence as one
"word". Instead every overlapping pair of CJK characters is a term (发票校验 → 发票,
票校, 校验); a lone CJK character is a term of its own. Latin letters and digits form
lower-cased words (NFKC first, so full-width ＲＰＡ is rpa). A query's terms are found
with one indexed ``IN`` lookup on any database; no dictionary, no extension.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af"
_RUNS = re.compile(f"[{CJK}]+|[^\\W_{CJK}]+")
_CJK_RUN = re.compile(f"[{CJK}]+")
MAX_TERM = 64  # longer Latin "words" (hashes, base64) are cut: still findable by their start


def normalise(text: str) -> str:
    return unicodedata.normalize("NFKC", text or "").lower()


def terms(text: str) -> list[str]:
    """Every term of ``text``, in order, with repetitions."""
    out: list[str] = []
    for run in _RUNS.findall(normalise(text)):
        if _CJK_RUN.fullmatch(run):
            if len(run) == 1:
                out.append(run)
            else:
                out.extend(run[i:i + 2] for i in range(len(run) - 1))
        else:
            out.append(run[:MAX_TERM])
    return out


def index_terms(text: str) -> Counter:
    """Terms to index with their counts. Besides the bigrams, each CJK character is
    indexed alone, so a one-character query (票) still finds it."""
    counts = Counter(terms(text))
    for run in _CJK_RUN.findall(normalise(text)):
        if len(run) > 1:
            counts.update(run)
    return counts


def query_terms(text: str, limit: int = 32) -> list[str]:
    """The distinct terms of a query, in order, at most ``limit``."""
    return list(dict.fromkeys(terms(text)))[:limit]


def minimum_match(n: int) -> int:
    """How many of a query's ``n`` terms an article must contain: three quarters (at least
    one), so one shared bigram never makes an unrelated article a hit."""
    return max(1, (n * 3) // 4)


def spans(text: str, words: list[str]) -> list[tuple[int, int]]:
    """Merged ``[start, end)`` ranges of ``text`` where any of ``words`` occurs
    (case-insensitively). Positions refer to ``text`` itself."""
    folded = text.lower()
    if len(folded) != len(text):  # a rare letter whose lower case is longer: match as written
        folded = text
    marks: list[tuple[int, int]] = []
    for word in {w for w in words if w}:
        start = folded.find(word)
        while start != -1:
            marks.append((start, start + len(word)))
            start = folded.find(word, start + 1)
    marks.sort()
    merged: list[tuple[int, int]] = []
    for s, e in marks:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def snippet(text: str, words: list[str], width: int = 120) -> dict:
    """A window of ``text`` around its densest matches: the plain text, the match ranges
    within it, and the same text with «» around each match (plain text, never HTML)."""
    text = " ".join((text or "").split())  # Markdown line breaks would waste the window
    found = spans(text, words)[:500]  # bounds the window search on a huge body
    if not found:
        plain = text[:width]
        return {"text": plain, "highlights": [], "marked": plain, "truncated": len(text) > width}
    # The window starting a little before the match that has the most matches within reach.
    best = max(range(len(found)), key=lambda i: (sum(1 for s, e in found if found[i][0] <= s and e <= found[i][0]
                                                     + width), -i))
    start = max(0, found[best][0] - width // 6)
    end = min(len(text), start + width)
    plain = text[start:end]
    inside = [(max(s, start) - start, min(e, end) - start) for s, e in found if s < end and e > start]
    marked, at = [], 0
    for s, e in inside:
        marked.append(plain[at:s] + "«" + plain[s:e] + "»")
        at = e
    marked.append(plain[at:])
    return {"text": plain, "highlights": [list(x) for x in inside], "marked": "".join(marked),
            "truncated": start > 0 or end < len(text)}
