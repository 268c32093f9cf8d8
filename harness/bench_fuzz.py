"""`vringfuzz bench fuzz`: execs per second of each fuzz target, and what the
structure-aware mutators buy (desc_chain: coverage; schedule: reaching a
planted reordering).

Rules: every figure is the median of `repeats` runs of a real atheris/libFuzzer
process (one core, instrumented, no fork), started from the committed seed
corpus into a fresh working corpus, with libFuzzer's -seed fixed per repeat.
The machine is shared and noisy: report the median next to its spread; never
assert speed in a test.  For the schedule target, points/exec is the mean
number of scheduling points (RunReport.steps) over the working corpus the run
left plus the seeds, re-run in-process (libFuzzer cannot report it).
"""
from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from harness.fuzzing import (MAX_LEN, MAX_LENS, TARGETS, libfuzzer_args, parse_stats,
                             seed_dir, write_launcher)


def run_once(target: str, seconds: float, *, seed: int, mutator: bool = True,
             runs: int | None = None, points: str | None = None) -> dict:
    """One libFuzzer run; its final stats (runs, cov, ft, corpus, execs_per_s)
    and execs per CPU second of the child (less sensitive to a busy machine).
    `points`: the schedule target's memory-model choices (VRINGFUZZ_POINTS)."""
    with tempfile.TemporaryDirectory(prefix="vringfuzz-bench-") as tmp:
        out = Path(tmp)
        corpus = out / "corpus"
        corpus.mkdir()
        cmd = [str(write_launcher(target, out))] + libfuzzer_args(
            time_s=seconds, jobs=1, out_dir=out, corpus=corpus, seeds=seed_dir(target),
            runs=runs, extra=[f"-seed={seed}"], max_len=MAX_LENS.get(target, MAX_LEN))
        env = dict(os.environ)
        env.pop("VRINGFUZZ_DRIVER", None)
        env.pop("VRINGFUZZ_DEVICE", None)
        env.pop("VRINGFUZZ_BUG", None)
        if not mutator:
            env["VRINGFUZZ_NO_MUTATOR"] = "1"
        if points is not None:
            env["VRINGFUZZ_POINTS"] = points
        log = out / "log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=out, env=env, stdout=subprocess.DEVNULL,
                                    stderr=err)
            _, _, usage = os.wait4(proc.pid, 0)   # this child's own CPU time
            proc.returncode = 0
        stats = parse_stats(log.read_text(errors="replace"))
        cpu = usage.ru_utime + usage.ru_stime
        stats["cpu_s"] = round(cpu, 2)
        stats["execs_per_cpu_s"] = round(stats.get("runs", 0) / cpu) if cpu else 0
        if target == "schedule":
            stats["points_per_exec"] = points_per_exec(
                list(corpus.iterdir()) + sorted(seed_dir(target).glob("*.seed")),
                points=env.get("VRINGFUZZ_POINTS"))
        return stats


def points_per_exec(paths, points: str | None = None) -> float:
    """Mean scheduling points of the schedule target over these inputs."""
    from fuzz.schedule import ScheduleTarget
    t = ScheduleTarget(driver="reference", device="reference", bug="", points=points)
    steps = []
    for p in paths:
        t.run(Path(p).read_bytes())
        steps.append(t.last_steps)
    return round(sum(steps) / len(steps), 1) if steps else 0.0


def _summary(samples: list[dict], key: str) -> dict:
    values = [s.get(key, 0) for s in samples]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def bench_fuzz(seconds: float = 5.0, repeats: int = 3) -> dict:
    """execs/s of each target (median of repeats), one core each, in turn."""
    res = {}
    for target in TARGETS:
        samples = [run_once(target, seconds, seed=k + 1) for k in range(repeats)]
        res[target] = {"execs_per_s": _summary(samples, "execs_per_s")["median"],
                       "spread": _summary(samples, "execs_per_s"),
                       "execs_per_cpu_s": _summary(samples, "execs_per_cpu_s")["median"],
                       "cov": _summary(samples, "cov")["median"],
                       "ft": _summary(samples, "ft")["median"],
                       "seconds": seconds, "repeats": repeats}
        if target == "schedule":
            res[target]["points_per_exec"] = _summary(samples, "points_per_exec")["median"]
    return res


def compare_points(seconds: float = 5.0, pairs: int = 3) -> dict:
    """The schedule target with every choice (points="all", the old input
    rule) against its default, in interleaved pairs from the same seeds, so
    both see the same machine: the machine's speed moves by a quarter
    between runs of one bench, a side-by-side ratio does not."""
    from fuzz.schedule import POINTS
    runs: dict = {"all": [], POINTS: []}
    for k in range(pairs):
        order = ("all", POINTS) if k % 2 == 0 else (POINTS, "all")
        for points in order:
            runs[points].append(run_once("schedule", seconds, seed=k + 1, points=points))
    med = {p: {key: _summary(r, key)["median"] for key in ("execs_per_s", "points_per_exec")}
           for p, r in runs.items()}
    return {"default": POINTS, "pairs": pairs, "seconds": seconds, "median": med,
            "ratio": round(med[POINTS]["execs_per_s"] / med["all"]["execs_per_s"], 2)
            if med["all"]["execs_per_s"] else None}


def format_points(res: dict) -> str:
    m, d = res["median"], res["default"]
    return (f"schedule, {res['pairs']} interleaved pairs of {res['seconds']} s: "
            f"points={d} {m[d]['execs_per_s']:,.0f} execs/s ({m[d]['points_per_exec']:.0f} "
            f"points/exec), points=all {m['all']['execs_per_s']:,.0f} "
            f"({m['all']['points_per_exec']:.0f}): x{res['ratio']}")


