"""Bounded exhaustive exploration on several processes: explore(split=...) per worker.

Rules:
* Worker j of N runs explore() with split=(j, N, depth): the same search
  above the split node, its own subtrees below it (explore.py explains the
  cut).  For the plain search the workers' complete runs add up to one
  search's, each run counted once; with DPOR they run more, since nothing
  above the split node is pruned.  The space is exhausted when every worker
  exhausted its share.
* Workers are forked (make_run is usually a closure: it is inherited, never
  pickled).  make_run's outcomes have .error and .schedule, as RunOutcome
  does.  A worker sends back counters and, for a failure, the failing run's
  schedule as a list of choices; the caller replays it (an outcome holds
  objects of the run that need not survive a pipe).
* The first failure stops the others (a shared event they poll between
  runs); so does the deadline.  Which worker fails first depends on timing,
  so a parallel search reports *a* failing schedule, not always the same
  one; every schedule it reports replays deterministically.
* progress(total_runs) is called about every quarter second while waiting.
"""
from __future__ import annotations

import multiprocessing
import queue

from .explore import ExploreReport, explore

#: Split depth: decisions above it are explored by every worker.  Deep
#: enough that the split node has many siblings to share out, shallow enough
#: that the common part is a small fraction of the runs.
DEFAULT_SPLIT_DEPTH = 6

#: Summed over workers.  With the state cache each worker keeps its own, so
#: `states` counts a state once per worker that passed it.
_COUNTERS = ("executions", "pruned", "bounded", "deferred", "sleep_blocked", "races", "shared",
             "cached", "states")


def _worker(make_run, j, jobs, depth, kwargs, stop, runs, out) -> None:
    def counted(src):
        r = make_run(src)
        with runs.get_lock():
            runs.value += 1
        return r
    try:
        rep = explore(counted, split=(j, jobs, depth), stop=stop.is_set, **kwargs)
        failing = None
        if rep.failure is not None:
            failing = list(rep.failure.schedule.choices)
            stop.set()
        out.put((j, {k: getattr(rep, k) for k in _COUNTERS}, rep.exhausted, failing, None))
    except BaseException as e:  # noqa: BLE001  (reported to the parent, which raises)
        stop.set()
        out.put((j, None, False, None, f"{type(e).__name__}: {e}"))


def explore_parallel(make_run, *, jobs: int, split_depth: int = DEFAULT_SPLIT_DEPTH,
                     progress=None, **kwargs) -> tuple[ExploreReport, list[int] | None]:
    """explore(make_run, **kwargs) on `jobs` forked workers.

    Returns the combined report (its .failure is None) and the choices of a
    failing run, or None when no worker failed.
    """
    if jobs < 1:
        raise ValueError(f"jobs={jobs}: expected at least 1")
    ctx = multiprocessing.get_context("fork")
    stop = ctx.Event()
    runs = ctx.Value("q", 0)
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(make_run, j, jobs, split_depth, kwargs,
                                               stop, runs, out), daemon=True)
             for j in range(jobs)]
    for p in procs:
        p.start()
    results = {}
    try:
        while len(results) < jobs:
            try:
                j, counters, exhausted, failing, error = out.get(timeout=0.25)
                results[j] = (counters, exhausted, failing, error)
            except queue.Empty:
                if not any(p.is_alive() for p in procs) and out.empty():
                    raise RuntimeError("an explore worker died without a report")
            if progress is not None:
                progress(runs.value)
    finally:
        stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
    errors = [r[3] for _, r in sorted(results.items()) if r[3]]
    if errors:
        raise RuntimeError(f"explore worker failed: {errors[0]}")
    rep = ExploreReport()
    for k in _COUNTERS:
        setattr(rep, k, sum(r[0][k] for r in results.values()))
    failing = next((r[2] for _, r in sorted(results.items()) if r[2] is not None), None)
    rep.exhausted = failing is None and all(r[1] for r in results.values())
    return rep, failing


__all__ = ["explore_parallel", "DEFAULT_SPLIT_DEPTH"]
