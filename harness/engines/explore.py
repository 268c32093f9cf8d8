"""`--engine explore`: bounded exhaustive search of the small configuration.

Every schedule within --preemption-bound (CHESS) is covered, reduced by
--reduction: "states" (the default) stops a run at any state the search has
already explored with as many preemptions left (harness/sched/statehash.py);
"dpor" runs dynamic partial-order reduction (harness/sched/dpor.py), the
choice wherever a side is native C code, whose memory the state digest cannot
see; "none" is the plain bounded search.  The result says how many runs were
made, how many distinct states they passed, and whether the bounded space was
exhausted before the time budget.  --jobs N shares the search out to N worker
processes (harness/sched/explore_parallel.py); a failure found by a worker is
replayed here from its schedule, so the repro is the same as a single search's.
"""
from __future__ import annotations

import time

from ..errors import UsageError
from ..nativemem import isolated, needs_native
from ..progress import for_opts
from ..result import EngineResult
from ..sched.explore import explore
from ..sched.explore_parallel import explore_parallel
from ..sched.replay import ReplaySource
from ..sched.runtime import Abandoned, SchedulerError
from ..sched.source import Schedule
from ..world import run_once
from .scheduled import _with_trace, params_for, result_from


class Outcome:
    """explore() wants .error; a run's verdict is its finding."""

    __slots__ = ("error", "report", "schedule")

    def __init__(self, report):
        self.report = report
        self.schedule = report.schedule
        self.error = report.error if isinstance(report.error, Abandoned) else report.finding


#: The most of the budget one pass below --preemption-bound may take.
LOWER_SHARE = 0.25

REDUCTIONS = ("states", "dpor", "none")


def search_options(reduction: str, params: dict) -> dict:
    """explore() keyword arguments for --reduction; "states" falls back to DPOR
    when a side is native (its C state lives outside the Python objects)."""
    if reduction not in REDUCTIONS:
        raise UsageError(f"--reduction {reduction!r}: expected one of {', '.join(REDUCTIONS)}")
    if reduction == "states" and needs_native(params["driver"], params["device"]):
        reduction = "dpor"
    return {"por": reduction == "dpor", "state_cache": reduction == "states"}


def run(opts) -> EngineResult:
    return isolated(opts, "explore", lambda: _explore(opts))


def _explore(opts) -> EngineResult:
    small = getattr(opts, "scenario", None) in (None, "small")
    params = params_for(opts, small=small)
    budget = float(getattr(opts, "time", None) or 10.0)
    bound = getattr(opts, "preemption_bound", 2)
    jobs = int(getattr(opts, "jobs", None) or 1)
    how = search_options(getattr(opts, "reduction", None) or "states", params)
    progress = for_opts(opts, "explore")
    start = time.monotonic()
    done = 0                        # runs of the finished passes
    # Iterative preemption bounding (CHESS): every schedule with at most k
    # preemptions for k = 0, 1, ... bound, so a bug that needs one preemption
    # is found in the k = 1 pass instead of wherever the bound-2 DFS gets to
    # first.  Each pass repeats the smaller ones: a small share of its runs.
    # A smaller pass gets at most LOWER_SHARE of the budget (on a large
    # scenario even bound 0 does not end), then the next one starts; only
    # the last pass, over the whole bounded space, can say "exhausted".
    for k in range(bound + 1):
        end = start + budget
        if k and time.monotonic() >= end:
            k -= 1                  # out of time: report the pass that ran last
            break
        if k < bound:
            end = min(end, time.monotonic() + LOWER_SHARE * budget)
        rep, report = _pass(params, k, jobs, end, progress, done, how)
        done += rep.executions
        if report is not None:
            break
    if report is not None:
        report = _with_trace(report)
    res = result_from("explore", report, runs=done, seconds=time.monotonic() - start,
                      seed=None, out=getattr(opts, "out", None),
                      extra={"memory_model": params["memory_model"],
                             "exhausted": rep.exhausted and k == bound,
                             "interleavings": rep.complete, "pruned": rep.pruned,
                             "races": rep.races, "states": rep.states,
                             "cached": rep.cached, "reduction": _name(how),
                             "preemption_bound": bound, "bound_reached": k, "jobs": jobs})
    if report is None:
        res.extra["scenario"] = params["scenario"]
        state = "exhausted" if rep.exhausted and k == bound else (
            f"not exhausted (time budget, during the pass with bound {k})")
        res.message = f"bound {bound}: {_summary(rep, how, jobs)}: {state}"
    return res


def _name(how: dict) -> str:
    return "states" if how["state_cache"] else "dpor" if how["por"] else "none"


def _summary(rep, how: dict, jobs: int) -> str:
    """What the last pass ran, in the words of its reduction."""
    if how["state_cache"]:
        # Each worker keeps its own cache: a state passed by two counts twice.
        states = "distinct states" if jobs == 1 else f"states over {jobs} workers' caches"
        return (f"{rep.executions:,} runs ({rep.complete:,} to the end, {rep.cached:,} cut at "
                f"a state already explored), {rep.states:,} {states}")
    if how["por"]:
        return f"{rep.complete:,} interleavings, {rep.races:,} races found by DPOR"
    return f"{rep.complete:,} interleavings"


def _pass(params, bound: int, jobs: int, deadline: float, progress, done: int, how: dict):
    """One bounded search: (its ExploreReport, the failing run's report or None)."""
    def tell(n):
        progress.update(done + n, scenario=params["scenario"], model=params["memory_model"],
                        bound=bound)
    if jobs > 1:
        rep, failing = explore_parallel(
            lambda src: Outcome(run_once(params, src, trace=False)), jobs=jobs,
            preemption_bound=bound, deadline=deadline, progress=tell, **how)
        if failing is None:
            return rep, None
        report = run_once(params, ReplaySource(Schedule(choices=tuple(failing))), trace=False)
        if report.finding is None:
            raise SchedulerError("a worker's failing schedule did not fail again "
                                 "when replayed: the scenario is not deterministic")
        return rep, report
    count = [0]

    def make_run(source):
        count[0] += 1
        tell(count[0])
        return Outcome(run_once(params, source, trace=False))
    rep = explore(make_run, preemption_bound=bound, deadline=deadline, **how)
    return rep, rep.failure.report if rep.failure is not None else None
