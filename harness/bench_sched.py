"""`vringfuzz bench sched`: how fast the scheduler and memory models run.

Rules:
* The workload is two tasks doing ring round trips on the reference split
  ring: a driver (add_sgs, kick, then get_buf, blocking until used idx moves)
  and a device daemon (pop, push, blocking until avail idx moves).  The
  blocking predicates use ModelMemory.peek16 (what the task would see, no
  point), so every point counted is one the ring itself made.
* Figures are scheduling points per CPU second (Scheduler.steps / process
  time, so other jobs on the shared cores do not count against us;
  trace off unless the row says "+trace"), for sc, tso and relaxed under the
  random and PCT sources; and the explorer's executions with and without
  sleep sets on a store-buffering toy, exhausted.
* The clock only measures; nothing it reads steers a run.  The machine is
  shared: quote medians of repeats (`repeats`).
"""
from __future__ import annotations

import statistics
import time

from vring import Platform, open_queue

from .memmodel import MODELS, make_memory
from .sched import PCTSource, RandomSource, Scheduler, explore

_ROUND_TRIPS = 32        # per run


def ring_run(source, model: str, *, round_trips: int = _ROUND_TRIPS, trace: bool = False,
             size: int = 8):
    """One scheduled run of `round_trips` driver/device round trips.

    Returns (outcome, round trips completed)."""
    sched = Scheduler(source, trace=trace, max_steps=200_000)
    mem = make_memory(model, sched, size=1 << 16)
    drv, dev, mem, cfg = open_queue(size, mem=mem, platform=Platform())
    lay = drv.layout
    out_buf, in_buf = mem.alloc(64), mem.alloc(64)
    done = []

    def driver():
        for i in range(round_trips):
            drv.add_sgs([(out_buf, 16)], [(in_buf, 16)], i)
            drv.kick()
            while True:
                got = drv.get_buf()
                if got is not None:
                    done.append(got)
                    break
                last, me = drv.last_used_idx, sched.current
                sched.block("wait-interrupt", lambda: mem.peek16(lay.used_idx, me) != last)

    def device():
        while True:
            chain = dev.pop()
            if chain is None:
                last, me = dev.last_avail_idx, sched.current
                sched.block("wait-kick", lambda: mem.peek16(lay.avail_idx, me) != last)
                continue
            dev.push(chain.head, 16)
            dev.needs_interrupt()

    sched.spawn("driver", driver)
    sched.spawn("device", device, daemon=True)
    return sched.run(), len(done)


def _sources(seed: int):
    return {"random": lambda k: RandomSource(seed + k),
            "pct": lambda k: PCTSource(seed + k, depth=3, max_steps_hint=2000)}


def _rate(make_source, model: str, seconds: float, trace: bool) -> dict:
    steps = runs = trips = 0
    t0 = time.process_time()
    while True:
        out, n = ring_run(make_source(runs), model, trace=trace)
        if out.error is not None:
            raise RuntimeError(f"bench run failed under {model}: {out.error!r}")
        steps += out.steps
        trips += n
        runs += 1
        el = time.process_time() - t0
        if el >= seconds:
            break
    return {"points_per_s": steps / el, "round_trips_per_s": trips / el, "runs": runs}


def _sb_explore_counts() -> dict:
    """Explorer executions on store buffering under tso, with and without POR."""
    from .memmodel import make_memory as mk

    def make_run(src):
        s = Scheduler(src, trace=False)
        m = mk("tso", s, size=4096)

        def t(a, b):
            m.write32(a, 1)
            m.read32(b)
        s.spawn("t0", t, 0x1000, 0x1040)
        s.spawn("t1", t, 0x1040, 0x1000)
        return s.run()
    full = explore(make_run, preemption_bound=None, por=False)
    por = explore(make_run, preemption_bound=None, por=True)
    return {"executions_no_por": full.executions, "executions_por": por.executions,
            "por_complete": por.complete, "pruned": por.pruned,
            "ratio": full.executions / por.executions}


def bench_sched(seconds: float = 6.0, repeats: int = 3, seed: int = 0) -> dict:
    """Scheduling points/s per (memory model, source), medians of `repeats`."""
    rows = [(model, src, False) for model in MODELS for src in ("random", "pct")]
    rows.append(("sc", "random", True))
    per = max(seconds / (len(rows) * repeats), 0.05)
    result: dict = {"round_trips_per_run": _ROUND_TRIPS, "repeats": repeats}
    sources = _sources(seed)
    for model, src, trace in rows:
        samples = [_rate(sources[src], model, per, trace) for _ in range(repeats)]
        key = f"{model}/{src}" + ("+trace" if trace else "")
        result[key] = {
            "points_per_s": round(statistics.median(s["points_per_s"] for s in samples)),
            "round_trips_per_s": round(statistics.median(s["round_trips_per_s"]
                                                         for s in samples)),
            "runs": sum(s["runs"] for s in samples)}
    result["explore_sb_tso"] = _sb_explore_counts()
    return result


if __name__ == "__main__":      # python -m harness.bench_sched [seconds]
    import json
    import sys
    print(json.dumps(bench_sched(float(sys.argv[1]) if len(sys.argv) > 1 else 6.0), indent=1))
