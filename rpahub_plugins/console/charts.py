"""Charts drawn on the server as inline SVG: pygal for figures, and the layered drawing
of a flow's task graph.

Nothing here references a script, a stylesheet or a font on the network: pygal is told
to link no script, and its inline configuration script and comments (which name its web
site) are removed, so a page works inside a utility's closed network and under the
console's CSP (no inline script).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import pygal
from markupsafe import Markup, escape
from pygal.style import Style

FONTS = 'system-ui, "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif'
COLORS = ("#0a5ca8", "#1e7d32", "#b3261e", "#a66300", "#6a3fa0", "#00838f", "#5b6878", "#c2185b", "#7cb342",
          "#f9a825")
_SCRIPT = re.compile(r"<script\b.*?</script>", re.S | re.I)
_COMMENT = re.compile(r"<!--.*?-->", re.S)


def style(dark: bool = False) -> Style:
    if dark:  # the big screen
        return Style(background="transparent", plot_background="transparent", foreground="#e6eef7",
                     foreground_strong="#ffffff", foreground_subtle="#5d7d9c", colors=("#7fd1ff", "#66d17a",
                     "#ff8a80", "#f6c35b", "#c39bff", "#4dd0e1", "#b0bec5", "#f48fb1", "#aed581", "#ffe082"),
                     font_family=FONTS, label_font_size=17, major_label_font_size=17, legend_font_size=18,
                     title_font_size=24, value_font_size=16, tooltip_font_size=16, no_data_font_size=26)
    return Style(background="transparent", plot_background="transparent", foreground="#1d2733",
                 foreground_strong="#1d2733", foreground_subtle="#d9e0e8", colors=COLORS, font_family=FONTS,
                 label_font_size=12, major_label_font_size=12, legend_font_size=13, title_font_size=16,
                 value_font_size=12, no_data_font_size=18)


def config(*, title: str = "", no_data: str = "", dark: bool = False, width: int = 800, height: int = 400,
           **extra) -> dict:
    return {"title": title or None, "style": style(dark), "width": width, "height": height, "js": [],
            "no_data_text": no_data or "–", "disable_xml_declaration": True, "legend_at_bottom": True,
            "truncate_legend": 30, "truncate_label": 24, "print_values": False, **extra}


def render(chart, label: str = "") -> Markup:
    """The chart as an ``<svg>`` element to put in a page."""
    svg = chart.render(is_unicode=True, disable_xml_declaration=True)
    svg = _COMMENT.sub("", _SCRIPT.sub("", svg))
    attrs = ' role="img"' + (f' aria-label="{escape(label)}"' if label else "")
    return Markup(svg.replace("<svg ", "<svg" + attrs + " ", 1))  # noqa: S704 - pygal escapes its text


def bars(labels: Sequence[str], series: Iterable[tuple[str, Sequence[float | None]]], *, title: str = "",
         no_data: str = "", dark: bool = False, horizontal: bool = False, stacked: bool = False,
         width: int = 800, height: int = 400) -> Markup:
    kind = (pygal.StackedBar if not horizontal else pygal.HorizontalStackedBar) if stacked else \
        (pygal.HorizontalBar if horizontal else pygal.Bar)
    chart = kind(**config(title=title, no_data=no_data, dark=dark, width=width, height=height,
                          x_label_rotation=0 if horizontal or len(labels) < 8 else 30))
    chart.x_labels = [str(x) for x in labels]
    for name, values in series:
        chart.add(name, list(values))
    return render(chart, title)


def line(labels: Sequence[str], series: Iterable[tuple[str, Sequence[float | None]]], *, title: str = "",
         no_data: str = "", dark: bool = False, width: int = 800, height: int = 400) -> Markup:
    chart = pygal.Line(**config(title=title, no_data=no_data, dark=dark, width=width, height=height, fill=False,
                                x_label_rotation=30 if len(labels) > 10 else 0,
                                show_minor_x_labels=len(labels) <= 8,
                                x_labels_major_every=max(1, -(-len(labels) // 7))))
    chart.x_labels = [str(x) for x in labels]
    for name, values in series:
        chart.add(name, list(values))
    return render(chart, title)


def pie(slices: Iterable[tuple[str, float]], *, title: str = "", no_data: str = "", dark: bool = False,
        width: int = 600, height: int = 400) -> Markup:
    chart = pygal.Pie(**config(title=title, no_data=no_data, dark=dark, width=width, height=height,
                               inner_radius=0.45, legend_at_bottom=False))
    for name, value in slices:
        if value:
            chart.add(name, value)
    return render(chart, title)


# -- a flow's task graph ---------------------------------------------------------------------

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 54, 70, 22, 16
STATE_FILLS = {  # fill, stroke of a task's box by the state of its task run
    None: ("#ffffff", "#5b6878"), "waiting": ("#eef2f6", "#5b6878"), "queued": ("#e8f0f9", "#0a5ca8"),
    "running": ("#cfe2f7", "#0a5ca8"), "success": ("#e6f4ea", "#1e7d32"), "failed": ("#fdecea", "#b3261e"),
    "skipped": ("#fff7e0", "#a66300"), "cancelled": ("#f1f1f1", "#777777"),
}


def layers(tasks: Sequence[dict]) -> list[list[str]]:
    """Tasks in columns: a task sits one column right of its deepest parent; within a
    column, tasks are ordered by the mean position of their parents (fewer crossings)."""
    keys = {t["key"] for t in tasks}
    # A parent that is not one of the tasks (a form being typed) draws no edge.
    parents = {t["key"]: [p for p in t.get("parents") or [] if p in keys] for t in tasks}
    depth: dict[str, int] = {}

    def level(key: str, seen: frozenset = frozenset()) -> int:
        if key not in depth:
            ps = [p for p in parents.get(key, []) if p in parents and p not in seen]
            depth[key] = 1 + max((level(p, seen | {key}) for p in ps), default=-1)
        return depth[key]

    for t in tasks:
        level(t["key"])
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for t in tasks:  # the API's topological order keeps roots in a stable order
        columns[depth[t["key"]]].append(t["key"])
    for _sweep in range(2):
        place = {k: i for col in columns for i, k in enumerate(col)}
        for col in columns[1:]:
            col.sort(key=lambda k: (sum(place[p] for p in parents[k]) / len(parents[k])) if parents[k] else 0)
            place.update({k: i for i, k in enumerate(col)})
    return columns


def _clip(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def dag(tasks: Sequence[dict], states: dict[str, str] | None = None, *, label: str = "",
        state_names: dict[str, str] | None = None, links: dict[str, str] | None = None, uid: str = "dag") -> Markup:
    """An ``<svg>`` of the task graph: one box per task, an arrow from each parent to its
    child; with ``states`` (task key → task-run state) the boxes are coloured by state.
    ``links`` (task key → URL) makes those boxes links."""
    states = states or {}
    state_names = state_names or {}
    columns = layers(tasks)
    by_key = {t["key"]: t for t in tasks}
    rows = max((len(c) for c in columns), default=0)
    height = PAD * 2 + rows * BOX_H + max(0, rows - 1) * GAP_Y
    width = PAD * 2 + len(columns) * BOX_W + max(0, len(columns) - 1) * GAP_X
    at: dict[str, tuple[int, int]] = {}
    for c, col in enumerate(columns):
        top = PAD + (height - 2 * PAD - (len(col) * BOX_H + (len(col) - 1) * GAP_Y)) // 2
        for r, key in enumerate(col):
            at[key] = (PAD + c * (BOX_W + GAP_X), top + r * (BOX_H + GAP_Y))
    marker = f"{uid}-arrow"
    out = [f'<svg class="dag" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" font-family=\'{FONTS}\'>',
           f'<defs><marker id="{marker}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" '
           f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6878"/></marker></defs>']
    for t in tasks:
        for p in t.get("parents") or []:
            if p not in at:
                continue
            (px, py), (cx, cy) = at[p], at[t["key"]]
            x1, y1, x2, y2 = px + BOX_W, py + BOX_H // 2, cx, cy + BOX_H // 2
            mid = (x1 + x2) // 2
            out.append(f'<path class="edge" data-from="{escape(p)}" data-to="{escape(t["key"])}" '
                       f'd="M{x1},{y1} C{mid},{y1} {mid},{y2} {x2 - 2},{y2}" fill="none" stroke="#5b6878" '
                       f'stroke-width="1.5" marker-end="url(#{marker})"/>')
    for key, (x, y) in at.items():
        task = by_key[key]
        st = states.get(key)
        fill, stroke = STATE_FILLS.get(st, STATE_FILLS[None])
        sub = state_names.get(st, st) if st else task.get("packageId", "")
        box = [f'<g class="task" data-key="{escape(key)}"' + (f' data-state="{escape(st)}"' if st else "") + ">",
               f"<title>{escape(key)}" + (f" · {escape(state_names.get(st, st))}" if st else "") + "</title>",
               f'<rect class="node" x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="6" fill="{fill}" '
               f'stroke="{stroke}" stroke-width="{2 if st else 1.5}"/>',
               f'<text x="{x + BOX_W // 2}" y="{y + 22}" text-anchor="middle" font-size="14" font-weight="600" '
               f'fill="#1d2733">{escape(_clip(key))}</text>',
               f'<text x="{x + BOX_W // 2}" y="{y + 41}" text-anchor="middle" font-size="12" '
               f'fill="{stroke}">{escape(_clip(str(sub or ""), 26))}</text>', "</g>"]
        if links and links.get(key):
            box = [f'<a href="{escape(links[key])}">', *box, "</a>"]
        out.extend(box)
    out.append("</svg>")
    return Markup("".join(out))  # noqa: S704 - every value above is escaped
