"""`vringfuzz bench explore`: what partial-order reduction saves on the small configuration.

The small configuration (net-rx: queue size 4, 3 buffers) is explored with the
same preemption bound three ways per memory model - DPOR (the engine's
default), sleep sets alone, and the plain bounded DFS without any reduction
(stale drops not deferred either) - each within a time cap; the table shows complete interleavings, seconds and whether each search
exhausted its space.  A ratio is exact only when both sides exhausted; '+'
marks a count cut short by the cap (the true count is higher).  Sleep sets
alone are not complete under a bound (tests/test_sched_explore.py), so their
column is for comparison only.
"""
from __future__ import annotations

import time

from .engines.explore import Outcome
from .engines.scheduled import SMALL
from .sched.explore import explore
from .world import run_once

#: (label, por, defer_stale): "plain" is the search without any reduction.
MODES = (("dpor", "dpor", True), ("sleep sets", "sleep", True), ("plain", False, False))


def _search(params: dict, bound: int, por, cap: float, defer_stale: bool = True) -> dict:
    t0 = time.monotonic()
    rep = explore(lambda src: Outcome(run_once(params, src, trace=False)),
                  preemption_bound=bound, por=por, deadline=t0 + cap,
                  defer_stale=defer_stale)
    return {"executions": rep.executions, "complete": rep.complete, "pruned": rep.pruned,
            "races": rep.races, "exhausted": rep.exhausted, "found": rep.found,
            "seconds": round(time.monotonic() - t0, 1)}


def bench_explore(bound: int = 1, cap: float = 60.0,
                  models: tuple[str, ...] = ("sc", "tso", "relaxed")) -> dict:
    out = {"config": dict(SMALL), "preemption_bound": bound, "cap_seconds": cap}
    for model in models:
        params = dict(SMALL, memory_model=model)
        out[model] = {label: _search(params, bound, por, cap, defer)
                      for label, por, defer in MODES}
    return out


def format_explore(res: dict) -> str:
    lines = [f"net-rx, queue size 4, 3 buffers, preemption bound {res['preemption_bound']}, "
             f"cap {res['cap_seconds']:.0f}s per search",
             f"{'model':<9}" + "".join(f"{label:>22}" for label, *_ in MODES)
             + f"{'plain/dpor':>12}"]
    for model in ("sc", "tso", "relaxed"):
        if model not in res:
            continue
        row = res[model]

        def cell(r):
            return f"{r['complete']:,}{'' if r['exhausted'] else '+'} ({r['seconds']}s)"
        p, n = row["dpor"], row["plain"]
        ratio = n["complete"] / max(p["complete"], 1)
        mark = "" if p["exhausted"] and n["exhausted"] else ("+" if p["exhausted"] else "?")
        lines.append(f"{model:<9}" + "".join(f"{cell(row[label]):>22}" for label, *_ in MODES)
                     + f"{ratio:>11.2f}x{mark}")
    lines.append("('+': cut short by the cap, the true count is higher; "
                 "'?': DPOR itself was cut short)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_explore(bench_explore()))
