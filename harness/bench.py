"""`vringfuzz bench [WHAT]`: the benchmarks behind the figures in the README.

WHAT is one of:
  ring     round trips per second through the reference ring (plain memory)
  sched    scheduling points per second for two tasks doing ring round trips
  explore  runs of `explore` with the state cache, DPOR and no reduction; bound 2 with the cache
  threads  PCT versus uncontrolled real threads on a planted bug: time to detect
  fuzz     execs per second of each fuzz target on one core
  bugs     every bug x engine: detection table (docs/detection.md)
  all      ring, sched, explore, fuzz

Speed is measured here and never asserted in tests: these machines are shared and
noisy, so every figure is a median of repeats, printed next to its spread.
"""
from __future__ import annotations

import json

from harness.errors import UsageError


def _ring(args):
    from harness.bench_ring import bench_ring, format_rows
    rows = bench_ring(seconds=args.seconds or 2.5)
    return rows, format_rows(rows)


def _sched(args):
    from harness.bench_sched import bench_sched
    res = bench_sched(args.seconds or 12.0)
    lines = [f"{'model/source':<22}{'points/s':>12}{'round trips/s':>15}"]
    for key, row in res.items():
        if isinstance(row, dict) and "points_per_s" in row:
            lines.append(f"{key:<22}{row['points_per_s']:>12,}{row['round_trips_per_s']:>15,}")
    sb = res.get("explore_sb_tso", {})
    lines.append(f"explore SB litmus (tso): {sb}")
    lines.append("(points per CPU second, median of 3; two tasks doing ring round trips)")
    return res, "\n".join(lines)


def _explore(args):
    from harness.bench_explore import bench_explore, format_explore
    # --seconds caps each bound-2 search (default an hour: each ends sooner
    # here, draft III under relaxed in about 40 minutes).
    res = bench_explore(bound2_cap=args.seconds or 3600.0)
    return res, format_explore(res)


def _threads(args):
    from harness.bench_threads import bench_threads
    return bench_threads(seeds=args.seeds, budget=args.budget)


def _fuzz(args):
    from harness.bench_fuzz import (bench_fuzz, compare_points, format_fuzz, format_points,
                                    format_reach, schedule_inprocess, schedule_mutator_reach)
    res = bench_fuzz(args.seconds or 5.0)
    points = compare_points(args.seconds or 5.0)
    inproc = schedule_inprocess()
    reach = schedule_mutator_reach()
    text = format_fuzz(res) + "\n" + format_points(points) + (
        f"\nschedule in-process (no libFuzzer, no instrumentation): "
        f"{inproc['execs_per_cpu_s']:,} execs per CPU second, "
        f"{inproc['points_per_exec']:.0f} points/exec\n") + format_reach(reach)
    return {**res, "schedule_points": points, "schedule_inprocess": inproc,
            "schedule_mutator_reach": reach}, text


def _bugs(args):
    from harness import bugs
    from harness.bench_bugs import BASELINES, ENGINES, bench_bugs
    for name in args.bug:
        bugs.get(name)          # UsageError naming the known bugs when unknown
    for e in args.engine:
        if e not in ENGINES + BASELINES:
            raise UsageError(f"bench bugs --engine {e!r}: expected one of "
                             f"{', '.join(ENGINES + BASELINES)}")
    partial = bool(args.bug or args.engine or args.fp_only)
    if args.merge and not partial:
        raise UsageError("bench bugs --merge: only a partial run (--bug, --engine, --fp-only) "
                         "is merged; a full run rewrites docs/detection.md itself")
    # A partial run prints its table but leaves docs/detection.md alone, unless
    # --merge puts what it re-ran into the committed document.
    data, text = bench_bugs(seeds=args.seeds, budget=args.budget, jobs=args.jobs,
                            fp_seconds=args.fp_seconds, names=args.bug or None,
                            engines=args.engine or None, write=not partial,
                            fp_only=args.fp_only)
    if args.merge:
        from harness.bench_bugs import merge_into_docs
        try:
            data, text = merge_into_docs(data, args.merge)
        except ValueError as e:
            raise UsageError(f"bench bugs --merge: {e}") from None
    return data, text


BENCHES = {"ring": _ring, "sched": _sched, "explore": _explore, "threads": _threads,
           "fuzz": _fuzz, "bugs": _bugs}


def main(args) -> int:
    names = ["ring", "sched", "explore", "fuzz"] if args.what == "all" else [args.what]
    for name in names:
        if name not in BENCHES:
            raise UsageError(f"bench {name!r}: expected one of {', '.join(BENCHES)}, all")
    results = {}
    for name in names:
        try:
            data, text = BENCHES[name](args)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("harness."):
                raise UsageError(f"bench {name}: not available in this build") from None
            raise
        results[name] = data
        if not args.json:
            print(f"== bench {name}\n{text}\n", flush=True)
    if args.json:
        print(json.dumps(results, sort_keys=True, default=str))
    return 0
