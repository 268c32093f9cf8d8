"""`--engine explore`: bounded exhaustive search of the small configuration.

Every schedule within --preemption-bound (CHESS) is run once, reduced by
dynamic partial-order reduction (harness/sched/dpor.py); the result says how many interleavings ran and whether the bounded space
was exhausted before the time budget.
"""
from __future__ import annotations

import time

from ..nativemem import isolated
from ..progress import for_opts
from ..result import EngineResult
from ..sched.explore import explore
from ..sched.runtime import Abandoned
from ..world import run_once
from .scheduled import _with_trace, params_for, result_from


class _Outcome:
    """explore() wants .error; a run's verdict is its finding."""

    __slots__ = ("error", "report")

    def __init__(self, report):
        self.report = report
        self.error = report.error if isinstance(report.error, Abandoned) else report.finding


def run(opts) -> EngineResult:
    return isolated(opts, "explore", lambda: _explore(opts))


def _explore(opts) -> EngineResult:
    small = getattr(opts, "scenario", None) in (None, "small")
    params = params_for(opts, small=small)
    budget = float(getattr(opts, "time", None) or 10.0)
    bound = getattr(opts, "preemption_bound", 2)
    progress = for_opts(opts, "explore")
    start = time.monotonic()
    count = [0]

    def make_run(source):
        count[0] += 1
        progress.update(count[0], scenario=params["scenario"], model=params["memory_model"])
        return _Outcome(run_once(params, source, trace=False))

    rep = explore(make_run, preemption_bound=bound, por=True, deadline=start + budget)
    report = rep.failure.report if rep.failure is not None else None
    if report is not None:
        report = _with_trace(report)
    res = result_from("explore", report, runs=rep.executions, seconds=time.monotonic() - start,
                      seed=None, out=getattr(opts, "out", None),
                      extra={"memory_model": params["memory_model"], "exhausted": rep.exhausted,
                             "interleavings": rep.complete, "pruned": rep.pruned,
                             "races": rep.races, "preemption_bound": bound})
    if report is None:
        res.extra["scenario"] = params["scenario"]
        state = "exhausted" if rep.exhausted else "not exhausted (time budget)"
        res.message = (f"{rep.complete} interleavings, {rep.races} races found by DPOR, "
                       f"bound {bound}: {state}")
    return res
