"""Timelines: a scheduled run's trace as text columns or as an SVG swimlane.

Rules:
* Input is the trace the scheduler records, one event per scheduling point:
  (step, task_id, kind, a, b, site) tuples or objects with those attributes;
  site is (file, line, function) or None.  Nothing here re-runs anything.
* One column (text) or lane (SVG) per task, one line/box per event, in step
  order.  Ring addresses are named through `SplitLayout.field_name` so a
  reader sees "W16 avail.idx=3", not an address.
* The failing step (default: the last event) is marked.
* The SVG is plain text written by hand: no dependency, deterministic output
  (same trace -> same bytes).
"""
from __future__ import annotations

import os
from html import escape

#: How event kinds read.  Memory accesses are "r16"/"w32"/..., "read"/"write"
#: (bytes), barriers by name; everything else prints as its kind.
_BARRIERS = ("mb", "wmb", "rmb")
_MARKS = {"notify": "notify", "kick": "notify", "interrupt": "interrupt", "irq": "interrupt",
          "drain": "drain", "flush": "drain"}


class RingNamer:
    """field_name() over several queues' layouts: 'rx:avail.idx' (no prefix for one)."""

    def __init__(self, layouts: dict):
        self.layouts = dict(layouts)

    def field_name(self, addr: int) -> str | None:
        for name, lay in self.layouts.items():
            field = lay.field_name(addr)
            if field is not None:
                return field if len(self.layouts) == 1 else f"{name}:{field}"
        return None


def _fields(ev):
    if isinstance(ev, (tuple, list)):
        step, task, kind, a, b, *rest = ev
        site = rest[0] if rest else None
    else:
        step, task, kind = ev.step, ev.task, ev.kind
        a, b, site = getattr(ev, "a", None), getattr(ev, "b", None), getattr(ev, "site", None)
    return step, task, str(kind), a, b, site


def _name(addr, layout) -> str:
    if isinstance(addr, int):
        field = layout.field_name(addr) if layout is not None else None
        return field or f"{addr:#x}"
    return str(addr)


def describe(kind: str, a, b, layout=None) -> str:
    """One event as an action: 'W16 avail.idx=3', 'R16 used.idx -> 2', 'lock tx', ..."""
    k = kind.lower()
    width = "".join(ch for ch in k if ch.isdigit())
    if k.startswith(("w", "store")) and (width or k in ("write", "store")) and k not in _BARRIERS:
        if isinstance(b, (bytes, bytearray)):
            return f"W {_name(a, layout)} [{len(b)} bytes]"
        return f"W{width} {_name(a, layout)}={b}" if b is not None else f"W{width} {_name(a, layout)}"
    if k.startswith(("r", "load")) and (width or k in ("read", "load")) and k not in _BARRIERS:
        if isinstance(b, (bytes, bytearray)):
            return f"R {_name(a, layout)} [{len(b)} bytes]"
        return f"R{width} {_name(a, layout)} -> {b}" if b is not None else f"R{width} {_name(a, layout)}"
    if k in _BARRIERS:
        return k
    if k in ("drain", "flush"):
        return f"drain {_name(a, layout)}={b}" if a is not None else "drain"
    parts = [k]
    for x in (a, b):
        if x is not None:
            parts.append(_name(x, layout) if isinstance(x, int) and layout else str(x))
    return " ".join(parts)


def _site(site) -> str:
    if not site:
        return ""
    if isinstance(site, (tuple, list)) and len(site) == 3:
        file, line, func = site
        return f"{os.path.basename(str(file))}:{line} {func}"
    return str(site)


def _task_index(task, task_names) -> int:
    if isinstance(task_names, dict):
        keys = list(task_names)
        return keys.index(task) if task in keys else len(keys)
    return task if isinstance(task, int) and 0 <= task < len(task_names) else len(task_names)


def _labels(task_names) -> list[str]:
    return [str(v) for v in (task_names.values() if isinstance(task_names, dict) else task_names)]


