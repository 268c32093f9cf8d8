"""The campaign's HTML report: one self-contained file, charts as inline SVG.

Runs over time and coverage over time come from each engine's progress
samples; each finding links to its repro file and, when the replay can draw
one, its swimlane picture.
"""
from __future__ import annotations

import html
from pathlib import Path

_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79"]


def _chart(series: list[tuple[str, list[tuple[float, float]]]], title: str, ylabel: str,
           width: int = 640, height: int = 260) -> str:
    """A small line chart; x is seconds since the engine started."""
    pts = [p for _, s in series for p in s]
    if not pts:
        return f"<p><em>{html.escape(title)}: no samples</em></p>"
    xmax = max(x for x, _ in pts) or 1.0
    ymax = max(y for _, y in pts) or 1.0
    left, bottom, right, top = 60, height - 30, width - 150, 20

    def sx(x):
        return left + (right - left) * x / xmax

    def sy(y):
        return bottom - (bottom - top) * y / ymax

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="12" font-weight="bold">{html.escape(title)}</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#000"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#000"/>',
           f'<text x="{left - 5}" y="{top + 4}" text-anchor="end">{ymax:,.0f}</text>',
           f'<text x="{left - 5}" y="{bottom}" text-anchor="end">0</text>',
           f'<text x="{right}" y="{bottom + 15}" text-anchor="end">{xmax:.0f} s</text>',
           f'<text x="12" y="{(top + bottom) // 2}" transform="rotate(-90 12 '
           f'{(top + bottom) // 2})" text-anchor="middle">{html.escape(ylabel)}</text>']
    for i, (name, s) in enumerate(series):
        colour = _COLOURS[i % len(_COLOURS)]
        if s:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in s)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
                       f'points="{path}"/>')
        out.append(f'<text x="{right + 8}" y="{top + 12 * (i + 1)}" fill="{colour}">'
                   f'{html.escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def write_report(rows: list[dict], out: Path, *, title: str) -> Path:
    runs = [(r["label"], [(s["t"], s["runs"]) for s in r.get("samples", [])]) for r in rows]
    cov = [(r["label"], [(s["t"], s["cov"]) for s in r.get("samples", []) if "cov" in s])
           for r in rows]
    cov = [c for c in cov if c[1]]
    body = [f"<h1>{html.escape(title)}</h1>", "<h2>Summary</h2>",
            "<table border=1 cellpadding=4 cellspacing=0><tr><th>engine</th><th>runs</th>"
            "<th>seconds</th><th>result</th><th>repro</th></tr>"]
    for r in rows:
        if r.get("error"):
            verdict = html.escape(r.get("message") or "")
        elif r["found"]:
            verdict = f"<b>FOUND</b> [{html.escape(str(r['oracle']))}] " \
                      f"{html.escape(str(r['message']))}"
        else:
            verdict = "clean"
        link = ""
        if r.get("repro"):
            rel = Path(r["repro"])
            try:
                rel = rel.resolve().relative_to(out.resolve())
            except ValueError:
                pass
            link = f'<a href="{html.escape(str(rel))}">{html.escape(rel.name)}</a>'
            svg = Path(r["repro"]).with_suffix(".svg")
            if svg.exists():
                link += f' · <a href="{html.escape(str(rel.with_suffix(".svg")))}">swimlane</a>'
        body.append(f"<tr><td>{html.escape(r['label'])}</td><td>{r['runs']}</td>"
                    f"<td>{r['seconds']:.1f}</td><td>{verdict}</td><td>{link}</td></tr>")
    body.append("</table>")
    body.append("<h2>Runs over time</h2>" + _chart(runs, "runs (cumulative)", "runs"))
    body.append("<h2>Coverage over time</h2>" + _chart(cov, "coverage (libFuzzer cov)", "edges"))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>"
            f"{html.escape(title)}</title></head><body>" + "\n".join(body) + "</body></html>")
    path = out / "report.html"
    path.write_text(page)
    return path
