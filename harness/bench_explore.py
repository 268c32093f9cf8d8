"""`vringfuzz bench explore`: what sleep sets save on the small configuration.

The small configuration (net-rx: queue size 4, 3 buffers) is explored with the
same preemption bound twice, with and without partial-order reduction, per
memory model, each within a time cap; the table shows executions and whether
each search exhausted its space.  Only when both sides exhausted is the ratio
exact; otherwise the row says which side was cut short.
"""
from __future__ import annotations

import time

from .engines.scheduled import SMALL
from .sched.explore import explore
from .sched.runtime import Abandoned
from .world import run_once


class _Outcome:
    __slots__ = ("error",)

    def __init__(self, report):
        self.error = report.error if isinstance(report.error, Abandoned) else report.finding


def _search(params: dict, bound: int, por: bool, cap: float) -> dict:
    t0 = time.monotonic()
    rep = explore(lambda src: _Outcome(run_once(params, src, trace=False)),
                  preemption_bound=bound, por=por, deadline=t0 + cap)
    return {"executions": rep.executions, "complete": rep.complete, "pruned": rep.pruned,
            "exhausted": rep.exhausted, "found": rep.found,
            "seconds": round(time.monotonic() - t0, 1)}


def bench_explore(bound: int = 1, cap: float = 60.0,
                  models: tuple[str, ...] = ("sc", "tso", "relaxed")) -> dict:
    out = {"config": dict(SMALL), "preemption_bound": bound, "cap_seconds": cap}
    for model in models:
        params = dict(SMALL, memory_model=model)
        out[model] = {"por": _search(params, bound, True, cap),
                      "no_por": _search(params, bound, False, cap)}
    return out


def format_explore(res: dict) -> str:
    lines = [f"net-rx, queue size 4, 3 buffers, preemption bound {res['preemption_bound']}, "
             f"cap {res['cap_seconds']:.0f}s per search",
             f"{'model':<9}{'with sleep sets':>22}{'without':>22}{'ratio':>8}"]
    for model in ("sc", "tso", "relaxed"):
        if model not in res:
            continue
        p, n = res[model]["por"], res[model]["no_por"]

        def cell(r):
            return f"{r['complete']:,}{'' if r['exhausted'] else '+'} ({r['seconds']}s)"
        exact = p["exhausted"] and n["exhausted"]
        ratio = f"{n['complete'] / max(p['complete'], 1):.1f}x" + ("" if exact else "+")
        lines.append(f"{model:<9}{cell(p):>22}{cell(n):>22}{ratio:>8}")
    lines.append("('+': cut short by the cap, so the true count is higher)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_explore(bench_explore()))