def render_text(events, task_names, *, width: int = 24, layout=None,
                failing_step=None, limit: int | None = None) -> str:
    """One column per task, one line per event: step, action, call site.

    task_names maps task id -> name (a list indexed by id, or a dict).  The
    failing step (default: the last event's) is marked with '>>' and '<== fails'.
    limit keeps only the last `limit` events (the failure is at the end).
    """
    events = [_fields(e) for e in events]
    if failing_step is None and events:
        failing_step = events[-1][0]
    if limit is not None and len(events) > limit:
        skipped, events = len(events) - limit, events[-limit:]
    else:
        skipped = 0
    labels = _labels(task_names)
    ncol = len(labels) + (1 if any(_task_index(e[1], task_names) >= len(labels)
                                   for e in events) else 0)
    if ncol > len(labels):
        labels = labels + ["?"]
    head = "   step  " + "".join(f"{lab[:width - 1]:<{width}}" for lab in labels) + "site"
    lines = [head, "   " + "-" * (len(head) - 3)]
    if skipped:
        lines.append(f"   ... {skipped} earlier events")
    for step, task, kind, a, b, site in events:
        col = min(_task_index(task, task_names), ncol - 1)
        text = describe(kind, a, b, layout)
        if len(text) > width - 1:
            text = text[:width - 2] + "~"
        cells = [""] * ncol
        cells[col] = text
        mark = ">>" if step == failing_step else "  "
        row = f"{mark}{step:>5}  " + "".join(f"{c:<{width}}" for c in cells) + _site(site)
        if step == failing_step:
            row += "  <== fails"
        lines.append(row.rstrip())
    return "\n".join(lines) + "\n"


# --- SVG swimlane ----------------------------------------------------------------

_LANE_H, _BOX_W, _BOX_H, _LEFT, _TOP = 44, 118, 26, 120, 48
_COLORS = {"write": "#cfe3ff", "read": "#e8f5e0", "barrier": "#ffe9b3", "lock": "#f3d1f4",
           "notify": "#ffc9c9", "interrupt": "#ffc9c9", "drain": "#e0e0e0", "other": "#f4f4f4"}


def _category(kind: str) -> str:
    k = kind.lower()
    if k in _BARRIERS:
        return "barrier"
    if k in _MARKS:
        return _MARKS[k]
    if k.startswith(("lock", "unlock", "acquire", "release", "irq_save", "irq_restore")):
        return "lock"
    if k[:1] == "w" and (k[1:].isdigit() or k in ("write",)):
        return "write"
    if k[:1] == "r" and (k[1:].isdigit() or k in ("read",)):
        return "read"
    return "other"


def render_svg(events, task_names, title: str, *, layout=None, failing_step=None,
               limit: int | None = 400) -> str:
    """A swimlane: one lane per task, a box per action in step order.

    notify and interrupt get an arrow marker (down for a kick to the device,
    up for an interrupt to the driver), store drains a grey box, barriers an
    amber one; the failing step's box is outlined in red.
    """
    events = [_fields(e) for e in events]
    if failing_step is None and events:
        failing_step = events[-1][0]
    if limit is not None and len(events) > limit:
        events = events[-limit:]
    labels = _labels(task_names)
    if any(_task_index(e[1], task_names) >= len(labels) for e in events):
        labels.append("?")
    n = len(events)
    w = _LEFT + n * (_BOX_W + 6) + 20
    h = _TOP + len(labels) * _LANE_H + 20
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'viewBox="0 0 {w} {h}" font-family="monospace" font-size="10">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="4" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#c00"/></marker></defs>',
           f'<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>',
           f'<text x="8" y="20" font-size="14" font-weight="bold">{escape(title)}</text>']
    for i, lab in enumerate(labels):
        y = _TOP + i * _LANE_H
        fill = "#fafafa" if i % 2 == 0 else "#f0f0f0"
        out.append(f'<rect x="0" y="{y}" width="{w}" height="{_LANE_H}" fill="{fill}"/>')
        out.append(f'<text x="8" y="{y + _LANE_H // 2 + 4}" font-weight="bold">'
                   f'{escape(lab)}</text>')
    for j, (step, task, kind, a, b, site) in enumerate(events):
        lane = min(_task_index(task, task_names), len(labels) - 1)
        x = _LEFT + j * (_BOX_W + 6)
        y = _TOP + lane * _LANE_H + (_LANE_H - _BOX_H) // 2
        cat = _category(kind)
        fails = step == failing_step
        stroke = ' stroke="#d00" stroke-width="3"' if fails else ' stroke="#888"'
        tip = escape(f"step {step}: {describe(kind, a, b, layout)}  {_site(site)}")
        out.append(f'<g><title>{tip}</title>'
                   f'<rect x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="3" '
                   f'fill="{_COLORS[cat]}"{stroke}/>')
        text = describe(kind, a, b, layout)
        if len(text) > 19:
            text = text[:18] + "~"
        out.append(f'<text x="{x + 3}" y="{y + 11}">{escape(text)}</text>'
                   f'<text x="{x + 3}" y="{y + 22}" fill="#666">#{step}</text></g>')
        if cat in ("notify", "interrupt"):
            # Kicks travel down towards the device, interrupts up to the driver.
            cx = x + _BOX_W // 2
            y0, y1 = (y + _BOX_H, y + _BOX_H + 14) if cat == "notify" else (y, y - 14)
            out.append(f'<line x1="{cx}" y1="{y0}" x2="{cx}" y2="{y1}" stroke="#c00" '
                       f'stroke-width="2" marker-end="url(#arrow)"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