def schedule_inprocess(seconds: float = 3.0, repeats: int = 3, inputs: int = 400) -> dict:
    """The schedule target's own cost, without libFuzzer or instrumentation:
    execs and points per CPU second over the seeds with seeded byte mutations
    (the same inputs every time, so two commits compare side by side)."""
    import random
    import time

    from fuzz.schedule import ScheduleTarget
    target = ScheduleTarget(driver="reference", device="reference", bug="")
    seeds = [p.read_bytes() for p in sorted(seed_dir("schedule").glob("*.seed"))]
    rng = random.Random(1)
    batch = []
    for _ in range(inputs):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        batch.append(bytes(data))
    samples = []
    all_execs = all_points = 0
    for _ in range(repeats):
        execs = points = 0
        t0 = time.process_time()
        while time.process_time() - t0 < seconds:
            for data in batch:
                target.run(data, record=False)     # as the fuzzer runs it
                execs += 1
                points += target.last_steps
        el = time.process_time() - t0
        samples.append({"execs_per_cpu_s": execs / el})
        all_execs, all_points = all_execs + execs, all_points + points
    return {"execs_per_cpu_s": round(_summary(samples, "execs_per_cpu_s")["median"]),
            "points_per_exec": round(all_points / all_execs, 1),
            "spread": _summary(samples, "execs_per_cpu_s"), "inputs": inputs}


def compare_mutators(seconds: float = 30.0, repeats: int = 3, *, target="desc_chain",
                     runs: int | None = None) -> dict:
    """Coverage (cov, ft) after the same time (or `runs`) from the same seeds,
    with the structure-aware custom mutator and with libFuzzer's bytes alone."""
    res = {}
    for label, mutator in (("structure-aware", True), ("bytes-only", False)):
        samples = [run_once(target, seconds, seed=k + 1, mutator=mutator, runs=runs)
                   for k in range(repeats)]
        res[label] = {key: _summary(samples, key)
                      for key in ("cov", "ft", "runs", "execs_per_s", "execs_per_cpu_s")}
        res[label]["samples"] = samples
    return res


def mutations_to_finding(target, base: list[bytes], mutate, pick, cap: int) -> int | None:
    """Mutants of `base` (mutate(src) -> bytes, sources drawn by `pick`, every
    mutant joining the pool: no coverage feedback) until `target` finds
    something; how many it took, or None within `cap`."""
    pool = list(base)
    for n in range(cap):
        data = mutate(pool[pick.randrange(len(pool))])
        if target.run(data).finding is not None:
            return n + 1
        pool.append(data)
    return None


def schedule_mutator_reach(bugs=("missing-wmb-avail-idx", "missing-wmb-used-idx"),
                           repeats: int = 5, cap: int = 3000) -> dict:
    """Mutations of the schedule seeds until a planted barrier bug shows, with
    the schedule mutator's edits and with seeded byte flips (libFuzzer's
    simplest mutation), in-process (mutations_to_finding)."""
    import random

    from fuzz import mutators, schedule_mutator
    from fuzz.schedule import ScheduleTarget

    def flips(rng):
        def mutate(data):
            data = bytearray(data)
            for _ in range(1 + rng.randrange(4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            return bytes(data)
        return mutate
    base = [p.read_bytes() for p in sorted(seed_dir("schedule").glob("*.seed"))]
    res: dict = {}
    for bug in bugs:
        target = ScheduleTarget(driver="reference", device="reference", bug=bug)
        for label in ("schedule edits", "byte flips"):
            reached = []
            for k in range(repeats):
                pick = mutators.SplitMix(100 + k)
                mutate = (flips(random.Random(k)) if label == "byte flips" else
                          lambda src, pick=pick: schedule_mutator.schedule_mutate(src, pick, 1024))
                reached.append(mutations_to_finding(target, base, mutate, pick, cap))
            res.setdefault(bug, {})[label] = reached
    return {"cap": cap, "bugs": res}


def format_reach(res: dict) -> str:
    lines = [f"schedule mutator: mutations of the seeds to a planted barrier bug "
             f"(in-process, no coverage feedback; '-': not within {res['cap']})"]
    for bug, row in res["bugs"].items():
        for label, reached in row.items():
            lines.append(f"  {bug:<24} {label:<15} "
                         + " ".join("-" if r is None else str(r) for r in reached))
    return "\n".join(lines)


def format_fuzz(res: dict) -> str:
    lines = [f"{'target':<12} {'execs/s (median)':>17} {'min..max':>15} "
             f"{'execs/cpu-s':>12} {'cov':>5} {'ft':>6}"]
    for target, r in res.items():
        s = r["spread"]
        lines.append(f"{target:<12} {r['execs_per_s']:>17,.0f} "
                     f"{s['min']:>7,.0f}..{s['max']:<7,.0f} {r['execs_per_cpu_s']:>12,.0f} "
                     f"{r['cov']:>5} {r['ft']:>6}"
                     + (f"  {r['points_per_exec']:.0f} points/exec"
                        if "points_per_exec" in r else ""))
    first = next(iter(res.values()), {})
    lines.append(f"(atheris/libFuzzer, one core, {first.get('seconds')} s x "
                 f"{first.get('repeats')} repeats from the seed corpus)")
    return "\n".join(lines)


def format_compare(res: dict) -> str:
    lines = [f"{'mutator':<16} {'cov':>13} {'ft':>15} {'runs':>17}"]
    for label, r in res.items():
        cells = [f"{r[k]['median']:>6.0f} ({r[k]['min']:.0f}-{r[k]['max']:.0f})"
                 for k in ("cov", "ft", "runs")]
        lines.append(f"{label:<16} " + " ".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)
