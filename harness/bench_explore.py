"""`vringfuzz bench explore`: what each reduction of explore saves, on the small configurations.

Two tables (issue 3: "interleavings run versus the count without reduction"):
1. SMALL (net-rx: queue size 4, 3 buffers, NAPI budget 2) at preemption
   bound 1, per memory model, searched three ways within a time cap each: the
   state cache (the engine's default, harness/sched/statehash.py), DPOR
   (harness/sched/dpor.py) and the plain bounded DFS without any reduction
   (stale drops not deferred either).  A cell is the runs made; for the state
   cache also how many went to the end and the distinct states passed.
2. Bound 2, the state cache only, on SMALL and on draft III (4 slots,
   3 buffers), per memory model: the search the issue asks to exhaust.
'+' marks a search cut short by its cap (the true count is higher).  Seconds
are CPU seconds of this process (the machine is shared), one search each.
"""
from __future__ import annotations

import sys
import time

from .engines.explore import Outcome
from .engines.scheduled import SMALL
from .sched.explore import explore
from .world import run_once

#: (label, explore() keywords): "plain" is the search without any reduction.
MODES = (("states", {"por": False, "state_cache": True}),
         ("dpor", {"por": "dpor"}),
         ("plain", {"por": False, "defer_stale": False}))
MODELS = ("sc", "tso", "relaxed")
#: The small configurations of issue 3 (queue size 4, 3 buffers).
CONFIGS = {"net-rx": dict(SMALL),
           "draft3": {"scenario": "draft3", "slots": 4, "buffers": 3}}


def _search(params: dict, bound: int, cap: float, **how) -> dict:
    t0, c0 = time.monotonic(), time.process_time()
    rep = explore(lambda src: Outcome(run_once(params, src, trace=False)),
                  preemption_bound=bound, deadline=t0 + cap, **how)
    return {"executions": rep.executions, "complete": rep.complete, "states": rep.states,
            "cached": rep.cached, "races": rep.races, "exhausted": rep.exhausted,
            "found": rep.found, "cpu_seconds": round(time.process_time() - c0, 1)}


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def bench_explore(bound: int = 1, cap: float = 60.0, models: tuple[str, ...] = MODELS,
                  bound2_cap: float = 3600.0, configs: tuple[str, ...] = tuple(CONFIGS),
                  progress=_stderr) -> dict:
    """Both tables; `progress` gets one line per finished search (the whole
    bench takes tens of minutes, the table prints only at the end)."""
    out = {"config": dict(SMALL), "preemption_bound": bound, "cap_seconds": cap,
           "bound2_cap_seconds": bound2_cap, "reductions": {}, "bound2": {}}
    for model in models:
        params = dict(SMALL, memory_model=model)
        row = out["reductions"][model] = {}
        for label, how in MODES:
            row[label] = _search(params, bound, cap, **how)
            progress(f"bench explore: net-rx/{model} bound {bound} {label}: {_cell(row[label])}")
    for name in configs:
        for model in models:
            params = dict(CONFIGS[name], memory_model=model)
            key = f"{name}/{model}"
            out["bound2"][key] = _search(params, 2, bound2_cap, por=False, state_cache=True)
            progress(f"bench explore: {key} bound 2 states: {_cell(out['bound2'][key])}")
    return out


def _cell(r: dict) -> str:
    mark = "" if r["exhausted"] else "+"
    if r["states"]:
        return (f"{r['executions']:,}{mark} runs ({r['complete']:,} to the end), "
                f"{r['states']:,} states, {r['cpu_seconds']}s")
    return f"{r['executions']:,}{mark} runs, {r['cpu_seconds']}s"


def format_explore(res: dict) -> str:
    lines = [f"net-rx, queue size 4, 3 buffers, preemption bound {res['preemption_bound']}, "
             f"cap {res['cap_seconds']:.0f}s per search"]
    for model, row in res["reductions"].items():
        lines.append(f"  {model}")
        for label, _ in MODES:
            lines.append(f"    {label:<8}{_cell(row[label])}")
    lines.append(f"bound 2 with the state cache, cap {res['bound2_cap_seconds']:.0f}s per search")
    for key, r in res["bound2"].items():
        verdict = "found a failure" if r["found"] else (
            "exhausted, clean" if r["exhausted"] else "not exhausted")
        lines.append(f"  {key:<16}{_cell(r)}: {verdict}")
    lines.append("('+': cut short by the cap, the true count is higher; seconds are CPU seconds)")
    return "\n".join(lines)


if __name__ == "__main__":
    print(format_explore(bench_explore()))
